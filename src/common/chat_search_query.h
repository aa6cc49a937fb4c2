
/*
 * ngx_chat: the query string of GET /v1/search.
 *
 *     q=<words>              the words to find (all of them), 1 to
 *                            CHAT_SEARCH_Q_MAX bytes of UTF-8 once
 *                            percent-decoded, with at least one letter
 *                            or digit
 *     tokens=<t1>,<t2>...    or: blind-index tokens (docs/PROTOCOL.md),
 *                            1 to CHAT_SEARCH_TOKENS_MAX of 16 to 64
 *                            base64url characters
 *     limit=<n>              optional, 1..CHAT_SEARCH_LIMIT_MAX, default
 *                            CHAT_SEARCH_LIMIT_DEFAULT
 *     before=<cursor>        optional: the next_before of the page before
 *                            ("rank|ts|conv|seq" in base64url)
 *
 * Exactly one of q and tokens.  Other names are ignored; one of these
 * given twice, or empty, is an error.
 *
 * No nginx headers.
 */


#ifndef _CHAT_SEARCH_QUERY_H_INCLUDED_
#define _CHAT_SEARCH_QUERY_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CHAT_SEARCH_Q_MAX           256
#define CHAT_SEARCH_TOKENS_MAX      16
#define CHAT_SEARCH_TOKEN_MIN       16
#define CHAT_SEARCH_TOKEN_MAX       64
#define CHAT_SEARCH_LIMIT_DEFAULT   20
#define CHAT_SEARCH_LIMIT_MAX       50
#define CHAT_SEARCH_CURSOR_MAX      160     /* base64url characters */


typedef struct {
    char        q[CHAT_SEARCH_Q_MAX + 1];           /* NUL-terminated */
    size_t      q_len;                              /* 0: not given */

    /* a text[] literal, "{t1,t2}" (tokens need no quoting); 0: none */
    char        tokens[CHAT_SEARCH_TOKENS_MAX * (CHAT_SEARCH_TOKEN_MAX + 1)
                       + 3];
    int         ntokens;

    unsigned    limit;

    /* the cursor's parts, as text for the query; has_cursor 0: none */
    int         has_cursor;
    char        rank[32];
    char        ts[24];
    char        conv[48];
    char        seq[24];
} chat_search_query_t;


/*
 * Parses args (len bytes, without the "?"; may be NULL when len is 0).
 * 0 and *q filled, or -1 with a message for the client in *err (static).
 */
int chat_search_query_parse(const char *args, size_t len,
    chat_search_query_t *q, const char **err);


#endif /* _CHAT_SEARCH_QUERY_H_INCLUDED_ */
