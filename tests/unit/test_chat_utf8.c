
/*
 * Unit tests for src/common/chat_utf8.c, against a reference decoder
 * written here the other way round (decode, then judge the code point).
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chat_test.h"
#include "chat_utf8.h"


#define CHAT_TEST_LEN(s)  (sizeof(s) - 1)

#define chat_test_utf8(s)                                                     \
    chat_utf8_valid((const unsigned char *) s, CHAT_TEST_LEN(s))


/*
 * A reference decoder written the other way round from the one under
 * test: decode first, then judge the code point and its length.
 * Returns the sequence length, or 0 when s does not start with a valid
 * sequence.
 */
static size_t
chat_test_ref_utf8_one(const unsigned char *s, size_t len)
{
    size_t    n, i;
    uint32_t  cp, min;

    if (s[0] < 0x80) {
        return 1;
    }

    if ((s[0] & 0xe0) == 0xc0) {
        n = 2;
        cp = s[0] & 0x1f;
        min = 0x80;

    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3;
        cp = s[0] & 0x0f;
        min = 0x800;

    } else if ((s[0] & 0xf8) == 0xf0) {
        n = 4;
        cp = s[0] & 0x07;
        min = 0x10000;

    } else {
        return 0;
    }

    if (len < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }

        cp = (cp << 6) | (s[i] & 0x3f);
    }

    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }

    return n;
}


static int
chat_test_ref_utf8(const unsigned char *s, size_t len)
{
    size_t  i, n;

    for (i = 0; i < len; i += n) {
        n = chat_test_ref_utf8_one(s + i, len - i);

        if (n == 0) {
            return -1;
        }
    }

    return 0;
}


/*
 * The strings the exhaustive tests walk: every one of 1 and 2 bytes, and
 * those of 3 bytes that start with a lead of 0xC0 or more.  *i is where
 * the walk is, from 0.  Writes the next string to s and returns its
 * length, or 0 at the end.
 */
static size_t
chat_test_next(size_t *i, unsigned char *s)
{
    size_t  k, len;

    if (*i == 0x10000) {
        *i = 0xc00000;
    }

    if (*i >= 0x1000000) {
        return 0;
    }

    len = (*i < 0x100) ? 1 : (*i < 0x10000) ? 2 : 3;

    for (k = 0; k < len; k++) {
        s[k] = (unsigned char) (*i >> (8 * (len - 1 - k)));
    }

    (*i)++;

    return len;
}


static void
chat_test_utf8_valid(void **state)
{
    (void) state;

    assert_int_equal(chat_utf8_valid(NULL, 0), 0);
    assert_int_equal(chat_test_utf8(""), 0);
    assert_int_equal(chat_test_utf8("plain ASCII \x01\x7f"), 0);
    assert_int_equal(chat_test_utf8("nul \0 inside"), 0);
    assert_int_equal(chat_test_utf8("\xc2\x80"), 0);               /* 80 */
    assert_int_equal(chat_test_utf8("\xc3\xa9t\xc3\xa9"), 0);      /* été */
    assert_int_equal(chat_test_utf8("\xdf\xbf"), 0);               /* 7FF */
    assert_int_equal(chat_test_utf8("\xe0\xa0\x80"), 0);           /* 800 */
    assert_int_equal(chat_test_utf8("\xe2\x82\xac"), 0);           /* euro */
    assert_int_equal(chat_test_utf8("\xed\x9f\xbf"), 0);           /* D7FF */
    assert_int_equal(chat_test_utf8("\xee\x80\x80"), 0);           /* E000 */
    assert_int_equal(chat_test_utf8("\xef\xbf\xbf"), 0);           /* FFFF */
    assert_int_equal(chat_test_utf8("\xf0\x90\x80\x80"), 0);       /* 10000 */
    assert_int_equal(chat_test_utf8("\xf0\x9f\x98\x80"), 0);       /* emoji */
    assert_int_equal(chat_test_utf8("\xf3\xbf\xbf\xbf"), 0);       /* FFFFF */
    assert_int_equal(chat_test_utf8("\xf4\x8f\xbf\xbf"), 0);       /* max */
    assert_int_equal(chat_test_utf8("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"),
                     0);
}


