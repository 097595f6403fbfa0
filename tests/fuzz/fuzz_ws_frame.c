/* fuzz_ws_frame.c: libFuzzer harness for the WebSocket frame parser.
 *
 * The first input byte chooses the message limit and how to cut the rest,
 * which is what a client sent. The harness parses it whole and again in
 * pieces (each in a heap buffer of exactly its size, so ASan sees a read
 * past what was given), reduces both event streams to one form (data
 * messages joined up, control frames, the error) and aborts if they differ
 * or if any event breaks a promise of ws.h. Close frames also go through
 * ws_check_close_payload, whose verdict joins the trace.
 *
 * Build: clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
 *        src/proto/utf8.c src/proto/ws_frame.c tests/fuzz/fuzz_ws_frame.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws.h"

static const uint64_t fuzz_limits[8] = { 0, 1, 10, 125, 126, 1000, 65536, UINT64_MAX };

struct fuzz_trace {
	uint8_t *log;    /* records: kind, opcode, 8-byte length, payload */
	size_t len;
	uint8_t *msg;    /* the data message being joined up */
	size_t msg_len;
	bool in_msg;
	uint8_t ctl[125];
	size_t ctl_len;
	bool in_ctl;
	uint16_t error;
	uint64_t max_message;
};

#define FUZZ_CHECK(cond) do { if (!(cond)) abort(); } while (0)

static void fuzz_record(struct fuzz_trace *t, uint8_t kind, uint8_t op,
			const uint8_t *data, uint64_t len)
{
	t->log[t->len++] = kind;
	t->log[t->len++] = op;
	memcpy(t->log + t->len, &len, 8);
	t->len += 8;
	if (data) {
		memcpy(t->log + t->len, data, len);
		t->len += len;
	}
}

static void fuzz_close_frame(struct fuzz_trace *t)
{
	uint16_t code = 0;
	uint16_t err = ws_check_close_payload(t->ctl, t->ctl_len, &code);

	FUZZ_CHECK(err == 0 || err == WS_CLOSE_PROTOCOL || err == WS_CLOSE_BAD_DATA);
	if (err == 0)
		FUZZ_CHECK(t->ctl_len == 0 ? code == WS_CLOSE_NO_STATUS :
			   (code >= 1000 && code <= 1003) ||
			   (code >= 1007 && code <= 1011) ||
			   (code >= 3000 && code <= 4999));
	fuzz_record(t, 'V', 0, NULL, (uint64_t)err << 16 | code);
}

static void fuzz_event(struct fuzz_trace *t, const struct ws_event *ev)
{
	switch (ev->type) {
	case WS_EV_DATA:
		FUZZ_CHECK(ev->first == !t->in_msg);
		FUZZ_CHECK(ev->opcode == WS_OP_TEXT || ev->opcode == WS_OP_BINARY);
		FUZZ_CHECK(ev->len > 0 || ev->last);
		memcpy(t->msg + t->msg_len, ev->data, ev->len);
		t->msg_len += ev->len;
		FUZZ_CHECK(t->msg_len <= t->max_message);
		t->in_msg = !ev->last;
		if (ev->last) {
			if (ev->opcode == WS_OP_TEXT && !ev->compressed)
				FUZZ_CHECK(utf8_valid(t->msg, t->msg_len));
			fuzz_record(t, 'M', ev->opcode | (ev->compressed ? 0x40 : 0), t->msg, t->msg_len);
			t->msg_len = 0;
		}
		break;
	case WS_EV_CONTROL:
		FUZZ_CHECK(ev->first == !t->in_ctl);
		FUZZ_CHECK(ev->opcode == WS_OP_CLOSE || ev->opcode == WS_OP_PING ||
			   ev->opcode == WS_OP_PONG);
		FUZZ_CHECK(ev->len > 0 || (ev->first && ev->last));
		FUZZ_CHECK(t->ctl_len + ev->len <= sizeof(t->ctl));
		memcpy(t->ctl + t->ctl_len, ev->data, ev->len);
		t->ctl_len += ev->len;
		t->in_ctl = !ev->last;
		if (ev->last) {
			fuzz_record(t, 'C', ev->opcode, t->ctl, t->ctl_len);
			if (ev->opcode == WS_OP_CLOSE)
				fuzz_close_frame(t);
			t->ctl_len = 0;
		}
		break;
	case WS_EV_ERROR:
		FUZZ_CHECK(ev->close_code == WS_CLOSE_PROTOCOL ||
			   ev->close_code == WS_CLOSE_BAD_DATA ||
			   ev->close_code == WS_CLOSE_TOO_BIG);
		fuzz_record(t, 'E', 0, NULL, ev->close_code);
		t->error = ev->close_code;
		break;
	case WS_EV_NEED_MORE:
		abort();
	}
}

