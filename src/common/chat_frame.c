
/*
 * ngx_chat: the frames the gateway sends to clients, see chat_frame.h.
 */


#ifndef _GNU_SOURCE
#define _GNU_SOURCE                     /* memmem() */
#endif

#include <stdlib.h>
#include <string.h>

#include "chat_frame.h"
#include "chat_utf8.h"


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
        || json_object_set_new(frame, "type", json_string("message")) != 0
        || (json_object_get(frame, "search_tokens") != NULL
            && json_object_del(frame, "search_tokens") != 0)
        || json_object_set_new(frame, "status", json_string("sent")) != 0)
    {
        json_decref(frame);
        return NULL;
    }

    return chat_frame_dump(frame);
}


/*
 * The frames of fixed members are written straight, not packed and
 * dumped by jansson (a dozen allocations and a snprintf() per number,
 * for every ack and receipt): the same bytes as json_dumps() with
 * JSON_COMPACT, which tests/unit/test_chat_frame.c checks against jansson
 * itself.
 */

/* the most a string of len bytes takes as a JSON string: "\u001F"s */
#define CHAT_FRAME_STR_MAX(len)  (6 * (len) + 2)
/* -9223372036854775808 */
#define CHAT_FRAME_INT_MAX       20
#define chat_frame_lit(p, s)                                                  \
    ((char *) memcpy(p, s, sizeof(s) - 1) + sizeof(s) - 1)


static char *chat_frame_typing_of(int64_t from, int group, int64_t to);
static char *chat_frame_str(char *p, const char *s, size_t len);
static char *chat_frame_int(char *p, int64_t v);


/*
 * A record's members are "id", "seq", "from", ... as jansson dumped them
 * (chat_record_message_dump()); the frame is jansson's dump of "type",
 * those members and "status", so the record's text between its braces is
 * the frame's middle.  A member named as one of the frame's own, or one
 * the frame leaves out, needs jansson.  A "name": in a JSON text is
 * always a member's name: within a string the quote that would close
 * "name" is escaped, and after a string's closing quote comes , ] } or :.
 */

char *
chat_frame_message_record(const char *record, size_t len)
{
    char    *text, *p;
    size_t   i;
    json_t  *msg;

    static const char  *names[] = { "\"search_tokens\":", "\"type\":",
                                    "\"status\":" };

    if (record == NULL || len < 2 || record[0] != '{'
        || record[len - 1] != '}')
    {
        return NULL;
    }

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {

        if (memmem(record, len, names[i], strlen(names[i])) != NULL) {
            msg = json_loadb(record, len, JSON_REJECT_DUPLICATES, NULL);
            text = chat_frame_message(msg);
            json_decref(msg);

            return text;
        }
    }

    text = malloc(sizeof("{\"type\":\"message\",,\"status\":\"sent\"}")
                  + len);
    if (text == NULL) {
        return NULL;
    }

    p = chat_frame_lit(text, "{\"type\":\"message\",");

    if (len > 2) {
        p = (char *) memcpy(p, record + 1, len - 2) + len - 2;
        *p++ = ',';
    }

    p = chat_frame_lit(p, "\"status\":\"sent\"}");
    *p = '\0';

    return text;
}


char *
chat_frame_ack(const char *client_id, const char *id, int64_t seq,
    int64_t ts)
{
    char    *text, *p;
    size_t   clen, ilen;

    if (client_id == NULL || id == NULL) {
        return NULL;
    }

    clen = strlen(client_id);
    ilen = strlen(id);

    if (chat_utf8_valid((const unsigned char *) client_id, clen) != 0
        || chat_utf8_valid((const unsigned char *) id, ilen) != 0)
    {
        return NULL;
    }

    text = malloc(sizeof("{\"type\":\"ack\",\"client_id\":,\"id\":,"
                         "\"seq\":,\"ts\":}")
                  + CHAT_FRAME_STR_MAX(clen) + CHAT_FRAME_STR_MAX(ilen)
                  + 2 * CHAT_FRAME_INT_MAX);
    if (text == NULL) {
        return NULL;
    }

    p = chat_frame_lit(text, "{\"type\":\"ack\",\"client_id\":");
    p = chat_frame_str(p, client_id, clen);
    p = chat_frame_lit(p, ",\"id\":");
    p = chat_frame_str(p, id, ilen);
    p = chat_frame_lit(p, ",\"seq\":");
    p = chat_frame_int(p, seq);
    p = chat_frame_lit(p, ",\"ts\":");
    p = chat_frame_int(p, ts);
    *p++ = '}';
    *p = '\0';

    return text;
}


char *
chat_frame_receipt(const char *id, int64_t by, int read, int64_t ts)
{
    char    *text, *p;
    size_t   ilen;

    if (id == NULL) {
        return NULL;
    }

    ilen = strlen(id);

    if (chat_utf8_valid((const unsigned char *) id, ilen) != 0) {
        return NULL;
    }

    text = malloc(sizeof("{\"type\":\"receipt\",\"id\":,\"by\":,"
                         "\"status\":\"delivered\",\"ts\":}")
                  + CHAT_FRAME_STR_MAX(ilen) + 2 * CHAT_FRAME_INT_MAX);
    if (text == NULL) {
        return NULL;
    }

    p = chat_frame_lit(text, "{\"type\":\"receipt\",\"id\":");
    p = chat_frame_str(p, id, ilen);
    p = chat_frame_lit(p, ",\"by\":");
    p = chat_frame_int(p, by);
    p = read ? chat_frame_lit(p, ",\"status\":\"read\",\"ts\":")
             : chat_frame_lit(p, ",\"status\":\"delivered\",\"ts\":");
    p = chat_frame_int(p, ts);
    *p++ = '}';
    *p = '\0';

    return text;
}


