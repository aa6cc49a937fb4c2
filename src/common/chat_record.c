
/*
 * ngx_chat: reading the records of chat.messages and chat.receipts, see
 * chat_record.h.
 */


#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "chat_json.h"
#include "chat_record.h"


#define CHAT_RECORD_DEPTH  4


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


static int
chat_record_message(json_t *v, const char *key, size_t key_len,
    chat_record_t *rec, char *err, size_t errlen)
{
    int      rc;
    json_t  *to, *group;

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

    if (chat_record_string(v, "body", 0, CHAT_RECORD_MAX_SIZE, 1,
                           &rec->body, &rec->body_len, err, errlen) != 0
        || chat_record_string(v, "client_id", 1, CHAT_RECORD_CLIENT_ID, 1,
                              &rec->client_id, &rec->client_id_len, err,
                              errlen) != 0
        || chat_record_string(v, "media", 1, CHAT_RECORD_MEDIA, 0,
                              &rec->media, &rec->media_len, err, errlen)
           != 0
        || chat_record_int(v, "ts", 0, &rec->ts, err, errlen) != 0)
    {
        return -1;
    }

    rc = chat_json_get_bool(v, "e2e", &rec->e2e);
    if (rc < 0) {
        return chat_record_fail(err, errlen, "\"e2e\" must be true or false",
                                NULL);
    }

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
