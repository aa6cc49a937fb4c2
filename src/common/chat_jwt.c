
/*
 * ngx_chat: HS256 JSON Web Tokens, see chat_jwt.h.
 */


#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <jansson.h>

#include "chat_base64.h"
#include "chat_json.h"
#include "chat_jwt.h"


#define CHAT_JWT_SIG_LEN      32    /* HMAC-SHA256 */
#define CHAT_JWT_SIG_B64_LEN  43    /* 32 bytes in unpadded base64url */

/*
 * Nesting bound for header and payload: ours have depth 1, and the bound
 * keeps jansson's recursion shallow on unauthenticated headers.
 */
#define CHAT_JWT_MAX_DEPTH    8

/* base64url of {"alg":"HS256","typ":"JWT"} */
#define CHAT_JWT_HEADER_B64   "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"


static json_t *chat_jwt_load(const char *b64, size_t len,
    unsigned char *buf);
static chat_jwt_rc_e chat_jwt_check_header(const char *b64, size_t len,
    unsigned char *buf);
static chat_jwt_rc_e chat_jwt_check_payload(const char *b64, size_t len,
    unsigned char *buf, int64_t now, chat_jwt_claims_t *claims);


const char *
chat_jwt_rc_text(chat_jwt_rc_e rc)
{
    switch (rc) {

    case CHAT_JWT_OK:
        return "valid";

    case CHAT_JWT_MALFORMED:
        return "malformed token";

    case CHAT_JWT_BAD_ALG:
        return "unsupported algorithm";

    case CHAT_JWT_BAD_SIGNATURE:
        return "bad signature";

    case CHAT_JWT_EXPIRED:
        return "token expired";

    case CHAT_JWT_NOT_YET_VALID:
        return "token not yet valid";

    case CHAT_JWT_BAD_CLAIMS:
        return "bad claims";
    }

    return "unknown error";
}


int
chat_jwt_sign(const unsigned char *key, size_t keylen, uint64_t sub,
    int64_t iat, int64_t exp, char *out, size_t outlen)
{
    return chat_jwt_sign_jti(key, keylen, sub, iat, exp, NULL, out, outlen);
}


int
chat_jwt_sign_jti(const unsigned char *key, size_t keylen, uint64_t sub,
    int64_t iat, int64_t exp, const char *jti, char *out, size_t outlen)
{
    int            n;
    char           payload[192];
    size_t         i, hlen, plen, need;
    unsigned int   maclen;
    unsigned char  mac[EVP_MAX_MD_SIZE];

    if (out != NULL && outlen > 0) {
        out[0] = '\0';
    }

    if (out == NULL || key == NULL || keylen < CHAT_JWT_KEY_MIN_LEN
        || keylen > INT_MAX || sub == 0 || sub > (uint64_t) INT64_MAX)
    {
        return -1;
    }

    if (jti == NULL) {
        jti = "";
    }

    for (i = 0; jti[i]; i++) {
        if (i == CHAT_JWT_JTI_MAX || chat_base64url_value(jti[i]) < 0) {
            return -1;
        }
    }

    /*
     * At most 86 bytes: 19 digits of sub, 20 characters per time; a jti
     * adds at most 73.
     */
    n = snprintf(payload, sizeof(payload),
                 "{\"sub\":\"%" PRIu64 "\",\"iat\":%" PRId64
                 ",\"exp\":%" PRId64 "%s%s%s}", sub, iat, exp,
                 jti[0] ? ",\"jti\":\"" : "", jti, jti[0] ? "\"" : "");

    if (n < 0 || (size_t) n >= sizeof(payload)) {
        return -1;
    }

    hlen = sizeof(CHAT_JWT_HEADER_B64) - 1;
    plen = chat_base64url_len((size_t) n);
    need = hlen + 1 + plen + 1 + CHAT_JWT_SIG_B64_LEN + 1;

    if (need > outlen) {
        return -1;
    }

    memcpy(out, CHAT_JWT_HEADER_B64, hlen);
    out[hlen] = '.';
    chat_base64url_encode(out + hlen + 1, (unsigned char *) payload,
                          (size_t) n);

    if (HMAC(EVP_sha256(), key, (int) keylen, (unsigned char *) out,
             hlen + 1 + plen, mac, &maclen)
        == NULL || maclen != CHAT_JWT_SIG_LEN)
    {
        out[0] = '\0';
        return -1;
    }

    out[hlen + 1 + plen] = '.';
    chat_base64url_encode(out + hlen + 1 + plen + 1, mac, CHAT_JWT_SIG_LEN);
    out[need - 1] = '\0';

    return (int) (need - 1);
}


