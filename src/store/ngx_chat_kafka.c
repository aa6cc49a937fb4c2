
/*
 * Copyright (C) ngx_chat authors
 *
 * A librdkafka producer per nginx worker.  It is created after fork (its
 * threads would not survive one), its delivery reports are served on the
 * worker's own thread: librdkafka writes to a pipe when its queue becomes
 * non-empty and nginx wakes us up, with a periodic poll as a backstop.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_chat_kafka.h"
#include "ngx_chat_counters.h"


#define NGX_CHAT_KAFKA_POLL_INTERVAL  100
#define NGX_CHAT_KAFKA_POLL_ROUNDS    16


typedef struct {
    const char                *name;
    ngx_msec_t                 timeout;
    rd_kafka_topic_t          *rkt;
} ngx_chat_kafka_topic_t;


struct ngx_chat_kafka_s {
    rd_kafka_t                *rk;
    ngx_log_t                  log;
    ngx_connection_t          *conn;       /* the wake-up pipe */
    int                        pipe[2];
    ngx_event_t                poll;
    ngx_chat_kafka_topic_t     topics[NGX_CHAT_KAFKA_MAX_TOPICS];
    ngx_uint_t                 ntopics;
    ngx_atomic_int_t           outq;       /* in chat_kafka_queue_messages */
    unsigned                   down:1;
    unsigned                   destroying:1;
};


struct ngx_chat_kafka_msg_s {
    ngx_chat_kafka_t          *kafka;
    ngx_chat_kafka_handler_pt  handler;
    void                      *data;
    unsigned                   cancelled:1;
};


static ngx_int_t ngx_chat_kafka_set(rd_kafka_conf_t *conf, const char *name,
    const char *value, ngx_log_t *log);
static void ngx_chat_kafka_dr(rd_kafka_t *rk, const rd_kafka_message_t *m,
    void *opaque);
static void ngx_chat_kafka_error(rd_kafka_t *rk, int err, const char *reason,
    void *opaque);
static void ngx_chat_kafka_logger(const rd_kafka_t *rk, int level,
    const char *fac, const char *buf);
static void ngx_chat_kafka_serve(ngx_chat_kafka_t *k);
static void ngx_chat_kafka_wakeup(ngx_event_t *ev);
static void ngx_chat_kafka_poll_handler(ngx_event_t *ev);
static rd_kafka_topic_t *ngx_chat_kafka_topic(ngx_chat_kafka_t *k,
    const char *name, ngx_msec_t timeout);


/* used at configuration time, so that "nginx -t" rejects a bad option */

ngx_int_t
ngx_chat_kafka_check_option(ngx_str_t *name, ngx_str_t *value, char *err,
    size_t len)
{
    rd_kafka_conf_t      *conf;
    rd_kafka_conf_res_t   res;

    conf = rd_kafka_conf_new();
    if (conf == NULL) {
        (void) ngx_cpystrn((u_char *) err, (u_char *) "out of memory", len);
        return NGX_ERROR;
    }

    res = rd_kafka_conf_set(conf, (char *) name->data, (char *) value->data,
                            err, len);

    rd_kafka_conf_destroy(conf);

    return res == RD_KAFKA_CONF_OK ? NGX_OK : NGX_ERROR;
}


