
/*
 * Copyright (C) ngx_chat authors
 *
 * Live delivery across workers and nodes, and store-and-forward through
 * Redis.
 *
 * Every worker subscribes, on every Redis server, to a channel of its own
 * ("chat:w:<node>:<pid>.<start>") and keeps its WebSocket connections in
 * a tree by user id.  A connection's route ("<channel> <conn id>") is in
 * the sorted set chat:routes:{user}, scored by its expiry; the worker
 * refreshes its routes while it lives and removes them on disconnect.
 *
 * A durable message goes through one Lua script on the recipient's
 * server that, atomically, appends it to the recipient's inbox and
 * publishes it to the recipient's routes.  A connection runs the mirror
 * script: register the route and read the inbox.  Redis runs scripts one
 * at a time, so each message is either in the inbox a connection reads or
 * published to its route: never neither.  Messages published while a
 * connection still reads its inbox are held back and then sent only when
 * newer than what the inbox gave (each inbox entry has a position, "n").
 *
 * The inbox keeps what the user has not acknowledged as delivered
 * (chat:inboxq:{user}) and, for receipts, a bounded memory of what was
 * delivered or read (chat:inboxd:{user}); entries are in chat:inbox:{user}
 * as "<state> <from> <seq> <conv> <frame>" (state u, d or r; the frame
 * only while undelivered).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"
#include "ngx_chat_deliver.h"
#include "ngx_chat_lua.h"
#include "chat_frame.h"
#include "chat_record.h"


#define NGX_CHAT_CHANNEL_LEN   96
#define NGX_CHAT_RECEIPT_ID    64
#define NGX_CHAT_REFRESH_BATCH 256

/* as chat_frame_presence() has it */
#define NGX_CHAT_PRESENCE_PREFIX  "{\"type\":\"presence\","


/*
 * A user whose inbox misses a message that was given up: its completeness
 * marker goes, so that the next connection refills from PostgreSQL.
 */
typedef struct {
    uint64_t                   user_id;
    ngx_uint_t                 inflight;    /* a DEL is under way */
} ngx_chat_lost_t;


typedef struct {
    ngx_chat_redis_t          *sub;         /* subscriber connection */
    ngx_chat_redis_t          *cmd;         /* the worker's connection */
    ngx_uint_t                 index;
    ngx_msec_t                 ping_sent;   /* 0: none outstanding */
    unsigned                   subscribed:1;
} ngx_chat_shard_t;


typedef struct {
    ngx_rbtree_t               users;
    ngx_rbtree_node_t          sentinel;
    uint64_t                   next_conn;
    ngx_uint_t                 nconns;
    ngx_chat_shard_t          *shards;
    ngx_uint_t                 nshards;
    ngx_event_t                tick;
    ngx_uint_t                 ticks;
    ngx_uint_t                 refresh_failed;
    ngx_event_t                retry;       /* deliveries Redis refused */
    ngx_queue_t                retries;
    ngx_uint_t                 nretries;
    ngx_chat_lost_t           *lost;        /* inboxes missing a message */
    ngx_uint_t                 nlost;
    ngx_event_t                lost_timer;
    ngx_log_t                 *log;
    char                       channel[NGX_CHAT_CHANNEL_LEN];
} ngx_chat_deliver_t;


typedef struct {
    ngx_queue_t                queue;
    uint64_t                   n;
    size_t                     len;
    /* the frame follows */
} ngx_chat_live_t;


/* routes refreshed in one call */
typedef struct {
    ngx_uint_t                 n;
    char                       keys[NGX_CHAT_REFRESH_BATCH][NGX_CHAT_KEY_LEN];
    char                       routes[NGX_CHAT_REFRESH_BATCH]
                                     [NGX_CHAT_ROUTE_LEN];
} ngx_chat_refresh_t;


/* a typing frame whose recipient is looked up */
typedef struct {
    ngx_chat_op_t              op;          /* in ws->ops */
    uint64_t                   to;
} ngx_chat_typing_t;


/* a durable message on its way into the recipient's inbox */
typedef struct {
    ngx_queue_t                queue;       /* in the retry queue */
    uint64_t                   from;
    uint64_t                   to;
    uint64_t                   except;      /* the sending connection */
    ngx_uint_t                 both;        /* sender on the same server */
    ngx_msec_t                 since;
    size_t                     len;
    char                       id[CHAT_ID_LEN + 1];
    char                       head[96];    /* "<from> <seq> <conv>" */
    char                       text[1];     /* the frame, NUL-terminated */
} ngx_chat_delivery_t;


/* a receipt between its check and the sender's connections */
typedef struct {
    ngx_chat_op_t              op;
    uint64_t                   by;
    uint64_t                   from;
    int64_t                    seq;
    int64_t                    ts;
    ngx_uint_t                 read;        /* unsigned read:1 */
    ngx_chat_redis_cmd_t      *cmd;
    ngx_chat_kafka_msg_t      *kmsg;
    char                      *text;        /* the frame for the sender */
    char                       id[NGX_CHAT_RECEIPT_ID + 1];
    char                       conv[48];
} ngx_chat_receipt_t;


