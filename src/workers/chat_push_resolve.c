
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker push: a batch's recipients, runs, presence and jobs, see
 * chat_push_resolve.h.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_push_resolve.h"
#include "chat_worker.h"


#define CHAT_PUSH_MEMBERS_SQL                                                 \
    "SELECT m.i, gm.user_id "                                                 \
    "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) "                  \
    "     WITH ORDINALITY AS m(gid, sender, ts, i) "                          \
    "JOIN group_members gm ON gm.group_id = m.gid "                           \
    "                     AND gm.user_id <> m.sender "                        \
    "                     AND floor(extract(epoch FROM gm.joined_at) * 1000) "\
    "                         <= m.ts"

#define CHAT_PUSH_DEVICES_SQL                                                 \
    "SELECT user_id, token, platform FROM devices "                           \
    "WHERE user_id = ANY($1::bigint[]) ORDER BY user_id, token"


static chat_pg_rc_e chat_push_members(chat_consume_lane_t *l,
    chat_push_batch_t *b);
static int chat_push_run_add(chat_push_batch_t *b, int64_t user, int msg);
static int chat_push_runs(chat_push_batch_t *b);
static int chat_push_run_cmp(const void *one, const void *two, void *arg);
static chat_pg_rc_e chat_push_devices(chat_consume_lane_t *l,
    chat_push_lane_t *pl, chat_push_batch_t *b);
static int chat_push_job_add(chat_push_lane_t *pl, chat_push_batch_t *b,
    chat_push_run_t *run, const char *token, const char *platform);


/* steps 1 to 4: the batch's jobs */

chat_pg_rc_e
chat_push_resolve(chat_consume_lane_t *l, chat_push_lane_t *pl,
    chat_push_batch_t *b)
{
    int                 i, n;
    int64_t            *users;
    chat_pg_rc_e        rc;
    unsigned char      *online;
    chat_push_msg_t    *msg;

    b->nruns = 0;
    b->njobs = 0;

    for (i = 0; i < b->nmsgs; i++) {
        msg = &b->msgs[i];

        if (msg->to && chat_push_run_add(b, msg->to, i) != 0) {
            snprintf(l->pg_error, sizeof(l->pg_error), "out of memory");
            return CHAT_PG_RETRY;
        }
    }

    rc = chat_push_members(l, b);
    if (rc != CHAT_PG_OK) {
        return rc;
    }

    n = chat_push_runs(b);

    /* who is online, asked once per user */
    users = malloc((n + 1) * sizeof(int64_t));
    online = malloc(n + 1);

    if (users == NULL || online == NULL) {
        free(users);
        free(online);
        snprintf(l->pg_error, sizeof(l->pg_error), "out of memory");
        return CHAT_PG_RETRY;
    }

    for (i = 0, b->recipients = 0; i < b->nruns; i++) {
        if (b->recipients == 0
            || users[b->recipients - 1] != b->runs[i].user)
        {
            users[b->recipients++] = b->runs[i].user;
        }
    }

    if (chat_redis_online(&pl->redis, users, b->recipients,
                          chat_worker_wall() - l->c->k.conf->presence_ttl,
                          online)
        != 0)
    {
        snprintf(l->pg_error, sizeof(l->pg_error), "%s", pl->redis.err);
        free(users);
        free(online);
        return CHAT_PG_RETRY;
    }

    for (i = 0, n = 0, b->online = 0; i < b->nruns; i++) {
        while (users[n] != b->runs[i].user) {
            n++;
        }

        b->runs[i].online = online[n];
        b->online += online[n];
    }

    free(users);
    free(online);

    return chat_push_devices(l, pl, b);
}


/* the members of the batch's groups who get each group message */

