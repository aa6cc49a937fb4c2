
/*
 * Unit tests for src/common/chat_ws.c.
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
#include "chat_utf8.h"
#include "chat_ws.h"


#define CHAT_TEST_LEN(s)     (sizeof(s) - 1)
#define CHAT_TEST_CAP        (128 * 1024)
#define CHAT_TEST_NOLIMIT    UINT64_MAX

/* a zero mask keeps hand-written frames readable */
#define M0                   "\0\0\0\0"
#define MK                   "\x37\xfa\x21\x3d"


/*
 * Everything the parser reported, as a transcript: "<T:text>" or
 * "<B:bytes>" per message, "<ping:...>", "<pong:...>",
 * "<close:code:reason>", "<error:code>".  Feeding the same stream in any
 * chunks must give the same transcript.
 */
typedef struct {
    chat_ws_parser_t   p;
    unsigned char      msg[CHAT_TEST_CAP];
    size_t             msg_len;
    int                msg_op;
    char               out[CHAT_TEST_CAP];
    size_t             out_len;
    unsigned           error;
    size_t             given;       /* bytes handed to the parser */
    size_t             error_at;    /* given when the error came */
    int                closed;
    unsigned           events;
} chat_test_sink_t;


typedef struct {
    unsigned char      buf[CHAT_TEST_CAP];
    size_t             len;
    int                masked;
} chat_test_stream_t;


typedef struct {
    const char        *name;
    int                server;
    const char        *bytes;
    size_t             len;
    size_t             fail_at;     /* bytes given when it must fail */
    unsigned           code;
} chat_test_rule_t;


#define CHAT_TEST_RULE(name, server, s, at, code)                             \
    { name, server, s, CHAT_TEST_LEN(s), at, code }


static const chat_test_rule_t  chat_test_rules[] = {
    CHAT_TEST_RULE("rsv1", 1, "\xc1\x80" M0, 1, 1002),
    CHAT_TEST_RULE("rsv2", 1, "\xa1\x80" M0, 1, 1002),
    CHAT_TEST_RULE("rsv3", 1, "\x91\x80" M0, 1, 1002),
    CHAT_TEST_RULE("rsv on a control frame", 1, "\xc9\x80" M0, 1, 1002),
    CHAT_TEST_RULE("rsv on a continuation", 1,
                   "\x01\x81" M0 "a" "\xa0\x80" M0, 8, 1002),
    CHAT_TEST_RULE("client frame not masked", 1, "\x81\x05Hello", 2, 1002),
    CHAT_TEST_RULE("server frame masked", 0, "\x81\x85" MK "Hello", 2, 1002),
    CHAT_TEST_RULE("ping with fin 0", 1, "\x09\x80" M0, 1, 1002),
    CHAT_TEST_RULE("pong with fin 0", 1, "\x0a\x80" M0, 1, 1002),
    CHAT_TEST_RULE("close with fin 0", 1, "\x08\x80" M0, 1, 1002),
    CHAT_TEST_RULE("ping of 126", 1, "\x89\xfe\x00\x7e" M0, 2, 1002),
    CHAT_TEST_RULE("pong of 127 (64-bit)", 1,
                   "\x8a\xff\0\0\0\0\0\0\0\x7f" M0, 2, 1002),
    CHAT_TEST_RULE("close of 126", 0, "\x88\xfe\x00\x7e", 2, 1002),
    CHAT_TEST_RULE("continuation first", 1, "\x80\x80" M0, 1, 1002),
    CHAT_TEST_RULE("non-final continuation first", 1, "\x00\x80" M0, 1,
                   1002),
    CHAT_TEST_RULE("continuation after the end", 1,
                   "\x81\x81" M0 "a" "\x80\x80" M0, 8, 1002),
    CHAT_TEST_RULE("text inside a fragmented message", 1,
                   "\x01\x81" M0 "a" "\x81\x80" M0, 8, 1002),
    CHAT_TEST_RULE("binary inside a fragmented message", 1,
                   "\x02\x81" M0 "a" "\x02\x80" M0, 8, 1002),
    CHAT_TEST_RULE("16-bit length 125", 1, "\x82\xfe\x00\x7d" M0, 4, 1002),
    CHAT_TEST_RULE("16-bit length 0", 1, "\x82\xfe\x00\x00" M0, 4, 1002),
    CHAT_TEST_RULE("64-bit length, top bit", 1,
                   "\x82\xff\x80\0\0\0\0\0\0\0" M0, 10, 1002),
    CHAT_TEST_RULE("64-bit length, all bits", 0,
                   "\x82\x7f\xff\xff\xff\xff\xff\xff\xff\xff", 10, 1002),
    CHAT_TEST_RULE("64-bit length 65535", 1,
                   "\x82\xff\0\0\0\0\0\0\xff\xff" M0, 10, 1002),
    CHAT_TEST_RULE("64-bit length 125", 1,
                   "\x82\xff\0\0\0\0\0\0\0\x7d" M0, 10, 1002),
    CHAT_TEST_RULE("64-bit length 0", 0, "\x82\x7f\0\0\0\0\0\0\0\0", 10,
                   1002),
    CHAT_TEST_RULE("close payload of 1 byte", 1, "\x88\x81" M0 "\x03", 7,
                   1002),
    CHAT_TEST_RULE("close reason not UTF-8", 1,
                   "\x88\x84" M0 "\x03\xe8\xc3\x28", 10, 1007),
    CHAT_TEST_RULE("close reason a lone surrogate", 0,
                   "\x88\x05\x03\xe8\xed\xa0\x80", 7, 1007),
    CHAT_TEST_RULE("text not UTF-8", 1, "\x81\x82" M0 "\xc3\x28", 8, 1007),
    CHAT_TEST_RULE("text overlong", 1, "\x81\x82" M0 "\xc0\xaf", 7, 1007),
    CHAT_TEST_RULE("text surrogate", 1, "\x81\x83" M0 "\xed\xa0\x80", 8,
                   1007),
    CHAT_TEST_RULE("text above U+10FFFF", 1,
                   "\x81\x84" M0 "\xf4\x90\x80\x80", 8, 1007),
    CHAT_TEST_RULE("text byte FF", 0, "\x81\x03" "ab\xff", 5, 1007),
    CHAT_TEST_RULE("text ends inside a character", 1,
                   "\x81\x82" M0 "a\xc3", 8, 1007),
    CHAT_TEST_RULE("fragmented text ends inside a character", 1,
                   "\x01\x81" M0 "\xe2" "\x80\x80" M0, 13, 1007),
    CHAT_TEST_RULE("bad continuation byte in the next fragment", 1,
                   "\x01\x81" M0 "\xe2" "\x00\x81" M0 "A", 14, 1007),
    CHAT_TEST_RULE("bad byte in a first fragment", 1,
                   "\x01\x84" M0 "ab\xf8z", 9, 1007),
};


