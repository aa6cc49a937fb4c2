
/*
 * ngx_chat: base64 and base64url (RFC 4648 sections 4 and 5), one
 * implementation for every caller outside nginx (module code may use
 * nginx's own ngx_encode_base64*()).
 *
 *   base64     "+/" with "=" padding: the WebSocket handshake's keys
 *   base64url  "-_" without padding: JWT parts
 *
 * Encoders write no NUL: the caller sizes and ends the buffer.  The
 * decoder takes only canonical unpadded base64url: only alphabet
 * characters, no length of 4n + 1, and the unused low bits of the last
 * character zero (otherwise "xA" and "xB" would decode alike).
 *
 * No nginx headers: shared with the standalone daemons and tools.
 */


#ifndef _CHAT_BASE64_H_INCLUDED_
#define _CHAT_BASE64_H_INCLUDED_


#include <stddef.h>


/* characters that the encoders write for n bytes */
#define chat_base64_len(n)     (4 * (((n) + 2) / 3))
#define chat_base64url_len(n)  (((n) * 4 + 2) / 3)


/* writes chat_base64_len(len) characters, padded; returns that count */
size_t chat_base64_encode(char *out, const unsigned char *in, size_t len);

/* writes chat_base64url_len(len) characters, unpadded; returns the count */
size_t chat_base64url_encode(char *out, const unsigned char *in,
    size_t len);

/* the value 0..63 of c in the base64 alphabet, or -1 ('=' is -1 too) */
int chat_base64_value(unsigned char c);

/* the value 0..63 of c in the base64url alphabet, or -1 */
int chat_base64url_value(unsigned char c);

/* 0 when s (len bytes) is canonical unpadded base64url, -1 otherwise */
int chat_base64url_check(const char *s, size_t len);

/*
 * Decodes s, which must have passed chat_base64url_check(): out gets
 * len * 3 / 4 bytes, the count returned.
 */
size_t chat_base64url_decode(const char *s, size_t len, unsigned char *out);


#endif /* _CHAT_BASE64_H_INCLUDED_ */
