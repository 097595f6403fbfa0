/* config.c: command-line flags, with their defaults and --help. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "redis_link.h"

#ifndef RINGCAST_VERSION
#define RINGCAST_VERSION "dev"
#endif

/* File descriptors kept back from --max-connections: listener, ring,
 * signalfd, stdio, and headroom for accept to see EMFILE late. */
#define FD_RESERVE 32

static const char usage[] =
	"Usage: ringcast [OPTION]...\n"
	"Real-time chat over WebSocket on io_uring. Serves the chat page over HTTP/1.1 and\n"
	"WebSocket (paths / and /ws) on the same port.\n"
	"\n"
	"  --host ADDR             listen address (default 127.0.0.1; 0.0.0.0 to expose)\n"
	"  --port N                TCP port (default 4000; 0 picks a free port)\n"
	"  --static DIR            directory of the chat page (default: the source tree's\n"
	"                          static/ when run from the build directory, else the\n"
	"                          installed copy)\n"
	"  --max-message BYTES     largest client message; larger is closed 1009 (default 65536)\n"
	"  --deflate-threshold BYTES  send messages of at least BYTES compressed to clients\n"
	"                          that offer permessage-deflate (default 256)\n"
	"  --no-deflate            never accept permessage-deflate\n"
	"  --max-queue BYTES       hard ceiling on bytes queued for one client; over it the\n"
	"                          client is dropped as a slow consumer (default 16777216)\n"
	"  --send-timeout SEC      a client with bytes queued that takes none of them for SEC\n"
	"                          seconds is dropped as a slow consumer (default 10)\n"
	"  --max-connections N     concurrent connections, all edges together (default:\n"
	"                          (open-file limit - 32) x threads; with --plain-fds,\n"
	"                          open-file limit - 32)\n"
	"  --max-per-ip N          connections from one client address; more get 503 (default 0:\n"
	"                          no limit)\n"
	"  --ping-interval SEC     ping a WebSocket after SEC quiet seconds (default 30)\n"
	"  --idle-timeout SEC      close a connection after SEC seconds with no traffic (default 60)\n"
	"  --header-timeout SEC    time to send a complete request head; then 408 (default 10)\n"
	"  --close-timeout SEC     wait for the client's close frame (default 5)\n"
	"  --recv-buffers N        provided receive buffers, a power of two (default 1024)\n"
	"  --recv-buffer-size B    bytes per receive buffer (default 4096)\n"
	"  --flush-batch N         connections whose sends are submitted per loop pass (default 512)\n"
	"  --send-zc BYTES         send zero-copy when one send carries at least BYTES (not\n"
	"                          TLS); 0 never (default 0: over loopback the kernel copies\n"
	"                          anyway; on a real NIC try 16384 and measure)\n"
	"  --db PATH               SQLite history database (default: ringcast.db in\n"
	"                          $STATE_DIRECTORY when set, as systemd's StateDirectory=\n"
	"                          does; else data/ringcast.db)\n"
	"  --no-persist            keep history in memory only\n"
	"  --fsync MODE            'interval' (default): on disk within 100 ms of a commit;\n"
	"                          'always': fsync every group commit before broadcasting\n"
	"  --redis URL             cluster mode: share rooms with other nodes through Redis,\n"
	"                          redis://[user:password@]host:port[/db]; history then\n"
	"                          lives in Redis, not in --db (docs/cluster.md)\n"
	"  --redis-password-file PATH  Redis password from a file (overrides the URL's)\n"
	"  --history-max N         with --redis: messages each room's stream keeps, about\n"
	"                          (default 10000)\n"
	"  --history-memory N      recent messages kept in memory per room (default 1000)\n"
	"  --history-bytes BYTES   recent history kept in memory for all rooms together;\n"
	"                          least recently used rooms give theirs up first\n"
	"                          (default 67108864)\n"
	"  --max-rooms N           rooms that may exist at once (default 10000)\n"
	"  --plain-fds             keep sockets in the process's descriptor table (default:\n"
	"                          each ring's own file table, so the process holds more\n"
	"                          connections than RLIMIT_NOFILE; ss and lsof do not list\n"
	"                          those)\n"
	"  --threads N             edges: rings on threads of their own, each serving its\n"
	"                          share of the connections (default: online CPUs, at\n"
	"                          most 64; 1: one ring)\n"
	"  --rate-limit R[:B]      messages per second per connection, burst B (default\n"
	"                          20:40); 0 turns flood control off\n"
	"  --jwt-secret SECRET     require an HS256 sign-in token (?token= or cookie\n"
	"                          ringcast_token) to open a WebSocket\n"
	"  --jwt-secret-file PATH  the same, secret read from a file (trailing newline dropped)\n"
	"  --api-key-file PATH     serve the server API (/api/publish, /api/disconnect,\n"
	"                          /api/presence) to callers with this key (at least 16 bytes)\n"
	"  --jwt-leeway S          seconds of clock skew allowed on a token's exp and nbf\n"
	"                          (default 30); a session closes (4002) at exp + S\n"
	"  --login-url URL         where the page sends people to get a token (GET /login\n"
	"                          redirects there)\n"
	"  --rejoin-grace S        a guest's place is kept S seconds after its connection\n"
	"                          goes: a reload or a reconnect within it is not announced\n"
	"                          (default 10; 0: leaves are told at once)\n"
	"  --tls-cert FILE         serve HTTPS and WSS with this PEM certificate chain\n"
	"  --tls-key FILE          ... and this private key (TLS 1.2 and later)\n"
	"  --allow-origin ORIGIN   a web origin (e.g. https://chat.example.com, or *) whose\n"
	"                          pages may open a WebSocket; repeatable. Default: only\n"
	"                          pages served by this host (Origin matches Host); clients\n"
	"                          that send no Origin (not browsers) are always allowed\n"
	"  --allow-host NAME       a Host name served besides loopback names when listening on\n"
	"                          loopback (DNS-rebinding defence); repeatable\n"
	"  --metrics-listen ADDR:PORT  serve /metrics (and /healthz, /readyz) on a listener of\n"
	"                          its own, e.g. 127.0.0.1:9100, instead of the chat port;\n"
	"                          'off': no /metrics anywhere (default: on the chat port)\n"
	"  --log-format FORMAT     'text' (default): timestamp, level, message, key=value;\n"
	"                          'json': one JSON object a line (ts, level, msg, fields)\n"
	"  --quiet                 log errors only\n"
	"  --verbose               also log each connection's open and close (with its close\n"
	"                          code), refused upgrades (and why) and HTTP errors\n"
	"  --help                  print this help and exit\n"
	"  --version               print the version and exit\n"
	"\n"
	"Stop it with Ctrl-C (SIGINT) or SIGTERM: clients get close 1001 and it exits 0.\n";

