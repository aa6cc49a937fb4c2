
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_KAFKA_H_INCLUDED_
#define _NGX_CHAT_KAFKA_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <librdkafka/rdkafka.h>

#include "ngx_chat_store.h"


#define NGX_CHAT_KAFKA_MAX_TOPICS  8


typedef struct ngx_chat_kafka_s      ngx_chat_kafka_t;
typedef struct ngx_chat_kafka_msg_s  ngx_chat_kafka_msg_t;


typedef struct {
    ngx_str_t                  brokers;
    ngx_msec_t                 timeout;     /* message.timeout.ms */
    ngx_array_t               *options;     /* ngx_keyval_t, or NULL */
    ngx_str_t                  client_id;
} ngx_chat_kafka_conf_t;


/*
 * Called once per message, from the delivery report, unless cancelled:
 * NGX_CHAT_STORE_OK means every in-sync replica has the message (acks=all).
 */
typedef void (*ngx_chat_kafka_handler_pt)(ngx_chat_store_rc_e rc,
    int32_t partition, int64_t offset, void *data);


ngx_int_t ngx_chat_kafka_check_option(ngx_str_t *name, ngx_str_t *value,
    char *err, size_t len);
ngx_chat_kafka_t *ngx_chat_kafka_create(ngx_chat_kafka_conf_t *conf,
    ngx_log_t *log);
void ngx_chat_kafka_destroy(ngx_chat_kafka_t *k, ngx_msec_t flush);

/*
 * NULL when the message cannot even be queued: the handler is not called.
 * A NULL handler: nobody waits for the report (failures are logged).
 */
ngx_chat_kafka_msg_t *ngx_chat_kafka_produce(ngx_chat_kafka_t *k,
    const char *topic, ngx_msec_t timeout, ngx_str_t *key,
    ngx_str_t *payload, ngx_chat_kafka_handler_pt handler, void *data);
void ngx_chat_kafka_cancel(ngx_chat_kafka_msg_t *msg);

/* librdkafka said that no broker can be reached, and nothing since */
ngx_uint_t ngx_chat_kafka_brokers_down(ngx_chat_kafka_t *k);


#endif /* _NGX_CHAT_KAFKA_H_INCLUDED_ */
