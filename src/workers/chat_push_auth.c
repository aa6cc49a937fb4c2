
/*
 * Copyright (C) ngx_chat authors
 *
 * The push worker's FCM and APNs credentials, see chat_push_auth.h.
 */


#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>

#include "chat_json.h"
#include "chat_push_auth.h"


#define CHAT_PUSH_FILE_MAX      65536   /* a service-account file */
#define CHAT_PUSH_ANSWER_CAP    CHAT_PUSH_ANSWER_MAX


typedef struct {
    char     buf[CHAT_PUSH_ANSWER_CAP + 1];
    size_t   len;
    int      over;
} chat_push_answer_t;


static void chat_push_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int chat_push_endpoint(const char *url, int https_only, char *out,
    size_t size);
static int chat_push_field(json_t *sa, const char *key, char *out,
    size_t size);
static EVP_PKEY *chat_push_pem_key(const char *pem, size_t len);
static char *chat_push_read_file(const char *file, size_t *len);
static int chat_push_id_ok(const char *s, size_t max, const char *extra);
static size_t chat_push_collect(char *p, size_t size, size_t n, void *data);
static int chat_push_fcm_fetch(chat_push_fcm_t *f, int64_t now_ms,
    char *err, size_t errlen);
static int chat_push_headers_add(struct curl_slist **list, const char **h,
    int n);


static void
chat_push_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  ap;

    if (err == NULL || errlen == 0) {
        return;
    }

    va_start(ap, fmt);
    (void) vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}


/* http[s]://host[:port], nothing after; copied without a trailing "/" */

static int
chat_push_endpoint(const char *url, int https_only, char *out, size_t size)
{
    size_t       n;
    const char  *host;

    if (url == NULL) {
        return -1;
    }

    if (strncmp(url, "https://", 8) == 0) {
        host = url + 8;

    } else if (!https_only && strncmp(url, "http://", 7) == 0) {
        host = url + 7;

    } else {
        return -1;
    }

    n = strlen(url);

    if (n > 0 && url[n - 1] == '/') {
        n--;
    }

    if (host[0] == '\0' || host[0] == '/' || n >= size
        || memchr(host, '/', url + n - host) != NULL
        || strpbrk(host, "?#@ \t\r\n") != NULL)
    {
        return -1;
    }

    memcpy(out, url, n);
    out[n] = '\0';

    return 0;
}


static int
chat_push_field(json_t *sa, const char *key, char *out, size_t size)
{
    size_t       len;
    const char  *s;

    if (chat_json_get_string(sa, key, &s, &len) != 0 || len == 0
        || len >= size)
    {
        return -1;
    }

    memcpy(out, s, len + 1);

    return 0;
}


static EVP_PKEY *
chat_push_pem_key(const char *pem, size_t len)
{
    BIO       *bio;
    EVP_PKEY  *key;

    bio = BIO_new_mem_buf(pem, (int) len);
    if (bio == NULL) {
        return NULL;
    }

    key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);

    return key;
}


/* the whole file, NUL-terminated; NULL when unreadable or too large */

static char *
chat_push_read_file(const char *file, size_t *len)
{
    int    ok;
    char  *buf;
    FILE  *fp;

    fp = fopen(file, "r");
    if (fp == NULL) {
        return NULL;
    }

    buf = malloc(CHAT_PUSH_FILE_MAX + 1);
    if (buf == NULL) {
        fclose(fp);
        return NULL;
    }

    *len = fread(buf, 1, CHAT_PUSH_FILE_MAX, fp);
    ok = !ferror(fp) && feof(fp);
    fclose(fp);

    if (!ok) {
        OPENSSL_cleanse(buf, CHAT_PUSH_FILE_MAX + 1);
        free(buf);
        return NULL;
    }

    buf[*len] = '\0';

    return buf;
}


/* 1..max of [A-Za-z0-9] and the characters of extra */

