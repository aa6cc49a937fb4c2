
/*
 * chat-push-sink: the push provider of scripts/bench's push workload.
 *
 * One epoll loop on 127.0.0.1:--port, HTTP/1.1 with keep-alive and
 * pipelining, any number of connections, bodies by Content-Length only
 * (a chunked request gets 411).  Every POST whose body is a notification
 * of chat-worker push (a JSON object with token, message_id, ts and
 * count: bench_http.h) is answered --status (200 by default) with "{}"
 * and, when that is a 2xx, counted: notifications, messages (the sum of
 * count), receive time minus ts (the gateway's clock when the newest
 * message it stands for arrived, ms since the epoch; the same machine's
 * CLOCK_REALTIME here) into a histogram, and the same token and
 * message_id twice as a duplicate.  Notifications of a ts older than
 * --since (ms since the epoch) are counted as stale only: what the
 * worker posts for messages of an earlier run.  A body that is not a
 * notification gets 400 and is counted as bad; a malformed head gets
 * 400 and the connection is closed.
 *
 * GET /stats answers the counters so far (one line, as below), for the
 * bench to wait on.  On SIGTERM or SIGINT, or after --duration seconds,
 * it prints
 *
 *   notifications=N messages=N rate=R p50_ms=X p99_ms=X max_ms=X bad=N
 *   requests=N dup=N stale=N span_s=S conns=N
 *
 * (one line) on stdout and exits 0.  rate: notifications per second
 * over span_s, from --since (or the first notification counted, without
 * it) to the last one; conns: connections accepted.  --ready-file F is
 * written once it listens; --out FILE gets one JSON line per POST (the
 * time it came, the status answered and the body).
 */


#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "bench_hist.h"
#include "bench_http.h"


#define SINK_NAME      "chat-push-sink"
#define SINK_BUF_MAX   (BENCH_REQ_HEAD_MAX + BENCH_REQ_BODY_MAX)
#define SINK_READ      65536


typedef struct {
    int       fd;
    int       closing;      /* close once the output is written */
    char     *in;
    size_t    in_len;
    size_t    in_cap;
    char     *out;
    size_t    out_len;
    size_t    out_off;
    size_t    out_cap;
} sink_conn_t;


typedef struct {
    /* options */
    int            port;
    int            status;
    double         duration;
    uint64_t       since_ms;
    const char    *ready_file;
    const char    *out_file;

    FILE          *out;
    int            ep;
    int            lfd;

    /* figures */
    uint64_t       conns;       /* accepted */
    uint64_t       requests;
    uint64_t       notifications;
    uint64_t       messages;
    uint64_t       bad;
    uint64_t       dup;
    uint64_t       stale;
    uint64_t       t_first;     /* us since the epoch, counted ones */
    uint64_t       t_last;
    bench_hist_t   lat;         /* us */

    /* (token, message_id) seen: an open-addressed set of their hashes */
    uint64_t      *seen;
    size_t         seen_cap;
    size_t         seen_len;
} sink_t;


static void sink_usage(int rc);
static void sink_die(const char *fmt, ...);
static uint64_t sink_now_us(void);
static void sink_options(int argc, char **argv);
static void sink_listen(void);
static void sink_accept(void);
static void sink_conn_read(sink_conn_t *c);
static void sink_conn_requests(sink_conn_t *c);
static void sink_conn_post(sink_conn_t *c, const char *body, size_t len);
static void sink_conn_answer(sink_conn_t *c, int status, const char *body);
static void sink_conn_flush(sink_conn_t *c);
static void sink_conn_close(sink_conn_t *c);
static int sink_buf_add(char **buf, size_t *len, size_t *cap,
    const char *data, size_t n);
static int sink_seen(const char *token, size_t tlen, const char *id,
    size_t ilen);
static int sink_stats(char *buf, size_t cap);
static void sink_signal(int signo);


static sink_t                 S;
static volatile sig_atomic_t  sink_quit;


static void
sink_usage(int rc)
{
    fprintf(rc ? stderr : stdout,
"usage: " SINK_NAME " --port PORT [--status 200] [--duration S]\n"
"  [--since MS] [--ready-file F] [--out FILE]\n"
"  --status N     the answer to each notification (2xx: counted)\n"
"  --duration S   exit after S seconds (default: at SIGTERM/SIGINT)\n"
"  --since MS     notifications of an older ts are counted as stale\n"
"  --ready-file F written once listening\n"
"  --out FILE     one JSON line per POST\n");
    exit(rc);
}


static void
sink_die(const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    fprintf(stderr, SINK_NAME ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);

    exit(1);
}


