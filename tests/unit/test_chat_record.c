
/*
 * Unit tests for src/common/chat_record.c: the records of chat.messages,
 * chat.receipts and chat.presence as the gateway writes them and the
 * workers read them.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chat_record.h"


#define CHAT_TEST_ID   "01KB3FJ6WW0010000000000001"


typedef struct {
    const char  *key;
    const char  *value;
    const char  *err;       /* a part of the reason */
} chat_test_bad_t;


static json_t *
chat_test_parse(const char *key, const char *value, chat_record_t *rec,
    char *err)
{
    return chat_record_parse(key, key ? strlen(key) : 0, value,
                             value ? strlen(value) : 0, rec, err, 128);
}


static void
chat_test_message(void **state)
{
    char            err[128];
    json_t         *v;
    chat_record_t   rec;

    (void) state;

    /* exactly what src/ngx_chat_send.c produces */
    v = chat_test_parse("d:7:12",
                        "{\"id\":\"" CHAT_TEST_ID "\",\"seq\":3,\"from\":12,"
                        "\"to\":7,\"body\":\"hi\\n\\ttab \\\\ \\u00e9\","
                        "\"client_id\":\"c-1\",\"ts\":1764346000000,"
                        "\"media\":\"m1\",\"e2e\":true}", &rec, err);
    assert_non_null(v);
    assert_int_equal(rec.type, CHAT_RECORD_MESSAGE);
    assert_string_equal(rec.id, CHAT_TEST_ID);
    assert_string_equal(rec.conv, "d:7:12");
    assert_int_equal(rec.seq, 3);
    assert_int_equal(rec.from, 12);
    assert_int_equal(rec.to, 7);
    assert_int_equal(rec.group, 0);
    assert_int_equal(rec.body_len, 12);
    assert_memory_equal(rec.body, "hi\n\ttab \\ \xc3\xa9", 12);
    assert_int_equal(rec.client_id_len, 3);
    assert_memory_equal(rec.client_id, "c-1", 3);
    assert_int_equal(rec.ts, 1764346000000LL);
    assert_non_null(rec.media);
    assert_int_equal(rec.media_len, 2);
    assert_int_equal(rec.e2e, 1);
    json_decref(v);

    /* minimal, to oneself, an empty body, unknown members ignored */
    v = chat_test_parse("d:5:5",
                        "{\"type\":\"message\",\"id\":\"" CHAT_TEST_ID "\","
                        "\"seq\":1,\"from\":5,\"to\":5,\"body\":\"\","
                        "\"client_id\":\"x\",\"ts\":0,\"later\":[1]}",
                        &rec, err);
    assert_non_null(v);
    assert_null(rec.media);
    assert_int_equal(rec.e2e, 0);
    assert_int_equal(rec.body_len, 0);
    json_decref(v);

    /* a group message */
    v = chat_test_parse("g:9",
                        "{\"id\":\"" CHAT_TEST_ID "\",\"seq\":1,\"from\":5,"
                        "\"group\":9,\"body\":\"b\",\"client_id\":\"x\","
                        "\"ts\":1}", &rec, err);
    assert_non_null(v);
    assert_int_equal(rec.group, 9);
    assert_int_equal(rec.to, 0);
    assert_string_equal(rec.conv, "g:9");
    json_decref(v);
}


static void
chat_test_receipt(void **state)
{
    char            err[128];
    json_t         *v;
    chat_record_t   rec;

    (void) state;

    v = chat_test_parse("d:1:2",
                        "{\"type\":\"receipt\",\"id\":\"" CHAT_TEST_ID "\","
                        "\"conv\":\"d:1:2\",\"seq\":4,\"from\":1,\"by\":2,"
                        "\"status\":\"read\",\"ts\":99}", &rec, err);
    assert_non_null(v);
    assert_int_equal(rec.type, CHAT_RECORD_RECEIPT);
    assert_string_equal(rec.conv, "d:1:2");
    assert_int_equal(rec.seq, 4);
    assert_int_equal(rec.from, 1);
    assert_int_equal(rec.by, 2);
    assert_int_equal(rec.read, 1);
    assert_int_equal(rec.ts, 99);
    json_decref(v);

    v = chat_test_parse("g:3",
                        "{\"type\":\"receipt\",\"id\":\"" CHAT_TEST_ID "\","
                        "\"conv\":\"g:3\",\"seq\":1,\"from\":1,\"by\":8,"
                        "\"status\":\"delivered\",\"ts\":1}", &rec, err);
    assert_non_null(v);
    assert_int_equal(rec.read, 0);
    json_decref(v);
}


