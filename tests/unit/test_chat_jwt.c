
/*
 * Unit tests for src/common/chat_jwt.c.
 *
 * Tokens with chosen headers and payloads are made here with OpenSSL
 * directly (EVP_EncodeBlock, HMAC), not with chat_jwt_sign(), so that
 * every rejection test differs from an accepted token in one thing only;
 * each table also holds accepted cases, so the helper itself is tested.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "chat_jwt.h"


#define CHAT_TEST_NOW     1700000000
#define CHAT_TEST_EXP     1700003600
#define CHAT_TEST_BUF     8192

#define CHAT_TEST_HEADER  "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define CHAT_TEST_PAYLOAD \
    "{\"sub\":\"42\",\"iat\":1700000000,\"exp\":1700003600}"

/*
 * chat_jwt_sign(chat_test_key, 42, CHAT_TEST_NOW, CHAT_TEST_EXP), computed
 * independently with Python's hmac, hashlib and base64 modules.
 */
#define CHAT_TEST_KAT                                                         \
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"                                    \
    ".eyJzdWIiOiI0MiIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwfQ"         \
    ".iK3mxxFLDV5k_K6_PhM2aEFUwzEnR0FQfo-LuS263q8"

/* RFC 7515 appendix A.1: a valid HS256 signature over a token without sub */
#define CHAT_TEST_RFC7515                                                     \
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"                                \
    ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxl"   \
    "LmNvbS9pc19yb290Ijp0cnVlfQ"                                              \
    ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"


typedef struct {
    const char     *json;
    chat_jwt_rc_e   rc;
} chat_test_case_t;


static const unsigned char  chat_test_key[] =
    "ngx_chat unit-test key, 32 bytes";
static const unsigned char  chat_test_key2[] =
    "ngx_chat unit-test key, 32 byteZ";

static const unsigned char  chat_test_rfc7515_key[] = {
    0x03, 0x23, 0x35, 0x4b, 0x2b, 0x0f, 0xa5, 0xbc, 0x83, 0x7e, 0x06, 0x65,
    0x77, 0x7b, 0xa6, 0x8f, 0x5a, 0xb3, 0x28, 0xe6, 0xf0, 0x54, 0xc9, 0x28,
    0xa9, 0x0f, 0x84, 0xb2, 0xd2, 0x50, 0x2e, 0xbf, 0xd3, 0xfb, 0x5a, 0x92,
    0xd2, 0x06, 0x47, 0xef, 0x96, 0x8a, 0xb4, 0xc3, 0x77, 0x62, 0x3d, 0x22,
    0x3d, 0x2e, 0x21, 0x72, 0x05, 0x2e, 0x4f, 0x08, 0xc0, 0xcd, 0x9a, 0xf5,
    0x67, 0xd0, 0x80, 0xa3
};


#define CHAT_TEST_KEYLEN  (sizeof(chat_test_key) - 1)


/* base64url without padding, through OpenSSL's plain base64 */
static size_t
chat_test_b64(const void *in, size_t len, char *out)
{
    int     n;
    size_t  i;

    n = EVP_EncodeBlock((unsigned char *) out, in, (int) len);
    assert_true(n >= 0);

    while (n > 0 && out[n - 1] == '=') {
        n--;
    }

    for (i = 0; i < (size_t) n; i++) {
        if (out[i] == '+') {
            out[i] = '-';

        } else if (out[i] == '/') {
            out[i] = '_';
        }
    }

    out[n] = '\0';

    return n;
}


/* "b64(header).b64(payload).b64(HMAC-SHA256)" into out, returns length */
static size_t
chat_test_make_raw(const void *header, size_t hlen, const void *payload,
    size_t plen, const unsigned char *key, size_t keylen, char *out)
{
    size_t         n;
    unsigned int   maclen;
    unsigned char  mac[EVP_MAX_MD_SIZE];

    assert_true((hlen + plen) * 4 / 3 + 100 < CHAT_TEST_BUF);

    n = chat_test_b64(header, hlen, out);
    out[n++] = '.';
    n += chat_test_b64(payload, plen, out + n);

    assert_non_null(HMAC(EVP_sha256(), key, (int) keylen,
                         (unsigned char *) out, n, mac, &maclen));
    assert_int_equal(maclen, 32);

    out[n++] = '.';
    n += chat_test_b64(mac, maclen, out + n);

    return n;
}


static size_t
chat_test_make(const char *header, const char *payload, char *out)
{
    return chat_test_make_raw(header, strlen(header), payload,
                              strlen(payload), chat_test_key,
                              CHAT_TEST_KEYLEN, out);
}


static chat_jwt_rc_e
chat_test_verify_str(const char *token, int64_t now)
{
    chat_jwt_claims_t  claims;

    return chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, token,
                           strlen(token), now, &claims);
}


/* the result for a token made of header and payload, at CHAT_TEST_NOW */
static chat_jwt_rc_e
chat_test_verify(const char *header, const char *payload)
{
    char  token[CHAT_TEST_BUF];

    chat_test_make(header, payload, token);

    return chat_test_verify_str(token, CHAT_TEST_NOW);
}


static void
chat_test_table(const char *header, const chat_test_case_t *cases,
    size_t n, int is_header)
{
    size_t         i;
    chat_jwt_rc_e  rc;

    for (i = 0; i < n; i++) {
        if (is_header) {
            rc = chat_test_verify(cases[i].json, CHAT_TEST_PAYLOAD);

        } else {
            rc = chat_test_verify(header, cases[i].json);
        }

        if (rc != cases[i].rc) {
            fail_msg("%s: got %s, expected %s", cases[i].json,
                     chat_jwt_rc_text(rc), chat_jwt_rc_text(cases[i].rc));
        }
    }
}


/* "jti": signed in when given, read back, checked for type and size */

