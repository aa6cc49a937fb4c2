
/*
 * ngx_chat: COPY text-format rows, see chat_copy.h.
 */


#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_copy.h"


#define CHAT_COPY_MIN_CAP  4096


static int chat_copy_reserve(chat_copy_t *b, size_t n);
static void chat_copy_sep(chat_copy_t *b);


void
chat_copy_init(chat_copy_t *b)
{
    memset(b, 0, sizeof(chat_copy_t));
}


void
chat_copy_free(chat_copy_t *b)
{
    free(b->data);
    chat_copy_init(b);
}


void
chat_copy_reset(chat_copy_t *b, size_t keep)
{
    if (b->cap > keep) {
        chat_copy_free(b);
        return;
    }

    b->len = 0;
    b->failed = 0;
    b->field = 0;
}


int
chat_copy_failed(const chat_copy_t *b)
{
    return b->failed;
}


static int
chat_copy_reserve(chat_copy_t *b, size_t n)
{
    char    *p;
    size_t   cap;

    if (b->failed) {
        return -1;
    }

    if (b->cap - b->len >= n) {
        return 0;
    }

    cap = b->cap ? b->cap : CHAT_COPY_MIN_CAP;

    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2) {
            b->failed = 1;
            return -1;
        }

        cap *= 2;
    }

    p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }

    b->data = p;
    b->cap = cap;

    return 0;
}


static void
chat_copy_sep(chat_copy_t *b)
{
    if (b->field && chat_copy_reserve(b, 1) == 0) {
        b->data[b->len++] = '\t';
    }

    b->field = 1;
}


void
chat_copy_text(chat_copy_t *b, const char *s, size_t len)
{
    char    *p;
    size_t   i;

    chat_copy_sep(b);

    /* at worst every byte doubles */
    if (len > SIZE_MAX / 2 || chat_copy_reserve(b, 2 * len) != 0) {
        b->failed = 1;
        return;
    }

    p = b->data + b->len;

    for (i = 0; i < len; i++) {
        switch (s[i]) {

        case '\\':
            *p++ = '\\';
            *p++ = '\\';
            break;

        case '\t':
            *p++ = '\\';
            *p++ = 't';
            break;

        case '\n':
            *p++ = '\\';
            *p++ = 'n';
            break;

        case '\r':
            *p++ = '\\';
            *p++ = 'r';
            break;

        default:
            *p++ = s[i];
        }
    }

    b->len = p - b->data;
}


void
chat_copy_int(chat_copy_t *b, int64_t v)
{
    int  n;

    chat_copy_sep(b);

    if (chat_copy_reserve(b, 21) != 0) {
        return;
    }

    n = snprintf(b->data + b->len, 21, "%" PRId64, v);
    b->len += n;
}


void
chat_copy_bool(chat_copy_t *b, int v)
{
    chat_copy_sep(b);

    if (chat_copy_reserve(b, 1) == 0) {
        b->data[b->len++] = v ? 't' : 'f';
    }
}


void
chat_copy_null(chat_copy_t *b)
{
    chat_copy_sep(b);

    if (chat_copy_reserve(b, 2) == 0) {
        b->data[b->len++] = '\\';
        b->data[b->len++] = 'N';
    }
}


void
chat_copy_end_row(chat_copy_t *b)
{
    if (chat_copy_reserve(b, 1) == 0) {
        b->data[b->len++] = '\n';
    }

    b->field = 0;
}


void
chat_copy_raw(chat_copy_t *b, const void *data, size_t len)
{
    if (len && chat_copy_reserve(b, len) == 0) {
        memcpy(b->data + b->len, data, len);
        b->len += len;
    }
}
