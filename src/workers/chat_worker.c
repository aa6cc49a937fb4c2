
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker: options, configuration file, environment, logging,
 * signals and the pid file; the roles are in chat_persist.c,
 * chat_presence.c, chat_cleanup.c and chat_lag.c (chat_consume.c: the
 * consume loop the consuming roles share, on chat_kafka.c and chat_pg.c).
 *
 * Settings, later ones winning: built-in defaults, the environment
 * (KAFKA_BROKERS, PG_DSN), the --config file, the command line.
 */


#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat_worker.h"


#define CHAT_WORKER_NAME  "chat-worker"

#define CHAT_WORKER_MAX_DURATION  (3650 * 86400)    /* s: ten years */


typedef enum {
    CHAT_OPT_STRING,
    CHAT_OPT_INT,
    CHAT_OPT_LEVEL,
    CHAT_OPT_RETENTION,
    CHAT_OPT_DURATION,          /* int64_t ms; min, max in seconds */
    CHAT_OPT_FLAG,
    CHAT_OPT_PROP
} chat_opt_type_e;


typedef struct {
    const char        *name;
    chat_opt_type_e    type;
    size_t             offset;
    int                min;
    int                max;
} chat_opt_t;


#define CHAT_OPT(name, type, field, min, max)                                 \
    { name, type, offsetof(chat_worker_conf_t, field), min, max }


static const chat_opt_t  chat_opts[] = {
    CHAT_OPT("brokers", CHAT_OPT_STRING, brokers, 0, 0),
    CHAT_OPT("pg-dsn", CHAT_OPT_STRING, pg_dsn, 0, 0),
    CHAT_OPT("group", CHAT_OPT_STRING, group, 0, 0),
    CHAT_OPT("messages-topic", CHAT_OPT_STRING, topic_messages, 0, 0),
    CHAT_OPT("receipts-topic", CHAT_OPT_STRING, topic_receipts, 0, 0),
    CHAT_OPT("presence-topic", CHAT_OPT_STRING, topic_presence, 0, 0),
    CHAT_OPT("dlq-topic", CHAT_OPT_STRING, topic_dlq, 0, 0),
    CHAT_OPT("pid-file", CHAT_OPT_STRING, pid_file, 0, 0),
    CHAT_OPT("metrics-file", CHAT_OPT_STRING, metrics_file, 0, 0),
    CHAT_OPT("metrics-interval", CHAT_OPT_INT, metrics_interval, 100,
             3600000),
    CHAT_OPT("writers", CHAT_OPT_INT, writers, 1, CHAT_WORKER_MAX_WRITERS),
    CHAT_OPT("batch-size", CHAT_OPT_INT, batch_size, 1, 100000),
    CHAT_OPT("batch-wait", CHAT_OPT_INT, batch_wait, 0, 60000),
    CHAT_OPT("retry-min", CHAT_OPT_INT, retry_min, 1, 60000),
    CHAT_OPT("retry-max", CHAT_OPT_INT, retry_max, 1, 600000),
    CHAT_OPT("drain-timeout", CHAT_OPT_INT, drain_timeout, 0, 3600000),
    CHAT_OPT("sweep-interval", CHAT_OPT_INT, sweep_interval, 100, 3600000),
    CHAT_OPT("lag-interval", CHAT_OPT_INT, lag_interval, 0, 3600000),
    CHAT_OPT("log-level", CHAT_OPT_LEVEL, log_level, 0, 0),
    CHAT_OPT("retention", CHAT_OPT_RETENTION, retention, 0, 0),
    CHAT_OPT("ttl", CHAT_OPT_DURATION, ttl, 0, CHAT_WORKER_MAX_DURATION),
    CHAT_OPT("pending-ttl", CHAT_OPT_DURATION, pending_ttl, 1,
             CHAT_WORKER_MAX_DURATION),
    CHAT_OPT("interval", CHAT_OPT_DURATION, interval, 1, 86400),
    CHAT_OPT("once", CHAT_OPT_FLAG, once, 0, 1),
    CHAT_OPT("search-grace", CHAT_OPT_DURATION, search_grace, 0,
             CHAT_WORKER_MAX_DURATION),
    CHAT_OPT("media-path", CHAT_OPT_STRING, media_path, 0, 0),
    CHAT_OPT("media-grace", CHAT_OPT_DURATION, media_grace, 1,
             CHAT_WORKER_MAX_DURATION),
    CHAT_OPT("s3-endpoint", CHAT_OPT_STRING, s3_endpoint, 0, 0),
    CHAT_OPT("s3-bucket", CHAT_OPT_STRING, s3_bucket, 0, 0),
    CHAT_OPT("s3-region", CHAT_OPT_STRING, s3_region, 0, 0),
    CHAT_OPT("s3-credentials-file", CHAT_OPT_STRING, s3_credentials_file, 0,
             0),
    CHAT_OPT("webhook-url", CHAT_OPT_STRING, webhook_url, 0, 0),
    CHAT_OPT("redis", CHAT_OPT_STRING, redis, 0, 0),
    CHAT_OPT("redis-password-file", CHAT_OPT_STRING, redis_password_file, 0,
             0),
    CHAT_OPT("push-dlq-topic", CHAT_OPT_STRING, topic_push_dlq, 0, 0),
    CHAT_OPT("push-window", CHAT_OPT_INT, batch_wait, 0, 60000),
    CHAT_OPT("presence-ttl", CHAT_OPT_INT, presence_ttl, 1000, 86400000),
    CHAT_OPT("push-timeout", CHAT_OPT_INT, push_timeout, 100, 600000),
    CHAT_OPT("push-give-up", CHAT_OPT_INT, push_give_up, 0, 3600000),
    CHAT_OPT("push-retry-min", CHAT_OPT_INT, push_retry_min, 1, 600000),
    CHAT_OPT("push-retry-max", CHAT_OPT_INT, push_retry_max, 1, 3600000),
    CHAT_OPT("push-concurrency", CHAT_OPT_INT, push_concurrency, 1, 10000),
    CHAT_OPT("push-max-age", CHAT_OPT_INT, push_max_age, 0, 604800000),
    CHAT_OPT("fcm-credentials", CHAT_OPT_STRING, fcm_credentials, 0, 0),
    CHAT_OPT("fcm-endpoint", CHAT_OPT_STRING, fcm_endpoint, 0, 0),
    CHAT_OPT("fcm-token-uri", CHAT_OPT_STRING, fcm_token_uri, 0, 0),
    CHAT_OPT("apns-key", CHAT_OPT_STRING, apns_key, 0, 0),
    CHAT_OPT("apns-key-id", CHAT_OPT_STRING, apns_key_id, 0, 0),
    CHAT_OPT("apns-team-id", CHAT_OPT_STRING, apns_team_id, 0, 0),
    CHAT_OPT("apns-topic", CHAT_OPT_STRING, apns_topic, 0, 0),
    CHAT_OPT("apns-endpoint", CHAT_OPT_STRING, apns_endpoint, 0, 0),
    CHAT_OPT("X", CHAT_OPT_PROP, props, 0, 0),
    { NULL, 0, 0, 0, 0 }
};


