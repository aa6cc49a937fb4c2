
/*
 * Unit tests for src/common/chat_json.c.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chat_json.h"


#define CHAT_TEST_LEN(s)  (sizeof(s) - 1)

#define chat_test_depth(s, max)                                               \
    chat_json_check_depth(s, CHAT_TEST_LEN(s), max)


typedef struct {
    const char  *text;
    size_t       len;
    const char  *err;      /* NULL: parses */
} chat_test_body_t;


#define CHAT_TEST_BODY(s, err)  { s, CHAT_TEST_LEN(s), err }


static const char  chat_test_fields[] =
    "{\"s\":\"hi\",\"e\":\"\",\"z\":null,\"i\":42,\"neg\":-5,\"zero\":0,"
    "\"max\":9223372036854775807,\"min\":-9223372036854775808,"
    "\"r\":1.0,\"big\":1e3,\"t\":true,\"f\":false,\"a\":[1],\"o\":{},"
    "\"u\":\"\xc3\xa9\\u00e9\",\"is\":\"42\"}";


static void
chat_test_depth_boundary(void **state)
{
    char      buf[2 * 200];
    unsigned  d, i;

    (void) state;

    assert_int_equal(chat_json_check_depth("", 0, 0), 0);
    assert_int_equal(chat_json_check_depth(NULL, 0, 0), 0);
    assert_int_equal(chat_test_depth("42", 0), 0);
    assert_int_equal(chat_test_depth("\"a\"", 0), 0);
    assert_int_equal(chat_test_depth("{}", 0), -1);
    assert_int_equal(chat_test_depth("{}", 1), 0);
    assert_int_equal(chat_test_depth("[]", 0), -1);
    assert_int_equal(chat_test_depth("[]", 1), 0);
    assert_int_equal(chat_test_depth("[[]]", 1), -1);
    assert_int_equal(chat_test_depth("[[]]", 2), 0);
    assert_int_equal(chat_test_depth("[[],[],{}]", 2), 0);
    assert_int_equal(chat_test_depth("[[],[[]],{}]", 2), -1);
    assert_int_equal(chat_test_depth("{\"a\":[{\"b\":[]}]}", 4), 0);
    assert_int_equal(chat_test_depth("{\"a\":[{\"b\":[]}]}", 3), -1);
    assert_int_equal(chat_test_depth("{\"a\":[1,2],\"b\":{\"c\":{}}}", 3), 0);
    assert_int_equal(chat_test_depth("{\"a\":[1,2],\"b\":{\"c\":{}}}", 2), -1);

    /* every depth exactly at and just over the limit */
    for (d = 1; d <= 200; d++) {
        for (i = 0; i < d; i++) {
            buf[i] = (i % 2) ? '{' : '[';
            buf[2 * d - 1 - i] = (i % 2) ? '}' : ']';
        }

        assert_int_equal(chat_json_check_depth(buf, 2 * d, d), 0);
        assert_int_equal(chat_json_check_depth(buf, 2 * d, d - 1), -1);
        assert_int_equal(chat_json_check_depth(buf, 2 * d, 1000), 0);
    }

    assert_int_equal(chat_json_check_depth("[[[", 3, UINT32_MAX), -1);
}


static void
chat_test_depth_strings(void **state)
{
    (void) state;

    /* brackets inside strings do not count */
    assert_int_equal(chat_test_depth("{\"a\":\"[[[[{{{{\"}", 1), 0);
    assert_int_equal(chat_test_depth("[\"]\"]", 1), 0);
    assert_int_equal(chat_test_depth("[\"]]]]\",\"}}}\"]", 1), 0);
    assert_int_equal(chat_test_depth("{\"[[[[\":1}", 1), 0);

    /* an escaped quote does not end the string */
    assert_int_equal(chat_test_depth("[\"\\\"[[\"]", 1), 0);
    assert_int_equal(chat_test_depth("[\"\\\"]\"]", 1), 0);
    assert_int_equal(chat_test_depth("[\"a\\\"]\"", 1), -1);

    /* an escaped backslash does not escape the quote after it */
    assert_int_equal(chat_test_depth("[\"\\\\\",[]]", 2), 0);
    assert_int_equal(chat_test_depth("[\"\\\\\",[]]", 1), -1);
    assert_int_equal(chat_test_depth("[\"\\\\\\\\\"]", 1), 0);
    assert_int_equal(chat_test_depth("[\"\\\\\\\"\"]", 1), 0);

    /* other escapes, \u included, are one byte then plain text */
    assert_int_equal(chat_test_depth("[\"\\u005d\\n\\/\"]", 1), 0);

    /* strings between containers, and keys */
    assert_int_equal(chat_test_depth("{\"}\":{\"]\":[\"{\"]}}", 3), 0);
    assert_int_equal(chat_test_depth("{\"}\":{\"]\":[\"{\"]}}", 2), -1);
}


