
/*
 * Copyright (C) ngx_chat authors
 *
 * A connection's groups.  Once its inbox is read (ngx_chat_sync.c), the
 * connection reads its user's group list from PostgreSQL (one query per
 * round for all connections that ask, ngx_chat_friends.c) and, per
 * group, the group's log after what it has: after the member's delivered
 * position (chat:gpos:{g:G}) or the position this connection reached,
 * and nothing sent before the member joined (GSYNC).  Every group
 * message is in the log before it is published and the route is in
 * Redis before the log is read, so each one is read or published to the
 * connection, or both: live frames are held back until the reads are
 * done and then go out only when past the position read (per group).
 * With several Redis servers live frames may come out of log order
 * (each worker publishes its messages on the members' servers itself,
 * GPUB, and another worker's later message can get there first): a
 * frame below the highest position sent but past the position read goes
 * out too, unless the connection sent that message already.  A
 * subscription that comes back holds its connections' live frames from
 * then on (ngx_chat_gsync_hold()) until the group read its resync ends
 * with: what was published while it was down is only in the logs, and a
 * later frame sent first would move the connection's position (and, with
 * its receipt, the member's) past it.
 *
 * The last NGX_CHAT_GSYNC_RING group messages sent on the connection are
 * remembered, so that a receipt for one finds its group without asking
 * Redis (ngx_chat_receipt.c), and what the connection told of each is
 * not told twice.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"
#include "ngx_chat_group.h"
#include "ngx_chat_gsync.h"
#include "ngx_chat_friends.h"
#include "ngx_chat_lua.h"
#include "ngx_chat_batch.h"
#include "ngx_chat_media.h"
#include "chat_id.h"


typedef struct {
    uint64_t                   gid;
    uint64_t                   last_n;      /* log position sent */
    uint64_t                   read_n;      /* the log read up to here */
    int64_t                    joined;      /* ms */
} ngx_chat_gmember_t;


typedef struct {
    uint64_t                   gid;
    uint64_t                   from;
    int64_t                    seq;
    unsigned                   delivered:1;   /* told by this connection */
    unsigned                   read:1;
    char                       id[CHAT_ID_LEN + 1];
} ngx_chat_gring_t;


typedef struct ngx_chat_gconn_s  ngx_chat_gconn_t;


/* one GSYNC item (or PostgreSQL read of the backlog) under way */
typedef struct {
    ngx_queue_t                queue;       /* in gc->reads */
    ngx_chat_gconn_t          *gc;          /* NULL: the connection went */
    uint64_t                   gid;
    ngx_chat_batch_item_t     *item;
    int64_t                    floor;       /* the log has seq >= floor */
    int64_t                    after;       /* backlog read up to */
    /* seq floor - 256 .. floor - 1 sent from PostgreSQL: the log may
     * have some of them too (in flight when the log began) */
    u_char                     sent[NGX_CHAT_GSYNC_WINDOW / 8];
    unsigned                   check:1;     /* first page: is it all? */
    unsigned                   pg:1;        /* reading PostgreSQL */
} ngx_chat_gread_t;


/* a live frame held back */
typedef struct {
    ngx_queue_t                queue;
    uint64_t                   gid;
    uint64_t                   n;
    uint64_t                   from;
    int64_t                    seq;
    size_t                     id_len;
    size_t                     len;
    char                       id[CHAT_ID_LEN + 1];
    /* the frame follows */
} ngx_chat_gheld_t;


struct ngx_chat_gconn_s {
    ngx_chat_ws_t             *ws;          /* NULL: closed, list pending */
    ngx_chat_gmember_t        *groups;
    ngx_uint_t                 ngroups;
    ngx_uint_t                 nalloc;
    ngx_queue_t                reads;
    ngx_uint_t                 nreads;
    ngx_queue_t                held;
    ngx_uint_t                 nheld;
    ngx_chat_gring_t          *ring;        /* NGX_CHAT_GSYNC_RING */
    ngx_uint_t                 ring_next;
    unsigned                   listing:1;   /* the group list is asked */
    unsigned                   again:1;     /* a sync came meanwhile */
    unsigned                   ready:1;     /* live frames go out */
    unsigned                   lost:1;      /* a held frame was dropped */
    unsigned                   rewind:1;    /* {"type":"sync"} came */
};


