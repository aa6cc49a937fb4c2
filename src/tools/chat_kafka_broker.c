/*
 * chat-kafka-broker: a Kafka-protocol broker for the ngx_chat local stack
 * and tests.
 *
 * Apache Kafka is not packaged for Debian, so we serve the Kafka protocol
 * with librdkafka's mock cluster (rdkafka_mock.h).  It handles produce
 * (acks=all, idempotent), fetch, consumer groups and offset commits for
 * any client process.  Everything lives in memory: a restart loses all
 * messages and committed offsets.
 *
 * The process runs in the foreground; scripts daemonize it.
 */


#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>


#define CHAT_KB_NAME             "chat-kafka-broker"
#define CHAT_KB_DEFAULT_LISTEN   "127.0.0.1:59092"
#define CHAT_KB_MAX_BROKERS      3
#define CHAT_KB_MAX_TOPICS       64
#define CHAT_KB_MAX_PARTITIONS   1000
#define CHAT_KB_TOPIC_MAX_LEN    249   /* Kafka's own limit */
#define CHAT_KB_LOG_MAX          2048

#define CHAT_KB_EXIT_OK          0
#define CHAT_KB_EXIT_ERROR       1
#define CHAT_KB_EXIT_USAGE       2


typedef int (*chat_kb_bind_pt)(int fd, const struct sockaddr *addr,
    socklen_t len);


typedef struct {
    char                 name[CHAT_KB_TOPIC_MAX_LEN + 1];
    int                  partitions;
} chat_kb_topic_t;


typedef struct {
    struct in_addr       addr;
    int                  port;
    int                  brokers;
    chat_kb_topic_t      topics[CHAT_KB_MAX_TOPICS];
    int                  ntopics;
    const char          *pid_file;
    const char          *bootstrap_file;
    int                  verbose;
} chat_kb_conf_t;


/*
 * State of the bind(2) interposition, see bind() below.  Only the main
 * thread changes it; the mutex keeps any other thread that might bind
 * meanwhile from seeing it half-updated.
 */

static pthread_mutex_t   chat_kb_bind_lock = PTHREAD_MUTEX_INITIALIZER;
static chat_kb_bind_pt   chat_kb_real_bind;
static int               chat_kb_assigning;
static int               chat_kb_bind_fds[CHAT_KB_MAX_BROKERS];
static int               chat_kb_bind_nfds;
static int               chat_kb_bind_next;


static void chat_kb_log(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void chat_kb_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));


/*
 * Two partitions for the message and receipt topics, as many as the
 * workers' default lanes (--writers 2): the mock cluster keeps up to
 * 5 MiB per partition as a list of message sets and walks a partition's
 * whole list for every fetch, so a caught-up consumer costs the broker
 * time in proportion to the partitions it reads (docs/BENCHMARKS.md).
 */
static const chat_kb_topic_t  chat_kb_default_topics[] = {
    { "chat.messages", 2 },
    { "chat.receipts", 2 },
    { "chat.health",   1 },
    { "chat.dlq",      1 },
    { "chat.presence", 4 },
    { "chat.push.dlq", 1 },
};


static void
chat_kb_write_all(int fd, const char *buf, size_t len)
{
    ssize_t  n;

    while (len > 0) {
        n = write(fd, buf, len);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            return;
        }

        buf += n;
        len -= (size_t) n;
    }
}


/*
 * One line per call, written with a single write(2) so that lines from
 * librdkafka's threads do not interleave with ours.
 */

static void
chat_kb_log(const char *fmt, ...)
{
    int               rc;
    char              buf[CHAT_KB_LOG_MAX];
    size_t            n, i;
    va_list           args;
    struct tm         tm;
    struct timespec   ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);

    n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(buf + n, sizeof(buf) - n, ".%03dZ " CHAT_KB_NAME ": ",
                  (int) (ts.tv_nsec / 1000000));

    va_start(args, fmt);
    rc = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, args);
    va_end(args);

    if (rc > 0) {
        for (i = n; i < n + (size_t) rc && i < sizeof(buf) - 2; i++) {
            if (buf[i] == '\n' || buf[i] == '\r') {
                buf[i] = ' ';
            }
        }

        n = i;
    }

    buf[n++] = '\n';

    chat_kb_write_all(STDERR_FILENO, buf, n);
}


