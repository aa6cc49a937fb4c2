
/*
 * Copyright (C) ngx_chat authors
 *
 * {"type":"send"}: from a client's frame to a durable acknowledgement.
 *
 *   0. the connection's own meter (chat_send_rate, in memory), before any
 *      backend work: a send to a user that does not exist counts too;
 *   1. the recipient must exist (PostgreSQL, remembered by the worker for
 *      a minute, and that it does not for NGX_CHAT_USER_MISS_TTL);
 *   2. rate limit and dedup in one script on the sender's Redis server:
 *      chat:rate:{sender} (GCRA, chat_send_rate) and SET
 *      chat:dedup:{sender}:<client_id> "pending" NX; a key that exists
 *      holds the first ack, which is sent again (a retry delivers nothing
 *      twice);
 *   3. seq: INCR chat:seq:{conversation} on the conversation's shard;
 *      a counter that Redis does not have (a new conversation, or Redis
 *      lost it) is first set from PostgreSQL (chat_seq_top(): the
 *      conversation's highest seq, stored or deleted; ngx_chat_seed_*),
 *      so that seq goes on where the history ends;
 *   4. the message goes to Kafka (chat.messages, keyed by conversation,
 *      acks=all); only its delivery report makes the ack, which is then
 *      also kept under the dedup key.  A failure sends an error frame and
 *      releases the key, never an ack;
 *   5. the durable message goes to the recipient's inbox and connections
 *      and to the sender's other connections (ngx_chat_deliver.c).
 *
 * Order: the sends of one connection enter step 2 in the order they came
 * (the PostgreSQL checks may finish in any order); from there one Redis
 * connection, one Kafka partition and its in-order delivery reports keep
 * it, so seq and live delivery follow the order of sending.
 *
 * A send outlives its connection: if the client goes away, the steps
 * still finish and the ack is kept for the client's retry.  It is metered
 * all the same: the rate limit is taken when the send comes, not from
 * the connection when it is claimed.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"
#include "ngx_chat_send.h"
#include "ngx_chat_deliver.h"
#include "ngx_chat_gdeliver.h"
#include "ngx_chat_group.h"
#include "ngx_chat_lua.h"
#include "ngx_chat_batch.h"
#include "ngx_chat_metrics.h"
#include "chat_frame.h"
#include "chat_id.h"
#include "chat_record.h"


#define NGX_CHAT_SEND_DEDUP_TTL   86400
#define NGX_CHAT_SEND_CLIENT_ID   CHAT_RECORD_CLIENT_ID
#define NGX_CHAT_SEND_MAX_PENDING 1024     /* per connection */

/* recipients known to exist or not, per worker */
#define NGX_CHAT_USER_CACHE       4096
#define NGX_CHAT_USER_CACHE_TTL   60
#define NGX_CHAT_USER_MISS_TTL    5


typedef struct {
    uint64_t                   user_id;
    time_t                     expires;
    ngx_uint_t                 exists;      /* unsigned exists:1 */
} ngx_chat_user_cache_t;


typedef enum {
    NGX_CHAT_SEND_CHECKING = 0,             /* such a user? the media ours? */
    NGX_CHAT_SEND_CHECKED,                  /* waits for earlier sends */
    NGX_CHAT_SEND_CLAIMING                  /* and on: in order */
} ngx_chat_send_state_e;


typedef struct {
    ngx_chat_op_t              op;          /* in ws->sends */
    ngx_log_t                 *log;
    ngx_chat_send_state_e      state;
    ngx_uint_t                 interval;    /* chat_send_rate, as it came */
    ngx_uint_t                 burst;
    uint64_t                   from;
    uint64_t                   to;          /* 0 for a group */
    uint64_t                   group;
    ngx_uint_t                 fills;       /* of the member list */
    int64_t                    seq;
    int64_t                    ts;
    uint64_t                   t0;          /* taken: ngx_chat_metrics.h */
    json_t                    *msg;         /* the record, until produced */
    char                      *record;      /* its text, in Kafka */
    size_t                     record_len;
    ngx_chat_pg_query_t       *query;
    ngx_chat_redis_cmd_t      *cmd;
    ngx_chat_kafka_msg_t      *kmsg;
    ngx_queue_t                seed;        /* waits for a counter */
    unsigned                   claimed:1;  /* the dedup key is ours */
    unsigned                   seeding:1;  /* in a seed's waiters */
    unsigned                   held:1;     /* behind an earlier GSEQ */
    char                       client_id[NGX_CHAT_SEND_CLIENT_ID + 1];
    char                       id[CHAT_ID_LEN + 1];
    char                       conv[48];
    char                       dedup[NGX_CHAT_SEND_CLIENT_ID + 48];
} ngx_chat_send_t;


/* a conversation's counter being set from PostgreSQL */
typedef struct {
    ngx_queue_t                queue;       /* in ngx_chat_seeds */
    ngx_queue_t                waiters;     /* ngx_chat_send_t.seed */
    char                       conv[48];
} ngx_chat_seed_t;


