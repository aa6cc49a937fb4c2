
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_WS_H_INCLUDED_
#define _NGX_CHAT_WS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_chat.h"
#include "chat_ws.h"
#include "chat_proto.h"


#define NGX_CHAT_WS_RBUF          4096
/* the message buffer kept between messages, at most */
#define NGX_CHAT_WS_MSG_KEEP      256
#define NGX_CHAT_WS_JSON_DEPTH    8

/* bytes read from one connection before the others get their turn */
#define NGX_CHAT_WS_READ_BUDGET   16384

/* commands queued for a Redis server: over it, new work is refused */
#define NGX_CHAT_REDIS_BACKLOG    8192


typedef struct {
    ngx_chain_t                chain;
    ngx_buf_t                  buf;
    /* the frame's bytes follow */
} ngx_chat_ws_frame_t;


typedef struct ngx_chat_ws_s  ngx_chat_ws_t;


/* work started for a connection that may end before the work does */
typedef struct {
    ngx_queue_t                queue;
    ngx_chat_ws_t             *ws;         /* NULL once it is gone */
} ngx_chat_op_t;


/*
 * Allocated on its own (ngx_alloc), not from a pool: it outlives the
 * handshake's request, which is freed once the 101 is out
 * (ngx_chat_ws.c, ngx_chat_ws_detach()); the connection's pool holds what
 * lives as long as the connection.
 */
struct ngx_chat_ws_s {
    ngx_connection_t          *connection;
    ngx_http_request_t        *http;        /* the handshake, until freed */
    ngx_chat_loc_conf_t       *conf;
    ngx_msec_t                 send_timeout;
    uint64_t                   user_id;
    chat_ws_parser_t           parser;

    u_char                    *msg;
    size_t                     msg_len;
    size_t                     msg_cap;

    ngx_chain_t               *out;
    ngx_chain_t              **last_out;
    size_t                     queued;

    ngx_event_t                flush;       /* writes out, posted */
    ngx_event_t                end;         /* finalizes, posted */
    ngx_queue_t                sends;       /* ngx_chat_send_t in flight */
    ngx_uint_t                 nsends;
    ngx_uint_t                 nseeding;    /* sends waiting for a seq
                                               counter: the later ones
                                               wait too (ngx_chat_send.c) */
    ngx_queue_t                ops;         /* other ngx_chat_op_t */
    ngx_uint_t                 nreceipts;   /* receipts in ops */

    /* per connection limits, GCRA: theoretical arrival times in us */
    uint64_t                   frame_tat;
    uint64_t                   send_tat;

    /* presence: what this connection was told of each friend */
    void                      *told;        /* ngx_chat_told_t, sorted */
    ngx_uint_t                 ntold;
    ngx_queue_t                held;        /* presence before the state */
    ngx_uint_t                 nheld;

    /* live delivery: ngx_chat_deliver.c */
    uint64_t                   conn_id;
    ngx_queue_t                peers;       /* the user's local conns */
    void                      *local;       /* ngx_chat_local_user_t */
    uint64_t                   last_n;      /* inbox position sent */
    void                      *sync_cmd;    /* ngx_chat_batch_item_t */
    ngx_event_t                sync_timer;
    ngx_queue_t                live;        /* held back while syncing */
    /* once the route is in Redis (the session starts presence then) */
    void                     (*registered_handler)(ngx_chat_ws_t *ws);
    ngx_uint_t                 nlive;
    ngx_msec_t                 typing_at;

    /* the user's groups on this connection: ngx_chat_gsync.c */
    void                      *groups;      /* ngx_chat_gconn_t */

    /* the token's id: logout closes the connections of that token */
    size_t                     token_id_len;
    u_char                     token_id[NGX_CHAT_TOKEN_ID_LEN];

    /* how it ended, for chat_ws_closed_total and the error log */
    const char                *close_text;
    uint16_t                   close_code;
    uint8_t                    close_why;   /* ngx_chat_close_e */
    unsigned                   close_set:1;

    unsigned                   syncing:1;
    unsigned                   sync_register:1;
    unsigned                   sync_receipts:1;
    unsigned                   sync_check:1;  /* is the inbox complete? */
    unsigned                   lost_live:1;
    unsigned                   registered:1;
    unsigned                   presence_sent:1;  /* the friends' state */

    unsigned                   closing:1;   /* close frame queued */
    unsigned                   done:1;
    unsigned                   detached:1;  /* the request is let go */
};


/*
 * What the layer above (ngx_chat_session.c) does with a connection: the
 * transport calls up only through these.
 */
typedef struct {
    void                     (*open)(ngx_chat_ws_t *ws);
    ngx_int_t                (*message)(ngx_chat_ws_t *ws); /* ws->msg */
    void                     (*beat)(ngx_chat_ws_t *ws);    /* a frame */
    void                     (*close)(ngx_chat_ws_t *ws);
} ngx_chat_ws_hooks_t;


void ngx_chat_ws_set_hooks(const ngx_chat_ws_hooks_t *hooks);

ngx_int_t ngx_chat_ws_send_json(ngx_chat_ws_t *ws, json_t *json);
ngx_int_t ngx_chat_ws_send_text(ngx_chat_ws_t *ws, const u_char *data,
    size_t len);
/* an error frame, with the client_id of the message it is about */
ngx_int_t ngx_chat_ws_error(ngx_chat_ws_t *ws, const char *code,
    const char *message, const char *client_id);
/* logout: close 1008 for the connections of token id (len bytes) */
void ngx_chat_ws_revoke(ngx_chat_ws_t *ws, const char *id, size_t len);
/* a close frame with this code (the admin API's), or the end at once */
void ngx_chat_ws_kick(ngx_chat_ws_t *ws, uint16_t code, const char *reason);

/*
 * GCRA on a theoretical arrival time *tat (us): NGX_OK and one more taken,
 * or NGX_DECLINED with *retry (ms) set; interval 0 is no limit.
 */
ngx_int_t ngx_chat_ws_meter(uint64_t *tat, ngx_uint_t interval,
    ngx_uint_t burst, ngx_msec_t *retry);
/* an error frame "rate_limited" with retry_after (ms) */
ngx_int_t ngx_chat_ws_rate_limited(ngx_chat_ws_t *ws, const char *message,
    ngx_msec_t retry, const char *client_id);


#endif /* _NGX_CHAT_WS_H_INCLUDED_ */
