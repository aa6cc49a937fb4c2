
/*
 * Unit tests for src/common/chat_proto.c.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chat_proto.h"


#define CHAT_TEST_LEN(s)  (sizeof(s) - 1)

#define CHAT_TEST_BAD     CHAT_PROTO_BAD_REQUEST
#define CHAT_TEST_TYPE    CHAT_PROTO_UNKNOWN_TYPE

/* the module's texts, spelled out again so that a change shows here */
#define CHAT_TEST_EMPTY     "body is empty"
#define CHAT_TEST_UTF8      "body is not valid UTF-8"
#define CHAT_TEST_DEEP      "JSON nested too deeply"
#define CHAT_TEST_JSON      "body is not valid JSON"
#define CHAT_TEST_DUP       "duplicate key in JSON object"
#define CHAT_TEST_OBJECT    "body must be a JSON object"
#define CHAT_TEST_NO_TYPE   "\"type\" is required"
#define CHAT_TEST_STR_TYPE  "\"type\" must be a string"
#define CHAT_TEST_UNKNOWN   "unknown message type"
#define CHAT_TEST_NO_TO     "\"to\" is required"
#define CHAT_TEST_TO        "\"to\" must be a user id"
#define CHAT_TEST_GROUP     "\"group\" must be a group id"
#define CHAT_TEST_BOTH      "\"to\" and \"group\" cannot both be given"
#define CHAT_TEST_CID       "\"client_id\" must be a string of 1 to 64 bytes"
#define CHAT_TEST_BODY      "\"body\" must be a string of at most 16384 bytes"
#define CHAT_TEST_E2E       "\"e2e\" must be true or false"
#define CHAT_TEST_MEDIA     "\"media\" must be a media id"
#define CHAT_TEST_TOK_E2E   "\"search_tokens\" needs \"e2e\":true"
#define CHAT_TEST_TOKENS    "\"search_tokens\" must be 1 to 64 strings of " \
                            "16 to 64 base64url characters"

/* search tokens: 16, 22 (as clients make them), 64, 15 and 65 bytes */
#define CHAT_TEST_T16       "\"0123456789abcdef\""
#define CHAT_TEST_T22       "\"AZaz09_-0123456789abcd\""
#define CHAT_TEST_T64       "\"0123456789abcdef0123456789abcdef"              \
                            "0123456789abcdef0123456789ABCDEF\""
#define CHAT_TEST_T15       "\"0123456789abcde\""
#define CHAT_TEST_T65       "\"0123456789abcdef0123456789abcdef"              \
                            "0123456789abcdef0123456789ABCDEFx\""
#define CHAT_TEST_TOK(t)                                                      \
    CHAT_TEST_SEND("\"to\":3,\"body\":\"x\",\"e2e\":true,"                  \
                   "\"search_tokens\":" t)
#define CHAT_TEST_ID        "\"id\" must be a message id"
#define CHAT_TEST_STATUS    "\"status\" must be \"delivered\" or \"read\""
#define CHAT_TEST_ID_IDS    "\"id\" and \"ids\" cannot both be given"
#define CHAT_TEST_IDS       "\"ids\" must be an array of message ids"
#define CHAT_TEST_IDS_N     "\"ids\" must have 1 to 100 message ids"
#define CHAT_TEST_IDS_DUP   "\"ids\" has the same id twice"

#define CHAT_TEST_IDS_MSG(ids)                                                \
    "{\"type\":\"receipt\",\"ids\":" ids ",\"status\":\"read\"}"


typedef struct {
    const char  *text;
    size_t       len;
    const char  *code;         /* NULL: decodes */
    const char  *message;
    const char  *client_id;    /* expected m.client_id, NULL: none */
} chat_test_case_t;


#define CHAT_TEST_OK(s)           { s, CHAT_TEST_LEN(s), NULL, NULL, NULL }
#define CHAT_TEST_ERR(s, c, msg)  { s, CHAT_TEST_LEN(s), c, msg, NULL }
#define CHAT_TEST_CID_ERR(s, c, msg, cid)                                     \
    { s, CHAT_TEST_LEN(s), c, msg, cid }

#define CHAT_TEST_SEND(fields)                                                \
    "{\"type\":\"send\",\"client_id\":\"c1\"," fields "}"


/*
 * Decodes text from a heap copy of exactly len bytes, so that ASan sees
 * any read past the end, and checks what every result must hold.
 */
static int
chat_test_decode(const char *text, size_t len, chat_proto_msg_t *m,
    const char **code, const char **message)
{
    int    rc;
    char  *copy;

    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, text, len);

    *code = "untouched";
    *message = "untouched";

    rc = chat_proto_decode(copy, len, CHAT_PROTO_DEPTH, m, code, message);
    free(copy);

    if (m->client_id != NULL) {
        assert_non_null(m->json);
        assert_int_equal(strlen(m->client_id), m->client_id_len);
    }

    if (rc != 0) {
        assert_int_equal(rc, -1);
        assert_true(strcmp(*code, CHAT_PROTO_BAD_REQUEST) == 0
                    || strcmp(*code, CHAT_PROTO_UNKNOWN_TYPE) == 0);
        assert_int_equal(m->type, 0);
        assert_true(m->to == 0 && m->group == 0);
        assert_true(m->body == NULL && m->media == NULL && m->id == NULL);
        assert_int_equal(m->nids, 0);
        assert_int_equal(m->e2e, -1);
        assert_null(m->search_tokens);
        return rc;
    }

    assert_string_equal(*code, "untouched");
    assert_non_null(m->json);
    assert_non_null(chat_proto_type_name(m->type));

    return rc;
}


/* text must decode (strlen() bytes) */
static void
chat_test_ok(const char *text, chat_proto_msg_t *m)
{
    const char  *code, *message;

    if (chat_test_decode(text, strlen(text), m, &code, &message) != 0) {
        fail_msg("'%s' refused: %s %s", text, code, message);
    }
}


static void
chat_test_table(const chat_test_case_t *cases, size_t n)
{
    int                rc;
    size_t             i;
    const char        *code, *message;
    chat_proto_msg_t   m;

    for (i = 0; i < n; i++) {
        rc = chat_test_decode(cases[i].text, cases[i].len, &m, &code,
                              &message);

        if (cases[i].code == NULL) {
            if (rc != 0) {
                fail_msg("%zu: '%.*s' refused: %s %s", i,
                         (int) cases[i].len, cases[i].text, code, message);
            }

            chat_proto_free(&m);
            continue;
        }

        if (rc == 0) {
            fail_msg("%zu: '%.*s' accepted", i, (int) cases[i].len,
                     cases[i].text);
        }

        if (strcmp(code, cases[i].code) != 0
            || strcmp(message, cases[i].message) != 0)
        {
            fail_msg("%zu: '%.*s': %s \"%s\", expected %s \"%s\"", i,
                     (int) cases[i].len, cases[i].text, code, message,
                     cases[i].code, cases[i].message);
        }

        if (cases[i].client_id == NULL) {
            if (m.client_id != NULL) {
                fail_msg("%zu: '%.*s': client_id \"%s\"", i,
                         (int) cases[i].len, cases[i].text, m.client_id);
            }

        } else if (m.client_id == NULL
                   || strcmp(m.client_id, cases[i].client_id) != 0)
        {
            fail_msg("%zu: '%.*s': client_id %s, expected \"%s\"", i,
                     (int) cases[i].len, cases[i].text,
                     m.client_id ? m.client_id : "NULL",
                     cases[i].client_id);
        }

        chat_proto_free(&m);
    }
}


