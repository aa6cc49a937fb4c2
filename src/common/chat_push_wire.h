
/*
 * ngx_chat: what the push worker sends to its providers and how it reads
 * their answers, as pure functions (no I/O, no clock, no globals).
 *
 *   webhook  POST of the contract's JSON to the configured URL
 *   fcm      Firebase Cloud Messaging HTTP v1, projects.messages.send,
 *            authorized by an OAuth2 access token that a service account's
 *            RS256-signed JWT assertion buys from Google's token endpoint
 *   apns     Apple Push Notification service over HTTP/2, authorized by a
 *            provider token: a JWT signed ES256 with the team's .p8 key
 *
 * A device token never chooses where a request goes: the URL is the
 * configured endpoint's; only an APNs token enters a URL path, and only
 * as 64 to 200 hex digits (chat_push_token_ok()).
 *
 * The bodies are compact JSON with the keys in the order documented here
 * (the unit tests compare them byte for byte), made by jansson: every
 * string in them is valid UTF-8, which is why chat_push_preview() repairs
 * what it copies.
 *
 * No nginx headers, no libcurl: shared with the unit tests and the fuzzer.
 * Needs jansson and libcrypto.
 */


#ifndef _CHAT_PUSH_WIRE_H_INCLUDED_
#define _CHAT_PUSH_WIRE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>


#define CHAT_PUSH_PREVIEW_CHARS   100
/* 100 characters of up to 4 bytes, "…" (3 bytes) and the NUL */
#define CHAT_PUSH_PREVIEW_MAX     (CHAT_PUSH_PREVIEW_CHARS * 4 + 3 + 1)
#define CHAT_PUSH_TOKEN_MAX       4096
#define CHAT_PUSH_APNS_TOKEN_MIN  64
#define CHAT_PUSH_APNS_TOKEN_MAX  200
#define CHAT_PUSH_APNS_PATH_MAX   (sizeof("/3/device/") + 200)
#define CHAT_PUSH_COLLAPSE_MAX    64     /* apns-collapse-id, in bytes */
#define CHAT_PUSH_REASON_MAX      64     /* chat_push_classify()'s reason */
#define CHAT_PUSH_RETRY_AFTER_MAX 86400  /* s: a longer Retry-After is cut */
#define CHAT_PUSH_ANSWER_MAX      16384  /* longer answers are not parsed */

#define CHAT_PUSH_FCM_SCOPE                                                   \
    "https://www.googleapis.com/auth/firebase.messaging"


typedef enum {
    CHAT_PUSH_WEBHOOK = 0,
    CHAT_PUSH_FCM,
    CHAT_PUSH_APNS
} chat_push_platform_e;


/* one notification for one device */
typedef struct {
    const char  *token;        /* the device token (NUL-terminated) */
    int          platform;     /* chat_push_platform_e */
    int64_t      user_id;      /* the recipient */
    const char  *message_id;   /* the newest message of the collapsed run */
    int64_t      from;
    int64_t      to;           /* 1:1: the recipient; 0 for a group */
    int64_t      group;        /* 0 for 1:1 */
    const char  *preview;      /* NULL: none (e2e messages never have one) */
    int          e2e;          /* the newest message is e2e */
    int          count;        /* messages this notification stands for */
    int64_t      ts;           /* ms, the newest message's ts */
    const char  *conv;         /* "d:1:2" or "g:5": collapse/thread key */
} chat_push_note_t;


typedef enum {
    CHAT_PUSH_OK = 0,
    CHAT_PUSH_RETRY,        /* 5xx, 429, 408, transport error (status 0) */
    CHAT_PUSH_REAUTH,       /* our credential was refused: renew, retry */
    CHAT_PUSH_INVALID,      /* the device token is gone: remove it */
    CHAT_PUSH_FAIL          /* anything else: no retry, dead letter */
} chat_push_outcome_e;


/* "webhook", "fcm" or "apns" (exactly): the platform; -1 otherwise */
int chat_push_platform(const char *name);

