
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker: the Kafka side of the consuming roles, see chat_kafka.h.
 */


#include <stdio.h>
#include <string.h>
#include <time.h>

#include "chat_kafka.h"


static rd_kafka_conf_t *chat_kafka_conf(chat_kafka_t *k,
    const char *client_id, const char *group, const char **settings,
    void *opaque);
static void chat_kafka_log(const rd_kafka_t *rk, int level,
    const char *fac, const char *buf);
static void chat_kafka_error(rd_kafka_t *rk, int err, const char *reason,
    void *opaque);
static void chat_kafka_dr(rd_kafka_t *rk, const rd_kafka_message_t *m,
    void *opaque);


int
chat_kafka_open(chat_kafka_t *k, chat_worker_conf_t *conf,
    const char **topics, chat_kafka_rebalance_pt rebalance, void *opaque)
{
    int                               i;
    char                              err[512], q[512], id[128];
    rd_kafka_conf_t                  *kc;
    rd_kafka_resp_err_t               rc;
    rd_kafka_topic_partition_list_t  *list;

    static const char  *producer[] = {
        "enable.idempotence", "true",
        "message.timeout.ms", "0",
        "linger.ms", "5",
        NULL
    };

    /* session.timeout.ms: the local broker (librdkafka's mock) needs it */
    static const char  *consumer[] = {
        "enable.auto.commit", "false",
        "enable.auto.offset.store", "false",
        "auto.offset.reset", "earliest",
        "enable.partition.eof", "true",
        "queued.max.messages.kbytes", "16384",
        "session.timeout.ms", CHAT_KAFKA_SESSION_TIMEOUT,
        NULL
    };

    k->conf = conf;

    /* the dead-letter producer: idempotent, acks=all, never gives up */
    snprintf(id, sizeof(id), "chat-worker-%s-dlq", conf->role);

    kc = chat_kafka_conf(k, id, NULL, producer, opaque);
    if (kc == NULL) {
        return -1;
    }

    rd_kafka_conf_set_dr_msg_cb(kc, chat_kafka_dr);

    k->dlq = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
    if (k->dlq == NULL) {
        goto failed;
    }

    /* the consumer: offsets are ours to commit */
    snprintf(id, sizeof(id), "chat-worker-%s", conf->role);

    kc = chat_kafka_conf(k, id, conf->group, consumer, opaque);
    if (kc == NULL) {
        return -1;
    }

    rd_kafka_conf_set_rebalance_cb(kc, rebalance);

    k->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
    if (k->consumer == NULL) {
        goto failed;
    }

    rd_kafka_poll_set_consumer(k->consumer);

    list = rd_kafka_topic_partition_list_new(2);

    for (i = 0; topics[i]; i++) {
        rd_kafka_topic_partition_list_add(list, topics[i],
                                          RD_KAFKA_PARTITION_UA);
    }

    rc = rd_kafka_subscribe(k->consumer, list);
    rd_kafka_topic_partition_list_destroy(list);

    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR) {
        chat_log(CHAT_LOG_ERROR, "subscribe", "error=%s",
                 chat_log_quote(rd_kafka_err2str(rc), q, sizeof(q)));
        return -1;
    }

    return 0;

failed:

    chat_log(CHAT_LOG_ERROR, "config", "error=%s",
             chat_log_quote(err, q, sizeof(q)));
    rd_kafka_conf_destroy(kc);

    return -1;
}


/* ours, then the pairs of settings, then -X: the operator wins */

static rd_kafka_conf_t *
chat_kafka_conf(chat_kafka_t *k, const char *client_id, const char *group,
    const char **settings, void *opaque)
{
    int               i;
    char              err[512], q[512], name[256], *eq;
    rd_kafka_conf_t  *kc;

    kc = rd_kafka_conf_new();

    if (rd_kafka_conf_set(kc, "bootstrap.servers", k->conf->brokers, err,
                          sizeof(err)) != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(kc, "client.id", client_id, err, sizeof(err))
           != RD_KAFKA_CONF_OK
        || (group
            && rd_kafka_conf_set(kc, "group.id", group, err, sizeof(err))
               != RD_KAFKA_CONF_OK))
    {
        goto failed;
    }

    for (i = 0; settings[i]; i += 2) {
        if (rd_kafka_conf_set(kc, settings[i], settings[i + 1], err,
                              sizeof(err)) != RD_KAFKA_CONF_OK)
        {
            goto failed;
        }
    }

    for (i = 0; i < k->conf->nprops; i++) {
        eq = strchr(k->conf->props[i], '=');

        snprintf(name, sizeof(name), "%.*s",
                 (int) (eq - k->conf->props[i]), k->conf->props[i]);

        if (rd_kafka_conf_set(kc, name, eq + 1, err, sizeof(err))
            != RD_KAFKA_CONF_OK)
        {
            goto failed;
        }
    }

    rd_kafka_conf_set_log_cb(kc, chat_kafka_log);
    rd_kafka_conf_set_error_cb(kc, chat_kafka_error);
    rd_kafka_conf_set_opaque(kc, opaque);

    return kc;

failed:

    chat_log(CHAT_LOG_ERROR, "config", "error=%s",
             chat_log_quote(err, q, sizeof(q)));
    rd_kafka_conf_destroy(kc);

    return NULL;
}


