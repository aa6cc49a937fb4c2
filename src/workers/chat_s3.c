
/*
 * Copyright (C) ngx_chat authors
 *
 * DELETE of an object in the S3-compatible media store (chat_s3.h).
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "chat_s3.h"
#include "chat_sigv4.h"


#define CHAT_S3_TIMEOUT_MS   10000
#define CHAT_S3_FIELD_MAX    512


struct chat_s3_s {
    CURL                   *curl;
    char                    endpoint[CHAT_S3_FIELD_MAX];   /* no slash */
    char                    host[CHAT_S3_FIELD_MAX];
    char                    bucket[CHAT_S3_FIELD_MAX];
    char                    region[64];
    char                    key_id[CHAT_S3_FIELD_MAX];
    char                    secret[CHAT_SIGV4_SECRET_MAX + 1];
};


static int chat_s3_credentials(chat_s3_t *s3, const char *file);
static size_t chat_s3_discard(char *p, size_t size, size_t n, void *data);


chat_s3_t *
chat_s3_open(chat_worker_conf_t *conf)
{
    size_t       n;
    chat_s3_t   *s3;
    const char  *h;

    if (conf->s3_endpoint == NULL || conf->s3_bucket == NULL
        || conf->s3_region == NULL || conf->s3_credentials_file == NULL)
    {
        chat_log(CHAT_LOG_ERROR, "s3_config", "hint=\"--s3-endpoint, "
                 "--s3-bucket, --s3-region and --s3-credentials-file go "
                 "together\"");
        return NULL;
    }

    h = strstr(conf->s3_endpoint, "://");
    n = strlen(conf->s3_endpoint);

    if (h == NULL || (strncmp(conf->s3_endpoint, "http://", 7) != 0
                      && strncmp(conf->s3_endpoint, "https://", 8) != 0)
        || strchr(h + 3, '/') != NULL || h[3] == '\0'
        || n >= CHAT_S3_FIELD_MAX || strlen(conf->s3_bucket) == 0
        || strlen(conf->s3_bucket) >= CHAT_S3_FIELD_MAX
        || strlen(conf->s3_region) >= 64)
    {
        chat_log(CHAT_LOG_ERROR, "s3_config", "hint=\"--s3-endpoint is "
                 "scheme://host[:port] without a path\"");
        return NULL;
    }

    s3 = calloc(1, sizeof(chat_s3_t));
    if (s3 == NULL) {
        return NULL;
    }

    memcpy(s3->endpoint, conf->s3_endpoint, n + 1);
    snprintf(s3->host, sizeof(s3->host), "%s", h + 3);
    snprintf(s3->bucket, sizeof(s3->bucket), "%s", conf->s3_bucket);
    snprintf(s3->region, sizeof(s3->region), "%s", conf->s3_region);

    if (chat_s3_credentials(s3, conf->s3_credentials_file) != 0) {
        chat_s3_close(s3);
        return NULL;
    }

    curl_global_init(CURL_GLOBAL_DEFAULT);

    s3->curl = curl_easy_init();
    if (s3->curl == NULL) {
        chat_s3_close(s3);
        return NULL;
    }

    return s3;
}


void
chat_s3_close(chat_s3_t *s3)
{
    if (s3 == NULL) {
        return;
    }

    if (s3->curl) {
        curl_easy_cleanup(s3->curl);
    }

    OPENSSL_cleanse(s3->secret, sizeof(s3->secret));
    free(s3);
}


/* two lines: the access key id, the secret; nothing else */

static int
chat_s3_credentials(chat_s3_t *s3, const char *file)
{
    int     ok;
    char    buf[2 * CHAT_S3_FIELD_MAX], *nl, *second, *end;
    FILE   *f;
    size_t  n;

    f = fopen(file, "r");
    if (f == NULL) {
        chat_log(CHAT_LOG_ERROR, "s3_credentials", "file=%s error=cannot_open",
                 file);
        return -1;
    }

    n = fread(buf, 1, sizeof(buf) - 1, f);
    ok = !ferror(f) && feof(f);
    fclose(f);
    buf[n] = '\0';

    nl = ok ? strchr(buf, '\n') : NULL;
    second = nl ? nl + 1 : NULL;
    end = second ? second + strcspn(second, "\r\n") : NULL;

    if (nl == NULL || nl == buf || end == second
        || (size_t) (nl - buf) >= sizeof(s3->key_id)
        || (size_t) (end - second) > CHAT_SIGV4_SECRET_MAX
        || end[strspn(end, "\r\n")] != '\0')
    {
        OPENSSL_cleanse(buf, sizeof(buf));
        chat_log(CHAT_LOG_ERROR, "s3_credentials", "file=%s error=\"the "
                 "access key id on the first line, the secret on the "
                 "second, nothing else\"", file);
        return -1;
    }

    if (nl > buf && nl[-1] == '\r') {
        nl--;
    }

    memcpy(s3->key_id, buf, nl - buf);
    s3->key_id[nl - buf] = '\0';
    memcpy(s3->secret, second, end - second);
    s3->secret[end - second] = '\0';

    OPENSSL_cleanse(buf, sizeof(buf));

    return 0;
}


