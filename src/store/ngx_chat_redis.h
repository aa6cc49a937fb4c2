
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_REDIS_H_INCLUDED_
#define _NGX_CHAT_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_chat_store.h"


typedef struct {
    ngx_str_t                  name;    /* as configured, for logs */
    ngx_str_t                  host;    /* IP or unix path, NUL-terminated */
    in_port_t                  port;    /* 0 for a unix socket */

    /* AUTH [user] password on every new connection; never logged */
    ngx_str_t                  user;    /* ACL user, or empty: "default" */
    ngx_str_t                  password;    /* empty: no AUTH */
} ngx_chat_redis_addr_t;


typedef struct ngx_chat_redis_s      ngx_chat_redis_t;
typedef struct ngx_chat_redis_cmd_s  ngx_chat_redis_cmd_t;

/*
 * Called exactly once per command unless the command was cancelled.
 * reply is set for NGX_CHAT_STORE_OK and NGX_CHAT_STORE_FAILED (an error
 * reply) and is freed by hiredis when the handler returns.
 * NGX_CHAT_STORE_TIMEOUT fails only that command: the connection stays,
 * and the late reply is read and thrown away when it comes.
 */
typedef void (*ngx_chat_redis_handler_pt)(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);

/*
 * Called for every new connection: "connecting" right after the socket is
 * made, before any other command can be queued on it (commands sent from
 * it go first after AUTH, e.g. SCRIPT LOAD), "connected" once it is up
 * and AUTH, if any, was accepted.
 */
typedef void (*ngx_chat_redis_hook_pt)(ngx_chat_redis_t *rds, void *data);


ngx_chat_redis_t *ngx_chat_redis_create(ngx_chat_redis_addr_t *addr,
    ngx_msec_t timeout, ngx_log_t *log);
void ngx_chat_redis_destroy(ngx_chat_redis_t *rds);
/*
 * At worker exit, with no event loop left to run the posted write: what
 * hiredis holds for a connected server is written now, waiting for the
 * socket up to timeout ms (the replies are not read)
 */
void ngx_chat_redis_write_now(ngx_chat_redis_t *rds, ngx_msec_t timeout);
ngx_uint_t ngx_chat_redis_connected(ngx_chat_redis_t *rds);
/* would a command be taken now (connected, or being connected) */
ngx_uint_t ngx_chat_redis_usable(ngx_chat_redis_t *rds);
ngx_str_t *ngx_chat_redis_name(ngx_chat_redis_t *rds);

/* commands sent and not yet answered: how far behind the server is */
ngx_uint_t ngx_chat_redis_pending(ngx_chat_redis_t *rds);
/*
 * The oldest command waiting for its reply has waited half of its
 * timeout: what is sent now would likely time out
 */
ngx_uint_t ngx_chat_redis_behind(ngx_chat_redis_t *rds);

/*
 * NULL when not connected or out of memory: the handler is not called.
 * A NULL handler sends a command whose reply nobody needs.
 */
ngx_chat_redis_cmd_t *ngx_chat_redis_command(ngx_chat_redis_t *rds,
    ngx_chat_redis_handler_pt handler, void *data, const char *fmt, ...);

/* the same with an argument vector (binary safe) */
ngx_chat_redis_cmd_t *ngx_chat_redis_command_argv(ngx_chat_redis_t *rds,
    ngx_chat_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen);

/*
 * SUBSCRIBE on this connection: the handler gets the confirmation and
 * every message (multi-bulk replies), then NGX_CHAT_STORE_DOWN once when
 * the connection is lost; subscribe again from the "connected" hook.
 */
ngx_int_t ngx_chat_redis_subscribe(ngx_chat_redis_t *rds,
    const char *channel, ngx_chat_redis_handler_pt handler, void *data);

/* runs "connecting" at once if a connection is being made already */
void ngx_chat_redis_set_hooks(ngx_chat_redis_t *rds,
    ngx_chat_redis_hook_pt connecting, ngx_chat_redis_hook_pt connected,
    void *data);

/* gives the connection up and makes a new one (e.g. a silent subscriber) */
void ngx_chat_redis_reconnect(ngx_chat_redis_t *rds);

/*
 * Whether the command may have been written to the server (or is done):
 * 0 while it is still all in hiredis's buffer, i.e. until the
 * connection's write handler next runs, a posted event after the handlers
 * of the round the command was queued in (a per-connection "flush
 * generation" counter).  A command not written yet
 * is run by Redis after everything that happened up to now, so its answer
 * may be shared by callers that came after it was queued.
 */
ngx_uint_t ngx_chat_redis_written(ngx_chat_redis_cmd_t *cmd);

/* the handler will not be called; for callers that go away first */
void ngx_chat_redis_cancel(ngx_chat_redis_cmd_t *cmd);


#endif /* _NGX_CHAT_REDIS_H_INCLUDED_ */