static void
chat_test_jti(void **state)
{
    int                n;
    char               token[384], jti[CHAT_JWT_JTI_MAX + 2];
    chat_jwt_claims_t  claims;

    (void) state;

    n = chat_jwt_sign_jti(chat_test_key, CHAT_TEST_KEYLEN, 7, CHAT_TEST_NOW,
                          CHAT_TEST_EXP, "aB3-_x", token, sizeof(token));
    assert_true(n > 0);
    assert_int_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, token,
                                     n, CHAT_TEST_NOW, &claims),
                     CHAT_JWT_OK);
    assert_string_equal(claims.jti, "aB3-_x");

    /* none: an empty jti in the claims */
    n = chat_jwt_sign(chat_test_key, CHAT_TEST_KEYLEN, 7, CHAT_TEST_NOW,
                      CHAT_TEST_EXP, token, sizeof(token));
    memset(claims.jti, 'x', sizeof(claims.jti));
    assert_int_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, token,
                                     n, CHAT_TEST_NOW, &claims),
                     CHAT_JWT_OK);
    assert_string_equal(claims.jti, "");

    /* the longest, and one over it */
    memset(jti, 'j', sizeof(jti));
    jti[CHAT_JWT_JTI_MAX] = '\0';
    n = chat_jwt_sign_jti(chat_test_key, CHAT_TEST_KEYLEN, 7, CHAT_TEST_NOW,
                          CHAT_TEST_EXP, jti, token, sizeof(token));
    assert_true(n > 0);
    assert_int_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, token,
                                     n, CHAT_TEST_NOW, &claims),
                     CHAT_JWT_OK);
    assert_string_equal(claims.jti, jti);

    jti[CHAT_JWT_JTI_MAX] = 'j';
    jti[CHAT_JWT_JTI_MAX + 1] = '\0';
    assert_int_equal(chat_jwt_sign_jti(chat_test_key, CHAT_TEST_KEYLEN, 7,
                                       CHAT_TEST_NOW, CHAT_TEST_EXP, jti,
                                       token, sizeof(token)), -1);

    /* characters outside base64url are not signed */
    assert_int_equal(chat_jwt_sign_jti(chat_test_key, CHAT_TEST_KEYLEN, 7,
                                       CHAT_TEST_NOW, CHAT_TEST_EXP, "a b",
                                       token, sizeof(token)), -1);
    assert_int_equal(chat_jwt_sign_jti(chat_test_key, CHAT_TEST_KEYLEN, 7,
                                       CHAT_TEST_NOW, CHAT_TEST_EXP, "a\"b",
                                       token, sizeof(token)), -1);
}


static void
chat_test_round_trip(void **state)
{
    int                n;
    char               token[256];
    chat_jwt_claims_t  claims;

    (void) state;

    n = chat_jwt_sign(chat_test_key, CHAT_TEST_KEYLEN, 7, CHAT_TEST_NOW,
                      CHAT_TEST_EXP, token, sizeof(token));
    assert_true(n > 0);
    assert_int_equal((size_t) n, strlen(token));

    memset(&claims, 0, sizeof(claims));
    assert_int_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, token,
                                     n, CHAT_TEST_NOW, &claims),
                     CHAT_JWT_OK);
    assert_int_equal(claims.sub, 7);
    assert_int_equal(claims.iat, CHAT_TEST_NOW);
    assert_int_equal(claims.exp, CHAT_TEST_EXP);

    /* claims may be NULL */
    assert_int_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, token,
                                     n, CHAT_TEST_NOW, NULL),
                     CHAT_JWT_OK);

    /* the extremes of every field */
    n = chat_jwt_sign(chat_test_key, CHAT_TEST_KEYLEN, INT64_MAX, INT64_MIN,
                      INT64_MAX, token, sizeof(token));
    assert_true(n > 0 && n < 256);
    assert_int_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, token,
                                     n, INT64_MAX - 1, &claims),
                     CHAT_JWT_OK);
    assert_int_equal(claims.sub, INT64_MAX);
    assert_int_equal(claims.iat, INT64_MIN);
    assert_int_equal(claims.exp, INT64_MAX);

    /* a longer key works too */
    n = chat_jwt_sign(chat_test_rfc7515_key, sizeof(chat_test_rfc7515_key),
                      1, 0, CHAT_TEST_EXP, token, sizeof(token));
    assert_true(n > 0);
    assert_int_equal(chat_jwt_verify(chat_test_rfc7515_key,
                                     sizeof(chat_test_rfc7515_key), token, n,
                                     CHAT_TEST_NOW, &claims),
                     CHAT_JWT_OK);
    assert_int_equal(claims.sub, 1);
}


static void
chat_test_sign_limits(void **state)
{
    int   n, m;
    char  token[256];

    (void) state;

    n = chat_jwt_sign(chat_test_key, CHAT_TEST_KEYLEN, 42, CHAT_TEST_NOW,
                      CHAT_TEST_EXP, token, sizeof(token));
    assert_true(n > 0);

    /* exactly enough room, then one byte less */
    memset(token, 'x', sizeof(token));
    m = chat_jwt_sign(chat_test_key, CHAT_TEST_KEYLEN, 42, CHAT_TEST_NOW,
                      CHAT_TEST_EXP, token, n + 1);
    assert_int_equal(m, n);
    assert_int_equal(token[n], '\0');
    assert_int_equal(token[n + 1], 'x');

    memset(token, 'x', sizeof(token));
    assert_int_equal(chat_jwt_sign(chat_test_key, CHAT_TEST_KEYLEN, 42,
                                   CHAT_TEST_NOW, CHAT_TEST_EXP, token, n),
                     -1);
    assert_int_equal(token[0], '\0');
    assert_int_equal(token[1], 'x');

    assert_int_equal(chat_jwt_sign(chat_test_key, CHAT_TEST_KEYLEN, 42,
                                   CHAT_TEST_NOW, CHAT_TEST_EXP, token, 0),
                     -1);
    assert_int_equal(chat_jwt_sign(chat_test_key, CHAT_TEST_KEYLEN, 42,
                                   CHAT_TEST_NOW, CHAT_TEST_EXP, NULL, 256),
                     -1);

    /* sub must be a valid user id */
    assert_int_equal(chat_jwt_sign(chat_test_key, CHAT_TEST_KEYLEN, 0,
                                   CHAT_TEST_NOW, CHAT_TEST_EXP, token,
                                   sizeof(token)),
                     -1);
    assert_int_equal(chat_jwt_sign(chat_test_key, CHAT_TEST_KEYLEN,
                                   (uint64_t) INT64_MAX + 1, CHAT_TEST_NOW,
                                   CHAT_TEST_EXP, token, sizeof(token)),
                     -1);

    /* keys shorter than 32 bytes are refused, 32 bytes are enough */
    assert_int_equal(chat_jwt_sign(chat_test_key, CHAT_JWT_KEY_MIN_LEN - 1,
                                   42, CHAT_TEST_NOW, CHAT_TEST_EXP, token,
                                   sizeof(token)),
                     -1);
    assert_int_equal(chat_jwt_sign(NULL, 0, 42, CHAT_TEST_NOW, CHAT_TEST_EXP,
                                   token, sizeof(token)),
                     -1);
    assert_int_equal(chat_jwt_sign(chat_test_key, CHAT_JWT_KEY_MIN_LEN, 42,
                                   CHAT_TEST_NOW, CHAT_TEST_EXP, token,
                                   sizeof(token)),
                     n);
}


