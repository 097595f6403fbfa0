/* test_utf8.c: the incremental UTF-8 validator, rule by rule.
 *
 * Most vectors follow section 6 of the Autobahn test suite. Each says where
 * validation must fail: on which byte the state becomes UTF8_REJECT when
 * fed one byte at a time, or that the input is valid, or merely incomplete.
 * Two exhaustive tests then hold the validator against a reference written
 * a different way (decode the code point, compare it with RFC 3629 ranges). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "utf8.h"

#define VALID       (-1)  /* complete and valid */
#define INCOMPLETE  (-2)  /* valid so far, but ends inside a character */

struct vector {
	const char *bytes;
	size_t len;
	int fails_at;  /* index of the byte that makes it invalid, or the above */
};

#define V(s, at) { (s), sizeof(s) - 1, (at) }

/* Feed one byte at a time and return the index of the byte that made the
 * state REJECT, VALID or INCOMPLETE. Also check that feeding the prefixes
 * whole (through the ASCII fast path) agrees. */
static int fail_position(const uint8_t *s, size_t len)
{
	uint32_t state = UTF8_ACCEPT;

	for (size_t i = 0; i < len; i++) {
		state = utf8_feed(state, s + i, 1);
		assert_int_equal(utf8_feed(UTF8_ACCEPT, s, i + 1), state);
		if (state == UTF8_REJECT)
			return (int)i;
	}
	return state == UTF8_ACCEPT ? VALID : INCOMPLETE;
}

static void check_vectors(const struct vector *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const uint8_t *s = (const uint8_t *)v[i].bytes;
		int got = fail_position(s, v[i].len);

		if (got != v[i].fails_at)
			fail_msg("vector %zu: expected %d, got %d", i, v[i].fails_at, got);
		assert_int_equal(utf8_valid(s, v[i].len), v[i].fails_at == VALID);
	}
}

#define CHECK(table) check_vectors((table), sizeof(table) / sizeof((table)[0]))

static void test_empty_and_ascii_are_valid(void **state)
{
	static const struct vector v[] = {
		V("", VALID),
		V("a", VALID),
		V("Hello-\x7f\x01 world, all seven-bit bytes are text", VALID),
	};

	(void)state;
	assert_int_equal(utf8_feed(UTF8_ACCEPT, NULL, 0), UTF8_ACCEPT);
	CHECK(v);
}

static void test_valid_multibyte_characters_are_accepted(void **state)
{
	static const struct vector v[] = {
		V("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", VALID), /* 6.2 κόσμε */
		V("\xc2\x80", VALID),                 /* 6.7: first of each length */
		V("\xe0\xa0\x80", VALID),
		V("\xf0\x90\x80\x80", VALID),
		V("\xdf\xbf", VALID),                 /* 6.9: last of each length */
		V("\xef\xbf\xbf", VALID),
		V("\xf4\x8f\xbf\xbf", VALID),         /* U+10FFFF */
		V("\xed\x9f\xbf", VALID),             /* 6.11: U+D7FF, below surrogates */
		V("\xee\x80\x80", VALID),             /* U+E000, above them */
		V("\xef\xbf\xbd", VALID),             /* U+FFFD */
		V("\xef\xbf\xbe", VALID),             /* 6.22: noncharacters are valid */
		V("\xf0\x9f\xbf\xbf", VALID),
		V("\xf3\xbf\xbf\xbf", VALID),
		V("a\xc3\xa9z\xe2\x82\xac\xf0\x9f\x98\x80!", VALID),
	};

	(void)state;
	CHECK(v);
}

static void test_overlongs_fail_on_the_byte_that_makes_them_overlong(void **state)
{
	static const struct vector v[] = {
		V("\xc0\xaf", 0),                     /* 6.17: overlong '/' */
		V("\xc1\xbf", 0),                     /* 6.18: largest overlongs */
		V("\xe0\x80\xaf", 1),
		V("\xe0\x9f\xbf", 1),
		V("\xf0\x80\x80\xaf", 1),
		V("\xf0\x8f\xbf\xbf", 1),
		V("\xc0\x80", 0),                     /* 6.19: overlong NUL */
		V("\xe0\x80\x80", 1),
		V("\xf0\x80\x80\x80", 1),
		V("\xf8\x80\x80\x80\xaf", 0),         /* five and six byte forms */
		V("\xfc\x80\x80\x80\x80\xaf", 0),
	};

	(void)state;
	CHECK(v);
}

static void test_surrogates_fail_on_the_second_byte(void **state)
{
	static const struct vector v[] = {
		V("\xed\xa0\x80", 1),                 /* 6.20: lone surrogates */
		V("\xed\xad\xbf", 1),
		V("\xed\xae\x80", 1),
		V("\xed\xaf\xbf", 1),
		V("\xed\xb0\x80", 1),
		V("\xed\xbe\x80", 1),
		V("\xed\xbf\xbf", 1),
		V("\xed\xa0\x80\xed\xb0\x80", 1),     /* 6.21: a pair is no better */
	};

	(void)state;
	CHECK(v);
}

