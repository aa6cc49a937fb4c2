
/*
 * ngx_chat: base64 and base64url, see chat_base64.h.
 */


#include <stdint.h>

#include "chat_base64.h"


static size_t chat_base64_enc(char *out, const unsigned char *in,
    size_t len, const char *alphabet, int pad);
static int chat_base64_val(unsigned char c, unsigned char c62,
    unsigned char c63);


static const char  chat_base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static const char  chat_base64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";


size_t
chat_base64_encode(char *out, const unsigned char *in, size_t len)
{
    return chat_base64_enc(out, in, len, chat_base64_alphabet, 1);
}


size_t
chat_base64url_encode(char *out, const unsigned char *in, size_t len)
{
    return chat_base64_enc(out, in, len, chat_base64url_alphabet, 0);
}


static size_t
chat_base64_enc(char *out, const unsigned char *in, size_t len,
    const char *alphabet, int pad)
{
    size_t    i, n;
    uint32_t  v;

    n = 0;

    for (i = 0; i + 3 <= len; i += 3) {
        v = ((uint32_t) in[i] << 16) | ((uint32_t) in[i + 1] << 8) | in[i + 2];
        out[n++] = alphabet[(v >> 18) & 0x3f];
        out[n++] = alphabet[(v >> 12) & 0x3f];
        out[n++] = alphabet[(v >> 6) & 0x3f];
        out[n++] = alphabet[v & 0x3f];
    }

    if (i == len) {
        return n;
    }

    /* one or two bytes left: two or three characters, padded to four */
    v = (uint32_t) in[i] << 16;

    if (i + 1 < len) {
        v |= (uint32_t) in[i + 1] << 8;
    }

    out[n++] = alphabet[(v >> 18) & 0x3f];
    out[n++] = alphabet[(v >> 12) & 0x3f];

    if (i + 1 < len) {
        out[n++] = alphabet[(v >> 6) & 0x3f];

    } else if (pad) {
        out[n++] = '=';
    }

    if (pad) {
        out[n++] = '=';
    }

    return n;
}


int
chat_base64_value(unsigned char c)
{
    return chat_base64_val(c, '+', '/');
}


int
chat_base64url_value(unsigned char c)
{
    return chat_base64_val(c, '-', '_');
}


static int
chat_base64_val(unsigned char c, unsigned char c62, unsigned char c63)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == c62) {
        return 62;
    }

    if (c == c63) {
        return 63;
    }

    return -1;
}


int
chat_base64url_check(const char *s, size_t len)
{
    int     v;
    size_t  i;

    if (len % 4 == 1) {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        v = chat_base64url_value((unsigned char) s[i]);

        if (v < 0) {
            return -1;
        }
    }

    if ((len % 4 == 2 && (v & 0x0f) != 0)
        || (len % 4 == 3 && (v & 0x03) != 0))
    {
        return -1;
    }

    return 0;
}


size_t
chat_base64url_decode(const char *s, size_t len, unsigned char *out)
{
    size_t    i, n;
    uint32_t  acc;
    unsigned  bits;

    acc = 0;
    bits = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        acc = (acc << 6)
              | (uint32_t) chat_base64url_value((unsigned char) s[i]);
        bits += 6;

        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char) (acc >> bits);
        }
    }

    return n;
}
