
/*
 * Copyright (C) ngx_chat authors
 *
 * The worker's media ids (ngx_chat_media_cache.h).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_chat_media_cache.h"


static ngx_chat_media_cached_t  ngx_chat_media_cache[NGX_CHAT_MEDIA_CACHE];


ngx_chat_media_cached_t *
ngx_chat_media_cache_find(const u_char *id, size_t len)
{
    ngx_chat_media_cached_t  *e;

    if (len == 0 || len > CHAT_ID_LEN) {
        return NULL;
    }

    e = &ngx_chat_media_cache[ngx_hash_key((u_char *) id, len)
                              % NGX_CHAT_MEDIA_CACHE];

    if (e->expires <= ngx_time() || e->id_len != len
        || ngx_memcmp(e->id, id, len) != 0)
    {
        return NULL;
    }

    return e;
}


void
ngx_chat_media_cache_put(const u_char *id, size_t len, const char *sha256,
    ngx_uint_t type, uint64_t owner)
{
    ngx_chat_media_cached_t  *e;

    if (len == 0 || len > CHAT_ID_LEN || ngx_strlen(sha256) != 64) {
        return;
    }

    e = &ngx_chat_media_cache[ngx_hash_key((u_char *) id, len)
                              % NGX_CHAT_MEDIA_CACHE];

    e->expires = ngx_time() + NGX_CHAT_MEDIA_CACHE_TTL;
    e->owner = owner;
    e->type = type;
    e->id_len = (u_char) len;
    ngx_memcpy(e->id, id, len);
    ngx_memcpy(e->sha256, sha256, 64);
}
