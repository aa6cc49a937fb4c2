
/*
 * Copyright (C) ngx_chat authors
 *
 * The HTTP API under /v1 (accounts, sessions, friends, groups, keys,
 * devices): a small router, JSON request bodies with limits, and handlers
 * that call PostgreSQL through the worker's pool.  Each multi-step
 * operation is one SQL function call (sql/0002_accounts.sql), so every
 * request makes at most one round trip per step and no transaction spans
 * two events.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <sodium.h>

#include "ngx_chat.h"
#include "ngx_chat_password.h"
#include "chat_json.h"
#include "chat_jwt.h"
#include "ngx_chat_deliver.h"


#define NGX_CHAT_API_JSON_DEPTH  8
#define NGX_CHAT_API_MAX_IDS     2

/* attempts per username from all addresses: this many times the limit */
#define NGX_CHAT_LOGIN_CEILING   10


typedef struct ngx_chat_api_ctx_s  ngx_chat_api_ctx_t;

typedef ngx_int_t (*ngx_chat_api_handler_pt)(ngx_chat_api_ctx_t *ctx);
typedef ngx_int_t (*ngx_chat_api_pg_next_pt)(ngx_chat_api_ctx_t *ctx,
    PGresult *res);


typedef struct {
    ngx_uint_t                 method;
    const char                *path;       /* '#': an id, '*': a string */
    unsigned                   auth:1;
    unsigned                   body:1;
    ngx_chat_api_handler_pt    handler;
} ngx_chat_api_route_t;


struct ngx_chat_api_ctx_s {
    ngx_http_request_t        *request;
    ngx_chat_main_conf_t      *conf;
    const ngx_chat_api_route_t *route;
    uint64_t                   user_id;
    uint64_t                   id[NGX_CHAT_API_MAX_IDS];
    ngx_uint_t                 nids;
    ngx_str_t                  arg;
    json_t                    *body;

    ngx_chat_pg_query_t       *query;
    ngx_chat_api_pg_next_pt    pg_next;
    ngx_chat_redis_cmd_t      *redis;
    ngx_chat_presence_lookup_t *lookup;
    ngx_chat_password_t       *pw;         /* a hash in a thread */
    json_t                    *answer;      /* waits for presence */

    /* POST /v1/sessions, POST /v1/users */
    ngx_str_t                  username;
    ngx_str_t                  password;
    ngx_str_t                  display_name;
    ngx_str_t                  hash;
    ngx_str_t                  fail_key;     /* per username and address */
    ngx_str_t                  user_key;     /* per username */
    ngx_str_t                  slow_key;     /* over the ceiling: paced */

    u_char                     invalid[128];
};


static ngx_int_t ngx_chat_api_handler(ngx_http_request_t *r);
static const ngx_chat_api_route_t *ngx_chat_api_route(ngx_chat_api_ctx_t *ctx,
    ngx_uint_t *allowed);
static void ngx_chat_api_body_handler(ngx_http_request_t *r);
static u_char *ngx_chat_api_body_text(ngx_chat_api_ctx_t *ctx, size_t *len);
static ngx_int_t ngx_chat_api_allow(ngx_http_request_t *r,
    ngx_uint_t methods);
static ngx_int_t ngx_chat_api_run(ngx_chat_api_ctx_t *ctx);
static void ngx_chat_api_finish(ngx_chat_api_ctx_t *ctx, ngx_int_t rc);
static void ngx_chat_api_cleanup(void *data);
static ngx_int_t ngx_chat_api_pg(ngx_chat_api_ctx_t *ctx, const char *sql,
    ngx_uint_t nparams, ngx_str_t *params, ngx_chat_api_pg_next_pt next);
static ngx_int_t ngx_chat_api_call(ngx_chat_api_ctx_t *ctx, const char *sql,
    ngx_uint_t with_user, ngx_chat_api_pg_next_pt next);
static void ngx_chat_api_pg_handler(ngx_chat_store_rc_e rc, PGresult *res,
    void *data);
static ngx_int_t ngx_chat_api_error(ngx_chat_api_ctx_t *ctx,
    ngx_uint_t status, const char *code, const char *message);
static ngx_int_t ngx_chat_api_json_result(ngx_chat_api_ctx_t *ctx,
    PGresult *res, ngx_uint_t status);
static ngx_str_t *ngx_chat_api_ids(ngx_chat_api_ctx_t *ctx,
    ngx_uint_t with_user);
static ngx_int_t ngx_chat_api_get_string(ngx_chat_api_ctx_t *ctx,
    const char *key, ngx_uint_t required, size_t min, size_t max,
    ngx_str_t *out);
static ngx_int_t ngx_chat_api_invalid(ngx_chat_api_ctx_t *ctx);
static ngx_uint_t ngx_chat_api_username_ok(ngx_str_t *name);
static ngx_int_t ngx_chat_api_reply(ngx_chat_api_ctx_t *ctx,
    ngx_uint_t status, json_t *json);

static ngx_int_t ngx_chat_api_register(ngx_chat_api_ctx_t *ctx);
static void ngx_chat_api_register_hashed(ngx_int_t rc, ngx_str_t *hash,
    void *data);
