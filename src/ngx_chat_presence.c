
/*
 * Copyright (C) ngx_chat authors
 *
 * Presence: online while any device of the user is connected and sends
 * something (any frame is a heartbeat) at least every chat_presence_ttl.
 *
 *   - a connection registers its route and puts its user into the online
 *     set of the user's Redis server (ONLINE); if the user was not online,
 *     the user's friends hear of it;
 *   - the new connection first gets one presence frame per friend;
 *   - heartbeats are coalesced: each worker marks its users when a frame
 *     comes, and every chat_presence_ttl / 4 sends one BEAT per Redis
 *     server for all of them;
 *   - the last connection to close takes the user out (OFFLINE) and sets
 *     last_seen; so does, for users whose worker or node died, the sweep
 *     (SWEEP) every worker runs on every server every interval;
 *   - every transition to offline also goes to Kafka (chat.presence), for
 *     the worker that writes last_seen to PostgreSQL.
 *
 * Friends come from PostgreSQL (chat_friend_rows), one query per change.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"
#include "ngx_chat_presence.h"
#include "ngx_chat_route.h"
#include "ngx_chat_lua.h"
#include "ngx_chat_batch.h"
#include "ngx_chat_friends.h"
#include "chat_frame.h"
#include "chat_record.h"


#define NGX_CHAT_PRESENCE_BATCH   256     /* users per BEAT */
#define NGX_CHAT_PRESENCE_SWEEP   500     /* users per SWEEP */

#define NGX_CHAT_PRESENCE_FLUSH   20      /* ms: changes gathered */
#define NGX_CHAT_PRESENCE_QUERY   2000    /* changes per query */
#define NGX_CHAT_SEEN_TTL         2592000 /* last_seen in Redis, 30 days */

#define NGX_CHAT_FRIENDS_OF_SQL                                              \
    "SELECT user_id, friend_id FROM friends "                               \
    "WHERE user_id = ANY($1::bigint[]) AND status = 'accepted' "            \
    "ORDER BY user_id"


/* a new connection: ONLINE, its friends, their state, then the inbox */
typedef struct {
    ngx_chat_op_t              op;          /* in ws->ops */
    uint64_t                   user_id;
    int64_t                    now;
    ngx_uint_t                 online;      /* the user came online */
    ngx_uint_t                 nfriends;
    uint64_t                  *friends;
    int64_t                   *seen;        /* PostgreSQL's last_seen */
} ngx_chat_presence_open_t;


/* the state of some users, from their Redis servers */
struct ngx_chat_presence_lookup_s {
    ngx_chat_presence_lookup_pt  handler;
    void                        *data;
    ngx_uint_t                   n;
    ngx_uint_t                   waiting;   /* STATE replies to come */
    uint64_t                    *ids;
    int64_t                     *beat;
    int64_t                     *seen;
    unsigned                     cancelled:1;
};


/* one STATE per Redis server, for the users it holds */
typedef struct {
    ngx_chat_presence_lookup_t  *lk;
    ngx_uint_t                   nidx;
    ngx_uint_t                  *idx;       /* into lk->ids */
} ngx_chat_presence_state_t;


/* what a connection was told of a friend: ws->told */
typedef struct {
    uint64_t                   user_id;
    ngx_uint_t                 online;
} ngx_chat_told_t;


/* a change to tell the user's friends */
typedef struct {
    uint64_t                   user_id;
    ngx_uint_t                 online;
    int64_t                    last_seen;
} ngx_chat_presence_change_t;


/* changes whose friends one query finds */
typedef struct {
    ngx_uint_t                 n;
    ngx_chat_presence_change_t changes[1];
} ngx_chat_presence_batch_t;


typedef struct {
    ngx_event_t                timer;
    ngx_event_t                flush;       /* announces what is pending */
    ngx_msec_t                 ttl;
    ngx_msec_t                 interval;
    ngx_log_t                 *log;

    ngx_chat_presence_change_t *pending;
    ngx_uint_t                 npending;
    ngx_uint_t                 cap;
} ngx_chat_presence_t;


