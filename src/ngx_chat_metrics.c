
/*
 * Copyright (C) ngx_chat authors
 *
 * Metrics and log variables.  The counters live in a shared memory zone
 * ("chat_metrics", made by the module: its size is fixed by the list of
 * metrics, nothing to configure) that every worker adds to atomically, so
 * the numbers are summed over the workers by construction, and survive a
 * reload (a zone of the same name and size is kept).  "chat_metrics;"
 * serves them in the Prometheus text format 0.0.4; docs/OPERATIONS.md
 * lists them.  $chat_node and $chat_conn_id are for log_format.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_metrics.h"
#include "chat_ws.h"


#define NGX_CHAT_METRICS_ZONE  "chat_metrics"


typedef struct {
    const char                *name;
    const char                *type;
    const char                *help;
    ngx_uint_t                 base;
    const char                *label1;
    const char               **values1;
    ngx_uint_t                 n1;
    const char                *label2;
    const char               **values2;
    ngx_uint_t                 n2;
} ngx_chat_family_t;


typedef struct {
    const char                *name;
    const char                *help;
} ngx_chat_hist_family_t;


static ngx_int_t ngx_chat_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static const u_char *ngx_chat_metrics_field(const u_char *p,
    const u_char *last, const char *key, size_t *len);
static ngx_int_t ngx_chat_metrics_handler(ngx_http_request_t *r);
static u_char *ngx_chat_metrics_label(u_char *p, u_char *last, ngx_str_t *s);
static u_char *ngx_chat_metrics_family(u_char *p, u_char *last,
    ngx_chat_family_t *f, ngx_str_t *node);
static u_char *ngx_chat_metrics_hist(u_char *p, u_char *last,
    ngx_chat_hist_family_t *f, ngx_chat_hist_t *h, ngx_str_t *node);
static ngx_int_t ngx_chat_metrics_log_handler(ngx_http_request_t *r);
static ngx_uint_t ngx_chat_metrics_route(ngx_str_t *uri);
static ngx_uint_t ngx_chat_metrics_lookup(const char **names, ngx_uint_t n,
    const u_char *s, size_t len);
static ngx_int_t ngx_chat_node_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_chat_conn_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);




static const char  *ngx_chat_close_names[NGX_CHAT_CLOSE_N] = {
    "normal", "going_away", "logout", "timeout", "slow", "too_big",
    "bad_data", "dropped", "error"
};

/* chat_proto_type_e order, 0 first, "other" last */
static const char  *ngx_chat_frame_in_names[NGX_CHAT_FRAME_IN_N] = {
    "invalid", "ping", "send", "receipt", "typing", "sync", "other"
};

static const char  *ngx_chat_frame_out_names[NGX_CHAT_FRAME_OUT_N] = {
    "ack", "message", "receipt", "typing", "presence", "error", "pong",
    "other"
};

static const char  *ngx_chat_receipt_names[2] = { "delivered", "read" };

static const char  *ngx_chat_source_names[2] = { "ws", "http" };

/* "other" last: a code not in the list */
static const char  *ngx_chat_error_names[NGX_CHAT_ERROR_CODES_N] = {
    "bad_request", "unknown_type", "unauthorized", "forbidden",
    "not_found", "conflict", "username_taken", "invalid_credentials",
    "too_many_members", "invalid_name", "too_large",
    "unsupported_media_type",
    "method_not_allowed", "upgrade_required", "rate_limited", "busy",
    "in_progress", "unknown_message", "unavailable", "internal", "other"
};

/* the first path segment after /v1/, but "users/<id>/keys" is keys... */
static const char  *ngx_chat_route_names[NGX_CHAT_API_FAMILIES_N] = {
    "users", "sessions", "me", "friends", "groups", "keys", "presence",
    "devices", "messages", "receipts", "search", "media", "other"
};

static const char  *ngx_chat_class_names[NGX_CHAT_API_CLASSES_N] = {
    "1xx", "2xx", "3xx", "4xx", "5xx"
};


