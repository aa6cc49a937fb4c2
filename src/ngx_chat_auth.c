
/*
 * Copyright (C) ngx_chat authors
 *
 * Bearer tokens: HS256 JWTs checked with the shared secret, with no
 * database round trip.  "chat_auth on" refuses requests without a valid
 * token in the access phase; $chat_user_id gives the verified user id to
 * stock directives (hash, limit_req_zone, log_format).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/sha.h>

#include "ngx_chat.h"
#include "chat_jwt.h"
#include "ngx_chat_auth_cache.h"


#define NGX_CHAT_JWT_MIN_SECRET  CHAT_JWT_KEY_MIN_LEN
#define NGX_CHAT_JWT_MAX_SECRET  4096

/* the per-worker table of deny-list checks that may still be joined */
#define NGX_CHAT_REVOKE_BUCKETS  64
/* checks kept for reuse, not freed, at most */
#define NGX_CHAT_REVOKE_SPARE    64


/*
 * One EXISTS on the deny-list, shared by the requests with the same token
 * (user id and token id) that asked while it was still queued, not yet
 * written to Redis: Redis runs it after every one of them came, so its
 * answer is as fresh for each as a command of its own would be.
 */
typedef struct {
    ngx_queue_t                link;        /* in a bucket, or spare */
    ngx_queue_t                waiters;     /* ngx_chat_ctx_t revoke_link */
    ngx_chat_redis_cmd_t      *cmd;         /* NULL once answered */
    uint64_t                   user_id;
    size_t                     token_id_len;
    u_char                     token_id[NGX_CHAT_TOKEN_ID_LEN];
    unsigned                   listed:1;    /* in a bucket */
} ngx_chat_revoke_t;


static ngx_int_t ngx_chat_auth_handler(ngx_http_request_t *r);
static ngx_int_t ngx_chat_auth_scrub(ngx_http_request_t *r);
static ngx_int_t ngx_chat_auth_revoke_check(ngx_http_request_t *r,
    ngx_chat_ctx_t *ctx);
static ngx_chat_revoke_t *ngx_chat_auth_revoke_find(ngx_chat_ctx_t *ctx,
    ngx_queue_t **bucket);
static void ngx_chat_auth_revoke_free(ngx_chat_revoke_t *rv);
static void ngx_chat_auth_revoke_reply(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_auth_revoke_answer(ngx_http_request_t *r,
    ngx_chat_ctx_t *ctx, ngx_chat_store_rc_e rc, redisReply *reply);
static void ngx_chat_auth_revoke_cleanup(void *data);
static void ngx_chat_auth_token_id(ngx_chat_ctx_t *ctx, ngx_str_t *token,
    chat_jwt_claims_t *claims);
static u_char *ngx_chat_auth_find_token(u_char *p, u_char *last,
    u_char **end);
static ngx_int_t ngx_chat_auth_token(ngx_http_request_t *r, ngx_str_t *tok);
static ngx_int_t ngx_chat_user_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_str_t  ngx_chat_user_id_name = ngx_string("chat_user_id");

/*
 * Per worker: the checks not written yet, by user id and token id (a
 * check leaves its bucket when found written, or answered), and spare
 * ones, so that a check costs no allocation of its own
 */
static ngx_queue_t  ngx_chat_revoke_table[NGX_CHAT_REVOKE_BUCKETS];
static ngx_queue_t  ngx_chat_revoke_spare;
static ngx_uint_t   ngx_chat_revoke_nspare;
static ngx_uint_t   ngx_chat_revoke_ready;


/* the secret is read once, at configuration time, and never logged */

char *
ngx_chat_jwt_secret_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *cmcf = conf;

    if (cmcf->jwt_secret.data) {
        return "is duplicate";
    }

    if (ngx_chat_conf_secret_file(cf, cmd, NGX_CHAT_JWT_MAX_SECRET,
                                  &cmcf->jwt_secret)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (cmcf->jwt_secret.len < NGX_CHAT_JWT_MIN_SECRET) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_jwt_secret_file: \"%V\" holds %uz bytes, "
                           "at least %d are needed (e.g. openssl rand "
                           "-base64 48)", &((ngx_str_t *) cf->args->elts)[1],
                           cmcf->jwt_secret.len, NGX_CHAT_JWT_MIN_SECRET);
        return NGX_CONF_ERROR;
    }

    cmcf->enabled = 1;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_chat_auth_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var;

    var = ngx_http_add_variable(cf, &ngx_chat_user_id_name,
                                NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_chat_user_id_variable;

    return NGX_OK;
}


