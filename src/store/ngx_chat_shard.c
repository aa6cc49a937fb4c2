
/*
 * Copyright (C) ngx_chat authors
 *
 * Which Redis server holds a user's or a key's data: a ketama ring
 * (chat_ring) over the servers of chat_redis, built once at configuration,
 * and the worker's connections to them, one per server.  Every node, every
 * worker and every reload computes the same ring from the same list.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_chat_shard.h"


typedef struct {
    ngx_chat_redis_t         **redis;
    ngx_uint_t                 n;
    chat_ring_t               *ring;
} ngx_chat_shard_set_t;


static ngx_chat_shard_set_t  ngx_chat_shard_set;


ngx_int_t
ngx_chat_shard_ring_init(chat_ring_t *ring, ngx_chat_redis_addr_t *addrs,
    ngx_uint_t n, ngx_pool_t *pool)
{
    size_t              *lens;
    ngx_uint_t           i;
    const char         **names;
    chat_ring_point_t   *points;

    names = ngx_palloc(pool, n * sizeof(char *));
    lens = ngx_palloc(pool, n * sizeof(size_t));
    points = ngx_palloc(pool, chat_ring_points_needed(n, CHAT_RING_VNODES)
                              * sizeof(chat_ring_point_t));

    if (names == NULL || lens == NULL || points == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        names[i] = (const char *) addrs[i].name.data;
        lens[i] = addrs[i].name.len;
    }

    if (chat_ring_init(ring, points, names, lens, n, CHAT_RING_VNODES) != 0) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_chat_redis_t **
ngx_chat_shard_connect(ngx_chat_redis_addr_t *addrs, ngx_uint_t n,
    ngx_msec_t timeout, ngx_log_t *log)
{
    ngx_uint_t          i;
    ngx_chat_redis_t  **redis;

    redis = ngx_calloc(n * sizeof(ngx_chat_redis_t *), log);
    if (redis == NULL) {
        return NULL;
    }

    for (i = 0; i < n; i++) {
        redis[i] = ngx_chat_redis_create(&addrs[i], timeout, log);
        if (redis[i] == NULL) {
            ngx_chat_shard_disconnect(redis, i);
            return NULL;
        }
    }

    return redis;
}


void
ngx_chat_shard_disconnect(ngx_chat_redis_t **redis, ngx_uint_t n)
{
    ngx_uint_t  i;

    if (redis == NULL) {
        return;
    }

    for (i = 0; i < n; i++) {
        if (redis[i]) {
            ngx_chat_redis_destroy(redis[i]);
        }
    }

    ngx_free(redis);
}


void
ngx_chat_shard_use(ngx_chat_redis_t **redis, ngx_uint_t n, chat_ring_t *ring)
{
    ngx_chat_shard_set.redis = redis;
    ngx_chat_shard_set.n = (redis && ring) ? n : 0;
    ngx_chat_shard_set.ring = ring;
}


ngx_uint_t
ngx_chat_shard_of_user(uint64_t user_id)
{
    if (ngx_chat_shard_set.n == 0) {
        return 0;
    }

    return chat_ring_lookup_u64(ngx_chat_shard_set.ring, user_id);
}


ngx_chat_redis_t *
ngx_chat_redis_for_user(uint64_t user_id)
{
    if (ngx_chat_shard_set.n == 0) {
        return NULL;
    }

    return ngx_chat_shard_set.redis[ngx_chat_shard_of_user(user_id)];
}


ngx_chat_redis_t *
ngx_chat_redis_for_key(u_char *key, size_t len)
{
    if (ngx_chat_shard_set.n == 0) {
        return NULL;
    }

    return ngx_chat_shard_set.redis[chat_ring_lookup(ngx_chat_shard_set.ring,
                                                     key, len)];
}
