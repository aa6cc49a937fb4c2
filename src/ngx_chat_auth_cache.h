
/*
 * Copyright (C) ngx_chat authors
 *
 * The worker's verified tokens: a token whose signature and claims were
 * checked once is known by its bytes until it expires, so that the next
 * requests with it skip the base64, the HMAC and the two JSON parses.
 * Only the verification is remembered: the deny-list (logout) is still
 * asked on every request (ngx_chat_auth.c).
 *
 * Direct-mapped, NGX_CHAT_AUTH_CACHE entries per worker, each with room
 * for its token (about 600 KB of a worker's static memory, resident only
 * as it fills); a token longer than NGX_CHAT_AUTH_CACHE_TOKEN bytes is
 * verified every time.  An entry
 * is found only for the same bytes (compared in constant time), while
 * its exp is ahead and the clock is not behind the time it was checked
 * (so that "nbf", which was then past, still is).  A reload starts
 * workers with empty tables, and a new secret with them.
 */


#ifndef _NGX_CHAT_AUTH_CACHE_H_INCLUDED_
#define _NGX_CHAT_AUTH_CACHE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_chat.h"


#define NGX_CHAT_AUTH_CACHE        1024
#define NGX_CHAT_AUTH_CACHE_TOKEN  512


typedef struct {
    size_t                     token_len;   /* 0: empty */
    u_char                     token[NGX_CHAT_AUTH_CACHE_TOKEN];
    time_t                     checked;     /* when it was verified */
    time_t                     exp;
    uint64_t                   user_id;
    size_t                     token_id_len;
    u_char                     token_id[NGX_CHAT_TOKEN_ID_LEN];
} ngx_chat_auth_cached_t;


/* the entry of this token, or NULL */
ngx_chat_auth_cached_t *ngx_chat_auth_cache_find(const u_char *token,
    size_t len, time_t now);

/* remembers a token just verified (one too long: nothing) */
void ngx_chat_auth_cache_put(const u_char *token, size_t len, time_t now,
    time_t exp, uint64_t user_id, const u_char *token_id,
    size_t token_id_len);


#endif /* _NGX_CHAT_AUTH_CACHE_H_INCLUDED_ */