static const char  *chat_log_levels[] = { "debug", "info", "warn", "error" };
static const char  *chat_retentions[] = { "permanent", "ephemeral" };

volatile sig_atomic_t        chat_worker_stop;
static chat_log_level_e      chat_log_min = CHAT_LOG_INFO;
static const char           *chat_log_role = "main";


static void chat_worker_usage(FILE *out);
static void chat_worker_defaults(chat_worker_conf_t *conf,
    const char *role);
static int chat_worker_set(chat_worker_conf_t *conf, const char *name,
    const char *value, const char *where);
static int chat_worker_duration(const chat_opt_t *o, const char *value,
    const char *where, int64_t *ms);
static int chat_worker_load(chat_worker_conf_t *conf, const char *file);
static int chat_worker_args(chat_worker_conf_t *conf, int argc,
    char **argv);
static void chat_worker_free(chat_worker_conf_t *conf);
static void chat_worker_signal(int signo);
static int chat_worker_pid_write(const char *file);
static void chat_worker_pid_remove(const char *file);


static void
chat_worker_usage(FILE *out)
{
    fprintf(out,
"usage: " CHAT_WORKER_NAME " ROLE [options]\n"
"\n"
"roles:\n"
"  persist   consume chat.messages and chat.receipts, write PostgreSQL in\n"
"            batches (one transaction each), commit Kafka offsets after\n"
"            the transaction; records it cannot read go to chat.dlq\n"
"  presence  consume chat.presence (offline transitions), write each\n"
"            user's newest last_seen to PostgreSQL in batches (one\n"
"            transaction each), commit Kafka offsets after it; records it\n"
"            cannot read go to chat.dlq\n"
"  cleanup   the retention mode: with --retention ephemeral, delete\n"
"            messages every recipient has (all delivery rows delivered\n"
"            or read) and, with --ttl, older ones regardless, in batches\n"
"            (one transaction each), every --interval; with --retention\n"
"            permanent (the default) delete nothing, say so, exit 0\n"
"  push      consume chat.messages; for each recipient with no device\n"
"            online (Redis presence), one notification per registered\n"
"            device (PostgreSQL devices) through its provider (webhook,\n"
"            fcm, apns), messages to one user in one conversation within\n"
"            --push-window collapsed into one; retried with backoff,\n"
"            tokens the provider calls invalid removed, what keeps\n"
"            failing to --push-dlq-topic; offsets committed after\n"
"            (docs/PUSH.md)\n"
"  index     consume chat.messages, write the search index\n"
"            (message_search: the body as a tsvector, an e2e message's\n"
"            search_tokens instead) in batches (one statement each),\n"
"            commit Kafka offsets after it\n"
"  lag       print the committed offsets of --group against the end of\n"
"            each partition of the message and receipt topics, and exit\n"
"\n"
"options (also NAME = VALUE lines in --config, without the dashes):\n"
"  --brokers LIST         Kafka bootstrap servers (env KAFKA_BROKERS;\n"
"                         default 127.0.0.1:9092)\n"
"  --pg-dsn DSN           libpq connection string (env PG_DSN; prefer\n"
"                         the environment or the file: the command line\n"
"                         is visible to every user)\n"
"  --group NAME           consumer group (default chat-persist;\n"
"                         presence: chat-presence;\n"
"                         push: chat-push; index: chat-index)\n"
"  --messages-topic T     default chat.messages\n"
"  --receipts-topic T     default chat.receipts\n"
"  --presence-topic T     default chat.presence\n"
"  --dlq-topic T          dead letters, default chat.dlq\n"
"  --writers N            PostgreSQL connections writing side by side,\n"
"                         each for its share of the partitions, 1..8\n"
"                         (default 2; presence: one)\n"
"  --batch-size N         records per transaction, 1..100000 (default\n"
"                         5000)\n"
"  --batch-wait MS        longest wait for a batch to fill (default 100)\n"
"  --retry-min MS         first wait after a PostgreSQL failure (100)\n"
"  --retry-max MS         longest wait between retries (5000)\n"
"  --drain-timeout MS     after SIGTERM, how long to go on consuming\n"
"                         what the broker holds (default 60000)\n"
"  --sweep-interval MS    how often receipts parked in the last 10\n"
"                         minutes for a message that was stored\n"
"                         meanwhile are applied (5000; the first sweep\n"
"                         after a start looks at all of them)\n"
"  --lag-interval MS      every MS, the group's Kafka lag to the\n"
"                         gateway's Redis (--redis, chat:lag) for the\n"
"                         admin API (persist, presence, push, index;\n"
"                         default 0: none)\n"
"  --log-level LEVEL      debug, info, warn, error (default info)\n"
"\n"
"cleanup (DURATION: a number and s, m, h or d, e.g. 30s, 7d):\n"
"  --retention MODE       permanent (default: PostgreSQL keeps every\n"
"                         message, nothing is deleted) or ephemeral\n"
"  --ttl DURATION         ephemeral: also delete messages older than\n"
"                         this, delivered or not (default 0: never)\n"
"  --pending-ttl DURATION ephemeral: delete receipts parked for a\n"
"                         message that did not come for this long (1h)\n"
"  --interval DURATION    between passes (default 30s)\n"
"  --batch-size N         messages per transaction (cleanup: 1000)\n"
"  --once                 one pass, then exit (1 if PostgreSQL fails)\n"
"  --search-grace DURATION  ephemeral: a search index row of a message\n"
"                         deleted already goes once indexed this long\n"
"                         ago (default 10m)\n"
"  --media-path DIR       ephemeral: also delete the images no message\n"
"                         carries any more, and their files under DIR\n"
"                         (the gateway's chat_media_path)\n"
"  --media-grace DURATION an image not sent yet is kept this long after\n"
"                         its upload (default 1d)\n"
"  --s3-endpoint URL      ephemeral: the images are in an S3-compatible\n"
"  --s3-bucket NAME       store (the gateway's chat_media_s3): delete\n"
"  --s3-region REGION     their objects there, not files under\n"
"  --s3-credentials-file FILE  --media-path (the key id, then the secret)\n"
"\n"
"push (docs/PUSH.md):\n"
"  --webhook-url URL      where webhook notifications are POSTed (env\n"
"                         CHAT_PUSH_WEBHOOK_URL; unset: they are dropped,\n"
"                         and the log says so)\n"
"  --redis LIST           the gateway's chat_redis servers, written as\n"
"                         there (host:port,...; default 127.0.0.1:6379)\n"
"  --redis-password-file FILE  as chat_redis_password_file\n"
"  --presence-ttl MS      as chat_presence_ttl (default 300000)\n"
"  --push-window MS       collapse window: the batch's wait (2000)\n"
"  --push-timeout MS      one request (default 10000)\n"
"  --push-retry-min MS    first wait before a retry (500)\n"
"  --push-retry-max MS    longest wait between retries (30000)\n"
"  --push-give-up MS      then a dead letter (120000; 0: never)\n"
"  --push-concurrency N   requests in flight per lane (64)\n"
"  --push-max-age MS      no notification for an older message (a new\n"
"                         group reads the topic from its start)\n"
"                         (3600000; 0: any age)\n"
"  --push-dlq-topic T     default chat.push.dlq\n"
"  --fcm-credentials FILE a Google service-account JSON file\n"
"  --fcm-endpoint URL     instead of https://fcm.googleapis.com\n"
"  --fcm-token-uri URL    instead of the file's token_uri (tests)\n"
"  --apns-key FILE        the .p8 key; with --apns-key-id, --apns-team-id,\n"
"  --apns-topic BUNDLE    and the app's bundle id\n"
"  --apns-endpoint URL    default https://api.push.apple.com\n"
"\n"
"  --pid-file FILE        write the pid there once running; removed at\n"
"                         exit\n"
"  --metrics-file FILE    persist, presence, push, index: Prometheus text\n"
"                         (node_exporter's textfile collector), rewritten\n"
"                         every --metrics-interval MS (default 5000)\n"
"  -X NAME=VALUE          a librdkafka property for the consumer and the\n"
"                         dead-letter producer (repeatable)\n"
"  --config FILE          read options from FILE first\n"
"  -h, --help             this text\n"
"\n"
"Logs are one line per event on stderr: ts=... level=... role=...\n"
"event=... and key=value pairs.  SIGTERM or SIGINT: consume until the\n"
"broker has nothing more (or --drain-timeout), write and commit, exit 0;\n"
"a second signal: abandon the batch in hand (it is consumed again after\n"
"a restart: writes are idempotent) and exit 0.  cleanup: SIGTERM ends\n"
"the pass after the transaction in hand, exit 0.\n");
}


