
/*
 * Copyright (C) ngx_chat authors
 *
 * Per-round batching of script calls.  The work that one event-loop
 * round produces for a script on a Redis server (claims, deliveries,
 * receipts: one item each) is gathered and goes out as one EVALSHA after
 * the round's I/O handlers (a posted event), answered with one element
 * per item:
 *
 *     EVALSHA sha <keys of all items> \
 *             <n> <nkeys1> <nargs1> <args1...> <nkeys2> <nargs2> ...
 *
 * The script runs each item under pcall (lib.lua's batch()), so an item
 * that fails is an error element and the others go on; a call that
 * fails (the server is down, a timeout, an error reply) fails each of
 * its items.  Items are answered in the order they were added, and a
 * server's calls go out in order on its one connection, so what one
 * client sent in order is done in that order across calls too.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_chat_batch.h"


/* a call's size: items beyond it go in another call of the same round */
#define NGX_CHAT_BATCH_BYTES      (512 * 1024)


struct ngx_chat_batch_item_s {
    ngx_chat_batch_item_t     *next;
    ngx_chat_batch_handler_pt  handler;
    void                      *data;
    ngx_uint_t                 nkeys;
    ngx_uint_t                 nargs;
    ngx_str_t                  strs[1];     /* keys, then args */
};


/* what waits for one server and script */
typedef struct {
    ngx_chat_redis_t          *rds;
    ngx_chat_script_e          script;
    ngx_chat_batch_item_t     *head;
    ngx_chat_batch_item_t    **tail;
    ngx_uint_t                 n;
    ngx_uint_t                 inflight;    /* items sent, not answered */
    ngx_uint_t                 nstrs;       /* keys and args, all items */
    size_t                     bytes;
    ngx_event_t                flush;       /* posted */
} ngx_chat_batch_t;


/* a call on its way */
typedef struct {
    ngx_chat_batch_item_t     *head;
    ngx_uint_t                 n;
    ngx_chat_redis_t          *rds;
    ngx_chat_batch_t          *batch;
} ngx_chat_batch_call_t;


static ngx_chat_batch_t *ngx_chat_batch_get(ngx_chat_redis_t *rds,
    ngx_chat_script_e script);
static void ngx_chat_batch_flush_handler(ngx_event_t *ev);
static void ngx_chat_batch_flush(ngx_chat_batch_t *b);
static void ngx_chat_batch_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data);
static void ngx_chat_batch_answer(ngx_chat_batch_item_t *head,
    ngx_chat_store_rc_e rc, redisReply *reply);


/* one per server and script that was used; a few, searched in order */
static ngx_chat_batch_t  **ngx_chat_batches;
static ngx_uint_t          ngx_chat_nbatches;


ngx_chat_batch_item_t *
ngx_chat_batch_add(ngx_chat_redis_t *rds, ngx_chat_script_e script,
    ngx_uint_t nkeys, const ngx_str_t *keys, ngx_uint_t nargs,
    const ngx_str_t *args, ngx_chat_batch_handler_pt handler, void *data)
{
    u_char                 *p;
    size_t                  size;
    ngx_uint_t              i;
    ngx_chat_batch_t       *b;
    ngx_chat_batch_item_t  *it;

    if (rds == NULL || !ngx_chat_redis_usable(rds)) {
        return NULL;
    }

    b = ngx_chat_batch_get(rds, script);
    if (b == NULL) {
        return NULL;
    }

    size = 0;

    for (i = 0; i < nkeys; i++) {
        size += keys[i].len;
    }

    for (i = 0; i < nargs; i++) {
        size += args[i].len;
    }

    if (b->n == NGX_CHAT_BATCH_MAX
        || (b->n && b->bytes + size > NGX_CHAT_BATCH_BYTES))
    {
        ngx_chat_batch_flush(b);
    }

    it = ngx_alloc(offsetof(ngx_chat_batch_item_t, strs)
                   + (nkeys + nargs) * sizeof(ngx_str_t) + size,
                   ngx_cycle->log);
    if (it == NULL) {
        return NULL;
    }

    it->next = NULL;
    it->handler = handler;
    it->data = data;
    it->nkeys = nkeys;
    it->nargs = nargs;

    p = (u_char *) &it->strs[nkeys + nargs];

    for (i = 0; i < nkeys + nargs; i++) {
        it->strs[i].len = (i < nkeys) ? keys[i].len : args[i - nkeys].len;
        it->strs[i].data = p;
        p = ngx_cpymem(p, (i < nkeys) ? keys[i].data : args[i - nkeys].data,
                       it->strs[i].len);
    }

    *b->tail = it;
    b->tail = &it->next;
    b->n++;
    b->nstrs += nkeys + nargs;
    b->bytes += size;

    if (!b->flush.posted) {
        ngx_post_event(&b->flush, &ngx_posted_events);
    }

    return it;
}


