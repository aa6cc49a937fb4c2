
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker persist: chat.messages and chat.receipts into PostgreSQL,
 * a role of the consume loop (chat_consume.h: batches, lanes, retries,
 * dead letters, rebalance, drain).
 *
 * A member of consumer group chat-persist.  Each record is turned into a
 * COPY row at once and kept no longer than its batch.  A batch is written
 * in ONE transaction:
 *
 *     BEGIN
 *     COPY chat_persist_in_msgs FROM STDIN      the messages
 *     COPY chat_persist_in_rcpts FROM STDIN     the receipts
 *     SELECT chat_persist_unpark(window)        a sweep only, sql/0016
 *     SELECT ... FROM chat_persist_apply(false) sql/0003, sql/0008
 *     COMMIT
 *
 * and only once COMMIT succeeded are the offsets of exactly the records of
 * the batch committed to Kafka (idempotent on the message id).
 *
 * Lanes: --writers of them; a conversation's messages and receipts have
 * the same partition number in both topics, so they share a lane.
 *
 *   - A record that cannot be read (chat_record_parse) goes to the
 *     dead-letter topic with its reason in the header chat-error.  A
 *     record PostgreSQL refuses as data (SQLSTATE class 22 or 23) would
 *     fail its batch for ever: the batch is then written one record per
 *     transaction, and the refused one goes to the dead-letter topic too.
 *   - Every --sweep-interval (with an empty batch when there is nothing
 *     else to do), lane 0 also applies the receipts parked in the last
 *     CHAT_PERSIST_SWEEP_WINDOW whose message is stored by now
 *     (chat_persist_unpark, sql/0016): the race of two transactions, one
 *     parking a receipt while the other stores its message.  The first
 *     sweep after the start looks at every parked receipt.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "chat_consume.h"
#include "chat_copy.h"
#include "chat_kafka.h"
#include "chat_pg.h"
#include "chat_record.h"
#include "chat_worker.h"


#define CHAT_PERSIST_KEEP_BUFFER    (64 * 1024 * 1024)

#define CHAT_PERSIST_NO_KEY         ((size_t) -1)

/*
 * How far back a sweep looks for parked receipts, in ms (a string: a
 * query parameter): far beyond any transaction of ours, well short of
 * the hours of receipts whose message never comes (sql/0016)
 */
#define CHAT_PERSIST_SWEEP_WINDOW   "600000"


typedef enum {
    CHAT_PERSIST_DLQ = 0,       /* sent to the dead-letter topic */
    CHAT_PERSIST_MSG,
    CHAT_PERSIST_RCPT
} chat_persist_kind_e;


typedef struct {
    chat_persist_kind_e     kind;
    const char             *topic;
    int32_t                 partition;
    int64_t                 offset;
    size_t                  row;        /* in msgs or rcpts */
    size_t                  row_len;
    size_t                  key;        /* in orig */
    size_t                  key_len;
    size_t                  val;
    size_t                  val_len;
} chat_persist_rec_t;


/*
 * Whether a sweep looked at every parked receipt since the start.  Only
 * lane 0's writer sweeps (chat_consume_submit()), so only its thread
 * reads and sets this.
 */
static int  chat_persist_swept_all;


typedef struct {
    int                     stored;
    int                     duplicates;
    int                     resequenced;
    int                     receipts;
    int                     pending;
} chat_persist_result_t;


/* the role's part of a batch */
typedef struct {
    chat_copy_t             msgs;
    chat_copy_t             rcpts;
    chat_copy_t             orig;
    chat_persist_rec_t     *recs;
    int                     nmsgs;
    int                     nrcpts;
    int                     ndlq;
    unsigned                per_record:1;
    chat_persist_result_t   res;        /* set by the writer */
} chat_persist_batch_t;


static void chat_persist_topics(chat_worker_conf_t *conf,
    const char **topics);