ngx_int_t
ngx_chat_auth_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_chat_auth_handler;

    /* the earliest phase: before anything logs the request line */
    h = ngx_array_push(&cmcf->phases[NGX_HTTP_POST_READ_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_chat_auth_scrub;

    return NGX_OK;
}


/*
 * Tokens stay out of the logs: the error log quotes r->request_line in
 * every line about a request ("request: ..."), and $request in access
 * logs is the same string.  A copy of it with each access_token value
 * replaced by "[hidden]" takes its place; r->args and r->unparsed_uri
 * keep the token (a proxy passes them on), so access logs must not use
 * $request_uri, $args or $query_string.  Errors nginx logs while it
 * still parses the request header come before any module runs.
 */

static ngx_int_t
ngx_chat_auth_scrub(ngx_http_request_t *r)
{
    u_char                *p, *last, *v, *end, *buf, *out, *query;
    ngx_uint_t             n;
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_chat_module);

    if (!cmcf->enabled || r->args.len == 0 || r->request_line.len == 0) {
        return NGX_DECLINED;
    }

    last = r->request_line.data + r->request_line.len;

    query = ngx_strlchr(r->request_line.data, last, '?');
    if (query == NULL) {
        return NGX_DECLINED;
    }

    p = ++query;

    for (n = 0; ngx_chat_auth_find_token(p, last, &end) != NULL; n++) {
        p = end;
    }

    if (n == 0) {
        return NGX_DECLINED;
    }

    buf = ngx_pnalloc(r->pool, r->request_line.len
                               + n * (sizeof("[hidden]") - 1));
    if (buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    out = ngx_cpymem(buf, r->request_line.data,
                     query - r->request_line.data);
    p = query;

    while ((v = ngx_chat_auth_find_token(p, last, &end)) != NULL) {
        out = ngx_cpymem(out, p, v - p);
        out = ngx_cpymem(out, "[hidden]", sizeof("[hidden]") - 1);
        p = end;
    }

    out = ngx_cpymem(out, p, last - p);

    r->request_line.data = buf;
    r->request_line.len = out - buf;

    return NGX_DECLINED;
}


/*
 * The value of the next "access_token=" parameter from p, in the query of
 * a request line (after its '?', up to a space): its start, and in *end
 * its end; NULL when there is none.
 */

static u_char *
ngx_chat_auth_find_token(u_char *p, u_char *last, u_char **end)
{
    u_char  *q;

    for ( /* void */ ; p + 13 <= last; p++) {
        if (*p == ' ') {
            return NULL;
        }

        if ((p[-1] == '?' || p[-1] == '&')
            && ngx_strncasecmp(p, (u_char *) "access_token=", 13) == 0)
        {
            p += 13;

            for (q = p; q < last && *q != '&' && *q != ' ' && *q != '#';
                 q++)
            {
                /* void */
            }

            *end = q;

            return p;
        }
    }

    return NULL;
}


/*
 * The access phase: "chat_auth on" refuses requests without a valid
 * token; in chat_auth, chat_api and chat_websocket locations a valid token
 * is then looked up in the deny-list of logged out tokens (one Redis
 * EXISTS, asynchronous, with chat_redis_timeout, shared by the requests
 * with the same token that ask before it is written to Redis): revoked,
 * the request goes on as one without a valid token (401 where a token is
 * needed); Redis cannot answer, 503 (never a revoked token let through).
 * Without chat_redis there is no logout and nothing to look up.
 */

static ngx_int_t
ngx_chat_auth_handler(ngx_http_request_t *r)
{
    ngx_int_t             rc;
    uint64_t              uid;
    const char           *reason;
    ngx_chat_ctx_t       *ctx;
    ngx_chat_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_chat_module);

    if (r != r->main || !(clcf->auth || clcf->api || clcf->websocket)) {
        return NGX_DECLINED;
    }

    if (ngx_chat_auth_user(r, &uid, &reason) == NGX_OK) {
        ctx = ngx_chat_get_ctx(r);

        if (ctx->revoke_checked) {
            return NGX_DECLINED;
        }

        if (ctx->revoke) {
            /* still waiting */
            return NGX_AGAIN;
        }

        rc = ngx_chat_auth_revoke_check(r, ctx);

        if (rc == NGX_DECLINED || rc == NGX_AGAIN) {
            return rc;
        }

        /* Redis cannot say whether the token was revoked */
        if (ngx_chat_http_discard_body(r, &rc) != NGX_OK) {
            ngx_http_finalize_request(r, rc);
            return NGX_DONE;
        }

        ngx_http_finalize_request(r, ngx_chat_http_error(r,
                                            NGX_HTTP_SERVICE_UNAVAILABLE,
                                            "unavailable", "Redis is down"));
        return NGX_DONE;
    }

    if (!clcf->auth) {
        /* the API's routes and the WebSocket handshake decide */
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "chat: auth: %s", reason);

    if (ngx_chat_http_discard_body(r, &rc) != NGX_OK) {
        ngx_http_finalize_request(r, rc);
        return NGX_DONE;
    }

    ngx_http_finalize_request(r, ngx_chat_auth_refuse(r, reason));

    return NGX_DONE;
}


