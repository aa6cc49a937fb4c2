
/*
 * ngx_chat: the query string of GET /v1/messages.
 *
 *     with=<user id> | group=<group id>   exactly one of them
 *     before=<seq>                        optional, 1..2^63-1
 *     limit=<n>                           optional, 1..100, default 50
 *
 * Names and values are percent-decoded ("+" is a space) before they are
 * looked at; a value must then be decimal digits without sign or leading
 * zero.  Other names (access_token, cache busters) are ignored; one of the
 * four given twice is an error, as is an empty value.
 *
 * No nginx headers: shared with the standalone daemons.
 */


#ifndef _CHAT_QUERY_H_INCLUDED_
#define _CHAT_QUERY_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CHAT_HISTORY_LIMIT_DEFAULT  50
#define CHAT_HISTORY_LIMIT_MAX      100


typedef struct {
    uint64_t    with;       /* 0: not given */
    uint64_t    group;      /* 0: not given */
    uint64_t    before;     /* 0: not given */
    unsigned    limit;
} chat_history_query_t;


/*
 * Parses args (len bytes, without the "?"; may be NULL when len is 0).
 * 0 and *q filled, or -1 with a message for the client in *err (a static
 * string), e.g. "\"limit\" must be 1 to 100".
 */
int chat_history_query_parse(const char *args, size_t len,
    chat_history_query_t *q, const char **err);

/* longer names cannot be one of ours */
#define CHAT_QUERY_NAME_MAX         16


/* a value of names[which], percent-decoded: 0, or -1 to refuse it */
typedef int (*chat_query_param_pt)(void *data, int which, const char *value,
    size_t len);

/*
 * Walks the name=value pairs of args (len bytes, NULL when len is 0):
 * each whose percent-decoded name is one of names (NULL-terminated, at
 * most 32) gets its value percent-decoded into value (size bytes, not
 * NUL-terminated) and handed to param; other names are skipped.  0, or
 * -1 with *which the name's index and *twice 1 when it came twice, 0
 * when its value was empty, a bad escape, too long or refused by param.
 */
int chat_query_walk(const char *args, size_t len, const char *const *names,
    char *value, size_t size, chat_query_param_pt param, void *data,
    int *which, int *twice);

/*
 * A name or value of a query string percent-decoded ("+" is a space) into
 * out (size bytes, not NUL-terminated), its length in *olen: 0, or -1 for
 * a bad escape or a result longer than size.
 */
int chat_query_unescape(const char *s, size_t len, char *out, size_t size,
    size_t *olen);


#endif /* _CHAT_QUERY_H_INCLUDED_ */
