/* test_timer_wheel.c: the lazy one-second timer wheel.
 *
 * Every node records each second it fired at (the wheel's `now` during the
 * callback), so each case can say "fired once, at second N" and nothing
 * else. Wheels start at arbitrary seconds so bucket indices wrap. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "timer_wheel.h"

struct timer {
	struct tw_node node;   /* first, so a node pointer is a timer pointer */
	uint32_t fired;        /* times fired */
	uint32_t fired_at;     /* second of the last firing */
	uint32_t period;       /* when set, fire reschedules this far ahead */
	uint32_t expect;       /* for the random tests: the deadline it must fire at */
};

static struct timer_wheel wheel;

static void on_fire(struct tw_node *n)
{
	struct timer *t = (struct timer *)n;

	t->fired++;
	t->fired_at = wheel.now;
	if (t->period)
		tw_schedule(&wheel, n, wheel.now + t->period);
}

static void step_to(uint32_t second)
{
	tw_advance(&wheel, second, on_fire);
	assert_int_equal(wheel.now, second);
}

/* Start a wheel at `now` with one timer due at `deadline`, step one second
 * at a time and check it fires exactly once, exactly then. */
static void expect_fires_on_time(uint32_t now, uint32_t deadline)
{
	struct timer t = { 0 };

	tw_init(&wheel, now);
	tw_schedule(&wheel, &t.node, deadline);
	for (uint32_t s = now + 1; s < deadline; s++) {
		step_to(s);
		if (t.fired)
			fail_msg("deadline %u from %u: fired early, at %u", deadline, now, s);
	}
	step_to(deadline);
	if (t.fired != 1 || t.fired_at != deadline)
		fail_msg("deadline %u from %u: fired %u times, last at %u", deadline, now, t.fired,
			 t.fired_at);
	step_to(deadline + 2 * TW_BUCKETS + 1);
	assert_int_equal(t.fired, 1);
}

static void test_node_fires_at_its_deadline_and_not_before(void **state)
{
	(void)state;
	for (uint32_t d = 1; d < TW_BUCKETS; d++) {
		expect_fires_on_time(0, d);
		expect_fires_on_time(1000, 1000 + d);
	}
}

static void test_deadline_beyond_the_horizon_fires_on_time(void **state)
{
	static const uint32_t ahead[] = { TW_BUCKETS - 1, TW_BUCKETS, TW_BUCKETS + 1,
					  2 * TW_BUCKETS - 1, 2 * TW_BUCKETS, 2 * TW_BUCKETS + 1,
					  200, 1000 };

	(void)state;
	for (size_t i = 0; i < sizeof(ahead) / sizeof(ahead[0]); i++) {
		expect_fires_on_time(0, ahead[i]);
		expect_fires_on_time(77, 77 + ahead[i]);
	}
}

/* A deadline of a second already processed has passed: the next advance
 * fires it. */
static void test_deadline_already_passed_fires_on_the_next_second(void **state)
{
	struct timer now = { 0 }, past = { 0 };

	(void)state;
	tw_init(&wheel, 500);
	tw_schedule(&wheel, &now.node, 500);
	tw_schedule(&wheel, &past.node, 3);
	step_to(501);
	assert_int_equal(now.fired, 1);
	assert_int_equal(past.fired, 1);
}

static void test_deadline_moved_later_does_not_fire_early(void **state)
{
	struct timer t = { 0 };

	(void)state;
	tw_init(&wheel, 0);
	tw_schedule(&wheel, &t.node, 10);
	step_to(5);
	tw_schedule(&wheel, &t.node, 20);
	/* Pushed further every second, as received bytes push an idle
	 * deadline: it never comes due while the pushing goes on. */
	for (uint32_t s = 6; s <= 150; s++) {
		step_to(s);
		assert_int_equal(t.fired, 0);
		tw_schedule(&wheel, &t.node, s + 15);
	}
	for (uint32_t s = 151; s < 165; s++) {
		step_to(s);
		assert_int_equal(t.fired, 0);
	}
	step_to(165);
	assert_int_equal(t.fired, 1);
	assert_int_equal(t.fired_at, 165);
}

/* The header promises the lazy part: a later deadline leaves the node in
 * the bucket it is in. */
