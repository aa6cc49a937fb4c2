
/*
 * ngx_chat: consistent hashing (ketama-style) of users over Redis servers.
 *
 * Every node (server) puts vnodes points on a 32-bit circle; a key belongs
 * to the node of the first point at or after the key's hash, wrapping to
 * the first point.  Adding a node to n nodes moves only the keys that now
 * fall before one of its points, about 1/(n+1) of them, and all of them to
 * the new node.
 *
 * Points depend only on node names (e.g. "127.0.0.1:6379"), never on their
 * position in the list, so reordering the configuration moves nothing;
 * renaming a node ("localhost:6379") does move its keys.  Anything else
 * that must find a user's server has to compute the same ring:
 *
 *     chat_hash64(data, len, seed)  MurmurHash64A, blocks read as
 *                                   little-endian 64-bit words
 *     hash32(x)                     the top 32 bits of a 64-bit hash
 *     point i of node "name"        hash32(chat_hash64(le32(i), 4,
 *                                       chat_hash64(name, CHAT_RING_SEED)))
 *                                   for i in 0 .. vnodes - 1
 *     key                           hash32(chat_hash64(key, CHAT_RING_SEED))
 *     user id                       the key is its decimal string
 *
 * Points with equal hashes are ordered by node name (bytewise, shorter
 * first on a common prefix), again so that list order does not matter.
 *
 * No nginx headers: shared with the standalone daemons.  No allocation:
 * the caller provides the points array.
 */


#ifndef _CHAT_RING_H_INCLUDED_
#define _CHAT_RING_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CHAT_RING_VNODES  160
#define CHAT_RING_SEED    0x63686174ULL      /* "chat" */


typedef struct {
    uint32_t    hash;
    uint32_t    node;
} chat_ring_point_t;


typedef struct {
    chat_ring_point_t  *points;
    size_t              npoints;
    size_t              nnodes;
} chat_ring_t;


/*
 * The number of points chat_ring_init() needs, or 0 when nnodes or vnodes
 * is 0 or the ring would be too large.
 */
size_t chat_ring_points_needed(size_t nnodes, unsigned vnodes);

/*
 * points: a caller-provided array of chat_ring_points_needed() entries,
 * which the ring keeps using.  names[i] (length name_lens[i], or strlen()
 * when name_lens is NULL) identifies node i; names must be non-empty and
 * distinct.  Returns 0, or -1 on bad arguments, leaving r untouched.
 */
int chat_ring_init(chat_ring_t *r, chat_ring_point_t *points,
    const char *const *names, const size_t *name_lens, size_t nnodes,
    unsigned vnodes);

/* Returns the index of the node that owns key; 0 for a one-node ring. */
uint32_t chat_ring_lookup(const chat_ring_t *r, const void *key, size_t len);

/* The same, for the decimal string of user_id. */
uint32_t chat_ring_lookup_u64(const chat_ring_t *r, uint64_t user_id);

/* MurmurHash64A: fast, well distributed, not cryptographic. */
uint64_t chat_hash64(const void *data, size_t len, uint64_t seed);


#endif /* _CHAT_RING_H_INCLUDED_ */
