
/*
 * Unit tests for src/common/chat_frame.c: the frames the gateway sends,
 * byte for byte as docs/PROTOCOL.md shows them.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chat_frame.h"
#include "chat_record.h"
#include "chat_test.h"


#define CHAT_TEST_ID  "01KB3FJ6WW0010000000000001"


/* takes text; fails the test unless it is expect */
static void
chat_test_is(char *text, const char *expect)
{
    assert_non_null(text);
    assert_string_equal(text, expect);
    free(text);
}


static void
chat_test_message(void **state)
{
    char               *text, *rec;
    json_t             *msg;
    const char         *refused;
    chat_record_msg_t   m;

    (void) state;

    /* the live path: the record as the sender's gateway built it */
    memset(&m, 0, sizeof(m));
    m.from = 1;
    m.to = 2;
    m.body = "h\xc3\xa9 \"there\"";
    m.body_len = strlen(m.body);
    m.client_id = "c1";
    m.client_id_len = 2;
    m.e2e = 0;

    msg = chat_record_message_new(&m, 1700000000123LL, &refused);
    assert_non_null(msg);
    rec = chat_record_message_dump(msg, CHAT_TEST_ID, 7);
    assert_non_null(rec);

    chat_test_is(chat_frame_message(msg),
                 "{\"type\":\"message\",\"id\":\"" CHAT_TEST_ID "\","
                 "\"seq\":7,\"from\":1,\"to\":2,"
                 "\"body\":\"h\xc3\xa9 \\\"there\\\"\",\"client_id\":\"c1\","
                 "\"ts\":1700000000123,\"e2e\":false,\"status\":\"sent\"}");

    /* the record itself is left as it was */
    text = json_dumps(msg, JSON_COMPACT|JSON_PRESERVE_ORDER);
    assert_string_equal(text, rec);
    free(text);
    free(rec);
    json_decref(msg);

    /* an e2e message's search tokens stay in the record, not the frame */
    m.e2e = 1;
    m.search_tokens = json_pack("[s]", "AZaz09_-0123456789abcd");
    assert_non_null(m.search_tokens);
    msg = chat_record_message_new(&m, 1700000000123LL, &refused);
    json_decref((json_t *) m.search_tokens);
    assert_non_null(msg);
    rec = chat_record_message_dump(msg, CHAT_TEST_ID, 8);
    assert_non_null(rec);
    assert_non_null(strstr(rec, "\"search_tokens\":["));

    chat_test_is(chat_frame_message(msg),
                 "{\"type\":\"message\",\"id\":\"" CHAT_TEST_ID "\","
                 "\"seq\":8,\"from\":1,\"to\":2,"
                 "\"body\":\"h\xc3\xa9 \\\"there\\\"\",\"client_id\":\"c1\","
                 "\"ts\":1700000000123,\"e2e\":true,\"status\":\"sent\"}");

    text = json_dumps(msg, JSON_COMPACT|JSON_PRESERVE_ORDER);
    assert_string_equal(text, rec);
    free(text);
    free(rec);
    json_decref(msg);

    /* a group message with media, as the history has it */
    msg = json_pack("{s:s, s:I, s:I, s:I, s:s, s:s, s:I, s:s, s:b}",
                    "id", CHAT_TEST_ID, "seq", (json_int_t) 3,
                    "from", (json_int_t) 4, "group", (json_int_t) 5,
                    "body", "", "client_id", "x", "ts", (json_int_t) 6,
                    "media", "m-1", "e2e", 1);
    assert_non_null(msg);
    chat_test_is(chat_frame_message(msg),
                 "{\"type\":\"message\",\"id\":\"" CHAT_TEST_ID "\","
                 "\"seq\":3,\"from\":4,\"group\":5,\"body\":\"\","
                 "\"client_id\":\"x\",\"ts\":6,\"media\":\"m-1\","
                 "\"e2e\":true,\"status\":\"sent\"}");
    json_decref(msg);

    assert_null(chat_frame_message(NULL));
    msg = json_array();
    assert_null(chat_frame_message(msg));
    json_decref(msg);
}


