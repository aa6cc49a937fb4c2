
/*
 * libFuzzer target for src/common/chat_ws.c.
 *
 * Input: byte 0 picks the side (bit 0: server) and max_message (bits
 * 1-4), byte 1 the number of chunk sizes that follow (0: one chunk), then
 * those sizes, then the bytes of the stream.
 *
 * The stream is parsed three ways: in the chunks given, in one chunk,
 * and by a reference parser below that sees the whole input at once and
 * shares no code with the one under test (UTF-8 is judged by
 * chat_fuzz_utf8_ref(), chat_fuzz.h).  All three must report the same
 * messages, control frames and error, in the same order.  Each call is
 * also checked against the calling contract in chat_ws.h.
 *
 * The handshake helpers get the raw input too, the accept key checked
 * against OpenSSL's SHA-1 and base64; so do chat_base64.c's encoders,
 * and its base64url decoder must take the input back exactly when it is
 * canonical.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "chat_base64.h"
#include "chat_ws.h"
#include "chat_fuzz.h"


#define CHAT_FUZZ_LOG_MAX   (256 * 1024)
#define CHAT_FUZZ_MSG_MAX   (64 * 1024)


/* what a parse reported, in a form the three parses can compare */
typedef struct {
    unsigned char   buf[CHAT_FUZZ_LOG_MAX];
    size_t          len;
} chat_fuzz_log_t;


typedef struct {
    chat_ws_parser_t   p;
    chat_fuzz_log_t   *log;
    uint64_t           max;
    unsigned char      msg[CHAT_FUZZ_MSG_MAX];
    size_t             msg_len;
    int                msg_op;
    unsigned           error;
    int                closed;
} chat_fuzz_run_t;


/* the reference decoder's state: the bytes of an unfinished character */
typedef struct {
    unsigned char   part[4];
    size_t          n;
} chat_fuzz_utf8_t;


static const uint64_t  chat_fuzz_max[16] = {
    0, 1, 2, 5, 10, 125, 126, 127, 300, 1000, 4096, 65535, 65536,
    (1ULL << 63) - 1, UINT64_MAX - 1, UINT64_MAX
};


static chat_fuzz_log_t  chat_fuzz_log_ref;
static chat_fuzz_log_t  chat_fuzz_log_one;
static chat_fuzz_log_t  chat_fuzz_log_chunks;
static chat_fuzz_run_t  chat_fuzz_run;


static void
chat_fuzz_log(chat_fuzz_log_t *log, int type, unsigned code,
    const void *data, size_t len)
{
    unsigned char  *p;

    chat_fuzz_check(log->len + 9 + len <= CHAT_FUZZ_LOG_MAX);

    p = log->buf + log->len;
    p[0] = (unsigned char) type;
    p[1] = (unsigned char) (code >> 8);
    p[2] = (unsigned char) code;
    p[3] = (unsigned char) (len >> 24);
    p[4] = (unsigned char) (len >> 16);
    p[5] = (unsigned char) (len >> 8);
    p[6] = (unsigned char) len;

    if (len > 0) {
        memcpy(p + 7, data, len);
    }

    log->len += 7 + len;
}


/* 0 while the bytes so far can still begin valid UTF-8 */
static int
chat_fuzz_utf8_add(chat_fuzz_utf8_t *u, unsigned char c)
{
    size_t         need, k, i;
    unsigned char  tmp[4];

    static const unsigned char  fill[2] = { 0x80, 0xa0 };

    if (u->n == 0 && c < 0x80) {
        return 0;
    }

    u->part[u->n++] = c;

    need = (u->part[0] >= 0xf0 && u->part[0] <= 0xf7) ? 4
           : (u->part[0] >= 0xe0 && u->part[0] < 0xf0) ? 3
           : (u->part[0] >= 0xc0 && u->part[0] < 0xe0) ? 2 : 1;

    if (u->n == need) {
        u->n = 0;
        return chat_fuzz_utf8_ref(u->part, need);
    }

    /* a prefix is fine when some completion is valid: try two */
    for (k = 0; k < 2; k++) {
        memcpy(tmp, u->part, u->n);

        for (i = u->n; i < need; i++) {
            tmp[i] = fill[k];
        }

        if (chat_fuzz_utf8_ref(tmp, need) == 0) {
            return 0;
        }
    }

    return -1;
}


static int
chat_fuzz_code_ok(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014)
           || (code >= 3000 && code <= 4999);
}


