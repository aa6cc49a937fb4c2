
/*
 * chat-bench: the WebSocket load generator of scripts/bench.
 *
 * One parent forks --procs children; each child holds a contiguous share
 * of the users (both users of a pair in the same child) in one epoll
 * loop: non-blocking sockets bound round-robin to 127.0.0.1..127.0.0.N
 * (--src-addrs; one address pair has ~28k ports), masked client frames,
 * pongs for pings, timed handshakes, reconnects with full-jitter
 * exponential backoff.  RLIMIT_NOFILE is raised to the hard limit.
 *
 * A run goes in phases, driven by the parent over pipes:
 *   connect   every child opens its connections (at most --inflight
 *             handshakes at a time) and reports; the parent prints one
 *             "phase=connect" line: handshake rate, p50/p99/max.
 *   steps     idle: hold --hold seconds (or until --ready-file, written
 *             once all are connected, is removed); pair/fanout: one step
 *             per rate (--rates, or --search for the highest rate that
 *             meets --slo-ms); storm: drop every connection at once and
 *             reconnect; presence: users go offline and come back at a
 *             given rate, their friends count the presence frames.  One
 *             "phase=step" line per step.
 *   quit      every connection is reset, the children exit.
 *
 * Sending is open-loop: the k-th message of a child is due at
 * t0 + (k + phase) / rate on CLOCK_MONOTONIC, whatever happened to the
 * ones before; its body carries that intended time (bench_proto.h), and
 * latency is measured from it, so a stalled server or generator shows
 * in the figures instead of being omitted.  Latencies go into
 * log-linear histograms (bench_hist.h) that the parent merges.
 *
 * Targets:
 *   chat    GET /v1/ws with "Authorization: Bearer <JWT>" minted from
 *           --jwt-secret for user --user-base + i; sends
 *           {"type":"send","to":U,"client_id":<stamp>,"body":<stamp...>}
 *           and times the "ack" (send->ack) and the "message" frame at
 *           the peer (send->receive), which answers with a delivered
 *           receipt (--receipts 0: not).  Pair with
 *           --offline-receivers 1: only the even users connect, each
 *           sending to the odd one after it, who never connects (the push
 *           workload: its messages go to offline users, whose devices
 *           chat-worker push notifies); send->ack alone is timed and
 *           nothing is expected to arrive.  Fan-out: user 0 sends
 *           {"type":"send","group":G,...} to --group G, whose members
 *           are the other users; the group seq of each message is
 *           checked to be the same at every member and to grow.
 *           Presence (chat only): the even users of
 *           --conns ("togglers") are each a friend of --friends odd
 *           ones ("watchers", who stay connected; scripts/bench makes
 *           the friendships); toggle j closes toggler j at
 *           t0 + j / rate and connects it again --away seconds later,
 *           and the watchers time the two presence frames each toggle
 *           causes from those intended times.
 *   nchan   user i subscribes on /sub/u<base+i> (WebSocket); a sender
 *           also holds a publisher WebSocket on /pub/u<peer>, whose
 *           per-message answer (nchan's channel info) is the "ack".
 *           Fan-out: every receiver on /sub/f<base>, the sender on
 *           /pub/f<base>.
 *
 * Output: key=value lines on stdout; diagnostics on stderr.
 */


#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#include "chat_base64.h"
#include "chat_jwt.h"
#include "chat_ws.h"
#include "bench_hist.h"
#include "bench_proto.h"


#define BENCH_TARGET_CHAT    0
#define BENCH_TARGET_NCHAN   1

#define BENCH_MODE_IDLE      0
#define BENCH_MODE_PAIR      1
#define BENCH_MODE_FANOUT    2
#define BENCH_MODE_STORM     3
#define BENCH_MODE_PRESENCE  4

#define BENCH_DOWN           0   /* closed; retried at t_retry if want */
#define BENCH_CONNECT        1   /* TCP connect in progress */
#define BENCH_HANDSHAKE      2   /* request sent, waiting for the 101 */
#define BENCH_OPEN           3

#define BENCH_RX             0   /* chat: the user's socket; nchan: sub */
#define BENCH_TX             1   /* nchan: the publisher socket */

#define BENCH_OP_STEP        1
#define BENCH_OP_QUIT        2

#define BENCH_MSG_READY      1
#define BENCH_MSG_STEP       2

#define BENCH_RBUF           (256 * 1024)
#define BENCH_MAX_MESSAGE    (1024 * 1024)
#define BENCH_SWEEP_MS       10
#define BENCH_HEARTBEAT_MS   100  /* how often heartbeats are looked at */
#define BENCH_MAX_ADDRS      250
#define BENCH_MAX_PROCS      64
#define BENCH_STEP_BITS      6    /* the step number in a stamp's run */
#define BENCH_MAX_STEPS      (1 << BENCH_STEP_BITS)
#define BENCH_NS             1000000000ULL
#define BENCH_MS             1000000ULL


typedef struct {
    int          fd;
    uint32_t     user;          /* local user index */
    uint8_t      state;
    uint8_t      role;
    uint8_t      want;          /* keep it connected */
    uint8_t      queued;        /* in the start queue */
    uint8_t      pollout;       /* EPOLLOUT is in its epoll events */
    uint16_t     attempt;       /* failures since the last handshake */
    uint16_t     snap_left;     /* presence frames of the connect to come */
    uint32_t     gid;           /* global connection number: src addr */
    uint64_t     t_start;       /* of the current connect */
    uint64_t     t_retry;
    uint64_t     t_drop;        /* storm: when it was dropped, or 0 */
    char        *in;            /* handshake head, then one message */
    size_t       in_len;
    size_t       in_cap;
    char        *out;
    size_t       out_len;
    size_t       out_off;
    size_t       out_cap;
    uint64_t    *fifo;          /* nchan publisher: intended send times */
    uint32_t     fifo_head;
    uint32_t     fifo_len;
    uint32_t     fifo_cap;
    char         key[28];       /* Sec-WebSocket-Key, NUL-terminated */
    chat_ws_parser_t  ws;
} bench_conn_t;


typedef struct {
    uint32_t       g;           /* global user index */
    uint64_t       id;          /* user id (chat) or channel number */
    uint64_t       peer;        /* to whom it sends */
    bench_conn_t  *rx;
    bench_conn_t  *tx;          /* == rx for chat */
    uint64_t       seq;         /* sent in this step */
    uint64_t      *seen;        /* received seqs of this step, a bitmap */
    size_t         seen_words;
    uint64_t       top;         /* highest seq received + 1 */
} bench_user_t;


typedef struct {
    uint64_t      conns;
    uint64_t      open;         /* at the end of the phase */
    uint64_t      connected;    /* handshakes that succeeded */
    uint64_t      hs_fail;
    uint64_t      t_first;      /* connect phase: first handshake start */
    uint64_t      t_last;       /* and last completion */
    uint64_t      sent;         /* all of the step, warm-up included */
    uint64_t      sent_measured;
    uint64_t      skipped;      /* due while the sender was not open */
    uint64_t      acked;
    uint64_t      received;     /* distinct messages of this step */
    uint64_t      dup;
    uint64_t      reordered;
    uint64_t      stale;        /* of another run or step */
    uint64_t      errors;       /* error frames */
    uint64_t      drops;        /* connections lost unasked */
    uint64_t      dropped;      /* storm: connections dropped */
    uint64_t      reconnected;  /* storm: and back */
    uint64_t      cpu_us;       /* this process's CPU time in the step */
    uint64_t      nseq;         /* fan-out: entries in last[]/nrecv[] */
    uint64_t      rcv_measured; /* presence: events of measured toggles */
    uint64_t      snap;         /* presence: frames of the state at connect */
    uint64_t      echo;         /* fan-out: the sender got its own message */
    uint64_t      seq_bad;      /* fan-out, chat: a message whose group seq
                                 * differs between members, or that does
                                 * not grow with the send order */
    bench_hist_t  hs;
    bench_hist_t  ack;
    bench_hist_t  rcv;
    bench_hist_t  lag;          /* actual minus intended send time */
    bench_hist_t  rc;           /* storm: drop to reconnected */
    bench_hist_t  pon;          /* presence: reconnect to friend told */
    bench_hist_t  poff;         /* presence: close to friend told */
} bench_stats_t;


typedef struct {
    uint32_t  op;
    uint32_t  step;
    uint64_t  t0;
    double    rate;             /* messages/s, all processes together */
    uint64_t  warmup;
    uint64_t  duration;
    uint64_t  drain;
} bench_cmd_t;


typedef struct {
    uint32_t  type;
    uint32_t  pad;
    uint64_t  len;
} bench_msg_hdr_t;


typedef struct {
    /* options */
    int            target;
    int            mode;
    const char    *host;
    int            port;
    const char    *path;
    int            procs;
    int            naddrs;
    uint64_t       conns;       /* idle, storm */
    uint64_t       pairs;
    uint64_t       receivers;
    uint64_t       base;
    uint64_t       group;
    uint64_t       token_uid;   /* --token: print one and exit */
    int            receipts;    /* chat: answer messages with receipts */
    int            offline;     /* pair: the odd users never connect */
    const char    *secret_file;
    unsigned char  secret[256];
    size_t         secret_len;
    size_t         payload;
    double         rates[BENCH_MAX_STEPS];
    int            nrates;
    int            search;
    double         search_start;
    double         search_max;
    double         slo_ms;
    int            slo;         /* 0 auto, 1 ack, 2 rcv */
    int            bisect;
    double         at[8];       /* fractions of the found rate */
    int            nat;
    double         warmup;
    double         duration;
    double         drain;
    double         hold;
    const char    *ready_file;
    int            inflight;
    double         hs_timeout;
    double         connect_timeout;
    double         backoff_base;
    double         backoff_cap;
    double         storm_rate;
    uint64_t       friends;     /* presence: each toggler's watchers */
    double         away;        /* presence: seconds offline */
    double         heartbeat;   /* seconds between a client's pings */
    int            verbose;

    /* derived */
    uint64_t       users;       /* global */
    uint32_t       run;         /* random, low bits free for the step */
    struct sockaddr_in  dst;

    /* child */
    int            proc;
    uint32_t       u_lo;
    uint32_t       u_hi;
    bench_user_t  *user;
    uint32_t       nuser;
    bench_conn_t  *conn;
    uint32_t       nconn;
    uint32_t      *queue;       /* connections to start, a ring */
    uint32_t       q_head;
    uint32_t       q_len;
    int            ep;
    int            tfd;
    int            cmd_fd;
    int            res_fd;
    int            running;     /* inflight handshakes */
    uint32_t       waiting;     /* down, to be retried (for the sweep) */
    uint32_t       nopen;       /* connections open now */
    uint64_t       snap_pending; /* presence frames of connects to come */
    int            quitting;
    unsigned char *rbuf;
    uint64_t       rng;

    /* the step in progress */
    int            in_step;
    bench_cmd_t    cmd;
    uint32_t       step_run;
    uint64_t       t_measure;   /* intended times from here are measured */
    uint64_t       t_stop_send;
    uint64_t       t_end;
    uint64_t       k;           /* messages scheduled so far */
    double         interval;    /* ns between this process's messages */
    double         phase;
    uint32_t      *senders;
    uint32_t       nsenders;
    uint64_t       max_seq;     /* fan-out: per-seq arrays' size */
    uint64_t      *last;        /* fan-out: latest receive per seq */
    uint32_t      *nrecv;       /* fan-out: receivers that got it */
    uint64_t      *gseq;        /* fan-out, chat: the group seq it had */
    uint64_t       cpu0;
    int            stormed;     /* storm: the connections were dropped */
    uint64_t       ntoggle;     /* presence: toggles in this step */
    uint64_t       k_off;       /* presence: next toggle to close */
    uint64_t       k_on;        /* presence: next toggle to reconnect */
    uint64_t       k_hi;        /* presence: this process's togglers end */
    uint64_t       hb_base;
    uint64_t       hb_last;     /* heartbeats were looked at */
    bench_stats_t *st;
} bench_t;


