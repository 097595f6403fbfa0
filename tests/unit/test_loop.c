/* test_loop.c: the ring's watch on extra descriptors, two loops side by
 * side, and sockets kept in the ring's file table.
 *
 * A real ring: eventfds are watched, written to, and the loop must call
 * each one's callback with its own argument, again after every write. Two
 * loops, each run on its own thread, must not see each other's context,
 * descriptors or ticks. A TCP socket moved into the file table leaves the
 * process's, is reached by its slot, and closes, gracefully or with a
 * reset, by slot. A connect through the ring reports the kernel's answer.
 * Deadlines are counted in loop ticks (10 ms), so a missing
 * callback fails the case instead of hanging it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
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

/* ---- direct descriptors ---------------------------------------------------- */

#define TABLE_SLOT 5
#define TABLE_GEN 7

/* What came back from the ring for the socket under test. */
static struct {
	unsigned sends, shutdowns;
	int res;
	uint32_t slot, gen;
} seen;

static void direct_on_send(void *c, uint32_t slot, uint32_t gen, int res, bool held)
{
	(void)c;
	(void)held;
	seen.sends++;
	seen.res = res;
	seen.slot = slot;
	seen.gen = gen;
	loop_stop(loop);
}

static void direct_on_shutdown(void *c, uint32_t slot, uint32_t gen, int res)
{
	(void)c;
	seen.shutdowns++;
	seen.res = res;
	seen.slot = slot;
	seen.gen = gen;
	loop_stop(loop);
}

