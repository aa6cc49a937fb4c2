
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_H_INCLUDED_
#define _NGX_CHAT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>

#include <jansson.h>

#if !(NGX_THREADS)
#error ngx_chat needs nginx built with --with-threads
#endif

#include "ngx_chat_redis.h"
#include "ngx_chat_shard.h"
#include "ngx_chat_pg.h"
#include "ngx_chat_kafka.h"
#include "chat_id.h"


#define NGX_CHAT_TOPIC_MESSAGES    "chat.messages"
#define NGX_CHAT_TOPIC_RECEIPTS    "chat.receipts"
#define NGX_CHAT_TOPIC_HEALTH      "chat.health"
#define NGX_CHAT_TOPIC_PRESENCE    "chat.presence"


typedef struct {
    ngx_str_t                  node_name;
    ngx_str_t                  ws_url;          /* from chat_public_url */

    ngx_array_t               *redis_addrs;     /* ngx_chat_redis_addr_t */
    ngx_msec_t                 redis_timeout;
    chat_ring_t                redis_ring;      /* ngx_chat_shard.h */
    ngx_str_t                  redis_user;      /* AUTH user, or empty */
    ngx_str_t                  redis_password;  /* from a file; secret */

    ngx_str_t                  pg_conninfo;
    ngx_uint_t                 pg_pool_size;
    ngx_msec_t                 pg_timeout;

    ngx_str_t                  kafka_brokers;
    ngx_msec_t                 kafka_timeout;
    ngx_array_t               *kafka_options;   /* ngx_keyval_t */

    ngx_str_t                  jwt_secret;
    time_t                     jwt_ttl;

    ngx_str_t                  thread_pool_name;
    ngx_thread_pool_t         *thread_pool;
    ngx_uint_t                 password_concurrency;

    ngx_uint_t                 login_limit;     /* failures per username */
    time_t                     login_period;
    size_t                     api_max_body;
    ngx_uint_t                 group_max_members;
    ngx_msec_t                 presence_ttl;
    ngx_msec_t                 delivery_timeout;

    /* images (ngx_chat_api_media.c); no media_path: none */
    ngx_str_t                  media_path;      /* the local store */
    ngx_path_t                *media_temp;      /* <media_path>/.tmp */
    ngx_str_t                  media_uri;       /* its internal location */
    size_t                     media_max_size;
    time_t                     media_url_ttl;
    ngx_str_t                  media_url_key;   /* secret */

    /* the S3-compatible store (ngx_chat_media_s3.c); no bucket: local */
    ngx_str_t                  media_s3_origin;  /* "https://host[:port]" */
    ngx_str_t                  media_s3_host;    /* "host[:port]" */
    ngx_str_t                  media_s3_bucket;  /* NUL-terminated ... */
    ngx_str_t                  media_s3_region;
    ngx_str_t                  media_s3_key_id;
    ngx_str_t                  media_s3_secret;  /* ... secret */
    ngx_str_t                  media_s3_uri;     /* its internal location */
    ngx_int_t                  media_s3_vars[6]; /* variables' indexes */

    ngx_array_t               *api_locations;   /* core loc confs */
    ngx_shm_zone_t            *metrics_zone;    /* ngx_chat_metrics.c */

    ngx_uint_t                 api;             /* chat_api is used */
    ngx_uint_t                 websocket;       /* chat_websocket too */
    ngx_uint_t                 enabled;         /* unsigned enabled:1 */
    ngx_uint_t                 node;            /* a chat node: names
                                                   itself, has backends */
} ngx_chat_main_conf_t;


