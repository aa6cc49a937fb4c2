
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_ADMIN_H_INCLUDED_
#define _NGX_CHAT_ADMIN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"


/* a draining node's, RFC 6455's "service restart": connect again */
#define NGX_CHAT_ADMIN_CLOSE_DRAIN  1012

char *ngx_chat_admin(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_chat_admin_token_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_chat_admin_merge(ngx_conf_t *cf, ngx_chat_loc_conf_t *prev,
    ngx_chat_loc_conf_t *conf);

/* the node's drain flag (ngx_chat_drain.h), where chat_websocket is */
ngx_int_t ngx_chat_admin_postconfiguration(ngx_conf_t *cf);

/*
 * In a chat node's worker: reads the node's drain flag every second and
 * reports the worker's load (chat:nodes) every few; nothing without Redis
 */
ngx_int_t ngx_chat_admin_init(ngx_chat_worker_t *w, ngx_cycle_t *cycle);
void ngx_chat_admin_exit(ngx_chat_worker_t *w);


#endif /* _NGX_CHAT_ADMIN_H_INCLUDED_ */
