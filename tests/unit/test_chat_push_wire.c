
/*
 * Unit tests for src/common/chat_push_wire.c.
 *
 * The expected bodies are written out here by hand, in the shapes the
 * providers document: FCM's HTTP v1 "messages:send" request (a Message
 * with token, notification, data of strings, android and apns overrides)
 * and APNs' payload (an "aps" dictionary and custom keys beside it).  The
 * answers read by chat_push_classify() are the error bodies the two
 * document: APNs {"reason":"BadDeviceToken"} and {"reason":"Unregistered",
 * "timestamp":...}, FCM's google.rpc.Status with an FcmError detail.  The
 * JWTs are checked by decoding them here and verifying their signatures
 * with OpenSSL against keys made in the test.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "chat_test.h"
#include "chat_base64.h"
#include "chat_push_wire.h"


#define CHAT_TEST_TS     1700000000123LL
#define CHAT_TEST_IAT    1700000000LL
#define CHAT_TEST_HEX64                                                       \
    "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef"

/* U+2026 and U+FFFD as UTF-8 */
#define CHAT_TEST_ELLIPSIS  "\xe2\x80\xa6"
#define CHAT_TEST_FFFD      "\xef\xbf\xbd"


static void
chat_test_note_1to1(chat_push_note_t *n, int platform, const char *token)
{
    memset(n, 0, sizeof(chat_push_note_t));
    n->token = token;
    n->platform = platform;
    n->user_id = 2;
    n->message_id = "01HF8Z3QK9";
    n->from = 1;
    n->to = 2;
    n->preview = "hi \"there\"";
    n->count = 1;
    n->ts = CHAT_TEST_TS;
    n->conv = "d:1:2";
}


static void
chat_test_note_group(chat_push_note_t *n, int platform, const char *token)
{
    memset(n, 0, sizeof(chat_push_note_t));
    n->token = token;
    n->platform = platform;
    n->user_id = 7;
    n->message_id = "01HF8Z3QKC";
    n->from = 1;
    n->group = 5;
    n->preview = "h\xc3\xa9llo all";
    n->count = 20;
    n->ts = CHAT_TEST_TS;
    n->conv = "g:5";
}


static void
chat_test_body(char *got, const char *expected)
{
    assert_non_null(got);
    assert_string_equal(got, expected);
    free(got);
}


/* --- bodies ---------------------------------------------------------- */

static void
chat_test_webhook(void **state)
{
    char              pv[CHAT_PUSH_PREVIEW_MAX], big[300];
    chat_push_note_t  n;

    (void) state;

    chat_test_note_1to1(&n, CHAT_PUSH_WEBHOOK, "tok-1");
    chat_test_body(chat_push_webhook_body(&n),
        "{\"token\":\"tok-1\",\"platform\":\"webhook\",\"user_id\":2,"
        "\"message_id\":\"01HF8Z3QK9\",\"from\":1,\"to\":2,"
        "\"preview\":\"hi \\\"there\\\"\",\"count\":1,"
        "\"ts\":1700000000123}");

    chat_test_note_group(&n, CHAT_PUSH_FCM, "tok:2");
    chat_test_body(chat_push_webhook_body(&n),
        "{\"token\":\"tok:2\",\"platform\":\"fcm\",\"user_id\":7,"
        "\"message_id\":\"01HF8Z3QKC\",\"from\":1,\"group\":5,"
        "\"preview\":\"h\xc3\xa9llo all\",\"count\":20,"
        "\"ts\":1700000000123}");

    /* e2e: no preview at all */
    chat_test_note_1to1(&n, CHAT_PUSH_WEBHOOK, "tok-1");
    n.e2e = 1;
    n.preview = chat_push_preview("ciphertext", 10, 0, 1, pv);
    assert_null(n.preview);
    chat_test_body(chat_push_webhook_body(&n),
        "{\"token\":\"tok-1\",\"platform\":\"webhook\",\"user_id\":2,"
        "\"message_id\":\"01HF8Z3QK9\",\"from\":1,\"to\":2,\"count\":1,"
        "\"ts\":1700000000123}");

    /* a preview cut at 100 characters, on a two-byte character */
    memset(big, 0, sizeof(big));
    for (int i = 0; i < 101; i++) {
        memcpy(big + 2 * i, "\xc3\xa9", 2);
    }

    n.e2e = 0;
    n.preview = chat_push_preview(big, 202, 0, 0, pv);
    assert_non_null(n.preview);
    big[200] = '\0';
    {
        char  expected[1024];

        snprintf(expected, sizeof(expected),
                 "{\"token\":\"tok-1\",\"platform\":\"webhook\",\"user_id\":2,"
                 "\"message_id\":\"01HF8Z3QK9\",\"from\":1,\"to\":2,"
                 "\"preview\":\"%s" CHAT_TEST_ELLIPSIS "\",\"count\":1,"
                 "\"ts\":1700000000123}", big);
        chat_test_body(chat_push_webhook_body(&n), expected);
    }

    /* an empty body with an image */
    n.preview = chat_push_preview("", 0, 1, 0, pv);
    chat_test_body(chat_push_webhook_body(&n),
        "{\"token\":\"tok-1\",\"platform\":\"webhook\",\"user_id\":2,"
        "\"message_id\":\"01HF8Z3QK9\",\"from\":1,\"to\":2,"
        "\"preview\":\"[image]\",\"count\":1,\"ts\":1700000000123}");

    /* strings that are not UTF-8 make no body */
    n.token = "\xff";
    assert_null(chat_push_webhook_body(&n));
    n.token = NULL;
    assert_null(chat_push_webhook_body(&n));
}


