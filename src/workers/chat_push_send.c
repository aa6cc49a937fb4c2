
/*
 * Copyright (C) ngx_chat authors
 *
 * chat-worker push: the sender, see chat_push_send.h.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "chat_push_send.h"


#define CHAT_PUSH_POLL_MAX   200        /* ms: stop requests are seen */
#define CHAT_PUSH_REPORT     5000       /* ms between failure reports */


static int chat_push_start(chat_push_sender_t *s, chat_push_job_t *j,
    int64_t now);
static int chat_push_prepare(chat_push_sender_t *s, chat_push_job_t *j,
    int64_t now);
static void chat_push_done(chat_push_sender_t *s, CURL *easy,
    CURLcode result);
static void chat_push_again(chat_push_sender_t *s, chat_push_job_t *j,
    int64_t now);
static void chat_push_release(chat_push_sender_t *s, chat_push_job_t *j);
static void chat_push_abort(chat_push_sender_t *s, chat_push_job_t **jobs,
    int n);
static size_t chat_push_body_cb(char *data, size_t size, size_t n,
    void *arg);
static size_t chat_push_header_cb(char *data, size_t size, size_t n,
    void *arg);


int
chat_push_sender_init(chat_push_sender_t *s, chat_worker_conf_t *conf,
    chat_push_fcm_t *fcm, chat_push_apns_t *apns)
{
    memset(s, 0, sizeof(chat_push_sender_t));

    s->conf = conf;
    s->fcm = fcm;
    s->apns = apns;
    s->seed = (unsigned) (time(NULL) ^ getpid());

    s->multi = curl_multi_init();
    if (s->multi == NULL) {
        return -1;
    }

    (void) curl_multi_setopt(s->multi, CURLMOPT_PIPELINING,
                             (long) CURLPIPE_MULTIPLEX);
    (void) curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                             (long) conf->push_concurrency);
    (void) curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS,
                             (long) conf->push_concurrency);

    return 0;
}


void
chat_push_sender_free(chat_push_sender_t *s)
{
    if (s->multi) {
        curl_multi_cleanup(s->multi);
        s->multi = NULL;
    }
}


int
chat_push_send(chat_push_sender_t *s, chat_push_job_t **jobs, int n,
    int (*stop)(void *data), void *data)
{
    int               i, pending, running, left, timeout, finished;
    char              q[256];
    int64_t           now, next;
    CURLMsg          *msg;
    chat_push_job_t  *j;

    s->retried = 0;
    s->reauth = 0;

    for ( ;; ) {
        now = chat_worker_now();
        next = now + CHAT_PUSH_POLL_MAX;
        pending = 0;

        for (i = 0; i < n; i++) {
            j = jobs[i];

            if (chat_push_job_final(j)) {
                continue;
            }

            pending++;

            if (j->state != CHAT_PUSH_JOB_WAITING) {
                continue;
            }

            if (j->next_at > now) {
                next = j->next_at < next ? j->next_at : next;
                continue;
            }

            if (s->inflight < s->conf->push_concurrency
                && chat_push_start(s, j, now) != 0)
            {
                /* out of memory: what is not final is sent again later */
                chat_push_abort(s, jobs, n);
                return -1;
            }
        }

        if (pending == 0) {
            return 0;
        }

        if (stop(data)) {
            chat_push_abort(s, jobs, n);
            return -1;
        }

        (void) curl_multi_perform(s->multi, &running);

        finished = 0;

        while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
            if (msg->msg == CURLMSG_DONE) {
                chat_push_done(s, msg->easy_handle, msg->data.result);
                finished++;
            }
        }

        if (finished) {
            /* slots are free, or everything is done: no wait */
            continue;
        }

        now = chat_worker_now();
        timeout = (int) (next > now ? next - now : 0);

        if (s->failed_since && now - s->reported >= CHAT_PUSH_REPORT) {
            /* a provider failing: said every few seconds, not per try */
            chat_log(CHAT_LOG_WARN, "push_retrying", "pending=%d "
                     "failures=%d status=%ld reason=%s", pending,
                     s->failed_since, s->last_status,
                     chat_log_quote(s->last_reason, q, sizeof(q)));
            s->failed_since = 0;
            s->reported = now;
        }

        if (s->inflight) {
            (void) curl_multi_poll(s->multi, NULL, 0, timeout, NULL);

        } else if (timeout > 0) {
            chat_worker_sleep(timeout, 2);
        }
    }
}


/* one attempt of j into the multi handle: 0, or -1 out of memory */

