/* test_ws_deflate.c: permessage-deflate (RFC 7692): the offers we accept
 * and decline, our answer, and whole messages compressed and inflated. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "buf.h"
#include "ws.h"
#include "ws_deflate.h"

/* Negotiation. */

static int negotiate(const char *value, struct ws_deflate_params *p)
{
	*p = (struct ws_deflate_params){ .server_max_window_bits = 99 };
	return ws_deflate_negotiate(value, strlen(value), p);
}

static void test_plain_offer_is_accepted(void **state)
{
	struct ws_deflate_params p;

	(void)state;
	assert_int_equal(negotiate("permessage-deflate", &p), 1);
	assert_int_equal(p.server_max_window_bits, 0);
}

static void test_what_browsers_and_python_offer_is_accepted(void **state)
{
	struct ws_deflate_params p;

	(void)state;
	assert_int_equal(negotiate("permessage-deflate; client_max_window_bits", &p), 1);
	assert_int_equal(negotiate("permessage-deflate; client_max_window_bits=15", &p), 1);
	assert_int_equal(negotiate("permessage-deflate;server_no_context_takeover;client_no_context_takeover", &p),
			 1);
	assert_int_equal(negotiate("  permessage-deflate ;\tclient_max_window_bits = 12  ", &p), 1);
	assert_int_equal(negotiate("Permessage-Deflate; Client_Max_Window_Bits", &p), 1);
}

static void test_server_max_window_bits_is_honoured_from_8_to_15(void **state)
{
	struct ws_deflate_params p;
	char offer[64];

	(void)state;
	for (int bits = 8; bits <= 15; bits++) {
		snprintf(offer, sizeof(offer), "permessage-deflate; server_max_window_bits=%d", bits);
		assert_int_equal(negotiate(offer, &p), 1);
		assert_int_equal(p.server_max_window_bits, bits);
	}
	assert_int_equal(negotiate("permessage-deflate; server_max_window_bits=\"10\"", &p), 1);
	assert_int_equal(p.server_max_window_bits, 10);
}

static void test_offer_with_a_bad_window_value_is_declined(void **state)
{
	static const char *const bad[] = {
		"permessage-deflate; server_max_window_bits",      /* needs a value */
		"permessage-deflate; server_max_window_bits=7",
		"permessage-deflate; server_max_window_bits=16",
		"permessage-deflate; server_max_window_bits=010",  /* leading zero */
		"permessage-deflate; server_max_window_bits=1x",
		"permessage-deflate; server_max_window_bits=\"\"",
		"permessage-deflate; server_max_window_bits=100000000000000000009",
		"permessage-deflate; client_max_window_bits=0",
		"permessage-deflate; client_max_window_bits=\"16\"",
	};
	struct ws_deflate_params p;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (negotiate(bad[i], &p) != 0)
			fail_msg("accepted or malformed: %s", bad[i]);
	}
}

static void test_offer_with_an_unknown_or_repeated_parameter_is_declined(void **state)
{
	struct ws_deflate_params p;

	(void)state;
	assert_int_equal(negotiate("permessage-deflate; x_unknown", &p), 0);
	assert_int_equal(negotiate("permessage-deflate; client_no_context_takeover; client_no_context_takeover",
				   &p), 0);
	assert_int_equal(negotiate("permessage-deflate; server_no_context_takeover=1", &p), 0);
	assert_int_equal(negotiate("permessage-deflate; client_max_window_bits; client_max_window_bits=9", &p), 0);
}

static void test_a_declined_offer_falls_to_the_next(void **state)
{
	struct ws_deflate_params p;

	(void)state;
	assert_int_equal(negotiate("permessage-deflate; server_max_window_bits=7, permessage-deflate", &p), 1);
	assert_int_equal(p.server_max_window_bits, 0);
	assert_int_equal(negotiate("x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=9", &p), 1);
	assert_int_equal(p.server_max_window_bits, 9);
	/* the first acceptable one wins */
	assert_int_equal(negotiate("permessage-deflate; server_max_window_bits=12, permessage-deflate", &p), 1);
	assert_int_equal(p.server_max_window_bits, 12);
}

