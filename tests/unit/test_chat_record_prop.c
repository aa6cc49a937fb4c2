
/*
 * A property of src/common/chat_record.c and chat_proto.c: what the
 * gateway acknowledges, chat-worker persist stores.
 *
 * Random send frames (valid and not, a fixed seed) go the gateway's way:
 * chat_proto_decode(), chat_proto_record() with the sender, then
 * chat_record_message_new() and chat_record_message_dump() with an id and
 * a seq, the very functions src/ngx_chat_send.c calls.  Every record that
 * comes out is read as the persistence worker reads it,
 * chat_record_parse() (which applies chat_record_check() again), and must
 * be accepted with the same fields and within CHAT_RECORD_MESSAGE_MAX.
 *
 * The same holds for random messages given to chat_record_check()
 * directly, arbitrary bytes included.  Both loops also count what was
 * refused and why, so that a generator that never reaches the limits
 * fails the test instead of passing it.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chat_id.h"
#include "chat_json.h"
#include "chat_proto.h"
#include "chat_record.h"


#define CHAT_TEST_SEED      0x12c0ffee5eedULL
#define CHAT_TEST_FRAMES    6000
#define CHAT_TEST_DIRECT    6000
#define CHAT_TEST_TS        1795884550708LL

#define CHAT_TEST_BUF       (8 * CHAT_RECORD_BODY + 4096)


typedef struct {
    char    *data;
    size_t   len;
} chat_test_buf_t;


typedef struct {
    unsigned long  frames;
    unsigned long  acked;            /* the gateway would ack it */
    unsigned long  acked_media;
    unsigned long  acked_big;        /* a body over 16000 bytes */
    unsigned long  refused;          /* by the decoder or the check */
    unsigned long  refused_media;
    unsigned long  refused_body;
    unsigned long  refused_cid;
} chat_test_counts_t;


static uint64_t       chat_test_state = CHAT_TEST_SEED;
static chat_id_gen_t  chat_test_ids;


/* xorshift64*: the same sequence on every machine */
static uint64_t
chat_test_rand(void)
{
    chat_test_state ^= chat_test_state >> 12;
    chat_test_state ^= chat_test_state << 25;
    chat_test_state ^= chat_test_state >> 27;

    return chat_test_state * 0x2545f4914f6cdd1dULL;
}


static size_t
chat_test_below(size_t n)
{
    return n ? (size_t) (chat_test_rand() % n) : 0;
}


/* a length near one of the limits, or anywhere up to 2 * max */
static size_t
chat_test_len(size_t max)
{
    switch (chat_test_below(6)) {
    case 0:
        return 0;
    case 1:
        return max - chat_test_below(3);
    case 2:
        return max + 1 + chat_test_below(2);
    case 3:
        return chat_test_below(2 * max + 2);
    default:
        return 1 + chat_test_below(12);
    }
}


static void
chat_test_put(chat_test_buf_t *b, const char *s, size_t n)
{
    assert_true(b->len + n < CHAT_TEST_BUF);
    memcpy(b->data + b->len, s, n);
    b->len += n;
}


/*
 * A JSON string of n characters, of one of three kinds: each character
 * one byte once decoded (plain ones, "\"", "\\\\", escapes of control
 * characters: the length is n bytes), UTF-8 of 1 to 4 bytes as well, or
 * now and then what no valid record has (a raw byte that is not UTF-8,
 * "\u0000", a lone surrogate, a space or a dot for a media id).
 */