static const char  chat_test_utf8_chars[][5] = {
    "\xc3\xa9",               /* U+00E9 */
    "\xe2\x82\xac",           /* U+20AC */
    "\xf0\x9f\x98\x80",       /* U+1F600 */
};


static void
chat_test_out(chat_test_sink_t *t, const void *data, size_t len)
{
    assert_true(t->out_len + len <= CHAT_TEST_CAP);

    if (len > 0) {
        memcpy(t->out + t->out_len, data, len);
        t->out_len += len;
    }
}


static void
chat_test_outs(chat_test_sink_t *t, const char *s)
{
    chat_test_out(t, s, strlen(s));
}


static void
chat_test_sink_reset(chat_test_sink_t *t, int server, uint64_t max)
{
    chat_ws_parser_init(&t->p, server, max);

    t->msg_len = 0;
    t->msg_op = 0;
    t->out_len = 0;
    t->error = 0;
    t->given = 0;
    t->error_at = 0;
    t->closed = 0;
    t->events = 0;
}


static chat_test_sink_t *
chat_test_sink_new(int server, uint64_t max)
{
    chat_test_sink_t  *t;

    t = malloc(sizeof(chat_test_sink_t));
    assert_non_null(t);

    chat_test_sink_reset(t, server, max);

    return t;
}


/*
 * Hands one chunk to the parser and drives it until it needs more,
 * checking the calling contract on the way.
 */
static void
chat_test_feed(chat_test_sink_t *t, unsigned char *buf, size_t len)
{
    long              n;
    char              tmp[64];
    unsigned          zero;
    chat_ws_event_t   ev;

    t->given += len;
    zero = 0;

    for ( ;; ) {
        n = chat_ws_parse(&t->p, buf, len, &ev);

        if (n < 0) {
            assert_int_equal(ev.type, CHAT_WS_ERROR);
            assert_int_equal(-n, ev.error_code);
            assert_non_null(ev.error);
            assert_false(t->closed);

            if (t->error != 0) {
                /* errors are sticky */
                assert_int_equal(t->error, ev.error_code);
                return;
            }

            t->error = ev.error_code;
            t->error_at = t->given;
            snprintf(tmp, sizeof(tmp), "<error:%u>", t->error);
            chat_test_outs(t, tmp);

            /* and once more, to see it stick */
            n = chat_ws_parse(&t->p, buf, len, &ev);
            assert_int_equal(-n, t->error);
            assert_int_equal(ev.type, CHAT_WS_ERROR);

            return;
        }

        assert_int_equal(t->error, 0);
        assert_true((size_t) n <= len);

        buf += n;
        len -= n;

        if (ev.type == CHAT_WS_NEED_MORE) {
            assert_int_equal(len, 0);
            return;
        }

        /* MESSAGE_END may take no bytes, but never twice in a row */
        zero = (n == 0) ? zero + 1 : 0;
        assert_true(zero <= 1);
        assert_false(t->closed);

        t->events++;

        switch (ev.type) {

        case CHAT_WS_DATA:
            assert_true(ev.len > 0);
            assert_true(ev.data >= buf - n && ev.data + ev.len <= buf);
            assert_true(ev.opcode == CHAT_WS_OP_TEXT
                        || ev.opcode == CHAT_WS_OP_BINARY);

            if (t->msg_op != 0) {
                assert_int_equal(ev.opcode, t->msg_op);
            }

            t->msg_op = ev.opcode;
            assert_true(t->msg_len + ev.len <= CHAT_TEST_CAP);
            memcpy(t->msg + t->msg_len, ev.data, ev.len);
            t->msg_len += ev.len;
            break;

        case CHAT_WS_MESSAGE_END:
            assert_int_equal(ev.len, 0);
            assert_true(ev.opcode == CHAT_WS_OP_TEXT
                        || ev.opcode == CHAT_WS_OP_BINARY);

            if (t->msg_op != 0) {
                assert_int_equal(ev.opcode, t->msg_op);
            }

            if (ev.opcode == CHAT_WS_OP_TEXT) {
                assert_int_equal(chat_utf8_valid(t->msg, t->msg_len), 0);
            }

            chat_test_outs(t, ev.opcode == CHAT_WS_OP_TEXT ? "<T:" : "<B:");
            chat_test_out(t, t->msg, t->msg_len);
            chat_test_outs(t, ">");
            t->msg_len = 0;
            t->msg_op = 0;
            break;

        case CHAT_WS_PING:
        case CHAT_WS_PONG:
            assert_true(ev.len <= CHAT_WS_MAX_CONTROL);
            assert_int_equal(ev.opcode, ev.type == CHAT_WS_PING
                                        ? CHAT_WS_OP_PING : CHAT_WS_OP_PONG);
            chat_test_outs(t, ev.type == CHAT_WS_PING ? "<ping:" : "<pong:");
            chat_test_out(t, ev.data, ev.len);
            chat_test_outs(t, ">");
            break;

        case CHAT_WS_CLOSE:
            assert_int_equal(ev.opcode, CHAT_WS_OP_CLOSE);
            assert_true(ev.len <= CHAT_WS_MAX_CONTROL);

            if (ev.len == 0) {
                assert_int_equal(ev.close_code, CHAT_WS_CLOSE_NO_CODE);
                assert_int_equal(ev.close_reason_len, 0);

            } else {
                assert_int_equal(ev.close_code,
                                 (ev.data[0] << 8) | ev.data[1]);
                assert_ptr_equal(ev.close_reason, ev.data + 2);
                assert_int_equal(ev.close_reason_len, ev.len - 2);
            }

            snprintf(tmp, sizeof(tmp), "<close:%u:", ev.close_code);
            chat_test_outs(t, tmp);
            chat_test_out(t, ev.close_reason, ev.close_reason_len);
            chat_test_outs(t, ">");
            t->closed = 1;
            break;

        default:
            fail_msg("unexpected event %d", (int) ev.type);
        }
    }
}


/* parses a copy of stream in chunks [0, a), [a, b), [b, len) */
static void
chat_test_run_split(chat_test_sink_t *t, int server, uint64_t max,
    const unsigned char *stream, size_t len, size_t a, size_t b,
    unsigned char *copy)
{
    chat_test_sink_reset(t, server, max);
    memcpy(copy, stream, len);

    chat_test_feed(t, copy, a);
    chat_test_feed(t, copy + a, b - a);
    chat_test_feed(t, copy + b, len - b);
}