static void ngx_chat_deliver_connecting(ngx_chat_redis_t *rds, void *data);
static void ngx_chat_deliver_worker_id(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_deliver_sub_connected(ngx_chat_redis_t *rds,
    void *data);
static void ngx_chat_deliver_sub_message(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_deliver_live(ngx_chat_shard_t *sh, const char *p,
    size_t len);
static void ngx_chat_deliver_resync(ngx_chat_shard_t *sh);
static void ngx_chat_deliver_tick(ngx_event_t *ev);
static void ngx_chat_deliver_ping_reply(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_deliver_refresh(void);
static void ngx_chat_refresh_send(ngx_chat_redis_t *rds,
    ngx_chat_refresh_t *rf);
static void ngx_chat_delivery_issue(ngx_chat_delivery_t *dv);
static void ngx_chat_delivery_reply(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_delivery_retry(ngx_chat_delivery_t *dv);
static void ngx_chat_delivery_retry_handler(ngx_event_t *ev);
static void ngx_chat_lost_add(uint64_t user_id);
static void ngx_chat_lost_handler(ngx_event_t *ev);
static void ngx_chat_lost_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data);
static void ngx_chat_refresh_reply(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static ngx_chat_local_user_t *ngx_chat_local_find(uint64_t user_id);
static void ngx_chat_sync_start(ngx_chat_ws_t *ws, ngx_uint_t reg,
    ngx_uint_t receipts, uint64_t after);
static void ngx_chat_sync_page(ngx_chat_ws_t *ws);
static void ngx_chat_sync_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data);
static void ngx_chat_sync_timer(ngx_event_t *ev);
static void ngx_chat_sync_done(ngx_chat_ws_t *ws);
static void ngx_chat_live_free(ngx_chat_ws_t *ws);
static ngx_int_t ngx_chat_send_entry(ngx_chat_ws_t *ws, const char *v,
    size_t len);
static void ngx_chat_script_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data);
static ngx_int_t ngx_chat_receipt_one(ngx_chat_ws_t *ws, const char *id,
    size_t len, ngx_uint_t read);
static ngx_int_t ngx_chat_receipt_error(ngx_chat_ws_t *ws, const char *code,
    const char *message, const char *id);
static void ngx_chat_receipt_checked(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_receipt_stored(ngx_chat_store_rc_e rc,
    int32_t partition, int64_t offset, void *data);
static void ngx_chat_receipt_applied(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_receipt_fail(ngx_chat_receipt_t *rc,
    const char *code, const char *message);
static void ngx_chat_receipt_done(ngx_chat_receipt_t *rcp);
static void ngx_chat_typing_checked(ngx_chat_store_rc_e rc, PGresult *res,
    void *data);
static ngx_int_t ngx_chat_typing_relay(ngx_chat_ws_t *ws, uint64_t to);


static ngx_chat_deliver_t  *ngx_chat_deliver;


ngx_int_t
ngx_chat_deliver_init(ngx_chat_worker_t *w, ngx_cycle_t *cycle)
{
    ngx_uint_t           i;
    ngx_chat_shard_t    *sh;
    ngx_chat_deliver_t  *d;
    ngx_chat_redis_addr_t  *addr;

    if (w->nredis == 0) {
        return NGX_OK;
    }

    if (ngx_chat_lua_init(cycle->log) != NGX_OK) {
        return NGX_ERROR;
    }

    d = ngx_calloc(sizeof(ngx_chat_deliver_t), cycle->log);
    if (d == NULL) {
        return NGX_ERROR;
    }

    d->log = cycle->log;
    ngx_rbtree_init(&d->users, &d->sentinel, ngx_rbtree_insert_value);

    /* a pid is reused in time; with the start time the channel is not */
    (void) ngx_snprintf((u_char *) d->channel, sizeof(d->channel),
                        "chat:w:%V:%P.%T%Z", &w->conf->node_name, ngx_pid,
                        ngx_time());

    d->nshards = w->nredis;
    d->shards = ngx_calloc(d->nshards * sizeof(ngx_chat_shard_t),
                           cycle->log);
    if (d->shards == NULL) {
        ngx_free(d);
        return NGX_ERROR;
    }

    ngx_chat_deliver = d;

    addr = w->conf->redis_addrs->elts;

    for (i = 0; i < d->nshards; i++) {
        sh = &d->shards[i];
        sh->index = i;
        sh->cmd = w->redis[i];

        ngx_chat_redis_set_hooks(sh->cmd, ngx_chat_deliver_connecting, NULL,
                                 sh);

        sh->sub = ngx_chat_redis_create(&addr[i], w->conf->redis_timeout,
                                        cycle->log);
        if (sh->sub == NULL) {
            return NGX_ERROR;
        }

        ngx_chat_redis_set_hooks(sh->sub, NULL,
                                 ngx_chat_deliver_sub_connected, sh);
    }

    ngx_queue_init(&d->retries);
    d->retry.handler = ngx_chat_delivery_retry_handler;
    d->retry.data = d;
    d->retry.log = cycle->log;
    d->retry.cancelable = 1;

    d->lost_timer.handler = ngx_chat_lost_handler;
    d->lost_timer.data = d;
    d->lost_timer.log = cycle->log;
    d->lost_timer.cancelable = 1;

    d->tick.handler = ngx_chat_deliver_tick;
    d->tick.data = d;
    d->tick.log = cycle->log;
    d->tick.cancelable = 1;
    ngx_add_timer(&d->tick, NGX_CHAT_DELIVER_TICK);

    return ngx_chat_presence_init(w, cycle);
}


void
ngx_chat_deliver_exit(ngx_chat_worker_t *w)
{
    ngx_uint_t            i;
    ngx_queue_t          *q;
    ngx_chat_deliver_t   *d = ngx_chat_deliver;
    ngx_chat_delivery_t  *dv;

    if (d == NULL) {
        return;
    }

    ngx_chat_presence_exit();
    ngx_chat_deliver = NULL;

    if (d->tick.timer_set) {
        ngx_del_timer(&d->tick);
    }

    if (d->retry.timer_set) {
        ngx_del_timer(&d->retry);
    }

    if (d->lost_timer.timer_set) {
        ngx_del_timer(&d->lost_timer);
    }

    for (i = 0; i < d->nlost; i++) {
        ngx_log_error(NGX_LOG_ERR, d->log, 0,
                      "chat: the inbox of user %uL misses messages and is "
                      "still marked complete: the worker exits",
                      d->lost[i].user_id);
    }

    ngx_free(d->lost);

    while (!ngx_queue_empty(&d->retries)) {
        q = ngx_queue_head(&d->retries);
        ngx_queue_remove(q);
        dv = ngx_queue_data(q, ngx_chat_delivery_t, queue);

        ngx_log_error(NGX_LOG_ERR, d->log, 0,
                      "chat: message %s is in Kafka but not in the inbox: "
                      "the worker exits", dv->id);
        ngx_free(dv);
    }

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
ngx_chat_deliver_connecting(ngx_chat_redis_t *rds, void *data)
{
    ngx_chat_shard_t   *sh = data;
    ngx_chat_worker_t  *w = ngx_chat_worker;

    ngx_chat_lua_load(rds);

    /* message ids: a worker number unique among the node's live ones */
    if (sh->index == 0 && w) {
        (void) ngx_chat_redis_command(rds, ngx_chat_deliver_worker_id, w,
                                      "INCR chat:workers:{%b}",
                                      w->conf->node_name.data,
                                      w->conf->node_name.len);
    }
}


static void
ngx_chat_deliver_worker_id(ngx_chat_store_rc_e rc, redisReply *reply,
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
ngx_chat_deliver_sub_connected(ngx_chat_redis_t *rds, void *data)
{
    ngx_chat_shard_t    *sh = data;
    ngx_chat_deliver_t  *d = ngx_chat_deliver;

    sh->subscribed = 0;
    sh->ping_sent = 0;

    if (d == NULL) {
        return;
    }

    if (ngx_chat_redis_subscribe(rds, d->channel,
                                 ngx_chat_deliver_sub_message, sh)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, d->log, 0,
                      "chat: redis %V: cannot subscribe to %s",
                      ngx_chat_redis_name(rds), d->channel);
        ngx_chat_redis_reconnect(rds);
    }
}


static void
ngx_chat_deliver_sub_message(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_shard_t    *sh = data;
    redisReply          *kind, *payload;
    ngx_chat_deliver_t  *d = ngx_chat_deliver;

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
        ngx_chat_deliver_resync(sh);
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

    ngx_chat_deliver_live(sh, payload->str, payload->len);
}


/* "<user> <except conn> <n> <frame>" from the worker's channel */

static void
ngx_chat_deliver_live(ngx_chat_shard_t *sh, const char *p, size_t len)
{
    char                   *end;
    size_t                  flen;
    uint64_t                uid, except, n;
    const char             *last, *frame;
    ngx_queue_t            *q, *next;
    ngx_chat_ws_t          *ws;
    ngx_chat_live_t        *lv;
    ngx_chat_local_user_t  *lu;

    last = p + len;

    errno = 0;
    uid = strtoull(p, &end, 10);
    if (end >= last || *end != ' ') {
        goto bad;
    }

    except = strtoull(end + 1, &end, 10);
    if (end >= last || *end != ' ') {
        goto bad;
    }

    n = strtoull(end + 1, &end, 10);
    if (end >= last || *end != ' ' || errno) {
        goto bad;
    }

    frame = end + 1;
    flen = last - frame;

    lu = ngx_chat_local_find(uid);
    if (lu == NULL) {
        return;
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

            (void) ngx_chat_ws_send_text(ws, (u_char *) frame, flen);
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
        (void) ngx_chat_ws_send_text(ws, (u_char *) frame, flen);
    }

    return;

bad:

    ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                  "chat: redis %V: malformed delivery on %s",
                  ngx_chat_redis_name(sh->sub), ngx_chat_deliver->channel);
}


/* the subscription is (back): every local user of the shard syncs */

static void
ngx_chat_deliver_resync(ngx_chat_shard_t *sh)
{
    ngx_queue_t            *q;
    ngx_chat_ws_t          *ws;
    ngx_rbtree_node_t      *node, *root, *sentinel;
    ngx_chat_worker_t      *w = ngx_chat_worker;
    ngx_chat_deliver_t     *d = ngx_chat_deliver;
    ngx_chat_local_user_t  *lu;

    root = d->users.root;
    sentinel = d->users.sentinel;

    if (root == sentinel) {
        return;
    }

    for (node = ngx_rbtree_min(root, sentinel);
         node;
         node = ngx_rbtree_next(&d->users, node))
    {
        if (chat_ring_lookup_u64(&w->conf->redis_ring, node->key)
            != sh->index)
        {
            continue;
        }

        lu = (ngx_chat_local_user_t *) node;

        for (q = ngx_queue_head(&lu->conns);
             q != ngx_queue_sentinel(&lu->conns);
             q = ngx_queue_next(q))
        {
            ws = ngx_queue_data(q, ngx_chat_ws_t, peers);

            if (ws->done) {
                continue;
            }

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
ngx_chat_deliver_tick(ngx_event_t *ev)
{
    ngx_uint_t           i;
    ngx_msec_t           timeout;
    ngx_chat_shard_t    *sh;
    ngx_chat_deliver_t  *d = ev->data;

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
            && ngx_chat_redis_command(sh->cmd, ngx_chat_deliver_ping_reply,
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

        ngx_chat_deliver_refresh();
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
ngx_chat_deliver_ping_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_shard_t  *sh = data;

    if (rc != NGX_CHAT_STORE_OK && ngx_chat_deliver) {
        sh->ping_sent = 0;
    }
}


/*
 * Every route of the worker lives on for another NGX_CHAT_ROUTE_TTL: one
 * REFRESH per Redis server for up to NGX_CHAT_REFRESH_BATCH connections.
 */

static void
ngx_chat_deliver_refresh(void)
{
    ngx_uint_t              shard;
    ngx_queue_t            *q;
    ngx_chat_ws_t          *ws;
    ngx_chat_worker_t      *w = ngx_chat_worker;
    ngx_chat_deliver_t     *d = ngx_chat_deliver;
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
            if (chat_ring_lookup_u64(&w->conf->redis_ring, lu->node.key)
                != shard)
            {
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
                                       ngx_chat_deliver, argc, argv,
                                       argvlen);
    ngx_free(argv);
}


/* failures are counted, and told once per refresh round */

static void
ngx_chat_refresh_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_deliver_t  *d = data;

    if (rc != NGX_CHAT_STORE_OK && d == ngx_chat_deliver) {
        d->refresh_failed++;
    }
}


static ngx_chat_local_user_t *
ngx_chat_local_find(uint64_t user_id)
{
    ngx_rbtree_node_t  *node, *sentinel;

    node = ngx_chat_deliver->users.root;
    sentinel = ngx_chat_deliver->users.sentinel;

    while (node != sentinel) {
        if (user_id == node->key) {
            return (ngx_chat_local_user_t *) node;
        }

        node = (user_id < node->key) ? node->left : node->right;
    }

    return NULL;
}


ngx_chat_local_user_t *
ngx_chat_local_next(ngx_chat_local_user_t *lu)
{
    ngx_rbtree_node_t   *node;
    ngx_chat_deliver_t  *d = ngx_chat_deliver;

    if (d == NULL || d->users.root == d->users.sentinel) {
        return NULL;
    }

    node = lu ? ngx_rbtree_next(&d->users, &lu->node)
              : ngx_rbtree_min(d->users.root, d->users.sentinel);

    return (ngx_chat_local_user_t *) node;
}


void
ngx_chat_deliver_open(ngx_chat_ws_t *ws)
{
    ngx_chat_deliver_t     *d = ngx_chat_deliver;
    ngx_chat_local_user_t  *lu;

    ngx_queue_init(&ws->peers);
    ngx_queue_init(&ws->live);
    ngx_queue_init(&ws->held);

    ws->sync_timer.handler = ngx_chat_sync_timer;
    ws->sync_timer.data = ws;
    ws->sync_timer.log = ws->request->connection->log;
    ws->sync_timer.cancelable = 1;

    if (d == NULL) {
        return;
    }

    ws->conn_id = ++d->next_conn;

    lu = ngx_chat_local_find(ws->user_id);

    if (lu == NULL) {
        lu = ngx_alloc(sizeof(ngx_chat_local_user_t), d->log);
        if (lu == NULL) {
            return;
        }

        ngx_memzero(&lu->node, sizeof(ngx_rbtree_node_t));
        lu->node.key = (ngx_rbtree_key_t) ws->user_id;
        ngx_queue_init(&lu->conns);
        ngx_rbtree_insert(&d->users, &lu->node);
    }

    ngx_queue_insert_tail(&lu->conns, &ws->peers);
    ws->local = lu;
    lu->beat = 1;
    d->nconns++;

    /*
     * The route and what waited in the inbox, atomically (SYNC); presence
     * (the friends' state, and the user's coming online) goes alongside,
     * so that messages never wait for the friends list.
     */
    ngx_chat_sync_start(ws, 1, 1, 0);
    ngx_chat_presence_open(ws);
}


void
ngx_chat_route_name(ngx_chat_ws_t *ws, char *buf)
{
    (void) ngx_snprintf((u_char *) buf, NGX_CHAT_ROUTE_LEN, "%s %uL%Z",
                        ngx_chat_deliver->channel, ws->conn_id);
}


void
ngx_chat_deliver_close(ngx_chat_ws_t *ws)
{
    char                    route[NGX_CHAT_ROUTE_LEN];
    ngx_chat_deliver_t     *d = ngx_chat_deliver;
    ngx_chat_local_user_t  *lu = ws->local;

    /* a route that a SYNC in flight registers is removed right after it */
    if (ws->sync_cmd) {
        if (ws->sync_register) {
            ws->registered = 1;
        }

        ngx_chat_redis_cancel(ws->sync_cmd);
        ws->sync_cmd = NULL;
    }

    if (ws->sync_timer.timer_set) {
        ngx_del_timer(&ws->sync_timer);
    }

    ngx_chat_live_free(ws);

    if (lu == NULL || d == NULL) {
        return;
    }

    ngx_queue_remove(&ws->peers);
    ws->local = NULL;
    d->nconns--;

    if (ngx_queue_empty(&lu->conns)) {
        ngx_rbtree_delete(&d->users, &lu->node);
        ngx_free(lu);
    }

    if (ws->registered) {
        ngx_chat_route_name(ws, route);
        ngx_chat_presence_close(ws->user_id, route);
        ws->registered = 0;
    }
}


ngx_int_t
ngx_chat_deliver_sync(ngx_chat_ws_t *ws)
{
    if (ngx_chat_deliver == NULL || ws->local == NULL) {
        return ngx_chat_ws_error(ws, "unavailable", "this node has no "
                                 "Redis configured", NULL);
    }

    if (ws->syncing) {
        /* the sync under way reads everything up to its end */
        ws->lost_live = 1;
        return NGX_OK;
    }

    ngx_chat_sync_start(ws, !ws->registered, 0, 0);

    return NGX_OK;
}


static void
ngx_chat_sync_start(ngx_chat_ws_t *ws, ngx_uint_t reg, ngx_uint_t receipts,
    uint64_t after)
{
    ws->syncing = 1;
    ws->lost_live = 0;
    ws->sync_register = reg;
    ws->sync_receipts = receipts;
    /* a sync from the start asks whether the inbox is complete */
    ws->sync_check = (after == 0);
    ws->last_n = after;

    ngx_chat_sync_page(ws);
}


/* the sync goes on: after a refill (ngx_chat_refill.c) or a wait */

void
ngx_chat_sync_resume(ngx_chat_ws_t *ws)
{
    if (ws->done || ws->sync_cmd) {
        return;
    }

    ngx_chat_sync_page(ws);
}


static void
ngx_chat_sync_page(ngx_chat_ws_t *ws)
{
    char                 route[NGX_CHAT_ROUTE_LEN];
    unsigned long long   uid = ws->user_id;
    ngx_chat_redis_t    *rds;
    ngx_chat_deliver_t  *d = ngx_chat_deliver;

    if (ws->done || d == NULL) {
        return;
    }

    /* a reader that is behind gets the next page when it caught up */
    if (ws->queued > ws->conf->ws_send_queue / 2) {
        ngx_add_timer(&ws->sync_timer, 50);
        return;
    }

    route[0] = '\0';

    if (ws->sync_register) {
        ngx_chat_route_name(ws, route);
    }

    rds = ngx_chat_redis_for_user(ws->user_id);

    ws->sync_cmd = rds
        ? ngx_chat_redis_command(rds, ngx_chat_sync_reply, ws,
                                 "EVALSHA %s 5 chat:routes:{%llu} "
                                 "chat:inbox:{%llu} chat:inboxq:{%llu} "
                                 "chat:rbox:{%llu} chat:inboxok:{%llu} "
                                 "%s %d %llu %d %d %d",
                                 ngx_chat_script_sha(NGX_CHAT_SCRIPT_SYNC),
                                 uid, uid, uid, uid, uid, route,
                                 (int) NGX_CHAT_ROUTE_TTL,
                                 (unsigned long long) ws->last_n,
                                 (int) NGX_CHAT_SYNC_PAGE,
                                 (int) ws->sync_receipts,
                                 (int) ws->sync_check)
        : NULL;

    if (ws->sync_cmd == NULL) {
        /* Redis is down: try again, live deliveries wait meanwhile */
        ngx_add_timer(&ws->sync_timer, 1000);
    }
}


static void
ngx_chat_sync_reply(ngx_chat_store_rc_e rc, redisReply *reply, void *data)
{
    ngx_chat_ws_t  *ws = data;
    uint64_t        n;
    ngx_uint_t      i, scanned;
    redisReply     *entries, *receipts, *e;

    ws->sync_cmd = NULL;

    if (ws->done) {
        return;
    }

    if (rc != NGX_CHAT_STORE_OK || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 4
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_STRING
        || reply->element[2]->type != REDIS_REPLY_ARRAY
        || reply->element[3]->type != REDIS_REPLY_ARRAY)
    {
        if (rc == NGX_CHAT_STORE_FAILED && reply
            && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
        {
            /* SCRIPT FLUSH behind our back: load them again */
            ngx_chat_redis_reconnect(ngx_chat_redis_for_user(ws->user_id));
        }

        ngx_add_timer(&ws->sync_timer, 1000);
        return;
    }

    if (ws->sync_check) {
        ws->sync_check = 0;

        if (reply->element[0]->integer == -1
            || ngx_chat_deliver_lost(ws->user_id))
        {
            /* the inbox is not known complete: PostgreSQL first */
            ngx_chat_refill_start(ws);
            return;
        }
    }

    if (ws->sync_register) {
        ws->registered = 1;
        ws->sync_register = 0;
    }

    scanned = (ngx_uint_t) reply->element[0]->integer;
    entries = reply->element[2];
    receipts = reply->element[3];

    for (i = 0; i + 1 < entries->elements; i += 2) {
        e = entries->element[i + 1];

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        if (ngx_chat_send_entry(ws, e->str, e->len) != NGX_OK || ws->done) {
            return;
        }
    }

    if (ws->sync_receipts) {
        ws->sync_receipts = 0;

        for (i = 0; i < receipts->elements; i++) {
            e = receipts->element[i];

            if (e->type == REDIS_REPLY_STRING
                && (ngx_chat_ws_send_text(ws, (u_char *) e->str, e->len)
                    != NGX_OK || ws->done))
            {
                return;
            }
        }
    }

    n = ngx_atoof((u_char *) reply->element[1]->str,
                  reply->element[1]->len);
    if (n > ws->last_n) {
        ws->last_n = n;
    }

    if (scanned >= NGX_CHAT_SYNC_PAGE || ws->lost_live) {
        ws->lost_live = 0;
        ngx_chat_sync_page(ws);
        return;
    }

    ngx_chat_sync_done(ws);
}


/* an inbox entry "u <from> <seq> <conv> <frame>": its frame goes out */

static ngx_int_t
ngx_chat_send_entry(ngx_chat_ws_t *ws, const char *v, size_t len)
{
    ngx_uint_t   spaces;
    const char  *p, *last;

    if (len < 2 || v[0] != 'u') {
        return NGX_OK;
    }

    last = v + len;
    spaces = 0;

    for (p = v; p < last; p++) {
        if (*p == ' ' && ++spaces == 4) {
            p++;
            return ngx_chat_ws_send_text(ws, (u_char *) p, last - p);
        }
    }

    return NGX_OK;
}


static void
ngx_chat_sync_timer(ngx_event_t *ev)
{
    ngx_chat_sync_resume(ev->data);
}


/* the inbox is read: what came live meanwhile goes out if it is newer */

static void
ngx_chat_sync_done(ngx_chat_ws_t *ws)
{
    ngx_queue_t      *q;
    ngx_chat_live_t  *lv;

    ws->syncing = 0;

    while (!ngx_queue_empty(&ws->live) && !ws->done) {
        q = ngx_queue_head(&ws->live);
        ngx_queue_remove(q);
        ws->nlive--;

        lv = ngx_queue_data(q, ngx_chat_live_t, queue);

        if (lv->n > ws->last_n) {
            ws->last_n = lv->n;
            (void) ngx_chat_ws_send_text(ws, (u_char *) (lv + 1), lv->len);
        }

        ngx_free(lv);
    }
}


static void
ngx_chat_live_free(ngx_chat_ws_t *ws)
{
    ngx_queue_t  *q;

    if (ws->live.next == NULL) {
        return;
    }

    while (!ngx_queue_empty(&ws->live)) {
        q = ngx_queue_head(&ws->live);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_chat_live_t, queue));
    }

    ws->nlive = 0;

    while (!ngx_queue_empty(&ws->held)) {
        q = ngx_queue_head(&ws->held);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_chat_live_t, queue));
    }

    ws->nheld = 0;
}


/* what a friend's worker told while the friends' state was on its way */

void
ngx_chat_deliver_presence_release(ngx_chat_ws_t *ws)
{
    ngx_queue_t      *q;
    ngx_chat_live_t  *lv;

    ws->presence_sent = 1;

    if (ws->held.next == NULL) {
        return;
    }

    while (!ngx_queue_empty(&ws->held)) {
        q = ngx_queue_head(&ws->held);
        ngx_queue_remove(q);
        ws->nheld--;

        lv = ngx_queue_data(q, ngx_chat_live_t, queue);

        if (!ws->done
            && ngx_chat_presence_filter(ws, (char *) (lv + 1), lv->len))
        {
            (void) ngx_chat_ws_send_text(ws, (u_char *) (lv + 1), lv->len);
        }

        ngx_free(lv);
    }
}


/* replies nobody waits for: only failures are worth a line */

static void
ngx_chat_script_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    const char  *what = data;

    if (rc == NGX_CHAT_STORE_OK) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "chat: %s failed: %s", what ? what : "a Redis script",
                  rc == NGX_CHAT_STORE_TIMEOUT ? "Redis timed out"
                  : rc == NGX_CHAT_STORE_DOWN ? "Redis is down"
                  : "Redis error");

    if (rc == NGX_CHAT_STORE_FAILED && reply
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: Redis lost the chat scripts (SCRIPT FLUSH?); "
                      "they are loaded again on reconnect");
    }
}


void
ngx_chat_deliver_message(uint64_t from, uint64_t to, const char *id,
    int64_t seq, const char *conv, json_t *msg, ngx_chat_ws_t *ws)
{
    char                  *text, head[96];
    size_t                 len;
    uint64_t               except;
    ngx_uint_t             both;
    ngx_chat_redis_t      *rds;
    ngx_chat_delivery_t   *dv;
    ngx_chat_deliver_t    *d = ngx_chat_deliver;

    if (d == NULL) {
        return;
    }

    (void) ngx_snprintf((u_char *) head, sizeof(head), "%uL %L %s%Z",
                        from, seq, conv);
    except = ws ? ws->conn_id : 0;

    text = chat_frame_message(msg);

    if (text == NULL) {
        return;
    }

    len = ngx_strlen(text);
    rds = ngx_chat_redis_for_user(to);

    /* a note to self is in the inbox already: no copy to the others */
    both = (from != to && rds == ngx_chat_redis_for_user(from));

    dv = ngx_alloc(sizeof(ngx_chat_delivery_t) + len + 1, d->log);
    if (dv == NULL) {
        ngx_log_error(NGX_LOG_ALERT, d->log, 0,
                      "chat: message %s to %uL is in Kafka but not in the "
                      "inbox: out of memory", id, to);

    } else {
        dv->from = from;
        dv->to = to;
        dv->except = except;
        dv->both = both;
        dv->since = ngx_current_msec;
        ngx_cpystrn((u_char *) dv->id, (u_char *) id, sizeof(dv->id));
        ngx_cpystrn((u_char *) dv->head, (u_char *) head, sizeof(dv->head));
        dv->len = len;
        ngx_memcpy(dv->text, text, len + 1);

        ngx_chat_delivery_issue(dv);
    }

    /* the sender's other devices, on another server */
    if (from != to && !both) {
        (void) ngx_chat_relay(from, text, len, except, 0,
                              ngx_chat_script_reply,
                              "delivery to the sender's devices");
    }

    free(text);
}


/*
 * DELIVER for one message, again and again while Redis is down or slow:
 * the message is acknowledged and in Kafka, and DELIVER is idempotent on
 * its id.  A message that Redis did not take for chat_delivery_timeout
 * is given up (logged); it stays in Kafka and PostgreSQL, and the
 * recipient's inbox is no longer taken for complete (ngx_chat_lost_add()):
 * the next connection or sync reads it from PostgreSQL.
 */

static void
ngx_chat_delivery_issue(ngx_chat_delivery_t *dv)
{
    const char            *sha;
    ngx_chat_redis_t      *rds;
    unsigned long long     uto = dv->to, ufrom = dv->from;
    ngx_chat_deliver_t    *d = ngx_chat_deliver;
    ngx_chat_redis_cmd_t  *cmd;

    rds = ngx_chat_redis_for_user(dv->to);
    sha = ngx_chat_script_sha(NGX_CHAT_SCRIPT_DELIVER);

    if (rds == NULL) {
        cmd = NULL;

    } else if (dv->both) {
        cmd = ngx_chat_redis_command(rds, ngx_chat_delivery_reply, dv,
                                     "EVALSHA %s 6 chat:routes:{%llu} "
                                     "chat:inbox:{%llu} chat:inboxq:{%llu} "
                                     "chat:inboxn:{%llu} chat:inboxok:{%llu} "
                                     "chat:routes:{%llu} "
                                     "%llu %s %s %b %d %d %llu %s %llu",
                                     sha, uto, uto, uto, uto, uto, ufrom, uto,
                                     dv->id, dv->head, dv->text, dv->len,
                                     (int) NGX_CHAT_INBOX_MAX,
                                     (int) NGX_CHAT_INBOX_TTL, ufrom,
                                     dv->except ? d->channel : "-",
                                     (unsigned long long) dv->except);

    } else {
        cmd = ngx_chat_redis_command(rds, ngx_chat_delivery_reply, dv,
                                     "EVALSHA %s 5 chat:routes:{%llu} "
                                     "chat:inbox:{%llu} chat:inboxq:{%llu} "
                                     "chat:inboxn:{%llu} chat:inboxok:{%llu} "
                                     "%llu %s %s %b %d %d",
                                     sha, uto, uto, uto, uto, uto, uto,
                                     dv->id,
                                     dv->head, dv->text, dv->len,
                                     (int) NGX_CHAT_INBOX_MAX,
                                     (int) NGX_CHAT_INBOX_TTL);
    }

    if (cmd == NULL) {
        ngx_chat_delivery_retry(dv);
    }
}


static void
ngx_chat_delivery_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_delivery_t  *dv = data;

    if (rc == NGX_CHAT_STORE_OK || ngx_chat_deliver == NULL) {
        ngx_free(dv);
        return;
    }

    ngx_chat_delivery_retry(dv);
}