/* A connected TCP pair on loopback: a reset needs TCP. */
static int tcp_pair(int *client, int *server)
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	*client = *server = -1;
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) < 0 ||
	    (*client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(*client, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    (*server = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0) {
		close(l);
		return -1;
	}
	close(l);
	return 0;
}

static int setup_direct(void **state)
{
	(void)state;
	struct loop_config cfg = small_ring;
	cfg.direct_files = 8;
	struct loop_handlers h = { .on_accept = ignore_accept, .on_recv = ignore_recv,
				   .on_send = direct_on_send, .on_send_released = ignore_released,
				   .on_shutdown = direct_on_shutdown, .on_tick = on_tick,
				   .on_signal = ignore_signal, .before_wait = nothing_left };
	if (!(loop = loop_new(&cfg, &h, NULL)))
		return -1;
	memset(&seen, 0, sizeof(seen));
	ticks = 0;
	timed_out = false;
	return 0;
}

static int teardown_direct(void **state)
{
	(void)state;
	loop_free(loop);
	loop = NULL;
	return 0;
}

/* The socket moves into the table: its descriptor is gone from the
 * process, yet a send by slot reaches the peer, and closing by slot ends
 * the connection in order (a FIN: no linger on the plain close). */
static void an_installed_socket_leaves_the_process_and_is_reached_by_slot(void **state)
{
	(void)state;
	if (!loop_direct(loop))
		skip(); /* the kernel refused the table: logged by loop_new */
	int client, server;
	assert_int_equal(tcp_pair(&client, &server), 0);
	assert_int_equal(loop_install(loop, server, TABLE_SLOT), 0);
	assert_int_equal(fcntl(server, F_GETFD), -1);
	assert_int_equal(errno, EBADF);

	loop_send(loop, LOOP_FD_DIRECT, TABLE_SLOT, TABLE_GEN, "hello", 5, false);
	assert_int_equal(loop_run(loop), 0);
	assert_false(timed_out);
	assert_int_equal(seen.sends, 1);
	assert_int_equal(seen.res, 5);
	assert_int_equal(seen.slot, TABLE_SLOT);
	assert_int_equal(seen.gen, TABLE_GEN);
	char got[8];
	assert_int_equal(recv(client, got, sizeof(got), 0), 5);
	assert_memory_equal(got, "hello", 5);

	/* the table held the only reference: the socket is closed on return */
	loop_close_socket(loop, LOOP_FD_DIRECT, TABLE_SLOT);
	assert_int_equal(recv(client, got, sizeof(got), MSG_DONTWAIT), 0);
	close(client);
}

/* loop_reset closes with a reset (SO_LINGER 0), on a direct socket through
 * the ring's setsockopt command, and reports it as the slot's shutdown. */
static void a_reset_direct_socket_closes_with_a_reset(void **state)
{
	(void)state;
	if (!loop_direct(loop))
		skip();
	int client, server;
	assert_int_equal(tcp_pair(&client, &server), 0);
	assert_int_equal(loop_install(loop, server, TABLE_SLOT), 0);
	loop_reset(loop, LOOP_FD_DIRECT, TABLE_SLOT, TABLE_GEN);
	assert_int_equal(loop_run(loop), 0);
	assert_false(timed_out);
	assert_int_equal(seen.shutdowns, 1);
	assert_int_equal(seen.res, 0);
	assert_int_equal(seen.slot, TABLE_SLOT);
	assert_int_equal(seen.gen, TABLE_GEN);
	char got[8];
	assert_int_equal(recv(client, got, sizeof(got), MSG_DONTWAIT), -1);
	assert_int_equal(errno, ECONNRESET);
	close(client);
}

/* The same on a plain descriptor, which stays in the process until then. */
static void a_reset_plain_socket_closes_with_a_reset(void **state)
{
	(void)state;
	int client, server;
	assert_int_equal(tcp_pair(&client, &server), 0);
	loop_reset(loop, server, TABLE_SLOT, TABLE_GEN);
	assert_int_equal(loop_run(loop), 0);
	assert_false(timed_out);
	assert_int_equal(seen.shutdowns, 1);
	assert_int_equal(seen.res, 0);
	assert_int_equal(seen.gen, TABLE_GEN);
	assert_int_equal(fcntl(server, F_GETFD), -1);
	char got[8];
	assert_int_equal(recv(client, got, sizeof(got), MSG_DONTWAIT), -1);
	assert_int_equal(errno, ECONNRESET);
	close(client);
}

/* A table the kernel refuses (over its cap of 2^20 entries) leaves the
 * loop working on plain descriptors: loop_direct says so, and nothing is
 * installed, the socket staying open. */
static void a_refused_table_leaves_plain_descriptors(void **state)
{
	(void)state;
	struct loop_config cfg = small_ring;
	cfg.direct_files = (1u << 20) + 1;
	struct loop_handlers h = { .on_accept = ignore_accept, .on_recv = ignore_recv,
				   .on_send = direct_on_send, .on_send_released = ignore_released,
				   .on_shutdown = direct_on_shutdown, .on_tick = on_tick,
				   .on_signal = ignore_signal, .before_wait = nothing_left };
	struct loop *refused = loop_new(&cfg, &h, NULL);
	assert_non_null(refused);
	assert_false(loop_direct(refused));
	int client, server;
	assert_int_equal(tcp_pair(&client, &server), 0);
	assert_true(loop_install(refused, server, 0) < 0);
	assert_int_equal(fcntl(server, F_GETFD), FD_CLOEXEC);
	close(server);
	close(client);
	loop_free(refused);
}

/* ---- connect ---------------------------------------------------------------- */

#define CONNECT_SLOT 3
#define CONNECT_GEN 9

static struct {
	unsigned calls;
	int res;
	uint32_t slot, gen;
} connected;

static void record_connect(void *c, uint32_t slot, uint32_t gen, int res)
{
	(void)c;
	connected.calls++;
	connected.res = res;
	connected.slot = slot;
	connected.gen = gen;
	loop_stop(loop);
}

static int setup_connect(void **state)
{
	(void)state;
	struct loop_handlers h = { .on_accept = ignore_accept, .on_recv = ignore_recv,
				   .on_send = ignore_send, .on_send_released = ignore_released,
				   .on_shutdown = ignore_shutdown, .on_connect = record_connect,
				   .on_tick = on_tick, .on_signal = ignore_signal,
				   .before_wait = nothing_left };
	if (!(loop = loop_new(&small_ring, &h, NULL)))
		return -1;
	memset(&connected, 0, sizeof(connected));
	ticks = 0;
	timed_out = false;
	return 0;
}

/* A listening loopback socket on a port of the kernel's choosing. */
static int listen_loopback(struct sockaddr_in *a)
{
	*a = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(*a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (struct sockaddr *)a, sizeof(*a)) < 0 || listen(l, 1) < 0 ||
	    getsockname(l, (struct sockaddr *)a, &len) < 0) {
		close(l);
		return -1;
	}
	return l;
}

