
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker push: the sender.  A batch's notifications go out through
 * libcurl's multi interface, up to --push-concurrency requests in flight
 * (HTTP/2 multiplexed where the provider speaks it, kept-alive
 * connections otherwise), each with --push-timeout.  What the provider
 * answers decides (chat_push_classify()):
 *
 *   2xx                      sent
 *   5xx, 429, no answer      again after a backoff: --push-retry-min
 *                            doubling up to --push-retry-max, full jitter
 *                            in its upper half, or the provider's
 *                            Retry-After when longer; after --push-give-up
 *                            since the first attempt, a dead letter
 *   our credential refused   a new one (FCM's OAuth token, APNs's JWT),
 *                            then again like a 5xx
 *   the token is gone        invalid: the role removes the device
 *   any other 4xx            a dead letter at once (no retry)
 *
 * No redirects are followed and only http and https are spoken: where a
 * request goes is the configuration's, never a device token's.
 */


#ifndef _CHAT_PUSH_SEND_H_INCLUDED_
#define _CHAT_PUSH_SEND_H_INCLUDED_


#include <stdint.h>

#include <curl/curl.h>

#include "chat_push_auth.h"
#include "chat_push_wire.h"
#include "chat_worker.h"


#define CHAT_PUSH_RESP_MAX  2048    /* of an answer's body, kept */


typedef enum {
    CHAT_PUSH_JOB_WAITING = 0,      /* to be sent at next_at */
    CHAT_PUSH_JOB_FLYING,
    CHAT_PUSH_JOB_SENT,             /* final: the provider took it */
    CHAT_PUSH_JOB_INVALID,          /* final: the token is gone */
    CHAT_PUSH_JOB_DEAD,             /* final: a dead letter */
    CHAT_PUSH_JOB_DROPPED           /* final: never sent, on purpose */
} chat_push_job_state_e;


typedef struct {
    chat_push_note_t    note;       /* its strings are the batch's */
    char               *body;       /* the provider's request body */
    int                 state;
    int                 attempts;
    int64_t             first_at;   /* ms, monotonic: first attempt */
    int64_t             next_at;
    int64_t             sent_at;    /* ms since the epoch, when sent */
    long                status;     /* the last answer's, 0: none */
    char                reason[128];

    /* the attempt in flight */
    CURL               *easy;
    struct curl_slist  *headers;
    char               *url;
    char                resp[CHAT_PUSH_RESP_MAX];
    size_t              resp_len;
    int64_t             retry_after;    /* ms, -1: none */
} chat_push_job_t;


typedef struct {
    chat_worker_conf_t  *conf;
    CURLM               *multi;
    chat_push_fcm_t     *fcm;       /* NULL: not configured */
    chat_push_apns_t    *apns;      /* NULL: not configured */
    int                  inflight;
    unsigned             seed;

    /* failures since the last report (a log line every few seconds) */
    int                  failed_since;
    int64_t              reported;
    long                 last_status;
    char                 last_reason[128];

    /* of the last chat_push_send() */
    int                  retried;
    int                  reauth;
} chat_push_sender_t;


int chat_push_sender_init(chat_push_sender_t *s, chat_worker_conf_t *conf,
    chat_push_fcm_t *fcm, chat_push_apns_t *apns);
void chat_push_sender_free(chat_push_sender_t *s);

/*
 * Sends jobs[0..n-1] that are not final yet until every one is: 0, or -1
 * when stop(data) says so (asked every round: a stop now, a drain's end)
 * or out of memory (the jobs not final then are sent again by the next
 * call).
 */
int chat_push_send(chat_push_sender_t *s, chat_push_job_t **jobs, int n,
    int (*stop)(void *data), void *data);

/* the job's final state is one of SENT, INVALID, DEAD, DROPPED */
#define chat_push_job_final(j)  ((j)->state >= CHAT_PUSH_JOB_SENT)


#endif /* _CHAT_PUSH_SEND_H_INCLUDED_ */
