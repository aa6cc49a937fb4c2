
/*
 * ngx_chat: HS256 JSON Web Tokens (RFC 7519, RFC 7515 compact form).
 *
 * The gateway issues a token at login and checks it on every request
 * without asking the database, so whoever holds the key can log in as
 * anyone: verification is deliberately narrow.
 *
 *   - The algorithm is pinned: the header must say "alg":"HS256".  A token
 *     never chooses how it is checked ("none", HS512, RS256 are refused).
 *     "typ", when present, must be "JWT"; "crit" is refused, since we
 *     understand no extension.  Other header parameters are ignored.
 *   - Exactly three base64url parts without padding, canonical (unused
 *     trailing bits zero), so that one token has one spelling.
 *   - The signature is checked, in constant time, before the payload is
 *     parsed: unauthenticated bytes only ever reach the header parser.
 *   - Claims: "sub" (required) is the user id as a decimal string
 *     (1..INT64_MAX, no sign, no leading zero); "exp" (required), "iat"
 *     and "nbf" are JSON integers in unix seconds; "jti" (optional) a
 *     string of at most CHAT_JWT_JTI_MAX bytes.  The token is valid
 *     while nbf <= now < exp.  No leeway: nodes are expected to run NTP.
 *     Unknown claims are ignored.
 *   - Decoded header and payload are limited to CHAT_JWT_PART_MAX bytes,
 *     and duplicate object keys are refused.
 *
 * Keys shorter than CHAT_JWT_KEY_MIN_LEN (the hash size, RFC 7518 3.2)
 * are refused by both sign and verify, so an unset or toy secret fails
 * closed instead of making tokens forgeable.
 *
 * No nginx headers: shared with the standalone daemons.  Needs libcrypto
 * and jansson.
 */


#ifndef _CHAT_JWT_H_INCLUDED_
#define _CHAT_JWT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CHAT_JWT_MAX_LEN       4096   /* longer tokens are rejected unread */
#define CHAT_JWT_PART_MAX      2048   /* decoded header or payload */
#define CHAT_JWT_KEY_MIN_LEN   32
#define CHAT_JWT_JTI_MAX       64     /* longer "jti" claims: BAD_CLAIMS */


typedef enum {
    CHAT_JWT_OK = 0,
    CHAT_JWT_MALFORMED,
    CHAT_JWT_BAD_ALG,
    CHAT_JWT_BAD_SIGNATURE,
    CHAT_JWT_EXPIRED,
    CHAT_JWT_NOT_YET_VALID,
    CHAT_JWT_BAD_CLAIMS
} chat_jwt_rc_e;


typedef struct {
    uint64_t    sub;
    int64_t     iat;      /* 0 when the token has none */
    int64_t     exp;
    char        jti[CHAT_JWT_JTI_MAX + 1];   /* "" when the token has none */
} chat_jwt_claims_t;


/* a short constant text for logs and error messages; never the token */
const char *chat_jwt_rc_text(chat_jwt_rc_e rc);

/*
 * Writes a NUL-terminated token with header {"alg":"HS256","typ":"JWT"}
 * and payload {"sub":"<sub>","iat":<iat>,"exp":<exp>} into out (outlen
 * bytes).  Returns its length, or -1 when it does not fit, when sub is
 * not a valid user id (0 or above INT64_MAX) or when the key is shorter
 * than CHAT_JWT_KEY_MIN_LEN; out is then an empty string if outlen > 0.
 * 256 bytes are always enough.
 */
int chat_jwt_sign(const unsigned char *key, size_t keylen, uint64_t sub,
    int64_t iat, int64_t exp, char *out, size_t outlen);

/*
 * The same with a "jti" claim (the token's id, e.g. for revocation): jti
 * is at most CHAT_JWT_JTI_MAX characters of [A-Za-z0-9_-], else -1; NULL
 * or "" for none.  384 bytes are always enough.
 */
int chat_jwt_sign_jti(const unsigned char *key, size_t keylen, uint64_t sub,
    int64_t iat, int64_t exp, const char *jti, char *out, size_t outlen);

/*
 * Checks token (len bytes, no NUL needed; a NUL inside is malformed) at
 * time now (unix seconds).  Fills claims only on CHAT_JWT_OK.  A key
 * shorter than CHAT_JWT_KEY_MIN_LEN gives CHAT_JWT_BAD_SIGNATURE for
 * every token.
 *
 * Checks run in this order, and the first failure is returned: key
 * length (BAD_SIGNATURE); size, dots and alphabet (MALFORMED); header
 * JSON (MALFORMED); alg (BAD_ALG); typ and crit (MALFORMED); signature
 * (BAD_SIGNATURE); payload JSON (MALFORMED); claim types (BAD_CLAIMS);
 * exp (EXPIRED); nbf (NOT_YET_VALID).
 */
chat_jwt_rc_e chat_jwt_verify(const unsigned char *key, size_t keylen,
    const char *token, size_t len, int64_t now, chat_jwt_claims_t *claims);


#endif /* _CHAT_JWT_H_INCLUDED_ */