static ngx_chat_family_t  ngx_chat_families[] = {

    { "chat_ws_connections", "gauge",
      "WebSocket connections open",
      NGX_CHAT_M_WS_OPEN, NULL, NULL, 0, NULL, NULL, 0 },

    { "chat_ws_opened_total", "counter",
      "WebSocket connections accepted (101 sent)",
      NGX_CHAT_M_WS_OPENED, NULL, NULL, 0, NULL, NULL, 0 },

    { "chat_ws_closed_total", "counter",
      "WebSocket connections ended, by reason",
      NGX_CHAT_M_WS_CLOSED, "reason", ngx_chat_close_names,
      NGX_CHAT_CLOSE_N, NULL, NULL, 0 },

    { "chat_frames_in_total", "counter",
      "text frames from clients, by type (invalid: did not decode)",
      NGX_CHAT_M_FRAMES_IN, "type", ngx_chat_frame_in_names,
      NGX_CHAT_FRAME_IN_N, NULL, NULL, 0 },

    { "chat_frames_out_total", "counter",
      "text frames queued to clients, by type",
      NGX_CHAT_M_FRAMES_OUT, "type", ngx_chat_frame_out_names,
      NGX_CHAT_FRAME_OUT_N, NULL, NULL, 0 },

    { "chat_messages_sent_total", "counter",
      "send frames taken (decoded, within chat_ws_frame_rate)",
      NGX_CHAT_M_MSG_SENT, NULL, NULL, 0, NULL, NULL, 0 },

    { "chat_messages_acked_total", "counter",
      "ack frames queued to senders (first acks and repeated ones)",
      NGX_CHAT_M_MSG_ACKED, NULL, NULL, 0, NULL, NULL, 0 },

    { "chat_messages_delivered_total", "counter",
      "message frames queued to recipients' connections, live or by sync",
      NGX_CHAT_M_MSG_DELIVERED, NULL, NULL, 0, NULL, NULL, 0 },

    { "chat_messages_refused_total", "counter",
      "error frames with a client_id: a send refused",
      NGX_CHAT_M_MSG_REFUSED, NULL, NULL, 0, NULL, NULL, 0 },

    { "chat_receipts_total", "counter",
      "receipt frames queued to senders, by status",
      NGX_CHAT_M_RECEIPTS_DELIVERED, "status", ngx_chat_receipt_names, 2,
      NULL, NULL, 0 },

    { "chat_errors_total", "counter",
      "error answers by code: WebSocket error frames, HTTP JSON errors",
      NGX_CHAT_M_ERRORS_WS, "source", ngx_chat_source_names, 2,
      "code", ngx_chat_error_names, NGX_CHAT_ERROR_CODES_N },

    { "chat_kafka_queue_messages", "gauge",
      "messages in the workers' Kafka producer queues (sampled each 100ms)",
      NGX_CHAT_M_KAFKA_QUEUE, NULL, NULL, 0, NULL, NULL, 0 },

    { "chat_kafka_delivery_failures_total", "counter",
      "Kafka delivery reports with an error",
      NGX_CHAT_M_KAFKA_FAILED, NULL, NULL, 0, NULL, NULL, 0 },

    { "chat_redis_errors_total", "counter",
      "Redis commands failed: error reply, timeout, connection lost",
      NGX_CHAT_M_REDIS_ERRORS, NULL, NULL, 0, NULL, NULL, 0 },

    { "chat_postgres_errors_total", "counter",
      "PostgreSQL queries failed: error, timeout, connection lost",
      NGX_CHAT_M_PG_ERRORS, NULL, NULL, 0, NULL, NULL, 0 },

    { "chat_online_users", "gauge",
      "users with a WebSocket connection, distinct per worker, summed",
      NGX_CHAT_M_ONLINE_USERS, NULL, NULL, 0, NULL, NULL, 0 },

    { "chat_http_requests_total", "counter",
      "chat_api requests by route family and status class",
      NGX_CHAT_M_API, "route", ngx_chat_route_names,
      NGX_CHAT_API_FAMILIES_N, "status", ngx_chat_class_names,
      NGX_CHAT_API_CLASSES_N },
};