static void test_code_points_above_10ffff_fail_early(void **state)
{
	static const struct vector v[] = {
		V("\xf4\x90\x80\x80", 1),             /* U+110000 */
		V("\xf4\xbf\xbf\xbf", 1),
		V("\xf5\x80\x80\x80", 0),
		V("\xf7\xbf\xbf\xbf", 0),             /* 6.10 */
		V("\xfb\xbf\xbf\xbf\xbf", 0),
		V("\xfd\xbf\xbf\xbf\xbf\xbf", 0),
	};

	(void)state;
	CHECK(v);
}

static void test_impossible_bytes_fail_at_once(void **state)
{
	static const struct vector v[] = {
		V("\xfe", 0),                         /* 6.16 */
		V("\xff", 0),
		V("\xfe\xfe\xff\xff", 0),
		V("ab\xc0", 2),
		V("ab\xc1", 2),
	};

	(void)state;
	CHECK(v);
}

static void test_stray_continuation_bytes_fail(void **state)
{
	static const struct vector v[] = {
		V("\x80", 0),                         /* 6.12 */
		V("\xbf", 0),
		V("\x80\xbf", 0),
		V("a\x80", 1),
		V("\xc2\x80\x80", 2),                 /* one too many */
		V("\xe2\x82\xac\xbf", 3),
		V("\xf0\x9f\x98\x80\x80", 4),
	};

	(void)state;
	CHECK(v);
}

static void test_a_lead_byte_needs_its_continuations(void **state)
{
	static const struct vector v[] = {
		V("\xc2\x20", 1),                     /* 6.13: lonely start bytes */
		V("\xdf\x20", 1),
		V("\xe1\x20", 1),
		V("\xe1\x80\x20", 2),
		V("\xf1\x80\x80\x20", 3),
		V("\xc2\xc2\x80", 1),                 /* a new lead too soon */
		V("\xe2\x82\xe2\x82\xac", 2),
	};

	(void)state;
	CHECK(v);
}

static void test_truncated_sequences_are_incomplete_not_rejected(void **state)
{
	static const struct vector v[] = {
		V("\xce", INCOMPLETE),                /* 6.6: prefixes of κόσμε */
		V("\xce\xba\xe1", INCOMPLETE),
		V("\xce\xba\xe1\xbd", INCOMPLETE),
		V("\xdf", INCOMPLETE),                /* 6.14: last byte missing */
		V("\xef\xbf", INCOMPLETE),
		V("\xf4\x8f\xbf", INCOMPLETE),
		V("\xe0\xa0", INCOMPLETE),
		V("\xed\x9f", INCOMPLETE),
		V("\xf0\x90", INCOMPLETE),
		V("\xf4\x8f", INCOMPLETE),
	};

	(void)state;
	CHECK(v);
}

/* Autobahn 6.3.1: valid text, then a surrogate. The first byte of it (ED)
 * could still start U+D000..U+D7FF; the A0 after it cannot, so that is
 * where validation must stop, not at the end of the input. */
static void test_kosme_then_surrogate_fails_at_the_a0_byte(void **state)
{
	static const struct vector v[] = {
		V("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80" "edited", 12),
		V("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80" "edited", 12),
		V("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xc0\xaf" "edited", 11),
	};

	(void)state;
	CHECK(v);
}

static void test_reject_is_sticky(void **state)
{
	static const uint8_t ok[] = "plain ascii and \xc3\xa9";

	(void)state;
	assert_int_equal(utf8_feed(UTF8_REJECT, ok, sizeof(ok) - 1), UTF8_REJECT);
	assert_int_equal(utf8_feed(UTF8_REJECT, NULL, 0), UTF8_REJECT);
}

static void test_any_split_gives_the_same_state(void **state)
{
	static const uint8_t s[] =
		"ascii run of more than eight \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 "
		"\xf0\x9f\x98\x80\xe2\x82\xac then more ascii to cross 8-byte words \xdf\xbf";
	size_t len = sizeof(s) - 1;

	(void)state;
	assert_true(utf8_valid(s, len));
	for (size_t a = 0; a <= len; a++) {
		for (size_t b = a; b <= len; b++) {
			uint32_t st = utf8_feed(UTF8_ACCEPT, s, a);

			st = utf8_feed(st, s + a, b - a);
			assert_int_not_equal(st, UTF8_REJECT);
			st = utf8_feed(st, s + b, len - b);
			assert_int_equal(st, UTF8_ACCEPT);
		}
	}
}

/* The fast path tests eight bytes at once: a bad byte, a valid character
 * or a cut-off one must be seen wherever it sits relative to those words. */
static void test_ascii_fast_path_sees_every_offset(void **state)
{
	uint8_t s[40];

	(void)state;
	for (size_t at = 0; at < sizeof(s); at++) {
		memset(s, 'x', sizeof(s));
		s[at] = 0x80;
		assert_int_equal(fail_position(s, sizeof(s)), (int)at);

		memset(s, 'x', sizeof(s));
		s[at] = 0xe9;
		if (at + 1 < sizeof(s)) {
			assert_int_equal(fail_position(s, sizeof(s)), (int)at + 1);
			s[at] = 0xc3;
			s[at + 1] = 0xa9;
			assert_int_equal(fail_position(s, sizeof(s)), VALID);
		} else {
			assert_int_equal(fail_position(s, sizeof(s)), INCOMPLETE);
		}
	}
}

