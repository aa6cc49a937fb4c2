
/*
 * ngx_chat: the client side of the WebSocket chat protocol, see
 * chat_proto.h.
 */


#include <string.h>

#include "chat_json.h"
#include "chat_proto.h"


static int chat_proto_target(chat_proto_msg_t *m, const char **message);
static int chat_proto_send(chat_proto_msg_t *m, const char **message);
static int chat_proto_receipt(chat_proto_msg_t *m, const char **message);
static int chat_proto_receipt_ids(chat_proto_msg_t *m, json_t *ids,
    const char **message);


/* indexed by chat_proto_type_e */
static const char  *chat_proto_types[] = {
    NULL, "ping", "send", "receipt", "typing", "sync"
};

#define CHAT_PROTO_NTYPES                                                     \
    (sizeof(chat_proto_types) / sizeof(chat_proto_types[0]))


int
chat_proto_decode(const char *data, size_t len, unsigned max_depth,
    chat_proto_msg_t *m, const char **code, const char **message)
{
    int          rc;
    size_t       i, n;
    json_t      *json;
    const char  *type, *cid;

    memset(m, 0, sizeof(chat_proto_msg_t));
    m->e2e = -1;

    m->json = chat_json_load_object(data, len, max_depth, message);
    if (m->json == NULL) {
        *code = CHAT_PROTO_BAD_REQUEST;
        return -1;
    }

    /*
     * First, so that every error about this message can carry it back;
     * left NULL unless a string.
     */
    (void) chat_json_get_string(m->json, "client_id", &m->client_id,
                                &m->client_id_len);

    rc = chat_json_get_string(m->json, "type", &type, NULL);
    if (rc != 0) {
        *code = CHAT_PROTO_BAD_REQUEST;
        *message = rc > 0 ? "\"type\" is required"
                          : "\"type\" must be a string";
        return -1;
    }

    for (i = 1; i < CHAT_PROTO_NTYPES; i++) {
        if (strcmp(type, chat_proto_types[i]) == 0) {
            break;
        }
    }

    if (i == CHAT_PROTO_NTYPES) {
        *code = CHAT_PROTO_UNKNOWN_TYPE;
        *message = "unknown message type";
        return -1;
    }

    m->type = (chat_proto_type_e) i;

    switch (m->type) {

    case CHAT_PROTO_SEND:
        rc = chat_proto_send(m, message);
        break;

    case CHAT_PROTO_RECEIPT:
        rc = chat_proto_receipt(m, message);
        break;

    case CHAT_PROTO_TYPING:
        rc = chat_proto_target(m, message);
        break;

    default: /* ping, sync */
        rc = 0;
    }

    if (rc != 0) {
        /* no half-checked fields for a caller to trip over */
        json = m->json;
        cid = m->client_id;
        n = m->client_id_len;

        memset(m, 0, sizeof(chat_proto_msg_t));
        m->e2e = -1;
        m->json = json;
        m->client_id = cid;
        m->client_id_len = n;

        *code = CHAT_PROTO_BAD_REQUEST;
        return -1;
    }

    return 0;
}


/* "to" a user id or "group" a group id: send and typing */
static int
chat_proto_target(chat_proto_msg_t *m, const char **message)
{
    int  to, group;

    to = chat_json_get_id(m->json, "to", &m->to);
    group = chat_json_get_id(m->json, "group", &m->group);

    if (to <= 0 && group <= 0) {
        *message = "\"to\" and \"group\" cannot both be given";
        return -1;
    }

    if (to == -1) {
        *message = "\"to\" must be a user id";
        return -1;
    }

    if (group == -1) {
        *message = "\"group\" must be a group id";
        return -1;
    }

    if (to == 1 && group == 1) {
        *message = "\"to\" is required";
        return -1;
    }

    return 0;
}


/*
 * The types here, the contents by chat_record_check(): the persistence
 * worker checks the record with it too.
 */
