/* json_out.h: building outgoing JSON text by hand, fast and correctly escaped.
 *
 * Every broadcast is built once, so this is not per recipient; it still runs
 * per message, so it avoids a DOM. The builder is scratch space, reused for
 * every event; jbuf_to_payload copies what it holds into the buf that is
 * sent. */
#ifndef RINGCAST_JSON_OUT_H
#define RINGCAST_JSON_OUT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct jbuf {
	char *data;
	size_t len;
	size_t cap;
};

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
	return b->data;
}

/* A new buf (one ref) whose payload is the JSON, with room before it for a
 * transport's header (buf_new_payload): not framed yet. */
struct buf *jbuf_to_payload(const struct jbuf *b);

/* Escape s into out as a JSON string body (no quotes); for tests and tools.
 * Returns the escaped length; out needs up to 6 * n bytes. */
size_t json_escape(const char *s, size_t n, char *out);

#endif