/* NGX_DECLINED: nothing to check; NGX_AGAIN: asked; NGX_ERROR: cannot */

static ngx_int_t
ngx_chat_auth_revoke_check(ngx_http_request_t *r, ngx_chat_ctx_t *ctx)
{
    ngx_queue_t         *bucket;
    ngx_chat_redis_t    *rds;
    ngx_chat_revoke_t   *rv;
    ngx_pool_cleanup_t  *cln;

    if (ngx_chat_worker == NULL || ngx_chat_worker->nredis == 0) {
        ctx->revoke_checked = 1;
        return NGX_DECLINED;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    rv = ngx_chat_auth_revoke_find(ctx, &bucket);

    if (rv == NULL) {
        rds = ngx_chat_redis_for_user(ctx->user_id);
        if (rds == NULL) {
            return NGX_ERROR;
        }

        if (!ngx_queue_empty(&ngx_chat_revoke_spare)) {
            rv = ngx_queue_data(ngx_queue_head(&ngx_chat_revoke_spare),
                                ngx_chat_revoke_t, link);
            ngx_queue_remove(&rv->link);
            ngx_chat_revoke_nspare--;

        } else {
            rv = ngx_alloc(sizeof(ngx_chat_revoke_t), r->connection->log);
            if (rv == NULL) {
                return NGX_ERROR;
            }
        }

        rv->cmd = ngx_chat_redis_command(rds, ngx_chat_auth_revoke_reply, rv,
                                         "EXISTS " NGX_CHAT_REVOKED_KEY,
                                         (unsigned long long) ctx->user_id,
                                         ctx->token_id, ctx->token_id_len);
        if (rv->cmd == NULL) {
            rv->listed = 0;
            ngx_chat_auth_revoke_free(rv);
            return NGX_ERROR;
        }

        ngx_queue_init(&rv->waiters);
        rv->user_id = ctx->user_id;
        rv->token_id_len = ctx->token_id_len;
        ngx_memcpy(rv->token_id, ctx->token_id, ctx->token_id_len);

        ngx_queue_insert_tail(bucket, &rv->link);
        rv->listed = 1;

    } else {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "chat: auth: deny-list check shared (user %uL)",
                       ctx->user_id);
    }

    ngx_queue_insert_tail(&rv->waiters, &ctx->revoke_link);
    ctx->revoke = rv;
    ctx->request = r;

    cln->handler = ngx_chat_auth_revoke_cleanup;
    cln->data = ctx;

    /*
     * the phases stop here and go on from the reply; a client that goes
     * away meanwhile ends its request (499), as with proxy_pass
     */
    r->read_event_handler = ngx_http_test_reading;

    return NGX_AGAIN;
}


