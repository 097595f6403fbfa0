/* Unit tests: log lines (log.h): the timestamp and level on every line,
 * text and JSON, escaping, and lines cut to size that stay whole. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <regex.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "log.h"

/* stderr goes into a pipe while a test logs; captured() reads it back. */
static int saved_stderr = -1;
static int pipe_read = -1;
static char text[16384];

static int capture(void **state)
{
	(void)state;
	int p[2];
	if (pipe(p) < 0)
		return -1;
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	saved_stderr = dup(STDERR_FILENO);
	dup2(p[1], STDERR_FILENO);
	close(p[1]);
	pipe_read = p[0];
	log_set_level(LOG_INFO);
	log_set_format(LOG_TEXT);
	return 0;
}

static int release(void **state)
{
	(void)state;
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	close(pipe_read);
	return 0;
}

static const char *captured(void)
{
	ssize_t n = read(pipe_read, text, sizeof(text) - 1);
	text[n < 0 ? 0 : n] = '\0';
	return text;
}

static bool matches(const char *s, const char *pattern)
{
	regex_t re;
	assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
	bool ok = regexec(&re, s, 0, NULL, 0) == 0;
	regfree(&re);
	return ok;
}

#define TS "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"

static void test_a_text_line_starts_with_the_utc_time_and_level(void **state)
{
	(void)state;
	log_info("listening on %s", "http://127.0.0.1:4000/");
	assert_true(matches(captured(), "^" TS " info listening on http://127\\.0\\.0\\.1:4000/\n$"));
	log_error("boom");
	assert_true(matches(captured(), "^" TS " error boom\n$"));
}

static void test_lines_below_the_level_are_not_written(void **state)
{
	(void)state;
	log_debug("hidden");
	assert_false(log_enabled(LOG_DEBUG));
	log_warn("shown");
	assert_true(matches(captured(), "^" TS " warn shown\n$"));
}

static void test_text_fields_are_key_value_and_quoted_when_needed(void **state)
{
	(void)state;
	log_kv(LOG_INFO, "http error", LOG_NUM("status", 404), LOG_STR("path", "/a b\"c"),
	       LOG_STR("why", NULL), LOG_STR("conn", "0.1.2"));
	assert_true(matches(captured(), "^" TS " info http error status=404 path=\"/a b\\\\\"c\" conn=0\\.1\\.2\n$"));
}

static void test_a_newline_in_a_message_cannot_start_a_line(void **state)
{
	(void)state;
	log_kv(LOG_INFO, "evil\n2026-01-01T00:00:00.000Z error forged", LOG_STR("v", "x\ny"));
	const char *out = captured();
	assert_int_equal(strchr(out, '\n') - out, (long)strlen(out) - 1); /* one line */
	assert_non_null(strstr(out, "evil\\n2026"));
	assert_non_null(strstr(out, "v=\"x\\ny\""));
}

static json_t *one_json_line(const char *out)
{
	size_t len = strlen(out);
	assert_true(len > 0 && out[len - 1] == '\n');
	assert_null(memchr(out, '\n', len - 1));
	json_error_t err;
	json_t *obj = json_loadb(out, len - 1, 0, &err);
	if (!obj)
		fail_msg("not JSON (%s): %s", err.text, out);
	assert_true(json_is_object(obj));
	assert_true(matches(json_string_value(json_object_get(obj, "ts")), "^" TS "$"));
	return obj;
}

static void test_a_json_line_is_one_object_with_ts_level_msg_and_fields(void **state)
{
	(void)state;
	log_set_format(LOG_JSON);
	log_kv(LOG_WARN, "say \"hi\"\t\\", LOG_NUM("code", 1001), LOG_STR("peer", "[::1]:5"),
	       LOG_STR("absent", NULL));
	json_t *obj = one_json_line(captured());
	assert_string_equal(json_string_value(json_object_get(obj, "level")), "warn");
	assert_string_equal(json_string_value(json_object_get(obj, "msg")), "say \"hi\"\t\\");
	assert_int_equal(json_integer_value(json_object_get(obj, "code")), 1001);
	assert_string_equal(json_string_value(json_object_get(obj, "peer")), "[::1]:5");
	assert_null(json_object_get(obj, "absent"));
	json_decref(obj);
}

static void test_json_stays_valid_utf8_whatever_the_bytes(void **state)
{
	(void)state;
	log_set_format(LOG_JSON);
	log_kv(LOG_INFO, "bytes", LOG_STR("path", "/caf\xc3\xa9/\xff\xc3/\x01"));
	json_t *obj = one_json_line(captured());
	assert_string_equal(json_string_value(json_object_get(obj, "path")),
			    "/caf\xc3\xa9/\xef\xbf\xbd\xef\xbf\xbd/\x01");
	json_decref(obj);
}

static void test_a_line_too_long_is_cut_and_stays_one_valid_line(void **state)
{
	(void)state;
	static char big[20000];
	memset(big, '"', sizeof(big) - 1); /* each escapes to two bytes */
	log_set_format(LOG_JSON);
	log_kv(LOG_INFO, "long", LOG_STR("path", big), LOG_NUM("status", 414));
	json_t *obj = one_json_line(captured());
	assert_string_equal(json_string_value(json_object_get(obj, "msg")), "long");
	json_decref(obj);
	log_info("%s", big); /* the message itself cut */
	obj = one_json_line(captured());
	assert_true(strlen(json_string_value(json_object_get(obj, "msg"))) > 1000);
	json_decref(obj);
	log_set_format(LOG_TEXT);
	log_kv(LOG_INFO, "long", LOG_STR("path", big));
	const char *out = captured();
	assert_true(strlen(out) <= 4096);
	assert_true(matches(out, "^" TS " info long path="));
	assert_int_equal(strchr(out, '\n') - out, (long)strlen(out) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a_text_line_starts_with_the_utc_time_and_level, capture, release),
		cmocka_unit_test_setup_teardown(test_lines_below_the_level_are_not_written, capture, release),
		cmocka_unit_test_setup_teardown(test_text_fields_are_key_value_and_quoted_when_needed, capture, release),
		cmocka_unit_test_setup_teardown(test_a_newline_in_a_message_cannot_start_a_line, capture, release),
		cmocka_unit_test_setup_teardown(test_a_json_line_is_one_object_with_ts_level_msg_and_fields, capture,
						release),
		cmocka_unit_test_setup_teardown(test_json_stays_valid_utf8_whatever_the_bytes, capture, release),
		cmocka_unit_test_setup_teardown(test_a_line_too_long_is_cut_and_stays_one_valid_line, capture, release),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
