
/*
 * ngx_chat: AWS Signature Version 4, see chat_sigv4.h.
 *
 * The canonical request is written through a sink that either fills a
 * buffer (chat_sigv4_canonical_request(), for the tests) or feeds SHA-256
 * directly (the signers), so signing needs no buffer as large as the
 * request.  Query parameters and headers are sorted as index arrays and
 * compared in their encoded or lower-cased form on the fly.
 */


#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "chat_hex.h"
#include "chat_sigv4.h"


#define CHAT_SIGV4_ALGORITHM    "AWS4-HMAC-SHA256"
#define CHAT_SIGV4_TERMINATOR   "aws4_request"
#define CHAT_SIGV4_DATE_LEN     16          /* YYYYMMDDTHHMMSSZ */
#define CHAT_SIGV4_HASH_HEX     64
#define CHAT_SIGV4_SCOPE_PART   64          /* region, service */
#define CHAT_SIGV4_METHOD_MAX   20
#define CHAT_SIGV4_HOST_MAX     261         /* a DNS name and a port */
#define CHAT_SIGV4_STS_MAX      256


typedef struct {
    char           *buf;
    size_t          cap;
    size_t          len;
    EVP_MD_CTX     *md;      /* non-NULL: hash instead of writing */
    int             err;
} chat_sigv4_sink_t;


typedef struct {
    const char     *name;
    size_t          name_len;
    const char     *value;
    size_t          value_len;
} chat_sigv4_param_t;


/* one URL-form string, read as the bytes of its SigV4 encoding */
typedef struct {
    const unsigned char  *p;
    const unsigned char  *end;
    unsigned char         pend[3];
    int                   npend;
    int                   ipend;
} chat_sigv4_enc_t;


typedef struct {
    const char     *name;    /* trimmed, not lower-cased */
    size_t          name_len;
    const char     *value;   /* trimmed */
    size_t          value_len;
} chat_sigv4_hdr_t;


static void chat_sigv4_sink_buf(chat_sigv4_sink_t *s, char *buf, size_t cap);
static void chat_sigv4_put(chat_sigv4_sink_t *s, const void *p, size_t n);
static void chat_sigv4_puts(chat_sigv4_sink_t *s, const char *p);
static int chat_sigv4_done(chat_sigv4_sink_t *s);
static void chat_sigv4_put_encoded(chat_sigv4_sink_t *s, const char *p,
    size_t n, int keep_slash);
static int chat_sigv4_unreserved(unsigned char c);
static void chat_sigv4_enc_init(chat_sigv4_enc_t *e, const char *p,
    size_t n);
static int chat_sigv4_enc_next(chat_sigv4_enc_t *e);
static int chat_sigv4_enc_cmp(const char *a, size_t alen, const char *b,
    size_t blen);
static void chat_sigv4_put_reencoded(chat_sigv4_sink_t *s, const char *p,
    size_t n);
static int chat_sigv4_parse_query(const char *query,
    chat_sigv4_param_t *params, size_t *np);
static int chat_sigv4_param_cmp(const chat_sigv4_param_t *a,
    const chat_sigv4_param_t *b);
static int chat_sigv4_put_query(chat_sigv4_sink_t *s, const char *query);
static int chat_sigv4_tchar(unsigned char c);
static int chat_sigv4_prepare_headers(const chat_sigv4_header_t *h,
    size_t nh, chat_sigv4_hdr_t *hdrs, size_t *order);
static int chat_sigv4_name_cmp(const chat_sigv4_hdr_t *a,
    const chat_sigv4_hdr_t *b);
static void chat_sigv4_put_lower(chat_sigv4_sink_t *s, const char *p,
    size_t n);
static void chat_sigv4_put_value(chat_sigv4_sink_t *s, const char *p,
    size_t n);
static void chat_sigv4_put_signed_headers(chat_sigv4_sink_t *s,
    const chat_sigv4_hdr_t *hdrs, const size_t *order, size_t nh);
static const chat_sigv4_hdr_t *chat_sigv4_find(const chat_sigv4_hdr_t *hdrs,
    size_t nh, const char *lname);
static int chat_sigv4_check_method(const char *method);
static int chat_sigv4_check_payload(const char *hash);
static int chat_sigv4_check_date(const char *d);
static int chat_sigv4_check_scope_part(const char *p);
static int chat_sigv4_check_key(const chat_sigv4_key_t *k);
static int chat_sigv4_creq(chat_sigv4_sink_t *s, const char *method,
    const char *path, const char *query, const chat_sigv4_header_t *h,
    size_t nh, const char *payload, chat_sigv4_hdr_t *hdrs, size_t *order);
