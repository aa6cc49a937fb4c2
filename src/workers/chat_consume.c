
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker: the consume loop of the consuming roles, see
 * chat_consume.h.
 */


#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_consume.h"
#include "chat_metrics.h"


#define CHAT_CONSUME_REVOKE_GRACE   30000   /* ms to write before revoke */
#define CHAT_CONSUME_STOP_GRACE     15000   /* ms to write after a drain */


static int chat_consume_init(chat_consume_t *c, chat_worker_conf_t *conf,
    const chat_consume_role_t *role);
static int chat_consume_batch_init(chat_consume_t *c,
    chat_consume_batch_t *b, int size);
static void chat_consume_done(chat_consume_t *c);
static void chat_consume_loop(chat_consume_t *c);
static void chat_consume_record(chat_consume_t *c, rd_kafka_message_t *m);
static int chat_consume_submit(chat_consume_lane_t *l, int64_t deadline,
    const char *why, int sweep);
static int chat_consume_collect(chat_consume_lane_t *l, int wait);
static int chat_consume_sync(chat_consume_t *c, int64_t deadline,
    const char *why);
static void *chat_consume_writer(void *data);
static void chat_consume_write_batch(chat_consume_lane_t *l,
    chat_consume_batch_t *b, const char *why);
static void chat_consume_tighten(chat_consume_lane_t *l, int64_t deadline);
static void chat_consume_stopping(chat_consume_t *c);
static void chat_consume_reset(chat_consume_t *c, chat_consume_batch_t *b);
static void chat_consume_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *parts, void *opaque);


int
chat_consume_main(chat_worker_conf_t *conf, const chat_consume_role_t *role)
{
    int              rc;
    chat_consume_t  *c;

    c = calloc(1, sizeof(chat_consume_t));
    if (c == NULL) {
        chat_log(CHAT_LOG_ERROR, "no_memory", NULL);
        return 1;
    }

    if (chat_consume_init(c, conf, role) != 0) {
        chat_consume_done(c);
        free(c);
        return 1;
    }

    chat_consume_loop(c);

    rc = c->k.fatal ? 1 : 0;

    chat_metrics_set(CHAT_WM_RECORDS, c->total_records);
    chat_metrics_set(CHAT_WM_WRITTEN, c->total_written);
    chat_metrics_tick(conf, role->written, c->k.consumer, 1);

    chat_consume_done(c);

    chat_log(CHAT_LOG_INFO, "stopped", "records=%lld %s=%lld exit=%d",
             (long long) c->total_records, role->written,
             (long long) c->total_written, rc);

    free(c);

    return rc;
}


static int
chat_consume_init(chat_consume_t *c, chat_worker_conf_t *conf,
    const chat_consume_role_t *role)
{
    int                   i;
    char                  q[512], names[512], writers[32];
    size_t                len;
    const char           *topics[8];
    chat_consume_lane_t  *l;

    c->k.conf = conf;
    c->role = role;
    c->nlanes = role->lanes ? conf->writers : 1;

    for (i = 0; i < c->nlanes; i++) {
        l = &c->lanes[i];
        l->c = c;
        l->index = i;
        l->cur = &l->batches[0];
        pthread_mutex_init(&l->lock, NULL);
        pthread_cond_init(&l->cond, NULL);

        if (role->lanes) {
            snprintf(l->tag, sizeof(l->tag), "lane=%d ", i);
        }

        if (chat_consume_batch_init(c, &l->batches[0], conf->batch_size)
            != 0
            || chat_consume_batch_init(c, &l->batches[1], conf->batch_size)
               != 0)
        {
            chat_log(CHAT_LOG_ERROR, "no_memory", NULL);
            return -1;
        }
    }

    memset(topics, 0, sizeof(topics));
    role->topics(conf, topics);

    if (chat_kafka_open(&c->k, conf, topics, chat_consume_rebalance, c)
        != 0)
    {
        return -1;
    }

    for (i = 0, len = 0, names[0] = '\0'; topics[i]; i++) {
        len += snprintf(names + len, sizeof(names) - len, "%s%s",
                        i ? "," : "", topics[i]);
        if (len >= sizeof(names)) {
            break;
        }
    }

    writers[0] = '\0';

    if (role->lanes) {
        snprintf(writers, sizeof(writers), "writers=%d ", conf->writers);
    }

    chat_log(CHAT_LOG_INFO, "started",
             "brokers=%s group=%s topics=%s dlq=%s batch_size=%d "
             "batch_wait_ms=%d %slibrdkafka=%s",
             chat_log_quote(conf->brokers, q, sizeof(q)), conf->group,
             names, conf->topic_dlq, conf->batch_size, conf->batch_wait,
             writers, rd_kafka_version_str());

    for (i = 0; i < c->nlanes; i++) {
        l = &c->lanes[i];

        /*
         * before the writer runs: from then on the connection is its own;
         * when it fails, the first batch tries again
         */
        (void) chat_consume_pg(l);

        if (pthread_create(&l->writer, NULL, chat_consume_writer, l) != 0) {
            chat_log(CHAT_LOG_ERROR, "thread", "error=%s", strerror(errno));
            return -1;
        }

        l->writer_up = 1;
    }

    c->next_sweep = chat_worker_now() + conf->sweep_interval;

    return 0;
}


