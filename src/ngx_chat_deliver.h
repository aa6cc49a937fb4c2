
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_DELIVER_H_INCLUDED_
#define _NGX_CHAT_DELIVER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"


#define NGX_CHAT_DELIVERY_RETRY   250      /* ms between rounds */
#define NGX_CHAT_LOST_MAX         4096     /* users, per worker */
#define NGX_CHAT_DELIVERY_MAX_RETRIES 100000


ngx_int_t ngx_chat_deliver_init(ngx_cycle_t *cycle);
void ngx_chat_deliver_exit(void);

/*
 * A durable message, its frame's text (chat_frame.h): into the
 * recipient's inbox and out to its routes, and to the sender's other
 * connections (ws: the sending one, or NULL).
 */
void ngx_chat_deliver_message(uint64_t from, uint64_t to, const char *id,
    int64_t seq, const char *conv, const char *text, size_t len,
    ngx_chat_ws_t *ws);

/*
 * A message to the user was given up: its inbox is not complete, whatever
 * Redis's marker says (it is being deleted).
 */
ngx_uint_t ngx_chat_deliver_lost(uint64_t user_id);


#endif /* _NGX_CHAT_DELIVER_H_INCLUDED_ */
