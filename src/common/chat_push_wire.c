
/*
 * ngx_chat: the push providers' wire formats, see chat_push_wire.h.
 */


#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include "chat_base64.h"
#include "chat_json.h"
#include "chat_push_wire.h"
#include "chat_sigv4.h"


#define CHAT_PUSH_JSON_DEPTH   8
#define CHAT_PUSH_FORM_GRANT                                                  \
    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"      \
    "&assertion="
#define CHAT_PUSH_ASSERTION_TTL  3600
#define CHAT_PUSH_JWT_PART_MAX   1024     /* header or claims, as JSON */


static size_t chat_push_utf8_char(const unsigned char *p, size_t len);
static int chat_push_set_id(json_t *obj, const char *key, int64_t v,
    int as_string);
static int chat_push_set_str(json_t *obj, const char *key, const char *s);
static int chat_push_set_target(json_t *obj, const chat_push_note_t *n,
    int as_string);
static char *chat_push_dump(json_t *obj);
static int chat_push_collapse_ok(const char *conv);
static void chat_push_reason(char *reason, size_t size, const char *text,
    long status);
static const char *chat_push_fcm_code(json_t *err);
static chat_push_outcome_e chat_push_classify_fcm(long status, json_t *root,
    char *reason, size_t size);
static chat_push_outcome_e chat_push_classify_apns(long status, json_t *root,
    char *reason, size_t size);
static int chat_push_http_date(const char *s, time_t *out);
static char *chat_push_jwt(EVP_PKEY *key, int es256, json_t *header,
    json_t *claims);
static int chat_push_es256_raw(const unsigned char *der, size_t len,
    unsigned char raw[64]);


int
chat_push_platform(const char *name)
{
    if (name == NULL) {
        return -1;
    }

    if (strcmp(name, "webhook") == 0) {
        return CHAT_PUSH_WEBHOOK;
    }

    if (strcmp(name, "fcm") == 0) {
        return CHAT_PUSH_FCM;
    }

    if (strcmp(name, "apns") == 0) {
        return CHAT_PUSH_APNS;
    }

    return -1;
}


const char *
chat_push_platform_name(int platform)
{
    switch (platform) {

    case CHAT_PUSH_WEBHOOK:
        return "webhook";

    case CHAT_PUSH_FCM:
        return "fcm";

    case CHAT_PUSH_APNS:
        return "apns";

    default:
        return "?";
    }
}


const char *
chat_push_outcome_text(chat_push_outcome_e o)
{
    switch (o) {

    case CHAT_PUSH_OK:
        return "ok";

    case CHAT_PUSH_RETRY:
        return "retry";

    case CHAT_PUSH_REAUTH:
        return "reauth";

    case CHAT_PUSH_INVALID:
        return "invalid";

    default:
        return "fail";
    }
}


/* --- the preview ------------------------------------------------------- */

/* the length of a valid UTF-8 character at p, 0 when there is none */

static size_t
chat_push_utf8_char(const unsigned char *p, size_t len)
{
    size_t  n;

    if (len == 0 || p[0] == 0) {
        return 0;
    }

    n = (p[0] < 0x80) ? 1 : (p[0] >= 0xc2 && p[0] <= 0xdf) ? 2
        : (p[0] >= 0xe0 && p[0] <= 0xef) ? 3
        : (p[0] >= 0xf0 && p[0] <= 0xf4) ? 4 : 0;

    if (n == 0 || n > len) {
        return 0;
    }

    /* the one validator decides; it refuses overlongs and surrogates */
    return chat_utf8_valid(p, n) == 0 ? n : 0;
}


