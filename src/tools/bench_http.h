
/*
 * chat-push-sink: the parsers of the benchmark's push receiver.
 *
 *   - the head of an HTTP/1.x request (method, path, Content-Length,
 *     keep-alive), with the errors a server answers: 400 for a malformed
 *     head, 411 for a body without a Content-Length (chunked), 413 for a
 *     body or head over the limits;
 *   - the fields of a push notification's JSON body that the sink
 *     measures: token, message_id, ts and count.
 *
 * No allocation, no nginx headers.
 */


#ifndef _BENCH_HTTP_H_INCLUDED_
#define _BENCH_HTTP_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define BENCH_REQ_HEAD_MAX   8192
#define BENCH_REQ_BODY_MAX   (64 * 1024)

#define BENCH_REQ_AGAIN      0
#define BENCH_REQ_BAD        (-400)
#define BENCH_REQ_NO_LENGTH  (-411)
#define BENCH_REQ_TOO_LARGE  (-413)

#define BENCH_REQ_GET        1
#define BENCH_REQ_POST       2
#define BENCH_REQ_OTHER      3


typedef struct {
    int          method;        /* BENCH_REQ_GET... */
    const char  *path;          /* the request target, in the buffer */
    size_t       path_len;
    uint64_t     content_length;
    int          keep_alive;    /* HTTP/1.1 unless "Connection: close";
                                 * HTTP/1.0 with "Connection: keep-alive" */
} bench_req_t;


typedef struct {
    const char  *token;         /* in the body, escapes left as they are */
    size_t       token_len;
    const char  *message_id;
    size_t       message_id_len;
    uint64_t     ts;            /* ms since the epoch */
    uint64_t     count;
} bench_note_t;


/*
 * Parses the head of an HTTP/1.0 or 1.1 request in buf (len bytes so
 * far).  Returns BENCH_REQ_AGAIN while the head is incomplete, its length
 * (through the empty line) once it is, or BENCH_REQ_BAD (malformed: a
 * bad request line, a header without a colon, two Content-Lengths or one
 * that is not a number, bytes below 0x20 other than tab),
 * BENCH_REQ_NO_LENGTH (Transfer-Encoding on a request: the sink takes
 * Content-Length bodies only) or BENCH_REQ_TOO_LARGE (head over
 * BENCH_REQ_HEAD_MAX, body over BENCH_REQ_BODY_MAX).  Header names are
 * matched without regard to case.
 */
long bench_req_head(const char *buf, size_t len, bench_req_t *r);

/*
 * The fields of a notification body (a JSON object): 0 with *n set, or
 * -1 when the body is not an object, or token, message_id (non-empty
 * strings), ts or count (integers, count >= 1) are missing or of
 * another type.
 */
int bench_note_parse(const char *body, size_t len, bench_note_t *n);


#endif /* _BENCH_HTTP_H_INCLUDED_ */
