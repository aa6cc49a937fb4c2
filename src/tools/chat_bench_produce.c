
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-bench-produce: writes N one-to-one message records to chat.messages
 * as fast as the broker takes them (or --rate a second), in exactly the
 * shape the gateway produces (src/ngx_chat_send.c): key "d:<lo>:<hi>", value
 * {"id","seq","from","to","body","client_id","ts"}, seq counting up per
 * conversation, ids from chat_id.  For benchmarking the persistence worker
 * alone (scripts/bench.d/persist.sh).
 *
 * The local broker (librdkafka's mock) keeps only about 5 MiB per
 * partition and drops the oldest records beyond that, read or not.  So
 * with --max-lag it waits whenever consumer group --group has committed
 * more than that many records less than the end of any partition: the
 * worker is kept busy without the broker dropping what it has not
 * written yet.
 *
 * Each record's time from rd_kafka_producev() to its delivery report
 * is kept in a histogram and printed as ack_p50_ms .. ack_max_ms.  With
 * --rate, --linger 1 and --idempotence, which are the gateway's producer
 * settings (src/store/ngx_chat_kafka.c), that is the broker's share of
 * the gateway's send->ack time at that rate: what the broker and the
 * consumers reading from it cost a sender, without nginx or Redis.
 */


#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "bench_hist.h"
#include "chat_id.h"


#define CHAT_BP_CHECK_EVERY  2000
#define CHAT_BP_TIMEOUT      10000


typedef struct {
    const char   *brokers;
    const char   *topic;
    const char   *group;
    long          count;
    long          convs;
    long          body_size;
    long          words;
    long          max_lag;
    long          rate;
    long          linger;
    int           idempotence;
    int64_t       user_base;
} chat_bp_conf_t;


static void chat_bp_usage(FILE *out);
static void chat_bp_words(char *body, long size, long words, uint64_t seed);
static int64_t chat_bp_now(void);
static int64_t chat_bp_now_ns(void);
static int64_t chat_bp_lag(rd_kafka_t *rk, rd_kafka_t *gk, const char *topic);
static void chat_bp_dr(rd_kafka_t *rk, const rd_kafka_message_t *m,
    void *opaque);


static long          chat_bp_failed;
static bench_hist_t  chat_bp_acks;     /* ns from producev to report */


static void
chat_bp_usage(FILE *out)
{
    fprintf(out,
"usage: chat-bench-produce --brokers LIST --count N [options]\n"
"\n"
"  --brokers LIST        bootstrap servers (env KAFKA_BROKERS)\n"
"  --count N             records to write\n"
"  --topic T             default chat.messages\n"
"  --conversations N     one-to-one conversations, round robin (10000)\n"
"  --body-size N         bytes of each body (100)\n"
"  --words N             bodies of words w0..w<N-1> (log-uniform: w0 the\n"
"                        most frequent), not one word repeated; for the\n"
"                        search index's bench (0: off)\n"
"  --user-base N         first user id (default: from the clock, so that\n"
"                        runs do not share conversations)\n"
"  --group G --max-lag N wait while group G is more than N records behind\n"
"                        on any partition of the topic (default\n"
"                        chat-persist, 8000; 0: do not wait)\n"
"  --rate N              records per second, evenly (0: as fast as the\n"
"                        broker takes them, the default); a steady load\n"
"                        for the tests\n"
"  --linger MS           the producer's linger.ms (20; the gateway's: 1)\n"
"  --idempotence         enable.idempotence=true, as the gateway produces\n"
"\n"
"Prints one line: produced=N failed=F seconds=S rate=R user_base=B\n"
"ack_p50_ms ack_p99_ms ack_p999_ms ack_max_ms (each record's time from\n"
"being handed to librdkafka to its delivery report, acks=all)\n");
}


int
main(int argc, char **argv)
{
    int                  c;
    char                 err[512], key[64], *value, *body, id[CHAT_ID_LEN + 1],
                         linger[32];
    long                 i, conv;
    int64_t              start, lo, hi, from, to, ms, *seq, lag, due, now;
    size_t               vsize;
    const char          *env;
    rd_kafka_t          *rk, *gk;
    chat_id_gen_t        gen;
    rd_kafka_conf_t     *kc;
    chat_bp_conf_t       conf;
    rd_kafka_resp_err_t  e;

    static const struct option  longopts[] = {
        { "brokers",       required_argument, NULL, 'b' },
        { "count",         required_argument, NULL, 'n' },
        { "topic",         required_argument, NULL, 't' },
        { "conversations", required_argument, NULL, 'c' },
        { "body-size",     required_argument, NULL, 's' },
        { "words",         required_argument, NULL, 'w' },
        { "user-base",     required_argument, NULL, 'u' },
        { "group",         required_argument, NULL, 'g' },
        { "max-lag",       required_argument, NULL, 'l' },
        { "rate",          required_argument, NULL, 'r' },
        { "linger",        required_argument, NULL, 'L' },
        { "idempotence",   no_argument,       NULL, 'i' },
        { "help",          no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };

    memset(&conf, 0, sizeof(conf));
    env = getenv("KAFKA_BROKERS");
    conf.brokers = env && *env ? env : NULL;
    conf.topic = "chat.messages";
    conf.group = "chat-persist";
    conf.convs = 10000;
    conf.body_size = 100;
    conf.max_lag = 8000;
    conf.linger = 20;
    conf.user_base = 1000000000000LL + (int64_t) (time(NULL) % 100000)
                                       * 1000000;

    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b': conf.brokers = optarg; break;
        case 'n': conf.count = atol(optarg); break;
        case 't': conf.topic = optarg; break;
        case 'c': conf.convs = atol(optarg); break;
        case 's': conf.body_size = atol(optarg); break;
        case 'w': conf.words = atol(optarg); break;
        case 'u': conf.user_base = atoll(optarg); break;
        case 'g': conf.group = optarg; break;
        case 'l': conf.max_lag = atol(optarg); break;
        case 'r': conf.rate = atol(optarg); break;
        case 'L': conf.linger = atol(optarg); break;
        case 'i': conf.idempotence = 1; break;
        case 'h': chat_bp_usage(stdout); return 0;
        default: chat_bp_usage(stderr); return 2;
        }
    }

    if (conf.brokers == NULL || conf.count <= 0 || conf.convs <= 0
        || conf.convs > 500000 || conf.body_size < 0
        || conf.body_size > 65536 || conf.user_base <= 0
        || conf.words < 0 || conf.words > 1000000
        || conf.rate < 0 || conf.rate > 10000000
        || conf.linger < 0 || conf.linger > 900000)
    {
        chat_bp_usage(stderr);
        return 2;
    }

    bench_hist_init(&chat_bp_acks);
    snprintf(linger, sizeof(linger), "%ld", conf.linger);
    kc = rd_kafka_conf_new();

    if (rd_kafka_conf_set(kc, "bootstrap.servers", conf.brokers, err,
                          sizeof(err)) != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(kc, "acks", "all", err, sizeof(err))
           != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(kc, "enable.idempotence",
                             conf.idempotence ? "true" : "false", err,
                             sizeof(err)) != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(kc, "linger.ms", linger, err, sizeof(err))
           != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(kc, "batch.num.messages", "10000", err,
                             sizeof(err)) != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(kc, "queue.buffering.max.messages", "20000",
                             err, sizeof(err)) != RD_KAFKA_CONF_OK)
    {
        fprintf(stderr, "chat-bench-produce: %s\n", err);
        return 1;
    }

    rd_kafka_conf_set_dr_msg_cb(kc, chat_bp_dr);

    rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
    if (rk == NULL) {
        fprintf(stderr, "chat-bench-produce: %s\n", err);
        return 1;
    }

    /* a handle of the group for its committed offsets; it joins nothing */
    gk = NULL;

    if (conf.max_lag > 0) {
        kc = rd_kafka_conf_new();

        if (rd_kafka_conf_set(kc, "bootstrap.servers", conf.brokers, err,
                              sizeof(err)) != RD_KAFKA_CONF_OK
            || rd_kafka_conf_set(kc, "group.id", conf.group, err,
                                 sizeof(err)) != RD_KAFKA_CONF_OK
            || (gk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err)))
               == NULL)
        {
            fprintf(stderr, "chat-bench-produce: %s\n", err);
            return 1;
        }
    }

    seq = calloc(conf.convs, sizeof(int64_t));
    vsize = conf.body_size + 512;
    value = malloc(vsize);
    body = malloc(conf.body_size + 1);

    if (seq == NULL || value == NULL || body == NULL) {
        fprintf(stderr, "chat-bench-produce: out of memory\n");
        return 1;
    }

    memset(body, 'x', conf.body_size);
    memcpy(body, "benchmark ", conf.body_size < 10 ? conf.body_size : 10);
    body[conf.body_size] = '\0';

    chat_id_gen_init(&gen, 0xbe, (uint16_t) getpid());
    start = chat_bp_now();

    for (i = 0; i < conf.count; i++) {
        if (gk && i % CHAT_BP_CHECK_EVERY == 0 && i > 0) {
            for ( ;; ) {
                lag = chat_bp_lag(rk, gk, conf.topic);

                if (lag < 0 || lag <= conf.max_lag) {
                    break;
                }

                rd_kafka_poll(rk, 50);
            }
        }

        if (conf.rate) {
            /* record i is due i / rate seconds after the start */
            due = start + (int64_t) ((double) i * 1000 / conf.rate);

            while ((now = chat_bp_now()) < due) {
                rd_kafka_poll(rk, (int) (due - now < 10 ? due - now : 10));
            }
        }

        if (conf.words) {
            chat_bp_words(body, conf.body_size, conf.words, (uint64_t) i);
        }

        conv = i % conf.convs;
        lo = conf.user_base + 2 * conv;
        hi = lo + 1;
        from = (i / conf.convs) % 2 ? hi : lo;
        to = from == lo ? hi : lo;
        seq[conv]++;

        ms = (int64_t) time(NULL) * 1000;
        chat_id_next(&gen, (uint64_t) ms, id);

        snprintf(key, sizeof(key), "d:%" PRId64 ":%" PRId64, lo, hi);
        snprintf(value, vsize,
                 "{\"id\":\"%s\",\"seq\":%" PRId64 ",\"from\":%" PRId64
                 ",\"to\":%" PRId64 ",\"body\":\"%s %ld\",\"client_id\":"
                 "\"b-%ld\",\"ts\":%" PRId64 "}", id, seq[conv], from, to,
                 body, i, i, ms);

        for ( ;; ) {
            e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(conf.topic),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_KEY(key, strlen(key)),
                                  RD_KAFKA_V_VALUE(value, strlen(value)),
                                  RD_KAFKA_V_OPAQUE((void *) (intptr_t)
                                                    chat_bp_now_ns()),
                                  RD_KAFKA_V_END);

            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                break;
            }

            rd_kafka_poll(rk, 10);
        }

        if (e) {
            fprintf(stderr, "chat-bench-produce: %s\n", rd_kafka_err2str(e));
            return 1;
        }

        rd_kafka_poll(rk, 0);
    }

    while (rd_kafka_outq_len(rk) > 0) {
        rd_kafka_flush(rk, 1000);
    }

    printf("produced=%ld failed=%ld seconds=%.2f rate=%.0f user_base=%"
           PRId64 " ack_p50_ms=%.3f ack_p99_ms=%.3f ack_p999_ms=%.3f"
           " ack_max_ms=%.3f\n", conf.count - chat_bp_failed, chat_bp_failed,
           (chat_bp_now() - start) / 1000.0,
           conf.count * 1000.0 / (double) (chat_bp_now() - start + 1),
           conf.user_base,
           bench_hist_quantile(&chat_bp_acks, 0.5) / 1e6,
           bench_hist_quantile(&chat_bp_acks, 0.99) / 1e6,
           bench_hist_quantile(&chat_bp_acks, 0.999) / 1e6,
           bench_hist_quantile(&chat_bp_acks, 1.0) / 1e6);

    free(seq);
    free(value);
    free(body);

    if (gk) {
        rd_kafka_destroy(gk);
    }

    rd_kafka_destroy(rk);

    return chat_bp_failed ? 1 : 0;
}


