
/*
 * Copyright (C) ngx_chat authors
 *
 * The admin API (chat_admin): a location of its own with its own bearer
 * token (chat_admin_token_file, compared in constant time), off unless
 * configured.  Every answer is JSON, errors as the API's.
 *
 *   GET  .../admin/nodes                 the nodes, their workers, load
 *   POST .../admin/nodes/{name}/drain    close its WebSockets (1012), refuse
 *   POST .../admin/nodes/{name}/undrain  new ones (503) until undrained
 *   GET  .../admin/users/{id}            where the user is connected
 *   POST .../admin/users/{id}/disconnect close its WebSockets everywhere
 *   GET  .../admin/lag                   the consumer groups' Kafka lag
 *
 * State lives in Redis (the server of each key's hash), so any node
 * answers for all of them:
 *
 *   chat:nodes    hash "<node>:<pid>" -> {"node","pid","channel",
 *                 "connections","users","draining","ts"}: each worker of
 *                 each node writes its own every NGX_CHAT_ADMIN_REPORT
 *                 seconds; older than NGX_CHAT_ADMIN_STALE: ignored, and
 *                 removed by the next GET /admin/nodes
 *   chat:drained  hash "<node>" -> when it was drained (ms); every worker
 *                 reads its node's field every second, so a drain reaches
 *                 all of a node's workers, the new ones of a reload or a
 *                 restart included, until undrain removes it
 *   chat:lag      hash "<group>" -> {"group","topics":{...},"lag","ts"}:
 *                 written by the consumer daemons (chat-worker)
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"
#include "ngx_chat_route.h"
#include "ngx_chat_drain.h"
#include "ngx_chat_admin.h"


#define NGX_CHAT_ADMIN_TICK        1000     /* ms: the drain flag read */
#define NGX_CHAT_ADMIN_REPORT      3        /* ticks: the worker's load */
#define NGX_CHAT_ADMIN_STALE       10000    /* ms: a report is too old */
#define NGX_CHAT_ADMIN_LAG_STALE   30000    /* ms: a lag report is old */
#define NGX_CHAT_ADMIN_MIN_TOKEN   16
#define NGX_CHAT_ADMIN_MAX_TOKEN   4096
#define NGX_CHAT_ADMIN_FIELD_LEN   (NGX_INT64_LEN + 300)

#define NGX_CHAT_NODES_KEY         "chat:nodes"
#define NGX_CHAT_DRAINED_KEY       "chat:drained"
#define NGX_CHAT_LAG_KEY           "chat:lag"


typedef enum {
    NGX_CHAT_ADMIN_NODES = 0,
    NGX_CHAT_ADMIN_DRAIN,
    NGX_CHAT_ADMIN_UNDRAIN,
    NGX_CHAT_ADMIN_USER,
    NGX_CHAT_ADMIN_DISCONNECT,
    NGX_CHAT_ADMIN_LAG
} ngx_chat_admin_op_e;


#define NGX_CHAT_ADMIN_ARG_NONE    0
#define NGX_CHAT_ADMIN_ARG_NODE    1
#define NGX_CHAT_ADMIN_ARG_USER    2


/* .../admin/<what>[/<arg>[/<action>]] */
typedef struct {
    ngx_str_t                  what;
    ngx_str_t                  action;      /* empty: none */
    ngx_uint_t                 arg;         /* NGX_CHAT_ADMIN_ARG_* */
    ngx_uint_t                 method;
    ngx_chat_admin_op_e        op;
} ngx_chat_admin_route_t;


typedef struct ngx_chat_admin_ctx_s  ngx_chat_admin_ctx_t;

/* one command of a request, the data of its reply handler */
typedef struct {
    ngx_chat_admin_ctx_t      *ctx;
    ngx_chat_redis_cmd_t      *cmd;         /* NULL: none in flight */
} ngx_chat_admin_slot_t;


struct ngx_chat_admin_ctx_s {
    ngx_http_request_t        *request;
    ngx_chat_admin_op_e        op;
    uint64_t                   user_id;
    ngx_str_t                  node;
    ngx_chat_admin_slot_t      slots[2];
    json_t                    *answer;      /* what is known so far */
    json_t                    *nodes;       /* node -> its workers */
    json_t                    *drained;     /* node -> since when */
    ngx_uint_t                 status;      /* of a refusal, else 0 */
    const char                *code;
    const char                *message;
    unsigned                   second:1;    /* drain: the flag is set */
};


/* the worker's side: its node's drain flag, its reports */
typedef struct {
    ngx_event_t                tick;
    ngx_uint_t                 ticks;
    ngx_chat_worker_t         *worker;
    ngx_chat_redis_cmd_t      *poll;        /* HEXISTS in flight */
    ngx_uint_t                 draining;
    ngx_uint_t                 active;
} ngx_chat_admin_state_t;


static ngx_int_t ngx_chat_admin_handler(ngx_http_request_t *r);
static ngx_uint_t ngx_chat_admin_authorized(ngx_http_request_t *r,
    ngx_str_t *secret);
static ngx_int_t ngx_chat_admin_route(ngx_http_request_t *r,
    ngx_chat_admin_ctx_t *ctx);
static ngx_int_t ngx_chat_admin_start(ngx_chat_admin_ctx_t *ctx);
static void ngx_chat_admin_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data);
static void ngx_chat_admin_take(ngx_chat_admin_ctx_t *ctx, ngx_uint_t i,
    redisReply *reply);
