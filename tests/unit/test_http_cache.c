/* test_http_cache.c: Accept-Encoding and If-None-Match as http_cache.h reads them. */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "http_cache.h"

static bool gzip_ok(const char *v)
{
	return http_accepts_gzip(v, strlen(v));
}

static bool matches(const char *v, const char *etag)
{
	return http_etag_matches(v, strlen(v), etag);
}

static void gzip_named_is_accepted(void **state)
{
	(void)state;
	assert_true(gzip_ok("gzip"));
	assert_true(gzip_ok("gzip, deflate, br"));
	assert_true(gzip_ok("br;q=1.0, gzip;q=0.8, *;q=0.1"));
	assert_true(gzip_ok("GZIP"));
	assert_true(gzip_ok("x-gzip"));
	assert_true(gzip_ok("  deflate ,gzip  "));
	assert_true(gzip_ok("gzip;q=0.001"));
	assert_true(gzip_ok("gzip ; q=1"));
}

static void no_header_value_or_other_codings_mean_plain(void **state)
{
	(void)state;
	assert_false(gzip_ok(""));
	assert_false(gzip_ok("identity"));
	assert_false(gzip_ok("deflate, br"));
	assert_false(gzip_ok("gzipx"));
	assert_false(gzip_ok("xgzip"));
}

static void q_0_refuses_gzip(void **state)
{
	(void)state;
	assert_false(gzip_ok("gzip;q=0"));
	assert_false(gzip_ok("gzip;q=0.000"));
	assert_false(gzip_ok("gzip; q=0, deflate"));
	assert_false(gzip_ok("*, gzip;q=0"));
	assert_false(gzip_ok("gzip;q=0, *"));
}

static void star_stands_for_gzip_when_gzip_is_not_named(void **state)
{
	(void)state;
	assert_true(gzip_ok("*"));
	assert_true(gzip_ok("identity, *;q=0.5"));
	assert_false(gzip_ok("*;q=0"));
}

static void malformed_q_counts_as_0(void **state)
{
	(void)state;
	assert_false(gzip_ok("gzip;q=2"));
	assert_false(gzip_ok("gzip;q=1.5"));
	assert_false(gzip_ok("gzip;q="));
	assert_false(gzip_ok("gzip;q=abc"));
	assert_false(gzip_ok("gzip;q=0.5x"));
}

static void other_parameters_are_ignored(void **state)
{
	(void)state;
	assert_true(gzip_ok("gzip;level=1"));
	assert_false(gzip_ok("gzip;level=1;q=0"));
}

static void etag_equal_matches(void **state)
{
	(void)state;
	assert_true(matches("\"abc\"", "\"abc\""));
	assert_true(matches("\"x\", \"abc\"", "\"abc\""));
	assert_true(matches("  \"abc\"  ", "\"abc\""));
}

static void weak_prefix_still_matches(void **state)
{
	(void)state;
	assert_true(matches("W/\"abc\"", "\"abc\""));
	assert_true(matches("\"x\",W/\"abc\"", "\"abc\""));
}

static void star_matches_anything(void **state)
{
	(void)state;
	assert_true(matches("*", "\"abc\""));
}

static void other_or_partial_etags_do_not_match(void **state)
{
	(void)state;
	assert_false(matches("", "\"abc\""));
	assert_false(matches("\"abcd\"", "\"abc\""));
	assert_false(matches("\"ab\"", "\"abc\""));
	assert_false(matches("abc", "\"abc\""));
	assert_false(matches("\"abc-gz\"", "\"abc\""));
	assert_false(matches("w/\"abc\"", "\"abc\""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(gzip_named_is_accepted),
		cmocka_unit_test(no_header_value_or_other_codings_mean_plain),
		cmocka_unit_test(q_0_refuses_gzip),
		cmocka_unit_test(star_stands_for_gzip_when_gzip_is_not_named),
		cmocka_unit_test(malformed_q_counts_as_0),
		cmocka_unit_test(other_parameters_are_ignored),
		cmocka_unit_test(etag_equal_matches),
		cmocka_unit_test(weak_prefix_still_matches),
		cmocka_unit_test(star_matches_anything),
		cmocka_unit_test(other_or_partial_etags_do_not_match),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
