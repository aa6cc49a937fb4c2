
/*
 * ngx_chat: reading the records of chat.messages and chat.receipts, see
 * chat_record.h.
 */


#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chat_utf8.h"
#include "chat_json.h"
#include "chat_record.h"


#define CHAT_RECORD_DEPTH  4


static int chat_record_check_text(const char *s, size_t len, size_t min,
    size_t max);
static int chat_record_check_tokens(const json_t *tokens);
static int chat_record_message(json_t *v, const char *key, size_t key_len,
    chat_record_t *rec, char *err, size_t errlen);
static int chat_record_receipt(json_t *v, const char *key, size_t key_len,
    chat_record_t *rec, char *err, size_t errlen);
static json_t *chat_record_load(const char *value, size_t value_len,
    char *err, size_t errlen);
static int chat_record_int(json_t *v, const char *name, int64_t min,
    int64_t *out, char *err, size_t errlen);
static int chat_record_id(json_t *v, chat_record_t *rec, char *err,
    size_t errlen);
static int chat_record_string(json_t *v, const char *name, size_t min,
    size_t max, int required, const char **out, size_t *len, char *err,
    size_t errlen);
static int chat_record_key(const char *key, size_t key_len,
    const char *conv, char *err, size_t errlen);
static int chat_record_fail(char *err, size_t errlen, const char *fmt,
    const char *name);


json_t *
chat_record_parse(const char *key, size_t key_len, const char *value,
    size_t value_len, chat_record_t *rec, char *err, size_t errlen)
{
    int          rc;
    json_t      *v;
    const char  *type;

    memset(rec, 0, sizeof(chat_record_t));

    v = chat_record_load(value, value_len, err, errlen);
    if (v == NULL) {
        return NULL;
    }

    rc = chat_json_get_string(v, "type", &type, NULL);

    if (rc == 1 || (rc == 0 && strcmp(type, "message") == 0)) {
        rc = chat_record_message(v, key, key_len, rec, err, errlen);

    } else if (rc == 0 && strcmp(type, "receipt") == 0) {
        rc = chat_record_receipt(v, key, key_len, rec, err, errlen);

    } else {
        rc = chat_record_fail(err, errlen, "unknown record type", NULL);
    }

    if (rc != 0) {
        json_decref(v);
        return NULL;
    }

    return v;
}


const char *
chat_record_check(const chat_record_msg_t *m)
{
    if (m->from < 0) {
        return "\"from\" must be a user id";
    }

    if (m->to < 0) {
        return "\"to\" must be a user id";
    }

    if (m->group < 0) {
        return "\"group\" must be a group id";
    }

    if ((m->to == 0) == (m->group == 0)) {
        return "exactly one of \"to\" and \"group\" is required";
    }

    if (chat_record_check_text(m->client_id, m->client_id_len, 1,
                               CHAT_RECORD_CLIENT_ID)
        != 0)
    {
        return "\"client_id\" must be a string of 1 to 64 bytes";
    }

    if (chat_record_check_text(m->body, m->body_len, 0, CHAT_RECORD_BODY)
        != 0)
    {
        return "\"body\" must be a string of at most 16384 bytes";
    }

    if (m->e2e < -1 || m->e2e > 1) {
        return "\"e2e\" must be true or false";
    }

    if (m->media != NULL && !chat_media_id_valid(m->media, m->media_len)) {
        return "\"media\" must be a media id";
    }

    if (m->search_tokens != NULL) {
        if (m->e2e != 1) {
            return "\"search_tokens\" needs \"e2e\":true";
        }

        if (chat_record_check_tokens(m->search_tokens) != 0) {
            return "\"search_tokens\" must be 1 to 64 strings of 16 to 64 "
                   "base64url characters";
        }
    }

    return NULL;
}


/* an array of 1..64 strings of 16..64 base64url characters, no padding */

static int
chat_record_check_tokens(const json_t *tokens)
{
    unsigned     c;
    size_t       i, j, n, len;
    const char  *s;
    json_t      *v;

    if (!json_is_array(tokens)) {
        return -1;
    }

    n = json_array_size(tokens);

    if (n == 0 || n > CHAT_RECORD_SEARCH_TOKENS) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        v = json_array_get(tokens, i);

        if (!json_is_string(v)) {
            return -1;
        }

        s = json_string_value(v);
        len = json_string_length(v);

        if (len < CHAT_RECORD_SEARCH_TOKEN_MIN
            || len > CHAT_RECORD_SEARCH_TOKEN_MAX)
        {
            return -1;
        }

        for (j = 0; j < len; j++) {
            c = (unsigned char) s[j];

            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
                  || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            {
                return -1;
            }
        }
    }

    return 0;
}


/* min..max bytes of UTF-8 without NUL: what PostgreSQL's text takes */

