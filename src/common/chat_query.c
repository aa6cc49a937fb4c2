
/*
 * ngx_chat: the query string of GET /v1/messages, see chat_query.h.
 */


#include <string.h>

#include "chat_hex.h"
#include "chat_json.h"
#include "chat_query.h"


/* longer names or values cannot be one of ours (or a valid number) */
#define CHAT_QUERY_NAME_MAX   16
#define CHAT_QUERY_VALUE_MAX  32


typedef struct {
    const char  *name;
    const char  *invalid;
    const char  *twice;
} chat_query_param_t;


static const chat_query_param_t  chat_query_params[] = {
    { "with", "\"with\" must be a user id", "\"with\" is given twice" },
    { "group", "\"group\" must be a group id", "\"group\" is given twice" },
    { "before", "\"before\" must be a seq of 1 or more",
      "\"before\" is given twice" },
    { "limit", "\"limit\" must be 1 to 100", "\"limit\" is given twice" },
    { NULL, NULL, NULL }
};


static int chat_query_decode(const char *s, size_t len, char *out,
    size_t size, size_t *olen);


int
chat_history_query_parse(const char *args, size_t len,
    chat_history_query_t *q, const char **err)
{
    char         name[CHAT_QUERY_NAME_MAX + 1], value[CHAT_QUERY_VALUE_MAX];
    size_t       nlen, vlen, i;
    uint64_t     v, *slot[4];
    unsigned     seen;
    const char  *p, *end, *amp, *eq, *next;

    memset(q, 0, sizeof(chat_history_query_t));

    slot[0] = &q->with;
    slot[1] = &q->group;
    slot[2] = &q->before;
    slot[3] = NULL;
    seen = 0;

    p = args;
    end = args ? args + len : NULL;

    while (p && p < end) {
        amp = memchr(p, '&', end - p);
        amp = amp ? amp : end;
        eq = memchr(p, '=', amp - p);
        eq = eq ? eq : amp;
        next = amp < end ? amp + 1 : NULL;

        if (chat_query_decode(p, eq - p, name, sizeof(name) - 1, &nlen) != 0)
        {
            /* not one of our names */
            p = next;
            continue;
        }

        name[nlen] = '\0';

        for (i = 0; chat_query_params[i].name; i++) {
            if (strcmp(name, chat_query_params[i].name) == 0) {
                break;
            }
        }

        if (chat_query_params[i].name == NULL) {
            p = next;
            continue;
        }

        if (seen & (1u << i)) {
            *err = chat_query_params[i].twice;
            return -1;
        }

        seen |= 1u << i;

        if (eq == amp
            || chat_query_decode(eq + 1, amp - eq - 1, value, sizeof(value),
                                 &vlen) != 0
            || chat_json_parse_id(value, vlen, &v) != 0
            || (slot[i] == NULL && v > CHAT_HISTORY_LIMIT_MAX))
        {
            *err = chat_query_params[i].invalid;
            return -1;
        }

        if (slot[i]) {
            *slot[i] = v;

        } else {
            q->limit = (unsigned) v;
        }

        p = next;
    }

    if (q->with && q->group) {
        *err = "give \"with\" or \"group\", not both";
        return -1;
    }

    if (q->with == 0 && q->group == 0) {
        *err = "\"with\" (a user id) or \"group\" (a group id) is required";
        return -1;
    }

    if (q->limit == 0) {
        q->limit = CHAT_HISTORY_LIMIT_DEFAULT;
    }

    return 0;
}


/* -1: a bad escape, or longer than size */

static int
chat_query_decode(const char *s, size_t len, char *out, size_t size,
    size_t *olen)
{
    int     hi, lo;
    size_t  i, n;

    for (i = 0, n = 0; i < len; i++, n++) {
        if (n == size) {
            return -1;
        }

        if (s[i] == '+') {
            out[n] = ' ';

        } else if (s[i] == '%') {
            if (len - i < 3) {
                return -1;
            }

            hi = chat_hex_value((unsigned char) s[i + 1]);
            lo = chat_hex_value((unsigned char) s[i + 2]);

            if (hi < 0 || lo < 0) {
                return -1;
            }

            out[n] = (char) (hi << 4 | lo);
            i += 2;

        } else {
            out[n] = s[i];
        }
    }

    *olen = n;

    return 0;
}

