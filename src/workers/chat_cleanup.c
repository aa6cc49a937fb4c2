
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker cleanup: the ephemeral retention mode (docs/ARCHITECTURE.md
 * "Retention").
 *
 * --retention permanent (the default): PostgreSQL keeps every message;
 * the role deletes nothing: it says so in one log line and exits 0 (it
 * does not even connect).  scripts/stack does not start it then.
 *
 * --retention ephemeral: every --interval, one pass over `messages`:
 *
 *     SELECT * FROM chat_cleanup_messages(after_conv, after_seq, lim, ttl)
 *
 * again and again, each call its own transaction over a window of
 * --batch-size messages in primary key order (sql/0005_retention.sql),
 * deleting those every recipient has (all their delivery rows 'delivered'
 * or 'read') and, with --ttl, those older than it, with their delivery
 * rows; then
 *
 *     SELECT chat_cleanup_pending(max_age, lim)
 *
 * until it deletes fewer than --batch-size parked receipts older than
 * --pending-ttl; then, window by window over the search index,
 *
 *     SELECT * FROM chat_cleanup_search(after_conv, after_seq, lim, grace)
 *
 * (sql/0014_search_cleanup.sql: the rows the index worker wrote for
 * messages this role had deleted already, indexed more than
 * --search-grace ago); then, with --media-path, in transactions of its own
 *
 *     SELECT sha256, type FROM chat_cleanup_media(grace, lim)
 *
 * (sql/0010_media_cleanup.sql: the uploads no message carries any more,
 * older than --media-grace, and the contents left without an upload),
 * removing each content's file under --media-path before the commit.
 * One log line per pass with the counts; message bodies are never read.
 *
 * Several processes may run: rows are locked FOR UPDATE SKIP LOCKED, so
 * each deletion is done and counted once.  PostgreSQL failing: the same
 * window again after a backoff (--retry-min doubling up to --retry-max);
 * with --once, the run gives up and exits 1.  SIGTERM/SIGINT: the
 * transaction in hand finishes, the pass is logged, exit 0.
 */


#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "chat_pg.h"
#include "chat_worker.h"
#include "chat_image.h"
#include "chat_s3.h"


#define CHAT_CLEANUP_CONV_LEN  128

#define CHAT_CLEANUP_MESSAGES_SQL                                             \
    "SELECT scanned, delivered, expired, delivery_rows, last_conv, "          \
    "last_seq FROM chat_cleanup_messages($1, $2, $3, $4)"

#define CHAT_CLEANUP_SEARCH_SQL                                               \
    "SELECT scanned, deleted, last_conv, last_seq "                           \
    "FROM chat_cleanup_search($1, $2, $3, $4)"

#define CHAT_CLEANUP_PENDING_SQL                                              \
    "SELECT chat_cleanup_pending($1, $2)"

#define CHAT_CLEANUP_MEDIA_SQL                                                \
    "SELECT sha256, type FROM chat_cleanup_media($1, $2)"

/* fails on a database without sql/0005_retention.sql */
#define CHAT_CLEANUP_CHECK                                                    \
    "SELECT 'chat_cleanup_messages(text,bigint,integer,bigint)'"              \
    "::regprocedure"


typedef struct {
    int64_t                 scanned;
    int64_t                 delivered;
    int64_t                 expired;
    int64_t                 delivery_rows;
    int64_t                 pending;
    int64_t                 search;         /* orphans of the index */
    int64_t                 media;          /* contents and their files */
    int64_t                 transactions;
} chat_cleanup_counts_t;


typedef struct {
    chat_worker_conf_t     *conf;
    PGconn                 *pg;
    chat_s3_t              *s3;             /* the images' store, or NULL */
    char                    pg_error[512];
    int                     delay;          /* ms, the next backoff */

    /* the pass's cursor: the last key of the last window */
    char                    conv[CHAT_CLEANUP_CONV_LEN];
    int64_t                 seq;
    unsigned                has_cursor:1;

    chat_cleanup_counts_t   pass;
    chat_cleanup_counts_t   total;
    int64_t                 passes;
} chat_cleanup_t;


typedef void (*chat_cleanup_row_pt)(chat_cleanup_t *c, PGresult *r,
    int *more);


