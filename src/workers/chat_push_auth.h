
/*
 * Copyright (C) ngx_chat authors
 *
 * The push worker's credentials for FCM and APNs: the key files, the
 * endpoints and the cached tokens that authorize each request.  The
 * request bodies, the JWTs and the reading of answers are pure code in
 * src/common/chat_push_wire.c; this file adds files, clocks and (for FCM's
 * OAuth2 token) one blocking libcurl request.
 *
 * The options that chat-worker push is expected to parse into these calls:
 *
 *   --fcm-credentials FILE   a Google service-account JSON key file
 *                            ("type":"service_account", project_id,
 *                            client_email, private_key, token_uri)
 *   --fcm-endpoint URL       FCM's base, CHAT_PUSH_FCM_ENDPOINT by
 *                            default (a test points it at a local
 *                            receiver)
 *   --fcm-token-uri URL      overrides the file's token_uri: the only way
 *                            to a plain http token endpoint (tests); the
 *                            file's own must be https
 *   --apns-key FILE          the .p8 key (PEM, EC P-256) from Apple
 *   --apns-key-id ID         its 10-character key id
 *   --apns-team-id ID        the 10-character team id
 *   --apns-topic BUNDLE      the app's bundle id
 *   --apns-endpoint URL      CHAT_PUSH_APNS_PRODUCTION (the default),
 *                            CHAT_PUSH_APNS_SANDBOX for development
 *                            builds, or a test receiver
 *
 * Times: now_ms is the wall clock (ms since the epoch): JWTs carry it.
 * Errors come back as a short text in err (errlen bytes) for the caller
 * to log; none of them contains a key, an assertion or a token.
 *
 * Not thread-safe: one sender thread owns each of these.
 */


#ifndef _CHAT_PUSH_AUTH_H_INCLUDED_
#define _CHAT_PUSH_AUTH_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "chat_push_wire.h"


#define CHAT_PUSH_URL_MAX          512
#define CHAT_PUSH_FIELD_MAX        256
#define CHAT_PUSH_BEARER_MAX       4096
#define CHAT_PUSH_JWT_MAX          1024
#define CHAT_PUSH_FCM_ENDPOINT     "https://fcm.googleapis.com"
#define CHAT_PUSH_APNS_PRODUCTION  "https://api.push.apple.com"
#define CHAT_PUSH_APNS_SANDBOX     "https://api.sandbox.push.apple.com"
#define CHAT_PUSH_TOKEN_TIMEOUT    10000       /* ms, the OAuth2 POST */
#define CHAT_PUSH_BEARER_MARGIN    300000      /* ms: renewed this early */
#define CHAT_PUSH_APNS_JWT_AGE     3000000     /* ms: 50 minutes */
#define CHAT_PUSH_APNS_EXPIRATION  86400       /* s: apns-expiration */


typedef struct {
    char         project_id[CHAT_PUSH_FIELD_MAX];
    char         client_email[CHAT_PUSH_FIELD_MAX];
    char         token_uri[CHAT_PUSH_URL_MAX];
    char         url[CHAT_PUSH_URL_MAX];     /* .../messages:send */
    EVP_PKEY    *key;
    CURL        *curl;                       /* the token request's */
    char         bearer[CHAT_PUSH_BEARER_MAX];
    int64_t      bearer_until;               /* ms: renew from here on */
} chat_push_fcm_t;


typedef struct {
    char         key_id[CHAT_PUSH_FIELD_MAX];
    char         team_id[CHAT_PUSH_FIELD_MAX];
    char         topic[CHAT_PUSH_FIELD_MAX];
    char         endpoint[CHAT_PUSH_URL_MAX];   /* no slash at the end */
    EVP_PKEY    *key;
    char         jwt[CHAT_PUSH_JWT_MAX];
    int64_t      jwt_until;                     /* ms: renew from here on */
} chat_push_apns_t;