static void ngx_chat_admin_take_nodes(ngx_chat_admin_ctx_t *ctx,
    redisReply *reply);
static void ngx_chat_admin_take_drained(ngx_chat_admin_ctx_t *ctx,
    redisReply *reply);
static void ngx_chat_admin_take_routes(ngx_chat_admin_ctx_t *ctx,
    redisReply *reply);
static void ngx_chat_admin_take_lag(ngx_chat_admin_ctx_t *ctx,
    redisReply *reply);
static ngx_uint_t ngx_chat_admin_pair(redisReply *reply, size_t *i,
    redisReply **a, redisReply **b);
static ngx_int_t ngx_chat_admin_next(ngx_chat_admin_ctx_t *ctx);
static ngx_int_t ngx_chat_admin_respond(ngx_chat_admin_ctx_t *ctx);
static void ngx_chat_admin_cleanup(void *data);
static void ngx_chat_admin_tick(ngx_event_t *ev);
static void ngx_chat_admin_poll_reply(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);
static void ngx_chat_admin_drain(ngx_chat_admin_state_t *st);
static void ngx_chat_admin_report(ngx_chat_admin_state_t *st);
static ngx_uint_t ngx_chat_admin_close_all(uint16_t code,
    const char *reason);
static char *ngx_chat_admin_field(ngx_chat_worker_t *w, char *buf);
static int64_t ngx_chat_admin_now(void);


static ngx_chat_admin_route_t  ngx_chat_admin_routes[] = {

    { ngx_string("nodes"), ngx_null_string, NGX_CHAT_ADMIN_ARG_NONE,
      NGX_HTTP_GET, NGX_CHAT_ADMIN_NODES },

    { ngx_string("nodes"), ngx_string("drain"), NGX_CHAT_ADMIN_ARG_NODE,
      NGX_HTTP_POST, NGX_CHAT_ADMIN_DRAIN },

    { ngx_string("nodes"), ngx_string("undrain"), NGX_CHAT_ADMIN_ARG_NODE,
      NGX_HTTP_POST, NGX_CHAT_ADMIN_UNDRAIN },

    { ngx_string("users"), ngx_null_string, NGX_CHAT_ADMIN_ARG_USER,
      NGX_HTTP_GET, NGX_CHAT_ADMIN_USER },

    { ngx_string("users"), ngx_string("disconnect"), NGX_CHAT_ADMIN_ARG_USER,
      NGX_HTTP_POST, NGX_CHAT_ADMIN_DISCONNECT },

    { ngx_string("lag"), ngx_null_string, NGX_CHAT_ADMIN_ARG_NONE,
      NGX_HTTP_GET, NGX_CHAT_ADMIN_LAG },

    { ngx_null_string, ngx_null_string, 0, 0, 0 }
};


static ngx_chat_admin_state_t  ngx_chat_admin_state;
static ngx_connection_t        ngx_chat_admin_dumb;



char *
ngx_chat_admin(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_loc_conf_t *lcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (lcf->admin) {
        return "is duplicate";
    }

    lcf->admin = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_chat_admin_handler;

    return NGX_CONF_OK;
}


char *
ngx_chat_admin_token_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_loc_conf_t *lcf = conf;

    if (lcf->admin_token.data) {
        return "is duplicate";
    }

    if (ngx_chat_conf_secret_file(cf, cmd, NGX_CHAT_ADMIN_MAX_TOKEN,
                                  &lcf->admin_token)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (lcf->admin_token.len < NGX_CHAT_ADMIN_MIN_TOKEN) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_admin_token_file: \"%V\" holds %uz bytes, "
                           "at least %d are needed (e.g. openssl rand "
                           "-hex 32)", &((ngx_str_t *) cf->args->elts)[1],
                           lcf->admin_token.len, NGX_CHAT_ADMIN_MIN_TOKEN);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_chat_admin_merge(ngx_conf_t *cf, ngx_chat_loc_conf_t *prev,
    ngx_chat_loc_conf_t *conf)
{
    if (conf->admin_token.data == NULL) {
        conf->admin_token = prev->admin_token;
    }

    if (conf->admin && conf->admin_token.data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_admin needs chat_admin_token_file");
        return NGX_CONF_ERROR;
    }

    /* its own credential: no user's token is asked for here */
    if (conf->admin) {
        conf->auth = 0;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_chat_admin_handler(ngx_http_request_t *r)
{
    ngx_int_t              rc;
    ngx_table_elt_t       *h;
    ngx_pool_cleanup_t    *cln;
    ngx_chat_loc_conf_t   *lcf;
    ngx_chat_admin_ctx_t  *ctx;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_chat_module);

    if (ngx_chat_http_discard_body(r, &rc) != NGX_OK) {
        return rc;
    }

    if (!ngx_chat_admin_authorized(r, &lcf->admin_token)) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "WWW-Authenticate");
        ngx_str_set(&h->value, "Bearer realm=\"chat-admin\"");
#if (nginx_version >= 1023000)
        h->next = NULL;
#endif

        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "chat: admin: refused a request without the admin "
                      "token");

        return ngx_chat_http_error(r, NGX_HTTP_UNAUTHORIZED, "unauthorized",
                                   "the admin token is missing or wrong");
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_chat_admin_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;

    rc = ngx_chat_admin_route(r, ctx);
    if (rc != NGX_OK) {
        return ngx_chat_http_error(r, rc, ctx->code, ctx->message);
    }

    if (ngx_chat_worker == NULL || ngx_chat_worker->nredis == 0) {
        return ngx_chat_http_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "unavailable", "no Redis configured");
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_chat_admin_cleanup;
    cln->data = ctx;

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "chat: admin: %V %V", &r->method_name, &r->uri);

    rc = ngx_chat_admin_start(ctx);

    if (rc == NGX_DECLINED) {
        return ngx_chat_http_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "unavailable", "Redis is down");
    }

    if (rc != NGX_OK) {
        return rc;
    }

    r->main->count++;

    return NGX_DONE;
}


