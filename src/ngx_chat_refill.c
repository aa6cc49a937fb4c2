
/*
 * Copyright (C) ngx_chat authors
 *
 * Store-and-forward from PostgreSQL, for when Redis does not hold a
 * user's inbox complete: Redis lost its data (chat:inboxok:{user} went
 * with it), the inbox overflowed (DELIVER drops the marker when it trims)
 * or it expired.  The first SYNC of a connection finds the marker missing
 * and does nothing; the connection then reads the user's undelivered
 * messages from PostgreSQL (chat_undelivered(): deliveries still 'sent',
 * oldest first), puts those that the inbox lacks into it, below what is
 * there (REFILL, in chunks, newest chunk first), and syncs again.  From
 * there on the inbox is read as always: receipts, ordering and the race
 * with live deliveries work the same for a refilled message.
 *
 * What is acknowledged but not yet in PostgreSQL (the persistence worker's
 * lag) cannot be refilled: the marker is set only once Redis has held its
 * data for NGX_CHAT_REFILL_GRACE, so that a connection within that time
 * after a loss refills again at its next sync.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_chat.h"
#include "ngx_chat_ws.h"
#include "ngx_chat_route.h"
#include "ngx_chat_sync.h"
#include "ngx_chat_deliver.h"
#include "ngx_chat_lua.h"
#include "chat_frame.h"


/* the users of one round, their rows in order, the user last */
#define NGX_CHAT_REFILL_SQL                                                  \
    "SELECT x.id, x.conv, x.seq, x.sender, x.recipient, x.group_id, "       \
    "x.body, x.media, x.e2e, x.client_id, x.ts, u.uid "                     \
    "FROM unnest($1::bigint[]) AS u(uid) "                                  \
    "CROSS JOIN LATERAL chat_undelivered(u.uid, $2) WITH ORDINALITY "       \
    "AS x(id, conv, seq, sender, recipient, group_id, body, media, e2e, "   \
    "client_id, ts, n) "                                                    \
    "ORDER BY u.uid, x.n"

/* users whose undelivered messages one query reads at most */
#define NGX_CHAT_REFILL_BATCH     64


typedef struct {
    char                      *id;
    char                      *head;        /* "<from> <seq> <conv>" */
    char                      *frame;
} ngx_chat_refill_entry_t;


typedef struct {
    ngx_chat_op_t              op;          /* in ws->ops */
    uint64_t                   user_id;
    ngx_uint_t                 n;
    ngx_uint_t                 next;        /* entries left, from the end */
    ngx_uint_t                 complete;    /* PostgreSQL gave them all */
    ngx_chat_refill_entry_t   *entries;
} ngx_chat_refill_t;


/* the refills of one round, read with one query */
typedef struct {
    ngx_uint_t                 n;
    ngx_chat_refill_t         *refills[NGX_CHAT_REFILL_BATCH];
} ngx_chat_refill_batch_t;


static void ngx_chat_refill_flush_handler(ngx_event_t *ev);
static void ngx_chat_refill_flush(void);
static void ngx_chat_refill_read(ngx_chat_store_rc_e rc, PGresult *res,
    void *data);
static void ngx_chat_refill_rows(ngx_chat_refill_t *rf,
    ngx_chat_store_rc_e rc, PGresult *res, int first, int n);
static ngx_int_t ngx_chat_refill_entry(ngx_chat_refill_entry_t *e,
    PGresult *res, int row);
static void ngx_chat_refill_chunk(ngx_chat_refill_t *rf);
static void ngx_chat_refill_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data);
static void ngx_chat_refill_done(ngx_chat_refill_t *rf, const char *failed);


static ngx_chat_refill_batch_t  *ngx_chat_refill_next;
static ngx_event_t               ngx_chat_refill_event;


