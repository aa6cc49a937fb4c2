
/*
 * libFuzzer target for the message record (src/common/chat_record.c):
 * what the gateway acknowledges, chat-worker persist stores.
 *
 * The first byte of the input picks what the rest is:
 *
 *   0  a client frame: decoded as the module does (chat_proto_decode);
 *      a send that decodes is encoded as src/ngx_chat_send.c does
 *      (chat_proto_record, chat_record_message_new, _dump) and must be
 *      accepted by chat_record_parse with the same fields;
 *   1  the fields of a message, raw bytes: given to chat_record_check;
 *      what it accepts must be encoded and parsed back the same way;
 *   2  a record, "key\nvalue": given to chat_record_parse; a message it
 *      accepts must pass chat_record_check, and written again by the
 *      gateway's encoder, parse to the same fields.
 *
 * Every refusal must be one of the messages chat_record.h lists.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_id.h"
#include "chat_json.h"
#include "chat_proto.h"
#include "chat_record.h"
#include "chat_fuzz.h"


#define CHAT_FUZZ_ID   "01KB3FJ6WW0010000000000001"


static const char  *chat_fuzz_check_errors[] = {
    "\"from\" must be a user id",
    "\"to\" must be a user id",
    "\"group\" must be a group id",
    "exactly one of \"to\" and \"group\" is required",
    "\"client_id\" must be a string of 1 to 64 bytes",
    "\"body\" must be a string of at most 16384 bytes",
    "\"e2e\" must be true or false",
    "\"media\" must be a media id",
    "\"search_tokens\" needs \"e2e\":true",
    "\"search_tokens\" must be 1 to 64 strings of 16 to 64 base64url "
    "characters",
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


static int
chat_fuzz_same(const char *a, size_t alen, const char *b, size_t blen)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }

    return alen == blen && memcmp(a, b, alen) == 0;
}


/* m passed chat_record_check with a sender: encode, parse, compare */
static void
chat_fuzz_stored(const chat_record_msg_t *m, int64_t ts, int64_t seq)
{
    char            err[256], key[CHAT_RECORD_CONV_LEN], *value;
    json_t         *msg, *v;
    size_t          len;
    const char     *message;
    chat_record_t   rec;

    msg = chat_record_message_new(m, ts, &message);
    if (msg == NULL) {
        chat_fuzz_check(message == NULL);   /* out of memory only */
        return;
    }

    value = chat_record_message_dump(msg, CHAT_FUZZ_ID, seq);
    json_decref(msg);

    if (value == NULL) {
        return;
    }

    len = strlen(value);
    chat_fuzz_check(len <= CHAT_RECORD_MESSAGE_MAX);

    chat_record_conv(key, m->from, m->to, m->group);

    v = chat_record_parse(key, strlen(key), value, len, &rec, err,
                          sizeof(err));
    if (v == NULL) {
        fprintf(stderr, "refused: %s\n%s\n", err, value);
    }

    chat_fuzz_check(v != NULL);
    chat_fuzz_check(rec.type == CHAT_RECORD_MESSAGE);
    chat_fuzz_check(strcmp(rec.id, CHAT_FUZZ_ID) == 0);
    chat_fuzz_check(rec.seq == seq && rec.ts == ts);
    chat_fuzz_check(rec.from == m->from && rec.to == m->to
                    && rec.group == m->group);
    chat_fuzz_check(chat_fuzz_same(rec.body, rec.body_len, m->body,
                                   m->body_len));
    chat_fuzz_check(chat_fuzz_same(rec.client_id, rec.client_id_len,
                                   m->client_id, m->client_id_len));
    chat_fuzz_check(chat_fuzz_same(rec.media, rec.media_len, m->media,
                                   m->media_len));
    chat_fuzz_check(rec.e2e == (m->e2e == 1));
    chat_fuzz_check((rec.search_tokens == NULL) == (m->search_tokens == NULL));
    chat_fuzz_check(rec.search_tokens == NULL
                    || (rec.e2e == 1
                        && json_equal(rec.search_tokens, m->search_tokens)
                        && rec.nsearch_tokens
                           == json_array_size(rec.search_tokens)));

    json_decref(v);
    free(value);
}


static void
chat_fuzz_frame(const uint8_t *data, size_t size)
{
    int                 rc;
    const char         *code, *message;
    chat_proto_msg_t    m;
    chat_record_msg_t   r;

    rc = chat_proto_decode((const char *) data, size, CHAT_PROTO_DEPTH, &m,
                           &code, &message);

    if (rc == 0 && m.type == CHAT_PROTO_SEND) {
        chat_proto_record(&m, 42, &r);
        chat_fuzz_check(chat_record_check(&r) == NULL);
        chat_fuzz_stored(&r, 1795884550708LL, 1);
    }

    chat_proto_free(&m);
}


