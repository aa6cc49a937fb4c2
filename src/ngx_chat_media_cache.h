
/*
 * Copyright (C) ngx_chat authors
 *
 * What a worker knows of media ids it has seen: the stored content, its
 * type and its uploader, per id.  The content of an id never changes, so
 * a download by signed URL (anyone) or by its uploader's token needs no
 * PostgreSQL query once the id is here: it is put here by the upload and
 * by every lookup.  Direct-mapped, NGX_CHAT_MEDIA_CACHE entries, each
 * good for NGX_CHAT_MEDIA_CACHE_TTL seconds (an upload collected by
 * chat-worker cleanup, or of an account deleted, is served to a signed
 * URL that long at most; its file may be gone already: then 404).
 */


#ifndef _NGX_CHAT_MEDIA_CACHE_H_INCLUDED_
#define _NGX_CHAT_MEDIA_CACHE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_chat.h"


#define NGX_CHAT_MEDIA_CACHE      2048
#define NGX_CHAT_MEDIA_CACHE_TTL  600


typedef struct {
    time_t                     expires;     /* 0: empty */
    uint64_t                   owner;
    ngx_uint_t                 type;        /* chat_image_type_e */
    u_char                     id_len;
    char                       id[CHAT_ID_LEN];
    char                       sha256[64];
} ngx_chat_media_cached_t;


/* the entry of id, or NULL */
ngx_chat_media_cached_t *ngx_chat_media_cache_find(const u_char *id,
    size_t len);

/* remembers id (ids longer than the gateway's are not kept) */
void ngx_chat_media_cache_put(const u_char *id, size_t len,
    const char *sha256, ngx_uint_t type, uint64_t owner);


#endif /* _NGX_CHAT_MEDIA_CACHE_H_INCLUDED_ */
