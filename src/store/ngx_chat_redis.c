
/*
 * Copyright (C) ngx_chat authors
 *
 * hiredis inside nginx's event loop: one async connection per configured
 * Redis server per worker, connected in init_process, reconnected with
 * backoff, every command bounded by a timeout.  A command that times out
 * fails alone; the connection is given up only when the server has
 * answered nothing for NGX_CHAT_REDIS_DEAD_AFTER timeouts.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <poll.h>

#include "ngx_chat_redis.h"
#include "ngx_chat_counters.h"


/*
 * Replies come in order, so a late one holds up every command behind it;
 * a server silent for this many timeouts while a command is overdue is
 * taken for dead (a lost peer, a hung process), not slow.
 */
#define NGX_CHAT_REDIS_DEAD_AFTER  4


typedef enum {
    NGX_CHAT_REDIS_IDLE = 0,        /* waiting to (re)connect */
    NGX_CHAT_REDIS_CONNECTING,
    NGX_CHAT_REDIS_AUTH,            /* connected, AUTH not answered yet */
    NGX_CHAT_REDIS_CONNECTED
} ngx_chat_redis_state_e;


struct ngx_chat_redis_s {
    ngx_chat_redis_addr_t     *addr;
    redisAsyncContext         *ac;
    ngx_connection_t          *conn;
    ngx_log_t                  log;
    ngx_msec_t                 timeout;
    ngx_msec_t                 backoff;
    ngx_event_t                timer;      /* connect timeout, reconnect,
                                              and the dead server check */
    ngx_chat_redis_state_e     state;
    ngx_uint_t                 pending;    /* commands without a reply */
    ngx_queue_t                cmds;       /* ... oldest first */
    ngx_uint_t                 late;       /* ... of them timed out */
    ngx_msec_t                 progress;   /* last reply, or the time the
                                              first pending command went */
    ngx_uint_t                 writes;     /* write handler runs: the
                                              "flush generation" */
    unsigned                   writing:1;  /* in the write handler */

    ngx_chat_redis_hook_pt     connecting;
    ngx_chat_redis_hook_pt     connected;
    void                      *hook_data;

    ngx_chat_redis_handler_pt  sub_handler;
    void                      *sub_data;

    unsigned                   destroyed:1;
};


struct ngx_chat_redis_cmd_s {
    ngx_queue_t                queue;      /* in rds->cmds */
    ngx_msec_t                 sent;
    uint64_t                   t0;         /* ngx_chat_counters.h */
    ngx_chat_redis_t          *rds;
    ngx_chat_redis_handler_pt  handler;
    void                      *data;
    ngx_event_t                timer;
    ngx_uint_t                 writes;     /* rds->writes when queued */
    unsigned                   done:1;
    unsigned                   late:1;
};


static void ngx_chat_redis_connect(ngx_chat_redis_t *rds);
static void ngx_chat_redis_schedule(ngx_chat_redis_t *rds);
static void ngx_chat_redis_drop(ngx_chat_redis_t *rds);
static void ngx_chat_redis_timer_handler(ngx_event_t *ev);
static void ngx_chat_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_chat_redis_auth_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_chat_redis_ready(ngx_chat_redis_t *rds);
static void ngx_chat_redis_check_dead(ngx_chat_redis_t *rds);
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
static void ngx_chat_redis_cmd_sent(ngx_chat_redis_cmd_t *cmd);
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
    ngx_queue_init(&rds->cmds);
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


void
ngx_chat_redis_write_now(ngx_chat_redis_t *rds, ngx_msec_t timeout)
{
    int             done;
    ngx_msec_t      waited;
    struct pollfd   pfd;
    redisContext   *c;

    if (rds->ac == NULL || rds->state != NGX_CHAT_REDIS_CONNECTED) {
        return;
    }

    c = &rds->ac->c;

    for (waited = 0; /* void */; waited += 10) {
        done = 0;

        if (redisBufferWrite(c, &done) != REDIS_OK || done) {
            return;
        }

        if (waited >= timeout) {
            ngx_log_error(NGX_LOG_WARN, &rds->log, 0,
                          "chat: redis %V: commands not written at exit",
                          &rds->addr->name);
            return;
        }

        /* the socket is full: wait a little for it */
        pfd.fd = c->fd;
        pfd.events = POLLOUT;
        pfd.revents = 0;

        if (poll(&pfd, 1, 10) == -1 && ngx_errno != NGX_EINTR) {
            return;
        }
    }
}


ngx_uint_t
ngx_chat_redis_connected(ngx_chat_redis_t *rds)
{
    return rds->state == NGX_CHAT_REDIS_CONNECTED;
}


ngx_uint_t
ngx_chat_redis_usable(ngx_chat_redis_t *rds)
{
    return rds->state != NGX_CHAT_REDIS_IDLE && rds->ac != NULL;
}


ngx_uint_t
ngx_chat_redis_pending(ngx_chat_redis_t *rds)
{
    return rds->pending;
}


