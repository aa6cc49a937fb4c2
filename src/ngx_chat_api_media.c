
/*
 * Copyright (C) ngx_chat authors
 *
 * Images (ngx_chat_api_media.h).
 *
 * POST /v1/media: the Content-Type must name one of the four image types
 * and the Content-Length (when there is one) be within
 * chat_media_max_size, else 415 or 413 before a byte of the body is read.
 * The body goes to a temporary file only (never whole in memory); on its
 * way there the request body filter below hashes it (SHA-256), keeps its
 * first NGX_CHAT_MEDIA_HEAD bytes for the probe (src/common/chat_image.c:
 * the type from the magic numbers, which must be the declared one, and
 * the dimensions) and stops it at the limit (413) whatever its framing.
 * Then the file is stored under its hash (ngx_chat_media_store.c: one
 * content, one file; with chat_media_s3 a PUT under way, after which
 * the request goes on from its write_event_handler) and its rows written
 * (chat_media_put(), sql/0009_media.sql): 201 {"media_id","url","type",
 * "size","width","height"}.
 *
 * GET /v1/media/{id}: with ?exp=&sig= a signed URL (403 when expired or
 * altered), else the bearer token of someone who may see it
 * (chat_media_get()); 404 alike for an id that does not exist and one the
 * caller may not see.  The bytes come from the store (or, with S3, from
 * a presigned URL it redirects to).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>

#include "ngx_chat_api_media.h"
#include "ngx_chat_media_store.h"
#include "ngx_chat_media_cache.h"
#include "ngx_chat_media_s3.h"
#include "chat_hex.h"
#include "chat_image.h"
#include "chat_media_url.h"
#include "chat_id.h"


/* an image's header must be within its first bytes: EXIF before a JPEG's
 * frame header can be large */
#define NGX_CHAT_MEDIA_HEAD      262144



typedef struct {
    EVP_MD_CTX                *sha;
    u_char                    *head;
    size_t                     head_len;
    size_t                     head_cap;
    off_t                      size;
    chat_image_type_e          declared;
    chat_image_t               image;
    ngx_chat_media_put_t       put;
    char                       hex[NGX_CHAT_SHA256_HEX_LEN + 1];
    char                       id[CHAT_ID_LEN + 1];
    u_char                     num[4][NGX_OFF_T_LEN];
} ngx_chat_media_upload_t;


