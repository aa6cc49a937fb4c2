
/*
 * Copyright (C) ngx_chat authors
 *
 * Store-and-forward through Redis: a durable message goes through one Lua
 * script on the recipient's server that, atomically, appends it to the
 * recipient's inbox and publishes it to the recipient's routes (the
 * connection's side, the mirror script, is in ngx_chat_sync.c).  What
 * Redis refuses is retried; a message given up leaves its recipient's
 * inbox marked incomplete, so that the next connection refills it from
 * PostgreSQL.
 *
 * The inbox keeps what the user has not acknowledged as delivered
 * (chat:inboxq:{user}) and, for receipts, a bounded memory of what was
 * delivered or read (chat:inboxd:{user}); entries are in chat:inbox:{user}
 * as "<state> <from> <seq> <conv> <frame>" (state u, d or r; the frame
 * only while undelivered).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"
#include "ngx_chat_route.h"
#include "ngx_chat_deliver.h"
#include "ngx_chat_lua.h"
#include "ngx_chat_batch.h"


/*
 * A user whose inbox misses a message that was given up: its completeness
 * marker goes, so that the next connection refills from PostgreSQL.
 */
typedef struct {
    uint64_t                   user_id;
    ngx_uint_t                 inflight;    /* a DEL is under way */
} ngx_chat_lost_t;


typedef struct {
    ngx_event_t                retry;       /* deliveries Redis refused */
    ngx_queue_t                retries;
    ngx_uint_t                 nretries;
    ngx_chat_lost_t           *lost;        /* inboxes missing a message */
    ngx_uint_t                 nlost;
    ngx_event_t                lost_timer;
    ngx_log_t                 *log;
} ngx_chat_deliver_t;


/* a durable message on its way into the recipient's inbox */
typedef struct {
    ngx_queue_t                queue;       /* in the retry queue */
    uint64_t                   from;
    uint64_t                   to;
    uint64_t                   except;      /* the sending connection */
    ngx_uint_t                 both;        /* sender on the same server */
    ngx_msec_t                 since;
    size_t                     len;
    char                       id[CHAT_ID_LEN + 1];
    char                       head[96];    /* "<from> <seq> <conv>" */
    char                       text[1];     /* the frame, NUL-terminated */
} ngx_chat_delivery_t;


static void ngx_chat_delivery_issue(ngx_chat_delivery_t *dv);
static void ngx_chat_delivery_reply(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_delivery_retry(ngx_chat_delivery_t *dv);
static void ngx_chat_delivery_retry_handler(ngx_event_t *ev);
static void ngx_chat_lost_add(uint64_t user_id);
static void ngx_chat_lost_handler(ngx_event_t *ev);
static void ngx_chat_lost_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data);


static ngx_chat_deliver_t  *ngx_chat_deliver;


ngx_int_t
ngx_chat_deliver_init(ngx_cycle_t *cycle)
{
    ngx_chat_deliver_t  *d;

    d = ngx_calloc(sizeof(ngx_chat_deliver_t), cycle->log);
    if (d == NULL) {
        return NGX_ERROR;
    }

    d->log = cycle->log;

    ngx_queue_init(&d->retries);
    d->retry.handler = ngx_chat_delivery_retry_handler;
    d->retry.data = d;
    d->retry.log = cycle->log;
    d->retry.cancelable = 1;

    d->lost_timer.handler = ngx_chat_lost_handler;
    d->lost_timer.data = d;
    d->lost_timer.log = cycle->log;
    d->lost_timer.cancelable = 1;

    ngx_chat_deliver = d;

    return NGX_OK;
}


void
ngx_chat_deliver_exit(void)
{
    ngx_uint_t            i;
    ngx_queue_t          *q;
    ngx_chat_deliver_t   *d = ngx_chat_deliver;
    ngx_chat_delivery_t  *dv;

    if (d == NULL) {
        return;
    }

    ngx_chat_deliver = NULL;

    if (d->retry.timer_set) {
        ngx_del_timer(&d->retry);
    }

    if (d->lost_timer.timer_set) {
        ngx_del_timer(&d->lost_timer);
    }

    for (i = 0; i < d->nlost; i++) {
        ngx_log_error(NGX_LOG_ERR, d->log, 0,
                      "chat: the inbox of user %uL misses messages and is "
                      "still marked complete: the worker exits",
                      d->lost[i].user_id);
    }

    ngx_free(d->lost);

    while (!ngx_queue_empty(&d->retries)) {
        q = ngx_queue_head(&d->retries);
        ngx_queue_remove(q);
        dv = ngx_queue_data(q, ngx_chat_delivery_t, queue);

        ngx_log_error(NGX_LOG_ERR, d->log, 0,
                      "chat: message %s is in Kafka but not in the inbox: "
                      "the worker exits", dv->id);
        ngx_free(dv);
    }

    ngx_free(d);
}


