/* server.c: the process: what its edges share (the chat page, TLS, the
 * history store, the sequencer), a listener per edge, the signals, and
 * the edges' threads from start to teardown. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chat.h"
#include "cluster.h"
#include "conn_limits.h"
#include "edge.h"
#include "guest_token.h"
#include "log.h"
#include "metrics_listener.h"
#include "readiness.h"
#include "redis_link.h"
#include "reload.h"
#include "room_quota.h"
#include "sequencer.h"
#include "static_files.h"
#include "store.h"
#include "tls.h"
#include "ws.h"

/* ---- set-up -------------------------------------------------------------- */

/* Is host:port free? A listener group with SO_REUSEPORT would otherwise
 * share a port that another server (of the same user) already has. */
static bool port_free(const struct addrinfo *res)
{
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	bool ok = fd >= 0 && bind(fd, res->ai_addr, res->ai_addrlen) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* A listener on host and port, one of a group sharing it with
 * SO_REUSEPORT when group: the kernel spreads new connections over the
 * group by a hash of their addresses, so each edge accepts its own share
 * (perf/README.md, accept_spread: better balanced and cheaper than one
 * acceptor handing sockets over). The group's first (first) checks that
 * the port is free. */
static int open_listener(const char *host, uint16_t port_number, bool group, bool first, char *shown,
			 size_t shown_len)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res;
	char port[8];
	snprintf(port, sizeof(port), "%u", port_number);
	int err = getaddrinfo(host, port, &hints, &res);
	if (err) {
		log_error("listen on %s: %s", host, gai_strerror(err));
		return -1;
	}
	if (group && first && port_number && !port_free(res)) {
		log_error("listen on %s port %u: %s", host, port_number, strerror(EADDRINUSE));
		freeaddrinfo(res);
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
	if (group)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	/* Accepted sockets inherit TCP_NODELAY: a chat frame goes out at once
	 * instead of waiting for the previous one's ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
		log_error("listen on %s port %u: %s", host, port_number, strerror(errno));
		close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);

	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	char bound_host[INET6_ADDRSTRLEN];
	unsigned bound_port;
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, bound_host, sizeof(bound_host));
		bound_port = ntohs(a->sin6_port);
		snprintf(shown, shown_len, "[%s]:%u", bound_host, bound_port);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, bound_host, sizeof(bound_host));
		bound_port = ntohs(a->sin_port);
		snprintf(shown, shown_len, "%s:%u", bound_host, bound_port);
	}
	return fd;
}

static int open_signalfd(void)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP); /* reload (reload.c), not the default exit */
	/* Signals arrive as reads on the ring, never as handlers interrupting
	 * the loop. */
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &mask, SFD_CLOEXEC);
}

static uint16_t port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	return ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
					: ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* One pass over the stored rooms (names, last ids, guest ids) feeds the
 * sequencer and every edge's chat. */
static void load_room_everywhere(void *arg, const struct store_room *room)
{
	struct edges *all = arg;
	if (all->sequencer)
		sequencer_load_room(all->sequencer, room);
	for (unsigned i = 0; i < all->count; i++)
		chat_load_room(all->edge[i].chat, room);
}

/* From the cluster's thread: /readyz follows Redis (readiness logs it). */
static void cluster_ready_changed(void *arg, bool ready, const char *why)
{
	struct edges *all = arg;
	readiness_set(&all->readiness, READY_CLUSTER, ready, why);
}

/* The store's writer thread after each group commit: the node is not
 * ready while commits fail, and is again at the first that succeeds. */
static void store_committed(void *ctx, int err)
{
	struct readiness *r = ctx;
	const char *why = err == -ENOSPC ? "history store failing: disk full"
			  : err == -EROFS ? "history store failing: read-only"
					  : "history store failing";
	readiness_set(r, READY_STORE, err == 0, why);
}