const char *
chat_push_preview(const char *body, size_t len, int has_media, int e2e,
    char *out)
{
    char                 *o;
    size_t                i, n, chars;
    const unsigned char  *p;

    if (e2e) {
        return NULL;
    }

    if (len == 0 || body == NULL) {
        (void) snprintf(out, CHAT_PUSH_PREVIEW_MAX, "%s",
                        has_media ? "[image]" : "");
        return out;
    }

    p = (const unsigned char *) body;
    o = out;
    chars = 0;

    for (i = 0; i < len; i += n) {

        if (chars == CHAT_PUSH_PREVIEW_CHARS) {
            memcpy(o, "\xe2\x80\xa6", 3);
            o += 3;
            break;
        }

        n = chat_push_utf8_char(p + i, len - i);

        if (n == 0) {
            memcpy(o, "\xef\xbf\xbd", 3);     /* U+FFFD */
            o += 3;
            n = 1;

        } else {
            memcpy(o, p + i, n);
            o += n;
        }

        chars++;
    }

    *o = '\0';

    return out;
}


/* --- the bodies -------------------------------------------------------- */

static int
chat_push_set_id(json_t *obj, const char *key, int64_t v, int as_string)
{
    char  buf[24];

    if (as_string) {
        (void) snprintf(buf, sizeof(buf), "%lld", (long long) v);
        return json_object_set_new(obj, key, json_string(buf));
    }

    return json_object_set_new(obj, key, json_integer((json_int_t) v));
}


/* json_object_set_new() fails on a NULL value: a missing or bad string */

static int
chat_push_set_str(json_t *obj, const char *key, const char *s)
{
    return json_object_set_new(obj, key, s ? json_string(s) : NULL);
}


static int
chat_push_set_target(json_t *obj, const chat_push_note_t *n, int as_string)
{
    if (n->group != 0) {
        return chat_push_set_id(obj, "group", n->group, as_string);
    }

    return chat_push_set_id(obj, "to", n->to, as_string);
}


/* the compact text of obj, whose reference it takes */

static char *
chat_push_dump(json_t *obj)
{
    char  *s;

    if (obj == NULL) {
        return NULL;
    }

    s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);

    return s;
}


static int
chat_push_collapse_ok(const char *conv)
{
    size_t  i;

    if (conv == NULL || conv[0] == '\0') {
        return 0;
    }

    for (i = 0; conv[i]; i++) {
        if (i == CHAT_PUSH_COLLAPSE_MAX || conv[i] < 0x21 || conv[i] > 0x7e)
        {
            return 0;
        }
    }

    return 1;
}


const char *
chat_push_title(int count, char *buf, size_t size)
{
    if (count <= 1) {
        (void) snprintf(buf, size, "New message");

    } else {
        (void) snprintf(buf, size, "%d new messages", count);
    }

    return buf;
}


char *
chat_push_webhook_body(const chat_push_note_t *n)
{
    int      rc;
    json_t  *o;

    o = json_object();
    if (o == NULL) {
        return NULL;
    }

    rc = chat_push_set_str(o, "token", n->token);
    rc |= chat_push_set_str(o, "platform",
                            chat_push_platform_name(n->platform));
    rc |= chat_push_set_id(o, "user_id", n->user_id, 0);
    rc |= chat_push_set_str(o, "message_id", n->message_id);
    rc |= chat_push_set_id(o, "from", n->from, 0);
    rc |= chat_push_set_target(o, n, 0);

    if (n->preview) {
        rc |= chat_push_set_str(o, "preview", n->preview);
    }

    rc |= chat_push_set_id(o, "count", n->count, 0);
    rc |= chat_push_set_id(o, "ts", n->ts, 0);

    if (rc != 0) {
        json_decref(o);
        return NULL;
    }

    return chat_push_dump(o);
}