int
main(int argc, char **argv)
{
    int                  rc;
    const char          *role, *env;
    struct sigaction     sa;
    chat_worker_conf_t   conf;

    if (argc < 2 || strcmp(argv[1], "-h") == 0
        || strcmp(argv[1], "--help") == 0)
    {
        chat_worker_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }

    role = argv[1];

    if (strcmp(role, "persist") != 0 && strcmp(role, "presence") != 0
        && strcmp(role, "cleanup") != 0 && strcmp(role, "lag") != 0
        && strcmp(role, "push") != 0 && strcmp(role, "index") != 0)
    {
        fprintf(stderr, CHAT_WORKER_NAME ": unknown role \"%s\"\n\n"
                "Try '" CHAT_WORKER_NAME " --help' for more information.\n",
                role);
        return 2;
    }

    chat_log_role = role;
    chat_worker_defaults(&conf, role);

    env = getenv("KAFKA_BROKERS");
    if (env && *env) {
        (void) chat_worker_set(&conf, "brokers", env, "KAFKA_BROKERS");
    }

    env = getenv("PG_DSN");
    if (env && *env) {
        (void) chat_worker_set(&conf, "pg-dsn", env, "PG_DSN");
    }

    env = getenv("CHAT_WORKER_FAILPOINT");
    if (env && strncmp(env, "after_pg_commit:", 16) == 0) {
        conf.failpoint_after_commit = atoi(env + 16);
    }

    env = getenv("CHAT_PUSH_WEBHOOK_URL");
    if (env && *env && strcmp(role, "push") == 0) {
        (void) chat_worker_set(&conf, "webhook-url", env,
                               "CHAT_PUSH_WEBHOOK_URL");
    }

    rc = chat_worker_args(&conf, argc - 1, argv + 1);
    if (rc != 0) {
        chat_worker_free(&conf);
        return rc < 0 ? 0 : 2;
    }

    chat_log_min = conf.log_level;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = chat_worker_signal;
    sigemptyset(&sa.sa_mask);
    (void) sigaction(SIGTERM, &sa, NULL);
    (void) sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    (void) sigaction(SIGPIPE, &sa, NULL);

    if (conf.pid_file && chat_worker_pid_write(conf.pid_file) != 0) {
        chat_worker_free(&conf);
        return 1;
    }

    if (strcmp(role, "lag") != 0 && chat_lag_report_start(&conf) != 0) {
        chat_worker_free(&conf);
        return 1;
    }

    if (strcmp(role, "persist") == 0) {
        rc = chat_persist_main(&conf);

    } else if (strcmp(role, "presence") == 0) {
        rc = chat_presence_main(&conf);

    } else if (strcmp(role, "cleanup") == 0) {
        rc = chat_cleanup_main(&conf);

    } else if (strcmp(role, "push") == 0) {
        rc = chat_push_main(&conf);

    } else if (strcmp(role, "index") == 0) {
        rc = chat_index_main(&conf);

    } else {
        rc = chat_lag_main(&conf);
    }

    chat_lag_report_stop();

    if (conf.pid_file) {
        chat_worker_pid_remove(conf.pid_file);
    }

    chat_worker_free(&conf);

    return rc;
}