void
ngx_chat_deliver_message(uint64_t from, uint64_t to, const char *id,
    int64_t seq, const char *conv, const char *text, size_t len,
    ngx_chat_ws_t *ws)
{
    char                   head[96];
    uint64_t               except;
    ngx_uint_t             both;
    ngx_chat_redis_t      *rds;
    ngx_chat_delivery_t   *dv;
    ngx_chat_deliver_t    *d = ngx_chat_deliver;

    if (d == NULL) {
        return;
    }

    (void) ngx_snprintf((u_char *) head, sizeof(head), "%uL %L %s%Z",
                        from, seq, conv);
    except = ws ? ws->conn_id : 0;
    rds = ngx_chat_redis_for_user(to);

    /* a note to self is in the inbox already: no copy to the others */
    both = (from != to && rds == ngx_chat_redis_for_user(from));

    dv = ngx_alloc(sizeof(ngx_chat_delivery_t) + len + 1, d->log);
    if (dv == NULL) {
        ngx_log_error(NGX_LOG_ALERT, d->log, 0,
                      "chat: message %s to %uL is in Kafka but not in the "
                      "inbox: out of memory", id, to);

    } else {
        dv->from = from;
        dv->to = to;
        dv->except = except;
        dv->both = both;
        dv->since = ngx_current_msec;
        ngx_cpystrn((u_char *) dv->id, (u_char *) id, sizeof(dv->id));
        ngx_cpystrn((u_char *) dv->head, (u_char *) head, sizeof(dv->head));
        dv->len = len;
        ngx_memcpy(dv->text, text, len);
        dv->text[len] = '\0';

        ngx_chat_delivery_issue(dv);
    }

    /* the sender's other devices, on another server */
    if (from != to && !both) {
        (void) ngx_chat_relay(from, text, len, except, 0,
                              ngx_chat_script_reply,
                              "delivery to the sender's devices");
    }
}


/*
 * DELIVER for one message, again and again while Redis is down or slow:
 * the message is acknowledged and in Kafka, and DELIVER is idempotent on
 * its id.  A message that Redis did not take for chat_delivery_timeout
 * is given up (logged); it stays in Kafka and PostgreSQL, and the
 * recipient's inbox is no longer taken for complete (ngx_chat_lost_add()):
 * the next connection or sync reads it from PostgreSQL.
 */

static void
ngx_chat_delivery_issue(ngx_chat_delivery_t *dv)
{
    u_char             *p;
    ngx_str_t           keys[6], args[9];
    ngx_uint_t          i, nkeys, nargs;
    const char         *channel;
    ngx_chat_redis_t   *rds;
    u_char              buf[10 * NGX_CHAT_BATCH_STR];

    static const char  *names[] = { "routes", "inbox", "inboxq", "inboxn",
                                    "inboxok" };

    channel = ngx_chat_route_channel();
    rds = ngx_chat_redis_for_user(dv->to);

    p = buf;

    for (i = 0; i < 5; i++) {
        p = ngx_chat_batch_str(&keys[i], p, "chat:%s:{%uL}", names[i],
                               dv->to);
    }

    nkeys = 5;

    p = ngx_chat_batch_str(&args[0], p, "%uL", dv->to);
    args[1].data = (u_char *) dv->id;
    args[1].len = ngx_strlen(dv->id);
    args[2].data = (u_char *) dv->head;
    args[2].len = ngx_strlen(dv->head);
    args[3].data = (u_char *) dv->text;
    args[3].len = dv->len;
    p = ngx_chat_batch_str(&args[4], p, "%d", (int) NGX_CHAT_INBOX_MAX);
    p = ngx_chat_batch_str(&args[5], p, "%d", (int) NGX_CHAT_INBOX_TTL);
    nargs = 6;

    if (dv->both) {
        p = ngx_chat_batch_str(&keys[5], p, "chat:routes:{%uL}", dv->from);
        nkeys = 6;

        p = ngx_chat_batch_str(&args[6], p, "%uL", dv->from);

        if (dv->except) {
            args[7].data = (u_char *) channel;
            args[7].len = ngx_strlen(channel);

        } else {
            ngx_str_set(&args[7], "-");
        }

        p = ngx_chat_batch_str(&args[8], p, "%uL", dv->except);
        nargs = 9;
    }

    if (ngx_chat_batch_add(rds, NGX_CHAT_SCRIPT_DELIVER, nkeys, keys, nargs,
                           args, ngx_chat_delivery_reply, dv)
        == NULL)
    {
        ngx_chat_delivery_retry(dv);
    }
}


static void
ngx_chat_delivery_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_delivery_t  *dv = data;

    if (rc == NGX_CHAT_STORE_OK || ngx_chat_deliver == NULL) {
        ngx_free(dv);
        return;
    }

    ngx_chat_delivery_retry(dv);
}


