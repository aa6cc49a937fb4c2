
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker persist: chat.messages and chat.receipts into PostgreSQL.
 *
 * A member of consumer group chat-persist.  Records are read into a batch
 * (--batch-size records, or what came within --batch-wait), each turned
 * into a COPY row at once and kept no longer than its batch.  A batch is
 * written in ONE transaction:
 *
 *     BEGIN
 *     COPY chat_persist_in_msgs FROM STDIN      the messages
 *     COPY chat_persist_in_rcpts FROM STDIN     the receipts
 *     SELECT ... FROM chat_persist_apply(sweep) sql/0003_messages.sql
 *     COMMIT
 *
 * and only once COMMIT succeeded are the offsets of exactly the records of
 * the batch committed to Kafka, synchronously.  So a crash anywhere loses
 * nothing: what was not committed to Kafka is read again, and writing it
 * again changes nothing (idempotent on the message id).
 *
 * Lanes: the partitions are shared among --writers lanes (partition
 * number modulo their count; a conversation's messages and receipts have
 * the same partition number in both topics, so they share a lane).  Each
 * lane has its own writer thread and PostgreSQL connection and two
 * batches: its writer writes one while the main thread reads and parses
 * the next, and the lanes write side by side.  The main thread hands a
 * lane's batch over only once the lane's previous one is written and its
 * offsets committed, so within a partition batches reach PostgreSQL and
 * Kafka in the order they were read.  A batch that is given up (see below)
 * takes the one behind it in its lane along: offsets are never committed
 * past a record that is not written.
 *
 *   - PostgreSQL down or failing: the same batch again after a backoff
 *     (--retry-min doubling up to --retry-max), for ever; no offset is
 *     committed meanwhile.
 *   - A record that cannot be read (chat_record_parse) goes to the
 *     dead-letter topic with its reason in the header chat-error, and the
 *     consumer goes on.  A record PostgreSQL refuses as data (SQLSTATE
 *     class 22 or 23) would fail its batch for ever: the batch is then
 *     written one record per transaction, and the refused one goes to the
 *     dead-letter topic too.  Dead letters are flushed to the broker
 *     before the offsets that pass them are committed.
 *   - Rebalance: before partitions are revoked the batches in hand are
 *     written and committed (or, if PostgreSQL stays down for 30 s, given
 *     up: the next owner reads them again).
 *   - SIGTERM/SIGINT: drain: go on until every assigned partition reached
 *     its end (or --drain-timeout), write, commit, leave the group, exit 0.
 *     A second signal: give up the batches in hand and exit 0.
 */


#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "chat_copy.h"
#include "chat_kafka.h"
#include "chat_pg.h"
#include "chat_record.h"
#include "chat_worker.h"


#define CHAT_PERSIST_REVOKE_GRACE   30000   /* ms to write before revoke */
#define CHAT_PERSIST_STOP_GRACE     15000   /* ms to write after a drain */
#define CHAT_PERSIST_KEEP_BUFFER    (64 * 1024 * 1024)

#define CHAT_PERSIST_NO_KEY         ((size_t) -1)


typedef enum {
    CHAT_PERSIST_DLQ = 0,       /* sent to the dead-letter topic */
    CHAT_PERSIST_MSG,
    CHAT_PERSIST_RCPT
} chat_persist_kind_e;


typedef enum {
    CHAT_JOB_NONE = 0,          /* the writer is idle */
    CHAT_JOB_QUEUED,            /* a batch is with the writer */
    CHAT_JOB_DONE               /* written (or given up): collect it */
} chat_job_state_e;


typedef struct {
    chat_persist_kind_e     kind;
    const char             *topic;
    int32_t                 partition;
    int64_t                 offset;
    size_t                  row;        /* in msgs or rcpts */
    size_t                  row_len;
    size_t                  key;        /* in orig */
    size_t                  key_len;
    size_t                  val;
    size_t                  val_len;
} chat_persist_rec_t;


typedef struct {
    int                     stored;
    int                     duplicates;
    int                     resequenced;
    int                     receipts;
    int                     pending;
} chat_persist_result_t;


typedef struct {
    chat_copy_t                     msgs;
    chat_copy_t                     rcpts;
    chat_copy_t                     orig;
    chat_persist_rec_t             *recs;
    int                             nrecs;
    int                             nmsgs;
    int                             nrcpts;
    int                             ndlq;
    int                             sweep;
    unsigned                        per_record:1;
    rd_kafka_topic_partition_list_t *offsets;
    int64_t                         deadline;     /* to hand it over */

    /* set by the writer */
    int                             rc;           /* 0, -1 given up */
    int                             attempts;
    int64_t                         write_ms;
    chat_persist_result_t           res;
} chat_persist_batch_t;