static void
chat_test_utf8_invalid(void **state)
{
    (void) state;

    /* overlong forms */
    assert_int_equal(chat_test_utf8("\xc0\x80"), -1);
    assert_int_equal(chat_test_utf8("\xc0\xaf"), -1);
    assert_int_equal(chat_test_utf8("\xc1\xbf"), -1);
    assert_int_equal(chat_test_utf8("\xe0\x80\x80"), -1);
    assert_int_equal(chat_test_utf8("\xe0\x80\xaf"), -1);
    assert_int_equal(chat_test_utf8("\xe0\x9f\xbf"), -1);
    assert_int_equal(chat_test_utf8("\xf0\x80\x80\x80"), -1);
    assert_int_equal(chat_test_utf8("\xf0\x80\x80\xaf"), -1);
    assert_int_equal(chat_test_utf8("\xf0\x8f\xbf\xbf"), -1);

    /* surrogates, alone and paired */
    assert_int_equal(chat_test_utf8("\xed\xa0\x80"), -1);
    assert_int_equal(chat_test_utf8("\xed\xaf\xbf"), -1);
    assert_int_equal(chat_test_utf8("\xed\xb0\x80"), -1);
    assert_int_equal(chat_test_utf8("\xed\xbf\xbf"), -1);
    assert_int_equal(chat_test_utf8("\xed\xa0\xbd\xed\xb8\x80"), -1);

    /* beyond U+10FFFF, and bytes that never occur */
    assert_int_equal(chat_test_utf8("\xf4\x90\x80\x80"), -1);
    assert_int_equal(chat_test_utf8("\xf4\xbf\xbf\xbf"), -1);
    assert_int_equal(chat_test_utf8("\xf5\x80\x80\x80"), -1);
    assert_int_equal(chat_test_utf8("\xf7\xbf\xbf\xbf"), -1);
    assert_int_equal(chat_test_utf8("\xf8\x88\x80\x80\x80"), -1);
    assert_int_equal(chat_test_utf8("\xfc\x84\x80\x80\x80\x80"), -1);
    assert_int_equal(chat_test_utf8("\xfe"), -1);
    assert_int_equal(chat_test_utf8("\xff"), -1);

    /* truncated: at the end, and followed by ASCII */
    assert_int_equal(chat_test_utf8("\xc3"), -1);
    assert_int_equal(chat_test_utf8("\xe2\x82"), -1);
    assert_int_equal(chat_test_utf8("\xe2"), -1);
    assert_int_equal(chat_test_utf8("\xf0\x9f\x98"), -1);
    assert_int_equal(chat_test_utf8("\xf0\x9f"), -1);
    assert_int_equal(chat_test_utf8("\xf0"), -1);
    assert_int_equal(chat_test_utf8("ab\xc3"), -1);
    assert_int_equal(chat_test_utf8("\xc3z"), -1);
    assert_int_equal(chat_test_utf8("\xe2\x82z"), -1);
    assert_int_equal(chat_test_utf8("\xf0\x9f\x98z"), -1);
    assert_int_equal(chat_test_utf8("\xe2\xc3\xa9"), -1);

    /* only len bytes count */
    assert_int_equal(chat_utf8_valid((const unsigned char *) "\xc3\xa9", 1),
                     -1);

    /* continuation bytes alone */
    assert_int_equal(chat_test_utf8("\x80"), -1);
    assert_int_equal(chat_test_utf8("\xbf"), -1);
    assert_int_equal(chat_test_utf8("a\x80z"), -1);
    assert_int_equal(chat_test_utf8("\xc3\xa9\xa9"), -1);
    assert_int_equal(chat_test_utf8("\xf0\x9f\x98\x80\x80"), -1);
}


static void
chat_test_utf8_exhaustive(void **state)
{
    unsigned                    a, b, c, d;
    unsigned char               s[4];
    static const unsigned char  tails[] = {
        0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc3,
        0xe2, 0xf0, 0xff
    };

    (void) state;

    /* every string of 1 to 3 bytes against the reference decoder */
    for (a = 0; a < 256; a++) {
        s[0] = a;
        assert_int_equal(chat_utf8_valid(s, 1), chat_test_ref_utf8(s, 1));

        for (b = 0; b < 256; b++) {
            s[1] = b;
            assert_int_equal(chat_utf8_valid(s, 2),
                             chat_test_ref_utf8(s, 2));

            for (c = 0; c < 256; c++) {
                s[2] = c;

                if (chat_utf8_valid(s, 3) != chat_test_ref_utf8(s, 3)) {
                    fail_msg("%02x %02x %02x", a, b, c);
                }
            }
        }
    }

    /* 4 bytes: every first two, a sample of the last two */
    for (a = 0xc0; a < 256; a++) {
        s[0] = a;

        for (b = 0; b < 256; b++) {
            s[1] = b;

            for (c = 0; c < sizeof(tails); c++) {
                s[2] = tails[c];

                for (d = 0; d < sizeof(tails); d++) {
                    s[3] = tails[d];

                    if (chat_utf8_valid(s, 4) != chat_test_ref_utf8(s, 4)) {
                        fail_msg("%02x %02x %02x %02x", a, b, s[2], s[3]);
                    }
                }
            }
        }
    }
}


