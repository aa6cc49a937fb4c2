
/*
 * libFuzzer target for the JSON body guard, src/common/chat_json.c, and
 * the UTF-8 validator, src/common/chat_utf8.c: what every HTTP request
 * body and WebSocket message goes through before a handler sees it.
 *
 * For each input:
 *
 *   - chat_utf8_valid(), and chat_utf8_step() over the input cut in
 *     three, agree with chat_fuzz_utf8_ref() (chat_fuzz.h), a plain
 *     decoder written from RFC 3629 (code points, not byte ranges);
 *   - chat_json_check_depth() is monotonic in the depth allowed;
 *   - chat_json_load_object() either gives an object, and then the input
 *     was valid UTF-8 without NUL and within the depth, and the object
 *     written out by jansson loads again, equal; or refuses with one of
 *     the messages chat_json.h lists, "body is not valid UTF-8" exactly
 *     when the input is not;
 *   - chat_json_parse_id() agrees with a decimal parser written here.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_json.h"
#include "chat_utf8.h"
#include "chat_fuzz.h"


#define CHAT_FUZZ_DEPTH  8


static const char  *chat_fuzz_errors[] = {
    "body is empty",
    "body is not valid UTF-8",
    "JSON nested too deeply",
    "body is not valid JSON",
    "duplicate key in JSON object",
    "body must be a JSON object",
    NULL
};


static int
chat_fuzz_in(const char *s, const char **list)
{
    for ( /* void */ ; *list; list++) {
        if (strcmp(s, *list) == 0) {
            return 1;
        }
    }

    return 0;
}


static void
chat_fuzz_id(const uint8_t *data, size_t size)
{
    int        rc, want;
    size_t     i;
    uint64_t   v, ref;

    want = (size >= 1 && size <= 19 && data[0] != '0') ? 0 : -1;
    ref = 0;

    for (i = 0; want == 0 && i < size; i++) {
        if (data[i] < '0' || data[i] > '9') {
            want = -1;
            break;
        }

        ref = ref * 10 + (data[i] - '0');
    }

    if (want == 0 && (ref == 0 || ref > (uint64_t) INT64_MAX)) {
        want = -1;
    }

    v = 0;
    rc = chat_json_parse_id((const char *) data, size, &v);

    chat_fuzz_check(rc == want);
    chat_fuzz_check(rc != 0 || v == ref);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int          utf8;
    char        *text;
    size_t       a, b;
    uint32_t     st;
    json_t      *root, *again;
    unsigned     d;
    const char  *err;

    utf8 = chat_utf8_valid(data, size);
    chat_fuzz_check(utf8 == chat_fuzz_utf8_ref(data, size));

    /* in three pieces, cut where the first two bytes say */
    a = (size > 0) ? data[0] % (size + 1) : 0;
    b = (size > 1) ? a + data[1] % (size - a + 1) : a;
    st = 0;
    chat_fuzz_check((chat_utf8_step(&st, data, a) == 0
                     && chat_utf8_step(&st, data + a, b - a) == 0
                     && chat_utf8_step(&st, data + b, size - b) == 0
                     && st == 0)
                    == (utf8 == 0));

    for (d = 0; d < CHAT_FUZZ_DEPTH + 2; d++) {
        if (chat_json_check_depth((const char *) data, size, d) == 0) {
            chat_fuzz_check(chat_json_check_depth((const char *) data, size,
                                                  d + 1) == 0);
        }
    }

    if (size <= 20) {
        chat_fuzz_id(data, size);
    }

    err = NULL;
    root = chat_json_load_object((const char *) data, size, CHAT_FUZZ_DEPTH,
                                 &err);

    if (root == NULL) {
        chat_fuzz_check(err != NULL && chat_fuzz_in(err, chat_fuzz_errors));
        chat_fuzz_check((strcmp(err, "body is not valid UTF-8") == 0)
                        == (size > 0 && utf8 != 0));
        return 0;
    }

    chat_fuzz_check(json_is_object(root));
    chat_fuzz_check(size > 0 && utf8 == 0);
    chat_fuzz_check(memchr(data, '\0', size) == NULL);
    chat_fuzz_check(chat_json_check_depth((const char *) data, size,
                                          CHAT_FUZZ_DEPTH) == 0);

    /* what jansson writes, the guard takes again, and it is the same */
    text = json_dumps(root, JSON_COMPACT);

    if (text != NULL) {
        again = chat_json_load_object(text, strlen(text), CHAT_FUZZ_DEPTH,
                                      &err);
        chat_fuzz_check(again != NULL);
        chat_fuzz_check(json_equal(root, again));
        json_decref(again);
        free(text);
    }

    json_decref(root);

    return 0;
}
