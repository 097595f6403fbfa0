/* http_conn.c: the HTTP/1.1 side of a connection.
 *
 * Requests are answered in order, pipelined ones included, by queueing
 * buffers on the connection: a static file's responses (plain, gzip, 304)
 * are rendered once at load and handed out by reference. A request head that is not complete
 * within --header-timeout of its first byte gets 408. */
#include "http_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api.h"
#include "buf.h"
#include "chat.h"
#include "conn.h"
#include "guest_token.h"
#include "http.h"
#include "http_cache.h"
#include "jwt.h"
#include "log.h"
#include "origin.h"
#include "readiness.h"
#include "session.h"
#include "sse_conn.h"
#include "sse_post.h"
#include "static_files.h"
#include "ws_conn.h"
#include "ws_deflate.h"
#include "ws_upgrade.h"

#define DEFAULT_ROOM "lobby"
/* No request here has a use for a body; a small one is read and dropped to
 * keep the connection, a large one is refused rather than read. */
#define MAX_DISCARDED_BODY (64 * 1024)
/* Pipelined requests are answered while less than this waits to be sent;
 * beyond it the rest wait, unread, until the client has taken its answers.
 * A client that keeps sending requests without reading answers is cut off
 * once this much input piles up. */
#define PIPELINE_OUTPUT_MAX (256 * 1024)
#define PIPELINE_INPUT_MAX (64 * 1024)

const char http_conn_refusal[] = "HTTP/1.1 503 Service Unavailable\r\n"
				 "Content-Length: 0\r\nConnection: close\r\n"
				 "Retry-After: 5\r\n\r\n";
const size_t http_conn_refusal_len = sizeof(http_conn_refusal) - 1;

/* The HTTP side of one ring: its settings and counters. Every connection
 * finds it through its ring's sessions (session.h). */
struct http_transport {
	struct http_conn_config config;
	struct http_conn_stats stats;
	bool host_check; /* listening on loopback: Host names are checked */
	/* The request being answered, for --verbose's lines: set while one
	 * request is handled (a ring handles one at a time), cleared after. */
	struct {
		const char *path;   /* decoded; NULL before it is known */
		const char *why;    /* why it is refused, when that says more than the status */
		const char *detail; /* ... and more still (a token's fault) */
		bool upgrade;       /* it asked for a WebSocket */
	} req;
	uint64_t api_body_max; /* the API's request bodies are read; 0: no API */
	uint64_t input_max;    /* input kept for pipelined requests, bodies read included */
};

static struct http_transport *transport_of(const struct conn *c)
{
	return sessions_of(c)->http;
}

struct http_transport *http_transport_new(const struct http_conn_config *cfg)
{
	struct http_transport *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->config = *cfg;
	t->config.header_timeout *= CONN_TICKS_PER_SEC; /* seconds to clock ticks */
	t->host_check = cfg->listen_host && origin_listen_is_loopback(cfg->listen_host);
	t->api_body_max = cfg->api_key ? api_body_max(cfg->max_message) : 0;
	uint64_t send_max = cfg->sse_route ? cfg->max_message : 0;
	t->input_max = PIPELINE_INPUT_MAX + (t->api_body_max > send_max ? t->api_body_max : send_max);
	if (t->host_check)
		log_debug("loopback listener: serving Host localhost, 127.x.x.x, [::1] and %zu --allow-host",
			  cfg->allow_host_count);
	return t;
}

void http_transport_free(struct http_transport *t)
{
	free(t);
}

const struct http_conn_stats *http_transport_stats(const struct http_transport *t)
{
	return &t->stats;
}

void http_conn_open(struct conn *c)
{
	conn_set_deadline(c, conn_now(c) + transport_of(c)->config.header_timeout);
}

/* --verbose: an error answer, or a refused upgrade, and why. */
static void log_error_answer(struct conn *c, int status)
{
	if (!log_enabled(LOG_DEBUG))
		return;
	struct http_transport *t = transport_of(c);
	char id[CONN_LOG_ID_LEN];
	conn_log_id(c, id, sizeof(id));
	log_kv(LOG_DEBUG, t->req.upgrade ? "upgrade refused" : "http error", LOG_STR("conn", id),
	       LOG_NUM("status", status), LOG_STR("path", t->req.path), LOG_STR("why", t->req.why),
	       LOG_STR("detail", t->req.detail));
}