static void
ngx_chat_delivery_retry(ngx_chat_delivery_t *dv)
{
    ngx_chat_deliver_t  *d = ngx_chat_deliver;

    if (d == NULL || ngx_exiting || ngx_terminate
        || ngx_current_msec - dv->since
           > ngx_chat_worker->conf->delivery_timeout
        || d->nretries >= NGX_CHAT_DELIVERY_MAX_RETRIES)
    {
        ngx_log_error(NGX_LOG_ERR, d ? d->log : ngx_cycle->log, 0,
                      "chat: message %s to %uL is in Kafka but not in the "
                      "inbox: Redis did not take it, the inbox is refilled "
                      "from PostgreSQL", dv->id, dv->to);

        if (d) {
            ngx_chat_lost_add(dv->to);
        }

        ngx_free(dv);
        return;
    }

    if (d->nretries++ == 0) {
        ngx_log_error(NGX_LOG_WARN, d->log, 0,
                      "chat: Redis did not take a delivery, retrying");
    }

    ngx_queue_insert_tail(&d->retries, &dv->queue);

    if (!d->retry.timer_set) {
        ngx_add_timer(&d->retry, NGX_CHAT_DELIVERY_RETRY);
    }
}


static void
ngx_chat_delivery_retry_handler(ngx_event_t *ev)
{
    ngx_queue_t           batch, *q;
    ngx_chat_deliver_t   *d = ev->data;
    ngx_chat_delivery_t  *dv;

    if (ngx_queue_empty(&d->retries)) {
        return;
    }

    /* what fails again goes to the next round */
    batch = d->retries;
    batch.next->prev = &batch;
    batch.prev->next = &batch;
    ngx_queue_init(&d->retries);
    d->nretries = 0;

    while (!ngx_queue_empty(&batch)) {
        q = ngx_queue_head(&batch);
        ngx_queue_remove(q);
        dv = ngx_queue_data(q, ngx_chat_delivery_t, queue);
        ngx_chat_delivery_issue(dv);
    }
}


