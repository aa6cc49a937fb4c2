
/*
 * Unit tests for src/tools/bench_proto.c: the load generator's JSON
 * scanner, message stamps, handshake answer parser and backoff.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "bench_proto.h"


static int
bench_test_field(const char *json, const char *key, const char *want)
{
    int          rc;
    size_t       vlen;
    const char  *val;

    rc = bench_json_field(json, strlen(json), key, &val, &vlen);

    if (rc > 0 && want != NULL) {
        assert_int_equal(vlen, strlen(want));
        assert_memory_equal(val, want, vlen);
    }

    return rc;
}


static void
test_json_field(void **state)
{
    const char  *ack, *msg;

    (void) state;

    ack = "{\"type\":\"ack\",\"client_id\":\"b1.2.3.4\",\"id\":\"01M8\","
          "\"seq\":17,\"ts\":1795884550708}";

    assert_int_equal(bench_test_field(ack, "type", "ack"), BENCH_JSON_STRING);
    assert_int_equal(bench_test_field(ack, "client_id", "b1.2.3.4"),
                     BENCH_JSON_STRING);
    assert_int_equal(bench_test_field(ack, "seq", "17"), BENCH_JSON_SCALAR);
    assert_int_equal(bench_test_field(ack, "ts", "1795884550708"),
                     BENCH_JSON_SCALAR);
    assert_int_equal(bench_test_field(ack, "body", NULL), BENCH_JSON_NONE);

    /* keys inside strings or nested values are not members */
    msg = " { \"type\" : \"message\" , \"meta\": {\"body\":\"no\", \"a\":[1,"
          "\"}\"]}, \"note\":\"\\\"body\\\": \\\"no\\\"\", \"body\" :"
          " \"b1.0.5.99.xx\" , \"e2e\":false }";

    assert_int_equal(bench_test_field(msg, "type", "message"),
                     BENCH_JSON_STRING);
    assert_int_equal(bench_test_field(msg, "body", "b1.0.5.99.xx"),
                     BENCH_JSON_STRING);
    assert_int_equal(bench_test_field(msg, "meta",
                         "{\"body\":\"no\", \"a\":[1,\"}\"]}"),
                     BENCH_JSON_NESTED);
    assert_int_equal(bench_test_field(msg, "e2e", "false"),
                     BENCH_JSON_SCALAR);
    assert_int_equal(bench_test_field(msg, "a", NULL), BENCH_JSON_NONE);

    /* escapes are left as they are */
    assert_int_equal(bench_test_field("{\"k\":\"a\\\"b\"}", "k", "a\\\"b"),
                     BENCH_JSON_STRING);
    assert_int_equal(bench_test_field("{}", "k", NULL), BENCH_JSON_NONE);
    assert_int_equal(bench_test_field("{\"k\":\"\"}", "k", ""),
                     BENCH_JSON_STRING);

    /* what it cannot walk */
    assert_int_equal(bench_test_field("", "k", NULL), -1);
    assert_int_equal(bench_test_field("[1]", "k", NULL), -1);
    assert_int_equal(bench_test_field("{\"k\"", "k", NULL), -1);
    assert_int_equal(bench_test_field("{\"k\":\"abc", "k", NULL), -1);
    assert_int_equal(bench_test_field("{\"x\":1", "k", NULL), -1);
    assert_int_equal(bench_test_field("{\"x\":{\"y\":1}", "k", NULL), -1);
    assert_int_equal(bench_test_field("{\"x\" 1}", "k", NULL), -1);
    assert_int_equal(bench_test_field("{\"x\":1 \"k\":2}", "k", NULL), -1);
    assert_int_equal(bench_test_field("{\"x\":,\"k\":2}", "k", NULL), -1);
    assert_int_equal(bench_test_field("{x:1}", "k", NULL), -1);
}