static void test_moving_a_deadline_later_does_not_relink(void **state)
{
	struct timer a = { 0 }, b = { 0 };

	(void)state;
	tw_init(&wheel, 0);
	tw_schedule(&wheel, &a.node, 10);
	tw_schedule(&wheel, &b.node, 10);
	struct tw_node *head = wheel.buckets[10 % TW_BUCKETS];
	tw_schedule(&wheel, &a.node, 40);
	tw_schedule(&wheel, &b.node, 300);
	assert_int_equal(a.node.filed_at, 10);
	assert_int_equal(b.node.filed_at, 10);
	assert_ptr_equal(wheel.buckets[10 % TW_BUCKETS], head);
	for (uint32_t s = 1; s <= 300; s++) {
		step_to(s);
		assert_int_equal(a.fired, s >= 40);
		assert_int_equal(b.fired, s >= 300);
	}
	assert_int_equal(a.fired_at, 40);
	assert_int_equal(b.fired_at, 300);
}

static void test_deadline_moved_earlier_fires_at_the_new_time(void **state)
{
	struct timer near = { 0 }, far = { 0 }, passed = { 0 };

	(void)state;
	tw_init(&wheel, 0);
	tw_schedule(&wheel, &near.node, 30);
	tw_schedule(&wheel, &far.node, 200);
	tw_schedule(&wheel, &passed.node, 50);
	step_to(2);
	tw_schedule(&wheel, &near.node, 10);
	tw_schedule(&wheel, &far.node, 7);
	tw_schedule(&wheel, &passed.node, 1);
	for (uint32_t s = 3; s <= 250; s++) {
		step_to(s);
		assert_int_equal(near.fired, s >= 10);
		assert_int_equal(far.fired, s >= 7);
		assert_int_equal(passed.fired, 1);
	}
	assert_int_equal(near.fired_at, 10);
	assert_int_equal(far.fired_at, 7);
	assert_int_equal(passed.fired_at, 3);
}

/* Cancelling works wherever the node sits in its bucket's list (head,
 * middle, tail), after a lazy move, and on a node that is not linked. */
static void test_cancel_prevents_firing(void **state)
{
	struct timer t[7];

	(void)state;
	memset(t, 0, sizeof(t));
	tw_init(&wheel, 0);
	for (int i = 0; i < 5; i++)
		tw_schedule(&wheel, &t[i].node, 10);
	tw_cancel(&wheel, &t[0].node);
	tw_cancel(&wheel, &t[2].node);
	tw_cancel(&wheel, &t[4].node);
	tw_schedule(&wheel, &t[5].node, 5);
	tw_schedule(&wheel, &t[5].node, 100);
	tw_cancel(&wheel, &t[5].node);
	tw_cancel(&wheel, &t[6].node);
	tw_cancel(&wheel, &t[6].node);
	step_to(300);
	assert_int_equal(t[0].fired, 0);
	assert_int_equal(t[1].fired, 1);
	assert_int_equal(t[2].fired, 0);
	assert_int_equal(t[3].fired, 1);
	assert_int_equal(t[4].fired, 0);
	assert_int_equal(t[5].fired, 0);
	assert_int_equal(t[6].fired, 0);
}

static void test_cancelled_node_can_be_scheduled_again(void **state)
{
	struct timer t = { 0 };

	(void)state;
	tw_init(&wheel, 0);
	tw_schedule(&wheel, &t.node, 10);
	tw_cancel(&wheel, &t.node);
	tw_schedule(&wheel, &t.node, 20);
	step_to(19);
	assert_int_equal(t.fired, 0);
	step_to(20);
	assert_int_equal(t.fired, 1);
}

static void test_fire_may_reschedule_the_node(void **state)
{
	struct timer p7 = { .period = 7 }, p100 = { .period = 100 }, p1 = { .period = 1 };

	(void)state;
	tw_init(&wheel, 0);
	tw_schedule(&wheel, &p7.node, 7);
	tw_schedule(&wheel, &p100.node, 100);
	tw_schedule(&wheel, &p1.node, 1);
	for (uint32_t s = 1; s <= 700; s++) {
		step_to(s);
		assert_int_equal(p7.fired, s / 7);
		assert_int_equal(p100.fired, s / 100);
		assert_int_equal(p1.fired, s);
	}
	/* The same when the wheel is advanced many seconds at once. */
	step_to(1400);
	assert_int_equal(p7.fired, 200);
	assert_int_equal(p100.fired, 14);
	assert_int_equal(p1.fired, 1400);
}

static uint32_t rand_below(uint32_t n)
{
	return (uint32_t)(((uint64_t)rand() * RAND_MAX + (uint64_t)rand()) % n);
}

