
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_BATCH_H_INCLUDED_
#define _NGX_CHAT_BATCH_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_chat_redis.h"
#include "ngx_chat_lua.h"


/* items in one script call at most; more go in the next call */
#define NGX_CHAT_BATCH_MAX        256

/* ngx_chat_batch_str() writes at most this much */
#define NGX_CHAT_BATCH_STR        128


/*
 * One item's answer: NGX_CHAT_STORE_OK with its own element of the
 * script's reply; NGX_CHAT_STORE_FAILED with the element when the item
 * alone failed (an error element), or NULL when the whole call failed;
 * NGX_CHAT_STORE_DOWN or _TIMEOUT (reply NULL) when the call did not
 * come back.  A failed call fails every item in it.  Called once per
 * item, in the order the items were added.
 */
typedef void (*ngx_chat_batch_handler_pt)(ngx_chat_store_rc_e rc,
    redisReply *reply, void *data);

typedef struct ngx_chat_batch_item_s  ngx_chat_batch_item_t;


/*
 * An item for a multi-item script (its header says "batch: ..."): keys
 * and args are copied.  All items that one event-loop round adds for one
 * server and script go in one EVALSHA, after the round's I/O handlers.
 * NULL: not taken, the server is down or out of memory (the handler is
 * not called); else the item, until its handler is called.
 */
ngx_chat_batch_item_t *ngx_chat_batch_add(ngx_chat_redis_t *rds,
    ngx_chat_script_e script, ngx_uint_t nkeys, const ngx_str_t *keys,
    ngx_uint_t nargs, const ngx_str_t *args,
    ngx_chat_batch_handler_pt handler, void *data);

/*
 * Items for the server not answered yet (gathered or sent): with
 * ngx_chat_redis_pending(), how far behind the server is, in items
 */
ngx_uint_t ngx_chat_batch_pending(ngx_chat_redis_t *rds);

/* the handler will not be called; for callers that go away first */
void ngx_chat_batch_cancel(ngx_chat_batch_item_t *item);

/*
 * Formats a key or an argument at p (with room for it) into *s: the end
 * of what was written, where the next one goes
 */
u_char *ngx_chat_batch_str(ngx_str_t *s, u_char *p, const char *fmt, ...);

/* what is waiting goes out now (before the servers are disconnected) */
void ngx_chat_batch_exit(void);


#endif /* _NGX_CHAT_BATCH_H_INCLUDED_ */