static void
chat_kb_rdkafka_log(const rd_kafka_t *rk, int level, const char *fac,
    const char *buf)
{
    static const char  *levels[] = {
        "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"
    };

    (void) rk;

    /*
     * the handle that owns the mock cluster never connects anywhere,
     * so this warning is expected and only misleads
     */

    if (strcmp(fac, "CONFWARN") == 0
        && strstr(buf, "bootstrap.servers") != NULL)
    {
        return;
    }

    if (level < 0 || level > LOG_DEBUG) {
        level = LOG_DEBUG;
    }

    chat_kb_log("rdkafka %s %s: %s", levels[level], fac, buf);
}


/*
 * librdkafka 2.0.2's mock cluster binds every broker's listener to
 * 127.0.0.1 port 0 and has no API to choose the port.  Clients (nginx,
 * workers, tests) must keep their bootstrap list across broker restarts,
 * so we need fixed ports.  We interpose bind(2) in our own executable:
 * librdkafka's call resolves to this definition before libc's.
 *
 * Only while chat_kb_assigning is set (around rd_kafka_mock_cluster_new(),
 * which creates the listeners synchronously in the calling thread) is an
 * AF_INET bind to port 0 served from our list: the socket we already
 * bound to the next port and put in listening state (chat_kb_claim_port())
 * replaces librdkafka's socket under the same descriptor, so librdkafka's
 * getsockname() sees our port and its own listen() just succeeds.  We
 * claim the ports up front rather than bind here because a bind(2) that
 * fails inside rd_kafka_mock_cluster_new() makes librdkafka 2.0.2 abort
 * (an assertion in its cleanup path), while we want a clear error naming
 * the port.  Everything else goes straight to the real bind(2).
 */

int
bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    int                  claimed;
    chat_kb_bind_pt      real;
    struct sockaddr_in   sin;

    real = __atomic_load_n(&chat_kb_real_bind, __ATOMIC_ACQUIRE);

    if (real == NULL) {
        real = (chat_kb_bind_pt) dlsym(RTLD_NEXT, "bind");

        if (real == NULL) {
            errno = ENOSYS;
            return -1;
        }

        __atomic_store_n(&chat_kb_real_bind, real, __ATOMIC_RELEASE);
    }

    if (addr == NULL
        || addr->sa_family != AF_INET
        || len < (socklen_t) sizeof(struct sockaddr_in))
    {
        return real(fd, addr, len);
    }

    memcpy(&sin, addr, sizeof(struct sockaddr_in));

    if (sin.sin_port != 0) {
        return real(fd, addr, len);
    }

    pthread_mutex_lock(&chat_kb_bind_lock);

    if (!chat_kb_assigning || chat_kb_bind_next >= chat_kb_bind_nfds) {
        pthread_mutex_unlock(&chat_kb_bind_lock);
        return real(fd, addr, len);
    }

    claimed = chat_kb_bind_fds[chat_kb_bind_next];

    if (dup3(claimed, fd, O_CLOEXEC) == -1) {
        pthread_mutex_unlock(&chat_kb_bind_lock);
        return -1;
    }

    close(claimed);
    chat_kb_bind_fds[chat_kb_bind_next++] = -1;

    pthread_mutex_unlock(&chat_kb_bind_lock);

    return 0;
}


