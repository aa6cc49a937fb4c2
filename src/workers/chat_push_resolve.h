
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker push: a batch and what it becomes (steps 1 to 4 of
 * chat_push.c): the recipients of its messages, their runs (one user, one
 * conversation: one notification with the count), who of them is online,
 * and a job per device of the others, for the sender (chat_push_send.c).
 */


#ifndef _CHAT_PUSH_RESOLVE_H_INCLUDED_
#define _CHAT_PUSH_RESOLVE_H_INCLUDED_


#include <stdint.h>

#include "chat_consume.h"
#include "chat_id.h"
#include "chat_pg.h"
#include "chat_push_auth.h"
#include "chat_push_send.h"
#include "chat_push_wire.h"
#include "chat_record.h"
#include "chat_redis.h"


#define CHAT_PUSH_ID_LEN  21                /* "-9223372036854775808," */


typedef struct {
    char                    id[CHAT_ID_LEN + 1];
    char                    conv[CHAT_RECORD_CONV_LEN];
    int64_t                 seq;
    int64_t                 from;
    int64_t                 to;
    int64_t                 group;
    int64_t                 ts;
    int                     e2e;
    int                     has_preview;
    char                    preview[CHAT_PUSH_PREVIEW_MAX];
} chat_push_msg_t;


/* a recipient of a message, then (sorted) a run: user, conversation */
typedef struct {
    int64_t                 user;
    int                     msg;        /* the newest, after the sort */
    int                     count;
    int                     online;
} chat_push_run_t;


typedef struct {
    chat_push_msg_t        *msgs;
    int                     nmsgs;
    int                     size;
    int                     ndlq;       /* records that could not be read */
    int                     nskipped;   /* not messages */
    int                     nold;       /* older than --push-max-age */

    int                     resolved;
    chat_push_run_t        *runs;
    int                     nruns;
    int                     runs_cap;
    int                     recipients; /* users the runs are for */
    int                     online;     /* runs for online users */

    chat_push_job_t        *jobs;
    chat_push_job_t       **jobp;
    int                     njobs;
    int                     jobs_cap;
    int                     removed;    /* invalid tokens deleted */
    int                     lettered;   /* dead letters produced */
    int                     sent;       /* set when done: the figures */
    int                     dead;
    int                     dropped;
    int                     invalid;
    int                     retried;
    int64_t                 p50;
    int64_t                 p99;
    int64_t                 resolve_ms;     /* steps 1 to 4 */
    int64_t                 send_ms;
} chat_push_batch_t;


/* what a lane's writer keeps between batches */
typedef struct {
    int                     ready;
    chat_redis_t            redis;
    chat_push_sender_t      sender;
    chat_push_fcm_t         fcm;
    chat_push_apns_t        apns;
    int                     has_fcm;
    int                     has_apns;
} chat_push_lane_t;


/*
 * In the lane's writer: b's jobs (b->runs, b->jobs, b->jobp, b->njobs),
 * made again from b->msgs; CHAT_PG_OK, or the failure with its reason in
 * l->pg_error (PostgreSQL, Redis, memory).
 */
chat_pg_rc_e chat_push_resolve(chat_consume_lane_t *l, chat_push_lane_t *pl,
    chat_push_batch_t *b);

/* "{1,2,3}", a bigint[] literal of v (malloc'd), or NULL */
char *chat_push_array(const int64_t *v, int n);


#endif /* _CHAT_PUSH_RESOLVE_H_INCLUDED_ */
