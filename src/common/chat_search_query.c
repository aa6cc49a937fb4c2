
/*
 * ngx_chat: the query string of GET /v1/search, see chat_search_query.h.
 */


#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "chat_base64.h"
#include "chat_json.h"
#include "chat_query.h"
#include "chat_search_query.h"
#include "chat_utf8.h"


#define CHAT_SEARCH_VALUE_MAX  (CHAT_SEARCH_TOKENS_MAX                        \
                                * (CHAT_SEARCH_TOKEN_MAX + 1) + 1)


static int chat_search_param(void *data, int which, const char *value,
    size_t len);
static int chat_search_q(chat_search_query_t *q, const char *v, size_t len);
static int chat_search_tokens(chat_search_query_t *q, const char *v,
    size_t len);
static int chat_search_cursor(chat_search_query_t *q, const char *v,
    size_t len);
static int chat_search_digits(const char *s, size_t len, char *out,
    size_t size);


static const struct {
    const char  *name;
    const char  *invalid;
} chat_search_params[] = {
    { "q", "\"q\" must be 1 to 256 bytes of UTF-8 with a letter or digit" },
    { "tokens", "\"tokens\" must be 1 to 16 comma-separated tokens of 16 "
                "to 64 base64url characters" },
    { "limit", "\"limit\" must be 1 to 50" },
    { "before", "\"before\" is not a cursor of a search" },
    { NULL, NULL }
};


int
chat_search_query_parse(const char *args, size_t len, chat_search_query_t *q,
    const char **err)
{
    int          which, twice;
    char         value[CHAT_SEARCH_VALUE_MAX];
    const char  *names[5];

    memset(q, 0, sizeof(chat_search_query_t));

    for (which = 0; which < 4; which++) {
        names[which] = chat_search_params[which].name;
    }

    names[4] = NULL;

    if (chat_query_walk(args, len, names, value, sizeof(value),
                        chat_search_param, q, &which, &twice)
        != 0)
    {
        *err = twice ? "a parameter of the search is given twice"
                     : chat_search_params[which].invalid;
        return -1;
    }

    if ((q->q_len != 0) == (q->ntokens != 0)) {
        *err = "exactly one of \"q\" and \"tokens\" is required";
        return -1;
    }

    if (q->limit == 0) {
        q->limit = CHAT_SEARCH_LIMIT_DEFAULT;
    }

    return 0;
}


static int
chat_search_param(void *data, int which, const char *value, size_t len)
{
    uint64_t              v;
    chat_search_query_t  *q = data;

    switch (which) {
    case 0:
        return chat_search_q(q, value, len);
    case 1:
        return chat_search_tokens(q, value, len);
    case 2:
        if (chat_json_parse_id(value, len, &v) != 0
            || v > CHAT_SEARCH_LIMIT_MAX)
        {
            return -1;
        }

        q->limit = (unsigned) v;
        return 0;
    default:
        return chat_search_cursor(q, value, len);
    }
}


/* 1..256 bytes of UTF-8 without NUL, with a letter or digit somewhere */

static int
chat_search_q(chat_search_query_t *q, const char *v, size_t len)
{
    size_t  i;
    int     word;

    if (len == 0 || len > CHAT_SEARCH_Q_MAX
        || memchr(v, '\0', len) != NULL
        || chat_utf8_valid((const unsigned char *) v, len) != 0)
    {
        return -1;
    }

    /* ASCII letters and digits, or anything beyond ASCII */
    for (i = 0, word = 0; i < len && !word; i++) {
        word = (unsigned char) v[i] >= 0x80 || isalnum((unsigned char) v[i]);
    }

    if (!word) {
        return -1;
    }

    memcpy(q->q, v, len);
    q->q[len] = '\0';
    q->q_len = len;

    return 0;
}


/* "t1,t2": into the text[] literal "{t1,t2}" */

static int
chat_search_tokens(chat_search_query_t *q, const char *v, size_t len)
{
    char        *o;
    size_t       tlen, i;
    const char  *p, *end, *comma;

    o = q->tokens;
    *o++ = '{';

    for (p = v, end = v + len; p <= end; p = comma + 1) {
        comma = memchr(p, ',', end - p);
        comma = comma ? comma : end;
        tlen = comma - p;

        if (q->ntokens == CHAT_SEARCH_TOKENS_MAX
            || tlen < CHAT_SEARCH_TOKEN_MIN || tlen > CHAT_SEARCH_TOKEN_MAX)
        {
            return -1;
        }

        /* base64url characters only; a token need not be canonical */
        for (i = 0; i < tlen; i++) {
            if (chat_base64url_value((unsigned char) p[i]) < 0) {
                return -1;
            }
        }

        if (q->ntokens++) {
            *o++ = ',';
        }

        memcpy(o, p, tlen);
        o += tlen;

        if (comma == end) {
            break;
        }
    }

    *o++ = '}';
    *o = '\0';

    return 0;
}


/* base64url of "rank|ts|conv|seq", each part checked */

static int
chat_search_cursor(chat_search_query_t *q, const char *v, size_t len)
{
    char            *end, *part[4];
    double           rank;
    size_t           n, plen;
    unsigned char    buf[CHAT_SEARCH_CURSOR_MAX];
    int              i;
    char            *s;

    if (len == 0 || len > CHAT_SEARCH_CURSOR_MAX
        || chat_base64url_check(v, len) != 0)
    {
        return -1;
    }

    n = chat_base64url_decode(v, len, buf);
    buf[n] = '\0';

    if (memchr(buf, '\0', n) != NULL) {
        return -1;
    }

    s = (char *) buf;

    for (i = 0; i < 4; i++) {
        part[i] = s;
        s = strchr(s, '|');

        if ((s == NULL) != (i == 3)) {
            return -1;
        }

        if (s) {
            *s++ = '\0';
        }
    }

    /* the rank: a float4 as PostgreSQL writes it, finite, >= 0 */
    plen = strlen(part[0]);
    errno = 0;
    rank = strtod(part[0], &end);

    if (plen == 0 || plen >= sizeof(q->rank) || *end != '\0' || errno
        || !isfinite(rank) || rank < 0
        || strspn(part[0], "0123456789.e+-") != plen)
    {
        return -1;
    }

    memcpy(q->rank, part[0], plen + 1);

    /* the conversation: "d:<n>:<n>" or "g:<n>" */
    plen = strlen(part[2]);

    if (plen < 3 || plen >= sizeof(q->conv)
        || strspn(part[2] + 2, "0123456789:") != plen - 2
        || !((part[2][0] == 'd' && part[2][1] == ':'
              && strchr(part[2] + 2, ':') != NULL)
             || (part[2][0] == 'g' && part[2][1] == ':'
                 && strchr(part[2] + 2, ':') == NULL)))
    {
        return -1;
    }

    memcpy(q->conv, part[2], plen + 1);

    if (chat_search_digits(part[1], strlen(part[1]), q->ts, sizeof(q->ts))
        != 0
        || chat_search_digits(part[3], strlen(part[3]), q->seq,
                              sizeof(q->seq))
           != 0)
    {
        return -1;
    }

    q->has_cursor = 1;

    return 0;
}


/* a positive integer that fits in 63 bits, copied */

static int
chat_search_digits(const char *s, size_t len, char *out, size_t size)
{
    uint64_t  v;

    if (len >= size || chat_json_parse_id(s, len, &v) != 0) {
        return -1;
    }

    memcpy(out, s, len);
    out[len] = '\0';

    return 0;
}