ngx_chat_kafka_t *
ngx_chat_kafka_create(ngx_chat_kafka_conf_t *kc, ngx_log_t *log)
{
    char                errstr[512];
    u_char              buf[NGX_INT_T_LEN + 1];
    ngx_uint_t          i;
    ngx_keyval_t       *kv;
    rd_kafka_conf_t    *conf;
    ngx_connection_t   *c;
    ngx_chat_kafka_t   *k;
    rd_kafka_queue_t   *main_queue;

    k = ngx_calloc(sizeof(ngx_chat_kafka_t), log);
    if (k == NULL) {
        return NULL;
    }

    k->log = *log;
    k->log.action = "talking to Kafka";
    k->pipe[0] = -1;
    k->pipe[1] = -1;

    conf = rd_kafka_conf_new();
    if (conf == NULL) {
        goto failed;
    }

    *ngx_sprintf(buf, "%M", kc->timeout) = '\0';

    /*
     * Durability first: a message is acknowledged to its sender only once
     * every in-sync replica has it, and retries cannot duplicate or
     * reorder it.  murmur2 places keys on the partitions that Java clients
     * would choose.
     */
    if (ngx_chat_kafka_set(conf, "bootstrap.servers",
                           (char *) kc->brokers.data, log) != NGX_OK
        || ngx_chat_kafka_set(conf, "client.id",
                              (char *) kc->client_id.data, log) != NGX_OK
        || ngx_chat_kafka_set(conf, "acks", "all", log) != NGX_OK
        || ngx_chat_kafka_set(conf, "enable.idempotence", "true", log)
           != NGX_OK
        || ngx_chat_kafka_set(conf, "message.timeout.ms", (char *) buf, log)
           != NGX_OK
        || ngx_chat_kafka_set(conf, "linger.ms", "1", log) != NGX_OK
        || ngx_chat_kafka_set(conf, "partitioner", "murmur2_random", log)
           != NGX_OK
        || ngx_chat_kafka_set(conf, "socket.keepalive.enable", "true", log)
           != NGX_OK
        || ngx_chat_kafka_set(conf, "log.queue", "true", log) != NGX_OK)
    {
        rd_kafka_conf_destroy(conf);
        goto failed;
    }

    if (kc->options) {
        kv = kc->options->elts;

        for (i = 0; i < kc->options->nelts; i++) {
            if (ngx_chat_kafka_set(conf, (char *) kv[i].key.data,
                                   (char *) kv[i].value.data, log)
                != NGX_OK)
            {
                rd_kafka_conf_destroy(conf);
                goto failed;
            }
        }
    }

    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_dr_msg_cb(conf, ngx_chat_kafka_dr);
    rd_kafka_conf_set_error_cb(conf, ngx_chat_kafka_error);
    rd_kafka_conf_set_log_cb(conf, ngx_chat_kafka_logger);

    k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (k->rk == NULL) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "chat: kafka: cannot create the producer: %s", errstr);
        rd_kafka_conf_destroy(conf);
        goto failed;
    }

    /* librdkafka's own log lines come through the main queue too */
    (void) rd_kafka_set_log_queue(k->rk, NULL);

    if (pipe2(k->pipe, O_NONBLOCK | O_CLOEXEC) == -1) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno, "chat: kafka: pipe2()");
        goto failed;
    }

    c = ngx_get_connection(k->pipe[0], log);
    if (c == NULL) {
        goto failed;
    }

    c->data = k;
    c->log = &k->log;
    c->read->log = &k->log;
    c->read->handler = ngx_chat_kafka_wakeup;
    k->conn = c;

    if (ngx_chat_store_watch(c->read, 1) != NGX_OK) {
        goto failed;
    }

    main_queue = rd_kafka_queue_get_main(k->rk);
    rd_kafka_queue_io_event_enable(main_queue, k->pipe[1], "1", 1);
    rd_kafka_queue_destroy(main_queue);

    k->poll.handler = ngx_chat_kafka_poll_handler;
    k->poll.data = k;
    k->poll.log = &k->log;
    k->poll.cancelable = 1;
    ngx_add_timer(&k->poll, NGX_CHAT_KAFKA_POLL_INTERVAL);

    return k;

failed:

    ngx_chat_kafka_destroy(k, 0);

    return NULL;
}