/*
 * The check of the request's token that is still queued, if any, and in
 * *bucket where a new one goes.  Checks that went out since are dropped
 * from the table on the way.
 */

static ngx_chat_revoke_t *
ngx_chat_auth_revoke_find(ngx_chat_ctx_t *ctx, ngx_queue_t **bucket)
{
    ngx_uint_t          i, key;
    ngx_queue_t        *q, *next, *b;
    ngx_chat_revoke_t  *rv;

    if (!ngx_chat_revoke_ready) {
        for (i = 0; i < NGX_CHAT_REVOKE_BUCKETS; i++) {
            ngx_queue_init(&ngx_chat_revoke_table[i]);
        }

        ngx_queue_init(&ngx_chat_revoke_spare);
        ngx_chat_revoke_ready = 1;
    }

    key = ngx_hash_key(ctx->token_id, ctx->token_id_len)
          ^ (ngx_uint_t) ctx->user_id;
    b = &ngx_chat_revoke_table[key % NGX_CHAT_REVOKE_BUCKETS];
    *bucket = b;

    for (q = ngx_queue_head(b); q != ngx_queue_sentinel(b); q = next) {
        next = ngx_queue_next(q);
        rv = ngx_queue_data(q, ngx_chat_revoke_t, link);

        if (ngx_chat_redis_written(rv->cmd)) {
            /* Redis may have run it already: too old to join */
            ngx_queue_remove(&rv->link);
            rv->listed = 0;
            continue;
        }

        if (rv->user_id == ctx->user_id
            && rv->token_id_len == ctx->token_id_len
            && ngx_memcmp(rv->token_id, ctx->token_id, ctx->token_id_len)
               == 0)
        {
            return rv;
        }
    }

    return NULL;
}


static void
ngx_chat_auth_revoke_free(ngx_chat_revoke_t *rv)
{
    if (rv->listed) {
        ngx_queue_remove(&rv->link);
        rv->listed = 0;
    }

    if (ngx_chat_revoke_nspare < NGX_CHAT_REVOKE_SPARE) {
        ngx_queue_insert_head(&ngx_chat_revoke_spare, &rv->link);
        ngx_chat_revoke_nspare++;
        return;
    }

    ngx_free(rv);
}


/*
 * Each waiter its answer, one at a time: answering one may finalize
 * others (an HTTP/2 connection that goes away), whose cleanups take them
 * out of the waiters meanwhile.
 */

static void
ngx_chat_auth_revoke_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_revoke_t *rv = data;

    ngx_queue_t     *q;
    ngx_chat_ctx_t  *ctx;

    rv->cmd = NULL;

    if (rv->listed) {
        ngx_queue_remove(&rv->link);
        rv->listed = 0;
    }

    while (!ngx_queue_empty(&rv->waiters)) {
        q = ngx_queue_head(&rv->waiters);
        ngx_queue_remove(q);

        ctx = ngx_queue_data(q, ngx_chat_ctx_t, revoke_link);
        ctx->revoke = NULL;

        ngx_chat_auth_revoke_answer(ctx->request, ctx, rc, reply);
    }

    ngx_chat_auth_revoke_free(rv);
}