static int chat_sigv4_creq_hash(const char *method, const char *path,
    const char *query, const chat_sigv4_header_t *h, size_t nh,
    const char *payload, char hex[65], chat_sigv4_hdr_t *hdrs,
    size_t *order);
static int chat_sigv4_sts(const chat_sigv4_key_t *k, const char *amz_date,
    const char *creq_hex, char *out, size_t cap);
static int chat_sigv4_hmac(const void *key, size_t klen, const void *p,
    size_t n, unsigned char mac[32]);
static int chat_sigv4_sign(const chat_sigv4_key_t *k, const char *method,
    const char *path, const char *query, const chat_sigv4_header_t *h,
    size_t nh, const char *payload, const char *amz_date, char sig[65],
    chat_sigv4_hdr_t *hdrs, size_t *order);


static const char  chat_sigv4_hexdigits[] = "0123456789ABCDEF";


/* --- output ------------------------------------------------------------- */

static void
chat_sigv4_sink_buf(chat_sigv4_sink_t *s, char *buf, size_t cap)
{
    s->buf = buf;
    s->cap = cap;
    s->len = 0;
    s->md = NULL;
    s->err = (buf == NULL || cap == 0);
}


static void
chat_sigv4_put(chat_sigv4_sink_t *s, const void *p, size_t n)
{
    if (s->err || n == 0) {
        return;
    }

    if (s->md != NULL) {
        if (EVP_DigestUpdate(s->md, p, n) != 1) {
            s->err = 1;
        }

        return;
    }

    /* keep a byte for the NUL */
    if (n >= s->cap - s->len) {
        s->err = 1;
        return;
    }

    memcpy(s->buf + s->len, p, n);
    s->len += n;
}


static void
chat_sigv4_puts(chat_sigv4_sink_t *s, const char *p)
{
    chat_sigv4_put(s, p, strlen(p));
}


static int
chat_sigv4_done(chat_sigv4_sink_t *s)
{
    if (s->err || s->len > INT_MAX) {
        if (s->buf != NULL && s->cap > 0) {
            s->buf[0] = '\0';
        }

        return -1;
    }

    s->buf[s->len] = '\0';

    return (int) s->len;
}


/* --- encoding ----------------------------------------------------------- */

static int
chat_sigv4_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9')
           || c == '-' || c == '.' || c == '_' || c == '~';
}


static void
chat_sigv4_put_encoded(chat_sigv4_sink_t *s, const char *p, size_t n,
    int keep_slash)
{
    size_t         i, run;
    unsigned char  c, esc[3];

    run = 0;

    for (i = 0; i < n; i++) {
        c = (unsigned char) p[i];

        if (chat_sigv4_unreserved(c) || (keep_slash && c == '/')) {
            run++;
            continue;
        }

        chat_sigv4_put(s, p + i - run, run);
        run = 0;

        esc[0] = '%';
        esc[1] = chat_sigv4_hexdigits[c >> 4];
        esc[2] = chat_sigv4_hexdigits[c & 0x0f];
        chat_sigv4_put(s, esc, 3);
    }

    chat_sigv4_put(s, p + n - run, run);
}


int
chat_sigv4_uri_encode(const char *s, size_t len, int keep_slash, char *out,
    size_t cap)
{
    chat_sigv4_sink_t  sink;

    chat_sigv4_sink_buf(&sink, out, cap);

    if (s == NULL && len > 0) {
        sink.err = 1;

    } else {
        chat_sigv4_put_encoded(&sink, s, len, keep_slash);
    }

    return chat_sigv4_done(&sink);
}


/* the escapes were checked by chat_sigv4_parse_query() */

static void
chat_sigv4_enc_init(chat_sigv4_enc_t *e, const char *p, size_t n)
{
    e->p = (const unsigned char *) p;
    e->end = e->p + n;
    e->npend = 0;
    e->ipend = 0;
}


static int
chat_sigv4_enc_next(chat_sigv4_enc_t *e)
{
    unsigned char  c;

    if (e->ipend < e->npend) {
        return e->pend[e->ipend++];
    }

    if (e->p == e->end) {
        return -1;
    }

    if (*e->p == '%') {
        c = (unsigned char) (chat_hex_value(e->p[1]) << 4
                      | chat_hex_value(e->p[2]));
        e->p += 3;

    } else {
        c = *e->p++;
    }

    if (chat_sigv4_unreserved(c)) {
        return c;
    }

    e->pend[0] = '%';
    e->pend[1] = chat_sigv4_hexdigits[c >> 4];
    e->pend[2] = chat_sigv4_hexdigits[c & 0x0f];
    e->npend = 3;
    e->ipend = 1;

    return '%';
}