void
ngx_chat_kafka_destroy(ngx_chat_kafka_t *k, ngx_msec_t flush)
{
    ngx_uint_t  i;

    if (k->poll.timer_set) {
        ngx_del_timer(&k->poll);
    }

    ngx_chat_metrics_gauge_set(NGX_CHAT_M_KAFKA_QUEUE, &k->outq, 0);

    if (k->rk) {
        /*
         * Bounded: the worker is exiting and must not hang on a broker.
         * The reports that come meanwhile reach their handlers (the
         * module is still whole: a send's ack is kept under its client_id
         * and its delivery queued); what is left after it, not.
         */
        if (flush && rd_kafka_flush(k->rk, (int) flush)
                     == RD_KAFKA_RESP_ERR__TIMED_OUT)
        {
            ngx_log_error(NGX_LOG_WARN, &k->log, 0,
                          "chat: kafka: %d messages not delivered at exit",
                          rd_kafka_outq_len(k->rk));
        }

        k->destroying = 1;

        for (i = 0; i < k->ntopics; i++) {
            rd_kafka_topic_destroy(k->topics[i].rkt);
        }

        rd_kafka_destroy(k->rk);
    }

    if (k->conn) {
        ngx_chat_store_free_connection(k->conn);
    }

    if (k->pipe[0] != -1) {
        (void) close(k->pipe[0]);
    }

    if (k->pipe[1] != -1) {
        (void) close(k->pipe[1]);
    }

    ngx_free(k);
}


static ngx_int_t
ngx_chat_kafka_set(rd_kafka_conf_t *conf, const char *name,
    const char *value, ngx_log_t *log)
{
    char  errstr[512];

    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr))
        != RD_KAFKA_CONF_OK)
    {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "chat: kafka: \"%s\": %s", name, errstr);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static rd_kafka_topic_t *
ngx_chat_kafka_topic(ngx_chat_kafka_t *k, const char *name,
    ngx_msec_t timeout)
{
    u_char                   buf[NGX_INT_T_LEN + 1];
    char                     errstr[512];
    ngx_uint_t               i;
    rd_kafka_topic_t        *rkt;
    rd_kafka_topic_conf_t   *tconf;
    ngx_chat_kafka_topic_t  *t;

    for (i = 0; i < k->ntopics; i++) {
        t = &k->topics[i];

        if (t->timeout == timeout && ngx_strcmp(t->name, name) == 0) {
            return t->rkt;
        }
    }

    if (k->ntopics == NGX_CHAT_KAFKA_MAX_TOPICS) {
        ngx_log_error(NGX_LOG_ALERT, &k->log, 0,
                      "chat: kafka: too many topic handles");
        return NULL;
    }

    tconf = NULL;

    if (timeout) {
        /* a topic handle of its own for messages with a shorter life */
        tconf = rd_kafka_topic_conf_new();
        if (tconf == NULL) {
            return NULL;
        }

        *ngx_sprintf(buf, "%M", timeout) = '\0';

        if (rd_kafka_topic_conf_set(tconf, "message.timeout.ms",
                                    (char *) buf, errstr, sizeof(errstr))
            != RD_KAFKA_CONF_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, &k->log, 0,
                          "chat: kafka: %s", errstr);
            rd_kafka_topic_conf_destroy(tconf);
            return NULL;
        }
    }

    rkt = rd_kafka_topic_new(k->rk, name, tconf);
    if (rkt == NULL) {
        ngx_log_error(NGX_LOG_ERR, &k->log, 0,
                      "chat: kafka: topic \"%s\": %s", name,
                      rd_kafka_err2str(rd_kafka_last_error()));
        return NULL;
    }

    t = &k->topics[k->ntopics++];
    t->name = name;
    t->timeout = timeout;
    t->rkt = rkt;

    return rkt;
}


ngx_chat_kafka_msg_t *
ngx_chat_kafka_produce(ngx_chat_kafka_t *k, const char *topic,
    ngx_msec_t timeout, ngx_str_t *key, ngx_str_t *payload,
    ngx_chat_kafka_handler_pt handler, void *data)
{
    rd_kafka_topic_t      *rkt;
    ngx_chat_kafka_msg_t  *msg;

    rkt = ngx_chat_kafka_topic(k, topic, timeout);
    if (rkt == NULL) {
        return NULL;
    }

    msg = ngx_calloc(sizeof(ngx_chat_kafka_msg_t), &k->log);
    if (msg == NULL) {
        return NULL;
    }

    msg->kafka = k;
    msg->handler = handler;
    msg->data = data;

    if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY,
                         payload->data, payload->len,
                         key ? key->data : NULL, key ? key->len : 0, msg)
        == -1)
    {
        ngx_log_error(NGX_LOG_ERR, &k->log, 0,
                      "chat: kafka: cannot queue a message for \"%s\": %s",
                      topic, rd_kafka_err2str(rd_kafka_last_error()));
        ngx_free(msg);
        return NULL;
    }

    return msg;
}