/* text with every '@' replaced by n copies of c; free() the result */
static char *
chat_test_fill(const char *text, size_t n, char c, size_t *len)
{
    char    *out, *p;
    size_t   i, k, ats;

    ats = 0;

    for (i = 0; text[i]; i++) {
        ats += (text[i] == '@');
    }

    out = malloc(strlen(text) + ats * n + 1);
    assert_non_null(out);

    p = out;

    for (i = 0; text[i]; i++) {
        if (text[i] != '@') {
            *p++ = text[i];
            continue;
        }

        for (k = 0; k < n; k++) {
            *p++ = c;
        }
    }

    *p = '\0';
    *len = (size_t) (p - out);

    return out;
}


/* decodes text filled as chat_test_fill() does; code NULL: must decode */
static void
chat_test_filled(const char *text, size_t n, char c, const char *code,
    const char *message)
{
    int                rc;
    char              *s;
    size_t             len;
    const char        *got, *msg;
    chat_proto_msg_t   m;

    s = chat_test_fill(text, n, c, &len);
    rc = chat_test_decode(s, len, &m, &got, &msg);

    if (code == NULL) {
        if (rc != 0) {
            fail_msg("'%s' with %zu: refused: %s", text, n, msg);
        }

    } else {
        if (rc == 0) {
            fail_msg("'%s' with %zu: accepted", text, n);
        }

        assert_string_equal(got, code);
        assert_string_equal(msg, message);
    }

    chat_proto_free(&m);
    free(s);
}


static void
chat_test_json_errors(void **state)
{
    static const chat_test_case_t  cases[] = {
        CHAT_TEST_ERR("", CHAT_TEST_BAD, CHAT_TEST_EMPTY),
        CHAT_TEST_ERR(" ", CHAT_TEST_BAD, CHAT_TEST_JSON),
        CHAT_TEST_ERR("hello", CHAT_TEST_BAD, CHAT_TEST_JSON),
        CHAT_TEST_ERR("{\"type\":\"ping\"", CHAT_TEST_BAD, CHAT_TEST_JSON),
        CHAT_TEST_ERR("{\"type\":\"ping\"}x", CHAT_TEST_BAD,
                      CHAT_TEST_JSON),
        CHAT_TEST_ERR("{\"type\":\"ping\"}{}", CHAT_TEST_BAD,
                      CHAT_TEST_JSON),
        CHAT_TEST_ERR("{\"type\":\"ping\"}}", CHAT_TEST_BAD,
                      CHAT_TEST_JSON),
        CHAT_TEST_ERR("{\"type\":\"ping\",}", CHAT_TEST_BAD,
                      CHAT_TEST_JSON),
        CHAT_TEST_ERR("{'type':'ping'}", CHAT_TEST_BAD, CHAT_TEST_JSON),
        CHAT_TEST_ERR("{\"type\":\"ping\"}\0", CHAT_TEST_BAD,
                      CHAT_TEST_JSON),
        CHAT_TEST_ERR("{\"type\":\"pi\0ng\"}", CHAT_TEST_BAD,
                      CHAT_TEST_JSON),
        CHAT_TEST_ERR("{\"type\":\"pi\\u0000ng\"}", CHAT_TEST_BAD,
                      CHAT_TEST_JSON),
        CHAT_TEST_ERR("\xef\xbb\xbf{\"type\":\"ping\"}", CHAT_TEST_BAD,
                      CHAT_TEST_JSON),

        /* an id beyond what jansson holds is not JSON it will parse */
        CHAT_TEST_ERR(CHAT_TEST_SEND("\"to\":9223372036854775808,"
                                     "\"body\":\"x\""),
                      CHAT_TEST_BAD, CHAT_TEST_JSON),
        CHAT_TEST_ERR(CHAT_TEST_SEND("\"to\":99999999999999999999,"
                                     "\"body\":\"x\""),
                      CHAT_TEST_BAD, CHAT_TEST_JSON),
        CHAT_TEST_ERR(CHAT_TEST_SEND("\"to\":1e400,\"body\":\"x\""),
                      CHAT_TEST_BAD, CHAT_TEST_JSON),

        CHAT_TEST_ERR("[1,2]", CHAT_TEST_BAD, CHAT_TEST_OBJECT),
        CHAT_TEST_ERR("[{\"type\":\"ping\"}]", CHAT_TEST_BAD,
                      CHAT_TEST_OBJECT),
        CHAT_TEST_ERR("\"ping\"", CHAT_TEST_BAD, CHAT_TEST_OBJECT),
        CHAT_TEST_ERR("42", CHAT_TEST_BAD, CHAT_TEST_OBJECT),
        CHAT_TEST_ERR("null", CHAT_TEST_BAD, CHAT_TEST_OBJECT),
        CHAT_TEST_ERR("true", CHAT_TEST_BAD, CHAT_TEST_OBJECT),

        CHAT_TEST_ERR("{\"type\":\"ping\",\"a\":\"\xc3\x28\"}",
                      CHAT_TEST_BAD, CHAT_TEST_UTF8),
        CHAT_TEST_ERR("{\"type\":\"ping\",\"a\":\"\xed\xa0\x80\"}",
                      CHAT_TEST_BAD, CHAT_TEST_UTF8),
        CHAT_TEST_ERR("{\"type\":\"ping\",\"a\":\"\xc0\xaf\"}",
                      CHAT_TEST_BAD, CHAT_TEST_UTF8),
        CHAT_TEST_ERR("{\"type\":\"ping\"}\xff", CHAT_TEST_BAD,
                      CHAT_TEST_UTF8),
        CHAT_TEST_ERR("{\"type\":\"ping\",\"a\":\"\\ud800\"}",
                      CHAT_TEST_BAD, CHAT_TEST_JSON),

        /* CHAT_PROTO_DEPTH is 8: the object itself is the first level */
        CHAT_TEST_OK("{\"type\":\"ping\",\"a\":[[[[[[[]]]]]]]}"),
        CHAT_TEST_ERR("{\"type\":\"ping\",\"a\":[[[[[[[[]]]]]]]]}",
                      CHAT_TEST_BAD, CHAT_TEST_DEEP),
        CHAT_TEST_ERR("{\"type\":\"ping\",\"a\":{\"b\":{\"c\":{\"d\":{\"e\":"
                      "{\"f\":{\"g\":{\"h\":{}}}}}}}}}",
                      CHAT_TEST_BAD, CHAT_TEST_DEEP),
        CHAT_TEST_ERR("[[[[[[[[[[[[[[[[[[[[", CHAT_TEST_BAD, CHAT_TEST_DEEP),
        CHAT_TEST_OK("{\"type\":\"ping\",\"a\":\"[[[[[[[[[[[[\"}"),

        /* a duplicate anywhere; no client_id from a body that failed */
        CHAT_TEST_ERR("{\"type\":\"ping\",\"type\":\"ping\"}",
                      CHAT_TEST_BAD, CHAT_TEST_DUP),
        CHAT_TEST_ERR("{\"type\":\"ping\",\"typ\\u0065\":\"sync\"}",
                      CHAT_TEST_BAD, CHAT_TEST_DUP),
        CHAT_TEST_ERR(CHAT_TEST_SEND("\"to\":1,\"to\":2,\"body\":\"x\""),
                      CHAT_TEST_BAD, CHAT_TEST_DUP),
        CHAT_TEST_ERR("{\"type\":\"ping\",\"client_id\":\"a\","
                      "\"client_id\":\"b\"}", CHAT_TEST_BAD, CHAT_TEST_DUP),
        CHAT_TEST_ERR("{\"type\":\"ping\",\"x\":{\"k\":1,\"k\":2}}",
                      CHAT_TEST_BAD, CHAT_TEST_DUP),
    };

    (void) state;

    chat_test_table(cases, sizeof(cases) / sizeof(cases[0]));
}