static void queue(struct conn *c, struct buf *b)
{
	if (!conn_send(c, b))
		conn_abort(c); /* a client pipelining faster than it reads */
	buf_unref(b);
}

/* A plain-text response; errors that leave the stream in doubt close. */
static void respond_plain(struct conn *c, int status, bool keep_alive, const char *extra, const char *body,
			  size_t blen, bool head_only)
{
	char head[1024];
	size_t hlen = http_format_head(head, sizeof(head), status, "text/plain; charset=utf-8",
				       (uint64_t)blen, keep_alive, extra);
	size_t total = hlen + (head_only ? 0 : blen);
	struct buf *b = buf_new(total);
	memcpy(b->data, head, hlen);
	if (!head_only)
		memcpy(b->data + hlen, body, blen);
	if (status >= 400) {
		transport_of(c)->stats.errors++;
		log_error_answer(c, status);
	}
	queue(c, b);
	if (!keep_alive)
		conn_close(c);
}

/* The status line again as the body. */
static void respond_text(struct conn *c, int status, bool keep_alive, const char *extra, bool head_only)
{
	char body[96];
	int blen = snprintf(body, sizeof(body), "%d %s\n", status, http_reason(status));
	respond_plain(c, status, keep_alive, extra, body, (size_t)blen, head_only);
}

static void respond_error(struct conn *c, int status)
{
	respond_text(c, status, false, NULL, false);
}

const struct http_conn_config *http_conn_config_of(const struct conn *c)
{
	return &transport_of(c)->config;
}

void http_conn_respond(struct conn *c, int status, bool keep_alive, const char *content_type,
		       const char *extra, const char *body, size_t len)
{
	char head[1024];
	size_t hlen = http_format_head(head, sizeof(head), status, content_type, (uint64_t)len, keep_alive,
				       extra);
	struct buf *b = buf_new(hlen + len);
	memcpy(b->data, head, hlen);
	memcpy(b->data + hlen, body, len);
	if (status >= 400)
		transport_of(c)->stats.errors++;
	queue(c, b);
	if (!keep_alive)
		conn_close(c);
}

/* Is name present as a query parameter at all (valid or not)? */
static bool has_param(const char *query, size_t len, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; query && i + n <= len; i++) {
		if ((i == 0 || query[i - 1] == '&') && memcmp(query + i, name, n) == 0 &&
		    (i + n == len || query[i + n] == '=' || query[i + n] == '&'))
			return true;
	}
	return false;
}

/* ?since=N: 1 when given (and valid), 0 when absent, -1 when malformed. */
static int since_param(const char *query, size_t query_len, uint64_t *since)
{
	char text[24];
	int n = http_query_param(query, query_len, "since", text, sizeof(text));
	if (n < 0)
		return has_param(query, query_len, "since") ? -1 : 0;
	if (n == 0 || text[0] < '0' || text[0] > '9')
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || *end)
		return -1;
	*since = v;
	return 1;
}

/* The value of cookie `name` in the request's Cookie headers, or NULL. */
static const char *find_cookie(const struct http_request *req, const char *name, size_t *len)
{
	size_t n = strlen(name);
	for (size_t h = 0; h < req->num_headers; h++) {
		const struct http_header *hd = &req->headers[h];
		if (hd->name_len != 6 || strncasecmp(hd->name, "cookie", 6) != 0)
			continue;
		const char *p = hd->value, *end = hd->value + hd->value_len;
		while (p < end) {
			while (p < end && (*p == ' ' || *p == ';'))
				p++;
			const char *item_end = memchr(p, ';', (size_t)(end - p));
			if (!item_end)
				item_end = end;
			if ((size_t)(item_end - p) > n && memcmp(p, name, n) == 0 && p[n] == '=') {
				*len = (size_t)(item_end - p) - n - 1;
				return p + n + 1;
			}
			p = item_end;
		}
	}
	return NULL;
}

/* Sign-in: the token comes in ?token= or the ringcast_token cookie.
 * -1: there is none; else its jwt_status. */
static int check_token(const struct http_conn_config *config, const struct http_request *req,
		       const char *query, size_t query_len, struct jwt_claims *claims)
{
	char token[8192]; /* a request head is at most 8 KiB */
	int n = http_query_param(query, query_len, "token", token, sizeof(token));
	const char *t = token;
	size_t len = n > 0 ? (size_t)n : 0;
	if (n <= 0)
		t = find_cookie(req, "ringcast_token", &len);
	if (!t || !len)
		return -1;
	return (int)jwt_verify_hs256(t, len, config->jwt_secret, config->jwt_secret_len, (int64_t)time(NULL),
				     config->jwt_leeway, claims);
}