typedef struct chat_persist_s  chat_persist_t;


typedef struct {
    chat_persist_t                 *p;
    int                             index;
    PGconn                         *pg;           /* the writer's */
    char                            pg_error[512];

    chat_persist_batch_t            batches[2];
    chat_persist_batch_t           *cur;          /* being read */
    chat_persist_batch_t           *job;          /* with the writer */
    const char                     *job_why;

    pthread_t                       writer;
    pthread_mutex_t                 lock;
    pthread_cond_t                  cond;
    chat_job_state_e                job_state;
    int64_t                         job_deadline;
    int                             writer_up;
    int                             quit;
    int                             given_up;     /* discard what follows */
} chat_persist_lane_t;


struct chat_persist_s {
    chat_kafka_t                    k;            /* first: the opaque */

    chat_persist_lane_t             lanes[CHAT_WORKER_MAX_WRITERS];
    int                             nlanes;

    int64_t                         next_sweep;
    int64_t                         stop_at;      /* end of the drain */
    int64_t                         total_stored;
    int64_t                         total_records;
};


static int chat_persist_init(chat_persist_t *p, chat_worker_conf_t *conf);
static int chat_persist_batch_init(chat_persist_batch_t *b, int size);
static void chat_persist_done(chat_persist_t *p);
static void chat_persist_loop(chat_persist_t *p);
static chat_persist_lane_t *chat_persist_lane(chat_persist_t *p,
    int32_t partition);
static void chat_persist_record(chat_persist_t *p, rd_kafka_message_t *m);
static void chat_persist_dead_letter(chat_persist_t *p,
    chat_persist_batch_t *b, chat_persist_rec_t *rec, const char *reason);
static int chat_persist_submit(chat_persist_lane_t *l, int64_t deadline,
    const char *why, int sweep);
static int chat_persist_collect(chat_persist_lane_t *l, int wait);
static int chat_persist_sync(chat_persist_t *p, int64_t deadline,
    const char *why);
static void *chat_persist_writer(void *data);
static void chat_persist_write_batch(chat_persist_lane_t *l,
    chat_persist_batch_t *b, const char *why);
static void chat_persist_tighten(chat_persist_lane_t *l, int64_t deadline);
static void chat_persist_stopping(chat_persist_t *p);
static chat_pg_rc_e chat_persist_write(chat_persist_lane_t *l,
    const char *msgs, size_t mlen, const char *rcpts, size_t rlen, int sweep,
    chat_persist_result_t *res);
static chat_pg_rc_e chat_persist_write_each(chat_persist_lane_t *l,
    chat_persist_batch_t *b, chat_persist_result_t *res);
static chat_pg_rc_e chat_persist_copy(chat_persist_lane_t *l,
    const char *sql, const char *data, size_t len);
static chat_pg_rc_e chat_persist_exec(chat_persist_lane_t *l, PGresult *res,
    ExecStatusType want);
static int chat_persist_connect(chat_persist_lane_t *l);
static void chat_persist_reset(chat_persist_batch_t *b);
static void chat_persist_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *parts, void *opaque);


int
chat_persist_main(chat_worker_conf_t *conf)
{
    int             rc;
    chat_persist_t  p;

    if (chat_persist_init(&p, conf) != 0) {
        chat_persist_done(&p);
        return 1;
    }

    chat_persist_loop(&p);

    rc = p.k.fatal ? 1 : 0;

    chat_persist_done(&p);

    chat_log(CHAT_LOG_INFO, "stopped", "records=%lld stored=%lld exit=%d",
             (long long) p.total_records, (long long) p.total_stored, rc);

    return rc;
}


static int
chat_persist_init(chat_persist_t *p, chat_worker_conf_t *conf)
{
    int                   i;
    char                  q[512];
    chat_persist_lane_t  *l;
    const char           *topics[3];

    memset(p, 0, sizeof(chat_persist_t));

    p->nlanes = conf->writers;

    for (i = 0; i < p->nlanes; i++) {
        l = &p->lanes[i];
        l->p = p;
        l->index = i;
        l->cur = &l->batches[0];
        pthread_mutex_init(&l->lock, NULL);
        pthread_cond_init(&l->cond, NULL);

        if (chat_persist_batch_init(&l->batches[0], conf->batch_size) != 0
            || chat_persist_batch_init(&l->batches[1], conf->batch_size)
               != 0)
        {
            chat_log(CHAT_LOG_ERROR, "no_memory", NULL);
            return -1;
        }
    }

    topics[0] = conf->topic_messages;
    topics[1] = conf->topic_receipts;
    topics[2] = NULL;

    if (chat_kafka_open(&p->k, conf, topics, chat_persist_rebalance, p)
        != 0)
    {
        return -1;
    }

    chat_log(CHAT_LOG_INFO, "started",
             "brokers=%s group=%s topics=%s,%s dlq=%s batch_size=%d "
             "batch_wait_ms=%d writers=%d librdkafka=%s",
             chat_log_quote(conf->brokers, q, sizeof(q)), conf->group,
             conf->topic_messages, conf->topic_receipts, conf->topic_dlq,
             conf->batch_size, conf->batch_wait, conf->writers,
             rd_kafka_version_str());

    for (i = 0; i < p->nlanes; i++) {
        l = &p->lanes[i];

        /* before the writer runs: from then on the connection is its own */
        (void) chat_persist_connect(l);

        if (pthread_create(&l->writer, NULL, chat_persist_writer, l) != 0) {
            chat_log(CHAT_LOG_ERROR, "thread", "error=%s", strerror(errno));
            return -1;
        }

        l->writer_up = 1;
    }

    p->next_sweep = chat_worker_now() + conf->sweep_interval;

    return 0;
}