static void
chat_test_types(void **state)
{
    static const chat_test_case_t  cases[] = {
        CHAT_TEST_OK("{\"type\":\"ping\"}"),
        CHAT_TEST_OK(" {\"type\" : \"sync\"}\n"),
        CHAT_TEST_OK("{\"type\":\"p\\u0069ng\"}"),

        CHAT_TEST_ERR("{}", CHAT_TEST_BAD, CHAT_TEST_NO_TYPE),
        CHAT_TEST_ERR("{\"to\":1}", CHAT_TEST_BAD, CHAT_TEST_NO_TYPE),
        CHAT_TEST_ERR("{\"Type\":\"ping\"}", CHAT_TEST_BAD,
                      CHAT_TEST_NO_TYPE),
        CHAT_TEST_ERR("{\"type\":5}", CHAT_TEST_BAD, CHAT_TEST_STR_TYPE),
        CHAT_TEST_ERR("{\"type\":null}", CHAT_TEST_BAD, CHAT_TEST_STR_TYPE),
        CHAT_TEST_ERR("{\"type\":true}", CHAT_TEST_BAD, CHAT_TEST_STR_TYPE),
        CHAT_TEST_ERR("{\"type\":[\"ping\"]}", CHAT_TEST_BAD,
                      CHAT_TEST_STR_TYPE),
        CHAT_TEST_ERR("{\"type\":{}}", CHAT_TEST_BAD, CHAT_TEST_STR_TYPE),

        CHAT_TEST_ERR("{\"type\":\"dance\"}", CHAT_TEST_TYPE,
                      CHAT_TEST_UNKNOWN),
        CHAT_TEST_ERR("{\"type\":\"\"}", CHAT_TEST_TYPE, CHAT_TEST_UNKNOWN),
        CHAT_TEST_ERR("{\"type\":\"PING\"}", CHAT_TEST_TYPE,
                      CHAT_TEST_UNKNOWN),
        CHAT_TEST_ERR("{\"type\":\"ping \"}", CHAT_TEST_TYPE,
                      CHAT_TEST_UNKNOWN),
        CHAT_TEST_ERR("{\"type\":\"pin\"}", CHAT_TEST_TYPE,
                      CHAT_TEST_UNKNOWN),
        CHAT_TEST_ERR("{\"type\":\"pong\"}", CHAT_TEST_TYPE,
                      CHAT_TEST_UNKNOWN),
        CHAT_TEST_ERR("{\"type\":\"ack\"}", CHAT_TEST_TYPE,
                      CHAT_TEST_UNKNOWN),
        CHAT_TEST_ERR("{\"type\":\"error\"}", CHAT_TEST_TYPE,
                      CHAT_TEST_UNKNOWN),

        /* the client_id comes back with any error after the parse */
        CHAT_TEST_CID_ERR("{\"type\":\"dance\",\"client_id\":\"c-42\"}",
                          CHAT_TEST_TYPE, CHAT_TEST_UNKNOWN, "c-42"),
        CHAT_TEST_CID_ERR("{\"client_id\":\"c-42\"}", CHAT_TEST_BAD,
                          CHAT_TEST_NO_TYPE, "c-42"),
        CHAT_TEST_CID_ERR("{\"client_id\":\"\",\"type\":1}", CHAT_TEST_BAD,
                          CHAT_TEST_STR_TYPE, ""),
        CHAT_TEST_ERR("{\"type\":\"dance\",\"client_id\":42}",
                      CHAT_TEST_TYPE, CHAT_TEST_UNKNOWN),
        CHAT_TEST_ERR("{\"type\":\"dance\",\"client_id\":null}",
                      CHAT_TEST_TYPE, CHAT_TEST_UNKNOWN),
    };

    (void) state;

    chat_test_table(cases, sizeof(cases) / sizeof(cases[0]));
}


static void
chat_test_ping_sync(void **state)
{
    chat_proto_msg_t  m;

    (void) state;

    /* other keys are ignored and leave no trace */
    chat_test_ok("{\"type\":\"ping\",\"to\":5,\"group\":6,\"body\":\"b\","
                 "\"e2e\":true,\"media\":\"m\",\"id\":\"i\","
                 "\"status\":\"read\",\"client_id\":\"p1\"}", &m);
    assert_int_equal(m.type, CHAT_PROTO_PING);
    assert_true(m.to == 0 && m.group == 0);
    assert_true(m.body == NULL && m.media == NULL && m.id == NULL);
    assert_int_equal(m.e2e, -1);
    assert_int_equal(m.read, 0);
    assert_string_equal(m.client_id, "p1");
    assert_int_equal(m.client_id_len, 2);
    assert_string_equal(chat_proto_type_name(m.type), "ping");
    chat_proto_free(&m);

    chat_test_ok("{\"type\":\"sync\",\"to\":\"x\"}", &m);
    assert_int_equal(m.type, CHAT_PROTO_SYNC);
    assert_true(m.to == 0 && m.client_id == NULL);
    chat_proto_free(&m);
}