/* the platform's name, "?" for none */
const char *chat_push_platform_name(int platform);

/* a short constant text for an outcome ("ok", "retry", ...) */
const char *chat_push_outcome_text(chat_push_outcome_e o);

/*
 * The preview of a message body (len bytes, NUL-terminated or not) into
 * out (CHAT_PUSH_PREVIEW_MAX bytes), which is returned:
 *
 *   - NULL for an e2e message: its body is ciphertext, never shown;
 *   - "[image]" for an empty body with media;
 *   - otherwise the body's first CHAT_PUSH_PREVIEW_CHARS characters, cut
 *     on a character boundary, with "…" (U+2026) appended when cut.
 *
 * The body is valid UTF-8 (the gateway checked it), but nothing breaks
 * when it is not: each byte that does not start a valid sequence, and
 * each NUL, becomes U+FFFD and counts as one character, so out is always
 * valid UTF-8 without NUL bytes.
 */
const char *chat_push_preview(const char *body, size_t len, int has_media,
    int e2e, char *out);

/*
 * The request bodies: malloc'd NUL-terminated compact JSON (free()), NULL
 * when out of memory or when a string of the note is not valid UTF-8.
 * "to" is written for a 1:1 note (group == 0), "group" otherwise.
 *
 * webhook, the contract's object and two extensions:
 *   {"token","platform","user_id","message_id","from","to"|"group",
 *    "preview"?,"count","ts"}
 *   count: how many messages the notification stands for (a burst in one
 *   conversation is collapsed into one); ts: the newest one's, ms.
 */
char *chat_push_webhook_body(const chat_push_note_t *n);

/*
 * fcm, HTTP v1's message (every "data" value is a string, as FCM wants):
 *   {"message":{"token",
 *     "notification":{"title","body"?},
 *     "data":{"message_id","from","to"|"group","count","ts"},
 *     "android":{"priority":"high","collapse_key":conv},
 *     "apns":{"headers":{"apns-collapse-id":conv},
 *             "payload":{"aps":{"thread-id":conv,"mutable-content":1?}}}}}
 *   body: the preview, absent without one (e2e); mutable-content: for an
 *   e2e message, so that an iOS notification service extension may
 *   decrypt it on the device; apns-collapse-id only when conv fits.
 */
char *chat_push_fcm_body(const chat_push_note_t *n);

/*
 * apns, the payload:
 *   {"aps":{"alert":{"title","body"?},"thread-id":conv,
 *           "mutable-content":1?},
 *    "message_id","from","to"|"group","count","ts"}
 */
char *chat_push_apns_body(const chat_push_note_t *n);

/*
 * The title of the three: "New message", or "<count> new messages".
 */
const char *chat_push_title(int count, char *buf, size_t size);

/*
 * Whether a token may be used at all for the platform:
 *   apns     64 to 200 hex digits (either case): it goes into the path;
 *   fcm      1 to 4096 of [A-Za-z0-9_:-] (FCM registration tokens);
 *   webhook  1 to 4096 bytes of valid UTF-8 without NUL: it only goes
 *            into the JSON body, escaped (the rule of PUT /v1/devices, so
 *            no token the API took is refused here).
 * 1 yes, 0 no (also for a NULL token or an unknown platform).
 */
int chat_push_token_ok(int platform, const char *token);

/*
 * The APNs request path "/3/device/<token>" into out (size bytes): its
 * length, or -1 when the token is not ok or out is too small (out is then
 * "" if size > 0).
 */
int chat_push_apns_path(const char *token, char *out, size_t size);

