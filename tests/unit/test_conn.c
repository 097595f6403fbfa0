/* test_conn.c: two sets of connections, each on its own ring and thread.
 *
 * A real ring and real sockets on 127.0.0.1: each struct conns listens on
 * its own port, its clients connect and write one line, and its handlers
 * must see only their own ctx, their own connections (and the storage in
 * their slots) and their own bytes; each line is answered with conn_send,
 * read by the client, and the connection closed from both ends until the
 * instance holds none. Deadlines are counted in loop ticks (10 ms), so a
 * missing callback fails the case instead of hanging it.
 *
 * Then direct descriptors: connections whose sockets live in the ring's
 * file table echo and close like plain ones while the process's descriptor
 * count stays put, one ring holds more of them than RLIMIT_NOFILE allows
 * the process (its clients in a child process, which has its own limit),
 * and where the ring has no table they fall back to plain descriptors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "conn.h"
#include "loop.h"

#define CLIENTS_MAX 3
#define LINE_MAX 48
#define TICKS_MAX 300 /* 3 s */

struct instance;

/* What the test keeps in each connection's slot (conn_user). */
struct note {
	struct instance *owner;
	char line[LINE_MAX];
	size_t len;
};

struct client {
	int fd;
	char said[LINE_MAX];      /* the line it wrote */
	char heard[2 * LINE_MAX]; /* what came back */
	size_t heard_len;
	bool eof;
};

struct instance {
	const char *name;
	unsigned clients;
	struct conns *conns;
	struct loop *loop;
	int listen_fd;
	struct client cl[CLIENTS_MAX];
	struct conn *opened[CLIENTS_MAX];
	unsigned opens, lines, closings;
	unsigned foreign;         /* calls with another instance's ctx, connection or bytes */
	unsigned ticks;
	struct conn_stats stats;  /* as they were when the loop ended */
	bool setup_failed, timed_out;
	int ret;
	pthread_t thread;
};

static pthread_barrier_t both_ready;
/* The instance this thread created and runs: a call for any other one is a
 * leak between the two. */
static __thread struct instance *mine;

/* A call meant for the other instance: count it and end this thread's loop,
 * so the case fails on the count instead of waiting for a deadline. The
 * connection handlers get the instance (conns_new's ctx); the loop's own
 * handlers get the struct conns (loop_new's ctx). */
static bool foreign_if(bool foreign)
{
	if (!foreign)
		return false;
	mine->foreign++;
	if (mine->loop) /* NULL once freed: conns_free's last on_closing calls */
		loop_stop(mine->loop);
	return true;
}

static bool foreign(void *ctx)
{
	return foreign_if(ctx != mine);
}

static bool foreign_loop_ctx(void *ctx)
{
	return foreign_if(ctx != mine->conns);
}

static bool mine_opened(struct conn *c)
{
	for (unsigned i = 0; i < mine->opens; i++)
		if (mine->opened[i] == c)
			return true;
	return false;
}

static void on_open(void *ctx, struct conn *c)
{
	if (foreign(ctx))
		return;
	struct instance *in = ctx;
	if (in->opens == CLIENTS_MAX) {
		in->foreign++;
		return;
	}
	in->opened[in->opens++] = c;
	*(struct note *)conn_user(c) = (struct note){ .owner = in };
}

/* Gather a line; answer it whole, then close after the answer. */
static void on_data(void *ctx, struct conn *c, uint8_t *data, size_t len)
{
	if (foreign(ctx))
		return;
	struct note *n = conn_user(c);
	if (!mine_opened(c) || n->owner != mine || n->len + len > LINE_MAX) {
		mine->foreign++;
		return;
	}
	memcpy(n->line + n->len, data, len);
	n->len += len;
	if (n->line[n->len - 1] != '\n')
		return;
	/* every line starts with the name of the instance its client dialled */
	if (strncmp(n->line, mine->name, strlen(mine->name)) != 0)
		mine->foreign++;
	mine->lines++;
	char reply[2 * LINE_MAX];
	int rlen = snprintf(reply, sizeof(reply), "%s heard %.*s", mine->name, (int)n->len, n->line);
	struct buf *b = buf_from(reply, (size_t)rlen);
	if (!conn_send(c, b))
		mine->setup_failed = true;
	buf_unref(b);
	conn_close(c);
}

