
/*
 * ngx_chat: hexadecimal digits (chat_hex.h).
 */


#include "chat_hex.h"


int
chat_hex_value(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


void
chat_hex_encode(const unsigned char *p, size_t len, char *out)
{
    size_t  i;

    static const char  digits[] = "0123456789abcdef";

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 0x0f];
    }

    out[2 * len] = '\0';
}
