/* buf.c: reference-counted byte buffers shared by every recipient of a broadcast. */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct buf *buf_new(size_t len)
{
	if (len > UINT32_MAX) {
		fprintf(stderr, "ringcast: buffer of %zu bytes is over the 4 GiB frame limit\n", len);
		abort();
	}
	struct buf *b = malloc(sizeof(*b) + len);
	if (!b) {
		fprintf(stderr, "ringcast: out of memory allocating %zu bytes\n", len);
		abort();
	}
	b->refs = 1;
	b->len = (uint32_t)len;
	b->head = b->payload = 0;
	return b;
}

struct buf *buf_from(const void *data, size_t len)
{
	struct buf *b = buf_new(len);
	memcpy(b->data, data, len);
	return b;
}

struct buf *buf_new_payload(const void *payload, size_t len)
{
	if (len > UINT32_MAX - BUF_HEADROOM) {
		fprintf(stderr, "ringcast: payload of %zu bytes is over the 4 GiB frame limit\n", len);
		abort();
	}
	struct buf *b = buf_new(BUF_HEADROOM + len);
	memcpy(b->data + BUF_HEADROOM, payload, len);
	b->head = b->payload = BUF_HEADROOM;
	return b;
}

void buf_unref(struct buf *b)
{
	if (b && --b->refs == 0)
		free(b);
}