static int
chat_push_id_ok(const char *s, size_t max, const char *extra)
{
    size_t  i;

    if (s == NULL || s[0] == '\0') {
        return 0;
    }

    for (i = 0; s[i]; i++) {
        if (i == max
            || (!isalnum((unsigned char) s[i]) && strchr(extra, s[i]) == NULL))
        {
            return 0;
        }
    }

    return 1;
}


/* all of h appended to *list, or none of them */

static int
chat_push_headers_add(struct curl_slist **list, const char **h, int n)
{
    int                 i;
    struct curl_slist  *l, *t, *tail;

    l = NULL;

    for (i = 0; i < n; i++) {
        t = curl_slist_append(l, h[i]);

        if (t == NULL) {
            curl_slist_free_all(l);
            return -1;
        }

        l = t;
    }

    if (*list == NULL) {
        *list = l;
        return 0;
    }

    for (tail = *list; tail->next; tail = tail->next) {
        /* void */
    }

    tail->next = l;

    return 0;
}


/* --- FCM --------------------------------------------------------------- */

int
chat_push_fcm_open(chat_push_fcm_t *f, const char *sa_file,
    const char *endpoint, const char *token_uri, char *err, size_t errlen)
{
    int          rc;
    char        *text, base[CHAT_PUSH_URL_MAX], pem[8192];
    size_t       len;
    json_t      *sa;
    const char  *type, *jerr;

    memset(f, 0, sizeof(chat_push_fcm_t));

    text = chat_push_read_file(sa_file, &len);
    if (text == NULL) {
        chat_push_err(err, errlen, "cannot read the service-account file");
        return -1;
    }

    sa = chat_json_load_object(text, len, 8, &jerr);

    OPENSSL_cleanse(text, len);
    free(text);

    if (sa == NULL) {
        chat_push_err(err, errlen, "the service-account file: %s", jerr);
        return -1;
    }

    rc = -1;

    if (chat_json_get_string(sa, "type", &type, NULL) == 0
        && strcmp(type, "service_account") != 0)
    {
        chat_push_err(err, errlen, "the service-account file: \"type\" is "
                      "not \"service_account\"");
        goto done;
    }

    if (chat_push_field(sa, "project_id", f->project_id,
                        sizeof(f->project_id)) != 0
        || !chat_push_id_ok(f->project_id, CHAT_PUSH_FIELD_MAX, "-"))
    {
        chat_push_err(err, errlen, "the service-account file: no valid "
                      "\"project_id\"");
        goto done;
    }

    if (chat_push_field(sa, "client_email", f->client_email,
                        sizeof(f->client_email)) != 0)
    {
        chat_push_err(err, errlen, "the service-account file: no "
                      "\"client_email\"");
        goto done;
    }

    if (chat_push_field(sa, "private_key", pem, sizeof(pem)) != 0
        || (f->key = chat_push_pem_key(pem, strlen(pem))) == NULL
        || EVP_PKEY_get_base_id(f->key) != EVP_PKEY_RSA)
    {
        chat_push_err(err, errlen, "the service-account file: no RSA "
                      "\"private_key\" in PEM");
        goto done;
    }

    if (token_uri != NULL) {
        /* a token URI has a path: the scheme, the size, no spaces */
        if (strlen(token_uri) >= sizeof(f->token_uri)
            || strpbrk(token_uri, " \t\r\n") != NULL
            || (strncmp(token_uri, "http://", 7) != 0
                && strncmp(token_uri, "https://", 8) != 0))
        {
            chat_push_err(err, errlen, "--fcm-token-uri must be an http or "
                          "https URL");
            goto done;
        }

        memcpy(f->token_uri, token_uri, strlen(token_uri) + 1);

    } else if (chat_push_field(sa, "token_uri", f->token_uri,
                               sizeof(f->token_uri)) != 0
               || strncmp(f->token_uri, "https://", 8) != 0
               || f->token_uri[8] == '\0')
    {
        chat_push_err(err, errlen, "the service-account file: "
                      "\"token_uri\" must be an https URL");
        goto done;
    }

    if (chat_push_endpoint(endpoint ? endpoint : CHAT_PUSH_FCM_ENDPOINT, 0,
                           base, sizeof(base)) != 0
        || snprintf(f->url, sizeof(f->url), "%s/v1/projects/%s/messages:send",
                    base, f->project_id) >= (int) sizeof(f->url))
    {
        chat_push_err(err, errlen, "--fcm-endpoint is scheme://host[:port] "
                      "without a path");
        goto done;
    }

    f->curl = curl_easy_init();
    if (f->curl == NULL) {
        chat_push_err(err, errlen, "curl_easy_init() failed");
        goto done;
    }

    rc = 0;

done:

    OPENSSL_cleanse(pem, sizeof(pem));
    json_decref(sa);

    if (rc != 0) {
        chat_push_fcm_close(f);
    }

    return rc;
}