/* compares the encoded forms byte by byte; a prefix sorts first */

static int
chat_sigv4_enc_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int               ca, cb;
    chat_sigv4_enc_t  ea, eb;

    chat_sigv4_enc_init(&ea, a, alen);
    chat_sigv4_enc_init(&eb, b, blen);

    do {
        ca = chat_sigv4_enc_next(&ea);
        cb = chat_sigv4_enc_next(&eb);

        if (ca != cb) {
            return ca < cb ? -1 : 1;
        }

    } while (ca != -1);

    return 0;
}


static void
chat_sigv4_put_reencoded(chat_sigv4_sink_t *s, const char *p, size_t n)
{
    int               c;
    char              buf[64];
    size_t            len;
    chat_sigv4_enc_t  e;

    chat_sigv4_enc_init(&e, p, n);
    len = 0;

    while ((c = chat_sigv4_enc_next(&e)) != -1) {
        buf[len++] = (char) c;

        if (len == sizeof(buf)) {
            chat_sigv4_put(s, buf, len);
            len = 0;
        }
    }

    chat_sigv4_put(s, buf, len);
}


/* --- the canonical query ------------------------------------------------ */

static int
chat_sigv4_parse_query(const char *query, chat_sigv4_param_t *params,
    size_t *np)
{
    size_t               n, len;
    const char          *p, *part, *eq;
    chat_sigv4_param_t  *pa;

    n = 0;
    p = (query != NULL) ? query : "";

    while (*p != '\0') {
        part = p;
        len = strcspn(part, "&");
        p = part + len + (part[len] == '&');

        if (len == 0) {
            continue;
        }

        if (n == CHAT_SIGV4_MAX_PARAMS) {
            return -1;
        }

        pa = &params[n++];
        eq = memchr(part, '=', len);

        pa->name = part;
        pa->name_len = (eq != NULL) ? (size_t) (eq - part) : len;
        pa->value = (eq != NULL) ? eq + 1 : part + len;
        pa->value_len = (eq != NULL) ? len - pa->name_len - 1 : 0;
    }

    /* every "%" starts a %XX escape */
    for (p = (query != NULL) ? query : ""; *p != '\0'; p++) {
        if (*p != '%') {
            continue;
        }

        if (chat_hex_value((unsigned char) p[1]) < 0
            || chat_hex_value((unsigned char) p[2]) < 0)
        {
            return -1;
        }

        p += 2;
    }

    *np = n;

    return 0;
}


static int
chat_sigv4_param_cmp(const chat_sigv4_param_t *a,
    const chat_sigv4_param_t *b)
{
    int  rc;

    rc = chat_sigv4_enc_cmp(a->name, a->name_len, b->name, b->name_len);

    if (rc != 0) {
        return rc;
    }

    return chat_sigv4_enc_cmp(a->value, a->value_len, b->value,
                              b->value_len);
}


static int
chat_sigv4_put_query(chat_sigv4_sink_t *s, const char *query)
{
    size_t              i, j, n;
    chat_sigv4_param_t  params[CHAT_SIGV4_MAX_PARAMS], t;

    if (chat_sigv4_parse_query(query, params, &n) != 0) {
        return -1;
    }

    /* insertion sort: at most CHAT_SIGV4_MAX_PARAMS, usually a handful */
    for (i = 1; i < n; i++) {
        t = params[i];

        for (j = i; j > 0 && chat_sigv4_param_cmp(&params[j - 1], &t) > 0;
             j--)
        {
            params[j] = params[j - 1];
        }

        params[j] = t;
    }

    for (i = 0; i < n; i++) {
        if (i > 0) {
            chat_sigv4_put(s, "&", 1);
        }

        chat_sigv4_put_reencoded(s, params[i].name, params[i].name_len);
        chat_sigv4_put(s, "=", 1);
        chat_sigv4_put_reencoded(s, params[i].value, params[i].value_len);
    }

    return 0;
}


int
chat_sigv4_canonical_query(const char *query, char *out, size_t cap)
{
    chat_sigv4_sink_t  sink;

    chat_sigv4_sink_buf(&sink, out, cap);

    if (chat_sigv4_put_query(&sink, query) != 0) {
        sink.err = 1;
    }

    return chat_sigv4_done(&sink);
}


/* --- the canonical headers ---------------------------------------------- */

/* RFC 9110 5.6.2 token characters */

static int
chat_sigv4_tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9')
           || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}


/*
 * Trims and checks each header; fills order with the indices sorted by
 * lower-cased name, equal names kept in the order given.
 */