ngx_uint_t
ngx_chat_redis_behind(ngx_chat_redis_t *rds)
{
    ngx_chat_redis_cmd_t  *oldest;

    if (ngx_queue_empty(&rds->cmds)) {
        return 0;
    }

    oldest = ngx_queue_data(ngx_queue_head(&rds->cmds), ngx_chat_redis_cmd_t,
                            queue);

    return ngx_current_msec - oldest->sent >= rds->timeout / 2;
}


ngx_str_t *
ngx_chat_redis_name(ngx_chat_redis_t *rds)
{
    return &rds->addr->name;
}


static void
ngx_chat_redis_connect(ngx_chat_redis_t *rds)
{
    int                 argc;
    size_t              argvlen[3];
    const char         *argv[3];
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

    /*
     * TCP only: on a unix socket hiredis's TCP_KEEPIDLE fails and leaves
     * the context in error (EOPNOTSUPP), which dropped the connection
     */
    if (rds->addr->port) {
        (void) redisEnableKeepAlive(&ac->c);
    }

    /* the hooks go first: setting the connect callback asks for write */
    ac->ev.data = rds;
    ac->ev.addRead = ngx_chat_redis_add_read;
    ac->ev.delRead = ngx_chat_redis_del_read;
    ac->ev.addWrite = ngx_chat_redis_add_write;
    ac->ev.delWrite = ngx_chat_redis_del_write;
    ac->ev.cleanup = ngx_chat_redis_cleanup;

    (void) redisAsyncSetConnectCallback(ac, ngx_chat_redis_on_connect);
    (void) redisAsyncSetDisconnectCallback(ac, ngx_chat_redis_on_disconnect);

    /* AUTH before anything else: the hooks' commands queue behind it */
    if (rds->addr->password.len) {
        argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;

        if (rds->addr->user.len) {
            argv[argc] = (const char *) rds->addr->user.data;
            argvlen[argc++] = rds->addr->user.len;
        }

        argv[argc] = (const char *) rds->addr->password.data;
        argvlen[argc++] = rds->addr->password.len;

        if (redisAsyncCommandArgv(ac, ngx_chat_redis_auth_reply, rds, argc,
                                  argv, argvlen)
            != REDIS_OK)
        {
            ngx_log_error(NGX_LOG_ALERT, &rds->log, 0,
                          "chat: redis %V: cannot queue AUTH",
                          &rds->addr->name);
            ngx_chat_redis_drop(rds);
            return;
        }
    }

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

    switch (rds->state) {

    case NGX_CHAT_REDIS_CONNECTING:
        ngx_log_error(NGX_LOG_ERR, &rds->log, 0,
                      "chat: redis %V: connect timed out after %M ms",
                      &rds->addr->name, rds->timeout);
        ngx_chat_redis_drop(rds);
        break;

    case NGX_CHAT_REDIS_AUTH:
        ngx_log_error(NGX_LOG_ERR, &rds->log, 0,
                      "chat: redis %V: no answer to AUTH in %M ms",
                      &rds->addr->name, rds->timeout);
        ngx_chat_redis_drop(rds);
        break;

    case NGX_CHAT_REDIS_CONNECTED:
        ngx_chat_redis_check_dead(rds);
        break;

    default: /* NGX_CHAT_REDIS_IDLE */
        ngx_chat_redis_connect(rds);
        break;
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

    if (rds->addr->password.len) {
        /* the connect timer bounds the wait for AUTH's answer too */
        rds->state = NGX_CHAT_REDIS_AUTH;
        return;
    }

    ngx_chat_redis_ready(rds);
}


static void
ngx_chat_redis_auth_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply        *reply = r;
    ngx_chat_redis_t  *rds = privdata;

    if (rds->destroyed || reply == NULL) {
        /* the connection is gone: cleanup reschedules */
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        /* Redis's words name no password (e.g. WRONGPASS ...) */
        ngx_log_error(NGX_LOG_ERR, &rds->log, 0,
                      "chat: redis %V: AUTH%s%V refused: %*s",
                      &rds->addr->name, rds->addr->user.len ? " as " : "",
                      &rds->addr->user, (size_t) reply->len, reply->str);

        /* the commands queued behind AUTH get DOWN; retried with backoff */
        ngx_chat_redis_drop(rds);
        return;
    }

    ngx_chat_redis_ready(rds);
}


static void
ngx_chat_redis_ready(ngx_chat_redis_t *rds)
{
    if (rds->timer.timer_set) {
        ngx_del_timer(&rds->timer);
    }

    rds->state = NGX_CHAT_REDIS_CONNECTED;
    rds->backoff = 0;
    rds->progress = ngx_current_msec;

    ngx_log_error(NGX_LOG_INFO, &rds->log, 0,
                  "chat: redis %V: connected", &rds->addr->name);

    if (rds->connected) {
        rds->connected(rds, rds->hook_data);
    }
}


/*
 * Called when a command timed out and by the timer it arms: late replies
 * still come from a slow server, none at all from a dead one.
 */