void
ngx_chat_batch_cancel(ngx_chat_batch_item_t *item)
{
    /* it still goes (its call is made or on its way): nobody hears */
    item->handler = NULL;
}


u_char *
ngx_chat_batch_str(ngx_str_t *s, u_char *p, const char *fmt, ...)
{
    u_char   *end;
    va_list   args;

    va_start(args, fmt);
    end = ngx_vslprintf(p, p + NGX_CHAT_BATCH_STR, fmt, args);
    va_end(args);

    s->data = p;
    s->len = end - p;

    return end;
}


static ngx_chat_batch_t *
ngx_chat_batch_get(ngx_chat_redis_t *rds, ngx_chat_script_e script)
{
    ngx_uint_t          i;
    ngx_chat_batch_t   *b, **all;

    for (i = 0; i < ngx_chat_nbatches; i++) {
        b = ngx_chat_batches[i];

        if (b->rds == rds && b->script == script) {
            return b;
        }
    }

    all = ngx_alloc((ngx_chat_nbatches + 1) * sizeof(ngx_chat_batch_t *),
                    ngx_cycle->log);
    if (all == NULL) {
        return NULL;
    }

    b = ngx_calloc(sizeof(ngx_chat_batch_t), ngx_cycle->log);
    if (b == NULL) {
        ngx_free(all);
        return NULL;
    }

    b->rds = rds;
    b->script = script;
    b->tail = &b->head;
    b->flush.handler = ngx_chat_batch_flush_handler;
    b->flush.data = b;
    b->flush.log = ngx_cycle->log;

    if (ngx_chat_nbatches) {
        ngx_memcpy(all, ngx_chat_batches,
                   ngx_chat_nbatches * sizeof(ngx_chat_batch_t *));
    }

    all[ngx_chat_nbatches++] = b;
    ngx_free(ngx_chat_batches);
    ngx_chat_batches = all;

    return b;
}


static void
ngx_chat_batch_flush_handler(ngx_event_t *ev)
{
    ngx_chat_batch_flush(ev->data);
}


static void
ngx_chat_batch_flush(ngx_chat_batch_t *b)
{
    int                     argc;
    u_char                 *num, *p;
    size_t                 *argvlen;
    ngx_uint_t              i, k;
    const char            **argv;
    ngx_chat_batch_call_t  *call;
    ngx_chat_batch_item_t  *it;

    if (b->flush.posted) {
        ngx_delete_posted_event(&b->flush);
    }

    if (b->n == 0) {
        return;
    }

    /* EVALSHA sha nkeys, the keys, n, and per item 2 counts and its args */
    argc = 4 + b->nstrs + 2 * b->n;

    argv = ngx_alloc(argc * (sizeof(char *) + sizeof(size_t))
                     + (3 + 2 * b->n) * NGX_INT_T_LEN, ngx_cycle->log);
    call = ngx_alloc(sizeof(ngx_chat_batch_call_t), ngx_cycle->log);

    if (argv == NULL || call == NULL) {
        ngx_free(argv);
        ngx_free(call);
        it = b->head;
        goto failed;
    }

    argvlen = (size_t *) &argv[argc];
    num = (u_char *) &argvlen[argc];

    call->head = b->head;
    call->n = b->n;
    call->rds = b->rds;
    call->batch = b;

    argv[0] = "EVALSHA";
    argvlen[0] = sizeof("EVALSHA") - 1;
    argv[1] = ngx_chat_script_sha(b->script);
    argvlen[1] = ngx_strlen(argv[1]);

    k = 3;

    for (it = b->head; it; it = it->next) {
        for (i = 0; i < it->nkeys; i++) {
            argv[k] = (const char *) it->strs[i].data;
            argvlen[k++] = it->strs[i].len;
        }
    }

    /* the number of keys, now that it is known */
    p = ngx_sprintf(num, "%ui", (ngx_uint_t) (k - 3));
    argv[2] = (const char *) num;
    argvlen[2] = p - num;
    num = p;

    p = ngx_sprintf(num, "%ui", b->n);
    argv[k] = (const char *) num;
    argvlen[k++] = p - num;
    num = p;

    for (it = b->head; it; it = it->next) {
        p = ngx_sprintf(num, "%ui", it->nkeys);
        argv[k] = (const char *) num;
        argvlen[k++] = p - num;
        num = p;

        p = ngx_sprintf(num, "%ui", it->nargs);
        argv[k] = (const char *) num;
        argvlen[k++] = p - num;
        num = p;

        for (i = it->nkeys; i < it->nkeys + it->nargs; i++) {
            argv[k] = (const char *) it->strs[i].data;
            argvlen[k++] = it->strs[i].len;
        }
    }

    it = b->head;

    b->head = NULL;
    b->tail = &b->head;
    b->n = 0;
    b->nstrs = 0;
    b->bytes = 0;

    /* hiredis has formatted the command when this returns */
    if (ngx_chat_redis_command_argv(call->rds, ngx_chat_batch_reply, call,
                                    k, argv, argvlen)
        != NULL)
    {
        b->inflight += call->n;
        ngx_free(argv);
        return;
    }

    ngx_free(argv);
    ngx_free(call);

    ngx_chat_batch_answer(it, NGX_CHAT_STORE_DOWN, NULL);
    return;

failed:

    b->head = NULL;
    b->tail = &b->head;
    b->n = 0;
    b->nstrs = 0;
    b->bytes = 0;

    ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                  "chat: redis %V: a batch failed: out of memory",
                  ngx_chat_redis_name(b->rds));

    ngx_chat_batch_answer(it, NGX_CHAT_STORE_FAILED, NULL);
}