void
chat_kafka_close(chat_kafka_t *k)
{
    char                 q[512];
    rd_kafka_resp_err_t  err;

    if (k->consumer == NULL) {
        return;
    }

    err = rd_kafka_consumer_close(k->consumer);
    if (err) {
        chat_log(CHAT_LOG_WARN, "close", "error=%s",
                 chat_log_quote(rd_kafka_err2str(err), q, sizeof(q)));
    }

    rd_kafka_destroy(k->consumer);
    k->consumer = NULL;
}


void
chat_kafka_done(chat_kafka_t *k)
{
    if (k->dlq) {
        if (rd_kafka_flush(k->dlq, 5000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            chat_log(CHAT_LOG_WARN, "dlq_unflushed", "records=%d",
                     rd_kafka_outq_len(k->dlq));
        }

        rd_kafka_destroy(k->dlq);
        k->dlq = NULL;
    }

    if (k->assigned) {
        rd_kafka_topic_partition_list_destroy(k->assigned);
        k->assigned = NULL;
    }
}


void
chat_kafka_dead_letter(chat_kafka_t *k, const char *topic,
    int32_t partition, int64_t offset, const void *key, size_t key_len,
    const void *val, size_t val_len, const char *reason)
{
    char                 source[512], q[512];
    struct timespec      ts;
    rd_kafka_resp_err_t  err;

    snprintf(source, sizeof(source), "%s/%d/%lld", topic, (int) partition,
             (long long) offset);

    chat_log(CHAT_LOG_WARN, "dead_letter", "source=%s dlq=%s reason=%s",
             source, k->conf->topic_dlq,
             chat_log_quote(reason, q, sizeof(q)));

    for ( ;; ) {
        err = rd_kafka_producev(k->dlq,
                  RD_KAFKA_V_TOPIC(k->conf->topic_dlq),
                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                  RD_KAFKA_V_KEY(key, key_len),
                  RD_KAFKA_V_VALUE((void *) val, val_len),
                  RD_KAFKA_V_HEADER("chat-error", reason, -1),
                  RD_KAFKA_V_HEADER("chat-source", source, -1),
                  RD_KAFKA_V_END);

        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            break;
        }

        /* the main thread serves the delivery reports: wait for it */
        ts.tv_sec = 0;
        ts.tv_nsec = 50 * 1000000;
        (void) nanosleep(&ts, NULL);
    }

    if (err) {
        chat_log(CHAT_LOG_ERROR, "dead_letter_failed", "source=%s error=%s",
                 source, chat_log_quote(rd_kafka_err2str(err), q,
                                        sizeof(q)));
        k->fatal = 1;
    }
}


