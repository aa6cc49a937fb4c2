
/*
 * Copyright (C) ngx_chat authors
 *
 * Images: POST /v1/media (the raw body to a file as it arrives, hashed and
 * sniffed on the way, stored by its SHA-256) and GET /v1/media/{id} (by
 * token or by signed URL), their directives, and the request body filter
 * that holds every chat_api body to its limit whatever its framing.
 */


#ifndef _NGX_CHAT_API_MEDIA_H_INCLUDED_
#define _NGX_CHAT_API_MEDIA_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_api_request.h"


ngx_int_t ngx_chat_api_media_upload(ngx_chat_api_ctx_t *ctx);
ngx_int_t ngx_chat_api_media_get(ngx_chat_api_ctx_t *ctx);

/* "/v1/media/<id>?exp=<now + chat_media_url_ttl>&sig=<hex>" in pool */
ngx_int_t ngx_chat_media_url(ngx_chat_main_conf_t *cmcf, const char *id,
    size_t len, ngx_pool_t *pool, ngx_str_t *url);

char *ngx_chat_media_path(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_chat_media_url_secret_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* defaults and checks, from the main configuration's init */
char *ngx_chat_media_init_conf(ngx_conf_t *cf, ngx_chat_main_conf_t *cmcf);

/* the body filter, and the API locations' body size and temporary path */
ngx_int_t ngx_chat_media_postconfiguration(ngx_conf_t *cf);


#endif /* _NGX_CHAT_API_MEDIA_H_INCLUDED_ */