static uint64_t
sink_now_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}


static void
sink_options(int argc, char **argv)
{
    int          i;
    char        *end;
    const char  *o, *v;

    S.status = 200;

    for (i = 1; i < argc; i++) {
        o = argv[i];

        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            sink_usage(0);
        }

        if (i + 1 >= argc) {
            sink_usage(2);
        }

        v = argv[++i];
        errno = 0;

        if (strcmp(o, "--port") == 0) {
            S.port = (int) strtol(v, &end, 10);

        } else if (strcmp(o, "--status") == 0) {
            S.status = (int) strtol(v, &end, 10);

        } else if (strcmp(o, "--duration") == 0) {
            S.duration = strtod(v, &end);

        } else if (strcmp(o, "--since") == 0) {
            S.since_ms = strtoull(v, &end, 10);

        } else if (strcmp(o, "--ready-file") == 0) {
            S.ready_file = v;
            continue;

        } else if (strcmp(o, "--out") == 0) {
            S.out_file = v;
            continue;

        } else {
            sink_usage(2);
        }

        if (errno || end == v || *end != '\0') {
            sink_die("%s: not a number: \"%s\"", o, v);
        }
    }

    if (S.port < 1 || S.port > 65535 || S.status < 100 || S.status > 599
        || S.duration < 0)
    {
        sink_usage(2);
    }
}


static void
sink_listen(void)
{
    int                 one;
    FILE               *f;
    struct sockaddr_in  sa;
    struct epoll_event  ev;

    S.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (S.lfd < 0) {
        sink_die("socket: %s", strerror(errno));
    }

    one = 1;
    setsockopt(S.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) S.port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    if (bind(S.lfd, (struct sockaddr *) &sa, sizeof(sa)) != 0
        || listen(S.lfd, 4096) != 0)
    {
        sink_die("127.0.0.1:%d: %s", S.port, strerror(errno));
    }

    S.ep = epoll_create1(EPOLL_CLOEXEC);
    if (S.ep < 0) {
        sink_die("epoll: %s", strerror(errno));
    }

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;

    if (epoll_ctl(S.ep, EPOLL_CTL_ADD, S.lfd, &ev) != 0) {
        sink_die("epoll_ctl: %s", strerror(errno));
    }

    if (S.ready_file) {
        f = fopen(S.ready_file, "w");
        if (f == NULL) {
            sink_die("%s: %s", S.ready_file, strerror(errno));
        }

        fprintf(f, "port=%d\n", S.port);
        fclose(f);
    }
}


static void
sink_accept(void)
{
    int                 fd, one;
    sink_conn_t        *c;
    struct epoll_event  ev;

    for ( ;; ) {
        fd = accept4(S.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }

            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                fprintf(stderr, SINK_NAME ": accept: %s\n", strerror(errno));
            }

            return;
        }

        one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

        c = calloc(1, sizeof(sink_conn_t));
        if (c == NULL) {
            close(fd);
            continue;
        }

        c->fd = fd;
        S.conns++;

        memset(&ev, 0, sizeof(ev));
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.ptr = c;

        if (epoll_ctl(S.ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            free(c);
        }
    }
}


