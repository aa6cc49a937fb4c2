
/*
 * Copyright (C) ngx_chat authors
 */


/*
 * The Redis Lua scripts as a table: their sources (generated from
 * the .lua files of src/store/lua/ into nginx's objs/ directory by gen.sh,
 * at ./configure time and by the Makefile), their SHA1s for EVALSHA, and
 * the SCRIPT LOAD that puts them on every new Redis connection.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <openssl/sha.h>

#include "ngx_chat_lua.h"
#include "ngx_chat_lua_scripts.h"


static char  ngx_chat_lua_shas[NGX_CHAT_SCRIPT_N][SHA_DIGEST_LENGTH * 2 + 1];


ngx_int_t
ngx_chat_lua_init(ngx_log_t *log)
{
    u_char                        digest[SHA_DIGEST_LENGTH];
    ngx_uint_t                    i;
    const ngx_chat_lua_script_t  *s;

    for (i = 0; i < NGX_CHAT_SCRIPT_N; i++) {
        s = &ngx_chat_lua_scripts[i];

        /* a member of ngx_chat_script_e without its file */
        if (s->source.len == 0) {
            ngx_log_error(NGX_LOG_EMERG, log, 0,
                          "chat: Lua script %ui was not built", i);
            return NGX_ERROR;
        }

        (void) SHA1(s->source.data, s->source.len, digest);
        ngx_hex_dump((u_char *) ngx_chat_lua_shas[i], digest,
                     SHA_DIGEST_LENGTH);
        ngx_chat_lua_shas[i][SHA_DIGEST_LENGTH * 2] = '\0';
    }

    return NGX_OK;
}


const char *
ngx_chat_script_sha(ngx_chat_script_e script)
{
    return ngx_chat_lua_shas[script];
}


void
ngx_chat_lua_load(ngx_chat_redis_t *rds)
{
    ngx_uint_t                    i;
    const ngx_chat_lua_script_t  *s;

    for (i = 0; i < NGX_CHAT_SCRIPT_N; i++) {
        s = &ngx_chat_lua_scripts[i];

        (void) ngx_chat_redis_command(rds, NULL, NULL, "SCRIPT LOAD %b",
                                      s->source.data, s->source.len);
    }
}
