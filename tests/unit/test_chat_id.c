
/*
 * Unit tests for src/common/chat_id.c.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chat_test.h"
#include "chat_id.h"


#define CHAT_TEST_ALPHABET  "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
#define CHAT_TEST_T0        1700000000000ULL   /* 2023-11-14, in ms */


typedef char  chat_test_id_t[CHAT_ID_LEN + 1];


/* Crockford's excluded letters in both cases, punctuation, non-ASCII */
static const char  chat_test_bad_chars[] = "ILOUilou-_ .*+/:=\x80\xff";

static void
chat_test_parse_ok(const char *id, chat_id_parts_t *p)
{
    assert_int_equal(chat_id_parse(id, strlen(id), p), 0);
}


static int
chat_test_parts_cmp(const chat_id_parts_t *a, const chat_id_parts_t *b)
{
    if (a->ms != b->ms) {
        return a->ms < b->ms ? -1 : 1;
    }

    if (a->node != b->node) {
        return a->node < b->node ? -1 : 1;
    }

    if (a->worker != b->worker) {
        return a->worker < b->worker ? -1 : 1;
    }

    if (a->counter != b->counter) {
        return a->counter < b->counter ? -1 : 1;
    }

    return 0;
}


static int
chat_test_sign(int v)
{
    return (v > 0) - (v < 0);
}


static int
chat_test_strcmp(const void *a, const void *b)
{
    return strcmp(a, b);
}


static void
chat_test_format(void **state)
{
    int              i, j;
    chat_id_gen_t    g;
    chat_id_parts_t  p;
    chat_test_id_t   id;

    (void) state;

    chat_id_gen_init(&g, 0xffff, 0xffff);

    for (i = 0; i < 1000; i++) {
        memset(id, 'x', sizeof(id));
        chat_id_next(&g, CHAT_TEST_T0 + (uint64_t) i / 3, id);

        assert_int_equal(strlen(id), CHAT_ID_LEN);

        for (j = 0; j < CHAT_ID_LEN; j++) {
            assert_non_null(strchr(CHAT_TEST_ALPHABET, id[j]));
        }

        assert_in_range(id[0], '0', '7');
    }

    /* times beyond 48 bits are clamped, not truncated to a small time */
    chat_id_gen_init(&g, 1, 1);
    chat_id_next(&g, CHAT_ID_MS_MAX + 5, id);
    chat_test_parse_ok(id, &p);
    assert_int_equal(p.ms, CHAT_ID_MS_MAX);
    assert_int_equal(p.counter, 0);
    assert_int_equal(id[0], '7');

    chat_id_next(&g, UINT64_MAX, id);
    chat_test_parse_ok(id, &p);
    assert_int_equal(p.ms, CHAT_ID_MS_MAX);
    assert_int_equal(p.counter, 1);
}


