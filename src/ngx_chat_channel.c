
/*
 * Copyright (C) ngx_chat authors
 *
 * Live delivery across workers and nodes.  Every worker subscribes, on
 * every Redis server, to a channel of its own (ngx_chat_route.c names
 * it, and keeps the worker's connections in a tree by user id).  A
 * connection's route ("<channel> <conn id>") is in the sorted set
 * chat:routes:{user}, scored by its expiry; the worker refreshes its
 * routes while it lives and removes them on disconnect.
 *
 * What comes on the channel goes to the user's connections here: frames
 * of messages (held back while a connection syncs, ngx_chat_sync.c),
 * presence, and logouts.  A subscription that comes (back) has every
 * local user of its server sync again: what was published meanwhile is
 * in the inboxes and the groups' logs (live group frames wait for the
 * logs' read, ngx_chat_gsync.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"
#include "ngx_chat_route.h"
#include "ngx_chat_sync.h"
#include "ngx_chat_gsync.h"
#include "ngx_chat_group.h"
#include "ngx_chat_gdeliver.h"
#include "ngx_chat_deliver.h"
#include "ngx_chat_presence.h"
#include "ngx_chat_channel.h"
#include "ngx_chat_lua.h"
#include "ngx_chat_media.h"


#define NGX_CHAT_DELIVER_TICK     5000
#define NGX_CHAT_ROUTE_REFRESH    240      /* ticks: every 20 minutes */
#define NGX_CHAT_REFRESH_BATCH    256

/* frames written to connections per turn of the event loop, about */
#define NGX_CHAT_CHANNEL_BUDGET   4096

/* as chat_frame_presence() has it */
#define NGX_CHAT_PRESENCE_PREFIX  "{\"type\":\"presence\","


typedef struct {
    ngx_chat_redis_t          *sub;         /* subscriber connection */
    ngx_chat_redis_t          *cmd;         /* the worker's connection */
    ngx_uint_t                 index;
    ngx_msec_t                 ping_sent;   /* 0: none outstanding */
    unsigned                   subscribed:1;
} ngx_chat_shard_t;


typedef struct {
    ngx_chat_shard_t          *shards;
    ngx_uint_t                 nshards;
    ngx_event_t                tick;

    /*
     * Frames written to connections this turn of the event loop; past
     * NGX_CHAT_CHANNEL_BUDGET what comes waits (a copy, in order) for
     * the next turns: a large group's fan-out never holds the worker
     */
    ngx_uint_t                 spent;
    ngx_queue_t                pending;     /* ngx_chat_pending_t */
    ngx_event_t                more;        /* next turn: what waits */
    ngx_event_t                reset;       /* end of this turn */
    ngx_uint_t                 ticks;
    ngx_uint_t                 refresh_failed;
    ngx_log_t                 *log;
    const char                *channel;     /* ngx_chat_route_channel() */
} ngx_chat_channel_t;


/* a channel's message (or what is left of its lines) for a later turn */
typedef struct {
    ngx_queue_t                queue;
    ngx_chat_shard_t          *sh;
    size_t                     len;
    ngx_uint_t                 lines;       /* "*" lines, else one frame */
    /* the payload follows */
} ngx_chat_pending_t;


/* routes refreshed in one call */
typedef struct {
    ngx_uint_t                 n;
    char                       keys[NGX_CHAT_REFRESH_BATCH][NGX_CHAT_KEY_LEN];
    char                       routes[NGX_CHAT_REFRESH_BATCH]
                                     [NGX_CHAT_ROUTE_LEN];
} ngx_chat_refresh_t;


