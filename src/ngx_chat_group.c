
/*
 * Copyright (C) ngx_chat authors
 *
 * A group's keys in Redis and its cached member list (cache-aside): the
 * scripts that need the list (GSEQ, GDELIVER, GTYPE) answer "miss" with
 * the list's version when Redis does not have it; it is then read from
 * PostgreSQL and set with that version (GFILL), which lands only if no
 * membership change came in between: every change, once committed, moves
 * the version and drops the list (GINVAL, ngx_chat_api_groups.c), so it
 * holds from the very next message.  The list also expires
 * (NGX_CHAT_GROUP_CACHE_TTL), which bounds what a lost invalidation (Redis
 * down at that moment) can leave behind.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_chat.h"
#include "ngx_chat_route.h"
#include "ngx_chat_group.h"
#include "ngx_chat_lua.h"
#include "ngx_chat_batch.h"
#include "ngx_chat_shard.h"


#define NGX_CHAT_GROUP_MEMBERS_SQL                                           \
    "SELECT user_id FROM group_members WHERE group_id = $1"

#define NGX_CHAT_GROUP_VERSION_LEN  24


typedef struct {
    ngx_queue_t                queue;
    ngx_chat_group_filled_pt   handler;
    void                      *data;
} ngx_chat_group_waiter_t;


/* one group's fill under way */
typedef struct {
    ngx_queue_t                queue;       /* in ngx_chat_group_fills */
    ngx_queue_t                waiters;
    uint64_t                   gid;
    char                       version[NGX_CHAT_GROUP_VERSION_LEN + 1];
} ngx_chat_group_fill_t;


static void ngx_chat_group_members(ngx_chat_store_rc_e rc, PGresult *res,
    void *data);
static void ngx_chat_group_filled(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data);
static void ngx_chat_group_answer(ngx_chat_group_fill_t *f, ngx_int_t rc);


static ngx_queue_t  ngx_chat_group_fills = { &ngx_chat_group_fills,
                                             &ngx_chat_group_fills };


ngx_chat_redis_t *
ngx_chat_redis_for_group(uint64_t gid)
{
    return ngx_chat_redis_for_user(gid);
}


ngx_uint_t
ngx_chat_group_all_local(void)
{
    return ngx_chat_worker && ngx_chat_worker->nredis == 1;
}


u_char *
ngx_chat_group_key(ngx_str_t *key, u_char *p, const char *name, uint64_t gid)
{
    return ngx_chat_batch_str(key, p, "chat:%s:{g:%uL}", name, gid);
}


ngx_uint_t
ngx_chat_group_filling(uint64_t gid)
{
    ngx_queue_t            *q;
    ngx_chat_group_fill_t  *f;

    for (q = ngx_queue_head(&ngx_chat_group_fills);
         q != ngx_queue_sentinel(&ngx_chat_group_fills);
         q = ngx_queue_next(q))
    {
        f = ngx_queue_data(q, ngx_chat_group_fill_t, queue);

        if (f->gid == gid) {
            return 1;
        }
    }

    return 0;
}


