
/*
 * chat-bench: parsers and encoders, see bench_proto.h.
 */


#include <stdio.h>
#include <string.h>

#include "bench_proto.h"


static size_t bench_json_ws(const char *s, size_t len, size_t i);
static long bench_json_string_end(const char *s, size_t len, size_t i);
static long bench_json_value_end(const char *s, size_t len, size_t i);
static int bench_stamp_number(const char *s, size_t len, size_t *i,
    uint64_t max, uint64_t *out);
static int bench_http_name_is(const char *s, size_t len, const char *name);


static size_t
bench_json_ws(const char *s, size_t len, size_t i)
{
    while (i < len
           && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
    {
        i++;
    }

    return i;
}


/* s[i] is the opening quote: the index of the closing one, or -1 */
static long
bench_json_string_end(const char *s, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (s[i] == '\\') {
            i++;
            continue;
        }

        if (s[i] == '"') {
            return (long) i;
        }
    }

    return -1;
}


/* the index just past the value that starts at s[i], or -1 */
static long
bench_json_value_end(const char *s, size_t len, size_t i)
{
    long    e;
    size_t  depth;

    if (i >= len) {
        return -1;
    }

    if (s[i] == '"') {
        e = bench_json_string_end(s, len, i);
        return e < 0 ? -1 : e + 1;
    }

    if (s[i] == '{' || s[i] == '[') {
        depth = 0;

        for ( /* void */ ; i < len; i++) {
            if (s[i] == '"') {
                e = bench_json_string_end(s, len, i);
                if (e < 0) {
                    return -1;
                }

                i = (size_t) e;
                continue;
            }

            if (s[i] == '{' || s[i] == '[') {
                depth++;

            } else if (s[i] == '}' || s[i] == ']') {
                if (--depth == 0) {
                    return (long) i + 1;
                }
            }
        }

        return -1;
    }

    /* a scalar: up to the next delimiter */
    for (e = (long) i; (size_t) e < len; e++) {
        if (s[e] == ',' || s[e] == '}' || s[e] == ']' || s[e] == ' '
            || s[e] == '\t' || s[e] == '\n' || s[e] == '\r')
        {
            break;
        }
    }

    return e == (long) i ? -1 : e;
}


int
bench_json_field(const char *s, size_t len, const char *key,
    const char **val, size_t *vlen)
{
    int     match;
    long    ke, ve;
    size_t  i, klen;

    klen = strlen(key);

    i = bench_json_ws(s, len, 0);
    if (i >= len || s[i] != '{') {
        return -1;
    }

    i = bench_json_ws(s, len, i + 1);
    if (i < len && s[i] == '}') {
        return BENCH_JSON_NONE;
    }

    for ( ;; ) {
        if (i >= len || s[i] != '"') {
            return -1;
        }

        ke = bench_json_string_end(s, len, i);
        if (ke < 0) {
            return -1;
        }

        match = ((size_t) ke - i - 1 == klen
                 && memcmp(s + i + 1, key, klen) == 0);

        i = bench_json_ws(s, len, (size_t) ke + 1);
        if (i >= len || s[i] != ':') {
            return -1;
        }

        i = bench_json_ws(s, len, i + 1);

        ve = bench_json_value_end(s, len, i);
        if (ve < 0) {
            return -1;
        }

        if (match) {
            if (s[i] == '"') {
                *val = s + i + 1;
                *vlen = (size_t) ve - i - 2;
                return BENCH_JSON_STRING;
            }

            *val = s + i;
            *vlen = (size_t) ve - i;

            return (s[i] == '{' || s[i] == '[') ? BENCH_JSON_NESTED
                                                : BENCH_JSON_SCALAR;
        }

        i = bench_json_ws(s, len, (size_t) ve);
        if (i >= len) {
            return -1;
        }

        if (s[i] == '}') {
            return BENCH_JSON_NONE;
        }

        if (s[i] != ',') {
            return -1;
        }

        i = bench_json_ws(s, len, i + 1);
    }
}


int
bench_parse_u64(const char *s, size_t len, uint64_t *out)
{
    size_t  i;
    uint64_t  v;

    if (len == 0 || len > 20 || (len > 1 && s[0] == '0')) {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        if (v > (UINT64_MAX - (uint64_t) (s[i] - '0')) / 10) {
            return -1;
        }

        v = v * 10 + (uint64_t) (s[i] - '0');
    }

    *out = v;

    return 0;
}


