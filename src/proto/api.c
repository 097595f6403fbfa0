/* api.c: the server API for an application's backend (api.h).
 *
 * The way Centrifugo's HTTP API or Socket.IO's server-side emit are used: a
 * backend holding the key posts a message as a bot or the system, closes a
 * user's connections, or asks who is in a room. The chat does the work
 * through the same path as a member's command (the sequencer's order, the
 * store, the cluster); this file only reads the request and writes the
 * answer. Browsers play no part: no Origin rule applies (a server-to-server
 * call sends none), the key alone decides. */
#include "api.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "conn.h"
#include "http.h"
#include "http_conn.h"
#include "session.h"

#define JSON_TYPE "application/json"
#define REASON_MAX 123 /* a close frame's reason: 125 bytes less the code */
#define DEFAULT_REASON "disconnected by the server"

enum api_kind { API_PUBLISH, API_DISCONNECT, API_PRESENCE };

/* One request waiting for the chat's answer. It outlives its connection
 * when that goes first (conn NULL): the chat still calls back. */
struct api_call {
	struct http_wait wait; /* first: session.wait points here */
	struct conn *conn;
	enum api_kind kind;
	bool keep_alive;
	char room[CHAT_ROOM_MAX + 1];
};

uint64_t api_body_max(uint64_t max_message)
{
	return 2 * max_message + 4096;
}

bool api_path(const char *path)
{
	return strncmp(path, "/api", 4) == 0 && (path[4] == '\0' || path[4] == '/');
}

static void answer_json(struct conn *c, int status, bool keep_alive, const char *extra, const char *json,
			size_t len)
{
	http_conn_respond(c, status, keep_alive, JSON_TYPE, extra, json, len);
}

/* {"error":code,"message":text}: the caller learns what was wrong. */
static void answer_error(struct conn *c, int status, bool keep_alive, const char *extra, const char *code,
			 const char *message)
{
	json_t *o = json_pack("{s:s, s:s}", "error", code, "message", message);
	char *text = json_dumps(o, JSON_COMPACT);
	if (!text)
		abort();
	answer_json(c, status, keep_alive, extra, text, strlen(text));
	free(text);
	json_decref(o);
}

void api_refuse_body(struct conn *c)
{
	answer_error(c, 413, false, NULL, "too_large", "the request body is larger than the API reads");
}

/* The key from "Authorization: Bearer KEY", compared in constant time:
 * both sides are hashed first, so not even the key's length shows in the
 * time taken. */
static bool key_matches(const struct http_conn_config *cfg, const struct http_request *req)
{
	const struct http_header *h = http_find_header(req, "authorization");
	if (!h || http_header_count(req, "authorization") != 1 || h->value_len < 7 ||
	    strncasecmp(h->value, "Bearer ", 7) != 0)
		return false;
	const char *given = h->value + 7;
	size_t given_len = h->value_len - 7;
	while (given_len && *given == ' ')
		given++, given_len--;
	unsigned char want[SHA256_DIGEST_LENGTH], got[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)cfg->api_key, cfg->api_key_len, want);
	SHA256((const unsigned char *)given, given_len, got);
	return CRYPTO_memcmp(want, got, sizeof(want)) == 0;
}

/* ---- answers from the chat ------------------------------------------------------ */

static int error_status(int err, const char **code, const char **message)
{
	if (err == CHAT_ERR_UNAVAILABLE) {
		*code = "unavailable";
		*message = "the chat service cannot take this now; try again";
		return 503;
	}
	*code = "not_saved";
	*message = "the message could not be stored; not sent";
	return 500;
}