static chat_pg_rc_e
chat_push_members(chat_consume_lane_t *l, chat_push_batch_t *b)
{
    int                 i, n, row, rows, k;
    char               *params[3];
    int64_t            *gid, *sender, *ts;
    int                *which;
    PGresult           *r;
    chat_pg_rc_e        rc;

    gid = malloc(b->nmsgs * 3 * sizeof(int64_t));
    which = malloc(b->nmsgs * sizeof(int));

    if (gid == NULL || which == NULL) {
        free(gid);
        free(which);
        snprintf(l->pg_error, sizeof(l->pg_error), "out of memory");
        return CHAT_PG_RETRY;
    }

    sender = gid + b->nmsgs;
    ts = sender + b->nmsgs;

    for (i = 0, n = 0; i < b->nmsgs; i++) {
        if (b->msgs[i].group) {
            gid[n] = b->msgs[i].group;
            sender[n] = b->msgs[i].from;
            ts[n] = b->msgs[i].ts;
            which[n++] = i;
        }
    }

    if (n == 0) {
        free(gid);
        free(which);
        return CHAT_PG_OK;
    }

    params[0] = chat_push_array(gid, n);
    params[1] = chat_push_array(sender, n);
    params[2] = chat_push_array(ts, n);

    rc = CHAT_PG_RETRY;

    if (params[0] == NULL || params[1] == NULL || params[2] == NULL) {
        snprintf(l->pg_error, sizeof(l->pg_error), "out of memory");
        goto done;
    }

    if (chat_consume_pg(l) == NULL) {
        goto done;
    }

    r = PQexecParams(l->pg, CHAT_PUSH_MEMBERS_SQL, 3, NULL,
                     (const char *const *) params, NULL, NULL, 0);

    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = chat_consume_exec(l, r, PGRES_TUPLES_OK);
        goto done;
    }

    rows = PQntuples(r);

    for (row = 0; row < rows; row++) {
        k = atoi(PQgetvalue(r, row, 0)) - 1;

        if (k < 0 || k >= n
            || chat_push_run_add(b, strtoll(PQgetvalue(r, row, 1), NULL, 10),
                                 which[k])
               != 0)
        {
            PQclear(r);
            snprintf(l->pg_error, sizeof(l->pg_error), "group members: "
                     "out of memory or a bad row");
            goto done;
        }
    }

    PQclear(r);
    rc = CHAT_PG_OK;

done:

    free(params[0]);
    free(params[1]);
    free(params[2]);
    free(gid);
    free(which);

    return rc;
}


static int
chat_push_run_add(chat_push_batch_t *b, int64_t user, int msg)
{
    int               cap;
    chat_push_run_t  *runs;

    if (b->nruns == b->runs_cap) {
        cap = b->runs_cap ? b->runs_cap * 2 : 256;
        runs = realloc(b->runs, cap * sizeof(chat_push_run_t));
        if (runs == NULL) {
            return -1;
        }

        b->runs = runs;
        b->runs_cap = cap;
    }

    b->runs[b->nruns].user = user;
    b->runs[b->nruns].msg = msg;
    b->runs[b->nruns].count = 1;
    b->runs[b->nruns].online = 0;
    b->nruns++;

    return 0;
}


/* (user, message) pairs into runs of one user and conversation */

static int
chat_push_runs(chat_push_batch_t *b)
{
    int               i, n;
    chat_push_run_t  *r, *last;

    if (b->nruns == 0) {
        return 0;
    }

    /* the lanes sort side by side: the batch goes as the argument */
    qsort_r(b->runs, b->nruns, sizeof(chat_push_run_t), chat_push_run_cmp,
            b);

    for (i = 1, n = 1; i < b->nruns; i++) {
        r = &b->runs[i];
        last = &b->runs[n - 1];

        if (r->user == last->user
            && strcmp(b->msgs[r->msg].conv, b->msgs[last->msg].conv) == 0)
        {
            /* sorted oldest first: the newest so far */
            last->msg = r->msg;
            last->count++;
            continue;
        }

        b->runs[n++] = *r;
    }

    b->nruns = n;

    return n;
}


/* by user, conversation, seq */

static int
chat_push_run_cmp(const void *one, const void *two, void *arg)
{
    int                     c;
    chat_push_batch_t      *batch = arg;
    const chat_push_run_t  *a = one, *b = two;
    const chat_push_msg_t  *ma, *mb;

    if (a->user != b->user) {
        return a->user < b->user ? -1 : 1;
    }

    ma = &batch->msgs[a->msg];
    mb = &batch->msgs[b->msg];

    c = strcmp(ma->conv, mb->conv);
    if (c) {
        return c;
    }

    if (ma->seq != mb->seq) {
        return ma->seq < mb->seq ? -1 : 1;
    }

    return a->msg < b->msg ? -1 : (a->msg > b->msg ? 1 : 0);
}


/* the devices of the users who are not online: a job per run and device */

