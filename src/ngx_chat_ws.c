
/*
 * Copyright (C) ngx_chat authors
 *
 * GET /v1/ws: the RFC 6455 server.  The bearer token is checked before the
 * upgrade (no token, no upgrade: 401); then the connection is ours: frames
 * are parsed as they arrive (src/common/chat_ws.c), each text message goes
 * up to the session (ngx_chat_session.c, through the hooks it sets) that
 * speaks the chat protocol (docs/PROTOCOL.md); answers are queued per
 * connection with a bound, so that a slow reader is closed instead of
 * growing memory.
 *
 * Once the 101 is out the HTTP request is freed, as nginx frees it on a
 * keepalive connection (ngx_chat_ws_detach()): its pool and the header
 * buffers go, the connection stays with ngx_chat_ws_t in c->data.  What
 * lives as long as the connection is ngx_chat_ws_t (ngx_alloc) and the
 * connection's pool; everything per message (the message being
 * reassembled, frames waiting to be sent, the TLS write buffer) is
 * allocated and freed as it goes.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"
#include "ngx_chat_drain.h"
#include "ngx_chat_metrics.h"
#include "chat_json.h"
#include "chat_frame.h"


static ngx_int_t ngx_chat_ws_handler(ngx_http_request_t *r);
static ngx_int_t ngx_chat_ws_handshake(ngx_http_request_t *r,
    ngx_chat_loc_conf_t *clcf, ngx_str_t *key, const char **code,
    const char **msg);
static ngx_table_elt_t *ngx_chat_ws_header(ngx_http_request_t *r,
    const char *name);
static ngx_int_t ngx_chat_ws_add_header(ngx_http_request_t *r,
    const char *name, u_char *value, size_t len);
static ngx_chat_ws_t *ngx_chat_ws_get(ngx_http_request_t *r);
static void ngx_chat_ws_read_event(ngx_event_t *ev);
static void ngx_chat_ws_write_handler(ngx_http_request_t *r);
static void ngx_chat_ws_conn_read(ngx_event_t *ev);
static void ngx_chat_ws_conn_write(ngx_event_t *ev);
static void ngx_chat_ws_read(ngx_chat_ws_t *ws);
static void ngx_chat_ws_write(ngx_chat_ws_t *ws);
static void ngx_chat_ws_detach(ngx_chat_ws_t *ws);
static ngx_int_t ngx_chat_ws_process(ngx_chat_ws_t *ws, u_char *p,
    size_t len);
static ngx_int_t ngx_chat_ws_send(ngx_chat_ws_t *ws, int opcode,
    const u_char *data, size_t len);
static ngx_int_t ngx_chat_ws_send_frame(ngx_chat_ws_t *ws, char *frame);
static void ngx_chat_ws_close(ngx_chat_ws_t *ws, uint16_t code,
    const char *reason);
static void ngx_chat_ws_ended(ngx_chat_ws_t *ws, ngx_uint_t why,
    uint16_t code, const char *text);
static void ngx_chat_ws_log_close(ngx_chat_ws_t *ws);
static void ngx_chat_ws_flush(ngx_chat_ws_t *ws);
static void ngx_chat_ws_flush_handler(ngx_event_t *ev);
static void ngx_chat_ws_finish(ngx_chat_ws_t *ws);
static void ngx_chat_ws_end_handler(ngx_event_t *ev);
static void ngx_chat_ws_hide_token(ngx_http_request_t *r);
static void ngx_chat_ws_request_cleanup(void *data);
static void ngx_chat_ws_cleanup(ngx_chat_ws_t *ws);


/*
 * One read buffer for all connections of the worker: what a read brings is
 * parsed (and message bytes copied out) before the next read, so an idle
 * connection holds no buffer.
 */
static u_char  ngx_chat_ws_rbuf[NGX_CHAT_WS_RBUF];

/* what the layer above does with a connection (ngx_chat_session.c) */
static const ngx_chat_ws_hooks_t  *ngx_chat_ws_hooks;


void
ngx_chat_ws_set_hooks(const ngx_chat_ws_hooks_t *hooks)
{
    ngx_chat_ws_hooks = hooks;
}