/*
 * The reference: the whole stream in memory, frame by frame, the rules
 * read straight from RFC 6455.  Errors are found in stream order, at the
 * byte that shows them, as the parser under test must find them.
 */
static void
chat_fuzz_reference(int server, uint64_t max, const unsigned char *d,
    size_t n, chat_fuzz_log_t *log)
{
    int                    op, fin, msg_op;
    size_t                 pos, hl, avail, i, msg_n;
    unsigned               len7, code, err;
    uint64_t               len, msg_len;
    unsigned char          mask[4], c;
    chat_fuzz_utf8_t       u;
    static unsigned char   msg[CHAT_FUZZ_MSG_MAX], ctl[CHAT_WS_MAX_CONTROL];

    pos = 0;
    msg_op = 0;
    msg_len = 0;
    msg_n = 0;
    err = 0;
    u.n = 0;

    memset(mask, 0, sizeof(mask));

    while (pos < n) {
        fin = d[pos] >> 7;
        op = d[pos] & 0x0f;

        if ((d[pos] & 0x70) || (op > 2 && op < 8) || op > 10
            || (op == 0 && msg_op == 0) || ((op == 1 || op == 2) && msg_op)
            || (op >= 8 && !fin))
        {
            err = 1002;
            break;
        }

        if (pos + 1 >= n) {
            break;
        }

        len7 = d[pos + 1] & 0x7f;

        if ((d[pos + 1] >> 7) != server || (op >= 8 && len7 > 125)) {
            err = 1002;
            break;
        }

        hl = 2;
        len = len7;

        if (len7 == 126) {
            if (pos + 4 > n) {
                break;
            }

            len = ((uint64_t) d[pos + 2] << 8) | d[pos + 3];
            hl = 4;

            if (len < 126) {
                err = 1002;
                break;
            }

        } else if (len7 == 127) {
            if (pos + 10 > n) {
                break;
            }

            len = 0;

            for (i = 0; i < 8; i++) {
                len = (len << 8) | d[pos + 2 + i];
            }

            hl = 10;

            if ((len >> 63) || len < 65536) {
                err = 1002;
                break;
            }
        }

        if (op < 8 && len > max - msg_len) {
            err = 1009;
            break;
        }

        if (server) {
            if (pos + hl + 4 > n) {
                break;
            }

            memcpy(mask, d + pos + hl, 4);
            hl += 4;
        }

        pos += hl;
        avail = (n - pos < len) ? n - pos : (size_t) len;

        if (op >= 8) {
            if (avail < len) {
                break;
            }

            for (i = 0; i < avail; i++) {
                ctl[i] = d[pos + i] ^ mask[i % 4];
            }

            pos += avail;

            if (op != 8) {
                chat_fuzz_log(log, op, 0, ctl, avail);
                continue;
            }

            if (avail == 1) {
                err = 1002;
                break;
            }

            code = avail ? (unsigned) (ctl[0] << 8 | ctl[1]) : 1005;

            if (avail && !chat_fuzz_code_ok(code)) {
                err = 1002;
                break;
            }

            if (avail && chat_fuzz_utf8_ref(ctl + 2, avail - 2) != 0) {
                err = 1007;
                break;
            }

            /* nothing after a close counts */
            chat_fuzz_log(log, op, code, ctl + 2, avail ? avail - 2 : 0);
            return;
        }

        if (op != 0) {
            msg_op = op;
            msg_len = 0;
            msg_n = 0;
            u.n = 0;
        }

        msg_len += len;

        for (i = 0; i < avail; i++) {
            c = d[pos + i] ^ mask[i % 4];
            chat_fuzz_check(msg_n < CHAT_FUZZ_MSG_MAX);
            msg[msg_n++] = c;

            if (msg_op == 1 && chat_fuzz_utf8_add(&u, c) != 0) {
                err = 1007;
                break;
            }
        }

        if (err || avail < len) {
            break;
        }

        pos += avail;

        if (fin) {
            if (msg_op == 1 && u.n != 0) {
                err = 1007;
                break;
            }

            chat_fuzz_log(log, msg_op, 0, msg, msg_n);
            msg_op = 0;
            msg_len = 0;
            msg_n = 0;
        }
    }

    if (err) {
        chat_fuzz_log(log, 'e', err, NULL, 0);
    }
}


static int
chat_fuzz_in(const void *p, size_t len, const void *lo, size_t lo_len)
{
    const unsigned char  *a, *b;

    a = p;
    b = lo;

    return a >= b && a + len <= b + lo_len;
}