static ngx_chat_gconn_t *ngx_chat_gconn(ngx_chat_ws_t *ws);
static void ngx_chat_gsync_listed(void *data, ngx_chat_store_rc_e rc,
    ngx_uint_t n, const uint64_t *ids, const int64_t *joined);
static ngx_chat_gmember_t *ngx_chat_gmember(ngx_chat_gconn_t *gc,
    uint64_t gid, ngx_uint_t add);
static void ngx_chat_gsync_read(ngx_chat_gconn_t *gc,
    ngx_chat_gmember_t *gm, ngx_uint_t check);
static ngx_int_t ngx_chat_gsync_issue(ngx_chat_gread_t *rd,
    ngx_chat_gmember_t *gm);
static ngx_uint_t ngx_chat_gsync_seen(ngx_chat_gread_t *rd, int64_t seq,
    ngx_uint_t mark);
static void ngx_chat_gsync_backlog(ngx_chat_gread_t *rd);
static void ngx_chat_gsync_backlog_rows(ngx_chat_store_rc_e rc,
    PGresult *res, void *data);
static void ngx_chat_gsync_read_done(ngx_chat_gconn_t *gc);
static void ngx_chat_gsync_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data);
static void ngx_chat_gsync_done(ngx_chat_gconn_t *gc);
static ngx_uint_t ngx_chat_gsync_due(ngx_chat_gconn_t *gc,
    ngx_chat_gmember_t *gm, uint64_t n, const char *id, size_t id_len);
static void ngx_chat_gsync_send(ngx_chat_gconn_t *gc, uint64_t gid,
    const char *id, size_t id_len, uint64_t from, int64_t seq,
    const char *frame, size_t len);
static ngx_chat_gring_t *ngx_chat_gsync_ring_add(ngx_chat_gconn_t *gc,
    uint64_t gid, const char *id, size_t id_len, uint64_t from,
    int64_t seq);
static void ngx_chat_gconn_free(ngx_chat_gconn_t *gc);


static ngx_chat_gconn_t *
ngx_chat_gconn(ngx_chat_ws_t *ws)
{
    ngx_chat_gconn_t  *gc;

    if (ws->groups) {
        return ws->groups;
    }

    gc = ngx_calloc(sizeof(ngx_chat_gconn_t), ngx_cycle->log);
    if (gc == NULL) {
        return NULL;
    }

    gc->ws = ws;
    ngx_queue_init(&gc->reads);
    ngx_queue_init(&gc->held);
    ws->groups = gc;

    return gc;
}


void
ngx_chat_gsync_start(ngx_chat_ws_t *ws)
{
    ngx_chat_gconn_t  *gc;

    gc = ngx_chat_gconn(ws);
    if (gc == NULL) {
        return;
    }

    if (gc->listing || gc->nreads) {
        gc->again = 1;
        return;
    }

    gc->ready = 0;
    gc->listing = 1;

    if (ngx_chat_groups_get(ws->user_id, ngx_chat_gsync_listed, gc)
        != NGX_OK)
    {
        gc->listing = 0;
        ngx_log_error(NGX_LOG_ERR, ws->connection->log, 0,
                      "chat: the groups of user %uL were not read: no "
                      "PostgreSQL", ws->user_id);
        ngx_chat_gsync_done(gc);
    }
}


