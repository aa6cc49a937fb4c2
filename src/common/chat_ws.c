
/*
 * ngx_chat: WebSocket frames and handshake, see chat_ws.h.
 */


#include <string.h>
#include <openssl/sha.h>

#include "chat_base64.h"
#include "chat_utf8.h"
#include "chat_ws.h"


#define CHAT_WS_ST_HEADER   0
#define CHAT_WS_ST_PAYLOAD  1
#define CHAT_WS_ST_CONTROL  2
#define CHAT_WS_ST_CLOSED   3
#define CHAT_WS_ST_ERROR    4

#define CHAT_WS_GUID        "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define CHAT_WS_KEY_LEN     24

#define chat_ws_is_control(op)  (((op) & 0x8) != 0)
#define chat_ws_lower(c)        (((c) >= 'A' && (c) <= 'Z') ? ((c) | 32) : (c))


static long chat_ws_fail(chat_ws_parser_t *p, chat_ws_event_t *ev,
    uint16_t code, const char *text);
static long chat_ws_error(chat_ws_parser_t *p, chat_ws_event_t *ev);
static long chat_ws_header_byte(chat_ws_parser_t *p, chat_ws_event_t *ev,
    unsigned char c);
static long chat_ws_check_length(chat_ws_parser_t *p, chat_ws_event_t *ev);
static void chat_ws_next_frame(chat_ws_parser_t *p);
static void chat_ws_frame_start(chat_ws_parser_t *p);
static long chat_ws_message_end(chat_ws_parser_t *p, chat_ws_event_t *ev,
    size_t pos);
static long chat_ws_control(chat_ws_parser_t *p, chat_ws_event_t *ev,
    const unsigned char *data, size_t len, size_t pos);


void
chat_ws_parser_init(chat_ws_parser_t *p, int server, uint64_t max_message)
{
    memset(p, 0, sizeof(chat_ws_parser_t));

    p->server = server ? 1 : 0;
    p->max_message = max_message;

    chat_ws_next_frame(p);
}


long
chat_ws_parse(chat_ws_parser_t *p, unsigned char *buf, size_t len,
    chat_ws_event_t *ev)
{
    long                  rc;
    size_t                pos, n;
    uint64_t              left;
    unsigned char         fin;
    const unsigned char  *data;

    memset(ev, 0, sizeof(chat_ws_event_t));

    if (p->state == CHAT_WS_ST_ERROR) {
        return chat_ws_error(p, ev);
    }

    if (p->state == CHAT_WS_ST_CLOSED) {
        /* nothing may follow a close frame: ignore it */
        return (long) len;
    }

    if (p->pending_end) {
        p->pending_end = 0;
        return chat_ws_message_end(p, ev, 0);
    }

    pos = 0;

    while (pos < len) {

        switch (p->state) {

        case CHAT_WS_ST_HEADER:

            /* byte by byte, so that each rule fails at its first byte */
            rc = chat_ws_header_byte(p, ev, buf[pos++]);
            if (rc < 0) {
                return rc;
            }

            if (p->hdr_len < p->hdr_need) {
                break;
            }

            chat_ws_frame_start(p);

            if (p->payload_len != 0) {
                break;
            }

            if (p->state == CHAT_WS_ST_CONTROL) {
                return chat_ws_control(p, ev, p->ctl, 0, pos);
            }

            fin = p->fin;
            chat_ws_next_frame(p);

            if (fin) {
                return chat_ws_message_end(p, ev, pos);
            }

            break;

        case CHAT_WS_ST_PAYLOAD:

            left = p->payload_len - p->payload_off;
            n = len - pos;

            if (n > left) {
                n = (size_t) left;
            }

            if (p->server) {
                chat_ws_mask(buf + pos, n, p->mask, p->payload_off);
            }

            if (p->message == CHAT_WS_OP_TEXT
                && chat_utf8_step(&p->utf8, buf + pos, n) != 0)
            {
                return chat_ws_fail(p, ev, CHAT_WS_CLOSE_INVALID,
                                    "text is not UTF-8");
            }

            ev->type = CHAT_WS_DATA;
            ev->opcode = p->message;
            ev->data = buf + pos;
            ev->len = n;

            pos += n;
            p->payload_off += n;

            if (p->payload_off == p->payload_len) {
                fin = p->fin;
                chat_ws_next_frame(p);

                /* one event per call: MESSAGE_END comes with the next */
                p->pending_end = fin;
            }

            return (long) pos;

        case CHAT_WS_ST_CONTROL:

            left = p->payload_len - p->ctl_len;
            n = len - pos;

            if (n > left) {
                n = (size_t) left;
            }

            if (p->ctl_len == 0 && n == left) {
                /* all here: no copy */
                data = buf + pos;

                if (p->server) {
                    chat_ws_mask(buf + pos, n, p->mask, 0);
                }

                pos += n;

                return chat_ws_control(p, ev, data, n, pos);
            }

            memcpy(p->ctl + p->ctl_len, buf + pos, n);

            if (p->server) {
                chat_ws_mask(p->ctl + p->ctl_len, n, p->mask, p->ctl_len);
            }

            p->ctl_len = (unsigned char) (p->ctl_len + n);
            pos += n;

            if (p->ctl_len == p->payload_len) {
                return chat_ws_control(p, ev, p->ctl, p->ctl_len, pos);
            }

            break;
        }
    }

    return (long) pos;
}