static int
chat_sigv4_prepare_headers(const chat_sigv4_header_t *h, size_t nh,
    chat_sigv4_hdr_t *hdrs, size_t *order)
{
    size_t             i, j, t, len;
    const char        *p;
    unsigned char      c;
    chat_sigv4_hdr_t  *d;

    if ((h == NULL && nh > 0) || nh > CHAT_SIGV4_MAX_HEADERS) {
        return -1;
    }

    for (i = 0; i < nh; i++) {
        d = &hdrs[i];

        if (h[i].name == NULL || h[i].value == NULL) {
            return -1;
        }

        p = h[i].name;
        len = strlen(p);

        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }

        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            len--;
        }

        if (len == 0) {
            return -1;
        }

        for (j = 0; j < len; j++) {
            if (!chat_sigv4_tchar((unsigned char) p[j])) {
                return -1;
            }
        }

        d->name = p;
        d->name_len = len;

        p = h[i].value;
        len = strlen(p);

        for (j = 0; j < len; j++) {
            c = (unsigned char) p[j];

            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                return -1;
            }
        }

        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }

        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            len--;
        }

        d->value = p;
        d->value_len = len;

        order[i] = i;
    }

    for (i = 1; i < nh; i++) {
        t = order[i];

        for (j = i;
             j > 0 && chat_sigv4_name_cmp(&hdrs[order[j - 1]], &hdrs[t]) > 0;
             j--)
        {
            order[j] = order[j - 1];
        }

        order[j] = t;
    }

    return 0;
}


static int
chat_sigv4_name_cmp(const chat_sigv4_hdr_t *a, const chat_sigv4_hdr_t *b)
{
    size_t         i, n;
    unsigned char  ca, cb;

    n = a->name_len < b->name_len ? a->name_len : b->name_len;

    for (i = 0; i < n; i++) {
        ca = (unsigned char) a->name[i];
        cb = (unsigned char) b->name[i];
        ca = (ca >= 'A' && ca <= 'Z') ? ca | 0x20 : ca;
        cb = (cb >= 'A' && cb <= 'Z') ? cb | 0x20 : cb;

        if (ca != cb) {
            return ca < cb ? -1 : 1;
        }
    }

    if (a->name_len == b->name_len) {
        return 0;
    }

    return a->name_len < b->name_len ? -1 : 1;
}


static void
chat_sigv4_put_lower(chat_sigv4_sink_t *s, const char *p, size_t n)
{
    size_t         i;
    unsigned char  c;

    for (i = 0; i < n; i++) {
        c = (unsigned char) p[i];
        c = (c >= 'A' && c <= 'Z') ? c | 0x20 : c;
        chat_sigv4_put(s, &c, 1);
    }
}


/* an already trimmed value, inner runs of spaces and tabs as one space */

static void
chat_sigv4_put_value(chat_sigv4_sink_t *s, const char *p, size_t n)
{
    size_t  i, start;

    start = 0;

    for (i = 0; i < n; i++) {
        if (p[i] != ' ' && p[i] != '\t') {
            continue;
        }

        chat_sigv4_put(s, p + start, i - start);
        chat_sigv4_put(s, " ", 1);

        while (i + 1 < n && (p[i + 1] == ' ' || p[i + 1] == '\t')) {
            i++;
        }

        start = i + 1;
    }

    chat_sigv4_put(s, p + start, n - start);
}


static void
chat_sigv4_put_signed_headers(chat_sigv4_sink_t *s,
    const chat_sigv4_hdr_t *hdrs, const size_t *order, size_t nh)
{
    size_t                   i;
    const chat_sigv4_hdr_t  *d, *prev;

    prev = NULL;

    for (i = 0; i < nh; i++) {
        d = &hdrs[order[i]];

        if (prev != NULL && chat_sigv4_name_cmp(prev, d) == 0) {
            continue;
        }

        if (prev != NULL) {
            chat_sigv4_put(s, ";", 1);
        }

        chat_sigv4_put_lower(s, d->name, d->name_len);
        prev = d;
    }
}


static const chat_sigv4_hdr_t *
chat_sigv4_find(const chat_sigv4_hdr_t *hdrs, size_t nh, const char *lname)
{
    size_t            i;
    chat_sigv4_hdr_t  key;

    key.name = lname;
    key.name_len = strlen(lname);

    for (i = 0; i < nh; i++) {
        if (chat_sigv4_name_cmp(&hdrs[i], &key) == 0) {
            return &hdrs[i];
        }
    }

    return NULL;
}