static void ngx_chat_media_upload_cleanup(void *data);
static void ngx_chat_media_body_done(ngx_http_request_t *r);
static ngx_int_t ngx_chat_media_uploaded(ngx_chat_api_ctx_t *ctx);
static void ngx_chat_media_put_handler(ngx_http_request_t *r);
static ngx_int_t ngx_chat_media_stored(ngx_chat_api_ctx_t *ctx);
static ngx_int_t ngx_chat_media_put_done(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_media_get_done(ngx_chat_api_ctx_t *ctx,
    PGresult *res);
static ngx_int_t ngx_chat_media_serve(ngx_chat_api_ctx_t *ctx,
    const char *sha256, ngx_uint_t type);
static ngx_int_t ngx_chat_media_refuse(ngx_chat_api_ctx_t *ctx,
    ngx_uint_t status, const char *code, const char *message);
static ngx_int_t ngx_chat_media_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_request_body_filter_pt  ngx_http_next_request_body_filter;


ngx_int_t
ngx_chat_api_media_upload(ngx_chat_api_ctx_t *ctx)
{
    size_t                    cap;
    ngx_int_t                 rc;
    ngx_str_t                *ct;
    ngx_pool_cleanup_t       *cln;
    ngx_http_request_t       *r;
    ngx_chat_main_conf_t     *cmcf;
    ngx_chat_media_upload_t  *up;

    r = ctx->request;
    cmcf = ctx->conf;

    if (cmcf->media_path.len == 0) {
        return ngx_chat_media_refuse(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                     "unavailable",
                                     "no media store is configured");
    }

    up = ngx_pcalloc(r->pool, sizeof(ngx_chat_media_upload_t));
    if (up == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ct = r->headers_in.content_type ? &r->headers_in.content_type->value
                                    : NULL;
    up->declared = ct ? chat_image_type_of_mime((char *) ct->data, ct->len)
                      : 0;

    if (up->declared == 0) {
        return ngx_chat_media_refuse(ctx, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                     "unsupported_media_type",
                                     "Content-Type must be image/jpeg, "
                                     "image/png, image/gif or image/webp");
    }

    if (r->headers_in.content_length_n > (off_t) cmcf->media_max_size) {
        return ngx_chat_media_refuse(ctx, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                     "too_large", "the image is larger "
                                     "than chat_media_max_size");
    }

    if (r->headers_in.content_length_n == 0) {
        return ngx_chat_media_refuse(ctx, NGX_HTTP_BAD_REQUEST,
                                     "bad_request",
                                     "the body must be the image");
    }

    cap = NGX_CHAT_MEDIA_HEAD;

    if (r->headers_in.content_length_n > 0
        && r->headers_in.content_length_n < (off_t) cap)
    {
        cap = (size_t) r->headers_in.content_length_n;
    }

    up->head = ngx_pnalloc(r->pool, cap);
    if (up->head == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    up->head_cap = cap;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    up->sha = EVP_MD_CTX_new();
    if (up->sha == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_chat_media_upload_cleanup;
    cln->data = up;

    if (EVP_DigestInit_ex(up->sha, EVP_sha256(), NULL) != 1) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->media = up;

    /*
     * To a file, whatever its size; the file keeps its name (persistent)
     * so that the store can link it, and goes with the request (clean)
     */
    r->request_body_in_file_only = 1;
    r->request_body_in_persistent_file = 1;
    r->request_body_in_clean_file = 1;
    r->request_body_file_group_access = 0;
    r->request_body_file_log_level = 0;

    rc = ngx_http_read_client_request_body(r, ngx_chat_media_body_done);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return ngx_chat_http_status_error(r, rc);
    }

    return NGX_DONE;
}


static void
ngx_chat_media_upload_cleanup(void *data)
{
    ngx_chat_media_upload_t  *up = data;

    EVP_MD_CTX_free(up->sha);
    up->sha = NULL;
}


/* a refusal before the body is read: what there is of it is discarded */

static ngx_int_t
ngx_chat_media_refuse(ngx_chat_api_ctx_t *ctx, ngx_uint_t status,
    const char *code, const char *message)
{
    ngx_int_t  rc;

    if (ngx_chat_http_discard_body(ctx->request, &rc) != NGX_OK) {
        return rc;
    }

    return ngx_chat_api_error(ctx, status, code, message);
}


static void
ngx_chat_media_body_done(ngx_http_request_t *r)
{
    ngx_chat_ctx_t  *mctx;

    mctx = ngx_http_get_module_ctx(r, ngx_http_chat_module);

    ngx_chat_api_finish(mctx->api, ngx_chat_media_uploaded(mctx->api));
}


static ngx_int_t
ngx_chat_media_uploaded(ngx_chat_api_ctx_t *ctx)
{
    int                       rc;
    ngx_int_t                 stored;
    const char               *err;
    unsigned char             md[EVP_MAX_MD_SIZE];
    unsigned int              mdlen;
    ngx_http_request_t       *r;
    ngx_http_request_body_t  *rb;
    ngx_chat_media_upload_t  *up;

    r = ctx->request;
    rb = r->request_body;
    up = ctx->media;

    if (rb == NULL || rb->temp_file == NULL || up->size == 0) {
        return ngx_chat_api_error(ctx, NGX_HTTP_BAD_REQUEST, "bad_request",
                                  "the body must be the image");
    }

    err = NULL;
    rc = chat_image_probe(up->head, up->head_len, &up->image, &err);

    if (rc == CHAT_IMAGE_MORE && up->size > (off_t) up->head_len) {
        return ngx_chat_api_error(ctx, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                  "unsupported_media_type",
                                  "the image's header is not within its "
                                  "first 256 KB");
    }

    if (rc != CHAT_IMAGE_OK) {
        (void) ngx_snprintf(ctx->invalid, sizeof(ctx->invalid) - 1,
                            "not an image the gateway takes: %s%Z",
                            err ? err : (rc == CHAT_IMAGE_MORE ? "truncated"
                                                               : "unknown"));
        return ngx_chat_api_error(ctx, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                  "unsupported_media_type",
                                  (char *) ctx->invalid);
    }

    if (up->image.type != up->declared) {
        (void) ngx_snprintf(ctx->invalid, sizeof(ctx->invalid) - 1,
                            "the bytes are %s, not %s%Z",
                            chat_image_mime(up->image.type),
                            chat_image_mime(up->declared));
        return ngx_chat_api_error(ctx, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                  "unsupported_media_type",
                                  (char *) ctx->invalid);
    }

    mdlen = 0;

    if (EVP_DigestFinal_ex(up->sha, md, &mdlen) != 1
        || mdlen * 2 != NGX_CHAT_SHA256_HEX_LEN)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    chat_hex_encode(md, mdlen, up->hex);

    stored = ngx_chat_media_store_put(r, ctx->conf,
                                      &rb->temp_file->file.name, up->size,
                                      up->hex, chat_image_ext(up->image.type),
                                      chat_image_mime(up->image.type),
                                      &up->put);

    if (stored == NGX_AGAIN) {
        r->write_event_handler = ngx_chat_media_put_handler;
        return NGX_DONE;
    }

    if (stored != NGX_OK) {
        return ngx_chat_api_error(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  "internal", "the image could not be "
                                  "stored");
    }

    return ngx_chat_media_stored(ctx);
}


/* the parent, once the S3 PUT's subrequest is over */

static void
ngx_chat_media_put_handler(ngx_http_request_t *r)
{
    ngx_chat_ctx_t           *mctx;
    ngx_chat_api_ctx_t       *ctx;
    ngx_chat_media_upload_t  *up;

    mctx = ngx_http_get_module_ctx(r, ngx_http_chat_module);
    ctx = mctx->api;
    up = ctx->media;

    if (!up->put.done) {
        return;
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    ngx_chat_api_finish(ctx, ngx_chat_media_stored(ctx));
}


static ngx_int_t
ngx_chat_media_stored(ngx_chat_api_ctx_t *ctx)
{
    ngx_str_t                 params[7];
    const char               *mime;
    ngx_time_t               *tp;
    ngx_http_request_t       *r;
    ngx_chat_media_upload_t  *up;

    r = ctx->request;
    up = ctx->media;

    if (up->put.done
        && (up->put.status < 200 || up->put.status > 299))
    {
        /* 502, 504: the proxy could not reach it; 5xx: its own trouble */
        if (up->put.status >= 500) {
            return ngx_chat_api_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "unavailable", "the media store is "
                                      "unavailable, try again later");
        }

        (void) ngx_snprintf(ctx->invalid, sizeof(ctx->invalid) - 1,
                            "the media store refused the image (HTTP %ui): "
                            "see the error log%Z", up->put.status);
        return ngx_chat_api_error(ctx, NGX_HTTP_BAD_GATEWAY, "unavailable",
                                  (char *) ctx->invalid);
    }

    tp = ngx_timeofday();
    chat_id_next(&ngx_chat_worker->ids,
                 (uint64_t) tp->sec * 1000 + tp->msec, up->id);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "chat: media: user %uL uploaded %s, %O bytes, %s %uDx%uD"
                  "%s", ctx->user_id, up->hex, up->size,
                  chat_image_mime(up->image.type), up->image.width,
                  up->image.height,
                  up->put.stored ? "" : " (stored before)");

    mime = chat_image_mime(up->image.type);

    params[0].data = (u_char *) up->id;
    params[0].len = CHAT_ID_LEN;
    params[1].data = up->num[0];
    params[1].len = ngx_sprintf(up->num[0], "%uL", ctx->user_id)
                    - up->num[0];
    params[2].data = (u_char *) up->hex;
    params[2].len = NGX_CHAT_SHA256_HEX_LEN;
    params[3].data = (u_char *) mime;
    params[3].len = ngx_strlen(mime);
    params[4].data = up->num[1];
    params[4].len = ngx_sprintf(up->num[1], "%O", up->size) - up->num[1];
    params[5].data = up->num[2];
    params[5].len = ngx_sprintf(up->num[2], "%uD", up->image.width)
                    - up->num[2];
    params[6].data = up->num[3];
    params[6].len = ngx_sprintf(up->num[3], "%uD", up->image.height)
                    - up->num[3];

    return ngx_chat_api_pg(ctx, "SELECT media_id FROM chat_media_put($1, $2, "
                           "$3, $4, $5, $6, $7)", 7, params,
                           ngx_chat_media_put_done);
}


static ngx_int_t
ngx_chat_media_put_done(ngx_chat_api_ctx_t *ctx, PGresult *res)
{
    json_t                   *json;
    ngx_str_t                 url;
    const char               *id;
    ngx_chat_media_put_t      again;
    ngx_chat_media_upload_t  *up;

    up = ctx->media;

    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * Locally, once more, now that the rows are there: chat-worker cleanup
     * may have removed the content's file (and its row) since the first
     * link, and it removes a file only while its row is locked (sql/0010)
     */
    ngx_memzero(&again, sizeof(ngx_chat_media_put_t));

    if (ctx->conf->media_s3_bucket.len == 0
        && ngx_chat_media_store_put(ctx->request, ctx->conf,
                                    &ctx->request->request_body->temp_file
                                        ->file.name,
                                    up->size, up->hex,
                                    chat_image_ext(up->image.type),
                                    chat_image_mime(up->image.type),
                                    &again)
           != NGX_OK)
    {
        return ngx_chat_api_error(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                  "internal", "the image could not be "
                                  "stored");
    }

    id = PQgetvalue(res, 0, 0);

    ngx_chat_media_cache_put((u_char *) id, ngx_strlen(id), up->hex,
                             up->image.type, ctx->user_id);

    if (ngx_chat_media_url(ctx->conf, id, ngx_strlen(id),
                           ctx->request->pool, &url)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json = json_pack("{s:s, s:s%, s:s, s:I, s:i, s:i}",
                     "media_id", id,
                     "url", (char *) url.data, url.len,
                     "type", chat_image_mime(up->image.type),
                     "size", (json_int_t) up->size,
                     "width", (int) up->image.width,
                     "height", (int) up->image.height);

    return ngx_chat_api_reply(ctx, NGX_HTTP_CREATED, json);
}


ngx_int_t
ngx_chat_media_url(ngx_chat_main_conf_t *cmcf, const char *id, size_t len,
    ngx_pool_t *pool, ngx_str_t *url)
{
    int  n;

    url->data = ngx_pnalloc(pool, CHAT_MEDIA_URL_MAX + 1);
    if (url->data == NULL) {
        return NGX_ERROR;
    }

    n = chat_media_url_make(cmcf->media_url_key.data, cmcf->media_url_key.len,
                            id, len,
                            (int64_t) (ngx_time() + cmcf->media_url_ttl),
                            (char *) url->data, CHAT_MEDIA_URL_MAX + 1);
    if (n < 0) {
        return NGX_ERROR;
    }

    url->len = (size_t) n;

    return NGX_OK;
}


ngx_int_t
ngx_chat_api_media_get(ngx_chat_api_ctx_t *ctx)
{
    ngx_str_t                 exp, sig, *params;
    ngx_uint_t                has_exp, has_sig;
    const char               *reason;
    ngx_http_request_t       *r;
    chat_media_url_rc_e       rc;
    ngx_chat_media_cached_t  *mc;

    r = ctx->request;

    /* a path segment that is no media id names none */
    if (!chat_media_id_valid((char *) ctx->arg.data, ctx->arg.len)) {
        return ngx_chat_api_error(ctx, NGX_HTTP_NOT_FOUND, "not_found",
                                  "no such media");
    }

    if (ctx->conf->media_path.len == 0) {
        return ngx_chat_api_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "unavailable",
                                  "no media store is configured");
    }

    params = ngx_pcalloc(r->pool, 2 * sizeof(ngx_str_t));
    if (params == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[0] = ctx->arg;

    has_sig = ngx_http_arg(r, (u_char *) "sig", 3, &sig) == NGX_OK;
    has_exp = ngx_http_arg(r, (u_char *) "exp", 3, &exp) == NGX_OK;

    if (has_sig || has_exp) {
        if (!has_sig) {
            ngx_str_null(&sig);
        }

        if (!has_exp) {
            ngx_str_null(&exp);
        }

        rc = chat_media_url_verify(ctx->conf->media_url_key.data,
                                   ctx->conf->media_url_key.len,
                                   (char *) ctx->arg.data, ctx->arg.len,
                                   (char *) exp.data, exp.len,
                                   (char *) sig.data, sig.len,
                                   (int64_t) ngx_time());

        if (rc != CHAT_MEDIA_URL_OK) {
            (void) ngx_snprintf(ctx->invalid, sizeof(ctx->invalid) - 1,
                                "the signed URL is not valid: %s%Z",
                                chat_media_url_strerror(rc));
            return ngx_chat_api_error(ctx, NGX_HTTP_FORBIDDEN, "forbidden",
                                      (char *) ctx->invalid);
        }

        /* anyone with the URL: what the worker knows of the id will do */
        mc = ngx_chat_media_cache_find(ctx->arg.data, ctx->arg.len);
        if (mc) {
            return ngx_chat_media_serve(ctx, mc->sha256, mc->type);
        }

        /* params[1] stays NULL: anyone with the URL */

        return ngx_chat_api_pg(ctx, "SELECT sha256, type, owner FROM "
                               "chat_media_get($1, $2)", 2, params,
                               ngx_chat_media_get_done);
    }

    if (ngx_chat_auth_user(r, &ctx->user_id, &reason) != NGX_OK) {
        return ngx_chat_auth_refuse(r, reason);
    }

    /* its uploader: no need to ask who else may see it */
    mc = ngx_chat_media_cache_find(ctx->arg.data, ctx->arg.len);
    if (mc && mc->owner == ctx->user_id) {
        return ngx_chat_media_serve(ctx, mc->sha256, mc->type);
    }

    params[1].data = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (params[1].data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    params[1].len = ngx_sprintf(params[1].data, "%uL", ctx->user_id)
                    - params[1].data;

    return ngx_chat_api_pg(ctx, "SELECT sha256, type, owner FROM "
                           "chat_media_get($1, $2)", 2, params,
                           ngx_chat_media_get_done);
}


static ngx_int_t
ngx_chat_media_get_done(ngx_chat_api_ctx_t *ctx, PGresult *res)
{
    char                *type, *sha, *end;
    ngx_int_t            rc;
    uint64_t             owner;
    ngx_connection_t    *c;
    chat_image_type_e    t;

    if (PQntuples(res) != 1) {
        return ngx_chat_api_error(ctx, NGX_HTTP_NOT_FOUND, "not_found",
                                  "no such media");
    }

    sha = PQgetvalue(res, 0, 0);
    type = PQgetvalue(res, 0, 1);
    t = chat_image_type_of_mime(type, ngx_strlen(type));
    owner = strtoull(PQgetvalue(res, 0, 2), &end, 10);

    if (t == 0 || ngx_strlen(sha) != NGX_CHAT_SHA256_HEX_LEN || *end != '\0')
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_chat_media_cache_put(ctx->arg.data, ctx->arg.len, sha, t, owner);

    c = ctx->request->connection;

    rc = ngx_chat_media_serve(ctx, sha, t);

    if (rc == NGX_DONE) {
        /* from a backend's event, not the request's handlers */
        ngx_http_run_posted_requests(c);
    }

    return rc;
}


/*
 * Answers with the stored content: after an internal redirect (NGX_DONE),
 * the API's hold on the request goes (ngx_chat_api_finish() skips
 * NGX_DONE)
 */

static ngx_int_t
ngx_chat_media_serve(ngx_chat_api_ctx_t *ctx, const char *sha256,
    ngx_uint_t type)
{
    ngx_int_t  rc;

    rc = ngx_chat_media_store_serve(ctx->request, ctx->conf, sha256,
                                    chat_image_ext(type),
                                    chat_image_mime(type));

    if (rc == NGX_DONE) {
        ngx_http_finalize_request(ctx->request, NGX_DONE);
    }

    return rc;
}


/*
 * Every chat_api request's body, as it arrives: held to its limit (an
 * image's chat_media_max_size, else chat_api_max_body) also when it is
 * chunked; an image's hashed and its head kept.
 */

static ngx_int_t
ngx_chat_media_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    size_t                    n, limit;
    ngx_buf_t                *b;
    ngx_chain_t              *cl;
    ngx_chat_ctx_t           *mctx;
    ngx_chat_api_ctx_t       *ctx;
    ngx_chat_media_upload_t  *up;

    mctx = ngx_http_get_module_ctx(r, ngx_http_chat_module);

    if (mctx == NULL || mctx->api == NULL) {
        return ngx_http_next_request_body_filter(r, in);
    }

    ctx = mctx->api;
    up = ctx->media;
    limit = up ? ctx->conf->media_max_size : ctx->conf->api_max_body;

    for (cl = in; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file || b->pos == NULL || b->last <= b->pos) {
            continue;
        }

        n = b->last - b->pos;
        ctx->body_seen += n;

        if (ctx->body_seen > (off_t) limit) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "chat: api: request body over %uz bytes, refused",
                          limit);
            return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
        }

        if (up == NULL) {
            continue;
        }

        if (EVP_DigestUpdate(up->sha, b->pos, n) != 1) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        up->size += n;

        if (up->head_len < up->head_cap) {
            n = ngx_min(n, up->head_cap - up->head_len);
            ngx_memcpy(up->head + up->head_len, b->pos, n);
            up->head_len += n;
        }
    }

    return ngx_http_next_request_body_filter(r, in);
}