static int
chat_record_check_text(const char *s, size_t len, size_t min, size_t max)
{
    if (s == NULL || len < min || len > max) {
        return -1;
    }

    if (memchr(s, '\0', len) != NULL) {
        return -1;
    }

    return chat_utf8_valid((const unsigned char *) s, len);
}


json_t *
chat_record_message_new(const chat_record_msg_t *m, int64_t ts,
    const char **message)
{
    json_t  *msg, *tokens;

    *message = (m->from == 0) ? "\"from\" must be a user id"
                              : chat_record_check(m);

    if (*message == NULL && ts < 0) {
        *message = "\"ts\" must be an integer of 0 or more";
    }

    if (*message != NULL) {
        return NULL;
    }

    /* the members in the order of docs/PROTOCOL.md; id and seq come last */
    msg = json_pack("{s:s, s:I, s:I, s:I, s:s%, s:s%, s:I}",
                    "id", "", "seq", (json_int_t) 0,
                    "from", (json_int_t) m->from,
                    m->to ? "to" : "group",
                    (json_int_t) (m->to ? m->to : m->group),
                    "body", m->body, m->body_len,
                    "client_id", m->client_id, m->client_id_len,
                    "ts", (json_int_t) ts);
    if (msg == NULL) {
        return NULL;
    }

    if ((m->media != NULL
         && json_object_set_new(msg, "media",
                                json_stringn(m->media, m->media_len))
            != 0)
        || (m->e2e >= 0
            && json_object_set_new(msg, "e2e", json_boolean(m->e2e)) != 0))
    {
        json_decref(msg);
        return NULL;
    }

    /* after "e2e"; a copy: m's JSON may go before the record does */
    if (m->search_tokens != NULL) {
        tokens = json_deep_copy(m->search_tokens);

        if (tokens == NULL
            || json_object_set_new(msg, "search_tokens", tokens) != 0)
        {
            json_decref(msg);
            return NULL;
        }
    }

    return msg;
}


char *
chat_record_message_dump(json_t *msg, const char *id, int64_t seq)
{
    if (json_object_set_new(msg, "id", json_string(id)) != 0
        || json_object_set_new(msg, "seq", json_integer(seq)) != 0)
    {
        return NULL;
    }

    return json_dumps(msg, JSON_COMPACT|JSON_PRESERVE_ORDER);
}


char *
chat_record_receipt_dump(const chat_record_t *rec)
{
    char    *text;
    json_t  *v;

    v = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:I}",
                  "type", "receipt", "id", rec->id, "conv", rec->conv,
                  "seq", (json_int_t) rec->seq,
                  "from", (json_int_t) rec->from,
                  "by", (json_int_t) rec->by,
                  "status", rec->read ? "read" : "delivered",
                  "ts", (json_int_t) rec->ts);
    if (v == NULL) {
        return NULL;
    }

    text = json_dumps(v, JSON_COMPACT|JSON_PRESERVE_ORDER);
    json_decref(v);

    return text;
}


char *
chat_record_presence_dump(int64_t user_id, int online, int64_t last_seen)
{
    char    *text;
    json_t  *v;

    v = json_pack("{s:I, s:b, s:I}", "user_id", (json_int_t) user_id,
                  "online", online ? 1 : 0,
                  "last_seen", (json_int_t) last_seen);
    if (v == NULL) {
        return NULL;
    }

    text = json_dumps(v, JSON_COMPACT|JSON_PRESERVE_ORDER);
    json_decref(v);

    return text;
}


