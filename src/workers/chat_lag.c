
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker lag: how far consumer group --group is behind, per partition
 * of the message and receipt topics:
 *
 *     topic=chat.messages partition=0 committed=120 end=125 lag=5
 *     ...
 *     total lag=5
 *
 * committed is -1 while the group has committed nothing there (its lag
 * then counts from the start of the log).  It only asks (OffsetFetch,
 * ListOffsets): it does not join the group, so it disturbs no member.
 * For operators, tests and the benchmark.
 *
 * The consuming roles (persist, presence, push, index) measure the same
 * for their own group every --lag-interval ms when it is set, in a thread
 * of their own with a client of its own, and write it to the gateway's
 * Redis for the admin API (GET /admin/lag, docs/OPERATIONS.md):
 *
 *     HSET chat:lag <group> {"group","topics":{"<topic>":{"lag",
 *                            "partitions":[{"partition","committed",
 *                            "end","lag"}]}},"lag","ts"}
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <time.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "chat_kafka.h"
#include "chat_redis.h"
#include "chat_worker.h"


#define CHAT_LAG_TIMEOUT  10000
#define CHAT_LAG_KEY      "chat:lag"


typedef void (*chat_lag_pt)(void *data, const char *topic, int partition,
    int64_t committed, int64_t end, int64_t lag);


typedef struct {
    chat_worker_conf_t   *conf;
    const char           *topics[2];
    int                   ntopics;
    pthread_t             thread;
    volatile int          quit;
    int                   running;
} chat_lag_reporter_t;


static rd_kafka_t *chat_lag_client(chat_worker_conf_t *conf);
static int chat_lag_measure(rd_kafka_t *rk, const char **topics,
    int ntopics, chat_lag_pt handler, void *data, int64_t *total);
static int chat_lag_partitions(rd_kafka_t *rk, const char *topic,
    rd_kafka_topic_partition_list_t *list);
static void chat_lag_print(void *data, const char *topic, int partition,
    int64_t committed, int64_t end, int64_t lag);
static void chat_lag_add(void *data, const char *topic, int partition,
    int64_t committed, int64_t end, int64_t lag);
static void *chat_lag_reporter(void *data);


static chat_lag_reporter_t  chat_lag_rep;


int
chat_lag_main(chat_worker_conf_t *conf)
{
    int          rc;
    int64_t      total;
    rd_kafka_t  *rk;
    const char  *topics[2];

    rk = chat_lag_client(conf);
    if (rk == NULL) {
        return 1;
    }

    topics[0] = conf->topic_messages;
    topics[1] = conf->topic_receipts;

    rc = chat_lag_measure(rk, topics, 2, chat_lag_print, NULL, &total);
    if (rc == 0) {
        printf("total lag=%lld\n", (long long) total);
    }

    rd_kafka_destroy(rk);

    return rc == 0 ? 0 : 1;
}


/* a client that only asks (OffsetFetch, ListOffsets) for --group */

static rd_kafka_t *
chat_lag_client(chat_worker_conf_t *conf)
{
    int                i;
    char               err[512], buf[256];
    const char        *name, *value;
    rd_kafka_t        *rk;
    rd_kafka_conf_t   *kc;

    kc = rd_kafka_conf_new();

    /*
     * session.timeout.ms as the consumer's: this client joins no group,
     * but librdkafka refuses a -X max.poll.interval.ms below it (its
     * default is 45 s; scripts/stack passes 30 s)
     */
    for (i = -3; i < conf->nprops; i++) {
        if (i == -3) {
            name = "session.timeout.ms";
            value = CHAT_KAFKA_SESSION_TIMEOUT;

        } else if (i == -2) {
            name = "bootstrap.servers";
            value = conf->brokers;

        } else if (i == -1) {
            name = "group.id";
            value = conf->group;

        } else {
            value = strchr(conf->props[i], '=');
            snprintf(buf, sizeof(buf), "%.*s",
                     (int) (value - conf->props[i]), conf->props[i]);
            name = buf;
            value++;
        }

        if (rd_kafka_conf_set(kc, name, value, err, sizeof(err))
            != RD_KAFKA_CONF_OK)
        {
            fprintf(stderr, "chat-worker lag: %s\n", err);
            rd_kafka_conf_destroy(kc);
            return NULL;
        }
    }

    rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
    if (rk == NULL) {
        fprintf(stderr, "chat-worker lag: %s\n", err);
        rd_kafka_conf_destroy(kc);
        return NULL;
    }

    return rk;
}


