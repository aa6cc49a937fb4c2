
/*
 * Copyright (C) ngx_chat authors
 *
 * Where the bytes of uploaded images live, behind one small interface:
 * put a finished upload under its SHA-256, and answer a download of it.
 * Two backends, by configuration.  The local one (chat_media_path): files
 * at <path>/<first two hex digits>/<sha256>.<ext>, put there by link(2)
 * from the upload's temporary file (so one content is stored once),
 * served by nginx's own static handler through an internal location
 * (chat_media_location; sendfile, ETag, Range).  The S3-compatible one
 * (chat_media_s3, ngx_chat_media_s3.c): the same key in a bucket, PUT by
 * a subrequest to an internal location that proxies to the endpoint
 * (SigV4, src/common/chat_sigv4.c), served by a redirect to a presigned
 * URL.
 */


#ifndef _NGX_CHAT_MEDIA_STORE_H_INCLUDED_
#define _NGX_CHAT_MEDIA_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_media_key.h"


/*
 * The upload of r in the temporary file path (size bytes) becomes the
 * stored content sha256 (hex) with extension ext and type mime: NGX_OK
 * (stored now, or already there: put->stored says which), NGX_ERROR
 * (logged), or NGX_AGAIN: under way (S3), r's write_event_handler runs
 * once put->done, and put->status is then the store's HTTP status (2xx:
 * stored; 502 or 504: the store could not be reached).
 */
ngx_int_t ngx_chat_media_store_put(ngx_http_request_t *r,
    ngx_chat_main_conf_t *cmcf, ngx_str_t *path, off_t size,
    const char *sha256, const char *ext, const char *mime,
    ngx_chat_media_put_t *put);

/*
 * Answers r with the stored content (of type mime): an internal redirect
 * to chat_media_location (NGX_DONE: the redirect took the request), or a
 * 302 to a presigned URL (S3; NGX_OK: sent), or an HTTP status.
 */
ngx_int_t ngx_chat_media_store_serve(ngx_http_request_t *r,
    ngx_chat_main_conf_t *cmcf, const char *sha256, const char *ext,
    const char *mime);


#endif /* _NGX_CHAT_MEDIA_STORE_H_INCLUDED_ */