static void
chat_worker_defaults(chat_worker_conf_t *conf, const char *role)
{
    memset(conf, 0, sizeof(chat_worker_conf_t));

    conf->role = role;
    conf->brokers = strdup("127.0.0.1:9092");
    conf->group = strdup(strcmp(role, "presence") == 0 ? "chat-presence"
                         : strcmp(role, "push") == 0 ? "chat-push"
                         : strcmp(role, "index") == 0 ? "chat-index"
                         : "chat-persist");
    conf->topic_messages = strdup("chat.messages");
    conf->topic_receipts = strdup("chat.receipts");
    conf->topic_presence = strdup("chat.presence");
    conf->topic_dlq = strdup("chat.dlq");
    conf->writers = 2;
    conf->batch_size = strcmp(role, "cleanup") == 0
                       || strcmp(role, "push") == 0 ? 1000 : 5000;
    conf->batch_wait = strcmp(role, "push") == 0 ? 2000 : 100;
    conf->retry_min = 100;
    conf->retry_max = 5000;
    conf->drain_timeout = 60000;
    conf->sweep_interval = 5000;
    conf->metrics_interval = 5000;
    conf->log_level = CHAT_LOG_INFO;
    conf->retention = CHAT_RETENTION_PERMANENT;
    conf->pending_ttl = 3600 * 1000;
    conf->interval = 30 * 1000;
    conf->media_grace = 86400 * 1000;
    conf->search_grace = 600 * 1000;
    conf->redis = strdup("127.0.0.1:6379");
    conf->topic_push_dlq = strdup("chat.push.dlq");
    conf->presence_ttl = 300000;
    conf->push_timeout = 10000;
    conf->push_give_up = 120000;
    conf->push_retry_min = 500;
    conf->push_retry_max = 30000;
    conf->push_concurrency = 64;
    conf->push_max_age = 3600000;
}


