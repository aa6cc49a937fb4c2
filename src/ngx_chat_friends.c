
/*
 * Copyright (C) ngx_chat authors
 *
 * The friends and the groups of connecting users, one PostgreSQL query
 * of each per event-loop round: a reconnect storm of thousands of
 * connections reads its friend lists (presence's open,
 * ngx_chat_presence.c) and group lists (ngx_chat_gsync.c) in a few
 * queries instead of one query each.  The rows come ordered by user; each
 * asker gets its own user's rows.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_chat.h"
#include "ngx_chat_friends.h"


#define NGX_CHAT_FRIENDS_SQL                                                 \
    "SELECT f.user_id, f.friend_id, "                                       \
    "floor(extract(epoch FROM p.last_seen) * 1000)::bigint "                \
    "FROM friends f LEFT JOIN presence p ON p.user_id = f.friend_id "       \
    "WHERE f.user_id = ANY($1::bigint[]) AND f.status = 'accepted' "        \
    "ORDER BY f.user_id, f.friend_id"

#define NGX_CHAT_GROUPS_SQL                                                  \
    "SELECT m.user_id, m.group_id, "                                        \
    "floor(extract(epoch FROM m.joined_at) * 1000)::bigint "                \
    "FROM group_members m WHERE m.user_id = ANY($1::bigint[]) "             \
    "ORDER BY m.user_id, m.group_id"


typedef struct {
    uint64_t                   user_id;
    ngx_chat_friends_pt        handler;
    void                      *data;
} ngx_chat_friends_ask_t;


/* the askers of one query */
typedef struct {
    ngx_uint_t                 n;
    ngx_chat_friends_ask_t     asks[NGX_CHAT_FRIENDS_BATCH];
} ngx_chat_friends_batch_t;


/* one kind of lookup: its query, the batch gathering, its flush */
typedef struct {
    const char                *sql;
    ngx_chat_friends_batch_t  *next;
    ngx_event_t                event;
} ngx_chat_friends_kind_t;


static ngx_int_t ngx_chat_rows_get(ngx_chat_friends_kind_t *k,
    uint64_t user_id, ngx_chat_friends_pt handler, void *data);
static void ngx_chat_friends_flush_handler(ngx_event_t *ev);
static void ngx_chat_friends_flush(ngx_chat_friends_kind_t *k);
static void ngx_chat_friends_drop(ngx_chat_friends_kind_t *k);
static void ngx_chat_friends_reply(ngx_chat_store_rc_e rc, PGresult *res,
    void *data);
static void ngx_chat_friends_answer(ngx_chat_friends_batch_t *b,
    ngx_chat_store_rc_e rc, PGresult *res);


static ngx_chat_friends_kind_t  ngx_chat_friends_kind = {
    NGX_CHAT_FRIENDS_SQL, NULL, { 0 }
};

static ngx_chat_friends_kind_t  ngx_chat_groups_kind = {
    NGX_CHAT_GROUPS_SQL, NULL, { 0 }
};


ngx_int_t
ngx_chat_friends_get(uint64_t user_id, ngx_chat_friends_pt handler,
    void *data)
{
    return ngx_chat_rows_get(&ngx_chat_friends_kind, user_id, handler, data);
}


ngx_int_t
ngx_chat_groups_get(uint64_t user_id, ngx_chat_friends_pt handler,
    void *data)
{
    return ngx_chat_rows_get(&ngx_chat_groups_kind, user_id, handler, data);
}


static ngx_int_t
ngx_chat_rows_get(ngx_chat_friends_kind_t *k, uint64_t user_id,
    ngx_chat_friends_pt handler, void *data)
{
    ngx_chat_friends_ask_t    *a;
    ngx_chat_friends_batch_t  *b;
    ngx_chat_worker_t         *w = ngx_chat_worker;

    if (w == NULL || w->pg == NULL) {
        return NGX_ERROR;
    }

    if (k->next && k->next->n == NGX_CHAT_FRIENDS_BATCH) {
        ngx_chat_friends_flush(k);
    }

    b = k->next;

    if (b == NULL) {
        b = ngx_alloc(sizeof(ngx_chat_friends_batch_t), ngx_cycle->log);
        if (b == NULL) {
            return NGX_ERROR;
        }

        b->n = 0;
        k->next = b;
    }

    a = &b->asks[b->n++];
    a->user_id = user_id;
    a->handler = handler;
    a->data = data;

    if (!k->event.posted) {
        k->event.handler = ngx_chat_friends_flush_handler;
        k->event.data = k;
        k->event.log = ngx_cycle->log;
        ngx_post_event(&k->event, &ngx_posted_events);
    }

    return NGX_OK;
}