static void on_deadline(void *ctx, struct conn *c)
{
	(void)c;
	foreign(ctx);
}

static void on_drained(void *ctx, struct conn *c)
{
	(void)c;
	foreign(ctx);
}

static void on_closing(void *ctx, struct conn *c)
{
	if (!foreign(ctx) && mine_opened(c))
		mine->closings++;
}

static void ignore_signal(void *ctx, int signo)
{
	(void)ctx;
	(void)signo;
}

static bool all_heard(const struct instance *in)
{
	for (unsigned i = 0; i < in->clients; i++)
		if (!in->cl[i].eof)
			return false;
	return true;
}

/* The clients read without blocking, once a tick; a client that has its
 * answer and the server's FIN closes too, which lets the server's side go. */
static void on_tick(void *ctx)
{
	if (foreign_loop_ctx(ctx))
		return;
	struct instance *in = mine;
	conns_tick(ctx);
	for (unsigned i = 0; i < in->clients; i++) {
		struct client *cl = &in->cl[i];
		if (cl->eof)
			continue;
		ssize_t n = recv(cl->fd, cl->heard + cl->heard_len, sizeof(cl->heard) - cl->heard_len,
				 MSG_DONTWAIT);
		if (n > 0) {
			cl->heard_len += (size_t)n;
		} else if (n == 0) {
			cl->eof = true;
			close(cl->fd);
			cl->fd = -1;
		}
	}
	if (++in->ticks > TICKS_MAX) {
		in->timed_out = true;
		loop_stop(in->loop);
	}
}

static bool before_wait(void *ctx)
{
	if (foreign_loop_ctx(ctx))
		return false;
	struct instance *in = mine;
	bool busy = conns_before_wait(ctx);
	if (all_heard(in) && conns_count(in->conns) == 0)
		loop_stop(in->loop);
	return busy;
}

static const struct loop_config small_ring = { .sq_entries = 64, .cq_entries = 256, .buf_count = 16,
					       .buf_size = 4096, .tick_ms = 10 };

static int listen_local(uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	/* room for every client of a case to wait in the backlog at once */
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1024) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

/* Connected before the loop runs: the listener's backlog holds them. */
static int dial(uint16_t port, const char *line)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    write(fd, line, strlen(line)) != (ssize_t)strlen(line))
		return -1;
	return fd;
}

static void *run_instance(void *arg)
{
	struct instance *in = arg;
	mine = in;
	in->conns = conns_new(&(struct conn_config){
		.max_connections = CLIENTS_MAX,
		.max_queue = 1 << 20,
		.send_timeout = 10,
		.flush_batch = 16,
		.close_timeout = 2,
		.user_size = sizeof(struct note),
	}, &(struct conn_handlers){
		.on_open = on_open,
		.on_data = on_data,
		.on_deadline = on_deadline,
		.on_drained = on_drained,
		.on_closing = on_closing,
	}, in);
	/* Created here, not by the main thread: a ring is set up for one issuer. */
	in->loop = in->conns ? loop_new(&small_ring, &(struct loop_handlers){
		.on_accept = conn_on_accept,
		.on_recv = conn_on_recv,
		.on_send = conn_on_send,
		.on_send_released = conn_on_send_released,
		.on_shutdown = conn_on_shutdown,
		.on_tick = on_tick,
		.on_signal = ignore_signal,
		.before_wait = before_wait,
	}, in->conns) : NULL;
	uint16_t port = 0;
	in->listen_fd = listen_local(&port);
	in->setup_failed = !in->loop || in->listen_fd < 0;
	for (unsigned i = 0; i < in->clients && !in->setup_failed; i++) {
		snprintf(in->cl[i].said, sizeof(in->cl[i].said), "%s%u says hello\n", in->name, i);
		in->cl[i].fd = dial(port, in->cl[i].said);
		in->setup_failed = in->cl[i].fd < 0;
	}
	/* Both instances exist and have clients waiting before either runs,
	 * so they run side by side. */
	pthread_barrier_wait(&both_ready);
	if (!in->setup_failed) {
		conns_listen(in->conns, in->loop, in->listen_fd);
		in->ret = loop_run(in->loop);
		in->stats = *conns_stats(in->conns);
	}
	loop_free(in->loop);
	in->loop = NULL;
	conns_free(in->conns);
	if (in->listen_fd >= 0)
		close(in->listen_fd);
	for (unsigned i = 0; i < in->clients; i++)
		if (in->cl[i].fd >= 0)
			close(in->cl[i].fd);
	return NULL;
}