static void
chat_test_depth_unbalanced(void **state)
{
    char    *deep;
    size_t   n;

    (void) state;

    assert_int_equal(chat_test_depth("[", 8), -1);
    assert_int_equal(chat_test_depth("{", 8), -1);
    assert_int_equal(chat_test_depth("]", 8), -1);
    assert_int_equal(chat_test_depth("}", 8), -1);
    assert_int_equal(chat_test_depth("[]]", 8), -1);
    assert_int_equal(chat_test_depth("[[]", 8), -1);
    assert_int_equal(chat_test_depth("][", 8), -1);
    assert_int_equal(chat_test_depth("}{", 8), -1);
    assert_int_equal(chat_test_depth("[]][", 8), -1);
    assert_int_equal(chat_test_depth("{\"a\":\"]\"", 8), -1);

    /* strings that never close */
    assert_int_equal(chat_test_depth("\"", 8), -1);
    assert_int_equal(chat_test_depth("[\"abc]", 8), -1);
    assert_int_equal(chat_test_depth("[\"abc\\", 8), -1);
    assert_int_equal(chat_test_depth("[\"abc\\\"]", 8), -1);

    /* only len bytes count */
    assert_int_equal(chat_json_check_depth("[]]", 2, 8), 0);
    assert_int_equal(chat_json_check_depth("[]\"", 2, 8), 0);
    assert_int_equal(chat_json_check_depth("[\"\"]", 2, 8), -1);

    /* kinds are not matched: left to the parser */
    assert_int_equal(chat_test_depth("[}", 8), 0);

    /* a very deep input fails at the limit, not by exhausting anything */
    n = 1000000;
    deep = malloc(n);
    assert_non_null(deep);
    memset(deep, '[', n);
    assert_int_equal(chat_json_check_depth(deep, n, 64), -1);
    assert_int_equal(chat_json_check_depth(deep, n, UINT32_MAX), -1);
    free(deep);
}


