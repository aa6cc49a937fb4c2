
/*
 * ngx_chat: WebSocket (RFC 6455) frames and handshake, both sides.
 *
 * The parser is incremental: it is fed chunks of bytes as they arrive,
 * split anywhere, and reports one event per call.  A caller drives it
 * until it says CHAT_WS_NEED_MORE, which means every byte it was given
 * has been consumed:
 *
 *     for ( ;; ) {
 *         n = chat_ws_parse(&p, buf, len, &ev);
 *         if (n < 0) {
 *             close with ev.error_code (== -n), reason ev.error
 *         }
 *         buf += n; len -= n;
 *         switch (ev.type) {
 *         case CHAT_WS_NEED_MORE:    read more, then call again
 *         case CHAT_WS_DATA:         append ev.data, ev.len to the message
 *         case CHAT_WS_MESSAGE_END:  the message is complete
 *         ...
 *         }
 *     }
 *
 * MESSAGE_END may consume no bytes (it follows the DATA event with the
 * last payload bytes), so keep calling even when len has reached 0,
 * until NEED_MORE.
 *
 * Payloads are unmasked in place in buf, and DATA events point into buf:
 * copy them before the buffer is reused.  Control frames are delivered
 * whole; their data points into buf, or into the parser itself when the
 * frame came in pieces, and is valid until the next call.  Apart from
 * that the parser keeps no pointer into caller memory between calls.
 *
 * Rules enforced (RFC 6455 section 5, no extensions negotiated), each
 * failing with CHAT_WS_ERROR and the close code to send:
 *   1002  RSV1-3 set; opcode 3-7 or 0xB-0xF; a client frame not masked
 *         (server side) or a server frame masked (client side); a control
 *         frame with FIN=0 or more than 125 bytes; a continuation with no
 *         message open, or a text/binary frame while one is; a 64-bit
 *         length with the top bit set; a length not in its shortest form;
 *         a close payload of 1 byte or with an invalid code.
 *   1007  a text message, or a close reason, that is not UTF-8 (checked
 *         across frames and chunks, failing at the first bad byte; a
 *         message ending inside a character fails at its end).
 *   1009  a message (all its fragments) over max_message bytes: failed as
 *         soon as a frame header announces it, before its payload.
 * Errors are sticky: every later call fails the same way.  After a CLOSE
 * event further bytes are consumed and ignored (no frame may follow a
 * close), so nothing else is ever reported.
 *
 * No nginx headers, no allocation: shared with the standalone tools.
 */


#ifndef _CHAT_WS_H_INCLUDED_
#define _CHAT_WS_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CHAT_WS_OP_CONT         0x0
#define CHAT_WS_OP_TEXT         0x1
#define CHAT_WS_OP_BINARY       0x2
#define CHAT_WS_OP_CLOSE        0x8
#define CHAT_WS_OP_PING         0x9
#define CHAT_WS_OP_PONG         0xa

#define CHAT_WS_MAX_HEADER      14
#define CHAT_WS_MAX_CONTROL     125
#define CHAT_WS_MAX_REASON      123

#define CHAT_WS_CLOSE_NORMAL    1000
#define CHAT_WS_CLOSE_GOING     1001
#define CHAT_WS_CLOSE_PROTOCOL  1002
#define CHAT_WS_CLOSE_NO_CODE   1005   /* reported, never sent */
#define CHAT_WS_CLOSE_INVALID   1007
#define CHAT_WS_CLOSE_POLICY    1008
#define CHAT_WS_CLOSE_TOO_BIG   1009
#define CHAT_WS_CLOSE_INTERNAL  1011

/* the 28 characters of Sec-WebSocket-Accept and a NUL */
#define CHAT_WS_ACCEPT_LEN      28


/* negative returns of chat_ws_parse(): minus the close code to send */
typedef enum {
    CHAT_WS_RC_PROTOCOL = -CHAT_WS_CLOSE_PROTOCOL,
    CHAT_WS_RC_INVALID = -CHAT_WS_CLOSE_INVALID,
    CHAT_WS_RC_TOO_BIG = -CHAT_WS_CLOSE_TOO_BIG
} chat_ws_rc_e;


typedef enum {
    CHAT_WS_NEED_MORE = 0,
    CHAT_WS_DATA,
    CHAT_WS_MESSAGE_END,
    CHAT_WS_PING,
    CHAT_WS_PONG,
    CHAT_WS_CLOSE,
    CHAT_WS_ERROR
} chat_ws_event_e;


