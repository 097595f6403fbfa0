/* test_ws_frame.c: the RFC 6455 frame codec, rule by rule.
 *
 * Most tests build the bytes a client sends ("the wire"), describe what the
 * parser must make of them ("the trace": each complete data message with
 * its payload joined up, each control frame, the error that ends it all)
 * and hand both to expect_stream. That feeds the wire whole, one byte at a
 * time, split at every offset and in chunks of 2..9 bytes, each piece in a
 * heap buffer of exactly its size (so ASan sees any read past what was
 * given), and checks that every way of feeding gives the same trace. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ws.h"

#define FIN 0x80
#define TEXT (FIN | WS_OP_TEXT)
#define BINARY (FIN | WS_OP_BINARY)
#define CLOSE (FIN | WS_OP_CLOSE)
#define PING (FIN | WS_OP_PING)
#define PONG (FIN | WS_OP_PONG)
#define RSV1 0x40
/* A compressed message in a trace: its opcode with this bit. */
#define COMPRESSED 0x40

#define WIRE_MAX (70 * 1024)
#define TRACE_MAX (140 * 1024)

/* Wires longer than this are split at sampled offsets only: every offset of
 * a 64 KiB frame would take minutes under ASan for nothing new. */
#define SPLIT_ALL_MAX 2048

/* The masking key of the examples in §5.7. */
static const uint8_t rfc_mask[4] = { 0x37, 0xfa, 0x21, 0x3d };

static uint8_t wire[WIRE_MAX];
static size_t wire_len;

static void wire_reset(void)
{
	wire_len = 0;
}

static void wire_put(const void *bytes, size_t len)
{
	assert_true(wire_len + len <= WIRE_MAX);
	memcpy(wire + wire_len, bytes, len);
	wire_len += len;
}

/* A masked client frame with its length in the given form: 7 (only in the
 * length byte), 16 or 64 bits, whatever the length. */
static void wire_frame_form(uint8_t b0, unsigned form, const void *payload, size_t len)
{
	const uint8_t *p = payload;
	uint8_t hdr[14];
	size_t h = 0;

	hdr[h++] = b0;
	if (form == 7) {
		hdr[h++] = 0x80 | (uint8_t)len;
	} else if (form == 16) {
		hdr[h++] = 0x80 | 126;
		hdr[h++] = (uint8_t)(len >> 8);
		hdr[h++] = (uint8_t)len;
	} else {
		hdr[h++] = 0x80 | 127;
		for (int shift = 56; shift >= 0; shift -= 8)
			hdr[h++] = (uint8_t)((uint64_t)len >> shift);
	}
	memcpy(hdr + h, rfc_mask, 4);
	h += 4;
	wire_put(hdr, h);
	assert_true(wire_len + len <= WIRE_MAX);
	for (size_t i = 0; i < len; i++)
		wire[wire_len + i] = p[i] ^ rfc_mask[i & 3];
	wire_len += len;
}

static void wire_frame(uint8_t b0, const void *payload, size_t len)
{
	wire_frame_form(b0, len < 126 ? 7 : len <= 0xffff ? 16 : 64, payload, len);
}

static void wire_text(uint8_t b0, const char *s)
{
	wire_frame(b0, s, strlen(s));
}

/* A trace is a list of records: kind ('M' message, 'C' control frame,
 * 'E' error), opcode, 8-byte length (the close code for 'E'), payload. */
struct trace {
	uint8_t log[TRACE_MAX];
	size_t len;
};

static struct trace want, got;

static void trace_add(struct trace *t, char kind, uint8_t op, const void *data, uint64_t len)
{
	size_t n = kind == 'E' ? 0 : len;

	assert_true(t->len + 10 + n <= TRACE_MAX);
	t->log[t->len++] = (uint8_t)kind;
	t->log[t->len++] = op;
	memcpy(t->log + t->len, &len, 8);
	t->len += 8;
	if (n)
		memcpy(t->log + t->len, data, n);
	t->len += n;
}

static void want_message(uint8_t op, const void *data, size_t len)
{
	trace_add(&want, 'M', op, data, len);
}

static void want_text(const char *s)
{
	want_message(WS_OP_TEXT, s, strlen(s));
}

static void want_control(uint8_t op, const void *data, size_t len)
{
	trace_add(&want, 'C', op, data, len);
}

static void want_error(uint16_t code)
{
	trace_add(&want, 'E', 0, NULL, code);
}