static void
chat_test_parse_object(void **state)
{
    size_t                         i;
    char                           err[64];
    json_t                        *obj, *obj2;
    const char                    *msg;
    static const chat_test_body_t  bodies[] = {
        CHAT_TEST_BODY("{}", NULL),
        CHAT_TEST_BODY(" \r\n\t{ \"a\" : [1, {\"b\": null}] } \n", NULL),
        CHAT_TEST_BODY("{\"a\":\"]]]\\\"}}}\"}", NULL),
        CHAT_TEST_BODY("{\"\xc3\xa9\":\"\xf0\x9f\x98\x80\"}", NULL),
        CHAT_TEST_BODY("{\"a\":1,\"A\":2}", NULL),

        CHAT_TEST_BODY("[]", "body must be a JSON object"),
        CHAT_TEST_BODY("[{}]", "body must be a JSON object"),
        CHAT_TEST_BODY("\"{}\"", "body must be a JSON object"),
        CHAT_TEST_BODY("42", "body must be a JSON object"),
        CHAT_TEST_BODY("-1.5e3", "body must be a JSON object"),
        CHAT_TEST_BODY("null", "body must be a JSON object"),
        CHAT_TEST_BODY("true", "body must be a JSON object"),

        CHAT_TEST_BODY("", "body is empty"),
        CHAT_TEST_BODY(" ", "body is not valid JSON"),
        CHAT_TEST_BODY("{", "body is not valid JSON"),
        CHAT_TEST_BODY("}", "body is not valid JSON"),
        CHAT_TEST_BODY("{\"a\"}", "body is not valid JSON"),
        CHAT_TEST_BODY("{\"a\":}", "body is not valid JSON"),
        CHAT_TEST_BODY("{a:1}", "body is not valid JSON"),
        CHAT_TEST_BODY("{'a':1}", "body is not valid JSON"),
        CHAT_TEST_BODY("{\"a\":1,}", "body is not valid JSON"),
        CHAT_TEST_BODY("{\"a\":01}", "body is not valid JSON"),
        CHAT_TEST_BODY("{\"a\":NaN}", "body is not valid JSON"),
        CHAT_TEST_BODY("{\"a\":\"\\x41\"}", "body is not valid JSON"),
        CHAT_TEST_BODY("{\"a\":\"\\ud800\"}", "body is not valid JSON"),
        CHAT_TEST_BODY("{\"a\":\"tab\there\"}", "body is not valid JSON"),
        CHAT_TEST_BODY("{\"a\":[}", "body is not valid JSON"),
        CHAT_TEST_BODY("{\"a\":\"unterminated}", "body is not valid JSON"),
        CHAT_TEST_BODY("{}x", "body is not valid JSON"),
        CHAT_TEST_BODY("{}{}", "body is not valid JSON"),
        CHAT_TEST_BODY("{} []", "body is not valid JSON"),
        CHAT_TEST_BODY("{}}", "body is not valid JSON"),
        CHAT_TEST_BODY("]{}[", "body is not valid JSON"),
        CHAT_TEST_BODY("}{", "body is not valid JSON"),
        CHAT_TEST_BODY("\xef\xbb\xbf{}", "body is not valid JSON"),

        CHAT_TEST_BODY("{\"a\":1,\"a\":2}", "duplicate key in JSON object"),
        CHAT_TEST_BODY("{\"a\":1,\"a\":1}", "duplicate key in JSON object"),
        CHAT_TEST_BODY("{\"o\":{\"k\":[],\"k\":{}}}",
                       "duplicate key in JSON object"),
        CHAT_TEST_BODY("{\"\\u0061\":1,\"a\":2}",
                       "duplicate key in JSON object"),

        CHAT_TEST_BODY("{\"a\":{\"b\":{\"c\":{}}}}", NULL),
        CHAT_TEST_BODY("{\"a\":{\"b\":{\"c\":{\"d\":1}}}}", NULL),
        CHAT_TEST_BODY("{\"a\":{\"b\":{\"c\":{\"d\":{}}}}}",
                       "JSON nested too deeply"),
        CHAT_TEST_BODY("{\"a\":[[[[]]]]}", "JSON nested too deeply"),
        CHAT_TEST_BODY("[[[[[[[[[[[[[[[[[[[[", "JSON nested too deeply"),
        CHAT_TEST_BODY("{\"a\":\"[[[[[[[[[[\"}", NULL),

        CHAT_TEST_BODY("{\"a\":\"\xc3\x28\"}", "body is not valid UTF-8"),
        CHAT_TEST_BODY("{\"a\":\"\xc0\xaf\"}", "body is not valid UTF-8"),
        CHAT_TEST_BODY("{\"a\":\"\xed\xa0\x80\"}", "body is not valid UTF-8"),
        CHAT_TEST_BODY("{\"a\":\"\xf4\x90\x80\x80\"}",
                       "body is not valid UTF-8"),
        CHAT_TEST_BODY("{\"a\":\"\x80\"}", "body is not valid UTF-8"),
        CHAT_TEST_BODY("{\"a\":1}\xff", "body is not valid UTF-8"),

        CHAT_TEST_BODY("{\"a\":\"x\0y\"}", "body is not valid JSON"),
        CHAT_TEST_BODY("{\"a\":1}\0", "body is not valid JSON"),
        CHAT_TEST_BODY("\0{}", "body is not valid JSON"),
        CHAT_TEST_BODY("{\"a\":\"x\\u0000y\"}", "body is not valid JSON"),
        CHAT_TEST_BODY("{\"a\\u0000\":1}", "body is not valid JSON"),
    };

    (void) state;

    for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        strcpy(err, "untouched");
        obj = chat_json_parse_object(bodies[i].text, bodies[i].len, 4, err,
                                     sizeof(err));

        /* the static-message variant agrees, and leaves *msg on success */
        msg = "untouched";
        obj2 = chat_json_load_object(bodies[i].text, bodies[i].len, 4, &msg);

        if (bodies[i].err == NULL) {
            if (obj == NULL || obj2 == NULL) {
                fail_msg("%zu: \"%s\" refused: %s / %s", i, bodies[i].text,
                         err, msg);
            }

            assert_true(json_is_object(obj));
            assert_true(json_equal(obj, obj2));
            assert_string_equal(err, "untouched");
            assert_string_equal(msg, "untouched");
            json_decref(obj);
            json_decref(obj2);
            continue;
        }

        if (obj != NULL || obj2 != NULL) {
            fail_msg("%zu: \"%s\" accepted", i, bodies[i].text);
        }

        if (strcmp(err, bodies[i].err) != 0 || strcmp(msg, err) != 0) {
            fail_msg("%zu: \"%s\": \"%s\" / \"%s\", expected \"%s\"", i,
                     bodies[i].text, err, msg, bodies[i].err);
        }
    }
}