static bench_t  B;
static int      bench_logged;


static void bench_usage(int rc);
static void bench_die(const char *fmt, ...);
static void bench_log(const char *fmt, ...);
static uint64_t bench_now(void);
static uint64_t bench_rand(void);
static uint64_t bench_cpu_us(void);
static void bench_options(int argc, char **argv);
static int bench_parse_list(const char *s, double *out, int max);
static void bench_read_secret(void);
static void bench_print_token(void);
static void bench_raise_nofile(uint64_t need);
static void bench_child(int proc, int cmd_fd, int res_fd);
static void bench_child_setup(void);
static int bench_user_sends(uint32_t g);
static void bench_storm(uint64_t now);
static void bench_heartbeats(uint64_t now);
static void bench_stats_merge(bench_stats_t *into,
    const bench_stats_t *from);
static void bench_stats_init(bench_stats_t *st);
static const char *bench_target_name(void);
static const char *bench_mode_name(void);
static void bench_send_all(int *cmd_w, const bench_cmd_t *cmd);
static void bench_write_ready(const char *line);
static void bench_loop(void);
static void bench_sweep(uint64_t now);
static void bench_pump(uint64_t now);
static void bench_enqueue(bench_conn_t *c);
static void bench_conn_start(bench_conn_t *c, uint64_t now);
static void bench_conn_event(bench_conn_t *c, uint32_t events);
static void bench_conn_connected(bench_conn_t *c);
static void bench_conn_read(bench_conn_t *c);
static void bench_conn_head(bench_conn_t *c, size_t n);
static void bench_conn_frames(bench_conn_t *c, unsigned char *buf,
    size_t len);
static void bench_conn_message(bench_conn_t *c);
static void bench_conn_flush(bench_conn_t *c);
static void bench_conn_epoll(bench_conn_t *c, int op);
static void bench_conn_fail(bench_conn_t *c, const char *why, int hs);
static void bench_conn_close(bench_conn_t *c, int reset);
static int bench_conn_frame(bench_conn_t *c, int opcode, const char *data,
    size_t len);
static int bench_buf_add(char **buf, size_t *len, size_t *cap,
    const void *data, size_t n);
static void bench_recv_stamp(bench_conn_t *c, const char *s, size_t len);
static int bench_seen(bench_user_t *u, uint64_t n);
static void bench_presence_frame(bench_conn_t *c);
static uint64_t bench_toggle_time(uint64_t k, int online);
static void bench_presence_due(uint64_t now);
static void bench_toggle(uint64_t k, int online, uint64_t t, uint64_t now);
static void bench_send_due(uint64_t now);
static void bench_send_one(bench_user_t *u, uint64_t t, uint64_t now);
static void bench_step_start(const bench_cmd_t *cmd);
static void bench_step_end(void);
static void bench_report(uint32_t type);
static void bench_timer_arm(uint64_t at);
static void bench_command(void);
static void bench_parent(pid_t *pids, int *cmd_w, int *res_r);
static int bench_collect(int *res_r, uint32_t type, bench_stats_t *sum,
    uint64_t **last, uint32_t **nrecv, uint64_t **gseq);
static void bench_read_full(int fd, void *buf, size_t len);
static void bench_write_full(int fd, const void *buf, size_t len);
static double bench_run_step(int *cmd_w, int *res_r, uint32_t step,
    double rate, const char *label, int *ok, int *tp_ok);
static void bench_print_hist(const char *name, const bench_hist_t *h);


static void
bench_usage(int rc)
{
    fprintf(rc ? stderr : stdout,
"usage: chat-bench --target chat|nchan\n"
"  --mode idle|pair|fanout|storm|presence\n"
"  [--host 127.0.0.1] [--port 8080] [--path /v1/ws]\n"
"  [--procs 2] [--src-addrs 4]      processes; source 127.0.0.1..N\n"
"  [--conns N]                      idle, storm, presence: users\n"
"  [--pairs N]                      pair: user pairs\n"
"  [--receivers N] [--group G]      fanout: receivers; chat: group id\n"
"  [--receipts 1]                   chat: 0: receive without receipts\n"
"  [--offline-receivers 0]          pair, chat: 1: the receivers (odd\n"
"                                   users) stay offline, the even send\n"
"  [--token UID]                    chat: print a token for UID, exit\n"
"  [--user-base B]                  users B.. (chat ids, nchan channels)\n"
"  [--jwt-secret FILE]              chat: HS256 secret to mint tokens\n"
"  [--payload 100]                  body bytes\n"
"  [--rates R1,R2,...]              pair, fanout: msgs/s per step\n"
"  [--search START] [--search-max R] [--slo-ms 10] [--slo auto|ack|rcv]\n"
"  [--bisect 3] [--at 0.25,0.5,0.75]\n"
"  [--warmup 1] [--duration 5] [--drain 2] (seconds)\n"
"  [--hold 5] [--ready-file F]      idle\n"
"  [--storm-rate R]                 storm: pair traffic meanwhile\n"
"  [--friends 10] [--away 1]        presence: watchers per toggler,\n"
"                                   seconds offline (--rates: toggles/s)\n"
"  [--heartbeat S]                  every connection pings every S s\n"
"  [--inflight 128] [--hs-timeout 10] [--connect-timeout 120]\n"
"  [--backoff-base 0.5] [--backoff-cap 10] [--verbose]\n");
    exit(rc);
}


static void
bench_die(const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    fprintf(stderr, "chat-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);

    exit(1);
}


/* at most 20 lines per process unless --verbose: runs have many sockets */
static void
bench_log(const char *fmt, ...)
{
    va_list  ap;

    if (!B.verbose && ++bench_logged > 20) {
        return;
    }

    va_start(ap, fmt);
    fprintf(stderr, "chat-bench[%d]: ", B.proc);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}


static uint64_t
bench_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * BENCH_NS + (uint64_t) ts.tv_nsec;
}


/* xorshift64*: masks, jitter and keys need no more */
static uint64_t
bench_rand(void)
{
    B.rng ^= B.rng >> 12;
    B.rng ^= B.rng << 25;
    B.rng ^= B.rng >> 27;

    return B.rng * 0x2545f4914f6cdd1dULL;
}


static uint64_t
bench_cpu_us(void)
{
    struct rusage  ru;

    getrusage(RUSAGE_SELF, &ru);

    return (uint64_t) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000
           + (uint64_t) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}


static int
bench_parse_list(const char *s, double *out, int max)
{
    int    n;
    char  *end;

    n = 0;

    while (*s) {
        if (n == max) {
            bench_die("too many values in \"%s\"", s);
        }

        out[n] = strtod(s, &end);
        if (end == s || out[n] <= 0) {
            bench_die("bad number list \"%s\"", s);
        }

        n++;
        s = (*end == ',') ? end + 1 : end;
        if (*end != ',' && *end != '\0') {
            bench_die("bad number list");
        }
    }

    return n;
}


