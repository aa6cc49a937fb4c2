
/*
 * Copyright (C) ngx_chat authors
 *
 * hiredis inside nginx's event loop: one async connection per configured
 * Redis server per worker, connected in init_process, reconnected with
 * backoff, every command bounded by a timeout.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_chat_redis.h"


typedef enum {
    NGX_CHAT_REDIS_IDLE = 0,        /* waiting to (re)connect */
    NGX_CHAT_REDIS_CONNECTING,
    NGX_CHAT_REDIS_CONNECTED
} ngx_chat_redis_state_e;


struct ngx_chat_redis_s {
    ngx_chat_redis_addr_t     *addr;
    redisAsyncContext         *ac;
    ngx_connection_t          *conn;
    ngx_log_t                  log;
    ngx_msec_t                 timeout;
    ngx_msec_t                 backoff;
    ngx_event_t                timer;      /* connect timeout, reconnect */
    ngx_chat_redis_state_e     state;
    ngx_uint_t                 pending;    /* commands without a reply */

    ngx_chat_redis_hook_pt     connecting;
    ngx_chat_redis_hook_pt     connected;
    void                      *hook_data;

    ngx_chat_redis_handler_pt  sub_handler;
    void                      *sub_data;

    unsigned                   destroyed:1;
};


struct ngx_chat_redis_cmd_s {
    ngx_chat_redis_t          *rds;
    ngx_chat_redis_handler_pt  handler;
    void                      *data;
    ngx_event_t                timer;
    unsigned                   done:1;
};


static void ngx_chat_redis_connect(ngx_chat_redis_t *rds);
static void ngx_chat_redis_schedule(ngx_chat_redis_t *rds);
static void ngx_chat_redis_drop(ngx_chat_redis_t *rds);
static void ngx_chat_redis_timer_handler(ngx_event_t *ev);
static void ngx_chat_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_chat_redis_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_chat_redis_read_handler(ngx_event_t *ev);
static void ngx_chat_redis_write_handler(ngx_event_t *ev);
static void ngx_chat_redis_add_read(void *privdata);
static void ngx_chat_redis_del_read(void *privdata);
static void ngx_chat_redis_add_write(void *privdata);
static void ngx_chat_redis_del_write(void *privdata);
static void ngx_chat_redis_cleanup(void *privdata);
static ngx_chat_redis_cmd_t *ngx_chat_redis_cmd_new(ngx_chat_redis_t *rds,
    ngx_chat_redis_handler_pt handler, void *data);
static void ngx_chat_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_redis_cmd_timeout(ngx_event_t *ev);
static void ngx_chat_redis_sub_reply(redisAsyncContext *ac, void *r,
    void *privdata);


ngx_chat_redis_t *
ngx_chat_redis_create(ngx_chat_redis_addr_t *addr, ngx_msec_t timeout,
    ngx_log_t *log)
{
    ngx_chat_redis_t  *rds;

    rds = ngx_calloc(sizeof(ngx_chat_redis_t), log);
    if (rds == NULL) {
        return NULL;
    }

    rds->addr = addr;
    rds->timeout = timeout;
    rds->log = *log;
    rds->log.action = "talking to Redis";

    rds->timer.handler = ngx_chat_redis_timer_handler;
    rds->timer.data = rds;
    rds->timer.log = &rds->log;
    rds->timer.cancelable = 1;

    ngx_chat_redis_connect(rds);

    return rds;
}


void
ngx_chat_redis_destroy(ngx_chat_redis_t *rds)
{
    rds->destroyed = 1;

    if (rds->timer.timer_set) {
        ngx_del_timer(&rds->timer);
    }

    if (rds->ac) {
        /* runs pending callbacks, which see "destroyed", then cleanup */
        redisAsyncFree(rds->ac);
    }

    ngx_free(rds);
}


ngx_uint_t
ngx_chat_redis_connected(ngx_chat_redis_t *rds)
{
    return rds->state == NGX_CHAT_REDIS_CONNECTED;
}


ngx_uint_t
ngx_chat_redis_pending(ngx_chat_redis_t *rds)
{
    return rds->pending;
}


