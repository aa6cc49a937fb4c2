
/*
 * Copyright (C) ngx_chat authors
 *
 * {"type":"send"}: from a client's frame to a durable acknowledgement.
 *
 *   1. the recipient must exist (PostgreSQL);
 *   2. dedup: SET chat:dedup:{sender}:<client_id> "pending" NX on the
 *      sender's Redis shard; a key that exists holds the first ack, which
 *      is sent again (a retry delivers nothing twice);
 *   3. seq: INCR chat:seq:{conversation} on the conversation's shard;
 *   4. the message goes to Kafka (chat.messages, keyed by conversation,
 *      acks=all); only its delivery report makes the ack, which is then
 *      also kept under the dedup key.  A failure sends an error frame and
 *      releases the key, never an ack.
 *
 * A send outlives its connection: if the client goes away, the steps
 * still finish and the ack is kept for the client's retry.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"
#include "chat_json.h"
#include "chat_id.h"


#define NGX_CHAT_SEND_DEDUP_TTL   86400
#define NGX_CHAT_SEND_MAX_BODY    16384
#define NGX_CHAT_SEND_CLIENT_ID   64


typedef struct {
    ngx_queue_t                queue;
    ngx_chat_ws_t             *ws;         /* NULL once it is gone */
    ngx_log_t                 *log;
    uint64_t                   from;
    uint64_t                   to;
    int64_t                    seq;
    int64_t                    ts;
    json_t                    *msg;
    ngx_chat_pg_query_t       *query;
    ngx_chat_redis_cmd_t      *cmd;
    ngx_chat_kafka_msg_t      *kmsg;
    unsigned                   claimed:1;  /* the dedup key is ours */
    char                       client_id[NGX_CHAT_SEND_CLIENT_ID + 1];
    char                       id[CHAT_ID_LEN + 1];
    char                       conv[48];
    char                       dedup[NGX_CHAT_SEND_CLIENT_ID + 48];
} ngx_chat_send_t;


static void ngx_chat_send_user_checked(ngx_chat_store_rc_e rc, PGresult *res,
    void *data);
static void ngx_chat_send_claimed(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data);
static void ngx_chat_send_dup(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data);
static void ngx_chat_send_sequenced(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_send_delivered(ngx_chat_store_rc_e rc,
    int32_t partition, int64_t offset, void *data);
static void ngx_chat_send_fail(ngx_chat_send_t *s, const char *code,
    const char *message);
static void ngx_chat_send_done(ngx_chat_send_t *s);


ngx_int_t
ngx_chat_send(ngx_chat_ws_t *ws, json_t *req)
{
    int                  rc;
    u_char               buf[NGX_INT64_LEN];
    size_t               len;
    json_t              *v;
    uint64_t             to, lo, hi;
    ngx_str_t            param;
    const char          *cid, *body;
    ngx_time_t          *tp;
    ngx_chat_send_t     *s;
    ngx_chat_worker_t   *w = ngx_chat_worker;

    if (json_object_get(req, "group")) {
        return ngx_chat_ws_error(ws, "not_implemented",
                                 "group messages are not available yet",
                                 req);
    }

    rc = chat_json_get_id(req, "to", &to);
    if (rc != 0) {
        return ngx_chat_ws_error(ws, "bad_request",
                                 rc > 0 ? "\"to\" is required"
                                        : "\"to\" must be a user id", req);
    }

    rc = chat_json_get_string(req, "client_id", &cid, &len);
    if (rc != 0 || len == 0 || len > NGX_CHAT_SEND_CLIENT_ID) {
        return ngx_chat_ws_error(ws, "bad_request",
                                 "\"client_id\" must be a string of 1 to 64 "
                                 "bytes", req);
    }

    rc = chat_json_get_string(req, "body", &body, &len);
    if (rc != 0 || len > NGX_CHAT_SEND_MAX_BODY) {
        return ngx_chat_ws_error(ws, "bad_request",
                                 "\"body\" must be a string of at most "
                                 "16384 bytes", req);
    }

    v = json_object_get(req, "e2e");
    if (v && !json_is_boolean(v)) {
        return ngx_chat_ws_error(ws, "bad_request",
                                 "\"e2e\" must be true or false", req);
    }

    v = json_object_get(req, "media");
    if (v && !json_is_string(v)) {
        return ngx_chat_ws_error(ws, "bad_request",
                                 "\"media\" must be a media id", req);
    }

    if (w == NULL || w->pg == NULL || w->kafka == NULL || w->nredis == 0) {
        return ngx_chat_ws_error(ws, "unavailable", "this node has no "
                                 "PostgreSQL, Redis or Kafka configured",
                                 req);
    }

    s = ngx_calloc(sizeof(ngx_chat_send_t), ws->request->connection->log);
    if (s == NULL) {
        return NGX_ERROR;
    }

    s->ws = ws;
    s->log = ngx_cycle->log;
    s->from = ws->user_id;
    s->to = to;
    ngx_memcpy(s->client_id, cid, ngx_strlen(cid) + 1);

    lo = ngx_min(s->from, to);
    hi = ngx_max(s->from, to);
    (void) ngx_snprintf((u_char *) s->conv, sizeof(s->conv), "d:%uL:%uL%Z",
                        lo, hi);
    (void) ngx_snprintf((u_char *) s->dedup, sizeof(s->dedup),
                        "chat:dedup:{%uL}:%s%Z", s->from, s->client_id);

    tp = ngx_timeofday();
    s->ts = (int64_t) tp->sec * 1000 + tp->msec;

    /* everything but id and seq, which come once the send is claimed */
    s->msg = json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:I}",
                       "id", "", "seq", (json_int_t) 0,
                       "from", (json_int_t) s->from, "to", (json_int_t) to,
                       "body", body, "client_id", s->client_id,
                       "ts", (json_int_t) s->ts);
    if (s->msg == NULL) {
        ngx_free(s);
        return NGX_ERROR;
    }

    v = json_object_get(req, "media");
    if (v) {
        (void) json_object_set(s->msg, "media", v);
    }

    v = json_object_get(req, "e2e");
    if (v) {
        (void) json_object_set(s->msg, "e2e", v);
    }

    ngx_queue_insert_tail(&ws->sends, &s->queue);

    param.data = buf;
    param.len = ngx_sprintf(buf, "%uL", to) - buf;

    s->query = ngx_chat_pg_query(w->pg, "SELECT 1 FROM users WHERE id = $1",
                                 1, &param, ngx_chat_send_user_checked, s);
    if (s->query == NULL) {
        ngx_chat_send_fail(s, "unavailable", "the database is down");
    }

    return NGX_OK;
}