static void
chat_worker_free(chat_worker_conf_t *conf)
{
    int                i;
    char             **field;
    const chat_opt_t  *o;

    for (o = chat_opts; o->name; o++) {
        if (o->type == CHAT_OPT_STRING) {
            field = (char **) ((char *) conf + o->offset);
            free(*field);
            *field = NULL;
        }
    }

    for (i = 0; i < conf->nprops; i++) {
        free(conf->props[i]);
    }

    conf->nprops = 0;
}


/* 0, or -1 after saying why (where: "--name", "FILE:LINE", "ENV") */

static int
chat_worker_set(chat_worker_conf_t *conf, const char *name,
    const char *value, const char *where)
{
    int                i;
    long               n;
    char              *end, **field;
    const chat_opt_t  *o;

    for (o = chat_opts; o->name; o++) {
        if (strcmp(o->name, name) == 0) {
            break;
        }
    }

    if (o->name == NULL) {
        fprintf(stderr, CHAT_WORKER_NAME ": %s: unknown option \"%s\"\n",
                where, name);
        return -1;
    }

    switch (o->type) {

    case CHAT_OPT_STRING:
        if (*value == '\0') {
            fprintf(stderr, CHAT_WORKER_NAME ": %s: \"%s\" must not be "
                    "empty\n", where, name);
            return -1;
        }

        field = (char **) ((char *) conf + o->offset);
        free(*field);
        *field = strdup(value);
        return *field ? 0 : -1;

    case CHAT_OPT_INT:
        errno = 0;
        n = strtol(value, &end, 10);

        if (errno || end == value || *end != '\0' || n < o->min
            || n > o->max)
        {
            fprintf(stderr, CHAT_WORKER_NAME ": %s: \"%s\" wants a number "
                    "from %d to %d, not \"%s\"\n", where, name, o->min,
                    o->max, value);
            return -1;
        }

        *(int *) ((char *) conf + o->offset) = (int) n;
        return 0;

    case CHAT_OPT_LEVEL:
        for (i = 0; i < 4; i++) {
            if (strcmp(value, chat_log_levels[i]) == 0) {
                conf->log_level = (chat_log_level_e) i;
                return 0;
            }
        }

        fprintf(stderr, CHAT_WORKER_NAME ": %s: \"log-level\" wants debug, "
                "info, warn or error, not \"%s\"\n", where, value);
        return -1;

    case CHAT_OPT_RETENTION:
        for (i = 0; i < 2; i++) {
            if (strcmp(value, chat_retentions[i]) == 0) {
                conf->retention = (chat_retention_e) i;
                return 0;
            }
        }

        fprintf(stderr, CHAT_WORKER_NAME ": %s: \"retention\" wants "
                "permanent or ephemeral, not \"%s\"\n", where, value);
        return -1;

    case CHAT_OPT_DURATION:
        return chat_worker_duration(o, value, where,
                                    (int64_t *) ((char *) conf + o->offset));

    case CHAT_OPT_FLAG:
        /* "--once" alone, or "once = yes" in a file */
        if (value == NULL || strcmp(value, "yes") == 0
            || strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
        {
            *(int *) ((char *) conf + o->offset) = 1;
            return 0;
        }

        if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0
            || strcmp(value, "0") == 0)
        {
            *(int *) ((char *) conf + o->offset) = 0;
            return 0;
        }

        fprintf(stderr, CHAT_WORKER_NAME ": %s: \"%s\" wants yes or no, "
                "not \"%s\"\n", where, name, value);
        return -1;

    default: /* CHAT_OPT_PROP */
        if (strchr(value, '=') == NULL || value[0] == '=') {
            fprintf(stderr, CHAT_WORKER_NAME ": %s: -X wants NAME=VALUE, "
                    "not \"%s\"\n", where, value);
            return -1;
        }

        if (conf->nprops == CHAT_WORKER_MAX_PROPS) {
            fprintf(stderr, CHAT_WORKER_NAME ": %s: more than %d -X "
                    "properties\n", where, CHAT_WORKER_MAX_PROPS);
            return -1;
        }

        conf->props[conf->nprops] = strdup(value);
        return conf->props[conf->nprops++] ? 0 : -1;
    }
}