char *
ngx_chat_websocket(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_loc_conf_t *lcf = conf;

    ngx_http_core_loc_conf_t  *clcf;
    ngx_chat_main_conf_t      *cmcf;

    /* ?access_token= is accepted here (chat_auth_query_token) */
    lcf->websocket = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_chat_ws_handler;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_chat_module);
    cmcf->websocket = 1;
    cmcf->enabled = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_chat_ws_handler(ngx_http_request_t *r)
{
    u_char               *p, accept[CHAT_WS_ACCEPT_LEN + 1];
    size_t                n;
    uint64_t              uid;
    ngx_int_t             rc;
    ngx_str_t             key;
    const char           *reason, *code, *msg;
    ngx_chat_ws_t             *ws;
    ngx_connection_t          *c;
    ngx_pool_cleanup_t        *cln;
    ngx_chat_loc_conf_t       *clcf;
    ngx_http_core_loc_conf_t  *hclcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_chat_module);

    ngx_chat_ws_hide_token(r);
    ngx_str_null(&key);

    /* a draining node: the edge tries the next one (http_503) */
    if (ngx_chat_draining()) {
        return ngx_chat_http_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "draining",
                                   "this node is draining, connect again");
    }

    rc = ngx_chat_ws_handshake(r, clcf, &key, &code, &msg);
    if (rc != NGX_OK) {
        return rc == NGX_HTTP_INTERNAL_SERVER_ERROR
               ? rc : ngx_chat_http_error(r, rc, code, msg);
    }

    /* no valid token, no upgrade */
    if (ngx_chat_auth_user(r, &uid, &reason) != NGX_OK) {
        return ngx_chat_auth_refuse(r, reason);
    }

    if (chat_ws_accept_key((char *) key.data, key.len, (char *) accept) != 0) {
        return ngx_chat_http_error(r, NGX_HTTP_BAD_REQUEST, "bad_request",
                                   "invalid Sec-WebSocket-Key");
    }

    c = r->connection;

    /* not from r->pool: it outlives the request (ngx_chat_ws_detach()) */
    ws = ngx_calloc(sizeof(ngx_chat_ws_t), c->log);
    if (ws == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_free(ws);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_chat_ws_request_cleanup;
    cln->data = ws;
    ngx_chat_metric_inc(NGX_CHAT_M_WS_OPEN);
    ngx_chat_metric_inc(NGX_CHAT_M_WS_OPENED);

    ngx_chat_get_ctx(r)->ws = ws;

    hclcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    ws->connection = c;
    ws->http = r;
    ws->conf = clcf;
    ws->send_timeout = hclcf->send_timeout;
    ngx_queue_init(&ws->sends);
    ngx_queue_init(&ws->ops);
    ws->flush.handler = ngx_chat_ws_flush_handler;
    ws->flush.data = ws;
    ws->flush.log = c->log;
    ws->end.handler = ngx_chat_ws_end_handler;
    ws->end.data = ws;
    ws->end.log = c->log;
    ws->user_id = uid;
    ws->token_id_len = ngx_chat_get_ctx(r)->token_id_len;
    ngx_memcpy(ws->token_id, ngx_chat_get_ctx(r)->token_id,
               ws->token_id_len);
    ws->last_out = &ws->out;
    chat_ws_parser_init(&ws->parser, 1, clcf->ws_max_message);

    if (ngx_chat_ws_add_header(r, "Upgrade", (u_char *) "websocket", 9)
        != NGX_OK
        || ngx_chat_ws_add_header(r, "Sec-WebSocket-Accept", accept,
                                  CHAT_WS_ACCEPT_LEN)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_SWITCHING_PROTOCOLS;
    ngx_str_set(&r->headers_out.status_line, "101 Switching Protocols");
    r->headers_out.content_length_n = -1;
    r->keepalive = 0;
    r->header_only = 1;

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "chat: ws: user %uL connected", uid);

    /*
     * Small frames both ways: Nagle's algorithm would hold a frame back
     * until the peer's delayed ACK of the one before (up to 40 ms on
     * Linux).  As nginx's proxied upgrades do, and as it does itself for
     * keepalive connections, which this one never becomes.
     */
    if (hclcf->tcp_nodelay && ngx_tcp_nodelay(c) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * The connection is ours from here.  The request is freed once this
     * handler has returned (ngx_chat_ws_detach(), posted); until then, or
     * if it cannot be freed, the request ends when the connection closes.
     */
    r->main->count++;
    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_chat_ws_write_handler;

    /*
     * A graceful shutdown closes idle connections: this one is, and gets
     * a close frame (1001) rather than nginx's plain close.
     */
    c->idle = 1;
    c->read->handler = ngx_chat_ws_read_event;

    /* its route, and what waited for the user while it was away */
    ngx_chat_ws_hooks->open(ws);

    if (c->buffered) {
        ngx_chat_ws_flush(ws);
    }

    ngx_add_timer(c->read, clcf->ws_idle_timeout);

    /* frames may have come with the handshake, read with its headers */
    if (r->header_in->pos < r->header_in->last) {
        p = r->header_in->pos;
        n = r->header_in->last - p;
        r->header_in->pos = r->header_in->last;

        if (ngx_chat_ws_process(ws, p, n) != NGX_OK || ws->done) {
            return NGX_DONE;
        }
    }

    if (c->read->ready) {
        ngx_chat_ws_read(ws);
    }

    if (!ws->done) {
        ngx_post_event(&ws->end, &ngx_posted_events);
    }

    return NGX_DONE;
}


/* RFC 6455 section 4.2.1, with the answers section 4.4 asks for */

/*
 * NGX_OK, or the status of the refusal with its error code and message
 * (the response headers it needs are added here).
 */

static ngx_int_t
ngx_chat_ws_handshake(ngx_http_request_t *r, ngx_chat_loc_conf_t *clcf,
    ngx_str_t *key, const char **code, const char **msg)
{
    ngx_str_t        *o;
    ngx_uint_t        i;
    ngx_table_elt_t  *h;

    if (r->method != NGX_HTTP_GET) {
        *code = "method_not_allowed";
        *msg = "use GET";
        return NGX_HTTP_NOT_ALLOWED;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        *code = "bad_request";
        *msg = "malformed request body";
        return NGX_HTTP_BAD_REQUEST;
    }

    if (r->http_version < NGX_HTTP_VERSION_11 || r->stream) {
        *code = "bad_request";
        *msg = "WebSocket needs HTTP/1.1";
        return NGX_HTTP_BAD_REQUEST;
    }

    h = ngx_chat_ws_header(r, "Upgrade");

    if (h == NULL
        || !chat_ws_header_has_token((char *) h->value.data, h->value.len,
                                     "websocket"))
    {
        ngx_str_set(&r->headers_out.status_line, "426 Upgrade Required");
        (void) ngx_chat_ws_add_header(r, "Upgrade", (u_char *) "websocket",
                                      9);
        *code = "upgrade_required";
        *msg = "this is a WebSocket endpoint";
        return 426;
    }

    h = ngx_chat_ws_header(r, "Connection");

    if (h == NULL
        || !chat_ws_header_has_token((char *) h->value.data, h->value.len,
                                     "upgrade"))
    {
        *code = "bad_request";
        *msg = "\"Connection: upgrade\" is missing";
        return NGX_HTTP_BAD_REQUEST;
    }

    h = ngx_chat_ws_header(r, "Sec-WebSocket-Version");

    if (h == NULL || h->value.len != 2
        || ngx_strncmp(h->value.data, "13", 2) != 0)
    {
        ngx_str_set(&r->headers_out.status_line, "426 Upgrade Required");
        (void) ngx_chat_ws_add_header(r, "Sec-WebSocket-Version",
                                      (u_char *) "13", 2);
        *code = "upgrade_required";
        *msg = "Sec-WebSocket-Version must be 13";
        return 426;
    }

    h = ngx_chat_ws_header(r, "Sec-WebSocket-Key");
    if (h == NULL) {
        *code = "bad_request";
        *msg = "Sec-WebSocket-Key is missing";
        return NGX_HTTP_BAD_REQUEST;
    }

    *key = h->value;

    if (clcf->ws_origins == NULL) {
        return NGX_OK;
    }

    /* browsers send Origin; other clients need not, and are let in */
    h = ngx_chat_ws_header(r, "Origin");
    if (h == NULL) {
        return NGX_OK;
    }

    o = clcf->ws_origins->elts;

    for (i = 0; i < clcf->ws_origins->nelts; i++) {
        if (o[i].len == h->value.len
            && ngx_strncasecmp(o[i].data, h->value.data, o[i].len) == 0)
        {
            return NGX_OK;
        }
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "chat: ws: origin \"%V\" is not allowed", &h->value);

    *code = "forbidden";
    *msg = "this Origin is not allowed";

    return NGX_HTTP_FORBIDDEN;
}


static ngx_table_elt_t *
ngx_chat_ws_header(ngx_http_request_t *r, const char *name)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


static ngx_int_t
ngx_chat_ws_add_header(ngx_http_request_t *r, const char *name,
    u_char *value, size_t len)
{
    u_char           *p;
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    p = ngx_pnalloc(r->pool, len);

    if (h == NULL || p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, value, len);

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.data = p;
    h->value.len = len;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


static ngx_chat_ws_t *
ngx_chat_ws_get(ngx_http_request_t *r)
{
    ngx_chat_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_chat_module);

    return ctx ? ctx->ws : NULL;
}


/*
 * The connection's read event while the request is there (c->data), in
 * place of ngx_http_request_handler(), which ends a request at once when
 * nginx shuts down (c->close).
 */

static void
ngx_chat_ws_read_event(ngx_event_t *ev)
{
    ngx_chat_ws_t     *ws;
    ngx_connection_t  *c;

    c = ev->data;
    ws = ngx_chat_ws_get(c->data);

    if (ws) {
        ngx_chat_ws_read(ws);
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_chat_ws_write_handler(ngx_http_request_t *r)
{
    ngx_chat_ws_t  *ws;

    ws = ngx_chat_ws_get(r);

    if (ws) {
        ngx_chat_ws_write(ws);
    }
}


/* the connection's events once the request is freed: ws is c->data */

static void
ngx_chat_ws_conn_read(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    ngx_chat_ws_read(c->data);
}


static void
ngx_chat_ws_conn_write(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    ngx_chat_ws_write(c->data);
}


static void
ngx_chat_ws_read(ngx_chat_ws_t *ws)
{
    size_t             budget;
    ssize_t            n;
    ngx_connection_t  *c;

    c = ws->connection;

    if (c->close) {
        c->close = 0;
        c->idle = 0;

        if (!ws->done) {
            ngx_log_error(NGX_LOG_INFO, c->log, 0,
                          "chat: ws: user %uL: shutting down, closing",
                          ws->user_id);
            ngx_chat_ws_close(ws, CHAT_WS_CLOSE_GOING,
                              "server shutting down");
        }

        return;
    }

    if (ws->done) {
        return;
    }

    if (c->read->timedout) {
        c->read->timedout = 0;
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "chat: ws: user %uL idle for %M ms, closing",
                      ws->user_id, ws->conf->ws_idle_timeout);
        ngx_chat_ws_ended(ws, NGX_CHAT_CLOSE_TIMEOUT, CHAT_WS_CLOSE_GOING,
                          "idle timeout");
        ngx_chat_ws_close(ws, CHAT_WS_CLOSE_GOING, "idle timeout");
        return;
    }

    budget = NGX_CHAT_WS_READ_BUDGET;

    for ( ;; ) {
        if (budget == 0) {
            /*
             * The other connections get their turn: the rest is read in
             * the next round of the event loop, after what epoll reports
             * ready then (ngx_posted_next_events; ngx_posted_events would
             * run again before them).  Nothing else is read from this
             * connection meanwhile, so its frames keep their order.
             */
            ngx_post_event(c->read, &ngx_posted_next_events);
            ngx_add_timer(c->read, ws->conf->ws_idle_timeout);
            return;
        }

        n = c->recv(c, ngx_chat_ws_rbuf,
                    ngx_min(NGX_CHAT_WS_RBUF, budget));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0 || n == NGX_ERROR) {
            /* the peer went away without a close frame */
            ngx_chat_ws_ended(ws, NGX_CHAT_CLOSE_DROPPED, 1006,
                              "connection lost");
            ngx_chat_ws_finish(ws);
            return;
        }

        /* any frame is a heartbeat of the user's presence */
        if (ws->local) {
            ngx_chat_ws_hooks->beat(ws);
        }

        budget -= n;

        if (ngx_chat_ws_process(ws, ngx_chat_ws_rbuf, n) != NGX_OK
            || ws->done)
        {
            return;
        }

        if (ws->closing) {
            /* nothing is read after a close frame */
            return;
        }
    }

    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        ngx_chat_ws_finish(ws);
        return;
    }

    /* any frame is a sign of life */
    ngx_add_timer(c->read, ws->conf->ws_idle_timeout);
}