/* A refused sign-in's close code and reason (docs/protocol.md): a
 * WebSocket closes at once with them, a stream sends them as its one
 * event; a page cannot read a 401 on an upgrade, only that it failed,
 * and would retry for ever. */
static uint16_t sign_in_refusal(int st, char *reason, size_t cap)
{
	if (st < 0) {
		snprintf(reason, cap, "token missing");
		return WS_CLOSE_TOKEN_MISSING;
	}
	if (st == JWT_EXPIRED) {
		snprintf(reason, cap, "token expired");
		return WS_CLOSE_TOKEN_EXPIRED;
	}
	snprintf(reason, cap, "token invalid: %s", jwt_status_text((enum jwt_status)st));
	return WS_CLOSE_TOKEN_INVALID;
}

/* ?guest=: a guest token of this process brings back its id and name; any
 * other is ignored (the guest gets a new identity), never trusted. */
static bool check_guest(const struct http_conn_config *config, const char *query, size_t query_len,
			uint32_t *id, char name[JWT_NAME_MAX + 1])
{
	char token[2048];
	int n = http_query_param(query, query_len, "guest", token, sizeof(token));
	if (!config->guest_key || n <= 0)
		return false;
	if (guest_token_check(config->guest_key, token, (size_t)n, id, name))
		return true;
	log_debug("guest token refused: a new identity instead");
	return false;
}

/* What a WebSocket upgrade and an SSE stream both ask for: a first room,
 * perhaps a place to resume from, and who the client is. */
struct join {
	char room[CHAT_ROOM_MAX + 1];
	int room_len;
	int since_given;
	uint64_t since;
	int st;                        /* JWT_OK, else why the sign-in is refused (-1: no token) */
	int64_t expires;
	struct chat_identity who;
	struct jwt_claims claims;      /* who's strings point here ... */
	char guest_name[JWT_NAME_MAX + 1]; /* ... or here */
};

bool http_conn_origin_ok(const struct http_conn_config *cfg, const struct http_request *req)
{
	const struct http_header *origin = http_find_header(req, "origin");
	const struct http_header *host = http_find_header(req, "host");
	return origin_allowed(origin ? origin->value : NULL, origin ? origin->value_len : 0,
			      host ? host->value : NULL, host ? host->value_len : 0, cfg->allow_origin,
			      cfg->allow_origin_count);
}

/* Read the join from the request, with the same Origin rule for both:
 * 0, or the status it is refused with (t->req.why says why). */
static int read_join(struct http_transport *t, const struct http_request *req, const char *query,
		     size_t query_len, struct join *j)
{
	if (!http_conn_origin_ok(&t->config, req)) {
		t->stats.origin_refused++;
		t->req.why = "origin";
		return 403;
	}
	j->room_len = http_query_param(query, query_len, "room", j->room, sizeof(j->room));
	if (j->room_len < 0 && !has_param(query, query_len, "room")) {
		strcpy(j->room, DEFAULT_ROOM);
		j->room_len = (int)strlen(DEFAULT_ROOM);
	}
	/* A ?room= or ?since= that is present but not valid is refused, not ignored. */
	j->since_given = since_param(query, query_len, &j->since);
	if (j->room_len < 0 || !chat_room_name_valid(j->room, (size_t)j->room_len) || j->since_given < 0) {
		t->req.why = j->since_given < 0 ? "bad request: since" : "bad request: room";
		return 400;
	}
	j->st = JWT_OK;
	j->expires = 0;
	j->who = (struct chat_identity){ 0 };
	if (t->config.jwt_secret) {
		j->st = check_token(&t->config, req, query, query_len, &j->claims);
		if (j->st == JWT_OK) {
			j->who.user_id = j->claims.sub[0] ? j->claims.sub : j->claims.name;
			j->who.name = j->claims.name;
			j->expires = j->claims.exp ? j->claims.exp + t->config.jwt_leeway : 0;
		}
	} else if (check_guest(&t->config, query, query_len, &j->who.guest_id, j->guest_name)) {
		j->who.name = j->guest_name[0] ? j->guest_name : NULL;
	}
	return 0;
}