int
chat_sigv4_signed_headers(const chat_sigv4_header_t *h, size_t nh,
    char *out, size_t cap)
{
    size_t             order[CHAT_SIGV4_MAX_HEADERS];
    chat_sigv4_hdr_t   hdrs[CHAT_SIGV4_MAX_HEADERS];
    chat_sigv4_sink_t  sink;

    chat_sigv4_sink_buf(&sink, out, cap);

    if (chat_sigv4_prepare_headers(h, nh, hdrs, order) != 0 || nh == 0) {
        sink.err = 1;

    } else {
        chat_sigv4_put_signed_headers(&sink, hdrs, order, nh);
    }

    return chat_sigv4_done(&sink);
}


/* --- checks ------------------------------------------------------------- */

static int
chat_sigv4_check_method(const char *method)
{
    size_t  i;

    if (method == NULL || method[0] == '\0') {
        return -1;
    }

    for (i = 0; method[i] != '\0'; i++) {
        if (i == CHAT_SIGV4_METHOD_MAX || method[i] < 'A' || method[i] > 'Z')
        {
            return -1;
        }
    }

    return 0;
}


static int
chat_sigv4_check_payload(const char *hash)
{
    size_t  i;

    if (hash == NULL) {
        return -1;
    }

    if (strcmp(hash, CHAT_SIGV4_UNSIGNED) == 0) {
        return 0;
    }

    for (i = 0; i < CHAT_SIGV4_HASH_HEX; i++) {
        if (!((hash[i] >= '0' && hash[i] <= '9')
              || (hash[i] >= 'a' && hash[i] <= 'f')))
        {
            return -1;
        }
    }

    return hash[i] == '\0' ? 0 : -1;
}


static int
chat_sigv4_check_date(const char *d)
{
    int     i, j, v[6], mdays, year;
    char    c;
    size_t  len;

    static const int  pos[6] = { 0, 4, 6, 9, 11, 13 };
    static const int  width[6] = { 4, 2, 2, 2, 2, 2 };
    static const int  days[12] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    if (d == NULL) {
        return -1;
    }

    len = strlen(d);

    if (len != CHAT_SIGV4_DATE_LEN || d[8] != 'T' || d[15] != 'Z') {
        return -1;
    }

    for (i = 0; i < 6; i++) {
        v[i] = 0;

        for (j = 0; j < width[i]; j++) {
            c = d[pos[i] + j];

            if (c < '0' || c > '9') {
                return -1;
            }

            v[i] = v[i] * 10 + (c - '0');
        }
    }

    year = v[0];

    if (year < 1970 || v[1] < 1 || v[1] > 12 || v[3] > 23 || v[4] > 59
        || v[5] > 59)
    {
        return -1;
    }

    mdays = days[v[1] - 1];

    if (v[1] == 2
        && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))
    {
        mdays = 29;
    }

    return (v[2] >= 1 && v[2] <= mdays) ? 0 : -1;
}


/* a scope part: region or service */

static int
chat_sigv4_check_scope_part(const char *p)
{
    size_t  i;

    if (p == NULL || p[0] == '\0') {
        return -1;
    }

    for (i = 0; p[i] != '\0'; i++) {
        if (i == CHAT_SIGV4_SCOPE_PART
            || !(chat_sigv4_unreserved((unsigned char) p[i]) && p[i] != '~'))
        {
            return -1;
        }
    }

    return 0;
}


static int
chat_sigv4_check_key(const chat_sigv4_key_t *k)
{
    size_t  i, len;

    if (k == NULL || k->access_key == NULL || k->access_key[0] == '\0'
        || k->secret_key == NULL)
    {
        return -1;
    }

    /* visible ASCII, none of the separators around it in the header */
    for (i = 0; k->access_key[i] != '\0'; i++) {
        if (i == CHAT_SIGV4_SCOPE_PART
            || k->access_key[i] <= 0x20 || k->access_key[i] >= 0x7f
            || strchr("/,=;", k->access_key[i]) != NULL)
        {
            return -1;
        }
    }

    len = strlen(k->secret_key);

    if (len == 0 || len > CHAT_SIGV4_SECRET_MAX) {
        return -1;
    }

    if (k->session_token != NULL) {
        len = strlen(k->session_token);

        for (i = 0; i < len; i++) {
            if (k->session_token[i] <= 0x20 || k->session_token[i] >= 0x7f) {
                return -1;
            }
        }

        if (len == 0) {
            return -1;
        }
    }

    if (chat_sigv4_check_scope_part(k->region) != 0
        || chat_sigv4_check_scope_part(k->service) != 0)
    {
        return -1;
    }

    return 0;
}


/* --- the canonical request ---------------------------------------------- */

