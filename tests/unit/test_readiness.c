/* Unit tests: readiness for /readyz (readiness.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>

#include "readiness.h"

static void test_a_new_node_is_ready(void **state)
{
	(void)state;
	struct readiness r;
	readiness_init(&r);
	char why[64] = "stale";
	assert_true(readiness_check(&r, why, sizeof(why)));
	assert_string_equal(why, "");
	assert_true(readiness_check(&r, NULL, 0));
}

static void test_a_failing_part_makes_it_not_ready_with_its_reason(void **state)
{
	(void)state;
	struct readiness r;
	readiness_init(&r);
	assert_true(readiness_set(&r, READY_STORE, false, "history store failing: disk full"));
	char why[64];
	assert_false(readiness_check(&r, why, sizeof(why)));
	assert_string_equal(why, "history store failing: disk full");
	assert_false(readiness_check(&r, NULL, 0)); /* no room for the reason is fine */
}

static void test_the_next_success_clears_it(void **state)
{
	(void)state;
	struct readiness r;
	readiness_init(&r);
	readiness_set(&r, READY_STORE, false, "history store failing");
	assert_true(readiness_set(&r, READY_STORE, true, NULL));
	char why[64];
	assert_true(readiness_check(&r, why, sizeof(why)));
	assert_string_equal(why, "");
}

static void test_only_a_change_between_ready_and_not_counts_as_one(void **state)
{
	(void)state;
	struct readiness r;
	readiness_init(&r);
	assert_false(readiness_set(&r, READY_STORE, true, NULL)); /* ready already */
	assert_true(readiness_set(&r, READY_STORE, false, "history store failing"));
	/* every failing commit says so again: the reason may change, the state does not */
	assert_false(readiness_set(&r, READY_STORE, false, "history store failing: disk full"));
	char why[64];
	readiness_check(&r, why, sizeof(why));
	assert_string_equal(why, "history store failing: disk full");
}

static void test_no_reason_given_names_the_part(void **state)
{
	(void)state;
	struct readiness r;
	readiness_init(&r);
	readiness_set(&r, READY_CLUSTER, false, NULL);
	char why[64];
	assert_false(readiness_check(&r, why, sizeof(why)));
	assert_string_equal(why, "cluster unreachable");
}

static void test_parts_are_independent(void **state)
{
	(void)state;
	struct readiness r;
	readiness_init(&r);
	readiness_set(&r, READY_STORE, false, "history store failing");
	readiness_set(&r, READY_CLUSTER, false, "redis unreachable");
	char why[64];
	assert_false(readiness_check(&r, why, sizeof(why)));
	assert_string_equal(why, "history store failing; redis unreachable");
	readiness_set(&r, READY_STORE, true, NULL); /* the cluster still is not */
	assert_false(readiness_check(&r, why, sizeof(why)));
	assert_string_equal(why, "redis unreachable");
	readiness_set(&r, READY_CLUSTER, true, NULL);
	assert_true(readiness_check(&r, why, sizeof(why)));
}

static void test_one_call_sets_several_parts(void **state)
{
	(void)state;
	struct readiness r;
	readiness_init(&r);
	assert_true(readiness_set(&r, READY_STORE | READY_CLUSTER, false, "shutting down"));
	char why[64];
	assert_false(readiness_check(&r, why, sizeof(why)));
	assert_string_equal(why, "shutting down; shutting down");
	assert_true(readiness_set(&r, READY_STORE | READY_CLUSTER, true, NULL));
	assert_true(readiness_check(&r, why, sizeof(why)));
}

static void test_a_short_buffer_cuts_the_reason_and_stays_terminated(void **state)
{
	(void)state;
	struct readiness r;
	readiness_init(&r);
	readiness_set(&r, READY_STORE, false, "history store failing");
	readiness_set(&r, READY_CLUSTER, false, "redis unreachable");
	char why[10];
	memset(why, 'x', sizeof(why));
	assert_false(readiness_check(&r, why, sizeof(why)));
	assert_string_equal(why, "history s");
}

/* Writers flip a part on threads of their own while a reader checks: every
 * answer it reads is whole (ready with no reason, or the one reason). */
struct flipper {
	struct readiness *r;
	unsigned part;
	const char *why;
};

static void *flip(void *arg)
{
	struct flipper *f = arg;
	for (int i = 0; i < 20000; i++)
		readiness_set(f->r, f->part, i % 2, f->why);
	readiness_set(f->r, f->part, true, NULL);
	return NULL;
}

static void test_parts_set_from_other_threads_read_whole(void **state)
{
	(void)state;
	struct readiness r;
	readiness_init(&r);
	struct flipper store = { &r, READY_STORE, "history store failing" };
	/* every flip is logged: not here */
	int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);
	dup2(null, STDERR_FILENO);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, flip, &store), 0);
	for (int i = 0; i < 20000; i++) {
		char why[64];
		if (readiness_check(&r, why, sizeof(why)))
			assert_string_equal(why, "");
		else
			assert_string_equal(why, "history store failing");
	}
	pthread_join(t, NULL);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(null);
	assert_true(readiness_check(&r, NULL, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_a_new_node_is_ready),
		cmocka_unit_test(test_a_failing_part_makes_it_not_ready_with_its_reason),
		cmocka_unit_test(test_the_next_success_clears_it),
		cmocka_unit_test(test_only_a_change_between_ready_and_not_counts_as_one),
		cmocka_unit_test(test_no_reason_given_names_the_part),
		cmocka_unit_test(test_parts_are_independent),
		cmocka_unit_test(test_one_call_sets_several_parts),
		cmocka_unit_test(test_a_short_buffer_cuts_the_reason_and_stays_terminated),
		cmocka_unit_test(test_parts_set_from_other_threads_read_whole),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