static void ngx_chat_presence_online_reply(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_presence_friends(void *data, ngx_chat_store_rc_e rc,
    ngx_uint_t n, const uint64_t *ids, const int64_t *seen);
static void ngx_chat_presence_looked(void *data,
    ngx_chat_presence_lookup_t *lk);
static void ngx_chat_presence_opened(ngx_chat_presence_open_t *po,
    ngx_chat_presence_lookup_t *lk);
static void ngx_chat_presence_state(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_presence_offline_reply(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_presence_announce(uint64_t user_id, ngx_uint_t online,
    int64_t last_seen);
static void ngx_chat_presence_flush(ngx_event_t *ev);
static void ngx_chat_presence_announce_friends(ngx_chat_store_rc_e rc,
    PGresult *res, void *data);
static void ngx_chat_presence_tell(uint64_t friend_id, uint64_t user_id,
    ngx_uint_t online, int64_t last_seen);
static void ngx_chat_presence_tick(ngx_event_t *ev);
static void ngx_chat_presence_release(ngx_chat_ws_t *ws);
static void ngx_chat_presence_beat_reply(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_presence_sweep_reply(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static ngx_int_t ngx_chat_presence_script(ngx_chat_redis_t *rds,
    ngx_chat_script_e script, uint64_t *ids, ngx_uint_t n,
    ngx_chat_redis_handler_pt handler, void *data);
static int ngx_libc_cdecl ngx_chat_told_cmp(const void *a, const void *b);
static int64_t ngx_chat_presence_ms(redisReply *r);
static int64_t ngx_chat_presence_now(void);


static ngx_chat_presence_t  *ngx_chat_presence;


ngx_int_t
ngx_chat_presence_init(ngx_chat_worker_t *w, ngx_cycle_t *cycle)
{
    ngx_chat_presence_t  *p;

    p = ngx_calloc(sizeof(ngx_chat_presence_t), cycle->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    p->log = cycle->log;
    p->ttl = w->conf->presence_ttl;
    p->interval = ngx_max(ngx_min(p->ttl / 4, 30000), 250);

    p->timer.handler = ngx_chat_presence_tick;
    p->timer.data = p;
    p->timer.log = cycle->log;
    p->timer.cancelable = 1;
    ngx_add_timer(&p->timer, p->interval);

    p->flush.handler = ngx_chat_presence_flush;
    p->flush.data = p;
    p->flush.log = cycle->log;
    p->flush.cancelable = 1;

    ngx_chat_presence = p;

    return NGX_OK;
}


void
ngx_chat_presence_exit(void)
{
    ngx_chat_presence_t  *p = ngx_chat_presence;

    if (p == NULL) {
        return;
    }

    /* connections whose friends were not read yet: told nothing */
    ngx_chat_friends_exit();

    ngx_chat_presence = NULL;

    if (p->timer.timer_set) {
        ngx_del_timer(&p->timer);
    }

    if (p->flush.timer_set) {
        ngx_del_timer(&p->flush);
    }

    if (p->npending) {
        ngx_log_error(NGX_LOG_INFO, p->log, 0,
                      "chat: presence: %ui changes not sent to friends at "
                      "exit", p->npending);
    }

    ngx_free(p->pending);
    ngx_free(p);
}


void
ngx_chat_presence_open(ngx_chat_ws_t *ws)
{
    ngx_str_t                  key, user;
    ngx_chat_redis_t          *rds;
    ngx_chat_presence_open_t  *po;
    u_char                     buf[NGX_CHAT_BATCH_STR];

    po = ngx_calloc(sizeof(ngx_chat_presence_open_t), ngx_cycle->log);
    if (po == NULL) {
        ngx_chat_presence_release(ws);
        return;
    }

    po->op.ws = ws;
    po->user_id = ws->user_id;
    ngx_queue_insert_tail(&ws->ops, &po->op.queue);

    rds = ngx_chat_redis_for_user(ws->user_id);

    ngx_str_set(&key, "chat:presence:live");
    (void) ngx_chat_batch_str(&user, buf, "%uL", ws->user_id);

    /* the connections of this round in one call */
    if (ngx_chat_batch_add(rds, NGX_CHAT_SCRIPT_ONLINE, 1, &key, 1, &user,
                           ngx_chat_presence_online_reply, po)
        == NULL)
    {
        /* the heartbeats bring the user online once Redis is back */
        ngx_chat_presence_opened(po, NULL);
    }
}


static void
ngx_chat_presence_online_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_presence_open_t  *po = data;

    if (rc == NGX_CHAT_STORE_OK && reply->type == REDIS_REPLY_INTEGER) {
        po->online = (reply->integer == 1);
        po->now = ngx_chat_presence_now();
    }

    /* the friends of the users this round connects: one query */
    if (ngx_chat_friends_get(po->user_id, ngx_chat_presence_friends, po)
        != NGX_OK)
    {
        ngx_chat_presence_opened(po, NULL);
    }
}


static void
ngx_chat_presence_friends(void *data, ngx_chat_store_rc_e rc, ngx_uint_t n,
    const uint64_t *ids, const int64_t *seen)
{
    ngx_chat_presence_open_t  *po = data;

    if (rc != NGX_CHAT_STORE_OK || n == 0) {
        ngx_chat_presence_opened(po, NULL);
        return;
    }

    po->friends = ngx_alloc(n * (sizeof(uint64_t) + sizeof(int64_t)),
                            ngx_cycle->log);
    if (po->friends == NULL) {
        ngx_chat_presence_opened(po, NULL);
        return;
    }

    po->nfriends = n;
    po->seen = (int64_t *) (po->friends + n);

    ngx_memcpy(po->friends, ids, n * sizeof(uint64_t));
    ngx_memcpy(po->seen, seen, n * sizeof(int64_t));

    if (ngx_chat_presence_lookup(po->friends, n, ngx_chat_presence_looked,
                                 po)
        == NULL)
    {
        ngx_chat_presence_opened(po, NULL);
    }
}


static void
ngx_chat_presence_looked(void *data, ngx_chat_presence_lookup_t *lk)
{
    ngx_chat_presence_opened(data, lk);
}


/*
 * The friends' state goes to the new connection, the user's coming
 * online to the friends, and the connection reads its inbox.
 */

static void
ngx_chat_presence_opened(ngx_chat_presence_open_t *po,
    ngx_chat_presence_lookup_t *lk)
{
    char             *frame;
    int64_t           seen;
    ngx_uint_t        i, online;
    ngx_chat_ws_t    *ws = po->op.ws;
    ngx_chat_told_t  *told;

    if (ws) {
        ngx_queue_remove(&po->op.queue);

        /* what it is told, so that it is not told the same again */
        told = po->nfriends
               ? ngx_palloc(ws->connection->pool,
                            po->nfriends * sizeof(ngx_chat_told_t))
               : NULL;

        for (i = 0; i < po->nfriends && !ws->done; i++) {
            online = (lk && lk->beat[i] >= 0);
            seen = online ? lk->beat[i]
                          : (lk && lk->seen[i] >= 0) ? lk->seen[i]
                                                     : po->seen[i];

            if (told) {
                told[i].user_id = po->friends[i];
                told[i].online = online;
            }

            frame = chat_frame_presence((int64_t) po->friends[i], online,
                                        seen);
            if (frame) {
                (void) ngx_chat_ws_send_text(ws, (u_char *) frame,
                                             ngx_strlen(frame));
                free(frame);
            }
        }

        if (told && !ws->done) {
            ngx_qsort(told, po->nfriends, sizeof(ngx_chat_told_t),
                      ngx_chat_told_cmp);
            ws->told = told;
            ws->ntold = po->nfriends;
        }

        ngx_chat_presence_release(ws);
    }

    if (po->online) {
        for (i = 0; i < po->nfriends; i++) {
            ngx_chat_presence_tell(po->friends[i], po->user_id, 1, po->now);
        }
    }

    ngx_free(po->friends);
    ngx_free(po);
}


/*
 * A friend's change, as published by its worker: a friend connecting at
 * the same time as this connection may find it online in the state it was
 * sent and be told of it again by the friend's own announcement; what the
 * connection was told already is not said twice.  Users that were not
 * friends at connect pass.
 */

ngx_uint_t
ngx_chat_presence_filter(ngx_chat_ws_t *ws, const char *frame, size_t len)
{
    json_t           *json, *uid, *online;
    uint64_t          id;
    ngx_uint_t        lo, hi, mid, on;
    ngx_chat_told_t  *told = ws->told;

    if (ws->ntold == 0) {
        return 1;
    }

    json = json_loadb(frame, len, 0, NULL);
    uid = json ? json_object_get(json, "user_id") : NULL;
    online = json ? json_object_get(json, "online") : NULL;

    if (!json_is_integer(uid) || !json_is_boolean(online)) {
        json_decref(json);
        return 1;
    }

    id = (uint64_t) json_integer_value(uid);
    on = json_is_true(online);
    json_decref(json);

    lo = 0;
    hi = ws->ntold;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        if (told[mid].user_id < id) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    if (lo == ws->ntold || told[lo].user_id != id) {
        return 1;
    }

    if (told[lo].online == on) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ws->connection->log, 0,
                       "chat: presence: user %uL %s, told already", id,
                       on ? "online" : "offline");
        return 0;
    }

    told[lo].online = on;

    return 1;
}


static int ngx_libc_cdecl
ngx_chat_told_cmp(const void *a, const void *b)
{
    const ngx_chat_told_t  *x = a, *y = b;

    return x->user_id < y->user_id ? -1 : x->user_id > y->user_id;
}


/*
 * The state of n users from their Redis servers: STATE on each server for
 * the users it holds.  A server that fails leaves its users at -1.
 */

ngx_chat_presence_lookup_t *
ngx_chat_presence_lookup(uint64_t *ids, ngx_uint_t n,
    ngx_chat_presence_lookup_pt handler, void *data)
{
    uint64_t                    *sids;
    ngx_uint_t                   i, shard;
    ngx_chat_worker_t           *w = ngx_chat_worker;
    ngx_chat_presence_state_t   *st;
    ngx_chat_presence_lookup_t  *lk;

    if (w == NULL || w->nredis == 0 || n == 0) {
        return NULL;
    }

    lk = ngx_calloc(sizeof(ngx_chat_presence_lookup_t)
                    + n * (sizeof(uint64_t) + 2 * sizeof(int64_t)),
                    ngx_cycle->log);
    if (lk == NULL) {
        return NULL;
    }

    lk->handler = handler;
    lk->data = data;
    lk->n = n;
    lk->ids = (uint64_t *) (lk + 1);
    lk->beat = (int64_t *) (lk->ids + n);
    lk->seen = lk->beat + n;

    for (i = 0; i < n; i++) {
        lk->ids[i] = ids[i];
        lk->beat[i] = -1;
        lk->seen[i] = -1;
    }

    sids = ngx_alloc(n * sizeof(uint64_t), ngx_cycle->log);
    if (sids == NULL) {
        ngx_free(lk);
        return NULL;
    }

    for (shard = 0; shard < w->nredis; shard++) {
        st = ngx_calloc(sizeof(ngx_chat_presence_state_t)
                        + n * sizeof(ngx_uint_t), ngx_cycle->log);
        if (st == NULL) {
            break;
        }

        st->lk = lk;
        st->idx = (ngx_uint_t *) (st + 1);

        for (i = 0; i < n; i++) {
            if (ngx_chat_shard_of_user(ids[i]) == shard) {
                sids[st->nidx] = ids[i];
                st->idx[st->nidx++] = i;
            }
        }

        if (st->nidx
            && ngx_chat_presence_script(w->redis[shard],
                                        NGX_CHAT_SCRIPT_STATE, sids,
                                        st->nidx, ngx_chat_presence_state,
                                        st)
               == NGX_OK)
        {
            lk->waiting++;

        } else {
            ngx_free(st);
        }
    }

    ngx_free(sids);

    if (lk->waiting == 0) {
        ngx_free(lk);
        return NULL;
    }

    return lk;
}


/* the handler will not be called; the replies still free the lookup */

void
ngx_chat_presence_lookup_cancel(ngx_chat_presence_lookup_t *lk)
{
    lk->cancelled = 1;
}


static void
ngx_chat_presence_state(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_presence_state_t  *st = data;

    ngx_uint_t                   i, k;
    ngx_chat_presence_lookup_t  *lk = st->lk;

    if (rc == NGX_CHAT_STORE_OK && reply->type == REDIS_REPLY_ARRAY
        && reply->elements == 2 * st->nidx)
    {
        for (i = 0; i < st->nidx; i++) {
            k = st->idx[i];
            lk->beat[k] = ngx_chat_presence_ms(reply->element[2 * i]);
            lk->seen[k] = ngx_chat_presence_ms(reply->element[2 * i + 1]);
        }
    }

    ngx_free(st);

    if (--lk->waiting == 0) {
        if (!lk->cancelled) {
            lk->handler(lk->data, lk);
        }

        ngx_free(lk);
    }
}


/* the connection closed: its route goes, and maybe its user offline */

void
ngx_chat_presence_close(uint64_t user_id, const char *route)
{
    ngx_chat_redis_t    *rds;
    unsigned long long   uid = user_id;

    rds = ngx_chat_redis_for_user(user_id);

    if (rds == NULL) {
        return;
    }

    (void) ngx_chat_redis_command(rds, ngx_chat_presence_offline_reply,
                                  (void *) (uintptr_t) user_id,
                                  "EVALSHA %s 3 chat:routes:{%llu} "
                                  "chat:presence:live chat:seen:{%llu} "
                                  "%s %llu %d",
                                  ngx_chat_script_sha(
                                      NGX_CHAT_SCRIPT_OFFLINE),
                                  uid, uid, route, uid,
                                  (int) NGX_CHAT_SEEN_TTL);
}


static void
ngx_chat_presence_offline_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    uint64_t  user_id = (uintptr_t) data;

    if (rc != NGX_CHAT_STORE_OK || reply->type != REDIS_REPLY_INTEGER
        || reply->integer <= 0)
    {
        return;
    }

    ngx_chat_presence_announce(user_id, 0, reply->integer);
}


/*
 * A change: to Kafka when offline, and to every friend.  Changes are
 * gathered for NGX_CHAT_PRESENCE_FLUSH ms and their friends found with one
 * query, so that a node closing thousands of connections does not send
 * thousands of queries.
 */

static void
ngx_chat_presence_announce(uint64_t user_id, ngx_uint_t online,
    int64_t last_seen)
{
    char                        *text;
    u_char                       buf[NGX_INT64_LEN];
    ngx_uint_t                   cap;
    ngx_str_t                    key, value;
    ngx_chat_worker_t           *w = ngx_chat_worker;
    ngx_chat_presence_t         *p = ngx_chat_presence;
    ngx_chat_presence_change_t  *ch;

    if (w == NULL || p == NULL) {
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "chat: presence: user %uL %s, last seen %L", user_id,
                   online ? "online" : "offline", last_seen);

    if (!online && w->kafka) {
        text = chat_record_presence_dump((int64_t) user_id, 0, last_seen);

        if (text) {
            key.data = buf;
            key.len = ngx_sprintf(buf, "%uL", user_id) - buf;
            value.data = (u_char *) text;
            value.len = ngx_strlen(text);

            (void) ngx_chat_kafka_produce(w->kafka, NGX_CHAT_TOPIC_PRESENCE,
                                          0, &key, &value, NULL, NULL);
            free(text);
        }
    }

    if (w->pg == NULL) {
        return;
    }

    if (p->npending == p->cap) {
        cap = p->cap ? p->cap * 2 : 64;
        ch = ngx_alloc(cap * sizeof(ngx_chat_presence_change_t), p->log);
        if (ch == NULL) {
            return;
        }

        if (p->npending) {
            ngx_memcpy(ch, p->pending,
                       p->npending * sizeof(ngx_chat_presence_change_t));
        }

        ngx_free(p->pending);
        p->pending = ch;
        p->cap = cap;
    }

    ch = &p->pending[p->npending++];
    ch->user_id = user_id;
    ch->online = online;
    ch->last_seen = last_seen;

    if (!p->flush.timer_set) {
        ngx_add_timer(&p->flush, NGX_CHAT_PRESENCE_FLUSH);
    }
}


static void
ngx_chat_presence_flush(ngx_event_t *ev)
{
    u_char                     *q, *text;
    size_t                      size;
    ngx_str_t                   param;
    ngx_uint_t                  i, n;
    ngx_chat_worker_t          *w = ngx_chat_worker;
    ngx_chat_presence_t        *p = ev->data;
    ngx_chat_presence_batch_t  *b;

    if (p->npending == 0 || w == NULL || w->pg == NULL) {
        return;
    }

    n = ngx_min(p->npending, NGX_CHAT_PRESENCE_QUERY);
    size = sizeof(ngx_chat_presence_batch_t)
           + n * sizeof(ngx_chat_presence_change_t);

    b = ngx_alloc(size, p->log);
    text = ngx_alloc(n * (NGX_INT64_LEN + 1) + 2, p->log);

    if (b == NULL || text == NULL) {
        ngx_free(b);
        ngx_free(text);
        return;
    }

    b->n = n;
    ngx_memcpy(b->changes, p->pending,
               n * sizeof(ngx_chat_presence_change_t));

    p->npending -= n;
    ngx_memmove(p->pending, p->pending + n,
                p->npending * sizeof(ngx_chat_presence_change_t));

    if (p->npending) {
        ngx_add_timer(&p->flush, 1);
    }

    /* the users as a PostgreSQL array literal: {1,2,3} */
    q = text;
    *q++ = '{';

    for (i = 0; i < n; i++) {
        q = ngx_sprintf(q, i ? ",%uL" : "%uL", b->changes[i].user_id);
    }

    *q++ = '}';

    param.data = text;
    param.len = q - text;

    if (ngx_chat_pg_query(w->pg, NGX_CHAT_FRIENDS_OF_SQL, 1, &param,
                          ngx_chat_presence_announce_friends, b)
        == NULL)
    {
        ngx_log_error(NGX_LOG_ERR, p->log, 0,
                      "chat: presence: %ui changes not sent to friends: "
                      "the database is down", n);
        ngx_free(b);
    }

    ngx_free(text);
}


/* rows (user_id, friend_id) by user_id: each change goes to its friends */

static void
ngx_chat_presence_announce_friends(ngx_chat_store_rc_e rc, PGresult *res,
    void *data)
{
    ngx_chat_presence_batch_t  *b = data;

    uint64_t                     uid;
    ngx_int_t                    lo, hi, mid, rows;
    ngx_uint_t                   i;
    ngx_chat_presence_change_t  *ch;

    if (rc != NGX_CHAT_STORE_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: presence: %ui changes not sent to friends: "
                      "the database did not answer", b->n);
        ngx_free(b);
        return;
    }

    rows = PQntuples(res);

    for (i = 0; i < b->n; i++) {
        ch = &b->changes[i];

        /* the first row of the user */
        lo = 0;
        hi = rows;

        while (lo < hi) {
            mid = lo + (hi - lo) / 2;
            uid = ngx_atoof((u_char *) PQgetvalue(res, mid, 0),
                            PQgetlength(res, mid, 0));

            if (uid < ch->user_id) {
                lo = mid + 1;

            } else {
                hi = mid;
            }
        }

        for ( /* void */ ; lo < rows; lo++) {
            uid = ngx_atoof((u_char *) PQgetvalue(res, lo, 0),
                            PQgetlength(res, lo, 0));
            if (uid != ch->user_id) {
                break;
            }

            ngx_chat_presence_tell(
                ngx_atoof((u_char *) PQgetvalue(res, lo, 1),
                          PQgetlength(res, lo, 1)),
                ch->user_id, ch->online, ch->last_seen);
        }
    }

    ngx_free(b);
}


/* live only: a friend who is not connected learns it on connect */

static void
ngx_chat_presence_tell(uint64_t friend_id, uint64_t user_id,
    ngx_uint_t online, int64_t last_seen)
{
    char  *text;

    text = chat_frame_presence((int64_t) user_id, online, last_seen);

    if (text) {
        (void) ngx_chat_relay(friend_id, text, ngx_strlen(text), 0, 0,
                              NULL, NULL);
        free(text);
    }
}


/* every interval: the heartbeats of the worker's users, and the sweep */

static void
ngx_chat_presence_tick(ngx_event_t *ev)
{
    uint64_t                *ids;
    ngx_uint_t               shard, n, i;
    ngx_chat_worker_t       *w = ngx_chat_worker;
    unsigned long long       ttl;
    ngx_chat_presence_t     *p = ev->data;
    ngx_chat_local_user_t   *lu;

    if (ngx_exiting || ngx_terminate || ngx_quit || w == NULL) {
        return;
    }

    ids = ngx_alloc(NGX_CHAT_PRESENCE_BATCH * sizeof(uint64_t), p->log);

    for (shard = 0; ids && shard < w->nredis; shard++) {
        n = 0;

        for (lu = ngx_chat_local_next(NULL); lu; lu = ngx_chat_local_next(lu))
        {
            if (!lu->beat || ngx_chat_shard_of_user(lu->node.key) != shard) {
                continue;
            }

            lu->beat = 0;
            ids[n++] = lu->node.key;

            if (n == NGX_CHAT_PRESENCE_BATCH) {
                (void) ngx_chat_presence_script(w->redis[shard],
                                                NGX_CHAT_SCRIPT_BEAT, ids, n,
                                                ngx_chat_presence_beat_reply,
                                                NULL);
                n = 0;
            }
        }

        if (n) {
            (void) ngx_chat_presence_script(w->redis[shard],
                                            NGX_CHAT_SCRIPT_BEAT, ids, n,
                                            ngx_chat_presence_beat_reply,
                                            NULL);
        }
    }

    ngx_free(ids);

    /* a worker or node that died holds its users online no longer */
    ttl = p->ttl;

    for (i = 0; i < w->nredis; i++) {
        (void) ngx_chat_redis_command(w->redis[i],
                                      ngx_chat_presence_sweep_reply, NULL,
                                      "EVALSHA %s 1 chat:presence:live "
                                      "%llu %d %d",
                                      ngx_chat_script_sha(
                                          NGX_CHAT_SCRIPT_SWEEP),
                                      ttl, (int) NGX_CHAT_PRESENCE_SWEEP,
                                      (int) NGX_CHAT_SEEN_TTL);
    }

    ngx_add_timer(&p->timer, p->interval);
}


/* users a heartbeat brought back online (the sweep had taken them) */

static void
ngx_chat_presence_beat_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_uint_t  i;
    int64_t     now, uid;

    if (rc != NGX_CHAT_STORE_OK || reply->type != REDIS_REPLY_ARRAY) {
        return;
    }

    now = ngx_chat_presence_now();

    for (i = 0; i < reply->elements; i++) {
        uid = ngx_chat_presence_ms(reply->element[i]);

        if (uid > 0) {
            ngx_chat_presence_announce((uint64_t) uid, 1, now);
        }
    }
}