static int
chat_proto_send(chat_proto_msg_t *m, const char **message)
{
    json_t             *v;
    chat_record_msg_t   r;

    if (chat_proto_target(m, message) != 0) {
        return -1;
    }

    if (m->client_id == NULL) {
        *message = "\"client_id\" must be a string of 1 to 64 bytes";
        return -1;
    }

    if (chat_json_get_string(m->json, "body", &m->body, &m->body_len) != 0) {
        *message = "\"body\" must be a string of at most 16384 bytes";
        return -1;
    }

    v = json_object_get(m->json, "e2e");
    if (v != NULL) {
        if (!json_is_boolean(v)) {
            *message = "\"e2e\" must be true or false";
            return -1;
        }

        m->e2e = json_is_true(v) ? 1 : 0;
    }

    if (chat_json_get_string(m->json, "media", &m->media, &m->media_len)
        < 0)
    {
        *message = "\"media\" must be a media id";
        return -1;
    }

    /* the blind-index terms of an e2e message, by chat_record_check() */
    m->search_tokens = json_object_get(m->json, "search_tokens");

    chat_proto_record(m, 0, &r);

    *message = chat_record_check(&r);

    return *message ? -1 : 0;
}


void
chat_proto_record(const chat_proto_msg_t *m, int64_t from,
    chat_record_msg_t *r)
{
    r->from = from;
    r->to = (int64_t) m->to;
    r->group = (int64_t) m->group;
    r->body = m->body;
    r->body_len = m->body_len;
    r->client_id = m->client_id;
    r->client_id_len = m->client_id_len;
    r->media = m->media;
    r->media_len = m->media_len;
    r->e2e = m->e2e;
    r->search_tokens = m->search_tokens;
}


static int
chat_proto_receipt(chat_proto_msg_t *m, const char **message)
{
    int          rc;
    size_t       len;
    json_t      *ids;
    const char  *status;

    ids = json_object_get(m->json, "ids");

    if (ids != NULL) {
        if (json_object_get(m->json, "id") != NULL) {
            *message = "\"id\" and \"ids\" cannot both be given";
            return -1;
        }

        rc = chat_proto_receipt_ids(m, ids, message);
        if (rc != 0) {
            return rc;
        }

    } else {
        if (chat_json_get_string(m->json, "id", &m->id, &m->id_len) != 0
            || m->id_len == 0 || m->id_len > CHAT_PROTO_ID_MAX)
        {
            *message = "\"id\" must be a message id";
            return -1;
        }

        m->ids[0] = m->id;
        m->ids_len[0] = m->id_len;
        m->nids = 1;
    }

    if (chat_json_get_string(m->json, "status", &status, &len) != 0
        || (strcmp(status, "delivered") != 0 && strcmp(status, "read") != 0))
    {
        *message = "\"status\" must be \"delivered\" or \"read\"";
        return -1;
    }

    m->read = (status[0] == 'r');

    return 0;
}


/*
 * "ids": 1 to CHAT_PROTO_IDS_MAX message ids, each once: a duplicate
 * would be answered twice, and is most likely a client's mistake.
 */
static int
chat_proto_receipt_ids(chat_proto_msg_t *m, json_t *ids,
    const char **message)
{
    size_t       i, j, n, len;
    json_t      *v;
    const char  *id;

    if (!json_is_array(ids)) {
        *message = "\"ids\" must be an array of message ids";
        return -1;
    }

    n = json_array_size(ids);

    if (n == 0 || n > CHAT_PROTO_IDS_MAX) {
        *message = "\"ids\" must have 1 to 100 message ids";
        return -1;
    }

    for (i = 0; i < n; i++) {
        v = json_array_get(ids, i);

        if (!json_is_string(v)) {
            *message = "\"ids\" must be an array of message ids";
            return -1;
        }

        id = json_string_value(v);
        len = json_string_length(v);

        if (len == 0 || len > CHAT_PROTO_ID_MAX) {
            *message = "\"ids\" must be an array of message ids";
            return -1;
        }

        for (j = 0; j < i; j++) {
            if (m->ids_len[j] == len && memcmp(m->ids[j], id, len) == 0) {
                *message = "\"ids\" has the same id twice";
                return -1;
            }
        }

        m->ids[i] = id;
        m->ids_len[i] = len;
    }

    m->nids = n;

    return 0;
}


void
chat_proto_free(chat_proto_msg_t *m)
{
    json_decref(m->json);
    memset(m, 0, sizeof(chat_proto_msg_t));
}


const char *
chat_proto_type_name(chat_proto_type_e type)
{
    if ((size_t) type >= CHAT_PROTO_NTYPES) {
        return NULL;
    }

    return chat_proto_types[type];
}