static int
chat_sigv4_creq(chat_sigv4_sink_t *s, const char *method, const char *path,
    const char *query, const chat_sigv4_header_t *h, size_t nh,
    const char *payload, chat_sigv4_hdr_t *hdrs, size_t *order)
{
    size_t                   i;
    const chat_sigv4_hdr_t  *d, *prev;

    if (chat_sigv4_check_method(method) != 0
        || path == NULL || path[0] != '/'
        || chat_sigv4_check_payload(payload) != 0
        || chat_sigv4_prepare_headers(h, nh, hdrs, order) != 0
        || chat_sigv4_find(hdrs, nh, "host") == NULL)
    {
        return -1;
    }

    chat_sigv4_puts(s, method);
    chat_sigv4_put(s, "\n", 1);

    /* S3: encoded once, never normalized */
    chat_sigv4_put_encoded(s, path, strlen(path), 1);
    chat_sigv4_put(s, "\n", 1);

    if (chat_sigv4_put_query(s, query) != 0) {
        return -1;
    }

    chat_sigv4_put(s, "\n", 1);

    prev = NULL;

    for (i = 0; i < nh; i++) {
        d = &hdrs[order[i]];

        if (prev != NULL && chat_sigv4_name_cmp(prev, d) == 0) {
            chat_sigv4_put(s, ",", 1);

        } else {
            if (prev != NULL) {
                chat_sigv4_put(s, "\n", 1);
            }

            chat_sigv4_put_lower(s, d->name, d->name_len);
            chat_sigv4_put(s, ":", 1);
        }

        chat_sigv4_put_value(s, d->value, d->value_len);
        prev = d;
    }

    chat_sigv4_put(s, "\n\n", 2);
    chat_sigv4_put_signed_headers(s, hdrs, order, nh);
    chat_sigv4_put(s, "\n", 1);
    chat_sigv4_puts(s, payload);

    return 0;
}


int
chat_sigv4_canonical_request(const char *method, const char *path,
    const char *query, const chat_sigv4_header_t *h, size_t nh,
    const char *payload_sha256_hex, char *out, size_t cap)
{
    size_t             order[CHAT_SIGV4_MAX_HEADERS];
    chat_sigv4_hdr_t   hdrs[CHAT_SIGV4_MAX_HEADERS];
    chat_sigv4_sink_t  sink;

    chat_sigv4_sink_buf(&sink, out, cap);

    if (chat_sigv4_creq(&sink, method, path, query, h, nh,
                        payload_sha256_hex, hdrs, order)
        != 0)
    {
        sink.err = 1;
    }

    return chat_sigv4_done(&sink);
}


/* the canonical request's SHA-256 in hex; hdrs, order as sorted */

static int
chat_sigv4_creq_hash(const char *method, const char *path, const char *query,
    const chat_sigv4_header_t *h, size_t nh, const char *payload,
    char hex[65], chat_sigv4_hdr_t *hdrs, size_t *order)
{
    int                rc;
    unsigned           mdlen;
    unsigned char      md[EVP_MAX_MD_SIZE];
    chat_sigv4_sink_t  sink;

    memset(&sink, 0, sizeof(sink));

    sink.md = EVP_MD_CTX_new();

    if (sink.md == NULL) {
        return -1;
    }

    rc = -1;

    if (EVP_DigestInit_ex(sink.md, EVP_sha256(), NULL) != 1) {
        goto done;
    }

    if (chat_sigv4_creq(&sink, method, path, query, h, nh, payload, hdrs,
                        order)
        != 0
        || sink.err)
    {
        goto done;
    }

    if (EVP_DigestFinal_ex(sink.md, md, &mdlen) != 1 || mdlen != 32) {
        goto done;
    }

    chat_hex_encode(md, 32, hex);
    rc = 0;

done:

    EVP_MD_CTX_free(sink.md);

    return rc;
}


/* --- signing ------------------------------------------------------------ */

void
chat_sigv4_sha256_hex(const void *p, size_t len, char out[65])
{
    unsigned       mdlen;
    unsigned char  md[EVP_MAX_MD_SIZE];

    if (EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL) != 1
        || mdlen != 32)
    {
        /* cannot happen with a working libcrypto; never a valid hash */
        out[0] = '\0';
        return;
    }

    chat_hex_encode(md, 32, out);
}