typedef struct {
    chat_ws_event_e       type;

    /*
     * DATA, MESSAGE_END: the message's opcode, CHAT_WS_OP_TEXT or
     * CHAT_WS_OP_BINARY; PING, PONG, CLOSE: the frame's opcode.
     */
    int                   opcode;

    /*
     * DATA: the next unmasked payload bytes of the message, in buf (len is
     * never 0); MESSAGE_END: len 0.  PING, PONG, CLOSE: the whole payload
     * (to echo a ping, or a close code, back).
     */
    const unsigned char  *data;
    size_t                len;

    /* CLOSE: the code, CHAT_WS_CLOSE_NO_CODE for an empty payload */
    uint16_t              close_code;
    const char           *close_reason;       /* in data; valid UTF-8 */
    size_t                close_reason_len;

    /* ERROR: 1002, 1007 or 1009, and a short text (a static string) */
    uint16_t              error_code;
    const char           *error;
} chat_ws_event_t;


typedef struct {
    uint64_t              max_message;
    uint64_t              message_len;   /* announced so far, all frames */
    uint64_t              payload_len;   /* of the current frame */
    uint64_t              payload_off;
    uint32_t              utf8;          /* chat_utf8_step() state */
    uint16_t              error_code;
    const char           *error;
    unsigned char         server;
    unsigned char         state;
    unsigned char         hdr_len;
    unsigned char         hdr_need;
    unsigned char         fin;
    unsigned char         opcode;        /* of the current frame */
    unsigned char         message;       /* opcode of the open message */
    unsigned char         pending_end;
    unsigned char         ctl_len;
    unsigned char         mask[4];
    unsigned char         hdr[CHAT_WS_MAX_HEADER];
    unsigned char         ctl[CHAT_WS_MAX_CONTROL];
} chat_ws_parser_t;


/*
 * server: 1 on the server side (frames must be masked), 0 on the client
 * side (frames must not be).  max_message: the most bytes one message
 * may have after reassembly (UINT64_MAX for no limit).
 */
void chat_ws_parser_init(chat_ws_parser_t *p, int server,
    uint64_t max_message);

/*
 * Consumes bytes from buf (len may be 0) and returns how many, >= 0, with
 * *ev filled; ev->type is CHAT_WS_NEED_MORE when all len bytes were
 * consumed without anything to report.  On a violation returns a
 * chat_ws_rc_e and ev->type is CHAT_WS_ERROR.
 */
long chat_ws_parse(chat_ws_parser_t *p, unsigned char *buf, size_t len,
    chat_ws_event_t *ev);

/*
 * Writes the header of a frame with a payload of len bytes into out (at
 * most CHAT_WS_MAX_HEADER bytes) and returns its length.  mask: NULL for
 * server frames, 4 bytes for client frames (the payload must then be
 * masked with chat_ws_mask()).  Returns 0, writing nothing, for what the
 * parser would refuse: an unknown opcode, len >= 2^63, a control frame
 * with fin 0 or over 125 bytes.
 */
size_t chat_ws_frame_header(unsigned char *out, int opcode, int fin,
    uint64_t len, const unsigned char *mask);

/*
 * XORs data with the mask, data[0] being byte offset of the payload;
 * applying it twice restores the data.
 */
void chat_ws_mask(unsigned char *data, size_t len,
    const unsigned char mask[4], uint64_t offset);

/*
 * Writes a close payload into out (room for 125 bytes): the code, then
 * the reason, cut to 123 bytes without splitting a UTF-8 sequence (a
 * reason that is not UTF-8 is left out).  Returns its length; code 0
 * gives the empty payload (0).
 */
size_t chat_ws_close_payload(unsigned char *out, uint16_t code,
    const char *reason, size_t len);

/* 1 when a peer may send code in a close frame */
int chat_ws_close_code_valid(unsigned code);

/*
 * Sec-WebSocket-Accept for a Sec-WebSocket-Key of len bytes: out gets the
 * 28 characters and a NUL.  Returns 0, or -1 when the key is not the
 * base64 of 16 bytes (24 characters of the base64 alphabet, the last two
 * "=="); bits below the 16 bytes are not checked, as decoders do not.
 */
int chat_ws_accept_key(const char *key, size_t len,
    char out[CHAT_WS_ACCEPT_LEN + 1]);

/*
 * 1 when a comma-separated header value (len bytes) has an element equal
 * to token, ignoring ASCII case and spaces and tabs around elements, as
 * "Upgrade" in "Connection: keep-alive, Upgrade"; 0 otherwise.
 */
int chat_ws_header_has_token(const char *value, size_t len,
    const char *token);


#endif /* _CHAT_WS_H_INCLUDED_ */
