
/*
 * Copyright (C) ngx_chat authors
 *
 * Fresh signed URLs in outgoing messages (ngx_chat_media.h).  A frame
 * without "media" (nearly all of them) costs one memmem() and goes out
 * as it is.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_chat_media.h"
#include "chat_media_url.h"


static size_t ngx_chat_media_room(const u_char *text, size_t len);
static long ngx_chat_media_insert(u_char *text, size_t len, u_char *out,
    size_t cap);


ngx_int_t
ngx_chat_media_send(ngx_chat_ws_t *ws, const u_char *frame, size_t len)
{
    long        n;
    size_t      cap;
    u_char     *buf;
    ngx_int_t   rc;

    cap = ngx_chat_media_room(frame, len);

    if (cap == 0) {
        return ngx_chat_ws_send_text(ws, frame, len);
    }

    buf = ngx_alloc(cap, ngx_cycle->log);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    n = ngx_chat_media_insert((u_char *) frame, len, buf, cap);

    rc = n < 0 ? ngx_chat_ws_send_text(ws, frame, len)
               : ngx_chat_ws_send_text(ws, buf, (size_t) n);

    ngx_free(buf);

    return rc;
}


ngx_int_t
ngx_chat_media_urls(ngx_pool_t *pool, u_char *text, size_t len,
    ngx_str_t *out)
{
    long     n;
    size_t   cap;
    u_char  *buf;

    out->data = text;
    out->len = len;

    cap = ngx_chat_media_room(text, len);

    if (cap == 0) {
        return NGX_OK;
    }

    buf = ngx_pnalloc(pool, cap);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    n = ngx_chat_media_insert(text, len, buf, cap);
    if (n < 0) {
        return NGX_ERROR;
    }

    out->data = buf;
    out->len = (size_t) n;

    return NGX_OK;
}


/* the room text takes with its URLs; 0: it has none to get */

static size_t
ngx_chat_media_room(const u_char *text, size_t len)
{
    size_t  count;

    if (ngx_chat_worker->conf->media_url_key.len == 0) {
        return 0;
    }

    count = chat_media_url_count((const char *) text, len);

    return count ? len + count * CHAT_MEDIA_URL_MEMBER_MAX : 0;
}


static long
ngx_chat_media_insert(u_char *text, size_t len, u_char *out, size_t cap)
{
    ngx_chat_main_conf_t  *cmcf = ngx_chat_worker->conf;

    return chat_media_url_insert(cmcf->media_url_key.data,
                                 cmcf->media_url_key.len,
                                 (int64_t) (ngx_time() + cmcf->media_url_ttl),
                                 (const char *) text, len, (char *) out, cap);
}