static chat_pg_rc_e
chat_push_devices(chat_consume_lane_t *l, chat_push_lane_t *pl,
    chat_push_batch_t *b)
{
    int                 i, n, row, rows;
    char               *param;
    int64_t            *users, uid;
    PGresult           *r;
    chat_pg_rc_e        rc;

    users = malloc((b->nruns + 1) * sizeof(int64_t));
    if (users == NULL) {
        snprintf(l->pg_error, sizeof(l->pg_error), "out of memory");
        return CHAT_PG_RETRY;
    }

    for (i = 0, n = 0; i < b->nruns; i++) {
        if (!b->runs[i].online
            && (n == 0 || users[n - 1] != b->runs[i].user))
        {
            users[n++] = b->runs[i].user;
        }
    }

    if (n == 0) {
        free(users);
        return CHAT_PG_OK;
    }

    param = chat_push_array(users, n);
    free(users);

    if (param == NULL) {
        snprintf(l->pg_error, sizeof(l->pg_error), "out of memory");
        return CHAT_PG_RETRY;
    }

    if (chat_consume_pg(l) == NULL) {
        free(param);
        return CHAT_PG_RETRY;
    }

    r = PQexecParams(l->pg, CHAT_PUSH_DEVICES_SQL, 1, NULL,
                     (const char *const *) &param, NULL, NULL, 0);
    free(param);

    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        return chat_consume_exec(l, r, PGRES_TUPLES_OK);
    }

    rows = PQntuples(r);
    rc = CHAT_PG_OK;

    /* both sorted by user: a merge */
    for (i = 0, row = 0; i < b->nruns && row < rows; ) {
        if (b->runs[i].online) {
            i++;
            continue;
        }

        uid = strtoll(PQgetvalue(r, row, 0), NULL, 10);

        if (uid < b->runs[i].user) {
            row++;
            continue;
        }

        if (uid > b->runs[i].user) {
            i++;
            continue;
        }

        /* this run, every device of its user */
        for (n = row; n < rows
                      && strtoll(PQgetvalue(r, n, 0), NULL, 10) == uid; n++)
        {
            if (chat_push_job_add(pl, b, &b->runs[i], PQgetvalue(r, n, 1),
                                  PQgetvalue(r, n, 2))
                != 0)
            {
                snprintf(l->pg_error, sizeof(l->pg_error), "out of memory");
                rc = CHAT_PG_RETRY;
                goto done;
            }
        }

        i++;
    }

done:

    PQclear(r);

    return rc;
}


static int
chat_push_job_add(chat_push_lane_t *pl, chat_push_batch_t *b,
    chat_push_run_t *run, const char *token, const char *platform)
{
    int                cap, i;
    chat_push_job_t   *j, *jobs, **jobp;
    chat_push_msg_t   *msg;
    chat_push_note_t  *n;

    if (b->njobs == b->jobs_cap) {
        cap = b->jobs_cap ? b->jobs_cap * 2 : 256;
        jobs = realloc(b->jobs, cap * sizeof(chat_push_job_t));
        if (jobs == NULL) {
            return -1;
        }

        b->jobs = jobs;

        jobp = realloc(b->jobp, cap * sizeof(chat_push_job_t *));
        if (jobp == NULL) {
            return -1;
        }

        b->jobp = jobp;
        b->jobs_cap = cap;

        for (i = 0; i < b->njobs; i++) {
            b->jobp[i] = &b->jobs[i];
        }
    }

    j = &b->jobs[b->njobs];
    memset(j, 0, sizeof(chat_push_job_t));

    msg = &b->msgs[run->msg];
    n = &j->note;

    n->token = strdup(token);
    if (n->token == NULL) {
        return -1;
    }

    b->jobp[b->njobs] = j;
    b->njobs++;

    n->platform = chat_push_platform(platform);
    n->user_id = run->user;
    n->message_id = msg->id;
    n->from = msg->from;
    n->to = msg->group ? 0 : run->user;
    n->group = msg->group;
    n->preview = msg->has_preview ? msg->preview : NULL;
    n->e2e = msg->e2e;
    n->count = run->count;
    n->ts = msg->ts;
    n->conv = msg->conv;

    if ((n->platform == CHAT_PUSH_WEBHOOK && pl->sender.conf->webhook_url
         == NULL)
        || (n->platform == CHAT_PUSH_FCM && !pl->has_fcm)
        || (n->platform == CHAT_PUSH_APNS && !pl->has_apns)
        || n->platform < 0)
    {
        j->state = CHAT_PUSH_JOB_DROPPED;
        snprintf(j->reason, sizeof(j->reason), "no %s provider configured",
                 platform);
        return 0;
    }

    if (!chat_push_token_ok(n->platform, n->token)) {
        j->state = CHAT_PUSH_JOB_DROPPED;
        snprintf(j->reason, sizeof(j->reason), "a token %s cannot take",
                 platform);
        return 0;
    }

    switch (n->platform) {
    case CHAT_PUSH_FCM:
        j->body = chat_push_fcm_body(n);
        break;
    case CHAT_PUSH_APNS:
        j->body = chat_push_apns_body(n);
        break;
    default:
        j->body = chat_push_webhook_body(n);
        break;
    }

    return j->body ? 0 : -1;
}


/* "{1,2,3}", a bigint[] literal (malloc'd), or NULL */

char *
chat_push_array(const int64_t *v, int n)
{
    int    i;
    char  *s, *p;

    s = malloc((size_t) n * CHAT_PUSH_ID_LEN + 3);
    if (s == NULL) {
        return NULL;
    }

    p = s;
    *p++ = '{';

    for (i = 0; i < n; i++) {
        p += sprintf(p, "%s%lld", i ? "," : "", (long long) v[i]);
    }

    memcpy(p, "}", 2);

    return s;
}
