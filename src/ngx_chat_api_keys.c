
/*
 * Copyright (C) ngx_chat authors
 *
 * Keys and devices: the caller's public key (PUT /v1/keys) and another
 * user's (GET /v1/users/{id}/keys), push device tokens (PUT and DELETE
 * /v1/devices/{token}).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat_api_keys.h"
#include "chat_json.h"


static ngx_int_t ngx_chat_api_key_got(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_api_device_put_done(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_api_device_token(ngx_chat_api_ctx_t *ctx,
    ngx_str_t *token);


/* PUT /v1/keys {"public_key":"<base64>"} */

ngx_int_t
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

ngx_int_t
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

ngx_int_t
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

ngx_int_t
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
