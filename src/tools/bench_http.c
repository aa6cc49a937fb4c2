
/*
 * chat-push-sink: request and notification parsers, see bench_http.h.
 */


#include <string.h>

#include "bench_http.h"
#include "bench_proto.h"


static int bench_req_is(const char *s, size_t len, const char *word);
static int bench_req_has_token(const char *s, size_t len, const char *word);


/* s (len bytes) is word, without regard to case */
static int
bench_req_is(const char *s, size_t len, const char *word)
{
    size_t  i;
    char    a, b;

    if (len != strlen(word)) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        a = s[i];
        b = word[i];

        if (a >= 'A' && a <= 'Z') {
            a = (char) (a - 'A' + 'a');
        }

        if (a != b) {
            return 0;
        }
    }

    return 1;
}


/* a comma-separated header value holds word (e.g. "keep-alive, Upgrade") */
static int
bench_req_has_token(const char *s, size_t len, const char *word)
{
    size_t  i, b, e;

    i = 0;

    while (i < len) {
        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == ',')) {
            i++;
        }

        b = i;

        while (i < len && s[i] != ',') {
            i++;
        }

        e = i;

        while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) {
            e--;
        }

        if (e > b && bench_req_is(s + b, e - b, word)) {
            return 1;
        }
    }

    return 0;
}


long
bench_req_head(const char *buf, size_t len, bench_req_t *r)
{
    int          minor, has_length, has_te, conn_close, conn_keep;
    size_t       i, end, line, colon, vs, ve, m;
    uint64_t     v;
    const char  *p;

    memset(r, 0, sizeof(bench_req_t));

    p = NULL;

    for (i = 0; i + 3 < len && i < BENCH_REQ_HEAD_MAX; i++) {
        if (buf[i] == '\r' && memcmp(buf + i, "\r\n\r\n", 4) == 0) {
            p = buf + i;
            break;
        }
    }

    if (p == NULL) {
        return len >= BENCH_REQ_HEAD_MAX ? BENCH_REQ_TOO_LARGE
                                         : BENCH_REQ_AGAIN;
    }

    end = (size_t) (p - buf) + 4;

    /* the request line: "METHOD SP target SP HTTP/1.x CRLF" */
    for (m = 0; m < end && buf[m] >= 'A' && buf[m] <= 'Z'; m++) {
        /* void */
    }

    if (m == 0 || m >= end || buf[m] != ' ') {
        return BENCH_REQ_BAD;
    }

    r->method = (m == 3 && memcmp(buf, "GET", 3) == 0) ? BENCH_REQ_GET
                : (m == 4 && memcmp(buf, "POST", 4) == 0) ? BENCH_REQ_POST
                : BENCH_REQ_OTHER;

    r->path = buf + m + 1;

    for (i = m + 1; i < end && (unsigned char) buf[i] > ' '
                    && buf[i] != 0x7f; i++)
    {
        /* void */
    }

    r->path_len = (size_t) (buf + i - r->path);

    if (r->path_len == 0 || i + 10 > end || buf[i] != ' '
        || memcmp(buf + i + 1, "HTTP/1.", 7) != 0
        || (buf[i + 8] != '0' && buf[i + 8] != '1')
        || buf[i + 9] != '\r' || buf[i + 10] != '\n')
    {
        return BENCH_REQ_BAD;
    }

    minor = buf[i + 8] - '0';
    line = i + 11;

    has_length = 0;
    has_te = 0;
    conn_close = 0;
    conn_keep = 0;

    /* header lines, each "name: value\r\n", up to the empty line */
    while (line < end - 2) {
        for (i = line; i < end && buf[i] != '\r'; i++) {
            if (((unsigned char) buf[i] < ' ' && buf[i] != '\t')
                || buf[i] == 0x7f)
            {
                return BENCH_REQ_BAD;
            }
        }

        if (i + 1 >= end || buf[i + 1] != '\n') {
            return BENCH_REQ_BAD;
        }

        for (colon = line; colon < i && buf[colon] != ':'; colon++) {
            if (buf[colon] == ' ' || buf[colon] == '\t') {
                return BENCH_REQ_BAD;
            }
        }

        if (colon == i || colon == line) {
            return BENCH_REQ_BAD;
        }

        for (vs = colon + 1; vs < i && (buf[vs] == ' ' || buf[vs] == '\t');
             vs++)
        {
            /* void */
        }

        for (ve = i; ve > vs && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t');
             ve--)
        {
            /* void */
        }

        if (bench_req_is(buf + line, colon - line, "content-length")) {
            if (has_length || ve == vs || ve - vs > 19) {
                return BENCH_REQ_BAD;
            }

            v = 0;

            for (m = vs; m < ve; m++) {
                if (buf[m] < '0' || buf[m] > '9') {
                    return BENCH_REQ_BAD;
                }

                v = v * 10 + (uint64_t) (buf[m] - '0');
            }

            has_length = 1;
            r->content_length = v;

        } else if (bench_req_is(buf + line, colon - line,
                                "transfer-encoding"))
        {
            has_te = 1;

        } else if (bench_req_is(buf + line, colon - line, "connection")) {
            conn_close |= bench_req_has_token(buf + vs, ve - vs, "close");
            conn_keep |= bench_req_has_token(buf + vs, ve - vs,
                                             "keep-alive");
        }

        line = i + 2;
    }

    if (has_te) {
        return BENCH_REQ_NO_LENGTH;
    }

    if (r->content_length > BENCH_REQ_BODY_MAX) {
        return BENCH_REQ_TOO_LARGE;
    }

    r->keep_alive = minor == 1 ? !conn_close : conn_keep && !conn_close;

    return (long) end;
}


int
bench_note_parse(const char *body, size_t len, bench_note_t *n)
{
    size_t       vlen;
    const char  *val;

    memset(n, 0, sizeof(bench_note_t));

    /* the whole object: a key no JSON text holds unescaped walks it to
     * its closing brace, which ends the body */
    while (len > 0 && (body[len - 1] == ' ' || body[len - 1] == '\n'
                       || body[len - 1] == '\r' || body[len - 1] == '\t'))
    {
        len--;
    }

    if (len == 0 || body[len - 1] != '}'
        || bench_json_field(body, len, "\x01", &val, &vlen)
           != BENCH_JSON_NONE)
    {
        return -1;
    }

    if (bench_json_field(body, len, "token", &n->token, &n->token_len)
            != BENCH_JSON_STRING
        || n->token_len == 0
        || bench_json_field(body, len, "message_id", &n->message_id,
                            &n->message_id_len)
           != BENCH_JSON_STRING
        || n->message_id_len == 0)
    {
        return -1;
    }

    if (bench_json_field(body, len, "ts", &val, &vlen) != BENCH_JSON_SCALAR
        || bench_parse_u64(val, vlen, &n->ts) != 0)
    {
        return -1;
    }

    if (bench_json_field(body, len, "count", &val, &vlen)
            != BENCH_JSON_SCALAR
        || bench_parse_u64(val, vlen, &n->count) != 0 || n->count == 0)
    {
        return -1;
    }

    return 0;
}