static int nonblocking_tcp_socket(void)
{
	return socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

/* A non-blocking socket connects through the ring: one completion, 0, for
 * its own slot and generation, and the socket is connected to the listener. */
static void a_connect_to_a_listener_completes_with_zero(void **state)
{
	(void)state;
	struct sockaddr_in a;
	int l = listen_loopback(&a);
	assert_true(l >= 0);
	int fd = nonblocking_tcp_socket();
	assert_true(fd >= 0);
	loop_connect(loop, fd, CONNECT_SLOT, CONNECT_GEN, (struct sockaddr *)&a, sizeof(a));
	assert_int_equal(loop_run(loop), 0);
	assert_false(timed_out);
	assert_int_equal(connected.calls, 1);
	assert_int_equal(connected.res, 0);
	assert_int_equal(connected.slot, CONNECT_SLOT);
	assert_int_equal(connected.gen, CONNECT_GEN);
	int peer = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	assert_true(peer >= 0);
	assert_int_equal(send(fd, "x", 1, MSG_NOSIGNAL), 1);
	char got;
	assert_int_equal(recv(peer, &got, 1, 0), 1);
	close(peer);
	close(fd);
	close(l);
}

/* A port nobody listens on (one that was listening, then closed): the
 * completion carries the refusal. */
static void a_connect_to_a_closed_port_is_refused(void **state)
{
	(void)state;
	struct sockaddr_in a;
	int l = listen_loopback(&a);
	assert_true(l >= 0);
	close(l);
	int fd = nonblocking_tcp_socket();
	assert_true(fd >= 0);
	loop_connect(loop, fd, CONNECT_SLOT, CONNECT_GEN, (struct sockaddr *)&a, sizeof(a));
	assert_int_equal(loop_run(loop), 0);
	assert_false(timed_out);
	assert_int_equal(connected.calls, 1);
	assert_int_equal(connected.res, -ECONNREFUSED);
	assert_int_equal(connected.gen, CONNECT_GEN);
	close(fd);
}

/* A stopped loop runs again: the tick that was due when it stopped is
 * armed again, so a second run still ends at its deadline. */
static void a_stopped_loop_runs_again_with_its_tick(void **state)
{
	(void)state;
	for (int run = 0; run < 2; run++) {
		ticks = TICKS_MAX - 2; /* a few ticks from the deadline */
		timed_out = false;
		assert_int_equal(loop_run(loop), 0);
		assert_true(timed_out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(every_watch_fires_with_its_argument_again_and_again,
						setup, teardown),
		cmocka_unit_test_setup_teardown(only_the_ready_descriptor_is_called, setup, teardown),
		cmocka_unit_test(two_loops_on_two_threads_keep_to_themselves),
		cmocka_unit_test_setup_teardown(an_installed_socket_leaves_the_process_and_is_reached_by_slot,
						setup_direct, teardown_direct),
		cmocka_unit_test_setup_teardown(a_reset_direct_socket_closes_with_a_reset, setup_direct,
						teardown_direct),
		cmocka_unit_test_setup_teardown(a_reset_plain_socket_closes_with_a_reset, setup_direct,
						teardown_direct),
		cmocka_unit_test(a_refused_table_leaves_plain_descriptors),
		cmocka_unit_test_setup_teardown(a_connect_to_a_listener_completes_with_zero,
						setup_connect, teardown_direct),
		cmocka_unit_test_setup_teardown(a_connect_to_a_closed_port_is_refused, setup_connect,
						teardown_direct),
		cmocka_unit_test_setup_teardown(a_stopped_loop_runs_again_with_its_tick, setup_connect,
						teardown_direct),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