/* A sign-in refused: counted, and said in --verbose's log. */
static void note_refused_sign_in(struct conn *c, int st)
{
	transport_of(c)->stats.auth_refused++;
	if (log_enabled(LOG_DEBUG)) {
		char id[CONN_LOG_ID_LEN];
		conn_log_id(c, id, sizeof(id));
		log_kv(LOG_DEBUG, "sign-in refused", LOG_STR("conn", id), LOG_STR("why", "auth"),
		       LOG_STR("detail", st < 0 ? "no token" : jwt_status_text((enum jwt_status)st)));
	}
}

static const struct chat_identity *identity(const struct join *j)
{
	return j->who.user_id || j->who.guest_id ? &j->who : NULL;
}

/* The first permessage-deflate offer we can honour, over every
 * Sec-WebSocket-Extensions line in order (RFC 6455 §9.1: several lines
 * read as one list). A malformed line ends the search: nothing after it is
 * trusted either. */
static bool deflate_offered(const struct http_request *req, struct ws_deflate_params *p)
{
	for (size_t i = 0; i < req->num_headers; i++) {
		const struct http_header *h = &req->headers[i];
		if (h->name_len != strlen("sec-websocket-extensions") ||
		    strncasecmp(h->name, "sec-websocket-extensions", h->name_len) != 0)
			continue;
		int r = ws_deflate_negotiate(h->value, h->value_len, p);
		if (r)
			return r > 0;
	}
	return false;
}

static bool upgrade(struct conn *c, const struct http_request *req, const char *query, size_t query_len)
{
	struct http_transport *t = transport_of(c);
	const char *key;
	size_t key_len;
	int status = ws_upgrade_check(req, &key, &key_len);
	t->req.why = "bad request";
	if (status == 405) {
		t->req.why = "method";
		respond_text(c, 405, false, "Allow: GET\r\n", false);
		return false;
	}
	if (status == 426) {
		t->req.why = "version";
		respond_text(c, 426, false, "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n", false);
		return false;
	}
	struct join j;
	if (status || (status = read_join(t, req, query, query_len, &j))) {
		respond_error(c, status);
		return false;
	}
	struct ws_deflate_params deflate = { 0 };
	/* not for a refused sign-in: it is closed at once, reading no data */
	bool deflate_on = j.st == JWT_OK && ws_conn_deflate_enabled(c) && deflate_offered(req, &deflate);
	char extensions[WS_DEFLATE_ANSWER_MAX] = "";
	if (deflate_on)
		ws_deflate_answer(&deflate, extensions, sizeof(extensions));
	char head[640];
	size_t hlen = ws_upgrade_response(head, sizeof(head), key, key_len, extensions);
	queue(c, buf_from(head, hlen));
	if (c->state != CONN_OPEN)
		return false;
	if (j.st != JWT_OK) {
		note_refused_sign_in(c, j.st);
		char reason[120];
		uint16_t code = sign_in_refusal(j.st, reason, sizeof(reason));
		ws_conn_refuse(c, code, reason);
		return true;
	}
	t->stats.upgrades++;
	ws_conn_open(c, identity(&j), j.room, (size_t)j.room_len, j.since_given ? &j.since : NULL, j.expires,
		     deflate_on ? (deflate.server_max_window_bits ? deflate.server_max_window_bits : 15) : 0);
	return true;
}

/* Last-Event-ID: an EventSource reconnecting by itself sends the id of
 * the last message of the first room it saw. 1 when given (and valid), 0
 * when absent, -1 when malformed. */
static int last_event_id(const struct http_request *req, uint64_t *id)
{
	const struct http_header *h = http_find_header(req, "last-event-id");
	if (!h || h->value_len == 0)
		return 0;
	if (h->value_len > 20)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < h->value_len; i++) {
		unsigned d = (unsigned)(h->value[i] - '0');
		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*id = v;
	return 1;
}

/* GET /sse: a stream with the same parameters and rules as an upgrade
 * (docs/protocol.md, "Server-Sent Events fallback"). */