static void
chat_test_short_key(void **state)
{
    char               token[CHAT_TEST_BUF];
    size_t             n;
    chat_jwt_claims_t  claims;

    (void) state;

    /* a correct HMAC with a short key is still refused: fail closed */
    n = chat_test_make_raw(CHAT_TEST_HEADER, strlen(CHAT_TEST_HEADER),
                           CHAT_TEST_PAYLOAD, strlen(CHAT_TEST_PAYLOAD),
                           chat_test_key, 31, token);

    assert_int_equal(chat_jwt_verify(chat_test_key, 31, token, n,
                                     CHAT_TEST_NOW, &claims),
                     CHAT_JWT_BAD_SIGNATURE);

    n = chat_test_make_raw(CHAT_TEST_HEADER, strlen(CHAT_TEST_HEADER),
                           CHAT_TEST_PAYLOAD, strlen(CHAT_TEST_PAYLOAD),
                           (const unsigned char *) "", 0, token);

    assert_int_equal(chat_jwt_verify((const unsigned char *) "", 0, token, n,
                                     CHAT_TEST_NOW, &claims),
                     CHAT_JWT_BAD_SIGNATURE);
    assert_int_equal(chat_jwt_verify(NULL, 0, token, n, CHAT_TEST_NOW,
                                     &claims),
                     CHAT_JWT_BAD_SIGNATURE);
}


static void
chat_test_known_answer(void **state)
{
    int                n;
    char               token[256], bad[256];
    chat_jwt_claims_t  claims;

    (void) state;

    n = chat_jwt_sign(chat_test_key, CHAT_TEST_KEYLEN, 42, CHAT_TEST_NOW,
                      CHAT_TEST_EXP, token, sizeof(token));
    assert_int_equal(n, strlen(CHAT_TEST_KAT));
    assert_string_equal(token, CHAT_TEST_KAT);

    /* the test's own encoder agrees */
    n = chat_test_make(CHAT_TEST_HEADER, CHAT_TEST_PAYLOAD, token);
    assert_string_equal(token, CHAT_TEST_KAT);

    assert_int_equal(chat_test_verify_str(CHAT_TEST_KAT, CHAT_TEST_NOW),
                     CHAT_JWT_OK);

    memset(&claims, 0, sizeof(claims));
    assert_int_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN,
                                     CHAT_TEST_KAT, strlen(CHAT_TEST_KAT),
                                     CHAT_TEST_NOW, &claims),
                     CHAT_JWT_OK);
    assert_int_equal(claims.sub, 42);
    assert_int_equal(claims.iat, CHAT_TEST_NOW);
    assert_int_equal(claims.exp, CHAT_TEST_EXP);

    /*
     * RFC 7515's example: its signature is valid, and the token only fails
     * for lacking sub; with one signature character changed it fails on
     * the signature instead.
     */
    assert_int_equal(chat_jwt_verify(chat_test_rfc7515_key,
                                     sizeof(chat_test_rfc7515_key),
                                     CHAT_TEST_RFC7515,
                                     strlen(CHAT_TEST_RFC7515), 1300819379,
                                     &claims),
                     CHAT_JWT_BAD_CLAIMS);

    strcpy(bad, CHAT_TEST_RFC7515);
    bad[strlen(bad) - 5] ^= 0x01;
    assert_int_equal(chat_jwt_verify(chat_test_rfc7515_key,
                                     sizeof(chat_test_rfc7515_key), bad,
                                     strlen(bad), 1300819379, &claims),
                     CHAT_JWT_BAD_SIGNATURE);
}


static void
chat_test_tampered(void **state)
{
    char           token[CHAT_TEST_BUF], *sig, *dot;
    size_t         i, n, j;
    chat_jwt_rc_e  rc;
    const char    *alphabet;

    (void) state;

    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
               "0123456789-_";

    /* sub 43 instead of 42, with the signature of the original */
    chat_test_make(CHAT_TEST_HEADER,
                   "{\"sub\":\"43\",\"iat\":1700000000,\"exp\":1700003600}",
                   token);
    sig = strrchr(token, '.');
    strcpy(sig, strrchr(CHAT_TEST_KAT, '.'));
    assert_int_equal(strlen(token), strlen(CHAT_TEST_KAT));
    assert_int_equal(chat_test_verify_str(token, CHAT_TEST_NOW),
                     CHAT_JWT_BAD_SIGNATURE);

    /* one character of the payload */
    strcpy(token, CHAT_TEST_KAT);
    dot = strchr(token, '.');
    dot[5] = (dot[5] == 'A') ? 'B' : 'A';
    assert_int_equal(chat_test_verify_str(token, CHAT_TEST_NOW),
                     CHAT_JWT_BAD_SIGNATURE);

    /* one character of the signature */
    strcpy(token, CHAT_TEST_KAT);
    sig = strrchr(token, '.');
    sig[1] = (sig[1] == 'A') ? 'B' : 'A';
    assert_int_equal(chat_test_verify_str(token, CHAT_TEST_NOW),
                     CHAT_JWT_BAD_SIGNATURE);

    /* the signature truncated by one character, or one added */
    strcpy(token, CHAT_TEST_KAT);
    token[strlen(token) - 1] = '\0';
    assert_int_not_equal(chat_test_verify_str(token, CHAT_TEST_NOW),
                         CHAT_JWT_OK);
    strcpy(token, CHAT_TEST_KAT);
    strcat(token, "A");
    assert_int_not_equal(chat_test_verify_str(token, CHAT_TEST_NOW),
                         CHAT_JWT_OK);

    /* any single character replaced by any other never verifies */
    n = strlen(CHAT_TEST_KAT);

    for (i = 0; i < n; i++) {
        for (j = 0; alphabet[j] != '\0'; j++) {
            strcpy(token, CHAT_TEST_KAT);

            if (token[i] == '.' || token[i] == alphabet[j]) {
                continue;
            }

            token[i] = alphabet[j];
            rc = chat_test_verify_str(token, CHAT_TEST_NOW);

            if (rc == CHAT_JWT_OK) {
                fail_msg("position %zu changed to %c verified", i,
                         alphabet[j]);
            }
        }
    }
}