static void
bench_options(int argc, char **argv)
{
    int          i;
    const char  *o, *v;

    B.target = -1;
    B.mode = -1;
    B.host = "127.0.0.1";
    B.port = 8080;
    B.path = "/v1/ws";
    B.procs = 2;
    B.naddrs = 4;
    B.base = 1;
    B.payload = 100;
    B.slo_ms = 10;
    B.bisect = 3;
    B.warmup = 1;
    B.duration = 5;
    B.drain = 2;
    B.hold = 5;
    B.inflight = 128;
    B.hs_timeout = 10;
    B.connect_timeout = 120;
    B.backoff_base = 0.5;
    B.backoff_cap = 10;
    B.friends = 10;
    B.away = 1;
    B.receipts = 1;

    for (i = 1; i < argc; i++) {
        o = argv[i];

        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            bench_usage(0);
        }

        if (strcmp(o, "--verbose") == 0) {
            B.verbose = 1;
            continue;
        }

        if (i + 1 >= argc) {
            bench_usage(2);
        }

        v = argv[++i];

        if (strcmp(o, "--target") == 0) {
            B.target = strcmp(v, "chat") == 0 ? BENCH_TARGET_CHAT
                       : strcmp(v, "nchan") == 0 ? BENCH_TARGET_NCHAN : -2;
        } else if (strcmp(o, "--mode") == 0) {
            B.mode = strcmp(v, "idle") == 0 ? BENCH_MODE_IDLE
                     : strcmp(v, "pair") == 0 ? BENCH_MODE_PAIR
                     : strcmp(v, "fanout") == 0 ? BENCH_MODE_FANOUT
                     : strcmp(v, "storm") == 0 ? BENCH_MODE_STORM
                     : strcmp(v, "presence") == 0 ? BENCH_MODE_PRESENCE
                     : -2;
        } else if (strcmp(o, "--host") == 0) {
            B.host = v;
        } else if (strcmp(o, "--port") == 0) {
            B.port = atoi(v);
        } else if (strcmp(o, "--path") == 0) {
            B.path = v;
        } else if (strcmp(o, "--procs") == 0) {
            B.procs = atoi(v);
        } else if (strcmp(o, "--src-addrs") == 0) {
            B.naddrs = atoi(v);
        } else if (strcmp(o, "--conns") == 0) {
            B.conns = strtoull(v, NULL, 10);
        } else if (strcmp(o, "--pairs") == 0) {
            B.pairs = strtoull(v, NULL, 10);
        } else if (strcmp(o, "--receivers") == 0) {
            B.receivers = strtoull(v, NULL, 10);
        } else if (strcmp(o, "--group") == 0) {
            B.group = strtoull(v, NULL, 10);
        } else if (strcmp(o, "--token") == 0) {
            B.token_uid = strtoull(v, NULL, 10);
        } else if (strcmp(o, "--receipts") == 0) {
            B.receipts = atoi(v);
        } else if (strcmp(o, "--offline-receivers") == 0) {
            B.offline = atoi(v);
        } else if (strcmp(o, "--user-base") == 0) {
            B.base = strtoull(v, NULL, 10);
        } else if (strcmp(o, "--jwt-secret") == 0) {
            B.secret_file = v;
        } else if (strcmp(o, "--payload") == 0) {
            B.payload = strtoull(v, NULL, 10);
        } else if (strcmp(o, "--rates") == 0) {
            B.nrates = bench_parse_list(v, B.rates, BENCH_MAX_STEPS / 2);
        } else if (strcmp(o, "--search") == 0) {
            B.search = 1;
            B.search_start = strtod(v, NULL);
        } else if (strcmp(o, "--search-max") == 0) {
            B.search_max = strtod(v, NULL);
        } else if (strcmp(o, "--slo-ms") == 0) {
            B.slo_ms = strtod(v, NULL);
        } else if (strcmp(o, "--slo") == 0) {
            B.slo = strcmp(v, "ack") == 0 ? 1 : strcmp(v, "rcv") == 0 ? 2
                    : strcmp(v, "auto") == 0 ? 0 : -1;
        } else if (strcmp(o, "--bisect") == 0) {
            B.bisect = atoi(v);
        } else if (strcmp(o, "--at") == 0) {
            B.nat = bench_parse_list(v, B.at, 8);
        } else if (strcmp(o, "--warmup") == 0) {
            B.warmup = strtod(v, NULL);
        } else if (strcmp(o, "--duration") == 0) {
            B.duration = strtod(v, NULL);
        } else if (strcmp(o, "--drain") == 0) {
            B.drain = strtod(v, NULL);
        } else if (strcmp(o, "--hold") == 0) {
            B.hold = strtod(v, NULL);
        } else if (strcmp(o, "--ready-file") == 0) {
            B.ready_file = v;
        } else if (strcmp(o, "--storm-rate") == 0) {
            B.storm_rate = strtod(v, NULL);
        } else if (strcmp(o, "--friends") == 0) {
            B.friends = strtoull(v, NULL, 10);
        } else if (strcmp(o, "--away") == 0) {
            B.away = strtod(v, NULL);
        } else if (strcmp(o, "--heartbeat") == 0) {
            B.heartbeat = strtod(v, NULL);
        } else if (strcmp(o, "--inflight") == 0) {
            B.inflight = atoi(v);
        } else if (strcmp(o, "--hs-timeout") == 0) {
            B.hs_timeout = strtod(v, NULL);
        } else if (strcmp(o, "--connect-timeout") == 0) {
            B.connect_timeout = strtod(v, NULL);
        } else if (strcmp(o, "--backoff-base") == 0) {
            B.backoff_base = strtod(v, NULL);
        } else if (strcmp(o, "--backoff-cap") == 0) {
            B.backoff_cap = strtod(v, NULL);
        } else {
            bench_usage(2);
        }
    }

    if (B.token_uid) {
        bench_print_token();
        exit(0);
    }

    if (B.target < 0 || B.mode < 0 || B.slo < 0) {
        bench_usage(2);
    }

    if (B.offline
        && (B.mode != BENCH_MODE_PAIR || B.target != BENCH_TARGET_CHAT))
    {
        bench_die("--offline-receivers: --mode pair --target chat only");
    }

    if (B.procs < 1 || B.procs > BENCH_MAX_PROCS || B.naddrs < 1
        || B.naddrs > BENCH_MAX_ADDRS || B.inflight < 1 || B.port < 1
        || B.port > 65535 || B.payload > 16384 || B.duration <= 0
        || B.warmup < 0 || B.drain < 0 || B.heartbeat < 0
        || (B.heartbeat > 0 && B.heartbeat < 0.5))
    {
        bench_die("an option is out of range");
    }

    switch (B.mode) {

    case BENCH_MODE_IDLE:
    case BENCH_MODE_STORM:
        if (B.conns == 0) {
            bench_die("--conns is required");
        }

        if (B.mode == BENCH_MODE_STORM && B.storm_rate > 0
            && B.conns % 2)
        {
            bench_die("--storm-rate pairs the users: --conns must be even");
        }

        B.users = B.conns;
        break;

    case BENCH_MODE_PAIR:
        if (B.pairs == 0 || (B.nrates == 0 && !B.search)) {
            bench_die("pair: --pairs and --rates or --search are required");
        }

        B.users = 2 * B.pairs;
        break;

    case BENCH_MODE_PRESENCE:
        if (B.target != BENCH_TARGET_CHAT) {
            bench_die("presence: --target chat only");
        }

        if (B.conns < 2 || B.conns % 2 || B.nrates == 0 || B.search) {
            bench_die("presence: an even --conns and --rates are required");
        }

        if (B.friends == 0 || B.friends > B.conns / 2 || B.friends > 65535
            || B.away <= 0)
        {
            bench_die("presence: --friends 1..conns/2, --away > 0");
        }

        /* a toggler toggles once a step: its events are told apart */
        for (i = 0; i < B.nrates; i++) {
            if (B.rates[i] * (B.warmup + B.duration) > (double) B.conns / 2)
            {
                bench_die("presence: %.0f toggles/s for %.1f s need more"
                          " than --conns / 2 togglers", B.rates[i],
                          B.warmup + B.duration);
            }
        }

        B.users = B.conns;
        break;

    default: /* BENCH_MODE_FANOUT */
        if (B.receivers == 0 || (B.nrates == 0 && !B.search)) {
            bench_die("fanout: --receivers and --rates or --search are"
                      " required");
        }

        if (B.target == BENCH_TARGET_CHAT && B.group == 0) {
            bench_die("fanout with --target chat sends to a group:"
                      " --group is required");
        }

        B.users = B.receivers + 1;
        break;
    }

    if (B.search && B.search_start <= 0) {
        bench_die("--search needs a starting rate > 0");
    }

    if (B.users / (uint64_t) B.procs > 4000000) {
        bench_die("too many users per process");
    }

    if ((uint64_t) B.procs > B.users) {
        B.procs = (int) B.users;
    }

    if (B.target == BENCH_TARGET_CHAT) {
        if (B.secret_file == NULL) {
            bench_die("--target chat needs --jwt-secret");
        }

        bench_read_secret();
    }

    memset(&B.dst, 0, sizeof(B.dst));
    B.dst.sin_family = AF_INET;
    B.dst.sin_port = htons((uint16_t) B.port);

    if (inet_pton(AF_INET, B.host, &B.dst.sin_addr) != 1) {
        bench_die("--host must be an IPv4 address: %s", B.host);
    }
}


static void
bench_read_secret(void)
{
    int      fd;
    ssize_t  n;

    fd = open(B.secret_file, O_RDONLY);
    if (fd < 0) {
        bench_die("%s: %s", B.secret_file, strerror(errno));
    }

    n = read(fd, B.secret, sizeof(B.secret));
    close(fd);

    if (n < 0) {
        bench_die("%s: %s", B.secret_file, strerror(errno));
    }

    /* the module reads the file the same way: a trailing newline is not
     * part of the key */
    while (n > 0 && (B.secret[n - 1] == '\n' || B.secret[n - 1] == '\r')) {
        n--;
    }

    if ((size_t) n < CHAT_JWT_KEY_MIN_LEN) {
        bench_die("%s: shorter than %d bytes", B.secret_file,
                  CHAT_JWT_KEY_MIN_LEN);
    }

    B.secret_len = (size_t) n;
}


/* --token: one for scripts/bench's API requests (it makes the group) */
static void
bench_print_token(void)
{
    char    token[256];
    time_t  now;

    if (B.secret_file == NULL) {
        bench_die("--token needs --jwt-secret");
    }

    bench_read_secret();
    now = time(NULL);

    if (chat_jwt_sign(B.secret, B.secret_len, B.token_uid, now, now + 3600,
                      token, sizeof(token)) < 0)
    {
        bench_die("cannot sign a token for user %" PRIu64, B.token_uid);
    }

    printf("%s\n", token);
}


static void
bench_raise_nofile(uint64_t need)
{
    struct rlimit  rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        bench_die("getrlimit: %s", strerror(errno));
    }

    rl.rlim_cur = rl.rlim_max;

    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        bench_die("setrlimit: %s", strerror(errno));
    }

    if (need + 32 > rl.rlim_cur) {
        bench_die("a process would hold %" PRIu64 " sockets, but may open"
                  " %llu files: use more --procs", need,
                  (unsigned long long) rl.rlim_cur);
    }
}


int
main(int argc, char **argv)
{
    int       i, j, cmd[2], res[2];
    int       cmd_w[BENCH_MAX_PROCS], res_r[BENCH_MAX_PROCS];
    pid_t     pids[BENCH_MAX_PROCS];
    uint64_t  seed;

    bench_options(argc, argv);

    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) {
        seed = bench_now() ^ (uint64_t) getpid();
    }

    B.rng = seed | 1;
    B.run = (uint32_t) (bench_rand() >> 32) & ~(uint32_t) (BENCH_MAX_STEPS
                                                            - 1);
    B.proc = -1;

    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    for (i = 0; i < B.procs; i++) {
        if (pipe(cmd) != 0 || pipe(res) != 0) {
            bench_die("pipe: %s", strerror(errno));
        }

        pids[i] = fork();

        if (pids[i] < 0) {
            bench_die("fork: %s", strerror(errno));
        }

        if (pids[i] == 0) {
            close(cmd[1]);
            close(res[0]);

            /* the pipes of the children forked before this one */
            for (j = 0; j < i; j++) {
                close(cmd_w[j]);
                close(res_r[j]);
            }

            B.rng ^= (uint64_t) getpid() * 0x9e3779b97f4a7c15ULL;
            bench_child(i, cmd[0], res[1]);
            /* not reached */
        }

        close(cmd[0]);
        close(res[1]);
        cmd_w[i] = cmd[1];
        res_r[i] = res[0];
    }

    bench_parent(pids, cmd_w, res_r);

    return 0;
}


/* --- a child: its share of the users, one epoll loop ---------------------- */


static void
bench_child(int proc, int cmd_fd, int res_fd)
{
    B.proc = proc;
    B.cmd_fd = cmd_fd;
    B.res_fd = res_fd;

    bench_child_setup();
    bench_loop();

    exit(0);
}


static int
bench_user_sends(uint32_t g)
{
    switch (B.mode) {

    case BENCH_MODE_PAIR:
        return !B.offline || g % 2 == 0;

    case BENCH_MODE_FANOUT:
        return g == 0;

    case BENCH_MODE_STORM:
        return B.storm_rate > 0;

    case BENCH_MODE_PRESENCE:
        return g % 2 == 0;

    default:
        return 0;
    }
}


static void
bench_child_setup(void)
{
    uint32_t       i, g;
    uint64_t       lo, hi, n;
    bench_conn_t  *c;
    bench_user_t  *u;
    struct epoll_event  ev;

    if (B.mode == BENCH_MODE_PAIR
        || (B.mode == BENCH_MODE_STORM && B.storm_rate > 0))
    {
        /* both users of a pair in one process */
        n = B.users / 2;
        lo = 2 * (n * (uint64_t) B.proc / (uint64_t) B.procs);
        hi = 2 * (n * (uint64_t) (B.proc + 1) / (uint64_t) B.procs);

    } else {
        lo = B.users * (uint64_t) B.proc / (uint64_t) B.procs;
        hi = B.users * (uint64_t) (B.proc + 1) / (uint64_t) B.procs;
    }

    B.u_lo = (uint32_t) lo;
    B.u_hi = (uint32_t) hi;
    B.nuser = (uint32_t) (hi - lo);

    B.user = calloc(B.nuser ? B.nuser : 1, sizeof(bench_user_t));
    B.conn = calloc(2 * (size_t) (B.nuser ? B.nuser : 1),
                    sizeof(bench_conn_t));
    B.queue = calloc(2 * (size_t) (B.nuser ? B.nuser : 1),
                     sizeof(uint32_t));
    B.senders = calloc(B.nuser ? B.nuser : 1, sizeof(uint32_t));
    B.st = malloc(sizeof(bench_stats_t));
    B.rbuf = malloc(BENCH_RBUF);

    if (B.user == NULL || B.conn == NULL || B.queue == NULL
        || B.senders == NULL || B.st == NULL || B.rbuf == NULL)
    {
        bench_die("out of memory");
    }

    memset(B.st, 0, sizeof(bench_stats_t));
    bench_hist_init(&B.st->hs);
    bench_hist_init(&B.st->ack);
    bench_hist_init(&B.st->rcv);
    bench_hist_init(&B.st->lag);
    bench_hist_init(&B.st->rc);
    bench_hist_init(&B.st->pon);
    bench_hist_init(&B.st->poff);

    for (i = 0; i < B.nuser; i++) {
        u = &B.user[i];
        g = B.u_lo + i;
        u->g = g;
        u->id = B.base + g;
        u->peer = B.base + (g ^ 1);

        if (B.mode == BENCH_MODE_FANOUT) {
            /* nchan: one channel for all; chat: the group */
            u->peer = B.target == BENCH_TARGET_CHAT ? B.group : B.base;
        }

        if (!(B.target == BENCH_TARGET_NCHAN && B.mode == BENCH_MODE_FANOUT
              && g == 0)
            && !(B.offline && g % 2))
        {
            /* everyone has a socket of its own, but nchan's fan-out
             * sender, which only publishes, and offline receivers */
            c = &B.conn[B.nconn];
            c->user = i;
            c->role = BENCH_RX;
            c->gid = g;
            u->rx = c;
            u->tx = c;
            B.nconn++;
        }

        if (bench_user_sends(g)) {
            B.senders[B.nsenders++] = i;

            if (B.target == BENCH_TARGET_NCHAN) {
                c = &B.conn[B.nconn];
                c->user = i;
                c->role = BENCH_TX;
                c->gid = (uint32_t) B.users + g;
                u->tx = c;
                B.nconn++;
            }
        }
    }

    bench_raise_nofile(B.nconn);

    B.ep = epoll_create1(EPOLL_CLOEXEC);
    B.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);

    if (B.ep < 0 || B.tfd < 0) {
        bench_die("epoll/timerfd: %s", strerror(errno));
    }

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u64 = UINT64_MAX;
    epoll_ctl(B.ep, EPOLL_CTL_ADD, B.cmd_fd, &ev);
    ev.data.u64 = UINT64_MAX - 1;
    epoll_ctl(B.ep, EPOLL_CTL_ADD, B.tfd, &ev);

    for (i = 0; i < B.nconn; i++) {
        c = &B.conn[i];
        c->fd = -1;
        c->want = 1;
        bench_enqueue(c);
    }
}