static bool open_stream(struct conn *c, const struct http_request *req, const char *query, size_t query_len)
{
	struct http_transport *t = transport_of(c);
	if (!http_method_is(req, "GET")) {
		t->req.why = "method";
		respond_text(c, 405, req->keep_alive, "Allow: GET\r\n", false);
		return false;
	}
	struct join j;
	int status = read_join(t, req, query, query_len, &j);
	int lei = last_event_id(req, &j.since); /* over ?since= */
	if (!status && lei < 0) {
		t->req.why = "bad request: last-event-id";
		status = 400;
	}
	if (status) {
		respond_error(c, status);
		return false;
	}
	if (lei > 0)
		j.since_given = 1;
	if (j.st != JWT_OK) {
		note_refused_sign_in(c, j.st);
		char reason[120];
		uint16_t code = sign_in_refusal(j.st, reason, sizeof(reason));
		sse_conn_refuse(c, code, reason);
		return true;
	}
	sse_conn_open(c, identity(&j), j.room, (size_t)j.room_len, j.since_given ? &j.since : NULL, j.expires);
	return true;
}

/* The load balancer's probes. /healthz checks nothing: that this edge's
 * loop answers is the news. /readyz asks the parts that can make the node
 * useless though its loops run (readiness.h). Neither is ever cached. */
#define PROBE_HEADERS "Cache-Control: no-store\r\n"

static void probe(struct conn *c, const struct http_request *req, bool readyz, bool head_only)
{
	const struct readiness *r = transport_of(c)->config.readiness;
	char why[160];
	if (!readyz) {
		respond_plain(c, 200, req->keep_alive, PROBE_HEADERS, "ok\n", 3, head_only);
	} else if (!r || readiness_check(r, why, sizeof(why))) {
		respond_plain(c, 200, req->keep_alive, PROBE_HEADERS, "ready\n", 6, head_only);
	} else {
		transport_of(c)->req.why = "not ready";
		char body[sizeof(why) + 16]; /* the reason is cut to fit why, so it fits */
		int blen = snprintf(body, sizeof(body), "not ready: %s\n", why);
		respond_plain(c, 503, req->keep_alive, PROBE_HEADERS, body, (size_t)blen, head_only);
	}
}

/* The gzip copy when the client takes it; then 304 when its cached copy
 * of that representation is current (If-None-Match is compared with the
 * ETag of what this request would get, RFC 9110 §13.1.2). */
static struct buf *static_response(const struct static_file *f, const struct http_request *req,
				   bool head_only)
{
	const struct http_header *ae = http_find_header(req, "accept-encoding");
	const struct static_body *b = f->gzip.get_response && ae &&
						      http_accepts_gzip(ae->value, ae->value_len)
					      ? &f->gzip
					      : &f->plain;
	const struct http_header *inm = http_find_header(req, "if-none-match");
	if (inm && http_etag_matches(inm->value, inm->value_len, b->etag))
		return b->not_modified;
	return head_only ? b->head_response : b->get_response;
}

static void serve(struct conn *c, const struct http_request *req, const char *path)
{
	struct http_transport *t = transport_of(c);
	bool head_only = http_method_is(req, "HEAD");
	if (!head_only && !http_method_is(req, "GET")) {
		t->req.why = "method";
		respond_text(c, 405, req->keep_alive, "Allow: GET, HEAD\r\n", false);
		return;
	}
	/* before the page's files: they answer whatever --static holds */
	bool readyz = strcmp(path, "/readyz") == 0;
	if (readyz || strcmp(path, "/healthz") == 0) {
		probe(c, req, readyz, head_only);
		return;
	}
	if (strcmp(path, "/metrics") == 0 && t->config.metrics) {
		struct buf *body = t->config.metrics(t->config.metrics_ctx);
		char head[1024];
		size_t hlen = http_format_head(head, sizeof(head), 200,
					       "text/plain; version=0.0.4; charset=utf-8", body->len,
					       req->keep_alive, "Cache-Control: no-store\r\n");
		struct buf *b = buf_new(hlen + (head_only ? 0 : body->len));
		memcpy(b->data, head, hlen);
		if (!head_only)
			memcpy(b->data + hlen, body->data, body->len);
		buf_unref(body);
		queue(c, b);
	} else if (!t->config.site) {
		respond_text(c, 404, req->keep_alive, NULL, head_only); /* a /metrics listener */
	} else if (strcmp(path, "/login") == 0 && t->config.login_url) {
		/* where the page sends people for a token (--login-url) */
		char extra[1000]; /* --login-url is at most 900 bytes (config.c) */
		snprintf(extra, sizeof(extra), "Location: %s\r\nCache-Control: no-store\r\n", t->config.login_url);
		respond_text(c, 302, req->keep_alive, extra, head_only);
		return;
	} else if (strcmp(path, "/ws") == 0) {
		t->req.why = "not an upgrade";
		/* The WebSocket endpoint asked for as a page. */
		respond_text(c, 426, req->keep_alive, "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
			     head_only);
		return;
	} else {
		const struct static_file *f = static_site_find(t->config.site, path);
		if (!f) {
			respond_text(c, 404, req->keep_alive, NULL, head_only);
			return;
		}
		queue(c, buf_ref(static_response(f, req, head_only)));
	}
	if (!req->keep_alive)
		conn_close(c);
}

