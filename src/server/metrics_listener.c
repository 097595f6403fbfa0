/* metrics_listener.c: --metrics-listen: /metrics and the probes on a
 * listener of their own, so that whoever can reach the chat port cannot
 * read the counters.
 *
 * A small ring on a thread of its own, with its own connections, answered
 * by the same HTTP code as the chat port configured with no page and no
 * WebSocket (http_conn_config.site NULL: everything else is 404). Why not
 * one more listener on edge 0's ring? A ring's connections have one
 * listener and one set of HTTP settings, and telling its connections apart
 * by listener would reach into the loop and the connection layer; a scrape
 * every few seconds does not need to share a ring with the chat. */
#include "metrics_listener.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "edge.h"
#include "http_conn.h"
#include "log.h"
#include "loop.h"
#include "session.h"
#include "thread.h"

/* Few connections: Prometheus and a person with curl. */
#define METRICS_MAX_CONNECTIONS 64
#define TICK_MS 100

struct metrics_listener {
	struct edges *all;
	int listen_fd;
	int stop_fd;                 /* readable: the server is stopping */
	struct sessions sessions;    /* the conns' ctx: HTTP only */
	struct conns *conns;
	struct loop *loop;
	pthread_t thread;
	bool started;
};

static struct buf *render(void *ctx)
{
	return edges_render_metrics(ctx);
}

struct metrics_listener *metrics_listener_new(struct edges *all, int listen_fd)
{
	const struct config *cfg = all->cfg;
	struct metrics_listener *m = calloc(1, sizeof(*m));
	if (!m) {
		close(listen_fd);
		log_error("out of memory");
		return NULL;
	}
	m->all = all;
	m->listen_fd = listen_fd;
	m->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	m->sessions.http = http_transport_new(&(struct http_conn_config){
		.site = NULL,
		.header_timeout = cfg->header_timeout,
		.metrics = render,
		.metrics_ctx = all,
		.readiness = &all->readiness,
		/* on loopback, the same DNS-rebinding defence as the chat port */
		.listen_host = cfg->metrics_host,
		.allow_host = cfg->allow_host,
		.allow_host_count = cfg->allow_host_count,
	});
	if (m->stop_fd < 0 || !m->sessions.http) {
		log_error("--metrics-listen: %s", m->stop_fd < 0 ? strerror(errno) : "out of memory");
		metrics_listener_free(m);
		return NULL;
	}
	return m;
}

/* ---- the ring's handlers: HTTP only ---------------------------------------- */

static void on_open(void *ctx, struct conn *c)
{
	(void)ctx;
	session_open(session_of(c));
	http_conn_open(c);
}

static void on_data(void *ctx, struct conn *c, uint8_t *data, size_t len)
{
	(void)ctx;
	http_conn_data(c, data, len);
}

static void on_deadline(void *ctx, struct conn *c)
{
	(void)ctx;
	http_conn_deadline(c);
}

static void on_drained(void *ctx, struct conn *c)
{
	(void)ctx;
	http_conn_drained(c);
}

static void on_closing(void *ctx, struct conn *c)
{
	(void)ctx;
	http_conn_closing(c);
}

static void on_tick(void *ctx)
{
	conns_tick(ctx);
}

static bool before_wait(void *ctx)
{
	return conns_before_wait(ctx);
}

static void on_stop(void *arg)
{
	struct metrics_listener *m = arg;
	uint64_t n;
	if (read(m->stop_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_error("--metrics-listen: eventfd read: %s", strerror(errno));
	loop_stop(m->loop); /* what is open is closed by conns_free */
}

/* Made on the thread that runs it (the ring has a single issuer). */
static int open_ring(struct metrics_listener *m)
{
	const struct config *cfg = m->all->cfg;
	m->conns = conns_new(&(struct conn_config){
		.max_connections = METRICS_MAX_CONNECTIONS,
		.max_queue = 4 * 1024 * 1024,
		.send_timeout = cfg->send_timeout,
		.flush_batch = METRICS_MAX_CONNECTIONS,
		.close_timeout = cfg->close_timeout,
		.refusal = http_conn_refusal,
		.refusal_len = http_conn_refusal_len,
		.user_size = sizeof(struct session),
		.log_name = "metrics",
	}, &(struct conn_handlers){
		.on_open = on_open,
		.on_data = on_data,
		.on_deadline = on_deadline,
		.on_drained = on_drained,
		.on_closing = on_closing,
	}, &m->sessions);
	if (!m->conns)
		return -1;
	m->loop = loop_new(&(struct loop_config){
		.sq_entries = 64,
		.cq_entries = 1024,
		.buf_count = 16,
		.buf_size = 4096,
		.tick_ms = TICK_MS,
	}, &(struct loop_handlers){
		.on_accept = conn_on_accept,
		.on_recv = conn_on_recv,
		.on_send = conn_on_send,
		.on_send_released = conn_on_send_released,
		.on_shutdown = conn_on_shutdown,
		.on_tick = on_tick,
		.before_wait = before_wait,
	}, m->conns);
	if (!m->loop || loop_watch_readable(m->loop, m->stop_fd, on_stop, m) < 0)
		return -1;
	conns_listen(m->conns, m->loop, m->listen_fd);
	m->listen_fd = -1; /* the connections close it */
	return 0;
}

static void *run(void *arg)
{
	struct metrics_listener *m = arg;
	if (open_ring(m) < 0 || loop_run(m->loop) < 0) {
		log_error("the --metrics-listen listener failed: stopping the server");
		for (unsigned i = 0; i < m->all->count; i++)
			edge_stop(&m->all->edge[i]);
	}
	conns_free(m->conns);
	loop_free(m->loop);
	m->conns = NULL;
	m->loop = NULL;
	return NULL;
}

int metrics_listener_start(struct metrics_listener *m)
{
	int err = thread_start(&m->thread, "rc-metrics", run, m);
	if (err) {
		log_error("--metrics-listen: thread: %s", strerror(err));
		return -1;
	}
	m->started = true;
	return 0;
}

void metrics_listener_free(struct metrics_listener *m)
{
	if (!m)
		return;
	if (m->started) {
		uint64_t one = 1;
		if (write(m->stop_fd, &one, sizeof(one)) < 0)
			log_error("--metrics-listen: eventfd write: %s", strerror(errno));
		pthread_join(m->thread, NULL);
	}
	http_transport_free(m->sessions.http);
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	if (m->stop_fd >= 0)
		close(m->stop_fd);
	free(m);
}