static void
chat_test_send_valid(void **state)
{
    chat_proto_msg_t  m;

    (void) state;

    chat_test_ok(CHAT_TEST_SEND("\"to\":42,\"body\":\"hi\""), &m);
    assert_int_equal(m.type, CHAT_PROTO_SEND);
    assert_true(m.to == 42 && m.group == 0);
    assert_string_equal(m.client_id, "c1");
    assert_int_equal(m.client_id_len, 2);
    assert_string_equal(m.body, "hi");
    assert_int_equal(m.body_len, 2);
    assert_null(m.media);
    assert_int_equal(m.media_len, 0);
    assert_int_equal(m.e2e, -1);
    assert_null(m.id);
    chat_proto_free(&m);

    /* the bound of ids, as a string, every optional field, escapes */
    chat_test_ok("{\"e2e\":true,\"media\":\"m-\\u0041_9\","
                 "\"body\":\"a\\nb\\\"\","
                 "\"to\":\"9223372036854775807\",\"client_id\":\"\xc3\xa9\","
                 "\"type\":\"send\"}", &m);
    assert_true(m.to == INT64_MAX && m.group == 0);
    assert_string_equal(m.body, "a\nb\"");
    assert_int_equal(m.body_len, 4);
    assert_string_equal(m.media, "m-A_9");
    assert_int_equal(m.media_len, 5);
    assert_int_equal(m.e2e, 1);
    assert_string_equal(m.client_id, "\xc3\xa9");
    assert_int_equal(m.client_id_len, 2);
    chat_proto_free(&m);

    chat_test_ok(CHAT_TEST_SEND("\"group\":7,\"body\":\"\",\"e2e\":false,"
                                "\"media\":\"M\""), &m);
    assert_true(m.to == 0 && m.group == 7);
    assert_string_equal(m.body, "");
    assert_int_equal(m.body_len, 0);
    assert_int_equal(m.e2e, 0);
    assert_string_equal(m.media, "M");
    chat_proto_free(&m);

    chat_test_ok(CHAT_TEST_SEND("\"to\":9223372036854775807,\"body\":\"x\""),
                 &m);
    assert_true(m.to == INT64_MAX);
    chat_proto_free(&m);

    /* freeing twice, or what was never decoded, is harmless */
    chat_proto_free(&m);
    memset(&m, 0, sizeof(m));
    chat_proto_free(&m);
}


/* "search_tokens": only with e2e, 1..64 base64url strings of 16..64 */
static void
chat_test_send_tokens(void **state)
{
    char               *text, *p;
    size_t              i, len;
    json_t             *v;
    const char         *code, *message;
    chat_proto_msg_t    m;
    chat_record_msg_t   r;

    static const chat_test_case_t  cases[] = {
        CHAT_TEST_OK(CHAT_TEST_TOK("[" CHAT_TEST_T16 "]")),
        CHAT_TEST_OK(CHAT_TEST_TOK("[" CHAT_TEST_T64 "," CHAT_TEST_T64 "]")),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":3,\"body\":\"x\","
                                         "\"search_tokens\":["
                                         CHAT_TEST_T22 "]"),
                          CHAT_TEST_BAD, CHAT_TEST_TOK_E2E, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":3,\"body\":\"x\","
                                         "\"e2e\":false,\"search_tokens\":["
                                         CHAT_TEST_T22 "]"),
                          CHAT_TEST_BAD, CHAT_TEST_TOK_E2E, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_TOK("[]"), CHAT_TEST_BAD,
                          CHAT_TEST_TOKENS, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_TOK("[" CHAT_TEST_T15 "]"),
                          CHAT_TEST_BAD, CHAT_TEST_TOKENS, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_TOK("[" CHAT_TEST_T22 ","
                                        CHAT_TEST_T65 "]"),
                          CHAT_TEST_BAD, CHAT_TEST_TOKENS, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_TOK("[\"0123456789abcdef=\"]"),
                          CHAT_TEST_BAD, CHAT_TEST_TOKENS, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_TOK("[\"0123456789abcde+\"]"),
                          CHAT_TEST_BAD, CHAT_TEST_TOKENS, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_TOK("[\"0123456789abcde\\u00e9\"]"),
                          CHAT_TEST_BAD, CHAT_TEST_TOKENS, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_TOK(CHAT_TEST_T22), CHAT_TEST_BAD,
                          CHAT_TEST_TOKENS, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_TOK("{\"a\":" CHAT_TEST_T22 "}"),
                          CHAT_TEST_BAD, CHAT_TEST_TOKENS, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_TOK("null"), CHAT_TEST_BAD,
                          CHAT_TEST_TOKENS, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_TOK("[1]"), CHAT_TEST_BAD,
                          CHAT_TEST_TOKENS, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_TOK("[" CHAT_TEST_T22 ",null]"),
                          CHAT_TEST_BAD, CHAT_TEST_TOKENS, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_TOK("[[" CHAT_TEST_T22 "]]"),
                          CHAT_TEST_BAD, CHAT_TEST_TOKENS, "c1"),
        /* the checks before it come first */
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":3,\"body\":\"x\","
                                         "\"media\":\"\",\"e2e\":true,"
                                         "\"search_tokens\":[]"),
                          CHAT_TEST_BAD, CHAT_TEST_MEDIA, "c1"),
    };

    (void) state;

    chat_test_table(cases, sizeof(cases) / sizeof(cases[0]));

    /* the JSON's own array, in order, duplicates kept, to the record */
    chat_test_ok(CHAT_TEST_TOK("[" CHAT_TEST_T22 "," CHAT_TEST_T16 ","
                               CHAT_TEST_T22 "]"), &m);
    assert_int_equal(m.e2e, 1);
    assert_non_null(m.search_tokens);
    assert_ptr_equal(m.search_tokens,
                     json_object_get(m.json, "search_tokens"));
    assert_int_equal(json_array_size(m.search_tokens), 3);
    assert_string_equal(json_string_value(json_array_get(m.search_tokens,
                                                         0)),
                        "AZaz09_-0123456789abcd");
    assert_string_equal(json_string_value(json_array_get(m.search_tokens,
                                                         1)),
                        "0123456789abcdef");
    chat_proto_record(&m, 5, &r);
    assert_ptr_equal(r.search_tokens, m.search_tokens);
    assert_null(chat_record_check(&r));
    chat_proto_free(&m);

    chat_test_ok(CHAT_TEST_SEND("\"to\":3,\"body\":\"x\",\"e2e\":true"),
                 &m);
    assert_null(m.search_tokens);
    chat_proto_record(&m, 5, &r);
    assert_null(r.search_tokens);
    chat_proto_free(&m);

    /* other types leave it NULL */
    chat_test_ok("{\"type\":\"ping\",\"e2e\":true,\"search_tokens\":["
                 CHAT_TEST_T22 "]}", &m);
    assert_null(m.search_tokens);
    chat_proto_free(&m);

    /* 64 tokens pass, 65 do not */
    text = malloc(4096 + 32 * 65);
    assert_non_null(text);

    for (len = 64; len <= 65; len++) {
        p = text + sprintf(text, "{\"type\":\"send\",\"client_id\":\"c1\","
                           "\"to\":3,\"body\":\"x\",\"e2e\":true,"
                           "\"search_tokens\":[");

        for (i = 0; i < len; i++) {
            p += sprintf(p, "%s\"tok_%012zu-xyz\"", i ? "," : "", i);
        }

        p += sprintf(p, "]}");

        if (len == 64) {
            chat_test_ok(text, &m);
            v = (json_t *) m.search_tokens;
            assert_int_equal(json_array_size(v), 64);
            assert_string_equal(json_string_value(json_array_get(v, 63)),
                                "tok_000000000063-xyz");

        } else {
            assert_int_equal(chat_test_decode(text, p - text, &m, &code,
                                              &message), -1);
            assert_string_equal(message, CHAT_TEST_TOKENS);
        }

        chat_proto_free(&m);
    }

    free(text);
}


