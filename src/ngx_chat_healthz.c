
/*
 * Copyright (C) ngx_chat authors
 *
 * GET /healthz: asks each backend through this worker's own clients (Redis
 * PING on every server, PostgreSQL SELECT 1, a Kafka message acknowledged
 * by all in-sync replicas) and answers within chat_healthz_timeout even
 * when a backend hangs.  Concurrent requests share the probe in flight, so
 * a busy health checker cannot flood the backends.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_drain.h"


typedef enum {
    NGX_CHAT_PROBE_REDIS = 0,
    NGX_CHAT_PROBE_POSTGRES,
    NGX_CHAT_PROBE_KAFKA
} ngx_chat_probe_kind_e;


typedef struct {
    ngx_chat_probe_kind_e      kind;
    ngx_uint_t                 index;       /* of the Redis server */
    ngx_queue_t                waiters;
    unsigned                   busy:1;
} ngx_chat_probe_t;


typedef struct ngx_chat_healthz_ctx_s  ngx_chat_healthz_ctx_t;

typedef struct {
    ngx_queue_t                queue;
    ngx_chat_healthz_ctx_t    *ctx;
    ngx_chat_store_rc_e        rc;
    unsigned                   configured:1;
    unsigned                   waiting:1;
} ngx_chat_healthz_wait_t;


struct ngx_chat_healthz_ctx_s {
    ngx_http_request_t        *request;
    ngx_event_t                timer;
    ngx_uint_t                 pending;
    ngx_chat_healthz_wait_t   *waits;       /* one per probe */
    unsigned                   async:1;
};


static ngx_int_t ngx_chat_healthz_handler(ngx_http_request_t *r);
static ngx_int_t ngx_chat_healthz_probes_init(ngx_chat_worker_t *w);
static ngx_int_t ngx_chat_probe_start(ngx_chat_probe_t *probe);
static void ngx_chat_probe_done(ngx_chat_probe_t *probe,
    ngx_chat_store_rc_e rc);
