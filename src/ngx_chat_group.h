
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_GROUP_H_INCLUDED_
#define _NGX_CHAT_GROUP_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_chat.h"


#define NGX_CHAT_GROUP_CACHE_TTL  600      /* s, the member list */
#define NGX_CHAT_GROUP_LOG_MAX    5000     /* newest messages per group */
#define NGX_CHAT_GROUP_LOG_TTL    2592000  /* 30 days */


/*
 * A group's keys live on the Redis server that a user with the group's
 * id would have (the ring is the same): chat:*:{g:<gid>}.
 */
ngx_chat_redis_t *ngx_chat_redis_for_group(uint64_t gid);

/* every member's routes are on the group's server: one Redis server */
ngx_uint_t ngx_chat_group_all_local(void);

/* "chat:<name>:{g:<gid>}" at p (see ngx_chat_batch_str) */
u_char *ngx_chat_group_key(ngx_str_t *key, u_char *p, const char *name,
    uint64_t gid);

/*
 * The member list from PostgreSQL into Redis (GFILL) for a script that
 * found it missing at version; then the handler: NGX_OK (filled, or it
 * changed meanwhile: ask again), NGX_DECLINED (no such group), NGX_ERROR
 * (PostgreSQL or Redis failed).  Fills of one group coalesce.
 */
typedef void (*ngx_chat_group_filled_pt)(void *data, ngx_int_t rc);

ngx_int_t ngx_chat_group_fill(uint64_t gid, const char *version,
    size_t len, ngx_chat_group_filled_pt handler, void *data);

/* a fill of the group is under way here (a new one would join it) */
ngx_uint_t ngx_chat_group_filling(uint64_t gid);

/* a membership change was committed: the cached list goes (GINVAL) */
void ngx_chat_group_invalidate(uint64_t gid);

/*
 * With several Redis servers: a group frame (n 0: not logged, id "-";
 * head "<from> <seq>") to the members (a reply's array of ids) on each
 * server (GPUB), except the connection except_conn of this worker and
 * the member skip (0: none).
 */
void ngx_chat_group_publish(uint64_t gid, uint64_t n, const char *id,
    const char *head, const char *frame, size_t len, uint64_t except_conn,
    uint64_t skip, redisReply *members);

/* fills under way are answered as failed */
void ngx_chat_group_exit(void);


#endif /* _NGX_CHAT_GROUP_H_INCLUDED_ */