/*
 * The recipient of a message given up: its marker chat:inboxok:{user} is
 * deleted as soon as its Redis server answers, with no time limit; till
 * then this worker sets no marker for it (ngx_chat_deliver_lost()).  The
 * set is bounded; a user that does not fit is logged.
 */

static void
ngx_chat_lost_add(uint64_t user_id)
{
    ngx_chat_lost_t     *lost;
    ngx_chat_deliver_t  *d = ngx_chat_deliver;

    if (ngx_chat_deliver_lost(user_id)) {
        return;
    }

    if (d->lost == NULL) {
        d->lost = ngx_alloc(NGX_CHAT_LOST_MAX * sizeof(ngx_chat_lost_t),
                            d->log);
    }

    if (d->lost == NULL || d->nlost == NGX_CHAT_LOST_MAX) {
        ngx_log_error(NGX_LOG_ALERT, d->log, 0,
                      "chat: the inbox of user %uL misses messages and "
                      "stays marked complete: too many such users",
                      user_id);
        return;
    }

    lost = &d->lost[d->nlost++];
    lost->user_id = user_id;
    lost->inflight = 0;

    if (!d->lost_timer.timer_set) {
        ngx_add_timer(&d->lost_timer, 1);
    }
}


ngx_uint_t
ngx_chat_deliver_lost(uint64_t user_id)
{
    ngx_uint_t           i;
    ngx_chat_deliver_t  *d = ngx_chat_deliver;

    if (d == NULL) {
        return 0;
    }

    for (i = 0; i < d->nlost; i++) {
        if (d->lost[i].user_id == user_id) {
            return 1;
        }
    }

    return 0;
}