static void
chat_test_parse_object_edges(void **state)
{
    char     err[64], small[32];
    char    *deep;
    json_t  *obj;
    size_t   n, i;

    (void) state;

    assert_null(chat_json_parse_object(NULL, 0, 4, err, sizeof(err)));
    assert_string_equal(err, "body is empty");

    /* max_depth 0 admits no object at all */
    assert_null(chat_json_parse_object("{}", 2, 0, err, sizeof(err)));
    assert_string_equal(err, "JSON nested too deeply");

    /* the message is cut to fit, or not written at all */
    memset(small, 'x', sizeof(small));
    assert_null(chat_json_parse_object("[]", 2, 4, small, 5));
    assert_string_equal(small, "body");
    assert_int_equal(small[5], 'x');

    memset(small, 'x', sizeof(small));
    n = strlen("body must be a JSON object");
    assert_null(chat_json_parse_object("[]", 2, 4, small, n));
    assert_memory_equal(small, "body must be a JSON objec", n);
    assert_int_equal(small[n], 'x');

    memset(small, 'x', sizeof(small));
    assert_null(chat_json_parse_object("[]", 2, 4, small, n + 1));
    assert_string_equal(small, "body must be a JSON object");
    assert_int_equal(small[n + 1], 'x');

    assert_null(chat_json_parse_object("[]", 2, 4, NULL, 0));
    small[0] = 'x';
    assert_null(chat_json_parse_object("[]", 2, 4, small, 0));
    assert_int_equal(small[0], 'x');

    /* only len bytes are read */
    obj = chat_json_parse_object("{}garbage", 2, 4, err, sizeof(err));
    assert_non_null(obj);
    json_decref(obj);

    /* deep input is refused before jansson recurses into it */
    n = 200000;
    deep = malloc(2 * n + 2);
    assert_non_null(deep);
    deep[0] = '{';
    memcpy(deep + 1, "\"a\":", 4);

    for (i = 5; i < n; i++) {
        deep[i] = '[';
    }

    for (i = n; i < 2 * n - 4; i++) {
        deep[i] = ']';
    }

    deep[2 * n - 4] = '}';
    assert_null(chat_json_parse_object(deep, 2 * n - 3, 64, err,
                                       sizeof(err)));
    assert_string_equal(err, "JSON nested too deeply");
    free(deep);

    /* the values come through */
    obj = chat_json_parse_object(chat_test_fields,
                                 CHAT_TEST_LEN(chat_test_fields), 4, err,
                                 sizeof(err));
    assert_non_null(obj);
    assert_int_equal(json_integer_value(json_object_get(obj, "i")), 42);
    assert_string_equal(json_string_value(json_object_get(obj, "u")),
                        "\xc3\xa9\xc3\xa9");
    json_decref(obj);
}


static json_t *
chat_test_obj(void)
{
    char     err[64];
    json_t  *obj;

    obj = chat_json_parse_object(chat_test_fields,
                                 CHAT_TEST_LEN(chat_test_fields), 4, err,
                                 sizeof(err));
    assert_non_null(obj);

    return obj;
}


