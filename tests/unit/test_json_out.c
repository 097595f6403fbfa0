/* test_json_out.c: the outgoing JSON builder and the payload bufs it makes.
 *
 * json_escape is checked against hand-written expectations, one rule per
 * case; every input is passed in a heap copy of exactly its length so that
 * AddressSanitizer catches a read past n. A round trip through jansson then
 * checks the escaping means what it should: a string built with jbuf_str
 * and parsed back is the same bytes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json_out.h"

/* Escape in[0..n) (from a heap copy of exactly n bytes, into a buffer of
 * exactly the documented worst case) and return the result NUL-terminated;
 * the caller frees it. */
static char *escape(const char *in, size_t n)
{
	char *copy = malloc(n ? n : 1);
	char *out = malloc(6 * n + 1);

	assert_non_null(copy);
	assert_non_null(out);
	memcpy(copy, in, n);
	size_t len = json_escape(copy, n, out);
	assert_true(len <= 6 * n);
	out[len] = '\0';
	free(copy);
	return out;
}

/* in (with its length from a literal) escapes to exactly want. */
static void expect_escape_n(const char *in, size_t n, const char *want)
{
	char *got = escape(in, n);

	if (strcmp(got, want) != 0)
		fail_msg("escaped to \"%s\", want \"%s\"", got, want);
	free(got);
}

#define EXPECT_ESCAPE(lit, want) expect_escape_n((lit), sizeof(lit) - 1, (want))

/* The input comes out byte for byte as it went in. */
#define EXPECT_UNCHANGED(lit) expect_escape_n((lit), sizeof(lit) - 1, (lit))

static void test_plain_ascii_is_unchanged(void **state)
{
	(void)state;
	EXPECT_UNCHANGED("");
	EXPECT_UNCHANGED("hello, world");
	EXPECT_UNCHANGED(" !#$%&'()*+,-./0123456789:;<=>?@AZ[]^_`az{|}~");
	EXPECT_UNCHANGED("</script>");
}

static void test_quote_and_backslash_are_escaped(void **state)
{
	(void)state;
	EXPECT_ESCAPE("\"", "\\\"");
	EXPECT_ESCAPE("\\", "\\\\");
	EXPECT_ESCAPE("say \"hi\" \\ bye", "say \\\"hi\\\" \\\\ bye");
	EXPECT_ESCAPE("\\\"\\\"", "\\\\\\\"\\\\\\\"");
}

static void test_named_control_characters_use_their_short_escapes(void **state)
{
	(void)state;
	EXPECT_ESCAPE("\n", "\\n");
	EXPECT_ESCAPE("\r", "\\r");
	EXPECT_ESCAPE("\t", "\\t");
	EXPECT_ESCAPE("\b", "\\b");
	EXPECT_ESCAPE("\f", "\\f");
	EXPECT_ESCAPE("a\r\nb\tc", "a\\r\\nb\\tc");
}

/* Every byte 0x00-0x1F, alone and between letters, is escaped: the five
 * with short forms use them, the others are \u00XX with that byte's value
 * (hex digits in either case are valid JSON). */
static void test_every_other_control_character_is_u00xx(void **state)
{
	(void)state;
	for (unsigned c = 0; c < 0x20; c++) {
		const char *named = NULL;

		switch (c) {
		case '\n': named = "\\n"; break;
		case '\r': named = "\\r"; break;
		case '\t': named = "\\t"; break;
		case '\b': named = "\\b"; break;
		case '\f': named = "\\f"; break;
		}
		char in[3] = { 'x', (char)c, 'y' };
		char *got = escape(in, sizeof(in));
		size_t len = strlen(got);

		if (got[0] != 'x' || got[len - 1] != 'y')
			fail_msg("byte 0x%02x: surrounding letters lost: \"%s\"", c, got);
		got[len - 1] = '\0';
		const char *esc = got + 1;
		if (named) {
			if (strcmp(esc, named) != 0)
				fail_msg("byte 0x%02x: got \"%s\", want \"%s\"", c, esc, named);
		} else {
			char *end;
			if (strlen(esc) != 6 || strncmp(esc, "\\u00", 4) != 0)
				fail_msg("byte 0x%02x: got \"%s\", want \\u00XX", c, esc);
			unsigned long v = strtoul(esc + 4, &end, 16);
			if (*end != '\0' || v != c)
				fail_msg("byte 0x%02x: \"%s\" names 0x%02lx", c, esc, v);
		}
		free(got);
	}
}

static void test_nul_is_escaped_not_a_terminator(void **state)
{
	(void)state;
	EXPECT_ESCAPE("a\0b", "a\\u0000b");
	EXPECT_ESCAPE("\0", "\\u0000");
}