static void
ngx_chat_lost_handler(ngx_event_t *ev)
{
    ngx_uint_t           i;
    ngx_chat_lost_t     *lost;
    ngx_chat_redis_t    *rds;
    ngx_chat_deliver_t  *d = ev->data;

    for (i = 0; i < d->nlost; i++) {
        lost = &d->lost[i];

        if (lost->inflight) {
            continue;
        }

        rds = ngx_chat_redis_for_user(lost->user_id);

        if (rds
            && ngx_chat_redis_command(rds, ngx_chat_lost_reply,
                                      (void *) (uintptr_t) lost->user_id,
                                      "DEL chat:inboxok:{%llu}",
                                      (unsigned long long) lost->user_id))
        {
            lost->inflight = 1;
        }
    }

    if (d->nlost && !ngx_exiting && !ngx_terminate) {
        ngx_add_timer(&d->lost_timer, NGX_CHAT_DELIVERY_RETRY);
    }
}


static void
ngx_chat_lost_reply(ngx_chat_store_rc_e rc, redisReply *reply, void *data)
{
    uint64_t             user_id = (uintptr_t) data;
    ngx_uint_t           i;
    ngx_chat_deliver_t  *d = ngx_chat_deliver;

    if (d == NULL) {
        return;
    }

    for (i = 0; i < d->nlost; i++) {
        if (d->lost[i].user_id != user_id) {
            continue;
        }

        if (rc != NGX_CHAT_STORE_OK) {
            d->lost[i].inflight = 0;
            return;
        }

        ngx_log_error(NGX_LOG_WARN, d->log, 0,
                      "chat: the inbox of user %uL is refilled from "
                      "PostgreSQL at its next connection", user_id);

        d->lost[i] = d->lost[--d->nlost];
        return;
    }
}


