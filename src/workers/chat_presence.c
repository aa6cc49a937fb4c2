
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker presence: chat.presence into PostgreSQL's presence table
 * (the write-behind of last_seen, docs/ARCHITECTURE.md "Presence").
 *
 * A member of consumer group chat-presence.  The gateway produces one
 * record per transition to offline, keyed by the user id:
 * {"user_id":U,"online":false,"last_seen":<ms>}.  Records are read into a
 * batch (--batch-size records, or what came within --batch-wait); only the
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
 * One thread, one connection: a batch is a few hundred bytes per user and
 * one round trip, far below what the gateway can produce; the thread
 * waits for it.
 *
 *   - PostgreSQL down or failing: the same batch again after a backoff
 *     (--retry-min doubling up to --retry-max), for ever; no offset is
 *     committed meanwhile.
 *   - A record that cannot be read (chat_record_presence) goes to the
 *     dead-letter topic with its reason in the header chat-error, and the
 *     consumer goes on; dead letters are flushed to the broker before the
 *     offsets that pass them are committed.  Records with "online":true
 *     are skipped (the gateway makes none: PostgreSQL keeps last_seen only).
 *   - Rebalance: before partitions are revoked the batch is written and
 *     committed (or, if PostgreSQL stays down for 30 s, given up: the
 *     next owner reads it again).
 *   - SIGTERM/SIGINT: drain: go on until every assigned partition reached
 *     its end (or --drain-timeout), write, commit, leave the group, exit 0.
 *     A second signal: give up the batch in hand and exit 0.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_kafka.h"
#include "chat_pg.h"
#include "chat_record.h"
#include "chat_worker.h"


#define CHAT_PRESENCE_REVOKE_GRACE  30000   /* ms to write before revoke */
#define CHAT_PRESENCE_STOP_GRACE    15000   /* ms to write after a drain */
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
    int64_t                           user_id;
    int64_t                           seen;       /* ms since the epoch */
} chat_presence_seen_t;


typedef struct {
    chat_kafka_t                      k;          /* first: the opaque */

    PGconn                           *pg;
    char                              pg_error[512];

    /* the batch */
    chat_presence_seen_t             *seen;
    int                               nseen;
    int                               nrecs;      /* all, dead letters too */
    int                               ndlq;
    int                               nskipped;   /* "online": true */
    rd_kafka_topic_partition_list_t  *offsets;
    int64_t                           deadline;   /* to write it */

    /* the statement's parameters: "{1,2,3}" */
    char                             *ids;
    char                             *seens;

    int64_t                           stop_at;    /* end of the drain */
    int64_t                           total_records;
    int64_t                           total_rows;
} chat_presence_t;


static int chat_presence_init(chat_presence_t *p, chat_worker_conf_t *conf);
static void chat_presence_done(chat_presence_t *p);
static void chat_presence_loop(chat_presence_t *p);
static void chat_presence_record(chat_presence_t *p, rd_kafka_message_t *m);
static int chat_presence_flush(chat_presence_t *p, int64_t deadline,
    const char *why);
static int chat_presence_newest(chat_presence_t *p);
static int chat_presence_cmp(const void *one, const void *two);
static chat_pg_rc_e chat_presence_write(chat_presence_t *p, int users,
    int *rows);
static void chat_presence_stopping(chat_presence_t *p);
static void chat_presence_reset(chat_presence_t *p);
static void chat_presence_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *parts, void *opaque);


int
chat_presence_main(chat_worker_conf_t *conf)
{
    int              rc;
    chat_presence_t  p;

    if (chat_presence_init(&p, conf) != 0) {
        chat_presence_done(&p);
        return 1;
    }

    chat_presence_loop(&p);

    rc = p.k.fatal ? 1 : 0;

    chat_presence_done(&p);

    chat_log(CHAT_LOG_INFO, "stopped", "records=%lld rows=%lld exit=%d",
             (long long) p.total_records, (long long) p.total_rows, rc);

    return rc;
}