/* parses a copy of stream in chunks of step bytes */
static void
chat_test_run_step(chat_test_sink_t *t, int server, uint64_t max,
    const unsigned char *stream, size_t len, size_t step,
    unsigned char *copy)
{
    size_t  i, n;

    chat_test_sink_reset(t, server, max);
    memcpy(copy, stream, len);

    for (i = 0; i < len; i += n) {
        n = (len - i < step) ? len - i : step;
        chat_test_feed(t, copy + i, n);
    }
}


static void
chat_test_expect(chat_test_sink_t *t, const char *out, size_t len)
{
    if (t->out_len != len || memcmp(t->out, out, len) != 0) {
        fail_msg("transcript \"%.*s\", expected \"%.*s\"",
                 (int) (t->out_len > 200 ? 200 : t->out_len), t->out,
                 (int) (len > 200 ? 200 : len), out);
    }
}


static chat_test_stream_t *
chat_test_stream_new(int masked)
{
    chat_test_stream_t  *s;

    s = malloc(sizeof(chat_test_stream_t));
    assert_non_null(s);

    s->len = 0;
    s->masked = masked;

    return s;
}


/* appends a frame written by the writer, masked with a fresh mask */
static void
chat_test_frame(chat_test_stream_t *s, int opcode, int fin,
    const void *data, size_t len)
{
    size_t          n, i;
    unsigned char   mask[4];

    for (i = 0; i < 4; i++) {
        mask[i] = (unsigned char) chat_test_rand();
    }

    assert_true(s->len + CHAT_WS_MAX_HEADER + len <= CHAT_TEST_CAP);

    n = chat_ws_frame_header(s->buf + s->len, opcode, fin, len,
                             s->masked ? mask : NULL);
    assert_true(n >= 2 && n <= CHAT_WS_MAX_HEADER);
    s->len += n;

    if (len > 0) {
        memcpy(s->buf + s->len, data, len);
    }

    if (s->masked) {
        chat_ws_mask(s->buf + s->len, len, mask, 0);
    }

    s->len += len;
}


static void
chat_test_raw(chat_test_stream_t *s, const void *data, size_t len)
{
    assert_true(s->len + len <= CHAT_TEST_CAP);
    memcpy(s->buf + s->len, data, len);
    s->len += len;
}


static void
chat_test_rfc_examples(void **state)
{
    size_t               i, n;
    unsigned char        hdr[CHAT_WS_MAX_HEADER], copy[16], *big;
    chat_ws_event_t      ev;
    chat_test_sink_t    *t;
    chat_test_stream_t  *s;

    static const unsigned char  unmasked[] = {
        0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f
    };
    static const unsigned char  masked[] = {
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
    };
    static const unsigned char  fragmented[] = {
        0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f
    };
    static const unsigned char  ping[] = {
        0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f
    };
    static const unsigned char  pong[] = {
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
    };
    static const unsigned char  len256[] = { 0x82, 0x7e, 0x01, 0x00 };
    static const unsigned char  len64k[] = {
        0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00
    };

    (void) state;

    t = chat_test_sink_new(0, CHAT_TEST_NOLIMIT);
    s = chat_test_stream_new(0);

    /* 5.7: a single-frame unmasked text message, from the server */
    chat_test_run_step(t, 0, 100, unmasked, sizeof(unmasked), 100, copy);
    chat_test_expect(t, "<T:Hello>", 9);
    n = chat_ws_frame_header(hdr, CHAT_WS_OP_TEXT, 1, 5, NULL);
    assert_int_equal(n, 2);
    assert_memory_equal(hdr, unmasked, 2);

    /* a single-frame masked text message, from a client */
    chat_test_run_step(t, 1, 100, masked, sizeof(masked), 100, copy);
    chat_test_expect(t, "<T:Hello>", 9);
    n = chat_ws_frame_header(hdr, CHAT_WS_OP_TEXT, 1, 5,
                             (const unsigned char *) MK);
    assert_int_equal(n, 6);
    assert_memory_equal(hdr, masked, 6);
    memcpy(copy, "Hello", 5);
    chat_ws_mask(copy, 5, (const unsigned char *) MK, 0);
    assert_memory_equal(copy, masked + 6, 5);

    /* the wrong side refuses either */
    chat_test_run_step(t, 1, 100, unmasked, sizeof(unmasked), 100, copy);
    chat_test_expect(t, "<error:1002>", 12);
    chat_test_run_step(t, 0, 100, masked, sizeof(masked), 100, copy);
    chat_test_expect(t, "<error:1002>", 12);

    /* a fragmented unmasked text message: "Hel", then "lo" */
    chat_ws_parser_init(&t->p, 0, 100);
    memcpy(copy, fragmented, sizeof(fragmented));

    n = chat_ws_parse(&t->p, copy, sizeof(fragmented), &ev);
    assert_int_equal(n, 5);
    assert_int_equal(ev.type, CHAT_WS_DATA);
    assert_int_equal(ev.opcode, CHAT_WS_OP_TEXT);
    assert_int_equal(ev.len, 3);
    assert_ptr_equal(ev.data, copy + 2);
    assert_memory_equal(ev.data, "Hel", 3);

    n = chat_ws_parse(&t->p, copy + 5, 4, &ev);
    assert_int_equal(n, 4);
    assert_int_equal(ev.type, CHAT_WS_DATA);
    assert_int_equal(ev.len, 2);
    assert_memory_equal(ev.data, "lo", 2);

    /* the end of the message takes no bytes; it may come with none */
    n = chat_ws_parse(&t->p, copy + 9, 0, &ev);
    assert_int_equal(n, 0);
    assert_int_equal(ev.type, CHAT_WS_MESSAGE_END);
    assert_int_equal(ev.opcode, CHAT_WS_OP_TEXT);

    n = chat_ws_parse(&t->p, copy + 9, 0, &ev);
    assert_int_equal(n, 0);
    assert_int_equal(ev.type, CHAT_WS_NEED_MORE);

    n = chat_ws_frame_header(hdr, CHAT_WS_OP_TEXT, 0, 3, NULL);
    assert_int_equal(n, 2);
    assert_memory_equal(hdr, fragmented, 2);
    n = chat_ws_frame_header(hdr, CHAT_WS_OP_CONT, 1, 2, NULL);
    assert_int_equal(n, 2);
    assert_memory_equal(hdr, fragmented + 5, 2);

    /* unmasked ping, masked pong */
    chat_test_run_step(t, 0, 100, ping, sizeof(ping), 100, copy);
    chat_test_expect(t, "<ping:Hello>", 12);
    n = chat_ws_frame_header(hdr, CHAT_WS_OP_PING, 1, 5, NULL);
    assert_int_equal(n, 2);
    assert_memory_equal(hdr, ping, 2);

    chat_test_run_step(t, 1, 100, pong, sizeof(pong), 100, copy);
    chat_test_expect(t, "<pong:Hello>", 12);
    n = chat_ws_frame_header(hdr, CHAT_WS_OP_PONG, 1, 5,
                             (const unsigned char *) MK);
    assert_int_equal(n, 6);
    assert_memory_equal(hdr, pong, 6);

    /* 256 bytes and 64 KiB in a single unmasked binary frame */
    n = chat_ws_frame_header(hdr, CHAT_WS_OP_BINARY, 1, 256, NULL);
    assert_int_equal(n, 4);
    assert_memory_equal(hdr, len256, 4);

    n = chat_ws_frame_header(hdr, CHAT_WS_OP_BINARY, 1, 65536, NULL);
    assert_int_equal(n, 10);
    assert_memory_equal(hdr, len64k, 10);

    big = malloc(CHAT_TEST_CAP);
    assert_non_null(big);

    for (n = 256; n <= 65536; n += 65536 - 256) {
        s->len = 0;
        chat_test_raw(s, n == 256 ? len256 : len64k,
                      n == 256 ? sizeof(len256) : sizeof(len64k));

        for (i = 0; i < n; i++) {
            s->buf[s->len++] = (unsigned char) (i * 7);
        }

        chat_test_run_split(t, 0, CHAT_TEST_NOLIMIT, s->buf, s->len, 3,
                            s->len / 2, big);
        assert_int_equal(t->out_len, 3 + n + 1);
        assert_memory_equal(t->out, "<B:", 3);
        assert_memory_equal(t->out + 3, s->buf + s->len - n, n);

        /* one byte over the limit fails from the header alone */
        chat_test_run_step(t, 0, n - 1, s->buf, s->len, 1, big);
        assert_int_equal(t->error, 1009);
        assert_int_equal(t->error_at, n == 256 ? 4 : 10);
    }

    free(big);
    free(s);
    free(t);
}