static void
ngx_chat_gsync_listed(void *data, ngx_chat_store_rc_e rc, ngx_uint_t n,
    const uint64_t *ids, const int64_t *joined)
{
    ngx_chat_gconn_t  *gc = data;

    ngx_uint_t           i, j;
    ngx_chat_gmember_t  *groups, *gm;

    gc->listing = 0;

    if (gc->ws == NULL) {
        ngx_chat_gconn_free(gc);
        return;
    }

    if (rc != NGX_CHAT_STORE_OK) {
        ngx_log_error(NGX_LOG_ERR, gc->ws->connection->log, 0,
                      "chat: the groups of user %uL were not read: "
                      "PostgreSQL did not answer", gc->ws->user_id);
        ngx_chat_gsync_done(gc);
        return;
    }

    /* the list as it is now, keeping what the connection has of each */
    groups = NULL;

    if (n) {
        groups = ngx_alloc(n * sizeof(ngx_chat_gmember_t), ngx_cycle->log);
        if (groups == NULL) {
            ngx_chat_gsync_done(gc);
            return;
        }
    }

    for (i = 0; i < n; i++) {
        groups[i].gid = ids[i];
        groups[i].joined = joined[i];
        groups[i].last_n = 0;
        groups[i].read_n = 0;

        for (j = 0; j < gc->ngroups && !gc->rewind; j++) {
            if (gc->groups[j].gid == ids[i]) {
                groups[i].last_n = gc->groups[j].last_n;
                groups[i].read_n = gc->groups[j].read_n;
                break;
            }
        }
    }

    ngx_free(gc->groups);
    gc->groups = groups;
    gc->ngroups = n;
    gc->nalloc = n;
    gc->rewind = 0;

    for (i = 0; i < gc->ngroups; i++) {
        gm = &gc->groups[i];
        ngx_chat_gsync_read(gc, gm, 1);
    }

    if (gc->nreads == 0) {
        ngx_chat_gsync_done(gc);
    }
}


static ngx_chat_gmember_t *
ngx_chat_gmember(ngx_chat_gconn_t *gc, uint64_t gid, ngx_uint_t add)
{
    ngx_uint_t           i;
    ngx_chat_gmember_t  *groups;

    for (i = 0; i < gc->ngroups; i++) {
        if (gc->groups[i].gid == gid) {
            return &gc->groups[i];
        }
    }

    if (!add) {
        return NULL;
    }

    /* added to a group while connected */
    if (gc->ngroups == gc->nalloc) {
        groups = ngx_alloc((gc->nalloc * 2 + 4) * sizeof(ngx_chat_gmember_t),
                           ngx_cycle->log);
        if (groups == NULL) {
            return NULL;
        }

        if (gc->ngroups) {
            ngx_memcpy(groups, gc->groups,
                       gc->ngroups * sizeof(ngx_chat_gmember_t));
        }

        ngx_free(gc->groups);
        gc->groups = groups;
        gc->nalloc = gc->nalloc * 2 + 4;
    }

    gc->groups[gc->ngroups].gid = gid;
    gc->groups[gc->ngroups].last_n = 0;
    gc->groups[gc->ngroups].read_n = 0;
    gc->groups[gc->ngroups].joined = 0;

    return &gc->groups[gc->ngroups++];
}


static void
ngx_chat_gsync_read(ngx_chat_gconn_t *gc, ngx_chat_gmember_t *gm,
    ngx_uint_t check)
{
    ngx_chat_gread_t  *rd;

    rd = ngx_calloc(sizeof(ngx_chat_gread_t), ngx_cycle->log);
    if (rd == NULL) {
        return;
    }

    rd->gc = gc;
    rd->gid = gm->gid;
    rd->check = check ? 1 : 0;

    ngx_queue_insert_tail(&gc->reads, &rd->queue);
    gc->nreads++;

    if (ngx_chat_gsync_issue(rd, gm) != NGX_OK) {
        ngx_queue_remove(&rd->queue);
        gc->nreads--;
        ngx_free(rd);
    }
}


