
/*
 * libFuzzer target for the query strings of the API: GET /v1/search
 * (src/common/chat_search_query.c) and GET /v1/messages
 * (src/common/chat_query.c).
 *
 * Invariants: each answers 0 or -1 with a message; what the search
 * accepts is within its limits: exactly one of q and tokens, q of 1 to
 * CHAT_SEARCH_Q_MAX bytes without NUL, a tokens literal "{...}" of 1 to
 * CHAT_SEARCH_TOKENS_MAX base64url tokens, a limit of 1 to
 * CHAT_SEARCH_LIMIT_MAX, a cursor's conv starting "d:" or "g:" and its
 * ts and seq digits only.
 */


#include <stdint.h>
#include <string.h>

#include "chat_fuzz.h"
#include "chat_query.h"
#include "chat_search_query.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                 i, n;
    const char            *err;
    chat_search_query_t    q;
    chat_history_query_t   h;

    err = NULL;

    if (chat_search_query_parse((const char *) data, size, &q, &err) == 0) {
        chat_fuzz_check((q.q_len != 0) != (q.ntokens != 0));
        chat_fuzz_check(q.limit >= 1 && q.limit <= CHAT_SEARCH_LIMIT_MAX);

        if (q.q_len) {
            chat_fuzz_check(q.q_len <= CHAT_SEARCH_Q_MAX);
            chat_fuzz_check(strlen(q.q) == q.q_len);
        }

        if (q.ntokens) {
            n = strlen(q.tokens);
            chat_fuzz_check(q.ntokens <= CHAT_SEARCH_TOKENS_MAX);
            chat_fuzz_check(q.tokens[0] == '{' && q.tokens[n - 1] == '}');

            for (i = 1; i < n - 1; i++) {
                chat_fuzz_check(q.tokens[i] == ',' || q.tokens[i] == '-'
                                || q.tokens[i] == '_'
                                || (q.tokens[i] >= '0' && q.tokens[i] <= '9')
                                || (q.tokens[i] >= 'a' && q.tokens[i] <= 'z')
                                || (q.tokens[i] >= 'A'
                                    && q.tokens[i] <= 'Z'));
            }
        }

        if (q.has_cursor) {
            chat_fuzz_check(q.conv[1] == ':'
                            && (q.conv[0] == 'd' || q.conv[0] == 'g'));
            chat_fuzz_check(strspn(q.ts, "0123456789") == strlen(q.ts));
            chat_fuzz_check(strspn(q.seq, "0123456789") == strlen(q.seq));
        }

    } else {
        chat_fuzz_check(err != NULL);
    }

    err = NULL;

    if (chat_history_query_parse((const char *) data, size, &h, &err) == 0) {
        chat_fuzz_check((h.with != 0) != (h.group != 0));
        chat_fuzz_check(h.limit >= 1 && h.limit <= CHAT_HISTORY_LIMIT_MAX);

    } else {
        chat_fuzz_check(err != NULL);
    }

    return 0;
}
