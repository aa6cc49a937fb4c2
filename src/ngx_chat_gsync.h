
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_GSYNC_H_INCLUDED_
#define _NGX_CHAT_GSYNC_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"


#define NGX_CHAT_GSYNC_PAGE       200      /* log entries per GSYNC item */
#define NGX_CHAT_GSYNC_HELD_MAX   256      /* live, before the groups sync */
#define NGX_CHAT_GSYNC_RING       128      /* group messages remembered */
#define NGX_CHAT_GSYNC_BACKLOG    100      /* rows per PostgreSQL read */
#define NGX_CHAT_GSYNC_WINDOW     256      /* seqs below a log's floor */


/*
 * The connection reads its user's group list (PostgreSQL, batched per
 * round) and each group's log after what it has (GSYNC); live group
 * frames are held back until then.  Called when the inbox sync ends.
 */
void ngx_chat_gsync_start(ngx_chat_ws_t *ws);

/*
 * A group message this connection did not get (a receipt for one got
 * earlier, found in PostgreSQL): remembered as if sent, the status told
 */
void ngx_chat_gsync_remember(ngx_chat_ws_t *ws, const char *id,
    uint64_t gid, uint64_t from, int64_t seq, ngx_uint_t read);

/*
 * The worker's subscription is back (ngx_chat_channel.c): live group
 * frames are held from now on until the group sync that the resync ends
 * with is done.  Frames published while it was down came to nobody, and
 * a later one let out before that read would move the connection's
 * position (and, with its receipt, the member's) past them.
 */
void ngx_chat_gsync_hold(ngx_chat_ws_t *ws);

/*
 * {"type":"sync"}: the next group sync reads each log from the member's
 * delivered position again, not from what the connection has
 */
void ngx_chat_gsync_rewind(ngx_chat_ws_t *ws);

/* the connection closes */
void ngx_chat_gsync_close(ngx_chat_ws_t *ws);

/*
 * A group frame from the worker's channel for this connection (n: the
 * log position, 0 for a frame that is not logged, e.g. typing)
 */
void ngx_chat_gsync_live(ngx_chat_ws_t *ws, uint64_t gid, uint64_t n,
    const char *id, size_t id_len, uint64_t from, int64_t seq,
    const char *frame, size_t len);

/*
 * A receipt for a group message this connection got lately (the last
 * NGX_CHAT_GSYNC_RING): NGX_OK with its group, sender and seq, the status
 * marked told (read marks delivered too); NGX_DONE when this connection
 * told that status already; NGX_DECLINED when it is not such a message.
 */
ngx_int_t ngx_chat_gsync_receipt(ngx_chat_ws_t *ws, const char *id,
    ngx_uint_t read, uint64_t *gid, uint64_t *from, int64_t *seq);


#endif /* _NGX_CHAT_GSYNC_H_INCLUDED_ */