static void
bench_loop(void)
{
    int          i, n, timeout, ready;
    uint64_t     now, next_sweep, deadline, left, all_open;
    struct epoll_event  evs[512];

    ready = 0;
    all_open = 0;
    now = bench_now();
    next_sweep = now;
    deadline = now + (uint64_t) (B.connect_timeout * BENCH_NS);

    for ( ;; ) {
        timeout = BENCH_SWEEP_MS;

        if (B.in_step && B.t_end > now) {
            left = (B.t_end - now) / BENCH_MS + 1;
            if (left < (uint64_t) timeout) {
                timeout = (int) left;
            }
        }

        n = epoll_wait(B.ep, evs, 512, timeout);

        if (n < 0 && errno != EINTR) {
            bench_die("epoll_wait: %s", strerror(errno));
        }

        for (i = 0; i < n; i++) {
            if (evs[i].data.u64 == UINT64_MAX) {
                bench_command();

            } else if (evs[i].data.u64 == UINT64_MAX - 1) {
                (void) !read(B.tfd, &left, sizeof(left));
                bench_send_due(bench_now());

            } else {
                bench_conn_event(&B.conn[evs[i].data.u64], evs[i].events);
            }
        }

        if (B.quitting) {
            return;
        }

        now = bench_now();

        if (now >= next_sweep && (B.running > 0 || B.waiting > 0)) {
            bench_sweep(now);
            next_sweep = now + BENCH_SWEEP_MS * BENCH_MS;
        }

        bench_pump(now);

        if (B.heartbeat > 0
            && now - B.hb_last >= BENCH_HEARTBEAT_MS * BENCH_MS)
        {
            bench_heartbeats(now);
        }

        if (!ready) {
            /* presence: and every connection has its friends' state, so
             * that the events of the connects are over before a step (a
             * server that shed some waits 10 s at most) */
            if (B.nopen == B.nconn && all_open == 0) {
                all_open = now;
            }

            if ((all_open && (B.snap_pending == 0
                              || now - all_open > 10 * BENCH_NS))
                || now >= deadline)
            {
                if (B.snap_pending) {
                    bench_log("%" PRIu64 " presence frames of the connects"
                              " did not come", B.snap_pending);
                }

                B.st->conns = B.nconn;
                B.st->open = B.nopen;
                bench_report(BENCH_MSG_READY);
                ready = 1;
            }
        }

        if (B.in_step) {
            if (B.mode == BENCH_MODE_STORM && B.stormed
                && B.st->reconnected == B.st->dropped
                && B.cmd.rate == 0)
            {
                bench_step_end();

            } else if (now >= B.t_end) {
                bench_step_end();
            }
        }
    }
}


static void
bench_command(void)
{
    ssize_t        n;
    bench_cmd_t    cmd;
    uint32_t       i;
    bench_conn_t  *c;
    struct linger  lg;

    n = read(B.cmd_fd, &cmd, sizeof(cmd));

    if (n == 0) {
        /* the parent is gone */
        cmd.op = BENCH_OP_QUIT;

    } else if (n != (ssize_t) sizeof(cmd)) {
        bench_die("short command");
    }

    if (cmd.op == BENCH_OP_STEP) {
        bench_step_start(&cmd);
        return;
    }

    /* quit: reset every connection (no TIME_WAIT left behind) */
    lg.l_onoff = 1;
    lg.l_linger = 0;

    for (i = 0; i < B.nconn; i++) {
        c = &B.conn[i];
        c->want = 0;

        if (c->fd >= 0) {
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            bench_conn_close(c, 0);
        }
    }

    B.quitting = 1;
}


static void
bench_sweep(uint64_t now)
{
    uint32_t       i, waiting;
    uint64_t       limit;
    bench_conn_t  *c;

    limit = (uint64_t) (B.hs_timeout * BENCH_NS);
    waiting = 0;

    for (i = 0; i < B.nconn; i++) {
        c = &B.conn[i];

        switch (c->state) {

        case BENCH_CONNECT:
        case BENCH_HANDSHAKE:
            if (now - c->t_start > limit) {
                bench_conn_fail(c, "handshake timed out", 1);
            }

            break;

        case BENCH_DOWN:
            if (c->want && !c->queued) {
                if (c->t_retry <= now) {
                    bench_enqueue(c);
                } else {
                    waiting++;
                }
            }

            break;
        }
    }

    /* until one is down again, no need to look */
    B.waiting = waiting;
}


static void
bench_enqueue(bench_conn_t *c)
{
    B.queue[(B.q_head + B.q_len) % B.nconn] = (uint32_t) (c - B.conn);
    B.q_len++;
    c->queued = 1;
}


static void
bench_pump(uint64_t now)
{
    bench_conn_t  *c;

    while (B.running < B.inflight && B.q_len > 0) {
        c = &B.conn[B.queue[B.q_head]];
        B.q_head = (B.q_head + 1) % B.nconn;
        B.q_len--;
        c->queued = 0;

        if (c->state == BENCH_DOWN && c->want) {
            bench_conn_start(c, now);
        }
    }
}


static void
bench_conn_start(bench_conn_t *c, uint64_t now)
{
    int                 fd, one;
    struct sockaddr_in  src;

    c->t_start = now;

    if (B.st->t_first == 0) {
        B.st->t_first = now;
    }

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        c->fd = -1;
        bench_conn_fail(c, strerror(errno), 1);
        return;
    }

    c->fd = fd;
    c->state = BENCH_CONNECT;
    B.running++;

    one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    /* the port is chosen at connect(), for the whole 4-tuple */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));

    memset(&src, 0, sizeof(src));
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(0x7f000001 + c->gid % (uint32_t) B.naddrs);

    if (bind(fd, (struct sockaddr *) &src, sizeof(src)) != 0) {
        bench_conn_fail(c, strerror(errno), 1);
        return;
    }

    if (connect(fd, (struct sockaddr *) &B.dst, sizeof(B.dst)) != 0
        && errno != EINPROGRESS)
    {
        bench_conn_fail(c, strerror(errno), 1);
        return;
    }

    bench_conn_epoll(c, EPOLL_CTL_ADD);
}


static void
bench_conn_epoll(bench_conn_t *c, int op)
{
    struct epoll_event  ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;

    c->pollout = (c->state == BENCH_CONNECT || c->out_len > c->out_off);

    if (c->pollout) {
        ev.events |= EPOLLOUT;
    }

    ev.data.u64 = (uint64_t) (c - B.conn);

    if (epoll_ctl(B.ep, op, c->fd, &ev) != 0) {
        bench_die("epoll_ctl: %s", strerror(errno));
    }
}


static void
bench_conn_event(bench_conn_t *c, uint32_t events)
{
    if (c->fd < 0) {
        return;
    }

    if (c->state == BENCH_CONNECT) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            bench_conn_connected(c);
        }

        return;
    }

    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        bench_conn_read(c);
    }

    if (c->fd >= 0 && (events & EPOLLOUT)) {
        bench_conn_flush(c);
    }
}


static void
bench_conn_connected(bench_conn_t *c)
{
    int            err, n;
    char           req[1024];
    socklen_t      len;
    bench_user_t  *u;
    unsigned char  raw[16];
    char           path[128], auth[400], token[256];
    uint64_t       r1, r2, chan;
    time_t         now;

    err = 0;
    len = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);

    if (err != 0) {
        bench_conn_fail(c, strerror(err), 1);
        return;
    }

    u = &B.user[c->user];

    r1 = bench_rand();
    r2 = bench_rand();
    memcpy(raw, &r1, 8);
    memcpy(raw + 8, &r2, 8);
    c->key[chat_base64_encode(c->key, raw, 16)] = '\0';

    auth[0] = '\0';

    if (B.target == BENCH_TARGET_CHAT) {
        now = time(NULL);

        if (chat_jwt_sign(B.secret, B.secret_len, u->id, now, now + 86400,
                          token, sizeof(token)) < 0)
        {
            bench_die("cannot sign a token for user %" PRIu64, u->id);
        }

        snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n",
                 token);
        snprintf(path, sizeof(path), "%s", B.path);

    } else if (B.mode == BENCH_MODE_FANOUT) {
        snprintf(path, sizeof(path), "/%s/f%" PRIu64,
                 c->role == BENCH_TX ? "pub" : "sub", B.base);

    } else {
        chan = c->role == BENCH_TX ? u->peer : u->id;
        snprintf(path, sizeof(path), "/%s/u%" PRIu64,
                 c->role == BENCH_TX ? "pub" : "sub", chan);
    }

    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s:%d\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "%s"
                 "\r\n",
                 path, B.host, B.port, c->key, auth);

    c->state = BENCH_HANDSHAKE;
    c->out_len = 0;
    c->out_off = 0;

    if (bench_buf_add(&c->out, &c->out_len, &c->out_cap, req, (size_t) n)
        != 0)
    {
        bench_die("out of memory");
    }

    bench_conn_epoll(c, EPOLL_CTL_MOD);
    bench_conn_flush(c);
}


static int
bench_buf_add(char **buf, size_t *len, size_t *cap, const void *data,
    size_t n)
{
    char    *p;
    size_t   want;

    if (*len + n > *cap) {
        want = *cap ? *cap : 256;

        while (want < *len + n) {
            want *= 2;
        }

        p = realloc(*buf, want);
        if (p == NULL) {
            return -1;
        }

        *buf = p;
        *cap = want;
    }

    memcpy(*buf + *len, data, n);
    *len += n;

    return 0;
}


static void
bench_conn_flush(bench_conn_t *c)
{
    ssize_t  n;

    while (c->out_len > c->out_off) {
        n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

        if (n > 0) {
            c->out_off += (size_t) n;
            continue;
        }

        if (n < 0 && errno == EINTR) {
            continue;
        }

        if (n < 0 && errno == EAGAIN) {
            if (!c->pollout) {
                bench_conn_epoll(c, EPOLL_CTL_MOD);
            }

            return;
        }

        bench_conn_fail(c, n < 0 ? strerror(errno) : "write returned 0",
                        c->state != BENCH_OPEN);
        return;
    }

    c->out_len = 0;
    c->out_off = 0;

    if (c->out_cap > 65536) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }

    if (c->pollout) {
        bench_conn_epoll(c, EPOLL_CTL_MOD);
    }
}


