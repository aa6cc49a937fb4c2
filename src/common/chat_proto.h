
/*
 * ngx_chat: the client side of the WebSocket chat protocol, decoded.
 *
 * chat_proto_decode() takes the bytes of one text message from a client
 * (CONTRACT.md section 3: one JSON object with a "type") and either fills
 * a chat_proto_msg_t whose fields are all checked, or says why not with
 * an error code and message for the client's error frame.  The checks
 * and texts are those of docs/PROTOCOL.md:
 *
 *   any type   the text is a JSON object (chat_json_load_object(): UTF-8,
 *              depth, duplicate keys), "type" is a string the protocol
 *              has
 *   send       "to" a user id or "group" a group id, not both;
 *              "client_id" and "body" strings, "e2e" true or false and
 *              "media" a string, if given, "search_tokens" any JSON
 *              (judged whole by chat_record_check()); then the contents by
 *              chat_record_check() (chat_record.h), which the consumer
 *              of chat.messages applies too: "client_id" 1 to
 *              CHAT_PROTO_CLIENT_ID_MAX bytes, "body" at most
 *              CHAT_PROTO_BODY_MAX bytes, "media" a media id,
 *              "search_tokens" only with "e2e":true, 1 to 64 strings of
 *              16 to 64 base64url characters
 *   receipt    "id" a string of 1 to CHAT_PROTO_ID_MAX bytes, or "ids"
 *              an array of 1 to CHAT_PROTO_IDS_MAX such strings, all
 *              different (not both); "status" "delivered" or "read"
 *   typing     "to" or "group", not both, as for send
 *   ping, sync nothing more
 *
 * Other keys are ignored.  What a message means for this user (does "to"
 * exist, may a group be written to) is for the caller to decide.
 *
 * Every string is jansson's: NUL-terminated, valid UTF-8, without NUL
 * inside (so strlen() gives the stated length), and lives as long as
 * m->json.
 *
 * No nginx headers: shared with the standalone daemons.
 */


#ifndef _CHAT_PROTO_H_INCLUDED_
#define _CHAT_PROTO_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "chat_record.h"


#define CHAT_PROTO_DEPTH          8        /* the module's JSON nesting */
#define CHAT_PROTO_CLIENT_ID_MAX  CHAT_RECORD_CLIENT_ID     /* bytes */
#define CHAT_PROTO_BODY_MAX       CHAT_RECORD_BODY          /* bytes */
#define CHAT_PROTO_ID_MAX         64       /* bytes, a message id */
#define CHAT_PROTO_IDS_MAX        100      /* ids in one receipt */

/* the codes chat_proto_decode() gives */
#define CHAT_PROTO_BAD_REQUEST    "bad_request"
#define CHAT_PROTO_UNKNOWN_TYPE   "unknown_type"


typedef enum {
    CHAT_PROTO_PING = 1,
    CHAT_PROTO_SEND,
    CHAT_PROTO_RECEIPT,
    CHAT_PROTO_TYPING,
    CHAT_PROTO_SYNC
} chat_proto_type_e;


/*
 * A field that the type does not have is 0 or NULL (e2e: -1), whatever
 * the input held, except client_id.
 */
typedef struct {
    chat_proto_type_e   type;

    /* send, typing: exactly one of them is set, ids are 1..INT64_MAX */
    uint64_t            to;
    uint64_t            group;

    /*
     * Any type: the input's "client_id" when it is a string, so that an
     * error frame can carry it back.  Checked to be 1..64 bytes for send
     * only; for other types it is whatever string the client sent.
     */
    const char         *client_id;
    size_t              client_id_len;

    /* send */
    const char         *body;
    size_t              body_len;
    const char         *media;             /* NULL when absent */
    size_t              media_len;
    int                 e2e;               /* -1 absent, 0 false, 1 true */
    const json_t       *search_tokens;     /* NULL when absent; checked */

    /*
     * receipt: the ids it is about, nids of them, in the input's order;
     * "id" is also in id (NULL when "ids" was given)
     */
    const char         *id;
    size_t              id_len;
    size_t              nids;
    const char         *ids[CHAT_PROTO_IDS_MAX];
    size_t              ids_len[CHAT_PROTO_IDS_MAX];
    unsigned            read:1;            /* "read", else "delivered" */

    json_t             *json;              /* owns the strings above */
} chat_proto_msg_t;


/*
 * Decodes data (len bytes, need not be NUL-terminated) with objects and
 * arrays nested at most max_depth deep (the module uses
 * CHAT_PROTO_DEPTH).  Returns 0 with *m filled, or -1 with *code (one of
 * CHAT_PROTO_BAD_REQUEST, CHAT_PROTO_UNKNOWN_TYPE) and *message set to
 * static strings (left alone on success); on error *m is zeroed (e2e -1)
 * but for client_id and json.  Either way, call chat_proto_free(m) when
 * done with it.
 */
int chat_proto_decode(const char *data, size_t len, unsigned max_depth,
    chat_proto_msg_t *m, const char **code, const char **message);

/*
 * The message of a decoded send from user from, for chat_record_check()
 * and chat_record_message_new(); the strings stay m's.
 */
void chat_proto_record(const chat_proto_msg_t *m, int64_t from,
    chat_record_msg_t *r);

/* drops m->json and zeroes *m; safe on a zeroed or freed m */
void chat_proto_free(chat_proto_msg_t *m);

/* "ping", "send", ...; NULL for a value not in chat_proto_type_e */
const char *chat_proto_type_name(chat_proto_type_e type);


#endif /* _CHAT_PROTO_H_INCLUDED_ */
