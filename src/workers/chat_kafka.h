
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker: what the consume loop (chat_consume.c) needs on the
 * Kafka side: the consumer and the dead-letter producer made from the
 * options, dead letters, the assignment and its ends (for the drain).
 */


#ifndef _CHAT_KAFKA_H_INCLUDED_
#define _CHAT_KAFKA_H_INCLUDED_


#include <librdkafka/rdkafka.h>

#include "chat_worker.h"


/*
 * session.timeout.ms (ms) of the consumers: the local broker (librdkafka's
 * mock) needs it short; the lag client (chat_lag.c) sets it too, since
 * librdkafka refuses a -X max.poll.interval.ms below it
 */
#define CHAT_KAFKA_SESSION_TIMEOUT  "6000"


typedef void (*chat_kafka_rebalance_pt)(rd_kafka_t *rk,
    rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
    void *opaque);


/*
 * The first member of the consume loop's state: the librdkafka callbacks
 * get that state as opaque and find this at its start.
 */
typedef struct {
    chat_worker_conf_t               *conf;
    rd_kafka_t                       *consumer;
    rd_kafka_t                       *dlq;

    /* opaque of each element: non-NULL once its end was reached */
    rd_kafka_topic_partition_list_t  *assigned;

    volatile int                      fatal;
    volatile int                      dlq_failed;
} chat_kafka_t;


/*
 * The dead-letter producer (idempotent, never gives up) and the consumer
 * of group conf->group (offsets are the role's to commit), subscribed to
 * topics (NULL-terminated); opaque is the role's state.  0 or -1 (said).
 */
int chat_kafka_open(chat_kafka_t *k, chat_worker_conf_t *conf,
    const char **topics, chat_kafka_rebalance_pt rebalance, void *opaque);

/* leaves the group (revoking first) and destroys the consumer */
void chat_kafka_close(chat_kafka_t *k);

/* flushes the dead letters (5 s at most), destroys the producer */
void chat_kafka_done(chat_kafka_t *k);

/*
 * The record to the dead-letter topic, with its reason in the header
 * chat-error and topic/partition/offset in chat-source.  Sets k->fatal
 * when it cannot be queued.  From any thread.
 */
void chat_kafka_dead_letter(chat_kafka_t *k, const char *topic,
    int32_t partition, int64_t offset, const void *key, size_t key_len,
    const void *val, size_t val_len, const char *reason);

/*
 * In the rebalance callback, after what the role must do before a
 * revoke: (un)assigns (eager or cooperative) and keeps k->assigned.
 */
void chat_kafka_assign(chat_kafka_t *k, rd_kafka_t *rk,
    rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts);

/* m's partition reached its end (eof) or had a record */
void chat_kafka_eof(chat_kafka_t *k, rd_kafka_message_t *m, int eof);

/* every assigned partition reached its end since it last had a record */
int chat_kafka_drained(chat_kafka_t *k);

/* the position to commit for m's partition in list: the next record */
void chat_kafka_position(rd_kafka_topic_partition_list_t *list,
    const char *topic, rd_kafka_message_t *m);

/* "chat.messages/0@12,chat.messages/3" (offset when set), for logs */
const char *chat_kafka_parts(rd_kafka_topic_partition_list_t *l, char *buf,
    size_t size);


#endif /* _CHAT_KAFKA_H_INCLUDED_ */