static int
chat_presence_init(chat_presence_t *p, chat_worker_conf_t *conf)
{
    char         q[512];
    size_t       size;
    const char  *topics[2];

    memset(p, 0, sizeof(chat_presence_t));

    size = (size_t) conf->batch_size * CHAT_PRESENCE_ID_LEN + 3;

    p->seen = calloc(conf->batch_size, sizeof(chat_presence_seen_t));
    p->ids = malloc(size);
    p->seens = malloc(size);
    p->offsets = rd_kafka_topic_partition_list_new(16);

    if (p->seen == NULL || p->ids == NULL || p->seens == NULL
        || p->offsets == NULL)
    {
        chat_log(CHAT_LOG_ERROR, "no_memory", NULL);
        return -1;
    }

    topics[0] = conf->topic_presence;
    topics[1] = NULL;

    if (chat_kafka_open(&p->k, conf, topics, chat_presence_rebalance, p)
        != 0)
    {
        return -1;
    }

    chat_log(CHAT_LOG_INFO, "started",
             "brokers=%s group=%s topics=%s dlq=%s batch_size=%d "
             "batch_wait_ms=%d librdkafka=%s",
             chat_log_quote(conf->brokers, q, sizeof(q)), conf->group,
             conf->topic_presence, conf->topic_dlq, conf->batch_size,
             conf->batch_wait, rd_kafka_version_str());

    /* not yet: the first batch tries again */
    p->pg = chat_pg_connect(conf->pg_dsn, "chat-worker presence",
                            CHAT_PRESENCE_CHECK, p->pg_error,
                            sizeof(p->pg_error));

    return 0;
}


static void
chat_presence_done(chat_presence_t *p)
{
    if (p->k.consumer) {
        if (p->nrecs) {
            chat_log(CHAT_LOG_WARN, "batch_abandoned", "records=%d why=exit",
                     p->nrecs);
            chat_presence_reset(p);
        }

        chat_kafka_close(&p->k);
    }

    chat_kafka_done(&p->k);

    if (p->pg) {
        PQfinish(p->pg);
    }

    if (p->offsets) {
        rd_kafka_topic_partition_list_destroy(p->offsets);
    }

    free(p->seen);
    free(p->ids);
    free(p->seens);
}


static void
chat_presence_loop(chat_presence_t *p)
{
    int                  timeout;
    int64_t              now;
    rd_kafka_message_t  *m;

    for ( ;; ) {
        now = chat_worker_now();

        chat_presence_stopping(p);

        if (p->k.fatal || chat_worker_stop >= 2) {
            return;
        }

        if (p->stop_at
            && (now >= p->stop_at || chat_kafka_drained(&p->k)))
        {
            if (now >= p->stop_at) {
                chat_log(CHAT_LOG_WARN, "drain_timeout", NULL);
            }

            (void) chat_presence_flush(p, (now > p->stop_at ? now
                                                            : p->stop_at)
                                          + CHAT_PRESENCE_STOP_GRACE,
                                       "stop");
            return;
        }

        timeout = 500;

        if (p->nrecs) {
            timeout = (int) (p->deadline - now);
            timeout = timeout < 0 ? 0 : (timeout > 500 ? 500 : timeout);
        }

        if (p->stop_at && timeout > 100) {
            timeout = 100;
        }

        m = rd_kafka_consumer_poll(p->k.consumer, timeout);

        if (m) {
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                chat_kafka_eof(&p->k, m, 1);

            } else if (m->err) {
                chat_log(CHAT_LOG_WARN, "consume_error", "error=%s",
                         rd_kafka_message_errstr(m));

            } else {
                chat_presence_record(p, m);
                chat_kafka_eof(&p->k, m, 0);
            }

            rd_kafka_message_destroy(m);
        }

        rd_kafka_poll(p->k.dlq, 0);

        if (p->nrecs >= p->k.conf->batch_size
            || (p->nrecs && chat_worker_now() >= p->deadline))
        {
            (void) chat_presence_flush(p, 0, "batch");
        }
    }
}


/* one record into the batch, or a dead letter */

