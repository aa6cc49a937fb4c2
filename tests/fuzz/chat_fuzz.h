
/*
 * ngx_chat: what the libFuzzer targets share.
 */


#ifndef _CHAT_FUZZ_H_INCLUDED_
#define _CHAT_FUZZ_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>


/* a broken invariant is a crash, so that libFuzzer keeps the input */
#define chat_fuzz_check(c)                                                    \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,          \
                    __LINE__, #c);                                            \
            abort();                                                          \
        }                                                                     \
    } while (0)


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


/*
 * The UTF-8 oracle: RFC 3629 by code point (the shortest form, no
 * surrogate, <= U+10FFFF), decoding first and judging after, where
 * src/common/chat_utf8.c checks byte ranges.  0 valid, -1 not.
 */
static inline int
chat_fuzz_utf8_ref(const uint8_t *s, size_t len)
{
    size_t    i, k, n;
    uint32_t  cp, min;

    for (i = 0; i < len; i += n) {
        if (s[i] < 0x80) {
            n = 1;
            continue;
        }

        if ((s[i] & 0xe0) == 0xc0) {
            n = 2;
            cp = s[i] & 0x1f;
            min = 0x80;

        } else if ((s[i] & 0xf0) == 0xe0) {
            n = 3;
            cp = s[i] & 0x0f;
            min = 0x800;

        } else if ((s[i] & 0xf8) == 0xf0) {
            n = 4;
            cp = s[i] & 0x07;
            min = 0x10000;

        } else {
            return -1;
        }

        if (len - i < n) {
            return -1;
        }

        for (k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return -1;
            }

            cp = (cp << 6) | (s[i + k] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return -1;
        }
    }

    return 0;
}


#endif /* _CHAT_FUZZ_H_INCLUDED_ */
