
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker: the gateway's Redis servers as the daemons see them
 * (blocking hiredis, one connection per server, made when first needed),
 * and the user lookups they need.  The servers are found as the gateway
 * finds them: the ring of chat_ring.h over their names as written in
 * nginx's chat_redis (--redis "127.0.0.1:6379,127.0.0.1:6380"), so a
 * user's keys are on the same server for both.
 *
 * Not thread-safe: one chat_redis_t per thread.
 */


#ifndef _CHAT_REDIS_H_INCLUDED_
#define _CHAT_REDIS_H_INCLUDED_


#include <stdint.h>

#include <hiredis/hiredis.h>

#include "chat_ring.h"


#define CHAT_REDIS_MAX_SERVERS   64
#define CHAT_REDIS_MAX_PASSWORD  512


typedef struct {
    char               *name;           /* as written: the ring's key */
    char               *host;           /* or the unix socket's path */
    int                 port;           /* 0: unix */
    redisContext       *ctx;
} chat_redis_server_t;


typedef struct {
    chat_redis_server_t   servers[CHAT_REDIS_MAX_SERVERS];
    int                   n;
    chat_ring_t           ring;
    chat_ring_point_t    *points;
    char                 *password;     /* NULL: no AUTH; never logged */
    int                   timeout;      /* ms, connect and each reply */
    char                  err[256];
} chat_redis_t;


/*
 * list: "host[:port]" or "unix:/path" entries, comma-separated;
 * password_file: NULL or a file whose first line is the password (without
 * its newline, at most CHAT_REDIS_MAX_PASSWORD bytes).  Connects nothing
 * yet.  0, or -1 with the reason in r->err.
 */
int chat_redis_init(chat_redis_t *r, const char *list,
    const char *password_file, int timeout);
void chat_redis_free(chat_redis_t *r);

/*
 * Which of users[0..n-1] are online: a member of their server's
 * chat:presence:live with a heartbeat at or after since (ms since the
 * epoch); online[i] 1 or 0.  One pipelined round trip per server that
 * holds any of them.  0, or -1 with the reason in r->err (the connection
 * that failed is dropped and made again next time).
 */
int chat_redis_online(chat_redis_t *r, const int64_t *users, int n,
    int64_t since, unsigned char *online);

/*
 * HSET key field value on the server that holds key (the gateway's
 * ngx_chat_redis_for_key()).  0, or -1 with the reason in r->err.
 */
int chat_redis_hset(chat_redis_t *r, const char *key, const char *field,
    const char *value);


#endif /* _CHAT_REDIS_H_INCLUDED_ */
