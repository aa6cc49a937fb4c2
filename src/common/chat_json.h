
/*
 * ngx_chat: guards and helpers around jansson for request bodies.
 *
 * A body from a client is checked before jansson builds anything from
 * it: UTF-8 validity (RFC 3629), then nesting depth, which a cheap scan
 * can bound where the recursive parser could not.  Parsing then refuses
 * duplicate keys (which one would a handler see?) and, as jansson does by
 * default, "\u0000" inside strings, so every string a handler gets is a
 * proper C string.
 *
 * The getters give handlers one shape for "optional field of type T":
 * 0 found (and *out set), 1 absent, -1 present with another type (JSON
 * null counts as another type).  *out is left alone unless 0 is
 * returned.  A NULL or non-object obj gives -1.
 *
 * No nginx headers: shared with the standalone daemons.
 */


#ifndef _CHAT_JSON_H_INCLUDED_
#define _CHAT_JSON_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* chat_utf8_valid(), which callers of this file have long found here */
#include "chat_utf8.h"


/*
 * 0 when text (len bytes) nests objects and arrays at most max_depth
 * deep ("{}" is 1, "[{}]" is 2, a scalar 0); -1 when deeper, when
 * brackets do not balance or a string is not closed.  Only the count is
 * balanced: "[}" passes here and is left to the parser.  Brackets inside
 * strings, escaped quotes included, do not count.
 */
int chat_json_check_depth(const char *text, size_t len, unsigned max_depth);

/*
 * Parses a request body that must be a JSON object: UTF-8 checked, depth
 * checked, duplicate keys and "\u0000" refused.  Returns a new reference,
 * or NULL with a short message for the client in err (errlen bytes,
 * truncated to fit): "body is empty", "body is not valid UTF-8",
 * "JSON nested too deeply", "body is not valid JSON",
 * "duplicate key in JSON object", "body must be a JSON object".
 */
json_t *chat_json_parse_object(const char *text, size_t len,
    unsigned max_depth, char *err, size_t errlen);

/* the same, with the message as a static string in *err */
json_t *chat_json_load_object(const char *text, size_t len,
    unsigned max_depth, const char **err);

/* a string: *out points into obj (valid while obj lives); len may be NULL */
int chat_json_get_string(json_t *obj, const char *key, const char **out,
    size_t *len);

/* a JSON integer; 1.0 and "1" are of another type */
int chat_json_get_int(json_t *obj, const char *key, int64_t *out);

/*
 * A positive id: a JSON integer > 0, or a string accepted by
 * chat_json_parse_id().  A 0, negative, real or malformed string is -1.
 */
int chat_json_get_id(json_t *obj, const char *key, uint64_t *out);

/* true or false */
int chat_json_get_bool(json_t *obj, const char *key, int *out);

/*
 * Parses a decimal id as found in JWT "sub", URL paths and JSON strings:
 * 1..19 ASCII digits, no sign, no leading zero, 1..INT64_MAX.  Returns 0
 * and sets *out, or -1.
 */
int chat_json_parse_id(const char *s, size_t len, uint64_t *out);


#endif /* _CHAT_JSON_H_INCLUDED_ */
