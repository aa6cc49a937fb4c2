
/*
 * ngx_chat: unit tests for the query string of GET /v1/search
 * (src/common/chat_search_query.c).
 */


#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "chat_test.h"
#include "chat_base64.h"
#include "chat_search_query.h"


#define TOK1  "abcdefghijklmnop_-12"
#define TOK2  "ABCDEFGHIJKLMNOP3456"


static int
parse(const char *args, chat_search_query_t *q, const char **err)
{
    *err = NULL;
    return chat_search_query_parse(args, strlen(args), q, err);
}


static void
chat_test_words(void **state)
{
    const char           *err;
    chat_search_query_t   q;

    (void) state;

    assert_int_equal(parse("q=hello+w%C3%B6rld&limit=7&access_token=x", &q,
                           &err), 0);
    assert_string_equal(q.q, "hello w\xc3\xb6rld");
    assert_int_equal(q.q_len, 12);
    assert_int_equal(q.ntokens, 0);
    assert_int_equal(q.limit, 7);
    assert_int_equal(q.has_cursor, 0);

    assert_int_equal(parse("q=x", &q, &err), 0);
    assert_int_equal(q.limit, CHAT_SEARCH_LIMIT_DEFAULT);

    /* beyond ASCII counts as a word */
    assert_int_equal(parse("q=%E2%82%AC", &q, &err), 0);
}


static void
chat_test_tokens(void **state)
{
    const char           *err;
    chat_search_query_t   q;

    (void) state;

    assert_int_equal(parse("tokens=" TOK1 "," TOK2, &q, &err), 0);
    assert_string_equal(q.tokens, "{" TOK1 "," TOK2 "}");
    assert_int_equal(q.ntokens, 2);
    assert_int_equal(q.q_len, 0);

    assert_int_equal(parse("tokens=" TOK1 "%2C" TOK2, &q, &err), 0);
    assert_int_equal(q.ntokens, 2);
}


static void
chat_test_cursor(void **state)
{
    char                  enc[128], args[160];
    const char           *err, *raw = "0.0607927|1796605012246|d:1:2|17";
    chat_search_query_t   q;

    (void) state;

    enc[chat_base64url_encode(enc, (const unsigned char *) raw,
                              strlen(raw))] = '\0';
    snprintf(args, sizeof(args), "q=x&before=%s", enc);

    assert_int_equal(parse(args, &q, &err), 0);
    assert_int_equal(q.has_cursor, 1);
    assert_string_equal(q.rank, "0.0607927");
    assert_string_equal(q.ts, "1796605012246");
    assert_string_equal(q.conv, "d:1:2");
    assert_string_equal(q.seq, "17");
}


static void
chat_test_refused(void **state)
{
    char                  enc[128], args[4096];
    size_t                i;
    const char           *err;
    chat_search_query_t   q;

    static const char    *bad[] = {
        "", "limit=5", "q=x&tokens=" TOK1, "q=", "q=%20%2C%21%3F",
        "q=x&q=y", "q=%ff%fe", "q=a%00b", "q=%zz", "tokens=short",
        "tokens=" TOK1 ",", "tokens=," TOK1, "tokens=" TOK1 "%24",
        "tokens=" TOK1 "x" TOK2 TOK2 TOK2 TOK2,
        "q=x&limit=0", "q=x&limit=51", "q=x&limit=-1", "q=x&limit=",
        "q=x&before=", "q=x&before=!!", "q=x&before=QUJD",
        NULL
    };

    static const char    *cursors[] = {
        "0.5|12|d:1:2",                 /* three parts */
        "0.5|12|d:1:2|3|4",             /* five */
        "-1|12|d:1:2|3",                /* a negative rank */
        "nan|12|d:1:2|3",
        "0.5|0|d:1:2|3",                /* ts 0 */
        "0.5|12|x:1:2|3",
        "0.5|12|d:12|3",                /* one id */
        "0.5|12|g:1:2|3",               /* a group with two */
        "0.5|12|d:1:2|0",
        "0.5|12|d:1:2|3a",
        NULL
    };

    (void) state;

    for (i = 0; bad[i]; i++) {
        assert_int_equal(parse(bad[i], &q, &err), -1);
        assert_non_null(err);
    }

    for (i = 0; cursors[i]; i++) {
        enc[chat_base64url_encode(enc, (const unsigned char *) cursors[i],
                                  strlen(cursors[i]))] = '\0';
        snprintf(args, sizeof(args), "q=x&before=%s", enc);
        assert_int_equal(parse(args, &q, &err), -1);
        assert_string_equal(err, "\"before\" is not a cursor of a search");
    }

    /* 257 bytes of query; 17 tokens */
    memset(args, 'x', sizeof(args));
    memcpy(args, "q=", 2);
    args[2 + 257] = '\0';
    assert_int_equal(parse(args, &q, &err), -1);
    args[2 + 256] = '\0';
    assert_int_equal(parse(args, &q, &err), 0);

    strcpy(args, "tokens=");
    for (i = 0; i < 17; i++) {
        strcat(args, i ? "," TOK1 : TOK1);
    }
    assert_int_equal(parse(args, &q, &err), -1);
    args[strlen(args) - strlen("," TOK1)] = '\0';
    assert_int_equal(parse(args, &q, &err), 0);
    assert_int_equal(q.ntokens, 16);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chat_test_words),
        cmocka_unit_test(chat_test_tokens),
        cmocka_unit_test(chat_test_cursor),
        cmocka_unit_test(chat_test_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
