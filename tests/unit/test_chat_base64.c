
/*
 * Unit tests for src/common/chat_base64.c: RFC 4648's vectors, and every
 * length against OpenSSL's encoder and back through the decoder.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "chat_test.h"
#include "chat_base64.h"


#define CHAT_TEST_LEN(s)  (sizeof(s) - 1)


/* in (a string) encoded both ways: the counts and the texts */
static void
chat_test_vector(const char *in, const char *b64, const char *url)
{
    char    out[64];
    size_t  n, len;

    len = strlen(in);

    memset(out, 'x', sizeof(out));
    n = chat_base64_encode(out, (const unsigned char *) in, len);
    assert_int_equal(n, strlen(b64));
    assert_int_equal(n, chat_base64_len(len));
    assert_memory_equal(out, b64, n);
    assert_int_equal(out[n], 'x');            /* no NUL written */

    memset(out, 'x', sizeof(out));
    n = chat_base64url_encode(out, (const unsigned char *) in, len);
    assert_int_equal(n, strlen(url));
    assert_int_equal(n, chat_base64url_len(len));
    assert_memory_equal(out, url, n);
    assert_int_equal(out[n], 'x');
}


static void
chat_test_base64(void **state)
{
    (void) state;

    /* RFC 4648 section 10 */
    chat_test_vector("", "", "");
    chat_test_vector("f", "Zg==", "Zg");
    chat_test_vector("fo", "Zm8=", "Zm8");
    chat_test_vector("foo", "Zm9v", "Zm9v");
    chat_test_vector("foob", "Zm9vYg==", "Zm9vYg");
    chat_test_vector("fooba", "Zm9vYmE=", "Zm9vYmE");
    chat_test_vector("foobar", "Zm9vYmFy", "Zm9vYmFy");

    /* the two characters where the alphabets differ */
    chat_test_vector("\xfb\xff\xbf", "+/+/", "-_-_");
    chat_test_vector("\xfb\xff", "+/8=", "-_8");
}


static void
chat_test_base64_values(void **state)
{
    int          c, v, u;
    const char  *std, *url;

    (void) state;

    std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    for (c = 0; c < 256; c++) {
        v = chat_base64_value((unsigned char) c);
        u = chat_base64url_value((unsigned char) c);

        if (c != 0 && strchr(std, c) != NULL) {
            assert_int_equal(v, strchr(std, c) - std);

        } else {
            assert_int_equal(v, -1);
        }

        if (c != 0 && strchr(url, c) != NULL) {
            assert_int_equal(u, strchr(url, c) - url);

        } else {
            assert_int_equal(u, -1);
        }
    }
}


/* every length up to 300 bytes: OpenSSL agrees, and decoding undoes */
static void
chat_test_base64_lengths(void **state)
{
    int            ref;
    char           out[512], ref64[512];
    size_t         len, i, n;
    unsigned char  data[300], back[300];

    (void) state;

    for (i = 0; i < sizeof(data); i++) {
        data[i] = (unsigned char) chat_test_rand();
    }

    for (len = 0; len <= sizeof(data); len++) {
        n = chat_base64_encode(out, data, len);
        ref = EVP_EncodeBlock((unsigned char *) ref64, data, (int) len);
        assert_int_equal(n, (size_t) ref);
        assert_memory_equal(out, ref64, n);

        n = chat_base64url_encode(out, data, len);
        assert_int_equal(n, chat_base64url_len(len));

        /* base64url is base64 with two characters swapped, unpadded */
        for (i = 0; i < n; i++) {
            assert_int_equal(out[i], ref64[i] == '+' ? '-'
                                     : ref64[i] == '/' ? '_' : ref64[i]);
        }

        for (i = n; i < (size_t) ref; i++) {
            assert_int_equal(ref64[i], '=');
        }

        assert_int_equal(chat_base64url_check(out, n), 0);
        memset(back, 0, sizeof(back));
        assert_int_equal(chat_base64url_decode(out, n, back), len);
        assert_memory_equal(back, data, len);
    }
}


static void
chat_test_base64url_check(void **state)
{
    char           s[8];
    size_t         i;
    const char    *url;
    unsigned char  out[8];

    (void) state;

    url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    assert_int_equal(chat_base64url_check("", 0), 0);
    assert_int_equal(chat_base64url_check("Zm9vYmFy", 8), 0);
    assert_int_equal(chat_base64url_check("-_-_", 4), 0);

    /* 4n + 1 characters cannot come from whole bytes */
    assert_int_equal(chat_base64url_check("Z", 1), -1);
    assert_int_equal(chat_base64url_check("Zm9vY", 5), -1);

    /* padding and the other alphabet are not base64url */
    assert_int_equal(chat_base64url_check("Zg==", 4), -1);
    assert_int_equal(chat_base64url_check("Zg=", 3), -1);
    assert_int_equal(chat_base64url_check("+/+/", 4), -1);
    assert_int_equal(chat_base64url_check("Zm 9", 4), -1);
    assert_int_equal(chat_base64url_check("Zm\09", 4), -1);

    /* the unused low bits of the last character must be zero */
    assert_int_equal(chat_base64url_check("Zg", 2), 0);
    assert_int_equal(chat_base64url_check("Zm8", 3), 0);

    for (i = 0; i < 64; i++) {
        s[0] = 'Z';
        s[1] = 'm';
        s[2] = url[i];
        assert_int_equal(chat_base64url_check(s + 1, 2),
                         (i & 0x0f) ? -1 : 0);
        assert_int_equal(chat_base64url_check(s, 3), (i & 0x03) ? -1 : 0);
    }

    assert_int_equal(chat_base64url_check("Zh", 2), -1);
    assert_int_equal(chat_base64url_check("Zm9", 3), -1);

    /* "xA" and "xB" would decode alike: only the first is taken */
    assert_int_equal(chat_base64url_decode("Zg", 2, out), 1);
    assert_int_equal(out[0], 'f');
    assert_int_equal(chat_base64url_decode("Zm8", 3, out), 2);
    assert_memory_equal(out, "fo", 2);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(chat_test_base64),
        cmocka_unit_test(chat_test_base64_values),
        cmocka_unit_test(chat_test_base64_lengths),
        cmocka_unit_test(chat_test_base64url_check),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