/* DNS rebinding: a page on a hostile name that now resolves to 127.0.0.1
 * reaches a loopback listener as that name's own site, Origin and all; only
 * the Host header tells. 421: this server does not answer for that name,
 * while the request itself was well formed (so not 400). */
static bool host_allowed(const struct http_transport *t, const struct http_request *req)
{
	if (!t->host_check)
		return true;
	const struct http_header *host = http_find_header(req, "host");
	return origin_host_allowed(host ? host->value : NULL, host ? host->value_len : 0, t->config.allow_host,
				   t->config.allow_host_count);
}

/* Handle one complete request head (and, for the API and POST /send, its
 * body). Returns true when the connection became a WebSocket or a stream. */
static bool answer_request(struct conn *c, const struct http_request *req, const uint8_t *body)
{
	struct http_transport *t = transport_of(c);
	char path[HTTP_MAX_PATH];
	const char *query;
	size_t query_len;
	t->stats.requests++;
	t->req.upgrade = ws_upgrade_requested(req);
	if (http_decode_path(req->target, req->target_len, path, sizeof(path), &query, &query_len) < 0) {
		t->req.why = "bad target";
		respond_error(c, 400);
		return false;
	}
	t->req.path = path;
	/* before anything is served or upgraded; after the checks every
	 * malformed request gets, so that it is 400 whatever its Host */
	if (!host_allowed(t, req)) {
		t->stats.host_refused++;
		t->req.why = "host";
		respond_error(c, 421);
		return false;
	}
	bool ws_path = strcmp(path, "/") == 0 || strcmp(path, "/ws") == 0;
	if (t->req.upgrade) {
		if (!ws_path || !t->config.site) { /* none on a /metrics listener */
			t->req.why = "path";
			respond_text(c, 404, false, NULL, false);
			return false;
		}
		return upgrade(c, req, query, query_len);
	}
	if (strcmp(path, "/sse") == 0 && t->config.sse_route)
		return open_stream(c, req, query, query_len);
	if (strcmp(path, "/send") == 0 && t->config.sse_route) {
		sse_post_handle(c, req, query, query_len, (const char *)body, body ? (size_t)req->content_length : 0);
		return false;
	}
	if (api_path(path)) {
		if (t->api_body_max)
			api_handle(c, req, path, query, query_len, (const char *)body,
				   body ? (size_t)req->content_length : 0);
		else
			respond_text(c, 404, req->keep_alive, NULL, false); /* no --api-key-file */
		return false;
	}
	serve(c, req, path);
	return false;
}

static bool handle_request(struct conn *c, const struct http_request *req, const uint8_t *body)
{
	struct http_transport *t = transport_of(c);
	bool upgraded = answer_request(c, req, body);
	memset(&t->req, 0, sizeof(t->req)); /* its path was on answer_request's stack */
	return upgraded;
}

/* An answer outside any request (a head that cannot be read, a body too
 * large, a head too slow), with why for --verbose. */
static void refuse(struct conn *c, int status, const char *why)
{
	struct http_transport *t = transport_of(c);
	t->req.why = why;
	respond_error(c, status);
	t->req.why = NULL;
}

/* Is the request one whose body is read rather than discarded (the API's,
 * POST /send)? Then how much of it is read at most; else 0. */
static uint64_t body_wanted(const struct http_transport *t, const struct http_request *req)
{
	char path[HTTP_MAX_PATH];
	const char *query;
	size_t query_len;
	if (http_decode_path(req->target, req->target_len, path, sizeof(path), &query, &query_len) < 0)
		return 0;
	if (t->config.sse_route && strcmp(path, "/send") == 0)
		return t->config.max_message;
	return api_path(path) ? t->api_body_max : 0;
}

