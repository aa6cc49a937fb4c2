
/*
 * Copyright (C) ngx_chat authors
 *
 * What the media store and its backends share: the key of a stored
 * content ("<first two hex digits>/<sha256>.<ext>", a file under
 * chat_media_path or an object in the bucket) and the state of one put.
 */


#ifndef _NGX_CHAT_MEDIA_KEY_H_INCLUDED_
#define _NGX_CHAT_MEDIA_KEY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_CHAT_SHA256_HEX_LEN  64


/* one put under way (the caller's, zeroed) */
typedef struct {
    ngx_uint_t                 stored;    /* stored now, not there before */
    ngx_uint_t                 done;      /* S3: the PUT is over */
    ngx_uint_t                 status;    /* S3: its HTTP status */
} ngx_chat_media_put_t;


/* "<2 hex>/<64 hex>.<ext>" at p: the key in the store; returns its end */
u_char *ngx_chat_media_key(u_char *p, const char *sha256, const char *ext);


#endif /* _NGX_CHAT_MEDIA_KEY_H_INCLUDED_ */