void
ngx_chat_kafka_cancel(ngx_chat_kafka_msg_t *msg)
{
    /* the delivery report still comes and frees it */
    msg->cancelled = 1;
}


ngx_uint_t
ngx_chat_kafka_brokers_down(ngx_chat_kafka_t *k)
{
    return k->down;
}


static void
ngx_chat_kafka_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    ngx_chat_kafka_t      *k = opaque;
    ngx_chat_kafka_msg_t  *msg = m->_private;
    ngx_chat_store_rc_e    rc;

    switch (m->err) {

    case RD_KAFKA_RESP_ERR_NO_ERROR:
        k->down = 0;
        rc = NGX_CHAT_STORE_OK;
        break;

    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
        rc = NGX_CHAT_STORE_TIMEOUT;
        break;

    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
        rc = NGX_CHAT_STORE_DOWN;
        break;

    default:
        rc = NGX_CHAT_STORE_FAILED;
        break;
    }

    if (rc != NGX_CHAT_STORE_OK) {
        ngx_log_error(NGX_LOG_ERR, &k->log, 0,
                      "chat: kafka: message to \"%s\" not delivered: %s",
                      rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
        ngx_chat_metric_inc(NGX_CHAT_M_KAFKA_FAILED);
    }

    if (msg && msg->handler && !msg->cancelled && !k->destroying) {
        msg->handler(rc, m->partition, m->offset, msg->data);
    }

    ngx_free(msg);
}


static void
ngx_chat_kafka_error(rd_kafka_t *rk, int err, const char *reason,
    void *opaque)
{
    char               fatal[256];
    ngx_chat_kafka_t  *k = opaque;

    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        k->down = 1;
    }

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        (void) rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        ngx_log_error(NGX_LOG_ALERT, &k->log, 0,
                      "chat: kafka: fatal producer error, nginx must be "
                      "reloaded: %s", fatal);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, &k->log, 0, "chat: kafka: %s: %s",
                  rd_kafka_err2name(err), reason);
}


static void
ngx_chat_kafka_logger(const rd_kafka_t *rk, int level, const char *fac,
    const char *buf)
{
    ngx_uint_t         nlevel;
    ngx_chat_kafka_t  *k;

    k = rd_kafka_opaque(rk);

    /* syslog levels: 3 error, 4 warning, 5 notice, 6 info, 7 debug */
    nlevel = level <= 3 ? NGX_LOG_ERR
             : level == 4 ? NGX_LOG_WARN
             : level <= 6 ? NGX_LOG_INFO : NGX_LOG_DEBUG;

    ngx_log_error(nlevel, &k->log, 0, "chat: kafka: %s: %s", fac, buf);
}


static void
ngx_chat_kafka_serve(ngx_chat_kafka_t *k)
{
    ngx_uint_t  i;

    /* bounded, so that a flood of reports cannot stall the worker */
    for (i = 0; i < NGX_CHAT_KAFKA_POLL_ROUNDS; i++) {
        if (rd_kafka_poll(k->rk, 0) == 0) {
            break;
        }
    }
}


static void
ngx_chat_kafka_wakeup(ngx_event_t *ev)
{
    u_char             buf[64];
    ngx_connection_t  *c = ev->data;
    ngx_chat_kafka_t  *k = c->data;

    while (read(k->pipe[0], buf, sizeof(buf)) > 0) {
        /* drain */
    }

    ngx_chat_kafka_serve(k);
}


static void
ngx_chat_kafka_poll_handler(ngx_event_t *ev)
{
    ngx_chat_kafka_t  *k = ev->data;

    ngx_chat_kafka_serve(k);
    ngx_chat_metrics_gauge_set(NGX_CHAT_M_KAFKA_QUEUE, &k->outq,
                               rd_kafka_outq_len(k->rk));

    if (!ngx_exiting && !ngx_terminate && !ngx_quit) {
        ngx_add_timer(ev, NGX_CHAT_KAFKA_POLL_INTERVAL);
    }
}