/* one chunk, driven until the parser needs more, the contract checked */
static void
chat_fuzz_feed(chat_fuzz_run_t *r, unsigned char *buf, size_t len)
{
    long              n;
    unsigned          zero;
    chat_ws_event_t   ev;

    zero = 0;

    for ( ;; ) {
        n = chat_ws_parse(&r->p, buf, len, &ev);

        if (r->error) {
            /* sticky: the same error, whatever comes after */
            chat_fuzz_check(n == -(long) r->error);
            chat_fuzz_check(ev.type == CHAT_WS_ERROR);
            chat_fuzz_check(ev.error_code == r->error);
            return;
        }

        if (n < 0) {
            chat_fuzz_check(n == CHAT_WS_RC_PROTOCOL
                            || n == CHAT_WS_RC_INVALID
                            || n == CHAT_WS_RC_TOO_BIG);
            chat_fuzz_check(ev.type == CHAT_WS_ERROR);
            chat_fuzz_check(ev.error_code == -n);
            chat_fuzz_check(ev.error != NULL && ev.error[0] != '\0');
            chat_fuzz_check(!r->closed);

            r->error = (unsigned) -n;
            chat_fuzz_log(r->log, 'e', r->error, NULL, 0);
            return;
        }

        chat_fuzz_check((size_t) n <= len);

        if (ev.type == CHAT_WS_NEED_MORE) {
            chat_fuzz_check((size_t) n == len);
            return;
        }

        /* progress: bytes, or an event; never two events without bytes */
        zero = (n == 0) ? zero + 1 : 0;
        chat_fuzz_check(zero <= 1);
        chat_fuzz_check(!r->closed);

        switch (ev.type) {

        case CHAT_WS_DATA:
            chat_fuzz_check(ev.len > 0);
            chat_fuzz_check(chat_fuzz_in(ev.data, ev.len, buf, (size_t) n));
            chat_fuzz_check(ev.opcode == CHAT_WS_OP_TEXT
                            || ev.opcode == CHAT_WS_OP_BINARY);
            chat_fuzz_check(r->msg_op == 0 || r->msg_op == ev.opcode);
            chat_fuzz_check(r->msg_len + ev.len <= r->max);
            chat_fuzz_check(r->msg_len + ev.len <= CHAT_FUZZ_MSG_MAX);

            r->msg_op = ev.opcode;
            memcpy(r->msg + r->msg_len, ev.data, ev.len);
            r->msg_len += ev.len;
            break;

        case CHAT_WS_MESSAGE_END:
            chat_fuzz_check(ev.len == 0);
            chat_fuzz_check(ev.opcode == CHAT_WS_OP_TEXT
                            || ev.opcode == CHAT_WS_OP_BINARY);
            chat_fuzz_check(r->msg_op == 0 || r->msg_op == ev.opcode);

            if (ev.opcode == CHAT_WS_OP_TEXT) {
                chat_fuzz_check(chat_fuzz_utf8_ref(r->msg, r->msg_len)
                                == 0);
            }

            chat_fuzz_log(r->log, ev.opcode, 0, r->msg, r->msg_len);
            r->msg_len = 0;
            r->msg_op = 0;
            break;

        case CHAT_WS_PING:
        case CHAT_WS_PONG:
        case CHAT_WS_CLOSE:
            chat_fuzz_check(ev.len <= CHAT_WS_MAX_CONTROL);
            chat_fuzz_check(ev.opcode
                            == (ev.type == CHAT_WS_PING ? CHAT_WS_OP_PING
                                : ev.type == CHAT_WS_PONG ? CHAT_WS_OP_PONG
                                : CHAT_WS_OP_CLOSE));

            /* whole: in this chunk, or in the parser when it came split */
            chat_fuzz_check(ev.len == 0
                            || chat_fuzz_in(ev.data, ev.len, buf,
                                            (size_t) n)
                            || chat_fuzz_in(ev.data, ev.len, &r->p,
                                            sizeof(chat_ws_parser_t)));

            if (ev.type != CHAT_WS_CLOSE) {
                chat_fuzz_log(r->log, ev.opcode, 0, ev.data, ev.len);
                break;
            }

            if (ev.len == 0) {
                chat_fuzz_check(ev.close_code == CHAT_WS_CLOSE_NO_CODE);
                chat_fuzz_check(ev.close_reason_len == 0);

            } else {
                chat_fuzz_check(ev.close_code
                                == (ev.data[0] << 8 | ev.data[1]));
                chat_fuzz_check(chat_fuzz_code_ok(ev.close_code));
                chat_fuzz_check((const unsigned char *) ev.close_reason
                                == ev.data + 2);
                chat_fuzz_check(ev.close_reason_len == ev.len - 2);
                chat_fuzz_check(chat_fuzz_utf8_ref(
                                    (const unsigned char *) ev.close_reason,
                                    ev.close_reason_len) == 0);
            }

            chat_fuzz_log(r->log, ev.opcode, ev.close_code, ev.close_reason,
                          ev.close_reason_len);
            r->closed = 1;
            break;

        default:
            chat_fuzz_check(0);
        }

        buf += n;
        len -= (size_t) n;
    }
}