static void
ngx_chat_redis_check_dead(ngx_chat_redis_t *rds)
{
    ngx_msec_t  bound, silent;

    if (rds->state != NGX_CHAT_REDIS_CONNECTED || rds->late == 0
        || rds->destroyed || ngx_exiting || ngx_terminate)
    {
        return;
    }

    bound = rds->timeout * NGX_CHAT_REDIS_DEAD_AFTER;
    silent = ngx_current_msec - rds->progress;

    if (silent >= bound) {
        ngx_log_error(NGX_LOG_ERR, &rds->log, 0,
                      "chat: redis %V: no reply at all in %M ms, %ui "
                      "commands waiting, reconnecting",
                      &rds->addr->name, silent, rds->pending);
        ngx_chat_redis_drop(rds);
        return;
    }

    if (!rds->timer.timer_set) {
        ngx_add_timer(&rds->timer, bound - silent);
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

    /* what was queued before now may be on its way: see _written() */
    rds->writes++;

    if (rds->ac) {
        rds->writing = 1;
        redisAsyncHandleWrite(rds->ac);
        rds->writing = 0;
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


/*
 * hiredis asks for the write event after each command it buffers.  Once
 * connected, the socket can nearly always take the bytes: the write is
 * posted, to run after this round's handlers, so one write carries all
 * the commands of the round and epoll is not asked twice (EPOLLOUT on,
 * then off) per write.  While connecting, and when a write left bytes
 * behind (the socket is full), hiredis asks from inside the write handler
 * or before REDIS_CONNECTED, and epoll watches the socket.
 */

static void
ngx_chat_redis_add_write(void *privdata)
{
    ngx_chat_redis_t  *rds = privdata;

    if (rds->conn != NULL
        && rds->ac != NULL
        && (rds->ac->c.flags & REDIS_CONNECTED)
        && !rds->writing)
    {
        if (!rds->conn->write->posted) {
            ngx_post_event(rds->conn->write, &ngx_posted_events);
        }

        return;
    }

    ngx_chat_redis_watch(rds, 1, 1);
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

    ngx_chat_redis_cmd_sent(cmd);

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

    ngx_chat_redis_cmd_sent(cmd);

    return cmd;
}


static void
ngx_chat_redis_cmd_sent(ngx_chat_redis_cmd_t *cmd)
{
    ngx_chat_redis_t  *rds = cmd->rds;

    /* silence is counted from the first command that waits */
    if (rds->pending == 0) {
        rds->progress = ngx_current_msec;
    }

    rds->pending++;
    cmd->sent = ngx_current_msec;
    cmd->t0 = ngx_chat_metrics_now();
    cmd->writes = rds->writes;
    ngx_queue_insert_tail(&rds->cmds, &cmd->queue);

    ngx_add_timer(&cmd->timer, rds->timeout);
}


/*
 * hiredis only appends a command to its output buffer and asks for the
 * socket's write event: the bytes go in the write handler, at the
 * earliest after this round's handlers (a posted event, see _add_write()).
 * Until that handler has run once, the command is still all in the
 * buffer, so Redis will run it after anything that happened up to now.
 */

ngx_uint_t
ngx_chat_redis_written(ngx_chat_redis_cmd_t *cmd)
{
    return cmd->done || cmd->writes != cmd->rds->writes;
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

    ngx_queue_remove(&cmd->queue);

    if (!cmd->rds->destroyed) {
        cmd->rds->pending--;

        if (cmd->late) {
            cmd->rds->late--;
        }

        if (reply) {
            cmd->rds->progress = ngx_current_msec;
        }
    }

    if (!cmd->done) {
        ngx_chat_metrics_call(NGX_CHAT_H_REDIS, cmd->t0,
                              reply == NULL
                              || reply->type == REDIS_REPLY_ERROR);
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

    /*
     * Only this command fails: it keeps its place in hiredis's queue, as
     * Redis answers in order, and its reply is thrown away when it comes.
     */
    cmd->done = 1;
    cmd->late = 1;
    rds->late++;

    ngx_chat_metrics_call(NGX_CHAT_H_REDIS, cmd->t0, 1);

    ngx_log_error(NGX_LOG_ERR, &rds->log, 0,
                  "chat: redis %V: no reply in %M ms",
                  &rds->addr->name, rds->timeout);

    /* the handler may drop the connection, which frees cmd */
    if (cmd->handler) {
        cmd->handler(NGX_CHAT_STORE_TIMEOUT, NULL, cmd->data);
    }

    ngx_chat_redis_check_dead(rds);
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

    if (reply) {
        rds->progress = ngx_current_msec;
    }

    if (reply == NULL) {
        rds->sub_handler(NGX_CHAT_STORE_DOWN, NULL, rds->sub_data);
        return;
    }

    rds->sub_handler(reply->type == REDIS_REPLY_ERROR
                     ? NGX_CHAT_STORE_FAILED : NGX_CHAT_STORE_OK,
                     reply, rds->sub_data);
}