static void trace_dump(const char *name, const struct trace *t)
{
	size_t i = 0;

	fprintf(stderr, "%s:\n", name);
	while (i < t->len) {
		char kind = (char)t->log[i];
		uint64_t len;

		memcpy(&len, t->log + i + 2, 8);
		fprintf(stderr, "  %c op=%u len=%llu ", kind, t->log[i + 1],
			(unsigned long long)len);
		i += 10;
		if (kind == 'E')
			len = 0;
		for (uint64_t k = 0; k < len && k < 40; k++) {
			uint8_t c = t->log[i + k];

			fprintf(stderr, c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
		}
		fprintf(stderr, "\n");
		i += len;
	}
}

/* Turns the event stream into a trace, checking on the way the promises of
 * ws.h about each event: flags, empty chunks, where data points. */
struct collector {
	struct ws_parser p;
	uint8_t msg[WIRE_MAX];
	size_t msg_len;
	uint8_t msg_op;
	bool in_msg;
	uint8_t ctl[125];
	size_t ctl_len;
	bool in_ctl;
	uint16_t error;
};

static struct collector col;
/* Parse as a connection that negotiated permessage-deflate. */
static bool deflate_on;

static void collect_start(uint64_t max_message)
{
	memset(&col, 0, sizeof(col));
	ws_parser_init(&col.p, max_message, deflate_on);
	got.len = 0;
}

static void collect_event(const struct ws_event *ev)
{
	switch (ev->type) {
	case WS_EV_DATA: {
		uint8_t op = ev->opcode | (ev->compressed ? COMPRESSED : 0);
		assert_int_equal(ev->first, !col.in_msg);
		if (col.in_msg)
			assert_int_equal(op, col.msg_op);
		assert_true(ev->opcode == WS_OP_TEXT || ev->opcode == WS_OP_BINARY);
		assert_true(deflate_on || !ev->compressed);
		assert_true(ev->len > 0 || ev->last);
		assert_true(col.msg_len + ev->len <= WIRE_MAX);
		memcpy(col.msg + col.msg_len, ev->data, ev->len);
		col.msg_len += ev->len;
		col.msg_op = op;
		col.in_msg = !ev->last;
		if (ev->last) {
			trace_add(&got, 'M', op, col.msg, col.msg_len);
			col.msg_len = 0;
		}
		break;
	}
	case WS_EV_CONTROL:
		assert_int_equal(ev->first, !col.in_ctl);
		assert_true(ev->opcode == WS_OP_CLOSE || ev->opcode == WS_OP_PING ||
			    ev->opcode == WS_OP_PONG);
		assert_true(ev->len > 0 || (ev->first && ev->last));
		assert_true(col.ctl_len + ev->len <= sizeof(col.ctl));
		memcpy(col.ctl + col.ctl_len, ev->data, ev->len);
		col.ctl_len += ev->len;
		col.in_ctl = !ev->last;
		if (ev->last) {
			trace_add(&got, 'C', ev->opcode, col.ctl, col.ctl_len);
			col.ctl_len = 0;
		}
		break;
	case WS_EV_ERROR:
		assert_int_not_equal(ev->close_code, 0);
		trace_add(&got, 'E', 0, NULL, ev->close_code);
		col.error = ev->close_code;
		break;
	case WS_EV_NEED_MORE:
		fail_msg("NEED_MORE is not an event to collect");
	}
}

/* Feed one piece until the parser wants more or dies. */
static void collect_piece(uint8_t *buf, size_t len)
{
	size_t off = 0;

	while (!col.error) {
		struct ws_event ev;
		size_t used = ws_parse(&col.p, buf + off, len - off, &ev);

		assert_true(used <= len - off);
		if (ev.type == WS_EV_NEED_MORE) {
			assert_int_equal(used, len - off);
			return;
		}
		/* A chunk is handed back as soon as it is unmasked. */
		if (ev.type == WS_EV_DATA || ev.type == WS_EV_CONTROL)
			assert_ptr_equal(ev.data + ev.len, buf + off + used);
		collect_event(&ev);
		off += used;
	}
	/* Dead stays dead: the same error, nothing consumed. */
	for (int i = 0; i < 2; i++) {
		struct ws_event ev;

		assert_int_equal(ws_parse(&col.p, buf + off, len - off, &ev), 0);
		assert_int_equal(ev.type, WS_EV_ERROR);
		assert_int_equal(ev.close_code, col.error);
	}
}

/* Feed the wire as pieces: the first ends at `first`, then `step` bytes
 * each. Each piece gets its own heap buffer of exactly its length. */
static void collect_wire(uint64_t max_message, size_t first, size_t step)
{
	size_t off = 0, n = first;

	collect_start(max_message);
	for (; off < wire_len && !col.error; n = step) {
		uint8_t *piece;

		if (n > wire_len - off)
			n = wire_len - off;
		piece = malloc(n ? n : 1);
		assert_non_null(piece);
		memcpy(piece, wire + off, n);
		collect_piece(piece, n);
		free(piece);
		off += n;
	}
}

static void check_trace(const char *how, size_t a, size_t b)
{
	if (got.len == want.len && !memcmp(got.log, want.log, want.len))
		return;
	trace_dump("wanted", &want);
	trace_dump("got", &got);
	fail_msg("trace differs when fed %s (%zu, %zu)", how, a, b);
}

static bool split_here(size_t at)
{
	return wire_len <= SPLIT_ALL_MAX || at < 32 || wire_len - at < 32 ||
	       at % 1021 == 0;
}

static void expect_stream(uint64_t max_message)
{
	collect_wire(max_message, wire_len, wire_len);
	check_trace("whole", wire_len, 0);
	collect_wire(max_message, 1, 1);
	check_trace("byte by byte", 1, 1);
	for (size_t at = 0; at <= wire_len; at++) {
		if (!split_here(at))
			continue;
		collect_wire(max_message, at, wire_len);
		check_trace("split at", at, 0);
	}
	for (size_t step = 2; step <= 9; step++) {
		collect_wire(max_message, step, step);
		check_trace("in chunks of", step, step);
	}
}

static int reset(void **state)
{
	(void)state;
	wire_reset();
	want.len = 0;
	deflate_on = false;
	return 0;
}

/* §5.7 examples. */

static void test_rfc_masked_hello_is_one_text_message(void **state)
{
	static const uint8_t hello[] = {
		0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
	};

	(void)state;
	wire_put(hello, sizeof(hello));
	want_text("Hello");
	expect_stream(1024);
}

static void test_rfc_unmasked_hello_is_a_protocol_error(void **state)
{
	static const uint8_t hello[] = { 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };

	(void)state;
	wire_put(hello, sizeof(hello));
	want_error(WS_CLOSE_PROTOCOL);
	expect_stream(1024);
}

static void test_rfc_fragmented_hel_lo_is_one_message(void **state)
{
	(void)state;
	wire_text(WS_OP_TEXT, "Hel");
	wire_text(FIN | WS_OP_CONT, "lo");
	want_text("Hello");
	expect_stream(1024);
}

static void test_rfc_ping_and_masked_pong_are_control_events(void **state)
{
	static const uint8_t pong[] = {
		0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
	};

	(void)state;
	wire_text(PING, "Hello");
	wire_put(pong, sizeof(pong));
	want_control(WS_OP_PING, "Hello", 5);
	want_control(WS_OP_PONG, "Hello", 5);
	expect_stream(1024);
}

static void test_rfc_256_bytes_use_the_16_bit_length(void **state)
{
	uint8_t payload[256];

	(void)state;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7);
	wire_frame(BINARY, payload, sizeof(payload));
	assert_memory_equal(wire, ((uint8_t[]){ 0x82, 0xfe, 0x01, 0x00 }), 4);
	want_message(WS_OP_BINARY, payload, sizeof(payload));
	expect_stream(1024);
}

