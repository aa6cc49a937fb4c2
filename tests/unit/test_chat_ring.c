
/*
 * Unit tests for src/common/chat_ring.c.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chat_test.h"
#include "chat_ring.h"


#define CHAT_TEST_KEYS    100000
#define CHAT_TEST_MAX     8


typedef struct {
    chat_ring_t         ring;
    chat_ring_point_t   points[CHAT_TEST_MAX * CHAT_RING_VNODES];
    const char         *names[CHAT_TEST_MAX];
    size_t              lens[CHAT_TEST_MAX];
} chat_test_ring_t;


static const char  *chat_test_nodes[] = {
    "127.0.0.1:6379",
    "127.0.0.1:6380",
    "127.0.0.1:6381",
    "127.0.0.1:6382",
};

/* two names with a point on the same hash, found by a search */
static const char  *chat_test_clash[] = {
    "redis-707:6379",
    "redis-219:6379",
};

#define CHAT_TEST_CLASH_HASH  0x32ff4f39


static void
chat_test_ring_make(chat_test_ring_t *t, const char *const *names, size_t n)
{
    size_t  i;

    assert_true(n <= CHAT_TEST_MAX);

    for (i = 0; i < n; i++) {
        t->names[i] = names[i];
        t->lens[i] = strlen(names[i]);
    }

    assert_int_equal(chat_ring_points_needed(n, CHAT_RING_VNODES),
                     n * CHAT_RING_VNODES);
    assert_int_equal(chat_ring_init(&t->ring, t->points, t->names, t->lens,
                                    n, CHAT_RING_VNODES),
                     0);
}


/* the name of the node that owns user id */
static const char *
chat_test_owner(chat_test_ring_t *t, uint64_t id)
{
    uint32_t  node;

    node = chat_ring_lookup_u64(&t->ring, id);
    assert_true(node < t->ring.nnodes);

    return t->names[node];
}


static void
chat_test_bad_args(void **state)
{
    chat_ring_t         r;
    chat_ring_point_t   points[4 * 2];
    const char         *names[4] = { "a:1", "b:1", "c:1", "d:1" };
    size_t              lens[4] = { 3, 3, 3, 3 };

    (void) state;

    assert_int_equal(chat_ring_points_needed(0, CHAT_RING_VNODES), 0);
    assert_int_equal(chat_ring_points_needed(3, 0), 0);
    assert_int_equal(chat_ring_points_needed(3, 2), 6);
    assert_int_equal(chat_ring_points_needed(SIZE_MAX / 2, 3), 0);
    assert_int_equal(chat_ring_points_needed(SIZE_MAX, 1), 0);
    assert_int_equal(chat_ring_points_needed(UINT32_MAX, UINT_MAX), 0);

    /* r must be untouched by a failed init */
    memset(&r, 0x5a, sizeof(r));

    assert_int_equal(chat_ring_init(NULL, points, names, lens, 4, 2), -1);
    assert_int_equal(chat_ring_init(&r, NULL, names, lens, 4, 2), -1);
    assert_int_equal(chat_ring_init(&r, points, NULL, lens, 4, 2), -1);
    assert_int_equal(chat_ring_init(&r, points, names, lens, 0, 2), -1);
    assert_int_equal(chat_ring_init(&r, points, names, lens, 4, 0), -1);

    /* a missing, an empty and a repeated name */
    names[2] = NULL;
    assert_int_equal(chat_ring_init(&r, points, names, lens, 4, 2), -1);
    names[2] = "c:1";

    lens[1] = 0;
    assert_int_equal(chat_ring_init(&r, points, names, lens, 4, 2), -1);
    lens[1] = 3;

    names[3] = "a:1";
    assert_int_equal(chat_ring_init(&r, points, names, lens, 4, 2), -1);
    assert_int_equal(chat_ring_init(&r, points, names, NULL, 4, 2), -1);

    /* equal as a prefix but not as a name: fine */
    names[3] = "a:10";
    lens[3] = 4;

    assert_int_equal(r.npoints, (size_t) 0x5a5a5a5a5a5a5a5aULL);

    assert_int_equal(chat_ring_init(&r, points, names, lens, 4, 2), 0);
    assert_ptr_equal(r.points, points);
    assert_int_equal(r.npoints, 8);
    assert_int_equal(r.nnodes, 4);

    /* without lengths, names are C strings */
    assert_int_equal(chat_ring_init(&r, points, names, NULL, 4, 2), 0);
}