static void
bench_conn_read(bench_conn_t *c)
{
    int      i;
    ssize_t  n;

    for (i = 0; i < 8 && c->fd >= 0; i++) {
        n = read(c->fd, B.rbuf, BENCH_RBUF);

        if (n > 0) {
            if (c->state == BENCH_HANDSHAKE) {
                bench_conn_head(c, (size_t) n);

            } else {
                bench_conn_frames(c, B.rbuf, (size_t) n);
            }

            if ((size_t) n < BENCH_RBUF) {
                return;
            }

            continue;
        }

        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }

        bench_conn_fail(c, n == 0 ? "closed by the server" : strerror(errno),
                        c->state != BENCH_OPEN);
        return;
    }
}


static void
bench_conn_head(bench_conn_t *c, size_t n)
{
    long               hl;
    size_t             left;
    uint64_t           now;
    bench_http_head_t  h;
    char               accept[CHAT_WS_ACCEPT_LEN + 1];

    if (bench_buf_add(&c->in, &c->in_len, &c->in_cap, B.rbuf, n) != 0) {
        bench_die("out of memory");
    }

    hl = bench_http_head(c->in, c->in_len, &h);

    if (hl == 0) {
        return;
    }

    if (hl < 0) {
        bench_conn_fail(c, "malformed handshake answer", 1);
        return;
    }

    if (h.status != 101 || !h.upgrade || h.accept == NULL) {
        if (bench_logged < 20 || B.verbose) {
            bench_log("handshake answered %d: %.*s", h.status,
                      (int) (c->in_len > 200 ? 200 : c->in_len), c->in);
        }

        bench_conn_fail(c, NULL, 1);
        return;
    }

    chat_ws_accept_key(c->key, strlen(c->key), accept);

    if (h.accept_len != CHAT_WS_ACCEPT_LEN
        || memcmp(h.accept, accept, CHAT_WS_ACCEPT_LEN) != 0)
    {
        bench_conn_fail(c, "wrong Sec-WebSocket-Accept", 1);
        return;
    }

    now = bench_now();

    c->state = BENCH_OPEN;
    c->attempt = 0;
    B.running--;
    B.nopen++;

    bench_hist_record(&B.st->hs, now - c->t_start);
    B.st->connected++;
    B.st->t_last = now;

    if (c->t_drop) {
        bench_hist_record(&B.st->rc, now - c->t_drop);
        B.st->reconnected++;
        c->t_drop = 0;
    }

    chat_ws_parser_init(&c->ws, 0, BENCH_MAX_MESSAGE);

    /* chat: one presence frame per friend first (the bench users of the
     * other modes have none) */
    c->snap_left = B.mode == BENCH_MODE_PRESENCE ? (uint16_t) B.friends : 0;
    B.snap_pending += c->snap_left;

    left = c->in_len - (size_t) hl;
    memcpy(B.rbuf, c->in + hl, left);
    c->in_len = 0;

    if (c->in_cap > 4096) {
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }

    if (left) {
        bench_conn_frames(c, B.rbuf, left);
    }
}


static void
bench_conn_frames(bench_conn_t *c, unsigned char *buf, size_t len)
{
    long             n;
    unsigned char    payload[CHAT_WS_MAX_CONTROL];
    chat_ws_event_t  ev;

    for ( ;; ) {
        n = chat_ws_parse(&c->ws, buf, len, &ev);

        if (n < 0) {
            bench_log("protocol error from the server: %s", ev.error);
            bench_conn_fail(c, NULL, 0);
            return;
        }

        buf += n;
        len -= (size_t) n;

        switch (ev.type) {

        case CHAT_WS_NEED_MORE:
            return;

        case CHAT_WS_DATA:
            if (bench_buf_add(&c->in, &c->in_len, &c->in_cap, ev.data,
                              ev.len) != 0)
            {
                bench_die("out of memory");
            }

            break;

        case CHAT_WS_MESSAGE_END:
            bench_conn_message(c);
            c->in_len = 0;
            break;

        case CHAT_WS_PING:
            memcpy(payload, ev.data, ev.len);
            bench_conn_frame(c, CHAT_WS_OP_PONG, (char *) payload, ev.len);
            break;

        case CHAT_WS_CLOSE:
            n = (long) chat_ws_close_payload(payload, CHAT_WS_CLOSE_NORMAL,
                                             NULL, 0);
            bench_conn_frame(c, CHAT_WS_OP_CLOSE, (char *) payload,
                             (size_t) n);
            bench_log("the server closed a connection (%u)",
                      (unsigned) ev.close_code);
            bench_conn_fail(c, NULL, 0);
            return;

        default:
            break;
        }

        if (c->state != BENCH_OPEN) {
            return;
        }
    }
}


/* a masked client frame, queued and written at once if the socket takes it */
static int
bench_conn_frame(bench_conn_t *c, int opcode, const char *data, size_t len)
{
    size_t         hl, start;
    uint64_t       r;
    unsigned char  hdr[CHAT_WS_MAX_HEADER], mask[4];

    if (c->fd < 0 || c->state != BENCH_OPEN) {
        return -1;
    }

    r = bench_rand();
    memcpy(mask, &r, 4);

    hl = chat_ws_frame_header(hdr, opcode, 1, len, mask);

    if (hl == 0
        || bench_buf_add(&c->out, &c->out_len, &c->out_cap, hdr, hl) != 0)
    {
        return -1;
    }

    start = c->out_len;

    if (bench_buf_add(&c->out, &c->out_len, &c->out_cap, data, len) != 0) {
        bench_die("out of memory");
    }

    chat_ws_mask((unsigned char *) c->out + start, len, mask, 0);

    if (c->out_len - c->out_off == hl + len) {
        /* nothing was waiting: write now */
        bench_conn_flush(c);
    }

    return 0;
}


static void
bench_conn_message(bench_conn_t *c)
{
    int            rc;
    char           frame[256];
    size_t         vlen;
    uint64_t       t, now;
    const char    *val;
    bench_stamp_t  st;

    if (B.target == BENCH_TARGET_NCHAN) {
        if (c->role == BENCH_RX) {
            bench_recv_stamp(c, c->in, c->in_len);
            return;
        }

        /* a publisher's answer: nchan's channel info, one per message */
        if (c->fifo_len == 0) {
            return;
        }

        t = c->fifo[c->fifo_head];
        c->fifo_head = (c->fifo_head + 1) % c->fifo_cap;
        c->fifo_len--;

        if (!B.in_step || t < B.cmd.t0) {
            /* the answer to a message of an earlier step */
            B.st->stale++;
            return;
        }

        B.st->acked++;

        if (t >= B.t_measure) {
            bench_hist_record(&B.st->ack, bench_now() - t);
        }

        return;
    }

    rc = bench_json_field(c->in, c->in_len, "type", &val, &vlen);
    if (rc != BENCH_JSON_STRING) {
        B.st->errors++;
        bench_log("not a chat frame: %.*s",
                  (int) (c->in_len > 200 ? 200 : c->in_len), c->in);
        return;
    }

    if (vlen == 3 && memcmp(val, "ack", 3) == 0) {
        if (bench_json_field(c->in, c->in_len, "client_id", &val, &vlen)
                != BENCH_JSON_STRING
            || bench_stamp_parse(val, vlen, &st) != 0
            || !B.in_step || st.run != B.step_run)
        {
            B.st->stale++;
            return;
        }

        B.st->acked++;

        if (st.t >= B.t_measure) {
            now = bench_now();
            bench_hist_record(&B.st->ack, now > st.t ? now - st.t : 0);
        }

        return;
    }

    if (vlen == 7 && memcmp(val, "message", 7) == 0) {
        if (bench_json_field(c->in, c->in_len, "body", &val, &vlen)
            == BENCH_JSON_STRING)
        {
            bench_recv_stamp(c, val, vlen);
        }

        /* delivered, so that it is not sent again on reconnect */
        if (B.receipts
            && bench_json_field(c->in, c->in_len, "id", &val, &vlen)
               == BENCH_JSON_STRING
            && vlen < 128)
        {
            rc = snprintf(frame, sizeof(frame),
                          "{\"type\":\"receipt\",\"id\":\"%.*s\","
                          "\"status\":\"delivered\"}", (int) vlen, val);
            bench_conn_frame(c, CHAT_WS_OP_TEXT, frame, (size_t) rc);
        }

        return;
    }

    if (vlen == 8 && memcmp(val, "presence", 8) == 0) {
        bench_presence_frame(c);
        return;
    }

    if (vlen == 5 && memcmp(val, "error", 5) == 0) {
        B.st->errors++;
        bench_log("error frame: %.*s",
                  (int) (c->in_len > 300 ? 300 : c->in_len), c->in);
    }

    /* pong, receipt, typing: nothing to measure */
}


static void
bench_recv_stamp(bench_conn_t *c, const char *s, size_t len)
{
    size_t         vlen;
    uint64_t       now, lat, gs;
    const char    *val;
    bench_user_t  *u;
    bench_stamp_t  st;

    if (bench_stamp_parse(s, len, &st) != 0 || !B.in_step
        || st.run != B.step_run)
    {
        B.st->stale++;
        return;
    }

    u = &B.user[c->user];

    if (B.mode == BENCH_MODE_FANOUT && u->g == 0) {
        /* the sender is a member; its sending device must not get it */
        B.st->echo++;
        return;
    }

    if (B.mode == BENCH_MODE_FANOUT && B.target == BENCH_TARGET_CHAT
        && st.seq < B.max_seq)
    {
        /* every member sees a message with the same group seq */
        if (bench_json_field(c->in, c->in_len, "seq", &val, &vlen)
                != BENCH_JSON_SCALAR
            || bench_parse_u64(val, vlen, &gs) != 0 || gs == 0)
        {
            B.st->seq_bad++;

        } else if (B.gseq[st.seq] == 0) {
            B.gseq[st.seq] = gs;

        } else if (B.gseq[st.seq] != gs) {
            B.st->seq_bad++;
        }
    }

    if (bench_seen(u, st.seq)) {
        B.st->dup++;
        return;
    }

    B.st->received++;

    if (st.seq + 1 < u->top) {
        B.st->reordered++;

    } else {
        u->top = st.seq + 1;
    }

    now = bench_now();
    lat = now > st.t ? now - st.t : 0;

    if (B.mode == BENCH_MODE_FANOUT && st.seq < B.max_seq) {
        B.nrecv[st.seq]++;

        if (st.t >= B.t_measure && lat > B.last[st.seq]) {
            B.last[st.seq] = lat;
        }
    }

    if (st.t >= B.t_measure) {
        bench_hist_record(&B.st->rcv, lat);
    }
}


/* marks n in the user's bitmap of this step: 1 when it was marked */
static int
bench_seen(bench_user_t *u, uint64_t n)
{
    size_t     words, w;
    uint64_t  *p, bit;

    w = (size_t) (n / 64);
    bit = 1ULL << (n % 64);

    if (w >= u->seen_words) {
        words = u->seen_words ? u->seen_words : 4;

        while (words <= w) {
            words *= 2;
        }

        p = realloc(u->seen, words * sizeof(uint64_t));
        if (p == NULL) {
            bench_die("out of memory");
        }

        memset(p + u->seen_words, 0,
               (words - u->seen_words) * sizeof(uint64_t));
        u->seen = p;
        u->seen_words = words;
    }

    if (u->seen[w] & bit) {
        return 1;
    }

    u->seen[w] |= bit;

    return 0;
}


/*
 * A presence frame at a watcher: the first --friends frames of a
 * connection are the state at connect; later ones are events, each
 * timed from the intended time of the toggle that caused it.
 */