static void
ngx_chat_auth_revoke_answer(ngx_http_request_t *r, ngx_chat_ctx_t *ctx,
    ngx_chat_store_rc_e rc, redisReply *reply)
{
    ngx_int_t             status;
    ngx_connection_t     *c;
    ngx_chat_loc_conf_t  *clcf;

    c = r->connection;
    r->read_event_handler = ngx_http_block_reading;

    if (rc == NGX_CHAT_STORE_OK && reply->type == REDIS_REPLY_INTEGER) {

        if (reply->integer == 0) {
            ctx->revoke_checked = 1;
            ngx_http_core_run_phases(r);
            ngx_http_run_posted_requests(c);
            return;
        }

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "chat: auth: token revoked (user %uL)", ctx->user_id);

        ctx->auth_ok = 0;
        ctx->auth_reason = "token revoked";
        ctx->revoke_checked = 1;

        clcf = ngx_http_get_module_loc_conf(r, ngx_http_chat_module);

        if (!clcf->auth) {
            /*
             * as if the request had no token: the API's routes that need
             * one and the WebSocket handshake answer 401 "token revoked",
             * the open ones (sign-up, login) do not look at it
             */
            ngx_http_core_run_phases(r);
            ngx_http_run_posted_requests(c);
            return;
        }
    }

    if (ngx_chat_http_discard_body(r, &status) != NGX_OK) {
        ngx_http_finalize_request(r, status);
        ngx_http_run_posted_requests(c);
        return;
    }

    status = ctx->auth_ok
             ? ngx_chat_http_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "unavailable", "Redis is down")
             : ngx_chat_auth_refuse(r, ctx->auth_reason);

    ngx_http_finalize_request(r, status);
    ngx_http_run_posted_requests(c);
}


/*
 * The request goes away before its answer: out of the waiters; the last
 * one gone cancels the command (unless it is being answered right now)
 */

static void
ngx_chat_auth_revoke_cleanup(void *data)
{
    ngx_chat_ctx_t  *ctx = data;

    ngx_chat_revoke_t  *rv;

    rv = ctx->revoke;

    if (rv == NULL) {
        return;
    }

    ctx->revoke = NULL;
    ngx_queue_remove(&ctx->revoke_link);

    if (rv->cmd && ngx_queue_empty(&rv->waiters)) {
        ngx_chat_redis_cancel(rv->cmd);
        rv->cmd = NULL;
        ngx_chat_auth_revoke_free(rv);
    }
}


/* 401 with the challenge RFC 6750 asks for, and a JSON error */

ngx_int_t
ngx_chat_auth_refuse(ngx_http_request_t *r, const char *reason)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "WWW-Authenticate");
    ngx_str_set(&h->value, "Bearer realm=\"chat\"");
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return ngx_chat_http_error(r, NGX_HTTP_UNAUTHORIZED, "unauthorized",
                               reason);
}


ngx_int_t
ngx_chat_auth_user(ngx_http_request_t *r, uint64_t *user_id,
    const char **reason)
{
    ngx_str_t                token;
    chat_jwt_rc_e            rc;
    ngx_chat_ctx_t          *ctx;
    chat_jwt_claims_t        claims;
    ngx_chat_main_conf_t    *cmcf;
    ngx_chat_auth_cached_t  *known;

    ctx = ngx_chat_get_ctx(r);
    if (ctx == NULL) {
        *reason = "out of memory";
        return NGX_ERROR;
    }

    if (ctx->auth_done) {
        *user_id = ctx->user_id;
        *reason = ctx->auth_reason;
        return ctx->auth_ok ? NGX_OK : NGX_DECLINED;
    }

    ctx->auth_done = 1;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_chat_module);

    if (cmcf->jwt_secret.len == 0) {
        ctx->auth_reason = "no chat_jwt_secret_file is configured";
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "chat: auth: %s", ctx->auth_reason);

    } else if (ngx_chat_auth_token(r, &token) != NGX_OK) {
        ctx->auth_reason = "no bearer token";

    } else if ((known = ngx_chat_auth_cache_find(token.data, token.len,
                                                  ngx_time()))
               != NULL)
    {
        ctx->auth_ok = 1;
        ctx->user_id = known->user_id;
        ctx->auth_reason = NULL;
        ctx->token_exp = known->exp;
        ctx->token_id_len = known->token_id_len;
        ngx_memcpy(ctx->token_id, known->token_id, known->token_id_len);

    } else {
        rc = chat_jwt_verify(cmcf->jwt_secret.data, cmcf->jwt_secret.len,
                             (char *) token.data, token.len, ngx_time(),
                             &claims);

        if (rc == CHAT_JWT_OK) {
            ctx->auth_ok = 1;
            ctx->user_id = claims.sub;
            ctx->auth_reason = NULL;
            ngx_chat_auth_token_id(ctx, &token, &claims);
            ngx_chat_auth_cache_put(token.data, token.len, ngx_time(),
                                    ctx->token_exp, ctx->user_id,
                                    ctx->token_id, ctx->token_id_len);

        } else {
            ctx->auth_reason = chat_jwt_rc_text(rc);
        }
    }

    *user_id = ctx->user_id;
    *reason = ctx->auth_reason;

    return ctx->auth_ok ? NGX_OK : NGX_DECLINED;
}


