
/*
 * Copyright (C) ngx_chat authors
 *
 * The inbox sync of a connection: the SYNC script registers its route and
 * reads its inbox (chat:inbox:{user}, see ngx_chat_deliver.c) a page at a
 * time, atomically with the route, so that each message is either in the
 * inbox the connection reads or published to its route: never neither.
 * Messages published while it still reads are held back (ws->live) and
 * then sent only when newer than what the inbox gave (each inbox entry
 * has a position, "n").  An inbox that Redis lost is refilled from
 * PostgreSQL first (ngx_chat_refill.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"
#include "ngx_chat_route.h"
#include "ngx_chat_sync.h"
#include "ngx_chat_deliver.h"
#include "ngx_chat_gsync.h"
#include "ngx_chat_lua.h"
#include "ngx_chat_batch.h"
#include "ngx_chat_media.h"


static void ngx_chat_sync_page(ngx_chat_ws_t *ws);
static void ngx_chat_sync_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data);
static void ngx_chat_sync_timer(ngx_event_t *ev);
static void ngx_chat_sync_done(ngx_chat_ws_t *ws);
static void ngx_chat_live_free(ngx_chat_ws_t *ws);
static ngx_int_t ngx_chat_send_entry(ngx_chat_ws_t *ws, const char *v,
    size_t len);


void
ngx_chat_sync_open(ngx_chat_ws_t *ws)
{
    ngx_queue_init(&ws->live);
    ngx_queue_init(&ws->held);

    ws->sync_timer.handler = ngx_chat_sync_timer;
    ws->sync_timer.data = ws;
    ws->sync_timer.log = ws->connection->log;
    ws->sync_timer.cancelable = 1;
}


void
ngx_chat_sync_close(ngx_chat_ws_t *ws)
{
    /* a route that a SYNC in flight registers is removed right after it */
    if (ws->sync_cmd) {
        if (ws->sync_register) {
            ws->registered = 1;
        }

        ngx_chat_batch_cancel(ws->sync_cmd);
        ws->sync_cmd = NULL;
    }

    if (ws->sync_timer.timer_set) {
        ngx_del_timer(&ws->sync_timer);
    }

    ngx_chat_live_free(ws);
}


ngx_int_t
ngx_chat_sync(ngx_chat_ws_t *ws)
{
    if (ngx_chat_route_channel() == NULL || ws->local == NULL) {
        return ngx_chat_ws_error(ws, "unavailable", "this node has no "
                                 "Redis configured", NULL);
    }

    /* the groups' logs again from what the member has not acknowledged */
    ngx_chat_gsync_rewind(ws);

    if (ws->syncing) {
        /* the sync under way reads everything up to its end */
        ws->lost_live = 1;
        return NGX_OK;
    }

    ngx_chat_sync_start(ws, !ws->registered, 0, 0);

    return NGX_OK;
}


void
ngx_chat_sync_start(ngx_chat_ws_t *ws, ngx_uint_t reg, ngx_uint_t receipts,
    uint64_t after)
{
    ws->syncing = 1;
    ws->lost_live = 0;
    ws->sync_register = reg;
    ws->sync_receipts = receipts;
    /* a sync from the start asks whether the inbox is complete */
    ws->sync_check = (after == 0);
    ws->last_n = after;

    ngx_chat_sync_page(ws);
}


/* the sync goes on: after a refill (ngx_chat_refill.c) or a wait */

void
ngx_chat_sync_resume(ngx_chat_ws_t *ws)
{
    if (ws->done || ws->sync_cmd) {
        return;
    }

    ngx_chat_sync_page(ws);
}


static void
ngx_chat_sync_page(ngx_chat_ws_t *ws)
{
    u_char              *p;
    char                 route[NGX_CHAT_ROUTE_LEN];
    ngx_str_t            keys[6], args[6];
    ngx_uint_t           i;
    ngx_chat_redis_t    *rds;
    u_char               buf[12 * NGX_CHAT_BATCH_STR];

    static const char   *names[] = { "routes", "inbox", "inboxq", "rbox",
                                     "inboxok" };

    if (ws->done || ngx_chat_route_channel() == NULL) {
        return;
    }

    /* a reader that is behind gets the next page when it caught up */
    if (ws->queued > ws->conf->ws_send_queue / 2) {
        ngx_add_timer(&ws->sync_timer, 50);
        return;
    }

    route[0] = '\0';

    if (ws->sync_register) {
        ngx_chat_route_name(ws, route);
    }

    rds = ngx_chat_redis_for_user(ws->user_id);

    p = buf;

    for (i = 0; i < 5; i++) {
        p = ngx_chat_batch_str(&keys[i], p, "chat:%s:{%uL}", names[i],
                               ws->user_id);
    }

    /* the token's deny-list key: a logout racing the registration */
    p = ngx_chat_batch_str(&keys[5], p, "chat:revoked:{%uL}:%*s",
                           ws->user_id, ws->token_id_len, ws->token_id);

    args[0].data = (u_char *) route;
    args[0].len = ngx_strlen(route);
    p = ngx_chat_batch_str(&args[1], p, "%d", (int) NGX_CHAT_ROUTE_TTL);
    p = ngx_chat_batch_str(&args[2], p, "%uL", ws->last_n);
    p = ngx_chat_batch_str(&args[3], p, "%d", (int) NGX_CHAT_SYNC_PAGE);
    p = ngx_chat_batch_str(&args[4], p, "%d", (int) ws->sync_receipts);
    p = ngx_chat_batch_str(&args[5], p, "%d", (int) ws->sync_check);

    ws->sync_cmd = ngx_chat_batch_add(rds, NGX_CHAT_SCRIPT_SYNC, 6, keys, 6,
                                      args, ngx_chat_sync_reply, ws);

    if (ws->sync_cmd == NULL) {
        /* Redis is down: try again, live deliveries wait meanwhile */
        ngx_add_timer(&ws->sync_timer, 1000);
    }
}