static void
ngx_chat_send_user_checked(ngx_chat_store_rc_e rc, PGresult *res,
    void *data)
{
    ngx_chat_send_t   *s = data;
    ngx_chat_redis_t  *rds;

    s->query = NULL;

    if (rc != NGX_CHAT_STORE_OK) {
        ngx_chat_send_fail(s, "unavailable", "the database did not answer");
        return;
    }

    if (PQntuples(res) == 0) {
        ngx_chat_send_fail(s, "not_found", "no such user");
        return;
    }

    rds = ngx_chat_redis_for_user(s->from);

    s->cmd = rds ? ngx_chat_redis_command(rds, ngx_chat_send_claimed, s,
                                          "SET %s pending NX EX %d",
                                          s->dedup,
                                          NGX_CHAT_SEND_DEDUP_TTL)
                 : NULL;

    if (s->cmd == NULL) {
        ngx_chat_send_fail(s, "unavailable", "Redis is down");
    }
}


static void
ngx_chat_send_claimed(ngx_chat_store_rc_e rc, redisReply *reply, void *data)
{
    ngx_chat_send_t   *s = data;
    ngx_chat_redis_t  *rds;

    s->cmd = NULL;

    if (rc != NGX_CHAT_STORE_OK) {
        ngx_chat_send_fail(s, "unavailable", "Redis did not answer");
        return;
    }

    rds = ngx_chat_redis_for_user(s->from);

    if (reply->type == REDIS_REPLY_NIL) {
        /* this client_id was seen: its ack, or a send still under way */
        s->cmd = ngx_chat_redis_command(rds, ngx_chat_send_dup, s,
                                        "GET %s", s->dedup);
        if (s->cmd == NULL) {
            ngx_chat_send_fail(s, "unavailable", "Redis is down");
        }

        return;
    }

    s->claimed = 1;

    /* the conversation's counter lives with its lower user id */
    rds = ngx_chat_redis_for_user(ngx_min(s->from, s->to));

    s->cmd = ngx_chat_redis_command(rds, ngx_chat_send_sequenced, s,
                                    "INCR chat:seq:{%s}", s->conv);
    if (s->cmd == NULL) {
        ngx_chat_send_fail(s, "unavailable", "Redis is down");
    }
}


static void
ngx_chat_send_dup(ngx_chat_store_rc_e rc, redisReply *reply, void *data)
{
    ngx_chat_send_t  *s = data;
    json_t           *ack;

    s->cmd = NULL;

    if (rc != NGX_CHAT_STORE_OK || reply->type != REDIS_REPLY_STRING) {
        ngx_chat_send_fail(s, "unavailable", "Redis did not answer");
        return;
    }

    if (reply->len == 7 && ngx_strncmp(reply->str, "pending", 7) == 0) {
        ngx_chat_send_fail(s, "in_progress", "a message with this client_id "
                           "is being sent, wait for its ack");
        return;
    }

    ack = json_loadb(reply->str, reply->len, 0, NULL);

    if (ack && s->ws) {
        (void) ngx_chat_ws_send_json(s->ws, ack);
    }

    json_decref(ack);
    ngx_chat_send_done(s);
}


