
/*
 * Unit tests for src/tools/bench_hist.c, the load generator's latency
 * histograms.
 */


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chat_test.h"
#include "bench_hist.h"


static int
bench_test_cmp(const void *a, const void *b)
{
    uint64_t  x = *(const uint64_t *) a, y = *(const uint64_t *) b;

    return x < y ? -1 : x > y;
}


/* every bucket's range follows on from the previous one's */
static void
test_buckets_contiguous(void **state)
{
    size_t  i;

    (void) state;

    assert_int_equal(bench_hist_low(0), 0);

    for (i = 1; i < BENCH_HIST_BUCKETS; i++) {
        assert_true(bench_hist_low(i) == bench_hist_high(i - 1) + 1);
        assert_true(bench_hist_low(i) <= bench_hist_high(i));
    }

    assert_true(bench_hist_high(BENCH_HIST_BUCKETS - 1) == UINT64_MAX);
    assert_int_equal(bench_hist_index(UINT64_MAX), BENCH_HIST_BUCKETS - 1);
}


/* a value lands in the bucket whose range holds it */
static void
test_index_in_range(void **state)
{
    int       i, b;
    size_t    idx;
    uint64_t  v;

    (void) state;

    for (i = 0; i < 100000; i++) {
        b = (int) (chat_test_rand() % 64);
        v = chat_test_rand() >> b;
        idx = bench_hist_index(v);

        assert_true(idx < BENCH_HIST_BUCKETS);
        assert_true(bench_hist_low(idx) <= v);
        assert_true(v <= bench_hist_high(idx));
    }

    /* exact below 2^SUB_BITS, and at the edges of the first octaves */
    for (v = 0; v < 2 * BENCH_HIST_HALF; v++) {
        assert_int_equal(bench_hist_index(v), v);
    }

    assert_int_equal(bench_hist_index(2 * BENCH_HIST_HALF),
                     2 * BENCH_HIST_HALF);
    assert_int_equal(bench_hist_index(2 * BENCH_HIST_HALF + 1),
                     2 * BENCH_HIST_HALF);
    assert_int_equal(bench_hist_index(2 * BENCH_HIST_HALF + 2),
                     2 * BENCH_HIST_HALF + 1);
}


/* a bucket is at most 1/HALF of its values wide */
static void
test_precision(void **state)
{
    size_t    i;
    uint64_t  low, width;

    (void) state;

    for (i = 2 * BENCH_HIST_HALF; i < BENCH_HIST_BUCKETS - 1; i++) {
        low = bench_hist_low(i);
        width = bench_hist_high(i) - low + 1;
        assert_true(width <= low / BENCH_HIST_HALF);
    }
}


static void
test_empty_and_single(void **state)
{
    bench_hist_t  *h;

    (void) state;

    h = malloc(sizeof(bench_hist_t));
    assert_non_null(h);

    bench_hist_init(h);
    assert_int_equal(bench_hist_quantile(h, 0.5), 0);
    assert_int_equal(bench_hist_quantile(h, 1.0), 0);

    bench_hist_record(h, 123456789);
    assert_int_equal(h->count, 1);
    assert_int_equal(bench_hist_quantile(h, 0.0), 123456789);
    assert_int_equal(bench_hist_quantile(h, 0.5), 123456789);
    assert_int_equal(bench_hist_quantile(h, 0.999), 123456789);
    assert_int_equal(bench_hist_quantile(h, 1.0), 123456789);

    free(h);
}


/* quantiles agree with sorting, within a bucket's width */
static void
test_quantiles_against_sort(void **state)
{
    int            i, k;
    size_t         rank;
    uint64_t      *vals, exact, got;
    bench_hist_t  *h;
    static const double  qs[] = { 0.01, 0.25, 0.5, 0.9, 0.99, 0.999 };

    (void) state;

    enum { N = 200000 };

    vals = malloc(N * sizeof(uint64_t));
    h = malloc(sizeof(bench_hist_t));
    assert_non_null(vals);
    assert_non_null(h);

    bench_hist_init(h);

    /* log-uniform from 1 us to 1 s, like latencies */
    for (i = 0; i < N; i++) {
        vals[i] = 1000 + (chat_test_rand() % 1000)
                  * (1ULL << (chat_test_rand() % 20));
        bench_hist_record(h, vals[i]);
    }

    qsort(vals, N, sizeof(uint64_t), bench_test_cmp);

    for (k = 0; k < (int) (sizeof(qs) / sizeof(qs[0])); k++) {
        rank = (size_t) (qs[k] * N + 0.999999);
        exact = vals[rank - 1];
        got = bench_hist_quantile(h, qs[k]);

        /* the bucket's highest value: never below, at most 1/128 above */
        assert_true(got >= exact);
        assert_true(got - exact <= exact / BENCH_HIST_HALF + 1);
    }

    assert_true(bench_hist_quantile(h, 1.0) == vals[N - 1]);
    assert_true(bench_hist_quantile(h, 0.0) == vals[0]);
    assert_true(h->min == vals[0]);
    assert_true(h->max == vals[N - 1]);

    free(vals);
    free(h);
}


/* merging two halves gives the histogram of the whole */
static void
test_merge(void **state)
{
    int            i;
    uint64_t       v;
    bench_hist_t  *a, *b, *all;

    (void) state;

    a = malloc(sizeof(bench_hist_t));
    b = malloc(sizeof(bench_hist_t));
    all = malloc(sizeof(bench_hist_t));
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(all);

    bench_hist_init(a);
    bench_hist_init(b);
    bench_hist_init(all);

    for (i = 0; i < 10000; i++) {
        v = chat_test_rand() % 50000000;
        bench_hist_record(i % 3 ? a : b, v);
        bench_hist_record(all, v);
    }

    bench_hist_merge(a, b);
    assert_memory_equal(a, all, sizeof(bench_hist_t));

    /* an empty one changes nothing, min included */
    bench_hist_init(b);
    bench_hist_merge(a, b);
    assert_memory_equal(a, all, sizeof(bench_hist_t));

    free(a);
    free(b);
    free(all);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_buckets_contiguous),
        cmocka_unit_test(test_index_in_range),
        cmocka_unit_test(test_precision),
        cmocka_unit_test(test_empty_and_single),
        cmocka_unit_test(test_quantiles_against_sort),
        cmocka_unit_test(test_merge),
    };

    /* the sequence the tests were written against */
    chat_test_rng_state = 42;

    return cmocka_run_group_tests(tests, NULL, NULL);
}
