
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


/* ms: a worker tells of refused SCRIPT LOADs at most this often */
#define NGX_CHAT_LUA_LOG_EVERY  5000


/* the SCRIPT LOADs of one connection */
typedef struct {
    ngx_chat_redis_t  *rds;
    ngx_uint_t         left;        /* replies to come */
    ngx_uint_t         refused;
} ngx_chat_lua_loading_t;


static void ngx_chat_lua_loaded(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data);


static char  ngx_chat_lua_shas[NGX_CHAT_SCRIPT_N][SHA_DIGEST_LENGTH * 2 + 1];
static ngx_msec_t  ngx_chat_lua_logged;


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
    ngx_chat_lua_loading_t       *ld;
    const ngx_chat_lua_script_t  *s;

    /* without it, the EVALSHAs' NOSCRIPT reconnects (ngx_chat_batch.c) */
    ld = ngx_alloc(sizeof(ngx_chat_lua_loading_t), ngx_cycle->log);
    if (ld) {
        ld->rds = rds;
        ld->left = 0;
        ld->refused = 0;
    }

    for (i = 0; i < NGX_CHAT_SCRIPT_N; i++) {
        s = &ngx_chat_lua_scripts[i];

        if (ngx_chat_redis_command(rds, ld ? ngx_chat_lua_loaded : NULL, ld,
                                   "SCRIPT LOAD %b",
                                   s->source.data, s->source.len)
            != NULL
            && ld)
        {
            ld->left++;
        }
    }

    if (ld && ld->left == 0) {
        ngx_free(ld);
    }
}


/*
 * A connection whose SCRIPT LOAD Redis refused would take EVALSHAs that
 * all fail: e.g. one made while Redis loads its data (LOADING; AUTH is
 * taken meanwhile), whose scripts would be missing once the data is
 * there, or a user whose ACL forbids SCRIPT.  It is given up at the first
 * refusal, and the new one (after the usual backoff) loads them again.
 * The other replies of the round then come as DOWN.
 */

static void
ngx_chat_lua_loaded(ngx_chat_store_rc_e rc, redisReply *reply, void *data)
{
    ngx_chat_lua_loading_t  *ld = data;

    ngx_uint_t               refuse;
    ngx_chat_redis_t        *rds;

    rds = ld->rds;
    refuse = (rc == NGX_CHAT_STORE_FAILED && !ld->refused);

    if (refuse) {
        ld->refused = 1;

        if (ngx_chat_lua_logged == 0
            || ngx_current_msec - ngx_chat_lua_logged
               >= NGX_CHAT_LUA_LOG_EVERY)
        {
            ngx_chat_lua_logged = ngx_current_msec;

            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "chat: redis %V: SCRIPT LOAD refused: %*s; "
                          "connecting again",
                          ngx_chat_redis_name(rds),
                          (size_t) (reply && reply->str ? reply->len : 0),
                          reply && reply->str ? reply->str : "");
        }
    }

    /* ld is not touched after this: the reconnect answers the rest */
    if (--ld->left == 0) {
        ngx_free(ld);
    }

    if (refuse) {
        ngx_chat_redis_reconnect(rds);
    }
}