static void
ngx_chat_send_sequenced(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    char                *payload;
    ngx_str_t            key, value;
    ngx_chat_send_t     *s = data;
    ngx_chat_worker_t   *w = ngx_chat_worker;

    s->cmd = NULL;

    if (rc != NGX_CHAT_STORE_OK || reply->type != REDIS_REPLY_INTEGER) {
        ngx_chat_send_fail(s, "unavailable", "Redis did not answer");
        return;
    }

    s->seq = reply->integer;
    chat_id_next(&w->ids, (uint64_t) s->ts, s->id);

    (void) json_object_set_new(s->msg, "id", json_string(s->id));
    (void) json_object_set_new(s->msg, "seq", json_integer(s->seq));

    payload = json_dumps(s->msg, JSON_COMPACT|JSON_PRESERVE_ORDER);
    if (payload == NULL) {
        ngx_chat_send_fail(s, "internal", "out of memory");
        return;
    }

    key.data = (u_char *) s->conv;
    key.len = ngx_strlen(s->conv);
    value.data = (u_char *) payload;
    value.len = ngx_strlen(payload);

    s->kmsg = ngx_chat_kafka_produce(w->kafka, NGX_CHAT_TOPIC_MESSAGES, 0,
                                     &key, &value, ngx_chat_send_delivered,
                                     s);
    free(payload);

    if (s->kmsg == NULL) {
        ngx_chat_send_fail(s, "unavailable", "Kafka refused the message");
    }
}


static void
ngx_chat_send_delivered(ngx_chat_store_rc_e rc, int32_t partition,
    int64_t offset, void *data)
{
    char              *text;
    json_t            *ack;
    ngx_chat_send_t   *s = data;
    ngx_chat_redis_t  *rds;

    s->kmsg = NULL;

    if (rc != NGX_CHAT_STORE_OK) {
        ngx_chat_send_fail(s, "unavailable", "the message was not stored, "
                           "send it again");
        return;
    }

    ack = json_pack("{s:s, s:s, s:s, s:I, s:I}", "type", "ack",
                    "client_id", s->client_id, "id", s->id,
                    "seq", (json_int_t) s->seq, "ts", (json_int_t) s->ts);
    if (ack == NULL) {
        ngx_chat_send_done(s);
        return;
    }

    if (s->ws) {
        (void) ngx_chat_ws_send_json(s->ws, ack);
    }

    /* the same ack for a retry of this client_id; the reply is not needed */
    text = json_dumps(ack, JSON_COMPACT|JSON_PRESERVE_ORDER);
    rds = ngx_chat_redis_for_user(s->from);

    if (text && rds) {
        (void) ngx_chat_redis_command(rds, NULL, NULL, "SET %s %s EX %d",
                                      s->dedup, text,
                                      NGX_CHAT_SEND_DEDUP_TTL);
    }

    free(text);
    json_decref(ack);

    s->claimed = 0;
    ngx_chat_send_done(s);
}


static void
ngx_chat_send_fail(ngx_chat_send_t *s, const char *code,
    const char *message)
{
    json_t            *err;
    ngx_chat_redis_t  *rds;

    ngx_log_error(NGX_LOG_INFO, s->log, 0,
                  "chat: send from %uL to %uL (%s) failed: %s",
                  s->from, s->to, s->client_id, message);

    if (s->ws) {
        err = json_pack("{s:s, s:s, s:s, s:s}", "type", "error",
                        "code", code, "message", message,
                        "client_id", s->client_id);
        if (err) {
            (void) ngx_chat_ws_send_json(s->ws, err);
            json_decref(err);
        }
    }

    /* the client_id is free again for the retry */
    if (s->claimed) {
        rds = ngx_chat_redis_for_user(s->from);

        if (rds) {
            (void) ngx_chat_redis_command(rds, NULL, NULL, "DEL %s",
                                          s->dedup);
        }

        s->claimed = 0;
    }

    ngx_chat_send_done(s);
}


static void
ngx_chat_send_done(ngx_chat_send_t *s)
{
    if (s->ws) {
        ngx_queue_remove(&s->queue);
    }

    json_decref(s->msg);
    ngx_free(s);
}


void
ngx_chat_send_orphan(ngx_chat_ws_t *ws)
{
    ngx_queue_t      *q;
    ngx_chat_send_t  *s;

    while (!ngx_queue_empty(&ws->sends)) {
        q = ngx_queue_head(&ws->sends);
        ngx_queue_remove(q);

        s = ngx_queue_data(q, ngx_chat_send_t, queue);
        s->ws = NULL;
    }
}
