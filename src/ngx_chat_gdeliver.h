
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_GDELIVER_H_INCLUDED_
#define _NGX_CHAT_GDELIVER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"


#define NGX_CHAT_GDELIVER_TRIES   120      /* a second apart */


/*
 * A durable group message: into the group's log once and out to every
 * worker holding members' connections, once per worker (ws: the sending
 * connection, which gets nothing, or NULL).
 */
void ngx_chat_gdeliver_message(uint64_t from, uint64_t gid, const char *id,
    int64_t seq, int64_t ts, const char *conv, const char *text, size_t len,
    ngx_chat_ws_t *ws);

/* deliveries still retried are logged as lost */
void ngx_chat_gdeliver_exit(void);


#endif /* _NGX_CHAT_GDELIVER_H_INCLUDED_ */