static int
chat_push_start(chat_push_sender_t *s, chat_push_job_t *j, int64_t now)
{
    CURL  *e;
    long   version;

    if (j->first_at == 0) {
        j->first_at = now;
    }

    j->attempts++;
    j->resp_len = 0;
    j->resp[0] = '\0';
    j->retry_after = -1;
    j->status = 0;

    if (chat_push_prepare(s, j, now) != 0) {
        /* no credential now (reason set): like a transient failure */
        chat_push_again(s, j, now);
        return 0;
    }

    e = curl_easy_init();
    if (e == NULL) {
        chat_push_release(s, j);
        return -1;
    }

    /* APNs speaks HTTP/2 only (a test endpoint over http: h2c) */
    version = j->note.platform != CHAT_PUSH_APNS ? CURL_HTTP_VERSION_NONE
              : strncmp(j->url, "http://", 7) == 0
                ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE
                : CURL_HTTP_VERSION_2TLS;

    (void) curl_easy_setopt(e, CURLOPT_URL, j->url);
    (void) curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
    (void) curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
    (void) curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long) strlen(j->body));
    (void) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                            (long) s->conf->push_timeout);
    (void) curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                            (long) (s->conf->push_timeout < 5000
                                    ? s->conf->push_timeout : 5000));
    (void) curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    (void) curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    (void) curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    (void) curl_easy_setopt(e, CURLOPT_HTTP_VERSION, version);
    /* HTTP/2 (APNs): a new stream on the connection, not a new one */
    (void) curl_easy_setopt(e, CURLOPT_PIPEWAIT,
                            (long) (version != CURL_HTTP_VERSION_NONE));
    (void) curl_easy_setopt(e, CURLOPT_USERAGENT, "ngx_chat-push/1");
    (void) curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, chat_push_body_cb);
    (void) curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    (void) curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, chat_push_header_cb);
    (void) curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
    (void) curl_easy_setopt(e, CURLOPT_PRIVATE, j);

    if (curl_multi_add_handle(s->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        chat_push_release(s, j);
        return -1;
    }

    j->easy = e;
    j->state = CHAT_PUSH_JOB_FLYING;
    s->inflight++;

    return 0;
}


/* the attempt's URL and headers: 0, or -1 with the reason in j->reason */

static int
chat_push_prepare(chat_push_sender_t *s, chat_push_job_t *j, int64_t now)
{
    switch (j->note.platform) {

    case CHAT_PUSH_FCM:
        if (chat_push_fcm_headers(s->fcm, now, &j->headers, j->reason,
                                  sizeof(j->reason))
            != 0)
        {
            chat_push_release(s, j);
            return -1;
        }

        j->url = strdup(s->fcm->url);
        break;

    case CHAT_PUSH_APNS:
        if (chat_push_apns_headers(s->apns, &j->note, now, &j->headers,
                                   j->reason, sizeof(j->reason))
            != 0)
        {
            chat_push_release(s, j);
            return -1;
        }

        j->url = malloc(CHAT_PUSH_URL_MAX + CHAT_PUSH_APNS_PATH_MAX);

        if (j->url
            && chat_push_apns_url(s->apns, j->note.token, j->url,
                                  CHAT_PUSH_URL_MAX + CHAT_PUSH_APNS_PATH_MAX)
               < 0)
        {
            /* chat_push_token_ok() said yes before: cannot happen */
            chat_push_release(s, j);
            snprintf(j->reason, sizeof(j->reason), "not an APNs token");
            return -1;
        }

        break;

    default: /* CHAT_PUSH_WEBHOOK */
        j->headers = curl_slist_append(NULL,
                                       "Content-Type: application/json");
        if (j->headers == NULL) {
            goto nomem;
        }

        j->url = strdup(s->conf->webhook_url);
        break;
    }

    if (j->url == NULL) {
        goto nomem;
    }

    return 0;

nomem:

    chat_push_release(s, j);
    snprintf(j->reason, sizeof(j->reason), "out of memory");

    return -1;
}