static int
chat_persist_batch_init(chat_persist_batch_t *b, int size)
{
    chat_copy_init(&b->msgs);
    chat_copy_init(&b->rcpts);
    chat_copy_init(&b->orig);

    b->recs = calloc(size, sizeof(chat_persist_rec_t));
    b->offsets = rd_kafka_topic_partition_list_new(16);

    return b->recs && b->offsets ? 0 : -1;
}


static void
chat_persist_done(chat_persist_t *p)
{
    int                   i, j;
    chat_persist_lane_t  *l;

    if (p->k.consumer) {
        /* a batch not handed over by now is read again by the next owner */
        for (i = 0; i < p->nlanes; i++) {
            l = &p->lanes[i];

            if (l->cur && l->cur->nrecs) {
                chat_log(CHAT_LOG_WARN, "batch_abandoned", "lane=%d "
                         "records=%d why=exit", i, l->cur->nrecs);
            }

            if (l->cur) {
                chat_persist_reset(l->cur);
            }
        }

        /* revoking collects the batches still with the writers, if any */
        chat_kafka_close(&p->k);
    }

    for (i = 0; i < p->nlanes; i++) {
        l = &p->lanes[i];

        if (l->writer_up) {
            (void) chat_persist_collect(l, 1);

            pthread_mutex_lock(&l->lock);
            l->quit = 1;
            pthread_cond_broadcast(&l->cond);
            pthread_mutex_unlock(&l->lock);

            pthread_join(l->writer, NULL);
            l->writer_up = 0;
        }
    }

    chat_kafka_done(&p->k);

    for (i = 0; i < p->nlanes; i++) {
        l = &p->lanes[i];

        if (l->pg) {
            PQfinish(l->pg);
        }

        for (j = 0; j < 2; j++) {
            if (l->batches[j].offsets) {
                rd_kafka_topic_partition_list_destroy(l->batches[j].offsets);
            }

            chat_copy_free(&l->batches[j].msgs);
            chat_copy_free(&l->batches[j].rcpts);
            chat_copy_free(&l->batches[j].orig);
            free(l->batches[j].recs);
        }

        pthread_cond_destroy(&l->cond);
        pthread_mutex_destroy(&l->lock);
    }
}


static void
chat_persist_loop(chat_persist_t *p)
{
    int                    i, timeout, t, busy;
    int64_t                now;
    rd_kafka_message_t    *m;
    chat_persist_batch_t  *b;
    chat_persist_lane_t   *l;

    for ( ;; ) {
        now = chat_worker_now();

        chat_persist_stopping(p);

        if (p->k.fatal || chat_worker_stop >= 2) {
            return;
        }

        if (p->stop_at && (now >= p->stop_at || chat_kafka_drained(&p->k))) {
            if (now >= p->stop_at) {
                chat_log(CHAT_LOG_WARN, "drain_timeout", NULL);
            }

            (void) chat_persist_sync(p, (now > p->stop_at ? now : p->stop_at)
                                        + CHAT_PERSIST_STOP_GRACE, "stop");
            return;
        }

        /* written batches get their offsets committed without delay */
        timeout = 500;

        for (i = 0; i < p->nlanes; i++) {
            l = &p->lanes[i];
            (void) chat_persist_collect(l, 0);

            if (l->cur->nrecs) {
                t = (int) (l->cur->deadline - now);
                t = t < 0 ? 0 : t;
                timeout = t < timeout ? t : timeout;
            }
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
                chat_persist_record(p, m);
                chat_kafka_eof(&p->k, m, 0);
            }

            rd_kafka_message_destroy(m);
        }

        rd_kafka_poll(p->k.dlq, 0);

        now = chat_worker_now();
        busy = 0;

        for (i = 0; i < p->nlanes; i++) {
            l = &p->lanes[i];
            b = l->cur;
            busy |= b->nrecs;

            if (b->nrecs >= p->k.conf->batch_size
                || (b->nrecs && now >= b->deadline))
            {
                (void) chat_persist_submit(l, p->stop_at
                                              ? p->stop_at
                                                + CHAT_PERSIST_STOP_GRACE
                                              : 0, "batch", 0);
            }
        }

        if (!busy && now >= p->next_sweep) {
            /* with nothing else to do: parked receipts, see the SQL */
            p->next_sweep = now + p->k.conf->sweep_interval;
            (void) chat_persist_submit(&p->lanes[0], 0, "sweep", 1);
        }
    }
}