static void
chat_test_handshake(void **state)
{
    char         out[CHAT_WS_ACCEPT_LEN + 1];
    char         key[32];
    size_t       i;

    (void) state;

    /* RFC 6455 section 1.3 */
    memset(out, 'x', sizeof(out));
    assert_int_equal(chat_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out),
                     0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(strlen(out), CHAT_WS_ACCEPT_LEN);

    /* another key, checked with Python's hashlib and base64 */
    assert_int_equal(chat_ws_accept_key("AQIDBAUGBwgJCgsMDQ4PEA==", 24, out),
                     0);
    assert_string_equal(out, "C/0nmHhBztSRGR1CwL6Tf4ZjwpY=");

    assert_int_equal(chat_ws_accept_key(NULL, 0, out), -1);
    assert_int_equal(chat_ws_accept_key("", 0, out), -1);
    assert_int_equal(chat_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=", 23, out),
                     -1);
    assert_int_equal(chat_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ===", 25,
                                        out), -1);
    assert_int_equal(chat_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 23, out),
                     -1);
    /* 18 bytes, no padding */
    assert_int_equal(chat_ws_accept_key("dGhlIHNhbXBsZSBub25jZQAA", 24, out),
                     -1);
    assert_int_equal(chat_ws_accept_key("dGhlIHNhbXBsZSBub25jZ===", 24, out),
                     -1);

    /* every position with a character outside the alphabet */
    for (i = 0; i < 22; i++) {
        memcpy(key, "dGhlIHNhbXBsZSBub25jZQ==", 24);
        key[i] = (i & 1) ? '-' : ' ';
        assert_int_equal(chat_ws_accept_key(key, 24, out), -1);
        key[i] = '\0';
        assert_int_equal(chat_ws_accept_key(key, 24, out), -1);
        key[i] = (i & 1) ? '+' : '/';
        assert_int_equal(chat_ws_accept_key(key, 24, out), 0);
    }
}


static void
chat_test_header_token(void **state)
{
#define chat_test_tok(v, tok)                                                 \
    chat_ws_header_has_token(v, CHAT_TEST_LEN(v), tok)

    (void) state;

    assert_int_equal(chat_test_tok("Upgrade", "upgrade"), 1);
    assert_int_equal(chat_test_tok("upgrade", "Upgrade"), 1);
    assert_int_equal(chat_test_tok("keep-alive, Upgrade", "upgrade"), 1);
    assert_int_equal(chat_test_tok("Upgrade, keep-alive", "upgrade"), 1);
    assert_int_equal(chat_test_tok("keep-alive,Upgrade", "upgrade"), 1);
    assert_int_equal(chat_test_tok(" \tUPGRADE \t, x", "upgrade"), 1);
    assert_int_equal(chat_test_tok(",,upgrade,,", "upgrade"), 1);
    assert_int_equal(chat_test_tok("websocket", "websocket"), 1);
    assert_int_equal(chat_test_tok("WebSocket", "websocket"), 1);

    assert_int_equal(chat_test_tok("", "upgrade"), 0);
    assert_int_equal(chat_test_tok(",", "upgrade"), 0);
    assert_int_equal(chat_test_tok("keep-alive", "upgrade"), 0);
    assert_int_equal(chat_test_tok("upgrades", "upgrade"), 0);
    assert_int_equal(chat_test_tok("xupgrade", "upgrade"), 0);
    assert_int_equal(chat_test_tok("upgrad", "upgrade"), 0);
    assert_int_equal(chat_test_tok("up grade", "upgrade"), 0);
    assert_int_equal(chat_test_tok("upgrade;q=1", "upgrade"), 0);
    assert_int_equal(chat_test_tok("websocket/13", "websocket"), 0);
    assert_int_equal(chat_test_tok("upgrade", ""), 0);
    assert_int_equal(chat_ws_header_has_token(NULL, 0, "upgrade"), 0);
    assert_int_equal(chat_ws_header_has_token("upgrade", 7, NULL), 0);

    /* only len bytes count, and the case folding is ASCII only */
    assert_int_equal(chat_ws_header_has_token("upgradex", 7, "upgrade"), 1);
    assert_int_equal(chat_ws_header_has_token("x, upgrade", 6, "upgrade"),
                     0);
    assert_int_equal(chat_test_tok("UPGRAD\xc5", "upgrad\xe5"), 0);
    assert_int_equal(chat_test_tok("a@", "A`"), 0);
    assert_int_equal(chat_test_tok("a[", "A{"), 0);

#undef chat_test_tok
}