static void ngx_chat_channel_connecting(ngx_chat_redis_t *rds, void *data);
static void ngx_chat_channel_worker_id(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_channel_sub_connected(ngx_chat_redis_t *rds,
    void *data);
static void ngx_chat_channel_sub_message(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static size_t ngx_chat_channel_lines(ngx_chat_shard_t *sh, const char *p,
    size_t len);
static void ngx_chat_channel_defer(ngx_chat_shard_t *sh, const char *p,
    size_t len, ngx_uint_t lines);
static void ngx_chat_channel_more(ngx_event_t *ev);
static void ngx_chat_channel_reset(ngx_event_t *ev);
static ngx_int_t ngx_chat_channel_number(const char **p, const char *last,
    uint64_t *v);
static ngx_uint_t ngx_chat_channel_live(ngx_chat_shard_t *sh,
    const char *p, size_t len);
static ngx_uint_t ngx_chat_channel_group(ngx_chat_shard_t *sh,
    const char *p, size_t len);
static void ngx_chat_channel_resync(ngx_chat_shard_t *sh);
static void ngx_chat_channel_tick(ngx_event_t *ev);
static void ngx_chat_channel_ping_reply(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_channel_refresh(void);
static void ngx_chat_refresh_send(ngx_chat_redis_t *rds,
    ngx_chat_refresh_t *rf);
static void ngx_chat_refresh_reply(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);


static ngx_chat_channel_t  *ngx_chat_channel;


ngx_int_t
ngx_chat_channel_init(ngx_chat_worker_t *w, ngx_cycle_t *cycle)
{
    ngx_uint_t              i;
    ngx_chat_shard_t       *sh;
    ngx_chat_channel_t     *d;
    ngx_chat_redis_addr_t  *addr;

    if (w->nredis == 0) {
        return NGX_OK;
    }

    if (ngx_chat_lua_init(cycle->log) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_chat_route_init(w, cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    d = ngx_calloc(sizeof(ngx_chat_channel_t), cycle->log);
    if (d == NULL) {
        return NGX_ERROR;
    }

    d->log = cycle->log;
    ngx_queue_init(&d->pending);
    d->more.handler = ngx_chat_channel_more;
    d->more.data = d;
    d->more.log = cycle->log;
    d->reset.handler = ngx_chat_channel_reset;
    d->reset.data = d;
    d->reset.log = cycle->log;
    d->channel = ngx_chat_route_channel();

    d->nshards = w->nredis;
    d->shards = ngx_calloc(d->nshards * sizeof(ngx_chat_shard_t),
                           cycle->log);
    if (d->shards == NULL) {
        ngx_free(d);
        return NGX_ERROR;
    }

    ngx_chat_channel = d;

    addr = w->conf->redis_addrs->elts;

    for (i = 0; i < d->nshards; i++) {
        sh = &d->shards[i];
        sh->index = i;
        sh->cmd = w->redis[i];

        ngx_chat_redis_set_hooks(sh->cmd, ngx_chat_channel_connecting, NULL,
                                 sh);

        sh->sub = ngx_chat_redis_create(&addr[i], w->conf->redis_timeout,
                                        cycle->log);
        if (sh->sub == NULL) {
            return NGX_ERROR;
        }

        ngx_chat_redis_set_hooks(sh->sub, NULL,
                                 ngx_chat_channel_sub_connected, sh);
    }

    if (ngx_chat_deliver_init(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    d->tick.handler = ngx_chat_channel_tick;
    d->tick.data = d;
    d->tick.log = cycle->log;
    d->tick.cancelable = 1;
    ngx_add_timer(&d->tick, NGX_CHAT_DELIVER_TICK);

    return ngx_chat_presence_init(w, cycle);
}


void
ngx_chat_channel_exit(ngx_chat_worker_t *w)
{
    ngx_uint_t           i;
    ngx_queue_t         *q;
    ngx_chat_channel_t  *d = ngx_chat_channel;

    if (d == NULL) {
        return;
    }

    ngx_chat_presence_exit();
    ngx_chat_channel = NULL;
    ngx_chat_route_exit();

    if (d->tick.timer_set) {
        ngx_del_timer(&d->tick);
    }

    if (d->more.posted) {
        ngx_delete_posted_event(&d->more);
    }

    if (d->reset.posted) {
        ngx_delete_posted_event(&d->reset);
    }

    while (!ngx_queue_empty(&d->pending)) {
        q = ngx_queue_head(&d->pending);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_chat_pending_t, queue));
    }

    ngx_chat_group_exit();
    ngx_chat_gdeliver_exit();
    ngx_chat_deliver_exit();

    for (i = 0; i < d->nshards; i++) {
        if (d->shards[i].sub) {
            ngx_chat_redis_destroy(d->shards[i].sub);
        }
    }

    ngx_free(d->shards);
    ngx_free(d);
}


/*
 * A new command connection: the scripts go first, so that every EVALSHA
 * after them finds its script even on a Redis that just started.
 */

static void
ngx_chat_channel_connecting(ngx_chat_redis_t *rds, void *data)
{
    ngx_chat_shard_t   *sh = data;
    ngx_chat_worker_t  *w = ngx_chat_worker;

    ngx_chat_lua_load(rds);

    /* message ids: a worker number unique among the node's live ones */
    if (sh->index == 0 && w) {
        (void) ngx_chat_redis_command(rds, ngx_chat_channel_worker_id, w,
                                      "INCR chat:workers:{%b}",
                                      w->conf->node_name.data,
                                      w->conf->node_name.len);
    }
}


static void
ngx_chat_channel_worker_id(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_worker_t  *w = data;

    if (rc == NGX_CHAT_STORE_OK && reply->type == REDIS_REPLY_INTEGER
        && w == ngx_chat_worker)
    {
        w->ids.worker = (uint16_t) (reply->integer & 0xffff);
    }
}


static void
ngx_chat_channel_sub_connected(ngx_chat_redis_t *rds, void *data)
{
    ngx_chat_shard_t    *sh = data;
    ngx_chat_channel_t  *d = ngx_chat_channel;

    sh->subscribed = 0;
    sh->ping_sent = 0;

    if (d == NULL) {
        return;
    }

    if (ngx_chat_redis_subscribe(rds, d->channel,
                                 ngx_chat_channel_sub_message, sh)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, d->log, 0,
                      "chat: redis %V: cannot subscribe to %s",
                      ngx_chat_redis_name(rds), d->channel);
        ngx_chat_redis_reconnect(rds);
    }
}


static void
ngx_chat_channel_sub_message(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_shard_t    *sh = data;
    size_t               done;
    redisReply          *kind, *payload;
    ngx_chat_channel_t  *d = ngx_chat_channel;

    if (d == NULL) {
        return;
    }

    if (rc != NGX_CHAT_STORE_OK) {
        if (sh->subscribed) {
            ngx_log_error(NGX_LOG_ERR, d->log, 0,
                          "chat: redis %V: subscription lost, live "
                          "deliveries wait for it",
                          ngx_chat_redis_name(sh->sub));
        }

        sh->subscribed = 0;
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) {
        return;
    }

    kind = reply->element[0];
    payload = reply->element[2];

    if (kind->type != REDIS_REPLY_STRING) {
        return;
    }

    if (kind->len == 9 && ngx_strncmp(kind->str, "subscribe", 9) == 0) {
        sh->subscribed = 1;
        sh->ping_sent = 0;

        ngx_log_error(NGX_LOG_INFO, d->log, 0,
                      "chat: redis %V: subscribed to %s",
                      ngx_chat_redis_name(sh->sub), d->channel);

        /* whatever was published meanwhile is in the inboxes */
        ngx_chat_channel_resync(sh);
        return;
    }

    if (kind->len != 7 || ngx_strncmp(kind->str, "message", 7) != 0
        || payload->type != REDIS_REPLY_STRING)
    {
        return;
    }

    if (payload->len == 4 && ngx_strncmp(payload->str, "ping", 4) == 0) {
        sh->ping_sent = 0;
        return;
    }

    if (payload->len > 1 && payload->str[0] == '*'
        && payload->str[1] == '\n')
    {
        if (!ngx_queue_empty(&d->pending)) {
            /* behind what waits already */
            ngx_chat_channel_defer(sh, payload->str + 2, payload->len - 2, 1);
            return;
        }

        done = ngx_chat_channel_lines(sh, payload->str + 2,
                                      payload->len - 2);

        if (!d->reset.posted) {
            ngx_post_event(&d->reset, &ngx_posted_events);
        }

        if (done < payload->len - 2) {
            ngx_chat_channel_defer(sh, payload->str + 2 + done,
                                   payload->len - 2 - done, 1);
        }

        return;
    }

    if (!ngx_queue_empty(&d->pending)) {
        ngx_chat_channel_defer(sh, payload->str, payload->len, 0);
        return;
    }

    d->spent += ngx_chat_channel_live(sh, payload->str, payload->len);

    /* the budget is per turn: it starts again after this one */
    if (!d->reset.posted) {
        ngx_post_event(&d->reset, &ngx_posted_events);
    }
}


/* a copy of what cannot go out this turn, for the next ones, in order */

static void
ngx_chat_channel_defer(ngx_chat_shard_t *sh, const char *p, size_t len,
    ngx_uint_t lines)
{
    ngx_chat_pending_t  *pd;
    ngx_chat_channel_t  *d = ngx_chat_channel;

    pd = ngx_alloc(sizeof(ngx_chat_pending_t) + len, d->log);
    if (pd == NULL) {
        /* the messages are in the inboxes and logs: the users sync */
        ngx_chat_channel_resync(sh);
        return;
    }

    if (ngx_queue_empty(&d->pending)) {
        ngx_log_error(NGX_LOG_INFO, d->log, 0,
                      "chat: channel: %ui frames written this turn, the "
                      "rest waits for the next", d->spent);
    }

    pd->sh = sh;
    pd->len = len;
    pd->lines = lines;
    ngx_memcpy(pd + 1, p, len);
    ngx_queue_insert_tail(&d->pending, &pd->queue);

    if (!d->more.posted) {
        ngx_post_event(&d->more, &ngx_posted_next_events);
    }
}


static void
ngx_chat_channel_reset(ngx_event_t *ev)
{
    ngx_chat_channel_t  *d = ev->data;

    d->spent = 0;
}


/* the next turn: a new budget for what waits */

static void
ngx_chat_channel_more(ngx_event_t *ev)
{
    size_t               done;
    ngx_queue_t         *q;
    ngx_chat_pending_t  *pd;
    ngx_chat_channel_t  *d = ev->data;

    d->spent = 0;

    while (!ngx_queue_empty(&d->pending)
           && d->spent < NGX_CHAT_CHANNEL_BUDGET)
    {
        q = ngx_queue_head(&d->pending);
        pd = ngx_queue_data(q, ngx_chat_pending_t, queue);

        if (!pd->lines) {
            d->spent += ngx_chat_channel_live(pd->sh, (char *) (pd + 1),
                                              pd->len);
            done = pd->len;

        } else {
            done = ngx_chat_channel_lines(pd->sh, (char *) (pd + 1),
                                          pd->len);
        }

        if (done < pd->len) {
            /* the rest, next turn */
            ngx_memmove(pd + 1, (char *) (pd + 1) + done, pd->len - done);
            pd->len -= done;
            break;
        }

        ngx_queue_remove(q);
        ngx_free(pd);
    }

    if (!ngx_queue_empty(&d->pending)) {
        ngx_post_event(&d->more, &ngx_posted_next_events);

    } else if (!d->reset.posted) {
        ngx_post_event(&d->reset, &ngx_posted_events);
    }
}


/*
 * What a batch published to this worker (lib.lua's queue()): lines
 * "<user> <except conn> <n> <frame>" after a "*" line; frames are JSON
 * and have no newline of their own.
 */

static size_t
ngx_chat_channel_lines(ngx_chat_shard_t *sh, const char *p, size_t len)
{
    const char          *nl, *start, *last;
    ngx_chat_channel_t  *d = ngx_chat_channel;

    start = p;
    last = p + len;

    while (p < last) {
        if (d->spent >= NGX_CHAT_CHANNEL_BUDGET) {
            /* enough for this turn: the rest waits */
            return p - start;
        }

        nl = memchr(p, '\n', last - p);

        if (nl == NULL) {
            nl = last;
        }

        if (nl - p > 2 && p[0] == 'g' && p[1] == ' ') {
            d->spent += ngx_chat_channel_group(sh, p + 2, nl - p - 2);

        } else {
            d->spent += ngx_chat_channel_live(sh, p, nl - p);
        }

        p = nl + 1;
    }

    return len;
}


/* a decimal number and the space after it, at *p (then past them) */

static ngx_int_t
ngx_chat_channel_number(const char **p, const char *last, uint64_t *v)
{
    char  *end;

    errno = 0;
    *v = strtoull(*p, &end, 10);

    if (end == *p || end >= last || *end != ' ' || errno) {
        return NGX_ERROR;
    }

    *p = end + 1;

    return NGX_OK;
}


/* "<user> <except conn> <n> <frame>" from the worker's channel */

static ngx_uint_t
ngx_chat_channel_live(ngx_chat_shard_t *sh, const char *p, size_t len)
{
    size_t                  flen;
    uint64_t                uid, except, n;
    const char             *last, *frame;
    ngx_queue_t            *q, *next;
    ngx_chat_ws_t          *ws;
    ngx_chat_live_t        *lv;
    ngx_uint_t              cost;
    ngx_chat_local_user_t  *lu;

    cost = 1;
    last = p + len;

    if (ngx_chat_channel_number(&p, last, &uid) != NGX_OK
        || ngx_chat_channel_number(&p, last, &except) != NGX_OK
        || ngx_chat_channel_number(&p, last, &n) != NGX_OK)
    {
        goto bad;
    }

    frame = p;
    flen = last - frame;

    lu = ngx_chat_local_find(uid);
    if (lu == NULL) {
        return cost;
    }

    for (q = ngx_queue_head(&lu->conns);
         q != ngx_queue_sentinel(&lu->conns);
         q = next)
    {
        /* a send may end the connection: it stays in the list till then */
        next = ngx_queue_next(q);
        ws = ngx_queue_data(q, ngx_chat_ws_t, peers);

        if (ws->done || ws->conn_id == except) {
            continue;
        }

        cost++;

        if (n == 0 && flen > sizeof(NGX_CHAT_REVOKE_FRAME) - 1
            && ngx_strncmp(frame, NGX_CHAT_REVOKE_FRAME,
                           sizeof(NGX_CHAT_REVOKE_FRAME) - 1)
               == 0)
        {
            /* not a frame: logout, "!revoke <token id>" */
            ngx_chat_ws_revoke(ws, frame + sizeof(NGX_CHAT_REVOKE_FRAME) - 1,
                               flen - (sizeof(NGX_CHAT_REVOKE_FRAME) - 1));
            continue;
        }

        if (n == 0 && flen == sizeof(NGX_CHAT_KICK_FRAME) - 1
            && ngx_strncmp(frame, NGX_CHAT_KICK_FRAME, flen) == 0)
        {
            /* POST /admin/users/{id}/disconnect */
            ngx_chat_ws_kick(ws, NGX_CHAT_KICK_CLOSE,
                             "disconnected by an operator");
            continue;
        }

        if (n == 0) {
            if (flen > sizeof(NGX_CHAT_PRESENCE_PREFIX) - 1
                && ngx_strncmp(frame, NGX_CHAT_PRESENCE_PREFIX,
                               sizeof(NGX_CHAT_PRESENCE_PREFIX) - 1)
                   == 0)
            {
                /* the friends' state first, then only changes */
                if (!ws->presence_sent && ws->nheld < NGX_CHAT_HELD_MAX) {
                    lv = ngx_alloc(sizeof(ngx_chat_live_t) + flen,
                                   ngx_cycle->log);
                    if (lv) {
                        lv->n = 0;
                        lv->len = flen;
                        ngx_memcpy(lv + 1, frame, flen);
                        ngx_queue_insert_tail(&ws->held, &lv->queue);
                        ws->nheld++;
                        continue;
                    }
                }

                if (!ngx_chat_presence_filter(ws, frame, flen)) {
                    continue;
                }
            }

            (void) ngx_chat_media_send(ws, (u_char *) frame, flen);
            continue;
        }

        if (ws->syncing) {
            if (ws->nlive >= NGX_CHAT_LIVE_MAX) {
                /* it is in the inbox: the sync reads it again */
                ws->lost_live = 1;
                continue;
            }

            lv = ngx_alloc(sizeof(ngx_chat_live_t) + flen, ngx_cycle->log);
            if (lv == NULL) {
                ws->lost_live = 1;
                continue;
            }

            lv->n = n;
            lv->len = flen;
            ngx_memcpy(lv + 1, frame, flen);
            ngx_queue_insert_tail(&ws->live, &lv->queue);
            ws->nlive++;
            continue;
        }

        if (n <= ws->last_n) {
            continue;
        }

        ws->last_n = n;
        (void) ngx_chat_media_send(ws, (u_char *) frame, flen);
    }

    return cost;

bad:

    ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                  "chat: redis %V: malformed delivery on %s",
                  ngx_chat_redis_name(sh->sub), ngx_chat_channel->channel);

    return cost;
}


/*
 * A group's frame (lib.lua's gqueue): "<gid> <n> <id> <from> <seq>
 * <except conn> <uid,uid,...> <frame>" after the "g ", for the named
 * members' local
 * connections (ngx_chat_gsync.c)
 */

static ngx_uint_t
ngx_chat_channel_group(ngx_chat_shard_t *sh, const char *p, size_t len)
{
    char                   *end;
    size_t                  id_len, flen;
    uint64_t                gid, n, except, uid, from, seq;
    const char             *last, *id, *uids, *frame;
    ngx_queue_t            *q, *next;
    ngx_chat_ws_t          *ws;
    ngx_uint_t              cost;
    ngx_chat_local_user_t  *lu;

    cost = 1;
    last = p + len;

    if (ngx_chat_channel_number(&p, last, &gid) != NGX_OK
        || ngx_chat_channel_number(&p, last, &n) != NGX_OK)
    {
        goto bad;
    }

    id = p;
    end = memchr(id, ' ', last - id);
    if (end == NULL) {
        goto bad;
    }

    id_len = end - id;
    p = end + 1;

    if (ngx_chat_channel_number(&p, last, &from) != NGX_OK
        || ngx_chat_channel_number(&p, last, &seq) != NGX_OK
        || ngx_chat_channel_number(&p, last, &except) != NGX_OK)
    {
        goto bad;
    }

    uids = p;
    end = memchr(uids, ' ', last - uids);
    if (end == NULL) {
        goto bad;
    }

    frame = end + 1;
    flen = last - frame;

    while (uids < frame) {
        uid = strtoull(uids, &end, 10);
        if (end == uids || (*end != ',' && *end != ' ')) {
            goto bad;
        }

        uids = end + 1;

        lu = ngx_chat_local_find(uid);
        if (lu == NULL) {
            continue;
        }

        for (q = ngx_queue_head(&lu->conns);
             q != ngx_queue_sentinel(&lu->conns);
             q = next)
        {
            next = ngx_queue_next(q);
            ws = ngx_queue_data(q, ngx_chat_ws_t, peers);

            if (ws->done || ws->conn_id == except) {
                continue;
            }

            cost++;
            ngx_chat_gsync_live(ws, gid, n, id, id_len, from, (int64_t) seq,
                                frame, flen);
        }
    }

    return cost;

bad:

    ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                  "chat: redis %V: malformed group delivery on %s",
                  ngx_chat_redis_name(sh->sub), ngx_chat_channel->channel);

    return cost;
}


/* the subscription is (back): every local user of the shard syncs */

static void
ngx_chat_channel_resync(ngx_chat_shard_t *sh)
{
    ngx_queue_t            *q;
    ngx_chat_ws_t          *ws;
    ngx_chat_local_user_t  *lu;

    for (lu = ngx_chat_local_next(NULL); lu; lu = ngx_chat_local_next(lu)) {
        if (ngx_chat_shard_of_user(lu->node.key) != sh->index) {
            continue;
        }

        for (q = ngx_queue_head(&lu->conns);
             q != ngx_queue_sentinel(&lu->conns);
             q = ngx_queue_next(q))
        {
            ws = ngx_queue_data(q, ngx_chat_ws_t, peers);

            if (ws->done) {
                continue;
            }

            /* live group frames wait for the groups' logs: the sync's end */
            ngx_chat_gsync_hold(ws);

            if (ws->syncing) {
                ws->lost_live = 1;
                ws->sync_register = 1;
                continue;
            }

            ngx_chat_sync_start(ws, 1, 0, ws->last_n);
        }
    }
}


static void
ngx_chat_channel_tick(ngx_event_t *ev)
{
    ngx_uint_t           i;
    ngx_msec_t           timeout;
    ngx_chat_shard_t    *sh;
    ngx_chat_channel_t  *d = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    timeout = ngx_max(ngx_chat_worker->conf->redis_timeout * 2,
                      NGX_CHAT_DELIVER_TICK);

    /* a subscription that stopped hearing its own pings is made anew */
    for (i = 0; i < d->nshards; i++) {
        sh = &d->shards[i];

        if (!sh->subscribed) {
            continue;
        }

        if (sh->ping_sent && ngx_current_msec - sh->ping_sent > timeout) {
            ngx_log_error(NGX_LOG_ERR, d->log, 0,
                          "chat: redis %V: subscription silent for %M ms, "
                          "reconnecting", ngx_chat_redis_name(sh->sub),
                          ngx_current_msec - sh->ping_sent);
            sh->subscribed = 0;
            ngx_chat_redis_reconnect(sh->sub);
            continue;
        }

        if (sh->ping_sent == 0
            && ngx_chat_redis_command(sh->cmd, ngx_chat_channel_ping_reply,
                                      sh, "PUBLISH %s ping", d->channel))
        {
            sh->ping_sent = ngx_current_msec;
        }
    }

    if (++d->ticks % NGX_CHAT_ROUTE_REFRESH == 0) {
        if (d->refresh_failed) {
            ngx_log_error(NGX_LOG_ERR, d->log, 0,
                          "chat: %ui route refreshes failed (Redis down or "
                          "slow); routes of live connections may expire",
                          d->refresh_failed);
            d->refresh_failed = 0;
        }

        ngx_chat_channel_refresh();
    }

    ngx_add_timer(&d->tick, NGX_CHAT_DELIVER_TICK);
}


/*
 * A ping that the command connection lost (a timeout there drops it) says
 * nothing of the subscription: it is sent again at the next tick rather
 * than taken for a silent subscriber, whose resync would cost a SYNC per
 * connection of the worker.
 */

static void
ngx_chat_channel_ping_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_shard_t  *sh = data;

    if (rc != NGX_CHAT_STORE_OK && ngx_chat_channel) {
        sh->ping_sent = 0;
    }
}


/*
 * Every route of the worker lives on for another NGX_CHAT_ROUTE_TTL: one
 * REFRESH per Redis server for up to NGX_CHAT_REFRESH_BATCH connections.
 */

static void
ngx_chat_channel_refresh(void)
{
    ngx_uint_t              shard;
    ngx_queue_t            *q;
    ngx_chat_ws_t          *ws;
    ngx_chat_channel_t     *d = ngx_chat_channel;
    ngx_chat_local_user_t  *lu;
    ngx_chat_refresh_t     *rf;

    rf = ngx_alloc(sizeof(ngx_chat_refresh_t), d->log);
    if (rf == NULL) {
        return;
    }

    for (shard = 0; shard < d->nshards; shard++) {
        rf->n = 0;

        for (lu = ngx_chat_local_next(NULL); lu; lu = ngx_chat_local_next(lu))
        {
            if (ngx_chat_shard_of_user(lu->node.key) != shard) {
                continue;
            }

            for (q = ngx_queue_head(&lu->conns);
                 q != ngx_queue_sentinel(&lu->conns);
                 q = ngx_queue_next(q))
            {
                ws = ngx_queue_data(q, ngx_chat_ws_t, peers);

                if (!ws->registered || ws->done) {
                    continue;
                }

                (void) ngx_snprintf((u_char *) rf->keys[rf->n],
                                    sizeof(rf->keys[0]),
                                    "chat:routes:{%uL}%Z", ws->user_id);
                ngx_chat_route_name(ws, rf->routes[rf->n]);

                if (++rf->n == NGX_CHAT_REFRESH_BATCH) {
                    ngx_chat_refresh_send(d->shards[shard].cmd, rf);
                    rf->n = 0;
                }
            }
        }

        if (rf->n) {
            ngx_chat_refresh_send(d->shards[shard].cmd, rf);
        }
    }

    ngx_free(rf);
}


static void
ngx_chat_refresh_send(ngx_chat_redis_t *rds, ngx_chat_refresh_t *rf)
{
    int           argc;
    char          nkeys[NGX_INT_T_LEN + 1], ttl[NGX_INT_T_LEN + 1];
    size_t       *argvlen;
    ngx_uint_t    i;
    const char  **argv;

    argc = 4 + 2 * rf->n;

    argv = ngx_alloc(argc * (sizeof(char *) + sizeof(size_t)),
                     ngx_cycle->log);
    if (argv == NULL) {
        return;
    }

    argvlen = (size_t *) (argv + argc);

    (void) ngx_snprintf((u_char *) nkeys, sizeof(nkeys), "%ui%Z", rf->n);
    (void) ngx_snprintf((u_char *) ttl, sizeof(ttl), "%ui%Z",
                        (ngx_uint_t) NGX_CHAT_ROUTE_TTL);

    argv[0] = "EVALSHA";
    argv[1] = ngx_chat_script_sha(NGX_CHAT_SCRIPT_REFRESH);
    argv[2] = nkeys;

    for (i = 0; i < rf->n; i++) {
        argv[3 + i] = rf->keys[i];
    }

    argv[3 + rf->n] = ttl;

    for (i = 0; i < rf->n; i++) {
        argv[4 + rf->n + i] = rf->routes[i];
    }

    for (i = 0; i < (ngx_uint_t) argc; i++) {
        argvlen[i] = ngx_strlen(argv[i]);
    }

    (void) ngx_chat_redis_command_argv(rds, ngx_chat_refresh_reply,
                                       ngx_chat_channel, argc, argv,
                                       argvlen);
    ngx_free(argv);
}


/* failures are counted, and told once per refresh round */

static void
ngx_chat_refresh_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_channel_t  *d = data;

    if (rc != NGX_CHAT_STORE_OK && d == ngx_chat_channel) {
        d->refresh_failed++;
    }
}
