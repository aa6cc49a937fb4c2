
/*
 * Copyright (C) ngx_chat authors
 *
 * The request of the HTTP API under /v1, as its router (ngx_chat_api.c)
 * and its resource files (ngx_chat_api_*.c) share it.  A route's handler,
 * and every step after it, returns an HTTP status, NGX_OK once the answer
 * is sent, or NGX_DONE while a step is under way: the step's completion
 * passes the next result to ngx_chat_api_finish().
 */


#ifndef _NGX_CHAT_API_REQUEST_H_INCLUDED_
#define _NGX_CHAT_API_REQUEST_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_chat.h"
#include "ngx_chat_password.h"
#include "ngx_chat_presence.h"


#define NGX_CHAT_API_MAX_IDS  2

/* a route's body: none (discarded), JSON (read first), raw (its handler's) */
#define NGX_CHAT_API_BODY_NONE  0
#define NGX_CHAT_API_BODY_JSON  1
#define NGX_CHAT_API_BODY_RAW   2


typedef struct ngx_chat_api_ctx_s  ngx_chat_api_ctx_t;

typedef ngx_int_t (*ngx_chat_api_handler_pt)(ngx_chat_api_ctx_t *ctx);
typedef ngx_int_t (*ngx_chat_api_pg_next_pt)(ngx_chat_api_ctx_t *ctx,
    PGresult *res);


typedef struct {
    ngx_uint_t                 method;
    const char                *path;       /* '#': an id, '*': a string */
    unsigned                   auth:1;
    unsigned                   body:2;       /* NGX_CHAT_API_BODY_* */
    ngx_chat_api_handler_pt    handler;
} ngx_chat_api_route_t;


struct ngx_chat_api_ctx_s {
    ngx_http_request_t        *request;
    ngx_chat_main_conf_t      *conf;
    const ngx_chat_api_route_t *route;
    uint64_t                   user_id;
    uint64_t                   id[NGX_CHAT_API_MAX_IDS];
    ngx_uint_t                 nids;
    ngx_str_t                  arg;
    json_t                    *body;
    off_t                      body_seen;    /* bytes of it so far */
    void                      *media;        /* an upload's state */

    ngx_chat_pg_query_t       *query;
    ngx_chat_api_pg_next_pt    pg_next;
    ngx_chat_redis_cmd_t      *redis;
    ngx_chat_presence_lookup_t *lookup;
    ngx_chat_password_t       *pw;         /* a hash in a thread */
    json_t                    *answer;      /* waits for presence */

    /* POST /v1/sessions, POST /v1/users */
    ngx_str_t                  username;
    ngx_str_t                  password;
    ngx_str_t                  display_name;
    ngx_str_t                  hash;
    ngx_str_t                  fail_key;     /* per username and address */
    ngx_str_t                  user_key;     /* per username */
    ngx_str_t                  slow_key;     /* over the ceiling: paced */

    u_char                     invalid[128];
};


/* runs the route's handler once the request's body is read and parsed */
void ngx_chat_api_body_handler(ngx_http_request_t *r);
ngx_int_t ngx_chat_api_run(ngx_chat_api_ctx_t *ctx);

/* sends rc, unless NGX_DONE (a step is under way and comes back here) */
void ngx_chat_api_finish(ngx_chat_api_ctx_t *ctx, ngx_int_t rc);

/* a pool cleanup: cancels what is under way, frees the JSON */
void ngx_chat_api_cleanup(void *data);

ngx_int_t ngx_chat_api_pg(ngx_chat_api_ctx_t *ctx, const char *sql,
    ngx_uint_t nparams, ngx_str_t *params, ngx_chat_api_pg_next_pt next);
ngx_int_t ngx_chat_api_call(ngx_chat_api_ctx_t *ctx, const char *sql,
    ngx_uint_t with_user, ngx_chat_api_pg_next_pt next);
ngx_str_t *ngx_chat_api_ids(ngx_chat_api_ctx_t *ctx, ngx_uint_t with_user);

ngx_int_t ngx_chat_api_get_string(ngx_chat_api_ctx_t *ctx, const char *key,
    ngx_uint_t required, size_t min, size_t max, ngx_str_t *out);
ngx_int_t ngx_chat_api_invalid(ngx_chat_api_ctx_t *ctx);

ngx_int_t ngx_chat_api_error(ngx_chat_api_ctx_t *ctx, ngx_uint_t status,
    const char *code, const char *message);
ngx_int_t ngx_chat_api_reply(ngx_chat_api_ctx_t *ctx, ngx_uint_t status,
    json_t *json);
ngx_int_t ngx_chat_api_json_result(ngx_chat_api_ctx_t *ctx, PGresult *res,
    ngx_uint_t status);
ngx_int_t ngx_chat_api_no_content(ngx_chat_api_ctx_t *ctx, PGresult *res);


#endif /* _NGX_CHAT_API_REQUEST_H_INCLUDED_ */