static ngx_chat_hist_family_t  ngx_chat_hists[NGX_CHAT_H_N] = {
    { "chat_send_ack_seconds",
      "a send frame taken to its ack queued" },
    { "chat_delivery_seconds",
      "a message's ts to its message frame queued to a connection" },
    { "chat_redis_call_seconds",
      "a Redis command to its reply (or failure)" },
    { "chat_postgres_call_seconds",
      "a PostgreSQL query to its result (or failure), queueing included" },
};


/* the le bounds as written (ngx_chat_counters.c has them in us) */
static const char  *ngx_chat_hist_le[NGX_CHAT_HIST_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5", "10"
};


static ngx_str_t  ngx_chat_node_name = ngx_string("chat_node");
static ngx_str_t  ngx_chat_conn_id_name = ngx_string("chat_conn_id");


ngx_int_t
ngx_chat_metrics_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var;

    var = ngx_http_add_variable(cf, &ngx_chat_node_name, 0);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_chat_node_variable;

    var = ngx_http_add_variable(cf, &ngx_chat_conn_id_name,
                                NGX_HTTP_VAR_NOCACHEABLE);
    if (var == NULL) {
        return NGX_ERROR;
    }

    var->get_handler = ngx_chat_conn_id_variable;

    return NGX_OK;
}


/* the zone, and the log phase handler that counts chat_api requests */

ngx_int_t
ngx_chat_metrics_postconfiguration(ngx_conf_t *cf)
{
    size_t                      size;
    ngx_str_t                   name = ngx_string(NGX_CHAT_METRICS_ZONE);
    ngx_shm_zone_t             *zone;
    ngx_http_handler_pt        *h;
    ngx_chat_main_conf_t       *cmcf;
    ngx_http_core_main_conf_t  *hcmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_chat_module);

    /* the slab pool's header and its first pages, then the counters */
    size = 8 * ngx_pagesize
           + ngx_align(sizeof(ngx_chat_metrics_t), ngx_pagesize);

    zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_chat_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_chat_metrics_init_zone;
    zone->noreuse = 0;
    cmcf->metrics_zone = zone;

    hcmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&hcmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_chat_metrics_log_handler;

    return NGX_OK;
}


static ngx_int_t
ngx_chat_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t     *shpool;
    ngx_chat_metrics_t  *m;

    if (data) {
        /* a reload: the counters go on */
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    m = ngx_slab_calloc(shpool, sizeof(ngx_chat_metrics_t));
    if (m == NULL) {
        return NGX_ERROR;
    }

    shpool->data = m;
    shm_zone->data = m;

    return NGX_OK;
}


void
ngx_chat_metrics_init_process(ngx_cycle_t *cycle)
{
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_chat_module);

    if (cmcf && cmcf->metrics_zone) {
        ngx_chat_metrics = cmcf->metrics_zone->data;
    }
}


char *
ngx_chat_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_chat_metrics_handler;

    return NGX_CONF_OK;
}


ngx_uint_t
ngx_chat_metrics_close_why(ngx_uint_t code)
{
    switch (code) {

    case 0:
    case CHAT_WS_CLOSE_NORMAL:
        return NGX_CHAT_CLOSE_NORMAL;

    case CHAT_WS_CLOSE_GOING:
        return NGX_CHAT_CLOSE_GOING_AWAY;

    case CHAT_WS_CLOSE_POLICY:
        return NGX_CHAT_CLOSE_LOGOUT;

    case CHAT_WS_CLOSE_TOO_BIG:
        return NGX_CHAT_CLOSE_TOO_BIG;

    case CHAT_WS_CLOSE_INTERNAL:
        return NGX_CHAT_CLOSE_ERROR;

    default:    /* 1002, 1003, 1007 */
        return NGX_CHAT_CLOSE_BAD_DATA;
    }
}


const char *
ngx_chat_metrics_close_name(ngx_uint_t why)
{
    return why < NGX_CHAT_CLOSE_N ? ngx_chat_close_names[why] : "unknown";
}


void
ngx_chat_metrics_frame_in(ngx_uint_t type)
{
    if (type >= NGX_CHAT_FRAME_IN_N - 1) {
        type = NGX_CHAT_FRAME_IN_N - 1;
    }

    ngx_chat_metric_inc(NGX_CHAT_M_FRAMES_IN + type);
}


/* the value of "key":"<value>" in a frame, or NULL */