static void
chat_test_rule_violations(void **state)
{
    size_t                   i, k;
    unsigned char            buf[64];
    chat_test_sink_t        *t;
    const chat_test_rule_t  *r;

    (void) state;

    t = chat_test_sink_new(1, CHAT_TEST_NOLIMIT);

    for (i = 0; i < sizeof(chat_test_rules) / sizeof(chat_test_rules[0]);
         i++)
    {
        r = &chat_test_rules[i];

        assert_true(r->len <= sizeof(buf));

        /* all at once */
        chat_test_run_step(t, r->server, CHAT_TEST_NOLIMIT,
                           (const unsigned char *) r->bytes, r->len, r->len,
                           buf);

        if (t->error != r->code) {
            fail_msg("%s: error %u, expected %u", r->name, t->error,
                     r->code);
        }

        /* a byte at a time: it fails at the first byte that shows it */
        chat_test_run_step(t, r->server, CHAT_TEST_NOLIMIT,
                           (const unsigned char *) r->bytes, r->len, 1, buf);

        if (t->error != r->code || t->error_at != r->fail_at) {
            fail_msg("%s: error %u after %zu bytes, expected %u after %zu",
                     r->name, t->error, t->error_at, r->code, r->fail_at);
        }

        /* and later input changes nothing */
        for (k = 0; k < 3; k++) {
            chat_test_feed(t, buf, r->len);
            assert_int_equal(t->error, r->code);
        }
    }

    free(t);
}


static void
chat_test_opcodes(void **state)
{
    unsigned           op, fin;
    unsigned char      buf[8], copy[8];
    chat_test_sink_t  *t;

    (void) state;

    t = chat_test_sink_new(1, CHAT_TEST_NOLIMIT);

    for (op = 0; op < 16; op++) {
        for (fin = 0; fin < 2; fin++) {
            buf[0] = (unsigned char) ((fin << 7) | op);
            memcpy(buf + 1, "\x80" M0, 5);

            chat_test_run_step(t, 1, CHAT_TEST_NOLIMIT, buf, 6, 1, copy);

            if ((op >= 3 && op <= 7) || op >= 0xb || op == 0
                || (op >= 8 && !fin))
            {
                assert_int_equal(t->error, 1002);
                assert_int_equal(t->error_at, 1);

            } else {
                assert_int_equal(t->error, 0);
                assert_int_equal(t->events, (op <= 2 && !fin) ? 0 : 1);
            }

            /* the writer refuses what the parser refuses */
            assert_int_equal(chat_ws_frame_header(buf, (int) op, (int) fin,
                                                  0, NULL) != 0,
                             t->error == 0 || op == 0);
        }
    }

    free(t);
}


static void
chat_test_close_codes(void **state)
{
    size_t             i;
    unsigned           code;
    unsigned char      frame[32], copy[32];
    chat_test_sink_t  *t;

    static const unsigned  valid[] = {
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
        1014, 3000, 3999, 4000, 4999
    };
    static const unsigned  invalid[] = {
        0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000,
        9999, 65535
    };

    (void) state;

    t = chat_test_sink_new(1, CHAT_TEST_NOLIMIT);

    for (code = 0; code < 65536; code++) {
        assert_int_equal(chat_ws_close_code_valid(code),
                         (code >= 1000 && code <= 1003)
                         || (code >= 1007 && code <= 1014)
                         || (code >= 3000 && code <= 4999));
    }

    memcpy(frame, "\x88\x84" M0 "..ok", 10);

    for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        frame[6] = (unsigned char) (valid[i] >> 8);
        frame[7] = (unsigned char) valid[i];
        chat_test_run_step(t, 1, 10, frame, 10, 3, copy);
        assert_int_equal(t->error, 0);
        assert_true(t->closed);
        assert_int_equal(t->out_len, 15);
        assert_int_equal(atoi(t->out + 7), valid[i]);
        assert_memory_equal(t->out + 11, ":ok>", 4);
    }

    for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        frame[6] = (unsigned char) (invalid[i] >> 8);
        frame[7] = (unsigned char) invalid[i];
        chat_test_run_step(t, 1, 10, frame, 10, 1, copy);
        assert_int_equal(t->error, 1002);

        /* control frames are judged whole */
        assert_int_equal(t->error_at, 10);
    }

    /* no payload: 1005 is reported, never read from the wire */
    chat_test_run_step(t, 1, 10, (const unsigned char *) "\x88\x80" M0, 6,
                       6, copy);
    chat_test_expect(t, "<close:1005:>", 13);

    /* a code alone; then nothing after the close is parsed */
    chat_test_run_step(t, 1, 10,
                       (const unsigned char *) "\x88\x82" M0 "\x03\xe8"
                       "\xff\xff\x81\x05Hello", 17, 1, frame);
    chat_test_expect(t, "<close:1000:>", 13);
    assert_int_equal(t->error, 0);
    assert_int_equal(t->events, 1);

    free(t);
}


/*
 * A stream with most frame kinds: pings and pongs between fragments, a
 * character split across fragments, empty frames, a 16-bit length, a
 * 125-byte ping, a close with a reason, and bytes after it.
 */
static size_t
chat_test_stream(chat_test_stream_t *s, char *expect)
{
    size_t         i, n;
    unsigned char  bin[300], ping[125];

    for (i = 0; i < sizeof(bin); i++) {
        bin[i] = (unsigned char) (i * 13 + 5);
    }

    for (i = 0; i < sizeof(ping); i++) {
        ping[i] = (unsigned char) ('a' + i % 26);
    }

    n = 0;

#define chat_test_add(str, len)                                               \
    memcpy(expect + n, str, len); n += len

    chat_test_frame(s, CHAT_WS_OP_TEXT, 1, "Hello", 5);
    chat_test_add("<T:Hello>", 9);

    chat_test_frame(s, CHAT_WS_OP_TEXT, 0, "H\xc3", 2);
    chat_test_frame(s, CHAT_WS_OP_PING, 1, "p1", 2);
    chat_test_frame(s, CHAT_WS_OP_CONT, 0, "\xa9\xe2\x82", 3);
    chat_test_frame(s, CHAT_WS_OP_PONG, 1, "", 0);
    chat_test_frame(s, CHAT_WS_OP_CONT, 0, "", 0);
    chat_test_frame(s, CHAT_WS_OP_CONT, 1, "\xac!", 2);
    chat_test_add("<ping:p1><pong:><T:H\xc3\xa9\xe2\x82\xac!>", 27);

    chat_test_frame(s, CHAT_WS_OP_BINARY, 1, "", 0);
    chat_test_add("<B:>", 4);

    chat_test_frame(s, CHAT_WS_OP_BINARY, 1, bin, sizeof(bin));
    chat_test_add("<B:", 3);
    chat_test_add(bin, sizeof(bin));
    chat_test_add(">", 1);

    chat_test_frame(s, CHAT_WS_OP_TEXT, 0, "", 0);
    chat_test_frame(s, CHAT_WS_OP_CONT, 1, "x", 1);
    chat_test_add("<T:x>", 5);

    chat_test_frame(s, CHAT_WS_OP_PING, 1, ping, sizeof(ping));
    chat_test_add("<ping:", 6);
    chat_test_add(ping, sizeof(ping));
    chat_test_add(">", 1);

    chat_test_frame(s, CHAT_WS_OP_BINARY, 0, bin, 126);
    chat_test_frame(s, CHAT_WS_OP_CONT, 1, bin + 126, 1);
    chat_test_add("<B:", 3);
    chat_test_add(bin, 127);
    chat_test_add(">", 1);

    chat_test_frame(s, CHAT_WS_OP_TEXT, 1, "", 0);
    chat_test_add("<T:>", 4);

    chat_test_frame(s, CHAT_WS_OP_CLOSE, 1, "\x03\xe8" "bye", 5);
    chat_test_add("<close:1000:bye>", 16);

    chat_test_raw(s, "\x00\xff\x81", 3);

#undef chat_test_add

    return n;
}