/* the lane of a partition: the same number in both topics, the same lane */

static chat_persist_lane_t *
chat_persist_lane(chat_persist_t *p, int32_t partition)
{
    return &p->lanes[(partition < 0 ? 0 : partition) % p->nlanes];
}


/* one record into the batch: a COPY row, or a dead letter */

static void
chat_persist_record(chat_persist_t *p, rd_kafka_message_t *m)
{
    char                         err[256], q[256];
    json_t                      *json;
    const char                  *topic;
    chat_record_t                r;
    chat_copy_t                 *c;
    chat_persist_rec_t          *rec;
    chat_persist_batch_t        *b;

    b = chat_persist_lane(p, m->partition)->cur;

    topic = rd_kafka_topic_name(m->rkt);
    topic = strcmp(topic, p->k.conf->topic_messages) == 0
            ? p->k.conf->topic_messages : p->k.conf->topic_receipts;

    chat_kafka_position(b->offsets, topic, m);

    if (b->nrecs == 0) {
        b->deadline = chat_worker_now() + p->k.conf->batch_wait;
    }

    rec = &b->recs[b->nrecs++];
    memset(rec, 0, sizeof(chat_persist_rec_t));
    rec->topic = topic;
    rec->partition = m->partition;
    rec->offset = m->offset;
    p->total_records++;

    /* the record as it came, for the dead-letter topic */
    rec->key = m->key ? b->orig.len : CHAT_PERSIST_NO_KEY;
    rec->key_len = m->key_len;

    if (m->key) {
        chat_copy_raw(&b->orig, m->key, m->key_len);
    }

    rec->val = b->orig.len;
    rec->val_len = m->payload ? m->len : 0;

    if (m->payload) {
        chat_copy_raw(&b->orig, m->payload, m->len);
    }

    json = chat_record_parse(m->key, m->key_len, m->payload,
                             m->payload ? m->len : 0, &r, err, sizeof(err));

    if (json == NULL || chat_copy_failed(&b->orig)) {
        chat_persist_dead_letter(p, b, rec, json ? "no memory" : err);
        json_decref(json);
        return;
    }

    if (r.type == CHAT_RECORD_MESSAGE) {
        c = &b->msgs;
        rec->row = c->len;

        chat_copy_text(c, r.conv, strlen(r.conv));
        chat_copy_int(c, r.seq);
        chat_copy_text(c, r.id, CHAT_ID_LEN);
        chat_copy_int(c, r.from);

        if (r.to) {
            chat_copy_int(c, r.to);
            chat_copy_null(c);

        } else {
            chat_copy_null(c);
            chat_copy_int(c, r.group);
        }

        chat_copy_text(c, r.body, r.body_len);

        if (r.media) {
            chat_copy_text(c, r.media, r.media_len);

        } else {
            chat_copy_null(c);
        }

        chat_copy_bool(c, r.e2e);
        chat_copy_text(c, r.client_id, r.client_id_len);
        chat_copy_int(c, r.ts);
        chat_copy_end_row(c);

        rec->kind = CHAT_PERSIST_MSG;
        b->nmsgs++;

    } else {
        c = &b->rcpts;
        rec->row = c->len;

        chat_copy_text(c, r.conv, strlen(r.conv));
        chat_copy_text(c, r.id, CHAT_ID_LEN);
        chat_copy_int(c, r.by);
        chat_copy_int(c, r.ts);

        if (r.read) {
            chat_copy_int(c, r.ts);

        } else {
            chat_copy_null(c);
        }

        chat_copy_end_row(c);

        rec->kind = CHAT_PERSIST_RCPT;
        b->nrcpts++;
    }

    json_decref(json);

    if (chat_copy_failed(c)) {
        /* cannot happen short of memory: stop rather than lose it */
        chat_log(CHAT_LOG_ERROR, "no_memory", "topic=%s partition=%d "
                 "offset=%lld", topic, (int) m->partition,
                 (long long) m->offset);
        p->k.fatal = 1;
        return;
    }

    rec->row_len = c->len - rec->row;

    chat_log(CHAT_LOG_DEBUG, "record", "topic=%s partition=%d offset=%lld "
             "type=%s conv=%s seq=%lld", topic, (int) m->partition,
             (long long) m->offset,
             r.type == CHAT_RECORD_MESSAGE ? "message" : "receipt",
             chat_log_quote(r.conv, q, sizeof(q)), (long long) r.seq);
}


