
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_PRESENCE_H_INCLUDED_
#define _NGX_CHAT_PRESENCE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_chat.h"


/* as ngx_chat_ws.h has it: the API's files do not include the transport */
typedef struct ngx_chat_ws_s  ngx_chat_ws_t;


typedef struct ngx_chat_presence_lookup_s  ngx_chat_presence_lookup_t;
typedef void (*ngx_chat_presence_lookup_pt)(void *data,
    ngx_chat_presence_lookup_t *lk);

/*
 * The presence of n users from Redis: the handler gets, for each ids[i],
 * ngx_chat_presence_beat(lk, i) (last heartbeat in ms; -1: offline) and
 * ngx_chat_presence_seen(lk, i) (last_seen in Redis; -1: not there).
 * NULL: nothing could be asked, the handler will not be called.
 */
ngx_chat_presence_lookup_t *ngx_chat_presence_lookup(uint64_t *ids,
    ngx_uint_t n, ngx_chat_presence_lookup_pt handler, void *data);
void ngx_chat_presence_lookup_cancel(ngx_chat_presence_lookup_t *lk);
int64_t ngx_chat_presence_beat(ngx_chat_presence_lookup_t *lk,
    ngx_uint_t i);
int64_t ngx_chat_presence_seen(ngx_chat_presence_lookup_t *lk,
    ngx_uint_t i);


/* a worker's presence: its beats and sweeps (ngx_chat_channel.c) */
ngx_int_t ngx_chat_presence_init(ngx_chat_worker_t *w, ngx_cycle_t *cycle);
void ngx_chat_presence_exit(void);

/* a connection opens, and closes with its route registered */
void ngx_chat_presence_open(ngx_chat_ws_t *ws);
void ngx_chat_presence_close(uint64_t user_id, const char *route);

/*
 * A presence frame from another worker for this connection: 1 when it
 * tells something new (send it), 0 when the connection knows it already.
 */
ngx_uint_t ngx_chat_presence_filter(ngx_chat_ws_t *ws, const char *frame,
    size_t len);


#endif /* _NGX_CHAT_PRESENCE_H_INCLUDED_ */
