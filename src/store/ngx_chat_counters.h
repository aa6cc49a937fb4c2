
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_COUNTERS_H_INCLUDED_
#define _NGX_CHAT_COUNTERS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * The module's metrics: counters and gauges in one shared memory zone
 * ("chat_metrics", made by the module itself), updated by every worker
 * with ngx_atomic_fetch_add(), summed by construction; "chat_metrics;"
 * serves them in the Prometheus text format (docs/OPERATIONS.md).  An
 * update is one atomic add: no lock, no allocation, no system call.
 */


/* why a WebSocket connection ended: chat_ws_closed_total{reason} */
typedef enum {
    NGX_CHAT_CLOSE_NORMAL = 0,      /* the client's close frame */
    NGX_CHAT_CLOSE_GOING_AWAY,      /* nginx shuts down or reloads */
    NGX_CHAT_CLOSE_LOGOUT,          /* its token was revoked */
    NGX_CHAT_CLOSE_TIMEOUT,         /* idle for chat_ws_idle_timeout */
    NGX_CHAT_CLOSE_SLOW,            /* does not read what it is sent */
    NGX_CHAT_CLOSE_TOO_BIG,         /* a message over chat_ws_max_message */
    NGX_CHAT_CLOSE_BAD_DATA,        /* a protocol error, bad UTF-8, binary */
    NGX_CHAT_CLOSE_DROPPED,         /* the peer went without a close frame */
    NGX_CHAT_CLOSE_ERROR,           /* on our side: out of memory, I/O */
    NGX_CHAT_CLOSE_N
} ngx_chat_close_e;


/* WebSocket frames by "type" (in: chat_proto_type_e order) */
#define NGX_CHAT_FRAME_IN_N       7     /* invalid ping send receipt typing
                                           sync other */
#define NGX_CHAT_FRAME_OUT_N      8     /* ack message receipt typing
                                           presence error pong other */
#define NGX_CHAT_ERROR_CODES_N    21
#define NGX_CHAT_API_FAMILIES_N   13
#define NGX_CHAT_API_CLASSES_N    5     /* 1xx .. 5xx */


typedef enum {
    NGX_CHAT_M_WS_OPEN = 0,                             /* gauge */
    NGX_CHAT_M_WS_OPENED,
    NGX_CHAT_M_WS_CLOSED,
    NGX_CHAT_M_FRAMES_IN = NGX_CHAT_M_WS_CLOSED + NGX_CHAT_CLOSE_N,
    NGX_CHAT_M_FRAMES_OUT = NGX_CHAT_M_FRAMES_IN + NGX_CHAT_FRAME_IN_N,
    NGX_CHAT_M_MSG_SENT = NGX_CHAT_M_FRAMES_OUT + NGX_CHAT_FRAME_OUT_N,
    NGX_CHAT_M_MSG_ACKED,
    NGX_CHAT_M_MSG_DELIVERED,
    NGX_CHAT_M_MSG_REFUSED,
    NGX_CHAT_M_RECEIPTS_DELIVERED,
    NGX_CHAT_M_RECEIPTS_READ,
    NGX_CHAT_M_ERRORS_WS,
    NGX_CHAT_M_ERRORS_API = NGX_CHAT_M_ERRORS_WS + NGX_CHAT_ERROR_CODES_N,
    NGX_CHAT_M_KAFKA_QUEUE = NGX_CHAT_M_ERRORS_API
                             + NGX_CHAT_ERROR_CODES_N,  /* gauge */
    NGX_CHAT_M_KAFKA_FAILED,
    NGX_CHAT_M_REDIS_ERRORS,
    NGX_CHAT_M_PG_ERRORS,
    NGX_CHAT_M_ONLINE_USERS,                            /* gauge */
    NGX_CHAT_M_API,
    NGX_CHAT_M_N = NGX_CHAT_M_API
                   + NGX_CHAT_API_FAMILIES_N * NGX_CHAT_API_CLASSES_N
} ngx_chat_metric_e;


/* latency histograms, in seconds */
typedef enum {
    NGX_CHAT_H_SEND_ACK = 0,        /* a send taken to its ack queued */
    NGX_CHAT_H_DELIVERY,            /* its ts to a message frame queued */
    NGX_CHAT_H_REDIS,               /* a command to its reply */
    NGX_CHAT_H_PG,                  /* a query to its result */
    NGX_CHAT_H_N
} ngx_chat_hist_e;


#define NGX_CHAT_HIST_BUCKETS  13   /* .001 .. 10, and +Inf */


typedef struct {
    ngx_atomic_t               bucket[NGX_CHAT_HIST_BUCKETS + 1];
    ngx_atomic_t               sum_us;
    ngx_atomic_t               count;
} ngx_chat_hist_t;


typedef struct {
    ngx_atomic_t               v[NGX_CHAT_M_N];
    ngx_chat_hist_t            h[NGX_CHAT_H_N];
} ngx_chat_metrics_t;


/* the zone of this cycle's workers; NULL before init_process */
extern ngx_chat_metrics_t     *ngx_chat_metrics;


static ngx_inline void
ngx_chat_metric_add(ngx_uint_t m, ngx_atomic_int_t n)
{
    if (ngx_chat_metrics) {
        (void) ngx_atomic_fetch_add(&ngx_chat_metrics->v[m], n);
    }
}


#define ngx_chat_metric_inc(m)  ngx_chat_metric_add(m, 1)
#define ngx_chat_metric_dec(m)  ngx_chat_metric_add(m, -1)


/* a monotonic clock in microseconds (vDSO: no system call) */
uint64_t ngx_chat_metrics_now(void);
/* one observation of us microseconds */
void ngx_chat_metrics_observe_us(ngx_chat_hist_e h, uint64_t us);
/* one observation of the time since t0 (ngx_chat_metrics_now()) */
void ngx_chat_metrics_observe(ngx_chat_hist_e h, uint64_t t0);
/* a backend call done: its latency, and an error when failed */
void ngx_chat_metrics_call(ngx_chat_hist_e h, uint64_t t0,
    ngx_uint_t failed);

/* a gauge that this worker holds *last of: now it holds value */
void ngx_chat_metrics_gauge_set(ngx_chat_metric_e m, ngx_atomic_int_t *last,
    ngx_atomic_int_t value);

/*
 * WebSocket connections open on this node, all workers together: for the
 * admin API ; 0 before the zone is there.
 */
ngx_atomic_int_t ngx_chat_metrics_connections(void);


#endif /* _NGX_CHAT_COUNTERS_H_INCLUDED_ */
