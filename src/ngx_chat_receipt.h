
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_RECEIPT_H_INCLUDED_
#define _NGX_CHAT_RECEIPT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"


#define NGX_CHAT_RECEIPT_MAX_PENDING 1024  /* under way, per connection */


/* {"type":"receipt"} and {"type":"typing"} */
ngx_int_t ngx_chat_receipt(ngx_chat_ws_t *ws, chat_proto_msg_t *m);
ngx_int_t ngx_chat_typing(ngx_chat_ws_t *ws, chat_proto_msg_t *m);


#endif /* _NGX_CHAT_RECEIPT_H_INCLUDED_ */