/*
 * Reads the service-account file and checks it: 0, or -1 with err.
 * endpoint: NULL for CHAT_PUSH_FCM_ENDPOINT, else an http or https URL
 * of a host[:port] without a path.  token_uri: NULL for the file's
 * (which must be https), else this one (http allowed: the explicit test
 * override).
 * f is zeroed first; chat_push_fcm_close() is safe after a failure.
 */
int chat_push_fcm_open(chat_push_fcm_t *f, const char *sa_file,
    const char *endpoint, const char *token_uri, char *err, size_t errlen);

/*
 * The access token for "authorization: Bearer <it>": the cached one
 * until CHAT_PUSH_BEARER_MARGIN before it expires, else a new one from
 * the token endpoint (a blocking POST of at most CHAT_PUSH_TOKEN_TIMEOUT).
 * NULL with err when none can be had; the caller retries later.
 */
const char *chat_push_fcm_bearer(chat_push_fcm_t *f, int64_t now_ms,
    char *err, size_t errlen);

/* FCM refused the token (CHAT_PUSH_REAUTH): the next bearer is new */
void chat_push_fcm_reauth(chat_push_fcm_t *f);

/*
 * The request's headers, appended to *list (which may start NULL):
 * "authorization: Bearer ..." and "content-type: application/json".
 * 0, or -1 with err (*list is then left as it was).
 */
int chat_push_fcm_headers(chat_push_fcm_t *f, int64_t now_ms,
    struct curl_slist **list, char *err, size_t errlen);

void chat_push_fcm_close(chat_push_fcm_t *f);


/*
 * Reads the .p8 key (an EC P-256 private key in PEM) and checks the ids:
 * key_id and team_id 1..64 of [A-Za-z0-9], topic 1..200 of
 * [A-Za-z0-9.-_]; endpoint NULL for CHAT_PUSH_APNS_PRODUCTION, else an
 * http or https URL of a host[:port] without a path.  0, or -1 with err.
 */
int chat_push_apns_open(chat_push_apns_t *a, const char *key_file,
    const char *key_id, const char *team_id, const char *topic,
    const char *endpoint, char *err, size_t errlen);

/*
 * The provider token: the cached one for CHAT_PUSH_APNS_JWT_AGE (Apple
 * refuses one older than an hour and one renewed more often than every
 * 20 minutes), else a new one.  NULL with err when signing fails.
 */
const char *chat_push_apns_token(chat_push_apns_t *a, int64_t now_ms,
    char *err, size_t errlen);

/* APNs refused the token (CHAT_PUSH_REAUTH): the next one is new */
void chat_push_apns_reauth(chat_push_apns_t *a);

/*
 * The URL for a device token: endpoint + "/3/device/<token>"; its length,
 * or -1 when the token is not an APNs token (chat_push_token_ok()) or
 * out (size bytes) is too small.
 */
int chat_push_apns_url(chat_push_apns_t *a, const char *token, char *out,
    size_t size);

/*
 * The request's headers for note n, appended to *list:
 *   authorization: bearer <jwt>
 *   apns-topic: <topic>
 *   apns-push-type: alert
 *   apns-priority: 10
 *   apns-expiration: <now + CHAT_PUSH_APNS_EXPIRATION, unix seconds>
 *   apns-collapse-id: <n->conv>      (when it is 1..64 printable bytes)
 *   content-type: application/json
 * 0, or -1 with err (*list is then left as it was).  HTTP/2 is the
 * caller's: CURLOPT_HTTP_VERSION = CURL_HTTP_VERSION_2TLS (APNs speaks
 * nothing else), and CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE for a plain
 * http test endpoint.
 */
int chat_push_apns_headers(chat_push_apns_t *a, const chat_push_note_t *n,
    int64_t now_ms, struct curl_slist **list, char *err, size_t errlen);

void chat_push_apns_close(chat_push_apns_t *a);


#endif /* _CHAT_PUSH_AUTH_H_INCLUDED_ */
