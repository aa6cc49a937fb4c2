
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_SYNC_H_INCLUDED_
#define _NGX_CHAT_SYNC_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"


#define NGX_CHAT_SYNC_PAGE        200
#define NGX_CHAT_REFILL_MAX       1000     /* from PostgreSQL, per sync */
#define NGX_CHAT_REFILL_CHUNK     100      /* entries per REFILL call */
#define NGX_CHAT_REFILL_GRACE     60000    /* ms of Redis data: see REFILL */
#define NGX_CHAT_LIVE_MAX         256      /* buffered while syncing */
#define NGX_CHAT_HELD_MAX         256      /* presence, before the state */


/* a connection opens (its queues and timer) and closes */
void ngx_chat_sync_open(ngx_chat_ws_t *ws);
void ngx_chat_sync_close(ngx_chat_ws_t *ws);

/*
 * The inbox is read from position "after" (and the route registered with
 * reg, the receipts that waited read with receipts).
 */
void ngx_chat_sync_start(ngx_chat_ws_t *ws, ngx_uint_t reg,
    ngx_uint_t receipts, uint64_t after);

/* {"type":"sync"} */
ngx_int_t ngx_chat_sync(ngx_chat_ws_t *ws);

/* the inbox is read on after a refill */
void ngx_chat_sync_resume(ngx_chat_ws_t *ws);

/* ngx_chat_refill.c: the inbox from PostgreSQL, then the sync goes on */
void ngx_chat_refill_start(ngx_chat_ws_t *ws);


#endif /* _NGX_CHAT_SYNC_H_INCLUDED_ */