char *
chat_push_fcm_body(const chat_push_note_t *n)
{
    int      rc;
    char     title[32];
    json_t  *root, *m, *note, *data, *android, *apns, *hdr, *payload, *aps;

    root = json_object();
    m = json_object();
    note = json_object();
    data = json_object();
    android = json_object();
    apns = json_object();
    hdr = json_object();
    payload = json_object();
    aps = json_object();

    /*
     * Leaves first, each object attached to its parent only when it is
     * complete: json_object_set_new() takes the value's reference also
     * when it fails (no memory, or a NULL parent), so nothing is touched
     * after it was handed on.
     */
    rc = chat_push_set_str(note, "title",
                           chat_push_title(n->count, title, sizeof(title)));

    if (n->preview) {
        rc |= chat_push_set_str(note, "body", n->preview);
    }

    rc |= chat_push_set_str(data, "message_id", n->message_id);
    rc |= chat_push_set_id(data, "from", n->from, 1);
    rc |= chat_push_set_target(data, n, 1);
    rc |= chat_push_set_id(data, "count", n->count, 1);
    rc |= chat_push_set_id(data, "ts", n->ts, 1);
    rc |= chat_push_set_str(android, "priority", "high");
    rc |= chat_push_set_str(android, "collapse_key", n->conv);
    rc |= chat_push_set_str(aps, "thread-id", n->conv);

    if (n->e2e) {
        rc |= json_object_set_new(aps, "mutable-content", json_integer(1));
    }

    if (chat_push_collapse_ok(n->conv)) {
        rc |= chat_push_set_str(hdr, "apns-collapse-id", n->conv);
        rc |= json_object_set_new(apns, "headers", hdr);

    } else {
        json_decref(hdr);
    }

    rc |= json_object_set_new(payload, "aps", aps);
    rc |= json_object_set_new(apns, "payload", payload);
    rc |= chat_push_set_str(m, "token", n->token);
    rc |= json_object_set_new(m, "notification", note);
    rc |= json_object_set_new(m, "data", data);
    rc |= json_object_set_new(m, "android", android);
    rc |= json_object_set_new(m, "apns", apns);
    rc |= json_object_set_new(root, "message", m);

    if (rc != 0) {
        json_decref(root);
        return NULL;
    }

    return chat_push_dump(root);
}


char *
chat_push_apns_body(const chat_push_note_t *n)
{
    int      rc;
    char     title[32];
    json_t  *root, *aps, *alert;

    root = json_object();
    aps = json_object();
    alert = json_object();

    /* leaves first, as in chat_push_fcm_body() */
    rc = chat_push_set_str(alert, "title",
                           chat_push_title(n->count, title, sizeof(title)));

    if (n->preview) {
        rc |= chat_push_set_str(alert, "body", n->preview);
    }

    rc |= json_object_set_new(aps, "alert", alert);
    rc |= chat_push_set_str(aps, "thread-id", n->conv);

    if (n->e2e) {
        rc |= json_object_set_new(aps, "mutable-content", json_integer(1));
    }

    rc |= json_object_set_new(root, "aps", aps);
    rc |= chat_push_set_str(root, "message_id", n->message_id);
    rc |= chat_push_set_id(root, "from", n->from, 0);
    rc |= chat_push_set_target(root, n, 0);
    rc |= chat_push_set_id(root, "count", n->count, 0);
    rc |= chat_push_set_id(root, "ts", n->ts, 0);

    if (rc != 0) {
        json_decref(root);
        return NULL;
    }

    return chat_push_dump(root);
}


/* --- tokens ------------------------------------------------------------ */

int
chat_push_token_ok(int platform, const char *token)
{
    size_t  i, len;

    if (token == NULL) {
        return 0;
    }

    len = strnlen(token, CHAT_PUSH_TOKEN_MAX + 1);

    if (len == 0 || len > CHAT_PUSH_TOKEN_MAX) {
        return 0;
    }

    switch (platform) {

    case CHAT_PUSH_APNS:
        if (len < CHAT_PUSH_APNS_TOKEN_MIN || len > CHAT_PUSH_APNS_TOKEN_MAX)
        {
            return 0;
        }

        for (i = 0; i < len; i++) {
            if (!isxdigit((unsigned char) token[i])) {
                return 0;
            }
        }

        return 1;

    case CHAT_PUSH_FCM:
        for (i = 0; i < len; i++) {
            if (!isalnum((unsigned char) token[i]) && token[i] != '_'
                && token[i] != ':' && token[i] != '-')
            {
                return 0;
            }
        }

        return 1;

    case CHAT_PUSH_WEBHOOK:
        return chat_utf8_valid((const unsigned char *) token, len) == 0;

    default:
        return 0;
    }
}


