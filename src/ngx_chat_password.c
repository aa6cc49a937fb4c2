
/*
 * Copyright (C) ngx_chat authors
 *
 * Argon2id password hashes (libsodium's crypto_pwhash_str).  Hashing is
 * meant to be slow, so it runs in an nginx thread pool, never on the event
 * loop; the request waits for the task's completion event.
 *
 * A task lives in memory of its own, since the request may end first (a
 * client that goes away, worker_shutdown_timeout): the thread keeps
 * writing into the task and the completion event still comes.  A request
 * that ends cancels its task: a waiting one is freed at once, a running
 * one when its completion event comes, without calling the handler.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <sodium.h>

#include "ngx_chat.h"
#include "ngx_chat_password.h"


typedef struct ngx_chat_password_s  ngx_chat_password_task_t;

struct ngx_chat_password_s {
    ngx_thread_task_t              task;
    ngx_queue_t                    queue;
    ngx_thread_pool_t             *pool;
    ngx_chat_password_handler_pt   handler;
    void                          *data;
    ngx_int_t                      result;
    unsigned                       verify:1;
    unsigned                       waiting:1;
    unsigned                       cancelled:1;
    char                           password[NGX_CHAT_PASSWORD_MAX + 1];
    char                           hash[crypto_pwhash_STRBYTES];
};


static ngx_int_t ngx_chat_password_post(ngx_chat_password_task_t *pt);
static void ngx_chat_password_thread(void *data, ngx_log_t *log);
static void ngx_chat_password_done(ngx_event_t *ev);
static void ngx_chat_password_free(ngx_chat_password_task_t *pt);


/*
 * Per worker: hashes running in the pool, and those waiting their turn.
 * Bounded, so that hashing cannot take the CPU from the event loop.
 */
static ngx_uint_t   ngx_chat_password_running;
static ngx_uint_t   ngx_chat_password_waiting;
static ngx_queue_t  ngx_chat_password_queue;


/*
 * A hash to verify against when the user does not exist, so that a login
 * for an unknown name costs as much as one for a known name (same
 * parameters as the real hashes; the password is thrown away).
 */
static const char  ngx_chat_password_dummy[crypto_pwhash_STRBYTES] =
    "$argon2id$v=19$m=65536,t=2,p=1$iIlISZN3I/AScFzgFpqzSw"
    "$e1jHlqQTRoLPzXPCNXy1MEEpSyepp3f4WmmRSvsKZJY";


ngx_int_t
ngx_chat_password_init(ngx_log_t *log)
{
    if (sodium_init() < 0) {
        ngx_log_error(NGX_LOG_EMERG, log, 0, "chat: sodium_init() failed");
        return NGX_ERROR;
    }

    ngx_queue_init(&ngx_chat_password_queue);

    return NGX_OK;
}


ngx_chat_password_t *
ngx_chat_password_start(ngx_http_request_t *r, ngx_str_t *password,
    ngx_str_t *hash, ngx_chat_password_handler_pt handler, void *data)
{
    ngx_chat_main_conf_t      *cmcf;
    ngx_chat_password_task_t  *pt;

    cmcf = ngx_http_get_module_main_conf(r, ngx_http_chat_module);

    if (password->len > NGX_CHAT_PASSWORD_MAX
        || (hash && hash->len >= crypto_pwhash_STRBYTES))
    {
        return NULL;
    }

    if (ngx_chat_password_running >= cmcf->password_concurrency
        && ngx_chat_password_waiting >= NGX_CHAT_PASSWORD_QUEUE_MAX)
    {
        return NULL;
    }

    pt = ngx_calloc(sizeof(ngx_chat_password_task_t), ngx_cycle->log);
    if (pt == NULL) {
        return NULL;
    }

    pt->handler = handler;
    pt->data = data;
    ngx_memcpy(pt->password, password->data, password->len);
    pt->password[password->len] = '\0';

    if (hash) {
        pt->verify = 1;

        if (hash->len) {
            ngx_memcpy(pt->hash, hash->data, hash->len);
            pt->hash[hash->len] = '\0';

        } else {
            pt->hash[0] = '\0';
        }
    }

    pt->task.ctx = pt;
    pt->task.handler = ngx_chat_password_thread;
    pt->task.event.handler = ngx_chat_password_done;
    pt->task.event.data = pt;
    pt->task.event.log = ngx_cycle->log;
    pt->pool = cmcf->thread_pool;

    if (ngx_chat_password_running < cmcf->password_concurrency) {
        if (ngx_chat_password_post(pt) != NGX_OK) {
            ngx_chat_password_free(pt);
            return NULL;
        }

        return pt;
    }

    ngx_queue_insert_tail(&ngx_chat_password_queue, &pt->queue);
    ngx_chat_password_waiting++;
    pt->waiting = 1;

    return pt;
}