/*
 * Fields from raw bytes: 8 bytes of ids and flags, then body, client_id
 * and media separated by 0xff (which no UTF-8 has, so each may be
 * anything else).
 */
static void
chat_fuzz_fields(const uint8_t *data, size_t size)
{
    size_t              i, n, part, start;
    const char         *message, *s[3];
    size_t              len[3];
    chat_record_msg_t   m;

    static const int64_t  ids[] = { 0, 1, 2, 1000, INT64_MAX, -1, -2,
                                    INT64_MIN };

    if (size < 8) {
        return;
    }

    memset(&m, 0, sizeof(m));
    m.from = ids[data[0] & 7];
    m.to = ids[(data[1] >> 1) & 7] * (data[1] & 1);
    m.group = ids[(data[2] >> 1) & 7] * (data[2] & 1);
    m.e2e = (int) (data[3] % 5) - 2;

    part = 0;
    start = 8;
    s[0] = s[1] = s[2] = NULL;
    len[0] = len[1] = len[2] = 0;

    for (i = 8; i <= size && part < 3; i++) {
        if (i == size || data[i] == 0xff) {
            n = i - start;
            s[part] = (const char *) data + start;
            len[part] = n;
            part++;
            start = i + 1;
        }
    }

    m.body = s[0];
    m.body_len = len[0];
    m.client_id = s[1];
    m.client_id_len = len[1];
    m.media = (data[4] & 1) ? s[2] : NULL;
    m.media_len = m.media ? len[2] : 0;

    message = chat_record_check(&m);

    if (message != NULL) {
        chat_fuzz_check(chat_fuzz_in(message, chat_fuzz_check_errors));
        return;
    }

    /* what it took is within every limit */
    chat_fuzz_check(m.from >= 0 && m.to >= 0 && m.group >= 0);
    chat_fuzz_check((m.to == 0) != (m.group == 0));
    chat_fuzz_check(m.body != NULL && m.body_len <= CHAT_RECORD_BODY);
    chat_fuzz_check(m.client_id != NULL && m.client_id_len >= 1
                    && m.client_id_len <= CHAT_RECORD_CLIENT_ID);
    chat_fuzz_check(m.media == NULL
                    || (m.media_len >= 1
                        && m.media_len <= CHAT_RECORD_MEDIA));

    if (m.from == 0) {
        /* the decoder's case: the encoder wants the sender */
        chat_fuzz_check(chat_record_message_new(&m, 1, &message) == NULL);
        chat_fuzz_check(message != NULL);
        return;
    }

    chat_fuzz_stored(&m, (int64_t) data[5] << 32 | data[6], 1 + data[7]);
}


static void
chat_fuzz_record(const uint8_t *data, size_t size)
{
    char                err[256];
    json_t             *v;
    size_t              key_len;
    const char         *key, *nl;
    chat_record_t       rec;
    chat_record_msg_t   m;

    nl = memchr(data, '\n', size);
    if (nl == NULL) {
        return;
    }

    key = (const char *) data;
    key_len = nl - key;

    err[0] = '\0';
    v = chat_record_parse(key, key_len, nl + 1, size - key_len - 1, &rec,
                          err, sizeof(err));

    if (v == NULL) {
        chat_fuzz_check(err[0] != '\0' && strlen(err) < sizeof(err));
        return;
    }

    chat_fuzz_check(key_len == strlen(rec.conv)
                    && memcmp(key, rec.conv, key_len) == 0);
    chat_fuzz_check(rec.seq >= 1 && rec.from >= 1 && rec.ts >= 0);

    if (rec.type == CHAT_RECORD_MESSAGE) {
        m.from = rec.from;
        m.to = rec.to;
        m.group = rec.group;
        m.body = rec.body;
        m.body_len = rec.body_len;
        m.client_id = rec.client_id;
        m.client_id_len = rec.client_id_len;
        m.media = rec.media;
        m.media_len = rec.media_len;
        m.e2e = rec.e2e;
        m.search_tokens = rec.search_tokens;

        chat_fuzz_check(chat_record_check(&m) == NULL);
        chat_fuzz_stored(&m, rec.ts, rec.seq);

    } else {
        chat_fuzz_check(rec.type == CHAT_RECORD_RECEIPT);
        chat_fuzz_check(rec.by >= 1);
    }

    json_decref(v);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }

    switch (data[0] % 3) {

    case 0:
        chat_fuzz_frame(data + 1, size - 1);
        break;

    case 1:
        chat_fuzz_fields(data + 1, size - 1);
        break;

    default:
        chat_fuzz_record(data + 1, size - 1);
    }

    return 0;
}