static void
ngx_chat_sync_reply(ngx_chat_store_rc_e rc, redisReply *reply, void *data)
{
    ngx_chat_ws_t  *ws = data;
    uint64_t        n;
    ngx_uint_t      i, scanned;
    redisReply     *entries, *receipts, *e;
    void          (*handler)(ngx_chat_ws_t *ws);

    ws->sync_cmd = NULL;

    if (ws->done) {
        return;
    }

    if (rc != NGX_CHAT_STORE_OK || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 4
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_STRING
        || reply->element[2]->type != REDIS_REPLY_ARRAY
        || reply->element[3]->type != REDIS_REPLY_ARRAY)
    {
        /* a NOSCRIPT reconnected already (ngx_chat_batch.c) */
        ngx_add_timer(&ws->sync_timer, 1000);
        return;
    }

    if (reply->element[0]->integer == -2) {
        /* logged out while it connected: as the logout's relay would */
        ngx_chat_ws_revoke(ws, (const char *) ws->token_id,
                           ws->token_id_len);
        return;
    }

    if (ws->sync_check) {
        ws->sync_check = 0;

        if (reply->element[0]->integer == -1
            || ngx_chat_deliver_lost(ws->user_id))
        {
            /* the inbox is not known complete: PostgreSQL first */
            ngx_chat_refill_start(ws);
            return;
        }
    }

    if (ws->sync_register) {
        ws->registered = 1;
        ws->sync_register = 0;

        if (ws->registered_handler) {
            handler = ws->registered_handler;
            ws->registered_handler = NULL;
            handler(ws);

            if (ws->done) {
                return;
            }
        }
    }

    scanned = (ngx_uint_t) reply->element[0]->integer;
    entries = reply->element[2];
    receipts = reply->element[3];

    for (i = 0; i + 1 < entries->elements; i += 2) {
        e = entries->element[i + 1];

        if (e->type != REDIS_REPLY_STRING) {
            continue;
        }

        if (ngx_chat_send_entry(ws, e->str, e->len) != NGX_OK || ws->done) {
            return;
        }
    }

    if (ws->sync_receipts) {
        ws->sync_receipts = 0;

        for (i = 0; i < receipts->elements; i++) {
            e = receipts->element[i];

            if (e->type == REDIS_REPLY_STRING
                && (ngx_chat_ws_send_text(ws, (u_char *) e->str, e->len)
                    != NGX_OK || ws->done))
            {
                return;
            }
        }
    }

    n = ngx_atoof((u_char *) reply->element[1]->str,
                  reply->element[1]->len);
    if (n > ws->last_n) {
        ws->last_n = n;
    }

    if (scanned >= NGX_CHAT_SYNC_PAGE || ws->lost_live) {
        ws->lost_live = 0;
        ngx_chat_sync_page(ws);
        return;
    }

    ngx_chat_sync_done(ws);
}


/* an inbox entry "u <from> <seq> <conv> <frame>": its frame goes out */

static ngx_int_t
ngx_chat_send_entry(ngx_chat_ws_t *ws, const char *v, size_t len)
{
    ngx_uint_t   spaces;
    const char  *p, *last;

    if (len < 2 || v[0] != 'u') {
        return NGX_OK;
    }

    last = v + len;
    spaces = 0;

    for (p = v; p < last; p++) {
        if (*p == ' ' && ++spaces == 4) {
            p++;
            return ngx_chat_media_send(ws, (u_char *) p, last - p);
        }
    }

    return NGX_OK;
}


static void
ngx_chat_sync_timer(ngx_event_t *ev)
{
    ngx_chat_sync_resume(ev->data);
}


/* the inbox is read: what came live meanwhile goes out if it is newer */

static void
ngx_chat_sync_done(ngx_chat_ws_t *ws)
{
    ngx_queue_t      *q;
    ngx_chat_live_t  *lv;

    ws->syncing = 0;

    while (!ngx_queue_empty(&ws->live) && !ws->done) {
        q = ngx_queue_head(&ws->live);
        ngx_queue_remove(q);
        ws->nlive--;

        lv = ngx_queue_data(q, ngx_chat_live_t, queue);

        if (lv->n > ws->last_n) {
            ws->last_n = lv->n;
            (void) ngx_chat_media_send(ws, (u_char *) (lv + 1), lv->len);
        }

        ngx_free(lv);
    }

    /* then the groups' logs (the route is in Redis by now) */
    if (!ws->done) {
        ngx_chat_gsync_start(ws);
    }
}


static void
ngx_chat_live_free(ngx_chat_ws_t *ws)
{
    ngx_queue_t  *q;

    if (ws->live.next == NULL) {
        return;
    }

    while (!ngx_queue_empty(&ws->live)) {
        q = ngx_queue_head(&ws->live);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_chat_live_t, queue));
    }

    ws->nlive = 0;

    while (!ngx_queue_empty(&ws->held)) {
        q = ngx_queue_head(&ws->held);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_chat_live_t, queue));
    }

    ws->nheld = 0;
}
