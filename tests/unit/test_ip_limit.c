/* Unit tests: per-address connection counts (--max-per-ip). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "ip_limit.h"

static struct in6_addr v4(const char *dotted)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	sin->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, dotted, &sin->sin_addr), 1);
	struct in6_addr a;
	assert_true(ip_limit_addr(&ss, &a));
	return a;
}

static struct in6_addr nth(uint32_t n)
{
	struct in6_addr a;
	memset(&a, 0, sizeof(a));
	a.s6_addr[0] = 0x20;
	memcpy(&a.s6_addr[12], &n, sizeof(n));
	return a;
}

static void test_limit_per_address(void **state)
{
	(void)state;
	struct ip_limit *l = ip_limit_new(2, 100);
	assert_non_null(l);
	struct in6_addr a = v4("127.0.0.1"), b = v4("127.0.0.2");
	assert_true(ip_limit_take(l, &a));
	assert_true(ip_limit_take(l, &a));
	assert_false(ip_limit_take(l, &a)); /* the third from one address */
	assert_int_equal(ip_limit_count(l, &a), 2);
	assert_true(ip_limit_take(l, &b));  /* another address is not affected */
	ip_limit_put(l, &a);
	assert_true(ip_limit_take(l, &a));  /* room again after one left */
	assert_int_equal(ip_limit_count(l, &b), 1);
	ip_limit_free(l);
}

static void test_v4_mapped_and_v6(void **state)
{
	(void)state;
	struct in6_addr a = v4("10.1.2.3");
	static const uint8_t mapped[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3 };
	assert_memory_equal(a.s6_addr, mapped, 16);
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	assert_false(ip_limit_addr(&ss, &a));
}

static void test_put_of_unknown_address_is_harmless(void **state)
{
	(void)state;
	struct ip_limit *l = ip_limit_new(1, 10);
	struct in6_addr a = nth(1), b = nth(2);
	ip_limit_put(l, &a);
	assert_true(ip_limit_take(l, &b));
	assert_int_equal(ip_limit_count(l, &a), 0);
	assert_int_equal(ip_limit_count(l, &b), 1);
	ip_limit_free(l);
}

/* Many addresses come and go (churn far past the table's size): every
 * count stays exact, which exercises the backward-shift removal across
 * collision runs and the wrap-around. */
static void test_churn_keeps_counts_exact(void **state)
{
	(void)state;
	enum { LIVE = 300, ROUNDS = 40 };
	struct ip_limit *l = ip_limit_new(3, LIVE);
	uint32_t held[LIVE] = { 0 };
	uint32_t seed = 12345;
	for (uint32_t round = 0; round < ROUNDS; round++) {
		for (uint32_t k = 0; k < LIVE * 4; k++) {
			seed = seed * 1103515245u + 12345u;
			uint32_t i = (seed >> 8) % LIVE;
			struct in6_addr cur = nth(i + round * LIVE); /* new addresses each round */
			if ((seed >> 4) & 1) {
				bool ok = ip_limit_take(l, &cur);
				assert_int_equal(ok, held[i] < 3);
				if (ok)
					held[i]++;
			} else if (held[i]) {
				ip_limit_put(l, &cur);
				held[i]--;
			}
		}
		for (uint32_t i = 0; i < LIVE; i++) {
			struct in6_addr cur = nth(i + round * LIVE);
			assert_int_equal(ip_limit_count(l, &cur), held[i]);
		}
		/* everyone leaves, then the next round uses other addresses */
		for (uint32_t i = 0; i < LIVE; i++) {
			struct in6_addr cur = nth(i + round * LIVE);
			while (held[i]) {
				ip_limit_put(l, &cur);
				held[i]--;
			}
			assert_int_equal(ip_limit_count(l, &cur), 0);
		}
	}
	ip_limit_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limit_per_address),
		cmocka_unit_test(test_v4_mapped_and_v6),
		cmocka_unit_test(test_put_of_unknown_address_is_harmless),
		cmocka_unit_test(test_churn_keeps_counts_exact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