static int chat_persist_batch_init(chat_consume_batch_t *cb, int size);
static void chat_persist_batch_reset(chat_consume_batch_t *cb);
static void chat_persist_batch_free(chat_consume_batch_t *cb);
static void chat_persist_record(chat_consume_t *c, chat_consume_batch_t *cb,
    rd_kafka_message_t *m);
static void chat_persist_dead_letter(chat_consume_t *c,
    chat_persist_batch_t *b, chat_persist_rec_t *rec, const char *reason);
static chat_pg_rc_e chat_persist_write_batch(chat_consume_lane_t *l,
    chat_consume_batch_t *cb);
static int chat_persist_refused(chat_consume_lane_t *l,
    chat_consume_batch_t *cb);
static int64_t chat_persist_logged(chat_consume_lane_t *l,
    chat_consume_batch_t *cb, const char *why, const char *commit);
static chat_pg_rc_e chat_persist_write(chat_consume_lane_t *l,
    const char *msgs, size_t mlen, const char *rcpts, size_t rlen, int sweep,
    chat_persist_result_t *res);
static chat_pg_rc_e chat_persist_write_each(chat_consume_lane_t *l,
    chat_persist_batch_t *b, int nrecs, chat_persist_result_t *res);
static chat_pg_rc_e chat_persist_copy(chat_consume_lane_t *l,
    const char *sql, const char *data, size_t len);


static const chat_consume_role_t  chat_persist_role = {
    "chat-worker persist",
    "SELECT chat_persist_prepare(2)",           /* sql/0008 */
    "stored",
    1,
    1,
    chat_persist_topics,
    chat_persist_batch_init,
    chat_persist_batch_reset,
    chat_persist_batch_free,
    chat_persist_record,
    chat_persist_write_batch,
    chat_persist_refused,
    chat_persist_logged
};


int
chat_persist_main(chat_worker_conf_t *conf)
{
    return chat_consume_main(conf, &chat_persist_role);
}


static void
chat_persist_topics(chat_worker_conf_t *conf, const char **topics)
{
    topics[0] = conf->topic_messages;
    topics[1] = conf->topic_receipts;
    topics[2] = NULL;
}


static int
chat_persist_batch_init(chat_consume_batch_t *cb, int size)
{
    chat_persist_batch_t  *b;

    b = calloc(1, sizeof(chat_persist_batch_t));
    if (b == NULL) {
        return -1;
    }

    cb->data = b;

    chat_copy_init(&b->msgs);
    chat_copy_init(&b->rcpts);
    chat_copy_init(&b->orig);

    b->recs = calloc(size, sizeof(chat_persist_rec_t));

    return b->recs ? 0 : -1;
}


static void
chat_persist_batch_reset(chat_consume_batch_t *cb)
{
    chat_persist_batch_t  *b = cb->data;

    chat_copy_reset(&b->msgs, CHAT_PERSIST_KEEP_BUFFER);
    chat_copy_reset(&b->rcpts, CHAT_PERSIST_KEEP_BUFFER);
    chat_copy_reset(&b->orig, CHAT_PERSIST_KEEP_BUFFER);

    b->nmsgs = 0;
    b->nrcpts = 0;
    b->ndlq = 0;
    b->per_record = 0;
    memset(&b->res, 0, sizeof(chat_persist_result_t));
}


static void
chat_persist_batch_free(chat_consume_batch_t *cb)
{
    chat_persist_batch_t  *b = cb->data;

    if (b == NULL) {
        return;
    }

    chat_copy_free(&b->msgs);
    chat_copy_free(&b->rcpts);
    chat_copy_free(&b->orig);
    free(b->recs);
    free(b);

    cb->data = NULL;
}


/* one record into the batch: a COPY row, or a dead letter */