static long
chat_ws_fail(chat_ws_parser_t *p, chat_ws_event_t *ev, uint16_t code,
    const char *text)
{
    p->state = CHAT_WS_ST_ERROR;
    p->error_code = code;
    p->error = text;

    return chat_ws_error(p, ev);
}


static long
chat_ws_error(chat_ws_parser_t *p, chat_ws_event_t *ev)
{
    memset(ev, 0, sizeof(chat_ws_event_t));

    ev->type = CHAT_WS_ERROR;
    ev->error_code = p->error_code;
    ev->error = p->error;

    return -(long) p->error_code;
}


static long
chat_ws_header_byte(chat_ws_parser_t *p, chat_ws_event_t *ev,
    unsigned char c)
{
    size_t    i, ext;
    unsigned  len7;
    uint64_t  n;

    p->hdr[p->hdr_len++] = c;

    if (p->hdr_len == 1) {
        if (c & 0x70) {
            return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                                "reserved bits set");
        }

        p->fin = c >> 7;
        p->opcode = c & 0x0f;

        switch (p->opcode) {

        case CHAT_WS_OP_CONT:
            if (p->message == 0) {
                return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                                    "continuation without a message");
            }

            return 0;

        case CHAT_WS_OP_TEXT:
        case CHAT_WS_OP_BINARY:
            if (p->message != 0) {
                return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                                    "new message inside a fragmented one");
            }

            return 0;

        case CHAT_WS_OP_CLOSE:
        case CHAT_WS_OP_PING:
        case CHAT_WS_OP_PONG:
            if (!p->fin) {
                return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                                    "fragmented control frame");
            }

            return 0;

        default:
            return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                                "unknown opcode");
        }
    }

    len7 = p->hdr[1] & 0x7f;
    ext = (len7 == 126) ? 2 : (len7 == 127) ? 8 : 0;

    if (p->hdr_len == 2) {
        if ((c >> 7) != p->server) {
            return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                                p->server ? "frame not masked"
                                          : "frame masked");
        }

        if (chat_ws_is_control(p->opcode) && len7 > CHAT_WS_MAX_CONTROL) {
            return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                                "control frame over 125 bytes");
        }

        p->hdr_need = (unsigned char) (2 + ext + (p->server ? 4 : 0));

        if (ext == 0) {
            p->payload_len = len7;
            return chat_ws_check_length(p, ev);
        }

        return 0;
    }

    if (p->hdr_len != 2 + ext) {
        /* inside the extended length, or the mask */
        return 0;
    }

    n = 0;

    for (i = 2; i < 2 + ext; i++) {
        n = (n << 8) | p->hdr[i];
    }

    if (ext == 8 && (n >> 63) != 0) {
        return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                            "length over 2^63");
    }

    if ((ext == 2 && n < 126) || (ext == 8 && n <= 0xffff)) {
        return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                            "length not in its shortest form");
    }

    p->payload_len = n;

    return chat_ws_check_length(p, ev);
}


static long
chat_ws_check_length(chat_ws_parser_t *p, chat_ws_event_t *ev)
{
    if (chat_ws_is_control(p->opcode)) {
        return 0;
    }

    /* message_len <= max_message always holds: no overflow here */
    if (p->payload_len > p->max_message - p->message_len) {
        return chat_ws_fail(p, ev, CHAT_WS_CLOSE_TOO_BIG,
                            "message too big");
    }

    return 0;
}


