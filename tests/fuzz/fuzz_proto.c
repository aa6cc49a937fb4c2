
/*
 * libFuzzer target for src/common/chat_proto.c.
 *
 * Input: the bytes of one client text message, decoded as the module
 * does (CHAT_PROTO_DEPTH).  Every result is checked against the contract
 * in chat_proto.h: on success the fields the type has are set and within
 * their limits, the others are empty, every string is NUL-terminated,
 * valid UTF-8 and of the stated length, and the fields agree with the
 * JSON they came from; on error the code is a known one with a message
 * of its own and nothing but client_id survives.
 *
 * Whatever parsed is then written out again by jansson and decoded a
 * second time: the answer must be the same.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_json.h"
#include "chat_proto.h"
#include "chat_fuzz.h"


/* the messages of CHAT_PROTO_BAD_REQUEST before and after the parse */
static const char  *chat_fuzz_parse_errors[] = {
    "body is empty",
    "body is not valid UTF-8",
    "JSON nested too deeply",
    "body is not valid JSON",
    "duplicate key in JSON object",
    "body must be a JSON object",
    NULL
};

static const char  *chat_fuzz_field_errors[] = {
    "\"type\" is required",
    "\"type\" must be a string",
    "\"to\" is required",
    "\"to\" must be a user id",
    "\"group\" must be a group id",
    "\"to\" and \"group\" cannot both be given",
    "\"client_id\" must be a string of 1 to 64 bytes",
    "\"body\" must be a string of at most 16384 bytes",
    "\"e2e\" must be true or false",
    "\"media\" must be a media id",
    "\"search_tokens\" needs \"e2e\":true",
    "\"search_tokens\" must be 1 to 64 strings of 16 to 64 base64url "
    "characters",
    "\"id\" must be a message id",
    "\"id\" and \"ids\" cannot both be given",
    "\"ids\" must be an array of message ids",
    "\"ids\" must have 1 to 100 message ids",
    "\"ids\" has the same id twice",
    "\"status\" must be \"delivered\" or \"read\"",
    NULL
};


static int
chat_fuzz_in(const char *s, const char **list)
{
    for ( /* void */ ; *list; list++) {
        if (strcmp(s, *list) == 0) {
            return 1;
        }
    }

    return 0;
}


/* a string field: NULL with length 0, or a proper string of len bytes */
static void
chat_fuzz_string(const char *s, size_t len, json_t *json, const char *key)
{
    json_t  *v;

    if (s == NULL) {
        chat_fuzz_check(len == 0);
        return;
    }

    chat_fuzz_check(strlen(s) == len);
    chat_fuzz_check(chat_fuzz_utf8_ref((const unsigned char *) s, len) == 0);

    /* the very string of the JSON, not a copy that could go stale */
    v = json_object_get(json, key);
    chat_fuzz_check(json_is_string(v));
    chat_fuzz_check(json_string_value(v) == s);
    chat_fuzz_check(json_string_length(v) == len);
}


/* an id field: 0, or what the JSON says, 1..INT64_MAX */
static void
chat_fuzz_id(uint64_t id, json_t *json, const char *key)
{
    json_t    *v;
    uint64_t   want;

    if (id == 0) {
        return;
    }

    chat_fuzz_check(id <= (uint64_t) INT64_MAX);

    v = json_object_get(json, key);

    if (json_is_integer(v)) {
        chat_fuzz_check(json_integer_value(v) > 0);
        chat_fuzz_check((uint64_t) json_integer_value(v) == id);
        return;
    }

    chat_fuzz_check(json_is_string(v));
    want = strtoull(json_string_value(v), NULL, 10);
    chat_fuzz_check(want == id);
    chat_fuzz_check(json_string_value(v)[0] != '0');
}