/*
 * "Authorization: Bearer <token>", or for browsers, whose WebSocket API
 * cannot set headers, "?access_token=<token>": only where
 * chat_auth_query_token is on (by default, chat_websocket locations).
 * Elsewhere a query token is ignored, as if there were none.
 */

static ngx_int_t
ngx_chat_auth_token(ngx_http_request_t *r, ngx_str_t *tok)
{
    u_char               *p, *last;
    ngx_table_elt_t      *h;
    ngx_chat_loc_conf_t  *clcf;

    h = r->headers_in.authorization;

    if (h) {
        p = h->value.data;
        last = p + h->value.len;

        if (h->value.len < 7 || ngx_strncasecmp(p, (u_char *) "Bearer ", 7))
        {
            return NGX_DECLINED;
        }

        p += 7;

        while (p < last && *p == ' ') {
            p++;
        }

        tok->data = p;
        tok->len = last - p;

        return tok->len ? NGX_OK : NGX_DECLINED;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_chat_module);

    if ((clcf->query_token == 1
         || (clcf->query_token == NGX_CONF_UNSET && clcf->websocket))
        && ngx_http_arg(r, (u_char *) "access_token", 12, tok) == NGX_OK
        && tok->len)
    {
        return NGX_OK;
    }

    return NGX_DECLINED;
}


/*
 * The token's id, for logout: its "jti" when it has one of
 * [A-Za-z0-9_-], else the SHA-256 of the whole token.
 */

static void
ngx_chat_auth_token_id(ngx_chat_ctx_t *ctx, ngx_str_t *token,
    chat_jwt_claims_t *claims)
{
    u_char     *p, c;
    ngx_str_t   src, dst;
    u_char      md[SHA256_DIGEST_LENGTH];

    ctx->token_exp = (time_t) claims->exp;

    for (p = (u_char *) claims->jti; *p; p++) {
        c = *p;

        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_'))
        {
            break;
        }
    }

    if (p != (u_char *) claims->jti && *p == '\0') {
        ctx->token_id[0] = 'j';
        ctx->token_id_len = 1 + (ngx_cpystrn(ctx->token_id + 1,
                                             (u_char *) claims->jti,
                                             CHAT_JWT_JTI_MAX + 1)
                                 - (ctx->token_id + 1));
        return;
    }

    (void) SHA256(token->data, token->len, md);

    src.data = md;
    src.len = sizeof(md);
    dst.data = ctx->token_id + 1;

    ngx_encode_base64url(&dst, &src);

    ctx->token_id[0] = 'h';
    ctx->token_id_len = 1 + dst.len;
}


static ngx_int_t
ngx_chat_user_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char      *p;
    uint64_t     uid;
    const char  *reason;

    if (ngx_chat_auth_user(r, &uid, &reason) != NGX_OK) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%uL", uid) - p;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}
