
/*
 * Unit tests for src/tools/bench_http.c: the push sink's request head
 * parser and notification body parser.
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
#include "bench_http.h"


static long
bench_test_head(const char *s, bench_req_t *r)
{
    return bench_req_head(s, strlen(s), r);
}


static void
test_req_head(void **state)
{
    long         rc;
    size_t       i, len;
    bench_req_t  r;
    const char  *post;

    (void) state;

    post = "POST /push HTTP/1.1\r\nHost: 127.0.0.1:18093\r\n"
           "content-type: application/json\r\nContent-Length:  123 \r\n"
           "Accept: */*\r\n\r\n{\"token\":";

    rc = bench_test_head(post, &r);
    assert_int_equal(rc, (long) (strstr(post, "\r\n\r\n") - post) + 4);
    assert_int_equal(r.method, BENCH_REQ_POST);
    assert_int_equal(r.path_len, 5);
    assert_memory_equal(r.path, "/push", 5);
    assert_int_equal(r.content_length, 123);
    assert_int_equal(r.keep_alive, 1);

    /* every prefix of the head is incomplete, never an error */
    len = (size_t) rc;

    for (i = 0; i < len; i++) {
        assert_int_equal(bench_req_head(post, i, &r), BENCH_REQ_AGAIN);
    }

    /* GET without a body; keep-alive by version and Connection */
    assert_true(bench_test_head("GET /stats HTTP/1.1\r\n\r\n", &r) > 0);
    assert_int_equal(r.method, BENCH_REQ_GET);
    assert_int_equal(r.content_length, 0);
    assert_int_equal(r.keep_alive, 1);

    assert_true(bench_test_head("GET / HTTP/1.1\r\nConnection: Upgrade, "
                                "CLOSE\r\n\r\n", &r) > 0);
    assert_int_equal(r.keep_alive, 0);

    assert_true(bench_test_head("GET / HTTP/1.0\r\n\r\n", &r) > 0);
    assert_int_equal(r.keep_alive, 0);

    assert_true(bench_test_head("GET / HTTP/1.0\r\nconnection: keep-alive"
                                "\r\n\r\n", &r) > 0);
    assert_int_equal(r.keep_alive, 1);

    assert_true(bench_test_head("PUT /x HTTP/1.1\r\n\r\n", &r) > 0);
    assert_int_equal(r.method, BENCH_REQ_OTHER);

    /* malformed heads */
    assert_int_equal(bench_test_head("\r\n\r\n", &r), BENCH_REQ_BAD);
    assert_int_equal(bench_test_head("BLAH\r\n\r\n", &r), BENCH_REQ_BAD);
    assert_int_equal(bench_test_head("post / HTTP/1.1\r\n\r\n", &r),
                     BENCH_REQ_BAD);
    assert_int_equal(bench_test_head("POST  HTTP/1.1\r\n\r\n", &r),
                     BENCH_REQ_BAD);
    assert_int_equal(bench_test_head("POST / HTTP/2.0\r\n\r\n", &r),
                     BENCH_REQ_BAD);
    assert_int_equal(bench_test_head("POST / HTTP/1.1 x\r\n\r\n", &r),
                     BENCH_REQ_BAD);
    assert_int_equal(bench_test_head("POST / HTTP/1.1\r\nNoColon\r\n\r\n",
                                     &r),
                     BENCH_REQ_BAD);
    assert_int_equal(bench_test_head("POST / HTTP/1.1\r\n: v\r\n\r\n", &r),
                     BENCH_REQ_BAD);
    assert_int_equal(bench_test_head("POST / HTTP/1.1\r\nA b: v\r\n\r\n",
                                     &r),
                     BENCH_REQ_BAD);
    assert_int_equal(bench_test_head("POST / HTTP/1.1\r\nA: \x01\r\n\r\n",
                                     &r),
                     BENCH_REQ_BAD);
    assert_int_equal(bench_test_head("POST / HTTP/1.1\r\nA: b\nC: d\r\n\r\n",
                                     &r),
                     BENCH_REQ_BAD);
    assert_int_equal(bench_test_head("POST / HTTP/1.1\r\nContent-Length: "
                                     "12a\r\n\r\n", &r),
                     BENCH_REQ_BAD);
    assert_int_equal(bench_test_head("POST / HTTP/1.1\r\nContent-Length: "
                                     "-1\r\n\r\n", &r),
                     BENCH_REQ_BAD);
    assert_int_equal(bench_test_head("POST / HTTP/1.1\r\nContent-Length:"
                                     "\r\n\r\n", &r),
                     BENCH_REQ_BAD);
    assert_int_equal(bench_test_head("POST / HTTP/1.1\r\nContent-Length: 1"
                                     "\r\nContent-Length: 1\r\n\r\n", &r),
                     BENCH_REQ_BAD);
    assert_int_equal(bench_test_head("POST / HTTP/1.1\r\nContent-Length: "
                                     "99999999999999999999\r\n\r\n", &r),
                     BENCH_REQ_BAD);

    /* chunked bodies are refused, oversized ones too */
    assert_int_equal(bench_test_head("POST / HTTP/1.1\r\nTransfer-Encoding:"
                                     " chunked\r\n\r\n", &r),
                     BENCH_REQ_NO_LENGTH);
    assert_int_equal(bench_test_head("POST / HTTP/1.1\r\nContent-Length: "
                                     "65537\r\n\r\n", &r),
                     BENCH_REQ_TOO_LARGE);
    assert_true(bench_test_head("POST / HTTP/1.1\r\nContent-Length: "
                                "65536\r\n\r\n", &r) > 0);
}