static void
chat_test_json_string(chat_test_buf_t *b, size_t n, int media_like)
{
    int       kind;
    size_t    i;
    char      esc[8];
    uint64_t  r;

    static const char  *plain = "abcXYZ019-_";
    static const char  *utf8[] = { "\xc3\xa9", "\xe2\x82\xac",
                                   "\xf0\x9f\x98\x80" };

    r = chat_test_rand();
    kind = (r % 10 < 7) ? 0 : (r % 10 < 9) ? 1 : 2;

    chat_test_put(b, "\"", 1);

    for (i = 0; i < n; i++) {
        r = chat_test_rand();

        if (media_like && kind != 2) {
            chat_test_put(b, &plain[(r >> 8) % 11], 1);
            continue;
        }

        if (kind == 2 && r % 200 == 0) {
            switch ((r >> 8) % 5) {
            case 0:
                chat_test_put(b, "\xff", 1);
                break;
            case 1:
                chat_test_put(b, "\\u0000", 6);
                break;
            case 2:
                chat_test_put(b, "\\ud800", 6);
                break;
            default:
                chat_test_put(b, (r >> 12) & 1 ? " " : ".", 1);
            }

            continue;
        }

        switch ((r >> 16) % 8) {
        case 0:
            (void) snprintf(esc, sizeof(esc), "\\u%04x",
                            (unsigned) ((r >> 20) % 0x1f + 1));
            chat_test_put(b, esc, 6);
            break;
        case 1:
            chat_test_put(b, (r >> 20) & 1 ? "\\\"" : "\\\\", 2);
            break;
        case 2:
            if (kind != 0) {
                chat_test_put(b, utf8[(r >> 20) % 3],
                              strlen(utf8[(r >> 20) % 3]));
                break;
            }

            /* fall through */
        default:
            chat_test_put(b, &plain[(r >> 20) % 11], 1);
        }
    }

    chat_test_put(b, "\"", 1);
}


static void
chat_test_id_value(chat_test_buf_t *b)
{
    char        num[32];
    uint64_t    r;

    static const char  *odd[] = { "0", "-1", "9223372036854775807",
                                  "9223372036854775808", "\"12\"", "1.5",
                                  "null", "\"x\"" };

    r = chat_test_rand();

    if (r % 10 == 0) {
        chat_test_put(b, odd[(r >> 8) % 8], strlen(odd[(r >> 8) % 8]));
        return;
    }

    (void) snprintf(num, sizeof(num), "%llu",
                    (unsigned long long) (1 + (r >> 8) % 100000));
    chat_test_put(b, num, strlen(num));
}


/* one send frame, members in a random order of sorts */
static void
chat_test_frame(chat_test_buf_t *b)
{
    uint64_t  r;

    b->len = 0;
    r = chat_test_rand();

    chat_test_put(b, "{\"type\":\"send\"", 14);

    if (r % 20 != 0) {
        chat_test_put(b, r % 7 == 0 ? ",\"group\":" : ",\"to\":", r % 7 == 0
                      ? 9 : 6);
        chat_test_id_value(b);
    }

    if ((r >> 8) % 50 == 0) {
        chat_test_put(b, ",\"group\":3", 10);
    }

    if ((r >> 16) % 30 != 0) {
        chat_test_put(b, ",\"client_id\":", 13);
        chat_test_json_string(b, chat_test_len(CHAT_RECORD_CLIENT_ID), 0);
    }

    if ((r >> 24) % 40 != 0) {
        chat_test_put(b, ",\"body\":", 8);

        if ((r >> 32) % 3 == 0) {
            chat_test_json_string(b, chat_test_len(CHAT_RECORD_BODY), 0);

        } else {
            chat_test_json_string(b, chat_test_below(200), 0);
        }
    }

    if ((r >> 40) % 2 == 0) {
        chat_test_put(b, ",\"media\":", 9);
        chat_test_json_string(b, chat_test_len(CHAT_RECORD_MEDIA),
                              (r >> 41) % 4 != 0);
    }

    switch ((r >> 48) % 5) {
    case 0:
        chat_test_put(b, ",\"e2e\":true", 11);
        break;
    case 1:
        chat_test_put(b, ",\"e2e\":false", 12);
        break;
    case 2:
        if ((r >> 51) % 8 == 0) {
            chat_test_put(b, ",\"e2e\":1", 8);
        }
        break;
    default:
        break;
    }

    chat_test_put(b, "}", 1);
}


static void
chat_test_same(const char *a, size_t alen, const char *b, size_t blen)
{
    if (a == NULL || b == NULL) {
        assert_true(a == NULL && b == NULL);
        return;
    }

    assert_int_equal(alen, blen);
    assert_memory_equal(a, b, alen);
}


/*
 * m was accepted: encode it as the gateway does and read it as the worker
 * does; everything must come back.
 */