static void
chat_kb_usage(FILE *out)
{
    fprintf(out,
"Usage: " CHAT_KB_NAME " [OPTIONS]\n"
"\n"
"Serve the Kafka protocol with librdkafka's mock cluster, in the\n"
"foreground, for the ngx_chat local stack and tests.  Produce (acks=all,\n"
"idempotent producer), fetch, consumer groups and offset commits work for\n"
"any client.  All data is kept in memory and lost when the process exits.\n"
"\n"
"Options:\n"
"  -l, --listen ADDR:PORT     IPv4 address and first port to listen on,\n"
"                             default " CHAT_KB_DEFAULT_LISTEN "; broker i\n"
"                             (counting from 0) listens on PORT+i\n"
"  -b, --brokers N            number of brokers, 1..%d (default 1); also\n"
"                             the replication factor of every topic\n"
"  -t, --topic NAME:PARTS     create topic NAME with PARTS partitions\n"
"                             (1..%d); repeatable; replaces the default\n"
"                             topics chat.messages:2 chat.receipts:2\n"
"                             chat.health:1 chat.dlq:1 chat.presence:4\n"
"                             chat.push.dlq:1\n"
"  -p, --pid-file FILE        when ready, write the pid to FILE; removed\n"
"                             on shutdown\n"
"  -B, --bootstrap-file FILE  when ready, write the bootstrap list to FILE\n"
"                             (written atomically)\n"
"  -v, --verbose              also log every request (librdkafka's \"mock\"\n"
"                             debug context)\n"
"  -h, --help                 show this help and exit\n"
"\n"
"When ready it logs \"" CHAT_KB_NAME ": ready bootstrap=... topics=...\"\n"
"to stderr.  Log lines go to stderr, each prefixed with an ISO-8601 UTC\n"
"timestamp.\n"
"\n"
"Signals:\n"
"  SIGTERM, SIGINT  shut down, remove the pid file, exit 0\n"
"  SIGUSR1          take every broker down: connections are closed and\n"
"                   new ones refused; topics and offsets are kept\n"
"  SIGUSR2          bring every broker up again\n"
"\n"
"Exit status: 0 after a clean shutdown, 1 on a runtime error (e.g. a port\n"
"already in use), 2 on bad arguments.\n",
            CHAT_KB_MAX_BROKERS, CHAT_KB_MAX_PARTITIONS);
}


static void
chat_kb_usage_error(const char *fmt, ...)
{
    va_list  args;

    fprintf(stderr, CHAT_KB_NAME ": ");

    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);

    fprintf(stderr, "\nTry '" CHAT_KB_NAME " --help' for more information."
            "\n");

    exit(CHAT_KB_EXIT_USAGE);
}


/* a whole decimal number within [min, max], or -1 */

static int
chat_kb_parse_int(const char *s, long min, long max, int *out)
{
    long   n;
    char  *end;

    if (*s < '0' || *s > '9') {
        return -1;
    }

    errno = 0;
    n = strtol(s, &end, 10);

    if (errno != 0 || *end != '\0' || n < min || n > max) {
        return -1;
    }

    *out = (int) n;

    return 0;
}


static void
chat_kb_parse_listen(chat_kb_conf_t *conf, const char *arg)
{
    char         host[INET_ADDRSTRLEN];
    size_t       len;
    const char  *colon;

    colon = strrchr(arg, ':');

    if (colon == NULL) {
        chat_kb_usage_error("invalid --listen \"%s\": expected ADDR:PORT, "
                            "e.g. " CHAT_KB_DEFAULT_LISTEN, arg);
    }

    len = (size_t) (colon - arg);

    if (len == 0 || len >= sizeof(host)) {
        chat_kb_usage_error("invalid --listen \"%s\": expected an IPv4 "
                            "address before the ':'", arg);
    }

    memcpy(host, arg, len);
    host[len] = '\0';

    if (inet_pton(AF_INET, host, &conf->addr) != 1) {
        chat_kb_usage_error("invalid --listen \"%s\": \"%s\" is not an IPv4 "
                            "address", arg, host);
    }

    /*
     * the mock cluster advertises the address it is bound to, and
     * clients cannot connect to 0.0.0.0
     */

    if (conf->addr.s_addr == htonl(INADDR_ANY)) {
        chat_kb_usage_error("invalid --listen \"%s\": the address is "
                            "advertised to clients, 0.0.0.0 cannot be used",
                            arg);
    }

    if (chat_kb_parse_int(colon + 1, 1, 65535, &conf->port) != 0) {
        chat_kb_usage_error("invalid --listen \"%s\": the port must be a "
                            "number in 1..65535", arg);
    }
}


