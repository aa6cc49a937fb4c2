
/*
 * Copyright (C) ngx_chat authors
 *
 * The caller and the people around: GET /v1/me, the friends list with
 * their presence (GET /v1/friends), friend requests (PUT and DELETE
 * /v1/friends/{id}) and one friend's presence (GET
 * /v1/users/{id}/presence).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat_api_friends.h"
#include "ngx_chat_presence.h"
#include "chat_json.h"


static ngx_int_t ngx_chat_api_me_done(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_api_friends_got(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_api_presence_got(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_api_presence_ask(ngx_chat_api_ctx_t *ctx,
    json_t *answer, json_t *users);
static ngx_int_t ngx_chat_api_presence_send(ngx_chat_api_ctx_t *ctx,
    json_t *answer);
static void ngx_chat_api_presence_looked(void *data,
    ngx_chat_presence_lookup_t *lk);
static void ngx_chat_api_presence_fill(json_t *users,
    ngx_chat_presence_lookup_t *lk);
static ngx_int_t ngx_chat_api_friend_put_done(ngx_chat_api_ctx_t *ctx,
    PGresult *res);


/* GET /v1/me */

ngx_int_t
ngx_chat_api_me(ngx_chat_api_ctx_t *ctx)
{
    return ngx_chat_api_call(ctx, "SELECT chat_me_json($1)", 1,
                             ngx_chat_api_me_done);
}


static ngx_int_t
ngx_chat_api_me_done(ngx_chat_api_ctx_t *ctx, PGresult *res)
{
    u_char                *p;
    json_t                *me;
    ngx_int_t              rc;
    ngx_str_t              host;
    ngx_http_request_t    *r = ctx->request;
    ngx_chat_main_conf_t  *cmcf;

    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        /* a valid token of an account that is gone */
        return ngx_chat_api_error(ctx, NGX_HTTP_UNAUTHORIZED,
                                  "unauthorized", "no such user");
    }

    me = json_loadb(PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0), 0, NULL);
    if (me == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_chat_module);

    if (cmcf->ws_url.len) {
        /* chat_public_url: behind an edge, Host and scheme are the edge's */
        p = cmcf->ws_url.data;
        rc = cmcf->ws_url.len;
        goto done;
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

done:

    (void) json_object_set_new(me, "ws_url", json_stringn((char *) p, rc));

    rc = ngx_chat_http_send_json(r, NGX_HTTP_OK, me);
    json_decref(me);

    return rc;
}


/*
 * GET /v1/friends: the list from PostgreSQL, "online" and "last_seen" of
 * the friends (not of requests either way) from Redis.
 */

ngx_int_t
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

ngx_int_t
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

ngx_int_t
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

ngx_int_t
ngx_chat_api_friend_delete(ngx_chat_api_ctx_t *ctx)
{
    return ngx_chat_api_call(ctx, "SELECT chat_friend_remove($1, $2)", 1,
                             ngx_chat_api_no_content);
}
