
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_STORE_H_INCLUDED_
#define _NGX_CHAT_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* what a backend call ended with, passed to every completion handler */
typedef enum {
    NGX_CHAT_STORE_OK = 0,
    NGX_CHAT_STORE_DOWN,        /* not connected, or the connection broke */
    NGX_CHAT_STORE_TIMEOUT,     /* no answer in time */
    NGX_CHAT_STORE_FAILED       /* the backend answered with an error */
} ngx_chat_store_rc_e;


#define NGX_CHAT_BACKOFF_MIN       100
#define NGX_CHAT_BACKOFF_MAX       5000


const char *ngx_chat_store_rc_text(ngx_chat_store_rc_e rc);
ngx_msec_t ngx_chat_store_backoff(ngx_msec_t prev);
ngx_int_t ngx_chat_store_watch(ngx_event_t *ev, ngx_uint_t want);
void ngx_chat_store_free_connection(ngx_connection_t *c);


#endif /* _NGX_CHAT_STORE_H_INCLUDED_ */
