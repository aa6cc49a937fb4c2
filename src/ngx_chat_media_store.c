
/*
 * Copyright (C) ngx_chat authors
 *
 * The media store (ngx_chat_media_store.h): the local backend here, the
 * S3-compatible one in ngx_chat_media_s3.c.  Locally,  link(2) and mkdir(2)
 * are the only file system calls on the event loop, as nginx's own
 * proxy_store and dav modules rename files there: metadata operations,
 * no data copied.  The temporary file is on the store's file system
 * (client_body_temp_path of the API location is <path>/.tmp), so the
 * link cannot cross devices.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat_media_store.h"
#include "ngx_chat_media_s3.h"


ngx_int_t
ngx_chat_media_store_put(ngx_http_request_t *r, ngx_chat_main_conf_t *cmcf,
    ngx_str_t *path, off_t size, const char *sha256, const char *ext,
    const char *mime, ngx_chat_media_put_t *put)
{
    u_char      *p, *dir_end;
    u_char       name[NGX_MAX_PATH];
    ngx_err_t    err;
    ngx_log_t   *log;
    ngx_uint_t  *stored;

    if (cmcf->media_s3_bucket.len) {
        return ngx_chat_media_s3_put(r, cmcf, size, sha256, ext, mime, put);
    }

    log = r->connection->log;
    stored = &put->stored;

    if (cmcf->media_path.len + NGX_CHAT_SHA256_HEX_LEN + 16 > NGX_MAX_PATH) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(name, cmcf->media_path.data, cmcf->media_path.len);
    *p++ = '/';
    dir_end = p + 2;
    p = ngx_chat_media_key(p, sha256, ext);
    *p = '\0';

    *stored = 0;

    if (link((char *) path->data, (char *) name) == 0) {
        *stored = 1;
        return NGX_OK;
    }

    err = ngx_errno;

    if (err == NGX_EEXIST) {
        return NGX_OK;
    }

    if (err == NGX_ENOENT) {
        *dir_end = '\0';

        if (ngx_create_dir(name, 0700) == NGX_FILE_ERROR
            && ngx_errno != NGX_EEXIST)
        {
            ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                          ngx_create_dir_n " \"%s\" failed", name);
            return NGX_ERROR;
        }

        *dir_end = '/';

        if (link((char *) path->data, (char *) name) == 0) {
            *stored = 1;
            return NGX_OK;
        }

        err = ngx_errno;

        if (err == NGX_EEXIST) {
            return NGX_OK;
        }
    }

    ngx_log_error(NGX_LOG_CRIT, log, err,
                  "chat: media: link(\"%V\", \"%s\") failed", path, name);

    return NGX_ERROR;
}


ngx_int_t
ngx_chat_media_store_serve(ngx_http_request_t *r, ngx_chat_main_conf_t *cmcf,
    const char *sha256, const char *ext, const char *mime)
{
    u_char           *p;
    ngx_str_t         uri;
    ngx_table_elt_t  *h;

    if (cmcf->media_s3_bucket.len) {
        return ngx_chat_media_s3_serve(r, cmcf, sha256, ext);
    }

    uri.data = ngx_pnalloc(r->pool, cmcf->media_uri.len
                                    + NGX_CHAT_SHA256_HEX_LEN + 16);
    if (uri.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(uri.data, cmcf->media_uri.data, cmcf->media_uri.len);
    p = ngx_chat_media_key(p, sha256, ext);
    uri.len = p - uri.data;

    /* the static handler keeps a type that is set (by the bytes, here) */
    r->headers_out.content_type.data = (u_char *) mime;
    r->headers_out.content_type.len = ngx_strlen(mime);
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    /* the content of a media id never changes */
    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "private, max-age=31536000, immutable");

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "X-Content-Type-Options");
    ngx_str_set(&h->value, "nosniff");

    (void) ngx_http_internal_redirect(r, &uri, NULL);

    return NGX_DONE;
}
