/* test_loop.c: the ring's watch on extra descriptors, and two loops side by
 * side.
 *
 * A real ring: eventfds are watched, written to, and the loop must call
 * each one's callback with its own argument, again after every write. Two
 * loops, each run on its own thread, must not see each other's context,
 * descriptors or ticks. Deadlines are counted in loop ticks (10 ms), so a
 * missing callback fails the case instead of hanging it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
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

static struct loop *loop;
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
		loop_stop(loop);
		return;
	}
	current_round++;
	for (int i = WATCHED - 1; i >= 0; i--)
		poke(i);
}

static void on_tick(void *ctx)
{
	(void)ctx;
	if (++ticks > TICKS_MAX) {
		timed_out = true;
		loop_stop(loop);
	}
}

static void ignore_accept(void *c, int res, bool more) { (void)c; (void)res; (void)more; }
static void ignore_recv(void *c, uint32_t s, uint32_t g, int r, uint8_t *d, bool m) { (void)c; (void)s; (void)g; (void)r; (void)d; (void)m; }
static void ignore_send(void *c, uint32_t s, uint32_t g, int r, bool h) { (void)c; (void)s; (void)g; (void)r; (void)h; }
static void ignore_released(void *c, uint32_t s, uint32_t g) { (void)c; (void)s; (void)g; }
static void ignore_shutdown(void *c, uint32_t s, uint32_t g, int r) { (void)c; (void)s; (void)g; (void)r; }
static void ignore_signal(void *c, int signo) { (void)c; (void)signo; }
static bool nothing_left(void *c) { (void)c; return false; }

static const struct loop_config small_ring = { .sq_entries = 64, .cq_entries = 256, .buf_count = 16,
					       .buf_size = 4096, .tick_ms = 10 };

static int setup(void **state)
{
	(void)state;
	struct loop_handlers h = { .on_accept = ignore_accept, .on_recv = ignore_recv,
				   .on_send = ignore_send, .on_send_released = ignore_released,
				   .on_shutdown = ignore_shutdown, .on_tick = on_tick,
				   .on_signal = ignore_signal, .before_wait = nothing_left };
	if (!(loop = loop_new(&small_ring, &h, NULL)))
		return -1;
	for (int i = 0; i < WATCHED; i++) {
		fds[i] = (struct watched){ .fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) };
		if (fds[i].fd < 0 || loop_watch_readable(loop, fds[i].fd, on_ready, &fds[i]) < 0)
			return -1;
	}
	ticks = 0;
	timed_out = false;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	loop_free(loop);
	loop = NULL;
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
	assert_int_equal(loop_run(loop), 0);
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
	assert_int_equal(loop_run(loop), 0);
	assert_false(timed_out);
	for (int i = 0; i < WATCHED; i++)
		assert_int_equal(fds[i].calls, i == 2 ? 1u : 0u);
}

/* ---- two loops, one per thread -------------------------------------------- */

#define PAIR_WATCHED 3

struct instance;

struct pair_watch {
	struct instance *owner;
	int fd;
	uint64_t calls;    /* eventfd counts read: one per poke */
};

struct instance {
	unsigned tick_ms;
	unsigned rounds;   /* pokes per watch; the loop stops once all have arrived */
	struct loop *loop;
	struct pair_watch w[PAIR_WATCHED];
	unsigned ticks;
	unsigned foreign;  /* callbacks with another instance's ctx or arg */
	bool setup_failed, timed_out;
	int ret;
	pthread_t thread;
};

static pthread_barrier_t both_ready;
/* The instance this thread created and runs: a callback for any other one
 * is a leak between the two loops. */
static __thread struct instance *mine;

/* A callback meant for the other loop: count it and end this thread's loop,
 * so the case fails on the count instead of waiting for a deadline. */
static void foreign_call(void)
{
	mine->foreign++;
	loop_stop(mine->loop);
}