static void
chat_test_other_key(void **state)
{
    char    token[CHAT_TEST_BUF];
    char    longkey[CHAT_TEST_KEYLEN + 1];
    size_t  n;

    (void) state;

    n = chat_test_make_raw(CHAT_TEST_HEADER, strlen(CHAT_TEST_HEADER),
                           CHAT_TEST_PAYLOAD, strlen(CHAT_TEST_PAYLOAD),
                           chat_test_key2, CHAT_TEST_KEYLEN, token);
    assert_int_equal(chat_test_verify_str(token, CHAT_TEST_NOW),
                     CHAT_JWT_BAD_SIGNATURE);

    /* and the other key does accept it */
    assert_int_equal(chat_jwt_verify(chat_test_key2, CHAT_TEST_KEYLEN, token,
                                     n, CHAT_TEST_NOW, NULL),
                     CHAT_JWT_OK);

    /* a key with one more byte is another key */
    memcpy(longkey, chat_test_key, CHAT_TEST_KEYLEN);
    longkey[CHAT_TEST_KEYLEN] = '!';
    assert_int_equal(chat_jwt_verify((unsigned char *) longkey,
                                     sizeof(longkey), CHAT_TEST_KAT,
                                     strlen(CHAT_TEST_KAT), CHAT_TEST_NOW,
                                     NULL),
                     CHAT_JWT_BAD_SIGNATURE);
}


static void
chat_test_alg(void **state)
{
    char                           token[CHAT_TEST_BUF], *sig;
    static const chat_test_case_t  cases[] = {
        { "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", CHAT_JWT_OK },
        { "{\"alg\":\"HS256\"}", CHAT_JWT_OK },
        { "{\"typ\":\"JWT\",\"kid\":\"k1\",\"alg\":\"HS256\"}", CHAT_JWT_OK },
        { " {\r\n \"alg\" : \"HS256\" } ", CHAT_JWT_OK },
        { "{\"alg\":\"none\",\"typ\":\"JWT\"}", CHAT_JWT_BAD_ALG },
        { "{\"alg\":\"None\"}", CHAT_JWT_BAD_ALG },
        { "{\"alg\":\"HS512\",\"typ\":\"JWT\"}", CHAT_JWT_BAD_ALG },
        { "{\"alg\":\"HS384\"}", CHAT_JWT_BAD_ALG },
        { "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", CHAT_JWT_BAD_ALG },
        { "{\"alg\":\"ES256\"}", CHAT_JWT_BAD_ALG },
        { "{\"alg\":\"hs256\"}", CHAT_JWT_BAD_ALG },
        { "{\"alg\":\"HS256 \"}", CHAT_JWT_BAD_ALG },
        { "{\"alg\":\"HS2560\"}", CHAT_JWT_BAD_ALG },
        { "{\"alg\":\"HS25\"}", CHAT_JWT_BAD_ALG },
        { "{\"alg\":\"\"}", CHAT_JWT_BAD_ALG },
        { "{\"typ\":\"JWT\"}", CHAT_JWT_BAD_ALG },
        { "{}", CHAT_JWT_BAD_ALG },
        { "{\"alg\":256}", CHAT_JWT_BAD_ALG },
        { "{\"alg\":null}", CHAT_JWT_BAD_ALG },
        { "{\"alg\":true}", CHAT_JWT_BAD_ALG },
        { "{\"alg\":[\"HS256\"]}", CHAT_JWT_BAD_ALG },
        { "{\"alg\":{\"name\":\"HS256\"}}", CHAT_JWT_BAD_ALG },
        { "{\"ALG\":\"HS256\"}", CHAT_JWT_BAD_ALG },
    };

    (void) state;

    chat_test_table(NULL, cases, sizeof(cases) / sizeof(cases[0]), 1);

    /* "none" with its empty signature, as an attacker would send it */
    chat_test_make("{\"alg\":\"none\",\"typ\":\"JWT\"}", CHAT_TEST_PAYLOAD,
                   token);
    sig = strrchr(token, '.');
    sig[1] = '\0';
    assert_int_equal(chat_test_verify_str(token, CHAT_TEST_NOW),
                     CHAT_JWT_BAD_ALG);

    /* the same with HS256 fails on the empty signature */
    chat_test_make(CHAT_TEST_HEADER, CHAT_TEST_PAYLOAD, token);
    sig = strrchr(token, '.');
    sig[1] = '\0';
    assert_int_equal(chat_test_verify_str(token, CHAT_TEST_NOW),
                     CHAT_JWT_BAD_SIGNATURE);
}