static int
chat_consume_batch_init(chat_consume_t *c, chat_consume_batch_t *b, int size)
{
    b->offsets = rd_kafka_topic_partition_list_new(16);

    if (b->offsets == NULL || c->role->batch_init(b, size) != 0) {
        return -1;
    }

    return 0;
}


static void
chat_consume_done(chat_consume_t *c)
{
    int                   i, j;
    chat_consume_lane_t  *l;

    if (c->k.consumer) {
        /* a batch not handed over by now is read again by the next owner */
        for (i = 0; i < c->nlanes; i++) {
            l = &c->lanes[i];

            if (l->cur->nrecs) {
                chat_log(CHAT_LOG_WARN, "batch_abandoned", "%srecords=%d "
                         "why=exit", l->tag, l->cur->nrecs);
            }

            chat_consume_reset(c, l->cur);
        }

        /* revoking collects the batches still with the writers, if any */
        chat_kafka_close(&c->k);
    }

    for (i = 0; i < c->nlanes; i++) {
        l = &c->lanes[i];

        if (l->writer_up) {
            (void) chat_consume_collect(l, 1);

            pthread_mutex_lock(&l->lock);
            l->quit = 1;
            pthread_cond_broadcast(&l->cond);
            pthread_mutex_unlock(&l->lock);

            pthread_join(l->writer, NULL);
            l->writer_up = 0;
        }
    }

    chat_kafka_done(&c->k);

    for (i = 0; i < c->nlanes; i++) {
        l = &c->lanes[i];

        if (l->pg) {
            PQfinish(l->pg);
        }

        for (j = 0; j < 2; j++) {
            if (l->batches[j].offsets) {
                rd_kafka_topic_partition_list_destroy(l->batches[j].offsets);
            }

            c->role->batch_free(&l->batches[j]);
        }

        pthread_cond_destroy(&l->cond);
        pthread_mutex_destroy(&l->lock);
    }
}