#define CHAT_TEST_MSG(members)                                                \
    "{\"id\":\"" CHAT_TEST_ID "\"," members "}"

#define CHAT_TEST_OK_MSG                                                      \
    "\"seq\":1,\"from\":1,\"to\":2,\"body\":\"b\",\"client_id\":\"c\","     \
    "\"ts\":1"

#define CHAT_TEST_65                                                          \
    "0123456789012345678901234567890123456789012345678901234567890123" "4"

#define CHAT_TEST_TOK_E2E                                                     \
    "\"search_tokens\" needs \"e2e\":true"
#define CHAT_TEST_TOKENS                                                      \
    "\"search_tokens\" must be 1 to 64 strings of 16 to 64 base64url "      \
    "characters"
#define CHAT_TEST_T22  "\"AZaz09_-0123456789abcd\""
#define CHAT_TEST_TOK(t)                                                      \
    CHAT_TEST_MSG(CHAT_TEST_OK_MSG ",\"e2e\":true,\"search_tokens\":" t)

#define CHAT_TEST_RCPT(members)                                               \
    "{\"type\":\"receipt\",\"id\":\"" CHAT_TEST_ID "\"," members "}"


static const chat_test_bad_t  chat_test_bad[] = {
    { "d:1:2", NULL, "no value" },
    { "d:1:2", "", "no value" },
    { "d:1:2", "not json", "value is not valid JSON" },
    { "d:1:2", "[1,2]", "must be a JSON object" },
    { "d:1:2", "{\"a\":1,\"a\":2}", "duplicate key" },
    { "d:1:2", "\xff\xfe", "not valid UTF-8" },
    { "d:1:2", "{\"a\":[[[[[1]]]]]}", "nested too deeply" },
    { "d:1:2", "{\"body\":\"a\\u0000b\"}", "not valid JSON" },
    { "d:1:2", "{\"type\":\"typing\"}", "unknown record type" },
    { "d:1:2", "{\"type\":7}", "unknown record type" },
    { "d:1:2", "{\"seq\":1}", "\"id\" is required" },
    { "d:1:2", "{\"id\":\"short\"}", "\"id\" has a bad length" },
    { "d:1:2", "{\"id\":\"01kb3fj6ww0010000000000001\"}", "not a message id" },
    { "d:1:2", "{\"id\":\"01KB3FJ6WW001000000000000U\"}", "not a message id" },
    { "d:1:2", "{\"id\":\"81KB3FJ6WW0010000000000001\"}", "not a message id" },
    { "d:1:2", CHAT_TEST_MSG("\"from\":1"), "\"seq\" is required" },
    { "d:1:2", CHAT_TEST_MSG("\"seq\":0"), "\"seq\" must be an integer" },
    { "d:1:2", CHAT_TEST_MSG("\"seq\":\"1\""), "\"seq\" must be an integer" },
    { "d:1:2", CHAT_TEST_MSG("\"seq\":1.0"), "\"seq\" must be an integer" },
    { "d:1:2", CHAT_TEST_MSG("\"seq\":1,\"from\":-1"), "\"from\" must be" },
    { "d:1:2", CHAT_TEST_MSG("\"seq\":1,\"from\":1"), "exactly one of" },
    { "d:1:2", CHAT_TEST_MSG("\"seq\":1,\"from\":1,\"to\":2,\"group\":3"),
      "exactly one of" },
    { "d:1:2", CHAT_TEST_MSG("\"seq\":1,\"from\":1,\"to\":null"),
      "\"to\" must be an integer" },
    { "d:1:2", CHAT_TEST_MSG("\"seq\":1,\"from\":1,\"to\":2"),
      "\"body\" is required" },
    { "d:1:2", CHAT_TEST_MSG("\"seq\":1,\"from\":1,\"to\":2,\"body\":1"),
      "\"body\" must be a string" },
    { "d:1:2", CHAT_TEST_MSG("\"seq\":1,\"from\":1,\"to\":2,\"body\":\"\","
                             "\"client_id\":\"\",\"ts\":1"),
      "\"client_id\" must be a string of 1 to 64 bytes" },
    { "d:1:2", CHAT_TEST_MSG("\"seq\":1,\"from\":1,\"to\":2,\"body\":\"\","
                             "\"client_id\":\"" CHAT_TEST_65 "\",\"ts\":1"),
      "\"client_id\" must be a string of 1 to 64 bytes" },
    { "d:1:2", CHAT_TEST_MSG(CHAT_TEST_OK_MSG ",\"media\":\"\""),
      "\"media\" must be a media id" },
    { "d:1:2", CHAT_TEST_MSG(CHAT_TEST_OK_MSG ",\"media\":\"a.b\""),
      "\"media\" must be a media id" },
    { "d:1:2", CHAT_TEST_MSG(CHAT_TEST_OK_MSG ",\"media\":\"\\u00e9\""),
      "\"media\" must be a media id" },
    { "d:1:2", CHAT_TEST_MSG("\"seq\":1,\"from\":1,\"to\":2,\"body\":\"\","
                             "\"client_id\":\"c\""), "\"ts\" is required" },
    { "d:1:2", CHAT_TEST_MSG("\"seq\":1,\"from\":1,\"to\":2,\"body\":\"\","
                             "\"client_id\":\"c\",\"ts\":-1"),
      "\"ts\" must be an integer of 0" },
    { "d:1:2", CHAT_TEST_MSG(CHAT_TEST_OK_MSG ",\"media\":3"),
      "\"media\" must be a string" },
    { "d:1:2", CHAT_TEST_MSG(CHAT_TEST_OK_MSG ",\"e2e\":1"),
      "\"e2e\" must be true or false" },
    { "d:1:2", CHAT_TEST_MSG(CHAT_TEST_OK_MSG ",\"search_tokens\":["
                             CHAT_TEST_T22 "]"), CHAT_TEST_TOK_E2E },
    { "d:1:2", CHAT_TEST_MSG(CHAT_TEST_OK_MSG ",\"e2e\":false,"
                             "\"search_tokens\":[" CHAT_TEST_T22 "]"),
      CHAT_TEST_TOK_E2E },
    { "d:1:2", CHAT_TEST_TOK("[]"), CHAT_TEST_TOKENS },
    { "d:1:2", CHAT_TEST_TOK("[\"0123456789abcde\"]"), CHAT_TEST_TOKENS },
    { "d:1:2", CHAT_TEST_TOK("[\"" CHAT_TEST_65 "\"]"), CHAT_TEST_TOKENS },
    { "d:1:2", CHAT_TEST_TOK("[\"0123456789abcdef=\"]"), CHAT_TEST_TOKENS },
    { "d:1:2", CHAT_TEST_TOK("[\"0123456789abcdef.\"]"), CHAT_TEST_TOKENS },
    { "d:1:2", CHAT_TEST_TOK(CHAT_TEST_T22), CHAT_TEST_TOKENS },
    { "d:1:2", CHAT_TEST_TOK("{}"), CHAT_TEST_TOKENS },
    { "d:1:2", CHAT_TEST_TOK("[" CHAT_TEST_T22 ",7]"), CHAT_TEST_TOKENS },
    { "d:1:2", CHAT_TEST_TOK("[null]"), CHAT_TEST_TOKENS },
    { NULL, CHAT_TEST_MSG(CHAT_TEST_OK_MSG), "no key" },
    { "d:2:1", CHAT_TEST_MSG(CHAT_TEST_OK_MSG), "key is not" },
    { "d:1:3", CHAT_TEST_MSG(CHAT_TEST_OK_MSG), "key is not" },
    { "d:1:2 ", CHAT_TEST_MSG(CHAT_TEST_OK_MSG), "key is not" },
    { "d:1:2", CHAT_TEST_RCPT("\"conv\":\"d:1:2\",\"seq\":1,\"from\":1,"
                              "\"by\":2,\"status\":\"seen\",\"ts\":1"),
      "\"status\" must be delivered or read" },
    { "d:1:2", CHAT_TEST_RCPT("\"conv\":\"d:1:2\",\"seq\":1,\"from\":1,"
                              "\"by\":3,\"status\":\"read\",\"ts\":1"),
      "not the two users" },
    { "d:01:2", CHAT_TEST_RCPT("\"conv\":\"d:01:2\",\"seq\":1,\"from\":1,"
                               "\"by\":2,\"status\":\"read\",\"ts\":1"),
      "not a conversation id" },
    { "d:2:1", CHAT_TEST_RCPT("\"conv\":\"d:2:1\",\"seq\":1,\"from\":1,"
                              "\"by\":2,\"status\":\"read\",\"ts\":1"),
      "not a conversation id" },
    { "x:1", CHAT_TEST_RCPT("\"conv\":\"x:1\",\"seq\":1,\"from\":1,"
                            "\"by\":2,\"status\":\"read\",\"ts\":1"),
      "not a conversation id" },
    { "g:1", CHAT_TEST_RCPT("\"conv\":\"g:1x\",\"seq\":1,\"from\":1,"
                            "\"by\":2,\"status\":\"read\",\"ts\":1"),
      "not a conversation id" },
    { "g:2", CHAT_TEST_RCPT("\"conv\":\"g:1\",\"seq\":1,\"from\":1,"
                            "\"by\":2,\"status\":\"read\",\"ts\":1"),
      "key is not" },
    { "d:1:2", CHAT_TEST_RCPT("\"conv\":\"d:1:2\",\"seq\":1,\"from\":1,"
                              "\"status\":\"read\",\"ts\":1"),
      "\"by\" is required" },
};