char *
ngx_chat_media_path(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *cmcf = conf;

    ngx_str_t   *value;
    ngx_path_t  *path;

    if (cmcf->media_path.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    cmcf->media_path = value[1];

    if (cmcf->media_path.len > 1
        && cmcf->media_path.data[cmcf->media_path.len - 1] == '/')
    {
        cmcf->media_path.len--;
    }

    if (ngx_conf_full_name(cf->cycle, &cmcf->media_path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* uploads are written here first: on the store's file system */
    path = ngx_pcalloc(cf->pool, sizeof(ngx_path_t));
    if (path == NULL) {
        return NGX_CONF_ERROR;
    }

    path->name.len = cmcf->media_path.len + sizeof("/.tmp") - 1;
    path->name.data = ngx_pnalloc(cf->pool, path->name.len + 1);
    if (path->name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    (void) ngx_sprintf(path->name.data, "%V/.tmp%Z", &cmcf->media_path);
    path->conf_file = cf->conf_file->file.name.data;
    path->line = cf->conf_file->line;

    if (ngx_add_path(cf, &path) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    cmcf->media_temp = path;

    return NGX_CONF_OK;
}


char *
ngx_chat_media_url_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_chat_main_conf_t *cmcf = conf;

    if (cmcf->media_url_key.data) {
        return "is duplicate";
    }

    if (ngx_chat_conf_secret_file(cf, cmd, 4096, &cmcf->media_url_key)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (cmcf->media_url_key.len < CHAT_MEDIA_URL_KEY_MIN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_media_url_secret_file: \"%V\" holds %uz "
                           "bytes, at least %d are needed (e.g. openssl rand "
                           "-base64 48)", &((ngx_str_t *) cf->args->elts)[1],
                           cmcf->media_url_key.len, CHAT_MEDIA_URL_KEY_MIN);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_chat_media_init_conf(ngx_conf_t *cf, ngx_chat_main_conf_t *cmcf)
{
    u_char  *key;

    ngx_conf_init_size_value(cmcf->media_max_size, 16 * 1024 * 1024);
    ngx_conf_init_value(cmcf->media_url_ttl, 3600);

    if (cmcf->media_uri.data == NULL) {
        ngx_str_set(&cmcf->media_uri, "/_chat_media/");
    }

    if (cmcf->media_uri.len < 2 || cmcf->media_uri.data[0] != '/'
        || cmcf->media_uri.data[cmcf->media_uri.len - 1] != '/')
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_media_location\" must start and end "
                           "with \"/\"");
        return NGX_CONF_ERROR;
    }

    if (ngx_chat_media_s3_init_conf(cf, cmcf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (cmcf->media_url_ttl <= 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_media_url_ttl\" must be greater than "
                           "zero");
        return NGX_CONF_ERROR;
    }

    if (cmcf->media_path.len == 0 || cmcf->media_url_key.len) {
        return NGX_CONF_OK;
    }

    /* the URL key is derived from the JWT secret: never the same key */
    if (cmcf->jwt_secret.len < CHAT_MEDIA_URL_KEY_MIN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_media_path\" needs "
                           "\"chat_media_url_secret_file\" or "
                           "\"chat_jwt_secret_file\"");
        return NGX_CONF_ERROR;
    }

    key = ngx_pnalloc(cf->pool, 32);
    if (key == NULL) {
        return NGX_CONF_ERROR;
    }

    if (chat_media_url_key(cmcf->jwt_secret.data, cmcf->jwt_secret.len, key)
        != 0)
    {
        return NGX_CONF_ERROR;
    }

    cmcf->media_url_key.data = key;
    cmcf->media_url_key.len = 32;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_chat_media_postconfiguration(ngx_conf_t *cf)
{
    ngx_uint_t                  i;
    ngx_chat_main_conf_t       *cmcf;
    ngx_http_core_loc_conf_t  **clcfp;

    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_chat_media_body_filter;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_chat_module);

    if (cmcf->api_locations == NULL) {
        return NGX_OK;
    }

    if (cmcf->media_path.len == 0) {
        return NGX_OK;
    }

    if (ngx_chat_media_s3_postconfiguration(cf, cmcf) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * nginx holds a body to client_max_body_size before the module sees
     * it: the API's locations take at least chat_media_max_size (the
     * filter above holds each request to its own limit), and write
     * uploads where the store can link them
     */
    clcfp = cmcf->api_locations->elts;

    for (i = 0; i < cmcf->api_locations->nelts; i++) {
        if (clcfp[i]->client_max_body_size
            && clcfp[i]->client_max_body_size < (off_t) cmcf->media_max_size)
        {
            clcfp[i]->client_max_body_size = cmcf->media_max_size;
        }

        clcfp[i]->client_body_temp_path = cmcf->media_temp;
    }

    return NGX_OK;
}
