
/*
 * ngx_chat: signed media URLs (chat_media_url.h).
 */


#ifndef _GNU_SOURCE
#define _GNU_SOURCE                     /* memmem() */
#endif

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "chat_hex.h"
#include "chat_media_url.h"


#define CHAT_MEDIA_URL_MAC_LEN  32
#define CHAT_MEDIA_URL_LABEL    "ngx_chat media URL key v1"
#define CHAT_MEDIA_URL_KEY      "\"media\":\""
#define CHAT_MEDIA_URL_KEY_LEN  (sizeof(CHAT_MEDIA_URL_KEY) - 1)
#define CHAT_MEDIA_URL_MEMBER   ",\"url\":\""
#define CHAT_MEDIA_URL_MEMBER_LEN  (sizeof(CHAT_MEDIA_URL_MEMBER) - 1)


static int chat_media_url_mac(const unsigned char *key, size_t keylen,
    const char *id, size_t idlen, int64_t exp, unsigned char *mac);
static size_t chat_media_url_id(const char *p, const char *last);


static int
chat_media_url_mac(const unsigned char *key, size_t keylen, const char *id,
    size_t idlen, int64_t exp, unsigned char *mac)
{
    int           n;
    char          msg[CHAT_MEDIA_ID_MAX + 1 + 24];
    unsigned int  len;

    if (key == NULL || keylen < CHAT_MEDIA_URL_KEY_MIN || id == NULL
        || idlen == 0 || idlen > CHAT_MEDIA_ID_MAX || exp <= 0)
    {
        return -1;
    }

    memcpy(msg, id, idlen);
    n = snprintf(msg + idlen, sizeof(msg) - idlen, "\n%lld", (long long) exp);
    if (n < 0 || (size_t) n >= sizeof(msg) - idlen) {
        return -1;
    }

    len = 0;

    if (HMAC(EVP_sha256(), key, (int) keylen, (unsigned char *) msg,
             idlen + (size_t) n, mac, &len) == NULL
        || len != CHAT_MEDIA_URL_MAC_LEN)
    {
        return -1;
    }

    return 0;
}


int
chat_media_url_sign(const unsigned char *key, size_t keylen, const char *id,
    size_t idlen, int64_t exp, char *sig)
{
    unsigned char  mac[CHAT_MEDIA_URL_MAC_LEN];

    if (chat_media_url_mac(key, keylen, id, idlen, exp, mac) != 0) {
        return -1;
    }

    chat_hex_encode(mac, CHAT_MEDIA_URL_MAC_LEN, sig);

    return 0;
}