static int64_t
chat_bp_now(void)
{
    return chat_bp_now_ns() / 1000000;
}


static int64_t
chat_bp_now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}


/*
 * The most records of one partition of the topic not yet committed by the
 * group; -1: unknown
 */

static int64_t
chat_bp_lag(rd_kafka_t *rk, rd_kafka_t *gk, const char *topic)
{
    int                               i;
    int64_t                           lo, hi, lag, n;
    rd_kafka_topic_t                 *rkt;
    rd_kafka_topic_partition_list_t  *list;
    const struct rd_kafka_metadata   *md;

    rkt = rd_kafka_topic_new(rk, topic, NULL);

    if (rd_kafka_metadata(rk, 0, rkt, &md, CHAT_BP_TIMEOUT) != 0) {
        rd_kafka_topic_destroy(rkt);
        return -1;
    }

    rd_kafka_topic_destroy(rkt);
    list = rd_kafka_topic_partition_list_new(16);

    for (i = 0; md->topic_cnt == 1 && i < md->topics[0].partition_cnt; i++) {
        rd_kafka_topic_partition_list_add(list, topic,
                                          md->topics[0].partitions[i].id);
    }

    rd_kafka_metadata_destroy(md);
    lag = -1;

    if (rd_kafka_committed(gk, list, CHAT_BP_TIMEOUT) == 0) {
        lag = 0;

        for (i = 0; i < list->cnt; i++) {
            if (rd_kafka_query_watermark_offsets(rk, topic,
                                                 list->elems[i].partition,
                                                 &lo, &hi, CHAT_BP_TIMEOUT)
                != 0)
            {
                lag = -1;
                break;
            }

            n = hi - (list->elems[i].offset >= 0 ? list->elems[i].offset
                                                  : lo);
            lag = n > lag ? n : lag;
        }
    }

    rd_kafka_topic_partition_list_destroy(list);

    return lag;
}