static int
sink_buf_add(char **buf, size_t *len, size_t *cap, const char *data,
    size_t n)
{
    size_t  want;
    char   *p;

    if (*len + n > *cap) {
        want = *cap ? *cap : 4096;

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
sink_conn_read(sink_conn_t *c)
{
    int      eof;
    ssize_t  n;
    char     buf[SINK_READ];

    eof = 0;

    for ( ;; ) {
        n = read(c->fd, buf, sizeof(buf));

        if (n < 0 && errno == EINTR) {
            continue;
        }

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }

        if (n == 0) {
            /* the client is done sending: answer what came, then close */
            eof = 1;
            break;
        }

        if (n < 0) {
            sink_conn_close(c);
            return;
        }

        if (c->closing) {
            /* after an error answer: what follows is not read */
            continue;
        }

        if (c->in_len + (size_t) n > SINK_BUF_MAX + SINK_READ
            || sink_buf_add(&c->in, &c->in_len, &c->in_cap, buf,
                            (size_t) n) != 0)
        {
            sink_conn_answer(c, 413, "{\"error\":\"too large\"}");
            break;
        }

        if ((size_t) n < sizeof(buf)) {
            break;
        }
    }

    if (!c->closing) {
        sink_conn_requests(c);
    }

    if (eof) {
        c->closing = 1;
    }

    sink_conn_flush(c);
}


/* every complete request in the buffer, in order */
static void
sink_conn_requests(sink_conn_t *c)
{
    long         head;
    size_t       used, n;
    char         line[512];
    bench_req_t  r;

    used = 0;

    while (!c->closing) {
        head = bench_req_head(c->in + used, c->in_len - used, &r);

        if (head == BENCH_REQ_AGAIN) {
            break;
        }

        if (head < 0) {
            S.bad++;
            sink_conn_answer(c, (int) -head,
                             head == BENCH_REQ_NO_LENGTH
                             ? "{\"error\":\"length required\"}"
                             : head == BENCH_REQ_TOO_LARGE
                             ? "{\"error\":\"too large\"}"
                             : "{\"error\":\"bad request\"}");
            break;
        }

        if (c->in_len - used - (size_t) head < r.content_length) {
            break;
        }

        if (!r.keep_alive) {
            c->closing = 1;
        }

        if (r.method == BENCH_REQ_POST) {
            sink_conn_post(c, c->in + used + head, r.content_length);

        } else if (r.method == BENCH_REQ_GET && r.path_len == 6
                   && memcmp(r.path, "/stats", 6) == 0)
        {
            n = (size_t) sink_stats(line, sizeof(line) - 1);
            line[n++] = '\n';
            line[n] = '\0';
            sink_conn_answer(c, 200, line);

        } else {
            sink_conn_answer(c, 404, "{\"error\":\"not found\"}");
        }

        used += (size_t) head + r.content_length;
    }

    if (used) {
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
    }
}


static void
sink_conn_post(sink_conn_t *c, const char *body, size_t len)
{
    uint64_t      now, ts_us;
    bench_note_t  n;

    S.requests++;
    now = sink_now_us();

    if (bench_note_parse(body, len, &n) != 0) {
        S.bad++;

        if (S.out) {
            fprintf(S.out, "{\"recv_us\":%" PRIu64 ",\"status\":400,"
                    "\"bad_len\":%zu}\n", now, len);
        }

        sink_conn_answer(c, 400, "{\"error\":\"not a notification\"}");
        return;
    }

    if (S.out) {
        fprintf(S.out, "{\"recv_us\":%" PRIu64 ",\"status\":%d,\"body\":%.*s}"
                "\n", now, S.status, (int) len, body);
    }

    if (S.status >= 200 && S.status < 300) {
        if (n.ts < S.since_ms) {
            S.stale++;

        } else {
            if (sink_seen(n.token, n.token_len, n.message_id,
                          n.message_id_len))
            {
                S.dup++;
            }

            S.notifications++;
            S.messages += n.count;

            if (S.t_first == 0) {
                S.t_first = now;
            }

            S.t_last = now;

            ts_us = n.ts * 1000;
            bench_hist_record(&S.lat, now > ts_us ? now - ts_us : 0);
        }
    }

    sink_conn_answer(c, S.status, "{}");
}


static void
sink_conn_answer(sink_conn_t *c, int status, const char *body)
{
    int          n;
    char         head[256];
    size_t       blen;
    const char  *reason;

    blen = strlen(body);

    reason = status == 200 ? "OK" : status == 400 ? "Bad Request"
             : status == 404 ? "Not Found" : status == 411 ? "Length Required"
             : status == 413 ? "Payload Too Large" : "Status";

    if (status >= 400 && status != 404) {
        /* the rest of the connection's bytes cannot be trusted */
        c->closing = 1;
    }

    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                 "Content-Length: %zu\r\n%s\r\n", status, reason,
                 body[0] == '{' ? "application/json" : "text/plain", blen,
                 c->closing ? "Connection: close\r\n" : "");

    if (sink_buf_add(&c->out, &c->out_len, &c->out_cap, head, (size_t) n)
            != 0
        || sink_buf_add(&c->out, &c->out_len, &c->out_cap, body, blen) != 0)
    {
        c->closing = 1;
    }
}


static void
sink_conn_flush(sink_conn_t *c)
{
    ssize_t             n;
    struct epoll_event  ev;

    while (c->out_off < c->out_len) {
        n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);

        if (n < 0 && errno == EINTR) {
            continue;
        }

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            memset(&ev, 0, sizeof(ev));
            ev.events = c->closing ? EPOLLOUT
                                   : EPOLLIN | EPOLLOUT | EPOLLRDHUP;
            ev.data.ptr = c;
            epoll_ctl(S.ep, EPOLL_CTL_MOD, c->fd, &ev);
            return;
        }

        if (n < 0) {
            sink_conn_close(c);
            return;
        }

        c->out_off += (size_t) n;
    }

    c->out_off = 0;
    c->out_len = 0;

    if (c->closing) {
        sink_conn_close(c);
        return;
    }

    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.ptr = c;
    epoll_ctl(S.ep, EPOLL_CTL_MOD, c->fd, &ev);
}


