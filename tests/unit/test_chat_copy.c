
/*
 * Unit tests for src/common/chat_copy.c (COPY text-format rows) and
 * src/common/chat_query.c (the query string of GET /v1/messages).
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chat_copy.h"
#include "chat_query.h"


#define CHAT_TEST_STR(s)  s, sizeof(s) - 1


static void
chat_test_copy_row(void **state)
{
    chat_copy_t  b;

    (void) state;

    chat_copy_init(&b);

    chat_copy_text(&b, CHAT_TEST_STR("d:1:2"));
    chat_copy_int(&b, INT64_MIN);
    chat_copy_int(&b, INT64_MAX);
    chat_copy_null(&b);
    chat_copy_bool(&b, 1);
    chat_copy_bool(&b, 0);
    chat_copy_text(&b, CHAT_TEST_STR("a\\b\tc\nd\re'f\"g;--\xc3\xa9"));
    chat_copy_text(&b, "", 0);
    chat_copy_end_row(&b);
    chat_copy_int(&b, 0);
    chat_copy_end_row(&b);

    assert_false(chat_copy_failed(&b));
    assert_int_equal(b.len, strlen("d:1:2\t-9223372036854775808\t"
                                   "9223372036854775807\t\\N\tt\tf\t"
                                   "a\\\\b\\tc\\nd\\re'f\"g;--\xc3\xa9\t\n"
                                   "0\n"));
    assert_memory_equal(b.data, "d:1:2\t-9223372036854775808\t"
                                "9223372036854775807\t\\N\tt\tf\t"
                                "a\\\\b\\tc\\nd\\re'f\"g;--\xc3\xa9\t\n"
                                "0\n", b.len);

    /* raw bytes are appended as they are, NUL and all */
    chat_copy_raw(&b, "\t\\\0x", 4);
    chat_copy_raw(&b, NULL, 0);
    assert_false(chat_copy_failed(&b));
    assert_memory_equal(b.data + b.len - 4, "\t\\\0x", 4);

    /* reset keeps small buffers, frees big ones */
    chat_copy_reset(&b, 1 << 20);
    assert_int_equal(b.len, 0);
    assert_non_null(b.data);
    chat_copy_reset(&b, 0);
    assert_null(b.data);

    chat_copy_free(&b);
}


static void
chat_test_copy_grow(void **state)
{
    size_t       i;
    chat_copy_t  b;
    char         big[10000];

    (void) state;

    memset(big, '\\', sizeof(big));
    chat_copy_init(&b);

    for (i = 0; i < 100; i++) {
        chat_copy_text(&b, big, sizeof(big));
        chat_copy_end_row(&b);
    }

    assert_false(chat_copy_failed(&b));
    assert_int_equal(b.len, 100 * (2 * sizeof(big) + 1));
    assert_true(b.cap >= b.len);

    for (i = 0; i < b.len; i++) {
        if (b.data[i] != ((i + 1) % 20001 == 0 ? '\n' : '\\')) {
            fail_msg("byte %zu is %d", i, b.data[i]);
        }
    }

    chat_copy_free(&b);
}


typedef struct {
    const char  *args;
    int          rc;
    uint64_t     with;
    uint64_t     group;
    uint64_t     before;
    unsigned     limit;
    const char  *err;       /* a part of the message */
} chat_test_query_t;


