
/*
 * Copyright (C) ngx_chat authors
 *
 * The key of a stored content (ngx_chat_media_key.h).
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_chat_media_key.h"


u_char *
ngx_chat_media_key(u_char *p, const char *sha256, const char *ext)
{
    p = ngx_cpymem(p, sha256, 2);
    *p++ = '/';
    p = ngx_cpymem(p, sha256, NGX_CHAT_SHA256_HEX_LEN);
    *p++ = '.';

    return ngx_cpymem(p, ext, ngx_strlen(ext));
}