/* from the main thread (parse) or the writer (refused by PostgreSQL) */

static void
chat_persist_dead_letter(chat_persist_t *p, chat_persist_batch_t *b,
    chat_persist_rec_t *rec, const char *reason)
{
    char  *key, *val;

    key = rec->key == CHAT_PERSIST_NO_KEY ? NULL : b->orig.data + rec->key;
    val = rec->val_len ? b->orig.data + rec->val : NULL;

    chat_kafka_dead_letter(&p->k, rec->topic, rec->partition, rec->offset,
                           key, key ? rec->key_len : 0, val, rec->val_len,
                           reason);

    rec->kind = CHAT_PERSIST_DLQ;
    b->ndlq++;
}


/*
 * Hands the lane's current batch to its writer (sweep: also when it is
 * empty, to apply parked receipts), once the one before it is written and
 * committed.  0 when handed over (or nothing to do), -1 when the batch was
 * dropped because the one before it was given up.
 */

static int
chat_persist_submit(chat_persist_lane_t *l, int64_t deadline,
    const char *why, int sweep)
{
    chat_persist_t        *p = l->p;
    chat_persist_batch_t  *b;

    /* the batch still with the writer may not take longer than this one */
    chat_persist_tighten(l, deadline);

    if (chat_persist_collect(l, 1) != 0 || l->given_up || !l->writer_up) {
        if (l->cur->nrecs) {
            chat_log(CHAT_LOG_WARN, "batch_abandoned", "lane=%d records=%d "
                     "why=%s reason=the_batch_before_it_was_given_up",
                     l->index, l->cur->nrecs, why);
        }

        chat_persist_reset(l->cur);
        return -1;
    }

    b = l->cur;

    if (b->nrecs == 0 && !sweep) {
        return 0;
    }

    if (!sweep && l->index == 0 && chat_worker_now() >= p->next_sweep) {
        sweep = 1;
        p->next_sweep = chat_worker_now() + p->k.conf->sweep_interval;
    }

    b->sweep = sweep;
    l->cur = b == &l->batches[0] ? &l->batches[1] : &l->batches[0];

    pthread_mutex_lock(&l->lock);
    l->job = b;
    l->job_why = why;
    l->job_deadline = deadline;
    l->job_state = CHAT_JOB_QUEUED;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);

    return 0;
}


/*
 * The lane's batch with the writer, once written: dead letters flushed,
 * offsets committed, logged, emptied.  wait: block until the writer is
 * done.  0 when there is none or it was committed, 1 when it is still
 * being written (and !wait), -1 when it was given up (l->given_up is set:
 * what the lane read after it must not be committed either).
 */