static void test_rfc_64_kib_uses_the_64_bit_length(void **state)
{
	static uint8_t payload[65536];

	(void)state;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 13 + (i >> 8));
	wire_frame(BINARY, payload, sizeof(payload));
	assert_memory_equal(wire, ((uint8_t[]){ 0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0 }), 10);
	want_message(WS_OP_BINARY, payload, sizeof(payload));
	expect_stream(65536);
}

/* Lengths. */

static void test_lengths_at_each_form_boundary_are_read_right(void **state)
{
	static const size_t lens[] = { 0, 1, 125, 126, 127, 65535, 65536 };
	static uint8_t payload[65536];

	(void)state;
	memset(payload, 'z', sizeof(payload));
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		reset(NULL);
		wire_frame(TEXT, payload, lens[i]);
		wire_text(TEXT, "next");
		want_message(WS_OP_TEXT, payload, lens[i]);
		want_text("next");
		expect_stream(65536);
	}
}

static void test_non_minimal_lengths_are_accepted(void **state)
{
	(void)state;
	wire_frame_form(TEXT, 16, "five!", 5);
	wire_frame_form(TEXT, 64, "five?", 5);
	wire_frame_form(PING, 16, "p", 1);
	wire_frame_form(PONG, 64, "", 0);
	want_text("five!");
	want_text("five?");
	want_control(WS_OP_PING, "p", 1);
	want_control(WS_OP_PONG, "", 0);
	expect_stream(1024);
}

static void test_64_bit_length_with_top_bit_set_is_a_protocol_error(void **state)
{
	static const uint8_t huge[] = {
		0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x37, 0xfa, 0x21, 0x3d
	};

	(void)state;
	wire_put(huge, sizeof(huge));
	want_error(WS_CLOSE_PROTOCOL);
	/* The top bit is a protocol error whatever the limit. */
	expect_stream(UINT64_MAX);
	expect_stream(16);
}

/* Header rules. */