static void
ngx_chat_delivery_retry(ngx_chat_delivery_t *dv)
{
    ngx_chat_deliver_t  *d = ngx_chat_deliver;

    if (d == NULL || ngx_exiting || ngx_terminate
        || ngx_current_msec - dv->since
           > ngx_chat_worker->conf->delivery_timeout
        || d->nretries >= NGX_CHAT_DELIVERY_MAX_RETRIES)
    {
        ngx_log_error(NGX_LOG_ERR, d ? d->log : ngx_cycle->log, 0,
                      "chat: message %s to %uL is in Kafka but not in the "
                      "inbox: Redis did not take it, the inbox is refilled "
                      "from PostgreSQL", dv->id, dv->to);

        if (d) {
            ngx_chat_lost_add(dv->to);
        }

        ngx_free(dv);
        return;
    }

    if (d->nretries++ == 0) {
        ngx_log_error(NGX_LOG_WARN, d->log, 0,
                      "chat: Redis did not take a delivery, retrying");
    }

    ngx_queue_insert_tail(&d->retries, &dv->queue);

    if (!d->retry.timer_set) {
        ngx_add_timer(&d->retry, NGX_CHAT_DELIVERY_RETRY);
    }
}


static void
ngx_chat_delivery_retry_handler(ngx_event_t *ev)
{
    ngx_queue_t           batch, *q;
    ngx_chat_deliver_t   *d = ev->data;
    ngx_chat_delivery_t  *dv;

    if (ngx_queue_empty(&d->retries)) {
        return;
    }

    /* what fails again goes to the next round */
    batch = d->retries;
    batch.next->prev = &batch;
    batch.prev->next = &batch;
    ngx_queue_init(&d->retries);
    d->nretries = 0;

    while (!ngx_queue_empty(&batch)) {
        q = ngx_queue_head(&batch);
        ngx_queue_remove(q);
        dv = ngx_queue_data(q, ngx_chat_delivery_t, queue);
        ngx_chat_delivery_issue(dv);
    }
}


/*
 * The recipient of a message given up: its marker chat:inboxok:{user} is
 * deleted as soon as its Redis server answers, with no time limit; till
 * then this worker sets no marker for it (ngx_chat_deliver_lost()).  The
 * set is bounded; a user that does not fit is logged.
 */

static void
ngx_chat_lost_add(uint64_t user_id)
{
    ngx_chat_lost_t     *lost;
    ngx_chat_deliver_t  *d = ngx_chat_deliver;

    if (ngx_chat_deliver_lost(user_id)) {
        return;
    }

    if (d->lost == NULL) {
        d->lost = ngx_alloc(NGX_CHAT_LOST_MAX * sizeof(ngx_chat_lost_t),
                            d->log);
    }

    if (d->lost == NULL || d->nlost == NGX_CHAT_LOST_MAX) {
        ngx_log_error(NGX_LOG_ALERT, d->log, 0,
                      "chat: the inbox of user %uL misses messages and "
                      "stays marked complete: too many such users",
                      user_id);
        return;
    }

    lost = &d->lost[d->nlost++];
    lost->user_id = user_id;
    lost->inflight = 0;

    if (!d->lost_timer.timer_set) {
        ngx_add_timer(&d->lost_timer, 1);
    }
}


ngx_uint_t
ngx_chat_deliver_lost(uint64_t user_id)
{
    ngx_uint_t           i;
    ngx_chat_deliver_t  *d = ngx_chat_deliver;

    if (d == NULL) {
        return 0;
    }

    for (i = 0; i < d->nlost; i++) {
        if (d->lost[i].user_id == user_id) {
            return 1;
        }
    }

    return 0;
}


static void
ngx_chat_lost_handler(ngx_event_t *ev)
{
    ngx_uint_t           i;
    ngx_chat_lost_t     *lost;
    ngx_chat_redis_t    *rds;
    ngx_chat_deliver_t  *d = ev->data;

    for (i = 0; i < d->nlost; i++) {
        lost = &d->lost[i];

        if (lost->inflight) {
            continue;
        }

        rds = ngx_chat_redis_for_user(lost->user_id);

        if (rds
            && ngx_chat_redis_command(rds, ngx_chat_lost_reply,
                                      (void *) (uintptr_t) lost->user_id,
                                      "DEL chat:inboxok:{%llu}",
                                      (unsigned long long) lost->user_id))
        {
            lost->inflight = 1;
        }
    }

    if (d->nlost && !ngx_exiting && !ngx_terminate) {
        ngx_add_timer(&d->lost_timer, NGX_CHAT_DELIVERY_RETRY);
    }
}


static void
ngx_chat_lost_reply(ngx_chat_store_rc_e rc, redisReply *reply, void *data)
{
    uint64_t             user_id = (uintptr_t) data;
    ngx_uint_t           i;
    ngx_chat_deliver_t  *d = ngx_chat_deliver;

    if (d == NULL) {
        return;
    }

    for (i = 0; i < d->nlost; i++) {
        if (d->lost[i].user_id != user_id) {
            continue;
        }

        if (rc != NGX_CHAT_STORE_OK) {
            d->lost[i].inflight = 0;
            return;
        }

        ngx_log_error(NGX_LOG_WARN, d->log, 0,
                      "chat: the inbox of user %uL is refilled from "
                      "PostgreSQL at its next connection", user_id);

        d->lost[i] = d->lost[--d->nlost];
        return;
    }
}