static int
chat_persist_collect(chat_persist_lane_t *l, int wait)
{
    int                    rc;
    char                   q[512], parts[1024];
    struct timespec        ts;
    chat_persist_t        *p = l->p;
    chat_persist_batch_t  *b;
    rd_kafka_resp_err_t    err;

    if (!l->writer_up) {
        return 0;
    }

    pthread_mutex_lock(&l->lock);

    while (wait && l->job_state == CHAT_JOB_QUEUED) {
        /* delivery reports of dead letters are served meanwhile */
        pthread_mutex_unlock(&l->lock);
        rd_kafka_poll(p->k.dlq, 0);
        chat_persist_stopping(p);
        pthread_mutex_lock(&l->lock);

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }

        if (l->job_state == CHAT_JOB_QUEUED) {
            (void) pthread_cond_timedwait(&l->cond, &l->lock, &ts);
        }
    }

    if (l->job_state != CHAT_JOB_DONE) {
        rc = l->job_state == CHAT_JOB_NONE ? 0 : 1;
        pthread_mutex_unlock(&l->lock);
        return rc;
    }

    b = l->job;
    pthread_mutex_unlock(&l->lock);

    rc = b->rc;

    if (rc == 0 && b->nrecs && p->k.conf->failpoint_after_commit > 0) {
        chat_log(CHAT_LOG_WARN, "failpoint", "name=after_pg_commit "
                 "sleep_ms=%d records=%d", p->k.conf->failpoint_after_commit,
                 b->nrecs);
        chat_worker_sleep(p->k.conf->failpoint_after_commit, 2);
    }

    /* dead letters of this batch must be in Kafka before its offsets */
    while (rc == 0 && rd_kafka_outq_len(p->k.dlq) > 0) {
        (void) rd_kafka_flush(p->k.dlq, 500);

        chat_persist_stopping(p);

        if (p->k.dlq_failed || p->k.fatal || chat_worker_stop >= 2
            || (l->job_deadline && chat_worker_now() >= l->job_deadline))
        {
            chat_log(CHAT_LOG_WARN, "batch_abandoned", "lane=%d records=%d "
                     "why=%s error=dead_letters_not_delivered", l->index,
                     b->nrecs, l->job_why);
            rc = -1;
        }
    }

    if (rc == 0 && p->k.dlq_failed) {
        p->k.fatal = 1;
        rc = -1;
    }

    if (rc == 0 && b->nrecs) {
        err = rd_kafka_commit(p->k.consumer, b->offsets, 0);

        chat_log(err ? CHAT_LOG_WARN : CHAT_LOG_INFO, "batch",
                 "lane=%d why=%s records=%d msgs=%d receipts_in=%d dlq=%d "
                 "stored=%d duplicates=%d resequenced=%d receipts=%d "
                 "pending=%d attempts=%d ms=%lld total_stored=%lld "
                 "commit=%s offsets=%s", l->index, l->job_why, b->nrecs,
                 b->nmsgs, b->nrcpts, b->ndlq, b->res.stored,
                 b->res.duplicates, b->res.resequenced, b->res.receipts,
                 b->res.pending, b->attempts, (long long) b->write_ms,
                 (long long) (p->total_stored + b->res.stored),
                 err ? chat_log_quote(rd_kafka_err2str(err), q, sizeof(q))
                     : "ok",
                 chat_kafka_parts(b->offsets, parts, sizeof(parts)));

        /* a failed commit is no loss: the records are written again */
        p->total_stored += b->res.stored;

    } else if (rc == 0 && (b->res.receipts || b->res.pending)) {
        chat_log(CHAT_LOG_INFO, "sweep", "receipts=%d", b->res.receipts);
    }

    if (rc != 0) {
        l->given_up = 1;
    }

    chat_persist_reset(b);

    pthread_mutex_lock(&l->lock);
    l->job = NULL;
    l->job_state = CHAT_JOB_NONE;
    pthread_mutex_unlock(&l->lock);

    return rc;
}


/*
 * Every lane's batches written and committed, the lanes side by side; 0,
 * or -1 when any were given up
 */

static int
chat_persist_sync(chat_persist_t *p, int64_t deadline, const char *why)
{
    int  i, rc;

    rc = 0;

    for (i = 0; i < p->nlanes; i++) {
        if (chat_persist_submit(&p->lanes[i], deadline, why, 0) != 0) {
            rc = -1;
        }
    }

    for (i = 0; i < p->nlanes; i++) {
        if (chat_persist_collect(&p->lanes[i], 1) != 0) {
            rc = -1;
        }
    }

    return rc;
}


static void *
chat_persist_writer(void *data)
{
    const char            *why;
    sigset_t               set;
    chat_persist_lane_t   *l = data;
    chat_persist_batch_t  *b;

    /* signals are for the main thread */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    for ( ;; ) {
        pthread_mutex_lock(&l->lock);

        while (!l->quit && l->job_state != CHAT_JOB_QUEUED) {
            pthread_cond_wait(&l->cond, &l->lock);
        }

        if (l->job_state != CHAT_JOB_QUEUED) {
            pthread_mutex_unlock(&l->lock);
            return NULL;
        }

        b = l->job;
        why = l->job_why;
        pthread_mutex_unlock(&l->lock);

        chat_persist_write_batch(l, b, why);

        pthread_mutex_lock(&l->lock);
        l->job_state = CHAT_JOB_DONE;
        pthread_cond_broadcast(&l->cond);
        pthread_mutex_unlock(&l->lock);
    }
}


/*
 * In the writer: the batch in one transaction, again and again until it
 * is written or deadline passes (0: none), or a second signal or a fatal
 * error gives it up.  b->rc 0 or -1.
 */