static void
chat_test_header(void **state)
{
    char                           token[CHAT_TEST_BUF];
    size_t                         n;
    static const chat_test_case_t  cases[] = {
        { "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"cty\":\"x\"}", CHAT_JWT_OK },
        { "{\"alg\":\"HS256\",\"typ\":\"xyz\"}", CHAT_JWT_MALFORMED },
        { "{\"alg\":\"HS256\",\"typ\":\"jwt\"}", CHAT_JWT_MALFORMED },
        { "{\"alg\":\"HS256\",\"typ\":\"JWT \"}", CHAT_JWT_MALFORMED },
        { "{\"alg\":\"HS256\",\"typ\":\"\"}", CHAT_JWT_MALFORMED },
        { "{\"alg\":\"HS256\",\"typ\":1}", CHAT_JWT_MALFORMED },
        { "{\"alg\":\"HS256\",\"typ\":null}", CHAT_JWT_MALFORMED },
        { "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", CHAT_JWT_MALFORMED },
        { "{\"alg\":\"HS256\",\"crit\":[]}", CHAT_JWT_MALFORMED },
        { "{\"alg\":\"HS256\",\"crit\":null}", CHAT_JWT_MALFORMED },
        { "{\"alg\":\"none\",\"alg\":\"HS256\"}", CHAT_JWT_MALFORMED },
        { "{\"alg\":\"HS256\",\"alg\":\"HS256\"}", CHAT_JWT_MALFORMED },
        { "[\"HS256\"]", CHAT_JWT_MALFORMED },
        { "\"HS256\"", CHAT_JWT_MALFORMED },
        { "256", CHAT_JWT_MALFORMED },
        { "null", CHAT_JWT_MALFORMED },
        { "{\"alg\":\"HS256\"", CHAT_JWT_MALFORMED },
        { "{\"alg\":\"HS256\"}x", CHAT_JWT_MALFORMED },
        { "{\"alg\":\"HS256\"}{}", CHAT_JWT_MALFORMED },
        { "{'alg':'HS256'}", CHAT_JWT_MALFORMED },
        { "{\"alg\":\"HS256\",\"x\":[[[[[[[[[1]]]]]]]]]}", CHAT_JWT_MALFORMED },
        { "{\"alg\":\"HS256\",\"x\":[[[[[[1]]]]]]}", CHAT_JWT_OK },
        { "{\"alg\":\"HS256\",\"x\":\"\\u0000\"}", CHAT_JWT_MALFORMED },
        { "{\"alg\":\"HS256\",\"x\":\"\xc3\x28\"}", CHAT_JWT_MALFORMED },
    };

    (void) state;

    chat_test_table(NULL, cases, sizeof(cases) / sizeof(cases[0]), 1);

    /* a raw NUL after the header JSON, then the same without it */
    n = chat_test_make_raw("{\"alg\":\"HS256\"}\0", 16, CHAT_TEST_PAYLOAD,
                           strlen(CHAT_TEST_PAYLOAD), chat_test_key,
                           CHAT_TEST_KEYLEN, token);
    assert_int_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, token,
                                     n, CHAT_TEST_NOW, NULL),
                     CHAT_JWT_MALFORMED);

    n = chat_test_make_raw("{\"alg\":\"HS256\"}\0", 15, CHAT_TEST_PAYLOAD,
                           strlen(CHAT_TEST_PAYLOAD), chat_test_key,
                           CHAT_TEST_KEYLEN, token);
    assert_int_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, token,
                                     n, CHAT_TEST_NOW, NULL),
                     CHAT_JWT_OK);
}


static void
chat_test_structure(void **state)
{
    size_t       i;
    char         token[CHAT_TEST_BUF];
    const char  *h, *p, *s;
    static const struct {
        const char  *fmt;
    } forms[] = {
        { "%s.%s.%s" },          /* the control */
        { "%s.%s%s" },
        { "%s%s.%s" },
        { "%s%s%s" },
        { "%s.%s.%s." },
        { ".%s.%s.%s" },
        { "%s..%s.%s" },
        { "%s.%s..%s" },
        { "%s.%s.%s.%s" },
        { ".%s.%s" },            /* empty header */
        { "%s..%s" },            /* empty payload */
        { "%s.%s.=%s" },
        { "%s=.%s.%s" },
        { "%s.%s=.%s" },
        { "%s.%s.%s=" },
        { "%s.%s.%s==" },
        { " %s.%s.%s" },
        { "%s.%s.%s " },
        { "%s.%s.%s\n" },
        { "%s.%s.%s\r\n" },
        { "%s .%s.%s" },
        { "Bearer %s.%s.%s" },
        { "\"%s.%s.%s\"" },
    };

    (void) state;

    h = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
    p = "eyJzdWIiOiI0MiIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAzNjAwfQ";
    s = "iK3mxxFLDV5k_K6_PhM2aEFUwzEnR0FQfo-LuS263q8";

    for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        snprintf(token, sizeof(token), forms[i].fmt, h, p, s,
                 "eyJhbGciOiJIUzI1NiJ9");

        if (chat_test_verify_str(token, CHAT_TEST_NOW)
            != (i == 0 ? CHAT_JWT_OK : CHAT_JWT_MALFORMED))
        {
            fail_msg("\"%s\": %s", token,
                     chat_jwt_rc_text(chat_test_verify_str(token,
                                                           CHAT_TEST_NOW)));
        }
    }

    assert_int_equal(chat_test_verify_str("", CHAT_TEST_NOW),
                     CHAT_JWT_MALFORMED);
    assert_int_equal(chat_test_verify_str("..", CHAT_TEST_NOW),
                     CHAT_JWT_MALFORMED);
    assert_int_equal(chat_test_verify_str(".", CHAT_TEST_NOW),
                     CHAT_JWT_MALFORMED);
    assert_int_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, NULL,
                                     0, CHAT_TEST_NOW, NULL),
                     CHAT_JWT_MALFORMED);
    assert_int_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN,
                                     CHAT_TEST_KAT, 0, CHAT_TEST_NOW, NULL),
                     CHAT_JWT_MALFORMED);
}


/* replaces the first occurrence of c in the part after `dots` dots */
static void
chat_test_replace_in_part(char *token, unsigned dots, char from, char to)
{
    char  *q;

    q = token;

    while (dots > 0) {
        q = strchr(q, '.') + 1;
        dots--;
    }

    q = strchr(q, from);
    assert_non_null(q);
    *q = to;
}


