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
	for (int v = 0; v < BUF_VARIANTS; v++)
		b->variant[v] = NULL;
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

struct buf *buf_set_variant(struct buf *b, enum buf_variant v, struct buf *encoded)
{
	if (b->variant[v]) {
		fprintf(stderr, "ringcast: a buffer's variant %d was made twice\n", (int)v);
		abort();
	}
	b->variant[v] = encoded;
	return encoded;
}

void buf_unref(struct buf *b)
{
	if (!b || --b->refs)
		return;
	for (int v = 0; v < BUF_VARIANTS; v++)
		buf_unref(b->variant[v]);
	free(b);
}