static void
chat_persist_record(chat_consume_t *c, chat_consume_batch_t *cb,
    rd_kafka_message_t *m)
{
    char                   err[256], q[256];
    json_t                *json;
    const char            *topic;
    chat_record_t          r;
    chat_copy_t           *row;
    chat_persist_rec_t    *rec;
    chat_persist_batch_t  *b = cb->data;

    /* the name outlives m: the dead letter may come from the writer */
    topic = rd_kafka_topic_name(m->rkt);
    topic = strcmp(topic, c->k.conf->topic_messages) == 0
            ? c->k.conf->topic_messages : c->k.conf->topic_receipts;

    rec = &b->recs[cb->nrecs - 1];
    memset(rec, 0, sizeof(chat_persist_rec_t));
    rec->topic = topic;
    rec->partition = m->partition;
    rec->offset = m->offset;

    /* the record as it came, for the dead-letter topic */
    rec->key = m->key ? b->orig.len : CHAT_PERSIST_NO_KEY;
    rec->key_len = m->key_len;

    if (m->key) {
        chat_copy_raw(&b->orig, m->key, m->key_len);
    }

    rec->val = b->orig.len;
    rec->val_len = m->payload ? m->len : 0;

    if (m->payload) {
        chat_copy_raw(&b->orig, m->payload, m->len);
    }

    json = chat_record_parse(m->key, m->key_len, m->payload,
                             m->payload ? m->len : 0, &r, err, sizeof(err));

    if (json == NULL || chat_copy_failed(&b->orig)) {
        chat_persist_dead_letter(c, b, rec, json ? "no memory" : err);
        json_decref(json);
        return;
    }

    if (r.type == CHAT_RECORD_MESSAGE) {
        row = &b->msgs;
        rec->row = row->len;

        chat_copy_text(row, r.conv, strlen(r.conv));
        chat_copy_int(row, r.seq);
        chat_copy_text(row, r.id, CHAT_ID_LEN);
        chat_copy_int(row, r.from);

        if (r.to) {
            chat_copy_int(row, r.to);
            chat_copy_null(row);

        } else {
            chat_copy_null(row);
            chat_copy_int(row, r.group);
        }

        chat_copy_text(row, r.body, r.body_len);

        if (r.media) {
            chat_copy_text(row, r.media, r.media_len);

        } else {
            chat_copy_null(row);
        }

        chat_copy_bool(row, r.e2e);
        chat_copy_text(row, r.client_id, r.client_id_len);
        chat_copy_int(row, r.ts);
        chat_copy_end_row(row);

        rec->kind = CHAT_PERSIST_MSG;
        b->nmsgs++;

    } else {
        row = &b->rcpts;
        rec->row = row->len;

        chat_copy_text(row, r.conv, strlen(r.conv));
        chat_copy_text(row, r.id, CHAT_ID_LEN);
        chat_copy_int(row, r.by);
        chat_copy_int(row, r.ts);

        if (r.read) {
            chat_copy_int(row, r.ts);

        } else {
            chat_copy_null(row);
        }

        /* a group receipt moves the member's position to it (sql/0008) */
        chat_copy_int(row, r.seq);
        chat_copy_end_row(row);

        rec->kind = CHAT_PERSIST_RCPT;
        b->nrcpts++;
    }

    json_decref(json);

    if (chat_copy_failed(row)) {
        /* cannot happen short of memory: stop rather than lose it */
        chat_log(CHAT_LOG_ERROR, "no_memory", "topic=%s partition=%d "
                 "offset=%lld", topic, (int) m->partition,
                 (long long) m->offset);
        c->k.fatal = 1;
        return;
    }

    rec->row_len = row->len - rec->row;

    chat_log(CHAT_LOG_DEBUG, "record", "topic=%s partition=%d offset=%lld "
             "type=%s conv=%s seq=%lld", topic, (int) m->partition,
             (long long) m->offset,
             r.type == CHAT_RECORD_MESSAGE ? "message" : "receipt",
             chat_log_quote(r.conv, q, sizeof(q)), (long long) r.seq);
}


