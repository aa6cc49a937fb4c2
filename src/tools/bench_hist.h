
/*
 * chat-bench: latency histograms with log-linear buckets, in the manner
 * of HdrHistogram.
 *
 * Values (nanoseconds, or anything else in uint64_t) below 2^SUB_BITS
 * have a bucket each; above that every power of two is cut into
 * 2^(SUB_BITS - 1) equal buckets, so a value is known to within
 * 2^-(SUB_BITS - 1) of itself (0.8% with 8 bits) from 1 ns to 2^64 ns in
 * 7,424 counters.  Histograms of one layout merge by adding counters,
 * which is how the processes of a run combine theirs.  min, max, count
 * and sum are exact.
 *
 * No allocation: a histogram is a plain struct that may be copied,
 * written to a pipe and read back by a process of the same binary.
 */


#ifndef _BENCH_HIST_H_INCLUDED_
#define _BENCH_HIST_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define BENCH_HIST_SUB_BITS  8
#define BENCH_HIST_HALF      (1u << (BENCH_HIST_SUB_BITS - 1))
#define BENCH_HIST_BUCKETS                                                   \
    ((64 - BENCH_HIST_SUB_BITS) * BENCH_HIST_HALF + 2 * BENCH_HIST_HALF)


typedef struct {
    uint64_t  count;
    uint64_t  min;
    uint64_t  max;
    uint64_t  sum;          /* wraps after 584 years of nanoseconds */
    uint64_t  counts[BENCH_HIST_BUCKETS];
} bench_hist_t;


void bench_hist_init(bench_hist_t *h);
void bench_hist_record(bench_hist_t *h, uint64_t v);

/* adds every value of from to into */
void bench_hist_merge(bench_hist_t *into, const bench_hist_t *from);

/*
 * The value at quantile q (0..1): the highest value of the bucket that
 * holds the ceil(q * count)-th smallest value, at most max and at least
 * min; q >= 1 gives max exactly, q <= 0 min.  0 for an empty histogram.
 */
uint64_t bench_hist_quantile(const bench_hist_t *h, double q);

/* the bucket of v, and the lowest and highest value of a bucket */
size_t bench_hist_index(uint64_t v);
uint64_t bench_hist_low(size_t index);
uint64_t bench_hist_high(size_t index);


#endif /* _BENCH_HIST_H_INCLUDED_ */
