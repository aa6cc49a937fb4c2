
/*
 * ngx_chat: the frames the gateway sends to clients, see chat_frame.h.
 */


#include "chat_frame.h"


#define CHAT_FRAME_DUMP  (JSON_COMPACT|JSON_PRESERVE_ORDER)


static char *chat_frame_dump(json_t *frame);


char *
chat_frame_message(json_t *msg)
{
    json_t  *frame;

    if (!json_is_object(msg)) {
        return NULL;
    }

    frame = json_pack("{s:s}", "type", "message");

    if (frame == NULL
        || json_object_update(frame, msg) != 0
        || (json_object_get(frame, "search_tokens") != NULL
            && json_object_del(frame, "search_tokens") != 0)
        || json_object_set_new(frame, "status", json_string("sent")) != 0)
    {
        json_decref(frame);
        return NULL;
    }

    return chat_frame_dump(frame);
}


char *
chat_frame_ack(const char *client_id, const char *id, int64_t seq,
    int64_t ts)
{
    return chat_frame_dump(json_pack("{s:s, s:s, s:s, s:I, s:I}",
                                     "type", "ack", "client_id", client_id,
                                     "id", id, "seq", (json_int_t) seq,
                                     "ts", (json_int_t) ts));
}


char *
chat_frame_receipt(const char *id, int64_t by, int read, int64_t ts)
{
    return chat_frame_dump(json_pack("{s:s, s:s, s:I, s:s, s:I}",
                                     "type", "receipt", "id", id,
                                     "by", (json_int_t) by,
                                     "status", read ? "read" : "delivered",
                                     "ts", (json_int_t) ts));
}


char *
chat_frame_typing(int64_t from, int64_t to)
{
    return chat_frame_dump(json_pack("{s:s, s:I, s:I}", "type", "typing",
                                     "from", (json_int_t) from,
                                     "to", (json_int_t) to));
}


char *
chat_frame_typing_group(int64_t from, int64_t group)
{
    return chat_frame_dump(json_pack("{s:s, s:I, s:I}", "type", "typing",
                                     "from", (json_int_t) from,
                                     "group", (json_int_t) group));
}


char *
chat_frame_presence(int64_t user_id, int online, int64_t last_seen)
{
    return chat_frame_dump(json_pack("{s:s, s:I, s:b, s:o}",
                                     "type", "presence",
                                     "user_id", (json_int_t) user_id,
                                     "online", online ? 1 : 0,
                                     "last_seen", last_seen >= 0
                                         ? json_integer(last_seen)
                                         : json_null()));
}


char *
chat_frame_error(const char *code, const char *message,
    const char *client_id, const char *id, int64_t retry_after)
{
    json_t  *frame;

    frame = json_pack("{s:s, s:s, s:s}", "type", "error", "code", code,
                      "message", message);

    if (frame == NULL
        || (client_id
            && json_object_set_new(frame, "client_id",
                                   json_string(client_id)) != 0)
        || (id && json_object_set_new(frame, "id", json_string(id)) != 0)
        || (retry_after >= 0
            && json_object_set_new(frame, "retry_after",
                                   json_integer(retry_after)) != 0))
    {
        json_decref(frame);
        return NULL;
    }

    return chat_frame_dump(frame);
}


/* takes frame's reference; NULL stays NULL */
static char *
chat_frame_dump(json_t *frame)
{
    char  *text;

    if (frame == NULL) {
        return NULL;
    }

    text = json_dumps(frame, CHAT_FRAME_DUMP);
    json_decref(frame);

    return text;
}