enum {
	OPT_HOST = 256, OPT_PORT, OPT_STATIC, OPT_MAX_MESSAGE, OPT_MAX_QUEUE, OPT_MAX_CONN, OPT_MAX_PER_IP,
	OPT_PING, OPT_IDLE, OPT_HEADER, OPT_CLOSE, OPT_RECV_BUFS, OPT_RECV_BUF_SIZE,
	OPT_FLUSH_BATCH, OPT_SEND_ZC, OPT_SEND_TIMEOUT, OPT_HISTORY_BYTES, OPT_ALLOW_HOST, OPT_DB, OPT_NO_PERSIST, OPT_PLAIN_FDS, OPT_FSYNC, OPT_HISTORY_MEMORY,
	OPT_REDIS, OPT_REDIS_PASSWORD_FILE, OPT_HISTORY_MAX,
	OPT_MAX_ROOMS, OPT_THREADS, OPT_RATE_LIMIT, OPT_JWT_SECRET, OPT_JWT_SECRET_FILE, OPT_ALLOW_ORIGIN,
	OPT_JWT_LEEWAY, OPT_LOGIN_URL, OPT_REJOIN_GRACE,
	OPT_TLS_CERT, OPT_TLS_KEY, OPT_QUIET, OPT_VERBOSE, OPT_HELP, OPT_VERSION,
	OPT_METRICS_LISTEN, OPT_LOG_FORMAT,
	OPT_API_KEY_FILE, OPT_DEFLATE_THRESHOLD, OPT_NO_DEFLATE,
};

