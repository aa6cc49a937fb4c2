
/*
 * Copyright (C) ngx_chat authors
 *
 * The HTTP API's request plumbing, shared by the router (ngx_chat_api.c)
 * and the files of the resource families (ngx_chat_api_*.c): the
 * request's state, the JSON body, JSON answers and errors, and the
 * PostgreSQL calls.  Each multi-step operation is one SQL function call
 * (sql/0002_accounts.sql), so every request makes at most one round trip
 * per step and no transaction spans two events.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat_api_request.h"
#include "chat_json.h"


#define NGX_CHAT_API_JSON_DEPTH  8


static u_char *ngx_chat_api_body_text(ngx_chat_api_ctx_t *ctx, size_t *len);
static void ngx_chat_api_pg_handler(ngx_chat_store_rc_e rc, PGresult *res,
    void *data);


void
ngx_chat_api_body_handler(ngx_http_request_t *r)
{
    char                 err[128];
    u_char              *text;
    size_t               len;
    ngx_chat_ctx_t      *mctx;
    ngx_chat_api_ctx_t  *ctx;

    mctx = ngx_http_get_module_ctx(r, ngx_http_chat_module);
    ctx = mctx->api;

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        ngx_chat_api_finish(ctx, ngx_chat_api_error(ctx, NGX_HTTP_BAD_REQUEST,
                                        "bad_request", "a JSON body is "
                                        "required"));
        return;
    }

    text = ngx_chat_api_body_text(ctx, &len);

    if (text == NULL) {
        ngx_chat_api_finish(ctx, len ? ngx_chat_api_error(ctx,
                                        NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                        "too_large",
                                        "request body too large")
                                     : NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->body = chat_json_parse_object((char *) text, len,
                                       NGX_CHAT_API_JSON_DEPTH, err,
                                       sizeof(err));
    if (ctx->body == NULL) {
        ngx_chat_api_finish(ctx, ngx_chat_api_error(ctx, NGX_HTTP_BAD_REQUEST,
                                                    "bad_request", err));
        return;
    }

    ngx_chat_api_finish(ctx, ngx_chat_api_run(ctx));
}


/*
 * The body in one piece, however nginx received it (several buffers, or a
 * temporary file when it is over client_body_buffer_size).  NULL with *len
 * set: over chat_api_max_body; NULL with *len 0: an error.
 */

static u_char *
ngx_chat_api_body_text(ngx_chat_api_ctx_t *ctx, size_t *len)
{
    u_char              *text, *p;
    off_t                size;
    ssize_t              n;
    ngx_buf_t           *b;
    ngx_chain_t         *cl;
    ngx_http_request_t  *r = ctx->request;

    size = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }

    if (size > (off_t) ctx->conf->api_max_body) {
        *len = (size_t) size;
        return NULL;
    }

    *len = 0;

    text = ngx_pnalloc(r->pool, (size_t) size + 1);
    if (text == NULL) {
        return NULL;
    }

    p = text;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            /* chunked bodies end with an empty buffer, pos maybe NULL */
            if (b->last > b->pos) {
                p = ngx_cpymem(p, b->pos, b->last - b->pos);
            }

            continue;
        }

        /* a small file nginx has just written: in the page cache */
        n = ngx_read_file(b->file, p, (size_t) (b->file_last - b->file_pos),
                          b->file_pos);
        if (n != b->file_last - b->file_pos) {
            return NULL;
        }

        p += n;
    }

    *len = p - text;

    return text;
}


ngx_int_t
ngx_chat_api_run(ngx_chat_api_ctx_t *ctx)
{
    return ctx->route->handler(ctx);
}


/* NGX_DONE: a step is under way and will come back here */

void
ngx_chat_api_finish(ngx_chat_api_ctx_t *ctx, ngx_int_t rc)
{
    ngx_connection_t  *c;

    if (rc == NGX_DONE) {
        return;
    }

    c = ctx->request->connection;

    ngx_http_finalize_request(ctx->request, rc);

    /* completions come from backend events, not the request's handlers */
    ngx_http_run_posted_requests(c);
}