static void
chat_test_alphabet(void **state)
{
    char           token[CHAT_TEST_BUF];
    const char    *p;
    unsigned       part;
    size_t         n;
    unsigned char  c;

    (void) state;

    /*
     * '_' in the payload and '-', '_' in the signature swapped for their
     * base64 counterparts '/', '+': same bytes, wrong alphabet.
     */
    p = "{\"sub\":\"42\",\"exp\":1700003600,"
        "\"x\":\"\xef\xbf\xbe\xef\xbb\xbf\"}";
    chat_test_make(CHAT_TEST_HEADER, p, token);
    assert_int_equal(chat_test_verify_str(token, CHAT_TEST_NOW),
                     CHAT_JWT_OK);
    assert_non_null(strchr(strchr(token, '.') + 1, '_'));

    chat_test_replace_in_part(token, 1, '_', '/');
    assert_int_equal(chat_test_verify_str(token, CHAT_TEST_NOW),
                     CHAT_JWT_MALFORMED);

    /* the KAT signature holds '-' and '_' */
    for (part = 0; part < 2; part++) {
        strcpy(token, CHAT_TEST_KAT);
        chat_test_replace_in_part(token, 2, part ? '_' : '-',
                                  part ? '/' : '+');
        assert_int_equal(chat_test_verify_str(token, CHAT_TEST_NOW),
                         CHAT_JWT_MALFORMED);
    }

    /* every byte outside the alphabet, in each part */
    n = strlen(CHAT_TEST_KAT);

    for (c = 1; c != 0; c++) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
            || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')
        {
            continue;
        }

        for (part = 0; part < 3; part++) {
            strcpy(token, CHAT_TEST_KAT);
            token[part == 0 ? 3 : (part == 1 ? 40 : n - 3)] = (char) c;

            if (chat_test_verify_str(token, CHAT_TEST_NOW)
                != CHAT_JWT_MALFORMED)
            {
                fail_msg("byte 0x%02x in part %u accepted", c, part);
            }
        }
    }
}


static void
chat_test_canonical(void **state)
{
    char    token[CHAT_TEST_BUF];
    char   *last;

    (void) state;

    /*
     * The KAT signature ends in '8' (60, 111100b) after 40 characters, so
     * the low 2 bits are unused: '9' (61) decodes to the same 32 bytes and
     * must be refused as another spelling of the same signature.
     */
    strcpy(token, CHAT_TEST_KAT);
    last = &token[strlen(token) - 1];
    assert_int_equal(*last, '8');

    *last = '9';
    assert_int_equal(chat_test_verify_str(token, CHAT_TEST_NOW),
                     CHAT_JWT_MALFORMED);
    *last = '_';
    assert_int_equal(chat_test_verify_str(token, CHAT_TEST_NOW),
                     CHAT_JWT_MALFORMED);

    /*
     * The payload ends in "fQ", a 2-character tail with 4 unused bits:
     * 'R' (17, 010001b) keeps the byte '}' and sets one of them.
     */
    strcpy(token, CHAT_TEST_KAT);
    last = strrchr(token, '.') - 1;
    assert_int_equal(*last, 'Q');
    *last = 'R';
    assert_int_equal(chat_test_verify_str(token, CHAT_TEST_NOW),
                     CHAT_JWT_MALFORMED);

    /* a part of length 4n + 1 cannot be base64 */
    snprintf(token, sizeof(token), "eyJhbGciOiJIUzI1NiJ9A%s",
             strchr(CHAT_TEST_KAT, '.'));
    assert_int_equal(chat_test_verify_str(token, CHAT_TEST_NOW),
                     CHAT_JWT_MALFORMED);
    snprintf(token, sizeof(token), "%.36sA%s", CHAT_TEST_KAT,
             &CHAT_TEST_KAT[36]);
    assert_int_equal(chat_test_verify_str(token, CHAT_TEST_NOW),
                     CHAT_JWT_MALFORMED);
}


static void
chat_test_oversize(void **state)
{
    char    *page, *token;
    char     big[CHAT_JWT_MAX_LEN + 2];
    long     pagesz;
    size_t   n;

    (void) state;

    /*
     * A token claiming CHAT_JWT_MAX_LEN + 1 bytes whose buffer ends at a
     * PROT_NONE page after 16 bytes: reading it at all would crash.
     */
    pagesz = sysconf(_SC_PAGESIZE);
    assert_true(pagesz >= 4096);

    page = mmap(NULL, 2 * pagesz, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(page != MAP_FAILED);
    assert_int_equal(mprotect(page + pagesz, pagesz, PROT_NONE), 0);

    token = page + pagesz - 16;
    memcpy(token, "eyJhbGciOiJIUzI1", 16);

    assert_int_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, token,
                                     CHAT_JWT_MAX_LEN + 1, CHAT_TEST_NOW,
                                     NULL),
                     CHAT_JWT_MALFORMED);
    assert_int_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, token,
                                     SIZE_MAX, CHAT_TEST_NOW, NULL),
                     CHAT_JWT_MALFORMED);

    /* a valid token at the very end of the page, without a NUL after it */
    n = strlen(CHAT_TEST_KAT);
    token = page + pagesz - n;
    memcpy(token, CHAT_TEST_KAT, n);
    assert_int_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, token,
                                     n, CHAT_TEST_NOW, NULL),
                     CHAT_JWT_OK);

    assert_int_equal(munmap(page, 2 * pagesz), 0);

    /* a real buffer just over the limit */
    memset(big, 'A', sizeof(big));
    big[100] = '.';
    big[200] = '.';
    big[CHAT_JWT_MAX_LEN + 1] = '\0';
    assert_int_equal(chat_test_verify_str(big, CHAT_TEST_NOW),
                     CHAT_JWT_MALFORMED);
}