static void
test_parse_u64(void **state)
{
    uint64_t  v;

    (void) state;

    assert_int_equal(bench_parse_u64("0", 1, &v), 0);
    assert_true(v == 0);
    assert_int_equal(bench_parse_u64("18446744073709551615", 20, &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(bench_parse_u64("18446744073709551616", 20, &v), -1);
    assert_int_equal(bench_parse_u64("", 0, &v), -1);
    assert_int_equal(bench_parse_u64("01", 2, &v), -1);
    assert_int_equal(bench_parse_u64("-1", 2, &v), -1);
    assert_int_equal(bench_parse_u64("1.5", 3, &v), -1);
}


static void
test_stamp(void **state)
{
    char           buf[256];
    size_t         n;
    bench_stamp_t  st, got;

    (void) state;

    st.run = 4000000000u;
    st.sender = 4294967295u;
    st.seq = UINT64_MAX;
    st.t = UINT64_MAX - 1;

    /* the longest stamp fits a client_id (64 bytes) */
    n = bench_stamp_write(buf, sizeof(buf), &st, 0);
    assert_int_equal(n, BENCH_STAMP_MAX);
    assert_int_equal(bench_stamp_parse(buf, n, &got), 0);
    assert_memory_equal(&st, &got, sizeof(st));

    /* padded to the body size */
    st.run = 7;
    st.sender = 3;
    st.seq = 12;
    st.t = 123456789;

    n = bench_stamp_write(buf, sizeof(buf), &st, 100);
    assert_int_equal(n, 100);
    assert_memory_equal(buf, "b7.3.12.123456789.xxx", 21);
    assert_int_equal(buf[99], 'x');
    assert_int_equal(bench_stamp_parse(buf, n, &got), 0);
    assert_memory_equal(&st, &got, sizeof(st));

    /* a body too small for padding is the stamp alone */
    n = bench_stamp_write(buf, sizeof(buf), &st, 18);
    assert_int_equal(n, 17);
    n = bench_stamp_write(buf, sizeof(buf), &st, 19);
    assert_int_equal(n, 19);
    assert_memory_equal(buf, "b7.3.12.123456789.x", 19);

    /* no room */
    assert_int_equal(bench_stamp_write(buf, 50, &st, 100), 0);
    assert_int_equal(bench_stamp_write(buf, 10, &st, 0), 0);

    assert_int_equal(bench_stamp_parse("b1.2.3.4", 8, &got), 0);
    assert_true(got.run == 1 && got.sender == 2 && got.seq == 3
                && got.t == 4);
    assert_int_equal(bench_stamp_parse("b1.2.3.4x", 9, &got), -1);
    assert_int_equal(bench_stamp_parse("b1.2.3", 6, &got), -1);
    assert_int_equal(bench_stamp_parse("b1.2.3.", 7, &got), -1);
    assert_int_equal(bench_stamp_parse("c1.2.3.4", 8, &got), -1);
    assert_int_equal(bench_stamp_parse("b4294967296.2.3.4", 17, &got), -1);
    assert_int_equal(bench_stamp_parse("hello", 5, &got), -1);
    assert_int_equal(bench_stamp_parse("", 0, &got), -1);
}


static void
test_http_head(void **state)
{
    long               n;
    const char        *ok, *bad;
    bench_http_head_t  h;

    (void) state;

    ok = "HTTP/1.1 101 Switching Protocols\r\n"
         "Server: nginx\r\n"
         "UPGRADE:  WebSocket \r\n"
         "Connection: upgrade\r\n"
         "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
         "\r\n"
         "\x81\x02hi";

    n = bench_http_head(ok, strlen(ok), &h);
    assert_int_equal(n, strlen(ok) - 4);
    assert_int_equal(h.status, 101);
    assert_int_equal(h.upgrade, 1);
    assert_non_null(h.accept);
    assert_int_equal(h.accept_len, 28);
    assert_memory_equal(h.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28);

    /* incomplete, at every length */
    for (n = 0; n < (long) strlen(ok) - 4; n++) {
        assert_int_equal(bench_http_head(ok, (size_t) n, &h), 0);
    }

    bad = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(bench_http_head(bad, strlen(bad), &h),
                     (long) strlen(bad));
    assert_int_equal(h.status, 401);
    assert_int_equal(h.upgrade, 0);
    assert_null(h.accept);

    /* a 101 without the headers of one: the caller refuses it */
    bad = "HTTP/1.1 101\r\n\r\n";
    assert_int_equal(bench_http_head(bad, strlen(bad), &h), 16);
    assert_int_equal(h.status, 101);
    assert_int_equal(h.upgrade, 0);
    assert_null(h.accept);

    bad = "HTTP/1.1 1O1 OK\r\n\r\n";
    assert_int_equal(bench_http_head(bad, strlen(bad), &h), -1);
    bad = "SSH-2.0-OpenSSH\r\n\r\n";
    assert_int_equal(bench_http_head(bad, strlen(bad), &h), -1);
    bad = "HTTP/1.1 101 OK\r\nno colon here\r\n\r\n";
    assert_int_equal(bench_http_head(bad, strlen(bad), &h), -1);
}


static void
test_backoff(void **state)
{
    int       i;
    unsigned  a;
    uint64_t  d, max;

    (void) state;

    assert_true(bench_backoff(100, 5000, 0, 100) == 100);
    assert_true(bench_backoff(100, 5000, 0, 101) == 0);
    assert_true(bench_backoff(100, 5000, 3, 800) == 800);
    assert_true(bench_backoff(100, 5000, 3, 801) == 0);
    assert_true(bench_backoff(100, 5000, 10, 5000) == 5000);
    assert_true(bench_backoff(100, 5000, 10, 5001) == 0);
    assert_true(bench_backoff(100, 5000, 1000, 5000) == 5000);

    /* within [0, min(cap, base * 2^attempt)] */
    for (a = 0; a < 70; a++) {
        max = 0;

        for (i = 0; i < 1000; i++) {
            d = bench_backoff(100, 5000, a, (uint64_t) rand() * 7919 + i);
            assert_true(d <= (a < 6 ? (100ULL << a) : 5000));
            if (d > max) {
                max = d;
            }
        }

        assert_true(max > 0);
    }
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_json_field),
        cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_stamp),
        cmocka_unit_test(test_http_head),
        cmocka_unit_test(test_backoff),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