ngx_str_t *
ngx_chat_redis_name(ngx_chat_redis_t *rds)
{
    return &rds->addr->name;
}


static void
ngx_chat_redis_connect(ngx_chat_redis_t *rds)
{
    ngx_connection_t   *c;
    redisAsyncContext  *ac;

    if (rds->addr->port) {
        ac = redisAsyncConnect((char *) rds->addr->host.data,
                               rds->addr->port);

    } else {
        ac = redisAsyncConnectUnix((char *) rds->addr->host.data);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ALERT, &rds->log, 0,
                      "chat: redis %V: out of memory", &rds->addr->name);
        ngx_chat_redis_schedule(rds);
        return;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, &rds->log, 0,
                      "chat: redis %V: connect failed: %s",
                      &rds->addr->name, ac->errstr);
        redisAsyncFree(ac);
        ngx_chat_redis_schedule(rds);
        return;
    }

    c = ngx_get_connection(ac->c.fd, &rds->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_chat_redis_schedule(rds);
        return;
    }

    c->data = rds;
    c->log = &rds->log;
    c->read->log = &rds->log;
    c->write->log = &rds->log;
    c->read->handler = ngx_chat_redis_read_handler;
    c->write->handler = ngx_chat_redis_write_handler;

    rds->ac = ac;
    rds->conn = c;
    rds->state = NGX_CHAT_REDIS_CONNECTING;

    (void) redisEnableKeepAlive(&ac->c);

    /* the hooks go first: setting the connect callback asks for write */
    ac->ev.data = rds;
    ac->ev.addRead = ngx_chat_redis_add_read;
    ac->ev.delRead = ngx_chat_redis_del_read;
    ac->ev.addWrite = ngx_chat_redis_add_write;
    ac->ev.delWrite = ngx_chat_redis_del_write;
    ac->ev.cleanup = ngx_chat_redis_cleanup;

    (void) redisAsyncSetConnectCallback(ac, ngx_chat_redis_on_connect);
    (void) redisAsyncSetDisconnectCallback(ac, ngx_chat_redis_on_disconnect);

    ngx_add_timer(&rds->timer, rds->timeout);

    if (rds->connecting) {
        rds->connecting(rds, rds->hook_data);
    }
}


void
ngx_chat_redis_set_hooks(ngx_chat_redis_t *rds,
    ngx_chat_redis_hook_pt connecting, ngx_chat_redis_hook_pt connected,
    void *data)
{
    rds->connecting = connecting;
    rds->connected = connected;
    rds->hook_data = data;

    if (rds->state == NGX_CHAT_REDIS_CONNECTING && rds->ac && connecting) {
        connecting(rds, data);
    }
}


void
ngx_chat_redis_reconnect(ngx_chat_redis_t *rds)
{
    ngx_chat_redis_drop(rds);
}


static void
ngx_chat_redis_schedule(ngx_chat_redis_t *rds)
{
    rds->state = NGX_CHAT_REDIS_IDLE;

    if (rds->destroyed || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    rds->backoff = ngx_chat_store_backoff(rds->backoff);

    if (rds->timer.timer_set) {
        ngx_del_timer(&rds->timer);
    }

    ngx_add_timer(&rds->timer, rds->backoff);
}


static void
ngx_chat_redis_drop(ngx_chat_redis_t *rds)
{
    if (rds->ac) {
        /* pending commands get DOWN; cleanup schedules a reconnect */
        redisAsyncFree(rds->ac);
    }
}


static void
ngx_chat_redis_timer_handler(ngx_event_t *ev)
{
    ngx_chat_redis_t  *rds = ev->data;

    if (rds->destroyed || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (rds->state == NGX_CHAT_REDIS_CONNECTING) {
        ngx_log_error(NGX_LOG_ERR, &rds->log, 0,
                      "chat: redis %V: connect timed out after %M ms",
                      &rds->addr->name, rds->timeout);
        ngx_chat_redis_drop(rds);
        return;
    }

    if (rds->state == NGX_CHAT_REDIS_IDLE) {
        ngx_chat_redis_connect(rds);
    }
}


static void
ngx_chat_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_chat_redis_t  *rds = ac->ev.data;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this: cleanup reschedules */
        ngx_log_error(NGX_LOG_ERR, &rds->log, 0,
                      "chat: redis %V: connect failed: %s",
                      &rds->addr->name, ac->errstr);
        return;
    }

    if (rds->timer.timer_set) {
        ngx_del_timer(&rds->timer);
    }

    rds->state = NGX_CHAT_REDIS_CONNECTED;
    rds->backoff = 0;

    ngx_log_error(NGX_LOG_INFO, &rds->log, 0,
                  "chat: redis %V: connected", &rds->addr->name);

    if (rds->connected) {
        rds->connected(rds, rds->hook_data);
    }
}