static const u_char *
ngx_chat_metrics_field(const u_char *p, const u_char *last, const char *key,
    size_t *len)
{
    size_t         n;
    const u_char  *q;

    n = ngx_strlen(key);
    p = ngx_strlcasestrn((u_char *) p, (u_char *) last, (u_char *) key,
                         n - 1);
    if (p == NULL) {
        return NULL;
    }

    p += n;
    q = ngx_strlchr((u_char *) p, (u_char *) last, '"');
    if (q == NULL) {
        return NULL;
    }

    *len = q - p;

    return p;
}


/*
 * Every frame the gateway writes starts with {"type":"<type>" (chat_frame.c
 * puts it first); an error's "code" and a receipt's "status" follow.  A
 * few comparisons of the frame's first bytes: no parse.
 */

void
ngx_chat_metrics_frame_out(const u_char *data, size_t len)
{
    size_t         n;
    uint64_t       now;
    ngx_uint_t     i;
    ngx_time_t    *tp;
    const u_char  *p, *v, *last;

    if (ngx_chat_metrics == NULL) {
        return;
    }

    last = data + len;
    p = data + sizeof("{\"type\":\"") - 1;

    if (len < sizeof("{\"type\":\"\"}") - 1
        || ngx_strncmp(data, "{\"type\":\"", p - data) != 0)
    {
        ngx_chat_metric_inc(NGX_CHAT_M_FRAMES_OUT + NGX_CHAT_FRAME_OUT_N - 1);
        return;
    }

    v = ngx_strlchr((u_char *) p, (u_char *) last, '"');
    if (v == NULL) {
        v = last;
    }

    i = ngx_chat_metrics_lookup(ngx_chat_frame_out_names,
                                NGX_CHAT_FRAME_OUT_N, p, v - p);

    ngx_chat_metric_inc(NGX_CHAT_M_FRAMES_OUT + i);

    switch (i) {

    case 0:     /* ack */
        ngx_chat_metric_inc(NGX_CHAT_M_MSG_ACKED);
        break;

    case 1:     /* message: "ts" is the send's, in ms since the epoch */
        ngx_chat_metric_inc(NGX_CHAT_M_MSG_DELIVERED);

        p = ngx_strlcasestrn((u_char *) v, (u_char *) last,
                             (u_char *) "\"ts\":", sizeof("\"ts\":") - 2);
        if (p == NULL) {
            break;
        }

        for (p += sizeof("\"ts\":") - 1, n = 0;
             p < last && *p >= '0' && *p <= '9';
             p++)
        {
            n = n * 10 + (*p - '0');
        }

        tp = ngx_timeofday();
        now = (uint64_t) tp->sec * 1000 + tp->msec;

        ngx_chat_metrics_observe_us(NGX_CHAT_H_DELIVERY,
                                    now > n ? (now - n) * 1000 : 0);
        break;

    case 2:     /* receipt */
        p = ngx_chat_metrics_field(v, last, "\"status\":\"", &n);
        if (p) {
            ngx_chat_metric_inc(n == 4 ? NGX_CHAT_M_RECEIPTS_READ
                                       : NGX_CHAT_M_RECEIPTS_DELIVERED);
        }

        break;

    case 5:     /* error */
        p = ngx_chat_metrics_field(v, last, "\"code\":\"", &n);

        ngx_chat_metric_inc(NGX_CHAT_M_ERRORS_WS
                            + ngx_chat_metrics_lookup(ngx_chat_error_names,
                                                      NGX_CHAT_ERROR_CODES_N,
                                                      p, p ? n : 0));

        if (ngx_strlcasestrn((u_char *) v, (u_char *) last,
                             (u_char *) "\"client_id\":\"",
                             sizeof("\"client_id\":\"") - 2))
        {
            ngx_chat_metric_inc(NGX_CHAT_M_MSG_REFUSED);
        }

        break;

    default:
        break;
    }
}


/*
 * The module's JSON errors start with "error" (jansson keeps the order;
 * PostgreSQL's refusals read {"error" : "forbidden", ...})
 */

