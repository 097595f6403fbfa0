/* edge.c: one edge's wiring: its ring's handlers (dispatching by protocol
 * phase, kept in each connection's session), its chat's wake-ups, its
 * share of the shutdown and of /metrics. */
#include "edge.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "chat.h"
#include "config.h"
#include "conn.h"
#include "guest_token.h"
#include "http_conn.h"
#include "log.h"
#include "room_quota.h"
#include "loop.h"
#include "sequencer.h"
#include "sse_conn.h"
#include "static_files.h"
#include "store.h"
#include "ws.h"
#include "ws_conn.h"

/* How long shutdown waits for close handshakes before exiting anyway; the
 * contract is exit within 2 s of the signal. */
#define SHUTDOWN_GRACE_MS 1500
#define TICK_MS 100

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The loop's ctx is the ring's struct conns, whose ctx is the edge's
 * struct sessions, which lives in the edge. */
static struct edge *edge_of(void *loop_ctx)
{
	struct sessions *s = conns_ctx(loop_ctx);
	return (struct edge *)((char *)s - offsetof(struct edge, sessions));
}

/* ---- connection handlers: dispatch by protocol phase --------------------- */

/* ctx is the ring's struct sessions; the protocol layers find it (and so
 * their settings and counters) from the connection itself, so it is not
 * passed on. */

static void on_open(void *ctx, struct conn *c)
{
	(void)ctx;
	session_open(session_of(c)); /* every connection starts as HTTP */
	http_conn_open(c);
}

static void on_data(void *ctx, struct conn *c, uint8_t *data, size_t len)
{
	(void)ctx;
	switch (session_of(c)->proto) {
	case PROTO_WS:
		ws_conn_data(c, data, len);
		break;
	case PROTO_SSE:
		break; /* a stream's client has nothing to say on it: commands are POSTs */
	default:
		http_conn_data(c, data, len);
	}
}

static void on_deadline(void *ctx, struct conn *c)
{
	(void)ctx;
	switch (session_of(c)->proto) {
	case PROTO_WS:
		ws_conn_deadline(c);
		break;
	case PROTO_SSE:
		sse_conn_deadline(c);
		break;
	default:
		http_conn_deadline(c);
	}
}

static void on_drained(void *ctx, struct conn *c)
{
	(void)ctx;
	switch (session_of(c)->proto) {
	case PROTO_WS:
		ws_conn_drained(c);
		break;
	case PROTO_SSE:
		sse_conn_drained(c);
		break;
	default:
		http_conn_drained(c);
	}
}

static void on_closing(void *ctx, struct conn *c)
{
	(void)ctx;
	switch (session_of(c)->proto) {
	case PROTO_WS:
		ws_conn_closing(c);
		break;
	case PROTO_SSE:
		sse_conn_closing(c);
		break;
	default:
		http_conn_closing(c);
	}
}

/* ---- shutdown ------------------------------------------------------------ */

static void say_goodbye(void *ctx, struct conn *c)
{
	(void)ctx;
	if (session_of(c)->proto == PROTO_WS)
		ws_conn_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
	else if (session_of(c)->proto == PROTO_SSE)
		sse_conn_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
	else
		conn_close(c);
}

static void begin_shutdown(struct edge *e, const char *why)
{
	if (e->shutting_down)
		return;
	e->shutting_down = true;
	e->shutdown_deadline_ms = monotonic_ms() + SHUTDOWN_GRACE_MS;
	if (why)
		log_info("%s: closing %u connections", why, conns_count(e->conns));
	conns_stop_listening(e->conns);
	conns_for_each(e->conns, say_goodbye);
}

/* Edge 0 takes the signals: SIGHUP reloads (the other edges copy the new
 * page at their next tick), the others stop every edge. */
static void on_signal(void *ctx, int signo)
{
	struct edge *e = edge_of(ctx);
	if (signo == SIGHUP) {
		reload_now(&e->all->reload);
		reload_follow_site(&e->all->reload, &e->site, &e->site_generation);
		return;
	}
	for (unsigned i = 0; i < e->all->count; i++)
		if (i != e->index)
			edge_stop(&e->all->edge[i]);
	begin_shutdown(e, strsignal(signo));
}