static void
chat_test_send_errors(void **state)
{
    static const chat_test_case_t  cases[] = {
        /* to and group */
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"body\":\"x\""), CHAT_TEST_BAD,
                          CHAT_TEST_NO_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"group\":2,"
                                         "\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_BOTH, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"group\":null,"
                                         "\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_BOTH, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":\"x\",\"group\":\"y\","
                                         "\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_BOTH, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":0,\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":-1,\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":-0,\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":-9223372036854775808,"
                                         "\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1.0,\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1.5,\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1e3,\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":\"abc\",\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":\"\",\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":\"0\",\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":\"01\",\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":\"-1\",\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":\"+1\",\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":\" 1\",\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":\"1.5\",\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":\"9223372036854775808\","
                                         "\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":\"18446744073709551617\","
                                         "\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":true,\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":null,\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":[1],\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":{},\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_TO, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"group\":0,\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_GROUP, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"group\":-5,\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_GROUP, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"group\":2.5,\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_GROUP, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"group\":\"g\",\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_GROUP, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"group\":null,\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_GROUP, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"group\":false,\"body\":\"x\""),
                          CHAT_TEST_BAD, CHAT_TEST_GROUP, "c1"),

        /* client_id */
        CHAT_TEST_ERR("{\"type\":\"send\",\"to\":1,\"body\":\"x\"}",
                      CHAT_TEST_BAD, CHAT_TEST_CID),
        CHAT_TEST_CID_ERR("{\"type\":\"send\",\"to\":1,\"body\":\"x\","
                          "\"client_id\":\"\"}", CHAT_TEST_BAD,
                          CHAT_TEST_CID, ""),
        CHAT_TEST_ERR("{\"type\":\"send\",\"to\":1,\"body\":\"x\","
                      "\"client_id\":5}", CHAT_TEST_BAD, CHAT_TEST_CID),
        CHAT_TEST_ERR("{\"type\":\"send\",\"to\":1,\"body\":\"x\","
                      "\"client_id\":null}", CHAT_TEST_BAD, CHAT_TEST_CID),
        CHAT_TEST_ERR("{\"type\":\"send\",\"to\":1,\"body\":\"x\","
                      "\"client_id\":[\"c\"]}", CHAT_TEST_BAD,
                      CHAT_TEST_CID),

        /* body */
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1"), CHAT_TEST_BAD,
                          CHAT_TEST_BODY, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"body\":5"),
                          CHAT_TEST_BAD, CHAT_TEST_BODY, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"body\":null"),
                          CHAT_TEST_BAD, CHAT_TEST_BODY, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"body\":[1]"),
                          CHAT_TEST_BAD, CHAT_TEST_BODY, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"body\":{}"),
                          CHAT_TEST_BAD, CHAT_TEST_BODY, "c1"),

        /* e2e */
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"body\":\"x\","
                                         "\"e2e\":\"yes\""),
                          CHAT_TEST_BAD, CHAT_TEST_E2E, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"body\":\"x\","
                                         "\"e2e\":1"),
                          CHAT_TEST_BAD, CHAT_TEST_E2E, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"body\":\"x\","
                                         "\"e2e\":null"),
                          CHAT_TEST_BAD, CHAT_TEST_E2E, "c1"),

        /* media */
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"body\":\"x\","
                                         "\"media\":5"),
                          CHAT_TEST_BAD, CHAT_TEST_MEDIA, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"body\":\"x\","
                                         "\"media\":null"),
                          CHAT_TEST_BAD, CHAT_TEST_MEDIA, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"body\":\"x\","
                                         "\"media\":{\"id\":\"m\"}"),
                          CHAT_TEST_BAD, CHAT_TEST_MEDIA, "c1"),

        /* a media id: letters, digits, '-' and '_', 1 to 255 of them */
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"body\":\"x\","
                                         "\"media\":\"\""),
                          CHAT_TEST_BAD, CHAT_TEST_MEDIA, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"body\":\"x\","
                                         "\"media\":\"m\\u00e9d\""),
                          CHAT_TEST_BAD, CHAT_TEST_MEDIA, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"body\":\"x\","
                                         "\"media\":\"a/b\""),
                          CHAT_TEST_BAD, CHAT_TEST_MEDIA, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"body\":\"x\","
                                         "\"media\":\"a b\""),
                          CHAT_TEST_BAD, CHAT_TEST_MEDIA, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"body\":\"x\","
                                         "\"media\":\"..\""),
                          CHAT_TEST_BAD, CHAT_TEST_MEDIA, "c1"),

        /* the module's order: target, client_id, body, e2e, media */
        CHAT_TEST_ERR("{\"type\":\"send\",\"to\":0,\"client_id\":5,"
                      "\"body\":5,\"e2e\":5,\"media\":5}",
                      CHAT_TEST_BAD, CHAT_TEST_TO),
        CHAT_TEST_ERR("{\"type\":\"send\",\"to\":1,\"client_id\":5,"
                      "\"body\":5,\"e2e\":5,\"media\":5}",
                      CHAT_TEST_BAD, CHAT_TEST_CID),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"body\":5,\"e2e\":5,"
                                         "\"media\":5"),
                          CHAT_TEST_BAD, CHAT_TEST_BODY, "c1"),
        CHAT_TEST_CID_ERR(CHAT_TEST_SEND("\"to\":1,\"body\":\"x\","
                                         "\"e2e\":5,\"media\":5"),
                          CHAT_TEST_BAD, CHAT_TEST_E2E, "c1"),
    };

    (void) state;

    chat_test_table(cases, sizeof(cases) / sizeof(cases[0]));
}


typedef struct {
    const char  *text;         /* with '@' where the n bytes go */
    size_t       n;
    char         c;
    const char  *code;         /* NULL: decodes */
    const char  *message;
} chat_test_fill_t;


#define CHAT_TEST_CID_TEXT(pre)                                               \
    "{\"type\":\"send\",\"to\":1,\"body\":\"\",\"client_id\":\"" pre "@\"}"

#define CHAT_TEST_RCPT_TEXT                                                   \
    "{\"type\":\"receipt\",\"id\":\"@\",\"status\":\"read\"}"


