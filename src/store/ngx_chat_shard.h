
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_SHARD_H_INCLUDED_
#define _NGX_CHAT_SHARD_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_chat_redis.h"
#include "chat_ring.h"


/*
 * At configuration: the ring over the n servers of chat_redis, by their
 * names as written (chat_ring.h), its points from the pool.
 */
ngx_int_t ngx_chat_shard_ring_init(chat_ring_t *ring,
    ngx_chat_redis_addr_t *addrs, ngx_uint_t n, ngx_pool_t *pool);

/*
 * In a worker: one connection per server, in the order configured, or
 * NULL (what was made is destroyed again).
 */
ngx_chat_redis_t **ngx_chat_shard_connect(ngx_chat_redis_addr_t *addrs,
    ngx_uint_t n, ngx_msec_t timeout, ngx_log_t *log);
void ngx_chat_shard_disconnect(ngx_chat_redis_t **redis, ngx_uint_t n);

/*
 * The servers the lookups below answer with, until the next call;
 * NULL, 0: none, the lookups answer NULL.
 */
void ngx_chat_shard_use(ngx_chat_redis_t **redis, ngx_uint_t n,
    chat_ring_t *ring);

/* the index of the user's server among them; 0 without servers */
ngx_uint_t ngx_chat_shard_of_user(uint64_t user_id);

/* the server that holds a user's or a key's data; NULL without servers */
ngx_chat_redis_t *ngx_chat_redis_for_user(uint64_t user_id);
ngx_chat_redis_t *ngx_chat_redis_for_key(u_char *key, size_t len);


#endif /* _NGX_CHAT_SHARD_H_INCLUDED_ */
