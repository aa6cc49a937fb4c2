
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker index: chat.messages into PostgreSQL's search index
 * (message_search, sql/0012_search.sql), a role of the consume loop
 * (chat_consume.h: batches, lanes, retries, dead letters, rebalance,
 * drain).
 *
 * A member of consumer group chat-index, so that indexing neither waits
 * for the persist worker nor holds it up.  Each message of a batch becomes
 * one element of a JSON array, and the batch is written with ONE
 * parameterized statement, its own transaction:
 *
 *     SELECT chat_index_messages($1::json)
 *
 * which turns the bodies into tsvectors in the configured language
 * (search_config) and inserts them, a message already there left alone;
 * only then are the batch's offsets committed.  Writing a batch again
 * changes nothing.
 *
 *   - An e2e message's body is ciphertext: it is never sent to
 *     PostgreSQL; its "search_tokens" (the client's blind-index terms) are
 *     stored as they came instead.
 *   - A record that cannot be read (chat_record_parse) is skipped with a
 *     warning naming it and the reason: the persist worker, which reads
 *     the same records, puts it in chat.dlq (once, not once per
 *     consumer).  Receipts are skipped.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "chat_consume.h"
#include "chat_kafka.h"
#include "chat_pg.h"
#include "chat_record.h"
#include "chat_worker.h"


/* fails on a database without sql/0012_search.sql */
#define CHAT_INDEX_CHECK                                                      \
    "SELECT 'chat_index_messages(json)'::regprocedure"

#define CHAT_INDEX_SQL  "SELECT chat_index_messages($1::json)"


typedef struct {
    json_t                 *msgs;       /* the array of the statement */
    int                     nbad;       /* unreadable, skipped */
    int                     nskipped;   /* receipts */
    int                     ne2e;
    int64_t                 rows;       /* set by the writer */
} chat_index_batch_t;


static void chat_index_topics(chat_worker_conf_t *conf, const char **topics);
static int chat_index_batch_init(chat_consume_batch_t *cb, int size);
static void chat_index_batch_reset(chat_consume_batch_t *cb);
static void chat_index_batch_free(chat_consume_batch_t *cb);
static void chat_index_record(chat_consume_t *c, chat_consume_batch_t *cb,
    rd_kafka_message_t *m);
static chat_pg_rc_e chat_index_write(chat_consume_lane_t *l,
    chat_consume_batch_t *cb);
static int64_t chat_index_logged(chat_consume_lane_t *l,
    chat_consume_batch_t *cb, const char *why, const char *commit);


static const chat_consume_role_t  chat_index_role = {
    "chat-worker index",
    CHAT_INDEX_CHECK,
    "indexed",
    1,
    0,
    chat_index_topics,
    chat_index_batch_init,
    chat_index_batch_reset,
    chat_index_batch_free,
    chat_index_record,
    chat_index_write,
    NULL,
    chat_index_logged
};


int
chat_index_main(chat_worker_conf_t *conf)
{
    return chat_consume_main(conf, &chat_index_role);
}


static void
chat_index_topics(chat_worker_conf_t *conf, const char **topics)
{
    topics[0] = conf->topic_messages;
    topics[1] = NULL;
}


static int
chat_index_batch_init(chat_consume_batch_t *cb, int size)
{
    chat_index_batch_t  *b;

    (void) size;

    b = calloc(1, sizeof(chat_index_batch_t));
    if (b == NULL) {
        return -1;
    }

    cb->data = b;
    b->msgs = json_array();

    return b->msgs ? 0 : -1;
}


static void
chat_index_batch_reset(chat_consume_batch_t *cb)
{
    chat_index_batch_t  *b = cb->data;

    json_array_clear(b->msgs);
    b->nbad = 0;
    b->nskipped = 0;
    b->ne2e = 0;
    b->rows = 0;
}


static void
chat_index_batch_free(chat_consume_batch_t *cb)
{
    chat_index_batch_t  *b = cb->data;

    if (b == NULL) {
        return;
    }

    json_decref(b->msgs);
    free(b);

    cb->data = NULL;
}


/* one record into the batch's array, or a dead letter */

static void
chat_index_record(chat_consume_t *c, chat_consume_batch_t *cb,
    rd_kafka_message_t *m)
{
    char                 err[256], q[300];
    json_t              *json, *o, *tokens;
    chat_record_t        rec;
    chat_index_batch_t  *b = cb->data;

    json = chat_record_parse(m->key, m->key ? m->key_len : 0, m->payload,
                             m->payload ? m->len : 0, &rec, err,
                             sizeof(err));
    if (json == NULL) {
        chat_log(CHAT_LOG_WARN, "unreadable", "source=%s/%d/%lld reason=%s",
                 rd_kafka_topic_name(m->rkt), (int) m->partition,
                 (long long) m->offset, chat_log_quote(err, q, sizeof(q)));
        b->nbad++;
        return;
    }

    if (rec.type != CHAT_RECORD_MESSAGE) {
        json_decref(json);
        b->nskipped++;
        return;
    }

    o = json_pack("{s:s, s:I, s:s, s:I, s:I}", "conv", rec.conv, "seq",
                  (json_int_t) rec.seq, "id", rec.id, "sender",
                  (json_int_t) rec.from, "ts", (json_int_t) rec.ts);

    if (o == NULL
        || json_object_set_new(o, rec.group ? "group_id" : "recipient",
                               json_integer(rec.group ? rec.group : rec.to))
           != 0)
    {
        goto nomem;
    }

    if (rec.e2e) {
        /* ciphertext: never indexed; the client's blind-index terms are */
        b->ne2e++;
        tokens = json_object_get(json, "search_tokens");

        if (json_is_array(tokens)
            && json_object_set(o, "tokens", tokens) != 0)
        {
            goto nomem;
        }

    } else if (json_object_set_new(o, "body",
                                   json_stringn(rec.body, rec.body_len))
               != 0)
    {
        goto nomem;
    }

    if (json_array_append_new(b->msgs, o) != 0) {
        o = NULL;
        goto nomem;
    }

    json_decref(json);
    return;

nomem:

    json_decref(o);
    json_decref(json);
    chat_log(CHAT_LOG_ERROR, "no_memory", "partition=%d offset=%lld",
             (int) m->partition, (long long) m->offset);
    c->k.fatal = 1;
}


/* In the writer: one statement, its own transaction */

static chat_pg_rc_e
chat_index_write(chat_consume_lane_t *l, chat_consume_batch_t *cb)
{
    char                *param;
    PGresult            *r;
    chat_pg_rc_e         rc;
    chat_index_batch_t  *b = cb->data;

    if (json_array_size(b->msgs) == 0) {
        return CHAT_PG_OK;
    }

    if (chat_consume_pg(l) == NULL) {
        return CHAT_PG_RETRY;
    }

    param = json_dumps(b->msgs, JSON_COMPACT);
    if (param == NULL) {
        snprintf(l->pg_error, sizeof(l->pg_error), "out of memory");
        return CHAT_PG_RETRY;
    }

    r = PQexecParams(l->pg, CHAT_INDEX_SQL, 1, NULL,
                     (const char *const *) &param, NULL, NULL, 0);
    free(param);

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        b->rows = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    }

    rc = chat_consume_exec(l, r, PGRES_TUPLES_OK);

    return rc;
}


static int64_t
chat_index_logged(chat_consume_lane_t *l, chat_consume_batch_t *cb,
    const char *why, const char *commit)
{
    char                 parts[1024];
    chat_index_batch_t  *b = cb->data;

    if (commit == NULL) {
        return 0;
    }

    chat_log(strcmp(commit, "ok") ? CHAT_LOG_WARN : CHAT_LOG_INFO, "batch",
             "%swhy=%s records=%d messages=%zu e2e=%d indexed=%lld bad=%d "
             "skipped=%d attempts=%d ms=%lld commit=%s offsets=%s", l->tag,
             why, cb->nrecs, json_array_size(b->msgs), b->ne2e,
             (long long) b->rows, b->nbad, b->nskipped, cb->attempts,
             (long long) cb->write_ms, commit,
             chat_kafka_parts(cb->offsets, parts, sizeof(parts)));

    return b->rows;
}