static const struct option options[] = {
	{ "host", required_argument, NULL, OPT_HOST },
	{ "port", required_argument, NULL, OPT_PORT },
	{ "static", required_argument, NULL, OPT_STATIC },
	{ "max-message", required_argument, NULL, OPT_MAX_MESSAGE },
	{ "max-queue", required_argument, NULL, OPT_MAX_QUEUE },
	{ "deflate-threshold", required_argument, NULL, OPT_DEFLATE_THRESHOLD },
	{ "no-deflate", no_argument, NULL, OPT_NO_DEFLATE },
	{ "max-connections", required_argument, NULL, OPT_MAX_CONN },
	{ "max-per-ip", required_argument, NULL, OPT_MAX_PER_IP },
	{ "ping-interval", required_argument, NULL, OPT_PING },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE },
	{ "header-timeout", required_argument, NULL, OPT_HEADER },
	{ "close-timeout", required_argument, NULL, OPT_CLOSE },
	{ "recv-buffers", required_argument, NULL, OPT_RECV_BUFS },
	{ "recv-buffer-size", required_argument, NULL, OPT_RECV_BUF_SIZE },
	{ "flush-batch", required_argument, NULL, OPT_FLUSH_BATCH },
	{ "send-zc", required_argument, NULL, OPT_SEND_ZC },
	{ "send-timeout", required_argument, NULL, OPT_SEND_TIMEOUT },
	{ "history-bytes", required_argument, NULL, OPT_HISTORY_BYTES },
	{ "allow-host", required_argument, NULL, OPT_ALLOW_HOST },
	{ "db", required_argument, NULL, OPT_DB },
	{ "no-persist", no_argument, NULL, OPT_NO_PERSIST },
	{ "redis", required_argument, NULL, OPT_REDIS },
	{ "redis-password-file", required_argument, NULL, OPT_REDIS_PASSWORD_FILE },
	{ "history-max", required_argument, NULL, OPT_HISTORY_MAX },
	{ "plain-fds", no_argument, NULL, OPT_PLAIN_FDS },
	{ "fsync", required_argument, NULL, OPT_FSYNC },
	{ "history-memory", required_argument, NULL, OPT_HISTORY_MEMORY },
	{ "max-rooms", required_argument, NULL, OPT_MAX_ROOMS },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "rate-limit", required_argument, NULL, OPT_RATE_LIMIT },
	{ "jwt-secret", required_argument, NULL, OPT_JWT_SECRET },
	{ "jwt-secret-file", required_argument, NULL, OPT_JWT_SECRET_FILE },
	{ "api-key-file", required_argument, NULL, OPT_API_KEY_FILE },
	{ "jwt-leeway", required_argument, NULL, OPT_JWT_LEEWAY },
	{ "login-url", required_argument, NULL, OPT_LOGIN_URL },
	{ "rejoin-grace", required_argument, NULL, OPT_REJOIN_GRACE },
	{ "allow-origin", required_argument, NULL, OPT_ALLOW_ORIGIN },
	{ "tls-cert", required_argument, NULL, OPT_TLS_CERT },
	{ "tls-key", required_argument, NULL, OPT_TLS_KEY },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "verbose", no_argument, NULL, OPT_VERBOSE },
	{ "metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN },
	{ "log-format", required_argument, NULL, OPT_LOG_FORMAT },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static int parse_u64(const char *flag, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		fprintf(stderr, "ringcast: --%s wants a whole number from %llu to %llu, not '%s'\n",
			flag, (unsigned long long)min, (unsigned long long)max, s);
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_u32(const char *flag, const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v;
	if (parse_u64(flag, s, min, max, &v) < 0)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* The page next to the source tree when this binary runs from its build
 * directory, so `build/ringcast` works without installing. */
static const char *default_static_dir(void)
{
#if defined(RINGCAST_STATIC_SOURCE) && defined(RINGCAST_BUILD_DIR)
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			if (strcmp(exe, RINGCAST_BUILD_DIR) == 0)
				return RINGCAST_STATIC_SOURCE;
		}
	}
#endif
#ifdef RINGCAST_STATIC_INSTALLED
	return RINGCAST_STATIC_INSTALLED;
#else
	return "static";
#endif
}

/* Under systemd (StateDirectory=), the database belongs in the service's
 * state directory, not in whatever directory it was started from. systemd
 * lists one directory per StateDirectory= entry, ':'-separated; the first is
 * ours. 0 with cfg->db_path unchanged when the variable is unset or empty. */
static int default_db_in_state_dir(struct config *cfg)
{
	const char *dirs = getenv("STATE_DIRECTORY");
	size_t len;

	if (!dirs || !*dirs)
		return 0;
	len = strcspn(dirs, ":");
	if (dirs[0] != '/') {
		fprintf(stderr, "ringcast: STATE_DIRECTORY=%s is not an absolute path; "
				"pass --db PATH\n", dirs);
		return -1;
	}
	cfg->state_db_path = malloc(len + sizeof("/ringcast.db"));
	if (!cfg->state_db_path) {
		fprintf(stderr, "ringcast: out of memory\n");
		return -1;
	}
	memcpy(cfg->state_db_path, dirs, len);
	memcpy(cfg->state_db_path + len, "/ringcast.db", sizeof("/ringcast.db"));
	cfg->db_path = cfg->state_db_path;
	return 0;
}

/* One more value of a repeatable flag. */
static int append_entry(const char *flag, const char **list, size_t *count, size_t cap, const char *value)
{
	if (*count == cap) {
		fprintf(stderr, "ringcast: too many --%s entries (at most %zu)\n", flag, cap);
		return -1;
	}
	list[(*count)++] = value;
	return 0;
}

/* --metrics-listen: off, HOST:PORT or [IPv6]:PORT. */
static int parse_metrics_listen(struct config *cfg, const char *s)
{
	if (strcmp(s, "off") == 0) {
		cfg->metrics_off = true;
		cfg->metrics_host[0] = '\0';
		return 0;
	}
	cfg->metrics_off = false;
	const char *colon = strrchr(s, ':');
	const char *host = s;
	size_t host_len = colon ? (size_t)(colon - s) : 0;
	bool bracketed = host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']';
	if (bracketed) {
		host++;
		host_len -= 2;
	}
	/* an IPv6 address without brackets would be ambiguous: ::1:9100 */
	if (!colon || host_len == 0 || host_len >= sizeof(cfg->metrics_host) ||
	    (!bracketed && memchr(host, ':', host_len))) {
		fprintf(stderr, "ringcast: --metrics-listen wants ADDR:PORT ([ADDR]:PORT for IPv6) "
				"or 'off', not '%s'\n", s);
		return -1;
	}
	uint64_t port;
	if (parse_u64("metrics-listen port", colon + 1, 0, 65535, &port) < 0)
		return -1;
	memcpy(cfg->metrics_host, host, host_len);
	cfg->metrics_host[host_len] = '\0';
	cfg->metrics_port = (uint16_t)port;
	return 0;
}

/* R or R:B; a bare R gets a burst of 2R. */
static int parse_rate(const char *s, uint32_t *rate, uint32_t *burst)
{
	char copy[32];
	snprintf(copy, sizeof(copy), "%s", s);
	char *colon = strchr(copy, ':');
	if (colon)
		*colon = '\0';
	if (parse_u32("rate-limit", copy, 0, 1000000, rate) < 0)
		return -1;
	*burst = *rate * 2;
	if (colon && parse_u32("rate-limit burst", colon + 1, 1, 1000000, burst) < 0)
		return -1;
	return 0;
}

/* A secret from a file (flag names it in messages), trailing newlines
 * dropped, into *out (replacing what was there). */
static int read_secret_file(const char *flag, const char *path, char **out, size_t *out_len)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "ringcast: --%s %s: %s\n", flag, path, strerror(errno));
		return -1;
	}
	char buf[4096];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	if (n == 0) {
		fprintf(stderr, "ringcast: --%s %s is empty\n", flag, path);
		return -1;
	}
	free(*out);
	*out = malloc(n + 1);
	if (!*out)
		return -1;
	memcpy(*out, buf, n);
	(*out)[n] = '\0';
	*out_len = n;
	explicit_bzero(buf, n);
	return 0;
}