typedef struct {
    ngx_msec_t                 healthz_timeout;
    ngx_flag_t                 auth;
    ngx_flag_t                 query_token;     /* ?access_token= */
    ngx_uint_t                 websocket;       /* chat_websocket here */
    ngx_uint_t                 api;             /* chat_api here */

    size_t                     ws_max_message;
    ngx_msec_t                 ws_idle_timeout;
    size_t                     ws_send_queue;
    ngx_array_t               *ws_origins;      /* ngx_str_t */
    ngx_uint_t                 send_interval;   /* us; 0: no limit */
    ngx_uint_t                 send_burst;
    ngx_uint_t                 frame_interval;  /* us; 0: no limit */
    ngx_uint_t                 frame_burst;

    ngx_str_t                  admin_token;     /* secret; unset: NULL */
    ngx_uint_t                 admin;           /* chat_admin here */
    ngx_uint_t                 close_log_level; /* chat_close_log_level */
} ngx_chat_loc_conf_t;


/* "j<jti>" or "h<base64url of the token's SHA-256>" */
#define NGX_CHAT_TOKEN_ID_LEN      (1 + 64)


/* per request, shared by the module's handlers */
typedef struct {
    uint64_t                   user_id;
    const char                *auth_reason;
    void                      *api;             /* ngx_chat_api_ctx_t */
    void                      *ws;              /* ngx_chat_ws_t */
    time_t                     token_exp;
    void                      *revoke;          /* the deny-list check
                                                   waited for (auth.c) */
    ngx_queue_t                revoke_link;     /* ... among its waiters */
    ngx_http_request_t        *request;         /* ... to answer */
    size_t                     token_id_len;
    u_char                     token_id[NGX_CHAT_TOKEN_ID_LEN + 1];
    unsigned                   auth_done:1;
    unsigned                   auth_ok:1;
    unsigned                   revoke_checked:1;
} ngx_chat_ctx_t;


/* the state of one nginx worker process, made in init_process */
typedef struct {
    ngx_chat_main_conf_t      *conf;
    ngx_log_t                 *log;

    ngx_chat_redis_t         **redis;           /* one per chat_redis */
    ngx_uint_t                 nredis;
    ngx_chat_pg_pool_t        *pg;
    ngx_chat_kafka_t          *kafka;

    chat_id_gen_t              ids;             /* message ids */
} ngx_chat_worker_t;


char *ngx_chat_healthz(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_chat_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_chat_websocket(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_chat_conf_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    size_t max, ngx_str_t *secret);
char *ngx_chat_jwt_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_chat_auth_init(ngx_conf_t *cf);
ngx_int_t ngx_chat_auth_add_variables(ngx_conf_t *cf);

/*
 * The user id of the request's bearer token, verified once and remembered
 * for the request: NGX_OK and *user_id, or NGX_DECLINED with *reason.
 */
ngx_int_t ngx_chat_auth_user(ngx_http_request_t *r, uint64_t *user_id,
    const char **reason);
ngx_int_t ngx_chat_auth_refuse(ngx_http_request_t *r, const char *reason);

/*
 * Logout: the token's id is denied until its expiry, in the user's Redis
 * (chat:revoked:{<user>}:<token id>), checked in the access phase of
 * every chat_api, chat_websocket and "chat_auth on" location.
 */
#define NGX_CHAT_REVOKED_KEY  "chat:revoked:{%llu}:%b"

/* GET /v1/messages for the authenticated user_id; NGX_DONE: under way */
ngx_int_t ngx_chat_history(ngx_http_request_t *r, uint64_t user_id);

ngx_chat_ctx_t *ngx_chat_get_ctx(ngx_http_request_t *r);
ngx_int_t ngx_chat_http_send_json(ngx_http_request_t *r, ngx_uint_t status,
    json_t *json);
ngx_int_t ngx_chat_http_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message);
ngx_int_t ngx_chat_http_status_error(ngx_http_request_t *r,
    ngx_int_t status);
ngx_int_t ngx_chat_http_discard_body(ngx_http_request_t *r, ngx_int_t *rc);
ngx_int_t ngx_chat_http_send_text(ngx_http_request_t *r, ngx_uint_t status,
    u_char *data, size_t len);


extern ngx_chat_worker_t      *ngx_chat_worker;
extern ngx_module_t            ngx_http_chat_module;


#endif /* _NGX_CHAT_H_INCLUDED_ */