/*
 * A number and a unit (s, m, h, d) into *ms; "0" (or "off") too when the
 * option's minimum is 0.  0, or -1 after saying why.
 */

static int
chat_worker_duration(const chat_opt_t *o, const char *value,
    const char *where, int64_t *ms)
{
    long long   n, unit;
    char       *end;

    if (o->min == 0
        && (strcmp(value, "0") == 0 || strcmp(value, "off") == 0))
    {
        *ms = 0;
        return 0;
    }

    errno = 0;
    n = strtoll(value, &end, 10);
    unit = 0;

    if (errno == 0 && end != value && value[0] != '-' && value[0] != '+'
        && end[0] != '\0' && end[1] == '\0')
    {
        switch (end[0]) {
        case 's': unit = 1; break;
        case 'm': unit = 60; break;
        case 'h': unit = 3600; break;
        case 'd': unit = 86400; break;
        default:  break;
        }
    }

    if (unit == 0 || n > CHAT_WORKER_MAX_DURATION || n * unit < o->min
        || n * unit > o->max)
    {
        fprintf(stderr, CHAT_WORKER_NAME ": %s: \"%s\" wants a duration "
                "like 30s, 15m, 12h or 7d%s from %ds to %ds, not \"%s\"\n",
                where, o->name, o->min == 0 ? " (0 or off: none)," : ",",
                o->min == 0 ? 1 : o->min, o->max, value);
        return -1;
    }

    *ms = n * unit * 1000;

    return 0;
}