/* from the main thread (parse) or the writer (refused by PostgreSQL) */

static void
chat_persist_dead_letter(chat_consume_t *c, chat_persist_batch_t *b,
    chat_persist_rec_t *rec, const char *reason)
{
    char  *key, *val;

    key = rec->key == CHAT_PERSIST_NO_KEY ? NULL : b->orig.data + rec->key;
    val = rec->val_len ? b->orig.data + rec->val : NULL;

    chat_kafka_dead_letter(&c->k, rec->topic, rec->partition, rec->offset,
                           key, key ? rec->key_len : 0, val, rec->val_len,
                           reason);

    rec->kind = CHAT_PERSIST_DLQ;
    b->ndlq++;
}


/* in the writer: one attempt, one transaction or one per record */

static chat_pg_rc_e
chat_persist_write_batch(chat_consume_lane_t *l, chat_consume_batch_t *cb)
{
    chat_persist_batch_t  *b = cb->data;

    memset(&b->res, 0, sizeof(chat_persist_result_t));

    if (b->per_record) {
        return chat_persist_write_each(l, b, cb->nrecs, &b->res);
    }

    return chat_persist_write(l, b->msgs.data, b->msgs.len, b->rcpts.data,
                              b->rcpts.len, cb->sweep, &b->res);
}


/* refused as data whole: one record per transaction, at once */

static int
chat_persist_refused(chat_consume_lane_t *l, chat_consume_batch_t *cb)
{
    char                   q[512];
    chat_persist_batch_t  *b = cb->data;

    if (b->per_record) {
        return 0;
    }

    chat_log(CHAT_LOG_WARN, "batch_refused", "records=%d error=%s "
             "action=one_record_per_transaction", cb->nrecs,
             chat_log_quote(l->pg_error, q, sizeof(q)));

    b->per_record = 1;

    return 1;
}


static int64_t
chat_persist_logged(chat_consume_lane_t *l, chat_consume_batch_t *cb,
    const char *why, const char *commit)
{
    char                   parts[1024];
    chat_persist_batch_t  *b = cb->data;

    if (commit == NULL) {
        if (b->res.receipts || b->res.pending) {
            chat_log(CHAT_LOG_INFO, "sweep", "receipts=%d", b->res.receipts);
        }

        return 0;
    }

    chat_log(strcmp(commit, "ok") ? CHAT_LOG_WARN : CHAT_LOG_INFO, "batch",
             "%swhy=%s records=%d msgs=%d receipts_in=%d dlq=%d "
             "stored=%d duplicates=%d resequenced=%d receipts=%d "
             "pending=%d attempts=%d ms=%lld total_stored=%lld "
             "commit=%s offsets=%s", l->tag, why, cb->nrecs, b->nmsgs,
             b->nrcpts, b->ndlq, b->res.stored, b->res.duplicates,
             b->res.resequenced, b->res.receipts, b->res.pending,
             cb->attempts, (long long) cb->write_ms,
             (long long) (l->c->total_written + b->res.stored), commit,
             chat_kafka_parts(cb->offsets, parts, sizeof(parts)));

    return b->res.stored;
}


/* one transaction; CHAT_PG_OK or what went wrong, in l->pg_error */