int
chat_push_apns_path(const char *token, char *out, size_t size)
{
    int  n;

    if (!chat_push_token_ok(CHAT_PUSH_APNS, token)) {
        if (size > 0) {
            out[0] = '\0';
        }

        return -1;
    }

    n = snprintf(out, size, "/3/device/%s", token);

    if (n < 0 || (size_t) n >= size) {
        if (size > 0) {
            out[0] = '\0';
        }

        return -1;
    }

    return n;
}


/* --- answers ----------------------------------------------------------- */

/* text (the provider's word) or "http_<status>", cut and tamed */

static void
chat_push_reason(char *reason, size_t size, const char *text, long status)
{
    size_t  i;

    if (reason == NULL || size == 0) {
        return;
    }

    if (size > CHAT_PUSH_REASON_MAX + 1) {
        size = CHAT_PUSH_REASON_MAX + 1;
    }

    if (text != NULL && text[0] != '\0') {
        for (i = 0; text[i] && i < size - 1; i++) {
            reason[i] = (isalnum((unsigned char) text[i]) || text[i] == '_'
                         || text[i] == '.' || text[i] == '-')
                        ? text[i] : '_';
        }

        reason[i] = '\0';

    } else if (status == 0) {
        (void) snprintf(reason, size, "transport");

    } else {
        (void) snprintf(reason, size, "http_%ld", status);
    }
}


/* FCM's errorCode in error.details[], NULL when there is none */

static const char *
chat_push_fcm_code(json_t *err)
{
    size_t       i;
    json_t      *d, *det;
    const char  *code, *type;

    det = json_object_get(err, "details");

    if (!json_is_array(det)) {
        return NULL;
    }

    json_array_foreach(det, i, d) {
        if (chat_json_get_string(d, "errorCode", &code, NULL) != 0) {
            continue;
        }

        if (chat_json_get_string(d, "@type", &type, NULL) == 0
            && strstr(type, "FcmError") == NULL)
        {
            continue;
        }

        return code;
    }

    return NULL;
}


static chat_push_outcome_e
chat_push_classify_fcm(long status, json_t *root, char *reason, size_t size)
{
    json_t      *err;
    const char  *code, *st, *msg;

    err = json_object_get(root, "error");
    code = err ? chat_push_fcm_code(err) : NULL;
    st = NULL;
    msg = NULL;

    if (err) {
        (void) chat_json_get_string(err, "status", &st, NULL);
        (void) chat_json_get_string(err, "message", &msg, NULL);
    }

    chat_push_reason(reason, size, code ? code : st, status);

    if (status == 401) {
        if (code && strcmp(code, "THIRD_PARTY_AUTH_ERROR") == 0) {
            return CHAT_PUSH_FAIL;
        }

        return CHAT_PUSH_REAUTH;
    }

    if (status == 404 && code && strcmp(code, "UNREGISTERED") == 0) {
        return CHAT_PUSH_INVALID;
    }

    if (status == 400 && code && strcmp(code, "INVALID_ARGUMENT") == 0
        && msg && strstr(msg, "registration token") != NULL)
    {
        return CHAT_PUSH_INVALID;
    }

    return CHAT_PUSH_FAIL;
}


static chat_push_outcome_e
chat_push_classify_apns(long status, json_t *root, char *reason,
    size_t size)
{
    const char  *r;

    r = NULL;
    (void) chat_json_get_string(root, "reason", &r, NULL);

    chat_push_reason(reason, size, r, status);

    if (status == 410) {
        return CHAT_PUSH_INVALID;
    }

    if (r == NULL) {
        return CHAT_PUSH_FAIL;
    }

    if (status == 403 && (strcmp(r, "ExpiredProviderToken") == 0
                          || strcmp(r, "InvalidProviderToken") == 0))
    {
        return CHAT_PUSH_REAUTH;
    }

    if (status == 400 && (strcmp(r, "BadDeviceToken") == 0
                          || strcmp(r, "DeviceTokenNotForTopic") == 0))
    {
        return CHAT_PUSH_INVALID;
    }

    return CHAT_PUSH_FAIL;
}


