/* buf.h: reference-counted byte buffers.
 *
 * A broadcast frame is encoded once into one buf and every recipient's send
 * queue holds a reference to it, never a copy. The loop is single-threaded,
 * so the count is a plain integer. */
#ifndef RINGCAST_BUF_H
#define RINGCAST_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint32_t refs;
	uint32_t len;
	uint8_t data[];
};

/* A new buf of len bytes with one reference; aborts when out of memory
 * (the server cannot do anything useful without memory for frames). */
struct buf *buf_new(size_t len);

/* A new buf holding a copy of data. */
struct buf *buf_from(const void *data, size_t len);

static inline struct buf *buf_ref(struct buf *b)
{
	b->refs++;
	return b;
}

void buf_unref(struct buf *b);

#endif