void
ngx_chat_api_cleanup(void *data)
{
    ngx_chat_api_ctx_t  *ctx = data;

    if (ctx->query) {
        ngx_chat_pg_cancel(ctx->query);
        ctx->query = NULL;
    }

    if (ctx->redis) {
        ngx_chat_redis_cancel(ctx->redis);
        ctx->redis = NULL;
    }

    if (ctx->lookup) {
        ngx_chat_presence_lookup_cancel(ctx->lookup);
        ctx->lookup = NULL;
    }

    if (ctx->pw) {
        ngx_chat_password_cancel(ctx->pw);
        ctx->pw = NULL;
    }

    if (ctx->body) {
        json_decref(ctx->body);
        ctx->body = NULL;
    }

    if (ctx->answer) {
        json_decref(ctx->answer);
        ctx->answer = NULL;
    }
}


ngx_int_t
ngx_chat_api_error(ngx_chat_api_ctx_t *ctx, ngx_uint_t status,
    const char *code, const char *message)
{
    return ngx_chat_http_error(ctx->request, status, code, message);
}


ngx_int_t
ngx_chat_api_pg(ngx_chat_api_ctx_t *ctx, const char *sql,
    ngx_uint_t nparams, ngx_str_t *params, ngx_chat_api_pg_next_pt next)
{
    ctx->pg_next = next;
    ctx->query = ngx_chat_pg_query(ngx_chat_worker->pg, sql, nparams, params,
                                   ngx_chat_api_pg_handler, ctx);

    if (ctx->query == NULL) {
        return ngx_chat_api_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "unavailable", "the database is down");
    }

    return NGX_DONE;
}


/* a query whose parameters are the caller's id (with_user) and the path's */

ngx_int_t
ngx_chat_api_call(ngx_chat_api_ctx_t *ctx, const char *sql,
    ngx_uint_t with_user, ngx_chat_api_pg_next_pt next)
{
    ngx_str_t  *params;

    params = ngx_chat_api_ids(ctx, with_user);
    if (params == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_chat_api_pg(ctx, sql, ctx->nids + (with_user ? 1 : 0), params,
                           next);
}


static void
ngx_chat_api_pg_handler(ngx_chat_store_rc_e rc, PGresult *res, void *data)
{
    ngx_chat_api_ctx_t  *ctx = data;
    const char          *state;

    ctx->query = NULL;

    switch (rc) {

    case NGX_CHAT_STORE_OK:
        ngx_chat_api_finish(ctx, ctx->pg_next(ctx, res));
        return;

    case NGX_CHAT_STORE_FAILED:
        state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

        /* a CHECK constraint or a bad value: input the handler let by */
        if (state && (ngx_strcmp(state, "23514") == 0
                      || ngx_strncmp(state, "22", 2) == 0))
        {
            ngx_chat_api_finish(ctx, ngx_chat_api_error(ctx,
                                        NGX_HTTP_BAD_REQUEST, "bad_request",
                                        "invalid value"));
            return;
        }

        /* a row of the caller's that cannot be written: account gone */
        if (state && ngx_strcmp(state, "23503") == 0) {
            ngx_chat_api_finish(ctx, ngx_chat_api_error(ctx,
                                        NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                        "no such user"));
            return;
        }

        if (state && ngx_strcmp(state, "23505") == 0) {
            ngx_chat_api_finish(ctx, ngx_chat_api_error(ctx,
                                        NGX_HTTP_CONFLICT, "conflict",
                                        "already exists"));
            return;
        }

        ngx_chat_api_finish(ctx, ngx_chat_api_error(ctx,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "internal", "database error"));
        return;

    default:
        ngx_chat_api_finish(ctx, ngx_chat_api_error(ctx,
                                        NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "unavailable",
                                        rc == NGX_CHAT_STORE_TIMEOUT
                                        ? "the database did not answer"
                                        : "the database is down"));
        return;
    }
}


/*
 * The SQL functions answer with JSON: NULL means "no such thing", an
 * object with "error" a refusal, anything else the answer itself.
 */

ngx_int_t
ngx_chat_api_json_result(ngx_chat_api_ctx_t *ctx, PGresult *res,
    ngx_uint_t status)
{
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return ngx_chat_api_error(ctx, NGX_HTTP_NOT_FOUND, "not_found",
                                  "no such resource");
    }

    return ngx_chat_http_send_text(ctx->request, status,
                                   (u_char *) PQgetvalue(res, 0, 0),
                                   PQgetlength(res, 0, 0));
}


