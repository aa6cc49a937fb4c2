
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker push: notifications for users whose devices are all
 * offline, a role of the consume loop (chat_consume.h: batches, lanes,
 * retries, dead letters, rebalance, drain).  docs/PUSH.md has the whole
 * story; in short, per batch (what came within --push-window, the
 * collapse window, or --batch-size messages):
 *
 *   1. the recipients: a one-to-one message's "to"; a group message's
 *      members but its sender who had joined by its ts (one PostgreSQL
 *      query for the batch's groups);
 *   2. runs: the messages to one user in one conversation become one
 *      notification, for the newest of them, with their count;
 *   3. who is online: ZMSCORE chat:presence:live on each user's Redis
 *      server (the gateway's ring), a heartbeat within --presence-ttl;
 *      they get nothing (their devices have the messages);
 *   4. the devices of the others (one query), one notification each,
 *      through its platform's provider (chat_push_send.c); a platform
 *      not configured, or a token its provider could not take, is
 *      dropped and counted;
 *   5. tokens a provider called gone are deleted from devices, the
 *      notifications that kept failing go to --push-dlq-topic;
 *   6. then, and only then, the batch's offsets are committed.
 *
 * A step that fails (PostgreSQL, Redis) makes the loop try the batch
 * again after its backoff, from that step: what was sent is not sent
 * again.  A worker killed mid-batch sends that batch again after its
 * restart (its offsets were not committed); nothing of a committed batch
 * is sent again or lost.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "chat_consume.h"
#include "chat_kafka.h"
#include "chat_metrics.h"
#include "chat_pg.h"
#include "chat_push_resolve.h"
#include "chat_push_send.h"
#include "chat_push_wire.h"
#include "chat_record.h"
#include "chat_worker.h"


#define CHAT_PUSH_CHECK  "SELECT 'devices'::regclass, 'group_members'::regclass"

#define CHAT_PUSH_REMOVE_SQL                                                  \
    "DELETE FROM devices d USING unnest($1::text[], $2::bigint[]) "           \
    "AS x(token, uid) WHERE d.token = x.token AND d.user_id = x.uid"


static void chat_push_topics(chat_worker_conf_t *conf, const char **topics);
static int chat_push_batch_init(chat_consume_batch_t *cb, int size);
static void chat_push_batch_reset(chat_consume_batch_t *cb);
static void chat_push_batch_free(chat_consume_batch_t *cb);
static void chat_push_record(chat_consume_t *c, chat_consume_batch_t *cb,
    rd_kafka_message_t *m);
static chat_pg_rc_e chat_push_write(chat_consume_lane_t *l,
    chat_consume_batch_t *cb);
static int64_t chat_push_logged(chat_consume_lane_t *l,
    chat_consume_batch_t *cb, const char *why, const char *commit);
static int chat_push_lane_open(chat_push_lane_t *pl,
    chat_worker_conf_t *conf);
static void chat_push_lane_close(chat_push_lane_t *pl);
static chat_pg_rc_e chat_push_remove(chat_consume_lane_t *l,
    chat_push_batch_t *b);
static void chat_push_letters(chat_consume_lane_t *l, chat_push_batch_t *b);
static void chat_push_figures(chat_push_batch_t *b);
static int chat_push_stop(void *data);
static int chat_push_i64_cmp(const void *one, const void *two);


static const chat_consume_role_t  chat_push_role = {
    "chat-worker push",
    CHAT_PUSH_CHECK,
    "notifications",
    1,
    0,
    chat_push_topics,
    chat_push_batch_init,
    chat_push_batch_reset,
    chat_push_batch_free,
    chat_push_record,
    chat_push_write,
    NULL,
    chat_push_logged
};


static chat_push_lane_t  chat_push_lanes[CHAT_WORKER_MAX_WRITERS];


int
chat_push_main(chat_worker_conf_t *conf)
{
    int   i, rc;
    char  q[512];

    /* the role's dead letters (notifications, unreadable records) */
    free(conf->topic_dlq);
    conf->topic_dlq = strdup(conf->topic_push_dlq);
    if (conf->topic_dlq == NULL) {
        return 1;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        chat_log(CHAT_LOG_ERROR, "curl", "error=\"curl_global_init failed\"");
        return 1;
    }

    if (conf->webhook_url) {
        if (strncmp(conf->webhook_url, "http://", 7) != 0
            && strncmp(conf->webhook_url, "https://", 8) != 0)
        {
            chat_log(CHAT_LOG_ERROR, "config", "error=\"--webhook-url must "
                     "be an http:// or https:// URL\"");
            curl_global_cleanup();
            return 1;
        }

        chat_log(CHAT_LOG_INFO, "webhook", "url=%s",
                 chat_log_quote(conf->webhook_url, q, sizeof(q)));

    } else {
        chat_log(CHAT_LOG_WARN, "webhook", "url=none note=\"no "
                 "CHAT_PUSH_WEBHOOK_URL or --webhook-url: notifications "
                 "for webhook devices are dropped\"");
    }

    /* each lane's own clients; a bad option stops the worker here */
    for (i = 0; i < conf->writers; i++) {
        if (chat_push_lane_open(&chat_push_lanes[i], conf) != 0) {
            for (i = 0; i < CHAT_WORKER_MAX_WRITERS; i++) {
                chat_push_lane_close(&chat_push_lanes[i]);
            }

            curl_global_cleanup();
            return 1;
        }
    }

    rc = chat_consume_main(conf, &chat_push_role);

    for (i = 0; i < CHAT_WORKER_MAX_WRITERS; i++) {
        chat_push_lane_close(&chat_push_lanes[i]);
    }

    curl_global_cleanup();

    return rc;
}


static int
chat_push_lane_open(chat_push_lane_t *pl, chat_worker_conf_t *conf)
{
    char  err[512], q[600];

    memset(pl, 0, sizeof(chat_push_lane_t));

    if (chat_redis_init(&pl->redis, conf->redis, conf->redis_password_file,
                        conf->push_timeout < 5000 ? conf->push_timeout
                                                  : 5000)
        != 0)
    {
        chat_log(CHAT_LOG_ERROR, "config", "error=%s",
                 chat_log_quote(pl->redis.err, q, sizeof(q)));
        chat_redis_free(&pl->redis);
        return -1;
    }

    if (conf->fcm_credentials) {
        if (chat_push_fcm_open(&pl->fcm, conf->fcm_credentials,
                               conf->fcm_endpoint, conf->fcm_token_uri, err,
                               sizeof(err))
            != 0)
        {
            chat_log(CHAT_LOG_ERROR, "config", "error=%s",
                     chat_log_quote(err, q, sizeof(q)));
            chat_push_lane_close(pl);
            return -1;
        }

        pl->has_fcm = 1;
    }

    if (conf->apns_key || conf->apns_key_id || conf->apns_team_id
        || conf->apns_topic)
    {
        if (chat_push_apns_open(&pl->apns, conf->apns_key, conf->apns_key_id,
                                conf->apns_team_id, conf->apns_topic,
                                conf->apns_endpoint, err, sizeof(err))
            != 0)
        {
            chat_log(CHAT_LOG_ERROR, "config", "error=%s",
                     chat_log_quote(err, q, sizeof(q)));
            chat_push_lane_close(pl);
            return -1;
        }

        pl->has_apns = 1;
    }

    if (chat_push_sender_init(&pl->sender, conf,
                              pl->has_fcm ? &pl->fcm : NULL,
                              pl->has_apns ? &pl->apns : NULL)
        != 0)
    {
        chat_log(CHAT_LOG_ERROR, "curl", "error=\"curl_multi_init failed\"");
        chat_push_lane_close(pl);
        return -1;
    }

    pl->ready = 1;

    return 0;
}


static void
chat_push_lane_close(chat_push_lane_t *pl)
{
    chat_push_sender_free(&pl->sender);

    if (pl->has_fcm) {
        chat_push_fcm_close(&pl->fcm);
    }

    if (pl->has_apns) {
        chat_push_apns_close(&pl->apns);
    }

    chat_redis_free(&pl->redis);
    memset(pl, 0, sizeof(chat_push_lane_t));
}


static void
chat_push_topics(chat_worker_conf_t *conf, const char **topics)
{
    topics[0] = conf->topic_messages;
    topics[1] = NULL;
}


static int
chat_push_batch_init(chat_consume_batch_t *cb, int size)
{
    chat_push_batch_t  *b;

    b = calloc(1, sizeof(chat_push_batch_t));
    if (b == NULL) {
        return -1;
    }

    cb->data = b;
    b->size = size;
    b->msgs = calloc(size, sizeof(chat_push_msg_t));

    return b->msgs ? 0 : -1;
}


static void
chat_push_batch_reset(chat_consume_batch_t *cb)
{
    int                 i;
    chat_push_job_t    *j;
    chat_push_batch_t  *b = cb->data;

    for (i = 0; i < b->njobs; i++) {
        j = &b->jobs[i];
        free((char *) j->note.token);
        free(j->body);
    }

    b->nmsgs = 0;
    b->ndlq = 0;
    b->nskipped = 0;
    b->nold = 0;
    b->resolved = 0;
    b->nruns = 0;
    b->recipients = 0;
    b->online = 0;
    b->njobs = 0;
    b->removed = 0;
    b->lettered = 0;
    b->sent = 0;
    b->dead = 0;
    b->dropped = 0;
    b->invalid = 0;
    b->retried = 0;
    b->p50 = 0;
    b->p99 = 0;
    b->resolve_ms = 0;
    b->send_ms = 0;
}


static void
chat_push_batch_free(chat_consume_batch_t *cb)
{
    chat_push_batch_t  *b = cb->data;

    if (b == NULL) {
        return;
    }

    chat_push_batch_reset(cb);

    free(b->msgs);
    free(b->runs);
    free(b->jobs);
    free(b->jobp);
    free(b);

    cb->data = NULL;
}


/* one record of chat.messages into the batch, or a dead letter */

static void
chat_push_record(chat_consume_t *c, chat_consume_batch_t *cb,
    rd_kafka_message_t *m)
{
    char                err[256];
    json_t             *json;
    chat_record_t       rec;
    chat_push_msg_t    *msg;
    chat_push_batch_t  *b = cb->data;

    json = chat_record_parse(m->key, m->key ? m->key_len : 0, m->payload,
                             m->payload ? m->len : 0, &rec, err,
                             sizeof(err));
    if (json == NULL) {
        chat_kafka_dead_letter(&c->k, rd_kafka_topic_name(m->rkt),
                               m->partition, m->offset, m->key,
                               m->key ? m->key_len : 0, m->payload,
                               m->payload ? m->len : 0, err);
        b->ndlq++;
        return;
    }

    if (rec.type != CHAT_RECORD_MESSAGE || b->nmsgs == b->size) {
        json_decref(json);
        b->nskipped++;
        return;
    }

    /*
     * A new group reads the topic from its start, and a worker that was
     * down long reads what it missed: a notification of an old message
     * wakes nobody usefully, the app syncs when it opens.
     */
    if (c->k.conf->push_max_age
        && rec.ts < chat_worker_wall() - c->k.conf->push_max_age)
    {
        json_decref(json);
        b->nold++;
        return;
    }

    msg = &b->msgs[b->nmsgs++];

    memcpy(msg->id, rec.id, sizeof(msg->id));
    memcpy(msg->conv, rec.conv, sizeof(msg->conv));
    msg->seq = rec.seq;
    msg->from = rec.from;
    msg->to = rec.to;
    msg->group = rec.group;
    msg->ts = rec.ts;
    msg->e2e = rec.e2e;

    /* never the body of an end-to-end encrypted message */
    msg->has_preview = chat_push_preview(rec.body, rec.body_len,
                                         rec.media != NULL, rec.e2e,
                                         msg->preview)
                       != NULL;

    json_decref(json);

    chat_log(CHAT_LOG_DEBUG, "record", "partition=%d offset=%lld id=%s",
             (int) m->partition, (long long) m->offset, msg->id);
}


/*
 * In the writer: the steps of the top, each once (what was done before a
 * failure is not done again when the loop retries the batch).
 */

static chat_pg_rc_e
chat_push_write(chat_consume_lane_t *l, chat_consume_batch_t *cb)
{
    int64_t             t;
    chat_pg_rc_e        rc;
    chat_push_lane_t   *pl;
    chat_push_batch_t  *b = cb->data;

    if (b->nmsgs == 0) {
        return CHAT_PG_OK;
    }

    pl = &chat_push_lanes[l->index];

    t = chat_worker_now();

    if (!b->resolved) {
        rc = chat_push_resolve(l, pl, b);
        if (rc != CHAT_PG_OK) {
            return rc;
        }

        b->resolved = 1;
        b->resolve_ms = chat_worker_now() - t;
        t = chat_worker_now();
    }

    if (chat_push_send(&pl->sender, b->jobp, b->njobs, chat_push_stop, l)
        != 0)
    {
        snprintf(l->pg_error, sizeof(l->pg_error), "sending stopped");
        return CHAT_PG_RETRY;
    }

    b->send_ms += chat_worker_now() - t;

    b->retried += pl->sender.retried;

    rc = chat_push_remove(l, b);
    if (rc != CHAT_PG_OK) {
        return rc;
    }

    chat_push_letters(l, b);
    chat_push_figures(b);

    return CHAT_PG_OK;
}


/*
 * The sender gives up what is in flight on a stop now, or when the loop's
 * deadline for this batch passed (a drain's end, a revoke): the batch is
 * then not committed, and read again.
 */

static int
chat_push_stop(void *data)
{
    int64_t               deadline;
    chat_consume_lane_t  *l = data;

    if (chat_worker_stop >= 2 || l->c->k.fatal) {
        return 1;
    }

    pthread_mutex_lock(&l->lock);
    deadline = l->job_deadline;
    pthread_mutex_unlock(&l->lock);

    return deadline && chat_worker_now() >= deadline;
}


/* step 5: the tokens providers called gone, deleted in one statement */

static chat_pg_rc_e
chat_push_remove(chat_consume_lane_t *l, chat_push_batch_t *b)
{
    int               i, n;
    char             *uids, *p;
    int64_t          *users;
    size_t            len;
    PGresult         *r;
    chat_pg_rc_e      rc;
    const char       *params[2];
    chat_push_job_t  *j;

    if (b->removed) {
        return CHAT_PG_OK;
    }

    users = malloc((b->njobs + 1) * sizeof(int64_t));
    len = 3;

    for (i = 0, n = 0; users && i < b->njobs; i++) {
        j = &b->jobs[i];

        if (j->state == CHAT_PUSH_JOB_INVALID) {
            users[n++] = j->note.user_id;
            len += 2 * strlen(j->note.token) + 3;
        }
    }

    if (users && n == 0) {
        free(users);
        b->removed = 1;
        return CHAT_PG_OK;
    }

    uids = users ? chat_push_array(users, n) : NULL;
    free(users);
    p = uids ? malloc(len) : NULL;

    if (p == NULL) {
        free(uids);
        snprintf(l->pg_error, sizeof(l->pg_error), "out of memory");
        return CHAT_PG_RETRY;
    }

    /* a text[] literal: each token quoted, '"' and '\' escaped */
    params[0] = p;
    params[1] = uids;
    *p++ = '{';

    for (i = 0, n = 0; i < b->njobs; i++) {
        const char  *t;

        j = &b->jobs[i];

        if (j->state != CHAT_PUSH_JOB_INVALID) {
            continue;
        }

        if (n++) {
            *p++ = ',';
        }

        *p++ = '"';

        for (t = j->note.token; *t; t++) {
            if (*t == '"' || *t == '\\') {
                *p++ = '\\';
            }

            *p++ = *t;
        }

        *p++ = '"';
    }

    *p++ = '}';
    *p = '\0';

    rc = CHAT_PG_RETRY;

    if (chat_consume_pg(l) != NULL) {
        r = PQexecParams(l->pg, CHAT_PUSH_REMOVE_SQL, 2, NULL, params, NULL,
                         NULL, 0);
        rc = chat_consume_exec(l, r, PGRES_COMMAND_OK);
    }

    if (rc == CHAT_PG_OK) {
        b->removed = 1;
        chat_log(CHAT_LOG_INFO, "devices_removed", "tokens=%d", n);
    }

    free((char *) params[0]);
    free(uids);

    return rc;
}


/* the notifications that kept failing, as the webhook's JSON */

static void
chat_push_letters(chat_consume_lane_t *l, chat_push_batch_t *b)
{
    int               i;
    char             *val;
    chat_push_job_t  *j;

    if (b->lettered) {
        return;
    }

    for (i = 0; i < b->njobs; i++) {
        j = &b->jobs[i];

        if (j->state != CHAT_PUSH_JOB_DEAD) {
            continue;
        }

        val = chat_push_webhook_body(&j->note);
        if (val == NULL) {
            /* without memory the letter is lost; say so */
            chat_log(CHAT_LOG_ERROR, "dead_letter_failed", "message=%s "
                     "error=\"out of memory\"", j->note.message_id);
            l->c->k.fatal = 1;
            continue;
        }

        chat_kafka_dead_letter(&l->c->k, "push", 0, 0, j->note.conv,
                               strlen(j->note.conv), val, strlen(val),
                               j->reason);
        free(val);
    }

    b->lettered = 1;
}


/* the figures of a batch done: counts and send->notification times */

static void
chat_push_figures(chat_push_batch_t *b)
{
    int               i, n;
    int64_t          *lat;
    chat_push_job_t  *j;

    lat = malloc((b->njobs + 1) * sizeof(int64_t));

    for (i = 0, n = 0; i < b->njobs; i++) {
        j = &b->jobs[i];

        switch (j->state) {
        case CHAT_PUSH_JOB_SENT:
            b->sent++;
            if (lat) {
                lat[n++] = j->sent_at - j->note.ts;
            }
            break;
        case CHAT_PUSH_JOB_DEAD:
            b->dead++;
            break;
        case CHAT_PUSH_JOB_INVALID:
            b->invalid++;
            break;
        default:
            b->dropped++;
            break;
        }
    }

    if (lat && n) {
        qsort(lat, n, sizeof(int64_t), chat_push_i64_cmp);
        b->p50 = lat[(n - 1) / 2];
        b->p99 = lat[(n * 99 + 99) / 100 - 1];
    }

    free(lat);
}


static int64_t
chat_push_logged(chat_consume_lane_t *l, chat_consume_batch_t *cb,
    const char *why, const char *commit)
{
    int                 i;
    char                parts[1024], q[256];
    chat_push_job_t    *j;
    chat_push_batch_t  *b = cb->data;

    if (commit == NULL) {
        return 0;
    }

    for (i = 0; i < b->njobs; i++) {
        j = &b->jobs[i];

        if (j->state == CHAT_PUSH_JOB_DROPPED
            || j->state == CHAT_PUSH_JOB_INVALID)
        {
            chat_log(CHAT_LOG_INFO, "dropped", "user=%lld message=%s "
                     "platform=%s reason=%s", (long long) j->note.user_id,
                     j->note.message_id,
                     chat_push_platform_name(j->note.platform),
                     chat_log_quote(j->state == CHAT_PUSH_JOB_INVALID
                                    ? "the provider says the token is gone"
                                    : j->reason, q, sizeof(q)));
        }
    }

    chat_metrics_add(CHAT_WM_NOTIFY_FAILED, b->dead);

    chat_log(strcmp(commit, "ok") ? CHAT_LOG_WARN : CHAT_LOG_INFO, "batch",
             "%swhy=%s records=%d messages=%d recipients=%d online=%d "
             "notifications=%d sent=%d failed=%d retried=%d dropped=%d "
             "invalid=%d dlq=%d old=%d latency_p50_ms=%lld "
             "latency_p99_ms=%lld "
             "resolve_ms=%lld send_ms=%lld attempts=%d ms=%lld commit=%s "
             "offsets=%s", l->tag, why,
             cb->nrecs, b->nmsgs, b->recipients, b->online, b->njobs,
             b->sent, b->dead, b->retried, b->dropped, b->invalid, b->ndlq,
             b->nold, (long long) b->p50, (long long) b->p99,
             (long long) b->resolve_ms, (long long) b->send_ms, cb->attempts,
             (long long) cb->write_ms, commit,
             chat_kafka_parts(cb->offsets, parts, sizeof(parts)));

    return b->sent;
}


static int
chat_push_i64_cmp(const void *one, const void *two)
{
    const int64_t  *a = one, *b = two;

    return *a < *b ? -1 : (*a > *b ? 1 : 0);
}


