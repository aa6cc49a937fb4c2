
/*
 * Copyright (C) ngx_chat authors
 *
 * The chat module's configuration and the per-worker backends: Redis,
 * PostgreSQL and Kafka clients made in init_process, torn down in
 * exit_process.  Adds X-Chat-Node to every response.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_metrics.h"
#include "ngx_chat_password.h"
#include "ngx_chat_session.h"
#include "ngx_chat_batch.h"
#include "ngx_chat_api_media.h"
#include "ngx_chat_media_s3.h"
#include "ngx_chat_admin.h"


#define NGX_CHAT_EXIT_FLUSH  3000
/* ms to write what is queued for Redis at exit */
#define NGX_CHAT_EXIT_WRITE  500

/* Redis itself sets no limit; a longer file is a mistake */
#define NGX_CHAT_REDIS_MAX_PASSWORD  1024


static void *ngx_chat_create_main_conf(ngx_conf_t *cf);
static char *ngx_chat_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_chat_create_loc_conf(ngx_conf_t *cf);
static char *ngx_chat_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_chat_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_chat_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_chat_init_process(ngx_cycle_t *cycle);
static void ngx_chat_exit_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_chat_header_filter(ngx_http_request_t *r);

static char *ngx_chat_redis_password_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_chat_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_postgres_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_kafka_brokers_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_chat_kafka_option_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_chat_enable_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_public_url(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_positive_msec(ngx_conf_t *cf, void *post, void *data);
static char *ngx_chat_pool_size(ngx_conf_t *cf, void *post, void *data);
static char *ngx_chat_positive_size(ngx_conf_t *cf, void *post, void *data);
static char *ngx_chat_ws_origins(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_login_limit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_send_rate(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_chat_group_max(ngx_conf_t *cf, void *post, void *data);
static char *ngx_chat_concurrency(ngx_conf_t *cf, void *post, void *data);


ngx_chat_worker_t  *ngx_chat_worker;


static ngx_conf_enum_t  ngx_chat_close_log_levels[] = {
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_null_string, 0 }
};

static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;


static ngx_conf_post_handler_pt  ngx_chat_positive_msec_p =
    ngx_chat_positive_msec;

static ngx_conf_post_handler_pt  ngx_chat_pool_size_p =
    ngx_chat_pool_size;

static ngx_conf_post_handler_pt  ngx_chat_positive_size_p =
    ngx_chat_positive_size;

static ngx_conf_post_handler_pt  ngx_chat_group_max_p =
    ngx_chat_group_max;

static ngx_conf_post_handler_pt  ngx_chat_concurrency_p =
    ngx_chat_concurrency;


static ngx_command_t  ngx_chat_commands[] = {

    { ngx_string("chat_node_name"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_chat_enable_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, node_name),
      NULL },

    { ngx_string("chat_public_url"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_chat_public_url,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_chat_redis_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_redis_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, redis_timeout),
      &ngx_chat_positive_msec_p },

    { ngx_string("chat_redis_password_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_chat_redis_password_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_redis_user"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, redis_user),
      NULL },

    { ngx_string("chat_postgres"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_chat_postgres_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_postgres_pool_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, pg_pool_size),
      &ngx_chat_pool_size_p },

    { ngx_string("chat_postgres_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, pg_timeout),
      &ngx_chat_positive_msec_p },

    { ngx_string("chat_kafka_brokers"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_chat_kafka_brokers_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_kafka_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, kafka_timeout),
      &ngx_chat_positive_msec_p },

    { ngx_string("chat_kafka_option"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_chat_kafka_option_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_jwt_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_chat_jwt_secret_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_jwt_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, jwt_ttl),
      NULL },

    { ngx_string("chat_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, thread_pool_name),
      NULL },

    { ngx_string("chat_password_concurrency"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, password_concurrency),
      &ngx_chat_concurrency_p },

    { ngx_string("chat_login_limit"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_chat_login_limit,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_api_max_body"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, api_max_body),
      NULL },

    { ngx_string("chat_presence_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, presence_ttl),
      &ngx_chat_positive_msec_p },

    { ngx_string("chat_delivery_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, delivery_timeout),
      &ngx_chat_positive_msec_p },

    { ngx_string("chat_group_max_members"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, group_max_members),
      &ngx_chat_group_max_p },

    { ngx_string("chat_media_path"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_chat_media_path,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_media_location"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, media_uri),
      NULL },

    { ngx_string("chat_media_max_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, media_max_size),
      &ngx_chat_positive_size_p },

    { ngx_string("chat_media_url_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, media_url_ttl),
      NULL },

    { ngx_string("chat_media_url_secret_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_chat_media_url_secret_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_media_s3"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE3,
      ngx_chat_media_s3,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_media_s3_credentials_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_chat_media_s3_credentials_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_media_s3_location"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_chat_main_conf_t, media_s3_uri),
      NULL },

    { ngx_string("chat_auth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, auth),
      NULL },

    { ngx_string("chat_auth_query_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, query_token),
      NULL },

    { ngx_string("chat_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_chat_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_websocket"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_chat_websocket,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_ws_max_message"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, ws_max_message),
      &ngx_chat_positive_size_p },

    { ngx_string("chat_ws_idle_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, ws_idle_timeout),
      &ngx_chat_positive_msec_p },

    { ngx_string("chat_ws_send_queue"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, ws_send_queue),
      &ngx_chat_positive_size_p },

    { ngx_string("chat_send_rate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_chat_send_rate,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, send_interval),
      NULL },

    { ngx_string("chat_ws_frame_rate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_chat_send_rate,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, frame_interval),
      NULL },

    { ngx_string("chat_ws_origins"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_chat_ws_origins,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_healthz"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_chat_healthz,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_admin"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_chat_admin,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_admin_token_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_chat_admin_token_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_healthz_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, healthz_timeout),
      &ngx_chat_positive_msec_p },

    { ngx_string("chat_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_chat_metrics_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("chat_close_log_level"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_chat_loc_conf_t, close_log_level),
      &ngx_chat_close_log_levels },

      ngx_null_command
};


static ngx_http_module_t  ngx_chat_module_ctx = {
    ngx_chat_preconfiguration,             /* preconfiguration */
    ngx_chat_postconfiguration,            /* postconfiguration */

    ngx_chat_create_main_conf,             /* create main configuration */
    ngx_chat_init_main_conf,               /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_chat_create_loc_conf,              /* create location configuration */
    ngx_chat_merge_loc_conf                /* merge location configuration */
};


ngx_module_t  ngx_http_chat_module = {
    NGX_MODULE_V1,
    &ngx_chat_module_ctx,                  /* module context */
    ngx_chat_commands,                     /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_chat_init_process,                 /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_chat_exit_process,                 /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_chat_create_main_conf(ngx_conf_t *cf)
{
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_pcalloc(cf->pool, sizeof(ngx_chat_main_conf_t));
    if (cmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     cmcf->node_name = { 0, NULL };
     *     cmcf->redis_addrs = NULL;
     *     cmcf->redis_ring = { 0 };
     *     cmcf->redis_user = { 0, NULL };
     *     cmcf->redis_password = { 0, NULL };
     *     cmcf->pg_conninfo = { 0, NULL };
     *     cmcf->kafka_brokers = { 0, NULL };
     *     cmcf->kafka_options = NULL;
     *     cmcf->enabled = 0;
     */

    cmcf->redis_timeout = NGX_CONF_UNSET_MSEC;
    cmcf->pg_pool_size = NGX_CONF_UNSET_UINT;
    cmcf->pg_timeout = NGX_CONF_UNSET_MSEC;
    cmcf->kafka_timeout = NGX_CONF_UNSET_MSEC;
    cmcf->jwt_ttl = NGX_CONF_UNSET;
    cmcf->login_limit = NGX_CONF_UNSET_UINT;
    cmcf->login_period = NGX_CONF_UNSET;
    cmcf->api_max_body = NGX_CONF_UNSET_SIZE;
    cmcf->group_max_members = NGX_CONF_UNSET_UINT;
    cmcf->presence_ttl = NGX_CONF_UNSET_MSEC;
    cmcf->delivery_timeout = NGX_CONF_UNSET_MSEC;
    cmcf->password_concurrency = NGX_CONF_UNSET_UINT;
    cmcf->media_max_size = NGX_CONF_UNSET_SIZE;
    cmcf->media_url_ttl = NGX_CONF_UNSET;

    return cmcf;
}


static char *
ngx_chat_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_chat_main_conf_t *cmcf = conf;

    u_char                  *p;
    ngx_uint_t               i, n;
    ngx_chat_redis_addr_t   *addr;

    ngx_conf_init_msec_value(cmcf->redis_timeout, 1000);
    ngx_conf_init_uint_value(cmcf->pg_pool_size, 2);
    ngx_conf_init_msec_value(cmcf->pg_timeout, 5000);
    ngx_conf_init_msec_value(cmcf->kafka_timeout, 10000);
    ngx_conf_init_value(cmcf->jwt_ttl, 86400);
    ngx_conf_init_uint_value(cmcf->login_limit, 10);
    ngx_conf_init_value(cmcf->login_period, 900);
    ngx_conf_init_size_value(cmcf->api_max_body, 65536);
    ngx_conf_init_uint_value(cmcf->group_max_members, 1024);
    ngx_conf_init_msec_value(cmcf->presence_ttl, 300000);
    ngx_conf_init_msec_value(cmcf->delivery_timeout, 120000);
    ngx_conf_init_uint_value(cmcf->password_concurrency, 1);

    if (ngx_chat_media_init_conf(cf, cmcf) != NGX_CONF_OK) {
        return NGX_CONF_ERROR;
    }

    if (cmcf->jwt_ttl <= 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_jwt_ttl\" must be greater than zero");
        return NGX_CONF_ERROR;
    }

    if (cmcf->websocket && cmcf->jwt_secret.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_websocket\" needs \"chat_jwt_secret_file\"");
        return NGX_CONF_ERROR;
    }

    if (cmcf->api) {
        if (cmcf->jwt_secret.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"chat_api\" needs \"chat_jwt_secret_file\"");
            return NGX_CONF_ERROR;
        }

        if (cmcf->pg_conninfo.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"chat_api\" needs \"chat_postgres\"");
            return NGX_CONF_ERROR;
        }

        /* password hashing runs there, never on the event loop */
        if (cmcf->thread_pool_name.len == 0) {
            ngx_str_set(&cmcf->thread_pool_name, "default");
        }

        cmcf->thread_pool = ngx_thread_pool_add(cf, &cmcf->thread_pool_name);
        if (cmcf->thread_pool == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    /*
     * A chat node: named, or with backends.  An edge in front of nodes
     * loads the module for chat_auth alone, and its responses do not say
     * X-Chat-Node (a proxied one carries the node's).
     */
    cmcf->node = cmcf->node_name.len || cmcf->redis_addrs
                 || cmcf->pg_conninfo.len || cmcf->kafka_brokers.len;

    if (cmcf->node_name.len == 0) {
        cmcf->node_name = cf->cycle->hostname;
    }

    /* a NUL-terminated copy: librdkafka takes it as client.id */
    p = ngx_pnalloc(cf->pool, cmcf->node_name.len + 1);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    (void) ngx_cpystrn(p, cmcf->node_name.data, cmcf->node_name.len + 1);
    cmcf->node_name.data = p;

    if (cmcf->redis_user.len && cmcf->redis_password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"chat_redis_user\" needs "
                           "\"chat_redis_password_file\"");
        return NGX_CONF_ERROR;
    }

    if (cmcf->redis_addrs == NULL) {
        return NGX_CONF_OK;
    }

    n = cmcf->redis_addrs->nelts;
    addr = cmcf->redis_addrs->elts;

    /* every server, command and subscription connections alike */
    for (i = 0; i < n; i++) {
        addr[i].user = cmcf->redis_user;
        addr[i].password = cmcf->redis_password;
    }

    if (ngx_chat_shard_ring_init(&cmcf->redis_ring, addr, n, cf->pool)
        != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat: cannot build the Redis hash ring");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_chat_create_loc_conf(ngx_conf_t *cf)
{
    ngx_chat_loc_conf_t  *clcf;

    clcf = ngx_pcalloc(cf->pool, sizeof(ngx_chat_loc_conf_t));
    if (clcf == NULL) {
        return NULL;
    }

    clcf->healthz_timeout = NGX_CONF_UNSET_MSEC;
    clcf->auth = NGX_CONF_UNSET;
    clcf->query_token = NGX_CONF_UNSET;
    clcf->ws_max_message = NGX_CONF_UNSET_SIZE;
    clcf->ws_idle_timeout = NGX_CONF_UNSET_MSEC;
    clcf->ws_send_queue = NGX_CONF_UNSET_SIZE;
    clcf->ws_origins = NGX_CONF_UNSET_PTR;
    clcf->send_interval = NGX_CONF_UNSET_UINT;
    clcf->send_burst = NGX_CONF_UNSET_UINT;
    clcf->frame_interval = NGX_CONF_UNSET_UINT;
    clcf->frame_burst = NGX_CONF_UNSET_UINT;
    clcf->close_log_level = NGX_CONF_UNSET_UINT;

    return clcf;
}


static char *
ngx_chat_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_chat_loc_conf_t *prev = parent;
    ngx_chat_loc_conf_t *conf = child;

    ngx_conf_merge_msec_value(conf->healthz_timeout, prev->healthz_timeout,
                              2000);
    ngx_conf_merge_value(conf->auth, prev->auth, 0);

    /*
     * Left unset unless set here or above: unset means "where
     * chat_websocket is" (browsers' WebSockets cannot send headers).
     */
    if (conf->query_token == NGX_CONF_UNSET) {
        conf->query_token = prev->query_token;
    }
    ngx_conf_merge_size_value(conf->ws_max_message, prev->ws_max_message,
                              65536);
    ngx_conf_merge_msec_value(conf->ws_idle_timeout, prev->ws_idle_timeout,
                              300000);
    ngx_conf_merge_size_value(conf->ws_send_queue, prev->ws_send_queue,
                              262144);
    ngx_conf_merge_ptr_value(conf->ws_origins, prev->ws_origins, NULL);

    /* 20 messages a second, bursts of 100 */
    ngx_conf_merge_uint_value(conf->send_interval, prev->send_interval,
                              50000);
    ngx_conf_merge_uint_value(conf->send_burst, prev->send_burst, 100);

    /* frames of any type, per connection: 100 a second, bursts of 1000 */
    ngx_conf_merge_uint_value(conf->frame_interval, prev->frame_interval,
                              10000);
    ngx_conf_merge_uint_value(conf->frame_burst, prev->frame_burst, 1000);

    ngx_conf_merge_uint_value(conf->close_log_level, prev->close_log_level,
                              NGX_LOG_INFO);

    return ngx_chat_admin_merge(cf, prev, conf);
}


static ngx_int_t
ngx_chat_preconfiguration(ngx_conf_t *cf)
{
    if (ngx_chat_media_s3_add_variables(cf) != NGX_OK
        || ngx_chat_metrics_add_variables(cf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_chat_auth_add_variables(cf);
}


static ngx_int_t
ngx_chat_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_chat_header_filter;

    if (ngx_chat_media_postconfiguration(cf) != NGX_OK
        || ngx_chat_metrics_postconfiguration(cf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_chat_admin_postconfiguration(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_chat_auth_init(cf);
}


static char *
ngx_chat_enable_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *cmcf = conf;

    cmcf->enabled = 1;

    return ngx_conf_set_str_slot(cf, cmd, conf);
}


/*
 * chat_public_url: where clients reach this node (an edge in front of
 * it), an http or https URL with a host, an optional port and path; GET
 * /v1/me's ws_url is then the same with ws or wss and "/v1/ws" appended,
 * whatever Host and scheme the request had on its way from the edge
 */

static char *
ngx_chat_public_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *cmcf = conf;

    u_char     *p, *last;
    size_t      skip;
    ngx_str_t  *value, url;

    if (cmcf->ws_url.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    url = value[1];

    if (url.len > 8 && ngx_strncasecmp(url.data, (u_char *) "https://", 8)
                       == 0)
    {
        skip = 8;

    } else if (url.len > 7
               && ngx_strncasecmp(url.data, (u_char *) "http://", 7) == 0)
    {
        skip = 7;

    } else {
        return "wants an http:// or https:// URL with a host";
    }

    last = url.data + url.len;

    while (last > url.data + skip && last[-1] == '/') {
        last--;
    }

    if (last == url.data + skip || url.data[skip] == '/') {
        return "wants an http:// or https:// URL with a host";
    }

    for (p = url.data + skip; p < last; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '?' || *p == '#'
            || *p == '"' || *p == '\\' || *p == '@')
        {
            return "wants a URL without query, fragment, user or spaces";
        }
    }

    /* "https://" becomes "wss://", "http://" "ws://" */
    cmcf->ws_url.len = (skip == 8 ? 6 : 5) + (last - url.data - skip)
                       + sizeof("/v1/ws") - 1;
    cmcf->ws_url.data = ngx_pnalloc(cf->pool, cmcf->ws_url.len);
    if (cmcf->ws_url.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_cpymem(cmcf->ws_url.data, skip == 8 ? "wss://" : "ws://",
                   skip == 8 ? 6 : 5);
    p = ngx_cpymem(p, url.data + skip, last - url.data - skip);
    (void) ngx_cpymem(p, "/v1/ws", sizeof("/v1/ws") - 1);

    return NGX_CONF_OK;
}


static char *
ngx_chat_positive_msec(ngx_conf_t *cf, void *post, void *data)
{
    ngx_msec_t  *ms = data;

    if (*ms == 0) {
        return "must be greater than zero";
    }

    return NGX_CONF_OK;
}


static char *
ngx_chat_positive_size(ngx_conf_t *cf, void *post, void *data)
{
    size_t  *n = data;

    if (*n == 0) {
        return "must be greater than zero";
    }

    return NGX_CONF_OK;
}


/* exact Origin values, e.g. https://chat.example.com */

static char *
ngx_chat_ws_origins(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_loc_conf_t *clcf = conf;

    ngx_str_t   *value, *o;
    ngx_uint_t   i;

    if (clcf->ws_origins != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    clcf->ws_origins = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                        sizeof(ngx_str_t));
    if (clcf->ws_origins == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (ngx_strncmp(value[i].data, "http://", 7) != 0
            && ngx_strncmp(value[i].data, "https://", 8) != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "chat_ws_origins: \"%V\" is not an origin "
                               "like https://chat.example.com", &value[i]);
            return NGX_CONF_ERROR;
        }

        o = ngx_array_push(clcf->ws_origins);
        if (o == NULL) {
            return NGX_CONF_ERROR;
        }

        *o = value[i];
    }

    return NGX_CONF_OK;
}


static char *
ngx_chat_pool_size(ngx_conf_t *cf, void *post, void *data)
{
    ngx_uint_t  *n = data;

    if (*n < 1 || *n > 64) {
        return "must be between 1 and 64";
    }

    return NGX_CONF_OK;
}


static char *
ngx_chat_concurrency(ngx_conf_t *cf, void *post, void *data)
{
    ngx_uint_t  *n = data;

    if (*n < 1 || *n > 256) {
        return "must be between 1 and 256";
    }

    return NGX_CONF_OK;
}


static char *
ngx_chat_group_max(ngx_conf_t *cf, void *post, void *data)
{
    ngx_uint_t  *n = data;

    if (*n < 2 || *n > 100000) {
        return "must be between 2 and 100000";
    }

    return NGX_CONF_OK;
}


/* chat_login_limit failures [period]: "off" or 0 turns it off */

static char *
ngx_chat_login_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *cmcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (cmcf->login_limit != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        cmcf->login_limit = 0;
        return NGX_CONF_OK;
    }

    n = ngx_atoi(value[1].data, value[1].len);
    if (n == NGX_ERROR) {
        return "invalid number of failures";
    }

    cmcf->login_limit = n;

    if (cf->args->nelts == 3) {
        cmcf->login_period = ngx_parse_time(&value[2], 1);

        if (cmcf->login_period == (time_t) NGX_ERROR
            || cmcf->login_period == 0)
        {
            return "invalid period";
        }
    }

    return NGX_CONF_OK;
}


/*
 * chat_send_rate off | <n>r/s | <n>r/m [burst=<n>]: messages per user,
 * across all of the user's connections (GCRA in Redis), and per
 * connection before any lookup (ngx_chat_ws_meter()); chat_ws_frame_rate,
 * the same syntax: frames of any type per connection.  cmd->offset is
 * the interval's, the burst follows it.
 */

static char *
ngx_chat_send_rate(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    size_t       len;
    u_char      *p;
    ngx_int_t    rate, scale, burst;
    ngx_str_t   *value;
    ngx_uint_t  *interval, *bursts;

    /* the interval, and the burst right after it */
    interval = (ngx_uint_t *) ((u_char *) conf + cmd->offset);
    bursts = interval + 1;

    if (*interval != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts != 2) {
            return "takes no burst when off";
        }

        *interval = 0;
        *bursts = 0;
        return NGX_CONF_OK;
    }

    len = value[1].len;
    p = value[1].data + len - 3;
    scale = 1;

    if (len > 3 && ngx_strncmp(p, "r/s", 3) == 0) {
        scale = 1;

    } else if (len > 3 && ngx_strncmp(p, "r/m", 3) == 0) {
        scale = 60;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid rate \"%V\" (e.g. 20r/s, 300r/m)",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    rate = ngx_atoi(value[1].data, len - 3);
    if (rate <= 0 || rate > 1000000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid rate \"%V\" (1 to 1000000)", &value[1]);
        return NGX_CONF_ERROR;
    }

    /* microseconds between two messages */
    *interval = (ngx_uint_t) (1000000 * scale / rate);
    if (*interval == 0) {
        *interval = 1;
    }

    burst = 0;

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "burst=", 6) != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        burst = ngx_atoi(value[2].data + 6, value[2].len - 6);
        if (burst == NGX_ERROR || burst > 1000000) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid burst \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }
    }

    *bursts = burst;

    return NGX_CONF_OK;
}


static char *
ngx_chat_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *cmcf = conf;

    u_char                 *p;
    size_t                  len;
    ngx_url_t               u;
    ngx_str_t              *value;
    ngx_uint_t              i, j;
    ngx_chat_redis_addr_t  *addr, *prev;

    if (cmcf->redis_addrs) {
        return "is duplicate";
    }

    cmcf->redis_addrs = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                         sizeof(ngx_chat_redis_addr_t));
    if (cmcf->redis_addrs == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        addr = ngx_array_push(cmcf->redis_addrs);
        if (addr == NULL) {
            return NGX_CONF_ERROR;
        }

        addr->name = value[i];

        if (ngx_strncmp(value[i].data, "unix:", 5) == 0) {
            if (value[i].len == 5 || value[i].data[5] != '/') {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "chat_redis: \"%V\" is not an absolute "
                                   "unix socket path", &value[i]);
                return NGX_CONF_ERROR;
            }

            addr->host.data = value[i].data + 5;
            addr->host.len = value[i].len - 5;
            addr->port = 0;

        } else {
            /* names are resolved now, never in a worker */
            ngx_memzero(&u, sizeof(ngx_url_t));
            u.url = value[i];
            u.default_port = 6379;

            if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "chat_redis: %s in \"%V\"",
                                   u.err ? u.err : "invalid address",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            if (u.naddrs == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "chat_redis: no address in \"%V\"",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            p = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
            if (p == NULL) {
                return NGX_CONF_ERROR;
            }

            len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, p,
                                NGX_SOCKADDR_STRLEN, 0);
            p[len] = '\0';

            addr->host.data = p;
            addr->host.len = len;
            addr->port = ngx_inet_get_port(u.addrs[0].sockaddr);
        }

        prev = cmcf->redis_addrs->elts;

        for (j = 0; j + 1 < cmcf->redis_addrs->nelts; j++) {
            if (prev[j].name.len == addr->name.len
                && ngx_strncmp(prev[j].name.data, addr->name.data,
                               addr->name.len) == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "chat_redis: \"%V\" is listed twice",
                                   &addr->name);
                return NGX_CONF_ERROR;
            }
        }
    }

    cmcf->enabled = 1;

    return NGX_CONF_OK;
}


/*
 * The Redis password is read from a file when the configuration is read
 * (by the master, typically root): nginx.conf, "nginx -T" and the process
 * list never show it.
 */

static char *
ngx_chat_redis_password_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *cmcf = conf;

    if (cmcf->redis_password.data) {
        return "is duplicate";
    }

    if (ngx_chat_conf_secret_file(cf, cmd, NGX_CHAT_REDIS_MAX_PASSWORD,
                                  &cmcf->redis_password)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (cmcf->redis_password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%V: \"%V\" is empty", &cmd->name,
                           &((ngx_str_t *) cf->args->elts)[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * A secret (chat_jwt_secret_file, chat_redis_password_file) from the file
 * the directive names, read once at configuration time so that nginx.conf
 * and nginx -T never show it, without a trailing newline, at most max
 * bytes; never logged.  The file should be readable by its owner only.
 */

ngx_int_t
ngx_chat_conf_secret_file(ngx_conf_t *cf, ngx_command_t *cmd, size_t max,
    ngx_str_t *secret)
{
    u_char           *buf;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_str_t        *value, name;
    ngx_file_info_t   fi;

    value = cf->args->elts;
    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "%V: cannot open \"%V\"", &cmd->name, &name);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > (off_t) max)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%V: \"%V\" is not a secret of at most %uz "
                           "bytes", &cmd->name, &name, max);
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    if (ngx_file_access(&fi) & 077) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "%V: \"%V\" is readable by others than its "
                           "owner (chmod 600)", &cmd->name, &name);
    }

    buf = ngx_pnalloc(cf->pool, max + 1);
    if (buf == NULL) {
        (void) ngx_close_file(fd);
        return NGX_ERROR;
    }

    n = ngx_read_fd(fd, buf, max + 1);
    (void) ngx_close_file(fd);

    if (n == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "%V: cannot read \"%V\"", &cmd->name, &name);
        return NGX_ERROR;
    }

    /* a trailing newline from an editor or "openssl rand" is not secret */
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }

    secret->data = buf;
    secret->len = n;

    return NGX_OK;
}


/*
 * A worker must never block on DNS, so PostgreSQL is reached by address
 * (hostaddr=, a numeric host=) or by a unix socket directory.
 */

static char *
ngx_chat_postgres_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_chat_main_conf_t *cmcf = conf;

    char              *err;
    u_char            *p, *last;
    ngx_str_t         *value, host;
    ngx_addr_t         addr;
    ngx_uint_t         bad;
    PQconninfoOption  *opts, *o;

    if (cmcf->pg_conninfo.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    err = NULL;

    opts = PQconninfoParse((char *) value[1].data, &err);
    if (opts == NULL) {
        /* not the string itself: it may hold a password */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_postgres: invalid connection string: %s",
                           err ? err : "out of memory");
        if (err) {
            PQfreemem(err);
        }

        return NGX_CONF_ERROR;
    }

    bad = 0;
    host.len = 0;
    host.data = NULL;

    for (o = opts; o->keyword; o++) {
        if (o->val == NULL || o->val[0] == '\0') {
            continue;
        }

        if (ngx_strcmp(o->keyword, "hostaddr") == 0) {
            host.len = 0;
            break;
        }

        if (ngx_strcmp(o->keyword, "host") == 0) {
            host.data = (u_char *) o->val;
            host.len = ngx_strlen(o->val);
        }
    }

    /* every comma-separated host must be a directory or a numeric address */
    if (host.len) {
        p = host.data;
        last = host.data + host.len;

        while (p < last && !bad) {
            host.data = p;

            while (p < last && *p != ',') {
                p++;
            }

            host.len = p - host.data;
            p++;

            if (host.len && host.data[0] == '/') {
                continue;
            }

            if (ngx_parse_addr(cf->pool, &addr, host.data, host.len)
                != NGX_OK)
            {
                bad = 1;
            }
        }
    }

    PQconninfoFree(opts);

    if (bad) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_postgres: \"host\" must be an IP address "
                           "or a socket directory (or use \"hostaddr\"): "
                           "a worker must not block on DNS");
        return NGX_CONF_ERROR;
    }

    cmcf->pg_conninfo = value[1];
    cmcf->enabled = 1;

    return NGX_CONF_OK;
}


static char *
ngx_chat_kafka_brokers_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_chat_main_conf_t *cmcf = conf;

    ngx_str_t   *value;
    ngx_uint_t   i;

    if (cmcf->kafka_brokers.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        return "is empty";
    }

    for (i = 0; i < value[1].len; i++) {
        if (value[1].data[i] == ' ' || value[1].data[i] == '\t') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "chat_kafka_brokers: \"%V\": list brokers "
                               "separated by commas, without spaces",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    cmcf->kafka_brokers = value[1];
    cmcf->enabled = 1;

    return NGX_CONF_OK;
}


static char *
ngx_chat_kafka_option_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_chat_main_conf_t *cmcf = conf;

    char           err[512];
    ngx_str_t     *value;
    ngx_uint_t     i;
    ngx_keyval_t  *kv;

    static const char  *pinned[] = {
        "acks", "request.required.acks", "enable.idempotence",
        "bootstrap.servers", "metadata.broker.list", "message.timeout.ms",
        "delivery.timeout.ms", "dr_msg_cb", "dr_cb", "error_cb", "log_cb",
        "opaque", "log.queue", NULL
    };

    value = cf->args->elts;

    /* what the durability guarantee rests on is not negotiable */
    for (i = 0; pinned[i]; i++) {
        if (ngx_strcmp(value[1].data, pinned[i]) == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "chat_kafka_option: \"%V\" is set by the "
                               "module (acks=all, idempotence, "
                               "chat_kafka_brokers, chat_kafka_timeout)",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_chat_kafka_check_option(&value[1], &value[2], err, sizeof(err))
        != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "chat_kafka_option: \"%V\": %s", &value[1], err);
        return NGX_CONF_ERROR;
    }

    if (cmcf->kafka_options == NULL) {
        cmcf->kafka_options = ngx_array_create(cf->pool, 4,
                                               sizeof(ngx_keyval_t));
        if (cmcf->kafka_options == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    kv = ngx_array_push(cmcf->kafka_options);
    if (kv == NULL) {
        return NGX_CONF_ERROR;
    }

    kv->key = value[1];
    kv->value = value[2];

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_chat_init_process(ngx_cycle_t *cycle)
{
    ngx_chat_worker_t      *w;
    ngx_chat_main_conf_t   *cmcf;
    ngx_chat_kafka_conf_t   kc;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_chat_module);

    ngx_chat_metrics_init_process(cycle);

    if (cmcf == NULL || !cmcf->enabled) {
        return NGX_OK;
    }

    w = ngx_calloc(sizeof(ngx_chat_worker_t), cycle->log);
    if (w == NULL) {
        return NGX_ERROR;
    }

    w->conf = cmcf;
    w->log = cycle->log;

    /*
     * Ids are unique per (node, process): the pid tells apart the live
     * processes of one node, old workers of a reload included.
     */
    chat_id_gen_init(&w->ids,
                     chat_id_node_from_name((char *) cmcf->node_name.data,
                                            cmcf->node_name.len),
                     (uint16_t) (ngx_pid & 0xffff));

    if (cmcf->api && ngx_chat_password_init(cycle->log) != NGX_OK) {
        return NGX_ERROR;
    }

    if (cmcf->redis_addrs) {
        w->nredis = cmcf->redis_addrs->nelts;
        w->redis = ngx_chat_shard_connect(cmcf->redis_addrs->elts, w->nredis,
                                          cmcf->redis_timeout, cycle->log);
        if (w->redis == NULL) {
            return NGX_ERROR;
        }
    }

    if (cmcf->pg_conninfo.len) {
        w->pg = ngx_chat_pg_pool_create(&cmcf->pg_conninfo,
                                        cmcf->pg_pool_size,
                                        cmcf->pg_timeout, cycle->log);
        if (w->pg == NULL) {
            return NGX_ERROR;
        }
    }

    if (cmcf->kafka_brokers.len) {
        kc.brokers = cmcf->kafka_brokers;
        kc.timeout = cmcf->kafka_timeout;
        kc.options = cmcf->kafka_options;
        kc.client_id = cmcf->node_name;

        w->kafka = ngx_chat_kafka_create(&kc, cycle->log);
        if (w->kafka == NULL) {
            return NGX_ERROR;
        }
    }

    ngx_chat_worker = w;
    ngx_chat_shard_use(w->redis, w->nredis, &cmcf->redis_ring);

    if (cmcf->websocket && ngx_chat_session_init(w, cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    if (cmcf->websocket && ngx_chat_admin_init(w, cycle) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_chat_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t          i;
    ngx_chat_worker_t  *w;

    w = ngx_chat_worker;

    if (w == NULL) {
        return;
    }

    ngx_chat_admin_exit(w);

    /*
     * Kafka first, while everything else is whole: a send whose record
     * the flush gets to the broker keeps its ack under its client_id and
     * queues its delivery, so that the client's retry on another worker
     * gets that ack, not "in_progress" until the claim expires and then
     * a second copy of the message
     */
    if (w->kafka) {
        ngx_chat_kafka_destroy(w->kafka,
                               ngx_min(w->conf->kafka_timeout,
                                       NGX_CHAT_EXIT_FLUSH));
        w->kafka = NULL;
    }

    ngx_chat_session_exit(w);

    ngx_chat_worker = NULL;
    ngx_chat_shard_use(NULL, 0, NULL);

    if (w->pg) {
        ngx_chat_pg_pool_destroy(w->pg);
    }

    /* what the last delivery reports added goes out before the servers */
    ngx_chat_batch_exit();

    for (i = 0; w->redis && i < w->nredis; i++) {
        if (w->redis[i]) {
            ngx_chat_redis_write_now(w->redis[i], NGX_CHAT_EXIT_WRITE);
        }
    }

    ngx_chat_shard_disconnect(w->redis, w->nredis);

    ngx_free(w);
}


static ngx_int_t
ngx_chat_header_filter(ngx_http_request_t *r)
{
    ngx_table_elt_t       *h;
    ngx_chat_main_conf_t  *cmcf;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_chat_module);

    if (cmcf->enabled && cmcf->node && r == r->main) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "X-Chat-Node");
        h->value = cmcf->node_name;
#if (nginx_version >= 1023000)
        h->next = NULL;
#endif
    }

    return ngx_http_next_header_filter(r);
}