static void
chat_test_one_node(void **state)
{
    uint64_t          id;
    chat_test_ring_t  t;

    (void) state;

    chat_test_ring_make(&t, chat_test_nodes, 1);

    for (id = 0; id < 10000; id++) {
        assert_int_equal(chat_ring_lookup_u64(&t.ring, id), 0);
        assert_int_equal(chat_ring_lookup(&t.ring, &id, sizeof(id)), 0);
    }

    assert_int_equal(chat_ring_lookup_u64(&t.ring, UINT64_MAX), 0);
    assert_int_equal(chat_ring_lookup(&t.ring, "", 0), 0);
}


static void
chat_test_points(void **state)
{
    size_t            i, n, count[4];
    chat_test_ring_t  t;

    (void) state;

    chat_test_ring_make(&t, chat_test_nodes, 4);

    assert_ptr_equal(t.ring.points, t.points);
    assert_int_equal(t.ring.nnodes, 4);
    assert_int_equal(t.ring.npoints, 4 * CHAT_RING_VNODES);

    memset(count, 0, sizeof(count));
    n = t.ring.npoints;

    for (i = 0; i < n; i++) {
        assert_true(t.points[i].node < 4);
        count[t.points[i].node]++;

        if (i > 0) {
            assert_true(t.points[i - 1].hash <= t.points[i].hash);
        }
    }

    for (i = 0; i < 4; i++) {
        assert_int_equal(count[i], CHAT_RING_VNODES);
    }

    /* spread over the whole circle, not bunched at one end */
    assert_true(t.points[0].hash < 0x04000000);
    assert_true(t.points[n - 1].hash > 0xfc000000);
}


static void
chat_test_lookup_scan(void **state)
{
    size_t            i, j, wrapped;
    uint8_t           key[12];
    uint32_t          h, want;
    chat_test_ring_t  t;

    (void) state;

    /* binary search against a linear scan of the documented ring */
    chat_test_ring_make(&t, chat_test_nodes, 3);
    chat_test_rng_state = 11;
    wrapped = 0;

    for (i = 0; i < 200000; i++) {
        for (j = 0; j < sizeof(key); j++) {
            key[j] = (uint8_t) chat_test_rand();
        }

        h = (uint32_t) (chat_hash64(key, i % sizeof(key), CHAT_RING_SEED)
                        >> 32);
        want = t.points[0].node;

        for (j = 0; j < t.ring.npoints; j++) {
            if (t.points[j].hash >= h) {
                want = t.points[j].node;
                break;
            }
        }

        if (j == t.ring.npoints) {
            wrapped++;
        }

        assert_int_equal(chat_ring_lookup(&t.ring, key, i % sizeof(key)),
                         want);
    }

    /* the wrap-around path was taken */
    assert_true(wrapped > 0);
}


static void
chat_test_balance(void **state)
{
    uint64_t          id;
    size_t            i, count[3];
    chat_test_ring_t  t;

    (void) state;

    chat_test_ring_make(&t, chat_test_nodes, 3);
    memset(count, 0, sizeof(count));

    for (id = 1; id <= CHAT_TEST_KEYS; id++) {
        count[chat_ring_lookup_u64(&t.ring, id)]++;
    }

    for (i = 0; i < 3; i++) {
        print_message("node %zu: %zu of %d users\n", i, count[i],
                      CHAT_TEST_KEYS);
        assert_in_range(count[i], CHAT_TEST_KEYS * 25 / 100,
                        CHAT_TEST_KEYS * 42 / 100);
    }
}