static void
ngx_chat_batch_reply(ngx_chat_store_rc_e rc, redisReply *reply, void *data)
{
    ngx_chat_batch_call_t  *call = data;

    if (call->batch) {
        call->batch->inflight -= call->n;
    }

    if (rc == NGX_CHAT_STORE_FAILED && reply
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        /* SCRIPT FLUSH behind our back: a new connection loads them */
        ngx_chat_redis_reconnect(call->rds);
    }

    if (rc == NGX_CHAT_STORE_OK
        && (reply->type != REDIS_REPLY_ARRAY || reply->elements != call->n))
    {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "chat: redis %V: a batch of %ui items got another "
                      "answer", ngx_chat_redis_name(call->rds), call->n);
        rc = NGX_CHAT_STORE_FAILED;
    }

    ngx_chat_batch_answer(call->head, rc,
                          rc == NGX_CHAT_STORE_OK ? reply : NULL);
    ngx_free(call);
}


/* each item its answer; the handlers may add items for the next call */

static void
ngx_chat_batch_answer(ngx_chat_batch_item_t *head, ngx_chat_store_rc_e rc,
    redisReply *reply)
{
    ngx_uint_t              i;
    redisReply             *el;
    ngx_chat_batch_item_t  *it, *next;

    for (i = 0, it = head; it; i++, it = next) {
        next = it->next;

        if (it->handler == NULL) {
            /* cancelled */

        } else if (reply == NULL) {
            it->handler(rc, NULL, it->data);

        } else {
            el = reply->element[i];

            if (el->type == REDIS_REPLY_ERROR) {
                ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                              "chat: redis: an item of a batch failed: %*s",
                              (size_t) el->len, el->str);
                it->handler(NGX_CHAT_STORE_FAILED, el, it->data);

            } else {
                it->handler(NGX_CHAT_STORE_OK, el, it->data);
            }
        }

        ngx_free(it);
    }
}


ngx_uint_t
ngx_chat_batch_pending(ngx_chat_redis_t *rds)
{
    ngx_uint_t         i, n;
    ngx_chat_batch_t  *b;

    n = 0;

    for (i = 0; i < ngx_chat_nbatches; i++) {
        b = ngx_chat_batches[i];

        if (b->rds == rds) {
            n += b->n + b->inflight;
        }
    }

    return n;
}


void
ngx_chat_batch_exit(void)
{
    ngx_uint_t         i;
    ngx_chat_batch_t  *b;

    for (i = 0; i < ngx_chat_nbatches; i++) {
        b = ngx_chat_batches[i];

        /* handlers of what cannot go are called: nothing waits silently */
        ngx_chat_batch_flush(b);
        ngx_free(b);
    }

    ngx_free(ngx_chat_batches);
    ngx_chat_batches = NULL;
    ngx_chat_nbatches = 0;
}