ngx_int_t
ngx_chat_group_fill(uint64_t gid, const char *version, size_t len,
    ngx_chat_group_filled_pt handler, void *data)
{
    u_char                    buf[NGX_INT64_LEN];
    ngx_str_t                 param;
    ngx_queue_t              *q;
    ngx_chat_group_fill_t    *f;
    ngx_chat_group_waiter_t  *wt;
    ngx_chat_worker_t        *w = ngx_chat_worker;

    if (w == NULL || w->pg == NULL || len > NGX_CHAT_GROUP_VERSION_LEN) {
        return NGX_ERROR;
    }

    wt = ngx_alloc(sizeof(ngx_chat_group_waiter_t), ngx_cycle->log);
    if (wt == NULL) {
        return NGX_ERROR;
    }

    wt->handler = handler;
    wt->data = data;

    for (q = ngx_queue_head(&ngx_chat_group_fills);
         q != ngx_queue_sentinel(&ngx_chat_group_fills);
         q = ngx_queue_next(q))
    {
        f = ngx_queue_data(q, ngx_chat_group_fill_t, queue);

        if (f->gid == gid) {
            ngx_queue_insert_tail(&f->waiters, &wt->queue);
            return NGX_OK;
        }
    }

    f = ngx_alloc(sizeof(ngx_chat_group_fill_t), ngx_cycle->log);
    if (f == NULL) {
        ngx_free(wt);
        return NGX_ERROR;
    }

    f->gid = gid;
    ngx_memcpy(f->version, version, len);
    f->version[len] = '\0';
    ngx_queue_init(&f->waiters);
    ngx_queue_insert_tail(&f->waiters, &wt->queue);
    ngx_queue_insert_tail(&ngx_chat_group_fills, &f->queue);

    param.data = buf;
    param.len = ngx_sprintf(buf, "%uL", gid) - buf;

    if (ngx_chat_pg_query(w->pg, NGX_CHAT_GROUP_MEMBERS_SQL, 1, &param,
                          ngx_chat_group_members, f)
        == NULL)
    {
        ngx_queue_remove(&f->queue);
        ngx_queue_remove(&wt->queue);
        ngx_free(wt);
        ngx_free(f);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_chat_group_members(ngx_chat_store_rc_e rc, PGresult *res, void *data)
{
    ngx_chat_group_fill_t  *f = data;

    int                 i, rows, argc;
    u_char             *p, *keys;
    size_t             *lens;
    const char        **argv;
    ngx_chat_redis_t   *rds;

    if (rc != NGX_CHAT_STORE_OK) {
        ngx_chat_group_answer(f, NGX_ERROR);
        return;
    }

    rows = PQntuples(res);

    if (rows == 0) {
        /* a group without members does not exist */
        ngx_chat_group_answer(f, NGX_DECLINED);
        return;
    }

    rds = ngx_chat_redis_for_group(f->gid);

    /* EVALSHA sha 2 members version  version ttl uid... */
    argc = 7 + rows;
    argv = ngx_alloc(argc * (sizeof(char *) + sizeof(size_t))
                     + 3 * NGX_CHAT_BATCH_STR, ngx_cycle->log);

    if (argv == NULL || rds == NULL) {
        ngx_free(argv);
        ngx_chat_group_answer(f, NGX_ERROR);
        return;
    }

    lens = (size_t *) (argv + argc);
    keys = (u_char *) (lens + argc);

    argv[0] = "EVALSHA";
    argv[1] = ngx_chat_script_sha(NGX_CHAT_SCRIPT_GFILL);
    argv[2] = "2";

    p = keys;
    argv[3] = (char *) p;
    p = ngx_sprintf(p, "chat:gm:{g:%uL}", f->gid);
    lens[3] = p - (u_char *) argv[3];
    argv[4] = (char *) p;
    p = ngx_sprintf(p, "chat:gv:{g:%uL}", f->gid);
    lens[4] = p - (u_char *) argv[4];
    argv[5] = f->version;
    argv[6] = (char *) p;
    p = ngx_sprintf(p, "%d", NGX_CHAT_GROUP_CACHE_TTL);
    lens[6] = p - (u_char *) argv[6];

    for (i = 0; i < 3; i++) {
        lens[i] = ngx_strlen(argv[i]);
    }

    lens[5] = ngx_strlen(f->version);

    for (i = 0; i < rows; i++) {
        argv[7 + i] = PQgetvalue(res, i, 0);
        lens[7 + i] = PQgetlength(res, i, 0);
    }

    if (ngx_chat_redis_command_argv(rds, ngx_chat_group_filled, f, argc,
                                    argv, lens)
        == NULL)
    {
        ngx_free(argv);
        ngx_chat_group_answer(f, NGX_ERROR);
        return;
    }

    ngx_free(argv);
}


static void
ngx_chat_group_filled(ngx_chat_store_rc_e rc, redisReply *reply, void *data)
{
    ngx_chat_group_fill_t  *f = data;

    if (rc != NGX_CHAT_STORE_OK || reply->type != REDIS_REPLY_INTEGER) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: the members of group %uL were not cached",
                      f->gid);
        ngx_chat_group_answer(f, NGX_ERROR);
        return;
    }

    /* 0: a change came meanwhile, the waiters ask again */
    ngx_chat_group_answer(f, NGX_OK);
}