static void
chat_test_order_independent(void **state)
{
    size_t             p, i;
    uint64_t           id;
    const char        *perm[3];
    chat_test_ring_t   a, b, c, d;
    static const int   perms[6][3] = {
        { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
        { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 },
    };

    (void) state;

    chat_test_ring_make(&a, chat_test_nodes, 3);

    for (p = 1; p < 6; p++) {
        for (i = 0; i < 3; i++) {
            perm[i] = chat_test_nodes[perms[p][i]];
        }

        chat_test_ring_make(&b, perm, 3);

        for (i = 0; i < a.ring.npoints; i++) {
            assert_int_equal(a.points[i].hash, b.points[i].hash);
            assert_string_equal(a.names[a.points[i].node],
                                b.names[b.points[i].node]);
        }

        for (id = 0; id < CHAT_TEST_KEYS; id++) {
            assert_ptr_equal(chat_test_owner(&a, id), chat_test_owner(&b, id));
        }
    }

    /*
     * Two names with a point on the same hash: the name that sorts first
     * must own that point whatever the list order.
     */
    perm[0] = chat_test_clash[1];
    perm[1] = chat_test_clash[0];

    chat_test_ring_make(&c, chat_test_clash, 2);
    chat_test_ring_make(&d, perm, 2);

    for (i = 0; i < c.ring.npoints; i++) {
        if (c.points[i].hash == CHAT_TEST_CLASH_HASH) {
            break;
        }
    }

    assert_true(i + 1 < c.ring.npoints);
    assert_int_equal(c.points[i + 1].hash, CHAT_TEST_CLASH_HASH);
    assert_string_equal(c.names[c.points[i].node], "redis-219:6379");
    assert_string_equal(c.names[c.points[i + 1].node], "redis-707:6379");

    for (i = 0; i < c.ring.npoints; i++) {
        assert_int_equal(c.points[i].hash, d.points[i].hash);
        assert_string_equal(c.names[c.points[i].node],
                            d.names[d.points[i].node]);
    }
}


static void
chat_test_add_node(void **state)
{
    size_t            moved;
    uint64_t          id;
    const char       *before, *after, *names[4];
    chat_test_ring_t  a, b;

    (void) state;

    chat_test_ring_make(&a, chat_test_nodes, 3);

    /* the new node first, so that node indexes shift as well */
    names[0] = chat_test_nodes[3];
    names[1] = chat_test_nodes[0];
    names[2] = chat_test_nodes[1];
    names[3] = chat_test_nodes[2];
    chat_test_ring_make(&b, names, 4);

    moved = 0;

    for (id = 1; id <= CHAT_TEST_KEYS; id++) {
        before = chat_test_owner(&a, id);
        after = chat_test_owner(&b, id);

        if (before != after) {
            assert_string_equal(after, chat_test_nodes[3]);
            moved++;
        }
    }

    print_message("moved %zu of %d users\n", moved, CHAT_TEST_KEYS);
    assert_in_range(moved, CHAT_TEST_KEYS * 15 / 100,
                    CHAT_TEST_KEYS * 35 / 100);
}


static void
chat_test_lookup_u64(void **state)
{
    size_t            i;
    char              buf[32];
    uint64_t          id;
    chat_test_ring_t  t;
    static const struct {
        uint64_t     id;
        const char  *node;
    } pinned[] = {
        { 0, "127.0.0.1:6379" },
        { 1, "127.0.0.1:6380" },
        { 2, "127.0.0.1:6380" },
        { 3, "127.0.0.1:6381" },
        { 4, "127.0.0.1:6379" },
        { 42, "127.0.0.1:6381" },
        { 1000000007, "127.0.0.1:6380" },
        { UINT64_MAX, "127.0.0.1:6379" },
    };

    (void) state;

    chat_test_ring_make(&t, chat_test_nodes, 3);
    chat_test_rng_state = 12;

    /* the decimal string, without padding, whatever the magnitude */
    for (i = 0; i < 100000; i++) {
        id = chat_test_rand() >> (i % 64);
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long) id);

        assert_int_equal(chat_ring_lookup_u64(&t.ring, id),
                         chat_ring_lookup(&t.ring, buf, strlen(buf)));
    }

    /*
     * Pinned owners: a change to the hash, the seed or the point layout
     * would move every user to another Redis server.
     */
    for (i = 0; i < sizeof(pinned) / sizeof(pinned[0]); i++) {
        assert_string_equal(chat_test_owner(&t, pinned[i].id),
                            pinned[i].node);
    }
}


