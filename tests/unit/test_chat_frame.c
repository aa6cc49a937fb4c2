
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


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(chat_test_message),
        cmocka_unit_test(chat_test_frames),
        cmocka_unit_test(chat_test_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
