
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker presence: chat.presence into PostgreSQL's presence table
 * (the write-behind of last_seen, docs/ARCHITECTURE.md "Presence"), a
 * role of the consume loop (chat_consume.h: batches, retries, dead
 * letters, rebalance, drain).
 *
 * A member of consumer group chat-presence.  The gateway produces one
 * record per transition to offline, keyed by the user id:
 * {"user_id":U,"online":false,"last_seen":<ms>}.  Of a batch only the
 * newest last_seen of each user is kept, and the batch is written with ONE
 * parameterized statement (its own transaction):
 *
 *     INSERT INTO presence ... FROM unnest($1::bigint[], $2::bigint[])
 *     ... ON CONFLICT DO UPDATE SET last_seen = greatest(...)
 *
 * restricted to existing users, so last_seen only moves forward whatever
 * order the records come in, and writing a batch again changes nothing.
 * Only once it is committed are the batch's offsets committed to Kafka.
 *
 * One lane, one connection: a batch is a few hundred bytes per user and
 * one round trip, far below what the gateway can produce.
 *
 *   - A record that cannot be read (chat_record_presence) goes to the
 *     dead-letter topic with its reason in the header chat-error.  Records
 *     with "online":true are skipped (the gateway makes none: PostgreSQL
 *     keeps last_seen only).
 *   - A statement refused as data is retried like any failure: the values
 *     were checked, so it is a user deleted meanwhile or the like.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_consume.h"
#include "chat_kafka.h"
#include "chat_pg.h"
#include "chat_record.h"
#include "chat_worker.h"


#define CHAT_PRESENCE_ID_LEN        21      /* "-9223372036854775808," */


#define CHAT_PRESENCE_SQL                                                     \
    "INSERT INTO presence AS p (user_id, last_seen) "                         \
    "SELECT x.uid, timestamptz 'epoch' + x.seen * interval '1 millisecond' "  \
    "FROM unnest($1::bigint[], $2::bigint[]) AS x(uid, seen) "                \
    "WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = x.uid) "                \
    "ON CONFLICT (user_id) DO UPDATE "                                        \
    "SET last_seen = greatest(p.last_seen, excluded.last_seen)"

/* fails on a database without sql/0004_presence.sql */
#define CHAT_PRESENCE_CHECK                                                   \
    "SELECT 'chat_presence_seen(bigint,bigint)'::regprocedure"


typedef struct {
    int64_t                 user_id;
    int64_t                 seen;       /* ms since the epoch */
} chat_presence_seen_t;


/* the role's part of a batch */
typedef struct {
    chat_presence_seen_t   *seen;
    int                     nseen;
    int                     ndlq;
    int                     nskipped;   /* "online": true */
    int                     users;      /* set by the writer */
    int                     rows;

    /* the statement's parameters: "{1,2,3}" */
    char                   *ids;
    char                   *seens;
} chat_presence_batch_t;


static void chat_presence_topics(chat_worker_conf_t *conf,
    const char **topics);
static int chat_presence_batch_init(chat_consume_batch_t *cb, int size);
static void chat_presence_batch_reset(chat_consume_batch_t *cb);
static void chat_presence_batch_free(chat_consume_batch_t *cb);
static void chat_presence_record(chat_consume_t *c, chat_consume_batch_t *cb,
    rd_kafka_message_t *m);
static chat_pg_rc_e chat_presence_write(chat_consume_lane_t *l,
    chat_consume_batch_t *cb);
static int64_t chat_presence_logged(chat_consume_lane_t *l,
    chat_consume_batch_t *cb, const char *why, const char *commit);
static int chat_presence_newest(chat_presence_batch_t *b);
static int chat_presence_cmp(const void *one, const void *two);


static const chat_consume_role_t  chat_presence_role = {
    "chat-worker presence",
    CHAT_PRESENCE_CHECK,
    "rows",
    0,
    0,
    chat_presence_topics,
    chat_presence_batch_init,
    chat_presence_batch_reset,
    chat_presence_batch_free,
    chat_presence_record,
    chat_presence_write,
    NULL,
    chat_presence_logged
};


int
chat_presence_main(chat_worker_conf_t *conf)
{
    return chat_consume_main(conf, &chat_presence_role);
}


static void
chat_presence_topics(chat_worker_conf_t *conf, const char **topics)
{
    topics[0] = conf->topic_presence;
    topics[1] = NULL;
}


static int
chat_presence_batch_init(chat_consume_batch_t *cb, int size)
{
    size_t                  len;
    chat_presence_batch_t  *b;

    b = calloc(1, sizeof(chat_presence_batch_t));
    if (b == NULL) {
        return -1;
    }

    cb->data = b;

    len = (size_t) size * CHAT_PRESENCE_ID_LEN + 3;

    b->seen = calloc(size, sizeof(chat_presence_seen_t));
    b->ids = malloc(len);
    b->seens = malloc(len);

    return b->seen && b->ids && b->seens ? 0 : -1;
}