static void
ngx_chat_ws_write(ngx_chat_ws_t *ws)
{
    if (ws->done) {
        return;
    }

    if (ws->connection->write->timedout) {
        ngx_log_error(NGX_LOG_INFO, ws->connection->log, NGX_ETIMEDOUT,
                      "chat: ws: user %uL does not read, closing",
                      ws->user_id);
        ngx_chat_ws_ended(ws, NGX_CHAT_CLOSE_SLOW, 1006, "send timed out");
        ngx_chat_ws_finish(ws);
        return;
    }

    ngx_chat_ws_flush(ws);
}


static ngx_int_t
ngx_chat_ws_process(ngx_chat_ws_t *ws, u_char *p, size_t len)
{
    u_char           *np;
    long              n;
    size_t            cap;
    chat_ws_event_t   ev;

    for ( ;; ) {
        n = chat_ws_parse(&ws->parser, p, len, &ev);

        if (n < 0) {
            ngx_log_error(NGX_LOG_INFO, ws->connection->log, 0,
                          "chat: ws: user %uL sent a bad frame: %s",
                          ws->user_id, ev.error);
            ngx_chat_ws_close(ws, ev.error_code, ev.error);
            return NGX_ERROR;
        }

        p += n;
        len -= n;

        switch (ev.type) {

        case CHAT_WS_NEED_MORE:
            return NGX_OK;

        case CHAT_WS_DATA:
            if (ws->msg_len + ev.len > ws->msg_cap) {
                /* the parser bounds the total by chat_ws_max_message */
                cap = ngx_max(ws->msg_cap * 2, ws->msg_len + ev.len);
                cap = ngx_max(cap, NGX_CHAT_WS_MSG_KEEP);

                np = ngx_alloc(cap, ws->connection->log);
                if (np == NULL) {
                    ngx_chat_ws_close(ws, CHAT_WS_CLOSE_INTERNAL,
                                      "out of memory");
                    return NGX_ERROR;
                }

                if (ws->msg_len) {
                    ngx_memcpy(np, ws->msg, ws->msg_len);
                }

                ngx_free(ws->msg);
                ws->msg = np;
                ws->msg_cap = cap;
            }

            ngx_memcpy(ws->msg + ws->msg_len, ev.data, ev.len);
            ws->msg_len += ev.len;
            break;

        case CHAT_WS_MESSAGE_END:
            if (ev.opcode != CHAT_WS_OP_TEXT) {
                ngx_chat_ws_close(ws, 1003, "only text frames are spoken "
                                  "here");
                return NGX_ERROR;
            }

            if (ngx_chat_ws_hooks->message(ws) != NGX_OK) {
                return NGX_ERROR;
            }

            ws->msg_len = 0;

            /*
             * Only a small message buffer is kept between messages (an
             * idle connection's pings fit): a bigger one goes at once.
             */
            if (ws->msg_cap > NGX_CHAT_WS_MSG_KEEP) {
                ngx_free(ws->msg);
                ws->msg = NULL;
                ws->msg_cap = 0;
            }

            break;

        case CHAT_WS_PING:
            if (ngx_chat_ws_send(ws, CHAT_WS_OP_PONG, ev.data, ev.len)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            break;

        case CHAT_WS_PONG:
            break;

        case CHAT_WS_CLOSE:
            ngx_chat_ws_close(ws, ev.close_code == CHAT_WS_CLOSE_NO_CODE
                                  ? 0 : CHAT_WS_CLOSE_NORMAL, NULL);
            return NGX_OK;

        default:
            return NGX_ERROR;
        }
    }
}


ngx_int_t
ngx_chat_ws_error(ngx_chat_ws_t *ws, const char *code, const char *message,
    const char *client_id)
{
    /* client_id: so that the client knows which of its sends failed */
    return ngx_chat_ws_send_frame(ws, chat_frame_error(code, message,
                                                       client_id, NULL, -1));
}


/*
 * GCRA at the resolution of the event loop's clock: the frames of one
 * read all come at the same time, so a pipelined flood gets its burst
 * and no more.
 */

ngx_int_t
ngx_chat_ws_meter(uint64_t *tat, ngx_uint_t interval, ngx_uint_t burst,
    ngx_msec_t *retry)
{
    uint64_t  now, t;

    if (interval == 0) {
        return NGX_OK;
    }

    now = (uint64_t) ngx_current_msec * 1000;
    t = ngx_max(*tat, now);

    if (t - now > (uint64_t) interval * burst) {
        *retry = (ngx_msec_t) ((t - now - (uint64_t) interval * burst
                                + 999) / 1000);
        return NGX_DECLINED;
    }

    *tat = t + interval;

    return NGX_OK;
}


ngx_int_t
ngx_chat_ws_rate_limited(ngx_chat_ws_t *ws, const char *message,
    ngx_msec_t retry, const char *client_id)
{
    return ngx_chat_ws_send_frame(ws,
                                  chat_frame_error("rate_limited", message,
                                                   client_id, NULL,
                                                   ngx_max(retry, 1)));
}


/* sends a frame of chat_frame.h and frees it; NULL (out of memory) fails */

static ngx_int_t
ngx_chat_ws_send_frame(ngx_chat_ws_t *ws, char *frame)
{
    ngx_int_t  rc;

    if (frame == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_chat_ws_send_text(ws, (u_char *) frame, ngx_strlen(frame));
    free(frame);

    return rc;
}


ngx_int_t
ngx_chat_ws_send_text(ngx_chat_ws_t *ws, const u_char *data, size_t len)
{
    return ngx_chat_ws_send(ws, CHAT_WS_OP_TEXT, data, len);
}


ngx_int_t
ngx_chat_ws_send_json(ngx_chat_ws_t *ws, json_t *json)
{
    char       *text;
    ngx_int_t   rc;

    text = json_dumps(json, JSON_COMPACT|JSON_PRESERVE_ORDER);
    if (text == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_chat_ws_send(ws, CHAT_WS_OP_TEXT, (u_char *) text,
                          ngx_strlen(text));
    free(text);

    return rc;
}


/*
 * Queues one frame.  A peer that does not read what it is sent is closed
 * once chat_ws_send_queue bytes are waiting for it.
 *
 * The frames are written by a posted event, which runs after the I/O
 * handlers of this round of the event loop: all the frames one round
 * makes for a connection (acks, messages, receipts from any number of
 * Redis replies and Kafka reports) go out together, in one writev()
 * (nginx gives it at most 64 frames; more take one writev() each 64).
 * Once a quarter of chat_ws_send_queue waits, it is written at once.
 */

static ngx_int_t
ngx_chat_ws_send(ngx_chat_ws_t *ws, int opcode, const u_char *data,
    size_t len)
{
    size_t                hlen;
    u_char                hdr[CHAT_WS_MAX_HEADER];
    ngx_chat_ws_frame_t  *f;

    if (ws->closing || ws->done) {
        return NGX_OK;
    }

    if (ws->queued + len > ws->conf->ws_send_queue) {
        ngx_log_error(NGX_LOG_WARN, ws->connection->log, 0,
                      "chat: ws: user %uL reads too slowly, %uz bytes "
                      "waiting, closing", ws->user_id, ws->queued);
        ngx_chat_ws_ended(ws, NGX_CHAT_CLOSE_SLOW, 1006,
                          "send queue full");
        ngx_chat_ws_finish(ws);
        return NGX_ERROR;
    }

    hlen = chat_ws_frame_header(hdr, opcode, 1, len, NULL);
    if (hlen == 0) {
        return NGX_ERROR;
    }

    f = ngx_alloc(sizeof(ngx_chat_ws_frame_t) + hlen + len,
                  ws->connection->log);
    if (f == NULL) {
        ngx_chat_ws_finish(ws);
        return NGX_ERROR;
    }

    ngx_memzero(&f->buf, sizeof(ngx_buf_t));

    f->buf.start = (u_char *) (f + 1);
    f->buf.pos = f->buf.start;
    f->buf.last = ngx_cpymem(f->buf.pos, hdr, hlen);
    if (len) {
        f->buf.last = ngx_cpymem(f->buf.last, data, len);
    }
    f->buf.end = f->buf.last;
    f->buf.temporary = 1;
    f->buf.flush = 1;

    f->chain.buf = &f->buf;
    f->chain.next = NULL;

    if (opcode == CHAT_WS_OP_TEXT) {
        ngx_chat_metrics_frame_out(data, len);
    }

    *ws->last_out = &f->chain;
    ws->last_out = &f->chain.next;
    ws->queued += hlen + len;

    if (ws->queued > ws->conf->ws_send_queue / 4) {
        /* a big round (a sync page of long messages) goes out as it comes */
        ngx_chat_ws_flush(ws);
        return ws->done ? NGX_ERROR : NGX_OK;
    }

    if (!ws->flush.posted) {
        ngx_post_event(&ws->flush, &ngx_posted_events);
    }

    return NGX_OK;
}


void
ngx_chat_ws_revoke(ngx_chat_ws_t *ws, const char *id, size_t len)
{
    if (len == ws->token_id_len && ngx_memcmp(id, ws->token_id, len) == 0) {
        ngx_log_error(NGX_LOG_INFO, ws->connection->log, 0,
                      "chat: ws: user %uL logged out", ws->user_id);
        ngx_chat_ws_ended(ws, NGX_CHAT_CLOSE_LOGOUT, CHAT_WS_CLOSE_POLICY,
                          "token revoked");
        ngx_chat_ws_close(ws, CHAT_WS_CLOSE_POLICY, "token revoked");
    }
}


void
ngx_chat_ws_kick(ngx_chat_ws_t *ws, uint16_t code, const char *reason)
{
    ngx_log_error(NGX_LOG_INFO, ws->connection->log, 0,
                  "chat: ws: user %uL: closed (%d, %s)", ws->user_id,
                  (int) code, reason);

    ngx_chat_ws_close(ws, code, reason);

    if (!ws->closing) {
        ngx_chat_ws_finish(ws);
    }
}


/* code 0: an empty close payload (the peer's close had no code either) */

static void
ngx_chat_ws_close(ngx_chat_ws_t *ws, uint16_t code, const char *reason)
{
    size_t  len;
    u_char  payload[CHAT_WS_MAX_CONTROL];

    if (ws->closing || ws->done) {
        return;
    }

    ngx_chat_ws_ended(ws, ngx_chat_metrics_close_why(code),
                      code ? code : CHAT_WS_CLOSE_NO_CODE, reason);

    len = chat_ws_close_payload(payload, code, reason,
                                reason ? ngx_strlen(reason) : 0);

    if (ngx_chat_ws_send(ws, CHAT_WS_OP_CLOSE, payload, len) != NGX_OK) {
        return;
    }

    ws->closing = 1;

    /* the peer has the send timeout to take it, then we close anyway */
    ngx_chat_ws_flush(ws);
}


static void
ngx_chat_ws_flush_handler(ngx_event_t *ev)
{
    ngx_chat_ws_t  *ws = ev->data;

    if (!ws->done) {
        ngx_chat_ws_flush(ws);
    }
}


static void
ngx_chat_ws_flush(ngx_chat_ws_t *ws)
{
    ngx_chain_t       *cl, *next;
    ngx_connection_t  *c;

    c = ws->connection;

    if (ws->out) {
        cl = c->send_chain(c, ws->out, 0);

        if (cl == NGX_CHAIN_ERROR) {
            ngx_chat_ws_ended(ws, NGX_CHAT_CLOSE_DROPPED, 1006,
                              "write failed");
            ngx_chat_ws_finish(ws);
            return;
        }

        /* free what went out, frame by frame */
        while (ws->out && ngx_buf_size(ws->out->buf) == 0) {
            next = ws->out->next;
            ws->queued -= ((ngx_chat_ws_frame_t *) ws->out)->buf.last
                          - ((ngx_chat_ws_frame_t *) ws->out)->buf.start;
            ngx_free(ws->out);
            ws->out = next;
        }

        if (ws->out == NULL) {
            ws->last_out = &ws->out;
        }
    }

    if (ws->out) {
        ngx_add_timer(c->write, ws->send_timeout);

        if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
            ngx_chat_ws_finish(ws);
        }

        return;
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

#if (NGX_SSL)
    /*
     * All is out: the TLS write buffer (ssl_buffer_size, 16k) goes, as
     * nginx frees it on keepalive connections; the next send takes
     * another.  OpenSSL's own buffers go by SSL_MODE_RELEASE_BUFFERS.
     */
    if (c->ssl && !(c->buffered & NGX_SSL_BUFFERED)) {
        ngx_ssl_free_buffer(c);
    }
#endif

    if (ws->closing) {
        /* our close frame is out: the handshake ends here */
        ngx_chat_ws_finish(ws);
    }
}


/*
 * The end is posted, not done here: callers deep in a loop over the
 * connection's frames return first, and find ws->done set.
 */

static void
ngx_chat_ws_finish(ngx_chat_ws_t *ws)
{
    if (ws->done) {
        return;
    }

    ws->done = 1;
    ngx_post_event(&ws->end, &ngx_posted_events);
}


/*
 * Posted by the handshake (the request is let go then) and by
 * ngx_chat_ws_finish() (the connection ends).
 */

static void
ngx_chat_ws_end_handler(ngx_event_t *ev)
{
    ngx_chat_ws_t       *ws = ev->data;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    if (!ws->done) {
        ngx_chat_ws_detach(ws);
        return;
    }

    c = ws->connection;
    r = ws->http;

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "chat: ws: user %uL disconnected", ws->user_id);

    if (r) {
        /* its pool's cleanup ends ws */
        ngx_http_finalize_request(r, NGX_HTTP_CLOSE);

        /* we run outside the request's own handlers: nobody else would */
        ngx_http_run_posted_requests(c);
        return;
    }

    ngx_chat_ws_cleanup(ws);
    ngx_http_close_connection(c);
}


/*
 * Once the 101 is out and the handshake's handler has returned, the
 * request is freed as ngx_http_set_keepalive() frees it: logged, its
 * pool destroyed (the request, its header lists and module contexts: two
 * blocks of request_pool_size), and the client header buffers freed.  The
 * connection stays, with ws in c->data and its events ours.  Nothing
 * reads the request after this: ws has what it needs of it (user id,
 * token id, send_timeout; error log lines lose the request line, which
 * the access log has).  A request that something else still holds (a
 * body being discarded, output nginx could not write yet) stays: the
 * connection works the same with it, only bigger.
 */

static void
ngx_chat_ws_detach(ngx_chat_ws_t *ws)
{
    ngx_chain_t            *cl;
    ngx_connection_t       *c;
    ngx_http_log_ctx_t     *lctx;
    ngx_http_request_t     *r;
    ngx_http_connection_t  *hc;

    r = ws->http;
    c = ws->connection;

    if (r == NULL || ws->closing) {
        return;
    }

    if (r != r->main || r->count != 1 || r->blocked || r->out
        || r->postponed || r->reading_body || r->discard_body
        || (c->buffered & NGX_HTTP_LOWLEVEL_BUFFERED))
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "chat: ws: user %uL keeps its request", ws->user_id);
        return;
    }

    hc = r->http_connection;

    ws->detached = 1;
    ngx_http_free_request(r, 0);    /* ws->http is NULL now */

    c->data = ws;
    c->destroyed = 0;
    c->log->action = NULL;
    lctx = c->log->data;
    lctx->current_request = NULL;

    c->read->handler = ngx_chat_ws_conn_read;
    c->write->handler = ngx_chat_ws_conn_write;

    /* all their bytes were parsed by the handshake */
    for (cl = hc->busy; cl; cl = cl->next) {
        ngx_pfree(c->pool, cl->buf->start);
    }

    for (cl = hc->free; cl; cl = cl->next) {
        ngx_pfree(c->pool, cl->buf->start);
    }

    hc->busy = NULL;
    hc->nbusy = 0;
    hc->free = NULL;

    if (c->buffer && c->buffer->start
        && ngx_pfree(c->pool, c->buffer->start) == NGX_OK)
    {
        c->buffer->start = NULL;
        c->buffer->pos = NULL;
        c->buffer->last = NULL;
        c->buffer->end = NULL;
    }

#if (NGX_SSL)
    if (c->ssl && ws->out == NULL && !(c->buffered & NGX_SSL_BUFFERED)) {
        ngx_ssl_free_buffer(c);
    }
#endif
}