/* the ids of the path as SQL parameters, after the caller's own */

ngx_str_t *
ngx_chat_api_ids(ngx_chat_api_ctx_t *ctx, ngx_uint_t with_user)
{
    u_char      *p;
    ngx_str_t   *params;
    ngx_uint_t   i, n;

    n = ctx->nids + (with_user ? 1 : 0);

    params = ngx_palloc(ctx->request->pool, (n + 2) * sizeof(ngx_str_t));
    p = ngx_pnalloc(ctx->request->pool, n * NGX_INT64_LEN);

    if (params == NULL || p == NULL) {
        return NULL;
    }

    i = 0;

    if (with_user) {
        params[i].data = p;
        p = ngx_sprintf(p, "%uL", ctx->user_id);
        params[i].len = p - params[i].data;
        i++;
    }

    for (n = 0; n < ctx->nids; n++, i++) {
        params[i].data = p;
        p = ngx_sprintf(p, "%uL", ctx->id[n]);
        params[i].len = p - params[i].data;
    }

    return params;
}


/*
 * NGX_OK, NGX_DECLINED (absent and not required), or NGX_ERROR with the
 * reason in ctx->invalid for ngx_chat_api_invalid() to send.
 */

ngx_int_t
ngx_chat_api_get_string(ngx_chat_api_ctx_t *ctx, const char *key,
    ngx_uint_t required, size_t min, size_t max, ngx_str_t *out)
{
    int          rc;
    u_char      *last;
    size_t       len;
    const char  *s;

    rc = chat_json_get_string(ctx->body, key, &s, &len);

    if (rc == 1 && !required) {
        return NGX_DECLINED;
    }

    if (rc == 0 && len >= min && len <= max) {
        out->data = (u_char *) s;
        out->len = len;
        return NGX_OK;
    }

    last = ngx_snprintf(ctx->invalid, sizeof(ctx->invalid) - 1,
                        rc == 1 ? "\"%s\" is required"
                        : rc == -1 ? "\"%s\" must be a string"
                        : "\"%s\" must be %uz to %uz bytes long",
                        key, min, max);
    *last = '\0';

    return NGX_ERROR;
}


ngx_int_t
ngx_chat_api_invalid(ngx_chat_api_ctx_t *ctx)
{
    return ngx_chat_api_error(ctx, NGX_HTTP_BAD_REQUEST, "bad_request",
                              (char *) ctx->invalid);
}


/* sends a JSON answer made with json_pack() (NULL: out of memory) */

ngx_int_t
ngx_chat_api_reply(ngx_chat_api_ctx_t *ctx, ngx_uint_t status, json_t *json)
{
    ngx_int_t  rc;

    if (json == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_chat_http_send_json(ctx->request, status, json);
    json_decref(json);

    return rc;
}


ngx_int_t
ngx_chat_api_no_content(ngx_chat_api_ctx_t *ctx, PGresult *res)
{
    ngx_int_t            rc;
    ngx_http_request_t  *r = ctx->request;

    r->headers_out.status = NGX_HTTP_NO_CONTENT;
    r->headers_out.content_length_n = 0;
    r->header_only = 1;

    rc = ngx_http_send_header(r);

    return rc == NGX_ERROR ? NGX_ERROR : NGX_OK;
}
