
/*
 * Copyright (C) ngx_chat authors
 *
 * Messages: GET /v1/messages, the history (ngx_chat_history.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat_api_messages.h"


/* GET /v1/messages: in ngx_chat_history.c */

ngx_int_t
ngx_chat_api_messages(ngx_chat_api_ctx_t *ctx)
{
    return ngx_chat_history(ctx->request, ctx->user_id);
}