void
ngx_chat_refill_start(ngx_chat_ws_t *ws)
{
    ngx_chat_refill_t        *rf;
    ngx_chat_worker_t        *w = ngx_chat_worker;
    ngx_chat_refill_batch_t  *b;

    rf = ngx_calloc(sizeof(ngx_chat_refill_t), ngx_cycle->log);
    if (rf == NULL) {
        ngx_chat_sync_resume(ws);
        return;
    }

    rf->op.ws = ws;
    rf->user_id = ws->user_id;
    ngx_queue_insert_tail(&ws->ops, &rf->op.queue);

    if (w == NULL || w->pg == NULL) {
        ngx_chat_refill_done(rf, "no PostgreSQL is configured");
        return;
    }

    /* the users of this round are read with one query */
    if (ngx_chat_refill_next
        && ngx_chat_refill_next->n == NGX_CHAT_REFILL_BATCH)
    {
        ngx_chat_refill_flush();
    }

    b = ngx_chat_refill_next;

    if (b == NULL) {
        b = ngx_alloc(sizeof(ngx_chat_refill_batch_t), ngx_cycle->log);
        if (b == NULL) {
            ngx_chat_refill_done(rf, "out of memory");
            return;
        }

        b->n = 0;
        ngx_chat_refill_next = b;
    }

    b->refills[b->n++] = rf;

    if (!ngx_chat_refill_event.posted) {
        ngx_chat_refill_event.handler = ngx_chat_refill_flush_handler;
        ngx_chat_refill_event.log = ngx_cycle->log;
        ngx_post_event(&ngx_chat_refill_event, &ngx_posted_events);
    }
}


static void
ngx_chat_refill_flush_handler(ngx_event_t *ev)
{
    ngx_chat_refill_flush();
}


static void
ngx_chat_refill_flush(void)
{
    u_char                   *p, *last, buf[NGX_INT64_LEN];
    ngx_str_t                 params[2];
    ngx_uint_t                i, j;
    ngx_chat_worker_t        *w = ngx_chat_worker;
    ngx_chat_refill_batch_t  *b = ngx_chat_refill_next;

    if (ngx_chat_refill_event.posted) {
        ngx_delete_posted_event(&ngx_chat_refill_event);
    }

    if (b == NULL) {
        return;
    }

    ngx_chat_refill_next = NULL;

    /* "{id,id,...}", each user once (two devices may connect together) */
    params[0].data = ngx_alloc(b->n * (NGX_INT64_LEN + 1) + 2,
                               ngx_cycle->log);

    if (params[0].data == NULL || w == NULL || w->pg == NULL) {
        ngx_free(params[0].data);
        ngx_chat_refill_read(NGX_CHAT_STORE_FAILED, NULL, b);
        return;
    }

    p = params[0].data;
    *p++ = '{';

    for (i = 0; i < b->n; i++) {
        for (j = 0; j < i; j++) {
            if (b->refills[j]->user_id == b->refills[i]->user_id) {
                break;
            }
        }

        if (j == i) {
            p = ngx_sprintf(p, (p - params[0].data > 1) ? ",%uL" : "%uL",
                            b->refills[i]->user_id);
        }
    }

    *p++ = '}';
    params[0].len = p - params[0].data;

    last = ngx_sprintf(buf, "%ui", (ngx_uint_t) NGX_CHAT_REFILL_MAX);
    params[1].data = buf;
    params[1].len = last - buf;

    if (ngx_chat_pg_query(w->pg, NGX_CHAT_REFILL_SQL, 2, params,
                          ngx_chat_refill_read, b)
        == NULL)
    {
        ngx_chat_refill_read(NGX_CHAT_STORE_DOWN, NULL, b);
    }

    ngx_free(params[0].data);
}


/* each refill its user's rows */

static void
ngx_chat_refill_read(ngx_chat_store_rc_e rc, PGresult *res, void *data)
{
    ngx_chat_refill_batch_t  *b = data;

    int                 rows, lo, n;
    uint64_t           *uids;
    ngx_uint_t          i;
    ngx_chat_refill_t  *rf;

    rows = 0;
    uids = NULL;

    if (rc == NGX_CHAT_STORE_OK && PQnfields(res) != 12) {
        rc = NGX_CHAT_STORE_FAILED;
    }

    if (rc == NGX_CHAT_STORE_OK && PQntuples(res) > 0) {
        rows = PQntuples(res);
        uids = ngx_alloc(rows * sizeof(uint64_t), ngx_cycle->log);

        if (uids == NULL) {
            rc = NGX_CHAT_STORE_FAILED;
            rows = 0;

        } else {
            for (lo = 0; lo < rows; lo++) {
                uids[lo] = ngx_atoof((u_char *) PQgetvalue(res, lo, 11),
                                     PQgetlength(res, lo, 11));
            }
        }
    }

    for (i = 0; i < b->n; i++) {
        rf = b->refills[i];

        lo = ngx_chat_pg_rows_of(uids, rows, rf->user_id, &n);

        ngx_chat_refill_rows(rf, rc, res, lo, n);
    }

    ngx_free(uids);
    ngx_free(b);
}