static void
chat_push_done(chat_push_sender_t *s, CURL *easy, CURLcode result)
{
    int64_t               now;
    chat_push_job_t      *j;
    chat_push_outcome_e   out;

    j = NULL;
    (void) curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &j);

    if (j == NULL) {
        (void) curl_multi_remove_handle(s->multi, easy);
        curl_easy_cleanup(easy);
        return;
    }

    now = chat_worker_now();

    if (result == CURLE_OK) {
        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &j->status);
        out = chat_push_classify(j->note.platform, j->status, j->resp,
                                 j->resp_len, j->reason, sizeof(j->reason));

    } else {
        j->status = 0;
        snprintf(j->reason, sizeof(j->reason), "%s",
                 curl_easy_strerror(result));
        out = CHAT_PUSH_RETRY;
    }

    chat_push_release(s, j);

    switch (out) {

    case CHAT_PUSH_OK:
        j->state = CHAT_PUSH_JOB_SENT;
        j->sent_at = chat_worker_wall();
        break;

    case CHAT_PUSH_INVALID:
        j->state = CHAT_PUSH_JOB_INVALID;
        break;

    case CHAT_PUSH_FAIL:
        j->state = CHAT_PUSH_JOB_DEAD;
        break;

    case CHAT_PUSH_REAUTH:
        s->reauth++;

        if (j->note.platform == CHAT_PUSH_FCM) {
            chat_push_fcm_reauth(s->fcm);

        } else if (j->note.platform == CHAT_PUSH_APNS) {
            chat_push_apns_reauth(s->apns);
        }

        /* fall through */

    default: /* CHAT_PUSH_RETRY */
        chat_push_again(s, j, now);
        break;
    }
}


/* a transient failure: waiting for the next attempt, or given up */

static void
chat_push_again(chat_push_sender_t *s, chat_push_job_t *j, int64_t now)
{
    int64_t  delay;
    char     reason[sizeof(j->reason)];

    delay = chat_push_backoff(j->attempts, s->conf->push_retry_min,
                              s->conf->push_retry_max,
                              (double) rand_r(&s->seed)
                              / ((double) RAND_MAX + 1.0));

    if (j->retry_after > delay) {
        delay = j->retry_after;
    }

    if (s->conf->push_give_up
        && now + delay - j->first_at > s->conf->push_give_up)
    {
        memcpy(reason, j->reason, sizeof(reason));
        snprintf(j->reason, sizeof(j->reason), "gave up after %d attempts: "
                 "%.80s", j->attempts, reason);
        j->state = CHAT_PUSH_JOB_DEAD;
        return;
    }

    s->retried++;
    s->failed_since++;
    s->last_status = j->status;
    memcpy(s->last_reason, j->reason, sizeof(s->last_reason));

    chat_log(CHAT_LOG_DEBUG, "push_retry", "user=%lld message=%s "
             "attempt=%d status=%ld delay_ms=%lld", (long long) j->note.user_id,
             j->note.message_id, j->attempts, j->status, (long long) delay);

    j->state = CHAT_PUSH_JOB_WAITING;
    j->next_at = now + delay;
}


static void
chat_push_release(chat_push_sender_t *s, chat_push_job_t *j)
{
    if (j->easy) {
        (void) curl_multi_remove_handle(s->multi, j->easy);
        curl_easy_cleanup(j->easy);
        j->easy = NULL;
        s->inflight--;
    }

    if (j->headers) {
        curl_slist_free_all(j->headers);
        j->headers = NULL;
    }

    free(j->url);
    j->url = NULL;
}


/* the requests in flight are given up: they wait for the next call */

static void
chat_push_abort(chat_push_sender_t *s, chat_push_job_t **jobs, int n)
{
    int  i;

    for (i = 0; i < n; i++) {
        if (jobs[i]->state == CHAT_PUSH_JOB_FLYING) {
            chat_push_release(s, jobs[i]);
            jobs[i]->state = CHAT_PUSH_JOB_WAITING;
            jobs[i]->next_at = 0;
        }
    }
}


static size_t
chat_push_body_cb(char *data, size_t size, size_t n, void *arg)
{
    size_t            len, room;
    chat_push_job_t  *j = arg;

    len = size * n;
    room = sizeof(j->resp) - 1 - j->resp_len;

    /* what does not fit is not needed to judge the answer */
    memcpy(j->resp + j->resp_len, data, len < room ? len : room);
    j->resp_len += len < room ? len : room;
    j->resp[j->resp_len] = '\0';

    return len;
}


static size_t
chat_push_header_cb(char *data, size_t size, size_t n, void *arg)
{
    char              value[128];
    size_t            len, vlen;
    chat_push_job_t  *j = arg;

    len = size * n;

    if (len > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
        vlen = len - 12;
        vlen = vlen < sizeof(value) - 1 ? vlen : sizeof(value) - 1;
        memcpy(value, data + 12, vlen);
        value[vlen] = '\0';
        value[strcspn(value, "\r\n")] = '\0';

        j->retry_after = chat_push_retry_after(value + strspn(value, " \t"),
                                               chat_worker_wall());
    }

    return len;
}