static void
chat_test_frames(void **state)
{
    (void) state;

    chat_test_is(chat_frame_ack("c1", CHAT_TEST_ID, 12, 1700000000123LL),
                 "{\"type\":\"ack\",\"client_id\":\"c1\","
                 "\"id\":\"" CHAT_TEST_ID "\",\"seq\":12,"
                 "\"ts\":1700000000123}");

    chat_test_is(chat_frame_receipt(CHAT_TEST_ID, 9, 1, 5),
                 "{\"type\":\"receipt\",\"id\":\"" CHAT_TEST_ID "\","
                 "\"by\":9,\"status\":\"read\",\"ts\":5}");
    chat_test_is(chat_frame_receipt(CHAT_TEST_ID, 9, 0, 5),
                 "{\"type\":\"receipt\",\"id\":\"" CHAT_TEST_ID "\","
                 "\"by\":9,\"status\":\"delivered\",\"ts\":5}");

    chat_test_is(chat_frame_typing(3, INT64_MAX),
                 "{\"type\":\"typing\",\"from\":3,"
                 "\"to\":9223372036854775807}");

    chat_test_is(chat_frame_presence(8, 1, 1700000000000LL),
                 "{\"type\":\"presence\",\"user_id\":8,\"online\":true,"
                 "\"last_seen\":1700000000000}");
    chat_test_is(chat_frame_presence(8, 0, 0),
                 "{\"type\":\"presence\",\"user_id\":8,\"online\":false,"
                 "\"last_seen\":0}");
    chat_test_is(chat_frame_presence(8, 0, -1),
                 "{\"type\":\"presence\",\"user_id\":8,\"online\":false,"
                 "\"last_seen\":null}");

    /* strings that are not UTF-8 make no frame */
    assert_null(chat_frame_ack("\xff", CHAT_TEST_ID, 1, 1));
    assert_null(chat_frame_receipt("\xc3", 1, 0, 1));
    assert_null(chat_frame_ack(NULL, CHAT_TEST_ID, 1, 1));
}


static void
chat_test_errors(void **state)
{
    (void) state;

    chat_test_is(chat_frame_error("bad_request", "body is not valid JSON",
                                  NULL, NULL, -1),
                 "{\"type\":\"error\",\"code\":\"bad_request\","
                 "\"message\":\"body is not valid JSON\"}");

    chat_test_is(chat_frame_error("not_found", "no such user", "c1", NULL,
                                  -1),
                 "{\"type\":\"error\",\"code\":\"not_found\","
                 "\"message\":\"no such user\",\"client_id\":\"c1\"}");

    chat_test_is(chat_frame_error("not_found", "no such message", NULL,
                                  CHAT_TEST_ID, -1),
                 "{\"type\":\"error\",\"code\":\"not_found\","
                 "\"message\":\"no such message\","
                 "\"id\":\"" CHAT_TEST_ID "\"}");

    chat_test_is(chat_frame_error("rate_limited", "slow down", "c\"2", NULL,
                                  0),
                 "{\"type\":\"error\",\"code\":\"rate_limited\","
                 "\"message\":\"slow down\",\"client_id\":\"c\\\"2\","
                 "\"retry_after\":0}");

    chat_test_is(chat_frame_error("rate_limited", "slow down", NULL, NULL,
                                  1000),
                 "{\"type\":\"error\",\"code\":\"rate_limited\","
                 "\"message\":\"slow down\",\"retry_after\":1000}");

    assert_null(chat_frame_error("internal", "x", "\xe2\x82", NULL, -1));
    assert_null(chat_frame_error("internal", "x", NULL, "\xe2\x82", -1));
    assert_null(chat_frame_error(NULL, "x", NULL, NULL, -1));
}


/*
 * The frames written straight against jansson's json_dumps() of the same
 * members (how chat_frame.c made them before): random strings of every
 * byte, valid UTF-8 or not, quotes, backslashes and control characters,
 * and numbers to both ends of int64_t.  Same bytes, or NULL from both.
 */