/*
 * What an answer means.  status: the HTTP status, 0 for a transport error
 * or a timeout; body (len bytes, NULL when len is 0): the answer, read
 * only as JSON of at most CHAT_PUSH_ANSWER_MAX bytes, anything else is
 * ignored.  reason (reason_size bytes, at most CHAT_PUSH_REASON_MAX are
 * used) gets a short text for logs and the dead letter: the provider's
 * reason (APNs "reason", FCM "errorCode" or "status") when it gives one,
 * "http_<status>" or "transport" otherwise, only [A-Za-z0-9_.-].
 *
 *   any    2xx OK; 0, 408, 429, 5xx RETRY
 *   webhook  404, 410 INVALID; other statuses FAIL
 *   fcm    401 REAUTH (but THIRD_PARTY_AUTH_ERROR, the APNs credential
 *          in the Firebase project, FAIL); 404 with errorCode UNREGISTERED
 *          INVALID; 400 with errorCode INVALID_ARGUMENT and a message
 *          that names the registration token INVALID; other statuses FAIL
 *          (a 404 without UNREGISTERED is a wrong project, not a gone
 *          token: removing every device for it would be wrong)
 *   apns   403 ExpiredProviderToken or InvalidProviderToken REAUTH;
 *          410 INVALID; 400 BadDeviceToken or DeviceTokenNotForTopic
 *          INVALID; other statuses FAIL
 */
chat_push_outcome_e chat_push_classify(int platform, long status,
    const char *body, size_t len, char *reason, size_t reason_size);

/*
 * A Retry-After value (RFC 9110 10.2.3: delay-seconds or an HTTP-date in
 * any of its three forms) as ms from now_ms (ms since the epoch, wall
 * clock): >= 0, at most CHAT_PUSH_RETRY_AFTER_MAX seconds (a date in the
 * past is 0); -1 when value is NULL or unparseable.
 */
int64_t chat_push_retry_after(const char *value, int64_t now_ms);

/*
 * The wait before attempt n (1-based; below 1 counts as 1):
 * d = min(max_ms, base_ms * 2^(n-1)), then full jitter in [d/2, d] by r
 * in [0, 1) (out of range is clamped).  No overflow for any n.
 */
int64_t chat_push_backoff(int attempt, int64_t base_ms, int64_t max_ms,
    double r);

/* 1 when key is an EC P-256 key (APNs' .p8 keys are), 0 otherwise */
int chat_push_es256_key_ok(EVP_PKEY *key);

/*
 * The APNs provider token: header {"alg":"ES256","kid":key_id}, claims
 * {"iss":team_id,"iat":iat} (unix seconds), the signature R||S (64
 * bytes, base64url) as JWS wants it, not OpenSSL's DER.  key must be an
 * EC P-256 private key.  malloc'd, NULL on any error.
 */
char *chat_push_apns_jwt(EVP_PKEY *key, const char *key_id,
    const char *team_id, int64_t iat);

/*
 * The Google OAuth2 assertion (RFC 7523): header {"alg":"RS256",
 * "typ":"JWT"}, claims {"iss":client_email,"scope":CHAT_PUSH_FCM_SCOPE,
 * "aud":token_uri,"iat":iat,"exp":iat+3600}.  key must be an RSA private
 * key of at least 2048 bits.  malloc'd, NULL on any error.
 */
char *chat_push_google_assertion(EVP_PKEY *key, const char *client_email,
    const char *token_uri, int64_t iat);

/*
 * The token endpoint's form body:
 * "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
 * "&assertion=<assertion, form-encoded>".  malloc'd, NULL on error.
 */
char *chat_push_google_token_form(const char *assertion);

/*
 * The token endpoint's answer {"access_token":"..","expires_in":3599,
 * "token_type":"Bearer"}: 0 with the token in token (size bytes) and its
 * lifetime in seconds in *expires_in; -1 when it is not such an object,
 * when the token is empty, does not fit or has bytes outside printable
 * ASCII (it goes into a header), when expires_in is not a positive
 * integer, or when token_type is there and is not "Bearer".
 */
int chat_push_google_token_parse(const char *body, size_t len, char *token,
    size_t size, int64_t *expires_in);


#endif /* _CHAT_PUSH_WIRE_H_INCLUDED_ */