static void
bench_presence_frame(bench_conn_t *c)
{
    int            online;
    size_t         vlen;
    uint64_t       id, g, k, t, now;
    const char    *val;

    if (c->snap_left) {
        c->snap_left--;
        B.snap_pending--;
        B.st->snap++;
        return;
    }

    if (B.mode != BENCH_MODE_PRESENCE || !B.in_step
        || bench_json_field(c->in, c->in_len, "user_id", &val, &vlen)
           != BENCH_JSON_SCALAR
        || bench_parse_u64(val, vlen, &id) != 0
        || bench_json_field(c->in, c->in_len, "online", &val, &vlen)
           != BENCH_JSON_SCALAR)
    {
        B.st->stale++;
        return;
    }

    online = (vlen == 4 && memcmp(val, "true", 4) == 0);
    g = id - B.base;
    k = g / 2;
    now = bench_now();

    /* only togglers change; a toggle of this step that has happened */
    if (id < B.base || g >= B.users || g % 2 || k >= B.ntoggle
        || (t = bench_toggle_time(k, online)) > now)
    {
        B.st->stale++;
        bench_log("presence frame at user %" PRIu64 " of no toggle of this"
                  " step (%" PRIu64 " so far): %.*s", B.user[c->user].id,
                  B.ntoggle, (int) (c->in_len > 200 ? 200 : c->in_len),
                  c->in);
        return;
    }

    if (bench_seen(&B.user[c->user], 2 * k + (uint64_t) online)) {
        B.st->dup++;
        return;
    }

    B.st->received++;

    if (bench_toggle_time(k, 0) >= B.t_measure) {
        B.st->rcv_measured++;
        bench_hist_record(online ? &B.st->pon : &B.st->poff, now - t);
    }
}


static void
bench_conn_fail(bench_conn_t *c, const char *why, int hs)
{
    uint64_t  delay;

    if (why != NULL) {
        bench_log("%s connection of user %" PRIu64 ": %s",
                  c->role == BENCH_TX ? "publisher" : "user",
                  B.user[c->user].id, why);
    }

    if (hs) {
        B.st->hs_fail++;

    } else if (c->state == BENCH_OPEN) {
        B.st->drops++;
    }

    bench_conn_close(c, 0);

    if (c->want) {
        B.waiting++;
    }

    c->attempt++;
    delay = bench_backoff((uint64_t) (B.backoff_base * BENCH_NS),
                          (uint64_t) (B.backoff_cap * BENCH_NS),
                          c->attempt - 1, bench_rand());
    c->t_retry = bench_now() + delay;
}


static void
bench_conn_close(bench_conn_t *c, int reset)
{
    struct linger  lg;

    if (c->state == BENCH_CONNECT || c->state == BENCH_HANDSHAKE) {
        B.running--;

    } else if (c->state == BENCH_OPEN) {
        B.nopen--;
    }

    if (c->fd >= 0) {
        if (reset) {
            lg.l_onoff = 1;
            lg.l_linger = 0;
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }

        /* close() takes it out of the epoll set */
        close(c->fd);
        c->fd = -1;
    }

    c->state = BENCH_DOWN;
    c->pollout = 0;
    B.snap_pending -= c->snap_left;
    c->snap_left = 0;
    free(c->in);
    free(c->out);
    c->in = NULL;
    c->out = NULL;
    c->in_len = c->in_cap = 0;
    c->out_len = c->out_off = c->out_cap = 0;

    /* answers to what this publisher sent will not come */
    c->fifo_len = 0;
    c->fifo_head = 0;
}


/* --- steps: open-loop sending, storms, reports ---------------------------- */


static void
bench_timer_arm(uint64_t at)
{
    struct itimerspec  its;

    memset(&its, 0, sizeof(its));

    if (at != 0) {
        its.it_value.tv_sec = (time_t) (at / BENCH_NS);
        its.it_value.tv_nsec = (long) (at % BENCH_NS);
    }

    timerfd_settime(B.tfd, TFD_TIMER_ABSTIME, &its, NULL);
}


static void
bench_step_start(const bench_cmd_t *cmd)
{
    uint32_t       i;
    double         rate, share;
    bench_user_t  *u;

    B.cmd = *cmd;
    B.in_step = 1;
    B.stormed = 0;
    B.step_run = B.run + cmd->step;
    B.t_measure = cmd->t0 + cmd->warmup;
    B.t_stop_send = B.t_measure + cmd->duration;
    B.t_end = B.t_stop_send + cmd->drain;
    B.k = 0;

    memset(B.st, 0, offsetof(bench_stats_t, hs));
    bench_hist_init(&B.st->hs);
    bench_hist_init(&B.st->ack);
    bench_hist_init(&B.st->rcv);
    bench_hist_init(&B.st->lag);
    bench_hist_init(&B.st->rc);
    bench_hist_init(&B.st->pon);
    bench_hist_init(&B.st->poff);

    for (i = 0; i < B.nuser; i++) {
        u = &B.user[i];
        u->seq = 0;
        u->top = 0;

        if (u->seen) {
            memset(u->seen, 0, u->seen_words * sizeof(uint64_t));
        }
    }

    rate = cmd->rate;

    /* this process's share of the rate: its senders' share */
    if (B.mode == BENCH_MODE_FANOUT) {
        share = B.nsenders ? 1.0 : 0.0;

        B.max_seq = (uint64_t) (rate * (double) (cmd->warmup + cmd->duration)
                                / 1e9) + 16;
        B.last = calloc(B.max_seq, sizeof(uint64_t));
        B.nrecv = calloc(B.max_seq, sizeof(uint32_t));
        B.gseq = calloc(B.max_seq, sizeof(uint64_t));

        if (B.last == NULL || B.nrecv == NULL || B.gseq == NULL) {
            bench_die("out of memory");
        }

    } else {
        share = (double) B.nsenders
                / (double) (B.offline ? B.users / 2 : B.users);
    }

    B.interval = (rate > 0 && share > 0 && B.nsenders > 0)
                 ? 1e9 / (rate * share) : 0;
    B.phase = (double) B.proc / (double) B.procs;

    if (B.mode == BENCH_MODE_PRESENCE) {
        /* one schedule for all processes: the watchers time from it */
        B.interval = 1e9 / rate;
        B.ntoggle = (uint64_t) ((double) (cmd->warmup + cmd->duration)
                                / B.interval);

        if ((double) B.ntoggle * B.interval
            < (double) (cmd->warmup + cmd->duration))
        {
            B.ntoggle++;
        }

        /* the connects' state frames that did not come (a server that
         * shed their queries) will not: later frames are events */
        for (i = 0; i < B.nconn; i++) {
            B.snap_pending -= B.conn[i].snap_left;
            B.conn[i].snap_left = 0;
        }

        B.k_off = (B.u_lo + 1) / 2;
        B.k_on = B.k_off;
        B.k_hi = (B.u_hi + 1) / 2;

        if (B.k_hi > B.ntoggle) {
            B.k_hi = B.ntoggle;
        }
    }
    B.cpu0 = bench_cpu_us();

    bench_timer_arm(cmd->t0);
}


static void
bench_storm(uint64_t now)
{
    uint32_t       i;
    bench_conn_t  *c;

    for (i = 0; i < B.nconn; i++) {
        c = &B.conn[i];

        if (c->role != BENCH_RX) {
            continue;
        }

        B.st->dropped++;

        if (c->state == BENCH_CONNECT || c->state == BENCH_HANDSHAKE
            || c->state == BENCH_OPEN)
        {
            bench_conn_close(c, 1);
        }

        /* every one retries after its own jitter, as clients would */
        if (c->want && !c->queued) {
            B.waiting++;
        }

        c->t_drop = now;
        c->attempt = 1;
        c->t_retry = now + bench_backoff(
                               (uint64_t) (B.backoff_base * BENCH_NS),
                               (uint64_t) (B.backoff_cap * BENCH_NS), 0,
                               bench_rand());
    }

    B.stormed = 1;
}


static void
bench_send_due(uint64_t now)
{
    int       n;
    uint64_t  t;

    if (!B.in_step || now < B.cmd.t0) {
        if (B.in_step) {
            bench_timer_arm(B.cmd.t0);
        }

        return;
    }

    if (B.mode == BENCH_MODE_STORM && !B.stormed) {
        bench_storm(now);
    }

    if (B.mode == BENCH_MODE_PRESENCE) {
        bench_presence_due(now);
        return;
    }

    if (B.interval == 0) {
        return;
    }

    for (n = 0; ; n++) {
        t = B.cmd.t0 + (uint64_t) (((double) B.k + B.phase) * B.interval);

        if (t >= B.t_stop_send) {
            return;
        }

        if (t > now) {
            bench_timer_arm(t);
            return;
        }

        if (n == 10000) {
            /* far behind: let the loop read, then go on at once */
            bench_timer_arm(now + 1);
            return;
        }

        bench_send_one(&B.user[B.senders[B.k % B.nsenders]], t, now);
        B.k++;
    }
}


/* the intended time of toggle k: its close, or its reconnect */
static uint64_t
bench_toggle_time(uint64_t k, int online)
{
    uint64_t  t;

    t = B.cmd.t0 + (uint64_t) ((double) k * B.interval);

    return online ? t + (uint64_t) (B.away * BENCH_NS) : t;
}


/* this process's toggles that are due: closes and reconnects in order */
static void
bench_presence_due(uint64_t now)
{
    uint64_t  t_off, t_on;

    for ( ;; ) {
        t_off = B.k_off < B.k_hi ? bench_toggle_time(B.k_off, 0)
                                 : UINT64_MAX;
        t_on = B.k_on < B.k_off ? bench_toggle_time(B.k_on, 1) : UINT64_MAX;

        if (t_off == UINT64_MAX && t_on == UINT64_MAX) {
            return;
        }

        if (t_off <= t_on) {
            if (t_off > now) {
                bench_timer_arm(t_off);
                return;
            }

            bench_toggle(B.k_off++, 0, t_off, now);

        } else {
            if (t_on > now) {
                bench_timer_arm(t_on);
                return;
            }

            bench_toggle(B.k_on++, 1, t_on, now);
        }
    }
}


/*
 * Toggler k goes offline (its socket closed: the server sees the end of
 * the stream) or comes back (a new connection, through the start queue
 * like any other).  Each is one presence event for each of its watchers.
 */

static void
bench_toggle(uint64_t k, int online, uint64_t t, uint64_t now)
{
    bench_conn_t  *c;

    c = B.user[2 * k - B.u_lo].rx;

    if (!online) {
        if (c->state != BENCH_OPEN) {
            B.st->skipped++;
            return;
        }

        c->want = 0;
        bench_conn_close(c, 0);

    } else {
        if (c->want) {
            /* its close was skipped */
            return;
        }

        c->want = 1;
        c->attempt = 0;
        c->t_retry = 0;

        if (!c->queued) {
            bench_enqueue(c);
        }
    }

    B.st->sent++;

    if (bench_toggle_time(k, 0) >= B.t_measure) {
        B.st->sent_measured++;
    }

    bench_hist_record(&B.st->lag, now - t);
}


/*
 * Every open connection sends a ping frame every --heartbeat seconds, at
 * a phase of its own (spread evenly over the users): the sign of life a
 * client gives to stay online.
 */