static void
ngx_chat_friends_flush_handler(ngx_event_t *ev)
{
    ngx_chat_friends_flush(ev->data);
}


static void
ngx_chat_friends_flush(ngx_chat_friends_kind_t *k)
{
    u_char                    *p;
    ngx_str_t                  param;
    ngx_uint_t                 i;
    ngx_chat_worker_t         *w = ngx_chat_worker;
    ngx_chat_friends_batch_t  *b = k->next;

    if (k->event.posted) {
        ngx_delete_posted_event(&k->event);
    }

    if (b == NULL) {
        return;
    }

    k->next = NULL;

    /* "{id,id,...}" */
    param.data = ngx_alloc(b->n * (NGX_INT64_LEN + 1) + 2, ngx_cycle->log);

    if (param.data == NULL || w == NULL || w->pg == NULL) {
        ngx_free(param.data);
        ngx_chat_friends_answer(b, NGX_CHAT_STORE_FAILED, NULL);
        return;
    }

    p = param.data;
    *p++ = '{';

    for (i = 0; i < b->n; i++) {
        p = ngx_sprintf(p, i ? ",%uL" : "%uL", b->asks[i].user_id);
    }

    *p++ = '}';
    param.len = p - param.data;

    if (ngx_chat_pg_query(w->pg, k->sql, 1, &param,
                          ngx_chat_friends_reply, b)
        == NULL)
    {
        ngx_chat_friends_answer(b, NGX_CHAT_STORE_DOWN, NULL);
    }

    ngx_free(param.data);
}


static void
ngx_chat_friends_reply(ngx_chat_store_rc_e rc, PGresult *res, void *data)
{
    ngx_chat_friends_answer(data, rc, rc == NGX_CHAT_STORE_OK ? res : NULL);
}


/* each asker its user's rows */

static void
ngx_chat_friends_answer(ngx_chat_friends_batch_t *b, ngx_chat_store_rc_e rc,
    PGresult *res)
{
    int                      rows, lo, n;
    int64_t                 *seen;
    uint64_t                *uids, *ids;
    ngx_uint_t               i;
    ngx_chat_friends_ask_t  *a;

    rows = res ? PQntuples(res) : 0;
    uids = NULL;
    ids = NULL;
    seen = NULL;

    if (rows > 0) {
        uids = ngx_alloc(rows * (2 * sizeof(uint64_t) + sizeof(int64_t)),
                         ngx_cycle->log);

        if (uids == NULL) {
            rc = NGX_CHAT_STORE_FAILED;
            rows = 0;

        } else {
            ids = uids + rows;
            seen = (int64_t *) (ids + rows);

            for (lo = 0; lo < rows; lo++) {
                uids[lo] = ngx_atoof((u_char *) PQgetvalue(res, lo, 0),
                                     PQgetlength(res, lo, 0));
                ids[lo] = ngx_atoof((u_char *) PQgetvalue(res, lo, 1),
                                    PQgetlength(res, lo, 1));
                seen[lo] = PQgetisnull(res, lo, 2)
                           ? -1
                           : ngx_atoof((u_char *) PQgetvalue(res, lo, 2),
                                       PQgetlength(res, lo, 2));
            }
        }
    }

    for (i = 0; i < b->n; i++) {
        a = &b->asks[i];

        if (rc != NGX_CHAT_STORE_OK) {
            a->handler(a->data, rc, 0, NULL, NULL);
            continue;
        }

        lo = ngx_chat_pg_rows_of(uids, rows, a->user_id, &n);

        a->handler(a->data, rc, n, n ? &ids[lo] : NULL,
                   n ? &seen[lo] : NULL);
    }

    ngx_free(uids);
    ngx_free(b);
}


void
ngx_chat_friends_exit(void)
{
    ngx_chat_friends_drop(&ngx_chat_friends_kind);
    ngx_chat_friends_drop(&ngx_chat_groups_kind);
}


static void
ngx_chat_friends_drop(ngx_chat_friends_kind_t *k)
{
    ngx_chat_friends_batch_t  *b = k->next;

    if (k->event.posted) {
        ngx_delete_posted_event(&k->event);
    }

    if (b) {
        k->next = NULL;
        ngx_chat_friends_answer(b, NGX_CHAT_STORE_DOWN, NULL);
    }
}