static int
chat_sigv4_sts(const chat_sigv4_key_t *k, const char *amz_date,
    const char *creq_hex, char *out, size_t cap)
{
    chat_sigv4_sink_t  sink;

    chat_sigv4_sink_buf(&sink, out, cap);

    chat_sigv4_puts(&sink, CHAT_SIGV4_ALGORITHM "\n");
    chat_sigv4_puts(&sink, amz_date);
    chat_sigv4_put(&sink, "\n", 1);
    chat_sigv4_put(&sink, amz_date, 8);
    chat_sigv4_put(&sink, "/", 1);
    chat_sigv4_puts(&sink, k->region);
    chat_sigv4_put(&sink, "/", 1);
    chat_sigv4_puts(&sink, k->service);
    chat_sigv4_puts(&sink, "/" CHAT_SIGV4_TERMINATOR "\n");
    chat_sigv4_puts(&sink, creq_hex);

    return chat_sigv4_done(&sink);
}


int
chat_sigv4_string_to_sign(const chat_sigv4_key_t *k, const char *amz_date,
    const char *creq, size_t creq_len, char *out, size_t cap)
{
    char               hex[65];
    chat_sigv4_sink_t  sink;

    if (k == NULL || chat_sigv4_check_scope_part(k->region) != 0
        || chat_sigv4_check_scope_part(k->service) != 0
        || chat_sigv4_check_date(amz_date) != 0
        || (creq == NULL && creq_len > 0))
    {
        chat_sigv4_sink_buf(&sink, out, cap);
        sink.err = 1;
        return chat_sigv4_done(&sink);
    }

    chat_sigv4_sha256_hex(creq != NULL ? creq : "", creq_len, hex);

    return chat_sigv4_sts(k, amz_date, hex, out, cap);
}


static int
chat_sigv4_hmac(const void *key, size_t klen, const void *p, size_t n,
    unsigned char mac[32])
{
    unsigned  len;

    if (HMAC(EVP_sha256(), key, (int) klen, p, n, mac, &len) == NULL
        || len != 32)
    {
        return -1;
    }

    return 0;
}


int
chat_sigv4_signature(const chat_sigv4_key_t *k, const char *amz_date,
    const char *sts, size_t sts_len, char out[65])
{
    int            rc;
    size_t         len;
    unsigned char  key[4 + CHAT_SIGV4_SECRET_MAX], a[32], b[32];

    out[0] = '\0';

    if (chat_sigv4_check_key(k) != 0 || chat_sigv4_check_date(amz_date) != 0
        || (sts == NULL && sts_len > 0))
    {
        return -1;
    }

    len = strlen(k->secret_key);
    memcpy(key, "AWS4", 4);
    memcpy(key + 4, k->secret_key, len);

    /* kDate, kRegion, kService, kSigning, then the signature */
    rc = chat_sigv4_hmac(key, 4 + len, amz_date, 8, a)
         | chat_sigv4_hmac(a, 32, k->region, strlen(k->region), b)
         | chat_sigv4_hmac(b, 32, k->service, strlen(k->service), a)
         | chat_sigv4_hmac(a, 32, CHAT_SIGV4_TERMINATOR,
                           sizeof(CHAT_SIGV4_TERMINATOR) - 1, b)
         | chat_sigv4_hmac(b, 32, sts != NULL ? sts : "", sts_len, a);

    if (rc == 0) {
        chat_hex_encode(a, 32, out);
    }

    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(b, sizeof(b));

    return rc == 0 ? 0 : -1;
}


/* creq hash, string to sign, signature */

static int
chat_sigv4_sign(const chat_sigv4_key_t *k, const char *method,
    const char *path, const char *query, const chat_sigv4_header_t *h,
    size_t nh, const char *payload, const char *amz_date, char sig[65],
    chat_sigv4_hdr_t *hdrs, size_t *order)
{
    int   len;
    char  hex[65], sts[CHAT_SIGV4_STS_MAX];

    if (chat_sigv4_check_key(k) != 0 || chat_sigv4_check_date(amz_date) != 0
        || chat_sigv4_creq_hash(method, path, query, h, nh, payload, hex,
                                hdrs, order)
           != 0)
    {
        return -1;
    }

    len = chat_sigv4_sts(k, amz_date, hex, sts, sizeof(sts));

    if (len < 0) {
        return -1;
    }

    return chat_sigv4_signature(k, amz_date, sts, (size_t) len, sig);
}