chat_push_outcome_e
chat_push_classify(int platform, long status, const char *body, size_t len,
    char *reason, size_t reason_size)
{
    json_t               *root;
    const char           *err;
    chat_push_outcome_e   o;

    root = NULL;

    if (body != NULL && len > 0 && len <= CHAT_PUSH_ANSWER_MAX
        && platform != CHAT_PUSH_WEBHOOK)
    {
        root = chat_json_load_object(body, len, CHAT_PUSH_JSON_DEPTH, &err);
    }

    if (status >= 200 && status <= 299) {
        chat_push_reason(reason, reason_size, "ok", status);
        o = CHAT_PUSH_OK;

    } else if (status == 0 || status == 408 || status == 429
               || (status >= 500 && status <= 599))
    {
        /* the provider's word, when it says one, helps the log */
        if (platform == CHAT_PUSH_APNS) {
            (void) chat_push_classify_apns(status, root, reason,
                                           reason_size);

        } else if (platform == CHAT_PUSH_FCM) {
            (void) chat_push_classify_fcm(status, root, reason, reason_size);

        } else {
            chat_push_reason(reason, reason_size, NULL, status);
        }

        o = CHAT_PUSH_RETRY;

    } else if (platform == CHAT_PUSH_APNS) {
        o = chat_push_classify_apns(status, root, reason, reason_size);

    } else if (platform == CHAT_PUSH_FCM) {
        o = chat_push_classify_fcm(status, root, reason, reason_size);

    } else {
        chat_push_reason(reason, reason_size, NULL, status);
        o = (status == 404 || status == 410) ? CHAT_PUSH_INVALID
                                             : CHAT_PUSH_FAIL;
    }

    json_decref(root);

    return o;
}


/* the three forms of RFC 9110 5.6.7, in the C locale's names */

static int
chat_push_http_date(const char *s, time_t *out)
{
    size_t       i;
    struct tm    tm;
    const char  *end;

    static const char  *formats[] = {
        "%a, %d %b %Y %H:%M:%S GMT",      /* IMF-fixdate */
        "%A, %d-%b-%y %H:%M:%S GMT",      /* RFC 850 */
        "%a %b %e %H:%M:%S %Y"            /* asctime() */
    };

    for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        memset(&tm, 0, sizeof(tm));

        end = strptime(s, formats[i], &tm);

        if (end != NULL && end[strspn(end, " \t")] == '\0') {
            *out = timegm(&tm);
            return *out == (time_t) -1 ? -1 : 0;
        }
    }

    return -1;
}


int64_t
chat_push_retry_after(const char *value, int64_t now_ms)
{
    size_t   i, len;
    time_t   t;
    int64_t  v, ms;

    if (value == NULL) {
        return -1;
    }

    value += strspn(value, " \t");
    len = strlen(value);

    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t')) {
        len--;
    }

    if (len == 0) {
        return -1;
    }

    if (isdigit((unsigned char) value[0])) {
        v = 0;

        for (i = 0; i < len; i++) {
            if (!isdigit((unsigned char) value[i])) {
                return -1;
            }

            if (v <= CHAT_PUSH_RETRY_AFTER_MAX) {
                v = v * 10 + (value[i] - '0');
            }
        }

        if (v > CHAT_PUSH_RETRY_AFTER_MAX) {
            v = CHAT_PUSH_RETRY_AFTER_MAX;
        }

        return v * 1000;
    }

    if (len > 64 || chat_push_http_date(value, &t) != 0)
    {
        return -1;
    }

    ms = (int64_t) t * 1000 - now_ms;

    if (ms < 0) {
        return 0;
    }

    return ms > (int64_t) CHAT_PUSH_RETRY_AFTER_MAX * 1000
           ? (int64_t) CHAT_PUSH_RETRY_AFTER_MAX * 1000 : ms;
}