size_t
bench_stamp_write(char *out, size_t cap, const bench_stamp_t *st,
    size_t body_len)
{
    int     n;
    char    tmp[BENCH_STAMP_MAX + 1];
    size_t  len;

    n = snprintf(tmp, sizeof(tmp), "b%u.%u.%llu.%llu", (unsigned) st->run,
                 (unsigned) st->sender, (unsigned long long) st->seq,
                 (unsigned long long) st->t);
    if (n < 0 || (size_t) n >= sizeof(tmp)) {
        return 0;
    }

    len = (size_t) n;

    if (body_len < len + 2) {
        /* no room for "." and padding: the stamp alone */
        body_len = len;
    }

    if (body_len > cap) {
        return 0;
    }

    memcpy(out, tmp, len);

    if (body_len > len) {
        out[len] = '.';
        memset(out + len + 1, 'x', body_len - len - 1);
    }

    return body_len;
}


static int
bench_stamp_number(const char *s, size_t len, size_t *i, uint64_t max,
    uint64_t *out)
{
    size_t  start;

    start = *i;

    while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
        (*i)++;
    }

    if (bench_parse_u64(s + start, *i - start, out) != 0 || *out > max) {
        return -1;
    }

    return 0;
}


int
bench_stamp_parse(const char *s, size_t len, bench_stamp_t *st)
{
    size_t    i;
    uint64_t  run, sender, seq, t;

    if (len < 1 || s[0] != 'b') {
        return -1;
    }

    i = 1;

    if (bench_stamp_number(s, len, &i, UINT32_MAX, &run) != 0
        || i >= len || s[i++] != '.'
        || bench_stamp_number(s, len, &i, UINT32_MAX, &sender) != 0
        || i >= len || s[i++] != '.'
        || bench_stamp_number(s, len, &i, UINT64_MAX, &seq) != 0
        || i >= len || s[i++] != '.'
        || bench_stamp_number(s, len, &i, UINT64_MAX, &t) != 0
        || (i < len && s[i] != '.'))
    {
        return -1;
    }

    st->run = (uint32_t) run;
    st->sender = (uint32_t) sender;
    st->seq = seq;
    st->t = t;

    return 0;
}


static int
bench_http_name_is(const char *s, size_t len, const char *name)
{
    size_t  i;
    char    c;

    if (strlen(name) != len) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = s[i];
        if (c >= 'A' && c <= 'Z') {
            c = (char) (c | 0x20);
        }

        if (c != name[i]) {
            return 0;
        }
    }

    return 1;
}


long
bench_http_head(const char *buf, size_t len, bench_http_head_t *h)
{
    int          status;
    size_t       i, end, line, colon, vs, ve;
    const char  *p;

    memset(h, 0, sizeof(bench_http_head_t));

    p = NULL;

    for (i = 0; i + 3 < len && i < BENCH_HTTP_HEAD_MAX; i++) {
        if (buf[i] == '\r' && memcmp(buf + i, "\r\n\r\n", 4) == 0) {
            p = buf + i;
            break;
        }
    }

    if (p == NULL) {
        return len >= BENCH_HTTP_HEAD_MAX ? -1 : 0;
    }

    end = (size_t) (p - buf) + 4;

    /* "HTTP/1.1 101 ..." */
    if (end < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' '
        || buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9'
        || buf[11] < '0' || buf[11] > '9')
    {
        return -1;
    }

    status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    h->status = status;

    /* header lines, each "name: value\r\n", up to the empty line */
    for (line = 0; line < end && buf[line] != '\n'; line++) { /* void */ }
    line++;

    while (line < end - 2) {
        for (i = line; i < end && buf[i] != '\r'; i++) { /* void */ }

        for (colon = line; colon < i && buf[colon] != ':'; colon++) {
            /* void */
        }

        if (colon == i) {
            return -1;
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

        if (bench_http_name_is(buf + line, colon - line,
                               "sec-websocket-accept"))
        {
            h->accept = buf + vs;
            h->accept_len = ve - vs;

        } else if (bench_http_name_is(buf + line, colon - line, "upgrade")
                   && bench_http_name_is(buf + vs, ve - vs, "websocket"))
        {
            h->upgrade = 1;
        }

        line = i + 2;
    }

    return (long) end;
}


uint64_t
bench_backoff(uint64_t base, uint64_t cap, unsigned attempt, uint64_t rnd)
{
    uint64_t  ceiling;

    ceiling = base;

    while (attempt-- > 0 && ceiling < cap) {
        ceiling = (ceiling > UINT64_MAX / 2) ? UINT64_MAX : ceiling * 2;
    }

    if (ceiling > cap) {
        ceiling = cap;
    }

    if (ceiling == UINT64_MAX) {
        return rnd;
    }

    return rnd % (ceiling + 1);
}
