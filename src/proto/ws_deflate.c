/* ws_deflate.c: compressing and inflating whole messages for
 * permessage-deflate, one stream per message (no context takeover).
 *
 * zlib, not libdeflate: measured here (perf/deflate_codecs), libdeflate
 * compresses a 16 KiB chat event 1.5 times as fast at level 1, a 1 KiB one
 * 1.2 times, and inflates no faster. zlib's sync flush is exactly the
 * RFC's framing (§7.2.1), and its streaming inflate reads a message
 * straight from the receive buffer, trailer fed after it, stopping at
 * --max-message; libdeflate ends every stream with a final block and wants
 * one contiguous, finished stream, hence a copy per message and a trailer
 * trick. perf/README.md ("permessage-deflate") has the numbers. */
#include "ws_deflate.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "buf.h"
#include "ws.h"

/* §7.2.1: a sync flush ends with an empty stored block; its last four
 * bytes are left off the wire and put back by the receiver. */
static const uint8_t ws_deflate_trailer[4] = { 0x00, 0x00, 0xff, 0xff };

#define WS_RSV1 0x40

/* Level 1: on a 16 KiB chat event it compresses 6 times as fast as the
 * default level 6 for 18 % more bytes (0.295 of the payload against 0.249),
 * and the same below 1 KiB; a history event is compressed for each client
 * that joins, so speed wins (perf/README.md). */
#define WS_DEFLATE_LEVEL Z_BEST_SPEED
/* Raw deflate (negative: no zlib header), the largest window: the client
 * inflates with whatever it has, and ws_conn.c sends compressed only
 * messages that fit the window it asked for. */
#define WS_DEFLATE_WINDOW_BITS (-15)
#define WS_DEFLATE_MEM_LEVEL 8

struct ws_deflate {
	z_stream deflater;
	z_stream inflater;
	uint64_t max_message;
	uint8_t *scratch;  /* compressed bytes before they get their buf */
	size_t scratch_cap;
	uint8_t *out;      /* the last inflated message */
	size_t out_cap;
};

struct ws_deflate *ws_deflate_new(uint64_t max_message)
{
	struct ws_deflate *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->max_message = max_message;
	if (deflateInit2(&d->deflater, WS_DEFLATE_LEVEL, Z_DEFLATED, WS_DEFLATE_WINDOW_BITS,
			 WS_DEFLATE_MEM_LEVEL, Z_DEFAULT_STRATEGY) != Z_OK) {
		free(d);
		return NULL;
	}
	if (inflateInit2(&d->inflater, WS_DEFLATE_WINDOW_BITS) != Z_OK) {
		deflateEnd(&d->deflater);
		free(d);
		return NULL;
	}
	return d;
}

void ws_deflate_free(struct ws_deflate *d)
{
	if (!d)
		return;
	deflateEnd(&d->deflater);
	inflateEnd(&d->inflater);
	free(d->scratch);
	free(d->out);
	free(d);
}

/* Grow *p to at least want bytes (doubling); aborts when out of memory, as
 * buf_new does: no frame can be built without it. */
static void grow(uint8_t **p, size_t *cap, size_t want)
{
	if (*cap >= want)
		return;
	size_t n = *cap ? *cap : 4096;
	while (n < want)
		n *= 2;
	uint8_t *q = realloc(*p, n);
	if (!q)
		abort();
	*p = q;
	*cap = n;
}

struct buf *ws_deflate_frame(struct ws_deflate *d, const void *payload, size_t len)
{
	z_stream *z = &d->deflater;
	/* deflateBound is for Z_FINISH; a sync flush adds at most an empty
	 * stored block and a partial byte */
	grow(&d->scratch, &d->scratch_cap, deflateBound(z, len) + 8);
	deflateReset(z);
	z->next_in = (Bytef *)payload;
	z->avail_in = (uInt)len;
	z->next_out = d->scratch;
	z->avail_out = (uInt)d->scratch_cap;
	/* one call does it: the output has room for all of it */
	if (deflate(z, Z_SYNC_FLUSH) != Z_OK || z->avail_in || !z->avail_out)
		abort();
	size_t n = d->scratch_cap - z->avail_out;
	if (n < sizeof(ws_deflate_trailer) ||
	    memcmp(d->scratch + n - sizeof(ws_deflate_trailer), ws_deflate_trailer, sizeof(ws_deflate_trailer)))
		abort(); /* zlib always ends a sync flush so */
	n -= sizeof(ws_deflate_trailer);
	size_t h = ws_header_len(n);
	struct buf *b = buf_new(h + n);
	ws_write_header(b->data, WS_OP_TEXT, n);
	b->data[0] |= WS_RSV1;
	memcpy(b->data + h, d->scratch, n);
	b->payload = (uint16_t)h; /* framed: sent as it is */
	return b;
}

uint16_t ws_inflate_message(struct ws_deflate *d, const uint8_t *in, size_t len, const uint8_t **out,
			    size_t *out_len)
{
	z_stream *z = &d->inflater;
	/* one byte past the limit: filling it tells a message over it */
	size_t limit = d->max_message + 1;
	size_t used = 0;
	bool trailer = false;

	inflateReset(z);
	z->next_in = (Bytef *)in;
	z->avail_in = (uInt)len;
	for (;;) {
		if (used == d->out_cap) {
			if (used >= limit)
				return WS_CLOSE_TOO_BIG;
			grow(&d->out, &d->out_cap, used + 1);
		}
		size_t room = (d->out_cap < limit ? d->out_cap : limit) - used;
		z->next_out = d->out + used;
		z->avail_out = (uInt)room;
		int rc = inflate(z, Z_SYNC_FLUSH);
		used += room - z->avail_out;
		if (used >= limit)
			return WS_CLOSE_TOO_BIG;
		if (rc == Z_STREAM_END)
			break; /* a final block (§7.2.3.3 allows it); what follows is padding */
		if (rc != Z_OK && rc != Z_BUF_ERROR)
			return WS_CLOSE_BAD_DATA;
		if (!z->avail_out)
			continue; /* maybe more to come: room first */
		if (z->avail_in)
			return WS_CLOSE_BAD_DATA; /* stuck with input and room: cannot happen, but never spin */
		if (trailer) {
			/* The trailer completes an empty stored block only
			 * if the message stopped between blocks: zlib is
			 * then waiting for the next block's header (128). */
			if (!(z->data_type & 128))
				return WS_CLOSE_BAD_DATA;
			break;
		}
		trailer = true;
		z->next_in = (Bytef *)ws_deflate_trailer;
		z->avail_in = sizeof(ws_deflate_trailer);
	}
	*out = d->out;
	*out_len = used;
	return 0;
}