static void ngx_chat_probe_redis_handler(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_probe_pg_handler(ngx_chat_store_rc_e rc, PGresult *res,
    void *data);
static void ngx_chat_probe_kafka_handler(ngx_chat_store_rc_e rc,
    int32_t partition, int64_t offset, void *data);
static void ngx_chat_healthz_timeout(ngx_event_t *ev);
static void ngx_chat_healthz_cleanup(void *data);
static void ngx_chat_healthz_forget(ngx_chat_healthz_ctx_t *ctx);
static void ngx_chat_healthz_finish(ngx_chat_healthz_ctx_t *ctx);
static ngx_int_t ngx_chat_healthz_respond(ngx_chat_healthz_ctx_t *ctx);


/* per worker, made on first use */
static ngx_chat_probe_t  *ngx_chat_probes;
static ngx_uint_t         ngx_chat_nprobes;


char *
ngx_chat_healthz(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_chat_healthz_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_chat_healthz_handler(ngx_http_request_t *r)
{
    json_t                   *json;
    ngx_int_t                 rc;
    ngx_uint_t                i;
    ngx_chat_worker_t        *w;
    ngx_chat_probe_t         *probe;
    ngx_pool_cleanup_t       *cln;
    ngx_chat_loc_conf_t      *clcf;
    ngx_chat_healthz_ctx_t   *ctx;
    ngx_chat_healthz_wait_t  *wait;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_chat_http_error(r, NGX_HTTP_NOT_ALLOWED,
                                   "method_not_allowed",
                                   "use GET or HEAD");
    }

    if (ngx_chat_http_discard_body(r, &rc) != NGX_OK) {
        return rc;
    }

    /* out of the edge's and the load balancers' rotation */
    if (ngx_chat_draining()) {
        json = json_pack("{s:s}", "status", "draining");
        if (json == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_chat_http_send_json(r, NGX_HTTP_SERVICE_UNAVAILABLE, json);
        json_decref(json);

        return rc;
    }

    w = ngx_chat_worker;

    if (w && ngx_chat_probes == NULL
        && ngx_chat_healthz_probes_init(w) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_chat_healthz_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;

    if (ngx_chat_nprobes) {
        ctx->waits = ngx_pcalloc(r->pool, ngx_chat_nprobes
                                          * sizeof(ngx_chat_healthz_wait_t));
        if (ctx->waits == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_chat_healthz_cleanup;
    cln->data = ctx;

    for (i = 0; i < ngx_chat_nprobes; i++) {
        probe = &ngx_chat_probes[i];
        wait = &ctx->waits[i];
        wait->ctx = ctx;
        wait->configured = 1;

        if (!probe->busy && ngx_chat_probe_start(probe) != NGX_OK) {
            wait->rc = NGX_CHAT_STORE_DOWN;
            continue;
        }

        /*
         * librdkafka knows when no broker at all can be reached: say so
         * at once; the probe in flight clears it when a broker is back.
         */
        if (probe->kind == NGX_CHAT_PROBE_KAFKA
            && ngx_chat_kafka_brokers_down(w->kafka))
        {
            wait->rc = NGX_CHAT_STORE_DOWN;
            continue;
        }

        wait->waiting = 1;
        ngx_queue_insert_tail(&probe->waiters, &wait->queue);
        ctx->pending++;
    }

    if (ctx->pending == 0) {
        return ngx_chat_healthz_respond(ctx);
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_chat_module);

    ctx->timer.handler = ngx_chat_healthz_timeout;
    ctx->timer.data = ctx;
    ctx->timer.log = r->connection->log;
    ngx_add_timer(&ctx->timer, clcf->healthz_timeout);

    ctx->async = 1;
    r->main->count++;

    return NGX_DONE;
}


static ngx_int_t
ngx_chat_healthz_probes_init(ngx_chat_worker_t *w)
{
    ngx_uint_t         i, n;
    ngx_chat_probe_t  *p;

    n = w->nredis + (w->pg ? 1 : 0) + (w->kafka ? 1 : 0);

    if (n == 0) {
        return NGX_OK;
    }

    p = ngx_calloc(n * sizeof(ngx_chat_probe_t), w->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        ngx_queue_init(&p[i].waiters);

        if (i < w->nredis) {
            p[i].kind = NGX_CHAT_PROBE_REDIS;
            p[i].index = i;

        } else if (i == w->nredis && w->pg) {
            p[i].kind = NGX_CHAT_PROBE_POSTGRES;

        } else {
            p[i].kind = NGX_CHAT_PROBE_KAFKA;
        }
    }

    /* lives as long as the worker: freed by the process exit */
    ngx_chat_probes = p;
    ngx_chat_nprobes = n;

    return NGX_OK;
}


static ngx_int_t
ngx_chat_probe_start(ngx_chat_probe_t *probe)
{
    u_char             *p;
    ngx_str_t           key, payload;
    ngx_time_t         *tp;
    ngx_chat_worker_t  *w = ngx_chat_worker;
    u_char              buf[NGX_INT64_LEN * 2 + 64];

    switch (probe->kind) {

    case NGX_CHAT_PROBE_REDIS:
        if (ngx_chat_redis_command(w->redis[probe->index],
                                   ngx_chat_probe_redis_handler, probe,
                                   "PING")
            == NULL)
        {
            return NGX_DECLINED;
        }

        break;

    case NGX_CHAT_PROBE_POSTGRES:
        if (ngx_chat_pg_query(w->pg, "SELECT 1", 0, NULL,
                              ngx_chat_probe_pg_handler, probe)
            == NULL)
        {
            return NGX_DECLINED;
        }

        break;

    default: /* NGX_CHAT_PROBE_KAFKA */
        key = w->conf->node_name;

        tp = ngx_timeofday();
        p = ngx_snprintf(buf, sizeof(buf), "{\"pid\":%P,\"ts\":%T%03M}",
                         ngx_pid, tp->sec, tp->msec);
        payload.data = buf;
        payload.len = p - buf;

        if (ngx_chat_kafka_produce(w->kafka, NGX_CHAT_TOPIC_HEALTH, 0, &key,
                                   &payload, ngx_chat_probe_kafka_handler,
                                   probe)
            == NULL)
        {
            return NGX_DECLINED;
        }

        break;
    }

    probe->busy = 1;

    return NGX_OK;
}


static void
ngx_chat_probe_redis_handler(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_probe_done(data, rc);
}


static void
ngx_chat_probe_pg_handler(ngx_chat_store_rc_e rc, PGresult *res, void *data)
{
    ngx_chat_probe_done(data, rc);
}


static void
ngx_chat_probe_kafka_handler(ngx_chat_store_rc_e rc, int32_t partition,
    int64_t offset, void *data)
{
    ngx_chat_probe_done(data, rc);
}


static void
ngx_chat_probe_done(ngx_chat_probe_t *probe, ngx_chat_store_rc_e rc)
{
    ngx_queue_t              *q;
    ngx_chat_healthz_ctx_t   *ctx;
    ngx_chat_healthz_wait_t  *wait;

    probe->busy = 0;

    while (!ngx_queue_empty(&probe->waiters)) {
        q = ngx_queue_head(&probe->waiters);
        ngx_queue_remove(q);

        wait = ngx_queue_data(q, ngx_chat_healthz_wait_t, queue);
        wait->waiting = 0;
        wait->rc = rc;

        ctx = wait->ctx;

        if (--ctx->pending == 0) {
            ngx_chat_healthz_finish(ctx);
        }
    }
}


static void
ngx_chat_healthz_timeout(ngx_event_t *ev)
{
    ngx_uint_t                i;
    ngx_chat_healthz_ctx_t   *ctx = ev->data;
    ngx_chat_healthz_wait_t  *wait;

    for (i = 0; i < ngx_chat_nprobes; i++) {
        wait = &ctx->waits[i];

        if (!wait->waiting) {
            continue;
        }

        wait->rc = NGX_CHAT_STORE_TIMEOUT;

        if (ngx_chat_probes[i].kind == NGX_CHAT_PROBE_KAFKA
            && ngx_chat_kafka_brokers_down(ngx_chat_worker->kafka))
        {
            wait->rc = NGX_CHAT_STORE_DOWN;
        }
    }

    ngx_chat_healthz_forget(ctx);
    ngx_chat_healthz_finish(ctx);
}


static void
ngx_chat_healthz_cleanup(void *data)
{
    ngx_chat_healthz_forget(data);
}


/* the request stops waiting: the probes in flight carry on without it */

static void
ngx_chat_healthz_forget(ngx_chat_healthz_ctx_t *ctx)
{
    ngx_uint_t  i;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    for (i = 0; i < ngx_chat_nprobes && ctx->waits; i++) {
        if (ctx->waits[i].waiting) {
            ngx_queue_remove(&ctx->waits[i].queue);
            ctx->waits[i].waiting = 0;
        }
    }

    ctx->pending = 0;
}


static void
ngx_chat_healthz_finish(ngx_chat_healthz_ctx_t *ctx)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r = ctx->request;

    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    c = r->connection;

    ngx_http_finalize_request(r, ngx_chat_healthz_respond(ctx));

    /* completions come from backend events, not the request's handlers */
    ngx_http_run_posted_requests(c);
}


static ngx_int_t
ngx_chat_healthz_respond(ngx_chat_healthz_ctx_t *ctx)
{
    u_char                   *p, *last;
    json_t                   *json, *servers;
    ngx_int_t                 rc;
    ngx_str_t                *name;
    ngx_uint_t                i, ok;
    const char               *text, *kind;
    ngx_chat_worker_t        *w = ngx_chat_worker;
    ngx_chat_probe_t         *probe;
    ngx_http_request_t       *r = ctx->request;
    ngx_chat_healthz_wait_t  *wait;
    ngx_chat_store_rc_e       redis;
    u_char                    msg[1024];

    json = json_object();
    servers = json_object();

    if (json == NULL || servers == NULL) {
        json_decref(json);
        json_decref(servers);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ok = 1;
    redis = NGX_CHAT_STORE_OK;
    p = msg;
    last = msg + sizeof(msg);

    /* first in the output; set again below */
    (void) json_object_set_new(json, "status", json_string("ok"));
    (void) json_object_set_new(json, "node",
                 json_stringn((char *) w->conf->node_name.data,
                              w->conf->node_name.len));

    for (i = 0; i < ngx_chat_nprobes; i++) {
        probe = &ngx_chat_probes[i];
        wait = &ctx->waits[i];
        text = ngx_chat_store_rc_text(wait->rc);

        if (wait->rc != NGX_CHAT_STORE_OK) {
            ok = 0;
        }

        switch (probe->kind) {

        case NGX_CHAT_PROBE_REDIS:
            name = ngx_chat_redis_name(w->redis[probe->index]);
            kind = "redis";

            (void) json_object_set_new(servers,
                         (char *) name->data, json_string(text));

            if (wait->rc > redis) {
                redis = wait->rc;
            }

            if (wait->rc != NGX_CHAT_STORE_OK) {
                p = ngx_slprintf(p, last, "%s%s %V: %s",
                                 p == msg ? "" : "; ", kind, name, text);
            }

            continue;

        case NGX_CHAT_PROBE_POSTGRES:
            kind = "postgres";
            break;

        default:
            kind = "kafka";
            break;
        }

        (void) json_object_set_new(json, kind, json_string(text));

        if (wait->rc != NGX_CHAT_STORE_OK) {
            p = ngx_slprintf(p, last, "%s%s: %s",
                             p == msg ? "" : "; ", kind, text);
        }
    }

    if (w == NULL || w->nredis == 0) {
        (void) json_object_set_new(json, "redis", json_string("off"));

    } else {
        (void) json_object_set_new(json, "redis",
                                   json_string(ngx_chat_store_rc_text(redis)));

        if (w->nredis > 1) {
            (void) json_object_set(json, "redis_servers", servers);
        }
    }

    if (w == NULL || w->pg == NULL) {
        (void) json_object_set_new(json, "postgres", json_string("off"));
    }

    if (w == NULL || w->kafka == NULL) {
        (void) json_object_set_new(json, "kafka", json_string("off"));
    }

    json_decref(servers);

    (void) json_object_set_new(json, "status",
                               json_string(ok ? "ok" : "unavailable"));

    if (!ok) {
        (void) json_object_set_new(json, "error",
                                   json_string("backend_unavailable"));
        (void) json_object_set_new(json, "message",
                                   json_stringn((char *) msg, p - msg));

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "chat: healthz: %*s", p - msg, msg);
    }

    rc = ngx_chat_http_send_json(r, ok ? NGX_HTTP_OK
                                       : NGX_HTTP_SERVICE_UNAVAILABLE, json);
    json_decref(json);

    return rc;
}
