
/*
 * Copyright (C) ngx_chat authors
 *
 * The S3-compatible media store (chat_media_s3).  An upload is PUT to
 * <endpoint>/<bucket>/<2 hex>/<sha256>.<ext> by a subrequest to an
 * internal location (chat_media_s3_location) that proxies to the
 * endpoint: its body is the upload's temporary file, its headers come
 * from variables set here ($chat_media_s3_host, _date, _content_sha256,
 * _content_type, _content_length, _authorization: SigV4).  A download is
 * a 302 to a presigned GET URL.  Nothing blocks the worker: the proxy
 * module does the I/O, with its own timeouts.
 */


#ifndef _NGX_CHAT_MEDIA_S3_H_INCLUDED_
#define _NGX_CHAT_MEDIA_S3_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_media_key.h"


/* presigned URLs live at most this long, whatever chat_media_url_ttl */
#define NGX_CHAT_MEDIA_S3_PRESIGN_MAX  3600


/* see ngx_chat_media_store_put(): NGX_AGAIN, or NGX_ERROR */
ngx_int_t ngx_chat_media_s3_put(ngx_http_request_t *r,
    ngx_chat_main_conf_t *cmcf, off_t size, const char *sha256,
    const char *ext, const char *mime, ngx_chat_media_put_t *put);

/* a 302 to a presigned GET URL: NGX_OK once sent, or an HTTP status */
ngx_int_t ngx_chat_media_s3_serve(ngx_http_request_t *r,
    ngx_chat_main_conf_t *cmcf, const char *sha256, const char *ext);

char *ngx_chat_media_s3(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_chat_media_s3_credentials_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* checks, from the main configuration's init */
char *ngx_chat_media_s3_init_conf(ngx_conf_t *cf,
    ngx_chat_main_conf_t *cmcf);

/* the variables (preconfiguration), and their indexes (postconfiguration) */
ngx_int_t ngx_chat_media_s3_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_chat_media_s3_postconfiguration(ngx_conf_t *cf,
    ngx_chat_main_conf_t *cmcf);


#endif /* _NGX_CHAT_MEDIA_S3_H_INCLUDED_ */
