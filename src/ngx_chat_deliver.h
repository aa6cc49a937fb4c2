
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_DELIVER_H_INCLUDED_
#define _NGX_CHAT_DELIVER_H_INCLUDED_


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
#define NGX_CHAT_DELIVER_TICK     5000
#define NGX_CHAT_ROUTE_REFRESH    240      /* ticks: every 20 minutes */

#define NGX_CHAT_INBOX_MAX        10000    /* undelivered, per user */
#define NGX_CHAT_INBOX_SEEN       5000     /* delivered or read, per user */
#define NGX_CHAT_INBOX_TTL        2592000  /* 30 days */
#define NGX_CHAT_RBOX_MAX         1000     /* receipts for an offline user */
#define NGX_CHAT_RECEIPT_MAX_PENDING 1024  /* under way, per connection */
#define NGX_CHAT_SYNC_PAGE        200
#define NGX_CHAT_REFILL_MAX       1000     /* from PostgreSQL, per sync */
#define NGX_CHAT_REFILL_CHUNK     100      /* entries per REFILL call */
#define NGX_CHAT_REFILL_GRACE     60000    /* ms of Redis data: see REFILL */
#define NGX_CHAT_LIVE_MAX         256      /* buffered while syncing */
#define NGX_CHAT_HELD_MAX         256      /* presence, before the state */

#define NGX_CHAT_DELIVERY_RETRY   250      /* ms between rounds */
#define NGX_CHAT_LOST_MAX         4096     /* users, per worker */
#define NGX_CHAT_DELIVERY_MAX_RETRIES 100000

#define NGX_CHAT_ROUTE_LEN        128      /* "<channel> <conn id>" */
#define NGX_CHAT_KEY_LEN          64       /* "chat:...:{<user id>}" */


/* a user with connections on this worker */
typedef struct {
    ngx_rbtree_node_t          node;        /* key: the user id */
    ngx_queue_t                conns;       /* ngx_chat_ws_t.peers */
    unsigned                   beat:1;      /* a frame since the flush */
} ngx_chat_local_user_t;


ngx_int_t ngx_chat_deliver_init(ngx_chat_worker_t *w, ngx_cycle_t *cycle);
void ngx_chat_deliver_exit(ngx_chat_worker_t *w);

/* a WebSocket connection opens and closes */
void ngx_chat_deliver_open(ngx_chat_ws_t *ws);
void ngx_chat_deliver_close(ngx_chat_ws_t *ws);

void ngx_chat_route_name(ngx_chat_ws_t *ws, char *buf);

/* the worker's users, in id order: NULL for the first, NULL at the end */
ngx_chat_local_user_t *ngx_chat_local_next(ngx_chat_local_user_t *lu);

/*
 * Relayed to a user's connections like a frame, but read by their
 * workers: "!revoke <token id>" closes those of that token (1008).  Real
 * frames are JSON objects, never starting with '!'.
 */
#define NGX_CHAT_REVOKE_FRAME     "!revoke "

/*
 * A frame to all connections of a user (but "except", a connection of
 * this worker), or, with store and none connected, kept for its next one.
 */
ngx_chat_redis_cmd_t *ngx_chat_relay(uint64_t user_id, const char *frame,
    size_t len, uint64_t except, ngx_uint_t store,
    ngx_chat_redis_handler_pt handler, void *data);

/*
 * A message to the user was given up: its inbox is not complete, whatever
 * Redis's marker says (it is being deleted).
 */
ngx_uint_t ngx_chat_deliver_lost(uint64_t user_id);

/* the inbox is read on after a refill */
void ngx_chat_sync_resume(ngx_chat_ws_t *ws);

/* ngx_chat_refill.c: the inbox from PostgreSQL, then the sync goes on */
void ngx_chat_refill_start(ngx_chat_ws_t *ws);

/*
 * ngx_chat_presence.c, as delivery drives it: declared here, not in
 * ngx_chat_presence.h, as long as the two files call each other (in
 * ngx_chat_presence.h they would include each other's header).
 */
ngx_int_t ngx_chat_presence_init(ngx_chat_worker_t *w, ngx_cycle_t *cycle);
void ngx_chat_presence_exit(void);
void ngx_chat_presence_open(ngx_chat_ws_t *ws);
/*
 * A presence frame from another worker for this connection: 1 when it
 * tells something new (send it), 0 when the connection knows it already.
 */
ngx_uint_t ngx_chat_presence_filter(ngx_chat_ws_t *ws, const char *frame,
    size_t len);
void ngx_chat_presence_close(uint64_t user_id, const char *route);

/* the friends' state is sent: presence frames held meanwhile go out */
void ngx_chat_deliver_presence_release(ngx_chat_ws_t *ws);

/* {"type":"sync"} */
ngx_int_t ngx_chat_deliver_sync(ngx_chat_ws_t *ws);

/*
 * A durable message: into the recipient's inbox and out to its routes,
 * and to the sender's other connections (ws: the sending one, or NULL).
 */
void ngx_chat_deliver_message(uint64_t from, uint64_t to, const char *id,
    int64_t seq, const char *conv, json_t *msg, ngx_chat_ws_t *ws);

/* {"type":"receipt"} and {"type":"typing"} */
ngx_int_t ngx_chat_receipt(ngx_chat_ws_t *ws, chat_proto_msg_t *m);
ngx_int_t ngx_chat_typing(ngx_chat_ws_t *ws, chat_proto_msg_t *m);


#endif /* _NGX_CHAT_DELIVER_H_INCLUDED_ */