void http_conn_data(struct conn *c, uint8_t *data, size_t len)
{
	struct http_transport *t = transport_of(c);
	/* Parse straight from the receive buffer when nothing is pending;
	 * copy only what is left over. */
	bool from_in = c->in_len > 0;
	if (from_in) {
		conn_keep_input(c, data, len);
		data = c->in;
		len = c->in_len;
	}
	struct session *s = session_of(c);
	size_t off = 0;
	while (c->state == CONN_OPEN && s->proto == PROTO_HTTP && off < len &&
	       c->q_bytes < PIPELINE_OUTPUT_MAX && !s->wait) {
		if (s->skip) {
			size_t n = len - off < s->skip ? len - off : s->skip;
			off += n;
			s->skip -= (uint32_t)n;
			continue;
		}
		struct http_request req;
		int r = http_parse_request((const char *)data + off, len - off, &req);
		if (r == HTTP_INCOMPLETE)
			break;
		if (r < 0) {
			refuse(c, -r, "bad request head");
			off = len;
			break;
		}
		const uint8_t *body = NULL;
		uint64_t body_max = body_wanted(t, &req);
		if (body_max) {
			if (req.content_length > body_max) {
				if (body_max == t->api_body_max)
					api_refuse_body(c);
				else
					sse_post_refuse_body(c);
				off = len;
				break;
			}
			if (len - off - (size_t)r < req.content_length)
				break; /* the head is parsed again when the rest of the body is in */
			body = data + off + r;
			off += (size_t)r + (size_t)req.content_length;
		} else {
			off += (size_t)r;
			if (req.content_length > MAX_DISCARDED_BODY) {
				refuse(c, 413, "body too large");
				off = len;
				break;
			}
			s->skip = (uint32_t)req.content_length; /* bodies are not used: discard them */
		}
		if (handle_request(c, &req, body)) {
			if (s->proto == PROTO_SSE) {
				/* a stream's client sends nothing more that means anything */
				if (from_in)
					conn_drop_input(c);
				return;
			}
			/* Upgraded: the rest of the bytes are WebSocket frames. */
			uint8_t *rest = data + off;
			size_t rest_len = len - off;
			if (rest_len && from_in) {
				/* the frames must not alias c->in, which ws_conn reuses */
				uint8_t *copy = malloc(rest_len);
				if (!copy)
					abort();
				memcpy(copy, rest, rest_len);
				conn_drop_input(c);
				ws_conn_data(c, copy, rest_len);
				free(copy);
				return;
			}
			if (from_in)
				conn_drop_input(c);
			if (rest_len)
				ws_conn_data(c, rest, rest_len);
			return;
		}
		if (c->state == CONN_OPEN)
			conn_set_deadline(c, conn_now(c) + t->config.header_timeout);
	}
	if (c->state != CONN_OPEN || off == len) {
		if (from_in)
			conn_drop_input(c);
		return;
	}
	/* A partial head, or requests waiting for their turn, stay for later. */
	if (from_in) {
		memmove(c->in, c->in + off, len - off);
		c->in_len = (uint32_t)(len - off);
	} else {
		conn_keep_input(c, data + off, len - off);
	}
	if (c->in_len > t->input_max)
		conn_abort(c);
}

void http_conn_drained(struct conn *c)
{
	if (c->in_len)
		http_conn_data(c, NULL, 0);
}

void http_conn_deadline(struct conn *c)
{
	if (session_of(c)->wait) {
		/* not idle: waiting for an answer (the chat's, another edge's) */
		conn_set_deadline(c, conn_now(c) + transport_of(c)->config.header_timeout);
		return;
	}
	if (c->in_len) {
		refuse(c, 408, "header timeout"); /* a head started and never finished */
		return;
	}
	conn_close(c); /* an idle keep-alive connection */
}

void http_conn_closing(struct conn *c)
{
	struct session *s = session_of(c);
	if (s->wait) { /* an answer on its way must not find it */
		s->wait->cancel(s->wait);
		s->wait = NULL;
	}
	if (!log_enabled(LOG_DEBUG))
		return;
	char id[CONN_LOG_ID_LEN];
	conn_log_id(c, id, sizeof(id));
	log_kv(LOG_DEBUG, "connection closed", LOG_STR("conn", id), LOG_STR("proto", "http"));
}