ngx_chat_redis_cmd_t *
ngx_chat_relay(uint64_t user_id, const char *frame, size_t len,
    uint64_t except, ngx_uint_t store, ngx_chat_redis_handler_pt handler,
    void *data)
{
    ngx_chat_redis_t    *rds;
    unsigned long long   uid = user_id;
    ngx_chat_deliver_t  *d = ngx_chat_deliver;

    rds = ngx_chat_redis_for_user(user_id);

    if (rds == NULL || d == NULL) {
        return NULL;
    }

    return ngx_chat_redis_command(rds, handler, data,
                                  "EVALSHA %s 2 chat:routes:{%llu} "
                                  "chat:rbox:{%llu} %llu %b %s %llu %d %d %d",
                                  ngx_chat_script_sha(NGX_CHAT_SCRIPT_RELAY),
                                  uid, uid, uid, frame, len,
                                  except ? d->channel : "-",
                                  (unsigned long long) except,
                                  (int) store, (int) NGX_CHAT_RBOX_MAX,
                                  (int) NGX_CHAT_INBOX_TTL);
}


/*
 * {"type":"receipt","id":...,"status":"delivered"|"read"}: only for a
 * message in the user's inbox; the receipt goes to Kafka first, then the
 * inbox moves on and the sender's devices hear of it (or find it on
 * their next connect).  A receipt that changes nothing is not sent on.
 *
 * "ids":[...] instead of "id" (CONTRACT v1.1, up to 100, checked by
 * chat_proto_decode()) is answered as if each id came in a receipt of its
 * own: each is checked, stored and told on its own, each failure is an
 * error frame carrying its id, and each counts towards the receipts
 * under way on the connection (the frame itself was metered once).
 */