static void
chat_kb_parse_topic(chat_kb_conf_t *conf, const char *arg)
{
    int               i, partitions;
    size_t            len;
    const char       *colon, *p;
    chat_kb_topic_t  *t;

    colon = strrchr(arg, ':');

    if (colon == NULL) {
        chat_kb_usage_error("invalid --topic \"%s\": expected NAME:PARTITIONS, "
                            "e.g. chat.messages:8", arg);
    }

    len = (size_t) (colon - arg);

    if (len == 0 || len > CHAT_KB_TOPIC_MAX_LEN) {
        chat_kb_usage_error("invalid --topic \"%s\": the name must have "
                            "1..%d characters", arg, CHAT_KB_TOPIC_MAX_LEN);
    }

    /* Kafka's rules for topic names */

    for (p = arg; p < colon; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_'
              || *p == '-'))
        {
            chat_kb_usage_error("invalid --topic \"%s\": the name may only "
                                "contain ASCII letters, digits, '.', '_' "
                                "and '-'", arg);
        }
    }

    if ((len == 1 && arg[0] == '.')
        || (len == 2 && arg[0] == '.' && arg[1] == '.'))
    {
        chat_kb_usage_error("invalid --topic \"%s\": \".\" and \"..\" are "
                            "not topic names", arg);
    }

    if (chat_kb_parse_int(colon + 1, 1, CHAT_KB_MAX_PARTITIONS, &partitions)
        != 0)
    {
        chat_kb_usage_error("invalid --topic \"%s\": the partition count "
                            "must be a number in 1..%d", arg,
                            CHAT_KB_MAX_PARTITIONS);
    }

    for (i = 0; i < conf->ntopics; i++) {
        if (strlen(conf->topics[i].name) == len
            && memcmp(conf->topics[i].name, arg, len) == 0)
        {
            chat_kb_usage_error("invalid --topic \"%s\": topic \"%.*s\" is "
                                "given twice", arg, (int) len, arg);
        }
    }

    if (conf->ntopics == CHAT_KB_MAX_TOPICS) {
        chat_kb_usage_error("too many --topic options (at most %d)",
                            CHAT_KB_MAX_TOPICS);
    }

    t = &conf->topics[conf->ntopics++];

    memcpy(t->name, arg, len);
    t->name[len] = '\0';
    t->partitions = partitions;
}


static void
chat_kb_parse_args(chat_kb_conf_t *conf, int argc, char **argv)
{
    int                   c, i;
    const char           *listen_arg;
    static const char     optstring[] = ":l:b:t:p:B:vh";
    static struct option  options[] = {
        { "listen",         required_argument, NULL, 'l' },
        { "brokers",        required_argument, NULL, 'b' },
        { "topic",          required_argument, NULL, 't' },
        { "pid-file",       required_argument, NULL, 'p' },
        { "bootstrap-file", required_argument, NULL, 'B' },
        { "verbose",        no_argument,       NULL, 'v' },
        { "help",           no_argument,       NULL, 'h' },
        { NULL,             0,                 NULL, 0 }
    };

    memset(conf, 0, sizeof(chat_kb_conf_t));

    listen_arg = CHAT_KB_DEFAULT_LISTEN;
    conf->brokers = 1;

    /* our own messages instead of getopt's */
    opterr = 0;

    for ( ;; ) {
        c = getopt_long(argc, argv, optstring, options, NULL);

        if (c == -1) {
            break;
        }

        switch (c) {

        case 'l':
            listen_arg = optarg;
            break;

        case 'b':
            if (chat_kb_parse_int(optarg, 1, CHAT_KB_MAX_BROKERS,
                                  &conf->brokers)
                != 0)
            {
                chat_kb_usage_error("invalid --brokers \"%s\": expected a "
                                    "number in 1..%d", optarg,
                                    CHAT_KB_MAX_BROKERS);
            }

            break;

        case 't':
            chat_kb_parse_topic(conf, optarg);
            break;

        case 'p':
            if (*optarg == '\0') {
                chat_kb_usage_error("--pid-file needs a file name");
            }

            conf->pid_file = optarg;
            break;

        case 'B':
            if (*optarg == '\0') {
                chat_kb_usage_error("--bootstrap-file needs a file name");
            }

            conf->bootstrap_file = optarg;
            break;

        case 'v':
            conf->verbose = 1;
            break;

        case 'h':
            chat_kb_usage(stdout);
            exit(CHAT_KB_EXIT_OK);

        case ':':
            chat_kb_usage_error("option \"%s\" needs an argument",
                                argv[optind - 1]);
            break;

        default:
            if (optopt != 0) {
                chat_kb_usage_error("unknown option \"-%c\"", optopt);
            }

            chat_kb_usage_error("unknown option \"%s\"", argv[optind - 1]);
            break;
        }
    }

    if (optind < argc) {
        chat_kb_usage_error("unexpected argument \"%s\"", argv[optind]);
    }

    chat_kb_parse_listen(conf, listen_arg);

    if (conf->port + conf->brokers - 1 > 65535) {
        chat_kb_usage_error("invalid --listen \"%s\": %d brokers need ports "
                            "%d..%d", listen_arg, conf->brokers, conf->port,
                            conf->port + conf->brokers - 1);
    }

    if (conf->ntopics == 0) {
        for (i = 0; i < (int) (sizeof(chat_kb_default_topics)
                               / sizeof(chat_kb_default_topics[0])); i++)
        {
            conf->topics[i] = chat_kb_default_topics[i];
        }

        conf->ntopics = i;
    }
}