/* Two instances in one process, one per thread, with their own listeners
 * and different numbers of clients (so both use slots 0 and 1 of their own
 * tables): each sees only its own ctx, connections and bytes, answers its
 * own clients, and ends with every connection released. */
static void two_instances_on_two_threads_keep_to_themselves(void **state)
{
	(void)state;
	struct instance in[2] = {
		{ .name = "A", .clients = 2, .listen_fd = -1 },
		{ .name = "B", .clients = 3, .listen_fd = -1 },
	};
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < CLIENTS_MAX; j++)
			in[i].cl[j].fd = -1;
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
		assert_int_equal(in[i].opens, in[i].clients);
		assert_int_equal(in[i].lines, in[i].clients);
		assert_int_equal(in[i].closings, in[i].clients);
		/* its own counters: its own connections, answers and bytes */
		assert_int_equal(in[i].stats.total, in[i].clients);
		assert_int_equal(in[i].stats.current, 0);
		assert_int_equal(in[i].stats.frames_out, in[i].clients);
		for (unsigned j = 0; j < in[i].clients; j++) {
			struct client *cl = &in[i].cl[j];
			char want[2 * LINE_MAX];
			snprintf(want, sizeof(want), "%s heard %s", in[i].name, cl->said);
			assert_true(cl->eof);
			assert_int_equal(cl->heard_len, strlen(want));
			assert_memory_equal(cl->heard, want, cl->heard_len);
		}
	}
}

/* The owner is found from the connection's slot, not a pointer back:
 * a connection costs what it did (x86-64 and other LP64 targets). */
static void a_connection_has_no_pointer_to_its_owner(void **state)
{
	(void)state;
	if (sizeof(void *) != 8)
		skip();
	assert_int_equal(sizeof(struct conn), 144);
}

/* ---- direct descriptors ---------------------------------------------------- */

#define PING "ping\n"
#define PING_LEN (sizeof(PING) - 1)
#define ECHO_CLIENTS 32
#define OVER_LIMIT_CLIENTS 400
#define LOWERED_LIMIT 256
#define DIRECT_TICKS_MAX 1000 /* 10 s */

/* One ring on the test's own thread: its connections echo what they get.
 * In-process clients (echo cases) read once a tick and close after their
 * echo; a child's clients (the over-limit case) report through a pipe. */
struct echo_run {
	struct conns *conns;
	struct loop *loop;
	int listen_fd;
	unsigned want;            /* connections the case opens */
	unsigned opens, closings, peak;
	uint64_t bytes_in;
	int fds_at_peak;          /* process descriptors once all were open */
	int clients[ECHO_CLIENTS];
	size_t heard[ECHO_CLIENTS];
	char said_back[ECHO_CLIENTS][PING_LEN];
	int report_fd;            /* the child's pipe, or -1 */
	int served;               /* clients the child says got their echo; -1: none yet */
	unsigned ticks;
	bool timed_out;
};

static struct echo_run *run;

