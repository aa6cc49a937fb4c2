
/*
 * Copyright (C) ngx_chat authors
 *
 * A pool of non-blocking libpq connections per nginx worker.  Each
 * connection is a small state machine (connecting, ready, busy, waiting
 * to reconnect) driven by nginx events; every query has a deadline that
 * covers both its time in the queue and its run.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_chat_pg.h"
#include "ngx_chat_counters.h"


typedef enum {
    NGX_CHAT_PG_DOWN = 0,           /* waiting to (re)connect */
    NGX_CHAT_PG_CONNECTING,
    NGX_CHAT_PG_READY,
    NGX_CHAT_PG_BUSY
} ngx_chat_pg_state_e;


typedef struct {
    ngx_chat_pg_pool_t        *pool;
    PGconn                    *pg;
    ngx_connection_t          *conn;
    ngx_event_t                timer;      /* connect timeout, reconnect */
    ngx_msec_t                 backoff;
    ngx_chat_pg_state_e        state;
    ngx_chat_pg_query_t       *query;
    PGresult                  *result;
} ngx_chat_pg_conn_t;


struct ngx_chat_pg_pool_s {
    char                      *conninfo;
    ngx_msec_t                 timeout;
    ngx_log_t                  log;
    ngx_chat_pg_conn_t        *conns;
    ngx_uint_t                 nconns;
    ngx_queue_t                queue;
    ngx_uint_t                 nqueued;
    ngx_event_t                dispatch;
    u_char                     err[256];
    unsigned                   destroyed:1;
};


struct ngx_chat_pg_query_s {
    ngx_queue_t                queue;
    ngx_chat_pg_pool_t        *pool;
    ngx_chat_pg_conn_t        *conn;       /* running on, or NULL */
    const char                *sql;
    int                        nparams;
    char                     **values;
    int                       *lengths;
    ngx_chat_pg_handler_pt     handler;
    void                      *data;
    ngx_event_t                timer;
    uint64_t                   t0;         /* ngx_chat_counters.h */
    unsigned                   queued:1;
    unsigned                   cancelled:1;
};


static void ngx_chat_pg_connect(ngx_chat_pg_conn_t *pc);
static void ngx_chat_pg_connect_poll(ngx_chat_pg_conn_t *pc);
static ngx_int_t ngx_chat_pg_attach(ngx_chat_pg_conn_t *pc);
static void ngx_chat_pg_detach(ngx_chat_pg_conn_t *pc);
static void ngx_chat_pg_drop(ngx_chat_pg_conn_t *pc, ngx_chat_store_rc_e rc);
static void ngx_chat_pg_fail_queued(ngx_chat_pg_pool_t *pool);
static void ngx_chat_pg_timer_handler(ngx_event_t *ev);
static void ngx_chat_pg_read_handler(ngx_event_t *ev);
static void ngx_chat_pg_write_handler(ngx_event_t *ev);
static void ngx_chat_pg_flush(ngx_chat_pg_conn_t *pc);
static void ngx_chat_pg_dispatch(ngx_chat_pg_pool_t *pool);
static void ngx_chat_pg_dispatch_handler(ngx_event_t *ev);
static void ngx_chat_pg_send(ngx_chat_pg_conn_t *pc, ngx_chat_pg_query_t *q);
static void ngx_chat_pg_finish(ngx_chat_pg_query_t *q,
    ngx_chat_store_rc_e rc, PGresult *res);
static void ngx_chat_pg_query_timeout(ngx_event_t *ev);
static void ngx_chat_pg_notice(void *arg, const char *message);
static void ngx_chat_pg_log_failure(ngx_chat_pg_conn_t *pc, PGresult *res);
static char *ngx_chat_pg_oneline(ngx_chat_pg_pool_t *pool, const char *msg);