/* write temp + rename, so that readers never see a partial file */

static int
chat_kb_write_file(const char *path, const char *data)
{
    int      fd, err;
    char     tmp[PATH_MAX];
    size_t   len, off;
    ssize_t  n;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long) getpid())
        >= (int) sizeof(tmp))
    {
        errno = ENAMETOOLONG;
        return -1;
    }

    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

    if (fd == -1) {
        return -1;
    }

    len = strlen(data);
    off = 0;

    while (off < len) {
        n = write(fd, data + off, len - off);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            goto failed;
        }

        off += (size_t) n;
    }

    if (close(fd) == -1) {
        fd = -1;
        goto failed;
    }

    fd = -1;

    if (rename(tmp, path) == -1) {
        goto failed;
    }

    return 0;

failed:

    err = errno;

    if (fd != -1) {
        close(fd);
    }

    unlink(tmp);

    errno = err;

    return -1;
}


/*
 * Remove the pid file only if it is still ours: a broker started right
 * after us may already have written its own.
 */

static void
chat_kb_remove_pid_file(const char *path)
{
    int      fd;
    long     pid;
    char     buf[32], *end;
    ssize_t  n;

    fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd == -1) {
        return;
    }

    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);

    if (n <= 0) {
        return;
    }

    buf[n] = '\0';
    pid = strtol(buf, &end, 10);

    if (pid != (long) getpid() || (*end != '\n' && *end != '\0')) {
        chat_kb_log("pid file %s is not ours any more, left alone", path);
        return;
    }

    if (unlink(path) == -1) {
        chat_kb_log("cannot remove pid file %s: %s", path, strerror(errno));
    }
}


static rd_kafka_t *
chat_kb_create_handle(const chat_kb_conf_t *conf)
{
    char              errstr[512];
    rd_kafka_t       *rk;
    rd_kafka_conf_t  *kconf;

    kconf = rd_kafka_conf_new();

    rd_kafka_conf_set_log_cb(kconf, chat_kb_rdkafka_log);

    /*
     * The mock cluster sets up the connections it accepts with this
     * handle's socket settings (rd_kafka_transport_post_connect_setup()):
     * without TCP_NODELAY, a response written while the previous one is
     * still unacknowledged waits for the client's delayed ACK, about
     * 40 ms on Linux, and a producer's acknowledgement with it.
     */

    if (rd_kafka_conf_set(kconf, "client.id", CHAT_KB_NAME, errstr,
                          sizeof(errstr))
        != RD_KAFKA_CONF_OK
        || rd_kafka_conf_set(kconf, "socket.nagle.disable", "true", errstr,
                             sizeof(errstr))
           != RD_KAFKA_CONF_OK)
    {
        goto failed;
    }

    if (conf->verbose
        && rd_kafka_conf_set(kconf, "debug", "mock", errstr, sizeof(errstr))
           != RD_KAFKA_CONF_OK)
    {
        goto failed;
    }

    /*
     * The handle only owns the mock cluster, it never connects anywhere;
     * rd_kafka_new() takes over kconf on success.
     */

    rk = rd_kafka_new(RD_KAFKA_PRODUCER, kconf, errstr, sizeof(errstr));

    if (rk == NULL) {
        goto failed;
    }

    return rk;

failed:

    rd_kafka_conf_destroy(kconf);

    chat_kb_log("cannot create the librdkafka handle: %s", errstr);

    return NULL;
}


/*
 * Binds and listens on addr:port, with SO_REUSEADDR so that a restarted
 * broker can bind while the old one's connections are in TIME_WAIT.
 * Listening right away also makes a second broker started at the same
 * time fail here, not inside librdkafka.
 */

static int
chat_kb_claim_port(struct in_addr addr, int port)
{
    int                 fd, on, err;
    struct sockaddr_in  sin;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);

    if (fd == -1) {
        return -1;
    }

    on = 1;

    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1) {
        goto failed;
    }

    memset(&sin, 0, sizeof(struct sockaddr_in));
    sin.sin_family = AF_INET;
    sin.sin_addr = addr;
    sin.sin_port = htons((uint16_t) port);

    if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) == -1) {
        goto failed;
    }

    if (listen(fd, SOMAXCONN) == -1) {
        goto failed;
    }

    return fd;

