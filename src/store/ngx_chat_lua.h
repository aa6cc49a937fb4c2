
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_LUA_H_INCLUDED_
#define _NGX_CHAT_LUA_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_chat_redis.h"


/*
 * The Redis Lua scripts: src/store/lua/NAME.lua, one per member here
 * (NGX_CHAT_SCRIPT_NAME), turned into a C table at build time by
 * src/store/lua/gen.sh.  Each file's header says what it takes and
 * answers.
 */

typedef enum {
    NGX_CHAT_SCRIPT_DELIVER = 0,
    NGX_CHAT_SCRIPT_RELAY,
    NGX_CHAT_SCRIPT_SYNC,
    NGX_CHAT_SCRIPT_RECEIPT,
    NGX_CHAT_SCRIPT_REFRESH,
    NGX_CHAT_SCRIPT_CLAIM,
    NGX_CHAT_SCRIPT_ONLINE,
    NGX_CHAT_SCRIPT_OFFLINE,
    NGX_CHAT_SCRIPT_BEAT,
    NGX_CHAT_SCRIPT_STATE,
    NGX_CHAT_SCRIPT_SWEEP,
    NGX_CHAT_SCRIPT_REFILL,
    NGX_CHAT_SCRIPT_SEQ,
    NGX_CHAT_SCRIPT_GSEQ,
    NGX_CHAT_SCRIPT_GFILL,
    NGX_CHAT_SCRIPT_GINVAL,
    NGX_CHAT_SCRIPT_GDELIVER,
    NGX_CHAT_SCRIPT_GPUB,
    NGX_CHAT_SCRIPT_GTYPE,
    NGX_CHAT_SCRIPT_GSYNC,
    NGX_CHAT_SCRIPT_GRECEIPT,
    NGX_CHAT_SCRIPT_N
} ngx_chat_script_e;


typedef struct {
    ngx_str_t                  name;    /* the file's name, no ".lua" */
    ngx_str_t                  source;  /* as Redis gets it */
} ngx_chat_lua_script_t;


/* the scripts' SHA1s, once per process; NGX_ERROR if one is missing */
ngx_int_t ngx_chat_lua_init(ngx_log_t *log);

/* the SHA1 of a script, for EVALSHA: every Redis connection has it */
const char *ngx_chat_script_sha(ngx_chat_script_e script);

/*
 * SCRIPT LOAD of every script: the first commands on a new connection
 * (from its "connecting" hook), so that every EVALSHA after them finds
 * its script even on a Redis that just started.  A refused one (LOADING
 * while Redis reads its data, NOPERM) is logged and the connection made
 * again.
 */
void ngx_chat_lua_load(ngx_chat_redis_t *rds);


#endif /* _NGX_CHAT_LUA_H_INCLUDED_ */