static void test_other_extensions_alone_are_not_accepted(void **state)
{
	struct ws_deflate_params p;

	(void)state;
	assert_int_equal(negotiate("", &p), 0);
	assert_int_equal(negotiate("x-webkit-deflate-frame", &p), 0);
	assert_int_equal(negotiate("permessage-deflatex", &p), 0);
	assert_int_equal(negotiate("foo; bar=\"a, b; c\"", &p), 0);
	assert_int_equal(negotiate(" , ,", &p), 0); /* empty list elements are allowed */
}

static void test_malformed_values_are_told_apart(void **state)
{
	static const char *const bad[] = {
		"permessage-deflate;",
		"permessage-deflate; =15",
		"permessage-deflate; client_max_window_bits=",
		"permessage-deflate; client_max_window_bits=\"15",
		"permessage-deflate; client_max_window_bits=\"15\\",
		"permessage-deflate client_max_window_bits",
		"permessage-deflate; client_max_window_bits 15",
		"per(message)-deflate",
		"permessage-deflate, ;",
		"\"permessage-deflate\"",
		"permessage-deflate; a=\"\x01\"",
		/* malformed after an acceptable offer: the whole value is */
		"permessage-deflate, foo bar",
	};
	struct ws_deflate_params p;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (negotiate(bad[i], &p) != -1)
			fail_msg("not malformed: %s", bad[i]);
	}
}

static void test_negotiation_reads_only_the_given_length(void **state)
{
	static const char value[] = "permessage-deflate; server_max_window_bits=9";
	struct ws_deflate_params p;

	(void)state;
	/* cut right after "=9" minus the 9: a missing value */
	char *copy = malloc(sizeof(value) - 2);
	memcpy(copy, value, sizeof(value) - 2);
	assert_int_equal(ws_deflate_negotiate(copy, sizeof(value) - 2, &p), -1);
	free(copy);
}

static void test_answer_always_asks_no_context_takeover_of_both(void **state)
{
	struct ws_deflate_params p = { 0 };
	char out[160];

	(void)state;
	size_t n = ws_deflate_answer(&p, out, sizeof(out));
	assert_string_equal(out, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
				 "client_no_context_takeover\r\n");
	assert_int_equal(n, strlen(out));
	p.server_max_window_bits = 9;
	ws_deflate_answer(&p, out, sizeof(out));
	assert_string_equal(out, "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
				 "client_no_context_takeover; server_max_window_bits=9\r\n");
	assert_true(strlen(out) < WS_DEFLATE_ANSWER_MAX);
	assert_int_equal(ws_deflate_answer(&p, out, 20), 0);
	assert_string_equal(out, "");
}

/* Compression. */

#define LIMIT 65536

static struct ws_deflate *d;

static int setup(void **state)
{
	(void)state;
	d = ws_deflate_new(LIMIT);
	return d ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	ws_deflate_free(d);
	d = NULL;
	return 0;
}

/* A chat message event of about len bytes, as JSON like the chat's own. */
static char *chat_json(size_t len)
{
	char *s = malloc(len + 1);
	size_t n = (size_t)snprintf(s, len + 1, "{\"type\":\"message\",\"room\":\"lobby\",\"id\":42,\"from\":"
						"\"guest-7\",\"text\":\"");
	for (size_t i = 0; n < len; i++)
		s[n++] = "the quick brown fox jumps over the lazy dog "[i % 44];
	if (len >= 2) {
		s[len - 2] = '"';
		s[len - 1] = '}';
	}
	s[len] = '\0';
	return s;
}

/* The frame's header and its payload (the deflated bytes). */
static const uint8_t *frame_payload(struct buf *f, size_t *len)
{
	const uint8_t *p = buf_out(f);
	size_t h = 2;
	uint64_t n = p[1] & 0x7f;
	if (n == 126) {
		n = (uint64_t)p[2] << 8 | p[3];
		h = 4;
	} else if (n == 127) {
		n = 0;
		for (int i = 0; i < 8; i++)
			n = n << 8 | p[2 + i];
		h = 10;
	}
	assert_int_equal(h + n, buf_out_len(f));
	*len = (size_t)n;
	return p + h;
}

