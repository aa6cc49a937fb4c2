
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker --metrics-file PATH: the consuming roles' counters in the
 * Prometheus text format, for node_exporter's textfile collector,
 * written every --metrics-interval ms to PATH.tmp and renamed over PATH
 * (a reader never sees half a file).  docs/OPERATIONS.md lists them.
 */


#ifndef _CHAT_METRICS_H_INCLUDED_
#define _CHAT_METRICS_H_INCLUDED_


#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "chat_worker.h"


typedef enum {
    CHAT_WM_RECORDS = 0,        /* read from Kafka */
    CHAT_WM_WRITTEN,            /* what the role counts: rows, sent */
    CHAT_WM_BATCHES,            /* written and committed */
    CHAT_WM_ABANDONED,          /* batches given up */
    CHAT_WM_ERRORS,             /* pg_retry, consume_error, sweep_failed,
                                   batch_abandoned */
    CHAT_WM_NOTIFY_FAILED,      /* push: dead letters */
    CHAT_WM_LAST_BATCH,         /* ms since the epoch */
    CHAT_WM_N
} chat_wm_e;


/* from any thread */
void chat_metrics_add(chat_wm_e m, int64_t n);
void chat_metrics_set(chat_wm_e m, int64_t v);

/*
 * In the main thread: the file, when --metrics-file is set and
 * --metrics-interval has passed (or force); the consumer's lag is asked
 * of rk (cached watermarks: no round trip).
 */
void chat_metrics_tick(chat_worker_conf_t *conf, const char *written,
    rd_kafka_t *rk, int force);


#endif /* _CHAT_METRICS_H_INCLUDED_ */
