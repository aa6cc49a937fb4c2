
/*
 * chat-bench: the small parsers and encoders of the load generator.
 *
 *   - a scanner that finds a key of a flat JSON object without building
 *     anything (the frames it reads are the server's, a few hundred
 *     bytes, thousands a second);
 *   - the stamp every benchmark message carries in its body (and, for
 *     the chat target, in its client_id): run, sender, sequence number
 *     and the intended send time on CLOCK_MONOTONIC;
 *   - the head of the server's answer to the WebSocket handshake;
 *   - full-jitter exponential backoff.
 *
 * No allocation, no nginx headers.
 */


#ifndef _BENCH_PROTO_H_INCLUDED_
#define _BENCH_PROTO_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define BENCH_JSON_NONE     0
#define BENCH_JSON_STRING   1      /* val: the text between the quotes */
#define BENCH_JSON_SCALAR   2      /* number, true, false, null */
#define BENCH_JSON_NESTED   3      /* object or array, brackets included */

/* the longest stamp: "b" + 10 + "." + 10 + "." + 20 + "." + 20 digits */
#define BENCH_STAMP_MAX     64

#define BENCH_HTTP_HEAD_MAX 8192


typedef struct {
    uint32_t  run;
    uint32_t  sender;
    uint64_t  seq;
    uint64_t  t;            /* intended send time, ns, CLOCK_MONOTONIC */
} bench_stamp_t;


typedef struct {
    int          status;
    int          upgrade;       /* "Upgrade: websocket" present */
    const char  *accept;        /* Sec-WebSocket-Accept value, or NULL */
    size_t       accept_len;
} bench_http_head_t;


/*
 * Looks for key among the members of the JSON object in s (len bytes).
 * Returns BENCH_JSON_NONE when the key is absent, a BENCH_JSON_* type
 * with *val and *vlen set when present (a string's escapes are left as
 * they are), or -1 when s is not an object the scanner can walk (not
 * an object, an unterminated string, unbalanced brackets).  Nested
 * members are skipped, never searched.
 */
int bench_json_field(const char *s, size_t len, const char *key,
    const char **val, size_t *vlen);

/* a JSON number that is an integer, in s (len bytes): 0 and *out, or -1 */
int bench_parse_u64(const char *s, size_t len, uint64_t *out);

/*
 * Writes the stamp, then (when body_len is larger) "." and 'x' up to
 * body_len bytes in all, into out (room for cap bytes, no NUL written).
 * Returns the length, or 0 when cap is too small.
 */
size_t bench_stamp_write(char *out, size_t cap, const bench_stamp_t *st,
    size_t body_len);

/*
 * Parses a stamp at the start of s (len bytes), followed by nothing or
 * by '.'.  0 on success, -1 when s holds no stamp.
 */
int bench_stamp_parse(const char *s, size_t len, bench_stamp_t *st);

/*
 * Parses the head of an HTTP response in buf (len bytes so far).
 * Returns 0 while the head is incomplete, its length (through the empty
 * line) once it is, -1 when it is malformed or longer than
 * BENCH_HTTP_HEAD_MAX.  Header names are matched without regard to case.
 */
long bench_http_head(const char *buf, size_t len, bench_http_head_t *h);

/*
 * Full-jitter backoff: a delay drawn uniformly (from rnd) in
 * [0, min(cap, base * 2^attempt)].
 */
uint64_t bench_backoff(uint64_t base, uint64_t cap, unsigned attempt,
    uint64_t rnd);


#endif /* _BENCH_PROTO_H_INCLUDED_ */