static void
chat_test_refused(void **state)
{
    char                    err[128];
    size_t                  i;
    chat_record_t           rec;
    const chat_test_bad_t  *t;

    (void) state;

    for (i = 0; i < sizeof(chat_test_bad) / sizeof(chat_test_bad[0]); i++) {
        t = &chat_test_bad[i];
        err[0] = '\0';

        if (chat_test_parse(t->key, t->value, &rec, err) != NULL
            || strstr(err, t->err) == NULL)
        {
            fail_msg("case %zu (%s): got \"%s\", want \"%s\"", i,
                     t->value ? t->value : "(null)", err, t->err);
        }
    }
}


static void
chat_test_conv(void **state)
{
    char  out[CHAT_RECORD_CONV_LEN];

    (void) state;

    chat_record_conv(out, 12, 7, 0);
    assert_string_equal(out, "d:7:12");
    chat_record_conv(out, 7, 12, 0);
    assert_string_equal(out, "d:7:12");
    chat_record_conv(out, INT64_MAX, INT64_MAX - 1, 0);
    assert_string_equal(out, "d:9223372036854775806:9223372036854775807");
    chat_record_conv(out, 0, 0, 42);
    assert_string_equal(out, "g:42");
}


static void
chat_test_large(void **state)
{
    char            err[128], *value;
    size_t          n, body;
    json_t         *v;
    chat_record_t   rec;

    (void) state;

    /*
     * A body of 16 KiB passes, 16 KiB and one byte does not (the
     * gateway's limit, chat_record_check), nor a value over 1 MiB.
     */
    for (body = CHAT_RECORD_BODY; body <= CHAT_RECORD_MAX_SIZE;
         body = (body == CHAT_RECORD_BODY) ? body + 1 : 2 * 1024 * 1024)
    {
        value = malloc(body + 256);
        assert_non_null(value);
        n = sprintf(value, "{\"id\":\"" CHAT_TEST_ID "\",\"seq\":1,"
                    "\"from\":1,\"to\":2,\"client_id\":\"c\",\"ts\":1,"
                    "\"body\":\"");
        memset(value + n, 'a', body);
        n += body;
        n += sprintf(value + n, "\"}");

        v = chat_record_parse("d:1:2", 5, value, n, &rec, err, sizeof(err));

        if (body == CHAT_RECORD_BODY) {
            assert_non_null(v);
            assert_int_equal(rec.body_len, body);
            json_decref(v);

        } else if (body == CHAT_RECORD_BODY + 1) {
            assert_null(v);
            assert_string_equal(err, "\"body\" must be a string of at most "
                                "16384 bytes");

        } else {
            assert_null(v);
            assert_string_equal(err, "value over 1 MiB");
        }

        free(value);
    }
}