static void
chat_ws_next_frame(chat_ws_parser_t *p)
{
    p->state = CHAT_WS_ST_HEADER;
    p->hdr_len = 0;
    p->hdr_need = 2;
    p->payload_len = 0;
    p->payload_off = 0;
    p->ctl_len = 0;
}


static void
chat_ws_frame_start(chat_ws_parser_t *p)
{
    if (p->server) {
        memcpy(p->mask, p->hdr + p->hdr_need - 4, 4);
    }

    p->payload_off = 0;
    p->ctl_len = 0;

    if (chat_ws_is_control(p->opcode)) {
        p->state = CHAT_WS_ST_CONTROL;
        return;
    }

    if (p->opcode != CHAT_WS_OP_CONT) {
        p->message = p->opcode;
        p->message_len = 0;
        p->utf8 = 0;
    }

    p->message_len += p->payload_len;
    p->state = CHAT_WS_ST_PAYLOAD;
}


static long
chat_ws_message_end(chat_ws_parser_t *p, chat_ws_event_t *ev, size_t pos)
{
    int  op;

    op = p->message;

    if (op == CHAT_WS_OP_TEXT && p->utf8 != 0) {
        return chat_ws_fail(p, ev, CHAT_WS_CLOSE_INVALID,
                            "text ends inside a character");
    }

    p->message = 0;
    p->message_len = 0;
    p->utf8 = 0;

    ev->type = CHAT_WS_MESSAGE_END;
    ev->opcode = op;

    return (long) pos;
}


static long
chat_ws_control(chat_ws_parser_t *p, chat_ws_event_t *ev,
    const unsigned char *data, size_t len, size_t pos)
{
    int       op;
    unsigned  code;

    op = p->opcode;
    chat_ws_next_frame(p);

    ev->opcode = op;
    ev->data = data;
    ev->len = len;

    if (op == CHAT_WS_OP_PING) {
        ev->type = CHAT_WS_PING;
        return (long) pos;
    }

    if (op == CHAT_WS_OP_PONG) {
        ev->type = CHAT_WS_PONG;
        return (long) pos;
    }

    if (len == 0) {
        ev->close_code = CHAT_WS_CLOSE_NO_CODE;

    } else if (len == 1) {
        return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                            "close payload of 1 byte");

    } else {
        code = ((unsigned) data[0] << 8) | data[1];

        if (!chat_ws_close_code_valid(code)) {
            return chat_ws_fail(p, ev, CHAT_WS_CLOSE_PROTOCOL,
                                "invalid close code");
        }

        if (chat_utf8_valid(data + 2, len - 2) != 0) {
            return chat_ws_fail(p, ev, CHAT_WS_CLOSE_INVALID,
                                "close reason is not UTF-8");
        }

        ev->close_code = (uint16_t) code;
        ev->close_reason = (const char *) data + 2;
        ev->close_reason_len = len - 2;
    }

    ev->type = CHAT_WS_CLOSE;
    p->state = CHAT_WS_ST_CLOSED;

    return (long) pos;
}


int
chat_ws_close_code_valid(unsigned code)
{
    /*
     * RFC 6455 section 7.4 and the IANA registry: 1004 is reserved,
     * 1005, 1006 and 1015 are never sent; 1012-1014 were registered
     * later; 3000-4999 are for libraries and applications.
     */

    if (code >= 1000 && code <= 1003) {
        return 1;
    }

    if (code >= 1007 && code <= 1014) {
        return 1;
    }

    return code >= 3000 && code <= 4999;
}


size_t
chat_ws_frame_header(unsigned char *out, int opcode, int fin, uint64_t len,
    const unsigned char *mask)
{
    size_t  n, i;

    switch (opcode) {

    case CHAT_WS_OP_CONT:
    case CHAT_WS_OP_TEXT:
    case CHAT_WS_OP_BINARY:
        break;

    case CHAT_WS_OP_CLOSE:
    case CHAT_WS_OP_PING:
    case CHAT_WS_OP_PONG:
        if (!fin || len > CHAT_WS_MAX_CONTROL) {
            return 0;
        }

        break;

    default:
        return 0;
    }

    if ((len >> 63) != 0) {
        return 0;
    }

    out[0] = (unsigned char) ((fin ? 0x80 : 0) | opcode);
    out[1] = mask ? 0x80 : 0;

    if (len < 126) {
        out[1] |= (unsigned char) len;
        n = 2;

    } else if (len <= 0xffff) {
        out[1] |= 126;
        out[2] = (unsigned char) (len >> 8);
        out[3] = (unsigned char) len;
        n = 4;

    } else {
        out[1] |= 127;

        for (i = 0; i < 8; i++) {
            out[2 + i] = (unsigned char) (len >> (56 - 8 * i));
        }

        n = 10;
    }

    if (mask != NULL) {
        memcpy(out + n, mask, 4);
        n += 4;
    }

    return n;
}