#define CHAT_TEST_DUMP  (JSON_COMPACT|JSON_PRESERVE_ORDER)

static int64_t
chat_test_int(void)
{
    switch (chat_test_rand() % 6) {
    case 0:
        return INT64_MIN;
    case 1:
        return INT64_MAX;
    case 2:
        return -(int64_t) (chat_test_rand() % 1000);
    case 3:
        return 0;
    default:
        return (int64_t) chat_test_rand();
    }
}


/* into buf (64 bytes or more): a string of one of a few kinds */
static const char *
chat_test_str(char *buf)
{
    size_t             i, n;
    static const char  *utf8[] = { "\xc3\xa9", "\xe2\x82\xac",
                                   "\xf0\x9f\x98\x80", "\xe2\x80\xa8",
                                   "\x7f", "\"", "\\", "/", "\n", "\x01",
                                   "\x1f", "a" };

    n = chat_test_rand() % 16;

    if (chat_test_rand() % 4 == 0) {
        /* any bytes but NUL: mostly not UTF-8 */
        for (i = 0; i < n; i++) {
            buf[i] = (char) (1 + chat_test_rand() % 255);
        }

        buf[n] = '\0';
        return buf;
    }

    buf[0] = '\0';

    for (i = 0; i < n; i++) {
        strcat(buf, utf8[chat_test_rand() % (sizeof(utf8) / sizeof(utf8[0]))]);
    }

    return buf;
}


static char *
chat_test_jansson(json_t *frame)
{
    char  *text;

    if (frame == NULL) {
        return NULL;
    }

    text = json_dumps(frame, CHAT_TEST_DUMP);
    json_decref(frame);

    return text;
}


/* takes both; fails unless both are NULL or the same text */
static void
chat_test_same(char *text, char *expect)
{
    if (expect == NULL) {
        assert_null(text);
        return;
    }

    assert_non_null(text);
    assert_string_equal(text, expect);
    free(text);
    free(expect);
}


static void
chat_test_against_jansson(void **state)
{
    int          i, read;
    char         a[128], b[128];
    int64_t      x, y;
    json_t      *f;
    const char  *s, *t;

    (void) state;

    chat_test_rng_state = 20261207;

    for (i = 0; i < 20000; i++) {
        s = chat_test_str(a);
        t = chat_test_str(b);
        x = chat_test_int();
        y = chat_test_int();
        read = (int) (chat_test_rand() % 2);

        chat_test_same(chat_frame_ack(s, t, x, y),
                       chat_test_jansson(json_pack(
                           "{s:s, s:s, s:s, s:I, s:I}", "type", "ack",
                           "client_id", s, "id", t, "seq", (json_int_t) x,
                           "ts", (json_int_t) y)));

        chat_test_same(chat_frame_receipt(s, x, read, y),
                       chat_test_jansson(json_pack(
                           "{s:s, s:s, s:I, s:s, s:I}", "type", "receipt",
                           "id", s, "by", (json_int_t) x,
                           "status", read ? "read" : "delivered",
                           "ts", (json_int_t) y)));

        chat_test_same(chat_frame_typing(x, y),
                       chat_test_jansson(json_pack(
                           "{s:s, s:I, s:I}", "type", "typing",
                           "from", (json_int_t) x, "to", (json_int_t) y)));

        chat_test_same(chat_frame_typing_group(x, y),
                       chat_test_jansson(json_pack(
                           "{s:s, s:I, s:I}", "type", "typing",
                           "from", (json_int_t) x,
                           "group", (json_int_t) y)));

        chat_test_same(chat_frame_presence(x, read, y),
                       chat_test_jansson(json_pack(
                           "{s:s, s:I, s:b, s:o}", "type", "presence",
                           "user_id", (json_int_t) x, "online", read,
                           "last_seen", y >= 0 ? json_integer(y)
                                               : json_null())));

        f = json_pack("{s:s, s:s, s:s}", "type", "error", "code", s,
                      "message", t);
        if (f != NULL && read) {
            if (json_object_set_new(f, "client_id", json_string(t)) != 0) {
                json_decref(f);
                f = NULL;
            }
        }
        if (f != NULL && x % 2) {
            if (json_object_set_new(f, "id", json_string(s)) != 0) {
                json_decref(f);
                f = NULL;
            }
        }
        if (f != NULL && y >= 0) {
            if (json_object_set_new(f, "retry_after", json_integer(y)) != 0) {
                json_decref(f);
                f = NULL;
            }
        }

        chat_test_same(chat_frame_error(s, t, read ? t : NULL,
                                        x % 2 ? s : NULL, y),
                       chat_test_jansson(f));
    }
}