static void
chat_test_stored(const chat_record_msg_t *m)
{
    char            err[256], id[CHAT_ID_LEN + 1], key[CHAT_RECORD_CONV_LEN];
    char           *value;
    json_t         *msg, *v;
    int64_t         seq;
    const char     *refused;
    chat_record_t   rec;

    refused = "unset";
    msg = chat_record_message_new(m, CHAT_TEST_TS, &refused);
    assert_non_null(msg);
    assert_null(refused);

    chat_id_next(&chat_test_ids, CHAT_TEST_TS, id);
    seq = 1 + (int64_t) (chat_test_rand() % INT64_MAX);

    value = chat_record_message_dump(msg, id, seq);
    assert_non_null(value);
    assert_true(strlen(value) <= CHAT_RECORD_MESSAGE_MAX);

    chat_record_conv(key, m->from, m->to, m->group);

    err[0] = '\0';
    v = chat_record_parse(key, strlen(key), value, strlen(value), &rec, err,
                          sizeof(err));
    if (v == NULL) {
        fail_msg("the worker refused what the gateway acks: %s\n%s", err,
                 value);
    }

    assert_int_equal(rec.type, CHAT_RECORD_MESSAGE);
    assert_string_equal(rec.conv, key);
    assert_string_equal(rec.id, id);
    assert_true(rec.seq == seq && rec.ts == CHAT_TEST_TS);
    assert_true(rec.from == m->from && rec.to == m->to
                && rec.group == m->group);
    chat_test_same(rec.body, rec.body_len, m->body, m->body_len);
    chat_test_same(rec.client_id, rec.client_id_len, m->client_id,
                   m->client_id_len);
    chat_test_same(rec.media, rec.media_len, m->media, m->media_len);
    assert_int_equal(rec.e2e, m->e2e == 1);

    json_decref(v);
    free(value);
    json_decref(msg);
}


static void
chat_test_count_refusal(chat_test_counts_t *c, const char *message)
{
    c->refused++;

    if (strstr(message, "\"media\"") != NULL) {
        c->refused_media++;

    } else if (strstr(message, "\"body\"") != NULL) {
        c->refused_body++;

    } else if (strstr(message, "\"client_id\"") != NULL) {
        c->refused_cid++;
    }
}


static void
chat_test_frames(void **state)
{
    int                  rc;
    size_t               i;
    const char          *code, *message;
    chat_test_buf_t      b;
    chat_proto_msg_t     m;
    chat_record_msg_t    r;
    chat_test_counts_t   c;

    (void) state;

    memset(&c, 0, sizeof(c));
    b.data = malloc(CHAT_TEST_BUF);
    assert_non_null(b.data);

    for (i = 0; i < CHAT_TEST_FRAMES; i++) {
        chat_test_frame(&b);
        c.frames++;

        rc = chat_proto_decode(b.data, b.len, CHAT_PROTO_DEPTH, &m, &code,
                               &message);
        if (rc != 0) {
            chat_test_count_refusal(&c, message);
            chat_proto_free(&m);
            continue;
        }

        assert_int_equal(m.type, CHAT_PROTO_SEND);

        /* the sender: any user, from the token */
        chat_proto_record(&m, 1 + (int64_t) (chat_test_rand() % INT64_MAX),
                          &r);

        assert_null(chat_record_check(&r));
        chat_test_stored(&r);

        c.acked++;
        c.acked_media += (m.media != NULL);
        c.acked_big += (m.body_len > 16000);

        chat_proto_free(&m);
    }

    free(b.data);

    print_message("frames %lu: acked %lu (media %lu, body > 16000 %lu), "
                  "refused %lu (media %lu, body %lu, client_id %lu)\n",
                  c.frames, c.acked, c.acked_media, c.acked_big, c.refused,
                  c.refused_media, c.refused_body, c.refused_cid);

    /* the generator reaches both sides of every limit */
    assert_true(c.acked > c.frames / 10 && c.refused > c.frames / 10);
    assert_true(c.acked_media > 50 && c.acked_big > 10);
    assert_true(c.refused_media > 50 && c.refused_body > 50
                && c.refused_cid > 50);
}


