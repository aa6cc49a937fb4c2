
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_METRICS_H_INCLUDED_
#define _NGX_CHAT_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_chat_counters.h"


/*
 * The metrics' module side: the zone, "chat_metrics;", the names and
 * what frames and answers count as (docs/OPERATIONS.md); the counters
 * themselves are in src/store/ngx_chat_counters.h.
 */


ngx_int_t ngx_chat_metrics_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_chat_metrics_postconfiguration(ngx_conf_t *cf);
void ngx_chat_metrics_init_process(ngx_cycle_t *cycle);
char *ngx_chat_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* the reason of a close frame's code (0: none) */
ngx_uint_t ngx_chat_metrics_close_why(ngx_uint_t code);
/* "normal", "timeout"... for logs */
const char *ngx_chat_metrics_close_name(ngx_uint_t why);
/* a frame in, by chat_proto_type_e (0: it did not decode) */
void ngx_chat_metrics_frame_in(ngx_uint_t type);
/* a text frame out: its type (and error code, receipt status) from it */
void ngx_chat_metrics_frame_out(const u_char *data, size_t len);
/* a JSON error answer {"error":"<code>",...}: its code; others not */
void ngx_chat_metrics_api_error(const u_char *data, size_t len);


#endif /* _NGX_CHAT_METRICS_H_INCLUDED_ */
