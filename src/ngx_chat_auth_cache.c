
/*
 * Copyright (C) ngx_chat authors
 *
 * The worker's verified tokens (ngx_chat_auth_cache.h).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <openssl/crypto.h>

#include "ngx_chat_auth_cache.h"


static ngx_chat_auth_cached_t *ngx_chat_auth_cache_slot(const u_char *token,
    size_t len);


static ngx_chat_auth_cached_t  ngx_chat_auth_cache[NGX_CHAT_AUTH_CACHE];


ngx_chat_auth_cached_t *
ngx_chat_auth_cache_find(const u_char *token, size_t len, time_t now)
{
    ngx_chat_auth_cached_t  *e;

    if (len == 0 || len > NGX_CHAT_AUTH_CACHE_TOKEN) {
        return NULL;
    }

    e = ngx_chat_auth_cache_slot(token, len);

    if (e->token_len != len || now >= e->exp || now < e->checked
        || CRYPTO_memcmp(e->token, token, len) != 0)
    {
        return NULL;
    }

    return e;
}


void
ngx_chat_auth_cache_put(const u_char *token, size_t len, time_t now,
    time_t exp, uint64_t user_id, const u_char *token_id,
    size_t token_id_len)
{
    ngx_chat_auth_cached_t  *e;

    if (len == 0 || len > NGX_CHAT_AUTH_CACHE_TOKEN
        || token_id_len > NGX_CHAT_TOKEN_ID_LEN || exp <= now)
    {
        return;
    }

    e = ngx_chat_auth_cache_slot(token, len);

    ngx_memcpy(e->token, token, len);
    e->token_len = len;
    e->checked = now;
    e->exp = exp;
    e->user_id = user_id;
    e->token_id_len = token_id_len;
    ngx_memcpy(e->token_id, token_id, token_id_len);
}


/*
 * The token's slot, by a hash of all its bytes.  Anyone can make tokens
 * that share a slot, but only a verified token is ever put, and a find
 * compares every byte: a forged token is verified, and refused, as if
 * there were no table.
 */

static ngx_chat_auth_cached_t *
ngx_chat_auth_cache_slot(const u_char *token, size_t len)
{
    return &ngx_chat_auth_cache[ngx_murmur_hash2((u_char *) token, len)
                                % NGX_CHAT_AUTH_CACHE];
}