/* Descriptors open in this process (opendir's own is one of them, each time). */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	int n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void echo_on_open(void *ctx, struct conn *c)
{
	(void)ctx;
	(void)c;
	run->opens++;
	if (conns_count(run->conns) > run->peak)
		run->peak = conns_count(run->conns);
	if (run->peak == run->want && !run->fds_at_peak)
		run->fds_at_peak = count_fds();
}

static void echo_on_data(void *ctx, struct conn *c, uint8_t *data, size_t len)
{
	(void)ctx;
	run->bytes_in += len;
	struct buf *b = buf_from(data, len);
	conn_send(c, b);
	buf_unref(b);
}

static void echo_on_closing(void *ctx, struct conn *c)
{
	(void)ctx;
	(void)c;
	run->closings++;
}

static void echo_ignore(void *ctx, struct conn *c)
{
	(void)ctx;
	(void)c;
}

/* In-process clients: read the echo without blocking; a client that has it
 * closes, and the server's side follows (the peer's FIN). */
static void echo_read_clients(void)
{
	for (unsigned i = 0; i < run->want && run->report_fd < 0; i++) {
		if (run->clients[i] < 0)
			continue;
		ssize_t n = recv(run->clients[i], run->said_back[i] + run->heard[i],
				 PING_LEN - run->heard[i], MSG_DONTWAIT);
		if (n > 0)
			run->heard[i] += (size_t)n;
		if (n == 0 || run->heard[i] == PING_LEN) {
			close(run->clients[i]);
			run->clients[i] = -1;
		}
	}
}

static void echo_on_tick(void *ctx)
{
	conns_tick(ctx);
	echo_read_clients();
	if (++run->ticks > DIRECT_TICKS_MAX) {
		run->timed_out = true;
		loop_stop(run->loop);
	}
}

static bool echo_clients_done(void)
{
	for (unsigned i = 0; i < run->want; i++)
		if (run->clients[i] >= 0)
			return false;
	return true;
}

static bool echo_before_wait(void *ctx)
{
	bool busy = conns_before_wait(ctx);
	if (run->report_fd < 0 && run->opens == run->want && echo_clients_done() &&
	    conns_count(run->conns) == 0)
		loop_stop(run->loop);
	return busy;
}

/* The child's report: how many of its clients got their echo. */
static void on_report(void *arg)
{
	(void)arg;
	int served;
	if (read(run->report_fd, &served, sizeof(served)) == sizeof(served))
		run->served = served;
	loop_stop(run->loop);
}

/* A ring and its connections, listening, direct descriptors asked for;
 * direct_files 0 gives the ring no table. */
static void echo_start(struct echo_run *r, unsigned want, unsigned direct_files)
{
	*r = (struct echo_run){ .want = want, .listen_fd = -1, .report_fd = -1, .served = -1 };
	for (unsigned i = 0; i < ECHO_CLIENTS; i++)
		r->clients[i] = -1;
	run = r;
	r->conns = conns_new(&(struct conn_config){
		.max_connections = want,
		.max_per_ip = want, /* the address is asked of the plain socket, before it moves */
		.max_queue = 1 << 20,
		.send_timeout = 10,
		.flush_batch = 64,
		.close_timeout = 2,
		.direct = true,
	}, &(struct conn_handlers){
		.on_open = echo_on_open,
		.on_data = echo_on_data,
		.on_deadline = echo_ignore,
		.on_drained = echo_ignore,
		.on_closing = echo_on_closing,
	}, r);
	assert_non_null(r->conns);
	r->loop = loop_new(&(struct loop_config){ .sq_entries = 256, .cq_entries = 4096,
						   .buf_count = 512, .buf_size = 4096, .tick_ms = 10,
						   .direct_files = direct_files },
			   &(struct loop_handlers){
		.on_accept = conn_on_accept,
		.on_recv = conn_on_recv,
		.on_send = conn_on_send,
		.on_send_released = conn_on_send_released,
		.on_shutdown = conn_on_shutdown,
		.on_tick = echo_on_tick,
		.on_signal = ignore_signal,
		.before_wait = echo_before_wait,
	}, r->conns);
	assert_non_null(r->loop);
}

