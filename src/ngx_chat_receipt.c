
/*
 * Copyright (C) ngx_chat authors
 *
 * Receipts (delivered, read: one id or many) and typing: checked against
 * the user's inbox or friends, then relayed to the other side's routes.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"
#include "ngx_chat_send.h"
#include "ngx_chat_route.h"
#include "ngx_chat_receipt.h"
#include "ngx_chat_lua.h"
#include "ngx_chat_batch.h"
#include "ngx_chat_group.h"
#include "ngx_chat_gsync.h"
#include "chat_frame.h"
#include "chat_record.h"


#define NGX_CHAT_RECEIPT_ID    64


/* a typing frame whose recipient is looked up */
typedef struct {
    ngx_chat_op_t              op;          /* in ws->ops */
    uint64_t                   to;
} ngx_chat_typing_t;


/* typing in a group: its member list is checked first */
typedef struct {
    ngx_chat_op_t              op;          /* in ws->ops */
    uint64_t                   from;
    uint64_t                   group;
    ngx_uint_t                 fills;
    ngx_chat_batch_item_t     *item;
    size_t                     len;
    char                       text[1];
} ngx_chat_gtyping_t;


/* a receipt between its check and the sender's connections */
typedef struct {
    ngx_chat_op_t              op;
    uint64_t                   by;
    uint64_t                   from;
    uint64_t                   group;       /* a group message's */
    int64_t                    seq;
    int64_t                    ts;
    ngx_uint_t                 read;        /* unsigned read:1 */
    ngx_chat_redis_cmd_t      *cmd;
    ngx_chat_kafka_msg_t      *kmsg;
    char                      *text;        /* the frame for the sender */
    char                       id[NGX_CHAT_RECEIPT_ID + 1];
    char                       conv[48];
} ngx_chat_receipt_t;


static ngx_int_t ngx_chat_receipt_one(ngx_chat_ws_t *ws, const char *id,
    size_t len, ngx_uint_t read);
static ngx_int_t ngx_chat_receipt_error(ngx_chat_ws_t *ws, const char *code,
    const char *message, const char *id);
