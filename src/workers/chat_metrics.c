
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker's metrics file: see chat_metrics.h.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>

#include "chat_metrics.h"


static int64_t  chat_metrics_v[CHAT_WM_N];
static int64_t  chat_metrics_next;
static int64_t  chat_metrics_start;


static int64_t chat_metrics_lag(rd_kafka_t *rk, int *nparts);


void
chat_metrics_add(chat_wm_e m, int64_t n)
{
    (void) __atomic_fetch_add(&chat_metrics_v[m], n, __ATOMIC_RELAXED);
}


void
chat_metrics_set(chat_wm_e m, int64_t v)
{
    __atomic_store_n(&chat_metrics_v[m], v, __ATOMIC_RELAXED);
}


void
chat_metrics_tick(chat_worker_conf_t *conf, const char *written,
    rd_kafka_t *rk, int force)
{
    int       nparts;
    char      tmp[4096], labels[512];
    FILE     *f;
    int64_t   now, lag, v[CHAT_WM_N];
    unsigned  i;

    if (conf->metrics_file == NULL) {
        return;
    }

    now = chat_worker_now();

    if (chat_metrics_start == 0) {
        chat_metrics_start = chat_worker_wall();
    }

    if (!force && now < chat_metrics_next) {
        return;
    }

    chat_metrics_next = now + conf->metrics_interval;

    for (i = 0; i < CHAT_WM_N; i++) {
        v[i] = __atomic_load_n(&chat_metrics_v[i], __ATOMIC_RELAXED);
    }

    lag = rk ? chat_metrics_lag(rk, &nparts) : -1;

    snprintf(labels, sizeof(labels), "role=\"%s\",group=\"%s\"", conf->role,
             conf->group ? conf->group : "");
    snprintf(tmp, sizeof(tmp), "%s.tmp", conf->metrics_file);

    f = fopen(tmp, "w");
    if (f == NULL) {
        chat_log(CHAT_LOG_WARN, "metrics_failed", "file=%s error=\"%s\"",
                 tmp, strerror(errno));
        return;
    }

    fprintf(f,
            "# HELP chat_worker_start_time_seconds when this daemon started\n"
            "# TYPE chat_worker_start_time_seconds gauge\n"
            "chat_worker_start_time_seconds{%s} %lld.%03lld\n"
            "# HELP chat_worker_records_total records read from Kafka\n"
            "# TYPE chat_worker_records_total counter\n"
            "chat_worker_records_total{%s} %lld\n"
            "# HELP chat_worker_written_total what the batches wrote: rows "
            "stored, notifications sent (the what label)\n"
            "# TYPE chat_worker_written_total counter\n"
            "chat_worker_written_total{%s,what=\"%s\"} %lld\n"
            "# HELP chat_worker_batches_total batches by result: written "
            "(and their offsets committed), abandoned\n"
            "# TYPE chat_worker_batches_total counter\n"
            "chat_worker_batches_total{%s,result=\"written\"} %lld\n"
            "chat_worker_batches_total{%s,result=\"abandoned\"} %lld\n"
            "# HELP chat_worker_errors_total pg_retry, consume_error, "
            "sweep_failed and batch_abandoned events\n"
            "# TYPE chat_worker_errors_total counter\n"
            "chat_worker_errors_total{%s} %lld\n"
            "# HELP chat_worker_notifications_failed_total push: "
            "notifications given up (dead letters)\n"
            "# TYPE chat_worker_notifications_failed_total counter\n"
            "chat_worker_notifications_failed_total{%s} %lld\n"
            "# HELP chat_worker_last_batch_timestamp_seconds when the last "
            "batch was committed (0: none yet)\n"
            "# TYPE chat_worker_last_batch_timestamp_seconds gauge\n"
            "chat_worker_last_batch_timestamp_seconds{%s} %lld.%03lld\n",
            labels, (long long) (chat_metrics_start / 1000),
            (long long) (chat_metrics_start % 1000),
            labels, (long long) v[CHAT_WM_RECORDS],
            labels, written ? written : "written",
            (long long) v[CHAT_WM_WRITTEN],
            labels, (long long) v[CHAT_WM_BATCHES],
            labels, (long long) v[CHAT_WM_ABANDONED],
            labels, (long long) v[CHAT_WM_ERRORS],
            labels, (long long) v[CHAT_WM_NOTIFY_FAILED],
            labels, (long long) (v[CHAT_WM_LAST_BATCH] / 1000),
            (long long) (v[CHAT_WM_LAST_BATCH] % 1000));

    if (lag >= 0) {
        fprintf(f,
                "# HELP chat_worker_consumer_lag records behind the end of "
                "the log, over this member's partitions with a position\n"
                "# TYPE chat_worker_consumer_lag gauge\n"
                "chat_worker_consumer_lag{%s} %lld\n"
                "# HELP chat_worker_assigned_partitions partitions this "
                "member owns\n"
                "# TYPE chat_worker_assigned_partitions gauge\n"
                "chat_worker_assigned_partitions{%s} %d\n",
                labels, (long long) lag, labels, nparts);
    }

    if (fclose(f) != 0 || rename(tmp, conf->metrics_file) != 0) {
        chat_log(CHAT_LOG_WARN, "metrics_failed", "file=%s error=\"%s\"",
                 conf->metrics_file, strerror(errno));
        (void) remove(tmp);
    }
}


/* the sum over the assigned partitions whose position and end are known */

static int64_t
chat_metrics_lag(rd_kafka_t *rk, int *nparts)
{
    int                               i;
    int64_t                           lo, hi, lag;
    rd_kafka_topic_partition_t       *tp;
    rd_kafka_topic_partition_list_t  *parts;

    *nparts = 0;

    if (rd_kafka_assignment(rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return -1;
    }

    lag = 0;
    *nparts = parts->cnt;

    if (parts->cnt && rd_kafka_position(rk, parts)
                      == RD_KAFKA_RESP_ERR_NO_ERROR)
    {
        for (i = 0; i < parts->cnt; i++) {
            tp = &parts->elems[i];

            if (tp->offset < 0
                || rd_kafka_get_watermark_offsets(rk, tp->topic,
                                                  tp->partition, &lo, &hi)
                   != RD_KAFKA_RESP_ERR_NO_ERROR
                || hi < tp->offset)
            {
                continue;
            }

            lag += hi - tp->offset;
        }
    }

    rd_kafka_topic_partition_list_destroy(parts);

    return lag;
}
