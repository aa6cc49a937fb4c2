
/*
 * ngx_chat: unit tests for signed media URLs (src/common/chat_media_url.c).
 * The known answers come from `openssl dgst -sha256 -hmac`, not from the
 * code under test.
 */


#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "chat_test.h"
#include "chat_media_url.h"


static const unsigned char  key[] = "0123456789abcdef0123456789abcdef";
#define KEYLEN  32
#define ID      "01HZX3Q7RS8V0M2K4N6P8R0T2W"
#define IDLEN   (sizeof(ID) - 1)

/* printf '01HZX3Q7RS8V0M2K4N6P8R0T2W\n1800000000' | openssl dgst -sha256
 *     -hmac 0123456789abcdef0123456789abcdef */
#define SIG     "9ed3f75de4eed415de44122e88e8e9c7"                          \
                "22fc3e53a6e06ef38ced004666655c85"


static chat_media_url_rc_e
verify(const char *id, const char *exp, const char *sig, int64_t now)
{
    return chat_media_url_verify(key, KEYLEN, id, strlen(id), exp,
                                 strlen(exp), sig, strlen(sig), now);
}


static void
chat_test_known_answer(void **state)
{
    char  sig[CHAT_MEDIA_URL_SIG_LEN + 1];

    (void) state;

    assert_int_equal(chat_media_url_sign(key, KEYLEN, ID, IDLEN, 1800000000,
                                         sig), 0);
    assert_string_equal(sig, SIG);
    assert_int_equal(verify(ID, "1800000000", SIG, 1700000000),
                     CHAT_MEDIA_URL_OK);
}


static void
chat_test_upper_case_hex(void **state)
{
    char    up[CHAT_MEDIA_URL_SIG_LEN + 1];
    size_t  i;

    (void) state;

    for (i = 0; i < CHAT_MEDIA_URL_SIG_LEN; i++) {
        up[i] = (SIG[i] >= 'a' && SIG[i] <= 'f') ? SIG[i] - 32 : SIG[i];
    }

    up[CHAT_MEDIA_URL_SIG_LEN] = '\0';

    assert_int_equal(verify(ID, "1800000000", up, 1700000000),
                     CHAT_MEDIA_URL_OK);
}


static void
chat_test_expiry(void **state)
{
    (void) state;

    assert_int_equal(verify(ID, "1800000000", SIG, 1799999999),
                     CHAT_MEDIA_URL_OK);
    assert_int_equal(verify(ID, "1800000000", SIG, 1800000000),
                     CHAT_MEDIA_URL_EXPIRED);
    assert_int_equal(verify(ID, "1800000000", SIG, 1900000000),
                     CHAT_MEDIA_URL_EXPIRED);
}


static void
chat_test_altered(void **state)
{
    char    sig[CHAT_MEDIA_URL_SIG_LEN + 1];
    size_t  i;

    (void) state;

    /* a later expiry with the old signature */
    assert_int_equal(verify(ID, "1800000001", SIG, 1700000000),
                     CHAT_MEDIA_URL_BAD_SIGNATURE);

    /* another id */
    assert_int_equal(verify("01HZX3Q7RS8V0M2K4N6P8R0T2X", "1800000000", SIG,
                            1700000000),
                     CHAT_MEDIA_URL_BAD_SIGNATURE);

    /* every single hex digit changed */
    for (i = 0; i < CHAT_MEDIA_URL_SIG_LEN; i++) {
        memcpy(sig, SIG, sizeof(sig));
        sig[i] = sig[i] == '0' ? '1' : '0';
        assert_int_equal(verify(ID, "1800000000", sig, 1700000000),
                         CHAT_MEDIA_URL_BAD_SIGNATURE);
    }

    /* another key */
    assert_int_equal(chat_media_url_verify((const unsigned char *)
                                           "1123456789abcdef0123456789abcdef",
                                           KEYLEN, ID, IDLEN, "1800000000",
                                           10, SIG, 64, 1700000000),
                     CHAT_MEDIA_URL_BAD_SIGNATURE);

    /* an expired URL with a bad signature says "bad signature" */
    assert_int_equal(verify(ID, "1800000001", SIG, 1900000000),
                     CHAT_MEDIA_URL_BAD_SIGNATURE);
}