/*
 * A token in "?access_token=" must not reach the error log, whose lines
 * quote the request line: it is cut at the '?' (log $uri, not $request,
 * in access logs).
 */

static void
ngx_chat_ws_hide_token(ngx_http_request_t *r)
{
    u_char  *q;

    if (r->args.len == 0 || r->request_line.len == 0) {
        return;
    }

    q = ngx_strlchr(r->request_line.data,
                    r->request_line.data + r->request_line.len, '?');
    if (q) {
        r->request_line.len = q - r->request_line.data;
    }
}


/* the request goes: with ws, unless ngx_chat_ws_detach() lets it go */

static void
ngx_chat_ws_request_cleanup(void *data)
{
    ngx_chat_ws_t  *ws = data;

    ws->http = NULL;

    if (!ws->detached) {
        ngx_chat_ws_cleanup(ws);
    }
}


/* the end of ws, before its connection closes */

static void
ngx_chat_ws_cleanup(ngx_chat_ws_t *ws)
{
    ngx_chain_t  *cl, *next;

    for (cl = ws->out; cl; cl = next) {
        next = cl->next;
        ngx_free(cl);
    }

    ws->out = NULL;
    ngx_free(ws->msg);
    ws->msg = NULL;
    ws->done = 1;

    ngx_chat_ws_log_close(ws);

    /* sends in flight finish without the connection */
    ngx_chat_ws_hooks->close(ws);

    if (ws->flush.posted) {
        ngx_delete_posted_event(&ws->flush);
    }

    if (ws->end.posted) {
        ngx_delete_posted_event(&ws->end);
    }

    ngx_free(ws);
}