static int chat_cleanup_pass(chat_cleanup_t *c);
static chat_pg_rc_e chat_cleanup_window(chat_cleanup_t *c, int *more);
static chat_pg_rc_e chat_cleanup_walk(chat_cleanup_t *c, const char *sql,
    const char *param, chat_cleanup_row_pt row, int *more);
static chat_pg_rc_e chat_cleanup_pending(chat_cleanup_t *c, int *more);
static chat_pg_rc_e chat_cleanup_search(chat_cleanup_t *c, int *more);
static chat_pg_rc_e chat_cleanup_media(chat_cleanup_t *c, int *more);
static int chat_cleanup_unlink(chat_cleanup_t *c, const char *sha256,
    const char *type);
static void chat_cleanup_window_row(chat_cleanup_t *c, PGresult *r,
    int *more);
static void chat_cleanup_pending_row(chat_cleanup_t *c, PGresult *r,
    int *more);
static void chat_cleanup_search_row(chat_cleanup_t *c, PGresult *r,
    int *more);
static void chat_cleanup_cursor(chat_cleanup_t *c, PGresult *r, int col,
    int *more);
static chat_pg_rc_e chat_cleanup_exec(chat_cleanup_t *c, const char *sql,
    int n, const char **params, chat_cleanup_row_pt row, int *more);
static int chat_cleanup_connect(chat_cleanup_t *c);
static int chat_cleanup_failed(chat_cleanup_t *c, const char *step);
static void chat_cleanup_add(chat_cleanup_counts_t *to,
    chat_cleanup_counts_t *from);


int
chat_cleanup_main(chat_worker_conf_t *conf)
{
    int             rc;
    chat_cleanup_t  c;

    if (conf->retention == CHAT_RETENTION_PERMANENT) {
        chat_log(CHAT_LOG_WARN, "disabled", "retention=permanent deleted=0 "
                 "hint=\"PostgreSQL keeps every message; --retention "
                 "ephemeral deletes delivered ones\"");
        return 0;
    }

    memset(&c, 0, sizeof(chat_cleanup_t));
    c.conf = conf;
    c.delay = conf->retry_min;

    if (conf->s3_endpoint || conf->s3_bucket || conf->s3_region
        || conf->s3_credentials_file)
    {
        c.s3 = chat_s3_open(conf);
        if (c.s3 == NULL) {
            return 2;
        }
    }

    chat_log(CHAT_LOG_INFO, "started", "retention=ephemeral ttl_s=%lld "
             "pending_ttl_s=%lld interval_ms=%lld batch_size=%d once=%d "
             "search_grace_s=%lld media=%s media_grace_s=%lld",
             (long long) (conf->ttl / 1000),
             (long long) (conf->pending_ttl / 1000),
             (long long) conf->interval, conf->batch_size, conf->once,
             (long long) (conf->search_grace / 1000),
             c.s3 ? "s3" : conf->media_path ? "on" : "off",
             (long long) (conf->media_grace / 1000));

    rc = 0;

    while (chat_worker_stop == 0) {
        rc = chat_cleanup_pass(&c);

        if (conf->once || rc != 0) {
            break;
        }

        chat_worker_sleep((int) conf->interval, 1);
    }

    if (c.pg) {
        PQfinish(c.pg);
    }

    chat_s3_close(c.s3);

    chat_log(CHAT_LOG_INFO, "stopped", "passes=%lld delivered=%lld "
             "expired=%lld delivery_rows=%lld pending=%lld search=%lld "
             "media=%lld exit=%d",
             (long long) c.passes, (long long) c.total.delivered,
             (long long) c.total.expired, (long long) c.total.delivery_rows,
             (long long) c.total.pending, (long long) c.total.search,
             (long long) c.total.media, rc);

    return rc;
}


/*
 * One pass: the windows of messages, the parked receipts, the windows of
 * the search index, the images.  0, or 1
 * when --once gives up after a failure.
 */