chat_jwt_rc_e
chat_jwt_verify(const unsigned char *key, size_t keylen, const char *token,
    size_t len, int64_t now, chat_jwt_claims_t *claims)
{
    size_t         i, d1, d2, ndots, hlen, plen, slen;
    unsigned int   maclen;
    chat_jwt_rc_e  rc;
    unsigned char  buf[CHAT_JWT_PART_MAX];
    unsigned char  sig[CHAT_JWT_SIG_LEN];
    unsigned char  mac[EVP_MAX_MD_SIZE];

    /* a bad key is a configuration error: no token can be trusted */
    if (key == NULL || keylen < CHAT_JWT_KEY_MIN_LEN || keylen > INT_MAX) {
        return CHAT_JWT_BAD_SIGNATURE;
    }

    if (token == NULL || len == 0 || len > CHAT_JWT_MAX_LEN) {
        return CHAT_JWT_MALFORMED;
    }

    d1 = 0;
    d2 = 0;
    ndots = 0;

    for (i = 0; i < len; i++) {
        if (token[i] == '.') {
            if (ndots == 0) {
                d1 = i;

            } else {
                d2 = i;
            }

            ndots++;
        }
    }

    if (ndots != 2) {
        return CHAT_JWT_MALFORMED;
    }

    hlen = d1;
    plen = d2 - d1 - 1;
    slen = len - d2 - 1;

    /* the signature may be empty here, so that "alg":"none" says so */
    if (hlen == 0 || plen == 0
        || chat_base64url_check(token, hlen) != 0
        || chat_base64url_check(token + d1 + 1, plen) != 0
        || chat_base64url_check(token + d2 + 1, slen) != 0)
    {
        return CHAT_JWT_MALFORMED;
    }

    /* decoded sizes are exactly len * 3 / 4 once checked */
    if (hlen * 3 / 4 > CHAT_JWT_PART_MAX || plen * 3 / 4 > CHAT_JWT_PART_MAX) {
        return CHAT_JWT_MALFORMED;
    }

    rc = chat_jwt_check_header(token, hlen, buf);

    if (rc != CHAT_JWT_OK) {
        return rc;
    }

    if (slen != CHAT_JWT_SIG_B64_LEN) {
        return CHAT_JWT_BAD_SIGNATURE;
    }

    chat_base64url_decode(token + d2 + 1, slen, sig);

    if (HMAC(EVP_sha256(), key, (int) keylen, (const unsigned char *) token,
             d2, mac, &maclen)
        == NULL || maclen != CHAT_JWT_SIG_LEN)
    {
        return CHAT_JWT_BAD_SIGNATURE;
    }

    if (CRYPTO_memcmp(mac, sig, CHAT_JWT_SIG_LEN) != 0) {
        return CHAT_JWT_BAD_SIGNATURE;
    }

    return chat_jwt_check_payload(token + d1 + 1, plen, buf, now, claims);
}


static chat_jwt_rc_e
chat_jwt_check_header(const char *b64, size_t len, unsigned char *buf)
{
    json_t         *root, *v;
    chat_jwt_rc_e   rc;

    root = chat_jwt_load(b64, len, buf);

    if (root == NULL) {
        return CHAT_JWT_MALFORMED;
    }

    v = json_object_get(root, "alg");

    if (!json_is_string(v) || json_string_length(v) != 5
        || memcmp(json_string_value(v), "HS256", 5) != 0)
    {
        rc = CHAT_JWT_BAD_ALG;
        goto done;
    }

    v = json_object_get(root, "typ");

    if (v != NULL
        && (!json_is_string(v) || json_string_length(v) != 3
            || memcmp(json_string_value(v), "JWT", 3) != 0))
    {
        rc = CHAT_JWT_MALFORMED;
        goto done;
    }

    /* RFC 7515 4.1.11: extensions we do not know make the token invalid */
    if (json_object_get(root, "crit") != NULL) {
        rc = CHAT_JWT_MALFORMED;
        goto done;
    }

    rc = CHAT_JWT_OK;

done:

    json_decref(root);

    return rc;
}


static chat_jwt_rc_e
chat_jwt_check_payload(const char *b64, size_t len, unsigned char *buf,
    int64_t now, chat_jwt_claims_t *claims)
{
    int             has_nbf, has_jti;
    size_t          slen, jlen;
    json_t         *root;
    int64_t         exp, iat, nbf;
    uint64_t        sub;
    const char     *s, *jti;
    chat_jwt_rc_e   rc;

    root = chat_jwt_load(b64, len, buf);

    if (root == NULL) {
        return CHAT_JWT_MALFORMED;
    }

    rc = CHAT_JWT_BAD_CLAIMS;

    /* the contract makes sub a decimal string; a JSON number is refused */
    if (chat_json_get_string(root, "sub", &s, &slen) != 0
        || chat_json_parse_id(s, slen, &sub) != 0)
    {
        goto done;
    }

    if (chat_json_get_int(root, "exp", &exp) != 0) {
        goto done;
    }

    iat = 0;

    if (chat_json_get_int(root, "iat", &iat) < 0) {
        goto done;
    }

    nbf = 0;
    has_nbf = chat_json_get_int(root, "nbf", &nbf);

    if (has_nbf < 0) {
        goto done;
    }

    jti = NULL;
    jlen = 0;
    has_jti = chat_json_get_string(root, "jti", &jti, &jlen);

    if (has_jti < 0 || (has_jti == 0 && jlen > CHAT_JWT_JTI_MAX)
        || (jti != NULL && memchr(jti, '\0', jlen) != NULL))
    {
        goto done;
    }

    if (now >= exp) {
        rc = CHAT_JWT_EXPIRED;
        goto done;
    }

    if (has_nbf == 0 && now < nbf) {
        rc = CHAT_JWT_NOT_YET_VALID;
        goto done;
    }

    if (claims != NULL) {
        claims->sub = sub;
        claims->iat = iat;
        claims->exp = exp;
        claims->jti[0] = '\0';

        if (has_jti == 0) {
            memcpy(claims->jti, jti, jlen);
            claims->jti[jlen] = '\0';
        }
    }

    rc = CHAT_JWT_OK;

done:

    json_decref(root);

    return rc;
}


/* decodes a checked part into buf and parses it; an object or NULL */
static json_t *
chat_jwt_load(const char *b64, size_t len, unsigned char *buf)
{
    size_t         n;
    json_t        *root;
    json_error_t   error;

    n = chat_base64url_decode(b64, len, buf);

    if (chat_json_check_depth((const char *) buf, n, CHAT_JWT_MAX_DEPTH)
        != 0)
    {
        return NULL;
    }

    root = json_loadb((const char *) buf, n, JSON_REJECT_DUPLICATES, &error);

    if (root != NULL && !json_is_object(root)) {
        json_decref(root);
        return NULL;
    }

    return root;
}
