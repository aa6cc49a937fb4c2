
/*
 * ngx_chat: signed media URLs.
 *
 * GET /v1/media/{id}?exp=<unix seconds>&sig=<hex> downloads media without a
 * token, so that <img src> can use it: sig is HMAC-SHA256 under the
 * gateway's media URL key over "<id>\n<exp>", as 64 lower-case hex digits.
 * A URL is good while now < exp; the check is constant-time over the MAC
 * and reads nothing else unauthenticated.  The key is the configured one,
 * or one derived from the JWT secret (chat_media_url_key()), at least
 * CHAT_MEDIA_URL_KEY_MIN bytes either way.
 *
 * No nginx headers: shared with the tests and the daemons.  Needs libcrypto.
 */


#ifndef _CHAT_MEDIA_URL_H_INCLUDED_
#define _CHAT_MEDIA_URL_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "chat_media_id.h"


#define CHAT_MEDIA_URL_KEY_MIN   32
#define CHAT_MEDIA_URL_SIG_LEN   64     /* hex digits */

/* the longest "/v1/media/<id>?exp=<exp>&sig=<sig>" */
#define CHAT_MEDIA_URL_MAX                                                  \
    (sizeof("/v1/media/?exp=&sig=") - 1 + CHAT_MEDIA_ID_MAX + 19            \
     + CHAT_MEDIA_URL_SIG_LEN)


typedef enum {
    CHAT_MEDIA_URL_OK = 0,
    CHAT_MEDIA_URL_MALFORMED,           /* exp or sig not in their form */
    CHAT_MEDIA_URL_BAD_SIGNATURE,
    CHAT_MEDIA_URL_EXPIRED
} chat_media_url_rc_e;


/*
 * sig (CHAT_MEDIA_URL_SIG_LEN hex digits and a NUL) for media id until
 * exp; 0, or -1 for a key too short, an id of no or too many bytes, or an
 * exp not positive
 */
int chat_media_url_sign(const unsigned char *key, size_t keylen,
    const char *id, size_t idlen, int64_t exp, char *sig);

/*
 * The query's exp and sig as they came (not NUL-terminated): OK when the
 * signature is right and now < exp.  exp is 1 to 19 decimal digits
 * without sign or leading zero, sig exactly 64 hex digits (either case).
 */
chat_media_url_rc_e chat_media_url_verify(const unsigned char *key,
    size_t keylen, const char *id, size_t idlen, const char *exp,
    size_t explen, const char *sig, size_t siglen, int64_t now);

/*
 * The URL key derived from another secret (the JWT key): HMAC-SHA256 of
 * a fixed label under it, 32 bytes into out; 0, or -1 for a secret
 * shorter than CHAT_MEDIA_URL_KEY_MIN.  A token and a URL never share a
 * key, and rotating the JWT secret voids the URLs too.
 */
int chat_media_url_key(const unsigned char *secret, size_t len,
    unsigned char *out);

/*
 * The signed URL "/v1/media/<id>?exp=<exp>&sig=<sig>" and a NUL into out
 * (CHAT_MEDIA_URL_MAX + 1 bytes always do): its length, or -1 as
 * chat_media_url_sign() refuses, or for too small a buffer
 */
int chat_media_url_make(const unsigned char *key, size_t keylen,
    const char *id, size_t idlen, int64_t exp, char *out, size_t cap);

const char *chat_media_url_strerror(chat_media_url_rc_e rc);

/*
 * Fresh URLs in JSON text (a message frame, a page of history): after
 * every member "media":"<id>" whose id is 1 to CHAT_MEDIA_ID_MAX of
 * A-Z a-z 0-9 - _, the member ,"url":"/v1/media/<id>?exp=<exp>&sig=<sig>".
 * Only a member can match: inside a JSON string every quote is escaped.
 * chat_media_url_count() says how many there are; out needs len +
 * count * CHAT_MEDIA_URL_MEMBER_MAX bytes.  The length written, or -1 for
 * a key too short or too small a buffer.
 */
#define CHAT_MEDIA_URL_MEMBER_MAX                                           \
    (sizeof(",\"url\":\"\"") - 1 + CHAT_MEDIA_URL_MAX)

size_t chat_media_url_count(const char *text, size_t len);
long chat_media_url_insert(const unsigned char *key, size_t keylen,
    int64_t exp, const char *text, size_t len, char *out, size_t cap);


#endif /* _CHAT_MEDIA_URL_H_INCLUDED_ */