/* a record from chat_record_message_new() and its dump, both ways */
static void
chat_test_record_frames(void **state)
{
    int                 i, made;
    char                a[128], b[128], c[128], *rec;
    json_t             *msg;
    const char         *refused;
    chat_record_msg_t   m;

    (void) state;

    chat_test_rng_state = 20261208;
    made = 0;

    for (i = 0; i < 20000; i++) {
        memset(&m, 0, sizeof(m));
        m.from = 1 + chat_test_rand() % 1000000;

        if (chat_test_rand() % 3) {
            m.to = 1 + chat_test_rand() % 1000000;
        } else {
            m.group = 1 + chat_test_rand() % 1000000;
        }

        m.body = chat_test_str(a);
        m.body_len = strlen(m.body);
        m.client_id = chat_test_str(b);
        m.client_id_len = strlen(m.client_id);

        if (chat_test_rand() % 3 == 0) {
            m.media = chat_test_str(c);
            m.media_len = strlen(m.media);
        }

        m.e2e = (int) (chat_test_rand() % 3) - 1;

        if (chat_test_rand() % 4 == 0) {
            m.search_tokens = json_pack("[s,s]", "AZaz09_-0123456789abcd",
                                        "\"type\":\"status\":");
            assert_non_null(m.search_tokens);
        }

        msg = chat_record_message_new(&m, chat_test_int() & INT64_MAX,
                                      &refused);
        json_decref((json_t *) m.search_tokens);

        if (msg == NULL) {
            /* not UTF-8, empty, ...: refused before any frame */
            continue;
        }

        rec = chat_record_message_dump(msg, CHAT_TEST_ID, chat_test_int());
        assert_non_null(rec);

        chat_test_same(chat_frame_message_record(rec, strlen(rec)),
                       chat_frame_message(msg));
        made++;

        free(rec);
        json_decref(msg);
    }

    /* the splice needs enough records of every kind to mean anything */
    assert_true(made > 5000);

    /* members the frame has of its own go through jansson */
    rec = "{\"type\":\"x\",\"id\":\"a\",\"status\":\"read\"}";
    chat_test_is(chat_frame_message_record(rec, strlen(rec)),
                 "{\"type\":\"message\",\"id\":\"a\",\"status\":\"sent\"}");

    /* ... but not the same words within a string */
    rec = "{\"body\":\"\\\"type\\\":\\\"status\\\":\"}";
    chat_test_is(chat_frame_message_record(rec, strlen(rec)),
                 "{\"type\":\"message\",\"body\":\"\\\"type\\\":"
                 "\\\"status\\\":\",\"status\":\"sent\"}");

    chat_test_is(chat_frame_message_record("{}", 2),
                 "{\"type\":\"message\",\"status\":\"sent\"}");

    assert_null(chat_frame_message_record(NULL, 0));
    assert_null(chat_frame_message_record("{", 1));
    assert_null(chat_frame_message_record("[1]", 3));
    assert_null(chat_frame_message_record("{\"a\":1", 6));
    assert_null(chat_frame_message_record("{\"type\":1", 9));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(chat_test_message),
        cmocka_unit_test(chat_test_frames),
        cmocka_unit_test(chat_test_errors),
        cmocka_unit_test(chat_test_against_jansson),
        cmocka_unit_test(chat_test_record_frames),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
