
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_PASSWORD_H_INCLUDED_
#define _NGX_CHAT_PASSWORD_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


#define NGX_CHAT_PASSWORD_MIN  8
#define NGX_CHAT_PASSWORD_MAX  128

/* hashes waiting for a thread, per worker */
#define NGX_CHAT_PASSWORD_QUEUE_MAX  1024


/*
 * rc: for a hash, NGX_OK with the new hash (valid during the call) or
 * NGX_ERROR; for a check, NGX_OK (matches), NGX_DECLINED (does not, or no
 * such user) or NGX_ERROR.
 */
typedef void (*ngx_chat_password_handler_pt)(ngx_int_t rc, ngx_str_t *hash,
    void *data);

typedef struct ngx_chat_password_s  ngx_chat_password_t;


ngx_int_t ngx_chat_password_init(ngx_log_t *log);

/*
 * hash == NULL: make a hash of password; else check password against hash
 * (an empty hash: the user does not exist, spend the same time and say
 * no).  The handler runs on the event loop once the thread is done.
 * NULL: nothing was started, the handler will not be called.
 *
 * The task owns its memory (not the request's pool): a caller that goes
 * away first (its request is torn down) cancels it, and the task frees
 * itself once the thread is done with it.
 */
ngx_chat_password_t *ngx_chat_password_start(ngx_http_request_t *r,
    ngx_str_t *password, ngx_str_t *hash,
    ngx_chat_password_handler_pt handler, void *data);

/* the handler will not be called */
void ngx_chat_password_cancel(ngx_chat_password_t *pw);


#endif /* _NGX_CHAT_PASSWORD_H_INCLUDED_ */
