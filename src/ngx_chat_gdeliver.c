
/*
 * Copyright (C) ngx_chat authors
 *
 * Group fan-out.  A durable group message goes through one GDELIVER item
 * on the group's Redis server: appended once to the group's log
 * (chat:glog:{g:G}, positions in chat:glogq, see gdeliver.lua) and, in
 * the same run, published once per worker channel that holds members'
 * connections, as one line naming that worker's members
 * (ngx_chat_channel.c hands it to ngx_chat_gsync.c, which writes it to
 * their devices).  With several Redis servers the members' routes are
 * spread: GDELIVER returns the members and each server gets one GPUB.
 * A group with at least twice as many members as there are worker
 * channels skips the routes: one line naming all members goes to every
 * worker channel from the group's server (every worker subscribes on
 * every server), and each worker writes to the members it holds.
 * Members offline read the log when they connect (ngx_chat_gsync.c).
 *
 * A delivery that Redis refuses or misses the member list for is tried
 * again, a second apart, NGX_CHAT_GDELIVER_TRIES times; the message is in
 * Kafka and PostgreSQL whatever happens here.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"
#include "ngx_chat_route.h"
#include "ngx_chat_group.h"
#include "ngx_chat_gdeliver.h"
#include "ngx_chat_lua.h"
#include "ngx_chat_batch.h"
#include "chat_id.h"


typedef struct {
    ngx_queue_t                queue;       /* in ngx_chat_gdeliveries */
    ngx_event_t                retry;
    uint64_t                   gid;
    uint64_t                   except;      /* the sending connection */
    ngx_uint_t                 tries;
    ngx_chat_batch_item_t     *item;
    ngx_uint_t                 fills;       /* of the member list */
    size_t                     len;
    char                       id[CHAT_ID_LEN + 1];
    char                       head[128];   /* "<from> <seq> <conv> <ts>" */
    char                       fs[48];      /* "<from> <seq>" */
    char                       text[1];     /* the frame */
} ngx_chat_gdelivery_t;


static void ngx_chat_gdelivery_issue(ngx_chat_gdelivery_t *gd);
static void ngx_chat_gdelivery_reply(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_gdelivery_filled(void *data, ngx_int_t rc);
static void ngx_chat_gdelivery_later(ngx_chat_gdelivery_t *gd,
    const char *why);
static void ngx_chat_gdelivery_retry(ngx_event_t *ev);
static void ngx_chat_gdelivery_free(ngx_chat_gdelivery_t *gd);


static ngx_queue_t  ngx_chat_gdeliveries = { &ngx_chat_gdeliveries,
                                             &ngx_chat_gdeliveries };


void
ngx_chat_gdeliver_message(uint64_t from, uint64_t gid, const char *id,
    int64_t seq, int64_t ts, const char *conv, const char *text, size_t len,
    ngx_chat_ws_t *ws)
{
    ngx_chat_gdelivery_t  *gd;

    gd = ngx_calloc(sizeof(ngx_chat_gdelivery_t) + len, ngx_cycle->log);
    if (gd == NULL) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "chat: group message %s is in Kafka but not in the "
                      "group's log: out of memory", id);
        return;
    }

    gd->gid = gid;
    gd->except = ws ? ws->conn_id : 0;
    gd->len = len;
    ngx_memcpy(gd->text, text, len);
    gd->text[len] = '\0';

    (void) ngx_cpystrn((u_char *) gd->id, (u_char *) id, sizeof(gd->id));
    (void) ngx_snprintf((u_char *) gd->head, sizeof(gd->head),
                        "%uL %L %s %L%Z", from, seq, conv, ts);
    (void) ngx_snprintf((u_char *) gd->fs, sizeof(gd->fs), "%uL %L%Z",
                        from, seq);

    gd->retry.handler = ngx_chat_gdelivery_retry;
    gd->retry.data = gd;
    gd->retry.log = ngx_cycle->log;
    gd->retry.cancelable = 1;

    ngx_queue_insert_tail(&ngx_chat_gdeliveries, &gd->queue);

    ngx_chat_gdelivery_issue(gd);
}


