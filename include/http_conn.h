/* http_conn.h: a connection before any upgrade: request heads in, static
 * files, /metrics, the /healthz and /readyz probes and error responses
 * out, and the WebSocket upgrade. */
#ifndef RINGCAST_HTTP_CONN_H
#define RINGCAST_HTTP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct chat;
struct conn;
struct http_request;
struct readiness;
struct static_site;
struct sse_post;

struct http_conn_config {
	/* The chat page; NULL for a listener of /metrics and the probes
	 * only (--metrics-listen): no page, no WebSocket, 404 otherwise. */
	const struct static_site *site;
	uint32_t header_timeout;
	/* Renders /metrics into a new buf, or NULL when not offered. */
	struct buf *(*metrics)(void *ctx);
	void *metrics_ctx;
	/* /readyz asks it (any thread may change it); NULL: always ready. */
	const struct readiness *readiness;
	/* Sign-in: an HS256 secret, or NULL when anyone may connect. */
	const uint8_t *jwt_secret;
	size_t jwt_secret_len;
	int64_t jwt_leeway;         /* seconds of clock skew allowed on exp and nbf */
	/* GET /login sends people here to get a token (NULL: 404). */
	const char *login_url;
	/* Guests presenting a token signed with it (?guest=) come back as
	 * who they were (NULL: every guest is new). */
	const struct guest_key *guest_key;
	const char *const *allow_origin;
	size_t allow_origin_count;
	/* The --host the listener binds: on a loopback address only loopback
	 * Host names and allow_host are served (DNS-rebinding defence);
	 * NULL serves any Host. */
	const char *listen_host;
	const char *const *allow_host;
	size_t allow_host_count;
	/* The server API (src/proto/api.c): its key, or NULL when /api is
	 * not served (404); the chat it works on; --max-message. */
	const char *api_key;
	size_t api_key_len;
	struct chat *chat;
	uint64_t max_message;
	/* The SSE fallback (GET /sse, POST /send; NULL: 404): hands a POST
	 * to the edge holding its stream (p->key.edge), which runs it
	 * (sse_post_run) and has it finished back on this one
	 * (sse_post_finish), now or later. */
	void (*sse_route)(void *ctx, struct sse_post *p);
	void *sse_ctx;
};

struct http_conn_stats {
	uint64_t requests;
	uint64_t errors;       /* 4xx/5xx answered */
	uint64_t upgrades;
	uint64_t auth_refused;  /* upgrades refused: closed at once with 4001-4003 */
	uint64_t origin_refused; /* upgrades refused with 403 */
	uint64_t host_refused;   /* requests refused with 421 (a foreign Host on loopback) */
};

/* The whole answer to a connection turned away before it is read (over
 * --max-connections or --max-per-ip, conn_config.refusal): 503, come back
 * in 5 s. */
extern const char http_conn_refusal[];
extern const size_t http_conn_refusal_len;

/* The HTTP side of one ring (its settings and counters), found by each
 * connection through its ring's sessions (session.h). */
struct http_transport;

struct http_transport *http_transport_new(const struct http_conn_config *cfg);
void http_transport_free(struct http_transport *t);
const struct http_conn_stats *http_transport_stats(const struct http_transport *t);
void http_conn_open(struct conn *c);
void http_conn_data(struct conn *c, uint8_t *data, size_t len);
void http_conn_deadline(struct conn *c);
/* The answers sent so far have gone out: read on in pipelined requests. */
void http_conn_drained(struct conn *c);
/* The connection closes while still HTTP (--verbose logs it; an API
 * answer may still be on its way). */
void http_conn_closing(struct conn *c);

/* For the API (api.c): the ring's HTTP settings, and one response with
 * body; a keep_alive of false closes after it. */
const struct http_conn_config *http_conn_config_of(const struct conn *c);

/* The WebSocket upgrade's Origin rule (origin.h) for a request: what a
 * GET /sse and a POST /send are held to as well. */
bool http_conn_origin_ok(const struct http_conn_config *cfg, const struct http_request *req);
void http_conn_respond(struct conn *c, int status, bool keep_alive, const char *content_type,
		       const char *extra, const char *body, size_t len);


#endif