static void
ngx_chat_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_chat_redis_t  *rds = ac->ev.data;

    if (status != REDIS_OK && !rds->destroyed) {
        ngx_log_error(NGX_LOG_ERR, &rds->log, 0,
                      "chat: redis %V: connection lost: %s",
                      &rds->addr->name, ac->errstr);
    }
}


static void
ngx_chat_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;
    ngx_chat_redis_t  *rds = c->data;

    if (rds->ac) {
        redisAsyncHandleRead(rds->ac);
    }
}


static void
ngx_chat_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;
    ngx_chat_redis_t  *rds = c->data;

    if (rds->ac) {
        redisAsyncHandleWrite(rds->ac);
    }
}


static void
ngx_chat_redis_watch(ngx_chat_redis_t *rds, ngx_uint_t write,
    ngx_uint_t want)
{
    ngx_event_t  *ev;

    if (rds->conn == NULL) {
        return;
    }

    ev = write ? rds->conn->write : rds->conn->read;

    if (ngx_chat_store_watch(ev, want) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, &rds->log, 0,
                      "chat: redis %V: cannot watch the socket",
                      &rds->addr->name);
    }
}


static void
ngx_chat_redis_add_read(void *privdata)
{
    ngx_chat_redis_watch(privdata, 0, 1);
}


static void
ngx_chat_redis_del_read(void *privdata)
{
    ngx_chat_redis_watch(privdata, 0, 0);
}


static void
ngx_chat_redis_add_write(void *privdata)
{
    ngx_chat_redis_watch(privdata, 1, 1);
}


static void
ngx_chat_redis_del_write(void *privdata)
{
    ngx_chat_redis_watch(privdata, 1, 0);
}


/* hiredis is about to free the context, for whatever reason */

static void
ngx_chat_redis_cleanup(void *privdata)
{
    ngx_chat_redis_t  *rds = privdata;

    if (rds->conn) {
        ngx_chat_store_free_connection(rds->conn);
        rds->conn = NULL;
    }

    rds->ac = NULL;

    if (!rds->destroyed) {
        ngx_chat_redis_schedule(rds);
    }
}


static ngx_chat_redis_cmd_t *
ngx_chat_redis_cmd_new(ngx_chat_redis_t *rds,
    ngx_chat_redis_handler_pt handler, void *data)
{
    ngx_chat_redis_cmd_t  *cmd;

    /* while connecting, hiredis buffers the command until it can write */
    if (rds->state == NGX_CHAT_REDIS_IDLE || rds->ac == NULL) {
        return NULL;
    }

    cmd = ngx_calloc(sizeof(ngx_chat_redis_cmd_t), &rds->log);
    if (cmd == NULL) {
        return NULL;
    }

    cmd->rds = rds;
    cmd->handler = handler;
    cmd->data = data;
    cmd->timer.handler = ngx_chat_redis_cmd_timeout;
    cmd->timer.data = cmd;
    cmd->timer.log = &rds->log;
    /* not cancelable: a graceful shutdown waits for the reply */
    cmd->timer.cancelable = 0;

    return cmd;
}


ngx_chat_redis_cmd_t *
ngx_chat_redis_command(ngx_chat_redis_t *rds,
    ngx_chat_redis_handler_pt handler, void *data, const char *fmt, ...)
{
    int                    rc;
    va_list                args;
    ngx_chat_redis_cmd_t  *cmd;

    cmd = ngx_chat_redis_cmd_new(rds, handler, data);
    if (cmd == NULL) {
        return NULL;
    }

    va_start(args, fmt);
    rc = redisvAsyncCommand(rds->ac, ngx_chat_redis_reply, cmd, fmt, args);
    va_end(args);

    if (rc != REDIS_OK) {
        ngx_free(cmd);
        return NULL;
    }

    ngx_add_timer(&cmd->timer, rds->timeout);
    rds->pending++;

    return cmd;
}