static void round_trip(size_t len)
{
	char *msg = chat_json(len);
	struct buf *f = ws_deflate_frame(d, msg, len);
	size_t zlen;
	const uint8_t *z = frame_payload(f, &zlen);

	/* FIN, RSV1, text; unmasked */
	assert_int_equal(buf_out(f)[0], 0x80 | 0x40 | WS_OP_TEXT);
	assert_int_equal(buf_out(f)[1] & 0x80, 0);
	const uint8_t *out;
	size_t out_len;
	assert_int_equal(ws_inflate_message(d, z, zlen, &out, &out_len), 0);
	assert_int_equal(out_len, len);
	assert_memory_equal(out, msg, len);
	if (len >= 1024)
		assert_true(zlen < len / 4); /* it compresses what repeats */
	buf_unref(f);
	free(msg);
}

static void test_messages_of_every_size_class_round_trip(void **state)
{
	(void)state;
	static const size_t sizes[] = { 0, 1, 64, 125, 126, 1024, 16384, 65535, 65536 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		round_trip(sizes[i]);
}

/* §7.2.1: the sync flush's 00 00 ff ff is left off; zlib alone, given the
 * bytes back, agrees on the message. */
static void test_frames_leave_off_the_trailing_empty_block(void **state)
{
	(void)state;
	char *msg = chat_json(300);
	struct buf *f = ws_deflate_frame(d, msg, 300);
	size_t zlen;
	const uint8_t *z = frame_payload(f, &zlen);
	assert_true(zlen >= 4);
	assert_memory_not_equal(z + zlen - 4, "\x00\x00\xff\xff", 4);

	uint8_t in[1024], out[1024];
	memcpy(in, z, zlen);
	memcpy(in + zlen, "\x00\x00\xff\xff", 4);
	z_stream s = { 0 };
	assert_int_equal(inflateInit2(&s, -15), Z_OK);
	s.next_in = in;
	s.avail_in = (uInt)zlen + 4;
	s.next_out = out;
	s.avail_out = sizeof(out);
	assert_int_equal(inflate(&s, Z_SYNC_FLUSH), Z_OK);
	assert_int_equal(s.avail_in, 0);
	assert_int_equal(sizeof(out) - s.avail_out, 300);
	assert_memory_equal(out, msg, 300);
	inflateEnd(&s);
	buf_unref(f);
	free(msg);
}

/* RFC 7692 §7.2.3.1's "Hello", and §7.2.3.2's with no compression. */
static void test_rfc_examples_inflate(void **state)
{
	static const uint8_t hello[] = { 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00 };
	static const uint8_t stored[] = { 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00 };
	const uint8_t *out;
	size_t n;

	(void)state;
	assert_int_equal(ws_inflate_message(d, hello, sizeof(hello), &out, &n), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(out, "Hello", 5);
	assert_int_equal(ws_inflate_message(d, stored, sizeof(stored), &out, &n), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(out, "Hello", 5);
}

/* §7.2.3.3: a final block (BFINAL) may end the message; bytes after it
 * are the empty block's leftovers, not another message. */
static void test_a_final_block_ends_the_message(void **state)
{
	static const uint8_t hello_final[] = { 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00 };
	const uint8_t *out;
	size_t n;

	(void)state;
	assert_int_equal(ws_inflate_message(d, hello_final, sizeof(hello_final), &out, &n), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(out, "Hello", 5);
}

static void test_bad_deflate_data_is_1007(void **state)
{
	static const uint8_t reserved_block[] = { 0x07, 0x00 };  /* BTYPE 11 */
	static const uint8_t bad_stored[] = { 0x00, 0x05, 0x00, 0x00, 0x00, 'H' }; /* NLEN wrong */
	static const uint8_t garbage[] = "this is not deflate data at all";
	const uint8_t *out;
	size_t n;

	(void)state;
	assert_int_equal(ws_inflate_message(d, reserved_block, sizeof(reserved_block), &out, &n),
			 WS_CLOSE_BAD_DATA);
	assert_int_equal(ws_inflate_message(d, bad_stored, sizeof(bad_stored), &out, &n), WS_CLOSE_BAD_DATA);
	assert_int_equal(ws_inflate_message(d, garbage, sizeof(garbage) - 1, &out, &n), WS_CLOSE_BAD_DATA);
	/* and the inflater is fine for the next message */
	round_trip(100);
}

/* A message cut inside a block never reaches a block boundary, trailer or not. */
static void test_data_stopping_inside_a_block_is_1007(void **state)
{
	static const uint8_t cut[] = { 0xf2, 0x48, 0xcd };
	static const uint8_t empty[1];
	const uint8_t *out;
	size_t n;

	(void)state;
	assert_int_equal(ws_inflate_message(d, cut, sizeof(cut), &out, &n), WS_CLOSE_BAD_DATA);
	assert_int_equal(ws_inflate_message(d, empty, 0, &out, &n), WS_CLOSE_BAD_DATA);
}

/* --max-message applies to what comes out, and inflating stops there. */
static void test_inflated_size_limit_is_1009_and_exact(void **state)
{
	(void)state;
	struct ws_deflate *small = ws_deflate_new(1000);
	assert_non_null(small);
	char *msg = chat_json(1001);
	const uint8_t *out;
	size_t n, zlen;

	struct buf *f = ws_deflate_frame(small, msg, 1000);
	const uint8_t *z = frame_payload(f, &zlen);
	assert_int_equal(ws_inflate_message(small, z, zlen, &out, &n), 0);
	assert_int_equal(n, 1000);
	buf_unref(f);

	f = ws_deflate_frame(small, msg, 1001);
	z = frame_payload(f, &zlen);
	assert_int_equal(ws_inflate_message(small, z, zlen, &out, &n), WS_CLOSE_TOO_BIG);
	buf_unref(f);
	free(msg);
	ws_deflate_free(small);
}

/* A bomb: a few KiB that would inflate to 64 MiB. It is refused, and the
 * output buffer never grew past the limit. */
static void test_a_deflate_bomb_stops_at_the_limit(void **state)
{
	(void)state;
	size_t big = 64u << 20;
	uint8_t *zeros = calloc(1, big);
	uLong cap = compressBound(big);
	uint8_t *z = malloc(cap);
	z_stream s = { 0 };
	assert_int_equal(deflateInit2(&s, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
	s.next_in = zeros;
	s.avail_in = (uInt)big;
	s.next_out = z;
	s.avail_out = (uInt)cap;
	assert_int_equal(deflate(&s, Z_SYNC_FLUSH), Z_OK);
	size_t zlen = cap - s.avail_out - 4;
	deflateEnd(&s);
	free(zeros);
	assert_true(zlen < 128 * 1024);

	const uint8_t *out;
	size_t n;
	assert_int_equal(ws_inflate_message(d, z, zlen, &out, &n), WS_CLOSE_TOO_BIG);
	free(z);
	round_trip(LIMIT); /* still whole for the next one */
}

/* The frame is a buf of its own, framed: sent as it is. */
static void test_frame_is_a_framed_buf_with_the_right_length_form(void **state)
{
	(void)state;
	uint8_t *noise = malloc(70000);
	uint32_t x = 1;
	for (size_t i = 0; i < 70000; i++) {
		x = x * 1103515245u + 12345u;
		noise[i] = (uint8_t)(x >> 16);
	}
	/* incompressible: the deflated payload is longer than 64 KiB */
	struct buf *f = ws_deflate_frame(d, noise, 70000);
	assert_int_equal(buf_out(f)[1], 127);
	assert_int_equal(f->head, 0);
	assert_int_equal(f->payload, 10);
	size_t zlen;
	frame_payload(f, &zlen);
	assert_true(zlen > 70000 && zlen < 70100);
	buf_unref(f);
	free(noise);
}

#define T(f) cmocka_unit_test(f)
#define TD(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_plain_offer_is_accepted),
		T(test_what_browsers_and_python_offer_is_accepted),
		T(test_server_max_window_bits_is_honoured_from_8_to_15),
		T(test_offer_with_a_bad_window_value_is_declined),
		T(test_offer_with_an_unknown_or_repeated_parameter_is_declined),
		T(test_a_declined_offer_falls_to_the_next),
		T(test_other_extensions_alone_are_not_accepted),
		T(test_malformed_values_are_told_apart),
		T(test_negotiation_reads_only_the_given_length),
		T(test_answer_always_asks_no_context_takeover_of_both),
		TD(test_messages_of_every_size_class_round_trip),
		TD(test_frames_leave_off_the_trailing_empty_block),
		TD(test_rfc_examples_inflate),
		TD(test_a_final_block_ends_the_message),
		TD(test_bad_deflate_data_is_1007),
		TD(test_data_stopping_inside_a_block_is_1007),
		TD(test_inflated_size_limit_is_1009_and_exact),
		TD(test_a_deflate_bomb_stops_at_the_limit),
		TD(test_frame_is_a_framed_buf_with_the_right_length_form),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
