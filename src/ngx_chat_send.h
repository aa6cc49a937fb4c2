
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_SEND_H_INCLUDED_
#define _NGX_CHAT_SEND_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"


/* {"type":"send"} to a durable ack; a closed connection's sends go on */
ngx_int_t ngx_chat_send(ngx_chat_ws_t *ws, chat_proto_msg_t *m);
void ngx_chat_send_orphan(ngx_chat_ws_t *ws);

/*
 * Does a user exist, as this worker remembers it: 1 yes, 0 no, -1 not
 * known (ask PostgreSQL, then ngx_chat_user_remember()).  Bounded, per
 * worker; "no" is remembered shortly.
 */
ngx_int_t ngx_chat_user_known(uint64_t user_id);
void ngx_chat_user_remember(uint64_t user_id, ngx_uint_t exists);


#endif /* _NGX_CHAT_SEND_H_INCLUDED_ */