static void pair_on_ready(void *arg)
{
	struct pair_watch *w = arg;
	struct instance *in = w->owner;
	if (in != mine) {
		foreign_call();
		return;
	}
	uint64_t v;
	if (read(w->fd, &v, sizeof(v)) == sizeof(v))
		w->calls += v;
	for (int i = 0; i < PAIR_WATCHED; i++)
		if (in->w[i].calls < in->rounds)
			return;
	loop_stop(in->loop);
}

/* Each tick pokes the next of the instance's own watches, round robin,
 * until every one has had its rounds. */
static void pair_on_tick(void *ctx)
{
	struct instance *in = ctx;
	if (in != mine) {
		foreign_call();
		return;
	}
	if (in->ticks < in->rounds * PAIR_WATCHED) {
		uint64_t one = 1;
		if (write(in->w[in->ticks % PAIR_WATCHED].fd, &one, sizeof(one)) != sizeof(one))
			in->setup_failed = true;
	}
	if (++in->ticks > TICKS_MAX) {
		in->timed_out = true;
		loop_stop(in->loop);
	}
}

static bool pair_before_wait(void *ctx)
{
	if (ctx != mine)
		foreign_call();
	return false;
}

static void *run_instance(void *arg)
{
	struct instance *in = arg;
	mine = in;
	struct loop_config cfg = small_ring;
	cfg.tick_ms = in->tick_ms;
	struct loop_handlers h = { .on_accept = ignore_accept, .on_recv = ignore_recv,
				   .on_send = ignore_send, .on_send_released = ignore_released,
				   .on_shutdown = ignore_shutdown, .on_tick = pair_on_tick,
				   .on_signal = ignore_signal, .before_wait = pair_before_wait };
	/* Created here, not by the main thread: a ring is set up for one issuer. */
	in->loop = loop_new(&cfg, &h, in);
	in->setup_failed = !in->loop;
	for (int i = 0; i < PAIR_WATCHED && in->loop; i++) {
		in->w[i].fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (in->w[i].fd < 0 ||
		    loop_watch_readable(in->loop, in->w[i].fd, pair_on_ready, &in->w[i]) < 0)
			in->setup_failed = true;
	}
	/* Both loops exist before either runs, so they run side by side. */
	pthread_barrier_wait(&both_ready);
	in->ret = in->setup_failed ? -1 : loop_run(in->loop);
	loop_free(in->loop);
	return NULL;
}

/* Two loops in one process, one per thread, each with its own tick period,
 * watches and stopping point: each sees only its own context and its own
 * descriptors, and stops by itself when its own work is done. */
static void two_loops_on_two_threads_keep_to_themselves(void **state)
{
	(void)state;
	struct instance in[2] = {
		{ .tick_ms = 10, .rounds = 4 },
		{ .tick_ms = 5, .rounds = 7 },
	};
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < PAIR_WATCHED; j++)
			in[i].w[j] = (struct pair_watch){ .owner = &in[i], .fd = -1 };
	assert_int_equal(pthread_barrier_init(&both_ready, NULL, 2), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&in[i].thread, NULL, run_instance, &in[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(in[i].thread, NULL), 0);
	pthread_barrier_destroy(&both_ready);

	for (int i = 0; i < 2; i++) {
		assert_false(in[i].setup_failed);
		assert_int_equal(in[i].ret, 0);
		assert_false(in[i].timed_out);
		assert_int_equal(in[i].foreign, 0);
		for (int j = 0; j < PAIR_WATCHED; j++) {
			assert_int_equal(in[i].w[j].calls, in[i].rounds);
			close(in[i].w[j].fd);
		}
		/* its own ticks: enough for its own pokes, none of the other's */
		assert_in_range(in[i].ticks, in[i].rounds * PAIR_WATCHED, TICKS_MAX);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(every_watch_fires_with_its_argument_again_and_again,
						setup, teardown),
		cmocka_unit_test_setup_teardown(only_the_ready_descriptor_is_called, setup, teardown),
		cmocka_unit_test(two_loops_on_two_threads_keep_to_themselves),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