/* NAME = VALUE lines; '#' starts a comment line; blank lines are fine */

static int
chat_worker_load(chat_worker_conf_t *conf, const char *file)
{
    int     rc, lineno;
    FILE   *f;
    char    line[4096], where[PATH_MAX + 32], *p, *name, *value, *end;

    f = fopen(file, "r");
    if (f == NULL) {
        fprintf(stderr, CHAT_WORKER_NAME ": cannot open %s: %s\n", file,
                strerror(errno));
        return -1;
    }

    rc = 0;
    lineno = 0;

    while (rc == 0 && fgets(line, sizeof(line), f)) {
        lineno++;
        snprintf(where, sizeof(where), "%s:%d", file, lineno);

        p = line + strspn(line, " \t");
        end = p + strlen(p);

        while (end > p && (end[-1] == '\n' || end[-1] == '\r'
                           || end[-1] == ' ' || end[-1] == '\t'))
        {
            *--end = '\0';
        }

        if (*p == '\0' || *p == '#') {
            continue;
        }

        name = p;
        p = strchr(p, '=');

        if (p == NULL) {
            fprintf(stderr, CHAT_WORKER_NAME ": %s: expected NAME = VALUE\n",
                    where);
            rc = -1;
            break;
        }

        value = p + 1 + strspn(p + 1, " \t");

        while (p > name && (p[-1] == ' ' || p[-1] == '\t')) {
            p--;
        }

        *p = '\0';

        rc = chat_worker_set(conf, name, value, where);
    }

    fclose(f);

    return rc;
}


/* 0 to go on, 1 to exit 2 (bad usage), -1 to exit 0 (--help) */

static int
chat_worker_args(chat_worker_conf_t *conf, int argc, char **argv)
{
    int              c, i, n, idx;
    char             where[64];
    struct option    longopts[sizeof(chat_opts) / sizeof(chat_opts[0]) + 2];

    /* the long options are those of the table (the file's names) */
    for (n = 0; chat_opts[n].name; n++) {
        longopts[n].name = chat_opts[n].name;
        longopts[n].has_arg = chat_opts[n].type == CHAT_OPT_FLAG
                              ? no_argument : required_argument;
        longopts[n].flag = NULL;
        longopts[n].val = chat_opts[n].type == CHAT_OPT_PROP ? 'X' : 0;
    }

    longopts[n].name = "config";
    longopts[n].has_arg = required_argument;
    longopts[n].flag = NULL;
    longopts[n++].val = 'c';

    longopts[n].name = "help";
    longopts[n].has_arg = no_argument;
    longopts[n].flag = NULL;
    longopts[n++].val = 'h';

    memset(&longopts[n], 0, sizeof(struct option));

    /* the file first, so that the command line wins over it */
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            if (chat_worker_load(conf, argv[i + 1]) != 0) {
                return 1;
            }

        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            if (chat_worker_load(conf, argv[i] + 9) != 0) {
                return 1;
            }
        }
    }

    opterr = 0;
    optind = 1;

    for ( ;; ) {
        idx = -1;
        c = getopt_long(argc, argv, ":hX:", longopts, &idx);

        if (c == -1) {
            break;
        }

        switch (c) {

        case 0:
            snprintf(where, sizeof(where), "--%s", longopts[idx].name);

            if (chat_worker_set(conf, longopts[idx].name, optarg, where)
                != 0)
            {
                return 1;
            }

            break;

        case 'X':
            if (chat_worker_set(conf, "X", optarg, "-X") != 0) {
                return 1;
            }

            break;

        case 'c':
            break;

        case 'h':
            chat_worker_usage(stdout);
            return -1;

        case ':':
            fprintf(stderr, CHAT_WORKER_NAME ": option \"%s\" needs an "
                    "argument\n", argv[optind - 1]);
            return 1;

        default:
            fprintf(stderr, CHAT_WORKER_NAME ": unknown option \"%s\"\n\n"
                    "Try '" CHAT_WORKER_NAME " --help' for more "
                    "information.\n", argv[optind - 1]);
            return 1;
        }
    }

    if (optind < argc) {
        fprintf(stderr, CHAT_WORKER_NAME ": unexpected argument \"%s\"\n",
                argv[optind]);
        return 1;
    }

    if (strcmp(conf->role, "cleanup") == 0
        && conf->retention == CHAT_RETENTION_PERMANENT && conf->ttl)
    {
        fprintf(stderr, CHAT_WORKER_NAME ": --ttl deletes messages: it "
                "needs --retention ephemeral (the retention is "
                "permanent)\n");
        return 1;
    }

    /* permanent cleanup touches no database */
    if (strcmp(conf->role, "lag") != 0 && conf->pg_dsn == NULL
        && !(strcmp(conf->role, "cleanup") == 0
             && conf->retention == CHAT_RETENTION_PERMANENT))
    {
        fprintf(stderr, CHAT_WORKER_NAME ": no PostgreSQL: set PG_DSN, "
                "pg-dsn in --config, or --pg-dsn\n");
        return 1;
    }

    if (conf->retry_max < conf->retry_min) {
        conf->retry_max = conf->retry_min;
    }

    return 0;
}