static void
chat_test_known_encoding(void **state)
{
    chat_id_parts_t  p;
    chat_test_id_t   id;

    (void) state;

    /* all zero and all one bits: pins the layout of the 130-bit string */
    memset(&p, 0, sizeof(p));
    chat_id_format(&p, id);
    assert_string_equal(id, "00000000000000000000000000");

    p.ms = CHAT_ID_MS_MAX;
    p.node = 0xffff;
    p.worker = 0xffff;
    p.counter = CHAT_ID_COUNTER_MAX;
    chat_id_format(&p, id);
    assert_string_equal(id, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");

    /*
     * One bit per field.  Character i holds bits 129-5i .. 125-5i, so the
     * lowest bit of ms (bit 80) is character 9, of node (bit 64) the top
     * bit of character 13, of worker (bit 48) the fourth of character 16.
     */
    memset(&p, 0, sizeof(p));
    p.counter = 1;
    chat_id_format(&p, id);
    assert_string_equal(id, "00000000000000000000000001");

    memset(&p, 0, sizeof(p));
    p.ms = 1;
    chat_id_format(&p, id);
    assert_string_equal(id, "00000000010000000000000000");

    memset(&p, 0, sizeof(p));
    p.node = 1;
    chat_id_format(&p, id);
    assert_string_equal(id, "0000000000000G000000000000");

    memset(&p, 0, sizeof(p));
    p.worker = 1;
    chat_id_format(&p, id);
    assert_string_equal(id, "00000000000000008000000000");

    p.ms = CHAT_TEST_T0;
    p.node = 0x1234;
    p.worker = 0x5678;
    p.counter = 0x9abcdef012ULL;
    chat_id_format(&p, id);
    assert_string_equal(id, "01HF7YAT0028T5CY00KAYDXW0J");
}


static void
chat_test_increase_same_ms(void **state)
{
    int              i;
    chat_id_gen_t    g;
    chat_id_parts_t  p;
    chat_test_id_t   prev, cur;

    (void) state;

    chat_id_gen_init(&g, 7, 3);
    chat_id_next(&g, CHAT_TEST_T0, prev);

    for (i = 1; i < 1000000; i++) {
        chat_id_next(&g, CHAT_TEST_T0, cur);
        assert_true(strcmp(prev, cur) < 0);
        memcpy(prev, cur, sizeof(cur));
    }

    chat_test_parse_ok(cur, &p);
    assert_int_equal(p.ms, CHAT_TEST_T0);
    assert_int_equal(p.counter, 999999);
    assert_int_equal(p.node, 7);
    assert_int_equal(p.worker, 3);
}


static void
chat_test_increase_across_ms(void **state)
{
    int              i;
    uint64_t         ms;
    chat_id_gen_t    g;
    chat_id_parts_t  p;
    chat_test_id_t   prev, cur;

    (void) state;

    chat_id_gen_init(&g, 1, 1);
    chat_id_next(&g, CHAT_TEST_T0, prev);

    ms = CHAT_TEST_T0;

    for (i = 0; i < 100000; i++) {
        /* several ids per ms, and sometimes a jump of several ms */
        ms += (i % 5 == 0) ? 1 + (uint64_t) i % 7 : 0;

        chat_id_next(&g, ms, cur);
        assert_true(strcmp(prev, cur) < 0);
        memcpy(prev, cur, sizeof(cur));
    }

    /* the counter restarts when the time moves on */
    chat_id_next(&g, ms + 1, cur);
    chat_test_parse_ok(cur, &p);
    assert_int_equal(p.ms, ms + 1);
    assert_int_equal(p.counter, 0);
}


static void
chat_test_clock_backwards(void **state)
{
    chat_id_gen_t    g;
    chat_id_parts_t  p;
    chat_test_id_t   a, b, c, d;

    (void) state;

    chat_id_gen_init(&g, 1, 1);

    chat_id_next(&g, CHAT_TEST_T0, a);
    chat_id_next(&g, CHAT_TEST_T0 - 500, b);
    chat_id_next(&g, 0, c);

    assert_true(strcmp(a, b) < 0);
    assert_true(strcmp(b, c) < 0);

    /* the last time is kept, the counter carries on */
    chat_test_parse_ok(c, &p);
    assert_int_equal(p.ms, CHAT_TEST_T0);
    assert_int_equal(p.counter, 2);

    /* once the clock catches up, the counter starts again */
    chat_id_next(&g, CHAT_TEST_T0 + 1, d);
    assert_true(strcmp(c, d) < 0);
    chat_test_parse_ok(d, &p);
    assert_int_equal(p.ms, CHAT_TEST_T0 + 1);
    assert_int_equal(p.counter, 0);
}


static void
chat_test_counter_overflow(void **state)
{
    chat_id_gen_t    g;
    chat_id_parts_t  p;
    chat_test_id_t   a, b, c, d;

    (void) state;

    chat_id_gen_init(&g, 9, 4);

    chat_id_next(&g, CHAT_TEST_T0, a);

    /* jump to the last counter value of this ms instead of 2^48 calls */
    g.counter = CHAT_ID_COUNTER_MAX - 1;
    chat_id_next(&g, CHAT_TEST_T0, b);
    chat_test_parse_ok(b, &p);
    assert_int_equal(p.ms, CHAT_TEST_T0);
    assert_int_equal(p.counter, CHAT_ID_COUNTER_MAX);

    /* exhausted: the next id borrows the next ms */
    chat_id_next(&g, CHAT_TEST_T0, c);
    chat_test_parse_ok(c, &p);
    assert_int_equal(p.ms, CHAT_TEST_T0 + 1);
    assert_int_equal(p.counter, 0);
    assert_int_equal(p.node, 9);
    assert_int_equal(p.worker, 4);

    /* the clock reaching the borrowed ms counts on from there */
    chat_id_next(&g, CHAT_TEST_T0 + 1, d);
    chat_test_parse_ok(d, &p);
    assert_int_equal(p.ms, CHAT_TEST_T0 + 1);
    assert_int_equal(p.counter, 1);

    assert_true(strcmp(a, b) < 0);
    assert_true(strcmp(b, c) < 0);
    assert_true(strcmp(c, d) < 0);
}


static void
chat_test_round_trip(void **state)
{
    int              i;
    uint64_t         now;
    chat_id_gen_t    g;
    chat_id_parts_t  p, q;
    chat_test_id_t   id;

    (void) state;

    chat_test_rng_state = 1;

    /* from the generator */
    chat_id_gen_init(&g, 0xbeef, 0x0102);
    now = CHAT_TEST_T0;

    for (i = 0; i < 10000; i++) {
        now += chat_test_rand() % 3;
        chat_id_next(&g, now, id);

        chat_test_parse_ok(id, &p);
        assert_int_equal(p.ms, g.last_ms);
        assert_int_equal(p.node, 0xbeef);
        assert_int_equal(p.worker, 0x0102);
        assert_int_equal(p.counter, g.counter);
    }

    /* any parts, including the extremes of every field */
    for (i = 0; i < 100000; i++) {
        p.ms = chat_test_rand() & CHAT_ID_MS_MAX;
        p.node = (uint16_t) chat_test_rand();
        p.worker = (uint16_t) chat_test_rand();
        p.counter = chat_test_rand() & CHAT_ID_COUNTER_MAX;

        switch (i % 4) {
        case 1:
            p.ms = 0;
            p.counter = CHAT_ID_COUNTER_MAX;
            break;
        case 2:
            p.ms = CHAT_ID_MS_MAX;
            p.node = 0;
            p.worker = 0xffff;
            p.counter = 0;
            break;
        default:
            break;
        }

        chat_id_format(&p, id);
        chat_test_parse_ok(id, &q);
        assert_int_equal(chat_test_parts_cmp(&p, &q), 0);
    }
}


static void
chat_test_parse_alphabet(void **state)
{
    int              i, j, c;
    const char      *a;
    chat_id_gen_t    g;
    chat_id_parts_t  p, q;
    chat_test_id_t   id, lower;

    (void) state;

    chat_test_rng_state = 2;
    chat_id_gen_init(&g, 0xabcd, 0xef01);

    for (i = 0; i < 1000; i++) {
        chat_id_next(&g, chat_test_rand() & CHAT_ID_MS_MAX, id);

        memcpy(lower, id, sizeof(id));

        for (j = 0; j < CHAT_ID_LEN; j++) {
            if (lower[j] >= 'A' && lower[j] <= 'Z') {
                lower[j] = (char) (lower[j] - 'A' + 'a');
            }
        }

        chat_test_parse_ok(id, &p);
        chat_test_parse_ok(lower, &q);
        assert_int_equal(chat_test_parts_cmp(&p, &q), 0);
    }

    /* every byte in the last position: the alphabet in either case or -1 */
    memset(id, '0', CHAT_ID_LEN);
    id[CHAT_ID_LEN] = '\0';

    for (c = 0; c < 256; c++) {
        id[CHAT_ID_LEN - 1] = (char) c;
        a = (c >= 'a' && c <= 'z') ? strchr(CHAT_TEST_ALPHABET, c - 'a' + 'A')
                                   : strchr(CHAT_TEST_ALPHABET, c);

        if (c == 0 || a == NULL) {
            assert_int_equal(chat_id_parse(id, CHAT_ID_LEN, &p), -1);
            continue;
        }

        assert_int_equal(chat_id_parse(id, CHAT_ID_LEN, &p), 0);
        assert_int_equal(p.counter, a - CHAT_TEST_ALPHABET);
        assert_int_equal(p.ms, 0);
    }
}


static void
chat_test_parse_rejects(void **state)
{
    size_t           i, k;
    chat_id_parts_t  p;
    chat_test_id_t   good, bad;

    (void) state;

    strcpy(good, "01HF3Z0ABCDEFGHJKMNPQRSTVW");
    assert_int_equal(chat_id_parse(good, CHAT_ID_LEN, &p), 0);

    /* length */
    assert_int_equal(chat_id_parse(good, 0, &p), -1);
    assert_int_equal(chat_id_parse(good, CHAT_ID_LEN - 1, &p), -1);
    assert_int_equal(chat_id_parse("01HF3Z0ABCDEFGHJKMNPQRSTVW0", 27, &p), -1);
    assert_int_equal(chat_id_parse(NULL, CHAT_ID_LEN, &p), -1);

    /* a bad character at each position */
    for (k = 0; k < sizeof(chat_test_bad_chars) - 1; k++) {
        for (i = 0; i < CHAT_ID_LEN; i++) {
            memcpy(bad, good, sizeof(good));
            bad[i] = chat_test_bad_chars[k];
            assert_int_equal(chat_id_parse(bad, CHAT_ID_LEN, &p), -1);
        }
    }

    /* a NUL in the middle, with the full length passed */
    memcpy(bad, good, sizeof(good));
    bad[13] = '\0';
    assert_int_equal(chat_id_parse(bad, CHAT_ID_LEN, &p), -1);

    /* more than 128 bits: the first character holds only 3 */
    assert_int_equal(chat_id_parse("7ZZZZZZZZZZZZZZZZZZZZZZZZZ", 26, &p), 0);
    assert_int_equal(chat_id_parse("80000000000000000000000000", 26, &p), -1);
    assert_int_equal(chat_id_parse("8ZZZZZZZZZZZZZZZZZZZZZZZZZ", 26, &p), -1);
    assert_int_equal(chat_id_parse("Z0000000000000000000000000", 26, &p), -1);
    assert_int_equal(chat_id_parse("z0000000000000000000000000", 26, &p), -1);
}


static void
chat_test_workers_never_collide(void **state)
{
    size_t           i, n;
    uint64_t         now;
    chat_id_gen_t    g1, g2, g3;
    chat_test_id_t  *ids;

    (void) state;

    n = 3 * 100000;
    ids = malloc(n * sizeof(chat_test_id_t));
    assert_non_null(ids);

    chat_id_gen_init(&g1, 5, 1);
    chat_id_gen_init(&g2, 5, 2);
    chat_id_gen_init(&g3, 6, 1);      /* another node, same worker */

    /* all three see the same clock, so only node/worker tell them apart */
    now = CHAT_TEST_T0;

    for (i = 0; i < n; i += 3) {
        if (i % 300 == 0) {
            now++;
        }

        chat_id_next(&g1, now, ids[i]);
        chat_id_next(&g2, now, ids[i + 1]);
        chat_id_next(&g3, now, ids[i + 2]);
    }

    qsort(ids, n, sizeof(chat_test_id_t), chat_test_strcmp);

    for (i = 1; i < n; i++) {
        assert_true(strcmp(ids[i - 1], ids[i]) < 0);
    }

    free(ids);
}


static void
chat_test_string_order(void **state)
{
    int              i, f;
    chat_id_parts_t  a, b;
    chat_test_id_t   sa, sb;

    (void) state;

    chat_test_rng_state = 3;

    for (i = 0; i < 200000; i++) {
        a.ms = chat_test_rand() & CHAT_ID_MS_MAX;
        a.node = (uint16_t) chat_test_rand();
        a.worker = (uint16_t) chat_test_rand();
        a.counter = chat_test_rand() & CHAT_ID_COUNTER_MAX;

        /* mostly pairs that differ in one field only, low bits included */
        b = a;
        f = (int) (chat_test_rand() % 5);

        switch (f) {
        case 0:
            b.ms = (a.ms + (chat_test_rand() % 3) - 1) & CHAT_ID_MS_MAX;
            break;
        case 1:
            b.node = (uint16_t) (a.node + (chat_test_rand() % 3) - 1);
            break;
        case 2:
            b.worker = (uint16_t) (a.worker + (chat_test_rand() % 3) - 1);
            break;
        case 3:
            b.counter = (a.counter + (chat_test_rand() % 3) - 1)
                        & CHAT_ID_COUNTER_MAX;
            break;
        default:
            b.ms = chat_test_rand() & CHAT_ID_MS_MAX;
            b.node = (uint16_t) chat_test_rand();
            b.worker = (uint16_t) chat_test_rand();
            b.counter = chat_test_rand() & CHAT_ID_COUNTER_MAX;
            break;
        }

        chat_id_format(&a, sa);
        chat_id_format(&b, sb);

        assert_int_equal(chat_test_sign(strcmp(sa, sb)),
                         chat_test_parts_cmp(&a, &b));
    }

    /* time dominates everything else */
    memset(&a, 0, sizeof(a));
    a.ms = 1;
    b.ms = 0;
    b.node = 0xffff;
    b.worker = 0xffff;
    b.counter = CHAT_ID_COUNTER_MAX;
    chat_id_format(&a, sa);
    chat_id_format(&b, sb);
    assert_true(strcmp(sb, sa) < 0);
}


static void
chat_test_node_from_name(void **state)
{
    (void) state;

    /* pinned: changing the hash would renumber every configured node */
    assert_int_equal(chat_id_node_from_name("node1", 5), 22539);
    assert_int_equal(chat_id_node_from_name("node2", 5), 17458);

    /* only len bytes count */
    assert_int_equal(chat_id_node_from_name("node1.example", 5), 22539);
    assert_int_not_equal(chat_id_node_from_name("node1.example", 13), 22539);

    assert_int_equal(chat_id_node_from_name("", 0),
                     chat_id_node_from_name(NULL, 0));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(chat_test_format),
        cmocka_unit_test(chat_test_known_encoding),
        cmocka_unit_test(chat_test_increase_same_ms),
        cmocka_unit_test(chat_test_increase_across_ms),
        cmocka_unit_test(chat_test_clock_backwards),
        cmocka_unit_test(chat_test_counter_overflow),
        cmocka_unit_test(chat_test_round_trip),
        cmocka_unit_test(chat_test_parse_alphabet),
        cmocka_unit_test(chat_test_parse_rejects),
        cmocka_unit_test(chat_test_workers_never_collide),
        cmocka_unit_test(chat_test_string_order),
        cmocka_unit_test(chat_test_node_from_name),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
