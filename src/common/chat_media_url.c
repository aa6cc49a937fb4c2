
/*
 * ngx_chat: signed media URLs (chat_media_url.h).
 */


#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "chat_hex.h"
#include "chat_media_url.h"


#define CHAT_MEDIA_URL_MAC_LEN  32
#define CHAT_MEDIA_URL_LABEL    "ngx_chat media URL key v1"


static int chat_media_url_mac(const unsigned char *key, size_t keylen,
    const char *id, size_t idlen, int64_t exp, unsigned char *mac);


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