int64_t
chat_push_backoff(int attempt, int64_t base_ms, int64_t max_ms, double r)
{
    int      i;
    int64_t  d, half, j;

    if (base_ms < 1) {
        base_ms = 1;
    }

    if (max_ms < base_ms) {
        max_ms = base_ms;
    }

    if (!(r >= 0.0)) {              /* also NaN */
        r = 0.0;
    }

    if (r >= 1.0) {
        r = 0.999999;
    }

    d = base_ms;

    for (i = 1; i < attempt && d < max_ms; i++) {
        d = (d > max_ms / 2) ? max_ms : d * 2;
    }

    if (d > max_ms) {
        d = max_ms;
    }

    half = d / 2;
    j = (int64_t) (r * (double) (d - half + 1));

    return half + (j > d - half ? d - half : j);
}


/* --- JWTs -------------------------------------------------------------- */

/* OpenSSL's DER ECDSA-Sig-Value as JWS's 32-byte R and S (RFC 7518 3.4) */

static int
chat_push_es256_raw(const unsigned char *der, size_t len,
    unsigned char raw[64])
{
    int             ok;
    ECDSA_SIG      *sig;
    const BIGNUM   *r, *s;

    sig = d2i_ECDSA_SIG(NULL, &der, (long) len);
    if (sig == NULL) {
        return -1;
    }

    ECDSA_SIG_get0(sig, &r, &s);

    ok = BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32;

    ECDSA_SIG_free(sig);

    return ok ? 0 : -1;
}


/* header.claims.signature; takes the references of header and claims */

static char *
chat_push_jwt(EVP_PKEY *key, int es256, json_t *header, json_t *claims)
{
    char           *h, *c, *out;
    size_t          hl, cl, n, siglen;
    unsigned char  *sig, raw[64];
    const void     *sp;
    EVP_MD_CTX     *md;

    out = NULL;
    sig = NULL;
    md = NULL;

    h = chat_push_dump(header);
    c = chat_push_dump(claims);

    if (h == NULL || c == NULL) {
        goto done;
    }

    hl = strlen(h);
    cl = strlen(c);

    if (hl > CHAT_PUSH_JWT_PART_MAX || cl > CHAT_PUSH_JWT_PART_MAX) {
        goto done;
    }

    siglen = (size_t) EVP_PKEY_get_size(key);
    if (siglen == 0 || siglen > 1024) {
        goto done;
    }

    out = malloc(chat_base64url_len(hl) + chat_base64url_len(cl)
                 + chat_base64url_len(siglen) + 3);
    sig = malloc(siglen);
    md = EVP_MD_CTX_new();

    if (out == NULL || sig == NULL || md == NULL) {
        goto failed;
    }

    n = chat_base64url_encode(out, (unsigned char *) h, hl);
    out[n++] = '.';
    n += chat_base64url_encode(out + n, (unsigned char *) c, cl);

    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1
        || EVP_DigestSign(md, sig, &siglen, (unsigned char *) out, n) != 1)
    {
        goto failed;
    }

    sp = sig;

    if (es256) {
        if (chat_push_es256_raw(sig, siglen, raw) != 0) {
            goto failed;
        }

        sp = raw;
        siglen = sizeof(raw);
    }

    out[n++] = '.';
    n += chat_base64url_encode(out + n, sp, siglen);
    out[n] = '\0';

    goto done;

failed:

    free(out);
    out = NULL;

done:

    EVP_MD_CTX_free(md);
    free(sig);
    free(h);
    free(c);

    return out;
}


int
chat_push_es256_key_ok(EVP_PKEY *key)
{
    char    group[64];
    size_t  glen;

    return key != NULL && EVP_PKEY_get_base_id(key) == EVP_PKEY_EC
           && EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME,
                                             group, sizeof(group), &glen)
              == 1
           && strcmp(group, "prime256v1") == 0;
}