/* a payload of exactly size bytes, padded with an ignored claim */
static chat_jwt_rc_e
chat_test_payload_of(size_t size)
{
    char    payload[4096];
    char    token[CHAT_TEST_BUF];
    size_t  n, fixed;

    fixed = strlen("{\"sub\":\"42\",\"exp\":1700003600,\"pad\":\"\"}");
    assert_true(size >= fixed && size < sizeof(payload));

    n = snprintf(payload, sizeof(payload),
                 "{\"sub\":\"42\",\"exp\":1700003600,\"pad\":\"%0*d\"}",
                 (int) (size - fixed), 0);
    assert_int_equal(n, size);

    n = chat_test_make_raw(CHAT_TEST_HEADER, strlen(CHAT_TEST_HEADER),
                           payload, size, chat_test_key, CHAT_TEST_KEYLEN,
                           token);
    assert_true(n <= CHAT_JWT_MAX_LEN);

    return chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, token, n,
                           CHAT_TEST_NOW, NULL);
}


static void
chat_test_part_size(void **state)
{
    size_t  size;

    (void) state;

    /* every tail length around the limit */
    for (size = CHAT_JWT_PART_MAX - 3; size <= CHAT_JWT_PART_MAX; size++) {
        assert_int_equal(chat_test_payload_of(size), CHAT_JWT_OK);
    }

    for (size = CHAT_JWT_PART_MAX + 1; size <= CHAT_JWT_PART_MAX + 4; size++) {
        assert_int_equal(chat_test_payload_of(size), CHAT_JWT_MALFORMED);
    }
}


static void
chat_test_payload_json(void **state)
{
    char                           token[CHAT_TEST_BUF];
    size_t                         n;
    static const chat_test_case_t  cases[] = {
        { CHAT_TEST_PAYLOAD, CHAT_JWT_OK },
        { "[\"42\",1700003600]", CHAT_JWT_MALFORMED },
        { "\"42\"", CHAT_JWT_MALFORMED },
        { "42", CHAT_JWT_MALFORMED },
        { "null", CHAT_JWT_MALFORMED },
        { "", CHAT_JWT_MALFORMED },
        { "{\"sub\":\"42\",\"exp\":1700003600", CHAT_JWT_MALFORMED },
        { "{\"sub\":\"42\",\"exp\":1700003600}x", CHAT_JWT_MALFORMED },
        { "{\"sub\":\"42\",\"exp\":1700003600}{}", CHAT_JWT_MALFORMED },
        { "{\"sub\":\"42\",\"sub\":\"42\",\"exp\":1700003600}",
          CHAT_JWT_MALFORMED },
        { "{\"sub\":\"1\",\"sub\":\"42\",\"exp\":1700003600}",
          CHAT_JWT_MALFORMED },
        { "{\"sub\":\"42\",\"exp\":1,\"exp\":1700003600}",
          CHAT_JWT_MALFORMED },
        { "{\"sub\":\"4\\u00002\",\"exp\":1700003600}", CHAT_JWT_MALFORMED },
        { "{\"sub\":\"42\",\"exp\":100000000000000000000}",
          CHAT_JWT_MALFORMED },
        { "{\"sub\":\"42\",\"exp\":1700003600,\"x\":\"\xff\"}",
          CHAT_JWT_MALFORMED },
        { "{\"sub\":\"42\",\"exp\":1700003600,\"x\":\"\xed\xa0\x80\"}",
          CHAT_JWT_MALFORMED },
        { "{\"sub\":\"42\",\"exp\":1700003600,\"aud\":[\"a\"],\"x\":{}}",
          CHAT_JWT_OK },
    };

    (void) state;

    chat_test_table(CHAT_TEST_HEADER, cases,
                    sizeof(cases) / sizeof(cases[0]), 0);

    /*
     * The signature is checked before the payload is parsed: garbage
     * under another key's signature is a bad signature, not malformed.
     */
    n = chat_test_make_raw(CHAT_TEST_HEADER, strlen(CHAT_TEST_HEADER),
                           "{\"sub\":", 7, chat_test_key2, CHAT_TEST_KEYLEN,
                           token);
    assert_int_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, token,
                                     n, CHAT_TEST_NOW, NULL),
                     CHAT_JWT_BAD_SIGNATURE);
    assert_int_equal(chat_jwt_verify(chat_test_key2, CHAT_TEST_KEYLEN, token,
                                     n, CHAT_TEST_NOW, NULL),
                     CHAT_JWT_MALFORMED);
}