static void
chat_test_every_split(void **state)
{
    int                  server;
    char                *expect;
    size_t               a, b, n;
    unsigned char       *copy;
    chat_test_sink_t    *t;
    chat_test_stream_t  *s;

    (void) state;

    t = chat_test_sink_new(1, CHAT_TEST_NOLIMIT);
    expect = malloc(CHAT_TEST_CAP);
    copy = malloc(CHAT_TEST_CAP);
    assert_non_null(expect);
    assert_non_null(copy);

    for (server = 0; server < 2; server++) {
        s = chat_test_stream_new(server);
        n = chat_test_stream(s, expect);

        chat_test_run_step(t, server, 300, s->buf, s->len, s->len, copy);
        chat_test_expect(t, expect, n);

        chat_test_run_step(t, server, 300, s->buf, s->len, 1, copy);
        chat_test_expect(t, expect, n);

        for (a = 0; a <= s->len; a++) {
            chat_test_run_split(t, server, 300, s->buf, s->len, a, a, copy);
            chat_test_expect(t, expect, n);
        }

        /* three chunks, on the server side only: quadratic */
        for (a = 0; server && a <= s->len; a++) {
            for (b = a; b <= s->len; b++) {
                chat_test_run_split(t, server, 300, s->buf, s->len, a, b,
                                    copy);
                chat_test_expect(t, expect, n);
            }
        }

        /* the 300-byte message is the largest */
        chat_test_run_step(t, server, 299, s->buf, s->len, 7, copy);
        assert_int_equal(t->error, 1009);

        free(s);
    }

    free(copy);
    free(expect);
    free(t);
}


/* text split into two fragments at k, then fed in chunks split at j */
static void
chat_test_utf8_text(chat_test_sink_t *t, const char *text, size_t len,
    unsigned expect_error)
{
    char                 expect[64];
    size_t               j, k;
    unsigned char        copy[64];
    chat_test_stream_t  *s;

    s = chat_test_stream_new(1);

    memcpy(expect, "<T:", 3);
    memcpy(expect + 3, text, len);
    expect[3 + len] = '>';

    for (k = 0; k <= len; k++) {
        s->len = 0;
        chat_test_frame(s, CHAT_WS_OP_TEXT, 0, text, k);

        /* a ping in the middle of the character changes nothing */
        if (k & 1) {
            chat_test_frame(s, CHAT_WS_OP_PING, 1, "", 0);
        }

        chat_test_frame(s, CHAT_WS_OP_CONT, 1, text + k, len - k);

        for (j = 0; j <= s->len; j++) {
            chat_test_run_split(t, 1, 100, s->buf, s->len, j, j, copy);

            if (expect_error) {
                assert_int_equal(t->error, expect_error);
                continue;
            }

            assert_int_equal(t->error, 0);
            assert_int_equal(t->msg_len, 0);
            assert_int_equal(t->out_len, (k & 1) ? len + 4 + 7 : len + 4);
            assert_memory_equal(t->out + t->out_len - len - 4, expect,
                                len + 4);
        }

        chat_test_run_step(t, 1, 100, s->buf, s->len, 1, copy);
        assert_int_equal(t->error, expect_error);
    }

    free(s);
}


static void
chat_test_utf8_splits(void **state)
{
    char               text[32];
    size_t             c, n, cut;
    chat_test_sink_t  *t;

    (void) state;

    t = chat_test_sink_new(1, 100);

    for (c = 0; c < 3; c++) {
        n = strlen(chat_test_utf8_chars[c]);

        /* "a<ch>b<ch>": characters inside and at the end */
        text[0] = 'a';
        memcpy(text + 1, chat_test_utf8_chars[c], n);
        text[1 + n] = 'b';
        memcpy(text + 2 + n, chat_test_utf8_chars[c], n);
        chat_test_utf8_text(t, text, 2 + 2 * n, 0);

        for (cut = 1; cut < n; cut++) {
            /* a character cut short, then ASCII */
            memcpy(text + 1, chat_test_utf8_chars[c], cut);
            text[1 + cut] = 'b';
            chat_test_utf8_text(t, text, 2 + cut, 1007);

            /* a character cut short at the end of the message */
            chat_test_utf8_text(t, text, 1 + cut, 1007);
        }
    }

    free(t);
}


static void
chat_test_max_message(void **state)
{
    unsigned char      copy[200];
    chat_test_sink_t  *t;

    (void) state;

#define chat_test_max(max, s, step)                                           \
    chat_test_run_step(t, 1, max, (const unsigned char *) s,                 \
                       CHAT_TEST_LEN(s), step, copy)

    t = chat_test_sink_new(1, 10);

    chat_test_max(10, "\x81\x8a" M0 "0123456789", 1);
    chat_test_expect(t, "<T:0123456789>", 14);

    /* the header is enough: the payload never arrives */
    chat_test_max(10, "\x81\x8b" M0, 1);
    assert_int_equal(t->error, 1009);
    assert_int_equal(t->error_at, 2);

    chat_test_max(10, "\x01\x86" M0 "012345" "\x80\x84" M0 "6789", 1);
    chat_test_expect(t, "<T:0123456789>", 14);

    chat_test_max(10, "\x01\x86" M0 "012345" "\x80\x85" M0, 1);
    assert_int_equal(t->error, 1009);
    assert_int_equal(t->error_at, 14);

    /* control frames do not count, and neither do earlier messages */
    chat_test_max(10, "\x01\x86" M0 "012345" "\x89\x8b" M0 "01234567890"
                  "\x80\x84" M0 "6789" "\x82\x8a" M0 "0123456789", 5);
    chat_test_expect(t, "<ping:01234567890><T:0123456789><B:0123456789>",
                     46);

    chat_test_max(300, "\x82\xfe\x01\x2c" M0, 1);
    assert_int_equal(t->error, 0);
    chat_test_max(300, "\x82\xfe\x01\x2d" M0, 1);
    assert_int_equal(t->error, 1009);
    assert_int_equal(t->error_at, 4);

    chat_test_max(1 << 20, "\x82\xff\x40\0\0\0\0\0\0\0" M0, 1);
    assert_int_equal(t->error, 1009);
    assert_int_equal(t->error_at, 10);

    /* no limit: the largest length is fine, and nothing overflows */
    chat_test_max(CHAT_TEST_NOLIMIT,
                  "\x02\x81" M0 "a" "\x80\xff\x7f\xff\xff\xff\xff\xff\xff\xff"
                  M0 "bcd", 1);
    assert_int_equal(t->error, 0);
    assert_int_equal(t->msg_len, 4);

    chat_test_max(UINT64_MAX - 1,
                  "\x02\x81" M0 "a" "\x80\xff\x7f\xff\xff\xff\xff\xff\xff\xff"
                  M0 "bcd", 1);
    assert_int_equal(t->error, 0);

    /* 0: only empty messages */
    chat_test_max(0, "\x81\x80" M0 "\x82\x80" M0, 1);
    chat_test_expect(t, "<T:><B:>", 8);
    chat_test_max(0, "\x81\x81" M0 "a", 1);
    assert_int_equal(t->error, 1009);
    assert_int_equal(t->error_at, 2);

#undef chat_test_max

    free(t);
}