static void
ngx_chat_refill_rows(ngx_chat_refill_t *rf, ngx_chat_store_rc_e rc,
    PGresult *res, int first, int n)
{
    int  i;

    if (rf->op.ws == NULL) {
        ngx_chat_refill_done(rf, NULL);
        return;
    }

    if (rc != NGX_CHAT_STORE_OK) {
        ngx_chat_refill_done(rf, "PostgreSQL did not answer");
        return;
    }

    rf->complete = (n < NGX_CHAT_REFILL_MAX);

    if (n > 0) {
        rf->entries = ngx_calloc(n * sizeof(ngx_chat_refill_entry_t),
                                 ngx_cycle->log);
        if (rf->entries == NULL) {
            ngx_chat_refill_done(rf, "out of memory");
            return;
        }
    }

    for (i = 0; i < n; i++) {
        /* counted first: a half-made entry is freed with the others */
        if (ngx_chat_refill_entry(&rf->entries[rf->n++], res, first + i)
            != NGX_OK)
        {
            ngx_chat_refill_done(rf, "out of memory");
            return;
        }
    }

    rf->next = rf->n;

    ngx_chat_refill_chunk(rf);
}


/* a message row into its inbox entry, the frame as ngx_chat_send.c has it */

static ngx_int_t
ngx_chat_refill_entry(ngx_chat_refill_entry_t *e, PGresult *res, int row)
{
    char      *id, *conv;
    json_t    *msg;
    int64_t    seq, from;
    ngx_int_t  group;

#define ngx_chat_col(c)     PQgetvalue(res, row, c)
#define ngx_chat_int(c)                                                       \
    ngx_atoof((u_char *) PQgetvalue(res, row, c), PQgetlength(res, row, c))

    id = ngx_chat_col(0);
    conv = ngx_chat_col(1);
    seq = ngx_chat_int(2);
    from = ngx_chat_int(3);
    group = PQgetisnull(res, row, 4);

    /* the record as the history has it; the frame is chat_frame's */
    msg = json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:I}",
                    "id", id, "seq", (json_int_t) seq,
                    "from", (json_int_t) from,
                    group ? "group" : "to",
                    (json_int_t) ngx_chat_int(group ? 5 : 4),
                    "body", ngx_chat_col(6), "client_id", ngx_chat_col(9),
                    "ts", (json_int_t) ngx_chat_int(10));
    if (msg == NULL) {
        return NGX_ERROR;
    }

    if (!PQgetisnull(res, row, 7)) {
        (void) json_object_set_new(msg, "media",
                                   json_string(ngx_chat_col(7)));
    }

    /* as GET /v1/messages has it: false is not stored apart from absent */
    if (ngx_chat_col(8)[0] == 't') {
        (void) json_object_set_new(msg, "e2e", json_true());
    }

#undef ngx_chat_col
#undef ngx_chat_int

    e->frame = chat_frame_message(msg);
    json_decref(msg);

    e->id = ngx_alloc(ngx_strlen(id) + 1, ngx_cycle->log);
    e->head = ngx_alloc(NGX_INT64_LEN * 2 + ngx_strlen(conv) + 3,
                        ngx_cycle->log);

    if (e->frame == NULL || e->id == NULL || e->head == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_cpystrn((u_char *) e->id, (u_char *) id, ngx_strlen(id) + 1);
    (void) ngx_sprintf((u_char *) e->head, "%L %L %s%Z", from, seq, conv);

    return NGX_OK;
}


/*
 * The newest chunk first, each below the one before: oldest first in the
 * end.  The last call (the oldest chunk, or none) sets the marker.
 */

