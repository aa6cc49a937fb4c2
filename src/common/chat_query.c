
/*
 * ngx_chat: the query string of GET /v1/messages, see chat_query.h.
 */


#include <string.h>

#include "chat_hex.h"
#include "chat_json.h"
#include "chat_query.h"


/* longer values cannot be a valid number */
#define CHAT_QUERY_VALUE_MAX  32


typedef struct {
    const char  *name;
    const char  *invalid;
    const char  *twice;
} chat_query_param_t;


static int chat_history_query_param(void *data, int which,
    const char *value, size_t len);


static const chat_query_param_t  chat_query_params[] = {
    { "with", "\"with\" must be a user id", "\"with\" is given twice" },
    { "group", "\"group\" must be a group id", "\"group\" is given twice" },
    { "before", "\"before\" must be a seq of 1 or more",
      "\"before\" is given twice" },
    { "limit", "\"limit\" must be 1 to 100", "\"limit\" is given twice" },
    { NULL, NULL, NULL }
};


int
chat_history_query_parse(const char *args, size_t len,
    chat_history_query_t *q, const char **err)
{
    int          which, twice;
    char         value[CHAT_QUERY_VALUE_MAX];
    const char  *names[5];

    memset(q, 0, sizeof(chat_history_query_t));

    for (which = 0; which < 4; which++) {
        names[which] = chat_query_params[which].name;
    }

    names[4] = NULL;

    if (chat_query_walk(args, len, names, value, sizeof(value),
                        chat_history_query_param, q, &which, &twice)
        != 0)
    {
        *err = twice ? chat_query_params[which].twice
                     : chat_query_params[which].invalid;
        return -1;
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


static int
chat_history_query_param(void *data, int which, const char *value,
    size_t len)
{
    uint64_t               v;
    chat_history_query_t  *q = data;

    if (chat_json_parse_id(value, len, &v) != 0) {
        return -1;
    }

    switch (which) {
    case 0:
        q->with = v;
        break;
    case 1:
        q->group = v;
        break;
    case 2:
        q->before = v;
        break;
    default:
        if (v > CHAT_HISTORY_LIMIT_MAX) {
            return -1;
        }

        q->limit = (unsigned) v;
        break;
    }

    return 0;
}


int
chat_query_walk(const char *args, size_t len, const char *const *names,
    char *value, size_t size, chat_query_param_pt param, void *data,
    int *which, int *twice)
{
    int          i;
    char         name[CHAT_QUERY_NAME_MAX + 1];
    size_t       nlen, vlen;
    uint32_t     seen;
    const char  *p, *end, *amp, *eq, *next;

    seen = 0;
    p = args;
    end = args ? args + len : NULL;

    while (p && p < end) {
        amp = memchr(p, '&', end - p);
        amp = amp ? amp : end;
        eq = memchr(p, '=', amp - p);
        eq = eq ? eq : amp;
        next = amp < end ? amp + 1 : NULL;

        if (chat_query_unescape(p, eq - p, name, sizeof(name) - 1, &nlen)
            != 0)
        {
            /* not one of our names */
            p = next;
            continue;
        }

        name[nlen] = '\0';

        for (i = 0; names[i]; i++) {
            if (strcmp(name, names[i]) == 0) {
                break;
            }
        }

        if (names[i] == NULL) {
            p = next;
            continue;
        }

        *which = i;
        *twice = (seen & (1u << i)) != 0;

        if (*twice) {
            return -1;
        }

        seen |= 1u << i;

        if (eq == amp
            || chat_query_unescape(eq + 1, amp - eq - 1, value, size, &vlen)
               != 0
            || param(data, i, value, vlen) != 0)
        {
            return -1;
        }

        p = next;
    }

    return 0;
}


int
chat_query_unescape(const char *s, size_t len, char *out, size_t size,
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

