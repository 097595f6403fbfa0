/* sse_post.c: POST /send, the HTTP side (sse_post.h). The command itself
 * runs on the stream's edge (sse_post_run, sse_conn.c); this file reads
 * the request, applies the WebSocket upgrade's Origin rule, and writes the
 * answer (docs/protocol.md has the statuses). */
#include "sse_post.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "http.h"
#include "http_conn.h"
#include "session.h"
#include "sse_conn.h"
#include "utf8.h"

#define JSON_TYPE "application/json"

static void count(struct conn *c, int status)
{
	sse_transport_count_post(sessions_of(c)->sse, status);
}

/* {"error":code,"message":text}; neither holds anything to escape. */
static void answer_error(struct conn *c, int status, bool keep_alive, const char *extra, const char *code,
			 const char *message)
{
	char body[256];
	int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"%s\"}", code, message);
	count(c, status);
	http_conn_respond(c, status, keep_alive, JSON_TYPE, extra, body, (size_t)n);
}

void sse_post_refuse_body(struct conn *c)
{
	answer_error(c, 413, false, NULL, "too_large", "the body is longer than --max-message");
}

/* The connection went first: the answer, when it comes back, frees p. */
static void post_cancel(struct http_wait *w)
{
	((struct sse_post *)w)->conn = NULL;
}

/* Back on the POST's edge (http_conn_config.sse_route's promise). */
void sse_post_finish(struct sse_post *p)
{
	struct conn *c = p->conn;
	if (c) {
		session_of(c)->wait = NULL;
		/* requests pipelined behind it are read once this answer has
		 * gone out (http_conn_drained) */
		switch (p->status) {
		case 202:
			count(c, 202);
			http_conn_respond(c, 202, p->keep_alive, JSON_TYPE, NULL, "{\"ok\":true}", 11);
			break;
		case 400:
		case 429:
			count(c, p->status);
			http_conn_respond(c, p->status, p->keep_alive, JSON_TYPE,
					  p->status == 429 ? "Retry-After: 1\r\n" : NULL, p->error, p->error_len);
			break;
		case 401:
			answer_error(c, 401, p->keep_alive, NULL, "token_expired",
				     "the session's sign-in ran out: reconnect the stream with a new token");
			break;
		default:
			answer_error(c, 404, p->keep_alive, NULL, "no_session",
				     "no such session (it ended, or never was): reconnect the stream");
			break;
		}
	}
	free(p->error);
	free(p);
}

void sse_post_handle(struct conn *c, const struct http_request *req, const char *query, size_t query_len,
		     const char *body, size_t body_len)
{
	const struct http_conn_config *cfg = http_conn_config_of(c);
	bool ka = req->keep_alive;
	char text[SSE_KEY_TEXT_MAX + 8];
	struct sse_key key;
	int n;
	if (!http_method_is(req, "POST")) {
		answer_error(c, 405, ka, "Allow: POST\r\n", "bad_method", "/send takes POST");
	} else if (!http_find_header(req, "content-length")) {
		answer_error(c, 411, ka, NULL, "length_required", "send the body with a Content-Length");
	} else if (!http_conn_origin_ok(cfg, req)) {
		answer_error(c, 403, ka, NULL, "origin", "this Origin may not use the chat (--allow-origin)");
	} else if ((n = http_query_param(query, query_len, "session", text, sizeof(text))) <= 0 ||
		   !sse_key_parse(text, (size_t)n, &key)) {
		answer_error(c, 404, ka, NULL, "no_session",
			     "no such session (it ended, or never was): reconnect the stream");
	} else if (!utf8_valid((const uint8_t *)body, body_len)) {
		/* a WebSocket closes with 1007 here; a POST can say so and stay */
		static const char bad[] = "{\"type\":\"error\",\"code\":\"bad_text\","
					  "\"message\":\"the body is not valid UTF-8\"}";
		count(c, 400);
		http_conn_respond(c, 400, ka, JSON_TYPE, NULL, bad, sizeof(bad) - 1);
	} else {
		struct sse_post *p = calloc(1, sizeof(*p) + body_len);
		if (!p)
			abort();
		p->wait.cancel = post_cancel;
		p->conn = c;
		p->keep_alive = ka;
		p->key = key;
		p->len = body_len;
		memcpy(p->body, body, body_len);
		session_of(c)->wait = &p->wait;
		cfg->sse_route(cfg->sse_ctx, p);
	}
}