static void
chat_test_presence(void **state)
{
    int           online;
    char          err[128];
    size_t        i;
    int64_t       uid, seen;
    const char   *value;

    static const chat_test_bad_t  bad[] = {
        { "7", NULL, "no value" },
        { "7", "{", "value is not valid JSON" },
        { "7", "[]", "" },
        { "7", "{\"online\":false,\"last_seen\":5}", "\"user_id\" is "
          "required" },
        { "7", "{\"user_id\":\"7\",\"online\":false,\"last_seen\":5}",
          "\"user_id\" must be an integer above 0" },
        { "7", "{\"user_id\":7,\"online\":false}", "\"last_seen\" is "
          "required" },
        { "7", "{\"user_id\":7,\"online\":false,\"last_seen\":0}",
          "\"last_seen\" must be an integer above 0" },
        { "7", "{\"user_id\":7,\"online\":false,"
          "\"last_seen\":9000000000000000000}", "\"last_seen\" is out of "
          "range" },
        { "7", "{\"user_id\":7,\"online\":0,\"last_seen\":5}",
          "\"online\" must be true or false" },
        { NULL, "{\"user_id\":7,\"online\":false,\"last_seen\":5}",
          "no key" },
        { "8", "{\"user_id\":7,\"online\":false,\"last_seen\":5}",
          "key is not the user of the record" },
        { "07", "{\"user_id\":7,\"online\":false,\"last_seen\":5}",
          "key is not the user of the record" },
    };

    (void) state;

    value = "{\"user_id\":42,\"online\":false,\"last_seen\":1700000000123}";

    assert_int_equal(chat_record_presence("42", 2, value, strlen(value),
                                          &uid, &online, &seen, err,
                                          sizeof(err)), 0);
    assert_int_equal(uid, 42);
    assert_int_equal(online, 0);
    assert_int_equal(seen, 1700000000123LL);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(chat_record_presence(bad[i].key,
                             bad[i].key ? strlen(bad[i].key) : 0,
                             bad[i].value,
                             bad[i].value ? strlen(bad[i].value) : 0, &uid,
                             &online, &seen, err, sizeof(err)), -1);

        if (strstr(err, bad[i].err) == NULL) {
            fail_msg("%s: \"%s\" is not \"%s\"", bad[i].value, err,
                     bad[i].err);
        }
    }
}