static void
ngx_chat_gdelivery_issue(ngx_chat_gdelivery_t *gd)
{
    u_char            *p;
    ngx_str_t          keys[6], args[9];
    ngx_uint_t         i, all;
    const char        *channel;
    ngx_chat_redis_t  *rds;
    u_char             buf[12 * NGX_CHAT_BATCH_STR];

    static const char  *names[] = { "glog", "glogq", "glogn", "gm", "gv",
                                    "glogf" };

    rds = ngx_chat_redis_for_group(gd->gid);
    channel = ngx_chat_route_channel();

    if (rds == NULL || channel == NULL) {
        ngx_chat_gdelivery_later(gd, "no Redis");
        return;
    }

    all = ngx_chat_group_all_local();

    p = buf;

    for (i = 0; i < 6; i++) {
        p = ngx_chat_group_key(&keys[i], p, names[i], gd->gid);
    }

    p = ngx_chat_batch_str(&args[0], p, "%uL", gd->gid);
    args[1].data = (u_char *) gd->id;
    args[1].len = ngx_strlen(gd->id);
    args[2].data = (u_char *) gd->head;
    args[2].len = ngx_strlen(gd->head);
    args[3].data = (u_char *) gd->text;
    args[3].len = gd->len;
    p = ngx_chat_batch_str(&args[4], p, "%d", NGX_CHAT_GROUP_LOG_MAX);
    p = ngx_chat_batch_str(&args[5], p, "%d", NGX_CHAT_GROUP_LOG_TTL);
    ngx_str_set(&args[6], "0");

    if (all) {
        ngx_str_set(&args[6], "1");
    }

    /* a large group is published by GDELIVER itself whatever "all" says */
    args[7].data = (u_char *) channel;
    args[7].len = ngx_strlen(channel);
    (void) ngx_chat_batch_str(&args[8], p, "%uL", gd->except);

    gd->item = ngx_chat_batch_add(rds, NGX_CHAT_SCRIPT_GDELIVER, 6, keys,
                                  9, args, ngx_chat_gdelivery_reply, gd);

    if (gd->item == NULL) {
        ngx_chat_gdelivery_later(gd, "Redis is down");
    }
}


static void
ngx_chat_gdelivery_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_gdelivery_t  *gd = data;

    redisReply  *first;

    gd->item = NULL;

    if (rc != NGX_CHAT_STORE_OK || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 1)
    {
        ngx_chat_gdelivery_later(gd, "Redis did not answer");
        return;
    }

    first = reply->element[0];

    if (first->type == REDIS_REPLY_INTEGER) {
        /* -1: logged already (a delivery tried again) */
        ngx_chat_gdelivery_free(gd);
        return;
    }

    if (first->type == REDIS_REPLY_STRING && first->len == 4
        && ngx_strncmp(first->str, "miss", 4) == 0
        && reply->elements == 2
        && reply->element[1]->type == REDIS_REPLY_STRING)
    {
        /* "miss": the member list first */
        if (gd->fills++ >= 3
            || ngx_chat_group_fill(gd->gid, reply->element[1]->str,
                                   reply->element[1]->len,
                                   ngx_chat_gdelivery_filled, gd)
               != NGX_OK)
        {
            ngx_chat_gdelivery_later(gd, "the member list is not cached");
        }

        return;
    }

    if (first->type != REDIS_REPLY_STRING) {
        ngx_chat_gdelivery_later(gd, "a broken reply");
        return;
    }

    /* {n}: logged (and published with one server), or {n, members} */
    if (reply->elements == 2) {
        ngx_chat_group_publish(gd->gid,
                               ngx_atoof((u_char *) first->str, first->len),
                               gd->id, gd->fs, gd->text, gd->len,
                               gd->except, 0, reply->element[1]);
    }

    ngx_chat_gdelivery_free(gd);
}


static void
ngx_chat_gdelivery_filled(void *data, ngx_int_t rc)
{
    ngx_chat_gdelivery_t  *gd = data;

    if (rc == NGX_DECLINED) {
        /* the group went (its last member left): nobody to tell */
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "chat: group %uL has no members: message %s goes "
                      "to nobody", gd->gid, gd->id);
        ngx_chat_gdelivery_free(gd);
        return;
    }

    if (rc != NGX_OK) {
        ngx_chat_gdelivery_later(gd, "the member list was not read");
        return;
    }

    ngx_chat_gdelivery_issue(gd);
}


static void
ngx_chat_gdelivery_later(ngx_chat_gdelivery_t *gd, const char *why)
{
    if (++gd->tries > NGX_CHAT_GDELIVER_TRIES || ngx_exiting
        || ngx_terminate)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: group message %s is in Kafka but not in the "
                      "log of group %uL: given up (%s); members read it "
                      "from the history", gd->id, gd->gid, why);
        ngx_chat_gdelivery_free(gd);
        return;
    }

    if (gd->tries == 1) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "chat: group message %s: %s, tried again every "
                      "second", gd->id, why);
    }

    gd->fills = 0;
    ngx_add_timer(&gd->retry, 1000);
}


static void
ngx_chat_gdelivery_retry(ngx_event_t *ev)
{
    ngx_chat_gdelivery_issue(ev->data);
}


static void
ngx_chat_gdelivery_free(ngx_chat_gdelivery_t *gd)
{
    if (gd->retry.timer_set) {
        ngx_del_timer(&gd->retry);
    }

    if (gd->item) {
        ngx_chat_batch_cancel(gd->item);
    }

    ngx_queue_remove(&gd->queue);
    ngx_free(gd);
}


void
ngx_chat_gdeliver_exit(void)
{
    ngx_chat_gdelivery_t  *gd;

    while (!ngx_queue_empty(&ngx_chat_gdeliveries)) {
        gd = ngx_queue_data(ngx_queue_head(&ngx_chat_gdeliveries),
                            ngx_chat_gdelivery_t, queue);

        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: group message %s is in Kafka but not in the "
                      "log of group %uL: the worker exits", gd->id,
                      gd->gid);
        ngx_chat_gdelivery_free(gd);
    }
}