char *
chat_push_apns_jwt(EVP_PKEY *key, const char *key_id, const char *team_id,
    int64_t iat)
{
    int      rc;
    json_t  *h, *c;

    if (key_id == NULL || team_id == NULL || !chat_push_es256_key_ok(key)) {
        return NULL;
    }

    h = json_object();
    c = json_object();

    rc = chat_push_set_str(h, "alg", "ES256");
    rc |= chat_push_set_str(h, "kid", key_id);
    rc |= chat_push_set_str(c, "iss", team_id);
    rc |= chat_push_set_id(c, "iat", iat, 0);

    if (rc != 0) {
        json_decref(h);
        json_decref(c);
        return NULL;
    }

    return chat_push_jwt(key, 1, h, c);
}


char *
chat_push_google_assertion(EVP_PKEY *key, const char *client_email,
    const char *token_uri, int64_t iat)
{
    int      rc;
    json_t  *h, *c;

    if (key == NULL || client_email == NULL || token_uri == NULL
        || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA
        || EVP_PKEY_get_bits(key) < 2048)
    {
        return NULL;
    }

    h = json_object();
    c = json_object();

    rc = chat_push_set_str(h, "alg", "RS256");
    rc |= chat_push_set_str(h, "typ", "JWT");
    rc |= chat_push_set_str(c, "iss", client_email);
    rc |= chat_push_set_str(c, "scope", CHAT_PUSH_FCM_SCOPE);
    rc |= chat_push_set_str(c, "aud", token_uri);
    rc |= chat_push_set_id(c, "iat", iat, 0);
    rc |= chat_push_set_id(c, "exp", iat + CHAT_PUSH_ASSERTION_TTL, 0);

    if (rc != 0) {
        json_decref(h);
        json_decref(c);
        return NULL;
    }

    return chat_push_jwt(key, 0, h, c);
}


char *
chat_push_google_token_form(const char *assertion)
{
    int     n;
    char   *out;
    size_t  len, cap;

    if (assertion == NULL) {
        return NULL;
    }

    len = strlen(assertion);
    cap = sizeof(CHAT_PUSH_FORM_GRANT) + 3 * len;

    out = malloc(cap);
    if (out == NULL) {
        return NULL;
    }

    memcpy(out, CHAT_PUSH_FORM_GRANT, sizeof(CHAT_PUSH_FORM_GRANT) - 1);

    n = chat_sigv4_uri_encode(assertion, len, 0,
                              out + sizeof(CHAT_PUSH_FORM_GRANT) - 1,
                              cap - sizeof(CHAT_PUSH_FORM_GRANT) + 1);
    if (n < 0) {
        free(out);
        return NULL;
    }

    return out;
}


int
chat_push_google_token_parse(const char *body, size_t len, char *token,
    size_t size, int64_t *expires_in)
{
    int          rc;
    size_t       i, tlen;
    json_t      *root;
    int64_t      exp;
    const char  *err, *tok, *type;

    if (body == NULL || len == 0 || len > CHAT_PUSH_ANSWER_MAX) {
        return -1;
    }

    root = chat_json_load_object(body, len, CHAT_PUSH_JSON_DEPTH, &err);
    if (root == NULL) {
        return -1;
    }

    rc = -1;

    if (chat_json_get_string(root, "access_token", &tok, &tlen) != 0
        || tlen == 0 || tlen >= size
        || chat_json_get_int(root, "expires_in", &exp) != 0 || exp <= 0)
    {
        goto done;
    }

    switch (chat_json_get_string(root, "token_type", &type, NULL)) {

    case 0:
        if (strcasecmp(type, "Bearer") != 0) {
            goto done;
        }

        break;

    case 1:
        break;

    default:
        goto done;
    }

    for (i = 0; i < tlen; i++) {
        if ((unsigned char) tok[i] < 0x21
            || (unsigned char) tok[i] > 0x7e)
        {
            goto done;
        }
    }

    memcpy(token, tok, tlen);
    token[tlen] = '\0';
    *expires_in = exp;
    rc = 0;

done:

    json_decref(root);

    return rc;
}