static void
chat_consume_loop(chat_consume_t *c)
{
    int                    i, timeout, t, busy;
    int64_t                now;
    rd_kafka_message_t    *m;
    chat_consume_batch_t  *b;
    chat_consume_lane_t   *l;

    for ( ;; ) {
        now = chat_worker_now();

        chat_consume_stopping(c);

        if (c->k.fatal || chat_worker_stop >= 2) {
            return;
        }

        if (c->stop_at && (now >= c->stop_at || chat_kafka_drained(&c->k))) {
            if (now >= c->stop_at) {
                chat_log(CHAT_LOG_WARN, "drain_timeout", NULL);
            }

            (void) chat_consume_sync(c, (now > c->stop_at ? now : c->stop_at)
                                        + CHAT_CONSUME_STOP_GRACE, "stop");
            return;
        }

        /* written batches get their offsets committed without delay */
        timeout = 500;

        for (i = 0; i < c->nlanes; i++) {
            l = &c->lanes[i];
            (void) chat_consume_collect(l, 0);

            if (l->cur->nrecs) {
                t = (int) (l->cur->deadline - now);
                t = t < 0 ? 0 : t;
                timeout = t < timeout ? t : timeout;
            }
        }

        if (c->stop_at && timeout > 100) {
            timeout = 100;
        }

        m = rd_kafka_consumer_poll(c->k.consumer, timeout);

        if (m) {
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                chat_kafka_eof(&c->k, m, 1);

            } else if (m->err) {
                chat_log(CHAT_LOG_WARN, "consume_error", "error=%s",
                         rd_kafka_message_errstr(m));
                chat_metrics_add(CHAT_WM_ERRORS, 1);

            } else {
                chat_consume_record(c, m);
                chat_kafka_eof(&c->k, m, 0);
            }

            rd_kafka_message_destroy(m);
        }

        rd_kafka_poll(c->k.dlq, 0);

        chat_metrics_set(CHAT_WM_RECORDS, c->total_records);
        chat_metrics_set(CHAT_WM_WRITTEN, c->total_written);
        chat_metrics_tick(c->k.conf, c->role->written, c->k.consumer, 0);

        now = chat_worker_now();
        busy = 0;

        for (i = 0; i < c->nlanes; i++) {
            l = &c->lanes[i];
            b = l->cur;
            busy |= b->nrecs;

            if (b->nrecs >= c->k.conf->batch_size
                || (b->nrecs && now >= b->deadline))
            {
                (void) chat_consume_submit(l, c->stop_at
                                              ? c->stop_at
                                                + CHAT_CONSUME_STOP_GRACE
                                              : 0, "batch", 0);
            }
        }

        if (c->role->sweep && !busy && now >= c->next_sweep) {
            /* with nothing else to do: the role's periodic work */
            c->next_sweep = now + c->k.conf->sweep_interval;
            (void) chat_consume_submit(&c->lanes[0], 0, "sweep", 1);
        }
    }
}


/*
 * One record into the batch of its partition's lane: the same partition
 * number, the same lane, whatever the topic
 */

static void
chat_consume_record(chat_consume_t *c, rd_kafka_message_t *m)
{
    chat_consume_batch_t  *b;

    b = c->lanes[(m->partition < 0 ? 0 : m->partition) % c->nlanes].cur;

    chat_kafka_position(b->offsets, rd_kafka_topic_name(m->rkt), m);

    if (b->nrecs == 0) {
        b->deadline = chat_worker_now() + c->k.conf->batch_wait;
    }

    b->nrecs++;
    c->total_records++;

    c->role->record(c, b, m);
}


/*
 * Hands the lane's current batch to its writer (sweep: also when it is
 * empty, for the role's periodic work), once the one before it is written
 * and committed.  0 when handed over (or nothing to do), -1 when the batch
 * was dropped because the one before it was given up.
 */

