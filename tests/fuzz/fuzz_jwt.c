
/*
 * libFuzzer target for the JWT parser and verifier, src/common/chat_jwt.c.
 *
 * Random bytes rarely carry a valid HMAC, so most of the input is signed
 * here, with the fuzzer's key, to reach the header and payload parsers:
 * the first byte picks the shape of the rest.
 *
 *   0  the rest is the token, verified as it is;
 *   1  the rest is "header\npayload" (JSON or not): base64url'd, joined
 *      and signed with HMAC-SHA256 here, then verified;
 *   2  as 1, the signature then damaged in one of its bits.
 *
 * Invariants: the result is a known code; a token is accepted only when
 * signed with the key (never with another key, never after a bit of the
 * signature or of the signed part flipped); what is accepted has a sub
 * of 1..INT64_MAX and now < exp, and chat_jwt_sign() with those claims
 * makes a token that verifies to the same claims.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "chat_jwt.h"
#include "chat_fuzz.h"


#define CHAT_FUZZ_NOW   1700000000
#define CHAT_FUZZ_TOK   (CHAT_JWT_MAX_LEN + 64)


static const unsigned char  chat_fuzz_key[] =
    "fuzz-key-of-at-least-thirty-two-bytes!!";
static const unsigned char  chat_fuzz_other[] =
    "another-key-of-at-least-thirty-two-bytes";

#define CHAT_FUZZ_KEYLEN  (sizeof(chat_fuzz_key) - 1)


static int
chat_fuzz_rc_known(chat_jwt_rc_e rc)
{
    return rc >= CHAT_JWT_OK && rc <= CHAT_JWT_BAD_CLAIMS
           && chat_jwt_rc_text(rc) != NULL;
}


/* base64url without padding; out has room for 4 * ceil(len / 3) */
static size_t
chat_fuzz_b64(const uint8_t *in, size_t len, char *out)
{
    size_t  i, n;
    int     k;

    n = (size_t) EVP_EncodeBlock((unsigned char *) out, in, (int) len);

    while (n > 0 && out[n - 1] == '=') {
        n--;
    }

    for (i = 0; i < n; i++) {
        k = out[i];
        out[i] = (k == '+') ? '-' : (k == '/') ? '_' : (char) k;
    }

    return n;
}


static chat_jwt_rc_e
chat_fuzz_verify(const unsigned char *key, size_t keylen, const char *tok,
    size_t len, chat_jwt_claims_t *claims)
{
    chat_jwt_rc_e  rc;

    memset(claims, 0, sizeof(chat_jwt_claims_t));

    rc = chat_jwt_verify(key, keylen, tok, len, CHAT_FUZZ_NOW, claims);
    chat_fuzz_check(chat_fuzz_rc_known(rc));

    return rc;
}


/* an accepted token: its claims, and the same claims signed again */
static void
chat_fuzz_accepted(const chat_jwt_claims_t *c)
{
    int                n;
    char               tok[256];
    chat_jwt_claims_t  again;

    chat_fuzz_check(c->sub >= 1 && c->sub <= (uint64_t) INT64_MAX);
    chat_fuzz_check(c->exp > CHAT_FUZZ_NOW);

    n = chat_jwt_sign(chat_fuzz_key, CHAT_FUZZ_KEYLEN, c->sub, c->iat,
                      c->exp, tok, sizeof(tok));
    chat_fuzz_check(n > 0);

    chat_fuzz_check(chat_fuzz_verify(chat_fuzz_key, CHAT_FUZZ_KEYLEN, tok,
                                     (size_t) n, &again) == CHAT_JWT_OK);
    chat_fuzz_check(again.sub == c->sub && again.exp == c->exp);
}


static void
chat_fuzz_signed(const uint8_t *data, size_t size, int damage)
{
    char               *tok;
    size_t              n, hlen, bit;
    const uint8_t      *nl;
    unsigned int        maclen;
    unsigned char       mac[EVP_MAX_MD_SIZE];
    chat_jwt_rc_e       rc;
    chat_jwt_claims_t   claims;

    nl = memchr(data, '\n', size);
    if (nl == NULL || size > 3000) {
        return;
    }

    hlen = nl - data;

    tok = malloc(CHAT_FUZZ_TOK * 2);
    if (tok == NULL) {
        return;
    }

    n = chat_fuzz_b64(data, hlen, tok);
    tok[n++] = '.';
    n += chat_fuzz_b64(nl + 1, size - hlen - 1, tok + n);

    if (HMAC(EVP_sha256(), chat_fuzz_key, (int) CHAT_FUZZ_KEYLEN,
             (const unsigned char *) tok, n, mac, &maclen) == NULL)
    {
        free(tok);
        return;
    }

    tok[n++] = '.';

    if (damage) {
        /* one bit of the signature, chosen by the input's size */
        bit = size % (8 * maclen);
        mac[bit / 8] ^= (unsigned char) (1u << (bit % 8));
    }

    n += chat_fuzz_b64(mac, maclen, tok + n);

    rc = chat_fuzz_verify(chat_fuzz_key, CHAT_FUZZ_KEYLEN, tok, n, &claims);

    if (damage) {
        chat_fuzz_check(rc != CHAT_JWT_OK);

    } else if (rc == CHAT_JWT_OK) {
        chat_fuzz_accepted(&claims);

        /* not with another key, not with a bit of the payload flipped */
        chat_fuzz_check(chat_fuzz_verify(chat_fuzz_other,
                                         sizeof(chat_fuzz_other) - 1, tok,
                                         n, &claims) != CHAT_JWT_OK);

        tok[hlen / 2] ^= 0x01;
        chat_fuzz_check(chat_fuzz_verify(chat_fuzz_key, CHAT_FUZZ_KEYLEN,
                                         tok, n, &claims) != CHAT_JWT_OK);
    }

    free(tok);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    chat_jwt_rc_e      rc;
    chat_jwt_claims_t  claims;

    if (size == 0) {
        return 0;
    }

    switch (data[0] % 3) {

    case 0:
        rc = chat_fuzz_verify(chat_fuzz_key, CHAT_FUZZ_KEYLEN,
                              (const char *) data + 1, size - 1, &claims);
        if (rc == CHAT_JWT_OK) {
            chat_fuzz_accepted(&claims);
        }

        /* a short key never accepts anything */
        chat_fuzz_check(chat_fuzz_verify(chat_fuzz_key,
                                         CHAT_JWT_KEY_MIN_LEN - 1,
                                         (const char *) data + 1, size - 1,
                                         &claims)
                        == CHAT_JWT_BAD_SIGNATURE);
        break;

    case 1:
        chat_fuzz_signed(data + 1, size - 1, 0);
        break;

    default:
        chat_fuzz_signed(data + 1, size - 1, 1);
    }

    return 0;
}