static void test_del_passes_through(void **state)
{
	(void)state;
	EXPECT_UNCHANGED("\x7f");
	EXPECT_UNCHANGED("a\x7f" "b");
}

static void test_line_and_paragraph_separators_are_escaped(void **state)
{
	(void)state;
	EXPECT_ESCAPE("\xe2\x80\xa8", "\\u2028");
	EXPECT_ESCAPE("\xe2\x80\xa9", "\\u2029");
	EXPECT_ESCAPE("a\xe2\x80\xa8" "b\xe2\x80\xa9" "c", "a\\u2028b\\u2029c");
	EXPECT_ESCAPE("\xe2\x80\xa9\xe2\x80\xa8", "\\u2029\\u2028");
}

/* Other characters with the same E2 lead byte, including the neighbours
 * U+2027 and U+202A and those with another second byte, are left alone. */
static void test_other_e2_characters_pass_unchanged(void **state)
{
	(void)state;
	EXPECT_UNCHANGED("\xe2\x82\xac");              /* € */
	EXPECT_UNCHANGED("\xe2\x80\xa6");              /* … */
	EXPECT_UNCHANGED("\xe2\x80\xa7");              /* U+2027 */
	EXPECT_UNCHANGED("\xe2\x80\xaa");              /* U+202A */
	EXPECT_UNCHANGED("\xe2\x81\xa8");              /* U+2068 */
	EXPECT_UNCHANGED("10\xe2\x82\xac\xe2\x80\xa6"); /* 10€… */
}

static void test_multibyte_utf8_and_emoji_pass_unchanged(void **state)
{
	(void)state;
	EXPECT_UNCHANGED("\xc3\xa9t\xc3\xa9");                  /* été */
	EXPECT_UNCHANGED("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"); /* κόσμε */
	EXPECT_UNCHANGED("\xe4\xb8\xad\xe6\x96\x87");          /* 中文 */
	EXPECT_UNCHANGED("\xf0\x9f\x98\x80");                  /* 😀 */
	EXPECT_UNCHANGED("\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9"); /* 👨‍👩 (ZWJ is E2 80 8D) */
	EXPECT_UNCHANGED("\xef\xbf\xbf\xf4\x8f\xbf\xbf");      /* U+FFFF U+10FFFF */
}

/* A separator cut short by the end of the input is not one, and the check
 * for it must not read past n (the heap copy makes ASan see that). */
static void test_e2_cut_short_at_the_end_passes_unchanged(void **state)
{
	(void)state;
	EXPECT_UNCHANGED("\xe2");
	EXPECT_UNCHANGED("x\xe2");
	EXPECT_UNCHANGED("\xe2\x80");
	EXPECT_UNCHANGED("x\xe2\x80");
	EXPECT_ESCAPE("x\xe2\x80\xa8", "x\\u2028");
}

static void test_escape_needs_at_most_six_bytes_per_input_byte(void **state)
{
	char in[1000];

	(void)state;
	memset(in, 0x01, sizeof(in));
	char *got = escape(in, sizeof(in));
	assert_int_equal(strlen(got), 6 * sizeof(in));
	free(got);
}

static void test_jbuf_str_adds_quotes_around_the_escaped_string(void **state)
{
	struct jbuf b;

	(void)state;
	jbuf_init(&b);
	jbuf_str(&b, "a\"b\n", 4);
	assert_int_equal(b.len, 8);
	assert_memory_equal(jbuf_json(&b), "\"a\\\"b\\n\"", 8);
	jbuf_reset(&b);
	jbuf_str(&b, "", 0);
	assert_int_equal(b.len, 2);
	assert_memory_equal(jbuf_json(&b), "\"\"", 2);
	jbuf_free(&b);
}

/* jbuf_str makes room for the escaped length, not the input length: a
 * fresh builder given 1000 control bytes must hold 6002 bytes of JSON. */
static void test_jbuf_str_grows_to_the_escaped_length(void **state)
{
	struct jbuf b;
	char in[1000];

	(void)state;
	memset(in, 0x01, sizeof(in));
	jbuf_init(&b);
	jbuf_str(&b, in, sizeof(in));
	assert_int_equal(b.len, 6 * sizeof(in) + 2);
	assert_int_equal(jbuf_json(&b)[0], '"');
	for (size_t i = 0; i < sizeof(in); i++)
		assert_memory_equal(jbuf_json(&b) + 1 + 6 * i, "\\u0001", 6);
	assert_int_equal(jbuf_json(&b)[b.len - 1], '"');
	jbuf_free(&b);
}

