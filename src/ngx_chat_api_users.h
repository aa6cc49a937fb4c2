
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_API_USERS_H_INCLUDED_
#define _NGX_CHAT_API_USERS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat_api_request.h"


ngx_int_t ngx_chat_api_register(ngx_chat_api_ctx_t *ctx);
ngx_int_t ngx_chat_api_login(ngx_chat_api_ctx_t *ctx);
ngx_int_t ngx_chat_api_logout(ngx_chat_api_ctx_t *ctx);
ngx_int_t ngx_chat_api_user_lookup(ngx_chat_api_ctx_t *ctx);


#endif /* _NGX_CHAT_API_USERS_H_INCLUDED_ */
