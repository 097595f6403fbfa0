/* test_chat_name.c: the display-name rules of chat_name.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "chat_name.h"

static char out[CHAT_NAME_MAX_BYTES + 1];

static bool ok(const char *in)
{
	return chat_name_normalize(in, strlen(in), out);
}

static void plain_ascii_name_is_kept(void **state)
{
	(void)state;
	assert_true(ok("alice"));
	assert_string_equal(out, "alice");
}

static void whitespace_is_trimmed_at_both_ends(void **state)
{
	(void)state;
	assert_true(ok("  \t bob smith \t "));
	assert_string_equal(out, "bob smith");
	assert_true(ok("\xc2\xa0" "carol" "\xe3\x80\x80")); /* NBSP ... ideographic space */
	assert_string_equal(out, "carol");
}

static void empty_or_only_whitespace_is_refused(void **state)
{
	(void)state;
	assert_false(ok(""));
	assert_false(ok("   "));
	assert_false(ok("\xe2\x80\x83\xe2\x80\x83")); /* em spaces */
}

static void thirty_two_characters_are_allowed_thirty_three_are_not(void **state)
{
	(void)state;
	assert_true(ok("abcdefghijklmnopqrstuvwxyz012345"));
	assert_false(ok("abcdefghijklmnopqrstuvwxyz0123456"));
}

static void length_counts_characters_not_bytes(void **state)
{
	(void)state;
	char name[32 * 4 + 2] = "";
	for (int i = 0; i < 32; i++)
		strcat(name, "\xf0\x9f\x98\x80"); /* 32 emoji, 128 bytes */
	assert_true(ok(name));
	assert_int_equal(strlen(out), 128);
	strcat(name, "a");
	assert_false(ok(name));
}

static void control_characters_are_refused(void **state)
{
	(void)state;
	assert_false(ok("a\nb"));
	assert_false(ok("a\rb"));
	assert_false(ok("a\x7f"));
	assert_false(ok("a\xc2\x85")); /* C1 NEL */
	assert_false(ok("a\x1b[31mred"));
}

static void line_separators_and_bidi_overrides_are_refused(void **state)
{
	(void)state;
	assert_false(ok("a\xe2\x80\xa8" "b"));       /* U+2028 */
	assert_false(ok("a\xe2\x80\xae" "evil"));    /* U+202E RLO */
	assert_false(ok("a\xe2\x81\xa6" "x"));       /* U+2066 LRI */
	assert_false(ok("\xe2\x80\x8f" "x"));        /* U+200F RLM */
}

static void invisible_only_names_are_refused(void **state)
{
	(void)state;
	assert_false(ok("\xe2\x80\x8b"));                 /* zero width space */
	assert_false(ok("\xe2\x80\x8b\xe2\x80\x8c\xef\xbb\xbf")); /* ZWSP ZWNJ BOM */
	assert_false(ok("\xe3\x85\xa4"));                 /* Hangul filler U+3164 */
	assert_false(ok("\xcc\x81\xcc\x81"));             /* combining marks alone */
	assert_false(ok("\xef\xb8\x8f"));                 /* variation selector */
}

static void combining_marks_of_any_script_alone_are_refused(void **state)
{
	(void)state;
	assert_false(ok("\xd9\x8b"));         /* U+064B Arabic fathatan */
	assert_false(ok("\xd6\x91"));         /* U+0591 Hebrew accent */
	assert_false(ok("\xe3\x82\x99"));     /* U+3099 kana voiced mark */
	assert_false(ok("\xe1\x9e\xb4"));     /* U+17B4 Khmer inherent vowel */
	assert_false(ok("\xd2\x88"));         /* U+0488 enclosing mark */
	assert_false(ok("\xe1\xa0\x8b"));     /* U+180B Mongolian variation selector */
	assert_false(ok("\xe2\xa0\x80"));     /* U+2800 braille blank */
	assert_true(ok("\xd8\xa8\xd9\x8b")); /* beh + fathatan: visible */
}

static void invisible_characters_beside_visible_ones_are_kept(void **state)
{
	(void)state;
	assert_true(ok("e\xcc\x81mile"));                  /* e + combining acute */
	assert_string_equal(out, "e\xcc\x81mile");
	assert_true(ok("\xe2\x9d\xa4\xef\xb8\x8f"));       /* heart + VS16 */
}

static void non_latin_names_are_welcome(void **state)
{
	(void)state;
	assert_true(ok("\xe5\xbc\xa0\xe4\xbc\x9f"));       /* Chinese */
	assert_true(ok("\xd0\x90\xd0\xbd\xd0\xbd\xd0\xb0")); /* Cyrillic */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plain_ascii_name_is_kept),
		cmocka_unit_test(whitespace_is_trimmed_at_both_ends),
		cmocka_unit_test(empty_or_only_whitespace_is_refused),
		cmocka_unit_test(thirty_two_characters_are_allowed_thirty_three_are_not),
		cmocka_unit_test(length_counts_characters_not_bytes),
		cmocka_unit_test(control_characters_are_refused),
		cmocka_unit_test(line_separators_and_bidi_overrides_are_refused),
		cmocka_unit_test(invisible_only_names_are_refused),
		cmocka_unit_test(combining_marks_of_any_script_alone_are_refused),
		cmocka_unit_test(invisible_characters_beside_visible_ones_are_kept),
		cmocka_unit_test(non_latin_names_are_welcome),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