/* n bytes: clean text (one string in three with UTF-8), or anything */
static void
chat_test_bytes(char *out, size_t n, int media_like)
{
    int       kind;
    size_t    i;
    uint64_t  r;

    static const char  *plain = "abcXYZ019-_";

    r = chat_test_rand();
    kind = (r % 10 < 7) ? 0 : (r % 10 < 9) ? 1 : 2;

    for (i = 0; i < n; i++) {
        r = chat_test_rand();

        if (kind == 2 && r % 100 == 0) {
            out[i] = (char) (r >> 16);

        } else if (kind == 1 && !media_like && r % 10 == 0 && i + 1 < n) {
            out[i++] = '\xc3';
            out[i] = '\xa9';

        } else if (!media_like && r % 10 == 1) {
            out[i] = (char) ((r >> 16) % 0x1f + 1);

        } else {
            out[i] = plain[(r >> 8) % 11];
        }
    }
}


static void
chat_test_direct(void **state)
{
    char                *body, cid[2 * CHAT_RECORD_CLIENT_ID + 4];
    char                 media[2 * CHAT_RECORD_MEDIA + 4];
    size_t               i;
    int64_t              ids[] = { -1, 0, 1, 7, INT64_MAX };
    uint64_t             r;
    const char          *message;
    chat_record_msg_t    m;
    chat_test_counts_t   c;

    (void) state;

    memset(&c, 0, sizeof(c));
    body = malloc(2 * CHAT_RECORD_BODY + 4);
    assert_non_null(body);

    for (i = 0; i < CHAT_TEST_DIRECT; i++) {
        r = chat_test_rand();
        c.frames++;

        m.from = (r % 8 == 0) ? ids[(r >> 3) % 5]
                              : 1 + (int64_t) ((r >> 8) % 1000);
        m.to = 0;
        m.group = 0;

        switch ((r >> 20) % 10) {
        case 0:
            m.to = ids[(r >> 24) % 5];
            m.group = ids[(r >> 28) % 5];
            break;
        case 1:
            m.group = 1 + (int64_t) ((r >> 24) % 1000);
            break;
        default:
            m.to = 1 + (int64_t) ((r >> 24) % 1000);
        }

        m.body_len = ((r >> 34) % 3 == 0) ? chat_test_len(CHAT_RECORD_BODY)
                                          : chat_test_below(100);
        chat_test_bytes(body, m.body_len, 0);
        m.body = ((r >> 36) % 50 == 0) ? NULL : body;

        m.client_id_len = chat_test_len(CHAT_RECORD_CLIENT_ID);
        chat_test_bytes(cid, m.client_id_len, 1);
        m.client_id = ((r >> 38) % 50 == 0) ? NULL : cid;

        m.media_len = chat_test_len(CHAT_RECORD_MEDIA);
        chat_test_bytes(media, m.media_len, 1);
        m.media = ((r >> 40) % 2 == 0) ? NULL : media;

        m.e2e = (int) ((r >> 42) % 5) - 2;
        m.search_tokens = NULL;

        message = chat_record_check(&m);

        if (message != NULL || m.from == 0) {
            chat_test_count_refusal(&c, message ? message : "from");
            continue;
        }

        chat_test_stored(&m);

        c.acked++;
        c.acked_media += (m.media != NULL);
        c.acked_big += (m.body_len > 16000);
    }

    free(body);

    print_message("direct %lu: accepted %lu (media %lu, body > 16000 %lu), "
                  "refused %lu (media %lu, body %lu, client_id %lu)\n",
                  c.frames, c.acked, c.acked_media, c.acked_big, c.refused,
                  c.refused_media, c.refused_body, c.refused_cid);

    assert_true(c.acked > c.frames / 20 && c.refused > c.frames / 10);
    assert_true(c.acked_media > 20 && c.acked_big > 5);
    assert_true(c.refused_media > 50 && c.refused_body > 50
                && c.refused_cid > 50);
}