static int
chat_record_message(json_t *v, const char *key, size_t key_len,
    chat_record_t *rec, char *err, size_t errlen)
{
    int                 rc;
    json_t             *to, *group, *tokens;
    const char         *message;
    chat_record_msg_t   m;

    rec->type = CHAT_RECORD_MESSAGE;

    if (chat_record_id(v, rec, err, errlen) != 0
        || chat_record_int(v, "seq", 1, &rec->seq, err, errlen) != 0
        || chat_record_int(v, "from", 1, &rec->from, err, errlen) != 0)
    {
        return -1;
    }

    to = json_object_get(v, "to");
    group = json_object_get(v, "group");

    if ((to == NULL) == (group == NULL)) {
        return chat_record_fail(err, errlen, "exactly one of \"to\" and "
                                "\"group\" is required", NULL);
    }

    if (to) {
        if (chat_record_int(v, "to", 1, &rec->to, err, errlen) != 0) {
            return -1;
        }

    } else if (chat_record_int(v, "group", 1, &rec->group, err, errlen)
               != 0)
    {
        return -1;
    }

    /* types here, contents by chat_record_check(), as the gateway did */
    if (chat_record_string(v, "body", 0, SIZE_MAX, 1, &rec->body,
                           &rec->body_len, err, errlen) != 0
        || chat_record_string(v, "client_id", 0, SIZE_MAX, 1,
                              &rec->client_id, &rec->client_id_len, err,
                              errlen) != 0
        || chat_record_string(v, "media", 0, SIZE_MAX, 0, &rec->media,
                              &rec->media_len, err, errlen) != 0
        || chat_record_int(v, "ts", 0, &rec->ts, err, errlen) != 0)
    {
        return -1;
    }

    rc = chat_json_get_bool(v, "e2e", &rec->e2e);
    if (rc < 0) {
        return chat_record_fail(err, errlen, "\"e2e\" must be true or false",
                                NULL);
    }

    m.from = rec->from;
    m.to = rec->to;
    m.group = rec->group;
    m.body = rec->body;
    m.body_len = rec->body_len;
    m.client_id = rec->client_id;
    m.client_id_len = rec->client_id_len;
    m.media = rec->media;
    m.media_len = rec->media_len;
    m.e2e = (rc == 0) ? rec->e2e : -1;

    /* any JSON: chat_record_check() judges it */
    tokens = json_object_get(v, "search_tokens");
    m.search_tokens = tokens;

    message = chat_record_check(&m);
    if (message != NULL) {
        return chat_record_fail(err, errlen, "%s", message);
    }

    rec->search_tokens = tokens;
    rec->nsearch_tokens = tokens ? json_array_size(tokens) : 0;

    chat_record_conv(rec->conv, rec->from, rec->to, rec->group);

    return chat_record_key(key, key_len, rec->conv, err, errlen);
}


static int
chat_record_receipt(json_t *v, const char *key, size_t key_len,
    chat_record_t *rec, char *err, size_t errlen)
{
    int64_t      a, b;
    size_t       len;
    const char  *conv, *status;
    char         canon[CHAT_RECORD_CONV_LEN], tail;

    rec->type = CHAT_RECORD_RECEIPT;

    if (chat_record_id(v, rec, err, errlen) != 0
        || chat_record_string(v, "conv", 3, CHAT_RECORD_CONV_LEN - 1, 1,
                              &conv, &len, err, errlen) != 0
        || chat_record_int(v, "seq", 1, &rec->seq, err, errlen) != 0
        || chat_record_int(v, "from", 1, &rec->from, err, errlen) != 0
        || chat_record_int(v, "by", 1, &rec->by, err, errlen) != 0
        || chat_record_string(v, "status", 4, 9, 1, &status, NULL, err,
                              errlen) != 0
        || chat_record_int(v, "ts", 0, &rec->ts, err, errlen) != 0)
    {
        return -1;
    }

    if (strcmp(status, "read") == 0) {
        rec->read = 1;

    } else if (strcmp(status, "delivered") != 0) {
        return chat_record_fail(err, errlen, "\"status\" must be delivered "
                                "or read", NULL);
    }

    /* the canonical form only: written back, it must read the same */
    a = 0;
    b = 0;

    if (conv[0] == 'd'
        && sscanf(conv, "d:%" SCNd64 ":%" SCNd64 "%c", &a, &b, &tail) == 2
        && a > 0 && b >= a)
    {
        chat_record_conv(canon, a, b, 0);

        /* one of the two sent it, the other (or the same) read it */
        if (!((rec->from == a && rec->by == b)
              || (rec->from == b && rec->by == a)))
        {
            return chat_record_fail(err, errlen, "\"from\" and \"by\" are "
                                    "not the two users of \"conv\"", NULL);
        }

    } else if (conv[0] == 'g'
               && sscanf(conv, "g:%" SCNd64 "%c", &a, &tail) == 1
               && a > 0)
    {
        chat_record_conv(canon, 0, 0, a);

    } else {
        canon[0] = '\0';
    }

    if (strcmp(canon, conv) != 0) {
        return chat_record_fail(err, errlen, "\"conv\" is not a "
                                "conversation id", NULL);
    }

    memcpy(rec->conv, conv, len + 1);

    return chat_record_key(key, key_len, rec->conv, err, errlen);
}


void
chat_record_conv(char *out, int64_t a, int64_t b, int64_t g)
{
    if (g > 0) {
        snprintf(out, CHAT_RECORD_CONV_LEN, "g:%" PRId64, g);
        return;
    }

    snprintf(out, CHAT_RECORD_CONV_LEN, "d:%" PRId64 ":%" PRId64,
             a < b ? a : b, a < b ? b : a);
}


