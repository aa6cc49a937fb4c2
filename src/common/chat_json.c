
/*
 * ngx_chat: guards and helpers around jansson, see chat_json.h.
 */


#include <string.h>

#include "chat_utf8.h"
#include "chat_json.h"


#define CHAT_JSON_TOO_DEEP    -1
#define CHAT_JSON_UNBALANCED  -2

#define CHAT_JSON_ID_DIGITS   19    /* INT64_MAX has 19 digits */


static int chat_json_depth(const char *text, size_t len, unsigned max_depth);


int
chat_json_check_depth(const char *text, size_t len, unsigned max_depth)
{
    return chat_json_depth(text, len, max_depth) == 0 ? 0 : -1;
}


/* 0, CHAT_JSON_TOO_DEEP or CHAT_JSON_UNBALANCED */
static int
chat_json_depth(const char *text, size_t len, unsigned max_depth)
{
    char      c;
    size_t    i;
    unsigned  depth;

    if (text == NULL) {
        return len == 0 ? 0 : CHAT_JSON_UNBALANCED;
    }

    depth = 0;

    for (i = 0; i < len; i++) {
        c = text[i];

        if (c == '"') {
            /* skip the string; a backslash always escapes one byte */
            for (i++; i < len && text[i] != '"'; i++) {
                if (text[i] == '\\') {
                    i++;
                }
            }

            if (i >= len) {
                return CHAT_JSON_UNBALANCED;
            }

            continue;
        }

        if (c == '{' || c == '[') {
            if (depth >= max_depth) {
                return CHAT_JSON_TOO_DEEP;
            }

            depth++;

        } else if (c == '}' || c == ']') {
            if (depth == 0) {
                return CHAT_JSON_UNBALANCED;
            }

            depth--;
        }
    }

    return depth == 0 ? 0 : CHAT_JSON_UNBALANCED;
}


json_t *
chat_json_parse_object(const char *text, size_t len, unsigned max_depth,
    char *err, size_t errlen)
{
    size_t       n;
    json_t      *root;
    const char  *msg;

    root = chat_json_load_object(text, len, max_depth, &msg);

    if (root == NULL && err != NULL && errlen > 0) {
        n = strlen(msg);

        if (n >= errlen) {
            n = errlen - 1;
        }

        memcpy(err, msg, n);
        err[n] = '\0';
    }

    return root;
}


json_t *
chat_json_load_object(const char *text, size_t len, unsigned max_depth,
    const char **err)
{
    int           rc;
    json_t       *root;
    json_error_t  error;

    if (text == NULL || len == 0) {
        *err = "body is empty";
        return NULL;
    }

    if (chat_utf8_valid((const unsigned char *) text, len) != 0) {
        *err = "body is not valid UTF-8";
        return NULL;
    }

    /* JSON has no raw NUL anywhere; say so before any C string is made */
    if (memchr(text, '\0', len) != NULL) {
        *err = "body is not valid JSON";
        return NULL;
    }

    rc = chat_json_depth(text, len, max_depth);

    if (rc == CHAT_JSON_TOO_DEEP) {
        *err = "JSON nested too deeply";
        return NULL;
    }

    if (rc != 0) {
        *err = "body is not valid JSON";
        return NULL;
    }

    /* any value, so that a valid scalar is told apart from bad JSON */
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                      &error);

    if (root == NULL) {
        *err = (json_error_code(&error) == json_error_duplicate_key)
               ? "duplicate key in JSON object" : "body is not valid JSON";
        return NULL;
    }

    if (!json_is_object(root)) {
        json_decref(root);
        *err = "body must be a JSON object";
        return NULL;
    }

    return root;
}


int
chat_json_get_string(json_t *obj, const char *key, const char **out,
    size_t *len)
{
    json_t  *v;

    if (!json_is_object(obj)) {
        return -1;
    }

    v = json_object_get(obj, key);

    if (v == NULL) {
        return 1;
    }

    if (!json_is_string(v)) {
        return -1;
    }

    *out = json_string_value(v);

    if (len != NULL) {
        *len = json_string_length(v);
    }

    return 0;
}


int
chat_json_get_int(json_t *obj, const char *key, int64_t *out)
{
    json_t  *v;

    if (!json_is_object(obj)) {
        return -1;
    }

    v = json_object_get(obj, key);

    if (v == NULL) {
        return 1;
    }

    if (!json_is_integer(v)) {
        return -1;
    }

    *out = (int64_t) json_integer_value(v);

    return 0;
}


int
chat_json_get_id(json_t *obj, const char *key, uint64_t *out)
{
    json_t     *v;
    json_int_t  n;

    if (!json_is_object(obj)) {
        return -1;
    }

    v = json_object_get(obj, key);

    if (v == NULL) {
        return 1;
    }

    if (json_is_integer(v)) {
        n = json_integer_value(v);

        if (n <= 0) {
            return -1;
        }

        *out = (uint64_t) n;
        return 0;
    }

    if (json_is_string(v)) {
        return chat_json_parse_id(json_string_value(v),
                                  json_string_length(v), out);
    }

    return -1;
}


int
chat_json_get_bool(json_t *obj, const char *key, int *out)
{
    json_t  *v;

    if (!json_is_object(obj)) {
        return -1;
    }

    v = json_object_get(obj, key);

    if (v == NULL) {
        return 1;
    }

    if (!json_is_boolean(v)) {
        return -1;
    }

    *out = json_is_true(v) ? 1 : 0;

    return 0;
}


int
chat_json_parse_id(const char *s, size_t len, uint64_t *out)
{
    size_t    i;
    uint64_t  v;

    if (s == NULL || len == 0 || len > CHAT_JSON_ID_DIGITS || s[0] == '0') {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        /* 19 digits stay below 10^19 < 2^64: no overflow */
        v = v * 10 + (uint64_t) (s[i] - '0');
    }

    if (v > (uint64_t) INT64_MAX) {
        return -1;
    }

    *out = v;

    return 0;
}
