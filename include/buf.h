/* buf.h: reference-counted byte buffers.
 *
 * A broadcast is encoded once into one buf and every recipient's send queue
 * holds a reference to it, never a copy. A buf belongs to one edge (one
 * thread), so the count is a plain integer; what every edge serves (the
 * chat page's files) is copied for each edge (static_site_copy), so that
 * a reload can drop a page while sends still hold it.
 *
 * A buf made by buf_new_payload keeps BUF_HEADROOM free bytes before its
 * payload, so that a transport can put its header there in place: head is
 * the first byte to send, payload the first payload byte. Framing moves
 * head back once, before the buf is first queued (a queue counts the bytes
 * it has to send); after that a buf does not change. Every other buf is
 * sent whole (head = payload = 0).
 *
 * One payload may go out in more than one encoding (a compressed WebSocket
 * frame, a Server-Sent Event): each transport keeps its encoding as a
 * variant of the payload's buf, made by the first recipient that needs it
 * and freed with the buf, so a broadcast is encoded once per transport,
 * never once per recipient. */
#ifndef RINGCAST_BUF_H
#define RINGCAST_BUF_H

#include <stddef.h>
#include <stdint.h>

/* Room before a payload for a transport's header: the largest is a
 * WebSocket server frame's, 10 bytes (ws_frame.c checks). */
#define BUF_HEADROOM 10

/* The variants a payload can have, one slot per encoding. */
enum buf_variant {
	BUF_VARIANT_DEFLATE, /* a permessage-deflate WebSocket frame (ws_deflate.c) */
	BUF_VARIANT_SSE,     /* a text/event-stream event with its id: line (sse_conn.c) */
	BUF_VARIANT_SSE_NO_ID, /* the same event without it */
	BUF_VARIANTS
};

struct buf {
	uint32_t refs;
	uint32_t len;      /* bytes in data, headroom included */
	uint16_t head;     /* data[head..len) is what goes on the wire */
	uint16_t payload;  /* data[payload..len) is the payload */
	struct buf *variant[BUF_VARIANTS]; /* other encodings of it, or NULL */
	uint8_t data[];
};

/* A new buf of len bytes with one reference, all of them sent; aborts when
 * out of memory (the server cannot do anything useful without memory for
 * frames). */
struct buf *buf_new(size_t len);

/* A new buf holding a copy of data, all of it sent. */
struct buf *buf_from(const void *data, size_t len);

/* A new buf holding a copy of payload after BUF_HEADROOM bytes, not framed
 * yet: head == payload. */
struct buf *buf_new_payload(const void *payload, size_t len);

/* The bytes to send. */
static inline uint8_t *buf_out(struct buf *b)
{
	return b->data + b->head;
}

static inline uint32_t buf_out_len(const struct buf *b)
{
	return b->len - b->head;
}

/* The payload, framed or not. */
static inline const void *buf_payload(const struct buf *b, size_t *len)
{
	*len = b->len - b->payload;
	return b->data + b->payload;
}

static inline struct buf *buf_ref(struct buf *b)
{
	b->refs++;
	return b;
}

/* b's variant v, or NULL when none was made yet. */
static inline struct buf *buf_variant(const struct buf *b, enum buf_variant v)
{
	return b->variant[v];
}

/* Keep encoded as b's variant v: b takes over the caller's reference (b
 * must have none yet). Returns encoded. */
struct buf *buf_set_variant(struct buf *b, enum buf_variant v, struct buf *encoded);

/* Drop a reference; the last one frees b and its variants. */
void buf_unref(struct buf *b);

#endif