static void
bench_heartbeats(uint64_t now)
{
    uint32_t       i;
    uint64_t       h, ph;
    bench_conn_t  *c;

    h = (uint64_t) (B.heartbeat * BENCH_NS);

    if (B.hb_base == 0) {
        B.hb_base = now;
        B.hb_last = now;
        return;
    }

    for (i = 0; i < B.nconn; i++) {
        c = &B.conn[i];

        if (c->state != BENCH_OPEN) {
            continue;
        }

        ph = h / B.users * (c->gid % B.users);

        if ((now - B.hb_base + h - ph) / h
            != (B.hb_last - B.hb_base + h - ph) / h)
        {
            bench_conn_frame(c, CHAT_WS_OP_PING, "", 0);
        }
    }

    B.hb_last = now;
}


static void
bench_send_one(bench_user_t *u, uint64_t t, uint64_t now)
{
    int            n;
    char           body[16400], frame[16600], cid[BENCH_STAMP_MAX + 1];
    size_t         blen, clen;
    uint32_t       i;
    uint64_t      *q;
    bench_conn_t  *c;
    bench_stamp_t  st;

    c = u->tx;

    if (c == NULL || c->state != BENCH_OPEN) {
        B.st->skipped++;
        return;
    }

    st.run = B.step_run;
    st.sender = u->g;
    st.seq = u->seq;
    st.t = t;

    blen = bench_stamp_write(body, sizeof(body), &st, B.payload);

    if (B.target == BENCH_TARGET_CHAT) {
        clen = bench_stamp_write(cid, sizeof(cid), &st, 0);

        n = snprintf(frame, sizeof(frame),
                     "{\"type\":\"send\",\"%s\":%" PRIu64 ",\"client_id\":"
                     "\"%.*s\",\"body\":\"%.*s\"}",
                     B.mode == BENCH_MODE_FANOUT ? "group" : "to", u->peer,
                     (int) clen, cid, (int) blen, body);

        if (bench_conn_frame(c, CHAT_WS_OP_TEXT, frame, (size_t) n) != 0) {
            B.st->skipped++;
            return;
        }

    } else {
        if (c->fifo_len == c->fifo_cap) {
            /* grow the ring, unrolled to start at 0 */
            q = malloc(2 * (c->fifo_cap ? c->fifo_cap : 64)
                       * sizeof(uint64_t));
            if (q == NULL) {
                bench_die("out of memory");
            }

            for (i = 0; i < c->fifo_len; i++) {
                q[i] = c->fifo[(c->fifo_head + i) % c->fifo_cap];
            }

            free(c->fifo);
            c->fifo = q;
            c->fifo_head = 0;
            c->fifo_cap = 2 * (c->fifo_cap ? c->fifo_cap : 64);
        }

        c->fifo[(c->fifo_head + c->fifo_len) % c->fifo_cap] = t;
        c->fifo_len++;

        if (bench_conn_frame(c, CHAT_WS_OP_TEXT, body, blen) != 0) {
            c->fifo_len--;
            B.st->skipped++;
            return;
        }
    }

    u->seq++;
    B.st->sent++;

    if (t >= B.t_measure) {
        B.st->sent_measured++;
    }

    bench_hist_record(&B.st->lag, now - t);
}


static void
bench_step_end(void)
{
    B.st->open = B.nopen;
    B.st->cpu_us = bench_cpu_us() - B.cpu0;
    B.st->nseq = B.mode == BENCH_MODE_FANOUT ? B.max_seq : 0;

    bench_report(BENCH_MSG_STEP);

    B.in_step = 0;
    bench_timer_arm(0);

    free(B.last);
    free(B.nrecv);
    free(B.gseq);
    B.last = NULL;
    B.nrecv = NULL;
    B.gseq = NULL;
    B.max_seq = 0;
}


static void
bench_report(uint32_t type)
{
    bench_msg_hdr_t  h;

    memset(&h, 0, sizeof(h));
    h.type = type;
    h.len = sizeof(bench_stats_t);

    bench_write_full(B.res_fd, &h, sizeof(h));
    bench_write_full(B.res_fd, B.st, sizeof(bench_stats_t));

    if (type == BENCH_MSG_STEP && B.st->nseq) {
        bench_write_full(B.res_fd, B.last, B.st->nseq * sizeof(uint64_t));
        bench_write_full(B.res_fd, B.nrecv, B.st->nseq * sizeof(uint32_t));
        bench_write_full(B.res_fd, B.gseq, B.st->nseq * sizeof(uint64_t));
    }
}


static void
bench_write_full(int fd, const void *buf, size_t len)
{
    ssize_t      n;
    const char  *p;

    for (p = buf; len > 0; p += n, len -= (size_t) n) {
        n = write(fd, p, len);

        if (n < 0 && errno == EINTR) {
            n = 0;
            continue;
        }

        if (n <= 0) {
            bench_die("write to pipe: %s", strerror(errno));
        }
    }
}


static void
bench_read_full(int fd, void *buf, size_t len)
{
    ssize_t  n;
    char    *p;

    for (p = buf; len > 0; p += n, len -= (size_t) n) {
        n = read(fd, p, len);

        if (n < 0 && errno == EINTR) {
            n = 0;
            continue;
        }

        if (n <= 0) {
            bench_die("a load process went away (%s)",
                      n == 0 ? "end of file" : strerror(errno));
        }
    }
}


/* --- the parent: drives the children, merges, prints ---------------------- */


static void
bench_stats_merge(bench_stats_t *into, const bench_stats_t *from)
{
    into->conns += from->conns;
    into->open += from->open;
    into->connected += from->connected;
    into->hs_fail += from->hs_fail;

    if (from->t_first
        && (into->t_first == 0 || from->t_first < into->t_first))
    {
        into->t_first = from->t_first;
    }

    if (from->t_last > into->t_last) {
        into->t_last = from->t_last;
    }

    into->sent += from->sent;
    into->sent_measured += from->sent_measured;
    into->skipped += from->skipped;
    into->acked += from->acked;
    into->received += from->received;
    into->dup += from->dup;
    into->reordered += from->reordered;
    into->stale += from->stale;
    into->errors += from->errors;
    into->drops += from->drops;
    into->dropped += from->dropped;
    into->reconnected += from->reconnected;
    into->cpu_us += from->cpu_us;
    into->rcv_measured += from->rcv_measured;
    into->snap += from->snap;
    into->echo += from->echo;
    into->seq_bad += from->seq_bad;

    bench_hist_merge(&into->hs, &from->hs);
    bench_hist_merge(&into->ack, &from->ack);
    bench_hist_merge(&into->rcv, &from->rcv);
    bench_hist_merge(&into->lag, &from->lag);
    bench_hist_merge(&into->rc, &from->rc);
    bench_hist_merge(&into->pon, &from->pon);
    bench_hist_merge(&into->poff, &from->poff);
}


static void
bench_stats_init(bench_stats_t *st)
{
    memset(st, 0, offsetof(bench_stats_t, hs));
    bench_hist_init(&st->hs);
    bench_hist_init(&st->ack);
    bench_hist_init(&st->rcv);
    bench_hist_init(&st->lag);
    bench_hist_init(&st->rc);
    bench_hist_init(&st->pon);
    bench_hist_init(&st->poff);
}


/* one report of the given type from every child, merged into sum */
static int
bench_collect(int *res_r, uint32_t type, bench_stats_t *sum,
    uint64_t **last, uint32_t **nrecv, uint64_t **gseq)
{
    int              i;
    uint64_t         j, *l, *q, nseq;
    uint32_t        *r;
    bench_stats_t   *one;
    bench_msg_hdr_t  h;

    one = malloc(sizeof(bench_stats_t));
    if (one == NULL) {
        bench_die("out of memory");
    }

    bench_stats_init(sum);
    nseq = 0;
    *last = NULL;
    *nrecv = NULL;
    *gseq = NULL;

    for (i = 0; i < B.procs; i++) {
        bench_read_full(res_r[i], &h, sizeof(h));

        if (h.type != type || h.len != sizeof(bench_stats_t)) {
            bench_die("unexpected report from a load process");
        }

        bench_read_full(res_r[i], one, sizeof(bench_stats_t));
        bench_stats_merge(sum, one);

        if (one->nseq == 0) {
            continue;
        }

        l = malloc(one->nseq * sizeof(uint64_t));
        r = malloc(one->nseq * sizeof(uint32_t));
        q = malloc(one->nseq * sizeof(uint64_t));
        if (l == NULL || r == NULL || q == NULL) {
            bench_die("out of memory");
        }

        bench_read_full(res_r[i], l, one->nseq * sizeof(uint64_t));
        bench_read_full(res_r[i], r, one->nseq * sizeof(uint32_t));
        bench_read_full(res_r[i], q, one->nseq * sizeof(uint64_t));

        if (*last == NULL) {
            nseq = one->nseq;
            *last = l;
            *nrecv = r;
            *gseq = q;
            continue;
        }

        /* every process sized them from the same rate and duration */
        for (j = 0; j < nseq && j < one->nseq; j++) {
            if (l[j] > (*last)[j]) {
                (*last)[j] = l[j];
            }

            (*nrecv)[j] += r[j];

            /* the group seq one message had in two processes */
            if (q[j] && (*gseq)[j] && q[j] != (*gseq)[j]) {
                sum->seq_bad++;

            } else if ((*gseq)[j] == 0) {
                (*gseq)[j] = q[j];
            }
        }

        free(l);
        free(r);
        free(q);
    }

    sum->nseq = nseq;
    free(one);

    return 0;
}


static void
bench_print_hist(const char *name, const bench_hist_t *h)
{
    if (h->count == 0) {
        printf(" %s_n=0 %s_p50_ms=- %s_p99_ms=- %s_p999_ms=- %s_max_ms=-",
               name, name, name, name, name);
        return;
    }

    printf(" %s_n=%" PRIu64 " %s_p50_ms=%.3f %s_p99_ms=%.3f"
           " %s_p999_ms=%.3f %s_max_ms=%.3f", name, h->count,
           name, bench_hist_quantile(h, 0.5) / 1e6,
           name, bench_hist_quantile(h, 0.99) / 1e6,
           name, bench_hist_quantile(h, 0.999) / 1e6,
           name, h->max / 1e6);
}


static const char *
bench_target_name(void)
{
    return B.target == BENCH_TARGET_CHAT ? "chat" : "nchan";
}


static const char *
bench_mode_name(void)
{
    static const char  *names[] = { "idle", "pair", "fanout", "storm",
                                    "presence" };

    return names[B.mode];
}


static void
bench_send_all(int *cmd_w, const bench_cmd_t *cmd)
{
    int  i;

    for (i = 0; i < B.procs; i++) {
        bench_write_full(cmd_w[i], cmd, sizeof(bench_cmd_t));
    }
}


