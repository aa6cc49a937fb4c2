
/*
 * ngx_chat: AWS Signature Version 4 for S3-compatible object stores.
 *
 * Two uses: an upload (PUT) carries an Authorization header, a download is
 * a presigned URL.  The canonical request follows S3's rules, which differ
 * from the generic SigV4 ones in one place: the path is URI-encoded once
 * and never normalized ("/a/../b", "//" and "/./" are signed as they are),
 * since an S3 key is an opaque byte string.
 *
 * Inputs the functions take:
 *
 *   - path: the object's path NOT yet encoded ("/bucket/key" as raw
 *     bytes, UTF-8 allowed), starting with "/".  It is encoded once here
 *     (RFC 3986 unreserved A-Za-z0-9-._~ and "/" kept, every other byte
 *     %XX, upper-case hex); the request sent must carry the same encoding:
 *     chat_sigv4_uri_encode(path, len, 1, ...).
 *   - query: "a=b&c=d" in URL form, NULL or "" for none.  Each name and
 *     value is percent-decoded (a malformed escape is bad input) and
 *     encoded again the SigV4 way, so "a%2Fb" and "a/b" sign the same; "+"
 *     is a plus sign, not a space.  A part without "=" has an empty value
 *     ("acl" signs as "acl="), empty parts ("a=1&&b=2") are skipped.  The
 *     parameters are sorted by encoded name, then encoded value.
 *   - headers: every header that is sent and signed, in any order and
 *     case: names are lower-cased and trimmed, values trimmed with inner
 *     runs of spaces and tabs collapsed to one space; a name given twice
 *     has its values joined by "," in the order given.  "host" must be
 *     among them (with the port when it is not the scheme's default).
 *     For S3 the caller also gives "x-amz-date" (= amz_date) and
 *     "x-amz-content-sha256" (= the payload hash).  With a session token,
 *     "x-amz-security-token" must be there too, with the token as value.
 *     A CR, LF or other control byte (tab aside) in a name or value is
 *     bad input, so a header cannot be smuggled in.
 *   - payload hash: 64 lower-case hex digits, or "UNSIGNED-PAYLOAD".
 *   - amz_date: "YYYYMMDDTHHMMSSZ" (UTC), a real date and time.
 *
 * Every function writing text NUL-terminates it and returns its length,
 * or -1 on bad input or when cap is too small (out is then "" if cap > 0).
 * The secret key is never written anywhere.  No nginx headers; needs
 * libcrypto.
 */


#ifndef _CHAT_SIGV4_H_INCLUDED_
#define _CHAT_SIGV4_H_INCLUDED_


#include <stddef.h>


#define CHAT_SIGV4_MAX_HEADERS     64
#define CHAT_SIGV4_MAX_PARAMS      64
#define CHAT_SIGV4_SECRET_MAX      128
#define CHAT_SIGV4_EXPIRES_MAX     604800      /* 7 days, S3's limit */
#define CHAT_SIGV4_UNSIGNED        "UNSIGNED-PAYLOAD"


typedef struct {
    const char  *access_key;
    const char  *secret_key;
    const char  *region;         /* "us-east-1" */
    const char  *service;        /* "s3" */
    const char  *session_token;  /* NULL or an STS token */
} chat_sigv4_key_t;


typedef struct {
    const char  *name;
    const char  *value;
} chat_sigv4_header_t;


/*
 * The Authorization header's value:
 *   AWS4-HMAC-SHA256 Credential=<ak>/<date>/<region>/<service>/aws4_request,
 *   SignedHeaders=<names>, Signature=<64 hex>
 * (one line, ", " between the parts).  160 bytes plus the lengths of
 * the access key, region, service and signed headers' list are always
 * enough.
 */
int chat_sigv4_authorization(const chat_sigv4_key_t *k, const char *method,
    const char *path, const char *query, const chat_sigv4_header_t *h,
    size_t nh, const char *payload_sha256_hex, const char *amz_date,
    char *out, size_t cap);

/*
 * A presigned URL's query for method (GET for a download) of path at
 * host, valid for expires seconds (1..CHAT_SIGV4_EXPIRES_MAX) from
 * amz_date: X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-Expires,
 * X-Amz-Security-Token (with a session token), X-Amz-SignedHeaders=host
 * and X-Amz-Signature, in that order, already URL-encoded.  The payload
 * is UNSIGNED-PAYLOAD.  The URL is then the scheme, "://", host, path
 * as chat_sigv4_uri_encode(path, len, 1, ...) gives it, "?" and out.
 */
int chat_sigv4_presign(const chat_sigv4_key_t *k, const char *method,
    const char *host, const char *path, const char *amz_date,
    unsigned expires, char *out, size_t cap);


/* lower-case hex SHA-256 of len bytes, NUL-terminated */
void chat_sigv4_sha256_hex(const void *p, size_t len, char out[65]);

/*
 * SigV4's UriEncode(): A-Za-z0-9-._~ kept, "/" kept if keep_slash, every
 * other byte %XX with upper-case hex.
 */
int chat_sigv4_uri_encode(const char *s, size_t len, int keep_slash,
    char *out, size_t cap);


/* each step on its own, for the tests (and for debugging a mismatch) */

/*
 * The canonical request (method, path, query, headers, signed headers,
 * payload hash, "\n" between them), with the same checks as
 * chat_sigv4_authorization() minus the key's.
 */
int chat_sigv4_canonical_request(const char *method, const char *path,
    const char *query, const chat_sigv4_header_t *h, size_t nh,
    const char *payload_sha256_hex, char *out, size_t cap);

/* the canonical query alone */
int chat_sigv4_canonical_query(const char *query, char *out, size_t cap);

/* the signed headers' list alone: "host;x-amz-date" */
int chat_sigv4_signed_headers(const chat_sigv4_header_t *h, size_t nh,
    char *out, size_t cap);

/*
 * "AWS4-HMAC-SHA256\n<amz_date>\n<scope>\n<hex sha256 of creq>", the
 * scope being <date>/<region>/<service>/aws4_request.
 */
int chat_sigv4_string_to_sign(const chat_sigv4_key_t *k,
    const char *amz_date, const char *creq, size_t creq_len, char *out,
    size_t cap);

/* the signature of a string to sign: 64 hex digits; 0 or -1 */
int chat_sigv4_signature(const chat_sigv4_key_t *k, const char *amz_date,
    const char *sts, size_t sts_len, char out[65]);


#endif /* _CHAT_SIGV4_H_INCLUDED_ */
