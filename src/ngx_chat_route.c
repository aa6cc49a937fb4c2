
/*
 * Copyright (C) ngx_chat authors
 *
 * The worker's own part of routing: its channel ("chat:w:<node>:<pid>.
 * <start>"), its WebSocket connections in a tree by user id, the route
 * of a connection ("<channel> <conn id>"), and the relay of a frame to
 * all routes of a user (the RELAY script).  The subscriptions that bring
 * the frames in are in ngx_chat_channel.c.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"
#include "ngx_chat_route.h"
#include "ngx_chat_lua.h"
#include "ngx_chat_metrics.h"


#define NGX_CHAT_CHANNEL_LEN   96


typedef struct {
    ngx_rbtree_t               users;
    ngx_rbtree_node_t          sentinel;
    uint64_t                   next_conn;
    ngx_uint_t                 nconns;
    ngx_log_t                 *log;
    char                       channel[NGX_CHAT_CHANNEL_LEN];
} ngx_chat_route_t;


static ngx_chat_route_t  *ngx_chat_route;


ngx_int_t
ngx_chat_route_init(ngx_chat_worker_t *w, ngx_cycle_t *cycle)
{
    ngx_chat_route_t  *d;

    d = ngx_calloc(sizeof(ngx_chat_route_t), cycle->log);
    if (d == NULL) {
        return NGX_ERROR;
    }

    d->log = cycle->log;
    ngx_rbtree_init(&d->users, &d->sentinel, ngx_rbtree_insert_value);

    /* a pid is reused in time; with the start time the channel is not */
    (void) ngx_snprintf((u_char *) d->channel, sizeof(d->channel),
                        "chat:w:%V:%P.%T%Z", &w->conf->node_name, ngx_pid,
                        ngx_time());

    ngx_chat_route = d;

    return NGX_OK;
}


void
ngx_chat_route_exit(void)
{
    ngx_free(ngx_chat_route);
    ngx_chat_route = NULL;
}


const char *
ngx_chat_route_channel(void)
{
    return ngx_chat_route ? ngx_chat_route->channel : NULL;
}


ngx_int_t
ngx_chat_local_add(ngx_chat_ws_t *ws)
{
    ngx_chat_route_t       *d = ngx_chat_route;
    ngx_chat_local_user_t  *lu;

    if (d == NULL) {
        return NGX_DECLINED;
    }

    ws->conn_id = ++d->next_conn;

    lu = ngx_chat_local_find(ws->user_id);

    if (lu == NULL) {
        lu = ngx_alloc(sizeof(ngx_chat_local_user_t), d->log);
        if (lu == NULL) {
            return NGX_ERROR;
        }

        ngx_memzero(&lu->node, sizeof(ngx_rbtree_node_t));
        lu->node.key = (ngx_rbtree_key_t) ws->user_id;
        ngx_queue_init(&lu->conns);
        ngx_rbtree_insert(&d->users, &lu->node);
        ngx_chat_metric_inc(NGX_CHAT_M_ONLINE_USERS);
    }

    ngx_queue_insert_tail(&lu->conns, &ws->peers);
    ws->local = lu;
    lu->beat = 1;
    d->nconns++;

    return NGX_OK;
}


ngx_int_t
ngx_chat_local_remove(ngx_chat_ws_t *ws)
{
    ngx_chat_route_t       *d = ngx_chat_route;
    ngx_chat_local_user_t  *lu = ws->local;

    if (lu == NULL || d == NULL) {
        return NGX_DECLINED;
    }

    ngx_queue_remove(&ws->peers);
    ws->local = NULL;
    d->nconns--;

    if (ngx_queue_empty(&lu->conns)) {
        ngx_rbtree_delete(&d->users, &lu->node);
        ngx_free(lu);
        ngx_chat_metric_dec(NGX_CHAT_M_ONLINE_USERS);
    }

    return NGX_OK;
}


ngx_chat_local_user_t *
ngx_chat_local_find(uint64_t user_id)
{
    ngx_rbtree_node_t  *node, *sentinel;

    node = ngx_chat_route->users.root;
    sentinel = ngx_chat_route->users.sentinel;

    while (node != sentinel) {
        if (user_id == node->key) {
            return (ngx_chat_local_user_t *) node;
        }

        node = (user_id < node->key) ? node->left : node->right;
    }

    return NULL;
}


ngx_chat_local_user_t *
ngx_chat_local_next(ngx_chat_local_user_t *lu)
{
    ngx_rbtree_node_t   *node;
    ngx_chat_route_t  *d = ngx_chat_route;

    if (d == NULL || d->users.root == d->users.sentinel) {
        return NULL;
    }

    node = lu ? ngx_rbtree_next(&d->users, &lu->node)
              : ngx_rbtree_min(d->users.root, d->users.sentinel);

    return (ngx_chat_local_user_t *) node;
}


void
ngx_chat_route_name(ngx_chat_ws_t *ws, char *buf)
{
    (void) ngx_snprintf((u_char *) buf, NGX_CHAT_ROUTE_LEN, "%s %uL%Z",
                        ngx_chat_route->channel, ws->conn_id);
}


ngx_chat_redis_cmd_t *
ngx_chat_relay(uint64_t user_id, const char *frame, size_t len,
    uint64_t except, ngx_uint_t store, ngx_chat_redis_handler_pt handler,
    void *data)
{
    ngx_chat_redis_t    *rds;
    unsigned long long   uid = user_id;
    ngx_chat_route_t    *d = ngx_chat_route;

    rds = ngx_chat_redis_for_user(user_id);

    if (rds == NULL || d == NULL) {
        return NULL;
    }

    return ngx_chat_redis_command(rds, handler, data,
                                  "EVALSHA %s 2 chat:routes:{%llu} "
                                  "chat:rbox:{%llu} %llu %b %s %llu %d %d %d",
                                  ngx_chat_script_sha(NGX_CHAT_SCRIPT_RELAY),
                                  uid, uid, uid, frame, len,
                                  except ? d->channel : "-",
                                  (unsigned long long) except,
                                  (int) store, (int) NGX_CHAT_RBOX_MAX,
                                  (int) NGX_CHAT_INBOX_TTL);
}


/* replies nobody waits for: only failures are worth a line */

void
ngx_chat_script_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    const char  *what = data;

    if (rc == NGX_CHAT_STORE_OK) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "chat: %s failed: %s", what ? what : "a Redis script",
                  rc == NGX_CHAT_STORE_TIMEOUT ? "Redis timed out"
                  : rc == NGX_CHAT_STORE_DOWN ? "Redis is down"
                  : "Redis error");

    if (rc == NGX_CHAT_STORE_FAILED && reply
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: Redis lost the chat scripts (SCRIPT FLUSH?); "
                      "they are loaded again on reconnect");
    }
}