static void
chat_test_fcm(void **state)
{
    chat_push_note_t  n;

    (void) state;

    chat_test_note_1to1(&n, CHAT_PUSH_FCM, "fcm:TOK_1-a");
    chat_test_body(chat_push_fcm_body(&n),
        "{\"message\":{\"token\":\"fcm:TOK_1-a\","
        "\"notification\":{\"title\":\"New message\","
        "\"body\":\"hi \\\"there\\\"\"},"
        "\"data\":{\"message_id\":\"01HF8Z3QK9\",\"from\":\"1\",\"to\":\"2\","
        "\"count\":\"1\",\"ts\":\"1700000000123\"},"
        "\"android\":{\"priority\":\"high\",\"collapse_key\":\"d:1:2\"},"
        "\"apns\":{\"headers\":{\"apns-collapse-id\":\"d:1:2\"},"
        "\"payload\":{\"aps\":{\"thread-id\":\"d:1:2\"}}}}}");

    chat_test_note_group(&n, CHAT_PUSH_FCM, "fcm:TOK_2");
    chat_test_body(chat_push_fcm_body(&n),
        "{\"message\":{\"token\":\"fcm:TOK_2\","
        "\"notification\":{\"title\":\"20 new messages\","
        "\"body\":\"h\xc3\xa9llo all\"},"
        "\"data\":{\"message_id\":\"01HF8Z3QKC\",\"from\":\"1\","
        "\"group\":\"5\",\"count\":\"20\",\"ts\":\"1700000000123\"},"
        "\"android\":{\"priority\":\"high\",\"collapse_key\":\"g:5\"},"
        "\"apns\":{\"headers\":{\"apns-collapse-id\":\"g:5\"},"
        "\"payload\":{\"aps\":{\"thread-id\":\"g:5\"}}}}}");

    /* e2e: a title, no body; mutable-content for the iOS extension */
    chat_test_note_1to1(&n, CHAT_PUSH_FCM, "fcm:TOK_1-a");
    n.preview = NULL;
    n.e2e = 1;
    n.count = 3;
    chat_test_body(chat_push_fcm_body(&n),
        "{\"message\":{\"token\":\"fcm:TOK_1-a\","
        "\"notification\":{\"title\":\"3 new messages\"},"
        "\"data\":{\"message_id\":\"01HF8Z3QK9\",\"from\":\"1\",\"to\":\"2\","
        "\"count\":\"3\",\"ts\":\"1700000000123\"},"
        "\"android\":{\"priority\":\"high\",\"collapse_key\":\"d:1:2\"},"
        "\"apns\":{\"headers\":{\"apns-collapse-id\":\"d:1:2\"},"
        "\"payload\":{\"aps\":{\"thread-id\":\"d:1:2\","
        "\"mutable-content\":1}}}}}");

    /* a conv too long for apns-collapse-id: the header is left out */
    n.conv = "d:1234567890123456789:1234567890123456789:"
             "12345678901234567890123";
    assert_true(strlen(n.conv) > CHAT_PUSH_COLLAPSE_MAX);
    {
        char  *b;

        b = chat_push_fcm_body(&n);
        assert_non_null(b);
        assert_null(strstr(b, "apns-collapse-id"));
        assert_non_null(strstr(b, "\"apns\":{\"payload\":"));
        free(b);
    }

    n.conv = NULL;
    assert_null(chat_push_fcm_body(&n));
}


static void
chat_test_apns(void **state)
{
    chat_push_note_t  n;

    (void) state;

    chat_test_note_1to1(&n, CHAT_PUSH_APNS, CHAT_TEST_HEX64);
    chat_test_body(chat_push_apns_body(&n),
        "{\"aps\":{\"alert\":{\"title\":\"New message\","
        "\"body\":\"hi \\\"there\\\"\"},\"thread-id\":\"d:1:2\"},"
        "\"message_id\":\"01HF8Z3QK9\",\"from\":1,\"to\":2,\"count\":1,"
        "\"ts\":1700000000123}");

    chat_test_note_group(&n, CHAT_PUSH_APNS, CHAT_TEST_HEX64);
    chat_test_body(chat_push_apns_body(&n),
        "{\"aps\":{\"alert\":{\"title\":\"20 new messages\","
        "\"body\":\"h\xc3\xa9llo all\"},\"thread-id\":\"g:5\"},"
        "\"message_id\":\"01HF8Z3QKC\",\"from\":1,\"group\":5,\"count\":20,"
        "\"ts\":1700000000123}");

    n.preview = NULL;
    n.e2e = 1;
    chat_test_body(chat_push_apns_body(&n),
        "{\"aps\":{\"alert\":{\"title\":\"20 new messages\"},"
        "\"thread-id\":\"g:5\",\"mutable-content\":1},"
        "\"message_id\":\"01HF8Z3QKC\",\"from\":1,\"group\":5,\"count\":20,"
        "\"ts\":1700000000123}");
}


/* --- previews -------------------------------------------------------- */