/* Everything the edges share, then the edges themselves; -1 (logged). */
static int open_shared(struct edges *all, const struct config *cfg)
{
	if (reload_init(&all->reload, cfg->static_dir) < 0) {
		log_error("cannot load the chat page from %s (use --static DIR)", cfg->static_dir);
		return -1;
	}
	/* An empty directory is a mistake (a wrong --static, an install that
	 * lost its files), not a server that should answer 404 to everything. */
	if (all->reload.latest.count == 0) {
		log_error("no files to serve in %s: the chat page is missing (use --static DIR)",
			  cfg->static_dir);
		return -1;
	}
	if (cfg->db_path) {
		all->store = store_open(&(struct store_config){
			.path = cfg->db_path,
			.sync = cfg->fsync_always ? STORE_SYNC_ALWAYS : STORE_SYNC_INTERVAL,
			.sync_interval_ms = 100,
			.committed = store_committed,
			.committed_ctx = &all->readiness,
		});
		if (!all->store) {
			log_error("cannot open the history database %s (use --db PATH or --no-persist)",
				  cfg->db_path);
			return -1;
		}
	}
	all->redis = cfg->redis;
	/* A cluster node orders its rooms through Redis even with one edge */
	if (all->count > 1 || all->redis) {
		all->sequencer = sequencer_new(&(struct sequencer_config){
			.edges = all->count, .store = all->store, .external = all->redis != NULL,
			.presence_list_max = 100, .presence_events_max = 100 });
		if (!all->sequencer)
			return -1;
		all->rooms = room_quota_new(cfg->max_rooms);
	}
	if (all->redis) {
		all->cluster = cluster_new(&(struct cluster_config){
			.redis = all->redis, .sequencer = all->sequencer, .history_max = cfg->history_max,
			.presence_list_max = 100, .presence_events_max = 100,
			.on_ready = cluster_ready_changed, .arg = all });
		if (!all->cluster)
			return -1;
	}
	if (!(all->limits = conn_limits_new(cfg->max_connections, cfg->max_per_ip)))
		return -1;
	if (cfg->tls_cert && !(all->tls = tls_server_new(cfg->tls_cert, cfg->tls_key))) {
		log_error("cannot set up TLS with --tls-cert %s --tls-key %s", cfg->tls_cert, cfg->tls_key);
		return -1;
	}
	all->reload.tls = all->tls;
	all->reload.tls_cert = cfg->tls_cert;
	all->reload.tls_key = cfg->tls_key;
	all->edge = calloc(all->count, sizeof(*all->edge));
	if (!all->edge) {
		log_error("out of memory");
		return -1;
	}
	for (unsigned i = 0; i < all->count; i++) {
		all->edge[i].stop_fd = -1;
		all->edge[i].listen_fd = -1;
		all->edge[i].posts.fd = -1; /* post_box_destroy: nothing to free */
	}
	for (unsigned i = 0; i < all->count; i++)
		if (edge_prepare(all, i) < 0)
			return -1;
	/* the window: a join's history (history_on_join), whose guest
	 * senders new guest ids go past (chat.c) */
	if (all->store && store_load_rooms(all->store, 50, load_room_everywhere, all) < 0) {
		log_error("cannot read history from %s", cfg->db_path);
		return -1;
	}
	return 0;
}

static void log_start(const struct edges *all, const char *shown)
{
	const struct config *cfg = all->cfg;
	log_info("serving %s (%zu files), up to %u connections", cfg->static_dir, all->reload.latest.count,
		 cfg->max_connections);
	if (all->count > 1)
		log_info("%u edges (--threads): a ring and a listener each (SO_REUSEPORT), "
			 "rooms ordered by one sequencer", all->count);
	else
		log_info("1 edge (--threads 1): one ring");
	if (all->redis)
		log_info("cluster node: rooms and history in Redis at %s:%u (--redis)", all->redis->host,
			 all->redis->port);
	else if (all->store)
		log_info("history in %s (fsync %s)", cfg->db_path, cfg->fsync_always ? "every commit" : "within 100 ms");
	else
		log_info("history in memory only (--no-persist)");
	if (cfg->jwt_secret)
		log_info("sign-in required: WebSocket upgrades need an HS256 token");
	const char *s = all->tls ? "s" : "";
	log_info("listening on http%s://%s/ (WebSocket: ws%s://%s/ and ws%s://%s/ws)", s, shown, s, shown, s,
		 shown);
}

/* --metrics-listen: a listener of its own (logged), or none. -1 (logged)
 * when it cannot listen; 0 with *out NULL when there is none. */
