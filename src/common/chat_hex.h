
/*
 * ngx_chat: hexadecimal digits, one place for them: what a digit is worth
 * (either case) and bytes as lower-case hex (SHA-256 names, signatures).
 *
 * No nginx headers.
 */


#ifndef _CHAT_HEX_H_INCLUDED_
#define _CHAT_HEX_H_INCLUDED_


#include <stddef.h>


/* 0 to 15 for a hex digit of either case, -1 for anything else */
int chat_hex_value(int c);

/* len bytes as 2 * len lower-case hex digits and a NUL into out */
void chat_hex_encode(const unsigned char *p, size_t len, char *out);


#endif /* _CHAT_HEX_H_INCLUDED_ */