enum ref_result { REF_VALID, REF_INVALID, REF_INCOMPLETE };

/* The reference: decode each character and compare its code point with the
 * ranges of RFC 3629 (no overlongs, no surrogates, nothing above U+10FFFF).
 * For a character cut off by the end of the input, ask whether any of the
 * code points it could still become is valid. */
static enum ref_result ref_check(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t b = s[i];
		uint32_t cp, min, lo, hi;
		size_t n, k;

		if (b < 0x80) {
			i++;
			continue;
		}
		if (b >= 0xc0 && b < 0xe0) {
			n = 2, cp = b & 0x1f, min = 0x80;
		} else if (b >= 0xe0 && b < 0xf0) {
			n = 3, cp = b & 0x0f, min = 0x800;
		} else if (b >= 0xf0 && b < 0xf8) {
			n = 4, cp = b & 0x07, min = 0x10000;
		} else {
			return REF_INVALID;
		}
		for (k = 1; k < n && i + k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return REF_INVALID;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		lo = cp << (6 * (n - k));
		hi = lo | ((1u << (6 * (n - k))) - 1);
		if (lo < min)
			lo = min;
		if (hi > 0x10ffff)
			hi = 0x10ffff;
		if (lo > hi || (lo >= 0xd800 && hi <= 0xdfff))
			return REF_INVALID;
		if (k < n)
			return REF_INCOMPLETE;
		i += n;
	}
	return REF_VALID;
}

static void check_against_reference(const uint8_t *s, size_t len)
{
	uint32_t whole = utf8_feed(UTF8_ACCEPT, s, len);
	uint32_t step = UTF8_ACCEPT;
	enum ref_result want = ref_check(s, len), got;

	for (size_t i = 0; i < len; i++)
		step = utf8_feed(step, s + i, 1);
	assert_int_equal(step, whole);
	got = whole == UTF8_ACCEPT ? REF_VALID :
	      whole == UTF8_REJECT ? REF_INVALID : REF_INCOMPLETE;
	if (got != want)
		fail_msg("%zu bytes %02x %02x %02x %02x: validator %d, reference %d",
			 len, s[0], len > 1 ? s[1] : 0, len > 2 ? s[2] : 0,
			 len > 3 ? s[3] : 0, got, want);
}

/* Every input of up to three bytes: since the state of each prefix is
 * checked too, this covers every transition and fail-fast point that a
 * one- to three-byte character can reach. */
static void test_all_inputs_up_to_three_bytes_match_the_reference(void **state)
{
	uint8_t s[3];

	(void)state;
	for (unsigned a = 0; a < 256; a++) {
		s[0] = (uint8_t)a;
		check_against_reference(s, 1);
		for (unsigned b = 0; b < 256; b++) {
			s[1] = (uint8_t)b;
			check_against_reference(s, 2);
			for (unsigned c = 0; c < 256; c++) {
				s[2] = (uint8_t)c;
				check_against_reference(s, 3);
			}
		}
	}
}

/* Four-byte leads with every byte around the continuation range after
 * them (7E..C2 covers ASCII, each continuation class and a lead). */
static void test_four_byte_characters_match_the_reference(void **state)
{
	uint8_t s[4];

	(void)state;
	for (unsigned a = 0xf0; a <= 0xf8; a++) {
		s[0] = (uint8_t)a;
		for (unsigned b = 0x7e; b <= 0xc2; b++) {
			s[1] = (uint8_t)b;
			for (unsigned c = 0x7e; c <= 0xc2; c++) {
				s[2] = (uint8_t)c;
				for (unsigned d = 0x7e; d <= 0xc2; d++) {
					s[3] = (uint8_t)d;
					check_against_reference(s, 4);
				}
			}
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_and_ascii_are_valid),
		cmocka_unit_test(test_valid_multibyte_characters_are_accepted),
		cmocka_unit_test(test_overlongs_fail_on_the_byte_that_makes_them_overlong),
		cmocka_unit_test(test_surrogates_fail_on_the_second_byte),
		cmocka_unit_test(test_code_points_above_10ffff_fail_early),
		cmocka_unit_test(test_impossible_bytes_fail_at_once),
		cmocka_unit_test(test_stray_continuation_bytes_fail),
		cmocka_unit_test(test_a_lead_byte_needs_its_continuations),
		cmocka_unit_test(test_truncated_sequences_are_incomplete_not_rejected),
		cmocka_unit_test(test_kosme_then_surrogate_fails_at_the_a0_byte),
		cmocka_unit_test(test_reject_is_sticky),
		cmocka_unit_test(test_any_split_gives_the_same_state),
		cmocka_unit_test(test_ascii_fast_path_sees_every_offset),
		cmocka_unit_test(test_all_inputs_up_to_three_bytes_match_the_reference),
		cmocka_unit_test(test_four_byte_characters_match_the_reference),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