static void
chat_test_limits(void **state)
{
    size_t                         i;
    static const chat_test_fill_t  cases[] = {
        /* client_id: 1 to 64 bytes, counted in bytes, escapes decoded */
        { CHAT_TEST_CID_TEXT(""), 1, 'c', NULL, NULL },
        { CHAT_TEST_CID_TEXT(""), CHAT_PROTO_CLIENT_ID_MAX, 'c', NULL,
          NULL },
        { CHAT_TEST_CID_TEXT(""), CHAT_PROTO_CLIENT_ID_MAX + 1, 'c',
          CHAT_TEST_BAD, CHAT_TEST_CID },
        { CHAT_TEST_CID_TEXT("\xc3\xa9"), CHAT_PROTO_CLIENT_ID_MAX - 2, 'c',
          NULL, NULL },
        { CHAT_TEST_CID_TEXT("\xc3\xa9"), CHAT_PROTO_CLIENT_ID_MAX - 1, 'c',
          CHAT_TEST_BAD, CHAT_TEST_CID },
        { CHAT_TEST_CID_TEXT("\\u00e9"), CHAT_PROTO_CLIENT_ID_MAX - 2, 'c',
          NULL, NULL },
        { CHAT_TEST_CID_TEXT("\\u00e9"), CHAT_PROTO_CLIENT_ID_MAX - 1, 'c',
          CHAT_TEST_BAD, CHAT_TEST_CID },

        /* body: at most 16384 bytes */
        { CHAT_TEST_SEND("\"to\":1,\"body\":\"@\""), CHAT_PROTO_BODY_MAX,
          'b', NULL, NULL },
        { CHAT_TEST_SEND("\"to\":1,\"body\":\"@\""),
          CHAT_PROTO_BODY_MAX + 1, 'b', CHAT_TEST_BAD, CHAT_TEST_BODY },
        { CHAT_TEST_SEND("\"to\":1,\"body\":\"\\n@\""),
          CHAT_PROTO_BODY_MAX - 1, 'b', NULL, NULL },
        { CHAT_TEST_SEND("\"to\":1,\"body\":\"\\n@\""), CHAT_PROTO_BODY_MAX,
          'b', CHAT_TEST_BAD, CHAT_TEST_BODY },
        { CHAT_TEST_SEND("\"to\":1,\"body\":\"@\""),
          CHAT_PROTO_BODY_MAX * 4, 'b', CHAT_TEST_BAD, CHAT_TEST_BODY },

        /*
         * media: 1 to 255 bytes (chat_record_check, as chat-worker
         * persist checks it); 32 KiB was once acked and never stored
         */
        { CHAT_TEST_SEND("\"to\":1,\"body\":\"\",\"media\":\"@\""), 1,
          'm', NULL, NULL },
        { CHAT_TEST_SEND("\"to\":1,\"body\":\"\",\"media\":\"@\""),
          CHAT_RECORD_MEDIA, 'm', NULL, NULL },
        { CHAT_TEST_SEND("\"to\":1,\"body\":\"\",\"media\":\"@\""),
          CHAT_RECORD_MEDIA + 1, 'm', CHAT_TEST_BAD, CHAT_TEST_MEDIA },
        { CHAT_TEST_SEND("\"to\":1,\"body\":\"\",\"media\":\"@\""),
          CHAT_PROTO_BODY_MAX * 2, 'm', CHAT_TEST_BAD, CHAT_TEST_MEDIA },

        /* a receipt's id: 1 to 64 bytes */
        { CHAT_TEST_RCPT_TEXT, CHAT_PROTO_ID_MAX, 'i', NULL, NULL },
        { CHAT_TEST_RCPT_TEXT, CHAT_PROTO_ID_MAX + 1, 'i', CHAT_TEST_BAD,
          CHAT_TEST_ID },
        { CHAT_TEST_RCPT_TEXT, 100000, 'i', CHAT_TEST_BAD, CHAT_TEST_ID },
    };

    (void) state;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        chat_test_filled(cases[i].text, cases[i].n, cases[i].c,
                         cases[i].code, cases[i].message);
    }
}


static void
chat_test_receipt(void **state)
{
    chat_proto_msg_t               m;
    static const chat_test_case_t  cases[] = {
        CHAT_TEST_OK("{\"type\":\"receipt\",\"id\":\"x\","
                     "\"status\":\"delivered\"}"),
        CHAT_TEST_OK("{\"status\":\"read\",\"type\":\"receipt\","
                     "\"id\":\"01M8HGZ2HMB05GCZR000000000\",\"to\":\"no\"}"),

        CHAT_TEST_ERR("{\"type\":\"receipt\",\"status\":\"read\"}",
                      CHAT_TEST_BAD, CHAT_TEST_ID),
        CHAT_TEST_ERR("{\"type\":\"receipt\",\"id\":5,\"status\":\"read\"}",
                      CHAT_TEST_BAD, CHAT_TEST_ID),
        CHAT_TEST_ERR("{\"type\":\"receipt\",\"id\":null,"
                      "\"status\":\"read\"}", CHAT_TEST_BAD, CHAT_TEST_ID),
        CHAT_TEST_ERR("{\"type\":\"receipt\",\"id\":[\"x\"],"
                      "\"status\":\"read\"}", CHAT_TEST_BAD, CHAT_TEST_ID),
        CHAT_TEST_ERR("{\"type\":\"receipt\",\"id\":\"\","
                      "\"status\":\"read\"}", CHAT_TEST_BAD, CHAT_TEST_ID),
        CHAT_TEST_CID_ERR("{\"type\":\"receipt\",\"id\":\"\","
                          "\"status\":\"read\",\"client_id\":\"r\"}",
                          CHAT_TEST_BAD, CHAT_TEST_ID, "r"),

        CHAT_TEST_ERR("{\"type\":\"receipt\",\"id\":\"x\"}", CHAT_TEST_BAD,
                      CHAT_TEST_STATUS),
        CHAT_TEST_ERR("{\"type\":\"receipt\",\"id\":\"x\","
                      "\"status\":\"seen\"}", CHAT_TEST_BAD,
                      CHAT_TEST_STATUS),
        CHAT_TEST_ERR("{\"type\":\"receipt\",\"id\":\"x\","
                      "\"status\":\"READ\"}", CHAT_TEST_BAD,
                      CHAT_TEST_STATUS),
        CHAT_TEST_ERR("{\"type\":\"receipt\",\"id\":\"x\","
                      "\"status\":\"rea\"}", CHAT_TEST_BAD,
                      CHAT_TEST_STATUS),
        CHAT_TEST_ERR("{\"type\":\"receipt\",\"id\":\"x\","
                      "\"status\":\"reads\"}", CHAT_TEST_BAD,
                      CHAT_TEST_STATUS),
        CHAT_TEST_ERR("{\"type\":\"receipt\",\"id\":\"x\","
                      "\"status\":\"\"}", CHAT_TEST_BAD, CHAT_TEST_STATUS),
        CHAT_TEST_ERR("{\"type\":\"receipt\",\"id\":\"x\",\"status\":1}",
                      CHAT_TEST_BAD, CHAT_TEST_STATUS),
        CHAT_TEST_ERR("{\"type\":\"receipt\",\"id\":\"x\","
                      "\"status\":null}", CHAT_TEST_BAD, CHAT_TEST_STATUS),
        CHAT_TEST_ERR("{\"type\":\"receipt\",\"id\":\"x\","
                      "\"status\":[\"read\"]}", CHAT_TEST_BAD,
                      CHAT_TEST_STATUS),

        /* id first, as the module checks */
        CHAT_TEST_ERR("{\"type\":\"receipt\",\"id\":5,\"status\":5}",
                      CHAT_TEST_BAD, CHAT_TEST_ID),
    };

    (void) state;

    chat_test_table(cases, sizeof(cases) / sizeof(cases[0]));

    chat_test_ok("{\"type\":\"receipt\",\"id\":\"m1\","
                 "\"status\":\"read\"}", &m);
    assert_int_equal(m.type, CHAT_PROTO_RECEIPT);
    assert_string_equal(m.id, "m1");
    assert_int_equal(m.id_len, 2);
    assert_int_equal(m.read, 1);
    assert_true(m.to == 0 && m.group == 0 && m.body == NULL);
    chat_proto_free(&m);

    chat_test_ok("{\"type\":\"receipt\",\"id\":\"m1\","
                 "\"status\":\"delivered\"}", &m);
    assert_int_equal(m.read, 0);
    /* "id" alone is a list of one */
    assert_int_equal(m.nids, 1);
    assert_ptr_equal(m.ids[0], m.id);
    assert_int_equal(m.ids_len[0], 2);
    chat_proto_free(&m);
}


