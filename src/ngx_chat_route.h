
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_ROUTE_H_INCLUDED_
#define _NGX_CHAT_ROUTE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"


/*
 * A connection's route lives this long unless its worker refreshes it.
 * Long: a dead worker's routes go as soon as a delivery or the user's
 * last close finds nobody subscribed to their channel; the expiry only
 * takes what nothing touches, so refreshing is rare and cheap.
 */
#define NGX_CHAT_ROUTE_TTL        3600000

#define NGX_CHAT_INBOX_MAX        10000    /* undelivered, per user */
#define NGX_CHAT_INBOX_SEEN       5000     /* delivered or read, per user */
#define NGX_CHAT_INBOX_TTL        2592000  /* 30 days */
#define NGX_CHAT_RBOX_MAX         1000     /* receipts for an offline user */

#define NGX_CHAT_ROUTE_LEN        128      /* "<channel> <conn id>" */
#define NGX_CHAT_KEY_LEN          64       /* "chat:...:{<user id>}" */


/* a user with connections on this worker */
typedef struct {
    ngx_rbtree_node_t          node;        /* key: the user id */
    ngx_queue_t                conns;       /* ngx_chat_ws_t.peers */
    unsigned                   beat:1;      /* a frame since the flush */
} ngx_chat_local_user_t;


/* a frame kept for a connection: ws->live (syncing), ws->held (presence) */
typedef struct {
    ngx_queue_t                queue;
    uint64_t                   n;
    size_t                     len;
    /* the frame follows */
} ngx_chat_live_t;


/* the worker's channel and users; NGX_OK also without Redis (none) */
ngx_int_t ngx_chat_route_init(ngx_chat_worker_t *w, ngx_cycle_t *cycle);
void ngx_chat_route_exit(void);

/* "chat:w:<node>:<pid>.<start>", or NULL: this worker has no Redis */
const char *ngx_chat_route_channel(void);

void ngx_chat_route_name(ngx_chat_ws_t *ws, char *buf);

/*
 * A connection joins its user's (NGX_OK), or stays out: NGX_DECLINED
 * without Redis, NGX_ERROR out of memory.
 */
ngx_int_t ngx_chat_local_add(ngx_chat_ws_t *ws);
/* it leaves: NGX_DECLINED when it never joined */
ngx_int_t ngx_chat_local_remove(ngx_chat_ws_t *ws);

ngx_chat_local_user_t *ngx_chat_local_find(uint64_t user_id);
/* the worker's users, in id order: NULL for the first, NULL at the end */
ngx_chat_local_user_t *ngx_chat_local_next(ngx_chat_local_user_t *lu);

/*
 * Relayed to a user's connections like a frame, but read by their
 * workers: "!revoke <token id>" closes those of that token (1008).  Real
 * frames are JSON objects, never starting with '!'.
 */
#define NGX_CHAT_REVOKE_FRAME     "!revoke "
/*
 * "!kick": closes all of them with NGX_CHAT_KICK_CLOSE (POST
 * /admin/users/{id}/disconnect; the token stays valid)
 */
#define NGX_CHAT_KICK_FRAME       "!kick"
#define NGX_CHAT_KICK_CLOSE       4001

/*
 * A frame to all connections of a user (but "except", a connection of
 * this worker), or, with store and none connected, kept for its next one.
 */
ngx_chat_redis_cmd_t *ngx_chat_relay(uint64_t user_id, const char *frame,
    size_t len, uint64_t except, ngx_uint_t store,
    ngx_chat_redis_handler_pt handler, void *data);

/* for replies nobody waits for (data: what, for the log, or NULL) */
void ngx_chat_script_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data);


#endif /* _NGX_CHAT_ROUTE_H_INCLUDED_ */