/* the edges, one by one, and the longest record there can be */
static void
chat_test_edges(void **state)
{
    char                *body, *value, token[CHAT_RECORD_SEARCH_TOKEN_MAX];
    size_t               i;
    json_t              *msg, *tokens;
    const char          *message;
    chat_record_msg_t    m;

    (void) state;

    /* the most search tokens, each the longest: part of the bound too */
    tokens = json_array();
    assert_non_null(tokens);
    memset(token, '_', sizeof(token));

    for (i = 0; i < CHAT_RECORD_SEARCH_TOKENS; i++) {
        assert_int_equal(json_array_append_new(tokens,
                             json_stringn(token, sizeof(token))), 0);
    }

    body = malloc(CHAT_RECORD_BODY + 1);
    assert_non_null(body);
    memset(body, 0x1f, CHAT_RECORD_BODY + 1);

    memset(&m, 0, sizeof(m));
    m.from = INT64_MAX;
    m.to = INT64_MAX;
    m.body = body;
    m.body_len = CHAT_RECORD_BODY;
    m.client_id = body;
    m.client_id_len = CHAT_RECORD_CLIENT_ID;
    m.media = "m";
    m.media_len = 1;
    m.e2e = 1;
    m.search_tokens = tokens;

    /* every byte escaped: the longest value, still within the bound */
    assert_null(chat_record_check(&m));
    msg = chat_record_message_new(&m, CHAT_RECORD_MAX_SEEN, &message);
    assert_non_null(msg);
    value = chat_record_message_dump(msg, "01KB3FJ6WW0010000000000001",
                                     INT64_MAX);
    assert_non_null(value);
    assert_true(strlen(value) > 6 * CHAT_RECORD_BODY
                + CHAT_RECORD_SEARCH_TOKENS * CHAT_RECORD_SEARCH_TOKEN_MAX);
    assert_true(strlen(value) <= CHAT_RECORD_MESSAGE_MAX);
    free(value);
    json_decref(msg);
    m.search_tokens = NULL;

    m.body_len = CHAT_RECORD_BODY + 1;
    assert_string_equal(chat_record_check(&m),
                        "\"body\" must be a string of at most 16384 bytes");
    m.body_len = 0;

    m.client_id_len = 0;
    assert_string_equal(chat_record_check(&m),
                        "\"client_id\" must be a string of 1 to 64 bytes");
    m.client_id = "a\0b";
    m.client_id_len = 3;
    assert_string_equal(chat_record_check(&m),
                        "\"client_id\" must be a string of 1 to 64 bytes");
    m.client_id = "\xc3";
    m.client_id_len = 1;
    assert_non_null(chat_record_check(&m));
    m.client_id = "c";

    m.media = "";
    m.media_len = 0;
    assert_string_equal(chat_record_check(&m), "\"media\" must be a media id");
    m.media = body;
    m.media_len = 300;
    memset(body, 'a', 300);
    assert_string_equal(chat_record_check(&m), "\"media\" must be a media id");
    m.media_len = CHAT_RECORD_MEDIA;
    assert_null(chat_record_check(&m));
    m.media = NULL;

    m.group = 5;
    assert_string_equal(chat_record_check(&m),
                        "exactly one of \"to\" and \"group\" is required");
    m.to = 0;
    assert_null(chat_record_check(&m));
    m.group = -5;
    assert_string_equal(chat_record_check(&m),
                        "\"group\" must be a group id");
    m.group = 5;

    m.e2e = 2;
    assert_string_equal(chat_record_check(&m),
                        "\"e2e\" must be true or false");
    m.e2e = -1;

    /* the decoder's from 0 passes the check, never the encoder */
    m.from = 0;
    assert_null(chat_record_check(&m));
    assert_null(chat_record_message_new(&m, 1, &message));
    assert_string_equal(message, "\"from\" must be a user id");
    m.from = 1;
    assert_null(chat_record_message_new(&m, -1, &message));
    assert_non_null(message);

    free(body);
    json_decref(tokens);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(chat_test_edges),
        cmocka_unit_test(chat_test_frames),
        cmocka_unit_test(chat_test_direct),
    };

    chat_id_gen_init(&chat_test_ids, 1, 1);

    return cmocka_run_group_tests(tests, NULL, NULL);
}