static void on_stop(void *arg)
{
	struct edge *e = arg;
	uint64_t n;
	if (read(e->stop_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_error("edge %u: eventfd read: %s", e->index, strerror(errno));
	begin_shutdown(e, NULL);
}

void edge_stop(struct edge *e)
{
	uint64_t one = 1;
	if (write(e->stop_fd, &one, sizeof(one)) < 0)
		log_error("edge %u: eventfd write: %s", e->index, strerror(errno));
}

/* ---- the loop's handlers ---------------------------------------------------- */

static void publish_sample(struct edge *e)
{
	struct metrics_sample s;
	metrics_sample_take(&s, e->loop, e->conns, e->chat, &e->sessions);
	pthread_mutex_lock(&e->sample_lock);
	e->sample = s;
	pthread_mutex_unlock(&e->sample_lock);
}

static void on_tick(void *ctx)
{
	struct edge *e = edge_of(ctx);
	conns_tick(e->conns);
	chat_tick(e->chat);
	publish_sample(e); /* the others read it at most a tick old */
	/* one atomic load a tick; a new page is served within 100 ms of SIGHUP */
	reload_follow_site(&e->all->reload, &e->site, &e->site_generation);
	if (e->shutting_down && monotonic_ms() >= e->shutdown_deadline_ms) {
		log_info("shutdown: %u connections did not finish closing in time", conns_count(e->conns));
		loop_stop(e->loop);
	}
}

static bool before_wait(void *ctx)
{
	struct edge *e = edge_of(ctx);
	bool busy = conns_before_wait(e->conns);
	if (e->shutting_down && conns_count(e->conns) == 0)
		loop_stop(e->loop);
	return busy;
}

/* The store's writer thread has results for the chat (one edge). */
static void on_store_ready(void *arg)
{
	struct edge *e = arg;
	chat_store_ready(e->chat);
}

/* The sequencer has ops for this edge's chat. */
static void on_sequenced(void *arg)
{
	struct edge *e = arg;
	chat_sequenced_ready(e->chat);
}

/* ---- POST /send: to the edge holding the stream, and back -------------------- */

static void route_post(void *ctx, struct sse_post *p)
{
	struct edge *e = ctx;
	p->from = e->index;
	if (p->key.edge >= e->all->count) {
		p->ran = true;
		p->status = 404; /* a key naming no edge names no stream */
		sse_post_finish(p);
		return;
	}
	if (p->key.edge == e->index) {
		sse_post_run(e->conns, p);
		sse_post_finish(p);
		return;
	}
	sse_transport_count_handoff(e->sessions.sse);
	post_box_put(&e->all->edge[p->key.edge].posts, p);
}

/* Posts for streams held here, and answers to posts that came in here. */
static void on_posts(void *arg)
{
	struct edge *e = arg;
	for (struct sse_post *p = post_box_take(&e->posts), *next; p; p = next) {
		next = p->next;
		if (p->ran) {
			sse_post_finish(p);
		} else {
			sse_post_run(e->conns, p);
			post_box_put(&e->all->edge[p->from].posts, p);
		}
	}
}

struct buf *edges_render_metrics(struct edges *all)
{
	struct metrics_sample *samples = calloc(all->count, sizeof(*samples));
	if (!samples)
		return NULL;
	for (unsigned i = 0; i < all->count; i++) {
		struct edge *other = &all->edge[i];
		pthread_mutex_lock(&other->sample_lock);
		samples[i] = other->sample;
		pthread_mutex_unlock(&other->sample_lock);
	}
	/* one edge: its own count; several: the rooms with members anywhere */
	uint64_t rooms = all->rooms ? room_quota_in_use(all->rooms) : samples[0].chat.rooms;
	struct buf *text = metrics_render(samples, all->count, rooms);
	free(samples);
	return text;
}

/* /metrics on this edge: its own counters now, the others' as of their
 * last tick. */
static struct buf *render_metrics(void *ctx)
{
	struct edge *e = ctx;
	publish_sample(e);
	return edges_render_metrics(e->all);
}

/* ---- set-up and teardown -------------------------------------------------- */

/* What a replay or a history page may queue for one client: a quarter of
 * the ceiling that drops it, so the largest frame (twice --max-message)
 * on top still fits, and at most 256 KiB, enough to keep a socket busy. */
static size_t catchup_bytes(uint64_t max_queue)
{
	uint64_t quarter = max_queue / 4;
	return quarter < 256 * 1024 ? (size_t)quarter : 256 * 1024;
}

static char *issue_guest_token(void *ctx, uint32_t id, const char *name)
{
	return guest_token_issue(ctx, id, name);
}

int edge_prepare(struct edges *all, unsigned index)
{
	const struct config *cfg = all->cfg;
	struct edge *e = &all->edge[index];
	e->index = index;
	e->all = all;
	e->listen_fd = e->signal_fd = -1;
	snprintf(e->log_name, sizeof(e->log_name), "%u", index);
	pthread_mutex_init(&e->sample_lock, NULL);
	e->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (e->stop_fd < 0) {
		log_error("eventfd: %s", strerror(errno));
		return -1;
	}
	if (post_box_init(&e->posts) < 0)
		return -1;
	if (!reload_follow_site(&all->reload, &e->site, &e->site_generation))
		return -1;
	e->chat = chat_new(&(struct chat_config){
		.send = session_send,
		.send_own = session_send_own,
		.backlog = session_backlog,
		.catchup_bytes = catchup_bytes(cfg->max_queue),
		.close = session_kick,
		.store = all->store,
		.sequencer = all->sequencer,
		.history_elsewhere = all->redis != NULL,
		.edge = index,
		.room_quota = all->rooms,
		.presence_list_max = 100,
		.presence_events_max = 100,
		.history_memory = cfg->history_memory,
		/* every edge keeps its copy of the recent history: together
		 * they stay within --history-bytes */
		.history_bytes = cfg->history_bytes / all->count,
		.max_rooms = cfg->max_rooms,
		.rate = { .per_second = cfg->rate_per_second, .burst = cfg->rate_burst },
		.guest_token = all->guest_key ? issue_guest_token : NULL,
		.guest_ctx = (void *)all->guest_key,
		.rejoin_grace_ms = all->guest_key ? cfg->rejoin_grace * 1000 : 0,
		.refresh = cfg->jwt_secret ? session_refresh : NULL,
		.max_message = cfg->max_message,
	});
	e->sessions.ws = ws_transport_new(&(struct ws_conn_config){
		.max_message = cfg->max_message,
		.ping_interval = cfg->ping_interval,
		.idle_timeout = cfg->idle_timeout,
		.close_timeout = cfg->close_timeout,
		.chat = e->chat,
		.jwt_secret = (const uint8_t *)cfg->jwt_secret,
		.jwt_secret_len = cfg->jwt_secret_len,
		.jwt_leeway = cfg->jwt_leeway,
		.deflate = cfg->deflate,
		.deflate_threshold = cfg->deflate_threshold,
	});
	e->sessions.sse = sse_transport_new(&(struct sse_conn_config){
		.ping_interval = cfg->ping_interval,
		.edge = index,
		.chat = e->chat,
		.jwt_secret = (const uint8_t *)cfg->jwt_secret,
		.jwt_secret_len = cfg->jwt_secret_len,
		.jwt_leeway = cfg->jwt_leeway,
	});
	e->sessions.http = http_transport_new(&(struct http_conn_config){
		.site = &e->site, /* replaced in place on reload */
		.header_timeout = cfg->header_timeout,
		/* not on the chat port when --metrics-listen moved it or turned it off */
		.metrics = cfg->metrics_host[0] || cfg->metrics_off ? NULL : render_metrics,
		.metrics_ctx = e,
		.readiness = &all->readiness,
		.jwt_secret = (const uint8_t *)cfg->jwt_secret,
		.jwt_secret_len = cfg->jwt_secret_len,
		.jwt_leeway = cfg->jwt_leeway,
		.login_url = cfg->login_url,
		.guest_key = all->guest_key,
		.allow_origin = cfg->allow_origin,
		.allow_origin_count = cfg->allow_origin_count,
		.listen_host = cfg->host,
		.allow_host = cfg->allow_host,
		.allow_host_count = cfg->allow_host_count,
		.api_key = cfg->api_key,
		.api_key_len = cfg->api_key_len,
		.chat = e->chat,
		.max_message = cfg->max_message,
		.sse_route = route_post,
		.sse_ctx = e,
	});
	if (!e->sessions.ws || !e->sessions.sse || !e->sessions.http) {
		log_error("out of memory");
		return -1;
	}
	return 0;
}

/* A ring's file table holds at most RLIMIT_NOFILE (hard) sockets; more
 * connections than that on one edge stay on plain descriptors. */
static unsigned file_table_size(uint32_t max_connections)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max < max_connections)
		return (unsigned)rl.rlim_max;
	return max_connections;
}