static void
chat_presence_record(chat_presence_t *p, rd_kafka_message_t *m)
{
    int          online;
    char         err[256];
    int64_t      uid, seen;
    const char  *topic;

    topic = p->k.conf->topic_presence;

    chat_kafka_position(p->offsets, topic, m);

    if (p->nrecs == 0) {
        p->deadline = chat_worker_now() + p->k.conf->batch_wait;
    }

    p->nrecs++;
    p->total_records++;

    if (chat_record_presence(m->key, m->key_len, m->payload,
                             m->payload ? m->len : 0, &uid, &online, &seen,
                             err, sizeof(err))
        != 0)
    {
        chat_kafka_dead_letter(&p->k, topic, m->partition, m->offset,
                               m->key, m->key ? m->key_len : 0, m->payload,
                               m->payload ? m->len : 0, err);
        p->ndlq++;
        return;
    }

    if (online) {
        p->nskipped++;
        return;
    }

    p->seen[p->nseen].user_id = uid;
    p->seen[p->nseen].seen = seen;
    p->nseen++;

    chat_log(CHAT_LOG_DEBUG, "record", "partition=%d offset=%lld user=%lld "
             "last_seen=%lld", (int) m->partition, (long long) m->offset,
             (long long) uid, (long long) seen);
}


/*
 * The batch written (again and again until it is, or deadline passes (0:
 * none), or a second signal or a fatal error gives it up), its dead
 * letters delivered, its offsets committed.  0, or -1 when given up:
 * nothing of it is committed, and whoever owns the partitions next reads
 * it again.
 */

static int
chat_presence_flush(chat_presence_t *p, int64_t deadline, const char *why)
{
    int                   users, rows, attempt, delay;
    char                  q[512], parts[1024];
    int64_t               start, limit;
    chat_pg_rc_e          rc;
    rd_kafka_resp_err_t   err;

    if (p->nrecs == 0) {
        return 0;
    }

    start = chat_worker_now();
    delay = p->k.conf->retry_min;
    users = chat_presence_newest(p);
    rows = 0;

    for (attempt = 1; users; attempt++) {
        rc = chat_presence_write(p, users, &rows);

        if (rc == CHAT_PG_OK) {
            break;
        }

        chat_presence_stopping(p);

        limit = deadline;

        if (p->stop_at
            && (limit == 0 || p->stop_at + CHAT_PRESENCE_STOP_GRACE < limit))
        {
            limit = p->stop_at + CHAT_PRESENCE_STOP_GRACE;
        }

        if (p->k.fatal || chat_worker_stop >= 2
            || (limit && chat_worker_now() >= limit))
        {
            chat_log(CHAT_LOG_WARN, "batch_abandoned", "records=%d why=%s "
                     "attempts=%d error=%s", p->nrecs, why, attempt,
                     chat_log_quote(p->pg_error, q, sizeof(q)));
            goto abandon;
        }

        /*
         * CHAT_PG_DATA, too: the values were checked, so a user deleted
         * meanwhile (the EXISTS then leaves it out) or the like
         */
        chat_log(CHAT_LOG_WARN, "pg_retry", "records=%d attempt=%d "
                 "delay_ms=%d error=%s", p->nrecs, attempt, delay,
                 chat_log_quote(p->pg_error, q, sizeof(q)));

        rd_kafka_poll(p->k.dlq, 0);
        chat_worker_sleep(delay, 2);
        delay = delay * 2 > p->k.conf->retry_max ? p->k.conf->retry_max
                                                 : delay * 2;
    }

    /* dead letters of this batch must be in Kafka before its offsets */
    while (rd_kafka_outq_len(p->k.dlq) > 0) {
        (void) rd_kafka_flush(p->k.dlq, 500);

        chat_presence_stopping(p);

        if (p->k.dlq_failed || p->k.fatal || chat_worker_stop >= 2
            || (deadline && chat_worker_now() >= deadline))
        {
            chat_log(CHAT_LOG_WARN, "batch_abandoned", "records=%d why=%s "
                     "error=dead_letters_not_delivered", p->nrecs, why);
            goto abandon;
        }
    }

    if (p->k.dlq_failed) {
        p->k.fatal = 1;
        goto abandon;
    }

    err = rd_kafka_commit(p->k.consumer, p->offsets, 0);

    /* a failed commit is no loss: the records are written again */
    chat_log(err ? CHAT_LOG_WARN : CHAT_LOG_INFO, "batch",
             "why=%s records=%d users=%d rows=%d dlq=%d skipped=%d "
             "attempts=%d ms=%lld commit=%s offsets=%s", why, p->nrecs,
             users, rows, p->ndlq, p->nskipped, users ? attempt : 0,
             (long long) (chat_worker_now() - start),
             err ? chat_log_quote(rd_kafka_err2str(err), q, sizeof(q))
                 : "ok",
             chat_kafka_parts(p->offsets, parts, sizeof(parts)));

    p->total_rows += rows;

    chat_presence_reset(p);

    return 0;

abandon:

    chat_presence_reset(p);

    return -1;
}


