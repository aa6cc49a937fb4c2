
/*
 * ngx_chat: the UTF-8 validator, see chat_utf8.h.
 */


#include <string.h>

#include "chat_utf8.h"


int
chat_utf8_valid(const unsigned char *s, size_t len)
{
    uint32_t  state;

    if (s == NULL) {
        return len == 0 ? 0 : -1;
    }

    state = 0;

    return (chat_utf8_step(&state, s, len) == 0 && state == 0) ? 0 : -1;
}


int
chat_utf8_step(uint32_t *state, const unsigned char *s, size_t len)
{
    size_t         i;
    uint32_t       need, lo, hi;
    uint64_t       w;
    unsigned char  c;

    /* state: bytes still needed, and the range of the next one */
    need = *state & 3;
    lo = (*state >> 8) & 0xff;
    hi = (*state >> 16) & 0xff;

    i = 0;

    while (i < len) {
        c = s[i];

        if (need != 0) {
            if (c < lo || c > hi) {
                return -1;
            }

            need--;
            lo = 0x80;
            hi = 0xbf;
            i++;
            continue;
        }

        if (c < 0x80) {
            i++;

            /* chat messages are mostly ASCII: skip 8 bytes at a time */
            while (i + 8 <= len) {
                memcpy(&w, s + i, 8);

                if (w & 0x8080808080808080ULL) {
                    break;
                }

                i += 8;
            }

            continue;
        }

        /*
         * The ranges of RFC 3629 section 4: the bounds on the second byte
         * exclude overlongs (E0, F0), surrogates (ED) and code points
         * above U+10FFFF (F4); C0, C1 and F5..FF never start a sequence,
         * and neither does a continuation byte (80..BF).
         */

        if (c < 0xc2) {
            return -1;
        }

        lo = 0x80;
        hi = 0xbf;

        if (c < 0xe0) {
            need = 1;

        } else if (c < 0xf0) {
            need = 2;

            if (c == 0xe0) {
                lo = 0xa0;

            } else if (c == 0xed) {
                hi = 0x9f;
            }

        } else if (c < 0xf5) {
            need = 3;

            if (c == 0xf0) {
                lo = 0x90;

            } else if (c == 0xf4) {
                hi = 0x8f;
            }

        } else {
            return -1;
        }

        i++;
    }

    *state = (need == 0) ? 0 : (need | (lo << 8) | (hi << 16));

    return 0;
}