enum { MANY = 10000 };

/* Check every timer fired once, at its expected second, once all are due. */
static void expect_all_fired_on_time(const struct timer *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (t[i].fired != 1 || t[i].fired_at != t[i].expect)
			fail_msg("timer %zu due at %u: fired %u times, last at %u", i, t[i].expect,
				 t[i].fired, t[i].fired_at);
}

static void test_many_random_deadlines_each_fire_once_on_time(void **state)
{
	struct timer *t = calloc(MANY, sizeof(*t));

	(void)state;
	assert_non_null(t);
	srand(1);
	tw_init(&wheel, 12345);
	for (size_t i = 0; i < MANY; i++) {
		t[i].expect = 12345 + 1 + rand_below(400);
		tw_schedule(&wheel, &t[i].node, t[i].expect);
	}
	for (uint32_t s = 12346; s <= 12345 + 401; s++) {
		step_to(s);
		for (size_t i = 0; i < MANY; i++)
			if (t[i].fired && t[i].fired_at != t[i].expect)
				fail_msg("timer %zu due at %u fired at %u", i, t[i].expect, t[i].fired_at);
	}
	expect_all_fired_on_time(t, MANY);
	free(t);
}

/* The same, with deadlines moved later and earlier at random while the
 * wheel runs, as connections' traffic does. */
static void test_many_random_moving_deadlines_each_fire_once_on_time(void **state)
{
	struct timer *t = calloc(MANY, sizeof(*t));

	(void)state;
	assert_non_null(t);
	srand(2);
	tw_init(&wheel, 0);
	for (size_t i = 0; i < MANY; i++) {
		t[i].expect = 1 + rand_below(300);
		tw_schedule(&wheel, &t[i].node, t[i].expect);
	}
	for (uint32_t s = 1; s <= 200; s++) {
		for (int k = 0; k < 100; k++) {
			struct timer *x = &t[rand_below(MANY)];
			if (x->fired)
				continue;
			x->expect = s + rand_below(150);
			tw_schedule(&wheel, &x->node, x->expect);
		}
		step_to(s);
		for (size_t i = 0; i < MANY; i++) {
			if (t[i].fired > 1 || (t[i].fired && t[i].fired_at != t[i].expect))
				fail_msg("timer %zu due at %u fired %u times, last at %u", i,
					 t[i].expect, t[i].fired, t[i].fired_at);
			if (!t[i].fired && t[i].expect <= s)
				fail_msg("timer %zu due at %u not fired by %u", i, t[i].expect, s);
		}
	}
	step_to(400);
	expect_all_fired_on_time(t, MANY);
	free(t);
}

/* One advance over many seconds processes each of them: everything due
 * fires once, at its own second, and nothing that is not yet due fires. */
static void test_advancing_many_seconds_at_once_fires_everything_due_once(void **state)
{
	struct timer t[600];

	(void)state;
	memset(t, 0, sizeof(t));
	tw_init(&wheel, 100);
	for (uint32_t i = 0; i < 600; i++) {
		t[i].expect = 101 + i;
		tw_schedule(&wheel, &t[i].node, t[i].expect);
	}
	step_to(100 + 37);
	step_to(100 + 37 + 200);
	for (uint32_t i = 0; i < 600; i++) {
		if (t[i].expect <= 337)
			assert_int_equal(t[i].fired, 1);
		else
			assert_int_equal(t[i].fired, 0);
	}
	step_to(5000);
	expect_all_fired_on_time(t, 600);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_node_fires_at_its_deadline_and_not_before),
		cmocka_unit_test(test_deadline_beyond_the_horizon_fires_on_time),
		cmocka_unit_test(test_deadline_already_passed_fires_on_the_next_second),
		cmocka_unit_test(test_deadline_moved_later_does_not_fire_early),
		cmocka_unit_test(test_moving_a_deadline_later_does_not_relink),
		cmocka_unit_test(test_deadline_moved_earlier_fires_at_the_new_time),
		cmocka_unit_test(test_cancel_prevents_firing),
		cmocka_unit_test(test_cancelled_node_can_be_scheduled_again),
		cmocka_unit_test(test_fire_may_reschedule_the_node),
		cmocka_unit_test(test_many_random_deadlines_each_fire_once_on_time),
		cmocka_unit_test(test_many_random_moving_deadlines_each_fire_once_on_time),
		cmocka_unit_test(test_advancing_many_seconds_at_once_fires_everything_due_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