void
ngx_chat_metrics_api_error(const u_char *data, size_t len)
{
    const u_char  *p, *v, *last;

    last = data + len;
    p = data + sizeof("{\"error\"") - 1;

    if (len < sizeof("{\"error\":\"\"}") - 1
        || ngx_strncmp(data, "{\"error\"", p - data) != 0)
    {
        return;
    }

    while (p < last && (*p == ' ' || *p == ':')) {
        p++;
    }

    if (p == last || *p++ != '"') {
        return;
    }

    v = ngx_strlchr((u_char *) p, (u_char *) last, '"');
    if (v == NULL) {
        return;
    }

    ngx_chat_metric_inc(NGX_CHAT_M_ERRORS_API
                        + ngx_chat_metrics_lookup(ngx_chat_error_names,
                                                  NGX_CHAT_ERROR_CODES_N,
                                                  p, v - p));
}


/* the index of s in names, or the last one ("other") */

static ngx_uint_t
ngx_chat_metrics_lookup(const char **names, ngx_uint_t n, const u_char *s,
    size_t len)
{
    ngx_uint_t  i;

    if (s == NULL) {
        return n - 1;
    }

    for (i = 0; i + 1 < n; i++) {
        if (ngx_strlen(names[i]) == len
            && ngx_strncmp(names[i], s, len) == 0)
        {
            return i;
        }
    }

    return n - 1;
}


static ngx_int_t
ngx_chat_metrics_handler(ngx_http_request_t *r)
{
    u_char                *p, *last;
    size_t                 size;
    ngx_int_t              rc;
    ngx_uint_t             i;
    ngx_buf_t             *b;
    ngx_chain_t            out;
    ngx_chat_main_conf_t  *cmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_chat_metrics == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_chat_module);

    /* a series is at most a line of 256 bytes plus the node's name */
    size = (NGX_CHAT_M_N + NGX_CHAT_H_N * (NGX_CHAT_HIST_BUCKETS + 3)
            + 3 * (sizeof(ngx_chat_families) / sizeof(ngx_chat_families[0])
                   + NGX_CHAT_H_N))
           * (256 + 2 * cmcf->node_name.len);

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->pos;
    last = b->end;

    for (i = 0; i < sizeof(ngx_chat_families) / sizeof(ngx_chat_families[0]);
         i++)
    {
        p = ngx_chat_metrics_family(p, last, &ngx_chat_families[i],
                                    &cmcf->node_name);
    }

    for (i = 0; i < NGX_CHAT_H_N; i++) {
        p = ngx_chat_metrics_hist(p, last, &ngx_chat_hists[i],
                                  &ngx_chat_metrics->h[i],
                                  &cmcf->node_name);
    }

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* a label value: \, " and newline escaped */

static u_char *
ngx_chat_metrics_label(u_char *p, u_char *last, ngx_str_t *s)
{
    ngx_uint_t  i;

    for (i = 0; i < s->len && p + 2 < last; i++) {
        switch (s->data[i]) {

        case '\\':
        case '"':
            *p++ = '\\';
            *p++ = s->data[i];
            break;

        case '\n':
            *p++ = '\\';
            *p++ = 'n';
            break;

        default:
            *p++ = s->data[i];
        }
    }

    return p;
}


static u_char *
ngx_chat_metrics_family(u_char *p, u_char *last, ngx_chat_family_t *f,
    ngx_str_t *node)
{
    ngx_uint_t  i, j, n1, n2;

    p = ngx_slprintf(p, last, "# HELP %s %s\n# TYPE %s %s\n",
                     f->name, f->help, f->name, f->type);

    n1 = f->n1 ? f->n1 : 1;
    n2 = f->n2 ? f->n2 : 1;

    for (i = 0; i < n1; i++) {
        for (j = 0; j < n2; j++) {
            p = ngx_slprintf(p, last, "%s{node=\"", f->name);
            p = ngx_chat_metrics_label(p, last, node);
            p = ngx_slprintf(p, last, "\"");

            if (f->n1) {
                p = ngx_slprintf(p, last, ",%s=\"%s\"", f->label1,
                                 f->values1[i]);
            }

            if (f->n2) {
                p = ngx_slprintf(p, last, ",%s=\"%s\"", f->label2,
                                 f->values2[j]);
            }

            p = ngx_slprintf(p, last, "} %A\n",
                             (ngx_atomic_int_t)
                             ngx_chat_metrics->v[f->base + i * n2 + j]);
        }
    }

    return p;
}


