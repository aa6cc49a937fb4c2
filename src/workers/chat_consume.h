
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker: the consume loop the consuming roles (persist, presence)
 * share; a role is a chat_consume_role_t that says what a record becomes
 * and how a batch is written to PostgreSQL.
 *
 * A member of consumer group --group, subscribed to the role's topics.
 * Records are read into a batch (--batch-size records, or what came
 * within --batch-wait) and handed to the role's writer, and only once the
 * role says PostgreSQL committed the batch are the offsets of exactly its
 * records committed to Kafka, synchronously.  So a crash anywhere loses
 * nothing: what was not committed to Kafka is read again, and writing it
 * again must change nothing (the role's writes are idempotent).
 *
 * Lanes: the partitions are shared among the lanes (partition number
 * modulo their count: --writers for a role with lanes, else one).  Each
 * lane has its own writer thread and PostgreSQL connection and two
 * batches: its writer writes one while the main thread reads the next,
 * and the lanes write side by side.  A lane's batch is handed over only
 * once its previous one is written and its offsets committed, so within
 * a partition batches reach PostgreSQL and Kafka in the order they were
 * read.  A batch that is given up takes the one behind it in its lane
 * along: offsets are never committed past a record that is not written.
 *
 *   - PostgreSQL down or failing: the same batch again after a backoff
 *     (--retry-min doubling up to --retry-max), for ever; no offset is
 *     committed meanwhile.
 *   - A record the role cannot read goes to the dead-letter topic
 *     (chat_kafka_dead_letter) and the consumer goes on.  Dead letters are
 *     flushed to the broker before the offsets that pass them are
 *     committed.
 *   - Rebalance: before partitions are revoked the batches in hand are
 *     written and committed (or, if PostgreSQL stays down for 30 s, given
 *     up: the next owner reads them again).
 *   - SIGTERM/SIGINT: drain: go on until every assigned partition reached
 *     its end (or --drain-timeout), write, commit, leave the group, exit 0.
 *     A second signal: give up the batches in hand and exit 0.
 */


#ifndef _CHAT_CONSUME_H_INCLUDED_
#define _CHAT_CONSUME_H_INCLUDED_


#include <pthread.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "chat_kafka.h"
#include "chat_pg.h"
#include "chat_worker.h"


typedef struct chat_consume_s       chat_consume_t;
typedef struct chat_consume_lane_s  chat_consume_lane_t;


typedef enum {
    CHAT_JOB_NONE = 0,          /* the writer is idle */
    CHAT_JOB_QUEUED,            /* a batch is with the writer */
    CHAT_JOB_DONE               /* written (or given up): collect it */
} chat_job_state_e;


typedef struct {
    int                               nrecs;  /* read, dead letters too */
    int                               sweep;  /* the role's periodic work */
    rd_kafka_topic_partition_list_t  *offsets;
    int64_t                           deadline;     /* to hand it over */

    /* set by the writer */
    int                               rc;           /* 0, -1 given up */
    int                               attempts;
    int64_t                           write_ms;

    void                             *data;         /* the role's */
} chat_consume_batch_t;


typedef struct {
    const char   *app;          /* PostgreSQL application_name */
    const char   *check;        /* must succeed on a new connection */
    const char   *written;      /* what the totals count: "stored" */
    unsigned      lanes:1;      /* --writers lanes, else one */
    unsigned      sweep:1;      /* with nothing else to do, an empty
                                   batch every --sweep-interval */

    /* the topics to subscribe to, NULL-terminated */
    void        (*topics)(chat_worker_conf_t *conf, const char **topics);

    /* the role's part of a batch of up to size records, in b->data */
    int         (*batch_init)(chat_consume_batch_t *b, int size);
    void        (*batch_reset)(chat_consume_batch_t *b);
    void        (*batch_free)(chat_consume_batch_t *b);

    /*
     * In the main thread: record m (b->nrecs counts it already, its
     * offset is taken care of) into the batch, or a dead letter.  Sets
     * c->k.fatal when it cannot be kept.
     */
    void        (*record)(chat_consume_t *c, chat_consume_batch_t *b,
                    rd_kafka_message_t *m);

    /*
     * In the lane's writer: one attempt at writing the batch, committed
     * in PostgreSQL when it returns CHAT_PG_OK; the reason in l->pg_error
     * otherwise.
     */
    chat_pg_rc_e  (*write)(chat_consume_lane_t *l, chat_consume_batch_t *b);

    /*
     * May be NULL.  In the writer, when write said CHAT_PG_DATA: 1 to try
     * again at once (the role writes it another way next), 0 to retry
     * after the backoff.
     */
    int         (*refused)(chat_consume_lane_t *l, chat_consume_batch_t *b);

    /*
     * In the main thread, once the batch was written and its offsets
     * committed (commit: "ok" or the error, NULL for an empty batch):
     * logs it, returns what it wrote, added to the total.
     */
    int64_t     (*logged)(chat_consume_lane_t *l, chat_consume_batch_t *b,
                    const char *why, const char *commit);
} chat_consume_role_t;


struct chat_consume_lane_s {
    chat_consume_t                 *c;
    int                             index;
    char                            tag[24];      /* "lane=1 " or "" */
    PGconn                         *pg;           /* the writer's */
    char                            pg_error[512];

    chat_consume_batch_t            batches[2];
    chat_consume_batch_t           *cur;          /* being read */
    chat_consume_batch_t           *job;          /* with the writer */
    const char                     *job_why;

    pthread_t                       writer;
    pthread_mutex_t                 lock;
    pthread_cond_t                  cond;
    chat_job_state_e                job_state;
    int64_t                         job_deadline;
    int                             writer_up;
    int                             quit;
    int                             given_up;     /* discard what follows */
};


struct chat_consume_s {
    chat_kafka_t                    k;            /* first: the opaque */
    const chat_consume_role_t      *role;

    chat_consume_lane_t             lanes[CHAT_WORKER_MAX_WRITERS];
    int                             nlanes;

    int64_t                         next_sweep;
    int64_t                         stop_at;      /* end of the drain */
    int64_t                         total_records;
    int64_t                         total_written;
};


/* the role until stopped; the exit code */
int chat_consume_main(chat_worker_conf_t *conf,
    const chat_consume_role_t *role);

/* in the writer: the lane's connection, made when there is none */
PGconn *chat_consume_pg(chat_consume_lane_t *l);

/* chat_pg_exec on the lane's connection, the reason in l->pg_error */
chat_pg_rc_e chat_consume_exec(chat_consume_lane_t *l, PGresult *res,
    ExecStatusType want);


#endif /* _CHAT_CONSUME_H_INCLUDED_ */
