
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_API_SEARCH_H_INCLUDED_
#define _NGX_CHAT_API_SEARCH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat_api_request.h"


ngx_int_t ngx_chat_api_search(ngx_chat_api_ctx_t *ctx);


#endif /* _NGX_CHAT_API_SEARCH_H_INCLUDED_ */
