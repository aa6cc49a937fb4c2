
/*
 * Copyright (C) ngx_chat authors
 *
 * GET /v1/messages?with=<user id>|group=<gid>&before=<seq>&limit=<1..100>:
 * a page of a conversation's history, newest first, with next_before for
 * the next (older) page.  The query string is checked here
 * (chat_history_query_parse); everything else, membership included, is
 * one call of chat_history_json() (sql/0003_messages.sql), which answers
 * the JSON sent to the client.  Routed from the /v1 API
 * (ngx_chat_api.c), which has authenticated the caller.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_media.h"
#include "chat_query.h"


typedef struct {
    ngx_http_request_t        *request;
    ngx_chat_pg_query_t       *query;
} ngx_chat_history_t;


static void ngx_chat_history_done(ngx_chat_store_rc_e rc, PGresult *res,
    void *data);
static ngx_int_t ngx_chat_history_answer(ngx_chat_history_t *h,
    ngx_chat_store_rc_e rc, PGresult *res);
static void ngx_chat_history_cleanup(void *data);


/* NGX_DONE while the query runs; it finalizes the request itself */

ngx_int_t
ngx_chat_history(ngx_http_request_t *r, uint64_t user_id)
{
    u_char                *p;
    ngx_uint_t             i;
    ngx_str_t              params[5];
    const char            *err;
    ngx_pool_cleanup_t    *cln;
    ngx_chat_history_t    *h;
    chat_history_query_t   q;
    uint64_t               v[4];

    if (chat_history_query_parse((char *) r->args.data, r->args.len, &q,
                                 &err)
        != 0)
    {
        return ngx_chat_http_error(r, NGX_HTTP_BAD_REQUEST, "bad_request",
                                   err);
    }

    /* me, peer, group, before (0: SQL NULL), limit */
    v[0] = user_id;
    v[1] = q.with;
    v[2] = q.group;
    v[3] = q.before;

    p = ngx_pnalloc(r->pool, 5 * NGX_INT64_LEN);
    h = ngx_pcalloc(r->pool, sizeof(ngx_chat_history_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);

    if (p == NULL || h == NULL || cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < 4; i++) {
        if (v[i] == 0) {
            ngx_str_null(&params[i]);
            continue;
        }

        params[i].data = p;
        p = ngx_sprintf(p, "%uL", v[i]);
        params[i].len = p - params[i].data;
    }

    params[4].data = p;
    p = ngx_sprintf(p, "%ui", (ngx_uint_t) q.limit);
    params[4].len = p - params[4].data;

    h->request = r;
    cln->handler = ngx_chat_history_cleanup;
    cln->data = h;

    h->query = ngx_chat_pg_query(ngx_chat_worker->pg,
                                 "SELECT chat_history_json($1::bigint, "
                                 "$2::bigint, $3::bigint, $4::bigint, "
                                 "$5::int)", 5, params,
                                 ngx_chat_history_done, h);
    if (h->query == NULL) {
        return ngx_chat_http_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "unavailable", "the database is down");
    }

    return NGX_DONE;
}


static void
ngx_chat_history_done(ngx_chat_store_rc_e rc, PGresult *res, void *data)
{
    ngx_chat_history_t  *h = data;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    h->query = NULL;
    r = h->request;
    c = r->connection;

    ngx_http_finalize_request(r, ngx_chat_history_answer(h, rc, res));

    /* completions come from backend events, not the request's handlers */
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_chat_history_answer(ngx_chat_history_t *h, ngx_chat_store_rc_e rc,
    PGresult *res)
{
    u_char              *text;
    size_t               len;
    ngx_str_t            page;
    const char          *state;
    ngx_http_request_t  *r = h->request;

    switch (rc) {

    case NGX_CHAT_STORE_OK:
        break;

    case NGX_CHAT_STORE_FAILED:
        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "chat: history: SQLSTATE %s", state ? state : "-");

        return ngx_chat_http_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "internal", "database error");

    default:
        return ngx_chat_http_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "unavailable",
                                   rc == NGX_CHAT_STORE_TIMEOUT
                                   ? "the database did not answer"
                                   : "the database is down");
    }

    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return ngx_chat_http_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                   "internal", "database error");
    }

    text = (u_char *) PQgetvalue(res, 0, 0);
    len = PQgetlength(res, 0, 0);

    /* a refusal of the function: {"error":"forbidden"|"not_found",...} */
    if (len > 8 && ngx_strncmp(text, "{\"error\"", 8) == 0) {
        return ngx_chat_http_send_text(r, ngx_strstr(text, "\"forbidden\"")
                                          ? NGX_HTTP_FORBIDDEN
                                          : NGX_HTTP_NOT_FOUND,
                                       text, len);
    }

    /* messages with an image get a fresh signed URL */
    if (ngx_chat_media_urls(r->pool, text, len, &page) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_chat_http_send_text(r, NGX_HTTP_OK, page.data, page.len);
}


static void
ngx_chat_history_cleanup(void *data)
{
    ngx_chat_history_t  *h = data;

    if (h->query) {
        ngx_chat_pg_cancel(h->query);
        h->query = NULL;
    }
}