/*
 * The incremental validator, split anywhere, and the whole-string one
 * agree with the reference decoder.
 */
static void
chat_test_utf8_step(void **state)
{
    int            ok;
    size_t         i, k, len;
    uint32_t       st;
    unsigned char  s[8];

    static const unsigned char  bytes[] = {
        0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1,
        0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3,
        0xf4, 0xf5, 0xf7, 0xf8, 0xfe, 0xff
    };

    (void) state;

    /* every 1- and 2-byte string, and 3-byte ones with a lead >= 0xC0 */
    i = 0;

    while ((len = chat_test_next(&i, s)) != 0) {
        ok = (chat_test_ref_utf8(s, len) == 0);
        assert_int_equal(chat_utf8_valid(s, len) == 0, ok);

        st = 0;
        assert_int_equal(chat_utf8_step(&st, s, len) == 0 && st == 0,
                         ok);

        if (len == 3) {
            st = 0;
            assert_int_equal(chat_utf8_step(&st, s, 1) == 0
                             && chat_utf8_step(&st, s + 1, 2) == 0
                             && st == 0, ok);
        }
    }

    /* random strings of interesting bytes, 8 bytes split at random */
    for (i = 0; i < 2000000; i++) {
        len = chat_test_rand() % 9;

        for (k = 0; k < len; k++) {
            s[k] = bytes[chat_test_rand() % sizeof(bytes)];
        }

        k = len ? chat_test_rand() % (len + 1) : 0;

        st = 0;
        ok = chat_utf8_step(&st, s, k) == 0
             && chat_utf8_step(&st, s + k, len - k) == 0 && st == 0;
        assert_int_equal(ok, chat_test_ref_utf8(s, len) == 0);
        assert_int_equal(chat_utf8_valid(s, len) == 0, ok);
    }

    /* the ASCII fast path next to multi-byte characters */
    st = 0;
    assert_int_equal(chat_utf8_step(&st, (const unsigned char *)
                                    "0123456789abcdef\xc3\xa9xyz", 21), 0);
    assert_int_equal(st, 0);
    assert_int_equal(chat_utf8_step(&st, (const unsigned char *)
                                    "0123456789abcdef\xe2\x82", 18), 0);
    assert_true(st != 0);
    assert_int_equal(chat_utf8_step(&st, (const unsigned char *)
                                    "0123456789", 10), -1);
}


/*
 * chat_utf8_step() fails exactly when no continuation of the bytes so
 * far can be valid: for every string of 1 or 2 bytes, and of 3 bytes
 * with a lead of at least 0xC0, the step passes exactly when some
 * completion of up to 3 bytes is valid by the reference decoder (80, 90
 * and A0 are enough to complete any valid prefix: they meet the lower
 * bound of every second-byte range of RFC 3629).
 */
static void
chat_test_utf8_prefix(void **state)
{
    int            can;
    size_t         i, k, len, more, n, c, d;
    uint32_t       st;
    unsigned char  s[8];

    static const unsigned char  cont[] = {
        0x80, 0x90, 0xa0
    };

    (void) state;

    i = 0;

    while ((len = chat_test_next(&i, s)) != 0) {
        can = 0;

        for (more = 0; more <= 3 && !can; more++) {
            n = 1;

            for (k = 0; k < more; k++) {
                n *= sizeof(cont);
            }

            for (c = 0; c < n && !can; c++) {
                d = c;

                for (k = 0; k < more; k++) {
                    s[len + k] = cont[d % sizeof(cont)];
                    d /= sizeof(cont);
                }

                can = (chat_test_ref_utf8(s, len + more) == 0);
            }
        }

        st = 0;

        if ((chat_utf8_step(&st, s, len) == 0) != can) {
            fail_msg("%zu bytes from %06zx: step %s", len, i - 1,
                     can ? "refused a valid prefix" : "passed a dead end");
        }
    }
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(chat_test_utf8_valid),
        cmocka_unit_test(chat_test_utf8_invalid),
        cmocka_unit_test(chat_test_utf8_exhaustive),
        cmocka_unit_test(chat_test_utf8_step),
        cmocka_unit_test(chat_test_utf8_prefix),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