ngx_chat_pg_pool_t *
ngx_chat_pg_pool_create(ngx_str_t *conninfo, ngx_uint_t size,
    ngx_msec_t timeout, ngx_log_t *log)
{
    ngx_uint_t           i;
    ngx_chat_pg_conn_t  *pc;
    ngx_chat_pg_pool_t  *pool;

    pool = ngx_calloc(sizeof(ngx_chat_pg_pool_t), log);
    if (pool == NULL) {
        return NULL;
    }

    pool->conns = ngx_calloc(size * sizeof(ngx_chat_pg_conn_t), log);
    pool->conninfo = ngx_alloc(conninfo->len + 1, log);

    if (pool->conns == NULL || pool->conninfo == NULL) {
        ngx_free(pool->conns);
        ngx_free(pool->conninfo);
        ngx_free(pool);
        return NULL;
    }

    (void) ngx_cpystrn((u_char *) pool->conninfo, conninfo->data,
                       conninfo->len + 1);

    pool->nconns = size;
    pool->timeout = timeout;
    pool->log = *log;
    pool->log.action = "talking to PostgreSQL";
    ngx_queue_init(&pool->queue);

    pool->dispatch.handler = ngx_chat_pg_dispatch_handler;
    pool->dispatch.data = pool;
    pool->dispatch.log = &pool->log;

    for (i = 0; i < size; i++) {
        pc = &pool->conns[i];
        pc->pool = pool;
        pc->timer.handler = ngx_chat_pg_timer_handler;
        pc->timer.data = pc;
        pc->timer.log = &pool->log;
        pc->timer.cancelable = 1;

        ngx_chat_pg_connect(pc);
    }

    return pool;
}


void
ngx_chat_pg_pool_destroy(ngx_chat_pg_pool_t *pool)
{
    ngx_uint_t            i;
    ngx_queue_t          *qn;
    ngx_chat_pg_conn_t   *pc;
    ngx_chat_pg_query_t  *q;

    pool->destroyed = 1;

    if (pool->dispatch.posted) {
        ngx_delete_posted_event(&pool->dispatch);
    }

    while (!ngx_queue_empty(&pool->queue)) {
        qn = ngx_queue_head(&pool->queue);
        q = ngx_queue_data(qn, ngx_chat_pg_query_t, queue);
        q->cancelled = 1;
        ngx_chat_pg_finish(q, NGX_CHAT_STORE_DOWN, NULL);
    }

    for (i = 0; i < pool->nconns; i++) {
        pc = &pool->conns[i];

        if (pc->timer.timer_set) {
            ngx_del_timer(&pc->timer);
        }

        if (pc->query) {
            pc->query->cancelled = 1;
        }

        ngx_chat_pg_drop(pc, NGX_CHAT_STORE_DOWN);
    }

    ngx_free(pool->conns);
    ngx_free(pool->conninfo);
    ngx_free(pool);
}


static void
ngx_chat_pg_connect(ngx_chat_pg_conn_t *pc)
{
    const char          *values[3];
    ngx_chat_pg_pool_t  *pool = pc->pool;

    static const char   *keys[] = {
        "dbname", "fallback_application_name", NULL
    };

    /* the whole string is expanded as "dbname"; a name shows in pg_stat */
    values[0] = pool->conninfo;
    values[1] = "ngx_chat";
    values[2] = NULL;

    pc->pg = PQconnectStartParams(keys, values, 1);

    if (pc->pg == NULL) {
        ngx_log_error(NGX_LOG_ALERT, &pool->log, 0,
                      "chat: postgres: out of memory");
        ngx_chat_pg_drop(pc, NGX_CHAT_STORE_DOWN);
        return;
    }

    if (PQstatus(pc->pg) == CONNECTION_BAD
        || PQsetnonblocking(pc->pg, 1) != 0)
    {
        ngx_log_error(NGX_LOG_ERR, &pool->log, 0,
                      "chat: postgres: connect failed: %s",
                      ngx_chat_pg_oneline(pc->pool, PQerrorMessage(pc->pg)));
        ngx_chat_pg_drop(pc, NGX_CHAT_STORE_DOWN);
        return;
    }

    PQsetNoticeProcessor(pc->pg, ngx_chat_pg_notice, pool);

    pc->state = NGX_CHAT_PG_CONNECTING;

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    ngx_add_timer(&pc->timer, pool->timeout);

    /* as if PQconnectPoll() had asked for a writable socket */
    if (ngx_chat_pg_attach(pc) != NGX_OK
        || ngx_chat_store_watch(pc->conn->write, 1) != NGX_OK)
    {
        ngx_chat_pg_drop(pc, NGX_CHAT_STORE_DOWN);
    }
}


/*
 * libpq may close the socket and open another one while connecting (next
 * address, SSL fallback), possibly under the same number, so the socket is
 * detached before each PQconnectPoll() and attached again after it.
 */