static void
chat_test_preview(void **state)
{
    int          i;
    char         out[CHAT_PUSH_PREVIEW_MAX], in[1024], exp[1024];
    const char  *p;

    (void) state;

    assert_null(chat_push_preview("secret", 6, 0, 1, out));
    assert_null(chat_push_preview("", 0, 1, 1, out));
    assert_string_equal(chat_push_preview("", 0, 1, 0, out), "[image]");
    assert_string_equal(chat_push_preview(NULL, 0, 1, 0, out), "[image]");
    assert_string_equal(chat_push_preview("", 0, 0, 0, out), "");
    assert_string_equal(chat_push_preview("look", 4, 1, 0, out), "look");
    assert_string_equal(chat_push_preview("hello!", 5, 0, 0, out), "hello");

    /* exactly 100 characters: not cut */
    memset(in, 'a', 100);
    p = chat_push_preview(in, 100, 0, 0, out);
    assert_int_equal(strlen(p), 100);
    assert_null(strstr(p, CHAT_TEST_ELLIPSIS));

    /* 101: 100 and the ellipsis */
    memset(in, 'a', 101);
    memcpy(exp, in, 100);
    memcpy(exp + 100, CHAT_TEST_ELLIPSIS, 4);
    assert_string_equal(chat_push_preview(in, 101, 0, 0, out), exp);

    /* three-byte characters: 150 in, 100 (300 bytes) out */
    for (i = 0; i < 150; i++) {
        memcpy(in + 3 * i, "\xe6\x97\xa5", 3);
    }

    p = chat_push_preview(in, 450, 0, 0, out);
    assert_int_equal(strlen(p), 303);
    assert_memory_equal(p, in, 300);
    assert_string_equal(p + 300, CHAT_TEST_ELLIPSIS);

    /* 99 ASCII and a four-byte emoji: the emoji is the 100th, kept whole */
    memset(in, 'b', 99);
    memcpy(in + 99, "\xf0\x9f\x98\x80xyz", 7);
    p = chat_push_preview(in, 106, 0, 0, out);
    assert_int_equal(strlen(p), 99 + 4 + 3);
    assert_memory_equal(p + 99, "\xf0\x9f\x98\x80" CHAT_TEST_ELLIPSIS, 8);

    /* 100 four-byte characters and more: the largest output fits */
    for (i = 0; i < 200; i++) {
        memcpy(in + 4 * i, "\xf0\x9f\x98\x80", 4);
    }

    p = chat_push_preview(in, 800, 0, 0, out);
    assert_int_equal(strlen(p), CHAT_PUSH_PREVIEW_MAX - 1);

    /* what is not UTF-8 becomes U+FFFD, one character each */
    assert_string_equal(chat_push_preview("a\xff" "b", 3, 0, 0, out),
                        "a" CHAT_TEST_FFFD "b");
    assert_string_equal(chat_push_preview("\xe6\x97", 2, 0, 0, out),
                        CHAT_TEST_FFFD CHAT_TEST_FFFD);
    assert_string_equal(chat_push_preview("\xc0\xaf", 2, 0, 0, out),
                        CHAT_TEST_FFFD CHAT_TEST_FFFD);
    assert_string_equal(chat_push_preview("\xed\xa0\x80", 3, 0, 0, out),
                        CHAT_TEST_FFFD CHAT_TEST_FFFD CHAT_TEST_FFFD);
    assert_string_equal(chat_push_preview("a\0b", 3, 0, 0, out),
                        "a" CHAT_TEST_FFFD "b");

    /* 200 bytes of 0xff: 100 replacement characters and the ellipsis */
    memset(in, 0xff, 200);
    p = chat_push_preview(in, 200, 0, 0, out);
    assert_int_equal(strlen(p), 303);

    /* random bytes: always valid UTF-8 within the buffer */
    chat_test_rng_state = 16;

    for (i = 0; i < 2000; i++) {
        int     k, len;
        char   *b;
        size_t  pl;

        len = (int) (chat_test_rand() % 600);

        for (k = 0; k < len; k++) {
            in[k] = (char) chat_test_rand();
        }

        p = chat_push_preview(in, len, 0, 0, out);
        pl = strlen(p);
        assert_true(pl < CHAT_PUSH_PREVIEW_MAX);

        /* jansson takes only valid UTF-8: a body means it was */
        {
            chat_push_note_t  n;

            chat_test_note_1to1(&n, CHAT_PUSH_WEBHOOK, "t");
            n.preview = p;
            b = chat_push_webhook_body(&n);
            assert_non_null(b);
            free(b);
        }
    }
}


/* --- tokens ---------------------------------------------------------- */

static void
chat_test_tokens(void **state)
{
    char  buf[CHAT_PUSH_TOKEN_MAX + 2], path[CHAT_PUSH_APNS_PATH_MAX];

    (void) state;

    assert_int_equal(chat_push_platform("webhook"), CHAT_PUSH_WEBHOOK);
    assert_int_equal(chat_push_platform("fcm"), CHAT_PUSH_FCM);
    assert_int_equal(chat_push_platform("apns"), CHAT_PUSH_APNS);
    assert_int_equal(chat_push_platform("FCM"), -1);
    assert_int_equal(chat_push_platform(""), -1);
    assert_int_equal(chat_push_platform(NULL), -1);

    /* APNs: the path with a good token */
    assert_int_equal(chat_push_apns_path(CHAT_TEST_HEX64, path, sizeof(path)),
                     10 + 64);
    assert_string_equal(path, "/3/device/" CHAT_TEST_HEX64);

    /* too small a buffer */
    assert_int_equal(chat_push_apns_path(CHAT_TEST_HEX64, path, 74), -1);
    assert_string_equal(path, "");

    /* refused: non-hex, traversal, escapes, lengths */
    assert_int_equal(chat_push_apns_path(
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
        path, sizeof(path)), -1);
    assert_int_equal(chat_push_apns_path(
        "../../../../0123456789abcdef0123456789abcdef0123456789abcdef0123",
        path, sizeof(path)), -1);
    assert_int_equal(chat_push_apns_path(
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789%2F",
        path, sizeof(path)), -1);
    assert_int_equal(chat_push_apns_path(
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abc?x",
        path, sizeof(path)), -1);
    assert_int_equal(chat_push_apns_path(NULL, path, sizeof(path)), -1);

    memset(buf, 'a', sizeof(buf));
    buf[63] = '\0';
    assert_int_equal(chat_push_apns_path(buf, path, sizeof(path)), -1);
    buf[63] = 'a';
    buf[64] = '\0';
    assert_int_equal(chat_push_apns_path(buf, path, sizeof(path)), 74);
    buf[64] = 'a';
    buf[200] = '\0';
    assert_int_equal(chat_push_apns_path(buf, path, sizeof(path)), 210);
    buf[200] = 'a';
    buf[201] = '\0';
    assert_int_equal(chat_push_apns_path(buf, path, sizeof(path)), -1);
    buf[201] = 'a';
    buf[4096] = '\0';
    assert_int_equal(chat_push_apns_path(buf, path, sizeof(path)), -1);
    assert_false(chat_push_token_ok(CHAT_PUSH_APNS, buf));

    /* FCM: the charset, 1..4096 */
    assert_true(chat_push_token_ok(CHAT_PUSH_FCM,
        "dXk2-q_Ab:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"));
    assert_true(chat_push_token_ok(CHAT_PUSH_FCM, buf));
    assert_false(chat_push_token_ok(CHAT_PUSH_FCM, ""));
    assert_false(chat_push_token_ok(CHAT_PUSH_FCM, "a/b"));
    assert_false(chat_push_token_ok(CHAT_PUSH_FCM, "a b"));
    assert_false(chat_push_token_ok(CHAT_PUSH_FCM, "a.b"));
    assert_false(chat_push_token_ok(CHAT_PUSH_FCM, "a%2Fb"));
    assert_false(chat_push_token_ok(CHAT_PUSH_FCM, "a\"b"));
    assert_false(chat_push_token_ok(CHAT_PUSH_FCM, "a\nb"));
    assert_false(chat_push_token_ok(CHAT_PUSH_FCM, "\xc3\xa9"));
    buf[4096] = 'a';
    buf[4097] = '\0';
    assert_false(chat_push_token_ok(CHAT_PUSH_FCM, buf));
    assert_false(chat_push_token_ok(CHAT_PUSH_WEBHOOK, buf));

    /* webhook: UTF-8, anything, it only goes into the JSON body */
    assert_true(chat_push_token_ok(CHAT_PUSH_WEBHOOK, "a b/../%2F\"\xc3\xa9"));
    assert_true(chat_push_token_ok(CHAT_PUSH_WEBHOOK, "x"));
    assert_false(chat_push_token_ok(CHAT_PUSH_WEBHOOK, ""));
    assert_false(chat_push_token_ok(CHAT_PUSH_WEBHOOK, "\xff"));
    assert_false(chat_push_token_ok(CHAT_PUSH_WEBHOOK, NULL));
    buf[4096] = '\0';
    assert_true(chat_push_token_ok(CHAT_PUSH_WEBHOOK, buf));

    assert_false(chat_push_token_ok(3, "abc"));
    assert_false(chat_push_token_ok(-1, "abc"));
}


