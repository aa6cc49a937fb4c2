
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker: the gateway's Redis servers, see chat_redis.h.
 */


#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "chat_redis.h"
#include "chat_worker.h"


#define CHAT_REDIS_CHUNK  500          /* users per ZMSCORE */


static int chat_redis_server(chat_redis_server_t *s, const char *item,
    size_t len, char *err, size_t errlen);
static int chat_redis_password(chat_redis_t *r, const char *file);
static redisContext *chat_redis_connect(chat_redis_t *r,
    chat_redis_server_t *s);
static void chat_redis_drop(chat_redis_t *r, chat_redis_server_t *s,
    const char *what);


int
chat_redis_init(chat_redis_t *r, const char *list, const char *password_file,
    int timeout)
{
    int          i;
    size_t       len, npoints;
    const char  *p, *end, *names[CHAT_REDIS_MAX_SERVERS];

    memset(r, 0, sizeof(chat_redis_t));
    r->timeout = timeout;

    for (p = list; *p; p = *end ? end + 1 : end) {
        end = strchr(p, ',');
        if (end == NULL) {
            end = p + strlen(p);
        }

        len = (size_t) (end - p);

        if (r->n == CHAT_REDIS_MAX_SERVERS) {
            snprintf(r->err, sizeof(r->err), "more than %d Redis servers",
                     CHAT_REDIS_MAX_SERVERS);
            return -1;
        }

        if (chat_redis_server(&r->servers[r->n], p, len, r->err,
                              sizeof(r->err))
            != 0)
        {
            return -1;
        }

        for (i = 0; i < r->n; i++) {
            if (strcmp(r->servers[i].name, r->servers[r->n].name) == 0) {
                snprintf(r->err, sizeof(r->err), "Redis server \"%s\" "
                         "listed twice", r->servers[i].name);
                r->n++;
                return -1;
            }
        }

        names[r->n] = r->servers[r->n].name;
        r->n++;
    }

    if (r->n == 0) {
        snprintf(r->err, sizeof(r->err), "no Redis server");
        return -1;
    }

    npoints = chat_ring_points_needed(r->n, CHAT_RING_VNODES);
    r->points = calloc(npoints, sizeof(chat_ring_point_t));

    if (r->points == NULL
        || chat_ring_init(&r->ring, r->points, names, NULL, r->n,
                          CHAT_RING_VNODES)
           != 0)
    {
        snprintf(r->err, sizeof(r->err), "the ring of Redis servers");
        return -1;
    }

    if (password_file && chat_redis_password(r, password_file) != 0) {
        return -1;
    }

    return 0;
}


void
chat_redis_free(chat_redis_t *r)
{
    int  i;

    for (i = 0; i < r->n; i++) {
        if (r->servers[i].ctx) {
            redisFree(r->servers[i].ctx);
        }

        free(r->servers[i].name);
        free(r->servers[i].host);
    }

    if (r->password) {
        memset(r->password, 0, strlen(r->password));
        free(r->password);
    }

    free(r->points);
    memset(r, 0, sizeof(chat_redis_t));
}


int
chat_redis_hset(chat_redis_t *r, const char *key, const char *field,
    const char *value)
{
    redisReply           *reply;
    redisContext         *ctx;
    chat_redis_server_t  *s;

    s = &r->servers[chat_ring_lookup(&r->ring, key, strlen(key))];

    ctx = chat_redis_connect(r, s);
    if (ctx == NULL) {
        return -1;
    }

    reply = redisCommand(ctx, "HSET %s %s %s", key, field, value);

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        if (reply) {
            snprintf(r->err, sizeof(r->err), "redis %s: HSET: %s", s->name,
                     reply->str);
            freeReplyObject(reply);
            return -1;
        }

        chat_redis_drop(r, s, "HSET");
        return -1;
    }

    freeReplyObject(reply);

    return 0;
}


int
chat_redis_online(chat_redis_t *r, const int64_t *users, int n,
    int64_t since, unsigned char *online)
{
    int                   i, j, k, s, nargs, sent, rc;
    char                 *ids, *id;
    size_t               *lens;
    uint32_t             *shard;
    const char          **argv;
    redisReply           *reply;
    redisContext         *ctx;
    chat_redis_server_t  *srv;

    if (n == 0) {
        return 0;
    }

    rc = -1;
    shard = malloc(n * sizeof(uint32_t));
    ids = malloc((size_t) n * 21);
    argv = malloc((CHAT_REDIS_CHUNK + 2) * sizeof(char *));
    lens = malloc((CHAT_REDIS_CHUNK + 2) * sizeof(size_t));

    if (shard == NULL || ids == NULL || argv == NULL || lens == NULL) {
        snprintf(r->err, sizeof(r->err), "out of memory");
        goto done;
    }

    for (i = 0; i < n; i++) {
        shard[i] = chat_ring_lookup_u64(&r->ring, (uint64_t) users[i]);
        online[i] = 0;
    }

    argv[0] = "ZMSCORE";
    lens[0] = 7;
    argv[1] = "chat:presence:live";
    lens[1] = 18;

    for (s = 0; s < r->n; s++) {
        srv = &r->servers[s];
        ctx = NULL;
        sent = 0;

        /* the users of this server, in chunks, pipelined */
        for (i = 0; i < n; ) {
            nargs = 2;
            id = ids;

            for ( /* void */ ; i < n && nargs < CHAT_REDIS_CHUNK + 2; i++) {
                if (shard[i] != (uint32_t) s) {
                    continue;
                }

                lens[nargs] = sprintf(id, "%lld", (long long) users[i]);
                argv[nargs++] = id;
                id += lens[nargs - 1] + 1;
            }

            if (nargs == 2) {
                break;
            }

            if (ctx == NULL) {
                ctx = chat_redis_connect(r, srv);
                if (ctx == NULL) {
                    goto done;
                }
            }

            if (redisAppendCommandArgv(ctx, nargs, argv, lens) != REDIS_OK) {
                chat_redis_drop(r, srv, "ZMSCORE");
                goto done;
            }

            sent++;
        }

        /* the replies, in the order asked: the same walk again */
        for (i = 0, k = 0; k < sent; k++) {
            if (redisGetReply(ctx, (void **) &reply) != REDIS_OK) {
                chat_redis_drop(r, srv, "ZMSCORE");
                goto done;
            }

            if (reply->type != REDIS_REPLY_ARRAY) {
                snprintf(r->err, sizeof(r->err), "redis %s: ZMSCORE: %s",
                         srv->name, reply->type == REDIS_REPLY_ERROR
                                    ? reply->str : "not an array");
                freeReplyObject(reply);
                chat_redis_drop(r, srv, NULL);
                goto done;
            }

            for (j = 0; i < n && j < (int) reply->elements; i++) {
                if (shard[i] != (uint32_t) s) {
                    continue;
                }

                /* a score as a string (RESP2), nil when not a member */
                if (reply->element[j]->type == REDIS_REPLY_STRING
                    && strtod(reply->element[j]->str, NULL) >= (double) since)
                {
                    online[i] = 1;
                }

                j++;
            }

            freeReplyObject(reply);
        }
    }

    rc = 0;

done:

    free(shard);
    free(ids);
    free(argv);
    free(lens);

    return rc;
}


