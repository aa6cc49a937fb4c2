
/*
 * ngx_chat: rows for PostgreSQL's COPY ... FROM STDIN in text format, in a
 * growing buffer.
 *
 * A row is fields separated by a tab and ended by a newline; a field is
 * text with backslash, tab, newline and carriage return escaped ("\\",
 * "\t", "\n", "\r"), or "\N" for NULL.  Nothing else needs escaping: the
 * strings come from JSON that was checked to be UTF-8 without NUL bytes.
 *
 * A buffer that cannot grow stays as it was and remembers the failure:
 * check chat_copy_failed() once after writing a row.
 *
 * No nginx headers: shared with the standalone daemons.
 */


#ifndef _CHAT_COPY_H_INCLUDED_
#define _CHAT_COPY_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


typedef struct {
    char       *data;
    size_t      len;
    size_t      cap;
    unsigned    failed:1;
    unsigned    field:1;        /* a field was written in this row */
} chat_copy_t;


void chat_copy_init(chat_copy_t *b);
void chat_copy_free(chat_copy_t *b);

/* empties the buffer, keeping its memory up to keep bytes */
void chat_copy_reset(chat_copy_t *b, size_t keep);

void chat_copy_text(chat_copy_t *b, const char *s, size_t len);
void chat_copy_int(chat_copy_t *b, int64_t v);
void chat_copy_bool(chat_copy_t *b, int v);
void chat_copy_null(chat_copy_t *b);
void chat_copy_end_row(chat_copy_t *b);

/* bytes as they are, outside any row: the buffer as a plain byte arena */
void chat_copy_raw(chat_copy_t *b, const void *data, size_t len);

int chat_copy_failed(const chat_copy_t *b);


#endif /* _CHAT_COPY_H_INCLUDED_ */