static const chat_test_query_t  chat_test_queries[] = {
    { "with=7", 0, 7, 0, 0, 50, NULL },
    { "group=3&before=20&limit=20", 0, 0, 3, 20, 20, NULL },
    { "limit=100&with=9223372036854775807&before=1", 0,
      9223372036854775807ULL, 0, 1, 100, NULL },
    { "access_token=abc&with=1&x&&y=&limit=1", 0, 1, 0, 0, 1, NULL },
    { "%77ith=%31%32", 0, 12, 0, 0, 50, NULL },
    { "with=12&", 0, 12, 0, 0, 50, NULL },
    { "", -1, 0, 0, 0, 0, "is required" },
    { "limit=5", -1, 0, 0, 0, 0, "is required" },
    { "with=1&group=2", -1, 0, 0, 0, 0, "not both" },
    { "with=1&with=1", -1, 0, 0, 0, 0, "\"with\" is given twice" },
    { "with=1&limit=2&limit=2", -1, 0, 0, 0, 0, "given twice" },
    { "with=", -1, 0, 0, 0, 0, "\"with\" must be a user id" },
    { "with", -1, 0, 0, 0, 0, "\"with\" must be a user id" },
    { "with=0", -1, 0, 0, 0, 0, "\"with\" must be a user id" },
    { "with=-1", -1, 0, 0, 0, 0, "\"with\" must be a user id" },
    { "with=01", -1, 0, 0, 0, 0, "\"with\" must be a user id" },
    { "with=1.5", -1, 0, 0, 0, 0, "\"with\" must be a user id" },
    { "with=abc", -1, 0, 0, 0, 0, "\"with\" must be a user id" },
    { "with=9223372036854775808", -1, 0, 0, 0, 0, "must be a user id" },
    { "with=99999999999999999999999", -1, 0, 0, 0, 0, "must be a user id" },
    { "with=1%27%3B%20DROP%20TABLE%20messages%3B--", -1, 0, 0, 0, 0,
      "must be a user id" },
    { "with=1' OR '1'='1", -1, 0, 0, 0, 0, "must be a user id" },
    { "with=%3", -1, 0, 0, 0, 0, "must be a user id" },
    { "with=%zz", -1, 0, 0, 0, 0, "must be a user id" },
    { "with=+1", -1, 0, 0, 0, 0, "must be a user id" },
    { "group=x", -1, 0, 0, 0, 0, "\"group\" must be a group id" },
    { "with=1&before=0", -1, 0, 0, 0, 0, "\"before\" must be a seq" },
    { "with=1&before=", -1, 0, 0, 0, 0, "\"before\" must be a seq" },
    { "with=1&limit=0", -1, 0, 0, 0, 0, "\"limit\" must be 1 to 100" },
    { "with=1&limit=101", -1, 0, 0, 0, 0, "\"limit\" must be 1 to 100" },
    { "with=1&limit=-5", -1, 0, 0, 0, 0, "\"limit\" must be 1 to 100" },
    { "with=1&limit=1e2", -1, 0, 0, 0, 0, "\"limit\" must be 1 to 100" },
};


static void
chat_test_query(void **state)
{
    int                       rc;
    size_t                    i;
    const char               *err;
    chat_history_query_t      q;
    const chat_test_query_t  *t;

    (void) state;

    for (i = 0; i < sizeof(chat_test_queries) / sizeof(chat_test_queries[0]);
         i++)
    {
        t = &chat_test_queries[i];
        err = "";
        rc = chat_history_query_parse(t->args, strlen(t->args), &q, &err);

        if (rc != t->rc) {
            fail_msg("\"%s\": rc %d (%s)", t->args, rc, err);
        }

        if (rc == 0) {
            if (q.with != t->with || q.group != t->group
                || q.before != t->before || q.limit != t->limit)
            {
                fail_msg("\"%s\": with %llu group %llu before %llu limit %u",
                         t->args, (unsigned long long) q.with,
                         (unsigned long long) q.group,
                         (unsigned long long) q.before, q.limit);
            }

        } else if (strstr(err, t->err) == NULL) {
            fail_msg("\"%s\": \"%s\", want \"%s\"", t->args, err, t->err);
        }
    }

    /* no query string at all */
    assert_int_equal(chat_history_query_parse(NULL, 0, &q, &err), -1);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(chat_test_copy_row),
        cmocka_unit_test(chat_test_copy_grow),
        cmocka_unit_test(chat_test_query),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
