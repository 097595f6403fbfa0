/* test_ws_handshake.c: Sec-WebSocket-Key checking and Sec-WebSocket-Accept. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "ws.h"

static bool key_valid(const char *key)
{
	return ws_key_valid(key, strlen(key));
}

static void test_rfc_sample_key_gives_the_rfc_accept(void **state)
{
	char out[29];

	(void)state;
	memset(out, 'x', sizeof(out));
	ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, out);
	assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void test_accept_hashes_exactly_key_len_bytes(void **state)
{
	/* The key as it sits in a request buffer: not NUL-terminated. */
	static const char head[] = "x3JJHMbDL1EzLkh9GBhXDw==\r\nHost: example";
	char out[29];

	(void)state;
	ws_accept_key(head, 24, out);
	assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
	ws_accept_key("AAAAAAAAAAAAAAAAAAAAAA==", 24, out);
	assert_string_equal(out, "ICX+Yqv66kxgM0FcWaLWlFLwTAI=");
}

static void test_key_must_be_base64_of_16_bytes(void **state)
{
	(void)state;
	assert_true(key_valid("dGhlIHNhbXBsZSBub25jZQ=="));
	assert_true(key_valid("AAAAAAAAAAAAAAAAAAAAAA=="));
	assert_true(key_valid("/+/+/+/+/+/+/+/+/+/+/w=="));
	assert_true(key_valid("zzzzzzzzzzzzzzzzzzzzzQ=="));
	assert_true(key_valid("0123456789abcdefghijkg=="));

	assert_false(key_valid(""));
	assert_false(key_valid("dGhlIHNhbXBsZSBub25jZQ="));      /* 23 characters */
	assert_false(key_valid("dGhlIHNhbXBsZSBub25jZQ==="));    /* 25 */
	assert_false(key_valid("dGhlIHNhbXBsZSBub25jZQ"));       /* unpadded */
	assert_false(key_valid("dGhlIHNhbXBsZSBub25jZQAA"));     /* 18 bytes */
	assert_false(key_valid("dGhlIHNhbXBsZSBub25jZQA="));     /* 17 bytes */
	assert_false(key_valid("dGhlIHNhbXBsZSBub25j===="));     /* 15 bytes and junk */
	assert_false(key_valid("dGhlIHNhbXBsZSBub2=jZQ=="));     /* = inside */
	assert_false(key_valid("dGhlIHNhbXBsZSBub25jZQ= "));
	assert_false(key_valid(" GhlIHNhbXBsZSBub25jZQ=="));
	assert_false(key_valid("dGhlIHNhbXBsZSBub25-ZQ=="));     /* URL-safe alphabet */
	assert_false(key_valid("dGhlIHNhbXBsZSBub25_ZQ=="));
	assert_false(key_valid("dGhlIHNhbXBsZSBub25\xc3\xa9Q=="));
	assert_false(ws_key_valid("dGhlIHNhbXBsZSBu\0b25jZQ==", 24));
}

/* The 22nd character carries only the last 2 bits of the 16th byte; its 4
 * low bits are padding and a canonical encoder leaves them zero. */
static void test_key_padding_bits_must_be_zero(void **state)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char key[] = "dGhlIHNhbXBsZSBub25jZQ==";

	(void)state;
	for (int v = 0; v < 64; v++) {
		key[21] = alphabet[v];
		assert_int_equal(key_valid(key), (v & 0x0f) == 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_sample_key_gives_the_rfc_accept),
		cmocka_unit_test(test_accept_hashes_exactly_key_len_bytes),
		cmocka_unit_test(test_key_must_be_base64_of_16_bytes),
		cmocka_unit_test(test_key_padding_bits_must_be_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