static size_t
chat_s3_discard(char *p, size_t size, size_t n, void *data)
{
    (void) p;
    (void) data;

    return size * n;
}


int
chat_s3_delete(chat_s3_t *s3, const char *key)
{
    int                   n;
    long                  status;
    char                  path[2 * CHAT_S3_FIELD_MAX], enc[3 * sizeof(path)];
    char                  date[17], url[sizeof(enc) + CHAT_S3_FIELD_MAX];
    char                  auth[1024], hauth[1100], hdate[64], hsha[128];
    char                  empty[65];
    time_t                now;
    struct tm             tm;
    CURLcode              rc;
    chat_sigv4_key_t      k;
    chat_sigv4_header_t   h[3];
    struct curl_slist    *list;

    now = time(NULL);
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%Y%m%dT%H%M%SZ", &tm);

    if (snprintf(path, sizeof(path), "/%s/%s", s3->bucket, key)
        >= (int) sizeof(path)
        || chat_sigv4_uri_encode(path, strlen(path), 1, enc, sizeof(enc)) < 0)
    {
        return -1;
    }

    chat_sigv4_sha256_hex("", 0, empty);

    h[0].name = "host";
    h[0].value = s3->host;
    h[1].name = "x-amz-content-sha256";
    h[1].value = empty;
    h[2].name = "x-amz-date";
    h[2].value = date;

    k.access_key = s3->key_id;
    k.secret_key = s3->secret;
    k.region = s3->region;
    k.service = "s3";
    k.session_token = NULL;

    n = chat_sigv4_authorization(&k, "DELETE", path, NULL, h, 3, empty, date,
                                 auth, sizeof(auth));
    if (n < 0) {
        chat_log(CHAT_LOG_ERROR, "s3_sign_failed", "key=%s", key);
        return -1;
    }

    snprintf(url, sizeof(url), "%s%s", s3->endpoint, enc);
    snprintf(hauth, sizeof(hauth), "Authorization: %s", auth);
    snprintf(hdate, sizeof(hdate), "x-amz-date: %s", date);
    snprintf(hsha, sizeof(hsha), "x-amz-content-sha256: %s", empty);

    list = curl_slist_append(NULL, hauth);
    list = list ? curl_slist_append(list, hdate) : NULL;
    list = list ? curl_slist_append(list, hsha) : NULL;

    if (list == NULL) {
        return -1;
    }

    curl_easy_reset(s3->curl);
    curl_easy_setopt(s3->curl, CURLOPT_URL, url);
    curl_easy_setopt(s3->curl, CURLOPT_CUSTOMREQUEST, "DELETE");
    curl_easy_setopt(s3->curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(s3->curl, CURLOPT_TIMEOUT_MS, (long) CHAT_S3_TIMEOUT_MS);
    curl_easy_setopt(s3->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s3->curl, CURLOPT_WRITEFUNCTION, chat_s3_discard);
    curl_easy_setopt(s3->curl, CURLOPT_PROTOCOLS_STR, "http,https");

    rc = curl_easy_perform(s3->curl);
    status = 0;

    if (rc == CURLE_OK) {
        curl_easy_getinfo(s3->curl, CURLINFO_RESPONSE_CODE, &status);
    }

    curl_slist_free_all(list);
    OPENSSL_cleanse(auth, sizeof(auth));
    OPENSSL_cleanse(hauth, sizeof(hauth));

    if (rc == CURLE_OK && ((status >= 200 && status <= 299) || status == 404))
    {
        return 0;
    }

    chat_log(CHAT_LOG_ERROR, "s3_delete_failed", "key=%s status=%ld "
             "error=\"%s\"", key, status,
             rc == CURLE_OK ? "refused" : curl_easy_strerror(rc));

    return -1;
}