static void on_done(void *ctx, const struct chat_api_result *res)
{
	struct api_call *call = ctx;
	struct conn *c = call->conn;
	if (!c) {
		free(call); /* the caller left before the answer */
		return;
	}
	session_of(c)->wait = NULL;
	if (res->err) {
		const char *code, *message;
		int status = error_status(res->err, &code, &message);
		answer_error(c, status, call->keep_alive, NULL, code, message);
	} else if (call->kind == API_PUBLISH) {
		char body[CHAT_ROOM_MAX + 64];
		int n = snprintf(body, sizeof(body), "{\"id\":%llu,\"room\":\"%s\"}", (unsigned long long)res->id,
				 call->room); /* a valid room name needs no escaping */
		answer_json(c, 200, call->keep_alive, NULL, body, (size_t)n);
	} else if (call->kind == API_PRESENCE) {
		answer_json(c, 200, call->keep_alive, NULL, res->json, res->json_len);
	} else {
		answer_json(c, 200, call->keep_alive, NULL, "{\"ok\":true}", 11);
	}
	/* requests pipelined behind this one are read once this answer has
	 * gone out (http_conn_drained) */
	free(call);
}

/* The connection went first: the chat's answer frees the call. */
static void call_cancel(struct http_wait *w)
{
	((struct api_call *)w)->conn = NULL;
}

static struct api_call *call_new(struct conn *c, enum api_kind kind, const struct http_request *req)
{
	struct api_call *call = calloc(1, sizeof(*call));
	if (!call)
		abort();
	call->conn = c;
	call->kind = kind;
	call->keep_alive = req->keep_alive;
	call->wait.cancel = call_cancel;
	session_of(c)->wait = &call->wait;
	return call;
}

/* ---- the requests ---------------------------------------------------------------- */

/* A JSON object body, or NULL after a 400 saying why. */
static json_t *parse_body(struct conn *c, const struct http_request *req, const char *body, size_t len)
{
	json_error_t err;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
	if (!root || !json_is_object(root)) {
		json_decref(root);
		answer_error(c, 400, req->keep_alive, NULL, "bad_json", "the body must be a JSON object");
		return NULL;
	}
	return root;
}

/* An optional string field: true and *out NULL when absent; false when
 * present but not a string. */
static bool get_string(json_t *root, const char *key, const char **out, size_t *len)
{
	json_t *v = json_object_get(root, key);
	*out = NULL;
	*len = 0;
	if (!v)
		return true;
	if (!json_is_string(v))
		return false;
	*out = json_string_value(v);
	*len = json_string_length(v);
	return true;
}

static void publish(struct conn *c, const struct http_request *req, const char *body, size_t len)
{
	const struct http_conn_config *cfg = http_conn_config_of(c);
	json_t *root = parse_body(c, req, body, len);
	if (!root)
		return;
	const char *room, *text, *name;
	size_t room_len, text_len, name_len;
	if (!get_string(root, "room", &room, &room_len) || !get_string(root, "text", &text, &text_len) ||
	    !get_string(root, "name", &name, &name_len) || !room || !text) {
		answer_error(c, 400, req->keep_alive, NULL, "bad_request",
			     "publish takes {\"room\": string, \"text\": string, \"name\": optional string}");
	} else if (!chat_room_name_valid(room, room_len)) {
		answer_error(c, 400, req->keep_alive, NULL, "bad_room", "a room name is 1-64 of A-Z a-z 0-9 _ . -");
	} else if (text_len > cfg->max_message) {
		answer_error(c, 413, req->keep_alive, NULL, "too_large", "the text is longer than --max-message");
	} else if (memchr(text, 0, text_len) || (name && memchr(name, 0, name_len))) {
		answer_error(c, 400, req->keep_alive, NULL, "bad_text", "text and name may not hold NUL");
	} else {
		struct api_call *call = call_new(c, API_PUBLISH, req);
		memcpy(call->room, room, room_len);
		const char *refused = chat_publish(cfg->chat, room, room_len, text, text_len, name, name_len,
						   on_done, call);
		if (refused) {
			session_of(c)->wait = NULL;
			free(call);
			answer_error(c, 400, req->keep_alive, NULL, refused,
				     !strcmp(refused, "empty") ? "the text is empty"
				     : !strcmp(refused, "bad_name")
					     ? "the name breaks the rules for names (docs/protocol.md)"
					     : "the text may not hold control characters other than tab and newline");
		}
	}
	json_decref(root);
}