/* The ring and the connections, made on the edge's own thread (the ring
 * is set up for a single issuer). */
static int open_ring(struct edge *e)
{
	const struct config *cfg = e->all->cfg;
	/* The connections (and their sessions, in the same slots) first: they
	 * are the loop's ctx, which hands every completion back to them. */
	e->conns = conns_new(&(struct conn_config){
		.max_connections = cfg->max_connections,
		.max_per_ip = cfg->max_per_ip,
		.max_queue = cfg->max_queue,
		.send_timeout = cfg->send_timeout,
		.flush_batch = cfg->flush_batch,
		.close_timeout = cfg->close_timeout,
		.send_zc = cfg->send_zc,
		.tls = e->all->tls,
		.refusal = http_conn_refusal,
		.refusal_len = http_conn_refusal_len,
		.user_size = sizeof(struct session),
		/* in the ring's own file table: each edge may hold up to the
		 * descriptor limit (loop.c falls back, and says so, where the
		 * kernel refuses) */
		.direct = !cfg->plain_fds,
		.limits = e->all->limits,
		.log_name = e->log_name,
	}, &(struct conn_handlers){
		.on_open = on_open,
		.on_data = on_data,
		.on_deadline = on_deadline,
		.on_drained = on_drained,
		.on_closing = on_closing,
	}, &e->sessions);
	if (!e->conns)
		return -1;
	unsigned sq = 4096;
	e->loop = loop_new(&(struct loop_config){
		.sq_entries = sq,
		.cq_entries = sq * 16,
		.buf_count = cfg->recv_buffers,
		.buf_size = cfg->recv_buffer_size,
		.tick_ms = TICK_MS,
		.send_zc = cfg->send_zc != 0,
		.direct_files = cfg->plain_fds ? 0 : file_table_size(cfg->max_connections),
	}, &(struct loop_handlers){
		.on_accept = conn_on_accept,
		.on_recv = conn_on_recv,
		.on_send = conn_on_send,
		.on_send_released = conn_on_send_released,
		.on_shutdown = conn_on_shutdown,
		.on_tick = on_tick,
		.on_signal = on_signal,
		.before_wait = before_wait,
	}, e->conns);
	if (!e->loop)
		return -1;
	if (e->signal_fd >= 0)
		loop_watch_signals(e->loop, e->signal_fd);
	if (loop_watch_readable(e->loop, e->stop_fd, on_stop, e) < 0 ||
	    loop_watch_readable(e->loop, e->posts.fd, on_posts, e) < 0)
		return -1;
	if (e->all->sequencer) {
		if (loop_watch_readable(e->loop, sequencer_edge_fd(e->all->sequencer, e->index), on_sequenced,
					e) < 0)
			return -1;
	} else if (e->all->store &&
		   loop_watch_readable(e->loop, store_event_fd(e->all->store), on_store_ready, e) < 0) {
		return -1;
	}
	conns_listen(e->conns, e->loop, e->listen_fd);
	e->listen_fd = -1; /* the connections close it */
	publish_sample(e);
	return 0;
}

