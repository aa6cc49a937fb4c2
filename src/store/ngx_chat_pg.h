
/*
 * Copyright (C) ngx_chat authors
 */


#ifndef _NGX_CHAT_PG_H_INCLUDED_
#define _NGX_CHAT_PG_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <libpq-fe.h>

#include "ngx_chat_store.h"


/* queries waiting for a free connection, per worker */
#define NGX_CHAT_PG_QUEUE_MAX  4096


typedef struct ngx_chat_pg_pool_s   ngx_chat_pg_pool_t;
typedef struct ngx_chat_pg_query_s  ngx_chat_pg_query_t;

/*
 * Called exactly once per query unless it was cancelled.  res is set for
 * NGX_CHAT_STORE_OK and NGX_CHAT_STORE_FAILED and is valid only during the
 * call.
 */
typedef void (*ngx_chat_pg_handler_pt)(ngx_chat_store_rc_e rc,
    PGresult *res, void *data);


ngx_chat_pg_pool_t *ngx_chat_pg_pool_create(ngx_str_t *conninfo,
    ngx_uint_t size, ngx_msec_t timeout, ngx_log_t *log);
void ngx_chat_pg_pool_destroy(ngx_chat_pg_pool_t *pool);

/*
 * sql must outlive the query (a literal); params are copied, a param with
 * data == NULL is SQL NULL.  NULL when the pool is down or full: the
 * handler is not called.
 */
ngx_chat_pg_query_t *ngx_chat_pg_query(ngx_chat_pg_pool_t *pool,
    const char *sql, ngx_uint_t nparams, const ngx_str_t *params,
    ngx_chat_pg_handler_pt handler, void *data);
void ngx_chat_pg_cancel(ngx_chat_pg_query_t *q);

/*
 * For a query of many users' rows ordered by user (one query per round):
 * keys[0..rows) is that column, ascending; the first row of key, and in
 * *n how many rows it has (0: none)
 */
int ngx_chat_pg_rows_of(const uint64_t *keys, int rows, uint64_t key,
    int *n);


#endif /* _NGX_CHAT_PG_H_INCLUDED_ */