ngx_int_t
ngx_chat_receipt(ngx_chat_ws_t *ws, chat_proto_msg_t *m)
{
    size_t     i;
    ngx_int_t  rc;

    for (i = 0; i < m->nids; i++) {
        rc = ngx_chat_receipt_one(ws, m->ids[i], m->ids_len[i], m->read);

        if (rc != NGX_OK || ws->done) {
            return rc;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_chat_receipt_one(ngx_chat_ws_t *ws, const char *id, size_t len,
    ngx_uint_t read)
{
    ngx_chat_redis_t    *rds;
    ngx_chat_receipt_t  *rcp;
    ngx_chat_worker_t   *w = ngx_chat_worker;

    /* the id is checked (chat_proto_decode): 1..NGX_CHAT_RECEIPT_ID */

    if (ngx_chat_deliver == NULL || w->kafka == NULL) {
        return ngx_chat_receipt_error(ws, "unavailable", "this node has no "
                                      "Redis or Kafka configured", id);
    }

    rds = ngx_chat_redis_for_user(ws->user_id);

    if (ws->nreceipts >= NGX_CHAT_RECEIPT_MAX_PENDING) {
        return ngx_chat_receipt_error(ws, "busy", "too many receipts under "
                                      "way on this connection", id);
    }

    if (ngx_chat_redis_pending(rds) > NGX_CHAT_REDIS_BACKLOG) {
        return ngx_chat_receipt_error(ws, "busy", "the server is "
                                      "overloaded, send it again", id);
    }

    rcp = ngx_calloc(sizeof(ngx_chat_receipt_t), ngx_cycle->log);
    if (rcp == NULL) {
        return NGX_ERROR;
    }

    rcp->op.ws = ws;
    rcp->by = ws->user_id;
    rcp->read = read;
    ngx_memcpy(rcp->id, id, len);
    rcp->id[len] = '\0';
    ngx_queue_insert_tail(&ws->ops, &rcp->op.queue);
    ws->nreceipts++;

    rcp->cmd = ngx_chat_redis_command(rds, ngx_chat_receipt_checked, rcp,
                                      "HGET chat:inbox:{%llu} %s",
                                      (unsigned long long) ws->user_id,
                                      rcp->id);
    if (rcp->cmd == NULL) {
        ngx_chat_receipt_fail(rcp, "unavailable", "Redis is down");
    }

    return NGX_OK;
}


static void
ngx_chat_receipt_checked(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_receipt_t  *rcp = data;

    char                 state, conv[48];
    char                *payload;
    long long            seq;
    chat_record_t        rec;
    ngx_str_t            key, value;
    unsigned long long   from;
    ngx_time_t          *tp;
    ngx_chat_worker_t   *w = ngx_chat_worker;

    rcp->cmd = NULL;

    if (rc != NGX_CHAT_STORE_OK) {
        ngx_chat_receipt_fail(rcp, "unavailable", "Redis did not answer");
        return;
    }

    if (reply->type != REDIS_REPLY_STRING) {
        ngx_chat_receipt_fail(rcp, "unknown_message", "no such message "
                              "was sent to you");
        return;
    }

    if (sscanf(reply->str, "%c %llu %lld %47s", &state, &from, &seq, conv)
        != 4)
    {
        ngx_chat_receipt_fail(rcp, "internal", "a broken inbox entry");
        return;
    }

    /* a receipt that changes nothing, e.g. from a second device */
    if (state == 'r' || (state == 'd' && !rcp->read)) {
        ngx_chat_receipt_done(rcp);
        return;
    }

    rcp->from = from;
    rcp->seq = seq;
    ngx_memcpy(rcp->conv, conv, sizeof(conv));

    tp = ngx_timeofday();
    rcp->ts = (int64_t) tp->sec * 1000 + tp->msec;

    ngx_memzero(&rec, sizeof(chat_record_t));
    (void) ngx_cpystrn((u_char *) rec.id, (u_char *) rcp->id, sizeof(rec.id));
    (void) ngx_cpystrn((u_char *) rec.conv, (u_char *) rcp->conv,
                       sizeof(rec.conv));
    rec.seq = rcp->seq;
    rec.from = (int64_t) rcp->from;
    rec.by = (int64_t) rcp->by;
    rec.read = rcp->read;
    rec.ts = rcp->ts;

    payload = chat_record_receipt_dump(&rec);

    if (payload == NULL) {
        ngx_chat_receipt_fail(rcp, "internal", "out of memory");
        return;
    }

    key.data = (u_char *) rcp->conv;
    key.len = ngx_strlen(rcp->conv);
    value.data = (u_char *) payload;
    value.len = ngx_strlen(payload);

    rcp->kmsg = ngx_chat_kafka_produce(w->kafka, NGX_CHAT_TOPIC_RECEIPTS, 0,
                                       &key, &value,
                                       ngx_chat_receipt_stored, rcp);
    free(payload);

    if (rcp->kmsg == NULL) {
        ngx_chat_receipt_fail(rcp, "unavailable", "Kafka refused the "
                              "receipt");
    }
}


static void
ngx_chat_receipt_stored(ngx_chat_store_rc_e rc, int32_t partition,
    int64_t offset, void *data)
{
    ngx_chat_receipt_t  *rcp = data;

    char                *text;
    const char          *sha;
    ngx_chat_redis_t    *rds;
    unsigned long long   by = rcp->by, from = rcp->from;

    rcp->kmsg = NULL;

    if (rc != NGX_CHAT_STORE_OK) {
        ngx_chat_receipt_fail(rcp, "unavailable", "the receipt was not "
                              "stored, send it again");
        return;
    }

    text = chat_frame_receipt(rcp->id, (int64_t) rcp->by, rcp->read,
                              rcp->ts);

    if (text == NULL) {
        ngx_chat_receipt_done(rcp);
        return;
    }

    rds = ngx_chat_redis_for_user(rcp->by);
    sha = ngx_chat_script_sha(NGX_CHAT_SCRIPT_RECEIPT);

    if (rds == NULL) {
        rcp->cmd = NULL;

    } else if (rds == ngx_chat_redis_for_user(rcp->from)) {
        /* the sender's keys are there too: the frame goes in the call */
        rcp->cmd = ngx_chat_redis_command(rds, ngx_chat_receipt_applied,
                                          rcp,
                                          "EVALSHA %s 5 chat:inbox:{%llu} "
                                          "chat:inboxq:{%llu} "
                                          "chat:inboxd:{%llu} "
                                          "chat:routes:{%llu} "
                                          "chat:rbox:{%llu} %s %s %d %d "
                                          "%llu %s %d",
                                          sha, by, by, by, from, from,
                                          rcp->id, rcp->read ? "r" : "d",
                                          (int) NGX_CHAT_INBOX_SEEN,
                                          (int) NGX_CHAT_INBOX_TTL, from,
                                          text, (int) NGX_CHAT_RBOX_MAX);

    } else {
        rcp->cmd = ngx_chat_redis_command(rds, ngx_chat_receipt_applied,
                                          rcp,
                                          "EVALSHA %s 3 chat:inbox:{%llu} "
                                          "chat:inboxq:{%llu} "
                                          "chat:inboxd:{%llu} %s %s %d %d",
                                          sha, by, by, by, rcp->id,
                                          rcp->read ? "r" : "d",
                                          (int) NGX_CHAT_INBOX_SEEN,
                                          (int) NGX_CHAT_INBOX_TTL);
        rcp->text = text;
        text = NULL;
    }

    free(text);

    if (rcp->cmd == NULL) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: receipt for %s is in Kafka, but Redis is "
                      "down: the sender hears of it from the history",
                      rcp->id);
        ngx_chat_receipt_done(rcp);
    }
}


static void
ngx_chat_receipt_applied(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_receipt_t  *rcp = data;

    rcp->cmd = NULL;

    /* 1: moved forward, the sender on another server still to be told */
    if (rc == NGX_CHAT_STORE_OK && reply->type == REDIS_REPLY_INTEGER
        && reply->integer == 1 && rcp->text)
    {
        (void) ngx_chat_relay(rcp->from, rcp->text, ngx_strlen(rcp->text),
                              0, 1, ngx_chat_script_reply,
                              "a receipt to the sender");
    }

    /* else raced with another device, told already, or Redis failed */
    ngx_chat_receipt_done(rcp);
}


static void
ngx_chat_receipt_fail(ngx_chat_receipt_t *rcp, const char *code,
    const char *message)
{
    if (rcp->op.ws) {
        (void) ngx_chat_receipt_error(rcp->op.ws, code, message, rcp->id);
    }

    ngx_chat_receipt_done(rcp);
}


/* an error frame about the receipt for message id */

static ngx_int_t
ngx_chat_receipt_error(ngx_chat_ws_t *ws, const char *code,
    const char *message, const char *id)
{
    char       *err;
    ngx_int_t   rc;

    err = chat_frame_error(code, message, NULL, id, -1);
    if (err == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_chat_ws_send_text(ws, (u_char *) err, ngx_strlen(err));
    free(err);

    return rc;
}


static void
ngx_chat_receipt_done(ngx_chat_receipt_t *rcp)
{
    if (rcp->op.ws) {
        ngx_queue_remove(&rcp->op.queue);
        rcp->op.ws->nreceipts--;
    }

    free(rcp->text);
    ngx_free(rcp);
}


/*
 * {"type":"typing","to":U}: to U's connections now, or to nobody; never
 * stored.  One per second per connection is passed on, the rest dropped.
 * U must exist (CONTRACT section 3: else an error frame), as for a send:
 * the worker's memory of users, else PostgreSQL; such a lookup costs a
 * send's worth of the connection's chat_send_rate.
 */

ngx_int_t
ngx_chat_typing(ngx_chat_ws_t *ws, chat_proto_msg_t *m)
{
    u_char              buf[NGX_INT64_LEN];
    ngx_int_t           known;
    ngx_str_t           param;
    ngx_msec_t          retry;
    ngx_chat_typing_t  *ty;
    ngx_chat_worker_t  *w = ngx_chat_worker;

    if (m->group) {
        return ngx_chat_ws_error(ws, "not_implemented",
                                 "group chat is not available yet", NULL);
    }

    if (ngx_chat_deliver == NULL) {
        return ngx_chat_ws_error(ws, "unavailable", "this node has no "
                                 "Redis configured", NULL);
    }

    known = ngx_chat_user_known(m->to);

    if (known == 0) {
        return ngx_chat_ws_error(ws, "not_found", "no such user", NULL);
    }

    if (known == 1) {
        return ngx_chat_typing_relay(ws, m->to);
    }

    if (w->pg == NULL) {
        return ngx_chat_ws_error(ws, "unavailable", "this node has no "
                                 "PostgreSQL configured", NULL);
    }

    if (ngx_chat_ws_meter(&ws->send_tat, ws->conf->send_interval,
                          ws->conf->send_burst, &retry)
        != NGX_OK)
    {
        return ngx_chat_ws_rate_limited(ws, "too many lookups, slow down",
                                        retry, NULL);
    }

    ty = ngx_calloc(sizeof(ngx_chat_typing_t), ngx_cycle->log);
    if (ty == NULL) {
        return NGX_ERROR;
    }

    ty->op.ws = ws;
    ty->to = m->to;
    ngx_queue_insert_tail(&ws->ops, &ty->op.queue);

    param.data = buf;
    param.len = ngx_sprintf(buf, "%uL", ty->to) - buf;

    if (ngx_chat_pg_query(w->pg, "SELECT 1 FROM users WHERE id = $1", 1,
                          &param, ngx_chat_typing_checked, ty)
        == NULL)
    {
        ngx_queue_remove(&ty->op.queue);
        ngx_free(ty);
        return ngx_chat_ws_error(ws, "unavailable", "the database is down",
                                 NULL);
    }

    return NGX_OK;
}


static void
ngx_chat_typing_checked(ngx_chat_store_rc_e rc, PGresult *res, void *data)
{
    ngx_chat_typing_t  *ty = data;

    ngx_chat_ws_t  *ws = ty->op.ws;

    if (rc == NGX_CHAT_STORE_OK) {
        ngx_chat_user_remember(ty->to, PQntuples(res) > 0);
    }

    if (ws) {
        ngx_queue_remove(&ty->op.queue);

        if (rc != NGX_CHAT_STORE_OK) {
            (void) ngx_chat_ws_error(ws, "unavailable", "the database did "
                                     "not answer", NULL);

        } else if (PQntuples(res) == 0) {
            (void) ngx_chat_ws_error(ws, "not_found", "no such user", NULL);

        } else {
            (void) ngx_chat_typing_relay(ws, ty->to);
        }
    }

    ngx_free(ty);
}


static ngx_int_t
ngx_chat_typing_relay(ngx_chat_ws_t *ws, uint64_t to)
{
    char  *text;

    if (ws->typing_at && ngx_current_msec - ws->typing_at < 1000) {
        return NGX_OK;
    }

    ws->typing_at = ngx_current_msec ? ngx_current_msec : 1;

    text = chat_frame_typing((int64_t) ws->user_id, (int64_t) to);

    if (text == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_chat_relay(to, text, ngx_strlen(text), 0, 0, NULL, NULL);
    free(text);

    return NGX_OK;
}


void
ngx_chat_ops_orphan(ngx_queue_t *ops)
{
    ngx_queue_t    *q;
    ngx_chat_op_t  *op;

    if (ops->next == NULL) {
        return;
    }

    while (!ngx_queue_empty(ops)) {
        q = ngx_queue_head(ops);
        ngx_queue_remove(q);

        op = ngx_queue_data(q, ngx_chat_op_t, queue);
        op->ws = NULL;
    }
}
