/* fuzz_ws_deflate.c: libFuzzer harness for what a client sends a
 * permessage-deflate connection: its Sec-WebSocket-Extensions offers
 * (src/proto/ws_deflate_offer.c) and its compressed messages
 * (src/proto/ws_deflate.c).
 *
 * Besides "no crash, no sanitizer report" it checks what the server relies
 * on: an accepted offer has a window we can honour and an answer that
 * fits; inflating never gives more than the limit and answers only 0,
 * 1007 or 1009; and what inflated compresses and inflates back to itself. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ws.h"
#include "ws_deflate.h"
#include "fuzz_check.h"

#define FUZZ_LIMIT 4096

static struct ws_deflate *d;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!d)
		d = ws_deflate_new(FUZZ_LIMIT);
	CHECK(d);

	/* an exact-size copy, so reading past the value is caught */
	uint8_t *v = malloc(size ? size : 1);
	if (!v)
		return 0;
	memcpy(v, data, size);

	struct ws_deflate_params p = { 0 };
	int r = ws_deflate_negotiate((const char *)v, size, &p);
	CHECK(r >= -1 && r <= 1);
	if (r == 1) {
		char answer[WS_DEFLATE_ANSWER_MAX];
		CHECK(p.server_max_window_bits == 0 ||
		      (p.server_max_window_bits >= 8 && p.server_max_window_bits <= 15));
		CHECK(ws_deflate_answer(&p, answer, sizeof(answer)) > 0);
	}

	const uint8_t *out;
	size_t n;
	uint16_t code = ws_inflate_message(d, v, size, &out, &n);
	CHECK(code == 0 || code == WS_CLOSE_BAD_DATA || code == WS_CLOSE_TOO_BIG);
	if (code == 0) {
		CHECK(n <= FUZZ_LIMIT);
		size_t len = n;
		uint8_t *copy = malloc(len ? len : 1);
		CHECK(copy);
		memcpy(copy, out, len);
		struct buf *f = ws_deflate_frame(d, copy, len);
		CHECK(ws_inflate_message(d, f->data + f->payload, f->len - f->payload, &out, &n) == 0);
		CHECK(n == len && !memcmp(out, copy, len));
		buf_unref(f);
		free(copy);
	}
	free(v);
	return 0;
}