static void
chat_test_get_string(void **state)
{
    size_t       len;
    json_t      *obj, *arr;
    const char  *s;

    (void) state;

    obj = chat_test_obj();

    assert_int_equal(chat_json_get_string(obj, "s", &s, &len), 0);
    assert_string_equal(s, "hi");
    assert_int_equal(len, 2);

    assert_int_equal(chat_json_get_string(obj, "e", &s, &len), 0);
    assert_string_equal(s, "");
    assert_int_equal(len, 0);

    assert_int_equal(chat_json_get_string(obj, "u", &s, NULL), 0);
    assert_string_equal(s, "\xc3\xa9\xc3\xa9");

    s = "sentinel";
    len = 99;
    assert_int_equal(chat_json_get_string(obj, "absent", &s, &len), 1);
    assert_int_equal(chat_json_get_string(obj, "S", &s, &len), 1);
    assert_int_equal(chat_json_get_string(obj, "", &s, &len), 1);
    assert_int_equal(chat_json_get_string(obj, "z", &s, &len), -1);
    assert_int_equal(chat_json_get_string(obj, "i", &s, &len), -1);
    assert_int_equal(chat_json_get_string(obj, "r", &s, &len), -1);
    assert_int_equal(chat_json_get_string(obj, "t", &s, &len), -1);
    assert_int_equal(chat_json_get_string(obj, "a", &s, &len), -1);
    assert_int_equal(chat_json_get_string(obj, "o", &s, &len), -1);
    assert_string_equal(s, "sentinel");
    assert_int_equal(len, 99);

    arr = json_array();
    assert_int_equal(chat_json_get_string(arr, "s", &s, &len), -1);
    assert_int_equal(chat_json_get_string(NULL, "s", &s, &len), -1);
    json_decref(arr);

    json_decref(obj);
}