/* Feed one piece, copied into a buffer of exactly its size. */
static void fuzz_piece(struct fuzz_trace *t, struct ws_parser *p,
		       const uint8_t *data, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);
	struct ws_event ev;
	size_t off = 0, used;

	FUZZ_CHECK(buf);
	memcpy(buf, data, len);
	while (!t->error) {
		used = ws_parse(p, buf + off, len - off, &ev);
		FUZZ_CHECK(used <= len - off);
		if (ev.type == WS_EV_NEED_MORE) {
			FUZZ_CHECK(used == len - off);
			break;
		}
		if (ev.type != WS_EV_ERROR)
			FUZZ_CHECK(ev.data + ev.len == buf + off + used);
		fuzz_event(t, &ev);
		off += used;
	}
	if (t->error) {
		used = ws_parse(p, buf + off, len - off, &ev);
		FUZZ_CHECK(used == 0 && ev.type == WS_EV_ERROR && ev.close_code == t->error);
	}
	free(buf);
}

static void fuzz_trace_init(struct fuzz_trace *t, size_t size, uint64_t max_message)
{
	/* A frame takes at least six input bytes and adds its payload and at
	 * most two 10-byte records (a close frame and its verdict); the error
	 * adds one more record. So 6 * size + 16 bounds the log. */
	*t = (struct fuzz_trace){
		.log = malloc(6 * size + 16),
		.msg = malloc(size + 1),
		.max_message = max_message,
	};
	FUZZ_CHECK(t->log && t->msg);
}

static void fuzz_trace_free(struct fuzz_trace *t)
{
	free(t->log);
	free(t->msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_trace whole, pieces;
	struct ws_parser p;
	uint64_t max_message;
	unsigned chunk, seed;
	bool varied, deflate;
	size_t off = 0;

	if (size < 1)
		return 0;
	chunk = (data[0] & 0x0f) + 1u;
	max_message = fuzz_limits[(data[0] >> 4) & 7];
	seed = data[0];
	varied = data[0] & 0x80;
	/* shares its bit with chunk's parity: both matter, together or not */
	deflate = data[0] & 0x01;
	data++;
	size--;

	fuzz_trace_init(&whole, size, max_message);
	ws_parser_init(&p, max_message, deflate);
	fuzz_piece(&whole, &p, data, size);

	/* The top bit of the first byte chooses between pieces of `chunk`
	 * bytes and pieces of 0..2*chunk bytes from a small LCG, empty
	 * pieces included. */
	fuzz_trace_init(&pieces, size, max_message);
	ws_parser_init(&p, max_message, deflate);
	while (off < size && !pieces.error) {
		size_t n = chunk;

		if (varied) {
			seed = seed * 1103515245u + 12345u;
			n = (seed >> 16) % (2 * chunk + 1);
		}
		if (n > size - off)
			n = size - off;
		fuzz_piece(&pieces, &p, data + off, n);
		off += n;
	}

	FUZZ_CHECK(whole.len == pieces.len && !memcmp(whole.log, pieces.log, whole.len));
	fuzz_trace_free(&whole);
	fuzz_trace_free(&pieces);
	return 0;
}
