
/*
 * Copyright (C) ngx_chat authors
 *
 * Where the bytes of uploaded images live, behind one small interface:
 * put a finished upload under its SHA-256, and answer a download of it.
 * The backend today is a local directory (chat_media_path): files at
 * <path>/<first two hex digits>/<sha256>.<ext>, put there by link(2) from
 * the upload's temporary file (so one content is stored once), served by
 * nginx's own static handler through an internal location
 * (chat_media_location; sendfile, ETag, Range).  An S3-compatible backend
 * (SigV4, src/common/chat_sigv4.c) is the next one.
 */


#ifndef _NGX_CHAT_MEDIA_STORE_H_INCLUDED_
#define _NGX_CHAT_MEDIA_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"


#define NGX_CHAT_SHA256_HEX_LEN  64


/*
 * The upload in the temporary file path becomes the stored content
 * sha256 (hex) with extension ext: NGX_OK (stored now, or already there:
 * *stored says which), or NGX_ERROR (logged).
 */
ngx_int_t ngx_chat_media_store_put(ngx_chat_main_conf_t *cmcf,
    ngx_str_t *path, const char *sha256, const char *ext,
    ngx_uint_t *stored, ngx_log_t *log);

/*
 * Answers r with the stored content (of type mime): an internal redirect
 * to chat_media_location.  NGX_DONE (the redirect took the request), or
 * an HTTP status.
 */
ngx_int_t ngx_chat_media_store_serve(ngx_http_request_t *r,
    ngx_chat_main_conf_t *cmcf, const char *sha256, const char *ext,
    const char *mime);


#endif /* _NGX_CHAT_MEDIA_STORE_H_INCLUDED_ */
