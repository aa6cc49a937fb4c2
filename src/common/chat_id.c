
/*
 * ngx_chat: message ids, see chat_id.h.
 */


#include "chat_id.h"


#define CHAT_ID_MASK48  0xffffffffffffULL


static const char  chat_id_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";


static int chat_id_decode(int c);
static void chat_id_encode(uint64_t hi, uint64_t lo, char *out);


void
chat_id_gen_init(chat_id_gen_t *g, uint16_t node, uint16_t worker)
{
    g->node = node;
    g->worker = worker;
    g->last_ms = 0;
    g->counter = 0;
}


void
chat_id_next(chat_id_gen_t *g, uint64_t now_ms, char *out)
{
    if (now_ms > CHAT_ID_MS_MAX) {
        now_ms = CHAT_ID_MS_MAX;
    }

    if (now_ms > g->last_ms) {
        g->last_ms = now_ms;
        g->counter = 0;

    } else if (g->counter < CHAT_ID_COUNTER_MAX) {
        /* same millisecond, or the clock went back: keep the last time */
        g->counter++;

    } else {
        /*
         * Counter exhausted: borrow the next millisecond.  Only at the end
         * of the 48-bit time range (year 10889) would this wrap.
         */
        g->last_ms = (g->last_ms + 1) & CHAT_ID_MASK48;
        g->counter = 0;
    }

    chat_id_encode((g->last_ms << 16) | g->node,
                   ((uint64_t) g->worker << 48) | g->counter, out);
}


void
chat_id_format(const chat_id_parts_t *p, char *out)
{
    chat_id_encode(((p->ms & CHAT_ID_MASK48) << 16) | p->node,
                   ((uint64_t) p->worker << 48) | (p->counter & CHAT_ID_MASK48),
                   out);
}


int
chat_id_parse(const char *s, size_t len, chat_id_parts_t *out)
{
    size_t    i;
    int       v;
    uint64_t  hi, lo;

    if (s == NULL || len != CHAT_ID_LEN) {
        return -1;
    }

    hi = 0;
    lo = 0;

    for (i = 0; i < len; i++) {
        v = chat_id_decode((unsigned char) s[i]);

        if (v < 0) {
            return -1;
        }

        /* the bits about to be shifted out of the 128-bit value */
        if (hi >> 59) {
            return -1;
        }

        hi = (hi << 5) | (lo >> 59);
        lo = (lo << 5) | (uint64_t) v;
    }

    out->ms = hi >> 16;
    out->node = (uint16_t) (hi & 0xffff);
    out->worker = (uint16_t) (lo >> 48);
    out->counter = lo & CHAT_ID_MASK48;

    return 0;
}


uint16_t
chat_id_node_from_name(const char *name, size_t len)
{
    size_t    i;
    uint64_t  h;

    /* 64-bit FNV-1a: tiny, well known, and stable across builds */
    h = 0xcbf29ce484222325ULL;

    for (i = 0; i < len; i++) {
        h ^= (unsigned char) name[i];
        h *= 0x100000001b3ULL;
    }

    h ^= h >> 32;
    h ^= h >> 16;

    return (uint16_t) (h & 0xffff);
}


/*
 * Character to 5-bit value, or -1.  Ranges rather than a table built at
 * run time, so parsing needs no initialisation and is thread-safe.
 */
static int
chat_id_decode(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'z') {
        c -= 'a' - 'A';
    }

    if (c >= 'A' && c <= 'H') {
        return c - 'A' + 10;
    }

    if (c == 'J' || c == 'K') {
        return c - 'J' + 18;
    }

    if (c == 'M' || c == 'N') {
        return c - 'M' + 20;
    }

    if (c >= 'P' && c <= 'T') {
        return c - 'P' + 22;
    }

    if (c >= 'V' && c <= 'Z') {
        return c - 'V' + 27;
    }

    return -1;
}


static void
chat_id_encode(uint64_t hi, uint64_t lo, char *out)
{
    int  i;

    /* least significant 5 bits first, filling the string from the end */
    for (i = CHAT_ID_LEN - 1; i >= 0; i--) {
        out[i] = chat_id_alphabet[lo & 0x1f];
        lo = (lo >> 5) | (hi << 59);
        hi >>= 5;
    }

    out[CHAT_ID_LEN] = '\0';
}