static void
sink_conn_close(sink_conn_t *c)
{
    epoll_ctl(S.ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}


/* FNV-1a of token NUL message_id: 1 when it was in the set already */
static int
sink_seen(const char *token, size_t tlen, const char *id, size_t ilen)
{
    size_t     i, j, cap;
    uint64_t   h, *p;

    h = 0xcbf29ce484222325ULL;

    for (i = 0; i < tlen; i++) {
        h = (h ^ (unsigned char) token[i]) * 0x100000001b3ULL;
    }

    h = (h ^ 0) * 0x100000001b3ULL;

    for (i = 0; i < ilen; i++) {
        h = (h ^ (unsigned char) id[i]) * 0x100000001b3ULL;
    }

    if (h == 0) {
        h = 1;
    }

    if (2 * (S.seen_len + 1) > S.seen_cap) {
        cap = S.seen_cap ? 2 * S.seen_cap : 65536;
        p = calloc(cap, sizeof(uint64_t));
        if (p == NULL) {
            sink_die("out of memory");
        }

        for (i = 0; i < S.seen_cap; i++) {
            if (S.seen[i] == 0) {
                continue;
            }

            for (j = S.seen[i] & (cap - 1); p[j]; j = (j + 1) & (cap - 1)) {
                /* void */
            }

            p[j] = S.seen[i];
        }

        free(S.seen);
        S.seen = p;
        S.seen_cap = cap;
    }

    for (j = h & (S.seen_cap - 1); S.seen[j];
         j = (j + 1) & (S.seen_cap - 1))
    {
        if (S.seen[j] == h) {
            return 1;
        }
    }

    S.seen[j] = h;
    S.seen_len++;

    return 0;
}


static int
sink_stats(char *buf, size_t cap)
{
    int       n;
    double    span;
    uint64_t  t0;

    /* from --since (the bench: when it starts sending) or the first */
    t0 = S.since_ms ? S.since_ms * 1000 : S.t_first;
    span = S.t_last > t0 ? (double) (S.t_last - t0) / 1e6 : 0;

    n = snprintf(buf, cap,
                 "notifications=%" PRIu64 " messages=%" PRIu64 " rate=%.0f"
                 " p50_ms=%.1f p99_ms=%.1f max_ms=%.1f bad=%" PRIu64
                 " requests=%" PRIu64 " dup=%" PRIu64 " stale=%" PRIu64
                 " span_s=%.3f conns=%" PRIu64,
                 S.notifications, S.messages,
                 span > 0 ? (double) S.notifications / span : 0,
                 bench_hist_quantile(&S.lat, 0.5) / 1e3,
                 bench_hist_quantile(&S.lat, 0.99) / 1e3,
                 (double) S.lat.max / 1e3, S.bad, S.requests, S.dup,
                 S.stale, span, S.conns);

    if (n < 0) {
        n = 0;
    }

    return (size_t) n >= cap ? (int) cap - 1 : n;
}


static void
sink_signal(int signo)
{
    (void) signo;

    sink_quit = 1;
}


int
main(int argc, char **argv)
{
    int                 i, n;
    char                line[512];
    uint64_t            deadline;
    sink_conn_t        *c;
    struct sigaction    sa;
    struct epoll_event  evs[256];

    sink_options(argc, argv);
    bench_hist_init(&S.lat);

    signal(SIGPIPE, SIG_IGN);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = sink_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    if (S.out_file) {
        S.out = fopen(S.out_file, "w");
        if (S.out == NULL) {
            sink_die("%s: %s", S.out_file, strerror(errno));
        }
    }

    sink_listen();

    deadline = S.duration > 0
               ? sink_now_us() + (uint64_t) (S.duration * 1e6) : 0;

    while (!sink_quit) {
        if (deadline && sink_now_us() >= deadline) {
            break;
        }

        n = epoll_wait(S.ep, evs, 256, 100);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }

            sink_die("epoll_wait: %s", strerror(errno));
        }

        for (i = 0; i < n; i++) {
            c = evs[i].data.ptr;

            if (c == NULL) {
                sink_accept();
                continue;
            }

            if (evs[i].events & EPOLLOUT) {
                sink_conn_flush(c);
                continue;
            }

            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            {
                sink_conn_read(c);
            }
        }
    }

    sink_stats(line, sizeof(line));
    printf("%s\n", line);
    fflush(stdout);

    if (S.out) {
        fclose(S.out);
    }

    return 0;
}