static chat_pg_rc_e
chat_persist_write(chat_consume_lane_t *l, const char *msgs, size_t mlen,
    const char *rcpts, size_t rlen, int sweep, chat_persist_result_t *res)
{
    PGresult      *r;
    const char    *param;
    chat_pg_rc_e   rc;

    if (chat_consume_pg(l) == NULL) {
        return CHAT_PG_RETRY;
    }

    rc = chat_consume_exec(l, PQexec(l->pg, "BEGIN"), PGRES_COMMAND_OK);
    if (rc != CHAT_PG_OK) {
        return rc;
    }

    if (mlen) {
        rc = chat_persist_copy(l, "COPY chat_persist_in_msgs FROM STDIN",
                               msgs, mlen);
        if (rc != CHAT_PG_OK) {
            return rc;
        }
    }

    if (rlen) {
        rc = chat_persist_copy(l, "COPY chat_persist_in_rcpts (conv, id, "
                               "recipient, delivered_ts, read_ts, seq) "
                               "FROM STDIN", rcpts, rlen);
        if (rc != CHAT_PG_OK) {
            return rc;
        }
    }

    if (sweep) {
        /* NULL: every parked receipt, once after the start */
        param = chat_persist_swept_all ? CHAT_PERSIST_SWEEP_WINDOW : NULL;

        rc = chat_consume_exec(l, PQexecParams(l->pg,
                                   "SELECT chat_persist_unpark($1)", 1, NULL,
                                   &param, NULL, NULL, 0),
                               PGRES_TUPLES_OK);
        if (rc != CHAT_PG_OK) {
            return rc;
        }
    }

    r = PQexec(l->pg, "SELECT stored, duplicates, resequenced, receipts, "
                      "pending FROM chat_persist_apply(false)");

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        res->stored += atoi(PQgetvalue(r, 0, 0));
        res->duplicates += atoi(PQgetvalue(r, 0, 1));
        res->resequenced += atoi(PQgetvalue(r, 0, 2));
        res->receipts += atoi(PQgetvalue(r, 0, 3));
        res->pending += atoi(PQgetvalue(r, 0, 4));
    }

    rc = chat_consume_exec(l, r, PGRES_TUPLES_OK);
    if (rc != CHAT_PG_OK) {
        return rc;
    }

    rc = chat_consume_exec(l, PQexec(l->pg, "COMMIT"), PGRES_COMMAND_OK);

    if (rc == CHAT_PG_OK && sweep) {
        chat_persist_swept_all = 1;
    }

    return rc;
}


/*
 * The batch one record per transaction, after the database refused it
 * whole: a record it refuses as data becomes a dead letter, the others are
 * written (again: idempotent).
 */

static chat_pg_rc_e
chat_persist_write_each(chat_consume_lane_t *l, chat_persist_batch_t *b,
    int nrecs, chat_persist_result_t *res)
{
    int                  i;
    char                 reason[600];
    chat_pg_rc_e         rc;
    chat_persist_rec_t  *rec;

    for (i = 0; i < nrecs; i++) {
        rec = &b->recs[i];

        if (rec->kind == CHAT_PERSIST_MSG) {
            rc = chat_persist_write(l, b->msgs.data + rec->row, rec->row_len,
                                    NULL, 0, 0, res);

        } else if (rec->kind == CHAT_PERSIST_RCPT) {
            rc = chat_persist_write(l, NULL, 0, b->rcpts.data + rec->row,
                                    rec->row_len, 0, res);

        } else {
            continue;
        }

        if (rc == CHAT_PG_DATA) {
            snprintf(reason, sizeof(reason), "postgres: %s", l->pg_error);
            chat_persist_dead_letter(l->c, b, rec, reason);
            continue;
        }

        if (rc != CHAT_PG_OK) {
            return rc;
        }
    }

    return CHAT_PG_OK;
}


static chat_pg_rc_e
chat_persist_copy(chat_consume_lane_t *l, const char *sql, const char *data,
    size_t len)
{
    chat_pg_rc_e  rc;

    rc = chat_consume_exec(l, PQexec(l->pg, sql), PGRES_COPY_IN);
    if (rc != CHAT_PG_OK) {
        return rc;
    }

    if (PQputCopyData(l->pg, data, (int) len) != 1
        || PQputCopyEnd(l->pg, NULL) != 1)
    {
        return chat_consume_exec(l, NULL, PGRES_COMMAND_OK);
    }

    return chat_consume_exec(l, PQgetResult(l->pg), PGRES_COMMAND_OK);
}