/* runs one step in every child; prints its line; returns the rate sent */
static double
bench_run_step(int *cmd_w, int *res_r, uint32_t step, double rate,
    const char *label, int *ok, int *tp_ok)
{
    int             slo;
    double          secs, sent_rate, p99;
    uint64_t        j, expected, lost, complete, top, *last, *gseq;
    uint32_t       *nrecv;
    bench_cmd_t     cmd;
    bench_hist_t   *lh;
    bench_stats_t  *st;

    if (step >= BENCH_MAX_STEPS) {
        bench_die("too many steps");
    }

    memset(&cmd, 0, sizeof(cmd));
    cmd.op = BENCH_OP_STEP;
    cmd.step = step;
    cmd.t0 = bench_now() + 200 * BENCH_MS;
    cmd.rate = rate;

    if (B.mode == BENCH_MODE_STORM) {
        cmd.warmup = 0;
        cmd.duration = (uint64_t) (B.duration * BENCH_NS);
        cmd.drain = 0;

    } else {
        cmd.warmup = (uint64_t) (B.warmup * BENCH_NS);
        cmd.duration = (uint64_t) (B.duration * BENCH_NS);
        cmd.drain = (uint64_t) (B.drain * BENCH_NS);
    }

    if (B.mode == BENCH_MODE_PRESENCE) {
        /* the last reconnects come --away after the last closes */
        cmd.drain += (uint64_t) (B.away * BENCH_NS);
    }

    bench_send_all(cmd_w, &cmd);

    st = malloc(sizeof(bench_stats_t));
    if (st == NULL) {
        bench_die("out of memory");
    }

    bench_collect(res_r, BENCH_MSG_STEP, st, &last, &nrecv, &gseq);

    secs = (double) cmd.duration / 1e9;
    sent_rate = (double) st->sent_measured / secs;

    expected = B.offline ? 0 : st->sent;
    if (B.mode == BENCH_MODE_FANOUT) {
        expected = st->sent * B.receivers;
    }

    if (B.mode == BENCH_MODE_PRESENCE) {
        /* every close and every reconnect: one frame at each watcher */
        expected = st->sent * B.friends;
    }

    lost = expected > st->received ? expected - st->received : 0;

    printf("phase=step target=%s mode=%s step=%u label=%s rate=%.0f"
           " duration_s=%.1f sent=%" PRIu64 " sent_rate=%.0f skipped=%"
           PRIu64 " acked=%" PRIu64 " unacked=%" PRIu64 " expected=%"
           PRIu64 " received=%" PRIu64 " lost=%" PRIu64 " dup=%" PRIu64
           " reordered=%" PRIu64 " stale=%" PRIu64 " errors=%" PRIu64
           " drops=%" PRIu64 " hs_fail=%" PRIu64 " open=%" PRIu64
           " gen_cpu_ms=%.0f",
           bench_target_name(), bench_mode_name(), step, label, rate,
           secs, st->sent, sent_rate, st->skipped, st->acked,
           st->sent > st->acked ? st->sent - st->acked : 0, expected,
           st->received, lost, st->dup, st->reordered, st->stale,
           st->errors, st->drops, st->hs_fail, st->open, st->cpu_us / 1e3);

    bench_print_hist("ack", &st->ack);
    bench_print_hist("rcv", &st->rcv);
    bench_print_hist("lag", &st->lag);

    if (B.mode == BENCH_MODE_FANOUT) {
        lh = malloc(sizeof(bench_hist_t));
        if (lh == NULL) {
            bench_die("out of memory");
        }

        bench_hist_init(lh);
        complete = 0;

        for (j = 0; j < st->nseq; j++) {
            if (nrecv[j] == B.receivers) {
                complete++;

                if (last[j] > 0) {
                    bench_hist_record(lh, last[j]);
                }
            }
        }

        /* one sender: the group seqs grow in the order it sent */
        top = 0;

        for (j = 0; gseq != NULL && j < st->nseq; j++) {
            if (gseq[j] == 0) {
                continue;
            }

            if (gseq[j] <= top) {
                st->seq_bad++;
            }

            top = gseq[j];
        }

        /* the deliveries of the messages due after the warm-up, over the
         * time they were due in */
        printf(" complete=%" PRIu64 " deliveries_per_s=%.0f echo=%" PRIu64
               " seq_bad=%" PRIu64, complete,
               (double) st->rcv.count / secs, st->echo, st->seq_bad);
        bench_print_hist("last", lh);
        free(lh);
    }

    if (B.mode == BENCH_MODE_STORM) {
        printf(" dropped=%" PRIu64 " reconnected=%" PRIu64, st->dropped,
               st->reconnected);

        if (st->rc.count) {
            printf(" rc50_ms=%.1f rc99_ms=%.1f",
                   bench_hist_quantile(&st->rc, 0.5) / 1e6,
                   bench_hist_quantile(&st->rc, 0.99) / 1e6);
        } else {
            printf(" rc50_ms=- rc99_ms=-");
        }

        if (st->reconnected == st->dropped && st->dropped > 0) {
            printf(" rc100_ms=%.1f", st->rc.max / 1e6);
        } else {
            printf(" rc100_ms=-");
        }

        bench_print_hist("hs", &st->hs);
    }

    if (B.mode == BENCH_MODE_PRESENCE) {
        printf(" friends=%" PRIu64 " away_s=%.1f snap=%" PRIu64
               " events_per_s=%.0f deliveries_per_s=%.0f", B.friends,
               B.away, st->snap, (double) st->sent_measured / secs,
               (double) st->rcv_measured / secs);
        bench_print_hist("on", &st->pon);
        bench_print_hist("off", &st->poff);

        p99 = bench_hist_quantile(&st->pon, 0.99) / 1e6;
        if (bench_hist_quantile(&st->poff, 0.99) / 1e6 > p99) {
            p99 = bench_hist_quantile(&st->poff, 0.99) / 1e6;
        }

        *tp_ok = st->pon.count > 0 && st->poff.count > 0 && lost == 0
                 && st->skipped == 0 && p99 < 1000;
        *ok = *tp_ok && p99 < B.slo_ms;

        printf(" slo=presence slo_p99_ms=%.3f ok=%d tp_ok=%d\n", p99, *ok,
               *tp_ok);

        goto done;
    }

    /* the service level: p99 of send->receive, or of send->ack when
     * nothing is delivered (or when asked) */
    slo = B.slo;
    if (slo == 0) {
        slo = st->received > 0 ? 2 : 1;
    }

    p99 = bench_hist_quantile(slo == 2 ? &st->rcv : &st->ack, 0.99) / 1e6;

    /*
     * tp_ok: the system keeps up with the rate (everything acknowledged
     * or delivered, p99 under a second, the generator on time); ok: and
     * the p99 is within the service level.
     */
    *tp_ok = (slo == 2 ? st->rcv.count : st->ack.count) > 0
             && (slo == 2 ? lost == 0 : st->acked >= st->sent)
             && st->skipped == 0
             && sent_rate >= 0.95 * rate
             && p99 < 1000
             /* a group send is kept up with once it is acked too */
             && (B.mode != BENCH_MODE_FANOUT || B.target != BENCH_TARGET_CHAT
                 || st->acked >= st->sent);
    *ok = *tp_ok && p99 < B.slo_ms;

    printf(" slo=%s slo_p99_ms=%.3f ok=%d tp_ok=%d\n",
           slo == 2 ? "rcv" : "ack", p99, *ok, *tp_ok);

done:

    free(last);
    free(nrecv);
    free(gseq);
    free(st);

    if (!*tp_ok) {
        /* let an overloaded server work off its backlog first */
        sleep(3);
    }

    return sent_rate;
}


static void
bench_write_ready(const char *line)
{
    FILE  *f;
    char   tmp[4096];

    snprintf(tmp, sizeof(tmp), "%s.tmp", B.ready_file);

    f = fopen(tmp, "w");
    if (f == NULL) {
        bench_die("%s: %s", tmp, strerror(errno));
    }

    fputs(line, f);
    fclose(f);

    if (rename(tmp, B.ready_file) != 0) {
        bench_die("%s: %s", B.ready_file, strerror(errno));
    }
}


static void
bench_parent(pid_t *pids, int *cmd_w, int *res_r)
{
    int             i, ok, tp_ok, status;
    char            line[2048];
    double          rate, good, bad, tp, basis, secs;
    uint32_t        step, *nrecv;
    uint64_t        t, *last, *gseq;
    bench_cmd_t     cmd;
    bench_stats_t  *st;

    st = malloc(sizeof(bench_stats_t));
    if (st == NULL) {
        bench_die("out of memory");
    }

    bench_collect(res_r, BENCH_MSG_READY, st, &last, &nrecv, &gseq);

    secs = st->t_last > st->t_first ? (st->t_last - st->t_first) / 1e9 : 0;

    snprintf(line, sizeof(line),
             "phase=connect target=%s mode=%s procs=%d src_addrs=%d"
             " conns=%" PRIu64 " open=%" PRIu64 " connected=%" PRIu64
             " hs_fail=%" PRIu64
             " connect_s=%.3f hs_rate=%.0f hs_p50_ms=%.3f hs_p99_ms=%.3f"
             " hs_max_ms=%.3f\n",
             bench_target_name(), bench_mode_name(), B.procs, B.naddrs,
             st->conns, st->open, st->connected, st->hs_fail, secs,
             secs > 0 ? st->connected / secs : 0,
             bench_hist_quantile(&st->hs, 0.5) / 1e6,
             bench_hist_quantile(&st->hs, 0.99) / 1e6, st->hs.max / 1e6);
    fputs(line, stdout);

    step = 0;

    switch (B.mode) {

    case BENCH_MODE_IDLE:
        if (B.ready_file) {
            bench_write_ready(line);
        }

        t = bench_now() + (uint64_t) (B.hold * BENCH_NS);

        while (bench_now() < t) {
            if (B.ready_file && access(B.ready_file, F_OK) != 0) {
                break;
            }

            usleep(50000);
        }

        break;

    case BENCH_MODE_STORM:
        bench_run_step(cmd_w, res_r, 0, B.storm_rate, "storm", &ok,
                       &tp_ok);
        break;

    default:
        for (i = 0; i < B.nrates; i++) {
            bench_run_step(cmd_w, res_r, step++, B.rates[i], "rates", &ok,
                           &tp_ok);
        }

        if (!B.search) {
            break;
        }

        /*
         * Double while the system keeps up; below the start rate when
         * even that misses the service level; then bisect between the
         * highest rate within it and the lowest one above that misses.
         */
        good = 0;
        bad = 0;
        tp = 0;
        rate = B.search_start;

        for (i = 0; i < 12; i++) {
            bench_run_step(cmd_w, res_r, step++, rate, "search", &ok,
                           &tp_ok);

            if (tp_ok && rate > tp) {
                tp = rate;
            }

            if (ok) {
                good = rate;

            } else if (bad == 0 || rate < bad) {
                bad = rate;
            }

            if (!tp_ok || (B.search_max > 0 && rate >= B.search_max)) {
                break;
            }

            rate *= 2;
        }

        for (i = 0, rate = B.search_start / 2; good == 0 && i < 4;
             i++, rate /= 2)
        {
            bench_run_step(cmd_w, res_r, step++, rate, "search", &ok,
                           &tp_ok);

            if (tp_ok && rate > tp) {
                tp = rate;
            }

            if (ok) {
                good = rate;
            } else {
                bad = rate;
            }
        }

        for (i = 0; i < B.bisect && good > 0 && bad > good; i++) {
            rate = (good + bad) / 2;
            bench_run_step(cmd_w, res_r, step++, rate, "bisect", &ok,
                           &tp_ok);

            if (tp_ok && rate > tp) {
                tp = rate;
            }

            if (ok) {
                good = rate;
            } else {
                bad = rate;
            }
        }

        /* the fractions: of the highest rate within the service level,
         * or of the highest the system kept up with when none was */
        basis = good > 0 ? good : tp;

        printf("phase=summary target=%s mode=%s max_ok_rate=%.0f"
               " first_bad_rate=%.0f max_tp_rate=%.0f slo_ms=%.1f"
               " at_basis=%s\n", bench_target_name(), bench_mode_name(),
               good, bad, tp, B.slo_ms, good > 0 ? "slo" : "throughput");

        for (i = 0; i < B.nat && basis > 0; i++) {
            snprintf(line, sizeof(line), "at%.0f", B.at[i] * 100);
            bench_run_step(cmd_w, res_r, step++, basis * B.at[i], line, &ok,
                           &tp_ok);
        }

        break;
    }

    memset(&cmd, 0, sizeof(cmd));
    cmd.op = BENCH_OP_QUIT;
    bench_send_all(cmd_w, &cmd);

    for (i = 0; i < B.procs; i++) {
        waitpid(pids[i], &status, 0);
    }

    free(st);
}