static void
ngx_chat_pg_connect_poll(ngx_chat_pg_conn_t *pc)
{
    ngx_int_t                 rc;
    PostgresPollingStatusType status;

    ngx_chat_pg_detach(pc);

    status = PQconnectPoll(pc->pg);

    if (status == PGRES_POLLING_FAILED) {
        ngx_log_error(NGX_LOG_ERR, &pc->pool->log, 0,
                      "chat: postgres: connect failed: %s",
                      ngx_chat_pg_oneline(pc->pool, PQerrorMessage(pc->pg)));
        ngx_chat_pg_drop(pc, NGX_CHAT_STORE_DOWN);
        return;
    }

    if (ngx_chat_pg_attach(pc) != NGX_OK) {
        ngx_chat_pg_drop(pc, NGX_CHAT_STORE_DOWN);
        return;
    }

    switch (status) {

    case PGRES_POLLING_READING:
        rc = ngx_chat_store_watch(pc->conn->read, 1);
        break;

    case PGRES_POLLING_OK:
        if (pc->timer.timer_set) {
            ngx_del_timer(&pc->timer);
        }

        pc->state = NGX_CHAT_PG_READY;
        pc->backoff = 0;

        ngx_log_error(NGX_LOG_INFO, &pc->pool->log, 0,
                      "chat: postgres: connected, server %d",
                      PQserverVersion(pc->pg));

        /* read stays watched while idle, to notice a closed connection */
        rc = ngx_chat_store_watch(pc->conn->read, 1);

        if (rc == NGX_OK) {
            ngx_chat_pg_dispatch(pc->pool);
            return;
        }

        break;

    default: /* PGRES_POLLING_WRITING */
        rc = ngx_chat_store_watch(pc->conn->write, 1);
        break;
    }

    if (rc != NGX_OK) {
        ngx_chat_pg_drop(pc, NGX_CHAT_STORE_DOWN);
    }
}


