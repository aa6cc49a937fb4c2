
/*
 * Copyright (C) ngx_chat authors
 *
 * A chat session on a WebSocket connection: what its opening and closing
 * start and end (routes, inbox sync, presence, sends and ops in flight),
 * and which file answers each frame of the chat protocol.  The transport
 * (ngx_chat_ws.c) calls up only through the hooks set here.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"
#include "ngx_chat_session.h"
#include "ngx_chat_send.h"
#include "ngx_chat_route.h"
#include "ngx_chat_channel.h"
#include "ngx_chat_sync.h"
#include "ngx_chat_gsync.h"
#include "ngx_chat_receipt.h"
#include "ngx_chat_presence.h"
#include "ngx_chat_metrics.h"


static void ngx_chat_session_open(ngx_chat_ws_t *ws);
static ngx_int_t ngx_chat_session_message(ngx_chat_ws_t *ws);
static void ngx_chat_session_beat(ngx_chat_ws_t *ws);
static void ngx_chat_session_close(ngx_chat_ws_t *ws);
static void ngx_chat_ops_orphan(ngx_queue_t *ops);


static const ngx_chat_ws_hooks_t  ngx_chat_session_hooks = {
    ngx_chat_session_open,
    ngx_chat_session_message,
    ngx_chat_session_beat,
    ngx_chat_session_close
};


ngx_int_t
ngx_chat_session_init(ngx_chat_worker_t *w, ngx_cycle_t *cycle)
{
    ngx_chat_ws_set_hooks(&ngx_chat_session_hooks);

    return ngx_chat_channel_init(w, cycle);
}


void
ngx_chat_session_exit(ngx_chat_worker_t *w)
{
    ngx_chat_channel_exit(w);
}


/* its route, and what waited for the user while it was away */

static void
ngx_chat_session_open(ngx_chat_ws_t *ws)
{
    ngx_queue_init(&ws->peers);
    ngx_chat_sync_open(ws);

    if (ngx_chat_local_add(ws) != NGX_OK) {
        return;
    }

    /*
     * The route and what waited in the inbox, atomically (SYNC); presence
     * (the user's coming online, then the friends' state) once the route
     * is in Redis: a friend coming online meanwhile either is online in
     * the state read after that, or finds the route and tells it.  Read
     * before the route (a first SYNC may refill from PostgreSQL first),
     * the state could miss a friend whose announcement missed the route.
     */
    ws->registered_handler = ngx_chat_presence_open;
    ngx_chat_sync_start(ws, 1, 1, 0);
}


/* one text message: a JSON object with a "type" (chat_proto.c checks it) */

static ngx_int_t
ngx_chat_session_message(ngx_chat_ws_t *ws)
{
    ngx_int_t          rc;
    ngx_msec_t         retry;
    const char        *code, *message;
    chat_proto_msg_t   m;

    if (chat_proto_decode((char *) ws->msg, ws->msg_len,
                          NGX_CHAT_WS_JSON_DEPTH, &m, &code, &message)
        != 0)
    {
        ngx_chat_metrics_frame_in(0);
        rc = ngx_chat_ws_error(ws, code, message, m.client_id);
        chat_proto_free(&m);
        return rc;
    }

    ngx_chat_metrics_frame_in(m.type);

    /* every frame is metered before it costs any backend work */
    if (ngx_chat_ws_meter(&ws->frame_tat, ws->conf->frame_interval,
                          ws->conf->frame_burst, &retry)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, ws->connection->log, 0,
                      "chat: ws: user %uL sends frames too fast, a %s "
                      "refused", ws->user_id,
                      chat_proto_type_name(m.type));
        rc = ngx_chat_ws_rate_limited(ws, "too many frames, slow down",
                                      retry, m.client_id);
        chat_proto_free(&m);
        return rc;
    }

    switch (m.type) {

    case CHAT_PROTO_PING:
        rc = ngx_chat_ws_send_text(ws, (u_char *) "{\"type\":\"pong\"}",
                                   sizeof("{\"type\":\"pong\"}") - 1);
        break;

    case CHAT_PROTO_SEND:
        ngx_chat_metric_inc(NGX_CHAT_M_MSG_SENT);
        rc = ngx_chat_send(ws, &m);
        break;

    case CHAT_PROTO_RECEIPT:
        rc = ngx_chat_receipt(ws, &m);
        break;

    case CHAT_PROTO_TYPING:
        rc = ngx_chat_typing(ws, &m);
        break;

    case CHAT_PROTO_SYNC:
        rc = ngx_chat_sync(ws);
        break;

    default:
        rc = NGX_ERROR;
    }

    chat_proto_free(&m);

    return rc;
}
/* any frame is a heartbeat of the user's presence */

static void
ngx_chat_session_beat(ngx_chat_ws_t *ws)
{
    ((ngx_chat_local_user_t *) ws->local)->beat = 1;
}


/* sends in flight finish without the connection */

static void
ngx_chat_session_close(ngx_chat_ws_t *ws)
{
    char  route[NGX_CHAT_ROUTE_LEN];

    ngx_chat_send_orphan(ws);
    ngx_chat_ops_orphan(&ws->ops);
    ngx_chat_sync_close(ws);
    ngx_chat_gsync_close(ws);

    if (ngx_chat_local_remove(ws) != NGX_OK) {
        return;
    }

    if (ws->registered) {
        ngx_chat_route_name(ws, route);
        ngx_chat_presence_close(ws->user_id, route);
        ws->registered = 0;
    }
}


/* the connection ends: its ops go on without it */

static void
ngx_chat_ops_orphan(ngx_queue_t *ops)
{
    ngx_queue_t    *q;
    ngx_chat_op_t  *op;

    if (ops->next == NULL) {
        return;
    }

    while (!ngx_queue_empty(ops)) {
        q = ngx_queue_head(ops);
        ngx_queue_remove(q);

        op = ngx_queue_data(q, ngx_chat_op_t, queue);
        op->ws = NULL;
    }
}