void
chat_ws_mask(unsigned char *data, size_t len, const unsigned char mask[4],
    uint64_t offset)
{
    size_t         i;
    uint64_t       w, k;
    unsigned char  m[8];

    for (i = 0; i < 8; i++) {
        m[i] = mask[(offset + i) & 3];
    }

    /* a word at a time: payloads can be large; memcpy keeps it aligned */
    memcpy(&k, m, 8);

    for (i = 0; i + 8 <= len; i += 8) {
        memcpy(&w, data + i, 8);
        w ^= k;
        memcpy(data + i, &w, 8);
    }

    for ( /* void */ ; i < len; i++) {
        data[i] ^= m[i & 7];
    }
}


size_t
chat_ws_close_payload(unsigned char *out, uint16_t code, const char *reason,
    size_t len)
{
    size_t  n;

    if (code == 0) {
        return 0;
    }

    out[0] = (unsigned char) (code >> 8);
    out[1] = (unsigned char) code;

    n = (reason == NULL) ? 0 : len;

    if (n > CHAT_WS_MAX_REASON) {
        n = CHAT_WS_MAX_REASON;

        /* reason[n] is the first byte cut: not inside a sequence */
        while (n > 0 && ((unsigned char) reason[n] & 0xc0) == 0x80) {
            n--;
        }
    }

    /* the peer would fail the connection with 1007 over a bad reason */
    if (n > 0 && chat_utf8_valid((const unsigned char *) reason, n) != 0) {
        n = 0;
    }

    if (n > 0) {
        memcpy(out + 2, reason, n);
    }

    return 2 + n;
}


int
chat_ws_accept_key(const char *key, size_t len,
    char out[CHAT_WS_ACCEPT_LEN + 1])
{
    size_t         i;
    unsigned char  digest[SHA_DIGEST_LENGTH];
    char           buf[CHAT_WS_KEY_LEN + sizeof(CHAT_WS_GUID) - 1];

    if (key == NULL || len != CHAT_WS_KEY_LEN
        || key[22] != '=' || key[23] != '=')
    {
        return -1;
    }

    for (i = 0; i < 22; i++) {
        if (chat_base64_value((unsigned char) key[i]) < 0) {
            return -1;
        }
    }

    memcpy(buf, key, CHAT_WS_KEY_LEN);
    memcpy(buf + CHAT_WS_KEY_LEN, CHAT_WS_GUID, sizeof(CHAT_WS_GUID) - 1);

    if (SHA1((const unsigned char *) buf, sizeof(buf), digest) == NULL) {
        return -1;
    }

    out[chat_base64_encode(out, digest, SHA_DIGEST_LENGTH)] = '\0';

    return 0;
}


int
chat_ws_header_has_token(const char *value, size_t len, const char *token)
{
    size_t  i, start, end, tlen, k;

    if (token == NULL || value == NULL) {
        return 0;
    }

    tlen = strlen(token);
    if (tlen == 0) {
        return 0;
    }

    i = 0;

    while (i < len) {
        start = i;

        while (i < len && value[i] != ',') {
            i++;
        }

        end = i++;

        while (start < end && (value[start] == ' ' || value[start] == '\t'))
        {
            start++;
        }

        while (end > start && (value[end - 1] == ' '
                               || value[end - 1] == '\t'))
        {
            end--;
        }

        if (end - start != tlen) {
            continue;
        }

        /* ASCII case only, whatever the locale */
        for (k = 0; k < tlen; k++) {
            if (chat_ws_lower(value[start + k]) != chat_ws_lower(token[k])) {
                break;
            }
        }

        if (k == tlen) {
            return 1;
        }
    }

    return 0;
}