static u_char *
ngx_chat_metrics_hist(u_char *p, u_char *last, ngx_chat_hist_family_t *f,
    ngx_chat_hist_t *h, ngx_str_t *node)
{
    ngx_uint_t        i;
    ngx_atomic_uint_t  n, sum;

    p = ngx_slprintf(p, last, "# HELP %s %s\n# TYPE %s histogram\n",
                     f->name, f->help, f->name);

    n = 0;

    for (i = 0; i <= NGX_CHAT_HIST_BUCKETS; i++) {
        n += h->bucket[i];

        p = ngx_slprintf(p, last, "%s_bucket{node=\"", f->name);
        p = ngx_chat_metrics_label(p, last, node);
        p = ngx_slprintf(p, last, "\",le=\"%s\"} %uA\n",
                         i < NGX_CHAT_HIST_BUCKETS ? ngx_chat_hist_le[i]
                                                   : "+Inf", n);
    }

    sum = h->sum_us;

    p = ngx_slprintf(p, last, "%s_sum{node=\"", f->name);
    p = ngx_chat_metrics_label(p, last, node);
    p = ngx_slprintf(p, last, "\"} %uA.%06uA\n", sum / 1000000,
                     sum % 1000000);

    p = ngx_slprintf(p, last, "%s_count{node=\"", f->name);
    p = ngx_chat_metrics_label(p, last, node);
    p = ngx_slprintf(p, last, "\"} %uA\n", n);

    return p;
}


/* the log phase: a chat_api request's route family and status class */

static ngx_int_t
ngx_chat_metrics_log_handler(ngx_http_request_t *r)
{
    ngx_uint_t            status;
    ngx_chat_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_chat_module);

    if (clcf == NULL || !clcf->api || ngx_chat_metrics == NULL) {
        return NGX_OK;
    }

    status = r->err_status ? r->err_status : r->headers_out.status;

    if (status < 100 || status > 599) {
        return NGX_OK;
    }

    ngx_chat_metric_inc(NGX_CHAT_M_API
                        + ngx_chat_metrics_route(&r->uri)
                          * NGX_CHAT_API_CLASSES_N
                        + status / 100 - 1);

    return NGX_OK;
}


static ngx_uint_t
ngx_chat_metrics_route(ngx_str_t *uri)
{
    u_char      *p, *last, *seg, *end;
    ngx_uint_t   family;

    p = uri->data;
    last = p + uri->len;

    if (uri->len < 4 || ngx_strncmp(p, "/v1/", 4) != 0) {
        return NGX_CHAT_API_FAMILIES_N - 1;
    }

    seg = p + 4;
    end = ngx_strlchr(seg, last, '/');
    if (end == NULL) {
        end = last;
    }

    family = ngx_chat_metrics_lookup(ngx_chat_route_names,
                                     NGX_CHAT_API_FAMILIES_N, seg, end - seg);

    /* users/<id>/keys, users/<id>/presence, messages/<id>/receipts */
    if (end < last && (family == 0 || family == 8)) {
        seg = ngx_strlchr(end + 1, last, '/');

        if (seg) {
            seg++;
            family = ngx_chat_metrics_lookup(ngx_chat_route_names,
                                             NGX_CHAT_API_FAMILIES_N, seg,
                                             last - seg);
        }
    }

    return family;
}


static ngx_int_t
ngx_chat_node_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_chat_module);

    if (cmcf == NULL || cmcf->node_name.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->data = cmcf->node_name.data;
    v->len = cmcf->node_name.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


/*
 * A WebSocket connection's id: nginx's connection number (the "*N" of
 * its error log lines), unique among the node's workers until nginx
 * restarts; empty for other requests.
 */

static ngx_int_t
ngx_chat_conn_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char          *p;
    ngx_chat_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_chat_module);

    if (ctx == NULL || ctx->ws == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_ATOMIC_T_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%uA", r->connection->number) - p;
    v->data = p;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}