static void
chat_bp_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    int64_t  sent, now;

    (void) rk;
    (void) opaque;

    if (m->err) {
        chat_bp_failed++;
        return;
    }

    /* the time it was handed over, set by rd_kafka_producev() above */
    sent = (int64_t) (intptr_t) m->_private;
    now = chat_bp_now_ns();

    if (sent > 0 && now >= sent) {
        bench_hist_record(&chat_bp_acks, (uint64_t) (now - sent));
    }
}


/*
 * size bytes of words "w<k>" separated by spaces, k log-uniform in
 * 0..words-1 (k = words^u - 1, u uniform: a few words are frequent, most
 * are rare, as in text), the same for the same seed
 */

static void
chat_bp_words(char *body, long size, long words, uint64_t seed)
{
    int       n;
    long      k, len;
    double    u;
    uint64_t  x;

    x = seed * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL;
    len = 0;

    while (len < size) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        u = (double) (x >> 11) / 9007199254740992.0;    /* 2^53 */
        k = (long) pow((double) words, u) - 1;
        k = k < 0 ? 0 : (k >= words ? words - 1 : k);

        n = snprintf(body + len, size - len + 1, "%sw%ld", len ? " " : "",
                     k);
        if (n <= 0 || len + n > size) {
            break;
        }

        len += n;
    }

    body[len] = '\0';
}