/*
 * Bearer <token>: both sides hashed first, so that the comparison takes
 * the same time whatever the lengths and contents
 */

static ngx_uint_t
ngx_chat_admin_authorized(ngx_http_request_t *r, ngx_str_t *secret)
{
    u_char      got[SHA256_DIGEST_LENGTH], want[SHA256_DIGEST_LENGTH];
    ngx_str_t   v;

    if (r->headers_in.authorization == NULL || secret->len == 0) {
        return 0;
    }

    v = r->headers_in.authorization->value;

    if (v.len < 7 || ngx_strncasecmp(v.data, (u_char *) "Bearer ", 7) != 0)
    {
        return 0;
    }

    v.data += 7;
    v.len -= 7;

    while (v.len && v.data[0] == ' ') {
        v.data++;
        v.len--;
    }

    (void) SHA256(v.data, v.len, got);
    (void) SHA256(secret->data, secret->len, want);

    return CRYPTO_memcmp(got, want, sizeof(want)) == 0;
}


/* NGX_OK with ctx->op, or the status of the refusal (404, 405, 400) */

static ngx_int_t
ngx_chat_admin_route(ngx_http_request_t *r, ngx_chat_admin_ctx_t *ctx)
{
    off_t                    id;
    u_char                  *p, *last;
    ngx_str_t                part[3];
    ngx_uint_t               n, i;
    ngx_chat_admin_route_t  *rt;

    p = ngx_strlcasestrn(r->uri.data, r->uri.data + r->uri.len,
                         (u_char *) "/admin/", 7 - 1);
    if (p == NULL) {
        goto not_found;
    }

    p += 7;
    last = r->uri.data + r->uri.len;

    /* what[/arg[/action]] */
    for (n = 0; n < 3; n++) {
        part[n].data = p;
        p = ngx_strlchr(p, last, '/');
        part[n].len = (p ? p : last) - part[n].data;

        if (p == NULL) {
            break;
        }

        p++;
    }

    if (p || part[n].len == 0) {
        /* more than three parts, or an empty one at the end */
        goto not_found;
    }

    for (rt = ngx_chat_admin_routes; rt->what.len; rt++) {
        if (rt->what.len == part[0].len
            && ngx_strncmp(rt->what.data, part[0].data, part[0].len) == 0
            && (rt->arg ? n >= 1 : n == 0)
            && (n == 2 ? rt->action.len == part[2].len
                         && ngx_strncmp(rt->action.data, part[2].data,
                                        part[2].len)
                            == 0
                       : rt->action.len == 0))
        {
            break;
        }
    }

    if (rt->what.len == 0) {
        goto not_found;
    }

    ctx->op = rt->op;

    if (rt->arg == NGX_CHAT_ADMIN_ARG_NODE) {
        if (part[1].len > 64) {
            goto not_found;
        }

        for (i = 0; i < part[1].len; i++) {
            if (part[1].data[i] <= ' ' || part[1].data[i] == '"'
                || part[1].data[i] == '\\' || part[1].data[i] >= 0x7f)
            {
                ctx->code = "bad_request";
                ctx->message = "invalid node name";
                return NGX_HTTP_BAD_REQUEST;
            }
        }

        ctx->node = part[1];

    } else if (rt->arg == NGX_CHAT_ADMIN_ARG_USER) {
        id = part[1].len > 19 ? NGX_ERROR
                              : ngx_atoof(part[1].data, part[1].len);

        if (id <= 0) {
            ctx->code = "bad_request";
            ctx->message = "invalid user id";
            return NGX_HTTP_BAD_REQUEST;
        }

        ctx->user_id = (uint64_t) id;
    }

    if (!(r->method & rt->method)) {
        ctx->code = "method_not_allowed";
        ctx->message = rt->method == NGX_HTTP_GET ? "use GET" : "use POST";
        return NGX_HTTP_NOT_ALLOWED;
    }

    return NGX_OK;

not_found:

    ctx->code = "not_found";
    ctx->message = "no such admin resource";

    return NGX_HTTP_NOT_FOUND;
}


/* a command for slot i; 1 when it went out */
#define ngx_chat_admin_cmd(ctx, i, rds, ...)                                  \
    ((rds) != NULL                                                            \
     && ((ctx)->slots[i].cmd = ngx_chat_redis_command(rds,                    \
                                   ngx_chat_admin_reply, &(ctx)->slots[i],    \
                                   __VA_ARGS__))                              \
        != NULL)


/* NGX_OK: under way; NGX_DECLINED: Redis is down; or 500 */