static void
chat_fuzz_run_init(chat_fuzz_run_t *r, int server, uint64_t max,
    chat_fuzz_log_t *log)
{
    chat_ws_parser_init(&r->p, server, max);

    r->log = log;
    r->log->len = 0;
    r->max = max;
    r->msg_len = 0;
    r->msg_op = 0;
    r->error = 0;
    r->closed = 0;
}


static void
chat_fuzz_log_equal(const chat_fuzz_log_t *a, const chat_fuzz_log_t *b)
{
    chat_fuzz_check(a->len == b->len);
    chat_fuzz_check(memcmp(a->buf, b->buf, a->len) == 0);
}


/* the other algorithm: find the token, then look around it */
static int
chat_fuzz_token_ref(const unsigned char *v, size_t len, const char *tok)
{
    int     a, b;
    size_t  tlen, i, k, j;

    tlen = strlen(tok);

    for (i = 0; tlen > 0 && i + tlen <= len; i++) {
        for (k = 0; k < tlen; k++) {
            a = v[i + k];
            b = (unsigned char) tok[k];
            a = (a >= 'A' && a <= 'Z') ? a + 32 : a;
            b = (b >= 'A' && b <= 'Z') ? b + 32 : b;

            if (a != b) {
                break;
            }
        }

        if (k < tlen) {
            continue;
        }

        for (j = i; j > 0 && (v[j - 1] == ' ' || v[j - 1] == '\t'); j--) {
            /* void */
        }

        if (j > 0 && v[j - 1] != ',') {
            continue;
        }

        for (j = i + tlen; j < len && (v[j] == ' ' || v[j] == '\t'); j++) {
            /* void */
        }

        if (j == len || v[j] == ',') {
            return 1;
        }
    }

    return 0;
}


/*
 * Canonical unpadded base64url by OpenSSL: the alphabet swapped for
 * base64's, padded, decoded and encoded again gives the same text.
 */
static int
chat_fuzz_base64url_ref(const uint8_t *s, size_t len)
{
    int             k;
    size_t          i, n;
    char            std[72], again[72];
    unsigned char   bin[64];

    static const char  url[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    if (len % 4 == 1 || len > 64) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (s[i] == '\0' || strchr(url, s[i]) == NULL) {
            return -1;
        }

        std[i] = (s[i] == '-') ? '+' : (s[i] == '_') ? '/' : (char) s[i];
    }

    for (n = len; n % 4 != 0; n++) {
        std[n] = '=';
    }

    k = EVP_DecodeBlock(bin, (unsigned char *) std, (int) n);

    if (k < 0) {
        return -1;
    }

    /* EVP_DecodeBlock() counts the bytes of the padding too */
    k -= (int) (n - len);
    EVP_EncodeBlock((unsigned char *) again, bin, k);

    return memcmp(again, std, n) == 0 ? 0 : -1;
}


