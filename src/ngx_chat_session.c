
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
#include "ngx_chat_deliver.h"


static void ngx_chat_session_open(ngx_chat_ws_t *ws);
static ngx_int_t ngx_chat_session_message(ngx_chat_ws_t *ws);
static void ngx_chat_session_beat(ngx_chat_ws_t *ws);
static void ngx_chat_session_close(ngx_chat_ws_t *ws);


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

    return ngx_chat_deliver_init(w, cycle);
}


void
ngx_chat_session_exit(ngx_chat_worker_t *w)
{
    ngx_chat_deliver_exit(w);
}


/* its route, and what waited for the user while it was away */

static void
ngx_chat_session_open(ngx_chat_ws_t *ws)
{
    ngx_chat_deliver_open(ws);
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
        rc = ngx_chat_ws_error(ws, code, message, m.client_id);
        chat_proto_free(&m);
        return rc;
    }

    /* every frame is metered before it costs any backend work */
    if (ngx_chat_ws_meter(&ws->frame_tat, ws->conf->frame_interval,
                          ws->conf->frame_burst, &retry)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_INFO, ws->request->connection->log, 0,
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
        rc = ngx_chat_send(ws, &m);
        break;

    case CHAT_PROTO_RECEIPT:
        rc = ngx_chat_receipt(ws, &m);
        break;

    case CHAT_PROTO_TYPING:
        rc = ngx_chat_typing(ws, &m);
        break;

    case CHAT_PROTO_SYNC:
        rc = ngx_chat_deliver_sync(ws);
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
    ngx_chat_send_orphan(ws);
    ngx_chat_ops_orphan(&ws->ops);
    ngx_chat_deliver_close(ws);
}