/* --- answers --------------------------------------------------------- */

typedef struct {
    int                   platform;
    long                  status;
    const char           *body;
    chat_push_outcome_e   expected;
    const char           *reason;
} chat_test_answer_t;


#define CHAT_TEST_FCM_ERR(code, st, msg, ec)                                  \
    "{\"error\":{\"code\":" #code ",\"message\":\"" msg "\",\"status\":\""   \
    st "\",\"details\":[{\"@type\":"                                          \
    "\"type.googleapis.com/google.firebase.fcm.v1.FcmError\","                \
    "\"errorCode\":\"" ec "\"}]}}"


static const chat_test_answer_t  chat_test_answers[] = {

    /* every provider: success, retries */
    { CHAT_PUSH_WEBHOOK, 200, NULL, CHAT_PUSH_OK, "ok" },
    { CHAT_PUSH_WEBHOOK, 204, "", CHAT_PUSH_OK, "ok" },
    { CHAT_PUSH_WEBHOOK, 0, NULL, CHAT_PUSH_RETRY, "transport" },
    { CHAT_PUSH_WEBHOOK, 500, "oops", CHAT_PUSH_RETRY, "http_500" },
    { CHAT_PUSH_WEBHOOK, 503, NULL, CHAT_PUSH_RETRY, "http_503" },
    { CHAT_PUSH_WEBHOOK, 429, NULL, CHAT_PUSH_RETRY, "http_429" },
    { CHAT_PUSH_WEBHOOK, 408, NULL, CHAT_PUSH_RETRY, "http_408" },
    { CHAT_PUSH_WEBHOOK, 404, NULL, CHAT_PUSH_INVALID, "http_404" },
    { CHAT_PUSH_WEBHOOK, 410, NULL, CHAT_PUSH_INVALID, "http_410" },
    { CHAT_PUSH_WEBHOOK, 400, NULL, CHAT_PUSH_FAIL, "http_400" },
    { CHAT_PUSH_WEBHOOK, 401, NULL, CHAT_PUSH_FAIL, "http_401" },
    { CHAT_PUSH_WEBHOOK, 403, NULL, CHAT_PUSH_FAIL, "http_403" },
    { CHAT_PUSH_WEBHOOK, 413, NULL, CHAT_PUSH_FAIL, "http_413" },
    { CHAT_PUSH_WEBHOOK, 301, NULL, CHAT_PUSH_FAIL, "http_301" },
    { CHAT_PUSH_WEBHOOK, 100, NULL, CHAT_PUSH_FAIL, "http_100" },
    { CHAT_PUSH_WEBHOOK, 600, NULL, CHAT_PUSH_FAIL, "http_600" },
    { CHAT_PUSH_WEBHOOK, -1, NULL, CHAT_PUSH_FAIL, "http_-1" },

    /* FCM */
    { CHAT_PUSH_FCM, 200, "{\"name\":\"projects/p/messages/0:1\"}",
      CHAT_PUSH_OK, "ok" },
    { CHAT_PUSH_FCM, 404,
      CHAT_TEST_FCM_ERR(404, "NOT_FOUND", "Requested entity was not found.",
                        "UNREGISTERED"),
      CHAT_PUSH_INVALID, "UNREGISTERED" },
    { CHAT_PUSH_FCM, 400,
      CHAT_TEST_FCM_ERR(400, "INVALID_ARGUMENT", "The registration token is "
                        "not a valid FCM registration token",
                        "INVALID_ARGUMENT"),
      CHAT_PUSH_INVALID, "INVALID_ARGUMENT" },
    { CHAT_PUSH_FCM, 400,
      CHAT_TEST_FCM_ERR(400, "INVALID_ARGUMENT", "Invalid JSON payload "
                        "received. Unknown name \\\"x\\\"",
                        "INVALID_ARGUMENT"),
      CHAT_PUSH_FAIL, "INVALID_ARGUMENT" },
    { CHAT_PUSH_FCM, 404,
      "{\"error\":{\"code\":404,\"message\":\"Requested entity was not "
      "found.\",\"status\":\"NOT_FOUND\"}}",
      CHAT_PUSH_FAIL, "NOT_FOUND" },
    { CHAT_PUSH_FCM, 401,
      "{\"error\":{\"code\":401,\"message\":\"Request had invalid "
      "authentication credentials.\",\"status\":\"UNAUTHENTICATED\"}}",
      CHAT_PUSH_REAUTH, "UNAUTHENTICATED" },
    { CHAT_PUSH_FCM, 401,
      CHAT_TEST_FCM_ERR(401, "UNAUTHENTICATED", "Auth error from APNS or "
                        "Web Push Service", "THIRD_PARTY_AUTH_ERROR"),
      CHAT_PUSH_FAIL, "THIRD_PARTY_AUTH_ERROR" },
    { CHAT_PUSH_FCM, 401, NULL, CHAT_PUSH_REAUTH, "http_401" },
    { CHAT_PUSH_FCM, 403,
      CHAT_TEST_FCM_ERR(403, "PERMISSION_DENIED", "SenderId mismatch",
                        "SENDER_ID_MISMATCH"),
      CHAT_PUSH_FAIL, "SENDER_ID_MISMATCH" },
    { CHAT_PUSH_FCM, 429,
      CHAT_TEST_FCM_ERR(429, "RESOURCE_EXHAUSTED", "Quota exceeded.",
                        "QUOTA_EXCEEDED"),
      CHAT_PUSH_RETRY, "QUOTA_EXCEEDED" },
    { CHAT_PUSH_FCM, 503,
      CHAT_TEST_FCM_ERR(503, "UNAVAILABLE", "The service is currently "
                        "unavailable.", "UNAVAILABLE"),
      CHAT_PUSH_RETRY, "UNAVAILABLE" },
    { CHAT_PUSH_FCM, 500, "<html>Internal</html>", CHAT_PUSH_RETRY,
      "http_500" },
    { CHAT_PUSH_FCM, 0, NULL, CHAT_PUSH_RETRY, "transport" },
    { CHAT_PUSH_FCM, 404, "{\"error\":", CHAT_PUSH_FAIL, "http_404" },
    { CHAT_PUSH_FCM, 404, "{\"error\":{\"details\":[1,{\"errorCode\":7}]}}",
      CHAT_PUSH_FAIL, "http_404" },
    { CHAT_PUSH_FCM, 404,
      "{\"error\":{\"details\":[{\"@type\":\"x.Other\",\"errorCode\":"
      "\"UNREGISTERED\"}]}}",
      CHAT_PUSH_FAIL, "http_404" },

    /* APNs */
    { CHAT_PUSH_APNS, 200, NULL, CHAT_PUSH_OK, "ok" },
    { CHAT_PUSH_APNS, 400, "{\"reason\":\"BadDeviceToken\"}",
      CHAT_PUSH_INVALID, "BadDeviceToken" },
    { CHAT_PUSH_APNS, 400, "{\"reason\":\"DeviceTokenNotForTopic\"}",
      CHAT_PUSH_INVALID, "DeviceTokenNotForTopic" },
    { CHAT_PUSH_APNS, 400, "{\"reason\":\"BadCollapseId\"}",
      CHAT_PUSH_FAIL, "BadCollapseId" },
    { CHAT_PUSH_APNS, 410,
      "{\"reason\":\"Unregistered\",\"timestamp\":1700000000000}",
      CHAT_PUSH_INVALID, "Unregistered" },
    { CHAT_PUSH_APNS, 410, "{\"reason\":\"ExpiredToken\"}",
      CHAT_PUSH_INVALID, "ExpiredToken" },
    { CHAT_PUSH_APNS, 410, NULL, CHAT_PUSH_INVALID, "http_410" },
    { CHAT_PUSH_APNS, 403, "{\"reason\":\"ExpiredProviderToken\"}",
      CHAT_PUSH_REAUTH, "ExpiredProviderToken" },
    { CHAT_PUSH_APNS, 403, "{\"reason\":\"InvalidProviderToken\"}",
      CHAT_PUSH_REAUTH, "InvalidProviderToken" },
    { CHAT_PUSH_APNS, 403, "{\"reason\":\"BadCertificate\"}",
      CHAT_PUSH_FAIL, "BadCertificate" },
    { CHAT_PUSH_APNS, 403, NULL, CHAT_PUSH_FAIL, "http_403" },
    { CHAT_PUSH_APNS, 413, "{\"reason\":\"PayloadTooLarge\"}",
      CHAT_PUSH_FAIL, "PayloadTooLarge" },
    { CHAT_PUSH_APNS, 429, "{\"reason\":\"TooManyProviderTokenUpdates\"}",
      CHAT_PUSH_RETRY, "TooManyProviderTokenUpdates" },
    { CHAT_PUSH_APNS, 503, "{\"reason\":\"ServiceUnavailable\"}",
      CHAT_PUSH_RETRY, "ServiceUnavailable" },
    { CHAT_PUSH_APNS, 500, "{\"reason\":\"InternalServerError\"}",
      CHAT_PUSH_RETRY, "InternalServerError" },
    { CHAT_PUSH_APNS, 400, "{\"reason\":\"Bad Device\\nToken=\\\"x\"}",
      CHAT_PUSH_FAIL, "Bad_Device_Token__x" },
    { CHAT_PUSH_APNS, 400, "{\"reason\":7}", CHAT_PUSH_FAIL, "http_400" },
    { CHAT_PUSH_APNS, 400, "[\"BadDeviceToken\"]", CHAT_PUSH_FAIL,
      "http_400" },
    { CHAT_PUSH_APNS, 400, "{\"reason\":\"BadDeviceToken\"",
      CHAT_PUSH_FAIL, "http_400" },
    { CHAT_PUSH_APNS, 400,
      "{\"reason\":\"BadDeviceToken\",\"reason\":\"Other\"}",
      CHAT_PUSH_FAIL, "http_400" },
};


