/* lg_track.c: message payloads and per-pair sequence tracking. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "lg_track.h"

#include <stdio.h>
#include <string.h>

size_t lg_payload_make(char *dst, size_t size, uint32_t sender, uint32_t seq,
		       uint64_t send_ns)
{
	int n = snprintf(dst, LG_PAYLOAD_HEAD_MAX, LG_MARKER "%u:%u:%llu:", sender, seq,
			 (unsigned long long)send_ns);
	size_t len = (size_t)n;

	if (len < size) {
		memset(dst + len, 'x', size - len);
		len = size;
	}
	return len;
}

/* Parse decimal digits up to a ':'; advances *p past the colon. */
static bool take_num(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	const uint8_t *q = *p;
	uint64_t x = 0;

	if (q >= end || *q < '0' || *q > '9')
		return false;
	while (q < end && *q >= '0' && *q <= '9' && q - *p < 20)
		x = x * 10 + (uint64_t)(*q++ - '0');
	if (q >= end || *q != ':')
		return false;
	*p = q + 1;
	*v = x;
	return true;
}

bool lg_payload_find(const uint8_t *p, size_t n, uint32_t *sender, uint32_t *seq,
		     uint64_t *send_ns)
{
	const uint8_t *end = p + n;

	while (p < end) {
		const uint8_t *m = memmem(p, (size_t)(end - p), LG_MARKER, 2);
		const uint8_t *q;
		uint64_t a, b, c;

		if (!m)
			return false;
		q = m + 2;
		if (take_num(&q, end, &a) && take_num(&q, end, &b) && take_num(&q, end, &c) &&
		    a <= UINT32_MAX && b <= UINT32_MAX) {
			*sender = (uint32_t)a;
			*seq = (uint32_t)b;
			*send_ns = c;
			return true;
		}
		p = m + 1;
	}
	return false;
}

enum lg_seq_verdict lg_seq_note(struct lg_seq *s, uint32_t seq, uint32_t *gap)
{
	*gap = 0;
	if (seq >= s->next) {
		uint32_t shift = seq - s->next + 1;

		*gap = seq - s->next;
		s->seen = shift >= 64 ? 0 : s->seen << shift;
		s->seen |= 1;
		s->next = seq + 1;
		return SEQ_IN_ORDER;
	}
	uint32_t back = s->next - 1 - seq;

	/* Older than the bitmap reaches: can't tell, call it late. */
	if (back >= 64)
		return SEQ_LATE;
	if (s->seen & (1ull << back))
		return SEQ_DUP;
	s->seen |= 1ull << back;
	return SEQ_LATE;
}