static void
chat_persist_write_batch(chat_persist_lane_t *l, chat_persist_batch_t *b,
    const char *why)
{
    int                    attempt, delay;
    char                   q[512];
    int64_t                start, deadline;
    chat_pg_rc_e           rc;
    chat_persist_t        *p = l->p;

    start = chat_worker_now();
    delay = p->k.conf->retry_min;

    for (attempt = 1; ; attempt++) {
        memset(&b->res, 0, sizeof(b->res));

        if (b->per_record) {
            rc = chat_persist_write_each(l, b, &b->res);

        } else {
            rc = chat_persist_write(l, b->msgs.data, b->msgs.len,
                                    b->rcpts.data, b->rcpts.len, b->sweep,
                                    &b->res);
        }

        if (rc == CHAT_PG_OK) {
            break;
        }

        if (rc == CHAT_PG_DATA && !b->per_record) {
            chat_log(CHAT_LOG_WARN, "batch_refused", "records=%d error=%s "
                     "action=one_record_per_transaction", b->nrecs,
                     chat_log_quote(l->pg_error, q, sizeof(q)));
            b->per_record = 1;
            continue;
        }

        pthread_mutex_lock(&l->lock);
        deadline = l->job_deadline;
        pthread_mutex_unlock(&l->lock);

        if (p->k.fatal || chat_worker_stop >= 2
            || (deadline && chat_worker_now() >= deadline))
        {
            chat_log(CHAT_LOG_WARN, "batch_abandoned", "lane=%d records=%d "
                     "why=%s attempts=%d error=%s", l->index, b->nrecs, why,
                     attempt,
                     chat_log_quote(l->pg_error, q, sizeof(q)));
            b->rc = -1;
            b->attempts = attempt;
            return;
        }

        if (b->nrecs == 0) {
            /* a sweep: the next one will do */
            chat_log(CHAT_LOG_WARN, "sweep_failed", "error=%s",
                     chat_log_quote(l->pg_error, q, sizeof(q)));
            break;
        }

        chat_log(CHAT_LOG_WARN, "pg_retry", "lane=%d records=%d attempt=%d "
                 "delay_ms=%d error=%s", l->index, b->nrecs, attempt, delay,
                 chat_log_quote(l->pg_error, q, sizeof(q)));

        chat_worker_sleep(delay, 2);
        delay = delay * 2 > p->k.conf->retry_max ? p->k.conf->retry_max
                                               : delay * 2;
    }

    b->rc = 0;
    b->attempts = attempt;
    b->write_ms = chat_worker_now() - start;
}


static void
chat_persist_tighten(chat_persist_lane_t *l, int64_t deadline)
{
    if (deadline == 0) {
        return;
    }

    pthread_mutex_lock(&l->lock);

    if (l->job_state == CHAT_JOB_QUEUED
        && (l->job_deadline == 0 || deadline < l->job_deadline))
    {
        l->job_deadline = deadline;
    }

    pthread_mutex_unlock(&l->lock);
}


/* in the main thread: the first signal starts the drain and bounds it */

static void
chat_persist_stopping(chat_persist_t *p)
{
    int  i, n;

    if (chat_worker_stop == 0) {
        return;
    }

    if (p->stop_at == 0) {
        p->stop_at = chat_worker_now() + p->k.conf->drain_timeout;
        for (i = 0, n = 0; i < p->nlanes; i++) {
            n += p->lanes[i].cur->nrecs;
        }

        chat_log(CHAT_LOG_INFO, "draining", "timeout_ms=%d records=%d",
                 p->k.conf->drain_timeout, n);
    }

    for (i = 0; i < p->nlanes; i++) {
        chat_persist_tighten(&p->lanes[i],
                             p->stop_at + CHAT_PERSIST_STOP_GRACE);
    }
}


/* one transaction; CHAT_PG_OK or what went wrong, in l->pg_error */

static chat_pg_rc_e
chat_persist_write(chat_persist_lane_t *l, const char *msgs, size_t mlen,
    const char *rcpts, size_t rlen, int sweep, chat_persist_result_t *res)
{
    PGresult      *r;
    const char    *param;
    chat_pg_rc_e   rc;

    if (l->pg == NULL && chat_persist_connect(l) != 0) {
        return CHAT_PG_RETRY;
    }

    rc = chat_persist_exec(l, PQexec(l->pg, "BEGIN"), PGRES_COMMAND_OK);
    if (rc != CHAT_PG_OK) {
        return rc;
    }

    if (mlen) {
        rc = chat_persist_copy(l, "COPY chat_persist_in_msgs FROM STDIN",
                               msgs, mlen);
        if (rc != CHAT_PG_OK) {
            return rc;
        }
    }

    if (rlen) {
        rc = chat_persist_copy(l, "COPY chat_persist_in_rcpts FROM STDIN",
                               rcpts, rlen);
        if (rc != CHAT_PG_OK) {
            return rc;
        }
    }

    param = sweep ? "t" : "f";

    r = PQexecParams(l->pg, "SELECT stored, duplicates, resequenced, "
                     "receipts, pending FROM chat_persist_apply($1)", 1,
                     NULL, &param, NULL, NULL, 0);

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        res->stored += atoi(PQgetvalue(r, 0, 0));
        res->duplicates += atoi(PQgetvalue(r, 0, 1));
        res->resequenced += atoi(PQgetvalue(r, 0, 2));
        res->receipts += atoi(PQgetvalue(r, 0, 3));
        res->pending += atoi(PQgetvalue(r, 0, 4));
    }

    rc = chat_persist_exec(l, r, PGRES_TUPLES_OK);
    if (rc != CHAT_PG_OK) {
        return rc;
    }

    return chat_persist_exec(l, PQexec(l->pg, "COMMIT"), PGRES_COMMAND_OK);
}