static void
chat_test_classify(void **state)
{
    char                       reason[CHAT_PUSH_REASON_MAX + 1], *big;
    size_t                     i, len;
    const chat_test_answer_t  *a;

    (void) state;

    for (i = 0; i < sizeof(chat_test_answers) / sizeof(chat_test_answers[0]);
         i++)
    {
        a = &chat_test_answers[i];
        len = a->body ? strlen(a->body) : 0;

        memset(reason, 'z', sizeof(reason));

        if (chat_push_classify(a->platform, a->status, a->body, len, reason,
                               sizeof(reason))
            != a->expected)
        {
            fail_msg("answer %zu: %s %ld %s: expected %s", i,
                     chat_push_platform_name(a->platform), a->status,
                     a->body ? a->body : "-",
                     chat_push_outcome_text(a->expected));
        }

        assert_string_equal(reason, a->reason);
    }

    /* a long reason is cut, a tiny buffer still ends in NUL */
    assert_int_equal(chat_push_classify(CHAT_PUSH_APNS, 400,
        "{\"reason\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        sizeof("{\"reason\":\"\"}") - 1 + 117, reason, sizeof(reason)),
        CHAT_PUSH_FAIL);
    assert_int_equal(strlen(reason), CHAT_PUSH_REASON_MAX);

    assert_int_equal(chat_push_classify(CHAT_PUSH_APNS, 410, NULL, 0,
                                        reason, 3), CHAT_PUSH_INVALID);
    assert_string_equal(reason, "ht");
    assert_int_equal(chat_push_classify(CHAT_PUSH_APNS, 410, NULL, 0,
                                        NULL, 0), CHAT_PUSH_INVALID);

    /* huge bodies are not parsed (nor read past their length) */
    big = malloc(1 << 20);
    assert_non_null(big);
    memset(big, '[', 1 << 20);
    assert_int_equal(chat_push_classify(CHAT_PUSH_FCM, 404, big, 1 << 20,
                                        reason, sizeof(reason)),
                     CHAT_PUSH_FAIL);
    assert_int_equal(chat_push_classify(CHAT_PUSH_FCM, 404, big,
                                        CHAT_PUSH_ANSWER_MAX, reason,
                                        sizeof(reason)),
                     CHAT_PUSH_FAIL);
    memset(big, 0xff, 1 << 20);
    assert_int_equal(chat_push_classify(CHAT_PUSH_APNS, 410, big, 100,
                                        reason, sizeof(reason)),
                     CHAT_PUSH_INVALID);
    free(big);

    /* not NUL-terminated: only len bytes are read */
    assert_int_equal(chat_push_classify(CHAT_PUSH_APNS, 400,
        "{\"reason\":\"BadDeviceToken\"}xxxxx", 27, reason, sizeof(reason)),
        CHAT_PUSH_INVALID);

    assert_string_equal(chat_push_outcome_text(CHAT_PUSH_OK), "ok");
    assert_string_equal(chat_push_outcome_text(CHAT_PUSH_REAUTH), "reauth");
    assert_string_equal(chat_push_outcome_text(CHAT_PUSH_INVALID), "invalid");
}