static int
chat_cleanup_pass(chat_cleanup_t *c)
{
    int           more, stopped;
    int64_t       start;
    chat_pg_rc_e  rc;

    start = chat_worker_now();
    memset(&c->pass, 0, sizeof(chat_cleanup_counts_t));
    c->has_cursor = 0;
    stopped = 0;

    /* a stop request waits for the transaction in hand, no longer */

    for (more = 1; more; ) {
        if (chat_worker_stop) {
            stopped = 1;
            goto done;
        }

        rc = chat_cleanup_window(c, &more);

        if (rc != CHAT_PG_OK && chat_cleanup_failed(c, "messages") != 0) {
            return 1;
        }
    }

    for (more = 1; more; ) {
        if (chat_worker_stop) {
            stopped = 1;
            goto done;
        }

        rc = chat_cleanup_pending(c, &more);

        if (rc != CHAT_PG_OK && chat_cleanup_failed(c, "pending") != 0) {
            return 1;
        }
    }

    c->has_cursor = 0;

    for (more = 1; more; ) {
        if (chat_worker_stop) {
            stopped = 1;
            goto done;
        }

        rc = chat_cleanup_search(c, &more);

        if (rc != CHAT_PG_OK && chat_cleanup_failed(c, "search") != 0) {
            return 1;
        }
    }

    for (more = c->conf->media_path != NULL || c->s3 != NULL; more; ) {
        if (chat_worker_stop) {
            stopped = 1;
            goto done;
        }

        rc = chat_cleanup_media(c, &more);

        if (rc != CHAT_PG_OK && chat_cleanup_failed(c, "media") != 0) {
            return 1;
        }
    }

done:

    c->passes++;
    chat_cleanup_add(&c->total, &c->pass);

    chat_log(CHAT_LOG_INFO, "pass", "scanned=%lld delivered=%lld "
             "expired=%lld delivery_rows=%lld pending=%lld "
             "transactions=%lld ms=%lld search=%lld media=%lld%s",
             (long long) c->pass.scanned, (long long) c->pass.delivered,
             (long long) c->pass.expired, (long long) c->pass.delivery_rows,
             (long long) c->pass.pending, (long long) c->pass.transactions,
             (long long) (chat_worker_now() - start),
             (long long) c->pass.search, (long long) c->pass.media,
             stopped ? " why=stop" : "");

    return 0;
}


/* one window of messages, one transaction; *more: the pass goes on */

static chat_pg_rc_e
chat_cleanup_window(chat_cleanup_t *c, int *more)
{
    char  ttl[24];

    snprintf(ttl, sizeof(ttl), "%lld", (long long) c->conf->ttl);

    return chat_cleanup_walk(c, CHAT_CLEANUP_MESSAGES_SQL,
                             c->conf->ttl ? ttl : NULL,
                             chat_cleanup_window_row, more);
}


/*
 * A window in primary key order after the cursor: sql takes (after_conv,
 * after_seq, lim, param), NULL for the first two on the first window
 */

static chat_pg_rc_e
chat_cleanup_walk(chat_cleanup_t *c, const char *sql, const char *param,
    chat_cleanup_row_pt row, int *more)
{
    char         seq[24], lim[16];
    const char  *params[4];

    snprintf(seq, sizeof(seq), "%lld", (long long) c->seq);
    snprintf(lim, sizeof(lim), "%d", c->conf->batch_size);

    params[0] = c->has_cursor ? c->conv : NULL;
    params[1] = c->has_cursor ? seq : NULL;
    params[2] = lim;
    params[3] = param;

    return chat_cleanup_exec(c, sql, 4, params, row, more);
}


static void
chat_cleanup_window_row(chat_cleanup_t *c, PGresult *r, int *more)
{
    c->pass.scanned += atoi(PQgetvalue(r, 0, 0));
    c->pass.delivered += atoll(PQgetvalue(r, 0, 1));
    c->pass.expired += atoll(PQgetvalue(r, 0, 2));
    c->pass.delivery_rows += atoll(PQgetvalue(r, 0, 3));

    chat_cleanup_cursor(c, r, 4, more);
}


/*
 * A window's last key, in columns col and col + 1, is where the next one
 * starts; *more: the window was full (column 0, the rows scanned)
 */