static void test_jbuf_appends_in_order_and_reset_empties_it(void **state)
{
	struct jbuf b;

	(void)state;
	jbuf_init(&b);
	assert_int_equal(b.len, 0);
	jbuf_lit(&b, "{\"a\":");
	jbuf_u64(&b, 42);
	jbuf_raw(&b, ",\"b\":xyz", 5);
	jbuf_str(&b, "c", 1);
	jbuf_raw(&b, "}", 1);
	assert_int_equal(b.len, strlen("{\"a\":42,\"b\":\"c\"}"));
	assert_memory_equal(jbuf_json(&b), "{\"a\":42,\"b\":\"c\"}", b.len);
	jbuf_reset(&b);
	assert_int_equal(b.len, 0);
	jbuf_lit(&b, "[]");
	assert_memory_equal(jbuf_json(&b), "[]", 2);
	jbuf_free(&b);
}

/* Growing far past the first allocation keeps everything already built. */
static void test_jbuf_keeps_its_contents_when_it_grows(void **state)
{
	struct jbuf b;
	char expect[100000];
	size_t n = 0;

	(void)state;
	jbuf_init(&b);
	for (unsigned i = 0; n + 16 < sizeof(expect); i++) {
		char piece[16];
		int len = snprintf(piece, sizeof(piece), "%u,", i);
		jbuf_raw(&b, piece, (size_t)len);
		memcpy(expect + n, piece, (size_t)len);
		n += (size_t)len;
	}
	assert_int_equal(b.len, n);
	assert_memory_equal(jbuf_json(&b), expect, n);
	jbuf_free(&b);
}

static void expect_u64(uint64_t v, const char *want)
{
	struct jbuf b;

	jbuf_init(&b);
	jbuf_lit(&b, "n=");
	jbuf_u64(&b, v);
	if (b.len != 2 + strlen(want) || memcmp(jbuf_json(&b) + 2, want, strlen(want)) != 0)
		fail_msg("%s: got \"%.*s\"", want, (int)b.len, jbuf_json(&b));
	jbuf_free(&b);
}

static void test_jbuf_u64_writes_decimal_digits(void **state)
{
	(void)state;
	expect_u64(0, "0");
	expect_u64(1, "1");
	expect_u64(9, "9");
	expect_u64(10, "10");
	expect_u64(1732590000000ULL, "1732590000000");
	expect_u64(UINT64_MAX, "18446744073709551615");
}

/* Build n bytes of JSON (a string of n - 2 letters) and make a buf of it:
 * the JSON is its payload, byte for byte, after the transport's headroom,
 * and nothing frames it yet. */
static void expect_payload(size_t n)
{
	struct jbuf b;
	char *text = malloc(n);

	assert_non_null(text);
	for (size_t i = 0; i < n - 2; i++)
		text[i] = (char)('a' + i % 26);
	jbuf_init(&b);
	jbuf_str(&b, text, n - 2);
	assert_int_equal(b.len, n);
	memcpy(text, jbuf_json(&b), n);

	struct buf *f = jbuf_to_payload(&b);
	assert_non_null(f);
	assert_int_equal(f->refs, 1);
	assert_int_equal(f->payload, BUF_HEADROOM);
	assert_int_equal(f->head, f->payload);
	size_t len;
	const void *p = buf_payload(f, &len);
	assert_int_equal(len, n);
	assert_memory_equal(p, text, n);
	assert_int_equal(buf_out_len(f), n);
	assert_ptr_equal(buf_out(f), p);

	buf_unref(f);
	jbuf_free(&b);
	free(text);
}

static void test_payload_is_the_json_after_the_headroom_unframed(void **state)
{
	(void)state;
	expect_payload(2);
	expect_payload(125);
	expect_payload(126);
	expect_payload(65536);
}

static void test_payload_of_empty_json_is_empty(void **state)
{
	struct jbuf b;
	size_t len = 1;

	(void)state;
	jbuf_init(&b);
	struct buf *f = jbuf_to_payload(&b);
	buf_payload(f, &len);
	assert_int_equal(len, 0);
	assert_int_equal(f->head, f->payload);
	assert_int_equal(f->len, BUF_HEADROOM);
	buf_unref(f);
	jbuf_free(&b);
}