static void echo_finish(struct echo_run *r)
{
	loop_free(r->loop);
	conns_free(r->conns);
	if (r->listen_fd >= 0)
		close(r->listen_fd);
	for (unsigned i = 0; i < ECHO_CLIENTS; i++)
		if (r->clients[i] >= 0)
			close(r->clients[i]);
	run = NULL;
}

/* In-process clients, connected and their ping written before the loop
 * runs; returns the process's descriptor count with all of them open. */
static int echo_dial_all(struct echo_run *r)
{
	uint16_t port = 0;
	r->listen_fd = listen_local(&port);
	assert_true(r->listen_fd >= 0);
	for (unsigned i = 0; i < r->want; i++) {
		r->clients[i] = dial(port, PING);
		assert_true(r->clients[i] >= 0);
	}
	return count_fds();
}

static void assert_every_client_heard_its_echo(const struct echo_run *r)
{
	for (unsigned i = 0; i < r->want; i++) {
		assert_int_equal(r->heard[i], PING_LEN);
		assert_memory_equal(r->said_back[i], PING, PING_LEN);
	}
}

/* Direct descriptors: K connections are accepted, echo, and close from
 * both ends until none is left, and all the while the process holds no
 * descriptor for any of them (with plain ones it would hold K more). */
static void direct_connections_echo_and_close_holding_no_descriptors(void **state)
{
	(void)state;
	struct echo_run r;
	echo_start(&r, ECHO_CLIENTS, ECHO_CLIENTS);
	if (!loop_direct(r.loop)) {
		echo_finish(&r);
		skip(); /* the kernel refused the table: logged by loop_new */
	}
	int before = echo_dial_all(&r);
	conns_listen(r.conns, r.loop, r.listen_fd);
	assert_int_equal(loop_run(r.loop), 0);
	struct conn_stats stats = *conns_stats(r.conns);
	echo_finish(&r);

	assert_false(r.timed_out);
	assert_true(stats.direct);
	assert_int_equal(stats.table_full, 0);
	assert_int_equal(r.opens, ECHO_CLIENTS);
	assert_int_equal(r.peak, ECHO_CLIENTS);
	assert_int_equal(r.fds_at_peak, before);
	assert_int_equal(r.bytes_in, ECHO_CLIENTS * PING_LEN);
	assert_every_client_heard_its_echo(&r);
	assert_int_equal(r.closings, ECHO_CLIENTS);
	assert_int_equal(stats.total, ECHO_CLIENTS);
	assert_int_equal(stats.current, 0);
}

/* Direct descriptors asked for, but the ring has no table: the same
 * connections work as before on plain descriptors, one each. */
static void without_a_file_table_connections_use_plain_descriptors(void **state)
{
	(void)state;
	struct echo_run r;
	echo_start(&r, ECHO_CLIENTS, 0);
	int before = echo_dial_all(&r);
	conns_listen(r.conns, r.loop, r.listen_fd);
	assert_int_equal(loop_run(r.loop), 0);
	struct conn_stats stats = *conns_stats(r.conns);
	echo_finish(&r);

	assert_false(r.timed_out);
	assert_false(stats.direct);
	assert_int_equal(r.opens, ECHO_CLIENTS);
	assert_int_equal(r.fds_at_peak, before + ECHO_CLIENTS);
	assert_every_client_heard_its_echo(&r);
	assert_int_equal(r.closings, ECHO_CLIENTS);
	assert_int_equal(stats.current, 0);
}

/* The child: n clients connect (the listener's backlog holds them until
 * they are accepted) and ping, then each waits, to a deadline, for its
 * echo. It reports how many got it and exits; exiting closes them all. */
