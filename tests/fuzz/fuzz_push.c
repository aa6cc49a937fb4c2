
/*
 * libFuzzer target for what the push worker reads from outside,
 * src/common/chat_push_wire.c: the providers' answers
 * (chat_push_classify()), the Google token endpoint's answer
 * (chat_push_google_token_parse()), message bodies made into previews
 * (chat_push_preview()) and Retry-After values.
 *
 * The first byte picks the platform and the status; the rest is the
 * input.  Invariants: the outcome is a known one, 2xx is always OK and
 * 5xx/429/0 always RETRY whatever the body says; the reason is at most
 * CHAT_PUSH_REASON_MAX bytes of [A-Za-z0-9_.-]; a preview is valid UTF-8
 * without NUL, at most CHAT_PUSH_PREVIEW_MAX - 1 bytes, and a body can be
 * made with it; a parsed access token is printable ASCII with a positive
 * lifetime; a Retry-After is -1 or within 0..CHAT_PUSH_RETRY_AFTER_MAX s.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_push_wire.h"
#include "chat_fuzz.h"


static const long  chat_fuzz_statuses[] = {
    0, 200, 204, 400, 401, 403, 404, 408, 410, 413, 429, 500, 503, 302
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                   platform;
    char                  reason[CHAT_PUSH_REASON_MAX + 1];
    char                  pv[CHAT_PUSH_PREVIEW_MAX], tok[256], *s, *b;
    long                  status;
    size_t                i, len;
    int64_t               exp, ra;
    const char           *p;
    chat_push_note_t      n;
    chat_push_outcome_e   o;

    if (size == 0) {
        return 0;
    }

    platform = data[0] % 3;
    status = chat_fuzz_statuses[(data[0] / 3) % (sizeof(chat_fuzz_statuses)
                                                  / sizeof(long))];
    data++;
    size--;

    /* the answer */
    o = chat_push_classify(platform, status, (const char *) data, size,
                           reason, sizeof(reason));
    chat_fuzz_check(o >= CHAT_PUSH_OK && o <= CHAT_PUSH_FAIL);

    if (status >= 200 && status <= 299) {
        chat_fuzz_check(o == CHAT_PUSH_OK);
    }

    if (status == 0 || status == 429 || status >= 500) {
        chat_fuzz_check(o == CHAT_PUSH_RETRY);
    }

    len = strlen(reason);
    chat_fuzz_check(len > 0 && len <= CHAT_PUSH_REASON_MAX);

    for (i = 0; i < len; i++) {
        chat_fuzz_check(strchr("abcdefghijklmnopqrstuvwxyz"
                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-",
                               reason[i]) != NULL);
    }

    /* the token endpoint's answer */
    if (chat_push_google_token_parse((const char *) data, size, tok,
                                     sizeof(tok), &exp) == 0)
    {
        len = strlen(tok);
        chat_fuzz_check(len > 0 && len < sizeof(tok) && exp > 0);

        for (i = 0; i < len; i++) {
            chat_fuzz_check(tok[i] > 0x20 && tok[i] < 0x7f);
        }
    }

    /* the preview, and a body made with it */
    p = chat_push_preview((const char *) data, size, status == 200,
                          0, pv);
    chat_fuzz_check(p == pv);
    len = strlen(pv);
    chat_fuzz_check(len < CHAT_PUSH_PREVIEW_MAX);
    chat_fuzz_check(chat_fuzz_utf8_ref((const uint8_t *) pv, len) == 0);
    chat_fuzz_check(chat_push_preview((const char *) data, size, 0, 1, pv)
                    == NULL);

    p = chat_push_preview((const char *) data, size, 0, 0, pv);

    memset(&n, 0, sizeof(n));
    n.token = "t";
    n.platform = platform;
    n.message_id = "m";
    n.preview = p;
    n.count = 1;
    n.conv = "d:1:2";

    b = chat_push_webhook_body(&n);
    chat_fuzz_check(b != NULL);
    free(b);
    b = chat_push_fcm_body(&n);
    chat_fuzz_check(b != NULL);
    free(b);
    b = chat_push_apns_body(&n);
    chat_fuzz_check(b != NULL);
    free(b);

    /* Retry-After */
    if (size < 128) {
        s = malloc(size + 1);
        if (s != NULL) {
            memcpy(s, data, size);
            s[size] = '\0';
            ra = chat_push_retry_after(s, 1700000000000LL);
            chat_fuzz_check(ra == -1
                            || (ra >= 0 && ra <= CHAT_PUSH_RETRY_AFTER_MAX
                                                 * 1000LL));
            free(s);
        }
    }

    return 0;
}
