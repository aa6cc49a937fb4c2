
/*
 * ngx_chat: the Kafka records of chat.messages and chat.receipts, as the
 * gateway writes them (src/ngx_chat_send.c), read and checked.
 *
 *   key    the conversation: "d:<lo>:<hi>" (one-to-one, lower user id
 *          first) or "g:<gid>"
 *   value  a compact JSON object:
 *          message  {"id","seq","from","to"|"group","body","client_id",
 *                    "ts","media"?,"e2e"?}  ("type":"message" optional)
 *          receipt  {"type":"receipt","id","conv","seq","from","by",
 *                    "status":"delivered"|"read","ts"}
 *
 * A record is accepted only when a consumer can store it as it is: every
 * required member present with its type, ids positive JSON integers, the
 * message id in chat_id's canonical form, the key equal to the
 * conversation the members name.  Anything else is refused with a short
 * reason (for the dead-letter topic and the log); the record decides
 * whether it is a message or a receipt, whichever topic it came from.
 * Members the consumer does not know are ignored, so that producers can
 * add some.
 *
 * No nginx headers: shared with the standalone daemons.
 */


#ifndef _CHAT_RECORD_H_INCLUDED_
#define _CHAT_RECORD_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "chat_id.h"


#define CHAT_RECORD_MAX_SIZE     (1024 * 1024)
#define CHAT_RECORD_CONV_LEN     48      /* "d:" 19 ":" 19, and a NUL */
#define CHAT_RECORD_CLIENT_ID    255
#define CHAT_RECORD_MEDIA        255


/* 9999-12-31T23:59:59.999Z in ms */
#define CHAT_RECORD_MAX_SEEN  253402300799999LL


typedef enum {
    CHAT_RECORD_MESSAGE = 1,
    CHAT_RECORD_RECEIPT
} chat_record_type_e;


typedef struct {
    chat_record_type_e  type;
    char                conv[CHAT_RECORD_CONV_LEN];
    char                id[CHAT_ID_LEN + 1];
    int64_t             seq;
    int64_t             from;
    int64_t             ts;

    /* a message: to or group is 0; strings point into the parsed JSON */
    int64_t             to;
    int64_t             group;
    const char         *body;
    size_t              body_len;
    const char         *client_id;
    size_t              client_id_len;
    const char         *media;          /* NULL: none */
    size_t              media_len;
    int                 e2e;

    /* a receipt */
    int64_t             by;
    int                 read;           /* 1 "read", 0 "delivered" */
} chat_record_t;


/*
 * Parses one record.  Returns the parsed JSON, which the strings of rec
 * point into (json_decref() it when done with rec), or NULL with the
 * reason in err (errlen bytes, truncated to fit), e.g. "no key",
 * "value is not valid JSON", "\"seq\" must be an integer above 0",
 * "key is not the conversation of the message".
 */
json_t *chat_record_parse(const char *key, size_t key_len,
    const char *value, size_t value_len, chat_record_t *rec, char *err,
    size_t errlen);

/*
 * The conversation id of a one-to-one message between users a and b
 * ("d:<lower>:<higher>") or of group g (a, b 0), written to out
 * (CHAT_RECORD_CONV_LEN bytes).
 */
void chat_record_conv(char *out, int64_t a, int64_t b, int64_t g);

/*
 * Reads one chat.presence record, keyed by the user id, value
 * {"user_id":U,"online":false,"last_seen":<ms>} (src/ngx_chat_presence.c).
 * Returns 0 with *user_id, *online and *last_seen (ms since the epoch,
 * 1 to CHAT_RECORD_MAX_SEEN: PostgreSQL takes it as a timestamptz), or -1
 * with the reason in err, as chat_record_parse().
 */
int chat_record_presence(const char *key, size_t key_len, const char *value,
    size_t value_len, int64_t *user_id, int *online, int64_t *last_seen,
    char *err, size_t errlen);


#endif /* _CHAT_RECORD_H_INCLUDED_ */