static int
chat_consume_submit(chat_consume_lane_t *l, int64_t deadline,
    const char *why, int sweep)
{
    chat_consume_t        *c = l->c;
    chat_consume_batch_t  *b;

    /* the batch still with the writer may not take longer than this one */
    chat_consume_tighten(l, deadline);

    if (chat_consume_collect(l, 1) != 0 || l->given_up || !l->writer_up) {
        if (l->cur->nrecs) {
            chat_log(CHAT_LOG_WARN, "batch_abandoned", "%srecords=%d "
                     "why=%s reason=the_batch_before_it_was_given_up",
                     l->tag, l->cur->nrecs, why);
        }

        chat_consume_reset(c, l->cur);
        return -1;
    }

    b = l->cur;

    if (b->nrecs == 0 && !sweep) {
        return 0;
    }

    if (c->role->sweep && !sweep && l->index == 0
        && chat_worker_now() >= c->next_sweep)
    {
        sweep = 1;
        c->next_sweep = chat_worker_now() + c->k.conf->sweep_interval;
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
chat_consume_collect(chat_consume_lane_t *l, int wait)
{
    int                    rc;
    char                   q[512];
    struct timespec        ts;
    chat_consume_t        *c = l->c;
    chat_consume_batch_t  *b;
    rd_kafka_resp_err_t    err;

    if (!l->writer_up) {
        return 0;
    }

    pthread_mutex_lock(&l->lock);

    while (wait && l->job_state == CHAT_JOB_QUEUED) {
        /* delivery reports of dead letters are served meanwhile */
        pthread_mutex_unlock(&l->lock);
        rd_kafka_poll(c->k.dlq, 0);
        chat_consume_stopping(c);
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

    if (rc == 0 && b->nrecs && c->k.conf->failpoint_after_commit > 0) {
        chat_log(CHAT_LOG_WARN, "failpoint", "name=after_pg_commit "
                 "sleep_ms=%d records=%d", c->k.conf->failpoint_after_commit,
                 b->nrecs);
        chat_worker_sleep(c->k.conf->failpoint_after_commit, 2);
    }

    /* dead letters of this batch must be in Kafka before its offsets */
    while (rc == 0 && rd_kafka_outq_len(c->k.dlq) > 0) {
        (void) rd_kafka_flush(c->k.dlq, 500);

        chat_consume_stopping(c);

        if (c->k.dlq_failed || c->k.fatal || chat_worker_stop >= 2
            || (l->job_deadline && chat_worker_now() >= l->job_deadline))
        {
            chat_log(CHAT_LOG_WARN, "batch_abandoned", "%srecords=%d "
                     "why=%s error=dead_letters_not_delivered", l->tag,
                     b->nrecs, l->job_why);
            rc = -1;
        }
    }

    if (rc == 0 && c->k.dlq_failed) {
        c->k.fatal = 1;
        rc = -1;
    }

    if (rc == 0 && b->nrecs) {
        /* PostgreSQL committed the batch: now its offsets, and only them */
        err = rd_kafka_commit(c->k.consumer, b->offsets, 0);
        chat_metrics_add(CHAT_WM_BATCHES, 1);
        chat_metrics_set(CHAT_WM_LAST_BATCH, chat_worker_wall());

        /* a failed commit is no loss: the records are written again */
        c->total_written += c->role->logged(l, b, l->job_why,
                                err ? chat_log_quote(rd_kafka_err2str(err),
                                                     q, sizeof(q))
                                    : "ok");

    } else if (rc == 0) {
        c->total_written += c->role->logged(l, b, l->job_why, NULL);
    }

    if (rc != 0) {
        l->given_up = 1;
        chat_metrics_add(CHAT_WM_ABANDONED, 1);
        chat_metrics_add(CHAT_WM_ERRORS, 1);
    }

    chat_consume_reset(c, b);

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
chat_consume_sync(chat_consume_t *c, int64_t deadline, const char *why)
{
    int  i, rc;

    rc = 0;

    for (i = 0; i < c->nlanes; i++) {
        if (chat_consume_submit(&c->lanes[i], deadline, why, 0) != 0) {
            rc = -1;
        }
    }

    for (i = 0; i < c->nlanes; i++) {
        if (chat_consume_collect(&c->lanes[i], 1) != 0) {
            rc = -1;
        }
    }

    return rc;
}


static void *
chat_consume_writer(void *data)
{
    const char            *why;
    sigset_t               set;
    chat_consume_lane_t   *l = data;
    chat_consume_batch_t  *b;

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

        chat_consume_write_batch(l, b, why);

        pthread_mutex_lock(&l->lock);
        l->job_state = CHAT_JOB_DONE;
        pthread_cond_broadcast(&l->cond);
        pthread_mutex_unlock(&l->lock);
    }
}


/*
 * In the writer: the role's write again and again until it is committed
 * or deadline passes (0: none), or a second signal or a fatal error gives
 * it up.  b->rc 0 or -1.
 */

static void
chat_consume_write_batch(chat_consume_lane_t *l, chat_consume_batch_t *b,
    const char *why)
{
    int              attempt, delay;
    char             q[512];
    int64_t          start, deadline;
    chat_pg_rc_e     rc;
    chat_consume_t  *c = l->c;

    start = chat_worker_now();
    delay = c->k.conf->retry_min;

    for (attempt = 1; ; attempt++) {
        rc = c->role->write(l, b);

        if (rc == CHAT_PG_OK) {
            break;
        }

        if (rc == CHAT_PG_DATA && c->role->refused
            && c->role->refused(l, b))
        {
            continue;
        }

        pthread_mutex_lock(&l->lock);
        deadline = l->job_deadline;
        pthread_mutex_unlock(&l->lock);

        if (c->k.fatal || chat_worker_stop >= 2
            || (deadline && chat_worker_now() >= deadline))
        {
            chat_log(CHAT_LOG_WARN, "batch_abandoned", "%srecords=%d why=%s "
                     "attempts=%d error=%s", l->tag, b->nrecs, why, attempt,
                     chat_log_quote(l->pg_error, q, sizeof(q)));
            b->rc = -1;
            b->attempts = attempt;
            return;
        }

        if (b->nrecs == 0) {
            /* a sweep: the next one will do */
            chat_log(CHAT_LOG_WARN, "sweep_failed", "error=%s",
                     chat_log_quote(l->pg_error, q, sizeof(q)));
            chat_metrics_add(CHAT_WM_ERRORS, 1);
            break;
        }

        /*
         * CHAT_PG_DATA, too, unless the role writes it another way: a
         * row deleted meanwhile or the like
         */
        chat_log(CHAT_LOG_WARN, "pg_retry", "%srecords=%d attempt=%d "
                 "delay_ms=%d error=%s", l->tag, b->nrecs, attempt, delay,
                 chat_log_quote(l->pg_error, q, sizeof(q)));
        chat_metrics_add(CHAT_WM_ERRORS, 1);

        chat_worker_sleep(delay, 2);
        delay = delay * 2 > c->k.conf->retry_max ? c->k.conf->retry_max
                                                 : delay * 2;
    }

    b->rc = 0;
    b->attempts = attempt;
    b->write_ms = chat_worker_now() - start;
}


static void
chat_consume_tighten(chat_consume_lane_t *l, int64_t deadline)
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
chat_consume_stopping(chat_consume_t *c)
{
    int  i, n;

    if (chat_worker_stop == 0) {
        return;
    }

    if (c->stop_at == 0) {
        c->stop_at = chat_worker_now() + c->k.conf->drain_timeout;
        for (i = 0, n = 0; i < c->nlanes; i++) {
            n += c->lanes[i].cur->nrecs;
        }

        chat_log(CHAT_LOG_INFO, "draining", "timeout_ms=%d records=%d",
                 c->k.conf->drain_timeout, n);
    }

    for (i = 0; i < c->nlanes; i++) {
        chat_consume_tighten(&c->lanes[i],
                             c->stop_at + CHAT_CONSUME_STOP_GRACE);
    }
}


static void
chat_consume_reset(chat_consume_t *c, chat_consume_batch_t *b)
{
    c->role->batch_reset(b);

    b->nrecs = 0;
    b->sweep = 0;
    b->rc = 0;
    b->attempts = 0;
    b->write_ms = 0;

    if (b->offsets->cnt) {
        rd_kafka_topic_partition_list_destroy(b->offsets);
        b->offsets = rd_kafka_topic_partition_list_new(16);
    }
}


PGconn *
chat_consume_pg(chat_consume_lane_t *l)
{
    if (l->pg == NULL) {
        l->pg = chat_pg_connect(l->c->k.conf->pg_dsn, l->c->role->app,
                                l->c->role->check, l->pg_error,
                                sizeof(l->pg_error));
    }

    return l->pg;
}


chat_pg_rc_e
chat_consume_exec(chat_consume_lane_t *l, PGresult *res, ExecStatusType want)
{
    return chat_pg_exec(&l->pg, res, want, l->pg_error, sizeof(l->pg_error));
}


static void
chat_consume_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    int              i;
    char             buf[1024];
    chat_consume_t  *c = opaque;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        chat_log(CHAT_LOG_INFO, "assigned", "partitions=%s",
                 chat_kafka_parts(parts, buf, sizeof(buf)));

    } else {
        chat_log(CHAT_LOG_INFO, "revoked", "partitions=%s",
                 chat_kafka_parts(parts, buf, sizeof(buf)));

        /* the batches belong to these partitions' current owner: us */
        (void) chat_consume_sync(c, chat_worker_now()
                                    + CHAT_CONSUME_REVOKE_GRACE, "revoke");

        /*
         * what was given up is read again from the committed offsets by
         * whoever gets the partitions, us included
         */
        for (i = 0; i < c->nlanes; i++) {
            c->lanes[i].given_up = 0;
        }
    }

    chat_kafka_assign(&c->k, rk, err, parts);
}
