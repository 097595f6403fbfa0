/* lg_hist.c: log-bucket histogram (see lg_hist.h for the precision bound). */
#include "lg_hist.h"

#include <string.h>

#define SUB_HALF (1u << (HIST_SUB_BITS - 1))

static unsigned bucket_of(uint64_t v)
{
	unsigned msb, shift;

	if (v < (1u << HIST_SUB_BITS))
		return (unsigned)v;
	msb = 63 - (unsigned)__builtin_clzll(v);
	shift = msb - (HIST_SUB_BITS - 1);
	/* v >> shift lies in [SUB_HALF, 2 * SUB_HALF): the top bits. */
	return ((shift + 1) << (HIST_SUB_BITS - 1)) + (unsigned)((v >> shift) - SUB_HALF);
}

uint64_t hist_bucket_high(unsigned idx)
{
	unsigned shift;
	uint64_t top;

	if (idx < (1u << HIST_SUB_BITS))
		return idx;
	shift = (idx >> (HIST_SUB_BITS - 1)) - 1;
	top = (idx & (SUB_HALF - 1)) + SUB_HALF;
	return ((top + 1) << shift) - 1;
}

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void hist_add(struct hist *h, uint64_t v)
{
	h->bucket[bucket_of(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0;

	if (!h->count)
		return 0;
	want = (uint64_t)(q * (double)h->count + 0.5);
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= want) {
			uint64_t v = hist_bucket_high(i);

			return v > h->max ? h->max : v;
		}
	}
	return h->max;
}
