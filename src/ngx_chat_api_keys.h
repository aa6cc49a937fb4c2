
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_API_KEYS_H_INCLUDED_
#define _NGX_CHAT_API_KEYS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat_api_request.h"


ngx_int_t ngx_chat_api_key_put(ngx_chat_api_ctx_t *ctx);
ngx_int_t ngx_chat_api_key_get(ngx_chat_api_ctx_t *ctx);
ngx_int_t ngx_chat_api_device_put(ngx_chat_api_ctx_t *ctx);
ngx_int_t ngx_chat_api_device_delete(ngx_chat_api_ctx_t *ctx);


#endif /* _NGX_CHAT_API_KEYS_H_INCLUDED_ */