static void
chat_test_malformed(void **state)
{
    (void) state;

    assert_int_equal(verify(ID, "", SIG, 1), CHAT_MEDIA_URL_MALFORMED);
    assert_int_equal(verify(ID, "01800000000", SIG, 1),
                     CHAT_MEDIA_URL_MALFORMED);
    assert_int_equal(verify(ID, "-1800000000", SIG, 1),
                     CHAT_MEDIA_URL_MALFORMED);
    assert_int_equal(verify(ID, "+1800000000", SIG, 1),
                     CHAT_MEDIA_URL_MALFORMED);
    assert_int_equal(verify(ID, "18000000 0", SIG, 1),
                     CHAT_MEDIA_URL_MALFORMED);
    assert_int_equal(verify(ID, "99999999999999999999", SIG, 1),
                     CHAT_MEDIA_URL_MALFORMED);
    assert_int_equal(verify(ID, "9223372036854775808", SIG, 1),
                     CHAT_MEDIA_URL_MALFORMED);
    assert_int_equal(verify(ID, "0", SIG, 1), CHAT_MEDIA_URL_MALFORMED);
    assert_int_equal(verify(ID, "1800000000", "", 1),
                     CHAT_MEDIA_URL_MALFORMED);
    assert_int_equal(verify(ID, "1800000000", SIG "0", 1),
                     CHAT_MEDIA_URL_MALFORMED);
    assert_int_equal(verify(ID, "1800000000",
                            "zed3f75de4eed415de44122e88e8e9c722fc3e53a6e06ef3"
                            "8ced004666655c85", 1),
                     CHAT_MEDIA_URL_MALFORMED);
    assert_int_equal(chat_media_url_verify(key, KEYLEN, ID, IDLEN, NULL, 0,
                                           SIG, 64, 1),
                     CHAT_MEDIA_URL_MALFORMED);
    assert_int_equal(chat_media_url_verify(key, KEYLEN, ID, IDLEN,
                                           "1800000000", 10, NULL, 0, 1),
                     CHAT_MEDIA_URL_MALFORMED);

    /* the largest exp there is: well formed, signature checked */
    assert_int_equal(verify(ID, "9223372036854775807", SIG, 1),
                     CHAT_MEDIA_URL_BAD_SIGNATURE);
}


static void
chat_test_limits(void **state)
{
    char  id[CHAT_MEDIA_ID_MAX + 2];
    char  sig[CHAT_MEDIA_URL_SIG_LEN + 1];

    (void) state;

    memset(id, 'a', sizeof(id));

    assert_int_equal(chat_media_url_sign(key, KEYLEN, id, CHAT_MEDIA_ID_MAX,
                                         1, sig), 0);
    assert_int_equal(chat_media_url_verify(key, KEYLEN, id,
                                           CHAT_MEDIA_ID_MAX, "1", 1, sig,
                                           64, 0),
                     CHAT_MEDIA_URL_OK);
    assert_int_equal(chat_media_url_sign(key, KEYLEN, id,
                                         CHAT_MEDIA_ID_MAX + 1, 1, sig), -1);
    assert_int_equal(chat_media_url_sign(key, KEYLEN, id, 0, 1, sig), -1);
    assert_int_equal(chat_media_url_sign(key, KEYLEN, ID, IDLEN, 0, sig), -1);
    assert_int_equal(chat_media_url_sign(key, KEYLEN, ID, IDLEN, -5, sig),
                     -1);
    assert_int_equal(chat_media_url_sign(key, KEYLEN - 1, ID, IDLEN, 1, sig),
                     -1);
    assert_int_equal(chat_media_url_sign(NULL, 0, ID, IDLEN, 1, sig), -1);
    assert_int_equal(chat_media_url_verify(key, KEYLEN - 1, ID, IDLEN,
                                           "1800000000", 10, SIG, 64, 1),
                     CHAT_MEDIA_URL_MALFORMED);
    assert_int_equal(chat_media_url_verify(key, KEYLEN, id,
                                           CHAT_MEDIA_ID_MAX + 1,
                                           "1800000000", 10, SIG, 64, 1),
                     CHAT_MEDIA_URL_MALFORMED);
}


static void
chat_test_derived_key(void **state)
{
    size_t         i;
    char           hex[65];
    unsigned char  out[32];

    static const char  digits[] = "0123456789abcdef";

    (void) state;

    /* printf 'ngx_chat media URL key v1' | openssl dgst -sha256
     *     -hmac 0123456789abcdef0123456789abcdef */
    assert_int_equal(chat_media_url_key(key, KEYLEN, out), 0);

    for (i = 0; i < 32; i++) {
        hex[2 * i] = digits[out[i] >> 4];
        hex[2 * i + 1] = digits[out[i] & 0x0f];
    }

    hex[64] = '\0';
    assert_string_equal(hex, "25382a063f5ac9edf49c4d2d6099847d"
                             "78ace702d3587e0301ed7945c63955fb");
    assert_memory_not_equal(out, key, 32);
    assert_int_equal(chat_media_url_key(key, KEYLEN - 1, out), -1);
    assert_int_equal(chat_media_url_key(NULL, 0, out), -1);
}