static void
chat_fuzz_handshake(const uint8_t *data, size_t size)
{
    int                    rc, expect, op, fin;
    char                   accept[CHAT_WS_ACCEPT_LEN + 1], tok[17];
    char                   b64[72], ref64[72], key[64];
    size_t                 i, n, m, hl;
    uint64_t               len;
    unsigned int           olen;
    unsigned char          ref[20], back[48], out[CHAT_WS_MAX_CONTROL];
    unsigned char          pre[CHAT_WS_MAX_HEADER];
    unsigned char          frame[CHAT_WS_MAX_HEADER + CHAT_WS_MAX_CONTROL];
    const unsigned char   *mask;
    chat_ws_event_t        ev;
    chat_ws_parser_t       p;

    static const char      alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /* Sec-WebSocket-Accept */
    rc = chat_ws_accept_key((const char *) data, size, accept);

    expect = (size == 24 && data[22] == '=' && data[23] == '=');

    for (i = 0; expect && i < 22; i++) {
        expect = (data[i] != '\0' && strchr(alphabet, data[i]) != NULL);
    }

    chat_fuzz_check(rc == (expect ? 0 : -1));

    if (rc == 0) {
        memcpy(key, data, 24);
        memcpy(key + 24, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
        EVP_Digest(key, 60, ref, &olen, EVP_sha1(), NULL);
        EVP_EncodeBlock((unsigned char *) ref64, ref, 20);
        chat_fuzz_check(strlen(accept) == CHAT_WS_ACCEPT_LEN);
        chat_fuzz_check(strcmp(accept, ref64) == 0);
    }

    /* base64 and base64url of the first bytes, and back */
    m = size < 48 ? size : 48;
    n = chat_base64_encode(b64, data, m);
    EVP_EncodeBlock((unsigned char *) ref64, data, (int) m);
    chat_fuzz_check(n == strlen(ref64) && memcmp(b64, ref64, n) == 0);

    n = chat_base64url_encode(b64, data, m);
    chat_fuzz_check(n == chat_base64url_len(m));
    chat_fuzz_check(chat_base64url_check(b64, n) == 0);
    chat_fuzz_check(chat_base64url_decode(b64, n, back) == m);
    chat_fuzz_check(memcmp(back, data, m) == 0);

    /* the first bytes as base64url: taken exactly when canonical */
    m = size < 64 ? size : 64;
    rc = chat_base64url_check((const char *) data, m);
    chat_fuzz_check(rc == chat_fuzz_base64url_ref(data, m));

    if (rc == 0) {
        n = chat_base64url_decode((const char *) data, m, back);
        chat_fuzz_check(n == m * 3 / 4);
        chat_fuzz_check(chat_base64url_encode(b64, back, n) == m);
        chat_fuzz_check(memcmp(b64, data, m) == 0);
    }

    /* header tokens: fixed ones, and one from the input */
    chat_fuzz_check(chat_ws_header_has_token((const char *) data, size,
                                             "upgrade")
                    == chat_fuzz_token_ref(data, size, "upgrade"));
    chat_fuzz_check(chat_ws_header_has_token((const char *) data, size,
                                             "websocket")
                    == chat_fuzz_token_ref(data, size, "websocket"));

    for (i = 0; i < size && i < 16 && data[i] != ',' && data[i] != '\0';
         i++)
    {
        tok[i] = (char) data[i];
    }

    tok[i] = '\0';

    /* a token is never empty nor padded with white space */
    if (i > 0 && tok[0] != ' ' && tok[0] != '\t' && tok[i - 1] != ' '
        && tok[i - 1] != '\t')
    {
        chat_fuzz_check(chat_ws_header_has_token((const char *) data, size,
                                                 tok)
                        == chat_fuzz_token_ref(data, size, tok));

        /* the whole first element: always found */
        chat_fuzz_check((i < size && data[i] != ',')
                        || chat_ws_header_has_token((const char *) data,
                                                    size, tok));
    }

    if (size < 2) {
        return;
    }

    /* a close payload from the input, framed and parsed back */
    n = chat_ws_close_payload(out, (uint16_t) (data[0] << 8 | data[1]),
                              (const char *) data + 2, size - 2);

    if (data[0] == 0 && data[1] == 0) {
        chat_fuzz_check(n == 0);
        return;
    }

    chat_fuzz_check(n >= 2 && n <= CHAT_WS_MAX_CONTROL);
    chat_fuzz_check(memcmp(out, data, n) == 0);
    chat_fuzz_check(chat_fuzz_utf8_ref(out + 2, n - 2) == 0);

    if (chat_fuzz_utf8_ref(data + 2, size - 2) == 0) {
        chat_fuzz_check(size - 2 <= CHAT_WS_MAX_REASON
                        ? n == size : n - 2 > CHAT_WS_MAX_REASON - 4);
    }

    mask = (size >= 6) ? data + 2 : (const unsigned char *) "abcd";
    hl = chat_ws_frame_header(frame, CHAT_WS_OP_CLOSE, 1, n, mask);
    chat_fuzz_check(hl == 6);
    memcpy(frame + hl, out, n);
    chat_ws_mask(frame + hl, n, mask, 0);

    chat_ws_parser_init(&p, 1, 0);
    rc = (int) chat_ws_parse(&p, frame, hl + n, &ev);

    chat_fuzz_check(chat_ws_close_code_valid(data[0] << 8 | data[1])
                    == chat_fuzz_code_ok(data[0] << 8 | data[1]));

    if (chat_fuzz_code_ok(data[0] << 8 | data[1])) {
        chat_fuzz_check(rc == (int) (hl + n) && ev.type == CHAT_WS_CLOSE);
        chat_fuzz_check(ev.close_code == (data[0] << 8 | data[1]));
        chat_fuzz_check(ev.close_reason_len == n - 2);
        chat_fuzz_check(memcmp(ev.close_reason, data + 2, n - 2) == 0);

    } else {
        chat_fuzz_check(rc == CHAT_WS_RC_PROTOCOL);
    }

    if (size < 10) {
        return;
    }

    /* a frame header from the input, parsed back */
    op = data[0] & 0x0f;
    fin = data[0] >> 7;
    len = 0;

    for (i = 0; i < 8; i++) {
        len = (len << 8) | data[2 + i];
    }

    len >>= data[1] & 63;
    mask = (data[1] & 64) ? data + 2 : NULL;

    hl = chat_ws_frame_header(frame, op, fin, len, mask);

    expect = (op <= 2 || ((op >= 8 && op <= 10) && fin && len <= 125))
             && (len >> 63) == 0;

    if (!expect) {
        chat_fuzz_check(hl == 0);
        return;
    }

    chat_fuzz_check(hl == (len < 126 ? 2u : len < 65536 ? 4u : 10u)
                         + (mask ? 4u : 0u));

    chat_ws_parser_init(&p, mask != NULL, UINT64_MAX);

    if (op == CHAT_WS_OP_CONT) {
        /* a continuation needs a message to continue */
        n = chat_ws_frame_header(pre, CHAT_WS_OP_BINARY, 0, 0, mask);
        chat_fuzz_check(chat_ws_parse(&p, pre, n, &ev) == (long) n);
    }

    rc = (int) chat_ws_parse(&p, frame, hl, &ev);
    chat_fuzz_check(rc == (int) hl);
    chat_fuzz_check(ev.type != CHAT_WS_ERROR);
    chat_fuzz_check(len == 0 || ev.type == CHAT_WS_NEED_MORE);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int              server;
    size_t           nsizes, pos, i, c, len;
    uint64_t         max;
    unsigned char   *copy;
    const uint8_t   *sizes, *stream;

    chat_fuzz_handshake(data, size);

    /* the logs are sized for what -max_len allows, with room to spare */
    if (size < 2 || size > 16384) {
        return 0;
    }

    server = data[0] & 1;
    max = chat_fuzz_max[(data[0] >> 1) & 15];
    nsizes = data[1];

    if (2 + nsizes > size) {
        return 0;
    }

    sizes = data + 2;
    stream = data + 2 + nsizes;
    len = size - 2 - nsizes;

    chat_fuzz_log_ref.len = 0;
    chat_fuzz_reference(server, max, stream, len, &chat_fuzz_log_ref);

    /* in one chunk */
    copy = malloc(len + 1);
    chat_fuzz_check(copy != NULL);
    memcpy(copy, stream, len);

    chat_fuzz_run_init(&chat_fuzz_run, server, max, &chat_fuzz_log_one);
    chat_fuzz_feed(&chat_fuzz_run, copy, len);
    chat_fuzz_feed(&chat_fuzz_run, NULL, 0);
    free(copy);

    /*
     * In the chunks given, each in a buffer of its own, so that a read
     * past a chunk is an ASan report; 0 is a call with no bytes.
     */
    chat_fuzz_run_init(&chat_fuzz_run, server, max, &chat_fuzz_log_chunks);

    for (pos = 0, i = 0; pos < len; pos += c, i++) {
        c = (nsizes == 0) ? len : sizes[i % nsizes];

        if (c == 0) {
            chat_fuzz_feed(&chat_fuzz_run, NULL, 0);
            c = 1;
        }

        if (c > len - pos) {
            c = len - pos;
        }

        copy = malloc(c);
        chat_fuzz_check(copy != NULL);
        memcpy(copy, stream + pos, c);
        chat_fuzz_feed(&chat_fuzz_run, copy, c);
        free(copy);
    }

    chat_fuzz_feed(&chat_fuzz_run, NULL, 0);

    chat_fuzz_log_equal(&chat_fuzz_log_one, &chat_fuzz_log_chunks);
    chat_fuzz_log_equal(&chat_fuzz_log_ref, &chat_fuzz_log_one);

    return 0;
}
