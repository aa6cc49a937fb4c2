
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_SESSION_H_INCLUDED_
#define _NGX_CHAT_SESSION_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_chat.h"


/* the worker's sessions: the transport's hooks, then delivery's state */
ngx_int_t ngx_chat_session_init(ngx_chat_worker_t *w, ngx_cycle_t *cycle);
void ngx_chat_session_exit(ngx_chat_worker_t *w);


#endif /* _NGX_CHAT_SESSION_H_INCLUDED_ */
