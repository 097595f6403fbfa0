/* test_rate_limit.c: the token bucket of rate_limit.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "rate_limit.h"

static const struct rate_config twenty_forty = { .per_second = 20, .burst = 40 };

static void a_full_bucket_allows_exactly_the_burst(void **state)
{
	(void)state;
	struct token_bucket b;
	bucket_init(&b, &twenty_forty, 1000);
	for (int i = 0; i < 40; i++)
		assert_true(bucket_take(&b, &twenty_forty, 1000));
	assert_false(bucket_take(&b, &twenty_forty, 1000));
}

static void tokens_refill_at_the_rate(void **state)
{
	(void)state;
	struct token_bucket b;
	bucket_init(&b, &twenty_forty, 0);
	for (int i = 0; i < 40; i++)
		bucket_take(&b, &twenty_forty, 0);
	assert_false(bucket_take(&b, &twenty_forty, 49));  /* 0.98 token */
	assert_true(bucket_take(&b, &twenty_forty, 50));   /* one token after 50 ms at 20/s */
	assert_false(bucket_take(&b, &twenty_forty, 50));
}

static void refill_never_exceeds_the_burst(void **state)
{
	(void)state;
	struct token_bucket b;
	bucket_init(&b, &twenty_forty, 0);
	int allowed = 0;
	for (int i = 0; i < 100; i++)
		allowed += bucket_take(&b, &twenty_forty, 3600 * 1000);
	assert_int_equal(allowed, 40);
}

static void sustained_rate_is_what_is_allowed(void **state)
{
	(void)state;
	struct token_bucket b;
	bucket_init(&b, &twenty_forty, 0);
	for (int i = 0; i < 40; i++)
		bucket_take(&b, &twenty_forty, 0);
	int allowed = 0;
	for (uint64_t ms = 1; ms <= 10000; ms++) /* one attempt per ms for 10 s */
		allowed += bucket_take(&b, &twenty_forty, ms);
	assert_int_equal(allowed, 200);
}

static void refusals_count_strikes_until_one_is_allowed(void **state)
{
	(void)state;
	struct rate_config one = { .per_second = 1, .burst = 1 };
	struct token_bucket b;
	bucket_init(&b, &one, 0);
	assert_true(bucket_take(&b, &one, 0));
	assert_false(bucket_take(&b, &one, 10));
	assert_false(bucket_take(&b, &one, 20));
	assert_int_equal(b.strikes, 2);
	assert_true(bucket_take(&b, &one, 1010));
	assert_int_equal(b.strikes, 0);
}

static void rate_zero_means_no_limit(void **state)
{
	(void)state;
	struct rate_config off = { .per_second = 0, .burst = 0 };
	struct token_bucket b;
	bucket_init(&b, &off, 0);
	for (int i = 0; i < 100000; i++)
		assert_true(bucket_take(&b, &off, 0));
}

static void a_clock_that_goes_backwards_refills_nothing(void **state)
{
	(void)state;
	struct token_bucket b;
	bucket_init(&b, &twenty_forty, 5000);
	for (int i = 0; i < 40; i++)
		bucket_take(&b, &twenty_forty, 5000);
	assert_false(bucket_take(&b, &twenty_forty, 1000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_full_bucket_allows_exactly_the_burst),
		cmocka_unit_test(tokens_refill_at_the_rate),
		cmocka_unit_test(refill_never_exceeds_the_burst),
		cmocka_unit_test(sustained_rate_is_what_is_allowed),
		cmocka_unit_test(refusals_count_strikes_until_one_is_allowed),
		cmocka_unit_test(rate_zero_means_no_limit),
		cmocka_unit_test(a_clock_that_goes_backwards_refills_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