/*
 * search_tokens: what the gateway writes (after "e2e", in the sender's
 * order, duplicates kept), the worker reads back; 64 pass, 65 do not.
 */
static void
chat_test_tokens(void **state)
{
    char               *text, err[128], tok[32];
    size_t              i;
    json_t             *in, *msg, *v;
    const char         *message;
    chat_record_t       rec;
    chat_record_msg_t   m;

    (void) state;

    in = json_pack("[s, s, s]", "AZaz09_-0123456789abcd",
                   "0123456789abcdef", "AZaz09_-0123456789abcd");
    assert_non_null(in);

    memset(&m, 0, sizeof(m));
    m.from = 12;
    m.to = 7;
    m.body = "b3BhcXVl";
    m.body_len = 8;
    m.client_id = "c-1";
    m.client_id_len = 3;
    m.e2e = 1;
    m.search_tokens = in;

    msg = chat_record_message_new(&m, 1764346000000LL, &message);
    assert_non_null(msg);
    assert_null(message);

    /* a copy: the frame's JSON may go first */
    assert_ptr_not_equal(json_object_get(msg, "search_tokens"), in);
    json_decref(in);
    m.search_tokens = NULL;

    text = chat_record_message_dump(msg, CHAT_TEST_ID, 3);
    json_decref(msg);
    assert_non_null(text);
    assert_string_equal(text,
                        "{\"id\":\"" CHAT_TEST_ID "\",\"seq\":3,\"from\":12,"
                        "\"to\":7,\"body\":\"b3BhcXVl\",\"client_id\":\"c-1\","
                        "\"ts\":1764346000000,\"e2e\":true,"
                        "\"search_tokens\":[\"AZaz09_-0123456789abcd\","
                        "\"0123456789abcdef\",\"AZaz09_-0123456789abcd\"]}");
    assert_true(strlen(text) <= CHAT_RECORD_MESSAGE_MAX);

    v = chat_test_parse("d:7:12", text, &rec, err);
    assert_non_null(v);
    assert_int_equal(rec.e2e, 1);
    assert_non_null(rec.search_tokens);
    assert_int_equal(rec.nsearch_tokens, 3);
    assert_ptr_equal(rec.search_tokens, json_object_get(v, "search_tokens"));
    assert_string_equal(json_string_value(json_array_get(rec.search_tokens,
                                                         1)),
                        "0123456789abcdef");
    assert_string_equal(json_string_value(json_array_get(rec.search_tokens,
                                                         2)),
                        "AZaz09_-0123456789abcd");
    json_decref(v);
    free(text);

    /* without: NULL and 0 */
    v = chat_test_parse("d:1:2", CHAT_TEST_MSG(CHAT_TEST_OK_MSG
                                               ",\"e2e\":true"), &rec, err);
    assert_non_null(v);
    assert_null(rec.search_tokens);
    assert_int_equal(rec.nsearch_tokens, 0);
    json_decref(v);

    /* the encoder refuses what the check refuses */
    m.search_tokens = json_array();
    assert_non_null(m.search_tokens);
    assert_null(chat_record_message_new(&m, 1, &message));
    assert_string_equal(message, CHAT_TEST_TOKENS);

    for (i = 0; i < CHAT_RECORD_SEARCH_TOKENS + 1; i++) {
        snprintf(tok, sizeof(tok), "tok_%012zu-xyz", i);
        assert_int_equal(json_array_append_new((json_t *) m.search_tokens,
                                               json_string(tok)), 0);

        if (i == CHAT_RECORD_SEARCH_TOKENS - 1) {
            assert_null(chat_record_check(&m));
        }
    }

    assert_string_equal(chat_record_check(&m), CHAT_TEST_TOKENS);

    m.e2e = -1;
    assert_string_equal(chat_record_check(&m), CHAT_TEST_TOK_E2E);

    json_decref((json_t *) m.search_tokens);
}


