/* lg_sse.c: reading a text/event-stream (lg_sse.h). An event ends at a
 * blank line; ringcast writes "\n" line ends only and one data: line per
 * event, which is all this reader takes. */
#include "lg_sse.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static void event(const uint8_t *p, size_t n, sse_data_fn fn, void *ctx)
{
	while (n) {
		const uint8_t *eol = memchr(p, '\n', n);
		size_t len = eol ? (size_t)(eol - p) : n;
		if (len >= 6 && memcmp(p, "data: ", 6) == 0)
			fn(ctx, p + 6, len - 6);
		if (!eol)
			return;
		n -= len + 1;
		p = eol + 1;
	}
}

/* The end of an event in p (the offset after its "\n\n"), or 0; prev_nl:
 * the byte before p was '\n'. */
static size_t event_end(const uint8_t *p, size_t n, int prev_nl)
{
	if (prev_nl && n && p[0] == '\n')
		return 1;
	const uint8_t *e = memmem(p, n, "\n\n", 2);
	return e ? (size_t)(e - p) + 2 : 0;
}

/* Add n bytes of the event being gathered; false (and skipping it from
 * now on) when it grows past gather_max. */
static bool gather(struct sse_rx *rx, const uint8_t *p, size_t n, size_t gather_max)
{
	if (rx->skipping || rx->gathered + n > gather_max) {
		rx->skipping = 1;
		return false;
	}
	if (rx->gathered + n > rx->gather_cap) {
		rx->gather_cap = (uint32_t)gather_max;
		rx->gather = realloc(rx->gather, rx->gather_cap);
		if (!rx->gather)
			abort();
	}
	memcpy(rx->gather + rx->gathered, p, n);
	rx->gathered += (uint32_t)n;
	return true;
}

void sse_rx_feed(struct sse_rx *rx, const uint8_t *p, size_t n, size_t gather_max, sse_data_fn fn,
		 void *ctx)
{
	while (n) {
		bool pending = rx->gathered || rx->skipping;
		size_t end = event_end(p, n, pending && rx->last_nl);
		if (!end) { /* the event goes on past this buffer */
			gather(rx, p, n, gather_max);
			rx->last_nl = p[n - 1] == '\n';
			return;
		}
		if (!pending)
			event(p, end, fn, ctx);
		else if (gather(rx, p, end, gather_max))
			event(rx->gather, rx->gathered, fn, ctx);
		else
			fn(ctx, NULL, 0);
		rx->skipping = 0;
		rx->gathered = 0;
		rx->last_nl = 0;
		p += end;
		n -= end;
	}
}

void sse_rx_release(struct sse_rx *rx)
{
	free(rx->gather);
	*rx = (struct sse_rx){ 0 };
}