int
chat_sigv4_authorization(const chat_sigv4_key_t *k, const char *method,
    const char *path, const char *query, const chat_sigv4_header_t *h,
    size_t nh, const char *payload_sha256_hex, const char *amz_date,
    char *out, size_t cap)
{
    char                     sig[65];
    size_t                   order[CHAT_SIGV4_MAX_HEADERS];
    chat_sigv4_hdr_t         hdrs[CHAT_SIGV4_MAX_HEADERS];
    chat_sigv4_sink_t        sink;
    const chat_sigv4_hdr_t  *tok;

    chat_sigv4_sink_buf(&sink, out, cap);

    if (chat_sigv4_sign(k, method, path, query, h, nh, payload_sha256_hex,
                        amz_date, sig, hdrs, order)
        != 0)
    {
        sink.err = 1;
        return chat_sigv4_done(&sink);
    }

    /* a temporary credential is refused by S3 unless its token is signed */
    if (k->session_token != NULL) {
        tok = chat_sigv4_find(hdrs, nh, "x-amz-security-token");

        if (tok == NULL || tok->value_len != strlen(k->session_token)
            || memcmp(tok->value, k->session_token, tok->value_len) != 0)
        {
            sink.err = 1;
            return chat_sigv4_done(&sink);
        }
    }

    chat_sigv4_puts(&sink, CHAT_SIGV4_ALGORITHM " Credential=");
    chat_sigv4_puts(&sink, k->access_key);
    chat_sigv4_put(&sink, "/", 1);
    chat_sigv4_put(&sink, amz_date, 8);
    chat_sigv4_put(&sink, "/", 1);
    chat_sigv4_puts(&sink, k->region);
    chat_sigv4_put(&sink, "/", 1);
    chat_sigv4_puts(&sink, k->service);
    chat_sigv4_puts(&sink, "/" CHAT_SIGV4_TERMINATOR ", SignedHeaders=");
    chat_sigv4_put_signed_headers(&sink, hdrs, order, nh);
    chat_sigv4_puts(&sink, ", Signature=");
    chat_sigv4_puts(&sink, sig);

    return chat_sigv4_done(&sink);
}


int
chat_sigv4_presign(const chat_sigv4_key_t *k, const char *method,
    const char *host, const char *path, const char *amz_date,
    unsigned expires, char *out, size_t cap)
{
    int                  len;
    char                 sig[65], num[16];
    size_t               i, order[1];
    chat_sigv4_hdr_t     hdrs[1];
    chat_sigv4_sink_t    sink;
    chat_sigv4_header_t  hh;

    chat_sigv4_sink_buf(&sink, out, cap);

    if (chat_sigv4_check_key(k) != 0 || chat_sigv4_check_date(amz_date) != 0
        || expires == 0 || expires > CHAT_SIGV4_EXPIRES_MAX
        || host == NULL || host[0] == '\0')
    {
        sink.err = 1;
        return chat_sigv4_done(&sink);
    }

    for (i = 0; host[i] != '\0'; i++) {
        if (i == CHAT_SIGV4_HOST_MAX || host[i] <= 0x20 || host[i] >= 0x7f
            || host[i] == '/')
        {
            sink.err = 1;
            return chat_sigv4_done(&sink);
        }
    }

    /* the query without the signature, already in canonical order */
    chat_sigv4_puts(&sink, "X-Amz-Algorithm=" CHAT_SIGV4_ALGORITHM
                    "&X-Amz-Credential=");
    chat_sigv4_put_encoded(&sink, k->access_key, strlen(k->access_key), 0);
    chat_sigv4_put(&sink, "%2F", 3);
    chat_sigv4_put(&sink, amz_date, 8);
    chat_sigv4_put(&sink, "%2F", 3);
    chat_sigv4_puts(&sink, k->region);
    chat_sigv4_put(&sink, "%2F", 3);
    chat_sigv4_puts(&sink, k->service);
    chat_sigv4_puts(&sink, "%2F" CHAT_SIGV4_TERMINATOR "&X-Amz-Date=");
    chat_sigv4_puts(&sink, amz_date);
    chat_sigv4_puts(&sink, "&X-Amz-Expires=");
    snprintf(num, sizeof(num), "%u", expires);
    chat_sigv4_puts(&sink, num);

    if (k->session_token != NULL) {
        chat_sigv4_puts(&sink, "&X-Amz-Security-Token=");
        chat_sigv4_put_encoded(&sink, k->session_token,
                               strlen(k->session_token), 0);
    }

    chat_sigv4_puts(&sink, "&X-Amz-SignedHeaders=host");

    len = chat_sigv4_done(&sink);

    if (len < 0) {
        return -1;
    }

    hh.name = "host";
    hh.value = host;

    if (chat_sigv4_sign(k, method, path, out, &hh, 1, CHAT_SIGV4_UNSIGNED,
                        amz_date, sig, hdrs, order)
        != 0)
    {
        sink.err = 1;
        return chat_sigv4_done(&sink);
    }

    chat_sigv4_puts(&sink, "&X-Amz-Signature=");
    chat_sigv4_puts(&sink, sig);

    return chat_sigv4_done(&sink);
}