void
chat_kafka_assign(chat_kafka_t *k, rd_kafka_t *rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t *parts)
{
    int                i, cooperative;
    char               q[512];
    rd_kafka_error_t  *error;

    cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE")
                  == 0;
    error = NULL;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (cooperative) {
            error = rd_kafka_incremental_assign(rk, parts);

        } else {
            err = rd_kafka_assign(rk, parts);
        }

        if (k->assigned == NULL || !cooperative) {
            if (k->assigned) {
                rd_kafka_topic_partition_list_destroy(k->assigned);
            }

            k->assigned = rd_kafka_topic_partition_list_new(parts->cnt);
        }

        for (i = 0; i < parts->cnt; i++) {
            rd_kafka_topic_partition_list_add(k->assigned,
                                              parts->elems[i].topic,
                                              parts->elems[i].partition);
        }

    } else if (cooperative) {
        error = rd_kafka_incremental_unassign(rk, parts);

        for (i = 0; k->assigned && i < parts->cnt; i++) {
            (void) rd_kafka_topic_partition_list_del(
                       k->assigned, parts->elems[i].topic,
                       parts->elems[i].partition);
        }

    } else {
        err = rd_kafka_assign(rk, NULL);

        if (k->assigned) {
            rd_kafka_topic_partition_list_destroy(k->assigned);
            k->assigned = NULL;
        }
    }

    if (error) {
        chat_log(CHAT_LOG_WARN, "rebalance_error", "error=%s",
                 chat_log_quote(rd_kafka_error_string(error), q, sizeof(q)));
        rd_kafka_error_destroy(error);

    } else if (err != RD_KAFKA_RESP_ERR_NO_ERROR
               && err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS
               && err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
    {
        chat_log(CHAT_LOG_WARN, "rebalance_error", "error=%s",
                 chat_log_quote(rd_kafka_err2str(err), q, sizeof(q)));
    }
}


void
chat_kafka_eof(chat_kafka_t *k, rd_kafka_message_t *m, int eof)
{
    rd_kafka_topic_partition_t  *tp;

    if (k->assigned == NULL) {
        return;
    }

    tp = rd_kafka_topic_partition_list_find(k->assigned,
                                            rd_kafka_topic_name(m->rkt),
                                            m->partition);
    if (tp) {
        tp->opaque = eof ? (void *) 1 : NULL;
    }
}


int
chat_kafka_drained(chat_kafka_t *k)
{
    int  i;

    if (k->assigned == NULL) {
        return 1;
    }

    for (i = 0; i < k->assigned->cnt; i++) {
        if (k->assigned->elems[i].opaque == NULL) {
            return 0;
        }
    }

    return 1;
}


void
chat_kafka_position(rd_kafka_topic_partition_list_t *list,
    const char *topic, rd_kafka_message_t *m)
{
    rd_kafka_topic_partition_t  *tp;

    tp = rd_kafka_topic_partition_list_find(list, topic, m->partition);
    if (tp == NULL) {
        tp = rd_kafka_topic_partition_list_add(list, topic, m->partition);
    }

    tp->offset = m->offset + 1;
}


static void
chat_kafka_log(const rd_kafka_t *rk, int level, const char *fac,
    const char *buf)
{
    char              q[1024];
    chat_log_level_e  l;

    (void) rk;

    l = level <= 3 ? CHAT_LOG_ERROR
        : level == 4 ? CHAT_LOG_WARN
        : level <= 6 ? CHAT_LOG_INFO : CHAT_LOG_DEBUG;

    chat_log(l, "kafka_log", "facility=%s message=%s", fac,
             chat_log_quote(buf, q, sizeof(q)));
}


static void
chat_kafka_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    char           q[1024];
    chat_kafka_t  *k = opaque;

    chat_log(CHAT_LOG_WARN, "kafka_error", "client=%s error=%s reason=%s",
             rd_kafka_name(rk), rd_kafka_err2name(err),
             chat_log_quote(reason, q, sizeof(q)));

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        k->fatal = 1;
    }
}


static void
chat_kafka_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    char           q[512];
    chat_kafka_t  *k = opaque;

    (void) rk;

    if (m->err) {
        chat_log(CHAT_LOG_ERROR, "dead_letter_failed", "error=%s",
                 chat_log_quote(rd_kafka_err2str(m->err), q, sizeof(q)));
        k->dlq_failed = 1;
    }
}


const char *
chat_kafka_parts(rd_kafka_topic_partition_list_t *l, char *buf, size_t size)
{
    int     i, n;
    size_t  len;

    len = 0;
    buf[0] = '\0';

    for (i = 0; l && i < l->cnt && len + 1 < size; i++) {
        if (l->elems[i].offset >= 0) {
            n = snprintf(buf + len, size - len, "%s%s/%d@%lld",
                         i ? "," : "", l->elems[i].topic,
                         (int) l->elems[i].partition,
                         (long long) l->elems[i].offset);

        } else {
            n = snprintf(buf + len, size - len, "%s%s/%d", i ? "," : "",
                         l->elems[i].topic, (int) l->elems[i].partition);
        }

        if (n < 0) {
            break;
        }

        len += n;
    }

    if (len >= size) {
        buf[size - 1] = '\0';
    }

    return len ? buf : "-";
}
