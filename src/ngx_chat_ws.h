
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_WS_H_INCLUDED_
#define _NGX_CHAT_WS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_chat.h"
#include "chat_ws.h"


#define NGX_CHAT_WS_RBUF          4096
#define NGX_CHAT_WS_JSON_DEPTH    8


typedef struct {
    ngx_chain_t                chain;
    ngx_buf_t                  buf;
    /* the frame's bytes follow */
} ngx_chat_ws_frame_t;


typedef struct {
    ngx_http_request_t        *request;
    ngx_chat_loc_conf_t       *conf;
    uint64_t                   user_id;
    chat_ws_parser_t           parser;

    u_char                    *rbuf;
    u_char                    *msg;
    size_t                     msg_len;
    size_t                     msg_cap;

    ngx_chain_t               *out;
    ngx_chain_t              **last_out;
    size_t                     queued;

    ngx_event_t                end;         /* finalizes, posted */
    ngx_queue_t                sends;       /* ngx_chat_send_t in flight */

    unsigned                   closing:1;   /* close frame queued */
    unsigned                   done:1;
} ngx_chat_ws_t;


ngx_int_t ngx_chat_ws_send_json(ngx_chat_ws_t *ws, json_t *json);
ngx_int_t ngx_chat_ws_error(ngx_chat_ws_t *ws, const char *code,
    const char *message, json_t *request);

/* ngx_chat_send.c: {"type":"send"} to a durable ack */
ngx_int_t ngx_chat_send(ngx_chat_ws_t *ws, json_t *req);
void ngx_chat_send_orphan(ngx_chat_ws_t *ws);


#endif /* _NGX_CHAT_WS_H_INCLUDED_ */
