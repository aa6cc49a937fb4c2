
/*
 * ngx_chat: consistent hashing, see chat_ring.h.
 */


#include <stdlib.h>
#include <string.h>

#include "chat_ring.h"


#define CHAT_HASH64_M  0xc6a4a7935bd1e995ULL
#define CHAT_HASH64_R  47


static int chat_ring_point_cmp(const void *a, const void *b);
static int chat_ring_name_cmp(const char *a, size_t alen, const char *b,
    size_t blen);
static size_t chat_ring_name_len(const char *const *names,
    const size_t *name_lens, size_t i);
static uint32_t chat_ring_hash32(const void *data, size_t len,
    uint64_t seed);


size_t
chat_ring_points_needed(size_t nnodes, unsigned vnodes)
{
    if (nnodes == 0 || vnodes == 0) {
        return 0;
    }

    /* node indexes are stored in 32 bits */
    if (nnodes > UINT32_MAX) {
        return 0;
    }

    if (nnodes > SIZE_MAX / sizeof(chat_ring_point_t) / vnodes) {
        return 0;
    }

    return nnodes * vnodes;
}


int
chat_ring_init(chat_ring_t *r, chat_ring_point_t *points,
    const char *const *names, const size_t *name_lens, size_t nnodes,
    unsigned vnodes)
{
    size_t              i, j, k, n, len;
    uint8_t             le[4];
    uint64_t            seed;
    chat_ring_point_t  *p;
    chat_ring_point_t   tmp;

    if (r == NULL || points == NULL || names == NULL) {
        return -1;
    }

    n = chat_ring_points_needed(nnodes, vnodes);
    if (n == 0) {
        return -1;
    }

    for (i = 0; i < nnodes; i++) {
        if (names[i] == NULL) {
            return -1;
        }

        len = chat_ring_name_len(names, name_lens, i);
        if (len == 0) {
            return -1;
        }

        /* equal names would give equal points: one node would be unused */
        for (j = 0; j < i; j++) {
            if (chat_ring_name_cmp(names[i], len, names[j],
                                   chat_ring_name_len(names, name_lens, j))
                == 0)
            {
                return -1;
            }
        }
    }

    p = points;

    for (i = 0; i < nnodes; i++) {
        len = chat_ring_name_len(names, name_lens, i);
        seed = chat_hash64(names[i], len, CHAT_RING_SEED);

        for (j = 0; j < vnodes; j++) {
            /* explicit little-endian, so every platform builds one ring */
            le[0] = (uint8_t) j;
            le[1] = (uint8_t) (j >> 8);
            le[2] = (uint8_t) (j >> 16);
            le[3] = (uint8_t) (j >> 24);

            p->hash = chat_ring_hash32(le, sizeof(le), seed);
            p->node = (uint32_t) i;
            p++;
        }
    }

    qsort(points, n, sizeof(chat_ring_point_t), chat_ring_point_cmp);

    /*
     * qsort() ordered equal hashes by node index, which follows the list
     * order; reorder those (rare, short) runs by name instead.
     */
    for (i = 1; i < n; i++) {
        tmp = points[i];
        len = chat_ring_name_len(names, name_lens, tmp.node);

        for (k = i; k > 0 && points[k - 1].hash == tmp.hash; k--) {
            j = points[k - 1].node;

            if (chat_ring_name_cmp(names[j],
                                   chat_ring_name_len(names, name_lens, j),
                                   names[tmp.node], len)
                <= 0)
            {
                break;
            }

            points[k] = points[k - 1];
        }

        points[k] = tmp;
    }

    r->points = points;
    r->npoints = n;
    r->nnodes = nnodes;

    return 0;
}


uint32_t
chat_ring_lookup(const chat_ring_t *r, const void *key, size_t len)
{
    size_t    lo, hi, mid;
    uint32_t  h;

    if (r->nnodes <= 1 || r->npoints == 0) {
        return 0;
    }

    h = chat_ring_hash32(key, len, CHAT_RING_SEED);

    /* the first point with hash >= h */
    lo = 0;
    hi = r->npoints;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        if (r->points[mid].hash < h) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    if (lo == r->npoints) {
        /* past the last point: wrap around the circle */
        lo = 0;
    }

    return r->points[lo].node;
}


uint32_t
chat_ring_lookup_u64(const chat_ring_t *r, uint64_t user_id)
{
    char   buf[20], *p;

    if (r->nnodes <= 1) {
        return 0;
    }

    /* UINT64_MAX has 20 digits; written from the end */
    p = buf + sizeof(buf);

    do {
        *--p = (char) ('0' + user_id % 10);
        user_id /= 10;
    } while (user_id);

    return chat_ring_lookup(r, p, (size_t) (buf + sizeof(buf) - p));
}


uint64_t
chat_hash64(const void *data, size_t len, uint64_t seed)
{
    size_t          i, nblocks, rest;
    uint64_t        h, k;
    const uint8_t  *b;

    /*
     * MurmurHash64A (Austin Appleby, public domain), written from its
     * description: multiply-xorshift mixing of 8-byte blocks into the state,
     * then of the 1..7 tail bytes, then a final avalanche.
     */

    b = data;
    h = seed ^ ((uint64_t) len * CHAT_HASH64_M);

    nblocks = len / 8;

    for (i = 0; i < nblocks; i++, b += 8) {
        k = (uint64_t) b[0]
            | (uint64_t) b[1] << 8
            | (uint64_t) b[2] << 16
            | (uint64_t) b[3] << 24
            | (uint64_t) b[4] << 32
            | (uint64_t) b[5] << 40
            | (uint64_t) b[6] << 48
            | (uint64_t) b[7] << 56;

        k *= CHAT_HASH64_M;
        k ^= k >> CHAT_HASH64_R;
        k *= CHAT_HASH64_M;

        h ^= k;
        h *= CHAT_HASH64_M;
    }

    rest = len & 7;

    if (rest) {
        for (i = 0; i < rest; i++) {
            h ^= (uint64_t) b[i] << (8 * i);
        }

        h *= CHAT_HASH64_M;
    }

    h ^= h >> CHAT_HASH64_R;
    h *= CHAT_HASH64_M;
    h ^= h >> CHAT_HASH64_R;

    return h;
}


static int
chat_ring_point_cmp(const void *a, const void *b)
{
    const chat_ring_point_t  *pa, *pb;

    pa = a;
    pb = b;

    if (pa->hash != pb->hash) {
        return pa->hash < pb->hash ? -1 : 1;
    }

    /* qsort() is not stable: make the order total */
    if (pa->node != pb->node) {
        return pa->node < pb->node ? -1 : 1;
    }

    return 0;
}


static int
chat_ring_name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int  rc;

    rc = memcmp(a, b, alen < blen ? alen : blen);

    if (rc != 0) {
        return rc;
    }

    if (alen != blen) {
        return alen < blen ? -1 : 1;
    }

    return 0;
}


static size_t
chat_ring_name_len(const char *const *names, const size_t *name_lens,
    size_t i)
{
    return name_lens ? name_lens[i] : strlen(names[i]);
}


static uint32_t
chat_ring_hash32(const void *data, size_t len, uint64_t seed)
{
    return (uint32_t) (chat_hash64(data, len, seed) >> 32);
}