static void
chat_test_sub(void **state)
{
    static const chat_test_case_t  cases[] = {
        { "{\"sub\":\"42\",\"exp\":1700003600}", CHAT_JWT_OK },
        { "{\"sub\":\"1\",\"exp\":1700003600}", CHAT_JWT_OK },
        { "{\"sub\":\"9223372036854775807\",\"exp\":1700003600}",
          CHAT_JWT_OK },
        { "{\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":42,\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":42.0,\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":null,\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":true,\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":[\"42\"],\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"\",\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"007\",\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"0\",\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"00\",\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"-1\",\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"+1\",\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"12a\",\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"a12\",\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\" 42\",\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"42 \",\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"4.2\",\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"1e3\",\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"0x2a\",\"exp\":1700003600}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"\xd9\xa4\xd9\xa2\",\"exp\":1700003600}",
          CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"12345678901234567890\",\"exp\":1700003600}",
          CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"9223372036854775808\",\"exp\":1700003600}",
          CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"9999999999999999999\",\"exp\":1700003600}",
          CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"18446744073709551658\",\"exp\":1700003600}",
          CHAT_JWT_BAD_CLAIMS },
    };

    (void) state;

    chat_test_table(CHAT_TEST_HEADER, cases,
                    sizeof(cases) / sizeof(cases[0]), 0);
}


static void
chat_test_times(void **state)
{
    char                           token[CHAT_TEST_BUF];
    chat_jwt_claims_t              claims;
    static const chat_test_case_t  cases[] = {
        { "{\"sub\":\"42\",\"exp\":1700000001}", CHAT_JWT_OK },
        { "{\"sub\":\"42\",\"exp\":1700000000}", CHAT_JWT_EXPIRED },
        { "{\"sub\":\"42\",\"exp\":1699999999}", CHAT_JWT_EXPIRED },
        { "{\"sub\":\"42\",\"exp\":0}", CHAT_JWT_EXPIRED },
        { "{\"sub\":\"42\",\"exp\":-1}", CHAT_JWT_EXPIRED },
        { "{\"sub\":\"42\"}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"42\",\"exp\":\"1700003600\"}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"42\",\"exp\":1700003600.0}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"42\",\"exp\":1700003600.5}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"42\",\"exp\":1.7e9}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"42\",\"exp\":null}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"42\",\"exp\":true}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"42\",\"exp\":[1700003600]}", CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"42\",\"exp\":1700003600,\"iat\":1}", CHAT_JWT_OK },
        { "{\"sub\":\"42\",\"exp\":1700003600,\"iat\":\"1\"}",
          CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"42\",\"exp\":1700003600,\"iat\":1.5}",
          CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"42\",\"exp\":1700003600,\"iat\":null}",
          CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"42\",\"exp\":1700003600,\"nbf\":1700000000}",
          CHAT_JWT_OK },
        { "{\"sub\":\"42\",\"exp\":1700003600,\"nbf\":1700000001}",
          CHAT_JWT_NOT_YET_VALID },
        { "{\"sub\":\"42\",\"exp\":1700003600,\"nbf\":1700003599}",
          CHAT_JWT_NOT_YET_VALID },
        { "{\"sub\":\"42\",\"exp\":1700003600,\"nbf\":\"1700000001\"}",
          CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"42\",\"exp\":1700003600,\"nbf\":1.0}",
          CHAT_JWT_BAD_CLAIMS },
        { "{\"sub\":\"42\",\"exp\":1700003600,\"nbf\":null}",
          CHAT_JWT_BAD_CLAIMS },
    };

    (void) state;

    chat_test_table(CHAT_TEST_HEADER, cases,
                    sizeof(cases) / sizeof(cases[0]), 0);

    /* the same token on either side of exp */
    chat_test_make(CHAT_TEST_HEADER, CHAT_TEST_PAYLOAD, token);
    assert_int_equal(chat_test_verify_str(token, CHAT_TEST_EXP - 1),
                     CHAT_JWT_OK);
    assert_int_equal(chat_test_verify_str(token, CHAT_TEST_EXP),
                     CHAT_JWT_EXPIRED);
    assert_int_equal(chat_test_verify_str(token, CHAT_TEST_EXP + 1),
                     CHAT_JWT_EXPIRED);
    assert_int_equal(chat_test_verify_str(token, INT64_MAX),
                     CHAT_JWT_EXPIRED);
    assert_int_equal(chat_test_verify_str(token, INT64_MIN), CHAT_JWT_OK);

    /* iat absent reads as 0 */
    chat_test_make(CHAT_TEST_HEADER, "{\"exp\":1700003600,\"sub\":\"5\"}",
                   token);
    memset(&claims, 0xff, sizeof(claims));
    assert_int_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, token,
                                     strlen(token), CHAT_TEST_NOW, &claims),
                     CHAT_JWT_OK);
    assert_int_equal(claims.sub, 5);
    assert_int_equal(claims.iat, 0);
    assert_int_equal(claims.exp, CHAT_TEST_EXP);

    /* on failure claims are left alone */
    memset(&claims, 0xab, sizeof(claims));
    assert_int_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, token,
                                     strlen(token), CHAT_TEST_EXP, &claims),
                     CHAT_JWT_EXPIRED);
    assert_int_equal(claims.sub, 0xababababababababULL);
}


static void
chat_test_nul(void **state)
{
    char    token[CHAT_TEST_BUF];
    size_t  n, i;

    (void) state;

    n = strlen(CHAT_TEST_KAT);

    /* a NUL anywhere, the length counting it */
    for (i = 0; i <= n; i++) {
        memcpy(token, CHAT_TEST_KAT, i);
        token[i] = '\0';
        memcpy(token + i + 1, &CHAT_TEST_KAT[i], n - i);

        if (chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, token, n + 1,
                            CHAT_TEST_NOW, NULL)
            != CHAT_JWT_MALFORMED)
        {
            fail_msg("NUL at %zu not refused", i);
        }
    }

    /* a NUL replacing a character */
    strcpy(token, CHAT_TEST_KAT);
    token[50] = '\0';
    assert_int_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN, token,
                                     n, CHAT_TEST_NOW, NULL),
                     CHAT_JWT_MALFORMED);

    /* the length rules, not the NUL: a prefix is not the token */
    strcpy(token, CHAT_TEST_KAT);
    assert_int_not_equal(chat_jwt_verify(chat_test_key, CHAT_TEST_KEYLEN,
                                         token, n - 1, CHAT_TEST_NOW, NULL),
                         CHAT_JWT_OK);
}


static void
chat_test_rc_text(void **state)
{
    int          i, j;
    const char  *t[CHAT_JWT_BAD_CLAIMS + 1];

    (void) state;

    for (i = 0; i <= CHAT_JWT_BAD_CLAIMS; i++) {
        t[i] = chat_jwt_rc_text((chat_jwt_rc_e) i);
        assert_non_null(t[i]);
        assert_true(strlen(t[i]) > 0 && strlen(t[i]) < 40);

        for (j = 0; j < i; j++) {
            assert_string_not_equal(t[i], t[j]);
        }
    }

    assert_non_null(chat_jwt_rc_text((chat_jwt_rc_e) 1000));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(chat_test_round_trip),
        cmocka_unit_test(chat_test_jti),
        cmocka_unit_test(chat_test_sign_limits),
        cmocka_unit_test(chat_test_short_key),
        cmocka_unit_test(chat_test_known_answer),
        cmocka_unit_test(chat_test_tampered),
        cmocka_unit_test(chat_test_other_key),
        cmocka_unit_test(chat_test_alg),
        cmocka_unit_test(chat_test_header),
        cmocka_unit_test(chat_test_structure),
        cmocka_unit_test(chat_test_alphabet),
        cmocka_unit_test(chat_test_canonical),
        cmocka_unit_test(chat_test_oversize),
        cmocka_unit_test(chat_test_part_size),
        cmocka_unit_test(chat_test_payload_json),
        cmocka_unit_test(chat_test_sub),
        cmocka_unit_test(chat_test_times),
        cmocka_unit_test(chat_test_nul),
        cmocka_unit_test(chat_test_rc_text),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