/* --- Retry-After and backoff ----------------------------------------- */

static void
chat_test_retry_after(void **state)
{
    int64_t  now;

    (void) state;

    /* Wed, 21 Oct 2015 07:28:00 GMT is 1445412480 */
    now = 1445412480LL * 1000 - 30000;

    assert_int_equal(chat_push_retry_after("120", now), 120000);
    assert_int_equal(chat_push_retry_after(" 5\t", now), 5000);
    assert_int_equal(chat_push_retry_after("0", now), 0);
    assert_int_equal(chat_push_retry_after("86401", now), 86400000);
    assert_int_equal(chat_push_retry_after("99999999999999999999999", now),
                     86400000);
    assert_int_equal(chat_push_retry_after("Wed, 21 Oct 2015 07:28:00 GMT",
                                           now), 30000);
    assert_int_equal(chat_push_retry_after("Wednesday, 21-Oct-15 07:28:00 "
                                           "GMT", now), 30000);
    assert_int_equal(chat_push_retry_after("Wed Oct 21 07:28:00 2015", now),
                     30000);
    assert_int_equal(chat_push_retry_after("Wed, 21 Oct 2015 07:27:00 GMT",
                                           now), 0);
    assert_int_equal(chat_push_retry_after("Thu, 21 Oct 2025 07:28:00 GMT",
                                           now), 86400000);

    assert_int_equal(chat_push_retry_after(NULL, now), -1);
    assert_int_equal(chat_push_retry_after("", now), -1);
    assert_int_equal(chat_push_retry_after("  ", now), -1);
    assert_int_equal(chat_push_retry_after("-1", now), -1);
    assert_int_equal(chat_push_retry_after("1.5", now), -1);
    assert_int_equal(chat_push_retry_after("12a", now), -1);
    assert_int_equal(chat_push_retry_after("soon", now), -1);
    assert_int_equal(chat_push_retry_after("Wed, 21 Oct 2015 07:28:00 GMT x",
                                           now), -1);
    assert_int_equal(chat_push_retry_after("Wed, 32 Oct 2015 07:28:00 GMT",
                                           now), -1);
}


static void
chat_test_backoff(void **state)
{
    int      n, i;
    double   r;
    int64_t  d, b;

    (void) state;

    assert_int_equal(chat_push_backoff(1, 1000, 60000, 0.0), 500);
    assert_int_equal(chat_push_backoff(1, 1000, 60000, 0.9999999), 1000);
    assert_int_equal(chat_push_backoff(2, 1000, 60000, 0.0), 1000);
    assert_int_equal(chat_push_backoff(3, 1000, 60000, 0.0), 2000);
    assert_int_equal(chat_push_backoff(3, 1000, 60000, 0.9999999), 4000);
    assert_int_equal(chat_push_backoff(7, 1000, 60000, 0.9999999), 60000);
    assert_int_equal(chat_push_backoff(7, 1000, 60000, 0.0), 30000);
    assert_int_equal(chat_push_backoff(0, 1000, 60000, 0.0), 500);
    assert_int_equal(chat_push_backoff(-5, 1000, 60000, 0.0), 500);
    assert_int_equal(chat_push_backoff(1, 1000, 60000, -1.0), 500);
    assert_int_equal(chat_push_backoff(1, 1000, 60000, 7.0), 1000);
    assert_int_equal(chat_push_backoff(1, 1000, 60000, 0.0 / 0.0), 500);
    assert_int_equal(chat_push_backoff(2147483647, INT64_MAX / 3, INT64_MAX,
                                       0.0), INT64_MAX / 2);
    assert_true(chat_push_backoff(2147483647, 1000, INT64_MAX, 0.9999999)
                <= INT64_MAX);

    /* the bounds for every attempt, random r */
    chat_test_rng_state = 7;

    for (n = 1; n <= 70; n++) {
        d = 1000;

        for (i = 1; i < n && d < 60000; i++) {
            d = d * 2 > 60000 ? 60000 : d * 2;
        }

        for (i = 0; i < 200; i++) {
            r = (double) (chat_test_rand() >> 11) / 9007199254740992.0;
            b = chat_push_backoff(n, 1000, 60000, r);
            assert_true(b >= d / 2 && b <= d);
        }
    }
}