/* a read receipt for n ids "00..0", "00..1", ... of width bytes */
static void
chat_test_ids(char *text, size_t n, int width)
{
    char    *p;
    size_t   i;

    p = text + sprintf(text, "{\"type\":\"receipt\",\"status\":\"read\","
                       "\"ids\":[");
    for (i = 0; i < n; i++) {
        p += sprintf(p, "%s\"%0*zu\"", i ? "," : "", width, i);
    }

    strcpy(p, "]}");
}


/* {"type":"receipt","ids":[...]}: CONTRACT.md v1.1 */
static void
chat_test_receipt_ids(void **state)
{
    char               text[8192];
    const char        *code, *message;
    chat_proto_msg_t   m;
    static const chat_test_case_t  cases[] = {
        CHAT_TEST_OK(CHAT_TEST_IDS_MSG("[\"a\"]")),
        CHAT_TEST_OK(CHAT_TEST_IDS_MSG("[\"a\",\"b\",\"ab\"]")),

        CHAT_TEST_ERR("{\"type\":\"receipt\",\"id\":\"a\",\"ids\":[\"b\"],"
                      "\"status\":\"read\"}", CHAT_TEST_BAD,
                      CHAT_TEST_ID_IDS),
        CHAT_TEST_ERR("{\"type\":\"receipt\",\"id\":null,\"ids\":[\"b\"],"
                      "\"status\":\"read\"}", CHAT_TEST_BAD,
                      CHAT_TEST_ID_IDS),
        CHAT_TEST_ERR(CHAT_TEST_IDS_MSG("[]"), CHAT_TEST_BAD,
                      CHAT_TEST_IDS_N),
        CHAT_TEST_ERR(CHAT_TEST_IDS_MSG("\"a\""), CHAT_TEST_BAD,
                      CHAT_TEST_IDS),
        CHAT_TEST_ERR(CHAT_TEST_IDS_MSG("null"), CHAT_TEST_BAD,
                      CHAT_TEST_IDS),
        CHAT_TEST_ERR(CHAT_TEST_IDS_MSG("{\"a\":\"b\"}"), CHAT_TEST_BAD,
                      CHAT_TEST_IDS),
        CHAT_TEST_ERR(CHAT_TEST_IDS_MSG("[\"a\",5]"), CHAT_TEST_BAD,
                      CHAT_TEST_IDS),
        CHAT_TEST_ERR(CHAT_TEST_IDS_MSG("[\"a\",null]"), CHAT_TEST_BAD,
                      CHAT_TEST_IDS),
        CHAT_TEST_ERR(CHAT_TEST_IDS_MSG("[[\"a\"]]"), CHAT_TEST_BAD,
                      CHAT_TEST_IDS),
        CHAT_TEST_ERR(CHAT_TEST_IDS_MSG("[\"a\",\"\"]"), CHAT_TEST_BAD,
                      CHAT_TEST_IDS),
        CHAT_TEST_ERR(CHAT_TEST_IDS_MSG("[\"a\",\"b\",\"a\"]"), CHAT_TEST_BAD,
                      CHAT_TEST_IDS_DUP),

        /* ids first, as for "id" */
        CHAT_TEST_ERR("{\"type\":\"receipt\",\"ids\":[],\"status\":5}",
                      CHAT_TEST_BAD, CHAT_TEST_IDS_N),
        CHAT_TEST_ERR("{\"type\":\"receipt\",\"ids\":[\"a\"],\"status\":5}",
                      CHAT_TEST_BAD, CHAT_TEST_STATUS),
        CHAT_TEST_CID_ERR("{\"type\":\"receipt\",\"client_id\":\"r\","
                          "\"ids\":[1],\"status\":\"read\"}",
                          CHAT_TEST_BAD, CHAT_TEST_IDS, "r"),
    };

    (void) state;

    chat_test_table(cases, sizeof(cases) / sizeof(cases[0]));

    chat_test_ok(CHAT_TEST_IDS_MSG("[\"m1\",\"m22\",\"m1 \"]"), &m);
    assert_int_equal(m.type, CHAT_PROTO_RECEIPT);
    assert_null(m.id);
    assert_int_equal(m.nids, 3);
    assert_string_equal(m.ids[0], "m1");
    assert_int_equal(m.ids_len[0], 2);
    assert_string_equal(m.ids[1], "m22");
    assert_int_equal(m.ids_len[1], 3);
    assert_string_equal(m.ids[2], "m1 ");
    assert_int_equal(m.ids_len[2], 3);
    assert_int_equal(m.read, 1);
    chat_proto_free(&m);

    /* 100 ids of 64 bytes: the most there may be; then 101, and 65 bytes */
    chat_test_ids(text, CHAT_PROTO_IDS_MAX, CHAT_PROTO_ID_MAX);
    chat_test_ok(text, &m);
    assert_int_equal(m.nids, CHAT_PROTO_IDS_MAX);
    assert_int_equal(m.ids_len[99], CHAT_PROTO_ID_MAX);
    assert_int_equal(strtoul(m.ids[99], NULL, 10), 99);
    chat_proto_free(&m);

    chat_test_ids(text, CHAT_PROTO_IDS_MAX + 1, CHAT_PROTO_ID_MAX);
    assert_int_equal(chat_test_decode(text, strlen(text), &m, &code,
                                      &message), -1);
    assert_string_equal(message, CHAT_TEST_IDS_N);
    chat_proto_free(&m);

    chat_test_ids(text, 3, CHAT_PROTO_ID_MAX + 1);
    assert_int_equal(chat_test_decode(text, strlen(text), &m, &code,
                                      &message), -1);
    assert_string_equal(message, CHAT_TEST_IDS);
    chat_proto_free(&m);
}


