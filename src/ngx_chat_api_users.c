
/*
 * Copyright (C) ngx_chat authors
 *
 * Accounts and sessions: sign-up (POST /v1/users), login with its
 * attempt limit in Redis (POST /v1/sessions), logout (DELETE
 * /v1/sessions/current).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <sodium.h>

#include "ngx_chat_api_users.h"
#include "ngx_chat_password.h"
#include "ngx_chat_route.h"
#include "chat_jwt.h"


/* attempts per username from all addresses: this many times the limit */
#define NGX_CHAT_LOGIN_CEILING   10


static void ngx_chat_api_register_hashed(ngx_int_t rc, ngx_str_t *hash,
    void *data);
static ngx_int_t ngx_chat_api_register_done(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
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
static void ngx_chat_api_logout_done(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static ngx_uint_t ngx_chat_api_username_ok(ngx_str_t *name);
static ngx_int_t ngx_chat_api_lookup_done(ngx_chat_api_ctx_t *ctx,
    PGresult *res);


/* POST /v1/users */

ngx_int_t
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


ngx_int_t
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

ngx_int_t
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


/*
 * GET /v1/users/lookup?username=<name>: the account of that name (for
 * clients that take a username, e.g. to start a chat): 404 for none, 400
 * for a name that registration would refuse.
 */

ngx_int_t
ngx_chat_api_user_lookup(ngx_chat_api_ctx_t *ctx)
{
    u_char              *dst, *src;
    ngx_str_t            value;
    ngx_http_request_t  *r;

    r = ctx->request;

    if (ngx_http_arg(r, (u_char *) "username", 8, &value) != NGX_OK) {
        return ngx_chat_api_error(ctx, NGX_HTTP_BAD_REQUEST, "bad_request",
                                  "\"username\" is required");
    }

    /* percent-decoded into a copy: the name is then checked as is */
    ctx->username.data = ngx_pnalloc(r->pool, value.len + 1);
    if (ctx->username.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    src = value.data;
    dst = ctx->username.data;
    ngx_unescape_uri(&dst, &src, value.len, 0);
    ctx->username.len = dst - ctx->username.data;

    if (!ngx_chat_api_username_ok(&ctx->username)) {
        return ngx_chat_api_error(ctx, NGX_HTTP_BAD_REQUEST, "bad_request",
                                  "\"username\" must match "
                                  "[a-z0-9_]{3,32}");
    }

    return ngx_chat_api_pg(ctx,
        "SELECT row_to_json(u) FROM (SELECT id AS user_id, username, "
        "display_name FROM users WHERE username = $1) u",
        1, &ctx->username, ngx_chat_api_lookup_done);
}


static ngx_int_t
ngx_chat_api_lookup_done(ngx_chat_api_ctx_t *ctx, PGresult *res)
{
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return ngx_chat_api_error(ctx, NGX_HTTP_NOT_FOUND, "not_found",
                                  "no such user");
    }

    return ngx_chat_api_json_result(ctx, res, NGX_HTTP_OK);
}
