
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_CHANNEL_H_INCLUDED_
#define _NGX_CHAT_CHANNEL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_chat.h"


/*
 * The worker's subscriptions and what hangs on them: routes, deliveries,
 * presence (nothing without Redis).
 */
ngx_int_t ngx_chat_channel_init(ngx_chat_worker_t *w, ngx_cycle_t *cycle);
void ngx_chat_channel_exit(ngx_chat_worker_t *w);


#endif /* _NGX_CHAT_CHANNEL_H_INCLUDED_ */
