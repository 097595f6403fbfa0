/* config.h: the server's settings, from the command line. */
#ifndef RINGCAST_CONFIG_H
#define RINGCAST_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct redis_address;

#define CONFIG_THREADS_MAX 64

struct config {
	const char *host;
	uint16_t port;
	const char *static_dir;
	uint64_t max_message;      /* bytes of one client message, over it → 1009 */
	bool deflate;              /* accept permessage-deflate (not --no-deflate) */
	uint32_t deflate_threshold; /* payloads of at least this many bytes go compressed */
	uint64_t max_queue;        /* hard ceiling on bytes queued for one client → slow consumer */
	uint32_t send_timeout;     /* seconds a client may take none of its queued bytes → slow consumer */
	uint32_t max_connections;
	uint32_t max_per_ip;         /* connections from one address; 0: no limit */
	uint32_t ping_interval;    /* seconds without traffic before a ping */
	uint32_t idle_timeout;     /* seconds without traffic before a close */
	uint32_t header_timeout;   /* seconds to send a request head */
	uint32_t close_timeout;    /* seconds to wait for the client's close */
	uint32_t recv_buffers;     /* provided receive buffers (power of two) */
	uint32_t recv_buffer_size;
	uint32_t flush_batch;      /* connections flushed per loop iteration */
	uint64_t send_zc;          /* sends of at least this many bytes go zero-copy; 0 = never */
	int verbosity;             /* 0 quiet, 1 normal, 2 verbose */
	bool log_json;             /* --log-format json: one JSON object a line */
	/* --metrics-listen: /metrics on a listener of its own at
	 * metrics_host:metrics_port (empty host: on the chat port), or
	 * nowhere (metrics_off) */
	char metrics_host[256];
	uint16_t metrics_port;
	bool metrics_off;
	const char *db_path;       /* SQLite history; NULL with --no-persist */
	char *state_db_path;       /* db_path's storage when it defaults to $STATE_DIRECTORY's */
	bool fsync_always;         /* fsync each group commit before broadcasting */
	const char *redis_url;     /* cluster mode (--redis); NULL: one node */
	struct redis_address *redis; /* ... parsed and resolved */
	char *redis_password;      /* --redis-password-file's, overriding the URL's */
	size_t redis_password_len;
	uint32_t history_max;      /* cluster: messages a room's stream keeps */
	uint32_t history_memory;   /* recent messages kept in memory per room */
	uint64_t history_bytes;    /* recent history kept in memory, all rooms together */
	uint32_t max_rooms;
	uint32_t threads;          /* edges: a ring and its connections per thread */
	bool plain_fds;            /* sockets in the process's descriptor table, not the rings' */
	uint32_t rate_per_second;  /* flood limit; 0 = off */
	uint32_t rate_burst;
	char *jwt_secret;          /* sign-in: HS256 secret; NULL = open to all */
	size_t jwt_secret_len;
	char *api_key;             /* --api-key-file: the server API's key; NULL = no API */
	size_t api_key_len;
	uint32_t jwt_leeway;       /* seconds of clock skew on exp/nbf; sessions end at exp + it */
	const char *login_url;     /* GET /login redirects here; NULL: 404 */
	uint32_t rejoin_grace;     /* seconds a resumable guest's place is kept (0: none) */
	const char *tls_cert;      /* PEM certificate chain: serve HTTPS/WSS */
	const char *tls_key;
	const char *allow_origin[32]; /* --allow-origin entries */
	size_t allow_origin_count;
	const char *allow_host[32];   /* --allow-host entries */
	size_t allow_host_count;
};

/* Fill cfg from argv. Returns 0 to run, 1 when --help/--version was
 * answered, -1 on a bad flag (message printed). */
int config_parse(struct config *cfg, int argc, char **argv);

/* Free what config_parse allocated (the JWT secret, wiped first), whatever
 * config_parse returned. */
void config_free(struct config *cfg);

#endif