failed:

    err = errno;
    close(fd);
    errno = err;

    return -1;
}


static rd_kafka_mock_cluster_t *
chat_kb_create_cluster(const chat_kb_conf_t *conf, rd_kafka_t *rk)
{
    int                       i, fd;
    char                      expected[256], addr[INET_ADDRSTRLEN];
    size_t                    off;
    const char               *bootstraps;
    rd_kafka_mock_cluster_t  *mcluster;

    inet_ntop(AF_INET, &conf->addr, addr, sizeof(addr));

    pthread_mutex_lock(&chat_kb_bind_lock);

    chat_kb_bind_nfds = 0;
    chat_kb_bind_next = 0;

    for (i = 0; i < conf->brokers; i++) {
        fd = chat_kb_claim_port(conf->addr, conf->port + i);

        if (fd == -1) {
            chat_kb_log("cannot listen on %s:%d: %s", addr, conf->port + i,
                        strerror(errno));
            mcluster = NULL;
            goto done;
        }

        chat_kb_bind_fds[chat_kb_bind_nfds++] = fd;
    }

    chat_kb_assigning = 1;

    pthread_mutex_unlock(&chat_kb_bind_lock);

    mcluster = rd_kafka_mock_cluster_new(rk, conf->brokers);

    pthread_mutex_lock(&chat_kb_bind_lock);

    chat_kb_assigning = 0;

    if (mcluster == NULL) {
        chat_kb_log("cannot create the mock cluster with %d broker(s)",
                    conf->brokers);
    }

done:

    /* whatever librdkafka did not take over */

    for (i = chat_kb_bind_next; i < chat_kb_bind_nfds; i++) {
        close(chat_kb_bind_fds[i]);
    }

    chat_kb_bind_nfds = 0;
    chat_kb_bind_next = 0;

    pthread_mutex_unlock(&chat_kb_bind_lock);

    if (mcluster == NULL) {
        return NULL;
    }

    /* make sure the interposition took effect, or clients would miss us */

    off = 0;

    for (i = 0; i < conf->brokers; i++) {
        off += snprintf(expected + off, sizeof(expected) - off, "%s%s:%d",
                        i ? "," : "", addr, conf->port + i);
    }

    bootstraps = rd_kafka_mock_cluster_bootstraps(mcluster);

    if (bootstraps == NULL || strcmp(bootstraps, expected) != 0) {
        chat_kb_log("the mock cluster listens on \"%s\", not on \"%s\": "
                    "the bind(2) interposition did not take effect",
                    bootstraps ? bootstraps : "", expected);

        rd_kafka_mock_cluster_destroy(mcluster);

        return NULL;
    }

    return mcluster;
}


static int
chat_kb_create_topics(const chat_kb_conf_t *conf,
    rd_kafka_mock_cluster_t *mcluster, char *list, size_t size)
{
    int                     i;
    size_t                  off;
    rd_kafka_resp_err_t     err;
    const chat_kb_topic_t  *t;

    off = 0;
    list[0] = '\0';

    for (i = 0; i < conf->ntopics; i++) {
        t = &conf->topics[i];

        err = rd_kafka_mock_topic_create(mcluster, t->name, t->partitions,
                                         conf->brokers);

        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            chat_kb_log("cannot create topic %s with %d partition(s): %s",
                        t->name, t->partitions, rd_kafka_err2str(err));
            return -1;
        }

        if (off < size) {
            off += snprintf(list + off, size - off, "%s%s:%d",
                            i ? "," : "", t->name, t->partitions);
        }
    }

    return 0;
}


static void
chat_kb_set_brokers(const chat_kb_conf_t *conf,
    rd_kafka_mock_cluster_t *mcluster, int up)
{
    int                  id;
    char                 addr[INET_ADDRSTRLEN];
    rd_kafka_resp_err_t  err;

    inet_ntop(AF_INET, &conf->addr, addr, sizeof(addr));

    /* the mock numbers brokers from 1 */

    for (id = 1; id <= conf->brokers; id++) {
        if (up) {
            err = rd_kafka_mock_broker_set_up(mcluster, id);

        } else {
            err = rd_kafka_mock_broker_set_down(mcluster, id);
        }

        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            chat_kb_log("cannot take broker %d (%s:%d) %s: %s", id, addr,
                        conf->port + id - 1, up ? "up" : "down",
                        rd_kafka_err2str(err));
            continue;
        }

        chat_kb_log("broker %d (%s:%d) is %s", id, addr,
                    conf->port + id - 1, up ? "up" : "down");
    }
}


