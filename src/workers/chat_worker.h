
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker: the daemons beside nginx, one binary with roles
 * ("chat-worker persist", "chat-worker presence", "chat-worker cleanup",
 * "chat-worker push", "chat-worker index", "chat-worker lag").
 * Blocking libpq and librdkafka calls are fine here: nothing else shares
 * the thread.
 */


#ifndef _CHAT_WORKER_H_INCLUDED_
#define _CHAT_WORKER_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <signal.h>


#define CHAT_WORKER_MAX_PROPS    32
#define CHAT_WORKER_MAX_WRITERS  8


typedef enum {
    CHAT_LOG_DEBUG = 0,
    CHAT_LOG_INFO,
    CHAT_LOG_WARN,
    CHAT_LOG_ERROR
} chat_log_level_e;


typedef enum {
    CHAT_RETENTION_PERMANENT = 0,
    CHAT_RETENTION_EPHEMERAL
} chat_retention_e;


typedef struct {
    const char         *role;
    char               *brokers;
    char               *pg_dsn;
    char               *group;
    char               *topic_messages;
    char               *topic_receipts;
    char               *topic_presence;
    char               *topic_dlq;
    char               *pid_file;
    char               *metrics_file;       /* chat_metrics.h */
    int                 metrics_interval;   /* ms */
    int                 writers;            /* lanes: threads, connections */
    int                 batch_size;         /* records, per lane */
    int                 batch_wait;         /* ms */
    int                 retry_min;          /* ms */
    int                 retry_max;          /* ms */
    int                 drain_timeout;      /* ms */
    int                 sweep_interval;     /* ms */
    int                 lag_interval;       /* ms, 0: no lag reports */
    chat_log_level_e    log_level;

    /* cleanup */
    chat_retention_e    retention;
    int64_t             ttl;                /* ms, 0: none */
    int64_t             pending_ttl;        /* ms */
    int64_t             interval;           /* ms */
    int                 once;
    char               *media_path;         /* the media store, or NULL */
    int64_t             media_grace;        /* ms */
    int64_t             search_grace;       /* ms */
    char               *s3_endpoint;        /* or the S3-compatible one */
    char               *s3_bucket;
    char               *s3_region;
    char               *s3_credentials_file;

    /* push (chat_push.c); batch_wait is its collapse window */
    char               *webhook_url;        /* NULL: webhooks dropped */
    char               *redis;              /* "host:port,..." as nginx's */
    char               *redis_password_file;
    char               *topic_push_dlq;
    int                 presence_ttl;       /* ms */
    int                 push_timeout;       /* ms, one request */
    int                 push_give_up;       /* ms, then a dead letter */
    int                 push_retry_min;     /* ms */
    int                 push_retry_max;     /* ms */
    int                 push_concurrency;   /* requests in flight, a lane */
    int                 push_max_age;       /* ms, older messages: none */
    char               *fcm_credentials;
    char               *fcm_endpoint;
    char               *fcm_token_uri;      /* tests: not the file's */
    char               *apns_key;
    char               *apns_key_id;
    char               *apns_team_id;
    char               *apns_topic;
    char               *apns_endpoint;

    /* librdkafka properties (-X name=value), for both clients */
    char               *props[CHAT_WORKER_MAX_PROPS];
    int                 nprops;

    /* test hook: CHAT_WORKER_FAILPOINT=after_pg_commit:<ms> */
    int                 failpoint_after_commit;
} chat_worker_conf_t;


/*
 * Signals: the first SIGTERM/SIGINT asks for a drain (finish, commit,
 * leave), a second one to leave now.
 */
extern volatile sig_atomic_t  chat_worker_stop;     /* 0, 1 drain, 2 now */


/* one line: ts=... level=... role=... event=<event> <fmt...> */
void chat_log(chat_log_level_e level, const char *event, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

/* a value for a log line: quoted when it has spaces, quotes or '=' */
const char *chat_log_quote(const char *s, char *buf, size_t size);

/* ms of CLOCK_MONOTONIC */
int64_t chat_worker_now(void);

/* ms since the epoch (CLOCK_REALTIME): to compare with a message's ts */
int64_t chat_worker_wall(void);

/* sleeps up to ms, less when a stop of at least level is asked for */
void chat_worker_sleep(int ms, int level);

int chat_persist_main(chat_worker_conf_t *conf);
int chat_lag_main(chat_worker_conf_t *conf);
/* the role's group lag to Redis (chat:lag) every --lag-interval ms */
int chat_lag_report_start(chat_worker_conf_t *conf);
void chat_lag_report_stop(void);
int chat_presence_main(chat_worker_conf_t *conf);
int chat_cleanup_main(chat_worker_conf_t *conf);
int chat_push_main(chat_worker_conf_t *conf);
int chat_index_main(chat_worker_conf_t *conf);


#endif /* _CHAT_WORKER_H_INCLUDED_ */
