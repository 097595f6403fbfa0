/* server.c: wiring: the listener, the loop's and the connections' handlers
 * (dispatching by protocol phase, kept in each connection's session),
 * signals and graceful shutdown. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chat.h"
#include "conn.h"
#include "http_conn.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "session.h"
#include "static_files.h"
#include "store.h"
#include "tls.h"
#include "ws.h"
#include "ws_conn.h"

/* How long shutdown waits for close handshakes before exiting anyway; the
 * contract is exit within 2 s of the signal. */
#define SHUTDOWN_GRACE_MS 1500
#define TICK_MS 100

static struct static_site site;
static struct store *store;
static struct chat *chat;
static struct tls_server *tls;
static struct loop *loop;
static struct conns *conns;
static struct sessions sessions; /* the protocols' settings and counters: the conns' ctx */
static bool shutting_down;
static uint64_t shutdown_deadline_ms;

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
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
	if (session_of(c)->proto == PROTO_WS)
		ws_conn_data(c, data, len);
	else
		http_conn_data(c, data, len);
}

static void on_deadline(void *ctx, struct conn *c)
{
	(void)ctx;
	if (session_of(c)->proto == PROTO_WS)
		ws_conn_deadline(c);
	else
		http_conn_deadline(c);
}

static void on_drained(void *ctx, struct conn *c)
{
	(void)ctx;
	if (session_of(c)->proto == PROTO_HTTP)
		http_conn_drained(c);
	else
		ws_conn_drained(c);
}

static void on_closing(void *ctx, struct conn *c)
{
	(void)ctx;
	if (session_of(c)->proto == PROTO_WS)
		ws_conn_closing(c);
}

/* ---- shutdown ------------------------------------------------------------ */

static void say_goodbye(void *ctx, struct conn *c)
{
	(void)ctx;
	if (session_of(c)->proto == PROTO_WS)
		ws_conn_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
	else
		conn_close(c);
}

/* The loop's ctx is the ring's struct conns. */
static void begin_shutdown(void *ctx, int signo)
{
	struct conns *cs = ctx;
	if (shutting_down)
		return;
	shutting_down = true;
	shutdown_deadline_ms = monotonic_ms() + SHUTDOWN_GRACE_MS;
	log_info("%s: closing %u connections", strsignal(signo), conns_count(cs));
	conns_stop_listening(cs);
	conns_for_each(cs, say_goodbye);
}

static void on_tick(void *ctx)
{
	struct conns *cs = ctx;
	conns_tick(cs);
	if (shutting_down && monotonic_ms() >= shutdown_deadline_ms) {
		log_info("shutdown: %u connections did not finish closing in time", conns_count(cs));
		loop_stop(loop);
	}
}

static bool before_wait(void *ctx)
{
	struct conns *cs = ctx;
	bool busy = conns_before_wait(cs);
	if (shutting_down && conns_count(cs) == 0)
		loop_stop(loop);
	return busy;
}

/* ---- set-up -------------------------------------------------------------- */

static int open_listener(const struct config *cfg, char *shown, size_t shown_len)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res;
	char port[8];
	snprintf(port, sizeof(port), "%u", cfg->port);
	int err = getaddrinfo(cfg->host, port, &hints, &res);
	if (err) {
		log_error("--host %s: %s", cfg->host, gai_strerror(err));
		return -1;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("socket: %s", strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Accepted sockets inherit TCP_NODELAY: a chat frame goes out at once
	 * instead of waiting for the previous one's ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
		log_error("listen on %s port %u: %s", cfg->host, cfg->port, strerror(errno));
		close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);

	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	char host[INET6_ADDRSTRLEN];
	unsigned bound_port;
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		bound_port = ntohs(a->sin6_port);
		snprintf(shown, shown_len, "[%s]:%u", host, bound_port);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		bound_port = ntohs(a->sin_port);
		snprintf(shown, shown_len, "%s:%u", host, bound_port);
	}
	return fd;
}

/* What a replay or a history page may queue for one client: a quarter of
 * the ceiling that drops it, so the largest frame (twice --max-message)
 * on top still fits, and at most 256 KiB, enough to keep a socket busy. */
static size_t catchup_bytes(uint64_t max_queue)
{
	uint64_t quarter = max_queue / 4;
	return quarter < 256 * 1024 ? (size_t)quarter : 256 * 1024;
}

/* The store's writer thread has results for the loop. */
static void on_store_ready(void *arg)
{
	(void)arg;
	chat_store_ready(chat);
}

static struct buf *render_metrics(void)
{
	return metrics_render(loop, conns, chat, &sessions);
}

static int open_signalfd(void)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	/* Signals arrive as reads on the ring, never as handlers interrupting
	 * the loop. */
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &mask, SFD_CLOEXEC);
}