static int open_metrics(struct edges *all, struct metrics_listener **out)
{
	const struct config *cfg = all->cfg;
	*out = NULL;
	if (cfg->metrics_off) {
		log_info("/metrics off (--metrics-listen off)");
		return 0;
	}
	if (!cfg->metrics_host[0])
		return 0;
	char shown[80];
	int fd = open_listener(cfg->metrics_host, cfg->metrics_port, false, false, shown, sizeof(shown));
	if (fd < 0) {
		log_error("cannot serve --metrics-listen %s:%u", cfg->metrics_host, cfg->metrics_port);
		return -1;
	}
	if (!(*out = metrics_listener_new(all, fd)))
		return -1;
	/* not "listening on": that names the chat port */
	char url[100];
	snprintf(url, sizeof(url), "http://%s/metrics", shown);
	log_kv(LOG_INFO, "metrics served apart (--metrics-listen): /metrics, /healthz and /readyz only",
	       LOG_STR("url", url));
	return 0;
}

static void close_shared(struct edges *all)
{
	/* the edges' chats may have work queued with the sequencer, and
	 * the cluster's thread publishes to it */
	cluster_free(all->cluster);
	sequencer_free(all->sequencer);
	/* commits what is still queued; those messages were never broadcast,
	 * so no one took them as acknowledged */
	if (all->store)
		store_close(all->store);
	if (all->edge)
		for (unsigned i = 0; i < all->count; i++)
			edge_free(&all->edge[i]);
	free(all->edge);
	conn_limits_free(all->limits);
	room_quota_free(all->rooms);
	reload_free(&all->reload);
	tls_server_free(all->tls);
}

int server_run(const struct config *cfg)
{
	log_set_level(cfg->verbosity == 0 ? LOG_ERROR : cfg->verbosity == 1 ? LOG_INFO : LOG_DEBUG);
	log_set_format(cfg->log_json ? LOG_JSON : LOG_TEXT);
	struct edges all = { .cfg = cfg, .count = cfg->threads ? cfg->threads : 1 };
	readiness_init(&all.readiness);
	if (cfg->redis_url)
		readiness_start_not_ready(&all.readiness, READY_CLUSTER, "joining the cluster");
	int rc = 1;
	int sfd = -1;
	struct metrics_listener *metrics = NULL;
	unsigned started = 0;
	/* Guests come back as who they were (guest_token.h): not where
	 * everyone signs in, nor across nodes, which do not share the key. */
	struct guest_key guest_key;
	if (!cfg->jwt_secret && !cfg->redis_url) {
		if (guest_key_init(&guest_key) < 0) {
			log_error("getrandom: %s", strerror(errno));
			goto out;
		}
		all.guest_key = &guest_key;
	}
	if (open_shared(&all, cfg) < 0)
		goto out;

	/* The first handshake pulls about 2 MB of libcrypto code into memory
	 * (SHA-1 through EVP); do it now, so it is paid once at start-up and
	 * never mistaken for memory per connection. */
	char warm[29];
	ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, warm);

	/* Blocked before any edge thread starts, so every thread inherits it. */
	sfd = open_signalfd();
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(errno));
		goto out;
	}
	all.edge[0].signal_fd = sfd;
	char shown[80];
	bool group = all.count > 1;
	uint16_t port = cfg->port;
	for (unsigned i = 0; i < all.count; i++) {
		all.edge[i].listen_fd = open_listener(cfg->host, port, group, i == 0, shown, sizeof(shown));
		if (all.edge[i].listen_fd < 0)
			goto out;
		port = port_of(all.edge[i].listen_fd); /* the others share the first's port */
	}
	if (open_metrics(&all, &metrics) < 0)
		goto out;
	log_start(&all, shown);
	for (started = 1; started < all.count; started++)
		if (edge_start(&all.edge[started]) < 0)
			break;
	bool all_up = started == all.count && (!metrics || metrics_listener_start(metrics) == 0);
	if (all_up) {
		edge_run(&all.edge[0]);
	} else {
		for (unsigned i = 1; i < started; i++)
			edge_stop(&all.edge[i]);
		all.edge[0].rc = 1;
	}
	rc = all.edge[0].rc;
	for (unsigned i = 1; i < started; i++) {
		pthread_join(all.edge[i].thread, NULL);
		rc |= all.edge[i].rc;
	}
	log_info("stopped");
out:
	metrics_listener_free(metrics); /* it reads the edges' samples */
	close_shared(&all);
	if (sfd >= 0)
		close(sfd);
	return rc;
}
