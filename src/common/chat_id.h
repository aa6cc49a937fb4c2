
/*
 * ngx_chat: message ids made locally, without coordination.
 *
 * An id is 128 bits, most significant first:
 *
 *     48 bits  unix time in milliseconds
 *     16 bits  node id     (one per chat node)
 *     16 bits  worker id   (one per generator on a node)
 *     48 bits  counter     (ids made by this generator in that millisecond)
 *
 * and is written as 26 characters of Crockford base32
 * ("0123456789ABCDEFGHJKMNPQRSTVWXYZ": no I, L, O, U), most significant
 * first, like a ULID.  26 characters hold 130 bits, so the first character
 * carries only the top 3 bits and is always '0'..'7'.  Because the
 * encoding has a fixed width and the alphabet is in ASCII order, comparing
 * two ids with strcmp()/memcmp() gives the same order as comparing the
 * 128-bit numbers, that is, time order first.
 *
 * Uniqueness rests on two rules the caller must keep:
 *   - no two live generators share a (node, worker) pair;
 *   - a generator that is re-created for the same pair (process restart)
 *     must not see a clock earlier than the last id made by its previous
 *     incarnation, since its counter restarts at 0.
 * Within one generator, ids strictly increase: when the clock stands
 * still or goes backwards the last time is kept and the counter bumped,
 * and when the 48-bit counter runs out the time is moved one millisecond
 * ahead of the clock.
 *
 * No nginx headers: shared with the standalone daemons.
 */


#ifndef _CHAT_ID_H_INCLUDED_
#define _CHAT_ID_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CHAT_ID_LEN          26

#define CHAT_ID_MS_MAX       0xffffffffffffULL
#define CHAT_ID_COUNTER_MAX  0xffffffffffffULL


typedef struct {
    uint16_t    node;
    uint16_t    worker;
    uint64_t    last_ms;
    uint64_t    counter;
} chat_id_gen_t;


typedef struct {
    uint64_t    ms;
    uint16_t    node;
    uint16_t    worker;
    uint64_t    counter;
} chat_id_parts_t;


void chat_id_gen_init(chat_id_gen_t *g, uint16_t node, uint16_t worker);

/*
 * Writes CHAT_ID_LEN characters and a NUL into out (CHAT_ID_LEN + 1 bytes).
 * now_ms is the caller's clock, so tests can drive it; values beyond
 * 48 bits are clamped.
 */
void chat_id_next(chat_id_gen_t *g, uint64_t now_ms, char *out);

/*
 * Writes the id made of the given parts, CHAT_ID_LEN characters and a NUL.
 * ms and counter are truncated to 48 bits.  Useful for range bounds:
 * parts {ms, 0, 0, 0} is the smallest id of millisecond ms.
 */
void chat_id_format(const chat_id_parts_t *p, char *out);

/*
 * Returns 0 and fills out, or -1 when s (length len) is not an id: wrong
 * length, a character outside the alphabet (lowercase is accepted), or a
 * value beyond 128 bits (first character above '7').
 */
int chat_id_parse(const char *s, size_t len, chat_id_parts_t *out);

/*
 * A stable 16-bit hash of a node name (64-bit FNV-1a folded to 16 bits),
 * for deriving a node id from configuration.  Different names may collide:
 * check the node ids of a cluster, or configure them explicitly.
 */
uint16_t chat_id_node_from_name(const char *name, size_t len);


#endif /* _CHAT_ID_H_INCLUDED_ */
