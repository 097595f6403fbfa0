/* test_loop.c: the ring's watch on extra descriptors.
 *
 * A real ring: eventfds are watched, written to, and the loop must call
 * each one's callback with its own argument, again after every write.
 * Deadlines are counted in loop ticks (10 ms), so a missing callback fails
 * the case instead of hanging it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "loop.h"

#define WATCHED 5
#define TICKS_MAX 300 /* 3 s */

struct watched {
	int fd;
	unsigned calls;   /* callbacks seen with this watch's own argument */
};

static struct watched fds[WATCHED];
static unsigned ticks;
static unsigned rounds_wanted;
static bool timed_out;

static bool all_called(unsigned times)
{
	for (int i = 0; i < WATCHED; i++)
		if (fds[i].calls < times)
			return false;
	return true;
}

static void poke(int i)
{
	uint64_t one = 1;
	assert_int_equal(write(fds[i].fd, &one, sizeof(one)), sizeof(one));
}

/* Counts the call, and once every watch has been called `current_round` times
 * either pokes them all again (the next round) or stops the loop. */
static unsigned current_round;

static void on_ready(void *arg)
{
	struct watched *w = arg;
	uint64_t v;
	assert_int_equal(read(w->fd, &v, sizeof(v)), sizeof(v));
	w->calls++;
	if (!all_called(current_round))
		return;
	if (current_round == rounds_wanted) {
		loop_stop();
		return;
	}
	current_round++;
	for (int i = WATCHED - 1; i >= 0; i--)
		poke(i);
}

static void on_tick(void)
{
	if (++ticks > TICKS_MAX) {
		timed_out = true;
		loop_stop();
	}
}

static void ignore_accept(int res, bool more) { (void)res; (void)more; }
static void ignore_recv(uint32_t s, uint32_t g, int r, uint8_t *d, bool m) { (void)s; (void)g; (void)r; (void)d; (void)m; }
static void ignore_send(uint32_t s, uint32_t g, int r, bool h) { (void)s; (void)g; (void)r; (void)h; }
static void ignore_released(uint32_t s, uint32_t g) { (void)s; (void)g; }
static void ignore_shutdown(uint32_t s, uint32_t g, int r) { (void)s; (void)g; (void)r; }
static void ignore_signal(int signo) { (void)signo; }
static bool nothing_left(void) { return false; }

static int setup(void **state)
{
	(void)state;
	struct loop_config cfg = { .sq_entries = 64, .cq_entries = 256, .buf_count = 16,
				   .buf_size = 4096, .tick_ms = 10 };
	struct loop_handlers h = { .on_accept = ignore_accept, .on_recv = ignore_recv,
				   .on_send = ignore_send, .on_send_released = ignore_released,
				   .on_shutdown = ignore_shutdown, .on_tick = on_tick,
				   .on_signal = ignore_signal, .before_wait = nothing_left };
	if (loop_init(&cfg, &h) < 0)
		return -1;
	for (int i = 0; i < WATCHED; i++) {
		fds[i] = (struct watched){ .fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) };
		if (fds[i].fd < 0 || loop_watch_readable(fds[i].fd, on_ready, &fds[i]) < 0)
			return -1;
	}
	ticks = 0;
	timed_out = false;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	loop_destroy();
	for (int i = 0; i < WATCHED; i++)
		close(fds[i].fd);
	return 0;
}

/* Every watched descriptor gets its own callback with its own argument,
 * and keeps getting it: the watch outlives one readiness. */
static void every_watch_fires_with_its_argument_again_and_again(void **state)
{
	(void)state;
	current_round = 1;
	rounds_wanted = 3;
	for (int i = WATCHED - 1; i >= 0; i--)
		poke(i);
	assert_int_equal(loop_run(), 0);
	assert_false(timed_out);
	for (int i = 0; i < WATCHED; i++)
		assert_int_equal(fds[i].calls, 3);
}

/* Poking one descriptor calls only its own callback: the others stay at
 * zero while it fires (the stop comes from its callback: a positive signal). */
static void only_the_ready_descriptor_is_called(void **state)
{
	(void)state;
	current_round = 0;   /* all_called(0) is true: stop at the first callback */
	rounds_wanted = 0;
	poke(2);
	assert_int_equal(loop_run(), 0);
	assert_false(timed_out);
	for (int i = 0; i < WATCHED; i++)
		assert_int_equal(fds[i].calls, i == 2 ? 1u : 0u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(every_watch_fires_with_its_argument_again_and_again,
						setup, teardown),
		cmocka_unit_test_setup_teardown(only_the_ready_descriptor_is_called, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