int
main(int argc, char **argv)
{
    int                       signo, rc;
    char                      topics[4096], buf[512];
    sigset_t                  set;
    siginfo_t                 info;
    rd_kafka_t               *rk;
    struct sigaction          sa;
    chat_kb_conf_t            conf;
    const char               *bootstraps;
    rd_kafka_mock_cluster_t  *mcluster;

    chat_kb_parse_args(&conf, argc, argv);

    /*
     * Block the signals we handle before librdkafka starts its threads,
     * so they inherit the mask and sigwaitinfo() below gets them all.
     */

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);

    rc = pthread_sigmask(SIG_BLOCK, &set, NULL);

    if (rc != 0) {
        chat_kb_log("pthread_sigmask() failed: %s", strerror(rc));
        return CHAT_KB_EXIT_ERROR;
    }

    /* a client that goes away must not kill the broker */

    memset(&sa, 0, sizeof(struct sigaction));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);

    rk = chat_kb_create_handle(&conf);

    if (rk == NULL) {
        return CHAT_KB_EXIT_ERROR;
    }

    mcluster = chat_kb_create_cluster(&conf, rk);

    if (mcluster == NULL) {
        rd_kafka_destroy(rk);
        return CHAT_KB_EXIT_ERROR;
    }

    bootstraps = rd_kafka_mock_cluster_bootstraps(mcluster);

    if (chat_kb_create_topics(&conf, mcluster, topics, sizeof(topics)) != 0) {
        goto failed;
    }

    if (conf.bootstrap_file != NULL) {
        snprintf(buf, sizeof(buf), "%s\n", bootstraps);

        if (chat_kb_write_file(conf.bootstrap_file, buf) != 0) {
            chat_kb_log("cannot write bootstrap file %s: %s",
                        conf.bootstrap_file, strerror(errno));
            goto failed;
        }
    }

    if (conf.pid_file != NULL) {
        snprintf(buf, sizeof(buf), "%ld\n", (long) getpid());

        if (chat_kb_write_file(conf.pid_file, buf) != 0) {
            chat_kb_log("cannot write pid file %s: %s", conf.pid_file,
                        strerror(errno));
            goto failed;
        }
    }

    chat_kb_log("ready bootstrap=%s topics=%s", bootstraps, topics);

    for ( ;; ) {
        signo = sigwaitinfo(&set, &info);

        if (signo == -1) {
            if (errno == EINTR) {
                continue;
            }

            chat_kb_log("sigwaitinfo() failed: %s", strerror(errno));
            break;
        }

        if (signo == SIGUSR1) {
            chat_kb_log("SIGUSR1 from pid %ld: taking all brokers down",
                        (long) info.si_pid);
            chat_kb_set_brokers(&conf, mcluster, 0);
            continue;
        }

        if (signo == SIGUSR2) {
            chat_kb_log("SIGUSR2 from pid %ld: bringing all brokers up",
                        (long) info.si_pid);
            chat_kb_set_brokers(&conf, mcluster, 1);
            continue;
        }

        chat_kb_log("%s from pid %ld: shutting down",
                    signo == SIGTERM ? "SIGTERM" : "SIGINT",
                    (long) info.si_pid);
        break;
    }

    /*
     * The pid file goes first: a broker started right after us can bind
     * only once the cluster is destroyed, and then writes its own.
     */

    if (conf.pid_file != NULL) {
        chat_kb_remove_pid_file(conf.pid_file);
    }

    rd_kafka_mock_cluster_destroy(mcluster);
    rd_kafka_destroy(rk);

    chat_kb_log("exiting");

    return signo == -1 ? CHAT_KB_EXIT_ERROR : CHAT_KB_EXIT_OK;

failed:

    rd_kafka_mock_cluster_destroy(mcluster);
    rd_kafka_destroy(rk);

    return CHAT_KB_EXIT_ERROR;
}