/* --- JWTs ------------------------------------------------------------ */

/* part i (0, 1, 2) of a JWT, base64url-decoded into out */

static size_t
chat_test_jwt_part(const char *jwt, int i, unsigned char *out)
{
    size_t       len;
    const char  *p, *e;

    p = jwt;

    while (i-- > 0) {
        p = strchr(p, '.');
        assert_non_null(p);
        p++;
    }

    e = strchr(p, '.');
    len = e ? (size_t) (e - p) : strlen(p);

    assert_int_equal(chat_base64url_check(p, len), 0);

    return chat_base64url_decode(p, len, out);
}


static int
chat_test_verify(EVP_PKEY *key, const char *jwt, const unsigned char *sig,
    size_t siglen)
{
    int          ok;
    size_t       len;
    const char  *dot;
    EVP_MD_CTX  *md;

    dot = strrchr(jwt, '.');
    assert_non_null(dot);
    len = dot - jwt;

    md = EVP_MD_CTX_new();
    assert_non_null(md);
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key),
                     1);
    ok = EVP_DigestVerify(md, sig, siglen, (const unsigned char *) jwt, len);
    EVP_MD_CTX_free(md);

    return ok == 1;
}


/* R||S back into DER, as OpenSSL verifies it */

static size_t
chat_test_der(const unsigned char raw[64], unsigned char *der)
{
    int             n;
    BIGNUM         *r, *s;
    ECDSA_SIG      *sig;
    unsigned char  *p;

    r = BN_bin2bn(raw, 32, NULL);
    s = BN_bin2bn(raw + 32, 32, NULL);
    sig = ECDSA_SIG_new();
    assert_true(r && s && sig);
    assert_int_equal(ECDSA_SIG_set0(sig, r, s), 1);

    p = der;
    n = i2d_ECDSA_SIG(sig, &p);
    ECDSA_SIG_free(sig);
    assert_true(n > 0);

    return (size_t) n;
}


static void
chat_test_es256(void **state)
{
    int             i;
    char           *jwt;
    size_t          n;
    EVP_PKEY       *key, *other, *rsa, *p384;
    unsigned char   buf[1024], der[128];

    (void) state;

    key = EVP_EC_gen("P-256");
    other = EVP_EC_gen("P-256");
    p384 = EVP_EC_gen("P-384");
    rsa = EVP_RSA_gen(2048);
    assert_true(key && other && p384 && rsa);

    assert_true(chat_push_es256_key_ok(key));
    assert_false(chat_push_es256_key_ok(p384));
    assert_false(chat_push_es256_key_ok(rsa));
    assert_false(chat_push_es256_key_ok(NULL));

    /* ECDSA signatures differ each time: check several */
    for (i = 0; i < 8; i++) {
        jwt = chat_push_apns_jwt(key, "ABC123DEFG", "DEF123GHIJ",
                                 CHAT_TEST_IAT);
        assert_non_null(jwt);

        n = chat_test_jwt_part(jwt, 0, buf);
        buf[n] = '\0';
        assert_string_equal((char *) buf, "{\"alg\":\"ES256\","
                                          "\"kid\":\"ABC123DEFG\"}");

        n = chat_test_jwt_part(jwt, 1, buf);
        buf[n] = '\0';
        assert_string_equal((char *) buf, "{\"iss\":\"DEF123GHIJ\","
                                          "\"iat\":1700000000}");

        n = chat_test_jwt_part(jwt, 2, buf);
        assert_int_equal(n, 64);

        n = chat_test_der(buf, der);
        assert_true(chat_test_verify(key, jwt, der, n));
        assert_false(chat_test_verify(other, jwt, der, n));

        /* one bit of R flipped */
        buf[5] ^= 0x10;
        n = chat_test_der(buf, der);
        assert_false(chat_test_verify(key, jwt, der, n));

        free(jwt);
    }

    assert_null(chat_push_apns_jwt(p384, "K", "T", CHAT_TEST_IAT));
    assert_null(chat_push_apns_jwt(rsa, "K", "T", CHAT_TEST_IAT));
    assert_null(chat_push_apns_jwt(NULL, "K", "T", CHAT_TEST_IAT));
    assert_null(chat_push_apns_jwt(key, NULL, "T", CHAT_TEST_IAT));
    assert_null(chat_push_apns_jwt(key, "K", "\xff", CHAT_TEST_IAT));

    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(rsa);
}


