
/*
 * Copyright (C) ngx_chat authors
 *
 * Messages that carry an image get a fresh signed "url" beside their
 * "media" as they go out (to a device, or in a page of history), so that
 * a receiver can show it however late it reads the message: the URL is
 * good for chat_media_url_ttl from then (src/common/chat_media_url.c).
 */


#ifndef _NGX_CHAT_MEDIA_H_INCLUDED_
#define _NGX_CHAT_MEDIA_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"


/* a message frame to ws, with its URL when it has media */
ngx_int_t ngx_chat_media_send(ngx_chat_ws_t *ws, const u_char *frame,
    size_t len);

/* JSON text with a URL after each "media": *out in pool, or text itself */
ngx_int_t ngx_chat_media_urls(ngx_pool_t *pool, u_char *text, size_t len,
    ngx_str_t *out);


#endif /* _NGX_CHAT_MEDIA_H_INCLUDED_ */