static void
chat_test_hash64_pinned(void **state)
{
    (void) state;

    /* published MurmurHash64A vectors, seed 0xc6a4a7935bd1e995 */
    assert_int_equal(chat_hash64("", 0, 0xc6a4a7935bd1e995ULL),
                     0x1ab11ea5a7b2c56eULL);
    assert_int_equal(chat_hash64("a", 1, 0xc6a4a7935bd1e995ULL),
                     0x4292cee227b9150aULL);
    assert_int_equal(chat_hash64("hello", 5, 0xc6a4a7935bd1e995ULL),
                     0x5ba5b8a59803e699ULL);
    assert_int_equal(chat_hash64("hello\0world", 11, 0xc6a4a7935bd1e995ULL),
                     0xdcd0bc9f75315849ULL);

    /* tail lengths 0, 7, 1 and 3 over one and two blocks */
    assert_int_equal(chat_hash64("", 0, 0), 0);
    assert_int_equal(chat_hash64("abcdefg", 7, 0), 0x241aa52b0a62005dULL);
    assert_int_equal(chat_hash64("abcdefgh", 8, 0), 0xafdb0257ff41aa98ULL);
    assert_int_equal(chat_hash64("abcdefghi", 9, 0), 0xc9b9d84356146ac2ULL);
    assert_int_equal(chat_hash64("hello world", 11, 0),
                     0xd3ba2368a832afceULL);
    assert_int_equal(chat_hash64("0123456789abcdef", 16, 0),
                     0x93a92d1a91a24bc7ULL);

    /* the ring's seed */
    assert_int_equal(chat_hash64("", 0, CHAT_RING_SEED),
                     0x767a3f2ba827a070ULL);
    assert_int_equal(chat_hash64("a", 1, CHAT_RING_SEED),
                     0x54525d337388359dULL);
    assert_int_equal(chat_hash64("The quick brown fox jumps over the lazy dog",
                                 43, CHAT_RING_SEED),
                     0x1dff2dca199278d0ULL);
}


static void
chat_test_hash64_avalanche(void **state)
{
    size_t    i, j, bit, len, samples, changed, min, flips[64];
    uint8_t   in[24];
    uint64_t  h, d;

    (void) state;

    /*
     * Flipping one input bit should flip each output bit with probability
     * 1/2: about 32 bits per flip, and no output bit stuck.
     */
    chat_test_rng_state = 13;
    samples = 0;
    changed = 0;
    min = 64;
    memset(flips, 0, sizeof(flips));

    for (i = 0; i < 3000; i++) {
        len = 1 + i % sizeof(in);

        for (j = 0; j < len; j++) {
            in[j] = (uint8_t) chat_test_rand();
        }

        h = chat_hash64(in, len, 0);

        for (bit = 0; bit < len * 8; bit++) {
            in[bit / 8] ^= (uint8_t) (1u << (bit % 8));
            d = h ^ chat_hash64(in, len, 0);
            in[bit / 8] ^= (uint8_t) (1u << (bit % 8));

            samples++;
            changed += (size_t) __builtin_popcountll(d);

            if ((size_t) __builtin_popcountll(d) < min) {
                min = (size_t) __builtin_popcountll(d);
            }

            for (j = 0; j < 64; j++) {
                flips[j] += (d >> j) & 1;
            }
        }
    }

    print_message("%zu flips, %.3f output bits changed on average, min %zu\n",
                  samples, (double) changed / (double) samples, min);

    assert_in_range(changed, samples * 30, samples * 34);
    assert_true(min >= 6);

    for (j = 0; j < 64; j++) {
        assert_in_range(flips[j], samples * 45 / 100, samples * 55 / 100);
    }

    /* the seed matters too */
    assert_int_not_equal(chat_hash64(in, 8, 0), chat_hash64(in, 8, 1));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(chat_test_bad_args),
        cmocka_unit_test(chat_test_one_node),
        cmocka_unit_test(chat_test_points),
        cmocka_unit_test(chat_test_lookup_scan),
        cmocka_unit_test(chat_test_balance),
        cmocka_unit_test(chat_test_order_independent),
        cmocka_unit_test(chat_test_add_node),
        cmocka_unit_test(chat_test_lookup_u64),
        cmocka_unit_test(chat_test_hash64_pinned),
        cmocka_unit_test(chat_test_hash64_avalanche),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