int server_run(const struct config *cfg)
{
	log_set_level(cfg->verbosity == 0 ? LOG_ERROR : cfg->verbosity == 1 ? LOG_INFO : LOG_DEBUG);
	if (static_site_load(&site, cfg->static_dir) < 0) {
		log_error("cannot load the chat page from %s (use --static DIR)", cfg->static_dir);
		return 1;
	}
	if (cfg->db_path) {
		store = store_open(&(struct store_config){
			.path = cfg->db_path,
			.sync = cfg->fsync_always ? STORE_SYNC_ALWAYS : STORE_SYNC_INTERVAL,
			.sync_interval_ms = 100,
		});
		if (!store) {
			log_error("cannot open the history database %s (use --db PATH or --no-persist)",
				  cfg->db_path);
			return 1;
		}
	}
	chat = chat_new(&(struct chat_config){
		.send = ws_conn_deliver,
		.send_own = ws_conn_deliver_own,
		.backlog = ws_conn_backlog,
		.catchup_bytes = catchup_bytes(cfg->max_queue),
		.close = ws_conn_kick,
		.store = store,
		.presence_list_max = 100,
		.presence_events_max = 100,
		.history_memory = cfg->history_memory,
		.history_bytes = cfg->history_bytes,
		.max_rooms = cfg->max_rooms,
		.rate = { .per_second = cfg->rate_per_second, .burst = cfg->rate_burst },
	});
	if (chat_load_history(chat) < 0) {
		log_error("cannot read history from %s", cfg->db_path);
		return 1;
	}
	sessions.ws = ws_transport_new(&(struct ws_conn_config){
		.max_message = cfg->max_message,
		.ping_interval = cfg->ping_interval,
		.idle_timeout = cfg->idle_timeout,
		.close_timeout = cfg->close_timeout,
		.chat = chat,
	});
	sessions.http = http_transport_new(&(struct http_conn_config){
		.site = &site,
		.header_timeout = cfg->header_timeout,
		.metrics = render_metrics,
		.jwt_secret = (const uint8_t *)cfg->jwt_secret,
		.jwt_secret_len = cfg->jwt_secret_len,
		.allow_origin = cfg->allow_origin,
		.allow_origin_count = cfg->allow_origin_count,
		.listen_host = cfg->host,
		.allow_host = cfg->allow_host,
		.allow_host_count = cfg->allow_host_count,
	});
	if (!sessions.ws || !sessions.http) {
		log_error("out of memory");
		return 1;
	}
	if (cfg->tls_cert && !(tls = tls_server_new(cfg->tls_cert, cfg->tls_key))) {
		log_error("cannot set up TLS with --tls-cert %s --tls-key %s", cfg->tls_cert, cfg->tls_key);
		return 1;
	}
	/* The connections (and their sessions, in the same slots) first: they
	 * are the loop's ctx, which hands every completion back to them. */
	conns = conns_new(&(struct conn_config){
		.max_connections = cfg->max_connections,
		.max_per_ip = cfg->max_per_ip,
		.max_queue = cfg->max_queue,
		.send_timeout = cfg->send_timeout,
		.flush_batch = cfg->flush_batch,
		.close_timeout = cfg->close_timeout,
		.send_zc = cfg->send_zc,
		.tls = tls,
		.refusal = http_conn_refusal,
		.refusal_len = http_conn_refusal_len,
		.user_size = sizeof(struct session),
	}, &(struct conn_handlers){
		.on_open = on_open,
		.on_data = on_data,
		.on_deadline = on_deadline,
		.on_drained = on_drained,
		.on_closing = on_closing,
	}, &sessions);
	if (!conns)
		return 1;
	unsigned sq = 4096;
	loop = loop_new(&(struct loop_config){
		.sq_entries = sq,
		.cq_entries = sq * 16,
		.buf_count = cfg->recv_buffers,
		.buf_size = cfg->recv_buffer_size,
		.tick_ms = TICK_MS,
		.send_zc = cfg->send_zc != 0,
	}, &(struct loop_handlers){
		.on_accept = conn_on_accept,
		.on_recv = conn_on_recv,
		.on_send = conn_on_send,
		.on_send_released = conn_on_send_released,
		.on_shutdown = conn_on_shutdown,
		.on_tick = on_tick,
		.on_signal = begin_shutdown,
		.before_wait = before_wait,
	}, conns);
	if (!loop)
		return 1;

	/* The first handshake pulls about 2 MB of libcrypto code into memory
	 * (SHA-1 through EVP); do it now, so it is paid once at start-up and
	 * never mistaken for memory per connection. */
	char warm[29];
	ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, warm);

	int sfd = open_signalfd();
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(errno));
		return 1;
	}
	char shown[80];
	int lfd = open_listener(cfg, shown, sizeof(shown));
	if (lfd < 0)
		return 1;

	loop_watch_signals(loop, sfd);
	if (store && loop_watch_readable(loop, store_event_fd(store), on_store_ready, NULL) < 0)
		return 1;
	conns_listen(conns, loop, lfd);
	log_info("serving %s (%zu files), up to %u connections", cfg->static_dir, site.count,
		 cfg->max_connections);
	if (store)
		log_info("history in %s (fsync %s)", cfg->db_path, cfg->fsync_always ? "every commit" : "within 100 ms");
	else
		log_info("history in memory only (--no-persist)");
	if (cfg->jwt_secret)
		log_info("sign-in required: WebSocket upgrades need an HS256 token");
	const char *s = tls ? "s" : "";
	log_info("listening on http%s://%s/ (WebSocket: ws%s://%s/ and ws%s://%s/ws)", s, shown, s, shown, s,
		 shown);

	int rc = loop_run(loop) == 0 ? 0 : 1;
	log_info("stopped");
	/* The connections go first: their last on_closing calls release the
	 * sessions' chat members, whose leave events may close others, which
	 * queues shutdowns on the ring: it must still exist. The ring's exit
	 * then cancels whatever is in flight. */
	conns_free(conns);
	loop_free(loop);
	ws_transport_free(sessions.ws);     /* after the last on_closing */
	http_transport_free(sessions.http);
	/* commits what is still queued; those messages were never broadcast,
	 * so no one took them as acknowledged */
	if (store)
		store_close(store);
	chat_free(chat);
	static_site_free(&site);
	tls_server_free(tls);
	close(sfd);
	return rc;
}