/* each partition of the topics to the handler; 0, or -1 (said on stderr) */

static int
chat_lag_measure(rd_kafka_t *rk, const char **topics, int ntopics,
    chat_lag_pt handler, void *data, int64_t *total)
{
    int                               i, rc;
    int64_t                           lo, hi, lag;
    rd_kafka_resp_err_t               e;
    rd_kafka_topic_partition_t       *tp;
    rd_kafka_topic_partition_list_t  *list;

    list = rd_kafka_topic_partition_list_new(32);
    rc = -1;
    *total = 0;

    for (i = 0; i < ntopics; i++) {
        if (chat_lag_partitions(rk, topics[i], list) != 0) {
            goto done;
        }
    }

    e = rd_kafka_committed(rk, list, CHAT_LAG_TIMEOUT);
    if (e) {
        fprintf(stderr, "chat-worker lag: committed offsets: %s\n",
                rd_kafka_err2str(e));
        goto done;
    }

    for (i = 0; i < list->cnt; i++) {
        tp = &list->elems[i];

        e = rd_kafka_query_watermark_offsets(rk, tp->topic, tp->partition,
                                             &lo, &hi, CHAT_LAG_TIMEOUT);
        if (e) {
            fprintf(stderr, "chat-worker lag: %s/%d: %s\n", tp->topic,
                    (int) tp->partition, rd_kafka_err2str(e));
            goto done;
        }

        lag = hi - (tp->offset >= 0 ? tp->offset : lo);

        handler(data, tp->topic, (int) tp->partition,
                tp->offset >= 0 ? tp->offset : -1, hi, lag);

        *total += lag;
    }

    rc = 0;

done:

    rd_kafka_topic_partition_list_destroy(list);

    return rc;
}


static void
chat_lag_print(void *data, const char *topic, int partition,
    int64_t committed, int64_t end, int64_t lag)
{
    (void) data;

    printf("topic=%s partition=%d committed=%lld end=%lld lag=%lld\n",
           topic, partition, (long long) committed, (long long) end,
           (long long) lag);
}


/* the role's group, every --lag-interval, in a thread of its own */

int
chat_lag_report_start(chat_worker_conf_t *conf)
{
    chat_lag_reporter_t  *rep = &chat_lag_rep;

    if (conf->lag_interval <= 0) {
        return 0;
    }

    memset(rep, 0, sizeof(chat_lag_reporter_t));
    rep->conf = conf;

    if (strcmp(conf->role, "persist") == 0) {
        rep->topics[0] = conf->topic_messages;
        rep->topics[1] = conf->topic_receipts;
        rep->ntopics = 2;

    } else if (strcmp(conf->role, "presence") == 0) {
        rep->topics[0] = conf->topic_presence;
        rep->ntopics = 1;

    } else if (strcmp(conf->role, "push") == 0
               || strcmp(conf->role, "index") == 0)
    {
        rep->topics[0] = conf->topic_messages;
        rep->ntopics = 1;

    } else {
        return 0;
    }

    if (pthread_create(&rep->thread, NULL, chat_lag_reporter, rep) != 0) {
        chat_log(CHAT_LOG_ERROR, "lag_report", "error=\"no thread\"");
        return -1;
    }

    rep->running = 1;

    return 0;
}


void
chat_lag_report_stop(void)
{
    chat_lag_reporter_t  *rep = &chat_lag_rep;

    if (!rep->running) {
        return;
    }

    rep->quit = 1;
    (void) pthread_join(rep->thread, NULL);
    rep->running = 0;
}


