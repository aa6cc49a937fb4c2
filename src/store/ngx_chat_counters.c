
/*
 * Copyright (C) ngx_chat authors
 *
 * The counters, gauges and histograms of the module's metrics, in the
 * shared memory zone that ngx_chat_metrics.c makes and serves: here, below
 * the store's clients (which time their calls), only what updates them.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <time.h>

#include "ngx_chat_counters.h"


/* the zone of this cycle's workers; NULL before init_process */
ngx_chat_metrics_t  *ngx_chat_metrics;


/* the le bounds, in microseconds (ngx_chat_metrics.c writes them) */
static const uint64_t  ngx_chat_hist_us[NGX_CHAT_HIST_BUCKETS] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000
};


uint64_t
ngx_chat_metrics_now(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}


void
ngx_chat_metrics_observe_us(ngx_chat_hist_e h, uint64_t us)
{
    ngx_uint_t        i;
    ngx_chat_hist_t  *hist;

    if (ngx_chat_metrics == NULL) {
        return;
    }

    hist = &ngx_chat_metrics->h[h];

    for (i = 0; i < NGX_CHAT_HIST_BUCKETS; i++) {
        if (us <= ngx_chat_hist_us[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&hist->bucket[i], 1);
    (void) ngx_atomic_fetch_add(&hist->sum_us, (ngx_atomic_int_t) us);
}


void
ngx_chat_metrics_observe(ngx_chat_hist_e h, uint64_t t0)
{
    uint64_t  now;

    if (t0 == 0) {
        return;
    }

    now = ngx_chat_metrics_now();

    ngx_chat_metrics_observe_us(h, now > t0 ? now - t0 : 0);
}


void
ngx_chat_metrics_call(ngx_chat_hist_e h, uint64_t t0, ngx_uint_t failed)
{
    ngx_chat_metrics_observe(h, t0);

    if (failed) {
        ngx_chat_metric_inc(h == NGX_CHAT_H_REDIS ? NGX_CHAT_M_REDIS_ERRORS
                                                  : NGX_CHAT_M_PG_ERRORS);
    }
}


void
ngx_chat_metrics_gauge_set(ngx_chat_metric_e m, ngx_atomic_int_t *last,
    ngx_atomic_int_t value)
{
    if (value != *last) {
        ngx_chat_metric_add(m, value - *last);
        *last = value;
    }
}


ngx_atomic_int_t
ngx_chat_metrics_connections(void)
{
    if (ngx_chat_metrics == NULL) {
        return 0;
    }

    return (ngx_atomic_int_t) ngx_chat_metrics->v[NGX_CHAT_M_WS_OPEN];
}
