/* lg_hist.h: a log-bucket latency histogram in the spirit of HdrHistogram.
 *
 * Values are nanoseconds. Each power of two is split into 64 buckets, so a
 * reported percentile is at most 1/64 (1.6%) above the true value; memory
 * is fixed (30 KiB) whatever the range, from 1 ns to centuries. */
#ifndef LG_HIST_H
#define LG_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 2) << (HIST_SUB_BITS - 1))

struct hist {
	uint64_t count;
	uint64_t min;
	uint64_t max;
	double sum;
	uint64_t bucket[HIST_BUCKETS];
};

void hist_init(struct hist *h);
void hist_add(struct hist *h, uint64_t v);

/* Smallest recorded-bucket upper edge with at least q (0..1) of the values
 * at or below it; capped at the true maximum. 0 when empty. */
uint64_t hist_quantile(const struct hist *h, double q);

/* The largest value bucket idx (< HIST_BUCKETS) holds: for writing a
 * histogram out so that several processes' can be added up. */
uint64_t hist_bucket_high(unsigned idx);

#endif
