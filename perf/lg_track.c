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

bool lg_event_id(const uint8_t *p, size_t n, uint64_t *id)
{
	static const char head[] = "{\"type\":\"message\",";
	/* How far past the type "id" may sit: room for a field or two ahead
	 * of it, should the server ever move it. */
	const size_t reach = 64;
	const uint8_t *q, *end;
	uint64_t v = 0;

	if (n < sizeof(head) - 1 || memcmp(p, head, sizeof(head) - 1))
		return false;
	p += sizeof(head) - 1;
	n -= sizeof(head) - 1;
	q = memmem(p, n < reach ? n : reach, "\"id\":", 5);
	if (!q)
		return false;
	q += 5;
	end = p + n;
	if (q >= end || *q < '0' || *q > '9')
		return false;
	/* 19 digits always fit in 64 bits. */
	for (int i = 0; q < end && *q >= '0' && *q <= '9'; i++, q++) {
		if (i == 19)
			return false;
		v = v * 10 + (uint64_t)(*q - '0');
	}
	if (q >= end || (*q != ',' && *q != '}'))
		return false;
	*id = v;
	return true;
}

enum lg_id_verdict lg_id_note(struct lg_idseq *s, uint64_t id, uint64_t *skipped)
{
	*skipped = 0;
	if (!s->next) {
		s->first = id;
		s->next = id + 1;
		return ID_FIRST;
	}
	if (id < s->next) {
		/* Keep the highest: the messages after it are judged against
		 * it, so one stray old id is one reorder, not a gap too. */
		return ID_REORDER;
	}
	*skipped = id - s->next;
	s->next = id + 1;
	return *skipped ? ID_GAP : ID_NEXT;
}

enum lg_id_cover lg_id_cover(const struct lg_idseq *s, struct lg_id_range w)
{
	if (w.lo > w.hi)
		return COVER_OK;        /* no window message anywhere */
	if (!s->next || s->first > w.lo)
		return COVER_MISMATCH;
	if (s->next - 1 < w.hi)
		return COVER_BEHIND;
	return COVER_OK;
}