static ngx_int_t
ngx_chat_pg_attach(ngx_chat_pg_conn_t *pc)
{
    ngx_socket_t       fd;
    ngx_connection_t  *c;

    fd = PQsocket(pc->pg);
    if (fd == (ngx_socket_t) -1) {
        return NGX_ERROR;
    }

    c = ngx_get_connection(fd, &pc->pool->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->data = pc;
    c->log = &pc->pool->log;
    c->read->log = c->log;
    c->write->log = c->log;
    c->read->handler = ngx_chat_pg_read_handler;
    c->write->handler = ngx_chat_pg_write_handler;

    pc->conn = c;

    return NGX_OK;
}


static void
ngx_chat_pg_detach(ngx_chat_pg_conn_t *pc)
{
    if (pc->conn) {
        ngx_chat_store_free_connection(pc->conn);
        pc->conn = NULL;
    }
}


/* closes the connection, fails its query, and arranges a reconnect */

static void
ngx_chat_pg_drop(ngx_chat_pg_conn_t *pc, ngx_chat_store_rc_e rc)
{
    ngx_chat_pg_query_t  *q;

    /*
     * libpq closes its socket itself when it finds the connection lost
     * (PQconsumeInput); epoll forgot the descriptor with it, and deleting
     * its events would fail with EBADF
     */
    if (pc->conn && pc->pg && PQsocket(pc->pg) != pc->conn->fd) {
        pc->conn->read->active = 0;
        pc->conn->write->active = 0;
    }

    ngx_chat_pg_detach(pc);

    if (pc->result) {
        PQclear(pc->result);
        pc->result = NULL;
    }

    if (pc->pg) {
        PQfinish(pc->pg);
        pc->pg = NULL;
    }

    pc->state = NGX_CHAT_PG_DOWN;

    q = pc->query;
    pc->query = NULL;

    if (q) {
        ngx_chat_pg_finish(q, rc, NULL);
    }

    ngx_chat_pg_fail_queued(pc->pool);

    if (pc->pool->destroyed || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    pc->backoff = ngx_chat_store_backoff(pc->backoff);

    if (pc->timer.timer_set) {
        ngx_del_timer(&pc->timer);
    }

    ngx_add_timer(&pc->timer, pc->backoff);
}


/* with no connection up or on its way, nothing queued can be served */

static void
ngx_chat_pg_fail_queued(ngx_chat_pg_pool_t *pool)
{
    ngx_uint_t            i;
    ngx_queue_t          *qn;
    ngx_chat_pg_query_t  *q;

    for (i = 0; i < pool->nconns; i++) {
        if (pool->conns[i].state != NGX_CHAT_PG_DOWN) {
            return;
        }
    }

    while (!ngx_queue_empty(&pool->queue)) {
        qn = ngx_queue_head(&pool->queue);
        q = ngx_queue_data(qn, ngx_chat_pg_query_t, queue);
        ngx_chat_pg_finish(q, NGX_CHAT_STORE_DOWN, NULL);
    }
}


static void
ngx_chat_pg_timer_handler(ngx_event_t *ev)
{
    ngx_chat_pg_conn_t  *pc = ev->data;

    if (pc->pool->destroyed || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    switch (pc->state) {

    case NGX_CHAT_PG_DOWN:
        ngx_chat_pg_connect(pc);
        break;

    case NGX_CHAT_PG_CONNECTING:
        ngx_log_error(NGX_LOG_ERR, &pc->pool->log, 0,
                      "chat: postgres: connect timed out after %M ms",
                      pc->pool->timeout);
        ngx_chat_pg_drop(pc, NGX_CHAT_STORE_DOWN);
        break;

    default:
        break;
    }
}


static void
ngx_chat_pg_read_handler(ngx_event_t *ev)
{
    ngx_connection_t    *c = ev->data;
    PGresult            *res;
    PGnotify            *notify;
    ngx_chat_pg_conn_t  *pc = c->data;
    ngx_chat_pg_query_t *q;

    if (pc->state == NGX_CHAT_PG_CONNECTING) {
        ngx_chat_pg_connect_poll(pc);
        return;
    }

    if (PQconsumeInput(pc->pg) == 0) {
        ngx_log_error(NGX_LOG_ERR, &pc->pool->log, 0,
                      "chat: postgres: connection lost: %s",
                      ngx_chat_pg_oneline(pc->pool, PQerrorMessage(pc->pg)));
        ngx_chat_pg_drop(pc, NGX_CHAT_STORE_DOWN);
        return;
    }

    while ((notify = PQnotifies(pc->pg)) != NULL) {
        PQfreemem(notify);
    }

    if (pc->state != NGX_CHAT_PG_BUSY) {
        if (PQstatus(pc->pg) == CONNECTION_BAD) {
            ngx_log_error(NGX_LOG_ERR, &pc->pool->log, 0,
                          "chat: postgres: connection closed: %s",
                          ngx_chat_pg_oneline(pc->pool,
                                              PQerrorMessage(pc->pg)));
            ngx_chat_pg_drop(pc, NGX_CHAT_STORE_DOWN);
        }

        return;
    }

    while (!PQisBusy(pc->pg)) {
        res = PQgetResult(pc->pg);

        if (res == NULL) {
            /* the query is complete and the connection free again */
            q = pc->query;
            res = pc->result;
            pc->query = NULL;
            pc->result = NULL;
            pc->state = NGX_CHAT_PG_READY;

            switch (PQresultStatus(res)) {
            case PGRES_COMMAND_OK:
            case PGRES_TUPLES_OK:
            case PGRES_SINGLE_TUPLE:
                ngx_chat_pg_finish(q, NGX_CHAT_STORE_OK, res);
                break;

            default:
                ngx_chat_pg_log_failure(pc, res);
                ngx_chat_pg_finish(q, NGX_CHAT_STORE_FAILED, res);
                break;
            }

            if (res) {
                PQclear(res);
            }

            ngx_chat_pg_dispatch(pc->pool);
            return;
        }

        /* keep the first error, else the last result */
        if (pc->result == NULL
            || PQresultStatus(pc->result) == PGRES_COMMAND_OK
            || PQresultStatus(pc->result) == PGRES_TUPLES_OK)
        {
            if (pc->result) {
                PQclear(pc->result);
            }

            pc->result = res;

        } else {
            PQclear(res);
        }
    }
}


static void
ngx_chat_pg_write_handler(ngx_event_t *ev)
{
    ngx_connection_t    *c = ev->data;
    ngx_chat_pg_conn_t  *pc = c->data;

    if (pc->state == NGX_CHAT_PG_CONNECTING) {
        ngx_chat_pg_connect_poll(pc);
        return;
    }

    ngx_chat_pg_flush(pc);
}


static void
ngx_chat_pg_flush(ngx_chat_pg_conn_t *pc)
{
    int  rc;

    rc = PQflush(pc->pg);

    if (rc < 0) {
        ngx_log_error(NGX_LOG_ERR, &pc->pool->log, 0,
                      "chat: postgres: send failed: %s",
                      ngx_chat_pg_oneline(pc->pool, PQerrorMessage(pc->pg)));
        ngx_chat_pg_drop(pc, NGX_CHAT_STORE_DOWN);
        return;
    }

    /* 1: libpq still holds data, wait until the socket is writable */
    if (ngx_chat_store_watch(pc->conn->write, rc == 1) != NGX_OK) {
        ngx_chat_pg_drop(pc, NGX_CHAT_STORE_DOWN);
    }
}


static void
ngx_chat_pg_dispatch(ngx_chat_pg_pool_t *pool)
{
    ngx_uint_t            i;
    ngx_queue_t          *qn;
    ngx_chat_pg_conn_t   *pc;
    ngx_chat_pg_query_t  *q;

    for (i = 0; i < pool->nconns && !ngx_queue_empty(&pool->queue); i++) {
        pc = &pool->conns[i];

        if (pc->state != NGX_CHAT_PG_READY) {
            continue;
        }

        qn = ngx_queue_head(&pool->queue);
        ngx_queue_remove(qn);
        pool->nqueued--;

        q = ngx_queue_data(qn, ngx_chat_pg_query_t, queue);
        q->queued = 0;

        ngx_chat_pg_send(pc, q);
    }
}


static void
ngx_chat_pg_dispatch_handler(ngx_event_t *ev)
{
    ngx_chat_pg_dispatch(ev->data);
}


static void
ngx_chat_pg_send(ngx_chat_pg_conn_t *pc, ngx_chat_pg_query_t *q)
{
    pc->query = q;
    pc->state = NGX_CHAT_PG_BUSY;
    q->conn = pc;

    if (PQsendQueryParams(pc->pg, q->sql, q->nparams, NULL,
                          (const char *const *) q->values, q->lengths,
                          NULL, 0)
        == 0)
    {
        ngx_log_error(NGX_LOG_ERR, &pc->pool->log, 0,
                      "chat: postgres: send failed: %s",
                      ngx_chat_pg_oneline(pc->pool, PQerrorMessage(pc->pg)));
        ngx_chat_pg_drop(pc, NGX_CHAT_STORE_DOWN);
        return;
    }

    ngx_chat_pg_flush(pc);
}


ngx_chat_pg_query_t *
ngx_chat_pg_query(ngx_chat_pg_pool_t *pool, const char *sql,
    ngx_uint_t nparams, const ngx_str_t *params,
    ngx_chat_pg_handler_pt handler, void *data)
{
    size_t                size;
    u_char               *p;
    ngx_uint_t            i, alive;
    ngx_chat_pg_query_t  *q;

    alive = 0;

    for (i = 0; i < pool->nconns; i++) {
        if (pool->conns[i].state != NGX_CHAT_PG_DOWN) {
            alive = 1;
            break;
        }
    }

    if (!alive) {
        return NULL;
    }

    if (pool->nqueued >= NGX_CHAT_PG_QUEUE_MAX) {
        ngx_log_error(NGX_LOG_ERR, &pool->log, 0,
                      "chat: postgres: %ui queries waiting, refusing more",
                      pool->nqueued);
        return NULL;
    }

    size = sizeof(ngx_chat_pg_query_t)
           + nparams * (sizeof(char *) + sizeof(int));

    for (i = 0; i < nparams; i++) {
        size += params[i].len + 1;
    }

    q = ngx_calloc(size, &pool->log);
    if (q == NULL) {
        return NULL;
    }

    q->pool = pool;
    q->t0 = ngx_chat_metrics_now();
    q->sql = sql;
    q->nparams = (int) nparams;
    q->handler = handler;
    q->data = data;

    /* values, lengths and the bytes of the parameters follow the query */
    q->values = (char **) (q + 1);
    q->lengths = (int *) (q->values + nparams);
    p = (u_char *) (q->lengths + nparams);

    for (i = 0; i < nparams; i++) {
        if (params[i].data == NULL) {
            q->values[i] = NULL;
            continue;
        }

        q->values[i] = (char *) p;
        q->lengths[i] = (int) params[i].len;
        p = ngx_cpymem(p, params[i].data, params[i].len);
        *p++ = '\0';
    }

    q->timer.handler = ngx_chat_pg_query_timeout;
    q->timer.data = q;
    q->timer.log = &pool->log;
    /* not cancelable: a graceful shutdown waits for the answer */
    q->timer.cancelable = 0;
    ngx_add_timer(&q->timer, pool->timeout);

    q->queued = 1;
    ngx_queue_insert_tail(&pool->queue, &q->queue);
    pool->nqueued++;

    /* handlers never run inside the call that started the query */
    if (!pool->dispatch.posted) {
        ngx_post_event(&pool->dispatch, &ngx_posted_events);
    }

    return q;
}


void
ngx_chat_pg_cancel(ngx_chat_pg_query_t *q)
{
    if (q->queued) {
        q->cancelled = 1;
        ngx_chat_pg_finish(q, NGX_CHAT_STORE_DOWN, NULL);
        return;
    }

    /* running: the result still arrives, then the query is freed */
    q->cancelled = 1;
}


static void
ngx_chat_pg_finish(ngx_chat_pg_query_t *q, ngx_chat_store_rc_e rc,
    PGresult *res)
{
    if (q->queued) {
        ngx_queue_remove(&q->queue);
        q->pool->nqueued--;
        q->queued = 0;
    }

    if (q->timer.timer_set) {
        ngx_del_timer(&q->timer);
    }

    ngx_chat_metrics_call(NGX_CHAT_H_PG, q->t0, rc != NGX_CHAT_STORE_OK);

    if (!q->cancelled) {
        q->handler(rc, res, q->data);
    }

    ngx_free(q);
}


static void
ngx_chat_pg_query_timeout(ngx_event_t *ev)
{
    ngx_chat_pg_query_t  *q = ev->data;
    ngx_chat_pg_conn_t   *pc;

    ngx_log_error(NGX_LOG_ERR, &q->pool->log, 0,
                  "chat: postgres: query timed out after %M ms%s",
                  q->pool->timeout,
                  q->queued ? " waiting for a connection" : "");

    if (q->queued) {
        ngx_chat_pg_finish(q, NGX_CHAT_STORE_TIMEOUT, NULL);
        return;
    }

    /*
     * A running query cannot be abandoned without abandoning its
     * connection: PQcancel() would block on a new connection.
     */
    pc = q->conn;
    ngx_chat_pg_drop(pc, NGX_CHAT_STORE_TIMEOUT);
}


static void
ngx_chat_pg_notice(void *arg, const char *message)
{
    ngx_chat_pg_pool_t  *pool = arg;

    ngx_log_error(NGX_LOG_INFO, &pool->log, 0,
                  "chat: postgres: %s", message);
}


/* libpq's messages span lines; an error log line must not */

static char *
ngx_chat_pg_oneline(ngx_chat_pg_pool_t *pool, const char *msg)
{
    u_char  *p, *last, *buf;

    buf = pool->err;
    p = ngx_cpystrn(buf, (u_char *) msg, sizeof(pool->err));
    last = p;

    for (p = buf; p < last; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t') {
            *p = ' ';
        }
    }

    while (last > buf && last[-1] == ' ') {
        *--last = '\0';
    }

    return (char *) buf;
}


/*
 * Only the primary message and the SQLSTATE: the DETAIL of a failed
 * constraint quotes the row, which may hold keys or tokens.  Data and
 * constraint errors (classes 22, 23) come from client input: info.
 */

static void
ngx_chat_pg_log_failure(ngx_chat_pg_conn_t *pc, PGresult *res)
{
    char        *state, *primary;
    ngx_uint_t   level;

    state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

    level = (state && (ngx_strncmp(state, "22", 2) == 0
                       || ngx_strncmp(state, "23", 2) == 0))
            ? NGX_LOG_INFO : NGX_LOG_ERR;

    ngx_log_error(level, &pc->pool->log, 0,
                  "chat: postgres: query failed: %s (SQLSTATE %s)",
                  ngx_chat_pg_oneline(pc->pool, primary ? primary
                                      : PQerrorMessage(pc->pg)),
                  state ? state : "none");
}


int
ngx_chat_pg_rows_of(const uint64_t *keys, int rows, uint64_t key, int *n)
{
    int  lo, hi, mid, end;

    lo = 0;
    hi = rows;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        if (keys[mid] < key) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    for (end = lo; end < rows && keys[end] == key; end++) {
        /* void */
    }

    *n = end - lo;

    return lo;
}