/* {"t":<jbuf_str(s)>} parsed by jansson gives back s, byte for byte. */
static void expect_round_trip(const char *s, size_t n, const char *what)
{
	struct jbuf b;
	json_error_t err;

	jbuf_init(&b);
	jbuf_lit(&b, "{\"t\":");
	jbuf_str(&b, s, n);
	jbuf_raw(&b, "}", 1);

	json_t *root = json_loadb(jbuf_json(&b), b.len, JSON_ALLOW_NUL, &err);
	if (!root)
		fail_msg("%s: jansson rejects %.*s: %s", what, (int)b.len, jbuf_json(&b), err.text);
	json_t *t = json_object_get(root, "t");
	assert_true(json_is_string(t));
	if (json_string_length(t) != n || memcmp(json_string_value(t), s, n) != 0)
		fail_msg("%s: decoded to %zu bytes, want %zu", what, json_string_length(t), n);
	json_decref(root);
	jbuf_free(&b);
}

#define ROUND_TRIP(lit) expect_round_trip((lit), sizeof(lit) - 1, #lit)

static void test_tricky_strings_round_trip_through_a_json_parser(void **state)
{
	char controls[32];

	(void)state;
	ROUND_TRIP("");
	ROUND_TRIP("plain");
	ROUND_TRIP("\"quoted\" and \\back\\slashed\\");
	ROUND_TRIP("\\u0041 is not an escape here");
	ROUND_TRIP("a\0b");
	ROUND_TRIP("\0");
	ROUND_TRIP("line\nbreak\r\ntab\tbs\bff\f");
	ROUND_TRIP("\x7f");
	ROUND_TRIP("\xe2\x80\xa8\xe2\x80\xa9");
	ROUND_TRIP("\xe2\x82\xac \xe2\x80\xa6 \xe2\x80\xa7 \xe2\x80\xaa");
	ROUND_TRIP("\xf0\x9f\x98\x80\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9");
	ROUND_TRIP("</script><script>alert(1)</script>");
	for (int i = 0; i < 32; i++)
		controls[i] = (char)i;
	expect_round_trip(controls, sizeof(controls), "every control character");
}

/* Append code point cp as UTF-8. */
static size_t put_utf8(char *out, uint32_t cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Random valid UTF-8 weighted towards the characters that matter here:
 * controls, quotes, backslashes and the E2 80 xx block. */
static void test_random_utf8_strings_round_trip_through_a_json_parser(void **state)
{
	static const uint32_t special[] = { 0, '"', '\\', '\n', 0x1f, 0x7f, 0x2028, 0x2029,
					    0x2027, 0x202a, 0x20ac, 0x2026, 0x1f600 };
	char s[64 * 4];

	(void)state;
	srand(12345);
	for (int round = 0; round < 2000; round++) {
		size_t n = 0;
		int chars = rand() % 64;
		for (int i = 0; i < chars; i++) {
			uint32_t cp;
			switch (rand() % 4) {
			case 0: cp = special[(size_t)rand() % (sizeof(special) / sizeof(special[0]))]; break;
			case 1: cp = (uint32_t)(rand() % 0x80); break;
			case 2: cp = 0x2000 + (uint32_t)(rand() % 0x100); break;
			default:
				do
					cp = (uint32_t)rand() % 0x110000;
				while (cp >= 0xd800 && cp <= 0xdfff);
			}
			n += put_utf8(s + n, cp);
		}
		expect_round_trip(s, n, "random string");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_ascii_is_unchanged),
		cmocka_unit_test(test_quote_and_backslash_are_escaped),
		cmocka_unit_test(test_named_control_characters_use_their_short_escapes),
		cmocka_unit_test(test_every_other_control_character_is_u00xx),
		cmocka_unit_test(test_nul_is_escaped_not_a_terminator),
		cmocka_unit_test(test_del_passes_through),
		cmocka_unit_test(test_line_and_paragraph_separators_are_escaped),
		cmocka_unit_test(test_other_e2_characters_pass_unchanged),
		cmocka_unit_test(test_multibyte_utf8_and_emoji_pass_unchanged),
		cmocka_unit_test(test_e2_cut_short_at_the_end_passes_unchanged),
		cmocka_unit_test(test_escape_needs_at_most_six_bytes_per_input_byte),
		cmocka_unit_test(test_jbuf_str_adds_quotes_around_the_escaped_string),
		cmocka_unit_test(test_jbuf_str_grows_to_the_escaped_length),
		cmocka_unit_test(test_jbuf_appends_in_order_and_reset_empties_it),
		cmocka_unit_test(test_jbuf_keeps_its_contents_when_it_grows),
		cmocka_unit_test(test_jbuf_u64_writes_decimal_digits),
		cmocka_unit_test(test_payload_is_the_json_after_the_headroom_unframed),
		cmocka_unit_test(test_payload_of_empty_json_is_empty),
		cmocka_unit_test(test_tricky_strings_round_trip_through_a_json_parser),
		cmocka_unit_test(test_random_utf8_strings_round_trip_through_a_json_parser),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
