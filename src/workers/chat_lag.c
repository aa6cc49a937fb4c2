
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
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "chat_worker.h"


#define CHAT_LAG_TIMEOUT  10000


static int chat_lag_partitions(rd_kafka_t *rk, const char *topic,
    rd_kafka_topic_partition_list_t *list);


int
chat_lag_main(chat_worker_conf_t *conf)
{
    int                               i, rc;
    char                              err[512], buf[256];
    const char                       *name, *value;
    int64_t                           lo, hi, lag, total;
    rd_kafka_t                       *rk;
    rd_kafka_conf_t                  *kc;
    rd_kafka_resp_err_t               e;
    rd_kafka_topic_partition_t       *tp;
    rd_kafka_topic_partition_list_t  *list;

    kc = rd_kafka_conf_new();

    for (i = -2; i < conf->nprops; i++) {
        if (i == -2) {
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
            return 1;
        }
    }

    rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
    if (rk == NULL) {
        fprintf(stderr, "chat-worker lag: %s\n", err);
        rd_kafka_conf_destroy(kc);
        return 1;
    }

    list = rd_kafka_topic_partition_list_new(32);
    rc = 1;

    if (chat_lag_partitions(rk, conf->topic_messages, list) != 0
        || chat_lag_partitions(rk, conf->topic_receipts, list) != 0)
    {
        goto done;
    }

    e = rd_kafka_committed(rk, list, CHAT_LAG_TIMEOUT);
    if (e) {
        fprintf(stderr, "chat-worker lag: committed offsets: %s\n",
                rd_kafka_err2str(e));
        goto done;
    }

    total = 0;

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

        printf("topic=%s partition=%d committed=%lld end=%lld lag=%lld\n",
               tp->topic, (int) tp->partition,
               (long long) (tp->offset >= 0 ? tp->offset : -1),
               (long long) hi, (long long) lag);

        total += lag;
    }

    printf("total lag=%lld\n", (long long) total);
    rc = 0;

done:

    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(rk);

    return rc;
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
