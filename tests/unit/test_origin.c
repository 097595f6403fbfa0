/* test_origin.c: the Origin and Host rules of origin.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include <netinet/in.h>
#include <sys/socket.h>

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

static void allow_list_adds_origins(void **state)
{
	(void)state;
	const char *allow[] = { "https://chat.example.com", "null" };
	assert_true(check("https://chat.example.com", "internal:4000", allow, 2));
	assert_true(check("HTTPS://CHAT.EXAMPLE.COM", "internal:4000", allow, 2));
	assert_true(check("null", "internal:4000", allow, 2));
	assert_false(check("https://other.example", "internal:4000", allow, 2));
	assert_false(check("https://chat.example.com:8443", "internal:4000", allow, 2));
}

/* --allow-origin must not lock out the page this server serves itself. */
static void allow_list_keeps_the_same_host_rule(void **state)
{
	(void)state;
	const char *allow[] = { "https://other.example" };
	assert_true(check("http://internal:4000", "internal:4000", allow, 1));
	assert_true(check("http://127.0.0.1:4000", "127.0.0.1:4000", allow, 1));
	assert_false(check("http://internal:4001", "internal:4000", allow, 1));
	assert_false(check("http://internal:4000", NULL, allow, 1));
}

static void star_allows_any_origin(void **state)
{
	(void)state;
	const char *allow[] = { "*" };
	assert_true(check("http://anything.example", "localhost:4000", allow, 1));
}

/* ---- Host on a loopback listener (DNS rebinding) ------------------------ */

static bool host_ok(const char *host, const char *const *allow, size_t n)
{
	return origin_host_allowed(host, host ? strlen(host) : 0, allow, n);
}

static void loopback_names_are_served(void **state)
{
	(void)state;
	assert_true(host_ok("localhost", NULL, 0));
	assert_true(host_ok("localhost:4000", NULL, 0));
	assert_true(host_ok("LocalHost:4000", NULL, 0));
	assert_true(host_ok("127.0.0.1", NULL, 0));
	assert_true(host_ok("127.0.0.1:4000", NULL, 0));
	assert_true(host_ok("127.1.2.3:80", NULL, 0));
	assert_true(host_ok("[::1]", NULL, 0));
	assert_true(host_ok("[::1]:4000", NULL, 0));
	assert_true(host_ok("[0:0:0:0:0:0:0:1]:4000", NULL, 0));
}

static void other_names_are_refused(void **state)
{
	(void)state;
	assert_false(host_ok("evil.example", NULL, 0));
	assert_false(host_ok("evil.example:4000", NULL, 0));
	assert_false(host_ok("localhost.evil.example", NULL, 0));
	assert_false(host_ok("evil.localhost", NULL, 0));
	assert_false(host_ok("127.0.0.1.evil.example", NULL, 0));
	assert_false(host_ok("127.evil.example", NULL, 0));
	assert_false(host_ok("x", NULL, 0));
	assert_false(host_ok("", NULL, 0));
	assert_false(host_ok("10.0.0.1:4000", NULL, 0));
	assert_false(host_ok("128.0.0.1", NULL, 0));
	assert_false(host_ok("[::2]:4000", NULL, 0));
	assert_false(host_ok("[::ffff:10.0.0.1]", NULL, 0));
}

static void malformed_hosts_are_refused(void **state)
{
	(void)state;
	assert_false(host_ok("localhost:", NULL, 0));
	assert_false(host_ok("localhost:port", NULL, 0));
	assert_false(host_ok("localhost:123456", NULL, 0));
	assert_false(host_ok("localhost:4000:4000", NULL, 0));
	assert_false(host_ok("::1", NULL, 0));
	assert_false(host_ok("[::1", NULL, 0));
	assert_false(host_ok("[::1]x", NULL, 0));
	assert_false(host_ok("127.1", NULL, 0));
	assert_false(host_ok("127.0.0.1 ", NULL, 0));
	assert_false(host_ok("localhost ", NULL, 0));
}

static void no_host_is_served(void **state)
{
	(void)state;
	assert_true(host_ok(NULL, NULL, 0));
}

static void allow_host_adds_names_with_any_port(void **state)
{
	(void)state;
	const char *allow[] = { "chat.example.com", "other.example:8080" };
	assert_true(host_ok("chat.example.com", allow, 2));
	assert_true(host_ok("Chat.Example.COM:4000", allow, 2));
	assert_true(host_ok("other.example:8080", allow, 2));
	assert_false(host_ok("other.example:8081", allow, 2));
	assert_false(host_ok("other.example", allow, 2));
	assert_false(host_ok("evil.chat.example.com", allow, 2));
	assert_false(host_ok("chat.example.com.evil", allow, 2));
	assert_true(host_ok("localhost:4000", allow, 2));
}

static void loopback_addresses(void **state)
{
	(void)state;
	struct sockaddr_in v4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	assert_true(origin_address_is_loopback((struct sockaddr *)&v4));
	v4.sin_addr.s_addr = htonl(0x7f0a0b0c);
	assert_true(origin_address_is_loopback((struct sockaddr *)&v4));
	v4.sin_addr.s_addr = htonl(INADDR_ANY);
	assert_false(origin_address_is_loopback((struct sockaddr *)&v4));
	v4.sin_addr.s_addr = htonl(0x0a000001);
	assert_false(origin_address_is_loopback((struct sockaddr *)&v4));

	struct sockaddr_in6 v6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	assert_true(origin_address_is_loopback((struct sockaddr *)&v6));
	v6.sin6_addr = (struct in6_addr)IN6ADDR_ANY_INIT;
	assert_false(origin_address_is_loopback((struct sockaddr *)&v6));
	v6.sin6_addr.s6_addr[10] = v6.sin6_addr.s6_addr[11] = 0xff; /* ::ffff:127.0.0.1 */
	v6.sin6_addr.s6_addr[12] = 127;
	v6.sin6_addr.s6_addr[15] = 1;
	assert_true(origin_address_is_loopback((struct sockaddr *)&v6));
}

static void listen_addresses_resolve_like_the_listener(void **state)
{
	(void)state;
	assert_true(origin_listen_is_loopback("127.0.0.1"));
	assert_true(origin_listen_is_loopback("127.0.0.2"));
	assert_true(origin_listen_is_loopback("::1"));
	assert_true(origin_listen_is_loopback("localhost"));
	assert_false(origin_listen_is_loopback("0.0.0.0"));
	assert_false(origin_listen_is_loopback("::"));
	assert_false(origin_listen_is_loopback("192.0.2.1"));
	/* unresolvable: the stricter rule */
	assert_true(origin_listen_is_loopback("no such host.invalid"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(no_origin_is_a_non_browser_client_and_allowed),
		cmocka_unit_test(same_host_and_port_is_allowed),
		cmocka_unit_test(another_site_is_refused),
		cmocka_unit_test(malformed_origin_is_refused),
		cmocka_unit_test(missing_host_refuses_a_browser),
		cmocka_unit_test(allow_list_adds_origins),
		cmocka_unit_test(allow_list_keeps_the_same_host_rule),
		cmocka_unit_test(star_allows_any_origin),
		cmocka_unit_test(loopback_names_are_served),
		cmocka_unit_test(other_names_are_refused),
		cmocka_unit_test(malformed_hosts_are_refused),
		cmocka_unit_test(no_host_is_served),
		cmocka_unit_test(allow_host_adds_names_with_any_port),
		cmocka_unit_test(loopback_addresses),
		cmocka_unit_test(listen_addresses_resolve_like_the_listener),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