static void
chat_test_rs256(void **state)
{
    char           *jwt;
    size_t          n;
    EVP_PKEY       *key, *small, *ec;
    unsigned char   buf[1024];

    (void) state;

    key = EVP_RSA_gen(2048);
    small = EVP_RSA_gen(1024);
    ec = EVP_EC_gen("P-256");
    assert_true(key && small && ec);

    jwt = chat_push_google_assertion(key,
                                     "push@proj-1.iam.gserviceaccount.com",
                                     "https://oauth2.googleapis.com/token",
                                     CHAT_TEST_IAT);
    assert_non_null(jwt);

    n = chat_test_jwt_part(jwt, 0, buf);
    buf[n] = '\0';
    assert_string_equal((char *) buf, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}");

    n = chat_test_jwt_part(jwt, 1, buf);
    buf[n] = '\0';
    assert_string_equal((char *) buf,
        "{\"iss\":\"push@proj-1.iam.gserviceaccount.com\","
        "\"scope\":\"https://www.googleapis.com/auth/firebase.messaging\","
        "\"aud\":\"https://oauth2.googleapis.com/token\","
        "\"iat\":1700000000,\"exp\":1700003600}");

    n = chat_test_jwt_part(jwt, 2, buf);
    assert_int_equal(n, 256);
    assert_true(chat_test_verify(key, jwt, buf, n));

    buf[100] ^= 0x01;
    assert_false(chat_test_verify(key, jwt, buf, n));

    free(jwt);

    assert_null(chat_push_google_assertion(small, "a@b", "https://x/t", 1));
    assert_null(chat_push_google_assertion(ec, "a@b", "https://x/t", 1));
    assert_null(chat_push_google_assertion(NULL, "a@b", "https://x/t", 1));
    assert_null(chat_push_google_assertion(key, NULL, "https://x/t", 1));

    EVP_PKEY_free(key);
    EVP_PKEY_free(small);
    EVP_PKEY_free(ec);
}


/* --- the token endpoint ---------------------------------------------- */

static void
chat_test_token_endpoint(void **state)
{
    char     *form, tok[64];
    int64_t   exp;

    (void) state;

    form = chat_push_google_token_form("eyJh.eyJp.c2ln-_");
    chat_test_body(form, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type"
                         "%3Ajwt-bearer&assertion=eyJh.eyJp.c2ln-_");

    /* anything else is form-encoded */
    form = chat_push_google_token_form("a+b=c&d");
    chat_test_body(form, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type"
                         "%3Ajwt-bearer&assertion=a%2Bb%3Dc%26d");
    assert_null(chat_push_google_token_form(NULL));

#define CHAT_TEST_PARSE(s)                                                    \
    chat_push_google_token_parse(s, sizeof(s) - 1, tok, sizeof(tok), &exp)

    exp = 0;
    assert_int_equal(CHAT_TEST_PARSE("{\"access_token\":\"ya29.c.Abc-_\","
                                     "\"expires_in\":3599,"
                                     "\"token_type\":\"Bearer\"}"), 0);
    assert_string_equal(tok, "ya29.c.Abc-_");
    assert_int_equal(exp, 3599);

    assert_int_equal(CHAT_TEST_PARSE("{\"access_token\":\"t\","
                                     "\"expires_in\":60}"), 0);
    assert_int_equal(CHAT_TEST_PARSE("{\"access_token\":\"t\","
                                     "\"expires_in\":60,"
                                     "\"token_type\":\"bearer\"}"), 0);

    strcpy(tok, "unchanged");
    assert_int_equal(CHAT_TEST_PARSE("{\"expires_in\":3599}"), -1);
    assert_int_equal(CHAT_TEST_PARSE("{\"access_token\":\"t\"}"), -1);
    assert_int_equal(CHAT_TEST_PARSE("{\"access_token\":\"\","
                                     "\"expires_in\":60}"), -1);
    assert_int_equal(CHAT_TEST_PARSE("{\"access_token\":\"t\","
                                     "\"expires_in\":\"60\"}"), -1);
    assert_int_equal(CHAT_TEST_PARSE("{\"access_token\":\"t\","
                                     "\"expires_in\":0}"), -1);
    assert_int_equal(CHAT_TEST_PARSE("{\"access_token\":\"t\","
                                     "\"expires_in\":60.5}"), -1);
    assert_int_equal(CHAT_TEST_PARSE("{\"access_token\":7,"
                                     "\"expires_in\":60}"), -1);
    assert_int_equal(CHAT_TEST_PARSE("{\"access_token\":\"t\","
                                     "\"expires_in\":60,"
                                     "\"token_type\":\"MAC\"}"), -1);
    assert_int_equal(CHAT_TEST_PARSE("{\"access_token\":\"t\","
                                     "\"expires_in\":60,"
                                     "\"token_type\":null}"), -1);
    assert_int_equal(CHAT_TEST_PARSE("{\"access_token\":\"a b\","
                                     "\"expires_in\":60}"), -1);
    assert_int_equal(CHAT_TEST_PARSE("{\"access_token\":\"a\\r\\nX: y\","
                                     "\"expires_in\":60}"), -1);
    assert_int_equal(CHAT_TEST_PARSE("{\"access_token\":\"\xc3\xa9\","
                                     "\"expires_in\":60}"), -1);
    assert_int_equal(CHAT_TEST_PARSE("{\"access_token\":\"0123456789012345"
                                     "6789012345678901234567890123456789012"
                                     "3456789012345678901234567890\","
                                     "\"expires_in\":60}"), -1);
    assert_int_equal(CHAT_TEST_PARSE("{\"access_token\":\"t\","
                                     "\"access_token\":\"u\","
                                     "\"expires_in\":60}"), -1);
    assert_int_equal(CHAT_TEST_PARSE("not json"), -1);
    assert_int_equal(CHAT_TEST_PARSE("[\"access_token\"]"), -1);
    assert_int_equal(CHAT_TEST_PARSE("{\"access_token\":\"t\","), -1);
    assert_int_equal(CHAT_TEST_PARSE("{\"error\":\"invalid_grant\","
                                     "\"error_description\":\"Invalid JWT "
                                     "Signature.\"}"), -1);
    assert_int_equal(chat_push_google_token_parse(NULL, 0, tok, sizeof(tok),
                                                  &exp), -1);
    assert_string_equal(tok, "unchanged");

#undef CHAT_TEST_PARSE
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(chat_test_webhook),
        cmocka_unit_test(chat_test_fcm),
        cmocka_unit_test(chat_test_apns),
        cmocka_unit_test(chat_test_preview),
        cmocka_unit_test(chat_test_tokens),
        cmocka_unit_test(chat_test_classify),
        cmocka_unit_test(chat_test_retry_after),
        cmocka_unit_test(chat_test_backoff),
        cmocka_unit_test(chat_test_es256),
        cmocka_unit_test(chat_test_rs256),
        cmocka_unit_test(chat_test_token_endpoint),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