static void ngx_chat_receipt_checked(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_receipt_stored(ngx_chat_store_rc_e rc,
    int32_t partition, int64_t offset, void *data);
static void ngx_chat_receipt_applied(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_receipt_fail(ngx_chat_receipt_t *rc,
    const char *code, const char *message);
static void ngx_chat_receipt_done(ngx_chat_receipt_t *rcp);
static void ngx_chat_typing_checked(ngx_chat_store_rc_e rc, PGresult *res,
    void *data);
static ngx_int_t ngx_chat_typing_relay(ngx_chat_ws_t *ws, uint64_t to);
static void ngx_chat_receipt_group(ngx_chat_receipt_t *rcp, char *text);
static void ngx_chat_receipt_grouped(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_receipt_produce(ngx_chat_receipt_t *rcp);
static void ngx_chat_receipt_lookup(ngx_chat_receipt_t *rcp);
static void ngx_chat_receipt_found(ngx_chat_store_rc_e rc, PGresult *res,
    void *data);
static ngx_int_t ngx_chat_typing_group(ngx_chat_ws_t *ws, uint64_t gid);
static void ngx_chat_gtyping_issue(ngx_chat_gtyping_t *ty);
static void ngx_chat_gtyping_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data);
static void ngx_chat_gtyping_filled(void *data, ngx_int_t rc);
static void ngx_chat_gtyping_done(ngx_chat_gtyping_t *ty);


/*
 * {"type":"receipt","id":...,"status":"delivered"|"read"}: only for a
 * message in the user's inbox; the receipt goes to Kafka first, then the
 * inbox moves on and the sender's devices hear of it (or find it on
 * their next connect).  A receipt that changes nothing is not sent on.
 *
 * "ids":[...] instead of "id" (CONTRACT v1.1, up to 100, checked by
 * chat_proto_decode()) is answered as if each id came in a receipt of its
 * own: each is checked, stored and told on its own, each failure is an
 * error frame carrying its id, and each counts towards the receipts
 * under way on the connection (the frame itself was metered once).
 */

ngx_int_t
ngx_chat_receipt(ngx_chat_ws_t *ws, chat_proto_msg_t *m)
{
    size_t     i;
    ngx_int_t  rc;

    for (i = 0; i < m->nids; i++) {
        rc = ngx_chat_receipt_one(ws, m->ids[i], m->ids_len[i], m->read);

        if (rc != NGX_OK || ws->done) {
            return rc;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_chat_receipt_one(ngx_chat_ws_t *ws, const char *id, size_t len,
    ngx_uint_t read)
{
    ngx_chat_redis_t    *rds;
    ngx_chat_receipt_t  *rcp;
    ngx_chat_worker_t   *w = ngx_chat_worker;

    /* the id is checked (chat_proto_decode): 1..NGX_CHAT_RECEIPT_ID */

    if (ngx_chat_route_channel() == NULL || w->kafka == NULL) {
        return ngx_chat_receipt_error(ws, "unavailable", "this node has no "
                                      "Redis or Kafka configured", id);
    }

    rds = ngx_chat_redis_for_user(ws->user_id);

    if (ws->nreceipts >= NGX_CHAT_RECEIPT_MAX_PENDING) {
        return ngx_chat_receipt_error(ws, "busy", "too many receipts under "
                                      "way on this connection", id);
    }

    if (rds
        && (ngx_chat_redis_pending(rds) + ngx_chat_batch_pending(rds)
            > NGX_CHAT_REDIS_BACKLOG
            || ngx_chat_redis_behind(rds)))
    {
        return ngx_chat_receipt_error(ws, "busy", "the server is "
                                      "overloaded, send it again", id);
    }

    rcp = ngx_calloc(sizeof(ngx_chat_receipt_t), ngx_cycle->log);
    if (rcp == NULL) {
        return NGX_ERROR;
    }

    rcp->op.ws = ws;
    rcp->by = ws->user_id;
    rcp->read = read;
    ngx_memcpy(rcp->id, id, len);
    rcp->id[len] = '\0';
    ngx_queue_insert_tail(&ws->ops, &rcp->op.queue);
    ws->nreceipts++;

    /* a group message this connection got: the group's log knows it */
    switch (ngx_chat_gsync_receipt(ws, rcp->id, read, &rcp->group,
                                   &rcp->from, &rcp->seq))
    {

    case NGX_OK:
        (void) ngx_snprintf((u_char *) rcp->conv, sizeof(rcp->conv),
                            "g:%uL%Z", rcp->group);
        ngx_chat_receipt_produce(rcp);
        return NGX_OK;

    case NGX_DONE:
        /* told already by this connection */
        ngx_chat_receipt_done(rcp);
        return NGX_OK;

    default:
        break;
    }

    rcp->cmd = ngx_chat_redis_command(rds, ngx_chat_receipt_checked, rcp,
                                      "HGET chat:inbox:{%llu} %s",
                                      (unsigned long long) ws->user_id,
                                      rcp->id);
    if (rcp->cmd == NULL) {
        ngx_chat_receipt_fail(rcp, "unavailable", "Redis is down");
    }

    return NGX_OK;
}


static void
ngx_chat_receipt_checked(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_receipt_t  *rcp = data;

    char                 state, conv[48];
    long long            seq;
    unsigned long long   from;

    rcp->cmd = NULL;

    if (rc != NGX_CHAT_STORE_OK) {
        ngx_chat_receipt_fail(rcp, "unavailable", "Redis did not answer");
        return;
    }

    if (reply->type != REDIS_REPLY_STRING) {
        /* not in the inbox: a group message got on another connection? */
        ngx_chat_receipt_lookup(rcp);
        return;
    }

    if (sscanf(reply->str, "%c %llu %lld %47s", &state, &from, &seq, conv)
        != 4)
    {
        ngx_chat_receipt_fail(rcp, "internal", "a broken inbox entry");
        return;
    }

    /* a receipt that changes nothing, e.g. from a second device */
    if (state == 'r' || (state == 'd' && !rcp->read)) {
        ngx_chat_receipt_done(rcp);
        return;
    }

    rcp->from = from;
    rcp->seq = seq;
    ngx_memcpy(rcp->conv, conv, sizeof(conv));

    ngx_chat_receipt_produce(rcp);
}


/*
 * A message that is neither in the user's inbox nor among the group
 * messages this connection got: a group message of one of the user's
 * groups, sent after it joined, got on an earlier connection (read
 * receipts come late)?  PostgreSQL knows it once chat-worker persist
 * stored it.
 */

#define NGX_CHAT_RECEIPT_GROUP_SQL                                           \
    "SELECT m.group_id, m.sender, m.seq FROM messages m "                  \
    "JOIN group_members gm ON gm.group_id = m.group_id "                   \
    "WHERE m.id = $1 AND gm.user_id = $2 AND m.sender <> $2 "              \
    "AND m.ts >= chat_ms(gm.joined_at)"

static void
ngx_chat_receipt_lookup(ngx_chat_receipt_t *rcp)
{
    u_char              buf[NGX_INT64_LEN];
    ngx_str_t           params[2];
    ngx_chat_worker_t  *w = ngx_chat_worker;

    params[0].data = (u_char *) rcp->id;
    params[0].len = ngx_strlen(rcp->id);
    params[1].data = buf;
    params[1].len = ngx_sprintf(buf, "%uL", rcp->by) - buf;

    if (w->pg == NULL
        || ngx_chat_pg_query(w->pg, NGX_CHAT_RECEIPT_GROUP_SQL, 2, params,
                             ngx_chat_receipt_found, rcp)
           == NULL)
    {
        ngx_chat_receipt_fail(rcp, "unknown_message", "no such message "
                              "was sent to you");
    }
}


static void
ngx_chat_receipt_found(ngx_chat_store_rc_e rc, PGresult *res, void *data)
{
    ngx_chat_receipt_t  *rcp = data;

    if (rc != NGX_CHAT_STORE_OK) {
        ngx_chat_receipt_fail(rcp, "unavailable", "the database did not "
                              "answer");
        return;
    }

    if (PQntuples(res) != 1) {
        ngx_chat_receipt_fail(rcp, "unknown_message", "no such message "
                              "was sent to you");
        return;
    }

    rcp->group = ngx_atoof((u_char *) PQgetvalue(res, 0, 0),
                           PQgetlength(res, 0, 0));
    rcp->from = ngx_atoof((u_char *) PQgetvalue(res, 0, 1),
                          PQgetlength(res, 0, 1));
    rcp->seq = ngx_atoof((u_char *) PQgetvalue(res, 0, 2),
                         PQgetlength(res, 0, 2));

    /* remembered by the connection: told once from here on */
    if (rcp->op.ws) {
        ngx_chat_gsync_remember(rcp->op.ws, rcp->id, rcp->group, rcp->from,
                                rcp->seq, rcp->read);
    }

    (void) ngx_snprintf((u_char *) rcp->conv, sizeof(rcp->conv), "g:%uL%Z",
                        rcp->group);

    ngx_chat_receipt_produce(rcp);
}


/* the receipt to Kafka (chat.receipts); told once it is there */

static void
ngx_chat_receipt_produce(ngx_chat_receipt_t *rcp)
{
    char                *payload;
    chat_record_t        rec;
    ngx_str_t            key, value;
    ngx_time_t          *tp;
    ngx_chat_worker_t   *w = ngx_chat_worker;

    tp = ngx_timeofday();
    rcp->ts = (int64_t) tp->sec * 1000 + tp->msec;

    ngx_memzero(&rec, sizeof(chat_record_t));
    (void) ngx_cpystrn((u_char *) rec.id, (u_char *) rcp->id, sizeof(rec.id));
    (void) ngx_cpystrn((u_char *) rec.conv, (u_char *) rcp->conv,
                       sizeof(rec.conv));
    rec.seq = rcp->seq;
    rec.from = (int64_t) rcp->from;
    rec.by = (int64_t) rcp->by;
    rec.read = rcp->read;
    rec.ts = rcp->ts;

    payload = chat_record_receipt_dump(&rec);

    if (payload == NULL) {
        ngx_chat_receipt_fail(rcp, "internal", "out of memory");
        return;
    }

    key.data = (u_char *) rcp->conv;
    key.len = ngx_strlen(rcp->conv);
    value.data = (u_char *) payload;
    value.len = ngx_strlen(payload);

    rcp->kmsg = ngx_chat_kafka_produce(w->kafka, NGX_CHAT_TOPIC_RECEIPTS, 0,
                                       &key, &value,
                                       ngx_chat_receipt_stored, rcp);
    free(payload);

    if (rcp->kmsg == NULL) {
        ngx_chat_receipt_fail(rcp, "unavailable", "Kafka refused the "
                              "receipt");
    }
}


static void
ngx_chat_receipt_stored(ngx_chat_store_rc_e rc, int32_t partition,
    int64_t offset, void *data)
{
    ngx_chat_receipt_t  *rcp = data;

    char                *text;
    u_char              *p;
    ngx_str_t            keys[5], args[7];
    ngx_uint_t           i, nkeys, nargs, taken;
    ngx_chat_redis_t    *rds;
    u_char               buf[10 * NGX_CHAT_BATCH_STR];

    static const char   *names[] = { "inbox", "inboxq", "inboxd", "routes",
                                     "rbox" };

    rcp->kmsg = NULL;

    if (rc != NGX_CHAT_STORE_OK) {
        ngx_chat_receipt_fail(rcp, "unavailable", "the receipt was not "
                              "stored, send it again");
        return;
    }

    text = chat_frame_receipt(rcp->id, (int64_t) rcp->by, rcp->read,
                              rcp->ts);

    if (text == NULL) {
        ngx_chat_receipt_done(rcp);
        return;
    }

    if (rcp->group) {
        ngx_chat_receipt_group(rcp, text);
        return;
    }

    rds = ngx_chat_redis_for_user(rcp->by);

    p = buf;

    for (i = 0; i < 3; i++) {
        p = ngx_chat_batch_str(&keys[i], p, "chat:%s:{%uL}", names[i],
                               rcp->by);
    }

    args[0].data = (u_char *) rcp->id;
    args[0].len = ngx_strlen(rcp->id);
    ngx_str_set(&args[1], "d");

    if (rcp->read) {
        ngx_str_set(&args[1], "r");
    }

    p = ngx_chat_batch_str(&args[2], p, "%d", (int) NGX_CHAT_INBOX_SEEN);
    p = ngx_chat_batch_str(&args[3], p, "%d", (int) NGX_CHAT_INBOX_TTL);

    nkeys = 3;
    nargs = 4;

    if (rds != NULL && rds == ngx_chat_redis_for_user(rcp->from)) {
        /* the sender's keys are there too: the frame goes in the call */
        for (i = 3; i < 5; i++) {
            p = ngx_chat_batch_str(&keys[i], p, "chat:%s:{%uL}",
                                   names[i], rcp->from);
        }

        p = ngx_chat_batch_str(&args[4], p, "%uL", rcp->from);
        args[5].data = (u_char *) text;
        args[5].len = ngx_strlen(text);
        p = ngx_chat_batch_str(&args[6], p, "%d",
                               (int) NGX_CHAT_RBOX_MAX);

        nkeys = 5;
        nargs = 7;
    }

    taken = ngx_chat_batch_add(rds, NGX_CHAT_SCRIPT_RECEIPT, nkeys, keys,
                               nargs, args, ngx_chat_receipt_applied, rcp)
            != NULL;

    if (taken && nkeys == 3) {
        /* told from ngx_chat_receipt_applied(), on the sender's server */
        rcp->text = text;
        text = NULL;
    }

    free(text);

    if (!taken) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: receipt for %s is in Kafka, but Redis is "
                      "down: the sender hears of it from the history",
                      rcp->id);
        ngx_chat_receipt_done(rcp);
    }
}


static void
ngx_chat_receipt_applied(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_receipt_t  *rcp = data;

    rcp->cmd = NULL;

    /* 1: moved forward, the sender on another server still to be told */
    if (rc == NGX_CHAT_STORE_OK && reply->type == REDIS_REPLY_INTEGER
        && reply->integer == 1 && rcp->text)
    {
        (void) ngx_chat_relay(rcp->from, rcp->text, ngx_strlen(rcp->text),
                              0, 1, ngx_chat_script_reply,
                              "a receipt to the sender");
    }

    /* else raced with another device, told already, or Redis failed */
    ngx_chat_receipt_done(rcp);
}


/*
 * A receipt for a group message, once Kafka has it (who sent the message
 * and its seq the connection remembers, ngx_chat_gsync.c): the member's
 * positions move and the frame goes to the sender's devices in one
 * GRECEIPT item when the sender's keys are on the group's server, else
 * through the sender's server afterwards.  "moved" or "same", the frame
 * goes on either way: the positions are per member and in log order,
 * which may differ from the order of seq (two senders), so an older
 * message's receipt after a newer one's may move nothing and still tell
 * the sender something new; what one connection told is not told again
 * (ngx_chat_gsync_receipt()).
 */

static void
ngx_chat_receipt_group(ngx_chat_receipt_t *rcp, char *text)
{
    u_char            *p;
    ngx_str_t          keys[6], args[8];
    ngx_uint_t         nkeys, nargs;
    ngx_chat_redis_t  *rds;
    u_char             buf[12 * NGX_CHAT_BATCH_STR];

    rds = ngx_chat_redis_for_group(rcp->group);

    p = buf;
    p = ngx_chat_group_key(&keys[0], p, "glogq", rcp->group);
    p = ngx_chat_group_key(&keys[1], p, "gpos", rcp->group);
    p = ngx_chat_group_key(&keys[2], p, "gread", rcp->group);
    p = ngx_chat_group_key(&keys[3], p, "gspos", rcp->group);

    args[0].data = (u_char *) rcp->id;
    args[0].len = ngx_strlen(rcp->id);
    p = ngx_chat_batch_str(&args[1], p, "%uL", rcp->by);
    ngx_str_set(&args[2], "d");

    if (rcp->read) {
        ngx_str_set(&args[2], "r");
    }

    p = ngx_chat_batch_str(&args[3], p, "%d", NGX_CHAT_GROUP_LOG_TTL);
    p = ngx_chat_batch_str(&args[4], p, "%L", rcp->seq);

    nkeys = 4;
    nargs = 5;

    if (rds != NULL && rds == ngx_chat_redis_for_user(rcp->from)) {
        /* the sender's keys are there too: the frame goes in the call */
        p = ngx_chat_batch_str(&keys[4], p, "chat:routes:{%uL}", rcp->from);
        p = ngx_chat_batch_str(&keys[5], p, "chat:rbox:{%uL}", rcp->from);
        p = ngx_chat_batch_str(&args[5], p, "%uL", rcp->from);
        args[6].data = (u_char *) text;
        args[6].len = ngx_strlen(text);
        (void) ngx_chat_batch_str(&args[7], p, "%d",
                                  (int) NGX_CHAT_RBOX_MAX);
        nkeys = 6;
        nargs = 8;
    }

    if (rds == NULL
        || ngx_chat_batch_add(rds, NGX_CHAT_SCRIPT_GRECEIPT, nkeys, keys,
                              nargs, args, ngx_chat_receipt_grouped, rcp)
           == NULL)
    {
        free(text);
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: receipt for %s is in Kafka, but Redis is "
                      "down: the sender hears of it from the history",
                      rcp->id);
        ngx_chat_receipt_done(rcp);
        return;
    }

    if (nkeys == 4) {
        /* told from ngx_chat_receipt_grouped(), on the sender's server */
        rcp->text = text;
        return;
    }

    free(text);
}


static void
ngx_chat_receipt_grouped(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_receipt_t  *rcp = data;

    if (rc == NGX_CHAT_STORE_OK && reply->type == REDIS_REPLY_STRING
        && rcp->text)
    {
        (void) ngx_chat_relay(rcp->from, rcp->text, ngx_strlen(rcp->text),
                              0, 1, ngx_chat_script_reply,
                              "a group receipt to the sender");
    }

    ngx_chat_receipt_done(rcp);
}


static void
ngx_chat_receipt_fail(ngx_chat_receipt_t *rcp, const char *code,
    const char *message)
{
    if (rcp->op.ws) {
        (void) ngx_chat_receipt_error(rcp->op.ws, code, message, rcp->id);
    }

    ngx_chat_receipt_done(rcp);
}


/* an error frame about the receipt for message id */

static ngx_int_t
ngx_chat_receipt_error(ngx_chat_ws_t *ws, const char *code,
    const char *message, const char *id)
{
    char       *err;
    ngx_int_t   rc;

    err = chat_frame_error(code, message, NULL, id, -1);
    if (err == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_chat_ws_send_text(ws, (u_char *) err, ngx_strlen(err));
    free(err);

    return rc;
}


static void
ngx_chat_receipt_done(ngx_chat_receipt_t *rcp)
{
    if (rcp->op.ws) {
        ngx_queue_remove(&rcp->op.queue);
        rcp->op.ws->nreceipts--;
    }

    free(rcp->text);
    ngx_free(rcp);
}


/*
 * {"type":"typing","to":U}: to U's connections now, or to nobody; never
 * stored.  One per second per connection is passed on, the rest dropped.
 * U must exist (CONTRACT section 3: else an error frame), as for a send:
 * the worker's memory of users, else PostgreSQL; such a lookup costs a
 * send's worth of the connection's chat_send_rate.
 */

ngx_int_t
ngx_chat_typing(ngx_chat_ws_t *ws, chat_proto_msg_t *m)
{
    u_char              buf[NGX_INT64_LEN];
    ngx_int_t           known;
    ngx_str_t           param;
    ngx_msec_t          retry;
    ngx_chat_typing_t  *ty;
    ngx_chat_worker_t  *w = ngx_chat_worker;

    if (ngx_chat_route_channel() == NULL) {
        return ngx_chat_ws_error(ws, "unavailable", "this node has no "
                                 "Redis configured", NULL);
    }

    if (m->group) {
        return ngx_chat_typing_group(ws, m->group);
    }

    known = ngx_chat_user_known(m->to);

    if (known == 0) {
        return ngx_chat_ws_error(ws, "not_found", "no such user", NULL);
    }

    if (known == 1) {
        return ngx_chat_typing_relay(ws, m->to);
    }

    if (w->pg == NULL) {
        return ngx_chat_ws_error(ws, "unavailable", "this node has no "
                                 "PostgreSQL configured", NULL);
    }

    if (ngx_chat_ws_meter(&ws->send_tat, ws->conf->send_interval,
                          ws->conf->send_burst, &retry)
        != NGX_OK)
    {
        return ngx_chat_ws_rate_limited(ws, "too many lookups, slow down",
                                        retry, NULL);
    }

    ty = ngx_calloc(sizeof(ngx_chat_typing_t), ngx_cycle->log);
    if (ty == NULL) {
        return NGX_ERROR;
    }

    ty->op.ws = ws;
    ty->to = m->to;
    ngx_queue_insert_tail(&ws->ops, &ty->op.queue);

    param.data = buf;
    param.len = ngx_sprintf(buf, "%uL", ty->to) - buf;

    if (ngx_chat_pg_query(w->pg, "SELECT 1 FROM users WHERE id = $1", 1,
                          &param, ngx_chat_typing_checked, ty)
        == NULL)
    {
        ngx_queue_remove(&ty->op.queue);
        ngx_free(ty);
        return ngx_chat_ws_error(ws, "unavailable", "the database is down",
                                 NULL);
    }

    return NGX_OK;
}


static void
ngx_chat_typing_checked(ngx_chat_store_rc_e rc, PGresult *res, void *data)
{
    ngx_chat_typing_t  *ty = data;

    ngx_chat_ws_t  *ws = ty->op.ws;

    if (rc == NGX_CHAT_STORE_OK) {
        ngx_chat_user_remember(ty->to, PQntuples(res) > 0);
    }

    if (ws) {
        ngx_queue_remove(&ty->op.queue);

        if (rc != NGX_CHAT_STORE_OK) {
            (void) ngx_chat_ws_error(ws, "unavailable", "the database did "
                                     "not answer", NULL);

        } else if (PQntuples(res) == 0) {
            (void) ngx_chat_ws_error(ws, "not_found", "no such user", NULL);

        } else {
            (void) ngx_chat_typing_relay(ws, ty->to);
        }
    }

    ngx_free(ty);
}


static ngx_int_t
ngx_chat_typing_relay(ngx_chat_ws_t *ws, uint64_t to)
{
    char  *text;

    if (ws->typing_at && ngx_current_msec - ws->typing_at < 1000) {
        return NGX_OK;
    }

    ws->typing_at = ngx_current_msec ? ngx_current_msec : 1;

    text = chat_frame_typing((int64_t) ws->user_id, (int64_t) to);

    if (text == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_chat_relay(to, text, ngx_strlen(text), 0, 0, NULL, NULL);
    free(text);

    return NGX_OK;
}


/*
 * {"type":"typing","group":G}: to the other members' connections (GTYPE
 * checks membership on the group's server; a member list Redis does not
 * have is read first), at most one a second per connection.
 */

static ngx_int_t
ngx_chat_typing_group(ngx_chat_ws_t *ws, uint64_t gid)
{
    char                *text;
    size_t               len;
    ngx_chat_gtyping_t  *ty;

    if (ws->typing_at && ngx_current_msec - ws->typing_at < 1000) {
        return NGX_OK;
    }

    ws->typing_at = ngx_current_msec ? ngx_current_msec : 1;

    text = chat_frame_typing_group((int64_t) ws->user_id, (int64_t) gid);
    if (text == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(text);

    ty = ngx_calloc(sizeof(ngx_chat_gtyping_t) + len, ngx_cycle->log);
    if (ty == NULL) {
        free(text);
        return NGX_ERROR;
    }

    ty->op.ws = ws;
    ty->from = ws->user_id;
    ty->group = gid;
    ty->len = len;
    ngx_memcpy(ty->text, text, len + 1);
    free(text);

    ngx_queue_insert_tail(&ws->ops, &ty->op.queue);

    ngx_chat_gtyping_issue(ty);

    return NGX_OK;
}


static void
ngx_chat_gtyping_issue(ngx_chat_gtyping_t *ty)
{
    u_char            *p;
    ngx_str_t          keys[2], args[4];
    ngx_chat_redis_t  *rds;
    u_char             buf[6 * NGX_CHAT_BATCH_STR];

    rds = ngx_chat_redis_for_group(ty->group);

    p = buf;
    p = ngx_chat_group_key(&keys[0], p, "gm", ty->group);
    p = ngx_chat_group_key(&keys[1], p, "gv", ty->group);
    p = ngx_chat_batch_str(&args[0], p, "%uL", ty->group);
    (void) ngx_chat_batch_str(&args[1], p, "%uL", ty->from);
    args[2].data = (u_char *) ty->text;
    args[2].len = ty->len;
    ngx_str_set(&args[3], "0");

    if (ngx_chat_group_all_local()) {
        ngx_str_set(&args[3], "1");
    }

    ty->item = rds ? ngx_chat_batch_add(rds, NGX_CHAT_SCRIPT_GTYPE, 2, keys,
                                        4, args, ngx_chat_gtyping_reply, ty)
                   : NULL;

    if (ty->item == NULL) {
        if (ty->op.ws) {
            (void) ngx_chat_ws_error(ty->op.ws, "unavailable",
                                     "Redis is down", NULL);
        }

        ngx_chat_gtyping_done(ty);
    }
}


static void
ngx_chat_gtyping_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_gtyping_t  *ty = data;

    char         head[NGX_INT64_LEN + 3];
    redisReply  *kind;

    ty->item = NULL;

    if (rc != NGX_CHAT_STORE_OK || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        if (ty->op.ws) {
            (void) ngx_chat_ws_error(ty->op.ws, "unavailable",
                                     "Redis did not answer", NULL);
        }

        ngx_chat_gtyping_done(ty);
        return;
    }

    kind = reply->element[0];

    if (kind->len == 4 && ngx_strncmp(kind->str, "miss", 4) == 0
        && reply->elements == 2
        && reply->element[1]->type == REDIS_REPLY_STRING
        && ty->fills++ < 3
        && ngx_chat_group_fill(ty->group, reply->element[1]->str,
                               reply->element[1]->len,
                               ngx_chat_gtyping_filled, ty)
           == NGX_OK)
    {
        return;
    }

    if (kind->len == 4 && ngx_strncmp(kind->str, "miss", 4) == 0) {
        /* the member list could not be filled */
        if (ty->op.ws) {
            (void) ngx_chat_ws_error(ty->op.ws, "unavailable", "the group's "
                                     "members could not be read", NULL);
        }

    } else if (kind->len == 2 && ngx_strncmp(kind->str, "ok", 2) == 0) {
        if (reply->elements == 2) {
            (void) ngx_snprintf((u_char *) head, sizeof(head), "%uL 0%Z",
                                ty->from);
            ngx_chat_group_publish(ty->group, 0, "-", head, ty->text,
                                   ty->len, 0, ty->from, reply->element[1]);
        }

    } else if (ty->op.ws) {
        (void) ngx_chat_ws_error(ty->op.ws, "forbidden", "you are not a "
                                 "member of this group", NULL);
    }

    ngx_chat_gtyping_done(ty);
}


static void
ngx_chat_gtyping_filled(void *data, ngx_int_t rc)
{
    ngx_chat_gtyping_t  *ty = data;

    if (rc == NGX_OK) {
        ngx_chat_gtyping_issue(ty);
        return;
    }

    if (ty->op.ws) {
        (void) ngx_chat_ws_error(ty->op.ws,
                                 rc == NGX_DECLINED ? "not_found"
                                                    : "unavailable",
                                 rc == NGX_DECLINED ? "no such group"
                                                    : "the group's members "
                                                      "could not be read",
                                 NULL);
    }

    ngx_chat_gtyping_done(ty);
}


static void
ngx_chat_gtyping_done(ngx_chat_gtyping_t *ty)
{
    if (ty->op.ws) {
        ngx_queue_remove(&ty->op.queue);
    }

    ngx_free(ty);
}
