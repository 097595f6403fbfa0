/* lg_sse.h: the client side of Server-Sent Events that the load generator
 * needs (ringcast's GET /sse): an incremental reader of the stream's data:
 * lines. Pure functions over bytes; no sockets, no ring. */
#ifndef LG_SSE_H
#define LG_SSE_H

#include <stddef.h>
#include <stdint.h>

/* Events that fit inside one receive buffer are handed out in place; one
 * split across buffers is gathered, up to gather_max bytes: longer ones
 * (a history event) are not ours and are skipped unread. */
struct sse_rx {
	uint8_t *gather;
	uint32_t gathered;
	uint32_t gather_cap;
	uint8_t skipping;   /* the current event is too long: drop to its end */
	uint8_t last_nl;    /* the last byte seen was '\n' */
};

/* Called once per data: line (the JSON), p == NULL for a skipped event. */
typedef void (*sse_data_fn)(void *ctx, const uint8_t *p, size_t n);

void sse_rx_feed(struct sse_rx *rx, const uint8_t *p, size_t n, size_t gather_max, sse_data_fn fn,
		 void *ctx);
void sse_rx_release(struct sse_rx *rx);

#endif