static _Noreturn void child_clients(uint16_t port, unsigned n, int report_fd)
{
	int *fd = calloc(n, sizeof(*fd));
	int served = 0;
	unsigned dialled = 0;
	while (fd && dialled < n && (fd[dialled] = dial(port, PING)) >= 0)
		dialled++;
	struct timespec now, end;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += 8;
	for (unsigned i = 0; i < dialled; i++) {
		char got[PING_LEN];
		size_t heard = 0;
		while (heard < PING_LEN) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			long left = (end.tv_sec - now.tv_sec) * 1000 + (end.tv_nsec - now.tv_nsec) / 1000000;
			struct pollfd p = { .fd = fd[i], .events = POLLIN };
			if (left <= 0 || poll(&p, 1, (int)left) <= 0)
				break;
			ssize_t k = recv(fd[i], got + heard, PING_LEN - heard, 0);
			if (k <= 0)
				break;
			heard += (size_t)k;
		}
		if (heard == PING_LEN && memcmp(got, PING, PING_LEN) == 0)
			served++;
	}
	if (write(report_fd, &served, sizeof(served)) != sizeof(served))
		_exit(2);
	_exit(0);
}

/* The point of direct descriptors: with RLIMIT_NOFILE lowered to 256, one
 * ring holds 400 connections at once, and every one echoes. The clients
 * run in a child process forked before the limit is lowered, so theirs
 * are not counted against it. Accepting still takes a plain descriptor
 * for a moment per connection, and a burst may run out of them: accepting
 * then pauses to the next tick and must go on from there. */
static void direct_connections_outnumber_the_descriptor_limit(void **state)
{
	(void)state;
	struct echo_run r;
	echo_start(&r, OVER_LIMIT_CLIENTS, OVER_LIMIT_CLIENTS); /* the table under the normal limit */
	if (!loop_direct(r.loop)) {
		echo_finish(&r);
		skip();
	}
	uint16_t port = 0;
	r.listen_fd = listen_local(&port);
	int report[2];
	assert_true(r.listen_fd >= 0);
	assert_int_equal(pipe2(report, O_CLOEXEC), 0);
	struct rlimit normal;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &normal), 0);
	if (normal.rlim_cur < OVER_LIMIT_CLIENTS + 64) {
		echo_finish(&r);
		skip(); /* the child could not open its clients */
	}
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		close(report[0]);
		child_clients(port, OVER_LIMIT_CLIENTS, report[1]);
	}
	close(report[1]);
	r.report_fd = report[0];
	assert_int_equal(loop_watch_readable(r.loop, r.report_fd, on_report, NULL), 0);

	struct rlimit lowered = { .rlim_cur = LOWERED_LIMIT, .rlim_max = normal.rlim_max };
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &lowered), 0);
	conns_listen(r.conns, r.loop, r.listen_fd);
	int ret = loop_run(r.loop);
	int fds_then = count_fds();
	setrlimit(RLIMIT_NOFILE, &normal); /* before any assert can end the case */
	struct conn_stats stats = *conns_stats(r.conns);
	int status = 0;
	waitpid(child, &status, 0);
	close(r.report_fd);
	echo_finish(&r);

	assert_int_equal(ret, 0);
	assert_false(r.timed_out);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(stats.direct);
	assert_int_equal(stats.table_full, 0);
	assert_int_equal(r.peak, OVER_LIMIT_CLIENTS);          /* all open at once */
	assert_int_equal(r.served, OVER_LIMIT_CLIENTS);        /* each one echoed */
	assert_int_equal(r.bytes_in, OVER_LIMIT_CLIENTS * PING_LEN);
	assert_in_range(r.fds_at_peak, 1, LOWERED_LIMIT - 1);
	assert_in_range(fds_then, 1, LOWERED_LIMIT - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(two_instances_on_two_threads_keep_to_themselves),
		cmocka_unit_test(a_connection_has_no_pointer_to_its_owner),
		cmocka_unit_test(direct_connections_echo_and_close_holding_no_descriptors),
		cmocka_unit_test(without_a_file_table_connections_use_plain_descriptors),
		cmocka_unit_test(direct_connections_outnumber_the_descriptor_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