/*
 * The batch one record per transaction, after the database refused it
 * whole: a record it refuses as data becomes a dead letter, the others are
 * written (again: idempotent).
 */

static chat_pg_rc_e
chat_persist_write_each(chat_persist_lane_t *l, chat_persist_batch_t *b,
    chat_persist_result_t *res)
{
    int                  i;
    char                 reason[600];
    chat_pg_rc_e         rc;
    chat_persist_rec_t  *rec;

    for (i = 0; i < b->nrecs; i++) {
        rec = &b->recs[i];

        if (rec->kind == CHAT_PERSIST_MSG) {
            rc = chat_persist_write(l, b->msgs.data + rec->row, rec->row_len,
                                    NULL, 0, 0, res);

        } else if (rec->kind == CHAT_PERSIST_RCPT) {
            rc = chat_persist_write(l, NULL, 0, b->rcpts.data + rec->row,
                                    rec->row_len, 0, res);

        } else {
            continue;
        }

        if (rc == CHAT_PG_DATA) {
            snprintf(reason, sizeof(reason), "postgres: %s", l->pg_error);
            chat_persist_dead_letter(l->p, b, rec, reason);
            continue;
        }

        if (rc != CHAT_PG_OK) {
            return rc;
        }
    }

    return CHAT_PG_OK;
}
static chat_pg_rc_e
chat_persist_copy(chat_persist_lane_t *l, const char *sql, const char *data,
    size_t len)
{
    chat_pg_rc_e  rc;

    rc = chat_persist_exec(l, PQexec(l->pg, sql), PGRES_COPY_IN);
    if (rc != CHAT_PG_OK) {
        return rc;
    }

    if (PQputCopyData(l->pg, data, (int) len) != 1
        || PQputCopyEnd(l->pg, NULL) != 1)
    {
        return chat_persist_exec(l, NULL, PGRES_COMMAND_OK);
    }

    return chat_persist_exec(l, PQgetResult(l->pg), PGRES_COMMAND_OK);
}


/*
 * Checks (and clears) a result.  On failure: the reason in l->pg_error, the
 * transaction rolled back, the connection dropped when it is broken;
 * CHAT_PG_DATA for SQLSTATE classes 22 (data exception) and 23 (integrity
 * constraint), which retrying cannot cure.
 */

static chat_pg_rc_e
chat_persist_exec(chat_persist_lane_t *l, PGresult *res, ExecStatusType want)
{
    return chat_pg_exec(&l->pg, res, want, l->pg_error, sizeof(l->pg_error));
}


static int
chat_persist_connect(chat_persist_lane_t *l)
{
    l->pg = chat_pg_connect(l->p->k.conf->pg_dsn, "chat-worker persist",
                            "SELECT chat_persist_prepare()", l->pg_error,
                            sizeof(l->pg_error));

    return l->pg ? 0 : -1;
}


static void
chat_persist_reset(chat_persist_batch_t *b)
{
    chat_copy_reset(&b->msgs, CHAT_PERSIST_KEEP_BUFFER);
    chat_copy_reset(&b->rcpts, CHAT_PERSIST_KEEP_BUFFER);
    chat_copy_reset(&b->orig, CHAT_PERSIST_KEEP_BUFFER);

    b->nrecs = 0;
    b->nmsgs = 0;
    b->nrcpts = 0;
    b->ndlq = 0;
    b->sweep = 0;
    b->per_record = 0;
    b->rc = 0;
    b->attempts = 0;
    b->write_ms = 0;

    if (b->offsets->cnt) {
        rd_kafka_topic_partition_list_destroy(b->offsets);
        b->offsets = rd_kafka_topic_partition_list_new(16);
    }
}


static void
chat_persist_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    int              i;
    char             buf[1024];
    chat_persist_t  *p = opaque;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        chat_log(CHAT_LOG_INFO, "assigned", "partitions=%s",
                 chat_kafka_parts(parts, buf, sizeof(buf)));

    } else {
        chat_log(CHAT_LOG_INFO, "revoked", "partitions=%s",
                 chat_kafka_parts(parts, buf, sizeof(buf)));

        /* the batches belong to these partitions' current owner: us */
        (void) chat_persist_sync(p, chat_worker_now()
                                    + CHAT_PERSIST_REVOKE_GRACE, "revoke");

        /*
         * what was given up is read again from the committed offsets by
         * whoever gets the partitions, us included
         */
        for (i = 0; i < p->nlanes; i++) {
            p->lanes[i].given_up = 0;
        }
    }

    chat_kafka_assign(&p->k, rk, err, parts);
}