static void
chat_fuzz_ok(chat_proto_msg_t *m)
{
    size_t       i, j;
    json_t      *v, *ids;
    const char  *name;

    chat_fuzz_check(json_is_object(m->json));

    name = chat_proto_type_name(m->type);
    chat_fuzz_check(name != NULL);

    v = json_object_get(m->json, "type");
    chat_fuzz_check(json_is_string(v));
    chat_fuzz_check(strcmp(json_string_value(v), name) == 0);

    chat_fuzz_string(m->client_id, m->client_id_len, m->json, "client_id");
    chat_fuzz_string(m->body, m->body_len, m->json, "body");
    chat_fuzz_string(m->media, m->media_len, m->json, "media");
    chat_fuzz_string(m->id, m->id_len, m->json, "id");
    chat_fuzz_id(m->to, m->json, "to");
    chat_fuzz_id(m->group, m->json, "group");

    switch (m->type) {

    case CHAT_PROTO_SEND:
    case CHAT_PROTO_TYPING:
        chat_fuzz_check((m->to != 0) != (m->group != 0));
        chat_fuzz_check(json_object_get(m->json, m->to ? "group" : "to")
                        == NULL);
        break;

    default:
        chat_fuzz_check(m->to == 0 && m->group == 0);
    }

    if (m->type == CHAT_PROTO_SEND) {
        chat_fuzz_check(m->client_id != NULL);
        chat_fuzz_check(m->client_id_len >= 1
                        && m->client_id_len <= CHAT_PROTO_CLIENT_ID_MAX);
        chat_fuzz_check(m->body != NULL);
        chat_fuzz_check(m->body_len <= CHAT_PROTO_BODY_MAX);
        chat_fuzz_check(m->e2e >= -1 && m->e2e <= 1);

        v = json_object_get(m->json, "e2e");
        chat_fuzz_check(m->e2e == (v == NULL ? -1 : json_is_true(v)));
        chat_fuzz_check((m->media == NULL)
                        == (json_object_get(m->json, "media") == NULL));

        /* the JSON's own array, only with e2e */
        v = json_object_get(m->json, "search_tokens");
        chat_fuzz_check(m->search_tokens == v);
        chat_fuzz_check(v == NULL
                        || (m->e2e == 1 && json_is_array(v)
                            && json_array_size(v) >= 1
                            && json_array_size(v)
                               <= CHAT_RECORD_SEARCH_TOKENS));

    } else {
        chat_fuzz_check(m->body == NULL && m->media == NULL);
        chat_fuzz_check(m->search_tokens == NULL);
        chat_fuzz_check(m->e2e == -1);
    }

    if (m->type == CHAT_PROTO_RECEIPT) {
        /* "id", or "ids": 1..100 different ids, the JSON's own strings */
        ids = json_object_get(m->json, "ids");
        chat_fuzz_check((m->id != NULL) == (ids == NULL));
        chat_fuzz_check(m->nids >= 1 && m->nids <= CHAT_PROTO_IDS_MAX);
        chat_fuzz_check(ids == NULL ? m->nids == 1 && m->ids[0] == m->id
                                    : json_array_size(ids) == m->nids);

        for (i = 0; i < m->nids; i++) {
            chat_fuzz_check(m->ids_len[i] >= 1
                            && m->ids_len[i] <= CHAT_PROTO_ID_MAX);
            chat_fuzz_check(strlen(m->ids[i]) == m->ids_len[i]);

            if (ids != NULL) {
                chat_fuzz_check(json_string_value(json_array_get(ids, i))
                                == m->ids[i]);
            }

            for (j = 0; j < i; j++) {
                chat_fuzz_check(strcmp(m->ids[i], m->ids[j]) != 0);
            }
        }

        v = json_object_get(m->json, "status");
        chat_fuzz_check(strcmp(json_string_value(v),
                               m->read ? "read" : "delivered") == 0);

    } else {
        chat_fuzz_check(m->id == NULL && m->read == 0 && m->nids == 0);
    }
}


