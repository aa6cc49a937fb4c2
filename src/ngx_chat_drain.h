
/*
 * Copyright (C) ngx_chat authors
 *
 * The node's drain flag, in a shared memory zone ("chat_admin") that all
 * of the node's workers read and that a reload keeps: while it is set, no
 * new WebSockets (503) and /healthz answers 503 "draining".  The admin API
 * (ngx_chat_admin.c) sets it; the transport and /healthz read it.
 */


#ifndef _NGX_CHAT_DRAIN_H_INCLUDED_
#define _NGX_CHAT_DRAIN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* the zone, where chat_websocket is (postconfiguration) */
ngx_int_t ngx_chat_drain_add_zone(ngx_conf_t *cf);
/* in a worker: finds the zone; the flag as the node had it */
void ngx_chat_drain_init(ngx_cycle_t *cycle);

ngx_uint_t ngx_chat_draining(void);
void ngx_chat_drain_set(ngx_uint_t draining);


#endif /* _NGX_CHAT_DRAIN_H_INCLUDED_ */