/* GSYNC for a read: the next page of the member's log */

static ngx_int_t
ngx_chat_gsync_issue(ngx_chat_gread_t *rd, ngx_chat_gmember_t *gm)
{
    u_char             *p;
    ngx_str_t           keys[5], args[5];
    ngx_chat_redis_t   *rds;
    ngx_chat_gconn_t   *gc = rd->gc;
    u_char              buf[10 * NGX_CHAT_BATCH_STR];

    rds = ngx_chat_redis_for_group(gm->gid);

    p = buf;
    p = ngx_chat_group_key(&keys[0], p, "glog", gm->gid);
    p = ngx_chat_group_key(&keys[1], p, "glogq", gm->gid);
    p = ngx_chat_group_key(&keys[2], p, "gpos", gm->gid);
    p = ngx_chat_group_key(&keys[3], p, "glogf", gm->gid);
    p = ngx_chat_group_key(&keys[4], p, "gspos", gm->gid);
    p = ngx_chat_batch_str(&args[0], p, "%uL", gc->ws->user_id);
    p = ngx_chat_batch_str(&args[1], p, "%uL", gm->last_n);
    p = ngx_chat_batch_str(&args[2], p, "%L", gm->joined);
    p = ngx_chat_batch_str(&args[3], p, "%d", NGX_CHAT_GSYNC_PAGE);
    (void) ngx_chat_batch_str(&args[4], p, "%d", rd->check ? 1 : 0);

    rd->item = rds ? ngx_chat_batch_add(rds, NGX_CHAT_SCRIPT_GSYNC, 5, keys,
                                        5, args, ngx_chat_gsync_reply, rd)
                   : NULL;

    if (rd->item == NULL) {
        ngx_log_error(NGX_LOG_ERR, gc->ws->connection->log, 0,
                      "chat: the log of group %uL was not read for user "
                      "%uL: Redis is down", gm->gid, gc->ws->user_id);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * Was seq sent from PostgreSQL by this read (mark: it is now)?  Only the
 * NGX_CHAT_GSYNC_WINDOW seqs below the log's floor are remembered.
 */

static ngx_uint_t
ngx_chat_gsync_seen(ngx_chat_gread_t *rd, int64_t seq, ngx_uint_t mark)
{
    int64_t  i;

    i = seq - (rd->floor - NGX_CHAT_GSYNC_WINDOW);

    if (rd->floor == 0 || i < 0 || i >= NGX_CHAT_GSYNC_WINDOW) {
        return 0;
    }

    if (mark) {
        rd->sent[i / 8] |= (u_char) (1 << (i % 8));
        return 1;
    }

    return (rd->sent[i / 8] >> (i % 8)) & 1;
}


/*
 * {scanned, last, {n, id, entry, ...}, floor}: entries "<from> <seq>
 * <conv> <ts> <frame>", in seq order; or {-1, "0", {}, floor}: the log
 * starts after what the member has, PostgreSQL first
 */

static void
ngx_chat_gsync_reply(ngx_chat_store_rc_e rc, redisReply *reply, void *data)
{
    ngx_chat_gread_t  *rd = data;

    char                *end;
    size_t               i, spaces;
    int64_t              seq;
    uint64_t             n, top, from;
    const char          *p, *last;
    redisReply          *list, *e, *id;
    ngx_chat_gconn_t    *gc;
    ngx_chat_gmember_t  *gm;

    gc = rd->gc;
    rd->item = NULL;

    gm = ngx_chat_gmember(gc, rd->gid, 0);

    if (rc != NGX_CHAT_STORE_OK || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 4
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_STRING
        || reply->element[2]->type != REDIS_REPLY_ARRAY
        || reply->element[3]->type != REDIS_REPLY_STRING)
    {
        ngx_log_error(NGX_LOG_ERR, gc->ws->connection->log, 0,
                      "chat: the log of group %uL was not read for user "
                      "%uL: Redis did not answer", rd->gid,
                      gc->ws->user_id);
        goto next;
    }

    if (reply->element[0]->integer < 0 && gm) {
        /* older messages than the log has: PostgreSQL, then the log */
        rd->floor = ngx_atoof((u_char *) reply->element[3]->str,
                              reply->element[3]->len);
        ngx_chat_gsync_backlog(rd);
        return;
    }

    list = reply->element[2];
    top = gm ? gm->last_n : 0;

    for (i = 0; i + 2 < list->elements && gm && !gc->ws->done; i += 3) {
        e = list->element[i + 2];
        id = list->element[i + 1];

        if (list->element[i]->type != REDIS_REPLY_STRING
            || id->type != REDIS_REPLY_STRING
            || e->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        n = ngx_atoof((u_char *) list->element[i]->str,
                      list->element[i]->len);

        if (n > top) {
            top = n;
        }

        /* "<from> <seq> ...": the entry is ours, NUL-terminated */
        from = strtoull(e->str, &end, 10);
        seq = strtoll(end, NULL, 10);

        if (ngx_chat_gsync_seen(rd, seq, 0)) {
            /* sent from PostgreSQL already */
            continue;
        }

        /* the frame after "<from> <seq> <conv> <ts> " */
        last = e->str + e->len;
        spaces = 0;

        for (p = e->str; p < last; p++) {
            if (*p == ' ' && ++spaces == 4) {
                p++;
                ngx_chat_gsync_send(gc, rd->gid, id->str, id->len, from,
                                    seq, p, last - p);
                break;
            }
        }
    }

    if (gm && !gc->ws->done) {
        n = ngx_atoof((u_char *) reply->element[1]->str,
                      reply->element[1]->len);
        gm->last_n = ngx_max(top, n);
        gm->read_n = ngx_max(gm->read_n, n);

        if (reply->element[0]->integer >= NGX_CHAT_GSYNC_PAGE) {
            /* more: the next page */
            rd->check = 0;

            if (ngx_chat_gsync_issue(rd, gm) == NGX_OK) {
                return;
            }
        }
    }

next:

    ngx_queue_remove(&rd->queue);
    gc->nreads--;
    ngx_free(rd);

    ngx_chat_gsync_read_done(gc);
}


static void
ngx_chat_gsync_read_done(ngx_chat_gconn_t *gc)
{
    if (gc->nreads == 0 && !gc->listing && !gc->ws->done) {
        ngx_chat_gsync_done(gc);
    }
}


/*
 * The member's backlog from PostgreSQL (chat_group_backlog(): after its
 * delivered seq there, sent since it joined), a page at a time, up to
 * where the log starts; then the log without the check.  A message both
 * in a page and in the log may come twice (clients de-duplicate by id).
 */

static void
ngx_chat_gsync_backlog(ngx_chat_gread_t *rd)
{
    u_char              *p;
    ngx_str_t            params[4];
    ngx_chat_worker_t   *w = ngx_chat_worker;
    u_char               buf[4 * NGX_INT64_LEN];

    p = buf;
    params[0].data = p;
    p = ngx_sprintf(p, "%uL", rd->gc->ws->user_id);
    params[0].len = p - params[0].data;
    params[1].data = p;
    p = ngx_sprintf(p, "%uL", rd->gid);
    params[1].len = p - params[1].data;
    params[2].data = p;
    p = ngx_sprintf(p, "%L", rd->after);
    params[2].len = p - params[2].data;
    params[3].data = p;
    p = ngx_sprintf(p, "%d", NGX_CHAT_GSYNC_BACKLOG);
    params[3].len = p - params[3].data;

    rd->pg = 1;

    if (w == NULL || w->pg == NULL
        || ngx_chat_pg_query(w->pg, "SELECT seq, id, sender, frame "
                             "FROM chat_group_backlog($1, $2, $3, $4)", 4,
                             params, ngx_chat_gsync_backlog_rows, rd)
           == NULL)
    {
        ngx_chat_gsync_backlog_rows(NGX_CHAT_STORE_DOWN, NULL, rd);
    }
}


static void
ngx_chat_gsync_backlog_rows(ngx_chat_store_rc_e rc, PGresult *res,
    void *data)
{
    ngx_chat_gread_t  *rd = data;

    int                  i, rows;
    int64_t              seq;
    uint64_t             from;
    ngx_chat_gconn_t    *gc;
    ngx_chat_gmember_t  *gm;

    rd->pg = 0;
    gc = rd->gc;

    if (gc == NULL) {
        /* the connection went meanwhile */
        ngx_free(rd);
        return;
    }

    gm = ngx_chat_gmember(gc, rd->gid, 0);

    if (rc != NGX_CHAT_STORE_OK) {
        ngx_log_error(NGX_LOG_ERR, gc->ws->connection->log, 0,
                      "chat: the backlog of group %uL was not read for "
                      "user %uL: PostgreSQL did not answer; the log only",
                      rd->gid, gc->ws->user_id);
        rows = 0;

    } else {
        rows = PQntuples(res);
    }

    for (i = 0; i < rows && !gc->ws->done; i++) {
        seq = ngx_atoof((u_char *) PQgetvalue(res, i, 0),
                        PQgetlength(res, i, 0));

        if (seq >= rd->floor) {
            rows = 0;
            break;
        }

        rd->after = seq;
        (void) ngx_chat_gsync_seen(rd, seq, 1);
        from = ngx_atoof((u_char *) PQgetvalue(res, i, 2),
                         PQgetlength(res, i, 2));

        /* its own messages: live only, as in the log (GSYNC) */
        if (from == gc->ws->user_id) {
            continue;
        }

        ngx_chat_gsync_send(gc, rd->gid, PQgetvalue(res, i, 1),
                            PQgetlength(res, i, 1), from, seq,
                            PQgetvalue(res, i, 3), PQgetlength(res, i, 3));
    }

    if (rows == NGX_CHAT_GSYNC_BACKLOG && !gc->ws->done) {
        ngx_chat_gsync_backlog(rd);
        return;
    }

    /* then the log, from where the member is in it */
    rd->check = 0;

    if (gm && !gc->ws->done && ngx_chat_gsync_issue(rd, gm) == NGX_OK) {
        return;
    }

    ngx_queue_remove(&rd->queue);
    gc->nreads--;
    ngx_free(rd);

    ngx_chat_gsync_read_done(gc);
}


/*
 * The reads are done: the held frames past them go out.  When frames
 * were dropped, or a sync (a resubscription's) was asked meanwhile, the
 * logs are read again first: a held frame past what the connection has
 * is in its log, and the next read sends it; sent now, it would move the
 * connection's position past messages that the next read is for.
 */

static void
ngx_chat_gsync_done(ngx_chat_gconn_t *gc)
{
    ngx_uint_t           again;
    ngx_queue_t         *q;
    ngx_chat_gheld_t    *h;
    ngx_chat_gmember_t  *gm;

    again = (gc->lost || gc->again) && !gc->ws->done;

    if (!again) {
        gc->ready = 1;
    }

    while (!ngx_queue_empty(&gc->held)) {
        q = ngx_queue_head(&gc->held);
        ngx_queue_remove(q);
        gc->nheld--;
        h = ngx_queue_data(q, ngx_chat_gheld_t, queue);

        if (!gc->ws->done) {
            gm = ngx_chat_gmember(gc, h->gid, 1);

            if (again && h->from == gc->ws->user_id) {
                /* its own (another device's): never in a read */
                ngx_chat_gsync_send(gc, h->gid, h->id, h->id_len, h->from,
                                    h->seq, (char *) (h + 1), h->len);

            } else if (again && (gm == NULL || h->n > gm->last_n)) {
                /* the next read sends it */

            } else if (h->n == 0 || gm == NULL
                       || ngx_chat_gsync_due(gc, gm, h->n, h->id, h->id_len))
            {
                ngx_chat_gsync_send(gc, h->gid, h->id, h->id_len, h->from,
                                    h->seq, (char *) (h + 1), h->len);
            }
        }

        ngx_free(h);
    }

    if (again) {
        gc->lost = 0;
        gc->again = 0;
        ngx_chat_gsync_start(gc->ws);
    }
}


void
ngx_chat_gsync_live(ngx_chat_ws_t *ws, uint64_t gid, uint64_t n,
    const char *id, size_t id_len, uint64_t from, int64_t seq,
    const char *frame, size_t len)
{
    ngx_chat_gconn_t    *gc;
    ngx_chat_gheld_t    *h;
    ngx_chat_gmember_t  *gm;

    if (n == 0) {
        /* not logged (typing): now or never */
        (void) ngx_chat_ws_send_text(ws, (u_char *) frame, len);
        return;
    }

    gc = ngx_chat_gconn(ws);
    if (gc == NULL) {
        return;
    }

    if (!gc->ready) {
        if (gc->nheld >= NGX_CHAT_GSYNC_HELD_MAX || id_len > CHAT_ID_LEN) {
            gc->lost = 1;
            return;
        }

        h = ngx_alloc(sizeof(ngx_chat_gheld_t) + len, ngx_cycle->log);
        if (h == NULL) {
            gc->lost = 1;
            return;
        }

        h->gid = gid;
        h->n = n;
        h->from = from;
        h->seq = seq;
        h->id_len = id_len;
        h->len = len;
        ngx_memcpy(h->id, id, id_len);
        h->id[id_len] = '\0';
        ngx_memcpy(h + 1, frame, len);
        ngx_queue_insert_tail(&gc->held, &h->queue);
        gc->nheld++;
        return;
    }

    gm = ngx_chat_gmember(gc, gid, 1);

    if (gm && !ngx_chat_gsync_due(gc, gm, n, id, id_len)) {
        return;
    }

    ngx_chat_gsync_send(gc, gid, id, id_len, from, seq, frame, len);
}


/*
 * A live frame at log position n goes out: past what the connection
 * sent; or below that (another worker's message that came late) but past
 * what was read from the log, unless it went out already
 */

static ngx_uint_t
ngx_chat_gsync_due(ngx_chat_gconn_t *gc, ngx_chat_gmember_t *gm, uint64_t n,
    const char *id, size_t id_len)
{
    ngx_uint_t  i;

    if (n > gm->last_n) {
        gm->last_n = n;
        return 1;
    }

    if (n <= gm->read_n) {
        return 0;
    }

    if (gc->ring == NULL || id_len > CHAT_ID_LEN) {
        return 1;
    }

    for (i = 0; i < NGX_CHAT_GSYNC_RING; i++) {
        if (gc->ring[i].gid == gm->gid
            && ngx_strncmp(gc->ring[i].id, id, id_len) == 0
            && gc->ring[i].id[id_len] == '\0')
        {
            return 0;
        }
    }

    return 1;
}


static void
ngx_chat_gsync_send(ngx_chat_gconn_t *gc, uint64_t gid, const char *id,
    size_t id_len, uint64_t from, int64_t seq, const char *frame, size_t len)
{
    (void) ngx_chat_gsync_ring_add(gc, gid, id, id_len, from, seq);
    (void) ngx_chat_media_send(gc->ws, (u_char *) frame, len);
}


static ngx_chat_gring_t *
ngx_chat_gsync_ring_add(ngx_chat_gconn_t *gc, uint64_t gid, const char *id,
    size_t id_len, uint64_t from, int64_t seq)
{
    ngx_chat_gring_t  *r;

    if (gc->ring == NULL) {
        gc->ring = ngx_calloc(NGX_CHAT_GSYNC_RING * sizeof(ngx_chat_gring_t),
                              ngx_cycle->log);
    }

    if (gc->ring == NULL || id_len > CHAT_ID_LEN) {
        return NULL;
    }

    r = &gc->ring[gc->ring_next++ % NGX_CHAT_GSYNC_RING];
    r->gid = gid;
    r->from = from;
    r->seq = seq;
    r->delivered = 0;
    r->read = 0;
    ngx_memcpy(r->id, id, id_len);
    r->id[id_len] = '\0';

    return r;
}


void
ngx_chat_gsync_remember(ngx_chat_ws_t *ws, const char *id, uint64_t gid,
    uint64_t from, int64_t seq, ngx_uint_t read)
{
    ngx_chat_gconn_t  *gc;
    ngx_chat_gring_t  *r;

    gc = ngx_chat_gconn(ws);
    if (gc == NULL) {
        return;
    }

    r = ngx_chat_gsync_ring_add(gc, gid, id, ngx_strlen(id), from, seq);

    if (r) {
        r->delivered = 1;
        r->read = read ? 1 : 0;
    }
}


ngx_int_t
ngx_chat_gsync_receipt(ngx_chat_ws_t *ws, const char *id, ngx_uint_t read,
    uint64_t *gid, uint64_t *from, int64_t *seq)
{
    ngx_uint_t         i;
    ngx_chat_gring_t  *r;
    ngx_chat_gconn_t  *gc = ws->groups;

    if (gc == NULL || gc->ring == NULL) {
        return NGX_DECLINED;
    }

    for (i = 0; i < NGX_CHAT_GSYNC_RING; i++) {
        r = &gc->ring[i];

        if (r->gid == 0 || ngx_strcmp(r->id, id) != 0) {
            continue;
        }

        if (r->read || (r->delivered && !read)) {
            return NGX_DONE;
        }

        r->delivered = 1;
        r->read = read ? 1 : 0;
        *gid = r->gid;
        *from = r->from;
        *seq = r->seq;

        return NGX_OK;
    }

    return NGX_DECLINED;
}


void
ngx_chat_gsync_hold(ngx_chat_ws_t *ws)
{
    ngx_chat_gconn_t  *gc;

    gc = ngx_chat_gconn(ws);
    if (gc) {
        gc->ready = 0;
    }
}


void
ngx_chat_gsync_rewind(ngx_chat_ws_t *ws)
{
    ngx_chat_gconn_t  *gc = ws->groups;

    if (gc) {
        gc->rewind = 1;
    }
}


void
ngx_chat_gsync_close(ngx_chat_ws_t *ws)
{
    ngx_queue_t       *q;
    ngx_chat_gread_t  *rd;
    ngx_chat_gconn_t  *gc = ws->groups;

    if (gc == NULL) {
        return;
    }

    ws->groups = NULL;

    while (!ngx_queue_empty(&gc->reads)) {
        q = ngx_queue_head(&gc->reads);
        ngx_queue_remove(q);
        rd = ngx_queue_data(q, ngx_chat_gread_t, queue);

        if (rd->pg) {
            /* freed when PostgreSQL answers */
            rd->gc = NULL;
            continue;
        }

        ngx_chat_batch_cancel(rd->item);
        ngx_free(rd);
    }

    gc->nreads = 0;

    if (gc->listing) {
        /* freed when the list comes */
        gc->ws = NULL;
        return;
    }

    ngx_chat_gconn_free(gc);
}


static void
ngx_chat_gconn_free(ngx_chat_gconn_t *gc)
{
    ngx_queue_t  *q;

    while (!ngx_queue_empty(&gc->held)) {
        q = ngx_queue_head(&gc->held);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_chat_gheld_t, queue));
    }

    ngx_free(gc->groups);
    ngx_free(gc->ring);
    ngx_free(gc);
}