static void test_unmasked_frames_are_protocol_errors(void **state)
{
	static const uint8_t unmasked[][2] = {
		{ TEXT, 0x00 }, { BINARY, 0x00 }, { PING, 0x00 }, { CLOSE, 0x00 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(unmasked) / sizeof(unmasked[0]); i++) {
		reset(NULL);
		wire_text(TEXT, "ok");
		wire_put(unmasked[i], 2);
		want_text("ok");
		want_error(WS_CLOSE_PROTOCOL);
		expect_stream(1024);
	}
}

static void test_rsv_bits_are_protocol_errors(void **state)
{
	(void)state;
	for (uint8_t rsv = 0x10; rsv <= 0x70; rsv += 0x10) {
		reset(NULL);
		wire_text(TEXT | rsv, "compressed?");
		want_error(WS_CLOSE_PROTOCOL);
		expect_stream(1024);

		reset(NULL);
		wire_text(PING | rsv, "");
		want_error(WS_CLOSE_PROTOCOL);
		expect_stream(1024);
	}
}

static void test_reserved_opcodes_are_protocol_errors(void **state)
{
	static const uint8_t reserved[] = { 3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf };

	(void)state;
	for (size_t i = 0; i < sizeof(reserved); i++) {
		reset(NULL);
		wire_text(FIN | reserved[i], "x");
		want_error(WS_CLOSE_PROTOCOL);
		expect_stream(1024);

		/* Also inside a fragmented message. */
		reset(NULL);
		wire_text(WS_OP_TEXT, "a");
		wire_text(reserved[i], "x");
		want_error(WS_CLOSE_PROTOCOL);
		expect_stream(1024);
	}
}

static void test_control_payload_over_125_is_a_protocol_error(void **state)
{
	static const uint8_t ops[] = { PING, PONG, CLOSE };
	uint8_t payload[126];

	(void)state;
	memset(payload, 'p', sizeof(payload));
	for (size_t i = 0; i < sizeof(ops); i++) {
		reset(NULL);
		wire_frame(ops[i], payload, 126);
		want_error(WS_CLOSE_PROTOCOL);
		expect_stream(1 << 20);

		reset(NULL);
		wire_frame_form(ops[i], 64, payload, 126);
		want_error(WS_CLOSE_PROTOCOL);
		expect_stream(1 << 20);
	}
}

static void test_control_payload_of_125_is_accepted(void **state)
{
	uint8_t payload[125];

	(void)state;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(0x80 + i); /* not UTF-8, and need not be */
	wire_frame(PING, payload, sizeof(payload));
	want_control(WS_OP_PING, payload, sizeof(payload));
	/* Control frames do not count toward the message limit. */
	expect_stream(1);
}

static void test_fragmented_control_frames_are_protocol_errors(void **state)
{
	static const uint8_t ops[] = { WS_OP_PING, WS_OP_PONG, WS_OP_CLOSE };

	(void)state;
	for (size_t i = 0; i < sizeof(ops); i++) {
		reset(NULL);
		wire_text(ops[i], "part");
		want_error(WS_CLOSE_PROTOCOL);
		expect_stream(1024);
	}
}

static void test_control_frames_interleave_with_fragments(void **state)
{
	(void)state;
	wire_text(WS_OP_TEXT, "Hel\xce");         /* cut inside κ */
	wire_text(PING, "\xff not text");
	wire_text(WS_OP_CONT, "\xba");
	wire_text(PONG, "");
	wire_text(WS_OP_CONT, " wor");
	wire_frame(CLOSE, "\x03\xe8" "bye", 5);
	wire_text(FIN | WS_OP_CONT, "ld");
	want_control(WS_OP_PING, "\xff not text", 10);
	want_control(WS_OP_PONG, "", 0);
	want_control(WS_OP_CLOSE, "\x03\xe8" "bye", 5);
	want_text("Hel\xce\xba world");
	expect_stream(1024);
}

static void test_continuation_without_open_message_is_a_protocol_error(void **state)
{
	(void)state;
	wire_text(FIN | WS_OP_CONT, "orphan");
	want_error(WS_CLOSE_PROTOCOL);
	expect_stream(1024);

	/* Nor after the message before it has ended. */
	reset(NULL);
	wire_text(TEXT, "done");
	wire_text(WS_OP_CONT, "more");
	want_text("done");
	want_error(WS_CLOSE_PROTOCOL);
	expect_stream(1024);
}

static void test_new_data_frame_inside_fragmented_message_is_a_protocol_error(void **state)
{
	static const uint8_t b0[] = { TEXT, BINARY, WS_OP_TEXT, WS_OP_BINARY };

	(void)state;
	for (size_t i = 0; i < sizeof(b0); i++) {
		reset(NULL);
		wire_text(WS_OP_BINARY, "open");
		wire_text(b0[i], "new");
		want_error(WS_CLOSE_PROTOCOL);
		expect_stream(1024);
	}
}

/* Events. */

static void test_empty_final_frame_gives_one_event_with_last(void **state)
{
	(void)state;
	wire_text(TEXT, "");
	wire_text(BINARY, "");
	wire_text(WS_OP_TEXT, "abc");
	wire_text(FIN | WS_OP_CONT, "");
	want_text("");
	want_message(WS_OP_BINARY, "", 0);
	want_text("abc");
	expect_stream(1024);
}

static void test_empty_fragments_in_the_middle_give_no_event(void **state)
{
	struct ws_parser p;
	struct ws_event ev;
	size_t used;

	(void)state;
	wire_text(WS_OP_TEXT, "");
	wire_text(WS_OP_CONT, "ab");
	wire_text(WS_OP_CONT, "");
	wire_text(FIN | WS_OP_CONT, "");
	wire_text(WS_OP_BINARY, "");
	wire_text(FIN | WS_OP_CONT, "");
	want_text("ab");
	want_message(WS_OP_BINARY, "", 0);
	expect_stream(1024);

	ws_parser_init(&p, 1024, false);
	used = ws_parse(&p, wire, wire_len, &ev);
	assert_int_equal(ev.type, WS_EV_DATA);
	assert_true(ev.first);
	assert_false(ev.last);
	assert_int_equal(ev.len, 2);
	assert_memory_equal(ev.data, "ab", 2);
	assert_int_equal(used, 6 + 8);
	used += ws_parse(&p, wire + used, wire_len - used, &ev);
	assert_int_equal(ev.type, WS_EV_DATA);
	assert_false(ev.first);
	assert_true(ev.last);
	assert_int_equal(ev.len, 0);
	used += ws_parse(&p, wire + used, wire_len - used, &ev);
	assert_int_equal(ev.type, WS_EV_DATA);
	assert_int_equal(ev.opcode, WS_OP_BINARY);
	assert_true(ev.first);
	assert_true(ev.last);
	assert_int_equal(ev.len, 0);
	assert_int_equal(used, wire_len);
}

static void test_empty_control_frame_gives_one_event(void **state)
{
	struct ws_parser p;
	struct ws_event ev;

	(void)state;
	wire_text(CLOSE, "");
	want_control(WS_OP_CLOSE, "", 0);
	expect_stream(1024);

	ws_parser_init(&p, 1024, false);
	assert_int_equal(ws_parse(&p, wire, wire_len, &ev), 6);
	assert_int_equal(ev.type, WS_EV_CONTROL);
	assert_int_equal(ev.opcode, WS_OP_CLOSE);
	assert_true(ev.first);
	assert_true(ev.last);
	assert_int_equal(ev.len, 0);
}

static void test_chunks_stop_at_the_frame_end_and_are_unmasked_in_place(void **state)
{
	struct ws_parser p;
	struct ws_event ev;
	size_t used;

	(void)state;
	wire_text(WS_OP_TEXT, "first");
	wire_text(PING, "ping");
	wire_text(FIN | WS_OP_CONT, "second");
	ws_parser_init(&p, 1024, false);

	used = ws_parse(&p, wire, wire_len, &ev);
	assert_int_equal(used, 6 + 5);
	assert_int_equal(ev.type, WS_EV_DATA);
	assert_int_equal(ev.opcode, WS_OP_TEXT);
	assert_ptr_equal(ev.data, wire + 6);
	assert_memory_equal(wire + 6, "first", 5);
	/* The next frame is still masked: nothing past the chunk is touched. */
	assert_memory_not_equal(wire + used + 6, "ping", 4);

	used += ws_parse(&p, wire + used, wire_len - used, &ev);
	assert_int_equal(used, 11 + 6 + 4);
	assert_int_equal(ev.type, WS_EV_CONTROL);
	assert_int_equal(ev.len, 4);
	assert_memory_equal(ev.data, "ping", 4);

	used += ws_parse(&p, wire + used, wire_len - used, &ev);
	assert_int_equal(used, wire_len);
	assert_int_equal(ev.type, WS_EV_DATA);
	assert_false(ev.first);
	assert_true(ev.last);
	assert_memory_equal(ev.data, "second", 6);
}

/* Unmasking goes eight bytes at a time: every length and start phase of
 * the mask must come out right, whatever the split. */
static void test_mask_phase_survives_every_split(void **state)
{
	uint8_t payload[300];

	(void)state;
	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 31 + 7);
	for (size_t len = 0; len <= 40; len++) {
		reset(NULL);
		wire_frame(BINARY, payload, len);
		want_message(WS_OP_BINARY, payload, len);
		expect_stream(1024);
	}
	reset(NULL);
	wire_frame(WS_OP_BINARY, payload, 150);
	wire_frame(FIN | WS_OP_CONT, payload + 150, 150);
	want_message(WS_OP_BINARY, payload, 300);
	expect_stream(1024);
}