static void
chat_test_writer(void **state)
{
    int                  server, op;
    size_t               i, k, n, off;
    uint64_t             len;
    unsigned char        hdr[CHAT_WS_MAX_HEADER], data[64], ref[64];
    unsigned char        mask[4], *copy, *pl;
    chat_test_sink_t    *t;
    chat_test_stream_t  *s;

    static const uint64_t  lens[] = {
        0, 1, 125, 126, 127, 1000, 65535, 65536, 70000
    };

    (void) state;

    t = chat_test_sink_new(1, CHAT_TEST_NOLIMIT);
    copy = malloc(CHAT_TEST_CAP);
    pl = malloc(CHAT_TEST_CAP);
    assert_non_null(copy);
    assert_non_null(pl);

    /* header + mask + payload, parsed back on the other side */
    for (server = 0; server < 2; server++) {
        s = chat_test_stream_new(server);

        for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            for (op = CHAT_WS_OP_TEXT; op <= CHAT_WS_OP_BINARY; op++) {
                s->len = 0;

                for (k = 0; k < lens[i]; k++) {
                    pl[k] = (op == CHAT_WS_OP_TEXT)
                            ? (unsigned char) ('a' + k % 26)
                            : (unsigned char) chat_test_rand();
                }

                chat_test_frame(s, op, 1, pl, lens[i]);
                assert_int_equal(s->len, lens[i]
                                 + (lens[i] < 126 ? 2
                                    : lens[i] < 65536 ? 4 : 10)
                                 + (server ? 4 : 0));

                chat_test_run_step(t, server, lens[i], s->buf, s->len,
                                   1000, copy);
                assert_int_equal(t->error, 0);
                assert_int_equal(t->out_len, lens[i] + 4);
                assert_memory_equal(t->out + 3, pl, lens[i]);
            }
        }

        free(s);
    }

    /* the payloads themselves: masked frames unmask to the original */
    s = chat_test_stream_new(1);
    chat_test_frame(s, CHAT_WS_OP_BINARY, 1, "\x00\x01\x02\xff", 4);
    chat_test_run_step(t, 1, 10, s->buf, s->len, 1, copy);
    chat_test_expect(t, "<B:\x00\x01\x02\xff>", 8);
    free(s);

    /* refusals */
    assert_int_equal(chat_ws_frame_header(hdr, 3, 1, 0, NULL), 0);
    assert_int_equal(chat_ws_frame_header(hdr, 0xb, 1, 0, NULL), 0);
    assert_int_equal(chat_ws_frame_header(hdr, 16, 1, 0, NULL), 0);
    assert_int_equal(chat_ws_frame_header(hdr, -1, 1, 0, NULL), 0);
    assert_int_equal(chat_ws_frame_header(hdr, CHAT_WS_OP_PING, 0, 0, NULL),
                     0);
    assert_int_equal(chat_ws_frame_header(hdr, CHAT_WS_OP_CLOSE, 1, 126,
                                          NULL), 0);
    assert_int_equal(chat_ws_frame_header(hdr, CHAT_WS_OP_PONG, 1, 125,
                                          NULL), 2);
    assert_int_equal(chat_ws_frame_header(hdr, CHAT_WS_OP_BINARY, 1,
                                          1ULL << 63, NULL), 0);

    len = (1ULL << 63) - 1;
    n = chat_ws_frame_header(hdr, CHAT_WS_OP_BINARY, 0, len, mask);
    assert_int_equal(n, 14);
    assert_memory_equal(hdr, "\x02\xff\x7f\xff\xff\xff\xff\xff\xff\xff", 10);
    assert_memory_equal(hdr + 10, mask, 4);

    /* masking at any offset agrees with the byte-wise definition */
    for (i = 0; i < 4; i++) {
        mask[i] = (unsigned char) chat_test_rand();
    }

    for (off = 0; off < 9; off++) {
        for (n = 0; n <= sizeof(data); n++) {
            for (k = 0; k < n; k++) {
                data[k] = (unsigned char) chat_test_rand();
                ref[k] = data[k] ^ mask[(off + k) % 4];
            }

            chat_ws_mask(data, n, mask, off + (1ULL << 40));
            assert_memory_equal(data, ref, n);
        }
    }

    free(pl);
    free(copy);
    free(t);
}