/* the gateway's receipt and presence records, read back by the workers */
static void
chat_test_dumps(void **state)
{
    int            online;
    char          *text, err[128];
    json_t        *v;
    int64_t        uid, seen;
    chat_record_t  in, out;

    (void) state;

    memset(&in, 0, sizeof(in));
    in.type = CHAT_RECORD_RECEIPT;
    strcpy(in.id, CHAT_TEST_ID);
    chat_record_conv(in.conv, 9, 2, 0);
    in.seq = 4;
    in.from = 2;
    in.by = 9;
    in.read = 1;
    in.ts = 1700000000123LL;

    text = chat_record_receipt_dump(&in);
    assert_non_null(text);
    assert_string_equal(text,
                        "{\"type\":\"receipt\",\"id\":\"" CHAT_TEST_ID "\","
                        "\"conv\":\"d:2:9\",\"seq\":4,\"from\":2,\"by\":9,"
                        "\"status\":\"read\",\"ts\":1700000000123}");

    v = chat_test_parse(in.conv, text, &out, err);
    assert_non_null(v);
    assert_int_equal(out.type, CHAT_RECORD_RECEIPT);
    assert_string_equal(out.id, in.id);
    assert_string_equal(out.conv, in.conv);
    assert_int_equal(out.seq, in.seq);
    assert_int_equal(out.from, in.from);
    assert_int_equal(out.by, in.by);
    assert_int_equal(out.read, 1);
    assert_int_equal(out.ts, in.ts);
    json_decref(v);
    free(text);

    in.read = 0;
    chat_record_conv(in.conv, 0, 0, 77);
    text = chat_record_receipt_dump(&in);
    assert_non_null(text);
    v = chat_test_parse("g:77", text, &out, err);
    assert_non_null(v);
    assert_int_equal(out.read, 0);
    assert_string_equal(out.conv, "g:77");
    json_decref(v);
    free(text);

    text = chat_record_presence_dump(42, 0, 1700000000123LL);
    assert_non_null(text);
    assert_string_equal(text, "{\"user_id\":42,\"online\":false,"
                        "\"last_seen\":1700000000123}");
    assert_int_equal(chat_record_presence("42", 2, text, strlen(text), &uid,
                                          &online, &seen, err, sizeof(err)),
                     0);
    assert_int_equal(uid, 42);
    assert_int_equal(online, 0);
    assert_int_equal(seen, 1700000000123LL);
    free(text);

    text = chat_record_presence_dump(5, 1, 1);
    assert_non_null(text);
    assert_int_equal(chat_record_presence("5", 1, text, strlen(text), &uid,
                                          &online, &seen, err, sizeof(err)),
                     0);
    assert_int_equal(online, 1);
    free(text);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(chat_test_message),
        cmocka_unit_test(chat_test_receipt),
        cmocka_unit_test(chat_test_refused),
        cmocka_unit_test(chat_test_conv),
        cmocka_unit_test(chat_test_large),
        cmocka_unit_test(chat_test_presence),
        cmocka_unit_test(chat_test_dumps),
        cmocka_unit_test(chat_test_tokens),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