static void
test_req_head_long(void **state)
{
    char         *buf;
    bench_req_t   r;

    (void) state;

    /* no end of the head within the limit */
    buf = malloc(BENCH_REQ_HEAD_MAX + 16);
    assert_non_null(buf);
    memset(buf, 'A', BENCH_REQ_HEAD_MAX + 16);

    assert_int_equal(bench_req_head(buf, BENCH_REQ_HEAD_MAX - 1, &r),
                     BENCH_REQ_AGAIN);
    assert_int_equal(bench_req_head(buf, BENCH_REQ_HEAD_MAX + 16, &r),
                     BENCH_REQ_TOO_LARGE);

    free(buf);
}


/* random bytes and mutated heads: an answer in range, no overread (ASan) */
static void
test_req_head_random(void **state)
{
    int           k;
    long          rc;
    char         *buf;
    size_t        len, i, j;
    bench_req_t   r;
    const char   *seed;

    (void) state;

    seed = "POST /push HTTP/1.1\r\nContent-Length: 12\r\n"
           "Connection: keep-alive\r\n\r\n";
    chat_test_rng_state = 16;

    for (k = 0; k < 20000; k++) {
        len = strlen(seed);
        buf = malloc(len);
        assert_non_null(buf);
        memcpy(buf, seed, len);

        for (j = chat_test_rand() % 4; j > 0; j--) {
            i = chat_test_rand() % len;
            buf[i] = (char) chat_test_rand();
        }

        len = chat_test_rand() % (len + 1);

        rc = bench_req_head(buf, len, &r);
        assert_true(rc == BENCH_REQ_AGAIN || rc == BENCH_REQ_BAD
                    || rc == BENCH_REQ_NO_LENGTH
                    || rc == BENCH_REQ_TOO_LARGE
                    || (rc > 0 && (size_t) rc <= len));

        free(buf);
    }
}


static void
test_note_parse(void **state)
{
    const char    *b;
    bench_note_t   n;

    (void) state;

    b = "{\"token\":\"bench-5-a\",\"platform\":\"webhook\",\"user_id\":5,"
        "\"message_id\":\"01HX\",\"from\":4,\"to\":5,\"preview\":\"x\\\"y\","
        "\"count\":3,\"ts\":1796603473091}";

    assert_int_equal(bench_note_parse(b, strlen(b), &n), 0);
    assert_int_equal(n.token_len, 9);
    assert_memory_equal(n.token, "bench-5-a", 9);
    assert_int_equal(n.message_id_len, 4);
    assert_memory_equal(n.message_id, "01HX", 4);
    assert_int_equal(n.count, 3);
    assert_int_equal(n.ts, 1796603473091ULL);

    /* a group notification, members in any order */
    b = "{\"count\":1,\"group\":9,\"ts\":7,\"message_id\":\"m\","
        "\"token\":\"t\"}";
    assert_int_equal(bench_note_parse(b, strlen(b), &n), 0);
    assert_int_equal(n.ts, 7);

    /* what is not a notification */
    b = "{\"token\":\"t\",\"message_id\":\"m\",\"ts\":7}";
    assert_int_equal(bench_note_parse(b, strlen(b), &n), -1);
    b = "{\"token\":\"t\",\"message_id\":\"m\",\"ts\":7,\"count\":0}";
    assert_int_equal(bench_note_parse(b, strlen(b), &n), -1);
    b = "{\"token\":\"t\",\"message_id\":\"m\",\"ts\":\"7\",\"count\":1}";
    assert_int_equal(bench_note_parse(b, strlen(b), &n), -1);
    b = "{\"token\":\"t\",\"message_id\":\"m\",\"ts\":-7,\"count\":1}";
    assert_int_equal(bench_note_parse(b, strlen(b), &n), -1);
    b = "{\"token\":\"\",\"message_id\":\"m\",\"ts\":7,\"count\":1}";
    assert_int_equal(bench_note_parse(b, strlen(b), &n), -1);
    b = "{\"token\":1,\"message_id\":\"m\",\"ts\":7,\"count\":1}";
    assert_int_equal(bench_note_parse(b, strlen(b), &n), -1);
    b = "{\"token\":\"t\",\"message_id\":\"m\",\"ts\":7,\"count\":1";
    assert_int_equal(bench_note_parse(b, strlen(b), &n), -1);
    b = "{\"token\":\"t\",\"message_id\":\"m\",\"ts\":7,\"count\":1}x";
    assert_int_equal(bench_note_parse(b, strlen(b), &n), -1);
    b = "{\"token\":\"t\",\"message_id\":\"m\",\"ts\":7,\"count\":1,}";
    assert_int_equal(bench_note_parse(b, strlen(b), &n), -1);
    b = "{\"token\":\"t\",\"message_id\":\"m\",\"ts\":7,\"count\":1} \n";
    assert_int_equal(bench_note_parse(b, strlen(b), &n), 0);
    assert_int_equal(bench_note_parse("garbage", 7, &n), -1);
    assert_int_equal(bench_note_parse("", 0, &n), -1);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_req_head),
        cmocka_unit_test(test_req_head_long),
        cmocka_unit_test(test_req_head_random),
        cmocka_unit_test(test_note_parse),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