static void
ngx_chat_refill_chunk(ngx_chat_refill_t *rf)
{
    int                   argc;
    char                  keys[5][NGX_CHAT_KEY_LEN];
    char                  ttl[NGX_INT_T_LEN + 1], grace[NGX_INT_T_LEN + 1];
    size_t               *argvlen;
    ngx_uint_t            i, first, k;
    const char          **argv;
    ngx_chat_redis_t     *rds;
    ngx_chat_redis_cmd_t *cmd;

    first = rf->next > NGX_CHAT_REFILL_CHUNK
            ? rf->next - NGX_CHAT_REFILL_CHUNK : 0;

    argc = 3 + 5 + 3 + 3 * (rf->next - first);

    argv = ngx_alloc(argc * (sizeof(char *) + sizeof(size_t)),
                     ngx_cycle->log);
    if (argv == NULL) {
        ngx_chat_refill_done(rf, "out of memory");
        return;
    }

    argvlen = (size_t *) (argv + argc);

    (void) ngx_snprintf((u_char *) keys[0], NGX_CHAT_KEY_LEN,
                        "chat:inbox:{%uL}%Z", rf->user_id);
    (void) ngx_snprintf((u_char *) keys[1], NGX_CHAT_KEY_LEN,
                        "chat:inboxq:{%uL}%Z", rf->user_id);
    (void) ngx_snprintf((u_char *) keys[2], NGX_CHAT_KEY_LEN,
                        "chat:inboxn:{%uL}%Z", rf->user_id);
    (void) ngx_snprintf((u_char *) keys[3], NGX_CHAT_KEY_LEN,
                        "chat:inboxok:{%uL}%Z", rf->user_id);
    (void) ngx_cpystrn((u_char *) keys[4], (u_char *) "chat:epoch",
                       NGX_CHAT_KEY_LEN);
    (void) ngx_snprintf((u_char *) ttl, sizeof(ttl), "%ui%Z",
                        (ngx_uint_t) NGX_CHAT_INBOX_TTL);
    (void) ngx_snprintf((u_char *) grace, sizeof(grace), "%ui%Z",
                        (ngx_uint_t) NGX_CHAT_REFILL_GRACE);

    k = 0;
    argv[k++] = "EVALSHA";
    argv[k++] = ngx_chat_script_sha(NGX_CHAT_SCRIPT_REFILL);
    argv[k++] = "5";

    for (i = 0; i < 5; i++) {
        argv[k++] = keys[i];
    }

    argv[k++] = ttl;
    argv[k++] = grace;
    /* an inbox that misses a message given up is never marked complete */
    argv[k++] = (first == 0 && rf->complete
                 && !ngx_chat_deliver_lost(rf->user_id))
                ? "1" : "0";

    for (i = first; i < rf->next; i++) {
        argv[k++] = rf->entries[i].id;
        argv[k++] = rf->entries[i].head;
        argv[k++] = rf->entries[i].frame;
    }

    for (i = 0; i < (ngx_uint_t) argc; i++) {
        argvlen[i] = ngx_strlen(argv[i]);
    }

    rf->next = first;

    rds = ngx_chat_redis_for_user(rf->user_id);
    cmd = rds ? ngx_chat_redis_command_argv(rds, ngx_chat_refill_reply, rf,
                                            argc, argv, argvlen)
              : NULL;

    ngx_free(argv);

    if (cmd == NULL) {
        ngx_chat_refill_done(rf, "Redis is down");
    }
}


static void
ngx_chat_refill_reply(ngx_chat_store_rc_e rc, redisReply *reply,
    void *data)
{
    ngx_chat_refill_t  *rf = data;

    if (rc != NGX_CHAT_STORE_OK || reply->type != REDIS_REPLY_INTEGER) {
        ngx_chat_refill_done(rf, "Redis did not take the messages");
        return;
    }

    if (reply->integer > 0) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "chat: %L undelivered messages of user %uL put back "
                      "into the inbox from PostgreSQL",
                      (int64_t) reply->integer, rf->user_id);
    }

    if (rf->next > 0 && rf->op.ws) {
        ngx_chat_refill_chunk(rf);
        return;
    }

    ngx_chat_refill_done(rf, NULL);
}


/*
 * The connection syncs on (what Redis has is sent even when PostgreSQL
 * could not be read: the next connection tries again, the marker is not
 * set).
 */

static void
ngx_chat_refill_done(ngx_chat_refill_t *rf, const char *failed)
{
    ngx_uint_t      i;
    ngx_chat_ws_t  *ws = rf->op.ws;

    if (failed) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "chat: the undelivered messages of user %uL were not "
                      "read from PostgreSQL: %s", rf->user_id, failed);
    }

    for (i = 0; i < rf->n; i++) {
        free(rf->entries[i].frame);
        ngx_free(rf->entries[i].id);
        ngx_free(rf->entries[i].head);
    }

    if (rf->entries) {
        ngx_free(rf->entries);
    }

    if (ws) {
        ngx_queue_remove(&rf->op.queue);
    }

    ngx_free(rf);

    if (ws) {
        ngx_chat_sync_resume(ws);
    }
}