static ngx_int_t ngx_chat_api_register_done(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_api_login(ngx_chat_api_ctx_t *ctx);
static void ngx_chat_api_login_reserved(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static ngx_int_t ngx_chat_api_login_refuse(ngx_chat_api_ctx_t *ctx,
    long long ms);
static ngx_int_t ngx_chat_api_login_lookup(ngx_chat_api_ctx_t *ctx);
static ngx_int_t ngx_chat_api_login_user(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static void ngx_chat_api_login_verified(ngx_int_t rc, ngx_str_t *hash,
    void *data);
static ngx_int_t ngx_chat_api_login_token(ngx_chat_api_ctx_t *ctx);
static ngx_int_t ngx_chat_api_logout(ngx_chat_api_ctx_t *ctx);
static void ngx_chat_api_logout_done(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static ngx_int_t ngx_chat_api_me(ngx_chat_api_ctx_t *ctx);
static ngx_int_t ngx_chat_api_me_done(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_api_friend_put(ngx_chat_api_ctx_t *ctx);
static ngx_int_t ngx_chat_api_friend_put_done(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_api_friend_delete(ngx_chat_api_ctx_t *ctx);
static ngx_int_t ngx_chat_api_no_content(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_api_friends(ngx_chat_api_ctx_t *ctx);
static ngx_int_t ngx_chat_api_group_create(ngx_chat_api_ctx_t *ctx);
static ngx_int_t ngx_chat_api_group_created(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_api_group_get(ngx_chat_api_ctx_t *ctx);
static ngx_int_t ngx_chat_api_group_got(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_api_member_put(ngx_chat_api_ctx_t *ctx);
static ngx_int_t ngx_chat_api_member_delete(ngx_chat_api_ctx_t *ctx);
static ngx_int_t ngx_chat_api_member_done(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_api_key_put(ngx_chat_api_ctx_t *ctx);
static ngx_int_t ngx_chat_api_key_get(ngx_chat_api_ctx_t *ctx);
static ngx_int_t ngx_chat_api_key_got(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_api_device_put(ngx_chat_api_ctx_t *ctx);
static ngx_int_t ngx_chat_api_device_put_done(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_api_device_delete(ngx_chat_api_ctx_t *ctx);
static ngx_int_t ngx_chat_api_device_token(ngx_chat_api_ctx_t *ctx,
    ngx_str_t *token);
static ngx_int_t ngx_chat_api_friends_got(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_api_presence_get(ngx_chat_api_ctx_t *ctx);
static ngx_int_t ngx_chat_api_presence_got(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_api_presence_ask(ngx_chat_api_ctx_t *ctx,
    json_t *answer, json_t *users);
static void ngx_chat_api_presence_looked(void *data,
    ngx_chat_presence_lookup_t *lk);
static void ngx_chat_api_presence_fill(json_t *users,
    ngx_chat_presence_lookup_t *lk);
static ngx_int_t ngx_chat_api_presence_send(ngx_chat_api_ctx_t *ctx,
    json_t *answer);
static ngx_int_t ngx_chat_api_messages(ngx_chat_api_ctx_t *ctx);


static const ngx_chat_api_route_t  ngx_chat_api_routes[] = {

    { NGX_HTTP_POST, "/v1/users", 0, 1, ngx_chat_api_register },
    { NGX_HTTP_POST, "/v1/sessions", 0, 1, ngx_chat_api_login },
    { NGX_HTTP_DELETE, "/v1/sessions/current", 1, 0, ngx_chat_api_logout },
    { NGX_HTTP_GET, "/v1/me", 1, 0, ngx_chat_api_me },
    { NGX_HTTP_GET, "/v1/friends", 1, 0, ngx_chat_api_friends },
    { NGX_HTTP_PUT, "/v1/friends/#", 1, 0, ngx_chat_api_friend_put },
    { NGX_HTTP_DELETE, "/v1/friends/#", 1, 0, ngx_chat_api_friend_delete },
    { NGX_HTTP_POST, "/v1/groups", 1, 1, ngx_chat_api_group_create },
    { NGX_HTTP_GET, "/v1/groups/#", 1, 0, ngx_chat_api_group_get },
    { NGX_HTTP_PUT, "/v1/groups/#/members/#", 1, 0,
      ngx_chat_api_member_put },
    { NGX_HTTP_DELETE, "/v1/groups/#/members/#", 1, 0,
      ngx_chat_api_member_delete },
    { NGX_HTTP_PUT, "/v1/keys", 1, 1, ngx_chat_api_key_put },
    { NGX_HTTP_GET, "/v1/users/#/keys", 1, 0, ngx_chat_api_key_get },
    { NGX_HTTP_GET, "/v1/users/#/presence", 1, 0,
      ngx_chat_api_presence_get },
    { NGX_HTTP_PUT, "/v1/devices/*", 1, 1, ngx_chat_api_device_put },
    { NGX_HTTP_DELETE, "/v1/devices/*", 1, 0, ngx_chat_api_device_delete },
    { NGX_HTTP_GET, "/v1/messages", 1, 0, ngx_chat_api_messages },
    { 0, NULL, 0, 0, NULL }
};


char *
ngx_chat_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_loc_conf_t *lcf = conf;

    ngx_http_core_loc_conf_t  *clcf;
    ngx_chat_main_conf_t      *cmcf;

    /* tokens here are looked up in the deny-list (logout) */
    lcf->api = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_chat_api_handler;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_chat_module);
    cmcf->api = 1;
    cmcf->enabled = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_chat_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_uint_t                   allowed;
    const char                  *reason;
    ngx_chat_ctx_t              *mctx;
    ngx_pool_cleanup_t          *cln;
    ngx_chat_api_ctx_t          *ctx;
    const ngx_chat_api_route_t  *route;

    mctx = ngx_chat_get_ctx(r);
    if (mctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_chat_api_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->conf = ngx_http_get_module_main_conf(r, ngx_http_chat_module);
    mctx->api = ctx;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_chat_api_cleanup;
    cln->data = ctx;

    route = ngx_chat_api_route(ctx, &allowed);

    if (route == NULL) {
        if (ngx_chat_http_discard_body(r, &rc) != NGX_OK) {
            return rc;
        }

        if (allowed) {
            if (ngx_chat_api_allow(r, allowed) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            return ngx_chat_http_error(r, NGX_HTTP_NOT_ALLOWED,
                                       "method_not_allowed",
                                       "this method is not allowed here");
        }

        return ngx_chat_http_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                   "no such resource");
    }

    ctx->route = route;

    /* the route decides, whatever chat_auth says for the location */
    if (route->auth
        && ngx_chat_auth_user(r, &ctx->user_id, &reason) != NGX_OK)
    {
        if (ngx_chat_http_discard_body(r, &rc) != NGX_OK) {
            return rc;
        }

        return ngx_chat_auth_refuse(r, reason);
    }

    if (ngx_chat_worker == NULL || ngx_chat_worker->pg == NULL) {
        if (ngx_chat_http_discard_body(r, &rc) != NGX_OK) {
            return rc;
        }

        return ngx_chat_http_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "unavailable",
                                   "no database is configured");
    }

    if (!route->body) {
        if (ngx_chat_http_discard_body(r, &rc) != NGX_OK) {
            return rc;
        }

        r->main->count++;
        ngx_chat_api_finish(ctx, ngx_chat_api_run(ctx));

        return NGX_DONE;
    }

    if (r->headers_in.content_length_n > (off_t) ctx->conf->api_max_body) {
        if (ngx_chat_http_discard_body(r, &rc) != NGX_OK) {
            return rc;
        }

        return ngx_chat_http_error(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                   "too_large", "request body too large");
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r, ngx_chat_api_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return ngx_chat_http_status_error(r, rc);
    }

    return NGX_DONE;
}


/* matches the path segment by segment; "#" takes a positive integer id */

static const ngx_chat_api_route_t *
ngx_chat_api_route(ngx_chat_api_ctx_t *ctx, ngx_uint_t *allowed)
{
    u_char                      *p, *last, *s;
    uint64_t                     id;
    const char                  *pat;
    ngx_uint_t                   i, nids, match;
    ngx_http_request_t          *r = ctx->request;
    const ngx_chat_api_route_t  *route;

    *allowed = 0;

    for (i = 0; ngx_chat_api_routes[i].path; i++) {
        route = &ngx_chat_api_routes[i];
        pat = route->path;
        p = r->uri.data;
        last = r->uri.data + r->uri.len;
        nids = 0;
        match = 1;

        while (*pat && match) {
            if (*pat == '#' || *pat == '*') {
                s = p;

                while (p < last && *p != '/') {
                    p++;
                }

                if (p == s) {
                    match = 0;
                    break;
                }

                if (*pat == '*') {
                    ctx->arg.data = s;
                    ctx->arg.len = p - s;

                } else {
                    /* digits only, no leading zero, at most 2^63 - 1 */
                    if (*s == '0' || p - s > 19) {
                        match = 0;
                        break;
                    }

                    for (id = 0; s < p; s++) {
                        if (*s < '0' || *s > '9') {
                            match = 0;
                            break;
                        }

                        id = id * 10 + (*s - '0');
                    }

                    if (!match || id > (uint64_t) INT64_MAX) {
                        match = 0;
                        break;
                    }

                    ctx->id[nids++] = id;
                }

                pat++;
                continue;
            }

            if (p == last || *p != (u_char) *pat) {
                match = 0;
                break;
            }

            p++;
            pat++;
        }

        if (!match || p != last) {
            continue;
        }

        if (!(r->method & route->method)) {
            *allowed |= route->method;
            continue;
        }

        ctx->nids = nids;

        return route;
    }

    return NULL;
}


static void
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


/* RFC 9110: a 405 says which methods the resource has */

static ngx_int_t
ngx_chat_api_allow(ngx_http_request_t *r, ngx_uint_t methods)
{
    u_char           *p, *start;
    ngx_uint_t        i;
    ngx_table_elt_t  *h;

    static struct {
        ngx_uint_t   method;
        const char  *name;
    }  names[] = {
        { NGX_HTTP_GET, "GET" }, { NGX_HTTP_POST, "POST" },
        { NGX_HTTP_PUT, "PUT" }, { NGX_HTTP_DELETE, "DELETE" },
        { 0, NULL }
    };

    start = ngx_pnalloc(r->pool, sizeof("GET, POST, PUT, DELETE"));
    h = ngx_list_push(&r->headers_out.headers);

    if (start == NULL || h == NULL) {
        return NGX_ERROR;
    }

    p = start;

    for (i = 0; names[i].name; i++) {
        if (methods & names[i].method) {
            p = ngx_sprintf(p, "%s%s", p == start ? "" : ", ",
                            names[i].name);
        }
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Allow");
    h->value.data = start;
    h->value.len = p - start;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_chat_api_run(ngx_chat_api_ctx_t *ctx)
{
    return ctx->route->handler(ctx);
}


/* NGX_DONE: a step is under way and will come back here */

static void
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


static void
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


static ngx_int_t
ngx_chat_api_error(ngx_chat_api_ctx_t *ctx, ngx_uint_t status,
    const char *code, const char *message)
{
    return ngx_chat_http_error(ctx->request, status, code, message);
}


static ngx_int_t
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

static ngx_int_t
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

static ngx_int_t
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

static ngx_str_t *
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

static ngx_int_t
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


/* [a-z0-9_]{3,32} */

static ngx_uint_t
ngx_chat_api_username_ok(ngx_str_t *name)
{
    u_char      c;
    ngx_uint_t  i;

    if (name->len < 3 || name->len > 32) {
        return 0;
    }

    for (i = 0; i < name->len; i++) {
        c = name->data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
        {
            return 0;
        }
    }

    return 1;
}


/* sends a JSON answer made with json_pack() (NULL: out of memory) */

static ngx_int_t
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


static ngx_int_t
ngx_chat_api_invalid(ngx_chat_api_ctx_t *ctx)
{
    return ngx_chat_api_error(ctx, NGX_HTTP_BAD_REQUEST, "bad_request",
                              (char *) ctx->invalid);
}


/* POST /v1/users */

static ngx_int_t
ngx_chat_api_register(ngx_chat_api_ctx_t *ctx)
{
    ngx_int_t  rc;

    rc = ngx_chat_api_get_string(ctx, "username", 1, 3, 32, &ctx->username);
    if (rc != NGX_OK) {
        return ngx_chat_api_invalid(ctx);
    }

    if (!ngx_chat_api_username_ok(&ctx->username)) {
        return ngx_chat_api_error(ctx, NGX_HTTP_BAD_REQUEST, "bad_request",
                                  "\"username\" must match "
                                  "[a-z0-9_]{3,32}");
    }

    rc = ngx_chat_api_get_string(ctx, "password", 1, NGX_CHAT_PASSWORD_MIN,
                                 NGX_CHAT_PASSWORD_MAX, &ctx->password);
    if (rc != NGX_OK) {
        return ngx_chat_api_invalid(ctx);
    }

    rc = ngx_chat_api_get_string(ctx, "display_name", 0, 1, 64,
                                 &ctx->display_name);
    if (rc == NGX_DECLINED) {
        ctx->display_name = ctx->username;

    } else if (rc != NGX_OK) {
        return ngx_chat_api_invalid(ctx);
    }

    ctx->pw = ngx_chat_password_start(ctx->request, &ctx->password, NULL,
                                      ngx_chat_api_register_hashed, ctx);
    if (ctx->pw == NULL) {
        return ngx_chat_api_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "unavailable", "cannot hash the "
                                  "password now");
    }

    return NGX_DONE;
}


static void
ngx_chat_api_register_hashed(ngx_int_t rc, ngx_str_t *hash, void *data)
{
    ngx_chat_api_ctx_t  *ctx = data;
    ngx_str_t            params[3];

    ctx->pw = NULL;

    if (rc != NGX_OK) {
        ngx_chat_api_finish(ctx, ngx_chat_api_error(ctx,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "internal", "cannot hash the "
                                        "password"));
        return;
    }

    params[0] = ctx->username;
    params[1] = ctx->display_name;
    params[2] = *hash;

    ngx_chat_api_finish(ctx, ngx_chat_api_pg(ctx,
        "INSERT INTO users (username, display_name, password_hash) "
        "VALUES ($1, $2, $3) ON CONFLICT (username) DO NOTHING "
        "RETURNING id",
        3, params, ngx_chat_api_register_done));
}


static ngx_int_t
ngx_chat_api_register_done(ngx_chat_api_ctx_t *ctx, PGresult *res)
{
    off_t  id;

    if (PQntuples(res) == 0) {
        return ngx_chat_api_error(ctx, NGX_HTTP_CONFLICT, "username_taken",
                                  "this username is taken");
    }

    id = ngx_atoof((u_char *) PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0));

    return ngx_chat_api_reply(ctx, NGX_HTTP_CREATED,
                              json_pack("{s:I, s:s%}",
                                        "user_id", (json_int_t) id,
                                        "username",
                                        (char *) ctx->username.data,
                                        ctx->username.len));
}


/*
 * POST /v1/sessions: an attempt is reserved in Redis first
 * (chat_login_limit), then the stored hash is read, then checked in a
 * thread.  The reservation is one script, so that concurrent attempts
 * cannot all pass a count read before any of them is added to it.
 *
 * RESERVE  KEYS pair user slow   ARGV limit period ceiling
 *   pair: attempts for the username from this client address, at most
 *   "limit" per period, then refused until the period ends;
 *   user: attempts for the username from all addresses; over "ceiling"
 *   one attempt at a time is let through per pause ("slow" holds it),
 *   and the pause doubles with every "limit" more attempts, up to 64 s:
 *   others slow the owner down, but cannot lock the owner out.
 * {1, 0} reserved, or {0, ms to wait}.  A successful login gives its
 * attempt back.
 */

static const char  ngx_chat_lua_login_reserve[] =
    "local limit = tonumber(ARGV[1])\n"
    "local period = tonumber(ARGV[2])\n"
    "local ceiling = tonumber(ARGV[3])\n"
    "local function wait(key)\n"
    "  local t = redis.call('PTTL', key)\n"
    "  if t < 0 then t = period * 1000 end\n"
    "  return {0, t}\n"
    "end\n"
    "local n = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if n >= limit then return wait(KEYS[1]) end\n"
    "local u = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
    "if u >= ceiling then\n"
    "  local pause, over = 1000, math.floor((u - ceiling) / limit)\n"
    "  for i = 1, math.min(over, 6) do pause = pause * 2 end\n"
    "  if not redis.call('SET', KEYS[3], '1', 'PX', pause, 'NX') then\n"
    "    return wait(KEYS[3])\n"
    "  end\n"
    "end\n"
    "if redis.call('INCR', KEYS[1]) == 1 then\n"
    "  redis.call('EXPIRE', KEYS[1], period)\n"
    "end\n"
    "if redis.call('INCR', KEYS[2]) == 1 then\n"
    "  redis.call('EXPIRE', KEYS[2], period)\n"
    "end\n"
    "return {1, 0}\n";


static ngx_int_t
ngx_chat_api_login(ngx_chat_api_ctx_t *ctx)
{
    u_char            *p;
    ngx_int_t          rc;
    ngx_str_t         *addr;
    ngx_chat_redis_t  *rds;

    rc = ngx_chat_api_get_string(ctx, "username", 1, 1, 64, &ctx->username);
    if (rc != NGX_OK) {
        return ngx_chat_api_invalid(ctx);
    }

    rc = ngx_chat_api_get_string(ctx, "password", 1, 1,
                                 NGX_CHAT_PASSWORD_MAX, &ctx->password);
    if (rc != NGX_OK) {
        return ngx_chat_api_invalid(ctx);
    }

    if (ctx->conf->login_limit == 0) {
        return ngx_chat_api_login_lookup(ctx);
    }

    /*
     * One hash tag per user: every key of a user lives on one shard.  The
     * address is the client's as nginx sees it: behind an edge, the realip
     * module (set_real_ip_from, real_ip_header) must make it the client's.
     */
    addr = &ctx->request->connection->addr_text;

    p = ngx_pnalloc(ctx->request->pool, 3 * ctx->username.len + addr->len
                                        + 3 * sizeof("chat:loginslow:{}:"));
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->fail_key.data = p;
    p = ngx_sprintf(p, "chat:loginfail:{%V}:%V", &ctx->username, addr);
    ctx->fail_key.len = p - ctx->fail_key.data;

    ctx->user_key.data = p;
    p = ngx_sprintf(p, "chat:loginfail:{%V}", &ctx->username);
    ctx->user_key.len = p - ctx->user_key.data;

    ctx->slow_key.data = p;
    p = ngx_sprintf(p, "chat:loginslow:{%V}", &ctx->username);
    ctx->slow_key.len = p - ctx->slow_key.data;

    rds = ngx_chat_redis_for_key(ctx->username.data, ctx->username.len);

    if (rds) {
        ctx->redis = ngx_chat_redis_command(rds, ngx_chat_api_login_reserved,
                                            ctx, "EVAL %s 3 %b %b %b "
                                            "%lld %lld %lld",
                                            ngx_chat_lua_login_reserve,
                                            ctx->fail_key.data,
                                            ctx->fail_key.len,
                                            ctx->user_key.data,
                                            ctx->user_key.len,
                                            ctx->slow_key.data,
                                            ctx->slow_key.len,
                                            (long long)
                                                ctx->conf->login_limit,
                                            (long long)
                                                ctx->conf->login_period,
                                            (long long)
                                                (ctx->conf->login_limit
                                                 * NGX_CHAT_LOGIN_CEILING));
    }

    if (ctx->redis == NULL) {
        return ngx_chat_api_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "unavailable", "Redis is down");
    }

    return NGX_DONE;
}


static void
ngx_chat_api_login_reserved(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_api_ctx_t  *ctx = data;

    ctx->redis = NULL;

    if (rc != NGX_CHAT_STORE_OK || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_INTEGER)
    {
        ngx_chat_api_finish(ctx, ngx_chat_api_error(ctx,
                                        NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "unavailable", "Redis is down"));
        return;
    }

    if (reply->element[0]->integer != 1) {
        ngx_chat_api_finish(ctx, ngx_chat_api_login_refuse(ctx,
                                             reply->element[1]->integer));
        return;
    }

    ngx_chat_api_finish(ctx, ngx_chat_api_login_lookup(ctx));
}


/* 429 with Retry-After and "retry_after" in seconds, rounded up */

static ngx_int_t
ngx_chat_api_login_refuse(ngx_chat_api_ctx_t *ctx, long long ms)
{
    u_char           *p;
    json_int_t        secs;
    ngx_table_elt_t  *h;

    secs = ms > 0 ? (ms + 999) / 1000 : 1;

    /* a name that cannot exist is not written to the log: it is input */
    if (ngx_chat_api_username_ok(&ctx->username)) {
        ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                      "chat: login: too many attempts for \"%V\", "
                      "retry after %L s", &ctx->username, (int64_t) secs);
    }

    h = ngx_list_push(&ctx->request->headers_out.headers);
    p = ngx_pnalloc(ctx->request->pool, NGX_INT64_LEN);

    if (h == NULL || p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value.data = p;
    h->value.len = ngx_sprintf(p, "%L", (int64_t) secs) - p;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return ngx_chat_api_reply(ctx, NGX_HTTP_TOO_MANY_REQUESTS,
                              json_pack("{s:s, s:s, s:I}",
                                        "error", "rate_limited",
                                        "message", "too many failed "
                                        "logins, try again later",
                                        "retry_after", secs));
}


static ngx_int_t
ngx_chat_api_login_lookup(ngx_chat_api_ctx_t *ctx)
{
    return ngx_chat_api_pg(ctx,
                           "SELECT id, password_hash FROM users "
                           "WHERE username = $1",
                           1, &ctx->username, ngx_chat_api_login_user);
}


static ngx_int_t
ngx_chat_api_login_user(ngx_chat_api_ctx_t *ctx, PGresult *res)
{
    ngx_str_t  hash;

    ngx_str_null(&hash);

    if (PQntuples(res) == 1) {
        ctx->user_id = ngx_atoof((u_char *) PQgetvalue(res, 0, 0),
                                 PQgetlength(res, 0, 0));

        hash.len = PQgetlength(res, 0, 1);
        hash.data = ngx_pnalloc(ctx->request->pool, hash.len);
        if (hash.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_memcpy(hash.data, PQgetvalue(res, 0, 1), hash.len);
    }

    /* an unknown user costs the same time, then fails the same way */
    hash.data = hash.data ? hash.data : (u_char *) "";

    ctx->pw = ngx_chat_password_start(ctx->request, &ctx->password, &hash,
                                      ngx_chat_api_login_verified, ctx);
    if (ctx->pw == NULL) {
        return ngx_chat_api_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "unavailable", "cannot check the "
                                  "password now");
    }

    return NGX_DONE;
}


static void
ngx_chat_api_login_verified(ngx_int_t rc, ngx_str_t *hash, void *data)
{
    ngx_chat_api_ctx_t  *ctx = data;
    ngx_chat_redis_t    *rds;

    ctx->pw = NULL;

    if (rc == NGX_ERROR) {
        ngx_chat_api_finish(ctx, ngx_chat_api_error(ctx,
                                        NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "internal", "cannot check the "
                                        "password"));
        return;
    }

    if (rc == NGX_OK) {
        rds = ctx->fail_key.len
              ? ngx_chat_redis_for_key(ctx->username.data, ctx->username.len)
              : NULL;

        if (rds) {
            /*
             * This address's failures are forgotten, and the attempt is
             * not one against the username; the answers do not matter.
             */
            (void) ngx_chat_redis_command(rds, NULL, NULL, "DEL %b",
                                          ctx->fail_key.data,
                                          ctx->fail_key.len);
            (void) ngx_chat_redis_command(rds, NULL, NULL, "EVAL %s 1 %b",
                                          "if redis.call('DECR', KEYS[1]) "
                                          "<= 0 then redis.call('DEL', "
                                          "KEYS[1]) end",
                                          ctx->user_key.data,
                                          ctx->user_key.len);
        }

        ngx_chat_api_finish(ctx, ngx_chat_api_login_token(ctx));
        return;
    }

    /* a name that cannot exist is not written to the log: it is input */
    if (ngx_chat_api_username_ok(&ctx->username)) {
        ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                      "chat: login: bad credentials for \"%V\"",
                      &ctx->username);
    }

    /* the attempt was counted when it was reserved */
    ngx_chat_api_finish(ctx, ngx_chat_api_error(ctx, NGX_HTTP_UNAUTHORIZED,
                                                "invalid_credentials",
                                                "wrong username or "
                                                "password"));
}


static ngx_int_t
ngx_chat_api_login_token(ngx_chat_api_ctx_t *ctx)
{
    int        len;
    time_t     now, exp;
    u_char     id[16];
    char       token[512], jti[32];
    ngx_str_t  src, dst;

    now = ngx_time();
    exp = now + ctx->conf->jwt_ttl;

    /* a random id, so that logout can name this token and no other */
    randombytes_buf(id, sizeof(id));
    src.data = id;
    src.len = sizeof(id);
    dst.data = (u_char *) jti;
    ngx_encode_base64url(&dst, &src);
    jti[dst.len] = '\0';

    len = chat_jwt_sign_jti(ctx->conf->jwt_secret.data,
                            ctx->conf->jwt_secret.len, ctx->user_id, now,
                            exp, jti, token, sizeof(token));
    if (len < 0) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_chat_api_reply(ctx, NGX_HTTP_OK,
                              json_pack("{s:s%, s:I, s:I}",
                                        "token", token, (size_t) len,
                                        "user_id", (json_int_t) ctx->user_id,
                                        "expires_at",
                                        (json_int_t) exp * 1000));
}


/*
 * DELETE /v1/sessions/current: the token is denied on every node until it
 * expires (the key outlives it by a second: clocks), and its open
 * WebSockets, wherever they are, are told to close (1008).
 */

static ngx_int_t
ngx_chat_api_logout(ngx_chat_api_ctx_t *ctx)
{
    time_t             ttl;
    ngx_chat_ctx_t    *mctx;
    ngx_chat_redis_t  *rds;

    mctx = ngx_chat_get_ctx(ctx->request);

    rds = ngx_chat_redis_for_user(ctx->user_id);
    if (rds == NULL) {
        return ngx_chat_api_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "unavailable", "no Redis is configured: "
                                  "tokens cannot be revoked");
    }

    ttl = mctx->token_exp - ngx_time() + 1;

    ctx->redis = ngx_chat_redis_command(rds, ngx_chat_api_logout_done, ctx,
                                        "SET " NGX_CHAT_REVOKED_KEY " 1 EX "
                                        "%lld",
                                        (unsigned long long) ctx->user_id,
                                        mctx->token_id, mctx->token_id_len,
                                        (long long) (ttl > 0 ? ttl : 1));
    if (ctx->redis == NULL) {
        return ngx_chat_api_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "unavailable", "Redis is down");
    }

    return NGX_DONE;
}


static void
ngx_chat_api_logout_done(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_api_ctx_t  *ctx = data;

    u_char           *p;
    ngx_chat_ctx_t   *mctx;
    u_char            frame[sizeof(NGX_CHAT_REVOKE_FRAME)
                            + NGX_CHAT_TOKEN_ID_LEN];

    ctx->redis = NULL;

    if (rc != NGX_CHAT_STORE_OK || reply->type == REDIS_REPLY_ERROR) {
        ngx_chat_api_finish(ctx, ngx_chat_api_error(ctx,
                                        NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "unavailable", "Redis is down"));
        return;
    }

    mctx = ngx_chat_get_ctx(ctx->request);

    ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                  "chat: logout: user %uL", ctx->user_id);

    /* to every connection of the user, on every node: fire and forget */
    p = ngx_cpymem(frame, NGX_CHAT_REVOKE_FRAME,
                   sizeof(NGX_CHAT_REVOKE_FRAME) - 1);
    p = ngx_cpymem(p, mctx->token_id, mctx->token_id_len);

    (void) ngx_chat_relay(ctx->user_id, (char *) frame, p - frame, 0, 0,
                          NULL, NULL);

    ngx_chat_api_finish(ctx, ngx_chat_api_no_content(ctx, NULL));
}


/* GET /v1/me */

static ngx_int_t
ngx_chat_api_me(ngx_chat_api_ctx_t *ctx)
{
    return ngx_chat_api_call(ctx, "SELECT chat_me_json($1)", 1,
                             ngx_chat_api_me_done);
}


static ngx_int_t
ngx_chat_api_me_done(ngx_chat_api_ctx_t *ctx, PGresult *res)
{
    u_char              *p;
    json_t              *me;
    ngx_int_t            rc;
    ngx_str_t            host;
    ngx_http_request_t  *r = ctx->request;

    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        /* a valid token of an account that is gone */
        return ngx_chat_api_error(ctx, NGX_HTTP_UNAUTHORIZED,
                                  "unauthorized", "no such user");
    }

    me = json_loadb(PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0), 0, NULL);
    if (me == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the Host header as the client sent it, port included */
    if (r->headers_in.host && r->headers_in.host->value.len
        && chat_utf8_valid(r->headers_in.host->value.data,
                           r->headers_in.host->value.len) == 0)
    {
        host = r->headers_in.host->value;

    } else {
        ngx_str_set(&host, "localhost");
    }

    p = ngx_pnalloc(r->pool, host.len + sizeof("wss:///v1/ws"));
    if (p == NULL) {
        json_decref(me);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_sprintf(p, "%s://%V/v1/ws",
#if (NGX_HTTP_SSL)
                     r->connection->ssl ? "wss" : "ws",
#else
                     "ws",
#endif
                     &host) - p;

    (void) json_object_set_new(me, "ws_url", json_stringn((char *) p, rc));

    rc = ngx_chat_http_send_json(r, NGX_HTTP_OK, me);
    json_decref(me);

    return rc;
}


/* GET /v1/friends */

/*
 * GET /v1/friends: the list from PostgreSQL, "online" and "last_seen" of
 * the friends (not of requests either way) from Redis.
 */

static ngx_int_t
ngx_chat_api_friends(ngx_chat_api_ctx_t *ctx)
{
    return ngx_chat_api_call(ctx, "SELECT chat_friends_json($1)", 1,
                             ngx_chat_api_friends_got);
}


static ngx_int_t
ngx_chat_api_friends_got(ngx_chat_api_ctx_t *ctx, PGresult *res)
{
    json_t  *answer, *friends;

    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return ngx_chat_api_error(ctx, NGX_HTTP_NOT_FOUND, "not_found",
                                  "no such resource");
    }

    answer = json_loadb(PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0), 0,
                        NULL);
    friends = json_object_get(answer, "friends");

    if (!json_is_array(friends)) {
        json_decref(answer);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_chat_api_presence_ask(ctx, answer, friends);
}


/* GET /v1/users/{id}/presence: friends (and oneself) only */

static ngx_int_t
ngx_chat_api_presence_get(ngx_chat_api_ctx_t *ctx)
{
    return ngx_chat_api_call(ctx, "SELECT chat_presence_get($1, $2)", 1,
                             ngx_chat_api_presence_got);
}


static ngx_int_t
ngx_chat_api_presence_got(ngx_chat_api_ctx_t *ctx, PGresult *res)
{
    json_t  *answer, *users;

    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return ngx_chat_api_error(ctx, NGX_HTTP_NOT_FOUND, "not_found",
                                  "no such user");
    }

    answer = json_loadb(PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0), 0,
                        NULL);
    if (answer == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (json_object_get(answer, "error")) {
        json_decref(answer);
        return ngx_chat_api_error(ctx, NGX_HTTP_FORBIDDEN, "forbidden",
                                  "presence is for friends only");
    }

    users = json_array();
    if (users == NULL || json_array_append(users, answer) != 0) {
        json_decref(users);
        json_decref(answer);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json_decref(answer);

    return ngx_chat_api_presence_ask(ctx, users, users);
}


/*
 * users: objects with "user_id", "last_seen" (PostgreSQL's) and maybe
 * "state"; those who are friends (no "state", or "friends") get "online"
 * and the last_seen Redis knows.  The answer goes once Redis answered; if
 * it cannot be asked, with PostgreSQL's last_seen and "online": false.
 */

static ngx_int_t
ngx_chat_api_presence_ask(ngx_chat_api_ctx_t *ctx, json_t *answer,
    json_t *users)
{
    size_t       i, n;
    json_t      *u, *state;
    uint64_t    *ids;
    json_int_t   id;

    n = json_array_size(users);

    ids = ngx_palloc(ctx->request->pool, (n + 1) * sizeof(uint64_t));
    if (ids == NULL) {
        json_decref(answer);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < n; i++) {
        u = json_array_get(users, i);
        id = json_integer_value(json_object_get(u, "user_id"));
        state = json_object_get(u, "state");

        /* a request either way shows nothing of the other's presence */
        ids[i] = (state == NULL
                  || ngx_strcmp(json_string_value(state), "friends") == 0)
                 ? (uint64_t) id : 0;
    }

    ctx->answer = answer;

    if (n) {
        ctx->lookup = ngx_chat_presence_lookup(ids, n,
                                               ngx_chat_api_presence_looked,
                                               ctx);
        if (ctx->lookup) {
            return NGX_DONE;
        }
    }

    ctx->answer = NULL;
    ngx_chat_api_presence_fill(users, NULL);

    return ngx_chat_api_presence_send(ctx, answer);
}


/* an array is GET /v1/users/{id}/presence's: its one object goes */

static ngx_int_t
ngx_chat_api_presence_send(ngx_chat_api_ctx_t *ctx, json_t *answer)
{
    ngx_int_t  rc;

    rc = ngx_chat_http_send_json(ctx->request, NGX_HTTP_OK,
                                 json_is_array(answer)
                                 ? json_array_get(answer, 0) : answer);
    json_decref(answer);

    return rc;
}


static void
ngx_chat_api_presence_looked(void *data, ngx_chat_presence_lookup_t *lk)
{
    ngx_chat_api_ctx_t  *ctx = data;

    json_t  *answer, *users;

    ctx->lookup = NULL;
    answer = ctx->answer;
    ctx->answer = NULL;

    users = json_is_array(answer) ? answer
                                  : json_object_get(answer, "friends");

    ngx_chat_api_presence_fill(users, lk);

    ngx_chat_api_finish(ctx, ngx_chat_api_presence_send(ctx, answer));
}


static void
ngx_chat_api_presence_fill(json_t *users, ngx_chat_presence_lookup_t *lk)
{
    size_t       i, n;
    json_t      *u, *state;
    int64_t      beat, seen;

    n = json_array_size(users);

    for (i = 0; i < n; i++) {
        u = json_array_get(users, i);
        state = json_object_get(u, "state");

        if (state && ngx_strcmp(json_string_value(state), "friends") != 0) {
            (void) json_object_set_new(u, "online", json_false());
            (void) json_object_set_new(u, "last_seen", json_null());
            continue;
        }

        beat = lk ? ngx_chat_presence_beat(lk, i) : -1;
        seen = lk ? ngx_chat_presence_seen(lk, i) : -1;

        (void) json_object_set_new(u, "online", json_boolean(beat >= 0));

        if (beat >= 0) {
            (void) json_object_set_new(u, "last_seen", json_integer(beat));

        } else if (seen >= 0) {
            (void) json_object_set_new(u, "last_seen", json_integer(seen));
        }
    }
}


/* PUT /v1/friends/{id}: a request, or the acceptance of theirs */

static ngx_int_t
ngx_chat_api_friend_put(ngx_chat_api_ctx_t *ctx)
{
    return ngx_chat_api_call(ctx, "SELECT chat_friend_request($1, $2)", 1,
                             ngx_chat_api_friend_put_done);
}


static ngx_int_t
ngx_chat_api_friend_put_done(ngx_chat_api_ctx_t *ctx, PGresult *res)
{
    const char  *state;

    state = PQgetvalue(res, 0, 0);

    if (ngx_strcmp(state, "self") == 0) {
        return ngx_chat_api_error(ctx, NGX_HTTP_BAD_REQUEST, "bad_request",
                                  "you cannot befriend yourself");
    }

    if (ngx_strcmp(state, "not_found") == 0) {
        return ngx_chat_api_error(ctx, NGX_HTTP_NOT_FOUND, "not_found",
                                  "no such user");
    }

    return ngx_chat_api_reply(ctx, NGX_HTTP_OK,
                              json_pack("{s:I, s:s}",
                                        "user_id", (json_int_t) ctx->id[0],
                                        "state", state));
}


/* DELETE /v1/friends/{id} */

static ngx_int_t
ngx_chat_api_friend_delete(ngx_chat_api_ctx_t *ctx)
{
    return ngx_chat_api_call(ctx, "SELECT chat_friend_remove($1, $2)", 1,
                             ngx_chat_api_no_content);
}


static ngx_int_t
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


/* POST /v1/groups {"name","members":[ids]} */

static ngx_int_t
ngx_chat_api_group_create(ngx_chat_api_ctx_t *ctx)
{
    u_char      *p;
    size_t       i, n;
    json_t      *members, *m;
    uint64_t     id;
    ngx_int_t    rc;
    ngx_str_t    name, *params;

    /* up to 100 characters, as the database counts them */
    rc = ngx_chat_api_get_string(ctx, "name", 1, 1, 400, &name);
    if (rc != NGX_OK) {
        return ngx_chat_api_invalid(ctx);
    }

    for (i = 0, n = 0; i < name.len; i++) {
        n += (name.data[i] & 0xc0) != 0x80;
    }

    if (n > 100) {
        return ngx_chat_api_error(ctx, NGX_HTTP_BAD_REQUEST, "bad_request",
                                  "\"name\" must be 1 to 100 characters "
                                  "long");
    }

    members = json_object_get(ctx->body, "members");

    if (members && !json_is_array(members)) {
        return ngx_chat_api_error(ctx, NGX_HTTP_BAD_REQUEST, "bad_request",
                                  "\"members\" must be an array of user "
                                  "ids");
    }

    n = members ? json_array_size(members) : 0;

    if (n >= ctx->conf->group_max_members) {
        return ngx_chat_api_error(ctx, NGX_HTTP_BAD_REQUEST,
                                  "too_many_members",
                                  "more members than chat_group_max_members");
    }

    params = ngx_palloc(ctx->request->pool, 4 * sizeof(ngx_str_t));
    p = ngx_pnalloc(ctx->request->pool, (n + 1) * (NGX_INT64_LEN + 1)
                                        + 2 * NGX_INT64_LEN + 2);
    if (params == NULL || p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[0].data = p;
    p = ngx_sprintf(p, "%uL", ctx->user_id);
    params[0].len = p - params[0].data;

    params[1] = name;

    /* a PostgreSQL array literal of validated integers: {1,2,3} */
    params[2].data = p;
    *p++ = '{';

    for (i = 0; i < n; i++) {
        m = json_array_get(members, i);

        if (!json_is_integer(m) || json_integer_value(m) <= 0) {
            return ngx_chat_api_error(ctx, NGX_HTTP_BAD_REQUEST,
                                      "bad_request", "\"members\" must be "
                                      "an array of user ids");
        }

        id = (uint64_t) json_integer_value(m);
        p = ngx_sprintf(p, i ? ",%uL" : "%uL", id);
    }

    *p++ = '}';
    params[2].len = p - params[2].data;

    params[3].data = p;
    p = ngx_sprintf(p, "%ui", ctx->conf->group_max_members);
    params[3].len = p - params[3].data;

    return ngx_chat_api_pg(ctx,
                           "SELECT chat_group_create($1, $2, $3::bigint[], "
                           "$4)", 4, params, ngx_chat_api_group_created);
}


/* {"error":..} from the function is a refusal, anything else the group */

static ngx_int_t
ngx_chat_api_group_created(ngx_chat_api_ctx_t *ctx, PGresult *res)
{
    const char  *text;

    text = PQgetvalue(res, 0, 0);

    if (ngx_strncmp(text, "{\"error\"", 8) == 0) {
        return ngx_chat_http_send_text(ctx->request,
                                       ngx_strstr(text, "\"not_found\"")
                                       ? NGX_HTTP_NOT_FOUND
                                       : NGX_HTTP_BAD_REQUEST,
                                       (u_char *) text,
                                       PQgetlength(res, 0, 0));
    }

    return ngx_chat_api_json_result(ctx, res, NGX_HTTP_CREATED);
}


/* GET /v1/groups/{gid} */

static ngx_int_t
ngx_chat_api_group_get(ngx_chat_api_ctx_t *ctx)
{
    return ngx_chat_api_call(ctx, "SELECT chat_group_get($1, $2)", 1,
                             ngx_chat_api_group_got);
}


static ngx_int_t
ngx_chat_api_group_got(ngx_chat_api_ctx_t *ctx, PGresult *res)
{
    const char  *text;

    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        text = PQgetvalue(res, 0, 0);

        if (ngx_strncmp(text, "{\"error\"", 8) == 0) {
            return ngx_chat_http_send_text(ctx->request, NGX_HTTP_FORBIDDEN,
                                           (u_char *) text,
                                           PQgetlength(res, 0, 0));
        }
    }

    return ngx_chat_api_json_result(ctx, res, NGX_HTTP_OK);
}


/* PUT /v1/groups/{gid}/members/{uid} */

static ngx_int_t
ngx_chat_api_member_put(ngx_chat_api_ctx_t *ctx)
{
    u_char     *p;
    ngx_str_t  *params;

    params = ngx_chat_api_ids(ctx, 1);
    p = ngx_pnalloc(ctx->request->pool, NGX_INT_T_LEN);

    if (params == NULL || p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[3].data = p;
    params[3].len = ngx_sprintf(p, "%ui", ctx->conf->group_max_members) - p;

    return ngx_chat_api_pg(ctx,
                           "SELECT chat_group_add_member($1, $2, $3, $4)",
                           4, params, ngx_chat_api_member_done);
}


/* DELETE /v1/groups/{gid}/members/{uid} */

static ngx_int_t
ngx_chat_api_member_delete(ngx_chat_api_ctx_t *ctx)
{
    return ngx_chat_api_call(ctx,
                             "SELECT chat_group_remove_member($1, $2, $3)",
                             1, ngx_chat_api_member_done);
}


static ngx_int_t
ngx_chat_api_member_done(ngx_chat_api_ctx_t *ctx, PGresult *res)
{
    const char  *state;

    state = PQgetvalue(res, 0, 0);

    if (ngx_strcmp(state, "removed") == 0) {
        return ngx_chat_api_no_content(ctx, res);
    }

    if (ngx_strcmp(state, "added") == 0
        || ngx_strcmp(state, "already_member") == 0)
    {
        return ngx_chat_api_reply(ctx, NGX_HTTP_OK,
                                  json_pack("{s:I, s:I, s:s}",
                                            "group_id",
                                            (json_int_t) ctx->id[0],
                                            "user_id",
                                            (json_int_t) ctx->id[1],
                                            "role", "member"));
    }

    if (ngx_strcmp(state, "forbidden") == 0) {
        return ngx_chat_api_error(ctx, NGX_HTTP_FORBIDDEN, "forbidden",
                                  "only group admins may do this");
    }

    if (ngx_strcmp(state, "too_many_members") == 0) {
        return ngx_chat_api_error(ctx, NGX_HTTP_CONFLICT, "too_many_members",
                                  "the group is full");
    }

    if (ngx_strcmp(state, "user_not_found") == 0) {
        return ngx_chat_api_error(ctx, NGX_HTTP_NOT_FOUND, "not_found",
                                  "no such user");
    }

    if (ngx_strcmp(state, "not_member") == 0) {
        return ngx_chat_api_error(ctx, NGX_HTTP_NOT_FOUND, "not_found",
                                  "not a member of this group");
    }

    return ngx_chat_api_error(ctx, NGX_HTTP_NOT_FOUND, "not_found",
                              "no such group");
}


/* PUT /v1/keys {"public_key":"<base64>"} */

static ngx_int_t
ngx_chat_api_key_put(ngx_chat_api_ctx_t *ctx)
{
    ngx_int_t    rc;
    ngx_str_t   *params;
    ngx_uint_t   i;
    u_char       c;

    params = ngx_chat_api_ids(ctx, 1);
    if (params == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_chat_api_get_string(ctx, "public_key", 1, 4, 8192, &params[1]);
    if (rc != NGX_OK) {
        return ngx_chat_api_invalid(ctx);
    }

    for (i = 0; i < params[1].len; i++) {
        c = params[1].data[i];

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '+' || c == '/' || c == '='
              || c == '-' || c == '_'))
        {
            return ngx_chat_api_error(ctx, NGX_HTTP_BAD_REQUEST,
                                      "bad_request", "\"public_key\" must "
                                      "be base64");
        }
    }

    return ngx_chat_api_pg(ctx, "SELECT chat_put_key($1, $2)", 2, params,
                           ngx_chat_api_no_content);
}


/* GET /v1/users/{id}/keys */

static ngx_int_t
ngx_chat_api_key_get(ngx_chat_api_ctx_t *ctx)
{
    return ngx_chat_api_call(ctx, "SELECT chat_get_key($1)", 0,
                             ngx_chat_api_key_got);
}


static ngx_int_t
ngx_chat_api_key_got(ngx_chat_api_ctx_t *ctx, PGresult *res)
{
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return ngx_chat_api_error(ctx, NGX_HTTP_NOT_FOUND, "not_found",
                                  "this user has no public key");
    }

    return ngx_chat_api_json_result(ctx, res, NGX_HTTP_OK);
}


/*
 * PUT /v1/devices/{token} {"platform":"fcm"|"apns"|"webhook"}: 409 when
 * another user holds the token (it stays with that user).
 */

static ngx_int_t
ngx_chat_api_device_put(ngx_chat_api_ctx_t *ctx)
{
    ngx_int_t   rc;
    ngx_str_t  *params, platform, token;

    rc = ngx_chat_api_get_string(ctx, "platform", 1, 1, 16, &platform);
    if (rc != NGX_OK) {
        return ngx_chat_api_invalid(ctx);
    }

    if (!(platform.len == 3 && ngx_strncmp(platform.data, "fcm", 3) == 0)
        && !(platform.len == 4 && ngx_strncmp(platform.data, "apns", 4) == 0)
        && !(platform.len == 7
             && ngx_strncmp(platform.data, "webhook", 7) == 0))
    {
        return ngx_chat_api_error(ctx, NGX_HTTP_BAD_REQUEST, "bad_request",
                                  "\"platform\" must be fcm, apns or "
                                  "webhook");
    }

    if (ngx_chat_api_device_token(ctx, &token) != NGX_OK) {
        return ngx_chat_api_invalid(ctx);
    }

    params = ngx_chat_api_ids(ctx, 1);
    if (params == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[1] = token;
    params[2] = platform;

    return ngx_chat_api_pg(ctx, "SELECT chat_put_device($1, $2, $3)", 3,
                           params, ngx_chat_api_device_put_done);
}


static ngx_int_t
ngx_chat_api_device_put_done(ngx_chat_api_ctx_t *ctx, PGresult *res)
{
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)
        || PQgetvalue(res, 0, 0)[0] != 't')
    {
        return ngx_chat_api_error(ctx, NGX_HTTP_CONFLICT, "conflict",
                                  "another user holds this device token");
    }

    return ngx_chat_api_no_content(ctx, res);
}


/*
 * DELETE /v1/devices/{token}: 204 whether or not I held it, so that a
 * retry succeeds and nobody learns who holds a token; another user's
 * token is left alone.
 */

static ngx_int_t
ngx_chat_api_device_delete(ngx_chat_api_ctx_t *ctx)
{
    ngx_str_t  *params, token;

    if (ngx_chat_api_device_token(ctx, &token) != NGX_OK) {
        return ngx_chat_api_invalid(ctx);
    }

    params = ngx_chat_api_ids(ctx, 1);
    if (params == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[1] = token;

    return ngx_chat_api_pg(ctx, "SELECT chat_delete_device($1, $2)", 2,
                           params, ngx_chat_api_no_content);
}


/*
 * The token is a path segment, percent-decoded: 1 to 4096 bytes of UTF-8
 * (NGX_ERROR with the reason in ctx->invalid).
 */

static ngx_int_t
ngx_chat_api_device_token(ngx_chat_api_ctx_t *ctx, ngx_str_t *token)
{
    *token = ctx->arg;

    if (token->len == 0 || token->len > 4096
        || chat_utf8_valid(token->data, token->len) != 0)
    {
        (void) ngx_cpystrn(ctx->invalid, (u_char *) "the device token must "
                           "be 1 to 4096 bytes of UTF-8",
                           sizeof(ctx->invalid));
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* GET /v1/messages: in ngx_chat_history.c */

static ngx_int_t
ngx_chat_api_messages(ngx_chat_api_ctx_t *ctx)
{
    return ngx_chat_history(ctx->request, ctx->user_id);
}