/* Cut s to at most max bytes at a character boundary (s is valid UTF-8). */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	while (max && ((unsigned char)s[max] & 0xC0) == 0x80)
		max--;
	return max;
}

static void disconnect(struct conn *c, const struct http_request *req, const char *body, size_t len)
{
	const struct http_conn_config *cfg = http_conn_config_of(c);
	json_t *root = parse_body(c, req, body, len);
	if (!root)
		return;
	const char *user, *reason;
	size_t user_len, reason_len;
	if (!get_string(root, "user", &user, &user_len) || !get_string(root, "reason", &reason, &reason_len) ||
	    !user || !user_len || memchr(user, 0, user_len) || (reason && memchr(reason, 0, reason_len))) {
		answer_error(c, 400, req->keep_alive, NULL, "bad_request",
			     "disconnect takes {\"user\": a signed-in user's id, \"reason\": optional string}");
	} else {
		char cut[REASON_MAX + 1];
		if (!reason)
			reason = DEFAULT_REASON, reason_len = strlen(DEFAULT_REASON);
		size_t n = utf8_cut(reason, reason_len, REASON_MAX);
		memcpy(cut, reason, n);
		cut[n] = '\0';
		chat_kick(cfg->chat, user, cut, on_done, call_new(c, API_DISCONNECT, req));
	}
	json_decref(root);
}

static void presence(struct conn *c, const struct http_request *req, const char *query, size_t query_len)
{
	const struct http_conn_config *cfg = http_conn_config_of(c);
	char room[CHAT_ROOM_MAX + 1];
	int n = http_query_param(query, query_len, "room", room, sizeof(room));
	if (n < 0 || !chat_room_name_valid(room, (size_t)n)) {
		answer_error(c, 400, req->keep_alive, NULL, "bad_room",
			     "presence takes ?room=NAME, 1-64 of A-Z a-z 0-9 _ . -");
		return;
	}
	chat_presence(cfg->chat, room, (size_t)n, on_done, call_new(c, API_PRESENCE, req));
}

void api_handle(struct conn *c, const struct http_request *req, const char *path, const char *query,
		size_t query_len, const char *body, size_t body_len)
{
	const struct http_conn_config *cfg = http_conn_config_of(c);
	if (!key_matches(cfg, req)) {
		answer_error(c, 401, req->keep_alive, "WWW-Authenticate: Bearer\r\n", "unauthorized",
			     "the API needs Authorization: Bearer <the --api-key-file key>");
		return;
	}
	bool post = http_method_is(req, "POST");
	bool is_publish = strcmp(path, "/api/publish") == 0;
	bool is_disconnect = strcmp(path, "/api/disconnect") == 0;
	if (strcmp(path, "/api/presence") == 0) {
		if (!http_method_is(req, "GET"))
			answer_error(c, 405, req->keep_alive, "Allow: GET\r\n", "bad_method", "presence is GET");
		else
			presence(c, req, query, query_len);
	} else if (!is_publish && !is_disconnect) {
		answer_error(c, 404, req->keep_alive, NULL, "not_found",
			     "the API has /api/publish, /api/disconnect and /api/presence");
	} else if (!post) {
		answer_error(c, 405, req->keep_alive, "Allow: POST\r\n", "bad_method", "publish and disconnect are POST");
	} else if (!http_find_header(req, "content-length")) {
		answer_error(c, 411, req->keep_alive, NULL, "length_required", "send the body with a Content-Length");
	} else if (is_publish) {
		publish(c, req, body, body_len);
	} else {
		disconnect(c, req, body, body_len);
	}
}