/* the batch sorted by user, the newest last_seen of each; their number */

static int
chat_presence_newest(chat_presence_t *p)
{
    int  i, n;

    if (p->nseen == 0) {
        return 0;
    }

    qsort(p->seen, p->nseen, sizeof(chat_presence_seen_t),
          chat_presence_cmp);

    for (i = 1, n = 1; i < p->nseen; i++) {
        if (p->seen[i].user_id != p->seen[n - 1].user_id) {
            p->seen[n++] = p->seen[i];
        }
    }

    p->nseen = n;

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


/* one statement, its own transaction; rows: those it inserted or updated */

static chat_pg_rc_e
chat_presence_write(chat_presence_t *p, int users, int *rows)
{
    int          i;
    char        *id, *seen;
    PGresult    *r;
    const char  *params[2];

    if (p->pg == NULL) {
        p->pg = chat_pg_connect(p->k.conf->pg_dsn, "chat-worker presence",
                                CHAT_PRESENCE_CHECK, p->pg_error,
                                sizeof(p->pg_error));
        if (p->pg == NULL) {
            return CHAT_PG_RETRY;
        }
    }

    id = p->ids;
    seen = p->seens;
    *id++ = '{';
    *seen++ = '{';

    for (i = 0; i < users; i++) {
        id += sprintf(id, "%s%lld", i ? "," : "",
                      (long long) p->seen[i].user_id);
        seen += sprintf(seen, "%s%lld", i ? "," : "",
                        (long long) p->seen[i].seen);
    }

    memcpy(id, "}", 2);
    memcpy(seen, "}", 2);

    params[0] = p->ids;
    params[1] = p->seens;

    r = PQexecParams(p->pg, CHAT_PRESENCE_SQL, 2, NULL, params, NULL, NULL,
                     0);

    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        *rows = atoi(PQcmdTuples(r));
    }

    return chat_pg_exec(&p->pg, r, PGRES_COMMAND_OK, p->pg_error,
                        sizeof(p->pg_error));
}


/* the first signal starts the drain and bounds it */

static void
chat_presence_stopping(chat_presence_t *p)
{
    if (chat_worker_stop == 0 || p->stop_at) {
        return;
    }

    p->stop_at = chat_worker_now() + p->k.conf->drain_timeout;

    chat_log(CHAT_LOG_INFO, "draining", "timeout_ms=%d records=%d",
             p->k.conf->drain_timeout, p->nrecs);
}


static void
chat_presence_reset(chat_presence_t *p)
{
    p->nseen = 0;
    p->nrecs = 0;
    p->ndlq = 0;
    p->nskipped = 0;

    if (p->offsets->cnt) {
        rd_kafka_topic_partition_list_destroy(p->offsets);
        p->offsets = rd_kafka_topic_partition_list_new(16);
    }
}


static void
chat_presence_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    char              buf[1024];
    chat_presence_t  *p = opaque;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        chat_log(CHAT_LOG_INFO, "assigned", "partitions=%s",
                 chat_kafka_parts(parts, buf, sizeof(buf)));

    } else {
        chat_log(CHAT_LOG_INFO, "revoked", "partitions=%s",
                 chat_kafka_parts(parts, buf, sizeof(buf)));

        /* the batch belongs to these partitions' current owner: us */
        (void) chat_presence_flush(p, chat_worker_now()
                                      + CHAT_PRESENCE_REVOKE_GRACE,
                                   "revoke");
    }

    chat_kafka_assign(&p->k, rk, err, parts);
}