static void ngx_chat_send_user_checked(ngx_chat_store_rc_e rc, PGresult *res,
    void *data);
static void ngx_chat_send_pump(ngx_chat_ws_t *ws);
static void ngx_chat_send_claim(ngx_chat_send_t *s);
static ngx_msec_t ngx_chat_send_pending_ttl(ngx_chat_main_conf_t *conf);
static void ngx_chat_send_claimed(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data);
static void ngx_chat_send_sequenced(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_send_sequence(ngx_chat_send_t *s);
static void ngx_chat_send_gsequenced(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_send_filled(void *data, ngx_int_t rc);
static ngx_chat_redis_t *ngx_chat_send_conv_redis(ngx_chat_send_t *s);
static ngx_uint_t ngx_chat_send_hold(ngx_chat_send_t *s);
static void ngx_chat_send_release(ngx_chat_send_t *s);
static ngx_chat_seed_t *ngx_chat_seed_find(const char *conv);
static void ngx_chat_seed_wait(ngx_chat_send_t *s);
static void ngx_chat_seed_mark(ngx_chat_send_t *s, ngx_uint_t seeding);
static void ngx_chat_seed_floor(ngx_chat_store_rc_e rc, PGresult *res,
    void *data);
static void ngx_chat_send_produce(ngx_chat_send_t *s);
static void ngx_chat_send_delivered(ngx_chat_store_rc_e rc,
    int32_t partition, int64_t offset, void *data);
static void ngx_chat_send_fail(ngx_chat_send_t *s, const char *code,
    const char *message);
static void ngx_chat_send_done(ngx_chat_send_t *s);


static ngx_chat_user_cache_t  ngx_chat_user_cache[NGX_CHAT_USER_CACHE];
static ngx_queue_t            ngx_chat_seeds = { &ngx_chat_seeds,
                                                 &ngx_chat_seeds };


ngx_int_t
ngx_chat_send(ngx_chat_ws_t *ws, chat_proto_msg_t *m)
{
    u_char                  buf[NGX_INT64_LEN], from[NGX_INT64_LEN];
    uint64_t                to, lo, hi;
    ngx_int_t               known;
    ngx_str_t               params[3];
    ngx_msec_t              retry;
    ngx_time_t             *tp;
    const char             *refused, *media;
    ngx_chat_send_t        *s;
    ngx_chat_redis_t       *rds;
    chat_record_msg_t       rm;
    ngx_chat_worker_t      *w = ngx_chat_worker;

    /* the fields are checked (chat_proto_decode) */

    to = m->to;

    if (ws->nsends >= NGX_CHAT_SEND_MAX_PENDING) {
        return ngx_chat_ws_error(ws, "busy", "too many messages waiting "
                                 "for their ack on this connection",
                                 m->client_id);
    }

    if (w == NULL || w->pg == NULL || w->kafka == NULL || w->nredis == 0) {
        return ngx_chat_ws_error(ws, "unavailable", "this node has no "
                                 "PostgreSQL, Redis or Kafka configured",
                                 m->client_id);
    }

    /*
     * Overload: a Redis server that is far behind would time out what is
     * queued for it (and drop the deliveries of messages acked already);
     * new sends are refused instead, until it caught up.  Behind: 8,192
     * commands or items of batched calls (one call may hold 256) not
     * answered, or the oldest of them waiting half of chat_redis_timeout.
     */
    rds = ngx_chat_redis_for_user(ws->user_id);

    if (rds
        && (ngx_chat_redis_pending(rds) + ngx_chat_batch_pending(rds)
            > NGX_CHAT_REDIS_BACKLOG
            || ngx_chat_redis_behind(rds)))
    {
        return ngx_chat_ws_error(ws, "busy", "the server is overloaded, "
                                 "send it again", m->client_id);
    }

    /*
     * The connection's share of the limit, before any lookup: what the
     * user's limit in Redis would refuse later is refused here for free,
     * and sends to users that do not exist are counted too.
     */
    if (ngx_chat_ws_meter(&ws->send_tat, ws->conf->send_interval,
                          ws->conf->send_burst, &retry)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, ws->connection->log, 0,
                      "chat: user %uL sends too fast, a message refused",
                      ws->user_id);
        return ngx_chat_ws_rate_limited(ws, "too many messages, slow down",
                                        retry, m->client_id);
    }

    /* a group's membership is checked with its seq (GSEQ) */
    known = m->group ? 1 : ngx_chat_user_known(to);

    if (known == 0) {
        return ngx_chat_ws_error(ws, "not_found", "no such user",
                                 m->client_id);
    }

    s = ngx_calloc(sizeof(ngx_chat_send_t), ws->connection->log);
    if (s == NULL) {
        return NGX_ERROR;
    }

    s->op.ws = ws;
    s->t0 = ngx_chat_metrics_now();
    s->log = ngx_cycle->log;
    s->interval = ws->conf->send_interval;
    s->burst = ws->conf->send_burst;
    s->from = ws->user_id;
    s->to = to;
    s->group = m->group;
    ngx_memcpy(s->client_id, m->client_id, m->client_id_len);
    s->client_id[m->client_id_len] = '\0';

    if (s->group) {
        (void) ngx_snprintf((u_char *) s->conv, sizeof(s->conv), "g:%uL%Z",
                            s->group);

    } else {
        lo = ngx_min(s->from, to);
        hi = ngx_max(s->from, to);
        (void) ngx_snprintf((u_char *) s->conv, sizeof(s->conv),
                            "d:%uL:%uL%Z", lo, hi);
    }
    (void) ngx_snprintf((u_char *) s->dedup, sizeof(s->dedup),
                        "chat:dedup:{%uL}:%s%Z", s->from, s->client_id);

    tp = ngx_timeofday();
    s->ts = (int64_t) tp->sec * 1000 + tp->msec;

    /*
     * Everything but id and seq, which come once the send is claimed,
     * checked as chat-worker persist will check it (chat_record_check):
     * what is acked is stored.
     */
    chat_proto_record(m, (int64_t) s->from, &rm);

    s->msg = chat_record_message_new(&rm, s->ts, &refused);
    if (s->msg == NULL) {
        ngx_free(s);
        return refused ? ngx_chat_ws_error(ws, "bad_request", refused,
                                           m->client_id)
                       : NGX_ERROR;
    }

    ngx_queue_insert_tail(&ws->sends, &s->op.queue);
    ws->nsends++;

    /*
     * The recipient, unless known to exist, and the media, which only its
     * uploader may send (chat_media_get() opens it to the recipients of
     * the uploader's messages only): one query.  Without a media store
     * (chat_media_path) the id is not checked: nothing is served by it.
     */
    media = w->conf->media_path.len ? m->media : NULL;

    if (known == 1 && media == NULL) {
        s->state = NGX_CHAT_SEND_CHECKED;
        ngx_chat_send_pump(ws);
        return NGX_OK;
    }

    /* NULL: a group's membership is checked with its seq (GSEQ) */
    params[0].data = s->group ? NULL : buf;
    params[0].len = s->group ? 0 : ngx_sprintf(buf, "%uL", to) - buf;
    params[1].data = (u_char *) media;
    params[1].len = media ? m->media_len : 0;
    params[2].data = from;
    params[2].len = ngx_sprintf(from, "%uL", s->from) - from;

    s->query = ngx_chat_pg_query(w->pg, "SELECT $1::bigint IS NULL OR EXISTS "
                                 "(SELECT 1 FROM users WHERE id = $1), "
                                 "$2::text IS NULL OR EXISTS (SELECT 1 FROM "
                                 "media WHERE id = $2 AND owner = $3)", 3,
                                 params,
                                 ngx_chat_send_user_checked, s);
    if (s->query == NULL) {
        ngx_chat_send_fail(s, "unavailable", "the database is down");
    }

    return NGX_OK;
}


static void
ngx_chat_send_user_checked(ngx_chat_store_rc_e rc, PGresult *res,
    void *data)
{
    ngx_chat_send_t  *s = data;

    s->query = NULL;

    if (rc != NGX_CHAT_STORE_OK) {
        ngx_chat_send_fail(s, "unavailable", "the database did not answer");
        return;
    }

    if (PQntuples(res) != 1 || PQnfields(res) != 2) {
        ngx_chat_send_fail(s, "unavailable", "the database did not answer");
        return;
    }

    if (s->to) {
        ngx_chat_user_remember(s->to, PQgetvalue(res, 0, 0)[0] == 't');
    }

    if (PQgetvalue(res, 0, 0)[0] != 't') {
        ngx_chat_send_fail(s, "not_found", "no such user");
        return;
    }

    if (PQgetvalue(res, 0, 1)[0] != 't') {
        ngx_log_error(NGX_LOG_INFO, s->log, 0,
                      "chat: user %uL sends media that is not its own, "
                      "refused", s->from);
        ngx_chat_send_fail(s, "forbidden", "only its uploader may send "
                           "this media");
        return;
    }

    s->state = NGX_CHAT_SEND_CHECKED;

    if (s->op.ws == NULL) {
        ngx_chat_send_claim(s);
        return;
    }

    ngx_chat_send_pump(s->op.ws);
}


ngx_int_t
ngx_chat_user_known(uint64_t user_id)
{
    ngx_chat_user_cache_t  *uc;

    uc = &ngx_chat_user_cache[user_id % NGX_CHAT_USER_CACHE];

    if (uc->user_id != user_id || uc->expires <= ngx_time()) {
        return -1;
    }

    return uc->exists ? 1 : 0;
}


void
ngx_chat_user_remember(uint64_t user_id, ngx_uint_t exists)
{
    ngx_chat_user_cache_t  *uc;

    uc = &ngx_chat_user_cache[user_id % NGX_CHAT_USER_CACHE];

    /* a miss does not push out a user known to exist */
    if (!exists && uc->exists && uc->user_id != user_id
        && uc->expires > ngx_time())
    {
        return;
    }

    uc->user_id = user_id;
    uc->exists = exists;
    uc->expires = ngx_time() + (exists ? NGX_CHAT_USER_CACHE_TTL
                                       : NGX_CHAT_USER_MISS_TTL);
}


/*
 * The connection's checked sends go on, in order, up to an unchecked one.
 * Claims go in order, so the sends not claimed yet are the queue's tail:
 * it is found from the end (a few entries, however many sends wait for
 * their ack).  A claim may fail at once and end its send (and pump
 * again): the search starts over each time rather than keep a pointer
 * across the call.
 */

static void
ngx_chat_send_pump(ngx_chat_ws_t *ws)
{
    ngx_queue_t      *q;
    ngx_chat_send_t  *s, *first;

    for ( ;; ) {
        /*
         * A send that waits for its conversation's counter is claimed
         * again later: nothing after it may take a seq before it.
         */
        if (ws->nseeding) {
            return;
        }

        first = NULL;

        for (q = ngx_queue_last(&ws->sends);
             q != ngx_queue_sentinel(&ws->sends);
             q = ngx_queue_prev(q))
        {
            s = (ngx_chat_send_t *) ngx_queue_data(q, ngx_chat_op_t, queue);

            if (s->state == NGX_CHAT_SEND_CLAIMING) {
                break;
            }

            first = s;
        }

        if (first == NULL || first->state == NGX_CHAT_SEND_CHECKING) {
            return;
        }

        ngx_chat_send_claim(first);
    }
}


static void
ngx_chat_send_claim(ngx_chat_send_t *s)
{
    u_char            *p;
    ngx_str_t          keys[3], args[3];
    ngx_uint_t         nkeys;
    ngx_chat_redis_t  *rds;
    u_char             buf[5 * NGX_CHAT_BATCH_STR];

    s->state = NGX_CHAT_SEND_CLAIMING;

    rds = ngx_chat_redis_for_user(s->from);

    p = buf;

    p = ngx_chat_batch_str(&keys[0], p, "chat:rate:{%uL}", s->from);
    keys[1].data = (u_char *) s->dedup;
    keys[1].len = ngx_strlen(s->dedup);
    nkeys = 2;

    if (!s->group && rds == ngx_chat_send_conv_redis(s)) {
        /* the conversation's counter is there too: seq in the same call */
        p = ngx_chat_batch_str(&keys[2], p, "chat:seq:{%s}", s->conv);
        nkeys = 3;
    }

    /* metered whatever became of the connection */
    p = ngx_chat_batch_str(&args[0], p, "%ui", s->interval);
    p = ngx_chat_batch_str(&args[1], p, "%ui", s->burst);
    p = ngx_chat_batch_str(&args[2], p, "%M",
                           ngx_chat_send_pending_ttl(ngx_chat_worker->conf));

    if (ngx_chat_batch_add(rds, NGX_CHAT_SCRIPT_CLAIM, nkeys, keys, 3, args,
                           ngx_chat_send_claimed, s)
        == NULL)
    {
        ngx_chat_send_fail(s, "unavailable", "Redis is down");
    }
}


/*
 * How long a claimed client_id stays "pending" (seconds) before its ack
 * replaces it: the longest a send can be in flight after its claim (the
 * produce, bounded by chat_kafka_timeout, then the ack's SET) with room to
 * spare, at least 15 s.  Not a day: a claim that timed out on its way (Redis
 * hung) may still run when Redis comes back, for a send that has ended
 * with "unavailable"; its client_id would then answer in_progress to every
 * retry until the key expired.
 */

static ngx_msec_t
ngx_chat_send_pending_ttl(ngx_chat_main_conf_t *conf)
{
    return ngx_max(15, 3 * (conf->kafka_timeout + conf->redis_timeout)
                       / 1000 + 1);
}


static void
ngx_chat_send_claimed(ngx_chat_store_rc_e rc, redisReply *reply, void *data)
{
    ngx_chat_send_t  *s = data;

    char             *err;
    json_t           *ack;
    redisReply       *kind, *v;

    s->cmd = NULL;

    if (rc != NGX_CHAT_STORE_OK || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        ngx_chat_send_fail(s, "unavailable", "Redis did not answer");
        return;
    }

    kind = reply->element[0];
    v = reply->elements > 1 ? reply->element[1] : NULL;

    if (kind->len == 4 && ngx_strncmp(kind->str, "rate", 4) == 0) {
        ngx_log_error(NGX_LOG_INFO, s->log, 0,
                      "chat: user %uL sends too fast, a message refused",
                      s->from);

        if (s->op.ws) {
            err = chat_frame_error("rate_limited",
                                   "too many messages, slow down",
                                   s->client_id, NULL,
                                   (v && v->type == REDIS_REPLY_INTEGER)
                                   ? (int64_t) v->integer : 1000);
            if (err) {
                (void) ngx_chat_ws_send_text(s->op.ws, (u_char *) err,
                                             ngx_strlen(err));
                free(err);
            }
        }

        ngx_chat_send_done(s);
        return;
    }

    if (kind->len == 3 && ngx_strncmp(kind->str, "dup", 3) == 0) {
        /* this client_id was seen: its ack, or a send still under way */
        if (v == NULL || v->type != REDIS_REPLY_STRING) {
            ngx_chat_send_fail(s, "unavailable", "Redis did not answer");
            return;
        }

        if (v->len == 7 && ngx_strncmp(v->str, "pending", 7) == 0) {
            ngx_chat_send_fail(s, "in_progress", "a message with this "
                               "client_id is being sent, wait for its ack");
            return;
        }

        ack = json_loadb(v->str, v->len, 0, NULL);

        if (ack && s->op.ws) {
            (void) ngx_chat_ws_send_json(s->op.ws, ack);
        }

        json_decref(ack);
        ngx_chat_send_done(s);
        return;
    }

    if (kind->len == 4 && ngx_strncmp(kind->str, "seed", 4) == 0) {
        /* nothing was taken: claimed again once the counter is there */
        ngx_chat_seed_wait(s);
        return;
    }

    s->claimed = 1;

    if (v && v->type == REDIS_REPLY_INTEGER) {
        s->seq = v->integer;
        ngx_chat_send_produce(s);
        return;
    }

    ngx_chat_send_sequence(s);
}


/*
 * The conversation's counter lives with its lower user id, a group's
 * with the group (and there its member list: GSEQ checks membership and
 * takes the seq in one step).
 */

static ngx_chat_redis_t *
ngx_chat_send_conv_redis(ngx_chat_send_t *s)
{
    return s->group ? ngx_chat_redis_for_group(s->group)
                    : ngx_chat_redis_for_user(ngx_min(s->from, s->to));
}


static void
ngx_chat_send_sequence(ngx_chat_send_t *s)
{
    u_char            *p;
    ngx_str_t          keys[3], arg;
    ngx_chat_seed_t   *sd;
    ngx_chat_redis_t  *rds;
    u_char             buf[4 * NGX_CHAT_BATCH_STR];

    /*
     * Behind a send that waits for the conversation's counter: after it
     * (another worker may set the counter first, and this send would
     * take a seq before the earlier one)
     */
    sd = ngx_chat_seed_find(s->conv);

    if (sd) {
        ngx_chat_seed_mark(s, 1);
        ngx_queue_insert_tail(&sd->waiters, &s->seed);
        return;
    }

    rds = ngx_chat_send_conv_redis(s);

    if (s->group == 0) {
        s->cmd = rds ? ngx_chat_redis_command(rds, ngx_chat_send_sequenced,
                                              s, "EVALSHA %s 1 "
                                              "chat:seq:{%s}",
                                              ngx_chat_script_sha(
                                                  NGX_CHAT_SCRIPT_SEQ),
                                              s->conv)
                     : NULL;

        if (s->cmd == NULL) {
            ngx_chat_send_fail(s, "unavailable", "Redis is down");
        }

        return;
    }

    /* one GSEQ of the connection's sends to a group at a time */
    if (ngx_chat_send_hold(s)) {
        return;
    }

    /* behind a fill of this group's members: after it, in order */
    if (ngx_chat_group_filling(s->group)) {
        ngx_chat_send_filled(s, NGX_AGAIN);
        return;
    }

    p = buf;
    p = ngx_chat_batch_str(&keys[0], p, "chat:seq:{%s}", s->conv);
    p = ngx_chat_group_key(&keys[1], p, "gm", s->group);
    p = ngx_chat_group_key(&keys[2], p, "gv", s->group);
    (void) ngx_chat_batch_str(&arg, p, "%uL", s->from);

    if (rds == NULL
        || ngx_chat_batch_add(rds, NGX_CHAT_SCRIPT_GSEQ, 3, keys, 1, &arg,
                              ngx_chat_send_gsequenced, s)
           == NULL)
    {
        ngx_chat_send_fail(s, "unavailable", "Redis is down");
    }
}


/*
 * A group's seq is taken by one GSEQ of a connection at a time: a later
 * send's GSEQ could otherwise find the counter or the member list that
 * another worker set meanwhile, while the earlier one waits for its seed
 * or fill, and take a seq before it.  A send whose earlier send to the
 * same group has no seq yet is held until that one has (or failed).
 */

static ngx_uint_t
ngx_chat_send_hold(ngx_chat_send_t *s)
{
    ngx_queue_t      *q;
    ngx_chat_send_t  *e;

    if (s->op.ws == NULL) {
        return 0;
    }

    for (q = ngx_queue_prev(&s->op.queue);
         q != ngx_queue_sentinel(&s->op.ws->sends);
         q = ngx_queue_prev(q))
    {
        e = (ngx_chat_send_t *) ngx_queue_data(q, ngx_chat_op_t, queue);

        if (e->group == s->group && e->seq == 0) {
            s->held = 1;
            return 1;
        }
    }

    return 0;
}


/* the send has its seq, or is done: the next held one goes on */

static void
ngx_chat_send_release(ngx_chat_send_t *s)
{
    ngx_queue_t      *q;
    ngx_chat_send_t  *n;

    if (s->group == 0 || s->op.ws == NULL) {
        return;
    }

    for (q = ngx_queue_next(&s->op.queue);
         q != ngx_queue_sentinel(&s->op.ws->sends);
         q = ngx_queue_next(q))
    {
        n = (ngx_chat_send_t *) ngx_queue_data(q, ngx_chat_op_t, queue);

        if (n->group != s->group) {
            continue;
        }

        if (n->held) {
            n->held = 0;
            ngx_chat_send_sequence(n);
        }

        return;
    }
}


static void
ngx_chat_send_gsequenced(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_send_t  *s = data;

    redisReply  *kind, *v;

    if (rc != NGX_CHAT_STORE_OK || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        ngx_chat_send_fail(s, "unavailable", "Redis did not answer");
        return;
    }

    kind = reply->element[0];
    v = reply->elements > 1 ? reply->element[1] : NULL;

    if (kind->len == 3 && ngx_strncmp(kind->str, "seq", 3) == 0
        && v && v->type == REDIS_REPLY_INTEGER)
    {
        s->seq = v->integer;
        ngx_chat_send_release(s);
        ngx_chat_send_produce(s);
        return;
    }

    if (kind->len == 4 && ngx_strncmp(kind->str, "seed", 4) == 0) {
        ngx_chat_seed_wait(s);
        return;
    }

    if (kind->len == 4 && ngx_strncmp(kind->str, "miss", 4) == 0
        && v && v->type == REDIS_REPLY_STRING)
    {
        /* the member list from PostgreSQL, then again (a few times) */
        if (s->fills++ < 3) {
            ngx_chat_seed_mark(s, 1);

            if (ngx_chat_group_fill(s->group, v->str, v->len,
                                    ngx_chat_send_filled, s)
                == NGX_OK)
            {
                return;
            }

            ngx_chat_seed_mark(s, 0);
        }

        ngx_chat_send_fail(s, "unavailable", "the group's members could "
                           "not be read, send it again");
        return;
    }

    if (kind->len == 9 && ngx_strncmp(kind->str, "forbidden", 9) == 0) {
        ngx_chat_send_fail(s, "forbidden", "you are not a member of this "
                           "group");
        return;
    }

    ngx_chat_send_fail(s, "unavailable", "Redis did not answer");
}


/*
 * The group's member list is in Redis now (or the fill failed): the send
 * takes its seq, and the connection's later sends go on.  NGX_AGAIN: the
 * send joins a fill under way.
 */

static void
ngx_chat_send_filled(void *data, ngx_int_t rc)
{
    ngx_chat_send_t  *s = data;

    ngx_chat_ws_t  *ws;

    if (rc == NGX_AGAIN) {
        ngx_chat_seed_mark(s, 1);

        if (ngx_chat_group_fill(s->group, "0", 1, ngx_chat_send_filled, s)
            != NGX_OK)
        {
            ngx_chat_seed_mark(s, 0);
            ngx_chat_send_fail(s, "unavailable", "the group's members "
                               "could not be read, send it again");
        }

        return;
    }

    ws = s->op.ws;
    ngx_chat_seed_mark(s, 0);

    if (rc == NGX_DECLINED) {
        ngx_chat_send_fail(s, "not_found", "no such group");

    } else if (rc != NGX_OK) {
        ngx_chat_send_fail(s, "unavailable", "the group's members could "
                           "not be read, send it again");

    } else {
        ngx_chat_send_sequence(s);
    }

    if (ws && ws->nseeding == 0) {
        ngx_chat_send_pump(ws);
    }
}


static void
ngx_chat_send_sequenced(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_send_t  *s = data;

    s->cmd = NULL;

    if (rc != NGX_CHAT_STORE_OK || reply->type != REDIS_REPLY_INTEGER) {
        ngx_chat_send_fail(s, "unavailable", "Redis did not answer");
        return;
    }

    if (reply->integer < 0) {
        /* no counter: sequenced again once it is there */
        ngx_chat_seed_wait(s);
        return;
    }

    s->seq = reply->integer;
    ngx_chat_send_produce(s);
}


/*
 * A conversation whose counter Redis does not have.  The sends that find
 * it missing wait, in the order Redis answered them, for one query of
 * chat_seq_top(); then the counter is set (SET NX: another worker may have been
 * faster) and, in the same moment, the waiting sends claim or sequence
 * again, in that order, on the same connection: nothing else of this
 * worker comes between them, so seq follows the order of sending.
 */

static ngx_chat_seed_t *
ngx_chat_seed_find(const char *conv)
{
    ngx_queue_t      *q;
    ngx_chat_seed_t  *sd;

    for (q = ngx_queue_head(&ngx_chat_seeds);
         q != ngx_queue_sentinel(&ngx_chat_seeds);
         q = ngx_queue_next(q))
    {
        sd = ngx_queue_data(q, ngx_chat_seed_t, queue);

        if (ngx_strcmp(sd->conv, conv) == 0) {
            return sd;
        }
    }

    return NULL;
}


static void
ngx_chat_seed_wait(ngx_chat_send_t *s)
{
    ngx_str_t           param;
    ngx_chat_seed_t    *sd;
    ngx_chat_worker_t  *w = ngx_chat_worker;

    sd = ngx_chat_seed_find(s->conv);

    if (sd) {
        ngx_chat_seed_mark(s, 1);
        ngx_queue_insert_tail(&sd->waiters, &s->seed);
        return;
    }

    sd = ngx_calloc(sizeof(ngx_chat_seed_t), s->log);
    if (sd == NULL) {
        ngx_chat_send_fail(s, "internal", "out of memory");
        return;
    }

    ngx_queue_init(&sd->waiters);
    ngx_chat_seed_mark(s, 1);
    ngx_queue_insert_tail(&sd->waiters, &s->seed);
    ngx_cpystrn((u_char *) sd->conv, (u_char *) s->conv, sizeof(sd->conv));
    ngx_queue_insert_tail(&ngx_chat_seeds, &sd->queue);

    param.data = (u_char *) sd->conv;
    param.len = ngx_strlen(sd->conv);

    if (ngx_chat_pg_query(w->pg, "SELECT chat_seq_top($1)", 1, &param,
                          ngx_chat_seed_floor, sd)
        == NULL)
    {
        ngx_chat_seed_floor(NGX_CHAT_STORE_DOWN, NULL, sd);
    }
}


static void
ngx_chat_seed_mark(ngx_chat_send_t *s, ngx_uint_t seeding)
{
    if (s->seeding == seeding) {
        return;
    }

    s->seeding = seeding;

    if (s->op.ws == NULL) {
        return;
    }

    if (seeding) {
        s->op.ws->nseeding++;

    } else {
        s->op.ws->nseeding--;
    }
}


static void
ngx_chat_seed_floor(ngx_chat_store_rc_e rc, PGresult *res, void *data)
{
    ngx_chat_seed_t   *sd = data;

    int64_t            top;
    ngx_queue_t       *q;
    ngx_chat_ws_t     *ws;
    ngx_chat_send_t   *s;
    ngx_chat_redis_t  *rds;

    ngx_queue_remove(&sd->queue);

    top = -1;

    if (rc == NGX_CHAT_STORE_OK && PQntuples(res) == 1) {
        top = ngx_atoof((u_char *) PQgetvalue(res, 0, 0),
                        PQgetlength(res, 0, 0));
    }

    q = ngx_queue_head(&sd->waiters);
    s = ngx_queue_data(q, ngx_chat_send_t, seed);
    rds = ngx_chat_send_conv_redis(s);

    if (top < 0 || rds == NULL
        || ngx_chat_redis_command(rds, NULL, NULL,
                                  "SET chat:seq:{%s} %lld NX", sd->conv,
                                  (long long) top)
           == NULL)
    {
        top = -1;

    } else if (top > 0) {
        ngx_log_error(NGX_LOG_INFO, s->log, 0,
                      "chat: the seq of %s goes on from %L, as in "
                      "PostgreSQL", sd->conv, top);
    }

    while (!ngx_queue_empty(&sd->waiters)) {
        q = ngx_queue_head(&sd->waiters);
        ngx_queue_remove(q);
        s = ngx_queue_data(q, ngx_chat_send_t, seed);
        ws = s->op.ws;

        ngx_chat_seed_mark(s, 0);

        if (top < 0) {
            ngx_chat_send_fail(s, "unavailable", "the conversation's "
                               "sequence could not be read, send it again");

        } else if (s->claimed) {
            ngx_chat_send_sequence(s);

        } else {
            ngx_chat_send_claim(s);
        }

        /* the connection's last waiter is claimed again: the rest go on */
        if (ws && ws->nseeding == 0) {
            ngx_chat_send_pump(ws);
        }
    }

    ngx_free(sd);
}


/* id and seq are known: to Kafka */

static void
ngx_chat_send_produce(ngx_chat_send_t *s)
{
    ngx_str_t            key, value;
    ngx_chat_worker_t   *w = ngx_chat_worker;

    chat_id_next(&w->ids, (uint64_t) s->ts, s->id);

    /* the text is kept: the message frame is made of it (chat_frame.h) */
    s->record = chat_record_message_dump(s->msg, s->id, s->seq);
    if (s->record == NULL) {
        ngx_chat_send_fail(s, "internal", "out of memory");
        return;
    }

    s->record_len = ngx_strlen(s->record);
    json_decref(s->msg);
    s->msg = NULL;

    key.data = (u_char *) s->conv;
    key.len = ngx_strlen(s->conv);
    value.data = (u_char *) s->record;
    value.len = s->record_len;

    s->kmsg = ngx_chat_kafka_produce(w->kafka, NGX_CHAT_TOPIC_MESSAGES, 0,
                                     &key, &value, ngx_chat_send_delivered,
                                     s);

    if (s->kmsg == NULL) {
        ngx_chat_send_fail(s, "unavailable", "Kafka refused the message");
    }
}


static void
ngx_chat_send_delivered(ngx_chat_store_rc_e rc, int32_t partition,
    int64_t offset, void *data)
{
    char              *ack, *text;
    ngx_chat_send_t   *s = data;
    ngx_chat_redis_t  *rds;

    s->kmsg = NULL;

    if (rc != NGX_CHAT_STORE_OK) {
        ngx_chat_send_fail(s, "unavailable", "the message was not stored, "
                           "send it again");
        return;
    }

    ack = chat_frame_ack(s->client_id, s->id, s->seq, s->ts);
    if (ack == NULL) {
        ngx_chat_send_done(s);
        return;
    }

    if (s->op.ws) {
        (void) ngx_chat_ws_send_text(s->op.ws, (u_char *) ack,
                                     ngx_strlen(ack));
    }

    ngx_chat_metrics_observe(NGX_CHAT_H_SEND_ACK, s->t0);

    text = chat_frame_message_record(s->record, s->record_len);

    if (text == NULL) {
        ngx_log_error(NGX_LOG_ALERT, s->log, 0,
                      "chat: message %s is in Kafka but not delivered: "
                      "out of memory", s->id);

    } else if (s->group) {
        ngx_chat_gdeliver_message(s->from, s->group, s->id, s->seq, s->ts,
                                  s->conv, text, ngx_strlen(text), s->op.ws);

    } else {
        ngx_chat_deliver_message(s->from, s->to, s->id, s->seq, s->conv,
                                 text, ngx_strlen(text), s->op.ws);
    }

    free(text);

    /* the same ack for a retry of this client_id; the reply is not needed */
    rds = ngx_chat_redis_for_user(s->from);

    if (rds) {
        (void) ngx_chat_redis_command(rds, NULL, NULL, "SET %s %s EX %d",
                                      s->dedup, ack,
                                      NGX_CHAT_SEND_DEDUP_TTL);
    }

    free(ack);

    s->claimed = 0;
    ngx_chat_send_done(s);
}


static void
ngx_chat_send_fail(ngx_chat_send_t *s, const char *code,
    const char *message)
{
    char              *err;
    ngx_chat_redis_t  *rds;

    ngx_log_error(NGX_LOG_INFO, s->log, 0,
                  "chat: send from %uL to %uL (%s) failed: %s",
                  s->from, s->to, s->client_id, message);

    if (s->op.ws) {
        err = chat_frame_error(code, message, s->client_id, NULL, -1);
        if (err) {
            (void) ngx_chat_ws_send_text(s->op.ws, (u_char *) err,
                                         ngx_strlen(err));
            free(err);
        }
    }

    /* the client_id is free again for the retry */
    if (s->claimed) {
        rds = ngx_chat_redis_for_user(s->from);

        if (rds) {
            (void) ngx_chat_redis_command(rds, NULL, NULL, "DEL %s",
                                          s->dedup);
        }

        s->claimed = 0;
    }

    ngx_chat_send_done(s);
}


static void
ngx_chat_send_done(ngx_chat_send_t *s)
{
    ngx_uint_t      blocking;
    ngx_chat_ws_t  *ws = s->op.ws;

    blocking = (s->state == NGX_CHAT_SEND_CHECKING);

    if (s->seeding) {
        /* failed while waiting (out of memory): no longer in a seed */
        ngx_chat_seed_mark(s, 0);
        blocking = 1;
    }

    if (ws) {
        /* a send that failed before its seq: the next one goes on */
        if (s->seq == 0) {
            ngx_chat_send_release(s);
        }

        ngx_queue_remove(&s->op.queue);
        ws->nsends--;
    }

    json_decref(s->msg);
    free(s->record);
    ngx_free(s);

    /* a failed check may have held up the sends behind it */
    if (ws && blocking) {
        ngx_chat_send_pump(ws);
    }
}


/* the connection is gone: its sends finish without it, in order still */

void
ngx_chat_send_orphan(ngx_chat_ws_t *ws)
{
    ngx_queue_t      *q;
    ngx_chat_seed_t  *sd;
    ngx_chat_send_t  *s;

    while (!ngx_queue_empty(&ws->sends)) {
        q = ngx_queue_head(&ws->sends);
        ngx_queue_remove(q);
        ws->nsends--;

        s = (ngx_chat_send_t *) ngx_queue_data(q, ngx_chat_op_t, queue);
        s->op.ws = NULL;

        if (s->held) {
            /* held behind an earlier send to its group: on its own now */
            s->held = 0;
            ngx_chat_send_sequence(s);
            continue;
        }

        if (s->state != NGX_CHAT_SEND_CHECKED) {
            continue;
        }

        /* behind an earlier send that waits for the counter: after it */
        sd = ws->nseeding ? ngx_chat_seed_find(s->conv) : NULL;

        if (sd) {
            s->state = NGX_CHAT_SEND_CLAIMING;
            ngx_queue_insert_tail(&sd->waiters, &s->seed);
            continue;
        }

        ngx_chat_send_claim(s);
    }

    ws->nseeding = 0;
}