#define URL  ",\"url\":\"/v1/media/" ID "?exp=1800000000&sig=" SIG "\""


static long
insert(const char *text, char *out, size_t cap)
{
    return chat_media_url_insert(key, KEYLEN, 1800000000, text, strlen(text),
                                 out, cap);
}


static void
chat_test_insert(void **state)
{
    long         n;
    char         out[4096];
    const char  *in, *want;

    (void) state;

    /* a frame with media: the URL right after it */
    in = "{\"type\":\"message\",\"id\":\"x\",\"media\":\"" ID "\",\"ts\":1}";
    want = "{\"type\":\"message\",\"id\":\"x\",\"media\":\"" ID "\"" URL
           ",\"ts\":1}";
    assert_int_equal(chat_media_url_count(in, strlen(in)), 1);
    n = insert(in, out, sizeof(out));
    assert_int_equal(n, (long) strlen(want));
    assert_memory_equal(out, want, n);

    /* exactly the room it needs, and one byte less */
    assert_int_equal(insert(in, out, strlen(want)), (long) strlen(want));
    assert_int_equal(insert(in, out, strlen(want) - 1), -1);

    /* two messages of a history page: two URLs */
    in = "[{\"media\":\"" ID "\"},{\"body\":\"b\"},{\"media\":\"" ID "\"}]";
    want = "[{\"media\":\"" ID "\"" URL "},{\"body\":\"b\"},{\"media\":\""
           ID "\"" URL "}]";
    assert_int_equal(chat_media_url_count(in, strlen(in)), 2);
    n = insert(in, out, sizeof(out));
    assert_int_equal(n, (long) strlen(want));
    assert_memory_equal(out, want, n);
}


static void
chat_test_insert_untouched(void **state)
{
    long         n;
    size_t       i;
    char         out[4096], big[600];
    const char  *in;

    static const char  *same[] = {
        "{\"type\":\"message\",\"body\":\"hi\"}",
        /* a body that says "media":"<id>": escaped, so no member */
        "{\"body\":\"\\\"media\\\":\\\"" ID "\\\"\"}",
        /* values that are no media id */
        "{\"media\":\"a b\"}",
        "{\"media\":\"\"}",
        "{\"media\":\"abc",
        "{\"media\":\"ab\\u0041\"}",
        "{\"media\":12}",
        "\"media\":\"",
        "",
    };

    (void) state;

    for (i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
        in = same[i];
        assert_int_equal(chat_media_url_count(in, strlen(in)), 0);
        n = insert(in, out, sizeof(out));
        assert_int_equal(n, (long) strlen(in));
        assert_memory_equal(out, in, n);
    }

    /* an id of 256 bytes is none */
    memcpy(big, "{\"media\":\"", 10);
    memset(big + 10, 'a', 256);
    memcpy(big + 266, "\"}", 3);
    assert_int_equal(chat_media_url_count(big, strlen(big)), 0);
    assert_int_equal(insert(big, out, sizeof(out)), (long) strlen(big));

    /* of 255 it is one */
    memcpy(big + 265, "\"}", 3);
    assert_int_equal(chat_media_url_count(big, strlen(big)), 1);
    assert_true(insert(big, out, sizeof(out)) > (long) strlen(big));

    /* a key too short signs nothing */
    in = "{\"media\":\"" ID "\"}";
    assert_int_equal(chat_media_url_insert(key, KEYLEN - 1, 1800000000, in,
                                           strlen(in), out, sizeof(out)),
                     -1);
}


static void
chat_test_rc_text(void **state)
{
    (void) state;

    assert_string_equal(chat_media_url_strerror(CHAT_MEDIA_URL_OK), "ok");
    assert_string_equal(chat_media_url_strerror(CHAT_MEDIA_URL_EXPIRED),
                        "expired");
    assert_string_equal(chat_media_url_strerror(CHAT_MEDIA_URL_BAD_SIGNATURE),
                        "bad signature");
    assert_string_equal(chat_media_url_strerror(CHAT_MEDIA_URL_MALFORMED),
                        "malformed exp or sig");
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chat_test_known_answer),
        cmocka_unit_test(chat_test_upper_case_hex),
        cmocka_unit_test(chat_test_expiry),
        cmocka_unit_test(chat_test_altered),
        cmocka_unit_test(chat_test_malformed),
        cmocka_unit_test(chat_test_limits),
        cmocka_unit_test(chat_test_derived_key),
        cmocka_unit_test(chat_test_insert),
        cmocka_unit_test(chat_test_insert_untouched),
        cmocka_unit_test(chat_test_rc_text),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