void
ngx_chat_password_cancel(ngx_chat_password_t *pt)
{
    if (pt->waiting) {
        ngx_queue_remove(&pt->queue);
        ngx_chat_password_waiting--;
        ngx_chat_password_free(pt);
        return;
    }

    /* in the thread pool: the completion event frees it */
    pt->cancelled = 1;
}


static void
ngx_chat_password_free(ngx_chat_password_task_t *pt)
{
    sodium_memzero(pt->password, sizeof(pt->password));
    ngx_free(pt);
}


static ngx_int_t
ngx_chat_password_post(ngx_chat_password_task_t *pt)
{
    if (ngx_thread_task_post(pt->pool, &pt->task) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_chat_password_running++;

    return NGX_OK;
}


/* runs in a thread of the pool: no nginx calls here */

static void
ngx_chat_password_thread(void *data, ngx_log_t *log)
{
    ngx_chat_password_task_t *pt = data;

    char    *hash;
    size_t   len;

    hash = pt->hash;
    len = ngx_strlen(pt->password);

    if (!pt->verify) {
        pt->result = crypto_pwhash_str(pt->hash, pt->password, len,
                                       crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                       crypto_pwhash_MEMLIMIT_INTERACTIVE)
                     == 0 ? NGX_OK : NGX_ERROR;

    } else {
        if (hash[0] == '\0') {
            /* the cost is the point: the answer is "no" in any case */
            if (crypto_pwhash_str_verify(ngx_chat_password_dummy,
                                         pt->password, len)
                == 0)
            {
                ngx_log_error(NGX_LOG_ALERT, log, 0,
                              "chat: a password matched the dummy hash");
            }

            pt->result = NGX_DECLINED;

        } else {
            pt->result = crypto_pwhash_str_verify(hash, pt->password, len)
                         == 0 ? NGX_OK : NGX_DECLINED;
        }
    }

    sodium_memzero(pt->password, sizeof(pt->password));
}


static void
ngx_chat_password_done(ngx_event_t *ev)
{
    ngx_str_t                  hash;
    ngx_queue_t               *q;
    ngx_chat_password_task_t  *pt = ev->data, *next;

    ngx_chat_password_running--;

    /* the next one in line; one whose post fails is told at once */
    while (!ngx_queue_empty(&ngx_chat_password_queue)) {
        q = ngx_queue_head(&ngx_chat_password_queue);
        ngx_queue_remove(q);
        ngx_chat_password_waiting--;

        next = ngx_queue_data(q, ngx_chat_password_task_t, queue);
        next->waiting = 0;

        if (ngx_chat_password_post(next) == NGX_OK) {
            break;
        }

        next->handler(NGX_ERROR, NULL, next->data);
        ngx_chat_password_free(next);
    }

    if (!pt->cancelled) {
        hash.data = (u_char *) pt->hash;
        hash.len = pt->verify ? 0 : ngx_strlen(pt->hash);

        pt->handler(pt->result, &hash, pt->data);
    }

    ngx_chat_password_free(pt);
}