chat_media_url_rc_e
chat_media_url_verify(const unsigned char *key, size_t keylen, const char *id,
    size_t idlen, const char *exp, size_t explen, const char *sig,
    size_t siglen, int64_t now)
{
    int            hi, lo;
    size_t         i;
    int64_t        e;
    unsigned char  mac[CHAT_MEDIA_URL_MAC_LEN], got[CHAT_MEDIA_URL_MAC_LEN];

    if (exp == NULL || explen == 0 || explen > 19 || exp[0] == '0'
        || sig == NULL || siglen != CHAT_MEDIA_URL_SIG_LEN)
    {
        return CHAT_MEDIA_URL_MALFORMED;
    }

    e = 0;

    for (i = 0; i < explen; i++) {
        if (exp[i] < '0' || exp[i] > '9') {
            return CHAT_MEDIA_URL_MALFORMED;
        }

        if (e > (INT64_MAX - (exp[i] - '0')) / 10) {
            return CHAT_MEDIA_URL_MALFORMED;
        }

        e = e * 10 + (exp[i] - '0');
    }

    for (i = 0; i < CHAT_MEDIA_URL_MAC_LEN; i++) {
        hi = chat_hex_value((unsigned char) sig[2 * i]);
        lo = chat_hex_value((unsigned char) sig[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return CHAT_MEDIA_URL_MALFORMED;
        }

        got[i] = (unsigned char) (hi << 4 | lo);
    }

    if (chat_media_url_mac(key, keylen, id, idlen, e, mac) != 0) {
        return CHAT_MEDIA_URL_MALFORMED;
    }

    if (CRYPTO_memcmp(mac, got, CHAT_MEDIA_URL_MAC_LEN) != 0) {
        return CHAT_MEDIA_URL_BAD_SIGNATURE;
    }

    /* checked after the signature: an expiry is only news when signed */
    if (now >= e) {
        return CHAT_MEDIA_URL_EXPIRED;
    }

    return CHAT_MEDIA_URL_OK;
}


int
chat_media_url_key(const unsigned char *secret, size_t len,
    unsigned char *out)
{
    unsigned int  n;

    if (secret == NULL || len < CHAT_MEDIA_URL_KEY_MIN) {
        return -1;
    }

    n = 0;

    if (HMAC(EVP_sha256(), secret, (int) len,
             (const unsigned char *) CHAT_MEDIA_URL_LABEL,
             sizeof(CHAT_MEDIA_URL_LABEL) - 1, out, &n) == NULL
        || n != CHAT_MEDIA_URL_MAC_LEN)
    {
        return -1;
    }

    return 0;
}


int
chat_media_url_make(const unsigned char *key, size_t keylen, const char *id,
    size_t idlen, int64_t exp, char *out, size_t cap)
{
    int   n;
    char  sig[CHAT_MEDIA_URL_SIG_LEN + 1];

    if (chat_media_url_sign(key, keylen, id, idlen, exp, sig) != 0) {
        return -1;
    }

    n = snprintf(out, cap, "/v1/media/%.*s?exp=%lld&sig=%s", (int) idlen, id,
                 (long long) exp, sig);

    return n < 0 || (size_t) n >= cap ? -1 : n;
}


const char *
chat_media_url_strerror(chat_media_url_rc_e rc)
{
    switch (rc) {
    case CHAT_MEDIA_URL_OK:
        return "ok";
    case CHAT_MEDIA_URL_MALFORMED:
        return "malformed exp or sig";
    case CHAT_MEDIA_URL_BAD_SIGNATURE:
        return "bad signature";
    case CHAT_MEDIA_URL_EXPIRED:
        return "expired";
    }

    return "unknown";
}


/* the length of the id at p if a closing quote follows it, else 0 */

static size_t
chat_media_url_id(const char *p, const char *last)
{
    size_t  n;

    for (n = 0; p + n < last && n <= CHAT_MEDIA_ID_MAX; n++) {
        if (p[n] == '"') {
            return n;
        }

        if (!chat_media_id_char((unsigned char) p[n])) {
            return 0;
        }
    }

    return 0;
}


size_t
chat_media_url_count(const char *text, size_t len)
{
    size_t       n;
    const char  *p, *last;

    n = 0;
    p = text;
    last = text + len;

    while (p < last
           && (p = memmem(p, last - p, CHAT_MEDIA_URL_KEY,
                          CHAT_MEDIA_URL_KEY_LEN))
              != NULL)
    {
        p += CHAT_MEDIA_URL_KEY_LEN;

        if (chat_media_url_id(p, last)) {
            n++;
        }
    }

    return n;
}


long
chat_media_url_insert(const unsigned char *key, size_t keylen, int64_t exp,
    const char *text, size_t len, char *out, size_t cap)
{
    int          w;
    size_t       idlen, n;
    const char  *p, *last, *hit, *id;
    char        *o, *olast;

    p = text;
    last = text + len;
    o = out;
    olast = out + cap;

    for ( ;; ) {
        hit = p < last ? memmem(p, last - p, CHAT_MEDIA_URL_KEY,
                                CHAT_MEDIA_URL_KEY_LEN)
                       : NULL;

        if (hit == NULL) {
            n = last - p;

            if ((size_t) (olast - o) < n) {
                return -1;
            }

            memcpy(o, p, n);
            o += n;

            return o - out;
        }

        id = hit + CHAT_MEDIA_URL_KEY_LEN;
        idlen = chat_media_url_id(id, last);

        /* through the key, and the id with its quote when there is one */
        n = (id - p) + (idlen ? idlen + 1 : 0);

        if ((size_t) (olast - o) < n) {
            return -1;
        }

        memcpy(o, p, n);
        o += n;
        p += n;

        if (idlen == 0) {
            continue;
        }

        /* ,"url":"<the signed URL>" */
        if ((size_t) (olast - o) < CHAT_MEDIA_URL_MEMBER_LEN) {
            return -1;
        }

        memcpy(o, CHAT_MEDIA_URL_MEMBER, CHAT_MEDIA_URL_MEMBER_LEN);
        o += CHAT_MEDIA_URL_MEMBER_LEN;

        /* snprintf() leaves room for its NUL: the quote goes there */
        w = chat_media_url_make(key, keylen, id, idlen, exp, o, olast - o);
        if (w < 0) {
            return -1;
        }

        o += w;
        *o++ = '"';
    }
}