static void test_truncated_input_only_asks_for_more(void **state)
{
	uint8_t pristine[64];
	struct ws_parser p;
	struct ws_event ev;

	(void)state;
	wire_text(TEXT, "one");
	wire_text(WS_OP_TEXT, "tw");
	wire_text(FIN | WS_OP_CONT, "o");
	assert_true(wire_len <= sizeof(pristine));
	memcpy(pristine, wire, wire_len);
	for (size_t cut = 0; cut < wire_len; cut++) {
		size_t off = 0, messages = 0;

		memcpy(wire, pristine, wire_len);
		ws_parser_init(&p, 1024, false);
		do {
			off += ws_parse(&p, wire + off, cut - off, &ev);
			assert_int_not_equal(ev.type, WS_EV_ERROR);
			messages += ev.type == WS_EV_DATA && ev.last;
		} while (ev.type != WS_EV_NEED_MORE);
		assert_int_equal(off, cut);
		/* "one" is complete from byte 9 on, "two" only at the end. */
		assert_int_equal(messages, cut >= 9 ? 1 : 0);
	}
}

/* UTF-8 in text messages. */

static void test_text_split_inside_a_character_across_fragments_is_valid(void **state)
{
	static const char kosme[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";

	(void)state;
	for (size_t at = 0; at <= sizeof(kosme) - 1; at++) {
		reset(NULL);
		wire_frame(WS_OP_TEXT, kosme, at);
		wire_frame(FIN | WS_OP_CONT, kosme + at, sizeof(kosme) - 1 - at);
		want_text(kosme);
		expect_stream(1024);
	}
}

/* Autobahn 6.3.1: the ED could still begin a valid character, the A0 after
 * it cannot. The error comes on the A0, and no chunk holding it is handed
 * out as data. */
static void test_invalid_text_fails_at_the_offending_byte(void **state)
{
	static const char text[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80" "edited";
	const size_t a0 = 6 + 12; /* header, then κόσμε and ED */
	struct ws_parser p;
	struct ws_event ev;
	size_t data = 0, i;

	(void)state;
	wire_text(TEXT, text);
	want_error(WS_CLOSE_BAD_DATA);
	expect_stream(1024);

	ws_parser_init(&p, 1024, false);
	for (i = 0; i < wire_len; i++) {
		uint8_t byte = wire[i];

		assert_int_equal(ws_parse(&p, &byte, 1, &ev), 1);
		if (ev.type == WS_EV_ERROR)
			break;
		if (ev.type == WS_EV_DATA)
			data += ev.len;
	}
	assert_int_equal(i, a0);
	assert_int_equal(ev.close_code, WS_CLOSE_BAD_DATA);
	assert_int_equal(data, 12);

	/* Fed whole, the error is the first event: no data before it. */
	reset(NULL);
	wire_text(TEXT, text);
	ws_parser_init(&p, 1024, false);
	ws_parse(&p, wire, wire_len, &ev);
	assert_int_equal(ev.type, WS_EV_ERROR);
	assert_int_equal(ev.close_code, WS_CLOSE_BAD_DATA);
}

static void test_invalid_text_in_a_fragment_fails_before_the_message_ends(void **state)
{
	(void)state;
	wire_text(WS_OP_TEXT, "fine so far \xc0\xaf");
	want_error(WS_CLOSE_BAD_DATA);
	expect_stream(1024);

	reset(NULL);
	wire_text(WS_OP_TEXT, "fine \xe2\x82");
	wire_text(WS_OP_CONT, "\xac then bad \xff");
	want_error(WS_CLOSE_BAD_DATA);
	expect_stream(1024);
}

static void test_text_ending_inside_a_character_fails_at_message_end(void **state)
{
	(void)state;
	wire_text(TEXT, "cut \xce");
	want_error(WS_CLOSE_BAD_DATA);
	expect_stream(1024);

	reset(NULL);
	wire_text(WS_OP_TEXT, "cut \xf0\x9f");
	wire_text(FIN | WS_OP_CONT, "");
	want_error(WS_CLOSE_BAD_DATA);
	expect_stream(1024);
}

static void test_binary_is_data_without_a_utf8_check(void **state)
{
	static const uint8_t bytes[] = { 0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x80, 0xce };

	(void)state;
	wire_frame(BINARY, bytes, sizeof(bytes));
	wire_frame(WS_OP_BINARY, bytes, 3);
	wire_frame(FIN | WS_OP_CONT, bytes + 3, sizeof(bytes) - 3);
	want_message(WS_OP_BINARY, bytes, sizeof(bytes));
	want_message(WS_OP_BINARY, bytes, sizeof(bytes));
	expect_stream(1024);
}

static void test_utf8_state_starts_fresh_with_each_text_message(void **state)
{
	(void)state;
	/* A binary message ending in a lead byte must not let the next text
	 * message begin with a continuation byte. */
	wire_frame(BINARY, "\xce", 1);
	wire_frame(TEXT, "\xba", 1);
	want_message(WS_OP_BINARY, "\xce", 1);
	want_error(WS_CLOSE_BAD_DATA);
	expect_stream(1024);

	reset(NULL);
	wire_text(TEXT, "\xce\xba");
	wire_text(TEXT, "\xce\xba");
	want_text("\xce\xba");
	want_text("\xce\xba");
	expect_stream(1024);
}

/* Message size limit. */

static void test_message_at_the_limit_is_accepted(void **state)
{
	(void)state;
	wire_text(TEXT, "0123456789");
	wire_text(WS_OP_TEXT, "01234");
	wire_text(FIN | WS_OP_CONT, "56789");
	want_text("0123456789");
	want_text("0123456789");
	expect_stream(10);
}

static void test_frame_over_the_limit_fails_on_its_header(void **state)
{
	static const uint8_t len11[] = { TEXT, 0x80 | 11 };
	static const uint8_t len_64k[] = { BINARY, 0x80 | 126, 0xff, 0xff };
	struct ws_parser p;
	struct ws_event ev;

	(void)state;
	/* The two header bytes are all it takes: no mask, no payload. */
	wire_put(len11, sizeof(len11));
	want_error(WS_CLOSE_TOO_BIG);
	expect_stream(10);

	reset(NULL);
	wire_put(len_64k, sizeof(len_64k));
	want_error(WS_CLOSE_TOO_BIG);
	expect_stream(65534);

	ws_parser_init(&p, 65535, false);
	assert_int_equal(ws_parse(&p, wire, wire_len, &ev), wire_len);
	assert_int_equal(ev.type, WS_EV_NEED_MORE);
}

static void test_fragments_adding_up_over_the_limit_fail_on_the_header(void **state)
{
	static const uint8_t cont6[] = { FIN | WS_OP_CONT, 0x80 | 6 };

	(void)state;
	wire_text(WS_OP_TEXT, "01234");
	wire_text(PING, "pings do not count toward the limit");
	wire_put(cont6, sizeof(cont6));
	want_control(WS_OP_PING, "pings do not count toward the limit", 35);
	want_error(WS_CLOSE_TOO_BIG);
	expect_stream(10);
}

/* A dead parser. */

static void test_parser_stays_dead_after_an_error(void **state)
{
	struct ws_parser p;
	struct ws_event ev;

	(void)state;
	wire_text(FIN | 0x3, "reserved");
	ws_parser_init(&p, 1024, false);
	assert_int_equal(ws_parse(&p, wire, wire_len, &ev), 1);
	assert_int_equal(ev.type, WS_EV_ERROR);
	assert_int_equal(ev.close_code, WS_CLOSE_PROTOCOL);

	reset(NULL);
	wire_text(TEXT, "valid now, but too late");
	for (int i = 0; i < 3; i++) {
		assert_int_equal(ws_parse(&p, wire, wire_len, &ev), 0);
		assert_int_equal(ev.type, WS_EV_ERROR);
		assert_int_equal(ev.close_code, WS_CLOSE_PROTOCOL);
	}
	assert_int_equal(ws_parse(&p, NULL, 0, &ev), 0);
	assert_int_equal(ev.type, WS_EV_ERROR);
}

/* Close payloads. */

static void test_close_without_payload_means_no_status(void **state)
{
	uint16_t code = 0;

	(void)state;
	assert_int_equal(ws_check_close_payload(NULL, 0, &code), 0);
	assert_int_equal(code, WS_CLOSE_NO_STATUS);
}

static void test_close_with_one_byte_is_a_protocol_error(void **state)
{
	uint16_t code = 0;

	(void)state;
	assert_int_equal(ws_check_close_payload((const uint8_t *)"\x03", 1, &code),
			 WS_CLOSE_PROTOCOL);
	assert_int_equal(code, 0);
}

static void test_close_codes_allowed_on_the_wire(void **state)
{
	(void)state;
	for (uint32_t c = 0; c <= 0xffff; c++) {
		uint8_t payload[2] = { (uint8_t)(c >> 8), (uint8_t)c };
		bool allowed = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) ||
			       (c >= 3000 && c <= 4999);
		uint16_t code = 0;
		uint16_t err = ws_check_close_payload(payload, 2, &code);

		if (allowed) {
			assert_int_equal(err, 0);
			assert_int_equal(code, c);
		} else {
			assert_int_equal(err, WS_CLOSE_PROTOCOL);
		}
	}
	/* The ones most likely to be let through by mistake. */
	assert_int_equal(ws_check_close_payload((const uint8_t *)"\x03\xec", 2, &(uint16_t){ 0 }),
			 WS_CLOSE_PROTOCOL); /* 1004 */
	assert_int_equal(ws_check_close_payload((const uint8_t *)"\x03\xed", 2, &(uint16_t){ 0 }),
			 WS_CLOSE_PROTOCOL); /* 1005 */
	assert_int_equal(ws_check_close_payload((const uint8_t *)"\x03\xee", 2, &(uint16_t){ 0 }),
			 WS_CLOSE_PROTOCOL); /* 1006 */
}

static void test_close_reason_must_be_utf8(void **state)
{
	static const uint8_t good[] = "\x03\xe8" "bye \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
	static const uint8_t bad[] = "\x03\xe8" "bye \xed\xa0\x80";
	static const uint8_t cut[] = "\x0f\xa0" "bye \xce";
	uint16_t code = 0;

	(void)state;
	assert_int_equal(ws_check_close_payload(good, sizeof(good) - 1, &code), 0);
	assert_int_equal(code, WS_CLOSE_NORMAL);
	assert_int_equal(ws_check_close_payload(bad, sizeof(bad) - 1, &code),
			 WS_CLOSE_BAD_DATA);
	assert_int_equal(ws_check_close_payload(cut, sizeof(cut) - 1, &code),
			 WS_CLOSE_BAD_DATA);
	/* A bad code is reported before a bad reason. */
	assert_int_equal(ws_check_close_payload((const uint8_t *)"\x03\xed\xff", 3, &code),
			 WS_CLOSE_PROTOCOL);
}

/* Server frame headers. */

static void test_header_length_picks_the_shortest_form(void **state)
{
	(void)state;
	assert_int_equal(ws_header_len(0), 2);
	assert_int_equal(ws_header_len(125), 2);
	assert_int_equal(ws_header_len(126), 4);
	assert_int_equal(ws_header_len(65535), 4);
	assert_int_equal(ws_header_len(65536), 10);
	assert_int_equal(ws_header_len(UINT64_MAX >> 1), WS_MAX_HEADER);
}

static void test_written_headers_match_the_rfc_examples(void **state)
{
	static const struct {
		enum ws_opcode op;
		uint64_t len;
		uint8_t hdr[WS_MAX_HEADER];
		size_t hdr_len;
	} cases[] = {
		{ WS_OP_TEXT, 5, { 0x81, 0x05 }, 2 },
		{ WS_OP_PONG, 0, { 0x8a, 0x00 }, 2 },
		{ WS_OP_CLOSE, 125, { 0x88, 0x7d }, 2 },
		{ WS_OP_BINARY, 126, { 0x82, 0x7e, 0x00, 0x7e }, 4 },
		{ WS_OP_BINARY, 256, { 0x82, 0x7e, 0x01, 0x00 }, 4 },
		{ WS_OP_TEXT, 65535, { 0x81, 0x7e, 0xff, 0xff }, 4 },
		{ WS_OP_BINARY, 65536, { 0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0 }, 10 },
		{ WS_OP_TEXT, 0x0102030405060708ull,
		  { 0x81, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8 }, 10 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t out[WS_MAX_HEADER + 1];

		memset(out, 0xaa, sizeof(out));
		assert_int_equal(ws_write_header(out, cases[i].op, cases[i].len),
				 cases[i].hdr_len);
		assert_memory_equal(out, cases[i].hdr, cases[i].hdr_len);
		assert_int_equal(out[cases[i].hdr_len], 0xaa);
	}
}

/* A payload of n letters framed in place: the header (hdr, hlen bytes)
 * sits right before the untouched payload, the whole frame reads back
 * through the parser as one text message (masked with a zero key, as a
 * client would send it), and framing again changes nothing. */
static void expect_framed_in_place(size_t n, const uint8_t *hdr, size_t hlen)
{
	uint8_t *text = malloc(n);
	size_t len;

	assert_non_null(text);
	for (size_t i = 0; i < n; i++)
		text[i] = (uint8_t)('a' + i % 26);
	struct buf *b = buf_new_payload(text, n);
	const uint8_t *payload = buf_payload(b, &len);

	ws_frame_text_in_place(b);
	assert_int_equal(buf_out_len(b), hlen + n);
	assert_ptr_equal(buf_out(b) + hlen, payload);
	assert_memory_equal(buf_out(b), hdr, hlen);
	assert_ptr_equal(buf_payload(b, &len), payload);
	assert_int_equal(len, n);
	assert_memory_equal(payload, text, n);

	uint8_t *masked = malloc(hlen + 4 + n);
	assert_non_null(masked);
	memcpy(masked, buf_out(b), hlen);
	masked[1] |= 0x80;
	memset(masked + hlen, 0, 4);
	memcpy(masked + hlen + 4, payload, n);
	struct ws_parser p;
	struct ws_event ev;
	ws_parser_init(&p, n, false);
	assert_int_equal(ws_parse(&p, masked, hlen + 4 + n, &ev), hlen + 4 + n);
	assert_int_equal(ev.type, WS_EV_DATA);
	assert_int_equal(ev.opcode, WS_OP_TEXT);
	assert_true(ev.first && ev.last);
	assert_int_equal(ev.len, n);
	assert_memory_equal(ev.data, text, n);
	free(masked);

	uint16_t head = b->head;
	ws_frame_text_in_place(b);
	assert_int_equal(b->head, head);
	assert_int_equal(buf_out_len(b), hlen + n);
	assert_memory_equal(buf_out(b), hdr, hlen);
	assert_memory_equal(buf_out(b) + hlen, text, n);

	buf_unref(b);
	free(text);
}

static void test_payload_framed_in_place_up_to_125_bytes_has_a_2_byte_header(void **state)
{
	(void)state;
	expect_framed_in_place(1, (const uint8_t[]){ 0x81, 0x01 }, 2);
	expect_framed_in_place(125, (const uint8_t[]){ 0x81, 0x7d }, 2);
}

static void test_payload_framed_in_place_of_126_to_65535_bytes_has_a_4_byte_header(void **state)
{
	(void)state;
	expect_framed_in_place(126, (const uint8_t[]){ 0x81, 0x7e, 0x00, 0x7e }, 4);
	expect_framed_in_place(65535, (const uint8_t[]){ 0x81, 0x7e, 0xff, 0xff }, 4);
}

static void test_payload_framed_in_place_of_65536_bytes_or_more_has_a_10_byte_header(void **state)
{
	(void)state;
	expect_framed_in_place(65536, (const uint8_t[]){ 0x81, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0 }, 10);
	expect_framed_in_place(200000, (const uint8_t[]){ 0x81, 0x7f, 0, 0, 0, 0, 0, 3, 0x0d, 0x40 }, 10);
}

static void test_empty_payload_framed_in_place_is_two_bytes(void **state)
{
	struct buf *b = buf_new_payload("", 0);

	(void)state;
	ws_frame_text_in_place(b);
	assert_int_equal(buf_out_len(b), 2);
	assert_memory_equal(buf_out(b), "\x81\x00", 2);
	buf_unref(b);
}

/* permessage-deflate (RFC 7692 §6): RSV1 on a data message's first frame
 * marks it compressed, once the extension was negotiated. */

/* "Hello" deflated, from RFC 7692 §7.2.3.1: not valid UTF-8 itself. */
static const uint8_t rfc_hello_deflated[] = { 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00 };

static void test_rsv1_without_deflate_negotiated_is_a_protocol_error(void **state)
{
	(void)state;
	wire_frame(TEXT | RSV1, rfc_hello_deflated, sizeof(rfc_hello_deflated));
	want_error(WS_CLOSE_PROTOCOL);
	expect_stream(1024);
}

static void test_rsv1_marks_a_compressed_message_without_a_utf8_check(void **state)
{
	(void)state;
	deflate_on = true;
	wire_frame(TEXT | RSV1, rfc_hello_deflated, sizeof(rfc_hello_deflated));
	want_message(WS_OP_TEXT | COMPRESSED, rfc_hello_deflated, sizeof(rfc_hello_deflated));
	expect_stream(1024);
}

static void test_compressed_message_in_fragments_has_rsv1_on_the_first_only(void **state)
{
	(void)state;
	deflate_on = true;
	wire_frame(WS_OP_TEXT | RSV1, rfc_hello_deflated, 3);
	wire_frame(PING, "", 0);
	wire_frame(FIN | WS_OP_CONT, rfc_hello_deflated + 3, sizeof(rfc_hello_deflated) - 3);
	want_control(WS_OP_PING, "", 0);
	want_message(WS_OP_TEXT | COMPRESSED, rfc_hello_deflated, sizeof(rfc_hello_deflated));
	expect_stream(1024);
}

static void test_rsv1_on_a_continuation_is_a_protocol_error(void **state)
{
	(void)state;
	deflate_on = true;
	wire_frame(WS_OP_TEXT | RSV1, rfc_hello_deflated, 3);
	wire_frame(FIN | WS_OP_CONT | RSV1, rfc_hello_deflated + 3, sizeof(rfc_hello_deflated) - 3);
	want_error(WS_CLOSE_PROTOCOL);
	expect_stream(1024);
}

static void test_rsv1_on_a_control_frame_is_a_protocol_error(void **state)
{
	static const uint8_t ops[] = { PING, PONG, CLOSE };

	(void)state;
	for (size_t i = 0; i < sizeof(ops); i++) {
		reset(NULL);
		deflate_on = true;
		wire_frame(ops[i] | RSV1, "", 0);
		want_error(WS_CLOSE_PROTOCOL);
		expect_stream(1024);
	}
}

static void test_rsv2_and_rsv3_stay_protocol_errors_with_deflate(void **state)
{
	(void)state;
	for (uint8_t rsv = 0x10; rsv <= 0x30; rsv += 0x10) {
		reset(NULL);
		deflate_on = true;
		wire_frame(TEXT | RSV1 | rsv, rfc_hello_deflated, sizeof(rfc_hello_deflated));
		want_error(WS_CLOSE_PROTOCOL);
		expect_stream(1024);
	}
}

static void test_message_after_a_compressed_one_is_plain_and_utf8_checked(void **state)
{
	(void)state;
	deflate_on = true;
	wire_frame(TEXT | RSV1, rfc_hello_deflated, sizeof(rfc_hello_deflated));
	wire_text(TEXT, "plain");
	wire_frame(TEXT, "\xff", 1);
	want_message(WS_OP_TEXT | COMPRESSED, rfc_hello_deflated, sizeof(rfc_hello_deflated));
	want_text("plain");
	want_error(WS_CLOSE_BAD_DATA);
	expect_stream(1024);
}

static void test_compressed_bytes_count_against_the_limit(void **state)
{
	(void)state;
	deflate_on = true;
	wire_frame(TEXT | RSV1, rfc_hello_deflated, sizeof(rfc_hello_deflated));
	want_error(WS_CLOSE_TOO_BIG);
	expect_stream(sizeof(rfc_hello_deflated) - 1);
}

#define T(f) cmocka_unit_test_setup(f, reset)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_rfc_masked_hello_is_one_text_message),
		T(test_rfc_unmasked_hello_is_a_protocol_error),
		T(test_rfc_fragmented_hel_lo_is_one_message),
		T(test_rfc_ping_and_masked_pong_are_control_events),
		T(test_rfc_256_bytes_use_the_16_bit_length),
		T(test_rfc_64_kib_uses_the_64_bit_length),
		T(test_lengths_at_each_form_boundary_are_read_right),
		T(test_non_minimal_lengths_are_accepted),
		T(test_64_bit_length_with_top_bit_set_is_a_protocol_error),
		T(test_unmasked_frames_are_protocol_errors),
		T(test_rsv_bits_are_protocol_errors),
		T(test_reserved_opcodes_are_protocol_errors),
		T(test_control_payload_over_125_is_a_protocol_error),
		T(test_control_payload_of_125_is_accepted),
		T(test_fragmented_control_frames_are_protocol_errors),
		T(test_control_frames_interleave_with_fragments),
		T(test_continuation_without_open_message_is_a_protocol_error),
		T(test_new_data_frame_inside_fragmented_message_is_a_protocol_error),
		T(test_empty_final_frame_gives_one_event_with_last),
		T(test_empty_fragments_in_the_middle_give_no_event),
		T(test_empty_control_frame_gives_one_event),
		T(test_chunks_stop_at_the_frame_end_and_are_unmasked_in_place),
		T(test_mask_phase_survives_every_split),
		T(test_truncated_input_only_asks_for_more),
		T(test_text_split_inside_a_character_across_fragments_is_valid),
		T(test_invalid_text_fails_at_the_offending_byte),
		T(test_invalid_text_in_a_fragment_fails_before_the_message_ends),
		T(test_text_ending_inside_a_character_fails_at_message_end),
		T(test_binary_is_data_without_a_utf8_check),
		T(test_utf8_state_starts_fresh_with_each_text_message),
		T(test_message_at_the_limit_is_accepted),
		T(test_frame_over_the_limit_fails_on_its_header),
		T(test_fragments_adding_up_over_the_limit_fail_on_the_header),
		T(test_parser_stays_dead_after_an_error),
		T(test_close_without_payload_means_no_status),
		T(test_close_with_one_byte_is_a_protocol_error),
		T(test_close_codes_allowed_on_the_wire),
		T(test_close_reason_must_be_utf8),
		T(test_header_length_picks_the_shortest_form),
		T(test_written_headers_match_the_rfc_examples),
		T(test_payload_framed_in_place_up_to_125_bytes_has_a_2_byte_header),
		T(test_payload_framed_in_place_of_126_to_65535_bytes_has_a_4_byte_header),
		T(test_payload_framed_in_place_of_65536_bytes_or_more_has_a_10_byte_header),
		T(test_empty_payload_framed_in_place_is_two_bytes),
		T(test_rsv1_without_deflate_negotiated_is_a_protocol_error),
		T(test_rsv1_marks_a_compressed_message_without_a_utf8_check),
		T(test_compressed_message_in_fragments_has_rsv1_on_the_first_only),
		T(test_rsv1_on_a_continuation_is_a_protocol_error),
		T(test_rsv1_on_a_control_frame_is_a_protocol_error),
		T(test_rsv2_and_rsv3_stay_protocol_errors_with_deflate),
		T(test_message_after_a_compressed_one_is_plain_and_utf8_checked),
		T(test_compressed_bytes_count_against_the_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