/* --redis, parsed and resolved (once, at start-up), with the password
 * from --redis-password-file in place of the URL's. */
static int read_redis_address(struct config *cfg)
{
	char err[256];
	cfg->redis = calloc(1, sizeof(*cfg->redis));
	if (!cfg->redis)
		return -1;
	if (redis_address_parse(cfg->redis_url, cfg->redis, err, sizeof(err)) < 0) {
		fprintf(stderr, "ringcast: --redis %s: %s\n", cfg->redis_url, err);
		return -1;
	}
	if (cfg->redis_password) {
		if (cfg->redis_password_len >= sizeof(cfg->redis->password)) {
			fprintf(stderr, "ringcast: --redis-password-file: the password is too long\n");
			return -1;
		}
		memcpy(cfg->redis->password, cfg->redis_password, cfg->redis_password_len + 1);
	}
	return 0;
}

static uint32_t online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > CONFIG_THREADS_MAX ? CONFIG_THREADS_MAX : (uint32_t)n;
}

static uint32_t default_max_connections(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return 100000;
	if (rl.rlim_cur <= FD_RESERVE * 2)
		return 16;
	return (uint32_t)(rl.rlim_cur - FD_RESERVE);
}

int config_parse(struct config *cfg, int argc, char **argv)
{
	*cfg = (struct config){
		.host = "127.0.0.1",
		.port = 4000,
		.static_dir = NULL,
		.max_message = 64 * 1024,
		.deflate = true,
		.deflate_threshold = 256,
		.max_queue = 16 * 1024 * 1024,
		.send_timeout = 10,
		.history_bytes = 64 * 1024 * 1024,
		.max_connections = default_max_connections(),
		.ping_interval = 30,
		.jwt_leeway = 30,
		.rejoin_grace = 10,
		.idle_timeout = 60,
		.header_timeout = 10,
		.close_timeout = 5,
		.recv_buffers = 1024,
		.recv_buffer_size = 4096,
		.flush_batch = 512,
		.verbosity = 1,
		.db_path = "data/ringcast.db",
		.history_memory = 1000,
		.history_max = 10000,
		.max_rooms = 10000,
		.threads = online_cpus(),
		.rate_per_second = 20,
		.rate_burst = 40,
	};
	uint64_t v;
	int opt, rc = 0;
	bool max_connections_given = false, db_given = false;
	optind = 1;
	while (rc == 0 && (opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
		switch (opt) {
		case OPT_HOST:
			cfg->host = optarg;
			break;
		case OPT_PORT:
			rc = parse_u64("port", optarg, 0, 65535, &v);
			cfg->port = (uint16_t)v;
			break;
		case OPT_STATIC:
			cfg->static_dir = optarg;
			break;
		case OPT_MAX_MESSAGE:
			rc = parse_u64("max-message", optarg, 1, 1ull << 30, &cfg->max_message);
			break;
		case OPT_DEFLATE_THRESHOLD:
			rc = parse_u32("deflate-threshold", optarg, 0, 1u << 30, &cfg->deflate_threshold);
			break;
		case OPT_NO_DEFLATE:
			cfg->deflate = false;
			break;
		case OPT_MAX_QUEUE:
			/* below 2 GiB: a queue's byte count is 32 bits */
			rc = parse_u64("max-queue", optarg, 1024, 1ull << 31, &cfg->max_queue);
			break;
		case OPT_MAX_CONN:
			rc = parse_u32("max-connections", optarg, 1, 10000000, &cfg->max_connections);
			max_connections_given = true;
			break;
		case OPT_MAX_PER_IP:
			rc = parse_u32("max-per-ip", optarg, 0, 10000000, &cfg->max_per_ip);
			break;
		case OPT_PING:
			rc = parse_u32("ping-interval", optarg, 1, 86400, &cfg->ping_interval);
			break;
		case OPT_IDLE:
			rc = parse_u32("idle-timeout", optarg, 1, 86400, &cfg->idle_timeout);
			break;
		case OPT_HEADER:
			rc = parse_u32("header-timeout", optarg, 1, 3600, &cfg->header_timeout);
			break;
		case OPT_CLOSE:
			rc = parse_u32("close-timeout", optarg, 1, 3600, &cfg->close_timeout);
			break;
		case OPT_RECV_BUFS:
			rc = parse_u32("recv-buffers", optarg, 8, 32768, &cfg->recv_buffers);
			if (rc == 0 && (cfg->recv_buffers & (cfg->recv_buffers - 1))) {
				fprintf(stderr, "ringcast: --recv-buffers must be a power of two\n");
				rc = -1;
			}
			break;
		case OPT_RECV_BUF_SIZE:
			rc = parse_u32("recv-buffer-size", optarg, 512, 1 << 20, &cfg->recv_buffer_size);
			break;
		case OPT_FLUSH_BATCH:
			rc = parse_u32("flush-batch", optarg, 1, 1 << 20, &cfg->flush_batch);
			break;
		case OPT_SEND_ZC:
			rc = parse_u64("send-zc", optarg, 0, 1ull << 30, &cfg->send_zc);
			break;
		case OPT_SEND_TIMEOUT:
			rc = parse_u32("send-timeout", optarg, 1, 3600, &cfg->send_timeout);
			break;
		case OPT_HISTORY_BYTES:
			rc = parse_u64("history-bytes", optarg, 0, 1ull << 40, &cfg->history_bytes);
			break;
		case OPT_ALLOW_HOST:
			rc = append_entry("allow-host", cfg->allow_host, &cfg->allow_host_count,
					  sizeof(cfg->allow_host) / sizeof(cfg->allow_host[0]), optarg);
			break;
		case OPT_DB:
			cfg->db_path = optarg;
			db_given = true;
			break;
		case OPT_REDIS:
			cfg->redis_url = optarg;
			break;
		case OPT_REDIS_PASSWORD_FILE:
			rc = read_secret_file("redis-password-file", optarg, &cfg->redis_password,
					      &cfg->redis_password_len);
			break;
		case OPT_HISTORY_MAX:
			rc = parse_u32("history-max", optarg, 1, 100000000, &cfg->history_max);
			break;
		case OPT_NO_PERSIST:
			cfg->db_path = NULL;
			break;
		case OPT_PLAIN_FDS:
			cfg->plain_fds = true;
			break;
		case OPT_FSYNC:
			if (strcmp(optarg, "always") == 0 || strcmp(optarg, "interval") == 0) {
				cfg->fsync_always = strcmp(optarg, "always") == 0;
			} else {
				fprintf(stderr, "ringcast: --fsync is 'always' or 'interval', not '%s'\n", optarg);
				rc = -1;
			}
			break;
		case OPT_HISTORY_MEMORY:
			rc = parse_u32("history-memory", optarg, 1, 1000000, &cfg->history_memory);
			break;
		case OPT_THREADS:
			rc = parse_u32("threads", optarg, 1, CONFIG_THREADS_MAX, &cfg->threads);
			break;
		case OPT_MAX_ROOMS:
			rc = parse_u32("max-rooms", optarg, 1, 10000000, &cfg->max_rooms);
			break;
		case OPT_RATE_LIMIT:
			rc = parse_rate(optarg, &cfg->rate_per_second, &cfg->rate_burst);
			break;
		case OPT_JWT_SECRET:
			free(cfg->jwt_secret);
			cfg->jwt_secret = strdup(optarg);
			cfg->jwt_secret_len = strlen(optarg);
			if (!cfg->jwt_secret_len) {
				fprintf(stderr, "ringcast: --jwt-secret is empty\n");
				rc = -1;
			}
			break;
		case OPT_JWT_SECRET_FILE:
			rc = read_secret_file("jwt-secret-file", optarg, &cfg->jwt_secret,
					      &cfg->jwt_secret_len);
			break;
		case OPT_API_KEY_FILE:
			rc = read_secret_file("api-key-file", optarg, &cfg->api_key, &cfg->api_key_len);
			break;
		case OPT_JWT_LEEWAY:
			rc = parse_u32("jwt-leeway", optarg, 0, 3600, &cfg->jwt_leeway);
			break;
		case OPT_REJOIN_GRACE:
			rc = parse_u32("rejoin-grace", optarg, 0, 3600, &cfg->rejoin_grace);
			break;
		case OPT_LOGIN_URL:
			/* it goes out in a Location header: one line, and short */
			if (!*optarg || strlen(optarg) > 900 || strpbrk(optarg, "\r\n")) {
				fprintf(stderr, "ringcast: --login-url must be one line of 1 to 900 bytes\n");
				rc = -1;
			}
			cfg->login_url = optarg;
			break;
		case OPT_TLS_CERT:
			cfg->tls_cert = optarg;
			break;
		case OPT_TLS_KEY:
			cfg->tls_key = optarg;
			break;
		case OPT_ALLOW_ORIGIN:
			rc = append_entry("allow-origin", cfg->allow_origin, &cfg->allow_origin_count,
					  sizeof(cfg->allow_origin) / sizeof(cfg->allow_origin[0]), optarg);
			break;
		case OPT_QUIET:
			cfg->verbosity = 0;
			break;
		case OPT_VERBOSE:
			cfg->verbosity = 2;
			break;
		case OPT_METRICS_LISTEN:
			rc = parse_metrics_listen(cfg, optarg);
			break;
		case OPT_LOG_FORMAT:
			if (strcmp(optarg, "text") == 0 || strcmp(optarg, "json") == 0) {
				cfg->log_json = strcmp(optarg, "json") == 0;
			} else {
				fprintf(stderr, "ringcast: --log-format is 'text' or 'json', not '%s'\n", optarg);
				rc = -1;
			}
			break;
		case OPT_HELP:
			fputs(usage, stdout);
			return 1;
		case OPT_VERSION:
			printf("ringcast %s\n", RINGCAST_VERSION);
			return 1;
		default:
			fputs("Try 'ringcast --help'.\n", stderr);
			return -1;
		}
	}
	if (rc)
		return -1;
	if (optind < argc) {
		fprintf(stderr, "ringcast: unexpected argument '%s'\nTry 'ringcast --help'.\n", argv[optind]);
		return -1;
	}
	if (cfg->idle_timeout <= cfg->ping_interval) {
		/* A ping must have a chance to be answered before the close. */
		if (cfg->ping_interval > 1)
			cfg->ping_interval = cfg->idle_timeout / 2 ? cfg->idle_timeout / 2 : 1;
	}
	if (!cfg->tls_cert != !cfg->tls_key) {
		fprintf(stderr, "ringcast: --tls-cert and --tls-key go together\n");
		return -1;
	}
	/* RFC 7518 §3.2: an HS256 key is at least as long as the hash. */
	if (cfg->jwt_secret && cfg->jwt_secret_len < 32) {
		fprintf(stderr, "ringcast: the JWT secret must be at least 32 bytes (it is %zu)\n",
			cfg->jwt_secret_len);
		return -1;
	}
	/* a key a backend holds; short ones are guessed */
	if (cfg->api_key && cfg->api_key_len < 16) {
		fprintf(stderr, "ringcast: the API key must be at least 16 bytes (it is %zu)\n",
			cfg->api_key_len);
		return -1;
	}
	if (cfg->redis_url) {
		if (read_redis_address(cfg) < 0)
			return -1;
		if (db_given && cfg->db_path) {
			fprintf(stderr, "ringcast: --db and --redis do not go together: with --redis, "
					"history lives in Redis\n");
			return -1;
		}
		cfg->db_path = NULL;
	} else if (cfg->redis_password) {
		fprintf(stderr, "ringcast: --redis-password-file needs --redis\n");
		return -1;
	}
	if (!cfg->static_dir)
		cfg->static_dir = default_static_dir();
	if (cfg->db_path && !db_given && default_db_in_state_dir(cfg) < 0)
		return -1;
	/* Each edge's ring has a file table of its own, as large as the
	 * descriptor limit: by default the process takes as many connections
	 * as its edges can hold. */
	if (!max_connections_given && !cfg->plain_fds && cfg->max_connections < 100000)
		cfg->max_connections *= cfg->threads;
	return 0;
}

void config_free(struct config *cfg)
{
	if (cfg->jwt_secret)
		explicit_bzero(cfg->jwt_secret, cfg->jwt_secret_len); /* a secret outlives free() in the heap */
	free(cfg->jwt_secret);
	cfg->jwt_secret = NULL;
	cfg->jwt_secret_len = 0;
	if (cfg->api_key)
		explicit_bzero(cfg->api_key, cfg->api_key_len);
	free(cfg->api_key);
	cfg->api_key = NULL;
	cfg->api_key_len = 0;
	if (cfg->redis_password)
		explicit_bzero(cfg->redis_password, cfg->redis_password_len);
	free(cfg->redis_password);
	cfg->redis_password = NULL;
	if (cfg->redis)
		explicit_bzero(cfg->redis, sizeof(*cfg->redis)); /* its password */
	free(cfg->redis);
	cfg->redis = NULL;
	free(cfg->state_db_path);
	cfg->state_db_path = NULL;
}