static void
ngx_chat_presence_sweep_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_uint_t  i;
    int64_t     uid, seen;

    if (rc != NGX_CHAT_STORE_OK || reply->type != REDIS_REPLY_ARRAY) {
        return;
    }

    for (i = 0; i + 1 < reply->elements; i += 2) {
        uid = ngx_chat_presence_ms(reply->element[i]);
        seen = ngx_chat_presence_ms(reply->element[i + 1]);

        if (uid > 0) {
            ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                          "chat: presence: user %L timed out", uid);
            ngx_chat_presence_announce((uint64_t) uid, 0, seen);
        }
    }
}


/* EVALSHA <script> 1 chat:presence:live <id>... */

static ngx_int_t
ngx_chat_presence_script(ngx_chat_redis_t *rds, ngx_chat_script_e script,
    uint64_t *ids, ngx_uint_t n, ngx_chat_redis_handler_pt handler,
    void *data)
{
    u_char       *p, *buf;
    size_t       *argvlen;
    ngx_int_t     rc;
    ngx_uint_t    i;
    const char  **argv;

    argv = ngx_alloc((n + 4) * (sizeof(char *) + sizeof(size_t))
                     + n * (NGX_INT64_LEN + 1), ngx_cycle->log);
    if (argv == NULL) {
        return NGX_ERROR;
    }

    argvlen = (size_t *) (argv + n + 4);
    buf = (u_char *) (argvlen + n + 4);

    argv[0] = "EVALSHA";
    argv[1] = ngx_chat_script_sha(script);
    argv[2] = "1";
    argv[3] = "chat:presence:live";

    for (i = 0; i < 4; i++) {
        argvlen[i] = ngx_strlen(argv[i]);
    }

    p = buf;

    for (i = 0; i < n; i++) {
        argv[i + 4] = (char *) p;
        argvlen[i + 4] = ngx_sprintf(p, "%uL", ids[i]) - p;
        p += NGX_INT64_LEN + 1;
    }

    rc = ngx_chat_redis_command_argv(rds, handler, data, (int) (n + 4),
                                     argv, argvlen)
         ? NGX_OK : NGX_ERROR;

    ngx_free(argv);

    return rc;
}


/* a number in a reply (string or integer), or -1 */

static int64_t
ngx_chat_presence_ms(redisReply *r)
{
    ngx_int_t  n;

    if (r->type == REDIS_REPLY_INTEGER) {
        return r->integer;
    }

    if (r->type != REDIS_REPLY_STRING || r->len == 0) {
        return -1;
    }

    n = ngx_atoi((u_char *) r->str, r->len);

    return n == NGX_ERROR ? -1 : n;
}


static int64_t
ngx_chat_presence_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}


int64_t
ngx_chat_presence_beat(ngx_chat_presence_lookup_t *lk, ngx_uint_t i)
{
    return lk->beat[i];
}


int64_t
ngx_chat_presence_seen(ngx_chat_presence_lookup_t *lk, ngx_uint_t i)
{
    return lk->seen[i];
}


/* what a friend's worker told while the friends' state was on its way */

static void
ngx_chat_presence_release(ngx_chat_ws_t *ws)
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