static void
chat_test_get_int(void **state)
{
    json_t   *obj;
    int64_t   v;

    (void) state;

    obj = chat_test_obj();

    assert_int_equal(chat_json_get_int(obj, "i", &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(chat_json_get_int(obj, "neg", &v), 0);
    assert_int_equal(v, -5);
    assert_int_equal(chat_json_get_int(obj, "zero", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(chat_json_get_int(obj, "max", &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(chat_json_get_int(obj, "min", &v), 0);
    assert_true(v == INT64_MIN);

    v = 7;
    assert_int_equal(chat_json_get_int(obj, "absent", &v), 1);
    assert_int_equal(chat_json_get_int(obj, "r", &v), -1);
    assert_int_equal(chat_json_get_int(obj, "big", &v), -1);
    assert_int_equal(chat_json_get_int(obj, "is", &v), -1);
    assert_int_equal(chat_json_get_int(obj, "z", &v), -1);
    assert_int_equal(chat_json_get_int(obj, "t", &v), -1);
    assert_int_equal(chat_json_get_int(obj, "f", &v), -1);
    assert_int_equal(chat_json_get_int(obj, "a", &v), -1);
    assert_int_equal(chat_json_get_int(obj, "o", &v), -1);
    assert_int_equal(chat_json_get_int(NULL, "i", &v), -1);
    assert_int_equal(v, 7);

    json_decref(obj);
}


static void
chat_test_get_bool(void **state)
{
    int      b;
    json_t  *obj;

    (void) state;

    obj = chat_test_obj();

    b = 7;
    assert_int_equal(chat_json_get_bool(obj, "t", &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(chat_json_get_bool(obj, "f", &b), 0);
    assert_int_equal(b, 0);

    b = 7;
    assert_int_equal(chat_json_get_bool(obj, "absent", &b), 1);
    assert_int_equal(chat_json_get_bool(obj, "i", &b), -1);
    assert_int_equal(chat_json_get_bool(obj, "zero", &b), -1);
    assert_int_equal(chat_json_get_bool(obj, "z", &b), -1);
    assert_int_equal(chat_json_get_bool(obj, "s", &b), -1);
    assert_int_equal(chat_json_get_bool(obj, "e", &b), -1);
    assert_int_equal(chat_json_get_bool(obj, "a", &b), -1);
    assert_int_equal(chat_json_get_bool(NULL, "t", &b), -1);
    assert_int_equal(b, 7);

    json_decref(obj);
}


static void
chat_test_get_id(void **state)
{
    size_t       i;
    char         text[128];
    json_t      *obj;
    uint64_t     id;
    static const struct {
        const char  *json;
        int          rc;
        uint64_t     id;
    } cases[] = {
        { "1", 0, 1 },
        { "42", 0, 42 },
        { "9223372036854775807", 0, INT64_MAX },
        { "\"1\"", 0, 1 },
        { "\"42\"", 0, 42 },
        { "\"9223372036854775807\"", 0, INT64_MAX },
        { "\"1000000000000000000\"", 0, 1000000000000000000ULL },
        { "0", -1, 0 },
        { "-0", -1, 0 },
        { "-1", -1, 0 },
        { "-9223372036854775808", -1, 0 },
        { "1.0", -1, 0 },
        { "42.5", -1, 0 },
        { "1e3", -1, 0 },
        { "null", -1, 0 },
        { "true", -1, 0 },
        { "false", -1, 0 },
        { "[42]", -1, 0 },
        { "{\"id\":42}", -1, 0 },
        { "\"\"", -1, 0 },
        { "\"0\"", -1, 0 },
        { "\"00\"", -1, 0 },
        { "\"007\"", -1, 0 },
        { "\"-1\"", -1, 0 },
        { "\"+1\"", -1, 0 },
        { "\"-0\"", -1, 0 },
        { "\" 1\"", -1, 0 },
        { "\"1 \"", -1, 0 },
        { "\"1\\n\"", -1, 0 },
        { "\"1.0\"", -1, 0 },
        { "\"1e3\"", -1, 0 },
        { "\"0x1f\"", -1, 0 },
        { "\"12a\"", -1, 0 },
        { "\"a12\"", -1, 0 },
        { "\"1,000\"", -1, 0 },
        { "\"\xd9\xa1\"", -1, 0 },
        { "\"\xef\xbc\x91\"", -1, 0 },
        { "\"9223372036854775808\"", -1, 0 },
        { "\"9999999999999999999\"", -1, 0 },
        { "\"10000000000000000000\"", -1, 0 },
        { "\"18446744073709551616\"", -1, 0 },
        { "\"123456789012345678901234567890\"", -1, 0 },
    };

    (void) state;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text), "{\"id\":%s}", cases[i].json);
        obj = json_loads(text, 0, NULL);
        assert_non_null(obj);

        id = 12345;

        if (chat_json_get_id(obj, "id", &id) != cases[i].rc) {
            fail_msg("%s: rc %d", cases[i].json,
                     chat_json_get_id(obj, "id", &id));
        }

        if (id != (cases[i].rc == 0 ? cases[i].id : 12345)) {
            fail_msg("%s: id %llu", cases[i].json, (unsigned long long) id);
        }

        assert_int_equal(chat_json_get_id(obj, "other", &id), 1);

        json_decref(obj);
    }

    assert_int_equal(chat_json_get_id(NULL, "id", &id), -1);
}


static void
chat_test_parse_id(void **state)
{
    uint64_t  id;

    (void) state;

    assert_int_equal(chat_json_parse_id("123", 3, &id), 0);
    assert_int_equal(id, 123);

    /* only len bytes: a path segment inside a longer URI */
    assert_int_equal(chat_json_parse_id("123/members", 3, &id), 0);
    assert_int_equal(id, 123);
    assert_int_equal(chat_json_parse_id("123", 2, &id), 0);
    assert_int_equal(id, 12);

    id = 5;
    assert_int_equal(chat_json_parse_id("123", 0, &id), -1);
    assert_int_equal(chat_json_parse_id(NULL, 0, &id), -1);
    assert_int_equal(chat_json_parse_id("1\0", 2, &id), -1);
    assert_int_equal(chat_json_parse_id("9223372036854775807", 19, &id), 0);
    assert_true(id == INT64_MAX);
    assert_int_equal(chat_json_parse_id("9223372036854775808", 19, &id), -1);
    assert_int_equal(chat_json_parse_id("09223372036854775807", 20, &id),
                     -1);
    assert_true(id == INT64_MAX);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(chat_test_depth_boundary),
        cmocka_unit_test(chat_test_depth_strings),
        cmocka_unit_test(chat_test_depth_unbalanced),
        cmocka_unit_test(chat_test_parse_object),
        cmocka_unit_test(chat_test_parse_object_edges),
        cmocka_unit_test(chat_test_get_string),
        cmocka_unit_test(chat_test_get_int),
        cmocka_unit_test(chat_test_get_bool),
        cmocka_unit_test(chat_test_get_id),
        cmocka_unit_test(chat_test_parse_id),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