char *
chat_frame_typing(int64_t from, int64_t to)
{
    return chat_frame_typing_of(from, 0, to);
}


char *
chat_frame_typing_group(int64_t from, int64_t group)
{
    return chat_frame_typing_of(from, 1, group);
}


char *
chat_frame_presence(int64_t user_id, int online, int64_t last_seen)
{
    char  *text, *p;

    text = malloc(sizeof("{\"type\":\"presence\",\"user_id\":,"
                         "\"online\":false,\"last_seen\":}")
                  + 2 * CHAT_FRAME_INT_MAX);
    if (text == NULL) {
        return NULL;
    }

    p = chat_frame_lit(text, "{\"type\":\"presence\",\"user_id\":");
    p = chat_frame_int(p, user_id);
    p = online ? chat_frame_lit(p, ",\"online\":true,\"last_seen\":")
               : chat_frame_lit(p, ",\"online\":false,\"last_seen\":");
    p = last_seen >= 0 ? chat_frame_int(p, last_seen)
                       : chat_frame_lit(p, "null");
    *p++ = '}';
    *p = '\0';

    return text;
}


char *
chat_frame_error(const char *code, const char *message,
    const char *client_id, const char *id, int64_t retry_after)
{
    char        *text, *p;
    size_t       i, size, len[4];
    const char  *str[4];

    if (code == NULL || message == NULL) {
        return NULL;
    }

    str[0] = code;
    str[1] = message;
    str[2] = client_id;
    str[3] = id;

    size = sizeof("{\"type\":\"error\",\"code\":,\"message\":,"
                  "\"client_id\":,\"id\":,\"retry_after\":}")
           + CHAT_FRAME_INT_MAX;

    for (i = 0; i < 4; i++) {
        len[i] = str[i] ? strlen(str[i]) : 0;

        if (str[i] != NULL
            && chat_utf8_valid((const unsigned char *) str[i], len[i]) != 0)
        {
            return NULL;
        }

        size += CHAT_FRAME_STR_MAX(len[i]);
    }

    text = malloc(size);
    if (text == NULL) {
        return NULL;
    }

    p = chat_frame_lit(text, "{\"type\":\"error\",\"code\":");
    p = chat_frame_str(p, code, len[0]);
    p = chat_frame_lit(p, ",\"message\":");
    p = chat_frame_str(p, message, len[1]);

    if (client_id) {
        p = chat_frame_lit(p, ",\"client_id\":");
        p = chat_frame_str(p, client_id, len[2]);
    }

    if (id) {
        p = chat_frame_lit(p, ",\"id\":");
        p = chat_frame_str(p, id, len[3]);
    }

    if (retry_after >= 0) {
        p = chat_frame_lit(p, ",\"retry_after\":");
        p = chat_frame_int(p, retry_after);
    }

    *p++ = '}';
    *p = '\0';

    return text;
}


/* {"type":"typing","from","to"} or, for a group, ...,"group"} */
static char *
chat_frame_typing_of(int64_t from, int group, int64_t to)
{
    char  *text, *p;

    text = malloc(sizeof("{\"type\":\"typing\",\"from\":,\"group\":}")
                  + 2 * CHAT_FRAME_INT_MAX);
    if (text == NULL) {
        return NULL;
    }

    p = chat_frame_lit(text, "{\"type\":\"typing\",\"from\":");
    p = chat_frame_int(p, from);
    p = group ? chat_frame_lit(p, ",\"group\":")
              : chat_frame_lit(p, ",\"to\":");
    p = chat_frame_int(p, to);
    *p++ = '}';
    *p = '\0';

    return text;
}


/* s as a JSON string, escaped as jansson escapes (UTF-8 checked before) */
static char *
chat_frame_str(char *p, const char *s, size_t len)
{
    size_t                i;
    unsigned char         c;
    static const char     hex[] = "0123456789ABCDEF";

    *p++ = '"';

    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];

        switch (c) {

        case '"':
        case '\\':
            *p++ = '\\';
            *p++ = (char) c;
            break;

        case '\b':
            p = chat_frame_lit(p, "\\b");
            break;

        case '\f':
            p = chat_frame_lit(p, "\\f");
            break;

        case '\n':
            p = chat_frame_lit(p, "\\n");
            break;

        case '\r':
            p = chat_frame_lit(p, "\\r");
            break;

        case '\t':
            p = chat_frame_lit(p, "\\t");
            break;

        default:
            if (c < 0x20) {
                p = chat_frame_lit(p, "\\u00");
                *p++ = hex[c >> 4];
                *p++ = hex[c & 0xf];

            } else {
                *p++ = (char) c;
            }
        }
    }

    *p++ = '"';

    return p;
}


static char *
chat_frame_int(char *p, int64_t v)
{
    char      digits[CHAT_FRAME_INT_MAX];
    size_t    n;
    uint64_t  u;

    if (v < 0) {
        *p++ = '-';
        u = (uint64_t) -(v + 1) + 1;

    } else {
        u = (uint64_t) v;
    }

    n = 0;

    do {
        digits[n++] = (char) ('0' + u % 10);
        u /= 10;
    } while (u);

    while (n) {
        *p++ = digits[--n];
    }

    return p;
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