static void
chat_test_typing(void **state)
{
    chat_proto_msg_t               m;
    static const chat_test_case_t  cases[] = {
        CHAT_TEST_OK("{\"type\":\"typing\",\"to\":1}"),
        CHAT_TEST_OK("{\"type\":\"typing\",\"to\":\"12\"}"),
        CHAT_TEST_OK("{\"type\":\"typing\",\"group\":3,\"body\":5}"),

        CHAT_TEST_ERR("{\"type\":\"typing\"}", CHAT_TEST_BAD,
                      CHAT_TEST_NO_TO),
        CHAT_TEST_ERR("{\"type\":\"typing\",\"to\":1,\"group\":2}",
                      CHAT_TEST_BAD, CHAT_TEST_BOTH),
        CHAT_TEST_ERR("{\"type\":\"typing\",\"to\":\"x\"}", CHAT_TEST_BAD,
                      CHAT_TEST_TO),
        CHAT_TEST_ERR("{\"type\":\"typing\",\"to\":0}", CHAT_TEST_BAD,
                      CHAT_TEST_TO),
        CHAT_TEST_ERR("{\"type\":\"typing\",\"to\":-7}", CHAT_TEST_BAD,
                      CHAT_TEST_TO),
        CHAT_TEST_ERR("{\"type\":\"typing\",\"to\":7.5}", CHAT_TEST_BAD,
                      CHAT_TEST_TO),
        CHAT_TEST_ERR("{\"type\":\"typing\",\"to\":null}", CHAT_TEST_BAD,
                      CHAT_TEST_TO),
        CHAT_TEST_ERR("{\"type\":\"typing\",\"group\":\"\"}",
                      CHAT_TEST_BAD, CHAT_TEST_GROUP),
        CHAT_TEST_ERR("{\"type\":\"typing\",\"group\":0}", CHAT_TEST_BAD,
                      CHAT_TEST_GROUP),
        CHAT_TEST_CID_ERR("{\"type\":\"typing\",\"client_id\":\"t\"}",
                          CHAT_TEST_BAD, CHAT_TEST_NO_TO, "t"),
    };

    (void) state;

    chat_test_table(cases, sizeof(cases) / sizeof(cases[0]));

    chat_test_ok("{\"type\":\"typing\",\"to\":5}", &m);
    assert_int_equal(m.type, CHAT_PROTO_TYPING);
    assert_true(m.to == 5 && m.group == 0);
    assert_true(m.body == NULL && m.id == NULL && m.e2e == -1);
    chat_proto_free(&m);

    chat_test_ok("{\"type\":\"typing\",\"group\":6}", &m);
    assert_true(m.to == 0 && m.group == 6);
    chat_proto_free(&m);
}


static void
chat_test_edges(void **state)
{
    char               big[4096];
    const char        *code, *message;
    chat_proto_msg_t   m;

    (void) state;

    /* NULL data is an empty message */
    assert_int_equal(chat_proto_decode(NULL, 0, CHAT_PROTO_DEPTH, &m, &code,
                                       &message), -1);
    assert_string_equal(code, CHAT_TEST_BAD);
    assert_string_equal(message, CHAT_TEST_EMPTY);
    assert_null(m.json);
    assert_null(m.client_id);
    chat_proto_free(&m);

    /* max_depth is the caller's */
    assert_int_equal(chat_proto_decode("{\"type\":\"ping\"}", 15, 0, &m,
                                       &code, &message), -1);
    assert_string_equal(message, CHAT_TEST_DEEP);
    chat_proto_free(&m);

    assert_int_equal(chat_proto_decode("{\"type\":\"ping\",\"a\":[[]]}", 24,
                                       2, &m, &code, &message), -1);
    assert_string_equal(message, CHAT_TEST_DEEP);
    chat_proto_free(&m);

    assert_int_equal(chat_proto_decode("{\"type\":\"ping\",\"a\":[[]]}", 24,
                                       3, &m, &code, &message), 0);
    chat_proto_free(&m);

    /* only len bytes are read */
    assert_int_equal(chat_proto_decode("{\"type\":\"sync\"}garbage", 15,
                                       CHAT_PROTO_DEPTH, &m, &code,
                                       &message), 0);
    assert_int_equal(m.type, CHAT_PROTO_SYNC);
    chat_proto_free(&m);

    /* a message left over in *m is overwritten, not read */
    memset(&m, 0xa5, sizeof(m));
    assert_int_equal(chat_proto_decode("{}", 2, CHAT_PROTO_DEPTH, &m, &code,
                                       &message), -1);
    assert_string_equal(message, CHAT_TEST_NO_TYPE);
    assert_null(m.client_id);
    chat_proto_free(&m);

    /* a client_id of any length comes back with an error */
    memset(big, 'k', sizeof(big));
    memcpy(big, "{\"type\":\"x\",\"client_id\":\"", 25);
    memcpy(big + sizeof(big) - 2, "\"}", 2);
    assert_int_equal(chat_proto_decode(big, sizeof(big), CHAT_PROTO_DEPTH,
                                       &m, &code, &message), -1);
    assert_string_equal(code, CHAT_TEST_TYPE);
    assert_int_equal(m.client_id_len, sizeof(big) - 27);
    chat_proto_free(&m);

    assert_string_equal(chat_proto_type_name(CHAT_PROTO_PING), "ping");
    assert_string_equal(chat_proto_type_name(CHAT_PROTO_SEND), "send");
    assert_string_equal(chat_proto_type_name(CHAT_PROTO_RECEIPT), "receipt");
    assert_string_equal(chat_proto_type_name(CHAT_PROTO_TYPING), "typing");
    assert_string_equal(chat_proto_type_name(CHAT_PROTO_SYNC), "sync");
    assert_null(chat_proto_type_name(0));
    assert_null(chat_proto_type_name(CHAT_PROTO_SYNC + 1));
    assert_null(chat_proto_type_name((chat_proto_type_e) -1));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(chat_test_json_errors),
        cmocka_unit_test(chat_test_types),
        cmocka_unit_test(chat_test_ping_sync),
        cmocka_unit_test(chat_test_send_valid),
        cmocka_unit_test(chat_test_send_errors),
        cmocka_unit_test(chat_test_send_tokens),
        cmocka_unit_test(chat_test_limits),
        cmocka_unit_test(chat_test_receipt),
        cmocka_unit_test(chat_test_receipt_ids),
        cmocka_unit_test(chat_test_typing),
        cmocka_unit_test(chat_test_edges),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
