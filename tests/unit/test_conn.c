/* test_conn.c: two sets of connections, each on its own ring and thread.
 *
 * A real ring and real sockets on 127.0.0.1: each struct conns listens on
 * its own port, its clients connect and write one line, and its handlers
 * must see only their own ctx, their own connections (and the storage in
 * their slots) and their own bytes; each line is answered with conn_send,
 * read by the client, and the connection closed from both ends until the
 * instance holds none. Deadlines are counted in loop ticks (10 ms), so a
 * missing callback fails the case instead of hanging it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
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
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0 ||
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(two_instances_on_two_threads_keep_to_themselves),
		cmocka_unit_test(a_connection_has_no_pointer_to_its_owner),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
