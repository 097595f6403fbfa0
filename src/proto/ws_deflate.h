/* ws_deflate.h: permessage-deflate (RFC 7692), server side.
 *
 * Both directions run without context takeover: every message is a deflate
 * stream of its own. That costs some ratio on tiny messages, and buys two
 * things a broadcaster needs: one compressed frame serves every recipient
 * (no per-connection dictionary), and no connection keeps a z_stream (one
 * compressor and one inflater per edge serve them all). */
#ifndef RINGCAST_WS_DEFLATE_H
#define RINGCAST_WS_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

struct buf;

/* What an accepted offer asks of us. */
struct ws_deflate_params {
	/* server_max_window_bits the client asked for (8..15), 0: not asked */
	uint8_t server_max_window_bits;
};

/* The Sec-WebSocket-Extensions header value(s) of a request, in order: pick
 * the first permessage-deflate offer we can honour (§5: an offer with an
 * unknown parameter, a duplicate or a bad value is declined, and the next
 * one is tried). Returns 1 with *p filled when one is accepted, 0 when none
 * is, -1 when the value is malformed (RFC 6455 §9.1's grammar): then no
 * offer in it, or in later headers, is trusted. Pure; call it once per
 * header line while it returns 0. */
int ws_deflate_negotiate(const char *value, size_t len, struct ws_deflate_params *p);

/* The response header for an accepted offer, CRLF included, into out (NUL-
 * terminated). Returns its length; 0 and "" when cap is too small. At most
 * WS_DEFLATE_ANSWER_MAX bytes with the NUL. */
#define WS_DEFLATE_ANSWER_MAX 160
size_t ws_deflate_answer(const struct ws_deflate_params *p, char *out, size_t cap);

/* The compressor, the inflater and their output buffer of one edge. */
struct ws_deflate;

/* max_message: the largest inflated message accepted (--max-message). NULL
 * when out of memory. */
struct ws_deflate *ws_deflate_new(uint64_t max_message);
void ws_deflate_free(struct ws_deflate *d);

/* A new buf holding payload as one compressed text frame: FIN, RSV1 and
 * TEXT, then the deflated bytes without the trailing 00 00 ff ff (§7.2.1). */
struct buf *ws_deflate_frame(struct ws_deflate *d, const void *payload, size_t len);

/* Inflate one whole message's payload as received (the trailer appended
 * here, §7.2.2). Returns 0 with the result in *out (valid until the next
 * call on d), WS_CLOSE_TOO_BIG as soon as it would exceed max_message (it
 * stops there: a small message cannot make us inflate without bound), or
 * WS_CLOSE_BAD_DATA for data that is not deflate or stops inside a block. */
uint16_t ws_inflate_message(struct ws_deflate *d, const uint8_t *in, size_t len, const uint8_t **out,
			    size_t *out_len);

#endif