static void
chat_cleanup_cursor(chat_cleanup_t *c, PGresult *r, int col, int *more)
{
    int          scanned;
    size_t       len;
    const char  *conv;

    scanned = atoi(PQgetvalue(r, 0, 0));
    *more = scanned >= c->conf->batch_size;

    if (scanned == 0) {
        return;
    }

    conv = PQgetvalue(r, 0, col);
    len = strlen(conv);

    if (len >= sizeof(c->conv)) {
        /* not a key the gateway makes: end the pass here */
        chat_log(CHAT_LOG_WARN, "bad_key", "length=%d", (int) len);
        *more = 0;
        return;
    }

    memcpy(c->conv, conv, len + 1);
    c->seq = atoll(PQgetvalue(r, 0, col + 1));
    c->has_cursor = 1;
}


/* one batch of stale parked receipts, one transaction */

static chat_pg_rc_e
chat_cleanup_pending(chat_cleanup_t *c, int *more)
{
    char         age[24], lim[16];
    const char  *params[2];

    snprintf(age, sizeof(age), "%lld", (long long) c->conf->pending_ttl);
    snprintf(lim, sizeof(lim), "%d", c->conf->batch_size);

    params[0] = age;
    params[1] = lim;

    return chat_cleanup_exec(c, CHAT_CLEANUP_PENDING_SQL, 2, params,
                             chat_cleanup_pending_row, more);
}


static void
chat_cleanup_pending_row(chat_cleanup_t *c, PGresult *r, int *more)
{
    int  n;

    n = atoi(PQgetvalue(r, 0, 0));
    c->pass.pending += n;
    *more = n >= c->conf->batch_size;
}


/* one window of the search index, one transaction */

static chat_pg_rc_e
chat_cleanup_search(chat_cleanup_t *c, int *more)
{
    char  grace[24];

    snprintf(grace, sizeof(grace), "%lld", (long long) c->conf->search_grace);

    return chat_cleanup_walk(c, CHAT_CLEANUP_SEARCH_SQL, grace,
                             chat_cleanup_search_row, more);
}


static void
chat_cleanup_search_row(chat_cleanup_t *c, PGresult *r, int *more)
{
    c->pass.search += atoll(PQgetvalue(r, 0, 1));

    chat_cleanup_cursor(c, r, 2, more);
}


/*
 * One batch of images: the rows go and the files with them, in one
 * transaction that commits only once every file is gone (see
 * sql/0010_media_cleanup.sql for why the order matters)
 */

static chat_pg_rc_e
chat_cleanup_media(chat_cleanup_t *c, int *more)
{
    int            i, n;
    char           grace[24], lim[16];
    PGresult      *r;
    const char    *params[2];
    chat_pg_rc_e   rc;

    *more = 0;

    if (chat_cleanup_connect(c) != 0) {
        return CHAT_PG_RETRY;
    }

    rc = chat_pg_exec(&c->pg, PQexec(c->pg, "BEGIN"), PGRES_COMMAND_OK,
                      c->pg_error, sizeof(c->pg_error));
    if (rc != CHAT_PG_OK) {
        return rc;
    }

    snprintf(grace, sizeof(grace), "%lld", (long long) c->conf->media_grace);
    snprintf(lim, sizeof(lim), "%d", c->conf->batch_size);
    params[0] = grace;
    params[1] = lim;

    r = PQexecParams(c->pg, CHAT_CLEANUP_MEDIA_SQL, 2, NULL, params, NULL,
                     NULL, 0);

    n = PQresultStatus(r) == PGRES_TUPLES_OK ? PQntuples(r) : -1;

    for (i = 0; i < n; i++) {
        if (chat_cleanup_unlink(c, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1))
            != 0)
        {
            /* the rows stay with the files that could not go */
            PQclear(r);
            PQclear(PQexec(c->pg, "ROLLBACK"));
            snprintf(c->pg_error, sizeof(c->pg_error),
                     "a media file could not be removed");
            return CHAT_PG_RETRY;
        }
    }

    /* a failure is rolled back there */
    rc = chat_pg_exec(&c->pg, r, PGRES_TUPLES_OK, c->pg_error,
                      sizeof(c->pg_error));
    if (rc != CHAT_PG_OK) {
        return rc;
    }

    rc = chat_pg_exec(&c->pg, PQexec(c->pg, "COMMIT"), PGRES_COMMAND_OK,
                      c->pg_error, sizeof(c->pg_error));
    if (rc != CHAT_PG_OK) {
        return rc;
    }

    c->pass.transactions++;
    c->pass.media += n;
    c->delay = c->conf->retry_min;
    *more = n >= c->conf->batch_size;

    return CHAT_PG_OK;
}