static ngx_int_t
ngx_chat_admin_start(ngx_chat_admin_ctx_t *ctx)
{
    ngx_uint_t         ok;
    ngx_chat_redis_t  *nodes, *drained, *user;

    ctx->slots[0].ctx = ctx;
    ctx->slots[1].ctx = ctx;

    nodes = ngx_chat_redis_for_key((u_char *) NGX_CHAT_NODES_KEY,
                                   sizeof(NGX_CHAT_NODES_KEY) - 1);
    drained = ngx_chat_redis_for_key((u_char *) NGX_CHAT_DRAINED_KEY,
                                     sizeof(NGX_CHAT_DRAINED_KEY) - 1);

    ctx->answer = json_object();
    if (ctx->answer == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    switch (ctx->op) {

    case NGX_CHAT_ADMIN_NODES:
        ok = ngx_chat_admin_cmd(ctx, 0, nodes, "HGETALL %s",
                                NGX_CHAT_NODES_KEY)
             && ngx_chat_admin_cmd(ctx, 1, drained, "HGETALL %s",
                                   NGX_CHAT_DRAINED_KEY);
        break;

    case NGX_CHAT_ADMIN_DRAIN:
        /* a node that reports, else 404; then the flag (_next) */
        ok = ngx_chat_admin_cmd(ctx, 0, nodes, "HGETALL %s",
                                NGX_CHAT_NODES_KEY);
        break;

    case NGX_CHAT_ADMIN_UNDRAIN:
        ok = ngx_chat_admin_cmd(ctx, 0, drained, "HDEL %s %b",
                                NGX_CHAT_DRAINED_KEY, ctx->node.data,
                                ctx->node.len);
        break;

    case NGX_CHAT_ADMIN_USER:
        user = ngx_chat_redis_for_user(ctx->user_id);
        ok = ngx_chat_admin_cmd(ctx, 0, user,
                                "ZRANGE chat:routes:{%llu} 0 -1 WITHSCORES",
                                (unsigned long long) ctx->user_id)
             && ngx_chat_admin_cmd(ctx, 1, user, "GET chat:seen:{%llu}",
                                   (unsigned long long) ctx->user_id);
        break;

    case NGX_CHAT_ADMIN_DISCONNECT:
        ctx->slots[0].cmd = ngx_chat_relay(ctx->user_id, NGX_CHAT_KICK_FRAME,
                                           sizeof(NGX_CHAT_KICK_FRAME) - 1,
                                           0, 0, ngx_chat_admin_reply,
                                           &ctx->slots[0]);
        ok = ctx->slots[0].cmd != NULL;
        break;

    default: /* NGX_CHAT_ADMIN_LAG */
        ok = ngx_chat_admin_cmd(ctx, 0, nodes, "HGETALL %s",
                                NGX_CHAT_LAG_KEY);
        break;
    }

    if (!ok) {
        ngx_chat_admin_cleanup(ctx);
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static void
ngx_chat_admin_reply(ngx_chat_store_rc_e rc, redisReply *reply, void *data)
{
    ngx_chat_admin_slot_t  *slot = data;

    ngx_int_t              frc;
    ngx_connection_t      *c;
    ngx_http_request_t    *r;
    ngx_chat_admin_ctx_t  *ctx;

    ctx = slot->ctx;
    slot->cmd = NULL;

    if (rc != NGX_CHAT_STORE_OK || reply->type == REDIS_REPLY_ERROR) {
        if (ctx->status == 0) {
            ctx->status = NGX_HTTP_SERVICE_UNAVAILABLE;
            ctx->code = "unavailable";
            ctx->message = rc == NGX_CHAT_STORE_TIMEOUT ? "Redis timed out"
                                                        : "Redis failed";
        }

    } else if (ctx->status == 0) {
        ngx_chat_admin_take(ctx, slot - ctx->slots, reply);
    }

    if (ctx->slots[0].cmd || ctx->slots[1].cmd) {
        return;
    }

    if (ctx->status == 0 && ngx_chat_admin_next(ctx) == NGX_AGAIN) {
        return;
    }

    r = ctx->request;
    c = r->connection;

    frc = ngx_chat_admin_respond(ctx);
    ngx_http_finalize_request(r, frc);

    /* completions come from Redis events, not the request's handlers */
    ngx_http_run_posted_requests(c);
}


static void
ngx_chat_admin_take(ngx_chat_admin_ctx_t *ctx, ngx_uint_t i,
    redisReply *reply)
{
    json_t  *v;

    switch (ctx->op) {

    case NGX_CHAT_ADMIN_NODES:
    case NGX_CHAT_ADMIN_DRAIN:
        if (ctx->second) {
            break;
        }

        if (i == 0) {
            ngx_chat_admin_take_nodes(ctx, reply);

        } else {
            ngx_chat_admin_take_drained(ctx, reply);
        }

        break;

    case NGX_CHAT_ADMIN_UNDRAIN:
        break;

    case NGX_CHAT_ADMIN_USER:
        if (i == 0) {
            ngx_chat_admin_take_routes(ctx, reply);
            break;
        }

        v = json_null();

        if (reply->type == REDIS_REPLY_STRING) {
            v = json_integer(ngx_atoof((u_char *) reply->str, reply->len));
        }

        (void) json_object_set_new(ctx->answer, "last_seen", v);
        break;

    case NGX_CHAT_ADMIN_DISCONNECT:
        (void) json_object_set_new(ctx->answer, "workers",
                                   json_integer(reply->type
                                                == REDIS_REPLY_INTEGER
                                                ? reply->integer : 0));
        break;

    default: /* NGX_CHAT_ADMIN_LAG */
        ngx_chat_admin_take_lag(ctx, reply);
        break;
    }
}


/* HGETALL chat:nodes: the fresh reports by node, the stale ones removed */

static void
ngx_chat_admin_take_nodes(ngx_chat_admin_ctx_t *ctx, redisReply *reply)
{
    size_t             i;
    json_t            *report, *list;
    int64_t            now, ts;
    const char        *node;
    redisReply        *field, *value;
    ngx_chat_redis_t  *rds;

    ctx->nodes = json_object();
    if (ctx->nodes == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return;
    }

    now = ngx_chat_admin_now();
    rds = ngx_chat_redis_for_key((u_char *) NGX_CHAT_NODES_KEY,
                                 sizeof(NGX_CHAT_NODES_KEY) - 1);

    i = 0;

    while (ngx_chat_admin_pair(reply, &i, &field, &value)) {
        report = json_loadb(value->str, value->len, 0, NULL);
        ts = report ? json_integer_value(json_object_get(report, "ts")) : 0;
        node = report ? json_string_value(json_object_get(report, "node"))
                      : NULL;

        if (node == NULL || now - ts > NGX_CHAT_ADMIN_STALE) {
            /* a worker gone without a word (killed): its report goes */
            if (rds) {
                (void) ngx_chat_redis_command(rds, NULL, NULL,
                                              "HDEL %s %b",
                                              NGX_CHAT_NODES_KEY, field->str,
                                              field->len);
            }

            json_decref(report);
            continue;
        }

        list = json_object_get(ctx->nodes, node);
        if (list == NULL) {
            list = json_array();
            if (list == NULL
                || json_object_set_new(ctx->nodes, node, list) != 0)
            {
                json_decref(report);
                continue;
            }
        }

        /* node points into the report: it goes last */
        (void) json_object_set_new(report, "last_seen", json_integer(ts));
        (void) json_object_del(report, "ts");
        (void) json_object_del(report, "node");

        (void) json_array_append_new(list, report);
    }
}


static void
ngx_chat_admin_take_drained(ngx_chat_admin_ctx_t *ctx, redisReply *reply)
{
    char         name[65];
    size_t       i;
    redisReply  *field, *value;

    ctx->drained = json_object();
    if (ctx->drained == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return;
    }

    i = 0;

    while (ngx_chat_admin_pair(reply, &i, &field, &value)) {
        if (field->len == 0 || field->len > 64) {
            continue;
        }

        ngx_memcpy(name, field->str, field->len);
        name[field->len] = '\0';

        (void) json_object_set_new(ctx->drained, name,
                                   json_integer(ngx_atoof((u_char *)
                                                          value->str,
                                                          value->len)));
    }
}


/*
 * ZRANGE chat:routes:{id} WITHSCORES: "<channel> <conn id>", expiry;
 * the channel is "chat:w:<node>:<pid>.<start>" (ngx_chat_route.c)
 */

static void
ngx_chat_admin_take_routes(ngx_chat_admin_ctx_t *ctx, redisReply *reply)
{
    u_char      *p, *last, *sp, *colon, *dot;
    size_t       i;
    json_t      *conns, *conn, *nodes;
    int64_t      now, expiry;
    ngx_uint_t   online;
    redisReply  *member, *score;

    conns = json_array();
    nodes = json_array();
    if (conns == NULL || nodes == NULL
        || json_object_set_new(ctx->answer, "connections", conns) != 0
        || json_object_set_new(ctx->answer, "nodes", nodes) != 0)
    {
        return;
    }

    now = ngx_chat_admin_now();
    online = 0;

    i = 0;

    while (ngx_chat_admin_pair(reply, &i, &member, &score)) {
        expiry = ngx_atoof((u_char *) score->str, score->len);
        if (expiry != NGX_ERROR && expiry < now) {
            continue;
        }

        p = (u_char *) member->str;
        last = p + member->len;

        sp = ngx_strlchr(p, last, ' ');
        if (sp == NULL || sp - p < 9 || ngx_strncmp(p, "chat:w:", 7) != 0) {
            continue;
        }

        /* the node's name may hold ':', the pid and start do not */
        for (colon = sp; colon > p + 7 && colon[-1] != ':'; colon--) {
            /* void */
        }

        if (colon == p + 7) {
            continue;
        }

        dot = ngx_strlchr(colon, sp, '.');

        conn = json_object();
        if (conn == NULL) {
            continue;
        }

        (void) json_object_set_new(conn, "node",
                                   json_stringn((char *) p + 7,
                                                colon - 1 - (p + 7)));
        (void) json_object_set_new(conn, "worker",
                                   json_integer(ngx_atoi(colon,
                                                    (dot ? dot : sp)
                                                    - colon)));
        (void) json_object_set_new(conn, "conn_id",
                                   json_stringn((char *) sp + 1,
                                                last - sp - 1));
        (void) json_object_set_new(conn, "expires", json_integer(expiry));

        if (!online || !json_array_size(nodes)
            || !json_equal(json_array_get(nodes, json_array_size(nodes) - 1),
                           json_object_get(conn, "node")))
        {
            (void) json_array_append(nodes, json_object_get(conn, "node"));
        }

        (void) json_array_append_new(conns, conn);
        online++;
    }

    (void) json_object_set_new(ctx->answer, "online", json_boolean(online));
    (void) json_object_set_new(ctx->answer, "devices", json_integer(online));
}


/* HGETALL chat:lag: each consumer group's last report */

static void
ngx_chat_admin_take_lag(ngx_chat_admin_ctx_t *ctx, redisReply *reply)
{
    size_t       i;
    json_t      *groups, *report;
    int64_t      now, ts;
    redisReply  *field, *value;

    groups = json_array();
    if (groups == NULL
        || json_object_set_new(ctx->answer, "groups", groups) != 0)
    {
        return;
    }

    now = ngx_chat_admin_now();

    i = 0;

    while (ngx_chat_admin_pair(reply, &i, &field, &value)) {
        report = json_loadb(value->str, value->len, 0, NULL);
        if (report == NULL || !json_is_object(report)) {
            json_decref(report);
            continue;
        }

        ts = json_integer_value(json_object_get(report, "ts"));
        (void) json_object_set_new(report, "stale",
                                   json_boolean(now - ts
                                                > NGX_CHAT_ADMIN_LAG_STALE));
        (void) json_array_append_new(groups, report);
    }
}


/*
 * The next pair of strings (field and value, member and score) of a
 * flat array reply from *i on: 1, or 0 at its end
 */

static ngx_uint_t
ngx_chat_admin_pair(redisReply *reply, size_t *i, redisReply **a,
    redisReply **b)
{
    while (reply->type == REDIS_REPLY_ARRAY && *i + 1 < reply->elements) {
        *a = reply->element[*i];
        *b = reply->element[*i + 1];
        *i += 2;

        if ((*a)->type == REDIS_REPLY_STRING
            && (*b)->type == REDIS_REPLY_STRING)
        {
            return 1;
        }
    }

    return 0;
}


/* NGX_AGAIN: another command went out; NGX_OK: answer */

static ngx_int_t
ngx_chat_admin_next(ngx_chat_admin_ctx_t *ctx)
{
    char               name[65];
    json_t            *workers;
    ngx_chat_redis_t  *rds;

    if (ctx->op != NGX_CHAT_ADMIN_DRAIN || ctx->second) {
        return NGX_OK;
    }

    ngx_memcpy(name, ctx->node.data, ctx->node.len);
    name[ctx->node.len] = '\0';

    workers = ctx->nodes ? json_object_get(ctx->nodes, name) : NULL;

    if (workers == NULL) {
        ctx->status = NGX_HTTP_NOT_FOUND;
        ctx->code = "unknown_node";
        ctx->message = "no such node reports to Redis";
        return NGX_OK;
    }

    (void) json_object_set_new(ctx->answer, "workers",
                               json_integer(json_array_size(workers)));

    ctx->second = 1;

    rds = ngx_chat_redis_for_key((u_char *) NGX_CHAT_DRAINED_KEY,
                                 sizeof(NGX_CHAT_DRAINED_KEY) - 1);

    if (ngx_chat_admin_cmd(ctx, 1, rds, "HSET %s %b %lld",
                           NGX_CHAT_DRAINED_KEY, ctx->node.data,
                           ctx->node.len,
                           (long long) ngx_chat_admin_now()))
    {
        return NGX_AGAIN;
    }

    ctx->status = NGX_HTTP_SERVICE_UNAVAILABLE;
    ctx->code = "unavailable";
    ctx->message = "Redis is down";

    return NGX_OK;
}


static ngx_int_t
ngx_chat_admin_respond(ngx_chat_admin_ctx_t *ctx)
{
    int64_t      seen, ts;
    json_t      *list, *node, *workers, *wk, *since, *a;
    size_t       i;
    ngx_int_t    conns, users, draining;
    const char  *name;

    a = ctx->answer;

    if (ctx->status) {
        return ngx_chat_http_error(ctx->request, ctx->status, ctx->code,
                                   ctx->message);
    }

    switch (ctx->op) {

    case NGX_CHAT_ADMIN_NODES:
        list = json_array();
        if (list == NULL || json_object_set_new(a, "nodes", list) != 0) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* the drained nodes that do not report come too */
        json_object_foreach(ctx->drained, name, since) {
            if (ctx->nodes && json_object_get(ctx->nodes, name) == NULL) {
                (void) json_object_set_new(ctx->nodes, name, json_array());
            }
        }

        json_object_foreach(ctx->nodes, name, workers) {
            conns = 0;
            users = 0;
            seen = 0;
            draining = 0;

            json_array_foreach(workers, i, wk) {
                conns += json_integer_value(json_object_get(wk,
                                                            "connections"));
                users += json_integer_value(json_object_get(wk, "users"));
                ts = json_integer_value(json_object_get(wk, "last_seen"));
                seen = ngx_max(seen, ts);
                draining |= json_is_true(json_object_get(wk, "draining"));
            }

            since = ctx->drained ? json_object_get(ctx->drained, name)
                                 : NULL;

            node = json_pack("{s:s, s:b, s:O?, s:b, s:I, s:I, s:o, s:O}",
                             "node", name,
                             "draining", since != NULL,
                             "drained_at", since,
                             "workers_draining", (int) draining,
                             "connections", (json_int_t) conns,
                             "users", (json_int_t) users,
                             "last_seen", seen ? json_integer(seen)
                                               : json_null(),
                             "workers", workers);
            if (node == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            (void) json_array_append_new(list, node);
        }

        break;

    case NGX_CHAT_ADMIN_DRAIN:
    case NGX_CHAT_ADMIN_UNDRAIN:
        (void) json_object_set_new(a, "node",
                                   json_stringn((char *) ctx->node.data,
                                                ctx->node.len));
        (void) json_object_set_new(a, "draining",
                                   json_boolean(ctx->op
                                                == NGX_CHAT_ADMIN_DRAIN));
        ngx_log_error(NGX_LOG_NOTICE, ctx->request->connection->log, 0,
                      "chat: admin: node \"%V\" %s", &ctx->node,
                      ctx->op == NGX_CHAT_ADMIN_DRAIN ? "drained"
                                                      : "undrained");
        break;

    case NGX_CHAT_ADMIN_USER:
        (void) json_object_set_new(a, "user_id",
                                   json_integer((json_int_t) ctx->user_id));
        break;

    case NGX_CHAT_ADMIN_DISCONNECT:
        (void) json_object_set_new(a, "user_id",
                                   json_integer((json_int_t) ctx->user_id));
        (void) json_object_set_new(a, "close_code",
                                   json_integer(NGX_CHAT_KICK_CLOSE));
        ngx_log_error(NGX_LOG_NOTICE, ctx->request->connection->log, 0,
                      "chat: admin: user %uL disconnected", ctx->user_id);
        break;

    default: /* NGX_CHAT_ADMIN_LAG */
        break;
    }

    return ngx_chat_http_send_json(ctx->request, NGX_HTTP_OK, a);
}


static void
ngx_chat_admin_cleanup(void *data)
{
    ngx_chat_admin_ctx_t  *ctx = data;

    ngx_uint_t  i;

    for (i = 0; i < 2; i++) {
        if (ctx->slots[i].cmd) {
            ngx_chat_redis_cancel(ctx->slots[i].cmd);
            ctx->slots[i].cmd = NULL;
        }
    }

    if (ctx->answer) {
        json_decref(ctx->answer);
        ctx->answer = NULL;
    }

    if (ctx->nodes) {
        json_decref(ctx->nodes);
        ctx->nodes = NULL;
    }

    if (ctx->drained) {
        json_decref(ctx->drained);
        ctx->drained = NULL;
    }
}


/* --- the worker's side ---------------------------------------------------- */


/*
 * The drain flag in shared memory (ngx_chat_drain.c): one worker's read
 * of chat:drained holds for all of the node's, so none takes a WebSocket
 * that another has just closed; a reload keeps the zone
 */

ngx_int_t
ngx_chat_admin_postconfiguration(ngx_conf_t *cf)
{
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_chat_module);

    if (!cmcf->websocket) {
        return NGX_OK;
    }

    return ngx_chat_drain_add_zone(cf);
}


ngx_int_t
ngx_chat_admin_init(ngx_chat_worker_t *w, ngx_cycle_t *cycle)
{
    ngx_chat_admin_state_t  *st = &ngx_chat_admin_state;

    if (w->nredis == 0) {
        return NGX_OK;
    }

    ngx_memzero(st, sizeof(ngx_chat_admin_state_t));

    ngx_chat_drain_init(cycle);

    /* what the node was when this worker started (a reload's new ones) */
    st->draining = ngx_chat_draining();
    st->worker = w;
    st->active = 1;
    st->tick.handler = ngx_chat_admin_tick;
    /*
     * a connection for the timer's debug lines (nginx's own timers do
     * so: ngx_cycle.c's "dumb"); the handler knows its state
     */
    st->tick.data = &ngx_chat_admin_dumb;
    st->tick.log = cycle->log;
    st->tick.cancelable = 1;

    /* the flag at once (as soon as Redis is up): a reload's new workers */
    ngx_add_timer(&st->tick, 1);

    return NGX_OK;
}


void
ngx_chat_admin_exit(ngx_chat_worker_t *w)
{
    char                     field[NGX_CHAT_ADMIN_FIELD_LEN];
    ngx_chat_redis_t        *rds;
    ngx_chat_admin_state_t  *st = &ngx_chat_admin_state;

    if (!st->active) {
        return;
    }

    st->active = 0;

    if (st->tick.timer_set) {
        ngx_del_timer(&st->tick);
    }

    if (st->poll) {
        ngx_chat_redis_cancel(st->poll);
        st->poll = NULL;
    }

    /* this worker reports no more */
    rds = ngx_chat_redis_for_key((u_char *) NGX_CHAT_NODES_KEY,
                                 sizeof(NGX_CHAT_NODES_KEY) - 1);
    if (rds) {
        (void) ngx_chat_redis_command(rds, NULL, NULL, "HDEL %s %s",
                                      NGX_CHAT_NODES_KEY,
                                      ngx_chat_admin_field(w, field));
    }
}


static void
ngx_chat_admin_tick(ngx_event_t *ev)
{
    ngx_chat_admin_state_t  *st = &ngx_chat_admin_state;

    char                field[NGX_CHAT_ADMIN_FIELD_LEN];
    ngx_chat_redis_t   *rds;
    ngx_chat_worker_t  *w;

    if (!st->active) {
        return;
    }

    w = st->worker;

    /* a graceful stop cancels the timer (this call): no more reports */
    if (ngx_exiting || ngx_quit || ngx_terminate) {
        rds = ngx_chat_redis_for_key((u_char *) NGX_CHAT_NODES_KEY,
                                     sizeof(NGX_CHAT_NODES_KEY) - 1);
        if (rds) {
            (void) ngx_chat_redis_command(rds, NULL, NULL, "HDEL %s %s",
                                          NGX_CHAT_NODES_KEY,
                                          ngx_chat_admin_field(w, field));
        }

        return;
    }

    rds = ngx_chat_redis_for_key((u_char *) NGX_CHAT_DRAINED_KEY,
                                 sizeof(NGX_CHAT_DRAINED_KEY) - 1);

    if (st->poll == NULL && rds) {
        st->poll = ngx_chat_redis_command(rds, ngx_chat_admin_poll_reply, st,
                                          "HEXISTS %s %b",
                                          NGX_CHAT_DRAINED_KEY,
                                          w->conf->node_name.data,
                                          w->conf->node_name.len);
    }

    /* another worker of the node may have learnt it first */
    if (ngx_chat_draining()) {
        ngx_chat_admin_drain(st);
    }

    if (st->ticks++ % NGX_CHAT_ADMIN_REPORT == 0) {
        ngx_chat_admin_report(st);
    }

    ngx_add_timer(ev, NGX_CHAT_ADMIN_TICK);
}


static void
ngx_chat_admin_poll_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_admin_state_t  *st = data;

    ngx_uint_t  draining;

    st->poll = NULL;

    /* Redis down: the node keeps what it knew */
    if (!st->active || rc != NGX_CHAT_STORE_OK
        || reply->type != REDIS_REPLY_INTEGER)
    {
        return;
    }

    draining = reply->integer != 0;

    if (draining != st->draining) {
        ngx_log_error(NGX_LOG_NOTICE, st->tick.log, 0,
                      "chat: node %V %s", &st->worker->conf->node_name,
                      draining ? "draining: WebSockets are closed (1012) "
                                 "and new ones refused (503)"
                               : "undrained: WebSockets are accepted again");
        st->draining = draining;
    }

    /* before any close: no worker of the node takes them back */
    ngx_chat_drain_set(draining);

    if (draining) {
        ngx_chat_admin_drain(st);
    }
}


static void
ngx_chat_admin_drain(ngx_chat_admin_state_t *st)
{
    ngx_uint_t  n;

    n = ngx_chat_admin_close_all(NGX_CHAT_ADMIN_CLOSE_DRAIN,
                                 "node draining");
    if (n) {
        ngx_log_error(NGX_LOG_NOTICE, st->tick.log, 0,
                      "chat: node %V draining: closed %ui WebSocket(s)",
                      &st->worker->conf->node_name, n);
    }
}


/* HSET chat:nodes <node>:<pid> {...}: what this worker holds */

static void
ngx_chat_admin_report(ngx_chat_admin_state_t *st)
{
    char                    field[NGX_CHAT_ADMIN_FIELD_LEN];
    char                   *text;
    json_t                 *json;
    ngx_uint_t              conns, users;
    const char             *channel;
    ngx_queue_t            *q;
    ngx_chat_ws_t          *ws;
    ngx_chat_redis_t       *rds;
    ngx_chat_worker_t      *w;
    ngx_chat_local_user_t  *lu;

    w = st->worker;

    rds = ngx_chat_redis_for_key((u_char *) NGX_CHAT_NODES_KEY,
                                 sizeof(NGX_CHAT_NODES_KEY) - 1);
    if (rds == NULL || !ngx_chat_redis_connected(rds)) {
        return;
    }

    conns = 0;
    users = 0;

    for (lu = ngx_chat_local_next(NULL); lu; lu = ngx_chat_local_next(lu)) {
        users++;

        for (q = ngx_queue_head(&lu->conns);
             q != ngx_queue_sentinel(&lu->conns);
             q = ngx_queue_next(q))
        {
            ws = ngx_queue_data(q, ngx_chat_ws_t, peers);
            conns += !ws->done;
        }
    }

    channel = ngx_chat_route_channel();

    json = json_pack("{s:s%, s:I, s:s?, s:I, s:I, s:b, s:I}",
                     "node", (char *) w->conf->node_name.data,
                     (size_t) w->conf->node_name.len,
                     "pid", (json_int_t) ngx_pid,
                     "channel", channel,
                     "connections", (json_int_t) conns,
                     "users", (json_int_t) users,
                     "draining", (int) ngx_chat_draining(),
                     "ts", (json_int_t) ngx_chat_admin_now());
    if (json == NULL) {
        return;
    }

    text = json_dumps(json, JSON_COMPACT);
    json_decref(json);

    if (text == NULL) {
        return;
    }

    (void) ngx_chat_redis_command(rds, ngx_chat_script_reply,
                                  "admin: the worker's report",
                                  "HSET %s %s %s", NGX_CHAT_NODES_KEY,
                                  ngx_chat_admin_field(w, field), text);
    free(text);
}


/* every WebSocket of this worker gets a close frame; how many */

static ngx_uint_t
ngx_chat_admin_close_all(uint16_t code, const char *reason)
{
    ngx_uint_t              n;
    ngx_queue_t            *q, *next;
    ngx_chat_ws_t          *ws;
    ngx_chat_local_user_t  *lu;

    n = 0;

    /* a close only marks the connection: it leaves the tree later */
    for (lu = ngx_chat_local_next(NULL); lu; lu = ngx_chat_local_next(lu)) {

        for (q = ngx_queue_head(&lu->conns);
             q != ngx_queue_sentinel(&lu->conns);
             q = next)
        {
            next = ngx_queue_next(q);
            ws = ngx_queue_data(q, ngx_chat_ws_t, peers);

            if (ws->done || ws->closing) {
                continue;
            }

            ngx_chat_ws_kick(ws, code, reason);
            n++;
        }
    }

    return n;
}


/* "<node>:<pid>", this worker's field in chat:nodes */

static char *
ngx_chat_admin_field(ngx_chat_worker_t *w, char *buf)
{
    (void) ngx_snprintf((u_char *) buf, NGX_CHAT_ADMIN_FIELD_LEN, "%V:%P%Z",
                        &w->conf->node_name, ngx_pid);

    return buf;
}


static int64_t
ngx_chat_admin_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}