static void
chat_worker_signal(int signo)
{
    (void) signo;

    chat_worker_stop = chat_worker_stop ? 2 : 1;
}


static int
chat_worker_pid_write(const char *file)
{
    FILE  *f;
    char   tmp[PATH_MAX];

    snprintf(tmp, sizeof(tmp), "%s.tmp", file);

    f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%ld\n", (long) getpid()) < 0
        || fclose(f) != 0 || rename(tmp, file) != 0)
    {
        fprintf(stderr, CHAT_WORKER_NAME ": cannot write %s: %s\n", file,
                strerror(errno));
        return -1;
    }

    return 0;
}


/* only when it still holds our pid: a successor may have written it */

static void
chat_worker_pid_remove(const char *file)
{
    long   pid;
    FILE  *f;

    f = fopen(file, "r");
    if (f == NULL) {
        return;
    }

    if (fscanf(f, "%ld", &pid) == 1 && pid == (long) getpid()) {
        (void) unlink(file);
    }

    fclose(f);
}


void
chat_log(chat_log_level_e level, const char *event, const char *fmt, ...)
{
    char             ts[32], line[8192];
    int              n;
    va_list          args;
    struct tm        tm;
    struct timespec  now;

    if (level < chat_log_min) {
        return;
    }

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

    n = snprintf(line, sizeof(line), "ts=%s.%03ldZ level=%s role=%s "
                 "event=%s", ts, now.tv_nsec / 1000000,
                 chat_log_levels[level], chat_log_role, event);

    if (fmt && *fmt && n > 0 && (size_t) n < sizeof(line) - 2) {
        line[n++] = ' ';
        va_start(args, fmt);
        n += vsnprintf(line + n, sizeof(line) - n, fmt, args);
        va_end(args);
    }

    if (n < 0 || (size_t) n >= sizeof(line) - 1) {
        n = sizeof(line) - 2;
    }

    line[n++] = '\n';

    /* one write: lines of librdkafka's threads do not interleave */
    (void) !write(STDERR_FILENO, line, n);
}


const char *
chat_log_quote(const char *s, char *buf, size_t size)
{
    size_t       n;
    const char  *p;

    if (s == NULL) {
        return "-";
    }

    if (*s && strpbrk(s, " \t\n\r\"=\\") == NULL) {
        return s;
    }

    n = 0;
    buf[n++] = '"';

    for (p = s; *p && n + 4 < size; p++) {
        if (*p == '"' || *p == '\\') {
            buf[n++] = '\\';
            buf[n++] = *p;

        } else if (*p == '\n' || *p == '\r' || *p == '\t') {
            /* libpq's messages end in a newline: keep one line */
            if (p[1] != '\0') {
                buf[n++] = ' ';
            }

        } else {
            buf[n++] = *p;
        }
    }

    buf[n++] = '"';
    buf[n] = '\0';

    return buf;
}


int64_t
chat_worker_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


int64_t
chat_worker_wall(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


void
chat_worker_sleep(int ms, int level)
{
    int              step;
    struct timespec  ts;

    while (ms > 0 && chat_worker_stop < level) {
        step = ms < 50 ? ms : 50;
        ts.tv_sec = 0;
        ts.tv_nsec = (long) step * 1000000;
        (void) nanosleep(&ts, NULL);
        ms -= step;
    }
}

