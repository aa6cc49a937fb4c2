
/*
 * Copyright (C) ngx_chat authors
 *
 * GET /v1/search?q=<words>|tokens=<t1,t2>&limit=&before=: the caller's
 * messages that match, ranked (relevance, then newest first), a page at a
 * time.  The query string is checked here (chat_search_query_parse: 400
 * for an empty or over-long query, bad tokens, a bad cursor); who may
 * find what, the ranking, snippets and the next cursor are one call of
 * chat_search_json() (sql/0013_search_api.sql) over the index that
 * chat-worker index writes.  Messages with an image get a fresh signed
 * URL, as in the history.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat_api_search.h"
#include "ngx_chat_media.h"
#include "chat_search_query.h"


#define NGX_CHAT_SEARCH_SQL                                                   \
    "SELECT chat_search_json($1::bigint, $2::text, $3::text[], $4::int, "     \
    "$5::real, $6::bigint, $7::text, $8::bigint)"


static ngx_int_t ngx_chat_api_search_done(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static void ngx_chat_api_search_param(ngx_str_t *param, char *s,
    size_t len);


ngx_int_t
ngx_chat_api_search(ngx_chat_api_ctx_t *ctx)
{
    u_char               *p;
    ngx_str_t            *params;
    const char           *err;
    ngx_http_request_t   *r = ctx->request;
    chat_search_query_t  *q;

    q = ngx_palloc(r->pool, sizeof(chat_search_query_t));
    params = ngx_pcalloc(r->pool, 8 * sizeof(ngx_str_t));
    p = ngx_pnalloc(r->pool, 2 * NGX_INT64_LEN);

    if (q == NULL || params == NULL || p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (chat_search_query_parse((char *) r->args.data, r->args.len, q, &err)
        != 0)
    {
        return ngx_chat_api_error(ctx, NGX_HTTP_BAD_REQUEST, "bad_request",
                                  err);
    }

    /* me, q, tokens, limit, and the cursor's rank, ts, conv, seq */
    params[0].data = p;
    p = ngx_sprintf(p, "%uL", ctx->user_id);
    params[0].len = p - params[0].data;

    if (q->q_len) {
        ngx_chat_api_search_param(&params[1], q->q, q->q_len);

    } else {
        ngx_chat_api_search_param(&params[2], q->tokens,
                                  ngx_strlen(q->tokens));
    }

    params[3].data = p;
    p = ngx_sprintf(p, "%ui", (ngx_uint_t) q->limit);
    params[3].len = p - params[3].data;

    if (q->has_cursor) {
        ngx_chat_api_search_param(&params[4], q->rank, ngx_strlen(q->rank));
        ngx_chat_api_search_param(&params[5], q->ts, ngx_strlen(q->ts));
        ngx_chat_api_search_param(&params[6], q->conv, ngx_strlen(q->conv));
        ngx_chat_api_search_param(&params[7], q->seq, ngx_strlen(q->seq));
    }

    return ngx_chat_api_pg(ctx, NGX_CHAT_SEARCH_SQL, 8, params,
                           ngx_chat_api_search_done);
}


/* ngx_str_null for the ones not set: SQL NULL */

static void
ngx_chat_api_search_param(ngx_str_t *param, char *s, size_t len)
{
    param->data = (u_char *) s;
    param->len = len;
}


static ngx_int_t
ngx_chat_api_search_done(ngx_chat_api_ctx_t *ctx, PGresult *res)
{
    u_char     *text;
    size_t      len;
    ngx_str_t   page;

    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return ngx_chat_api_error(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  "internal", "database error");
    }

    text = (u_char *) PQgetvalue(res, 0, 0);
    len = PQgetlength(res, 0, 0);

    /* messages with an image get a fresh signed URL */
    if (ngx_chat_media_urls(ctx->request->pool, text, len, &page) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_chat_http_send_text(ctx->request, NGX_HTTP_OK, page.data,
                                   page.len);
}