static void
chat_test_close_payload(void **state)
{
    char               reason[200];
    size_t             n;
    unsigned char      out[CHAT_WS_MAX_CONTROL], frame[200], copy[200];
    chat_test_sink_t  *t;

    (void) state;

    t = chat_test_sink_new(1, 10);

    assert_int_equal(chat_ws_close_payload(out, 0, "x", 1), 0);
    assert_int_equal(chat_ws_close_payload(out, 1000, NULL, 5), 2);
    assert_memory_equal(out, "\x03\xe8", 2);
    assert_int_equal(chat_ws_close_payload(out, 1009, "too big", 7), 9);
    assert_memory_equal(out, "\x03\xf1too big", 9);

    /* exactly 123 bytes fit; 124 are cut */
    memset(reason, 'a', sizeof(reason));
    assert_int_equal(chat_ws_close_payload(out, 1000, reason, 123), 125);
    assert_int_equal(chat_ws_close_payload(out, 1000, reason, 124), 125);
    assert_int_equal(chat_ws_close_payload(out, 1000, reason, 200), 125);

    /* a character across the cut goes whole */
    memcpy(reason + 122, "\xe2\x82\xac", 3);
    assert_int_equal(chat_ws_close_payload(out, 1000, reason, 125), 124);
    memcpy(reason + 121, "\xf0\x9f\x98\x80", 4);
    assert_int_equal(chat_ws_close_payload(out, 1000, reason, 125), 123);
    memcpy(reason + 120, "\xf0\x9f\x98\x80", 4);
    assert_int_equal(chat_ws_close_payload(out, 1000, reason, 124), 122);
    memcpy(reason + 120, "\xc3\xa9\xc3\xa9", 4);
    assert_int_equal(chat_ws_close_payload(out, 1000, reason, 124), 124);
    memcpy(reason + 120, "a\xc3\xa9\xc3\xa9", 5);
    assert_int_equal(chat_ws_close_payload(out, 1000, reason, 125), 125);

    /* a reason that is not UTF-8 is left out */
    assert_int_equal(chat_ws_close_payload(out, 1000, "\xc3\x28", 2), 2);
    assert_int_equal(chat_ws_close_payload(out, 1000, "ok\xff", 3), 2);

    /* round trip through a frame */
    n = chat_ws_close_payload(out, 4001, "gone \xe2\x82\xac", 8);
    assert_int_equal(n, 10);
    assert_int_equal(chat_ws_frame_header(frame, CHAT_WS_OP_CLOSE, 1, n,
                                          (const unsigned char *) MK), 6);
    memcpy(frame + 6, out, n);
    chat_ws_mask(frame + 6, n, (const unsigned char *) MK, 0);
    chat_test_run_step(t, 1, 10, frame, 6 + n, 1, copy);
    chat_test_expect(t, "<close:4001:gone \xe2\x82\xac>", 21);

    free(t);
}


/* how events point into the buffer or into the parser */
static void
chat_test_events(void **state)
{
    long              n;
    unsigned char     buf[32];
    chat_ws_event_t   ev;
    chat_ws_parser_t  p;

    (void) state;

    chat_ws_parser_init(&p, 1, 100);

    n = chat_ws_parse(&p, buf, 0, &ev);
    assert_int_equal(n, 0);
    assert_int_equal(ev.type, CHAT_WS_NEED_MORE);

    /* a ping whole in one chunk: unmasked in place */
    memcpy(buf, "\x89\x82" MK, 6);
    memcpy(buf + 6, "hi", 2);
    chat_ws_mask(buf + 6, 2, (const unsigned char *) MK, 0);

    n = chat_ws_parse(&p, buf, 8, &ev);
    assert_int_equal(n, 8);
    assert_int_equal(ev.type, CHAT_WS_PING);
    assert_ptr_equal(ev.data, buf + 6);
    assert_memory_equal(buf + 6, "hi", 2);

    /* split: delivered whole, from the parser's buffer */
    memcpy(buf, "\x89\x82" MK, 6);
    memcpy(buf + 6, "hi", 2);
    chat_ws_mask(buf + 6, 2, (const unsigned char *) MK, 0);

    n = chat_ws_parse(&p, buf, 7, &ev);
    assert_int_equal(n, 7);
    assert_int_equal(ev.type, CHAT_WS_NEED_MORE);

    n = chat_ws_parse(&p, buf + 7, 1, &ev);
    assert_int_equal(n, 1);
    assert_int_equal(ev.type, CHAT_WS_PING);
    assert_int_equal(ev.len, 2);
    assert_memory_equal(ev.data, "hi", 2);
    assert_true(ev.data < buf || ev.data >= buf + sizeof(buf));

    /* one event per call: the rest of the chunk waits */
    memcpy(buf, "\x8a\x80" M0 "\x82\x81" M0 "z" "\x89\x80" M0, 19);

    n = chat_ws_parse(&p, buf, 19, &ev);
    assert_int_equal(n, 6);
    assert_int_equal(ev.type, CHAT_WS_PONG);
    assert_int_equal(ev.len, 0);

    n = chat_ws_parse(&p, buf + 6, 13, &ev);
    assert_int_equal(n, 7);
    assert_int_equal(ev.type, CHAT_WS_DATA);
    assert_int_equal(ev.opcode, CHAT_WS_OP_BINARY);
    assert_ptr_equal(ev.data, buf + 12);

    n = chat_ws_parse(&p, buf + 13, 6, &ev);
    assert_int_equal(n, 0);
    assert_int_equal(ev.type, CHAT_WS_MESSAGE_END);
    assert_int_equal(ev.opcode, CHAT_WS_OP_BINARY);

    n = chat_ws_parse(&p, buf + 13, 6, &ev);
    assert_int_equal(n, 6);
    assert_int_equal(ev.type, CHAT_WS_PING);

    /* the error text and code */
    buf[0] = 0xc1;
    n = chat_ws_parse(&p, buf, 1, &ev);
    assert_int_equal(n, CHAT_WS_RC_PROTOCOL);
    assert_int_equal(ev.type, CHAT_WS_ERROR);
    assert_int_equal(ev.error_code, 1002);
    assert_string_equal(ev.error, "reserved bits set");

    n = chat_ws_parse(&p, buf, 0, &ev);
    assert_int_equal(n, CHAT_WS_RC_PROTOCOL);

    /* init starts over */
    chat_ws_parser_init(&p, 0, 100);
    memcpy(buf, "\x81\x01\xc3", 3);
    n = chat_ws_parse(&p, buf, 3, &ev);
    assert_int_equal(n, 3);
    assert_int_equal(ev.type, CHAT_WS_DATA);
    n = chat_ws_parse(&p, buf, 0, &ev);
    assert_int_equal(n, CHAT_WS_RC_INVALID);
    assert_int_equal(ev.error_code, 1007);

    chat_ws_parser_init(&p, 0, 0);
    memcpy(buf, "\x81\x01", 2);
    n = chat_ws_parse(&p, buf, 2, &ev);
    assert_int_equal(n, CHAT_WS_RC_TOO_BIG);
    assert_int_equal(ev.error_code, 1009);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(chat_test_rfc_examples),
        cmocka_unit_test(chat_test_handshake),
        cmocka_unit_test(chat_test_header_token),
        cmocka_unit_test(chat_test_rule_violations),
        cmocka_unit_test(chat_test_opcodes),
        cmocka_unit_test(chat_test_close_codes),
        cmocka_unit_test(chat_test_every_split),
        cmocka_unit_test(chat_test_utf8_splits),
        cmocka_unit_test(chat_test_max_message),
        cmocka_unit_test(chat_test_writer),
        cmocka_unit_test(chat_test_close_payload),
        cmocka_unit_test(chat_test_events),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
