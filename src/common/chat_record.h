
/*
 * ngx_chat: the Kafka records of chat.messages, chat.receipts and
 * chat.presence: written as the gateway produces them, read and checked
 * as the workers consume them.
 *
 *   key    the conversation: "d:<lo>:<hi>" (one-to-one, lower user id
 *          first) or "g:<gid>"
 *   value  a compact JSON object:
 *          message  {"id","seq","from","to"|"group","body","client_id",
 *                    "ts","media"?,"e2e"?,"search_tokens"?}
 *                   ("type":"message" optional)
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
 * What a message may hold is decided in one place, chat_record_check(),
 * used by the gateway before it claims or produces anything (through
 * chat_proto_decode() and chat_record_message_new()) and by the consumer
 * after parsing: what the gateway acknowledges, the consumer stores.  The
 * limits bound the whole record, see CHAT_RECORD_MESSAGE_MAX.
 *
 * No nginx headers: shared with the standalone daemons.
 */


#ifndef _CHAT_RECORD_H_INCLUDED_
#define _CHAT_RECORD_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "chat_id.h"
#include "chat_media_id.h"


#define CHAT_RECORD_MAX_SIZE     (1024 * 1024)
#define CHAT_RECORD_CONV_LEN     48      /* "d:" 19 ":" 19, and a NUL */

/* a message's fields, in bytes (docs/PROTOCOL.md, "Limits") */
#define CHAT_RECORD_BODY         16384
#define CHAT_RECORD_CLIENT_ID    64
#define CHAT_RECORD_MEDIA        CHAT_MEDIA_ID_MAX

/*
 * An e2e message's blind-index terms (docs/PROTOCOL.md, "Search over
 * end-to-end encrypted messages"): up to 64 strings of 16 to 64 bytes of
 * base64url without padding.
 */
#define CHAT_RECORD_SEARCH_TOKENS     64
#define CHAT_RECORD_SEARCH_TOKEN_MIN  16
#define CHAT_RECORD_SEARCH_TOKEN_MAX  64

/*
 * The longest value of a message that chat_record_message_dump() can
 * write: each byte of body and client_id escaped at most 6 bytes long
 * ("\u001f"), a media id and search tokens are never escaped (each
 * token takes its quotes and a comma more), and the rest (names, ids,
 * seq, ts, e2e, "search_tokens":[]) takes less than 512 bytes.  Well
 * under the Kafka producer's message.max.bytes (1,000,000) and
 * CHAT_RECORD_MAX_SIZE.
 */
#define CHAT_RECORD_MESSAGE_MAX                                               \
    (6 * (CHAT_RECORD_BODY + CHAT_RECORD_CLIENT_ID) + CHAT_RECORD_MEDIA      \
     + CHAT_RECORD_SEARCH_TOKENS * (CHAT_RECORD_SEARCH_TOKEN_MAX + 3) + 512)


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
    int                 e2e;            /* 0 also when absent */

    /*
     * NULL: none; else a JSON array (in the parsed JSON) of
     * nsearch_tokens strings, 1..CHAT_RECORD_SEARCH_TOKENS, each checked
     * by chat_record_check(), in the sender's order, duplicates kept:
     * json_string_value(json_array_get(rec->search_tokens, i)) for
     * i < nsearch_tokens.  Only with e2e 1.
     */
    const json_t       *search_tokens;
    size_t              nsearch_tokens;

    /* a receipt */
    int64_t             by;
    int                 read;           /* 1 "read", 0 "delivered" */
} chat_record_t;


/*
 * A message as its sender gives it: what chat_record_check() judges.
 * Strings need not be NUL-terminated.
 */
typedef struct {
    int64_t             from;           /* 0: not known yet, see below */
    int64_t             to;             /* exactly one of to and group */
    int64_t             group;
    const char         *body;
    size_t              body_len;
    const char         *client_id;
    size_t              client_id_len;
    const char         *media;          /* NULL: none */
    size_t              media_len;
    int                 e2e;            /* -1 absent, 0 false, 1 true */
    const json_t       *search_tokens;  /* NULL: none; any JSON else */
} chat_record_msg_t;


/*
 * The one check of a message's contents.  Returns NULL when the message
 * may be acknowledged and stored, or a static message for the client's
 * error frame (code bad_request) and the dead-letter reason:
 *
 *   from      1..INT64_MAX; 0 is let through for the decoder, which does
 *             not know the sender yet (chat_record_message_new() checks
 *             again with it, the consumer requires it)
 *   to/group  exactly one of them, 1..INT64_MAX
 *             "\"to\" must be a user id", "\"group\" must be a group id",
 *             "exactly one of \"to\" and \"group\" is required"
 *   client_id 1..CHAT_RECORD_CLIENT_ID bytes of UTF-8, no NUL
 *             "\"client_id\" must be a string of 1 to 64 bytes"
 *   body      0..CHAT_RECORD_BODY bytes of UTF-8, no NUL
 *             "\"body\" must be a string of at most 16384 bytes"
 *   e2e       -1, 0 or 1   "\"e2e\" must be true or false"
 *   media     none, or a media id: 1..CHAT_RECORD_MEDIA bytes of
 *             A-Z a-z 0-9 '-' '_'   "\"media\" must be a media id"
 *   search_tokens
 *             none, or only with e2e 1
 *             "\"search_tokens\" needs \"e2e\":true"
 *             and then a JSON array of 1..CHAT_RECORD_SEARCH_TOKENS
 *             strings, each CHAT_RECORD_SEARCH_TOKEN_MIN..MAX bytes of
 *             A-Z a-z 0-9 '-' '_' (base64url, no padding)
 *             "\"search_tokens\" must be 1 to 64 strings of 16 to 64
 *             base64url characters"
 *             Duplicates are let through as sent: harmless to an index
 *             that stores the terms as a set, and refusing them would
 *             only tell the client what it already knows.
 *
 * in this order; the first failure is returned.
 */
const char *chat_record_check(const chat_record_msg_t *m);

/*
 * The record of message m sent at ts (ms), as the gateway produces it:
 * {"id":"","seq":0,"from","to"|"group","body","client_id","ts","media"?,
 * "e2e"?,"search_tokens"?}, id and seq to be filled by
 * chat_record_message_dump(); the tokens are copied.
 * Returns a new reference, or NULL with *message set when
 * chat_record_check() refuses m or ts is negative (or NULL with *message
 * NULL when out of memory).
 */
json_t *chat_record_message_new(const chat_record_msg_t *m, int64_t ts,
    const char **message);

/*
 * Sets id (CHAT_ID_LEN characters, NUL-terminated) and seq in msg and
 * writes the record's value: compact, members in order, at most
 * CHAT_RECORD_MESSAGE_MAX bytes.  Returns it (free() it), or NULL when
 * out of memory.
 */
char *chat_record_message_dump(json_t *msg, const char *id, int64_t seq);

/*
 * The value of a receipt's record, from rec's id, conv, seq, from, by,
 * read and ts: {"type":"receipt","id","conv","seq","from","by",
 * "status":"delivered"|"read","ts"}, compact, what chat_record_parse()
 * reads back.  Returns it (free() it), or NULL when out of memory.
 */
char *chat_record_receipt_dump(const chat_record_t *rec);

/*
 * The value of a chat.presence record, {"user_id","online","last_seen"}
 * (keyed by the user id), what chat_record_presence() reads back.
 * Returns it (free() it), or NULL when out of memory.
 */
char *chat_record_presence_dump(int64_t user_id, int online,
    int64_t last_seen);

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