ngx_chat_redis_cmd_t *
ngx_chat_redis_command_argv(ngx_chat_redis_t *rds,
    ngx_chat_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    ngx_chat_redis_cmd_t  *cmd;

    cmd = ngx_chat_redis_cmd_new(rds, handler, data);
    if (cmd == NULL) {
        return NULL;
    }

    if (redisAsyncCommandArgv(rds->ac, ngx_chat_redis_reply, cmd, argc,
                              argv, argvlen)
        != REDIS_OK)
    {
        ngx_free(cmd);
        return NULL;
    }

    ngx_add_timer(&cmd->timer, rds->timeout);
    rds->pending++;

    return cmd;
}


void
ngx_chat_redis_cancel(ngx_chat_redis_cmd_t *cmd)
{
    /* the reply still arrives and frees the command */
    cmd->done = 1;

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }
}


static void
ngx_chat_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply            *reply = r;
    ngx_chat_redis_cmd_t  *cmd = privdata;
    ngx_chat_store_rc_e    rc;

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }

    if (!cmd->rds->destroyed) {
        cmd->rds->pending--;
    }

    if (!cmd->done && !cmd->rds->destroyed && cmd->handler) {
        cmd->done = 1;

        if (reply == NULL) {
            rc = NGX_CHAT_STORE_DOWN;

        } else if (reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, &cmd->rds->log, 0,
                          "chat: redis %V: %*s", &cmd->rds->addr->name,
                          (size_t) reply->len, reply->str);
            rc = NGX_CHAT_STORE_FAILED;

        } else {
            rc = NGX_CHAT_STORE_OK;
        }

        cmd->handler(rc, reply, cmd->data);
    }

    ngx_free(cmd);
}


static void
ngx_chat_redis_cmd_timeout(ngx_event_t *ev)
{
    ngx_chat_redis_cmd_t  *cmd = ev->data;
    ngx_chat_redis_t      *rds;

    rds = cmd->rds;

    if (cmd->done) {
        return;
    }

    cmd->done = 1;

    ngx_log_error(NGX_LOG_ERR, &rds->log, 0,
                  "chat: redis %V: no reply in %M ms, reconnecting",
                  &rds->addr->name, rds->timeout);

    if (cmd->handler) {
        cmd->handler(NGX_CHAT_STORE_TIMEOUT, NULL, cmd->data);
    }

    /*
     * Replies come in order: one that is late holds up every command
     * behind it, so the connection is given up and made anew.
     */
    if (!rds->destroyed && !ngx_exiting && !ngx_terminate) {
        ngx_chat_redis_drop(rds);
    }
}


ngx_int_t
ngx_chat_redis_subscribe(ngx_chat_redis_t *rds, const char *channel,
    ngx_chat_redis_handler_pt handler, void *data)
{
    if (rds->state != NGX_CHAT_REDIS_CONNECTED || rds->ac == NULL) {
        return NGX_ERROR;
    }

    rds->sub_handler = handler;
    rds->sub_data = data;

    /* hiredis keeps the callback for the channel's every message */
    if (redisAsyncCommand(rds->ac, ngx_chat_redis_sub_reply, rds,
                          "SUBSCRIBE %s", channel)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_chat_redis_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply        *reply = r;
    ngx_chat_redis_t  *rds = privdata;

    if (rds->destroyed || rds->sub_handler == NULL) {
        return;
    }

    if (reply == NULL) {
        rds->sub_handler(NGX_CHAT_STORE_DOWN, NULL, rds->sub_data);
        return;
    }

    rds->sub_handler(reply->type == REDIS_REPLY_ERROR
                     ? NGX_CHAT_STORE_FAILED : NGX_CHAT_STORE_OK,
                     reply, rds->sub_data);
}