void edge_run(struct edge *e)
{
	e->rc = 1;
	if (open_ring(e) == 0)
		e->rc = loop_run(e->loop) == 0 ? 0 : 1;
	else
		log_error("edge %u could not start", e->index);
	if (e->rc) {
		/* one edge down takes the server down, not a quarter of it */
		for (unsigned i = 0; i < e->all->count; i++)
			if (i != e->index)
				edge_stop(&e->all->edge[i]);
	}
	/* The connections go first: their last on_closing calls release the
	 * sessions' chat members, whose leave events may close others, which
	 * queues shutdowns on the ring: it must still exist. The ring's exit
	 * then cancels whatever is in flight. */
	conns_free(e->conns);
	loop_free(e->loop);
	e->conns = NULL;
	e->loop = NULL;
}

static void *edge_thread(void *arg)
{
	edge_run(arg);
	return NULL;
}

int edge_start(struct edge *e)
{
	int err = pthread_create(&e->thread, NULL, edge_thread, e);
	if (err) {
		log_error("edge %u: thread: %s", e->index, strerror(err));
		return -1;
	}
	char name[16];
	snprintf(name, sizeof(name), "rc-edge-%u", e->index); /* for top -H and perf */
	pthread_setname_np(e->thread, name);
	return 0;
}

void edge_free(struct edge *e)
{
	ws_transport_free(e->sessions.ws); /* after the last on_closing */
	sse_transport_free(e->sessions.sse);
	post_box_destroy(&e->posts); /* every edge is done: what is left has no one to answer */
	http_transport_free(e->sessions.http);
	chat_free(e->chat);
	static_site_free(&e->site); /* after the connections and their queues */
	if (e->listen_fd >= 0)
		close(e->listen_fd);
	if (e->stop_fd >= 0)
		close(e->stop_fd);
	pthread_mutex_destroy(&e->sample_lock);
}
