
/*
 * Copyright (C) ngx_chat authors
 *
 * Groups: POST /v1/groups, GET /v1/groups/{gid}, and their members (PUT
 * and DELETE /v1/groups/{gid}/members/{uid}).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat_api_groups.h"
#include "ngx_chat_group.h"


static ngx_int_t ngx_chat_api_group_created(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_api_group_got(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_api_member_done(ngx_chat_api_ctx_t *ctx,
    PGresult *res);


/* POST /v1/groups {"name","members":[ids]} */

ngx_int_t
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

ngx_int_t
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

ngx_int_t
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

ngx_int_t
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

    /* committed: the cached member list goes before the answer */
    if (ngx_strcmp(state, "removed") == 0
        || ngx_strcmp(state, "added") == 0)
    {
        ngx_chat_group_invalidate(ctx->id[0]);
    }

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