static void *
chat_lag_reporter(void *data)
{
    chat_lag_reporter_t  *rep = data;

    int                  waited, failed;
    char                *text;
    json_t              *report, *topics;
    int64_t              total;
    rd_kafka_t          *rk;
    chat_redis_t         redis;
    struct timespec      ts;
    chat_worker_conf_t  *conf;

    conf = rep->conf;
    failed = 0;

    rk = chat_lag_client(conf);
    if (rk == NULL) {
        return NULL;
    }

    if (chat_redis_init(&redis, conf->redis, conf->redis_password_file,
                        2000)
        != 0)
    {
        chat_log(CHAT_LOG_ERROR, "lag_report", "error=\"%s\"", redis.err);
        rd_kafka_destroy(rk);
        return NULL;
    }

    while (!rep->quit && !chat_worker_stop) {
        topics = json_object();

        if (topics
            && chat_lag_measure(rk, rep->topics, rep->ntopics, chat_lag_add,
                                topics, &total)
               == 0)
        {
            report = json_pack("{s:s, s:O, s:I, s:I}", "group", conf->group,
                               "topics", topics, "lag", (json_int_t) total,
                               "ts", (json_int_t) chat_worker_wall());
            text = report ? json_dumps(report, JSON_COMPACT) : NULL;

            if (text && chat_redis_hset(&redis, CHAT_LAG_KEY, conf->group,
                                        text)
                        != 0)
            {
                /* once per outage */
                if (!failed++) {
                    chat_log(CHAT_LOG_WARN, "lag_report", "error=\"%s\"",
                             redis.err);
                }

            } else if (text) {
                failed = 0;
            }

            free(text);
            json_decref(report);
        }

        json_decref(topics);

        /* the interval, in steps that notice a stop */
        for (waited = 0; waited < conf->lag_interval && !rep->quit
                         && !chat_worker_stop; waited += 100)
        {
            ts.tv_sec = 0;
            ts.tv_nsec = 100 * 1000000L;
            (void) nanosleep(&ts, NULL);
        }
    }

    chat_redis_free(&redis);
    rd_kafka_destroy(rk);

    return NULL;
}


static void
chat_lag_add(void *data, const char *topic, int partition,
    int64_t committed, int64_t end, int64_t lag)
{
    json_t  *topics = data;

    json_t  *t, *parts;

    t = json_object_get(topics, topic);

    if (t == NULL) {
        t = json_pack("{s:I, s:[]}", "lag", (json_int_t) 0, "partitions");
        if (t == NULL || json_object_set_new(topics, topic, t) != 0) {
            return;
        }
    }

    (void) json_object_set_new(t, "lag",
                               json_integer(json_integer_value(
                                   json_object_get(t, "lag")) + lag));

    parts = json_object_get(t, "partitions");

    (void) json_array_append_new(parts,
                                 json_pack("{s:i, s:I, s:I, s:I}",
                                           "partition", partition,
                                           "committed", (json_int_t) committed,
                                           "end", (json_int_t) end,
                                           "lag", (json_int_t) lag));
}


static int
chat_lag_partitions(rd_kafka_t *rk, const char *topic,
    rd_kafka_topic_partition_list_t *list)
{
    int                            i;
    rd_kafka_topic_t              *rkt;
    rd_kafka_resp_err_t            e;
    const struct rd_kafka_metadata *md;

    rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rkt == NULL) {
        return -1;
    }

    e = rd_kafka_metadata(rk, 0, rkt, &md, CHAT_LAG_TIMEOUT);
    rd_kafka_topic_destroy(rkt);

    if (e) {
        fprintf(stderr, "chat-worker lag: metadata of %s: %s\n", topic,
                rd_kafka_err2str(e));
        return -1;
    }

    if (md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "chat-worker lag: no topic %s\n", topic);
        rd_kafka_metadata_destroy(md);
        return -1;
    }

    for (i = 0; i < md->topics[0].partition_cnt; i++) {
        rd_kafka_topic_partition_list_add(list, topic,
                                          md->topics[0].partitions[i].id);
    }

    rd_kafka_metadata_destroy(md);

    return 0;
}