/* the first reason given is the one: a close frame's code, or a failure */

static void
ngx_chat_ws_ended(ngx_chat_ws_t *ws, ngx_uint_t why, uint16_t code,
    const char *text)
{
    if (ws->close_set) {
        return;
    }

    ws->close_set = 1;
    ws->close_why = (uint8_t) why;
    ws->close_code = code;
    ws->close_text = text;
}


/*
 * chat_ws_closed_total{reason}, and one error log line: at debug for the
 * ends nobody needs to look at (the client's close, nginx's shutdown, a
 * logout), at chat_close_log_level for the others.
 */

static void
ngx_chat_ws_log_close(ngx_chat_ws_t *ws)
{
    ngx_uint_t  level;

    ngx_chat_ws_ended(ws, NGX_CHAT_CLOSE_ERROR, 1006, "closed");

    ngx_chat_metric_dec(NGX_CHAT_M_WS_OPEN);
    ngx_chat_metric_inc(NGX_CHAT_M_WS_CLOSED + ws->close_why);

    level = (ws->close_why <= NGX_CHAT_CLOSE_LOGOUT)
            ? NGX_LOG_DEBUG : ws->conf->close_log_level;

    ngx_log_error(level, ws->connection->log, 0,
                  "chat: ws closed user=%uL conn=%uA code=%ud reason=%s "
                  "detail=\"%s\"", ws->user_id, ws->connection->number,
                  (ngx_uint_t) ws->close_code,
                  ngx_chat_metrics_close_name(ws->close_why),
                  ws->close_text ? ws->close_text : "");
}