static void
chat_presence_batch_reset(chat_consume_batch_t *cb)
{
    chat_presence_batch_t  *b = cb->data;

    b->nseen = 0;
    b->ndlq = 0;
    b->nskipped = 0;
    b->users = 0;
    b->rows = 0;
}


static void
chat_presence_batch_free(chat_consume_batch_t *cb)
{
    chat_presence_batch_t  *b = cb->data;

    if (b == NULL) {
        return;
    }

    free(b->seen);
    free(b->ids);
    free(b->seens);
    free(b);

    cb->data = NULL;
}


/* one record into the batch, or a dead letter */

static void
chat_presence_record(chat_consume_t *c, chat_consume_batch_t *cb,
    rd_kafka_message_t *m)
{
    int                     online;
    char                    err[256];
    int64_t                 uid, seen;
    chat_presence_batch_t  *b = cb->data;

    if (chat_record_presence(m->key, m->key_len, m->payload,
                             m->payload ? m->len : 0, &uid, &online, &seen,
                             err, sizeof(err))
        != 0)
    {
        chat_kafka_dead_letter(&c->k, c->k.conf->topic_presence,
                               m->partition, m->offset, m->key,
                               m->key ? m->key_len : 0, m->payload,
                               m->payload ? m->len : 0, err);
        b->ndlq++;
        return;
    }

    if (online) {
        b->nskipped++;
        return;
    }

    b->seen[b->nseen].user_id = uid;
    b->seen[b->nseen].seen = seen;
    b->nseen++;

    chat_log(CHAT_LOG_DEBUG, "record", "partition=%d offset=%lld user=%lld "
             "last_seen=%lld", (int) m->partition, (long long) m->offset,
             (long long) uid, (long long) seen);
}


/*
 * In the writer: one statement, its own transaction; b->rows: those it
 * inserted or updated.  Nothing to write without users.
 */

static chat_pg_rc_e
chat_presence_write(chat_consume_lane_t *l, chat_consume_batch_t *cb)
{
    int                     i;
    char                   *id, *seen;
    PGresult               *r;
    const char             *params[2];
    chat_presence_batch_t  *b = cb->data;

    b->users = chat_presence_newest(b);

    if (b->users == 0) {
        return CHAT_PG_OK;
    }

    if (chat_consume_pg(l) == NULL) {
        return CHAT_PG_RETRY;
    }

    id = b->ids;
    seen = b->seens;
    *id++ = '{';
    *seen++ = '{';

    for (i = 0; i < b->users; i++) {
        id += sprintf(id, "%s%lld", i ? "," : "",
                      (long long) b->seen[i].user_id);
        seen += sprintf(seen, "%s%lld", i ? "," : "",
                        (long long) b->seen[i].seen);
    }

    memcpy(id, "}", 2);
    memcpy(seen, "}", 2);

    params[0] = b->ids;
    params[1] = b->seens;

    r = PQexecParams(l->pg, CHAT_PRESENCE_SQL, 2, NULL, params, NULL, NULL,
                     0);

    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        b->rows = atoi(PQcmdTuples(r));
    }

    return chat_consume_exec(l, r, PGRES_COMMAND_OK);
}


static int64_t
chat_presence_logged(chat_consume_lane_t *l, chat_consume_batch_t *cb,
    const char *why, const char *commit)
{
    char                    parts[1024];
    chat_presence_batch_t  *b = cb->data;

    if (commit == NULL) {
        return 0;
    }

    chat_log(strcmp(commit, "ok") ? CHAT_LOG_WARN : CHAT_LOG_INFO, "batch",
             "%swhy=%s records=%d users=%d rows=%d dlq=%d skipped=%d "
             "attempts=%d ms=%lld commit=%s offsets=%s", l->tag, why,
             cb->nrecs, b->users, b->rows, b->ndlq, b->nskipped,
             b->users ? cb->attempts : 0, (long long) cb->write_ms, commit,
             chat_kafka_parts(cb->offsets, parts, sizeof(parts)));

    return b->rows;
}


/* the batch sorted by user, the newest last_seen of each; their number */

static int
chat_presence_newest(chat_presence_batch_t *b)
{
    int  i, n;

    if (b->nseen == 0) {
        return 0;
    }

    qsort(b->seen, b->nseen, sizeof(chat_presence_seen_t),
          chat_presence_cmp);

    for (i = 1, n = 1; i < b->nseen; i++) {
        if (b->seen[i].user_id != b->seen[n - 1].user_id) {
            b->seen[n++] = b->seen[i];
        }
    }

    b->nseen = n;

    return n;
}


/* by user, the newest first */

static int
chat_presence_cmp(const void *one, const void *two)
{
    const chat_presence_seen_t  *a = one, *b = two;

    if (a->user_id != b->user_id) {
        return a->user_id < b->user_id ? -1 : 1;
    }

    return a->seen > b->seen ? -1 : (a->seen < b->seen ? 1 : 0);
}
