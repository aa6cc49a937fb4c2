
/*
 * ngx_chat: the UTF-8 validator, one for every caller.
 *
 * Valid means RFC 3629: the shortest form only (no overlongs), no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF.  NUL bytes are
 * valid UTF-8; callers that refuse them say so themselves.
 *
 * chat_utf8_valid() checks a whole string; chat_utf8_step() the same in
 * pieces, for a text WebSocket message that arrives in frames and reads.
 * The first is the second over one piece: they cannot disagree.
 *
 * No nginx headers: shared with the standalone daemons and tools.
 */


#ifndef _CHAT_UTF8_H_INCLUDED_
#define _CHAT_UTF8_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/* 0 when s (len bytes; NULL when len is 0) is valid UTF-8, -1 otherwise */
int chat_utf8_valid(const unsigned char *s, size_t len);

/*
 * Incremental validation: *state starts at 0 and is carried from piece
 * to piece.  Returns 0 while the bytes so far can start valid UTF-8, -1
 * at the first byte that cannot (the state is then meaningless).  The
 * text is complete and valid when the state is 0 after the last piece.
 */
int chat_utf8_step(uint32_t *state, const unsigned char *s, size_t len);


#endif /* _CHAT_UTF8_H_INCLUDED_ */