static size_t
chat_push_collect(char *p, size_t size, size_t n, void *data)
{
    size_t               len;
    chat_push_answer_t  *a;

    a = data;
    len = size * n;

    if (a->len + len > CHAT_PUSH_ANSWER_CAP) {
        a->over = 1;
        return len;
    }

    memcpy(a->buf + a->len, p, len);
    a->len += len;

    return len;
}


static int
chat_push_fcm_fetch(chat_push_fcm_t *f, int64_t now_ms, char *err,
    size_t errlen)
{
    int                  rc;
    long                 status;
    char                *assertion, *form, reason[CHAT_PUSH_REASON_MAX + 1];
    int64_t              expires;
    CURLcode             cc;
    json_t              *j;
    const char          *e, *jerr;
    chat_push_answer_t  *a;
    struct curl_slist   *list;

    assertion = chat_push_google_assertion(f->key, f->client_email,
                                           f->token_uri, now_ms / 1000);
    form = assertion ? chat_push_google_token_form(assertion) : NULL;

    if (assertion) {
        OPENSSL_cleanse(assertion, strlen(assertion));
        free(assertion);
    }

    a = calloc(1, sizeof(chat_push_answer_t));
    list = curl_slist_append(NULL, "content-type: "
                             "application/x-www-form-urlencoded");

    if (form == NULL || a == NULL || list == NULL) {
        chat_push_err(err, errlen, "cannot make the OAuth2 assertion");
        rc = -1;
        goto done;
    }

    curl_easy_reset(f->curl);
    curl_easy_setopt(f->curl, CURLOPT_URL, f->token_uri);
    curl_easy_setopt(f->curl, CURLOPT_POSTFIELDS, form);
    curl_easy_setopt(f->curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(f->curl, CURLOPT_TIMEOUT_MS,
                     (long) CHAT_PUSH_TOKEN_TIMEOUT);
    curl_easy_setopt(f->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(f->curl, CURLOPT_WRITEFUNCTION, chat_push_collect);
    curl_easy_setopt(f->curl, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(f->curl, CURLOPT_PROTOCOLS_STR, "http,https");

    cc = curl_easy_perform(f->curl);
    status = 0;

    if (cc == CURLE_OK) {
        curl_easy_getinfo(f->curl, CURLINFO_RESPONSE_CODE, &status);
    }

    rc = -1;

    if (cc != CURLE_OK) {
        chat_push_err(err, errlen, "token endpoint: %s",
                      curl_easy_strerror(cc));

    } else if (status != 200 || a->over) {
        /* Google's answer: {"error":"invalid_grant",...}; no secret */
        e = NULL;
        j = a->over ? NULL
                    : chat_json_load_object(a->buf, a->len, 8, &jerr);
        (void) chat_json_get_string(j, "error", &e, NULL);
        (void) chat_push_classify(CHAT_PUSH_WEBHOOK, status, NULL, 0,
                                  reason, sizeof(reason));
        chat_push_err(err, errlen, "token endpoint: HTTP %ld %s", status,
                      e && chat_push_id_ok(e, 64, "_-.") ? e : reason);
        json_decref(j);

    } else if (chat_push_google_token_parse(a->buf, a->len, f->bearer,
                                            sizeof(f->bearer), &expires)
               != 0)
    {
        chat_push_err(err, errlen, "token endpoint: not a token answer");

    } else {
        f->bearer_until = now_ms + expires * 1000 - CHAT_PUSH_BEARER_MARGIN;

        if (f->bearer_until <= now_ms) {
            /* a short-lived token is used once, then fetched again */
            f->bearer_until = now_ms + 1;
        }

        rc = 0;
    }

done:

    if (form) {
        OPENSSL_cleanse(form, strlen(form));
        free(form);
    }

    if (a) {
        OPENSSL_cleanse(a->buf, sizeof(a->buf));
        free(a);
    }

    curl_slist_free_all(list);

    return rc;
}


const char *
chat_push_fcm_bearer(chat_push_fcm_t *f, int64_t now_ms, char *err,
    size_t errlen)
{
    if (f->bearer[0] != '\0' && now_ms < f->bearer_until) {
        return f->bearer;
    }

    OPENSSL_cleanse(f->bearer, sizeof(f->bearer));

    if (chat_push_fcm_fetch(f, now_ms, err, errlen) != 0) {
        f->bearer[0] = '\0';
        return NULL;
    }

    return f->bearer;
}


void
chat_push_fcm_reauth(chat_push_fcm_t *f)
{
    f->bearer_until = 0;
}


int
chat_push_fcm_headers(chat_push_fcm_t *f, int64_t now_ms,
    struct curl_slist **list, char *err, size_t errlen)
{
    int          rc;
    char         h[sizeof("authorization: Bearer ") + CHAT_PUSH_BEARER_MAX];
    const char  *b, *hs[2];

    b = chat_push_fcm_bearer(f, now_ms, err, errlen);
    if (b == NULL) {
        return -1;
    }

    (void) snprintf(h, sizeof(h), "authorization: Bearer %s", b);

    hs[0] = h;
    hs[1] = "content-type: application/json";

    rc = chat_push_headers_add(list, hs, 2);
    OPENSSL_cleanse(h, sizeof(h));

    if (rc != 0) {
        chat_push_err(err, errlen, "out of memory");
        return -1;
    }

    return 0;
}


void
chat_push_fcm_close(chat_push_fcm_t *f)
{
    if (f->curl) {
        curl_easy_cleanup(f->curl);
    }

    EVP_PKEY_free(f->key);
    OPENSSL_cleanse(f, sizeof(chat_push_fcm_t));
}


/* --- APNs -------------------------------------------------------------- */

int
chat_push_apns_open(chat_push_apns_t *a, const char *key_file,
    const char *key_id, const char *team_id, const char *topic,
    const char *endpoint, char *err, size_t errlen)
{
    char    *pem;
    size_t   len;

    memset(a, 0, sizeof(chat_push_apns_t));

    if (!chat_push_id_ok(key_id, 64, "") || !chat_push_id_ok(team_id, 64, "")
        || !chat_push_id_ok(topic, 200, ".-_"))
    {
        chat_push_err(err, errlen, "--apns-key-id, --apns-team-id (letters "
                      "and digits) and --apns-topic (a bundle id) are "
                      "required");
        return -1;
    }

    if (chat_push_endpoint(endpoint ? endpoint : CHAT_PUSH_APNS_PRODUCTION,
                           0, a->endpoint, sizeof(a->endpoint)) != 0)
    {
        chat_push_err(err, errlen, "--apns-endpoint is scheme://host[:port] "
                      "without a path");
        return -1;
    }

    pem = chat_push_read_file(key_file, &len);
    if (pem == NULL) {
        chat_push_err(err, errlen, "cannot read the APNs key file");
        return -1;
    }

    a->key = chat_push_pem_key(pem, len);

    OPENSSL_cleanse(pem, len);
    free(pem);

    if (!chat_push_es256_key_ok(a->key)) {
        chat_push_err(err, errlen, "the APNs key file is not an EC P-256 "
                      "private key in PEM (.p8)");
        chat_push_apns_close(a);
        return -1;
    }

    memcpy(a->key_id, key_id, strlen(key_id) + 1);
    memcpy(a->team_id, team_id, strlen(team_id) + 1);
    memcpy(a->topic, topic, strlen(topic) + 1);

    return 0;
}


const char *
chat_push_apns_token(chat_push_apns_t *a, int64_t now_ms, char *err,
    size_t errlen)
{
    char    *jwt;
    size_t   len;

    if (a->jwt[0] != '\0' && now_ms < a->jwt_until) {
        return a->jwt;
    }

    jwt = chat_push_apns_jwt(a->key, a->key_id, a->team_id, now_ms / 1000);

    if (jwt == NULL || (len = strlen(jwt)) >= sizeof(a->jwt)) {
        free(jwt);
        chat_push_err(err, errlen, "cannot sign the APNs provider token");
        return NULL;
    }

    memcpy(a->jwt, jwt, len + 1);
    free(jwt);

    a->jwt_until = now_ms + CHAT_PUSH_APNS_JWT_AGE;

    return a->jwt;
}


void
chat_push_apns_reauth(chat_push_apns_t *a)
{
    a->jwt_until = 0;
}


int
chat_push_apns_url(chat_push_apns_t *a, const char *token, char *out,
    size_t size)
{
    int   n;
    char  path[CHAT_PUSH_APNS_PATH_MAX];

    if (chat_push_apns_path(token, path, sizeof(path)) < 0) {
        return -1;
    }

    n = snprintf(out, size, "%s%s", a->endpoint, path);

    if (n < 0 || (size_t) n >= size) {
        if (size > 0) {
            out[0] = '\0';
        }

        return -1;
    }

    return n;
}


int
chat_push_apns_headers(chat_push_apns_t *a, const chat_push_note_t *n,
    int64_t now_ms, struct curl_slist **list, char *err, size_t errlen)
{
    int          i, k, rc;
    char         h[7][CHAT_PUSH_JWT_MAX + 32];
    const char  *jwt, *hs[7];

    jwt = chat_push_apns_token(a, now_ms, err, errlen);
    if (jwt == NULL) {
        return -1;
    }

    k = 0;
    (void) snprintf(h[k++], sizeof(h[0]), "authorization: bearer %s", jwt);
    (void) snprintf(h[k++], sizeof(h[0]), "apns-topic: %s", a->topic);
    (void) snprintf(h[k++], sizeof(h[0]), "apns-push-type: alert");
    (void) snprintf(h[k++], sizeof(h[0]), "apns-priority: 10");
    (void) snprintf(h[k++], sizeof(h[0]), "apns-expiration: %lld",
                    (long long) (now_ms / 1000 + CHAT_PUSH_APNS_EXPIRATION));

    if (n->conv && n->conv[0] != '\0'
        && chat_push_id_ok(n->conv, CHAT_PUSH_COLLAPSE_MAX, ":-_."))
    {
        (void) snprintf(h[k++], sizeof(h[0]), "apns-collapse-id: %s",
                        n->conv);
    }

    h[k][0] = '\0';
    (void) snprintf(h[k], sizeof(h[0]), "content-type: application/json");

    for (i = 0; i <= k; i++) {
        hs[i] = h[i];
    }

    rc = chat_push_headers_add(list, hs, k + 1);
    OPENSSL_cleanse(h[0], sizeof(h[0]));

    if (rc != 0) {
        chat_push_err(err, errlen, "out of memory");
        return -1;
    }

    return 0;
}


void
chat_push_apns_close(chat_push_apns_t *a)
{
    EVP_PKEY_free(a->key);
    OPENSSL_cleanse(a, sizeof(chat_push_apns_t));
}