static void
chat_fuzz_error(chat_proto_msg_t *m, const char *code, const char *message)
{
    chat_fuzz_check(code != NULL && message != NULL);

    if (strcmp(code, CHAT_PROTO_UNKNOWN_TYPE) == 0) {
        chat_fuzz_check(strcmp(message, "unknown message type") == 0);
        chat_fuzz_check(m->json != NULL);

    } else {
        chat_fuzz_check(strcmp(code, CHAT_PROTO_BAD_REQUEST) == 0);

        if (m->json == NULL) {
            chat_fuzz_check(chat_fuzz_in(message, chat_fuzz_parse_errors));

        } else {
            chat_fuzz_check(chat_fuzz_in(message, chat_fuzz_field_errors));
        }
    }

    if (m->json == NULL) {
        chat_fuzz_check(m->client_id == NULL);

    } else {
        chat_fuzz_check(json_is_object(m->json));
        chat_fuzz_string(m->client_id, m->client_id_len, m->json,
                         "client_id");
    }

    chat_fuzz_check(m->type == 0 && m->to == 0 && m->group == 0);
    chat_fuzz_check(m->body == NULL && m->body_len == 0);
    chat_fuzz_check(m->media == NULL && m->media_len == 0);
    chat_fuzz_check(m->search_tokens == NULL);
    chat_fuzz_check(m->id == NULL && m->id_len == 0 && m->nids == 0);
    chat_fuzz_check(m->e2e == -1 && m->read == 0);
}


/* the field values of two decodes, strings by content */
static int
chat_fuzz_same_string(const char *a, size_t alen, const char *b,
    size_t blen)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }

    return alen == blen && memcmp(a, b, alen) == 0;
}


static void
chat_fuzz_again(chat_proto_msg_t *m, int rc, const char *code,
    const char *message)
{
    int                rc2;
    char              *text;
    const char        *code2, *message2;
    chat_proto_msg_t   m2;

    text = json_dumps(m->json, JSON_COMPACT);
    if (text == NULL) {
        return;    /* out of memory: nothing to compare */
    }

    code2 = NULL;
    message2 = NULL;

    rc2 = chat_proto_decode(text, strlen(text), CHAT_PROTO_DEPTH, &m2,
                            &code2, &message2);

    chat_fuzz_check(rc2 == rc);

    if (rc != 0) {
        chat_fuzz_check(strcmp(code2, code) == 0);
        chat_fuzz_check(strcmp(message2, message) == 0);

    } else {
        chat_fuzz_check(code2 == NULL && message2 == NULL);
        chat_fuzz_check(m2.type == m->type);
        chat_fuzz_check(m2.to == m->to && m2.group == m->group);
        chat_fuzz_check(m2.body_len == m->body_len);
        chat_fuzz_check(m2.e2e == m->e2e && m2.read == m->read);
        chat_fuzz_check(chat_fuzz_same_string(m2.body, m2.body_len,
                                              m->body, m->body_len));
        chat_fuzz_check(chat_fuzz_same_string(m2.media, m2.media_len,
                                              m->media, m->media_len));
        chat_fuzz_check((m2.search_tokens == NULL)
                        == (m->search_tokens == NULL));
        chat_fuzz_check(m2.search_tokens == NULL
                        || json_equal(m2.search_tokens, m->search_tokens));
        chat_fuzz_check(chat_fuzz_same_string(m2.id, m2.id_len,
                                              m->id, m->id_len));
    }

    chat_fuzz_check(chat_fuzz_same_string(m2.client_id, m2.client_id_len,
                                          m->client_id, m->client_id_len));

    chat_proto_free(&m2);
    free(text);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                rc;
    const char        *code, *message;
    chat_proto_msg_t   m;

    code = NULL;
    message = NULL;

    rc = chat_proto_decode((const char *) data, size, CHAT_PROTO_DEPTH, &m,
                           &code, &message);

    if (rc == 0) {
        chat_fuzz_check(code == NULL && message == NULL);
        chat_fuzz_ok(&m);

    } else {
        chat_fuzz_check(rc == -1);
        chat_fuzz_error(&m, code, message);
    }

    if (m.json != NULL) {
        chat_fuzz_again(&m, rc, code, message);
    }

    chat_proto_free(&m);
    chat_fuzz_check(m.json == NULL && m.client_id == NULL);

    return 0;
}
