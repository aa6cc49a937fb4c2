
/*
 * Copyright (C) ngx_chat authors
 *
 * GET /v1/messages/{id}/receipts: who of a message's recipients has it
 * (delivered) or read it, for its sender.  One call of
 * chat_receipts_json() (sql/0008_groups.sql), which also decides who may
 * see what: a message of someone else is 403, no such message 404.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat_api_receipts.h"
#include "chat_id.h"


static ngx_int_t ngx_chat_api_receipts_done(ngx_chat_api_ctx_t *ctx,
    PGresult *res);


ngx_int_t
ngx_chat_api_receipts(ngx_chat_api_ctx_t *ctx)
{
    char              canon[CHAT_ID_LEN + 1];
    ngx_str_t        *params;
    chat_id_parts_t   parts;

    /*
     * Only an id in its canonical form (as the gateway makes them) can
     * name a message: anything else names none, like a path segment that
     * is not an id elsewhere in the API.
     */
    if (ctx->arg.len != CHAT_ID_LEN
        || chat_id_parse((char *) ctx->arg.data, ctx->arg.len, &parts) != 0)
    {
        return ngx_chat_api_error(ctx, NGX_HTTP_NOT_FOUND, "not_found",
                                  "no such message");
    }

    chat_id_format(&parts, canon);

    if (ngx_memcmp(canon, ctx->arg.data, CHAT_ID_LEN) != 0) {
        return ngx_chat_api_error(ctx, NGX_HTTP_NOT_FOUND, "not_found",
                                  "no such message");
    }

    params = ngx_chat_api_ids(ctx, 1);
    if (params == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[1] = ctx->arg;

    return ngx_chat_api_pg(ctx, "SELECT chat_receipts_json($1, $2)", 2,
                           params, ngx_chat_api_receipts_done);
}


/* {"error":"forbidden"|"not_found",...} from the function is a refusal */

static ngx_int_t
ngx_chat_api_receipts_done(ngx_chat_api_ctx_t *ctx, PGresult *res)
{
    const char  *text;

    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        text = PQgetvalue(res, 0, 0);

        if (ngx_strncmp(text, "{\"error\"", 8) == 0) {
            return ngx_chat_http_send_text(ctx->request,
                                           ngx_strstr(text, "\"forbidden\"")
                                           ? NGX_HTTP_FORBIDDEN
                                           : NGX_HTTP_NOT_FOUND,
                                           (u_char *) text,
                                           PQgetlength(res, 0, 0));
        }
    }

    return ngx_chat_api_json_result(ctx, res, NGX_HTTP_OK);
}