int
chat_record_presence(const char *key, size_t key_len, const char *value,
    size_t value_len, int64_t *user_id, int *online, int64_t *last_seen,
    char *err, size_t errlen)
{
    int        rc;
    json_t    *v;
    uint64_t   uid;

    v = chat_record_load(value, value_len, err, errlen);
    if (v == NULL) {
        return -1;
    }

    rc = chat_record_int(v, "user_id", 1, user_id, err, errlen);

    if (rc == 0) {
        rc = chat_record_int(v, "last_seen", 1, last_seen, err, errlen);
    }

    if (rc == 0 && *last_seen > CHAT_RECORD_MAX_SEEN) {
        rc = chat_record_fail(err, errlen, "\"%s\" is out of range",
                              "last_seen");
    }

    if (rc == 0 && chat_json_get_bool(v, "online", online) != 0) {
        rc = chat_record_fail(err, errlen, "\"%s\" must be true or false",
                              "online");
    }

    json_decref(v);

    if (rc != 0) {
        return -1;
    }

    if (key == NULL) {
        return chat_record_fail(err, errlen, "no key", NULL);
    }

    if (chat_json_parse_id(key, key_len, &uid) != 0
        || uid != (uint64_t) *user_id)
    {
        return chat_record_fail(err, errlen, "key is not the user of the "
                                "record", NULL);
    }

    return 0;
}


/* the value, a JSON object of CHAT_RECORD_MAX_SIZE bytes at most */

static json_t *
chat_record_load(const char *value, size_t value_len, char *err,
    size_t errlen)
{
    json_t  *v;

    if (value == NULL || value_len == 0) {
        chat_record_fail(err, errlen, "no value", NULL);
        return NULL;
    }

    if (value_len > CHAT_RECORD_MAX_SIZE) {
        chat_record_fail(err, errlen, "value over 1 MiB", NULL);
        return NULL;
    }

    v = chat_json_parse_object(value, value_len, CHAT_RECORD_DEPTH, err,
                               errlen);

    /* the parser speaks of a request "body": "body is ..." */
    if (v == NULL && strncmp(err, "body ", 5) == 0
        && strlen(err) + 2 < errlen)
    {
        memmove(err + 6, err + 5, strlen(err + 5) + 1);
        memcpy(err, "value ", 6);
    }

    return v;
}


/* a JSON integer >= min (1.0, "1" and null are of another type) */

static int
chat_record_int(json_t *v, const char *name, int64_t min, int64_t *out,
    char *err, size_t errlen)
{
    int  rc;

    rc = chat_json_get_int(v, name, out);

    if (rc == 1) {
        return chat_record_fail(err, errlen, "\"%s\" is required", name);
    }

    if (rc != 0 || *out < min) {
        return chat_record_fail(err, errlen,
                                min ? "\"%s\" must be an integer above 0"
                                    : "\"%s\" must be an integer of 0 or "
                                      "more", name);
    }

    return 0;
}


/* "id": 26 characters of chat_id, upper case, as chat_id_format writes */

static int
chat_record_id(json_t *v, chat_record_t *rec, char *err, size_t errlen)
{
    size_t           len;
    const char      *id;
    chat_id_parts_t  parts;

    if (chat_record_string(v, "id", CHAT_ID_LEN, CHAT_ID_LEN, 1, &id, &len,
                           err, errlen) != 0)
    {
        return -1;
    }

    if (chat_id_parse(id, len, &parts) != 0) {
        return chat_record_fail(err, errlen, "\"id\" is not a message id",
                                NULL);
    }

    chat_id_format(&parts, rec->id);

    if (memcmp(rec->id, id, CHAT_ID_LEN) != 0) {
        return chat_record_fail(err, errlen, "\"id\" is not a message id",
                                NULL);
    }

    return 0;
}


static int
chat_record_string(json_t *v, const char *name, size_t min, size_t max,
    int required, const char **out, size_t *len, char *err, size_t errlen)
{
    int      rc;
    size_t   n;

    rc = chat_json_get_string(v, name, out, &n);

    if (rc == 1) {
        if (!required) {
            *out = NULL;
            return 0;
        }

        return chat_record_fail(err, errlen, "\"%s\" is required", name);
    }

    if (rc != 0) {
        return chat_record_fail(err, errlen, "\"%s\" must be a string",
                                name);
    }

    if (n < min || n > max) {
        return chat_record_fail(err, errlen, "\"%s\" has a bad length",
                                name);
    }

    if (len) {
        *len = n;
    }

    return 0;
}


static int
chat_record_key(const char *key, size_t key_len, const char *conv,
    char *err, size_t errlen)
{
    if (key == NULL) {
        return chat_record_fail(err, errlen, "no key", NULL);
    }

    if (key_len != strlen(conv) || memcmp(key, conv, key_len) != 0) {
        return chat_record_fail(err, errlen, "key is not the conversation "
                                "of the record", NULL);
    }

    return 0;
}


static int
chat_record_fail(char *err, size_t errlen, const char *fmt,
    const char *name)
{
    if (errlen) {
        snprintf(err, errlen, fmt, name);
    }

    return -1;
}