/*
 * A content's file, <media-path>/<2 hex>/<sha256>.<ext>, or its object of
 * the same key in the bucket; 0 once gone
 */

static int
chat_cleanup_unlink(chat_cleanup_t *c, const char *sha256, const char *type)
{
    char               key[128], path[4096];
    const char        *ext;
    chat_image_type_e  t;

    t = chat_image_type_of_mime(type, strlen(type));
    ext = t ? chat_image_ext(t) : NULL;

    if (ext == NULL || strlen(sha256) != 64) {
        chat_log(CHAT_LOG_WARN, "media_skipped", "sha256=%.64s type=%.32s",
                 sha256, type);
        return 0;
    }

    snprintf(key, sizeof(key), "%.2s/%s.%s", sha256, sha256, ext);

    if (c->s3) {
        return chat_s3_delete(c->s3, key);
    }

    if (snprintf(path, sizeof(path), "%s/%s", c->conf->media_path, key)
        >= (int) sizeof(path))
    {
        chat_log(CHAT_LOG_WARN, "media_skipped", "sha256=%s", sha256);
        return 0;
    }

    if (unlink(path) == 0 || errno == ENOENT) {
        return 0;
    }

    chat_log(CHAT_LOG_ERROR, "media_unlink_failed", "sha256=%s errno=%d",
             sha256, errno);

    return -1;
}


/* one statement (its own transaction) and its one row, to row() */

static chat_pg_rc_e
chat_cleanup_exec(chat_cleanup_t *c, const char *sql, int n,
    const char **params, chat_cleanup_row_pt row, int *more)
{
    PGresult      *r;
    chat_pg_rc_e   rc;

    if (chat_cleanup_connect(c) != 0) {
        return CHAT_PG_RETRY;
    }

    r = PQexecParams(c->pg, sql, n, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        c->pass.transactions++;
        row(c, r, more);
    }

    rc = chat_pg_exec(&c->pg, r, PGRES_TUPLES_OK, c->pg_error,
                      sizeof(c->pg_error));

    if (rc == CHAT_PG_OK) {
        c->delay = c->conf->retry_min;
    }

    return rc;
}


/* 0 once connected (again), -1 with the reason in pg_error */

static int
chat_cleanup_connect(chat_cleanup_t *c)
{
    if (c->pg == NULL) {
        c->pg = chat_pg_connect(c->conf->pg_dsn, "chat-worker cleanup",
                                CHAT_CLEANUP_CHECK, c->pg_error,
                                sizeof(c->pg_error));
    }

    return c->pg ? 0 : -1;
}


/*
 * A step failed (nothing of its transaction is left): 0 to try it again
 * after the backoff, -1 to give up (--once).  Deadlocks with the persist
 * worker, or another cleanup, end here too: PostgreSQL aborted one side.
 */

static int
chat_cleanup_failed(chat_cleanup_t *c, const char *step)
{
    char  q[512];

    if (c->conf->once) {
        chat_log(CHAT_LOG_ERROR, "pg_failed", "step=%s error=%s", step,
                 chat_log_quote(c->pg_error, q, sizeof(q)));
        return -1;
    }

    chat_log(CHAT_LOG_WARN, "pg_retry", "step=%s delay_ms=%d error=%s", step,
             c->delay, chat_log_quote(c->pg_error, q, sizeof(q)));

    chat_worker_sleep(c->delay, 1);

    c->delay = c->delay * 2 > c->conf->retry_max ? c->conf->retry_max
                                                 : c->delay * 2;

    return 0;
}


static void
chat_cleanup_add(chat_cleanup_counts_t *to, chat_cleanup_counts_t *from)
{
    to->scanned += from->scanned;
    to->delivered += from->delivered;
    to->expired += from->expired;
    to->delivery_rows += from->delivery_rows;
    to->pending += from->pending;
    to->search += from->search;
    to->media += from->media;
    to->transactions += from->transactions;
}
