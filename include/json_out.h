/* json_out.h: building outgoing JSON text by hand, fast and correctly escaped.
 *
 * Every broadcast is built once, so this is not per recipient; it still runs
 * per message, so it avoids a DOM. The builder keeps WS_MAX_HEADER bytes free
 * at the front so a WebSocket header can be put right before the payload. */
#ifndef RINGCAST_JSON_OUT_H
#define RINGCAST_JSON_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct jbuf {
	char *data;  /* data[0..JBUF_HEADROOM) is reserved for a frame header */
	size_t len;  /* JSON bytes after the headroom */
	size_t cap;
};

#define JBUF_HEADROOM 10

void jbuf_init(struct jbuf *b);
void jbuf_free(struct jbuf *b);
void jbuf_reset(struct jbuf *b);

void jbuf_raw(struct jbuf *b, const char *s, size_t n);
void jbuf_lit(struct jbuf *b, const char *s); /* a NUL-terminated literal */
/* A JSON string: quotes added; ", \, control characters and U+2028/U+2029
 * escaped. s must be valid UTF-8 (the WebSocket layer guarantees that). */
void jbuf_str(struct jbuf *b, const char *s, size_t n);
void jbuf_u64(struct jbuf *b, uint64_t v);

/* The JSON built so far. */
static inline const char *jbuf_json(const struct jbuf *b)
{
	return b->data + JBUF_HEADROOM;
}

/* Encode it as one unmasked WebSocket text frame in a new buf (one ref). */
struct buf *jbuf_to_text_frame(struct jbuf *b);

/* Escape s into out as a JSON string body (no quotes); for tests and tools.
 * Returns the escaped length; out needs up to 6 * n bytes. */
size_t json_escape(const char *s, size_t n, char *out);

#endif