static void
ngx_chat_group_answer(ngx_chat_group_fill_t *f, ngx_int_t rc)
{
    ngx_queue_t              *q;
    ngx_chat_group_waiter_t  *wt;

    ngx_queue_remove(&f->queue);

    while (!ngx_queue_empty(&f->waiters)) {
        q = ngx_queue_head(&f->waiters);
        ngx_queue_remove(q);
        wt = ngx_queue_data(q, ngx_chat_group_waiter_t, queue);
        wt->handler(wt->data, rc);
        ngx_free(wt);
    }

    ngx_free(f);
}


void
ngx_chat_group_invalidate(uint64_t gid)
{
    ngx_chat_redis_t  *rds;

    rds = ngx_chat_redis_for_group(gid);

    if (rds == NULL
        || ngx_chat_redis_command(rds, ngx_chat_script_reply,
                                  "a group's member list dropped",
                                  "EVALSHA %s 2 chat:gm:{g:%llu} "
                                  "chat:gv:{g:%llu} %d",
                                  ngx_chat_script_sha(
                                      NGX_CHAT_SCRIPT_GINVAL),
                                  (unsigned long long) gid,
                                  (unsigned long long) gid,
                                  NGX_CHAT_GROUP_LOG_TTL)
           == NULL)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: Redis is down: the cached members of group "
                      "%uL stay until they expire", gid);
    }
}


void
ngx_chat_group_publish(uint64_t gid, uint64_t n, const char *id,
    const char *head, const char *frame, size_t len, uint64_t except_conn,
    uint64_t skip, redisReply *members)
{
    u_char            *p;
    size_t             i, k, m;
    ngx_str_t         *args;
    ngx_uint_t         s, nargs;
    const char        *channel;
    ngx_chat_redis_t  *rds;
    ngx_chat_worker_t *w = ngx_chat_worker;
    u_char             buf[4 * NGX_CHAT_BATCH_STR];

    channel = ngx_chat_route_channel();

    if (w == NULL || channel == NULL || members == NULL
        || members->type != REDIS_REPLY_ARRAY)
    {
        return;
    }

    m = members->elements;

    args = ngx_alloc((8 + m) * sizeof(ngx_str_t), ngx_cycle->log);
    if (args == NULL) {
        return;
    }

    p = buf;
    p = ngx_chat_batch_str(&args[0], p, "%uL", gid);
    p = ngx_chat_batch_str(&args[1], p, "%uL", n);
    args[2].data = (u_char *) id;
    args[2].len = ngx_strlen(id);
    args[3].data = (u_char *) head;
    args[3].len = ngx_strlen(head);
    args[4].data = (u_char *) frame;
    args[4].len = len;
    args[5].data = (u_char *) channel;
    args[5].len = ngx_strlen(channel);
    p = ngx_chat_batch_str(&args[6], p, "%uL", except_conn);
    (void) ngx_chat_batch_str(&args[7], p, "%uL", skip);

    /* each server its own members */
    for (s = 0; s < w->nredis; s++) {
        nargs = 8;

        for (i = 0; i < m; i++) {
            if (members->element[i]->type != REDIS_REPLY_STRING) {
                continue;
            }

            k = ngx_atoof((u_char *) members->element[i]->str,
                          members->element[i]->len);

            if (ngx_chat_shard_of_user(k) != s) {
                continue;
            }

            args[nargs].data = (u_char *) members->element[i]->str;
            args[nargs].len = members->element[i]->len;
            nargs++;
        }

        if (nargs == 8) {
            continue;
        }

        rds = w->redis[s];

        if (ngx_chat_batch_add(rds, NGX_CHAT_SCRIPT_GPUB, 0, NULL, nargs,
                               args, NULL, NULL)
            == NULL)
        {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "chat: group %uL: a frame not published on "
                          "redis %V", gid, ngx_chat_redis_name(rds));
        }
    }

    ngx_free(args);
}


void
ngx_chat_group_exit(void)
{
    while (!ngx_queue_empty(&ngx_chat_group_fills)) {
        ngx_chat_group_answer(ngx_queue_data(
                                  ngx_queue_head(&ngx_chat_group_fills),
                                  ngx_chat_group_fill_t, queue),
                              NGX_ERROR);
    }
}