/* "host[:port]" or "unix:/path" */

static int
chat_redis_server(chat_redis_server_t *s, const char *item, size_t len,
    char *err, size_t errlen)
{
    long         port;
    char        *end;
    const char  *colon;

    s->name = strndup(item, len);
    if (s->name == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    if (len == 0) {
        snprintf(err, errlen, "an empty Redis server in --redis");
        return -1;
    }

    if (strncmp(s->name, "unix:", 5) == 0) {
        if (s->name[5] != '/') {
            snprintf(err, errlen, "Redis server \"%s\": a unix socket's "
                     "path must be absolute", s->name);
            return -1;
        }

        s->host = strdup(s->name + 5);
        s->port = 0;
        return s->host ? 0 : -1;
    }

    colon = strrchr(s->name, ':');
    port = 6379;

    if (colon) {
        errno = 0;
        port = strtol(colon + 1, &end, 10);

        if (errno || end == colon + 1 || *end || port < 1 || port > 65535) {
            snprintf(err, errlen, "Redis server \"%s\": a bad port",
                     s->name);
            return -1;
        }
    }

    s->host = strndup(s->name, colon ? (size_t) (colon - s->name) : len);
    s->port = (int) port;

    if (s->host == NULL || s->host[0] == '\0') {
        snprintf(err, errlen, "Redis server \"%s\": no host", s->name);
        return -1;
    }

    return 0;
}


static int
chat_redis_password(chat_redis_t *r, const char *file)
{
    FILE    *f;
    char     buf[CHAT_REDIS_MAX_PASSWORD + 2];
    size_t   len;

    f = fopen(file, "r");
    if (f == NULL) {
        snprintf(r->err, sizeof(r->err), "cannot open the Redis password "
                 "file %s: %s", file, strerror(errno));
        return -1;
    }

    if (fgets(buf, sizeof(buf), f) == NULL) {
        buf[0] = '\0';
    }

    fclose(f);

    len = strcspn(buf, "\r\n");
    buf[len] = '\0';

    if (len == 0 || len > CHAT_REDIS_MAX_PASSWORD) {
        snprintf(r->err, sizeof(r->err), "the Redis password file %s is "
                 "empty or longer than %d bytes", file,
                 CHAT_REDIS_MAX_PASSWORD);
        memset(buf, 0, sizeof(buf));
        return -1;
    }

    r->password = strdup(buf);
    memset(buf, 0, sizeof(buf));

    return r->password ? 0 : -1;
}


static redisContext *
chat_redis_connect(chat_redis_t *r, chat_redis_server_t *s)
{
    struct timeval   tv;
    redisReply      *reply;
    redisContext    *ctx;

    if (s->ctx) {
        return s->ctx;
    }

    tv.tv_sec = r->timeout / 1000;
    tv.tv_usec = (r->timeout % 1000) * 1000;

    ctx = s->port ? redisConnectWithTimeout(s->host, s->port, tv)
                  : redisConnectUnixWithTimeout(s->host, tv);

    if (ctx == NULL || ctx->err) {
        snprintf(r->err, sizeof(r->err), "redis %s: connect: %s", s->name,
                 ctx ? ctx->errstr : "out of memory");
        if (ctx) {
            redisFree(ctx);
        }

        return NULL;
    }

    (void) redisSetTimeout(ctx, tv);

    if (r->password) {
        reply = redisCommand(ctx, "AUTH %s", r->password);

        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            snprintf(r->err, sizeof(r->err), "redis %s: AUTH: %s", s->name,
                     reply ? reply->str : ctx->errstr);
            if (reply) {
                freeReplyObject(reply);
            }

            redisFree(ctx);
            return NULL;
        }

        freeReplyObject(reply);
    }

    chat_log(CHAT_LOG_INFO, "redis_connected", "server=%s", s->name);

    s->ctx = ctx;

    return ctx;
}


static void
chat_redis_drop(chat_redis_t *r, chat_redis_server_t *s, const char *what)
{
    if (what) {
        snprintf(r->err, sizeof(r->err), "redis %s: %s: %s", s->name, what,
                 s->ctx && s->ctx->errstr[0] ? s->ctx->errstr : "failed");
    }

    if (s->ctx) {
        redisFree(s->ctx);
        s->ctx = NULL;
    }
}
