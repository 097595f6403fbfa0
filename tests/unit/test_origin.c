/* test_origin.c: the Origin rules of origin.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "origin.h"

static bool check(const char *origin, const char *host, const char *const *allow, size_t n)
{
	return origin_allowed(origin, origin ? strlen(origin) : 0, host, host ? strlen(host) : 0, allow, n);
}

static void no_origin_is_a_non_browser_client_and_allowed(void **state)
{
	(void)state;
	assert_true(check(NULL, "localhost:4000", NULL, 0));
}

static void same_host_and_port_is_allowed(void **state)
{
	(void)state;
	assert_true(check("http://localhost:4000", "localhost:4000", NULL, 0));
	assert_true(check("https://Chat.Example.com", "chat.example.com", NULL, 0));
}

static void another_site_is_refused(void **state)
{
	(void)state;
	assert_false(check("http://evil.example", "localhost:4000", NULL, 0));
	assert_false(check("http://localhost:4001", "localhost:4000", NULL, 0));
	assert_false(check("http://localhost:4000.evil.example", "localhost:4000", NULL, 0));
}

static void malformed_origin_is_refused(void **state)
{
	(void)state;
	assert_false(check("localhost:4000", "localhost:4000", NULL, 0));
	assert_false(check("http://localhost:4000/path", "localhost:4000", NULL, 0));
	assert_false(check("", "localhost:4000", NULL, 0));
	assert_false(check("null", "localhost:4000", NULL, 0));
}

static void missing_host_refuses_a_browser(void **state)
{
	(void)state;
	assert_false(check("http://localhost:4000", NULL, NULL, 0));
}

static void allow_list_replaces_the_same_host_rule(void **state)
{
	(void)state;
	const char *allow[] = { "https://chat.example.com", "null" };
	assert_true(check("https://chat.example.com", "internal:4000", allow, 2));
	assert_true(check("HTTPS://CHAT.EXAMPLE.COM", "internal:4000", allow, 2));
	assert_true(check("null", "internal:4000", allow, 2));
	assert_false(check("http://internal:4000", "internal:4000", allow, 2));
}

static void star_allows_any_origin(void **state)
{
	(void)state;
	const char *allow[] = { "*" };
	assert_true(check("http://anything.example", "localhost:4000", allow, 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(no_origin_is_a_non_browser_client_and_allowed),
		cmocka_unit_test(same_host_and_port_is_allowed),
		cmocka_unit_test(another_site_is_refused),
		cmocka_unit_test(malformed_origin_is_refused),
		cmocka_unit_test(missing_host_refuses_a_browser),
		cmocka_unit_test(allow_list_replaces_the_same_host_rule),
		cmocka_unit_test(star_allows_any_origin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
