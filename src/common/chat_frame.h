
/*
 * ngx_chat: the server side of the WebSocket chat protocol, encoded: the
 * frames the gateway sends to clients (docs/PROTOCOL.md, CONTRACT.md
 * section 3), where chat_proto.h decodes the ones clients send.
 *
 * Each function returns the frame's text, compact JSON with its members
 * in the order shown, NUL-terminated, to be free()d; or NULL when out of
 * memory.  Strings must be UTF-8 without NUL (a string that is not, or a
 * NULL where one is required, gives NULL too).  The message frame is
 * jansson's dump, or the record's members spliced into the frame's; the
 * others are written straight; all are the same bytes as jansson's
 * JSON_COMPACT dump of the same members.
 *
 * No nginx headers: shared with the standalone daemons and tools.
 */


#ifndef _CHAT_FRAME_H_INCLUDED_
#define _CHAT_FRAME_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <jansson.h>


/*
 * {"type":"message",<the members of msg, in its order>,"status":"sent"}:
 * msg is a message's record as chat_record_message_new() builds it (id
 * and seq set) or as the history has it.  But for "search_tokens": the
 * sender's blind-index terms are for the search index only, never for
 * the other members (who could match them to words they read); and
 * "type" and "status" are always the frame's own.
 */
char *chat_frame_message(json_t *msg);

/*
 * The same frame from the record's text as chat_record_message_dump()
 * wrote it (compact JSON, an object), len bytes: its members spliced
 * between the frame's, with no parse and no allocation but the frame's.
 * A record with a "search_tokens", "type" or "status" member goes through
 * jansson's parse and chat_frame_message() instead.  NULL for a record
 * that is not an object.
 */
char *chat_frame_message_record(const char *record, size_t len);

/* {"type":"ack","client_id","id","seq","ts"} */
char *chat_frame_ack(const char *client_id, const char *id, int64_t seq,
    int64_t ts);

/* {"type":"receipt","id","by","status":"read"|"delivered","ts"} */
char *chat_frame_receipt(const char *id, int64_t by, int read, int64_t ts);

/* {"type":"typing","from","to"} */
char *chat_frame_typing(int64_t from, int64_t to);

/* {"type":"typing","from","group"} */
char *chat_frame_typing_group(int64_t from, int64_t group);

/* {"type":"presence","user_id","online","last_seen"}: null when < 0 */
char *chat_frame_presence(int64_t user_id, int online, int64_t last_seen);

/*
 * {"type":"error","code","message","client_id"?,"id"?,"retry_after"?}:
 * client_id and id when not NULL, retry_after (ms) when not negative.
 */
char *chat_frame_error(const char *code, const char *message,
    const char *client_id, const char *id, int64_t retry_after);


#endif /* _CHAT_FRAME_H_INCLUDED_ */
