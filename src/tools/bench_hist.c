
/*
 * chat-bench: log-linear histograms, see bench_hist.h.
 */


#include <string.h>

#include "bench_hist.h"


void
bench_hist_init(bench_hist_t *h)
{
    memset(h, 0, sizeof(bench_hist_t));
    h->min = UINT64_MAX;
}


size_t
bench_hist_index(uint64_t v)
{
    unsigned  msb, shift;

    if (v < 2 * BENCH_HIST_HALF) {
        return (size_t) v;
    }

    msb = 63 - (unsigned) __builtin_clzll(v);
    shift = msb - (BENCH_HIST_SUB_BITS - 1);

    /* v >> shift is in [HALF, 2 * HALF): buckets follow on from the last */
    return (size_t) shift * BENCH_HIST_HALF + (size_t) (v >> shift);
}


uint64_t
bench_hist_low(size_t index)
{
    size_t  shift, sub;

    if (index < 2 * BENCH_HIST_HALF) {
        return index;
    }

    shift = index / BENCH_HIST_HALF - 1;
    sub = index - shift * BENCH_HIST_HALF;

    return (uint64_t) sub << shift;
}


uint64_t
bench_hist_high(size_t index)
{
    if (index + 1 >= BENCH_HIST_BUCKETS) {
        return UINT64_MAX;
    }

    return bench_hist_low(index + 1) - 1;
}


void
bench_hist_record(bench_hist_t *h, uint64_t v)
{
    h->counts[bench_hist_index(v)]++;
    h->count++;
    h->sum += v;

    if (v < h->min) {
        h->min = v;
    }

    if (v > h->max) {
        h->max = v;
    }
}


void
bench_hist_merge(bench_hist_t *into, const bench_hist_t *from)
{
    size_t  i;

    if (from->count == 0) {
        return;
    }

    for (i = 0; i < BENCH_HIST_BUCKETS; i++) {
        into->counts[i] += from->counts[i];
    }

    into->count += from->count;
    into->sum += from->sum;

    if (from->min < into->min) {
        into->min = from->min;
    }

    if (from->max > into->max) {
        into->max = from->max;
    }
}


uint64_t
bench_hist_quantile(const bench_hist_t *h, double q)
{
    size_t    i;
    uint64_t  rank, seen, v;

    if (h->count == 0) {
        return 0;
    }

    if (q <= 0.0) {
        return h->min;
    }

    if (q >= 1.0) {
        return h->max;
    }

    /* ceil(q * count), at least 1 */
    rank = (uint64_t) (q * (double) h->count);
    if ((double) rank < q * (double) h->count) {
        rank++;
    }

    if (rank == 0) {
        rank = 1;
    }

    seen = 0;

    for (i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->counts[i];

        if (seen >= rank) {
            v = bench_hist_high(i);

            if (v > h->max) {
                v = h->max;
            }

            if (v < h->min) {
                v = h->min;
            }

            return v;
        }
    }

    return h->max;
}
