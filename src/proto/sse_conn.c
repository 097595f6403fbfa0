/* sse_conn.c: the Server-Sent Events side of a connection (sse_conn.h).
 *
 * A stream is a chat member like a WebSocket connection: the chat hands it
 * the same payloads, and it sends each as an event, encoded once per edge
 * as a variant of the payload's buf (buf.h) so that every stream on the
 * edge shares the same bytes. A message of the stream's first room gets an
 * id: line, so a browser's Last-Event-ID names the last one it saw there.
 * The client sends nothing on the stream: its commands come as POST /send
 * (sse_post.c), run here by sse_post_run. */
#include "sse_conn.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "buf.h"
#include "chat.h"
#include "conn.h"
#include "http.h"
#include "jwt.h"
#include "log.h"
#include "ws.h"

#define SSE_F_CLOSED 0x01    /* the close event is queued: nothing follows it */
#define SSE_F_NO_MEMBER 0x02 /* refused before joining: chat never saw it */
#define SSE_F_EXPIRED 0x04   /* closed because its sign-in ran out */

#define ERROR_PREFIX "{\"type\":\"error\","
#define RATE_LIMITED_PREFIX "{\"type\":\"error\",\"code\":\"rate_limited\""

const uint16_t sse_post_statuses[SSE_POST_STATUSES] = {
	202, 400, 401, 403, 404, 405, 411, 413, 429,
};

/* The SSE side of one ring: its settings, counters, the keep-alive
 * comment every stream shares, and the member whose POST is running (its
 * errors answer the POST instead of going on the stream). */
struct sse_transport {
	struct sse_conn_config config;
	struct sse_conn_stats stats;
	struct buf *keepalive;
	struct chat_member *capture;
	struct buf *captured;
};

static struct sse_transport *transport_of(const struct conn *c)
{
	return sessions_of(c)->sse;
}

struct sse_transport *sse_transport_new(const struct sse_conn_config *cfg)
{
	struct sse_transport *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->config = *cfg;
	t->config.ping_interval *= CONN_TICKS_PER_SEC;
	t->keepalive = buf_from(":\n\n", 3);
	return t;
}

void sse_transport_free(struct sse_transport *t)
{
	if (!t)
		return;
	buf_unref(t->keepalive);
	free(t);
}

const struct sse_conn_stats *sse_transport_stats(const struct sse_transport *t)
{
	return &t->stats;
}

void sse_transport_count_post(struct sse_transport *t, int status)
{
	for (int i = 0; i < SSE_POST_STATUSES; i++)
		if (sse_post_statuses[i] == status)
			t->stats.posts[i]++;
}

void sse_transport_count_handoff(struct sse_transport *t)
{
	t->stats.handoffs++;
}

/* "event: close" with the WebSocket close code and reason it mirrors. */
static struct buf *close_event(uint16_t code, const char *reason)
{
	json_t *o = json_pack("{s:s, s:i, s:s}", "type", "close", "code", (int)code, "reason", reason ? reason : "");
	char *json = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (!json)
		abort();
	size_t len = strlen(json);
	struct buf *b = buf_new(13 + 6 + len + 2);
	memcpy(b->data, "event: close\ndata: ", 19);
	memcpy(b->data + 19, json, len);
	memcpy(b->data + 19 + len, "\n\n", 2);
	free(json);
	json_decref(o);
	return b;
}

void sse_conn_close(struct conn *c, uint16_t code, const char *reason)
{
	struct session *s = session_of(c);
	if (c->state != CONN_OPEN || (s->sse.flags & SSE_F_CLOSED))
		return;
	struct buf *b = close_event(code, reason);
	if (!conn_send(c, b)) {
		/* no room even for the close event: drop what waits, then insist */
		conn_drop_queue(c);
		conn_send_unbounded(c, b);
	}
	buf_unref(b);
	s->sse.flags |= SSE_F_CLOSED;
	conn_close(c);
}

/* Queue an event; a client that does not read is dropped as on WebSocket. */
static void queue_event(struct conn *c, struct buf *event, bool own)
{
	struct session *s = session_of(c);
	if (c->state != CONN_OPEN || (s->sse.flags & SSE_F_CLOSED))
		return;
	if (own ? conn_send_unbounded(c, event) : conn_send(c, event)) {
		transport_of(c)->stats.events++;
		return;
	}
	log_info("connection %u: slow consumer, %s", s->member.id, "dropping its queue and closing");
	conn_drop_queue(c);
	sse_conn_close(c, WS_CLOSE_POLICY, "slow consumer");
}

/* The payload as this stream's event: with an id: line when it is a
 * message of the stream's first room. Made once per payload and variant. */
static struct buf *event_of(struct sse_transport *t, struct buf *payload, uint64_t first_room)
{
	size_t len;
	const char *json = buf_payload(payload, &len);
	uint64_t id;
	const char *room;
	size_t room_len;
	bool with_id = sse_message_prefix(json, len, &id, &room, &room_len) &&
		       sse_room_hash(room, room_len) == first_room;
	enum buf_variant v = with_id ? BUF_VARIANT_SSE : BUF_VARIANT_SSE_NO_ID;
	struct buf *event = buf_variant(payload, v);
	if (!event) {
		event = buf_set_variant(payload, v, sse_event_new(json, len, with_id ? &id : NULL));
		t->stats.encoded++;
	}
	return event;
}

/* While m's POST runs, the first error the chat answers it with is the
 * POST's answer, not an event. */
static bool captured(struct sse_transport *t, struct chat_member *m, struct buf *payload)
{
	if (t->capture != m || t->captured)
		return false;
	size_t len;
	const char *json = buf_payload(payload, &len);
	if (len < sizeof(ERROR_PREFIX) - 1 || memcmp(json, ERROR_PREFIX, sizeof(ERROR_PREFIX) - 1) != 0)
		return false;
	t->captured = buf_ref(payload);
	return true;
}

static void deliver(struct chat_member *m, struct buf *payload, bool own)
{
	struct session *s = session_of_member(m);
	struct conn *c = session_conn(s);
	struct sse_transport *t = transport_of(c);
	if (captured(t, m, payload))
		return;
	queue_event(c, event_of(t, payload, s->sse.first_room), own);
}

void sse_conn_deliver(struct chat_member *m, struct buf *payload)
{
	deliver(m, payload, false);
}

void sse_conn_deliver_own(struct chat_member *m, struct buf *payload)
{
	deliver(m, payload, true); /* an acknowledgement never makes it a slow consumer */
}

size_t sse_conn_backlog(struct chat_member *m)
{
	struct session *s = session_of_member(m);
	struct conn *c = session_conn(s);
	if (c->state != CONN_OPEN || (s->sse.flags & SSE_F_CLOSED))
		return SIZE_MAX;
	return conn_queued(c);
}

void sse_conn_kick(struct chat_member *m, uint16_t code, const char *reason)
{
	sse_conn_close(session_conn(session_of_member(m)), code, reason);
}

const char *sse_conn_refresh(struct chat_member *m, const char *token, size_t len)
{
	struct session *s = session_of_member(m);
	struct conn *c = session_conn(s);
	struct sse_transport *t = transport_of(c);
	const char *why = jwt_check_refresh(token, len, t->config.jwt_secret, t->config.jwt_secret_len,
					    t->config.jwt_leeway, m->user_id, &s->expires);
	if (why)
		return why;
	if (!(s->sse.flags & SSE_F_CLOSED))
		session_set_deadline(c, conn_now(c) + t->config.ping_interval);
	return NULL;
}

/* The response head: no length, the stream ends when the connection does;
 * X-Accel-Buffering keeps nginx from holding events back. */
static void start_stream(struct conn *c, uint8_t flags)
{
	struct session *s = session_of(c);
	s->proto = PROTO_SSE;
	s->skip = 0;
	memset(&s->sse, 0, sizeof(s->sse));
	s->sse.flags = flags;
	char head[512];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 200 OK\r\nServer: ringcast\r\nContent-Type: text/event-stream\r\n"
			 "Cache-Control: no-store\r\nConnection: close\r\nX-Accel-Buffering: no\r\n%s\r\n",
			 HTTP_COMMON_HEADERS);
	struct buf *b = buf_from(head, (size_t)n);
	conn_send(c, b);
	buf_unref(b);
	conn_pin_queue(c); /* the head goes out even if c is dropped in this pass */
}

static void fill_random(uint8_t *out, size_t len)
{
	while (len) {
		ssize_t n = getrandom(out, len, 0);
		if (n < 0)
			abort(); /* the kernel's generator does not fail once booted */
		out += n;
		len -= (size_t)n;
	}
}

void sse_conn_open(struct conn *c, const struct chat_identity *who, const char *room, size_t room_len,
		   const uint64_t *since, int64_t expires)
{
	struct session *s = session_of(c);
	struct sse_transport *t = transport_of(c);
	start_stream(c, 0);
	s->expires = expires;
	s->sse.first_room = sse_room_hash(room, room_len);
	struct sse_key key = { .edge = t->config.edge, .slot = c->slot, .gen = c->gen };
	fill_random(key.secret, sizeof(key.secret));
	memcpy(s->sse.secret, key.secret, sizeof(key.secret));
	char text[SSE_KEY_TEXT_MAX];
	sse_key_format(&key, text);
	char json[160];
	int n = snprintf(json, sizeof(json), "{\"type\":\"session\",\"session\":\"%s\",\"transport\":\"sse\"}",
			 text);
	struct buf *b = sse_event_new(json, (size_t)n, NULL);
	queue_event(c, b, true);
	buf_unref(b);
	t->stats.opened++;
	session_set_deadline(c, conn_now(c) + t->config.ping_interval);
	chat_connect(t->config.chat, &s->member, who, room, room_len, since);
}

void sse_conn_refuse(struct conn *c, uint16_t code, const char *reason)
{
	start_stream(c, SSE_F_NO_MEMBER);
	session_of(c)->expires = 0;
	sse_conn_close(c, code, reason);
}

void sse_conn_deadline(struct conn *c)
{
	struct session *s = session_of(c);
	struct sse_transport *t = transport_of(c);
	if (s->sse.flags & SSE_F_CLOSED) {
		conn_abort(c); /* the client never took its close event */
		return;
	}
	if (s->expires && (int64_t)time(NULL) >= s->expires) {
		s->sse.flags |= SSE_F_EXPIRED;
		sse_conn_close(c, WS_CLOSE_TOKEN_EXPIRED, "token expired");
		return;
	}
	/* a stream is quiet from the client's side by design: no idle close,
	 * a comment keeps proxies from timing it out, and a peer that is gone
	 * stops taking bytes, which the slow-consumer rule catches */
	queue_event(c, t->keepalive, false);
	session_set_deadline(c, conn_now(c) + t->config.ping_interval);
}

void sse_conn_drained(struct conn *c)
{
	struct session *s = session_of(c);
	if (!(s->sse.flags & SSE_F_CLOSED))
		chat_drained(transport_of(c)->config.chat, &s->member);
}

void sse_conn_closing(struct conn *c)
{
	struct session *s = session_of(c);
	if (log_enabled(LOG_DEBUG)) {
		char id[CONN_LOG_ID_LEN];
		conn_log_id(c, id, sizeof(id));
		log_kv(LOG_DEBUG, "connection closed", LOG_STR("conn", id), LOG_STR("proto", "sse"));
	}
	if (!(s->sse.flags & SSE_F_NO_MEMBER)) {
		chat_disconnect(transport_of(c)->config.chat, &s->member);
		transport_of(c)->stats.closed++;
	}
}

/* The stream p names, if it is on this edge and the key's secret is its
 * own (compared in constant time: it is the only credential): open, or
 * ended by its sign-in running out and still draining, so that a POST
 * racing the close event learns why (401) rather than just that it went. */
static struct conn *find_stream(struct conns *cs, const struct sse_post *p)
{
	struct conn *c = conns_find(cs, p->key.slot, p->key.gen);
	if (!c)
		return NULL;
	struct session *s = session_of(c);
	if (s->proto != PROTO_SSE || transport_of(c)->config.edge != p->key.edge ||
	    CRYPTO_memcmp(s->sse.secret, p->key.secret, sizeof(s->sse.secret)) != 0)
		return NULL;
	if (s->sse.flags & SSE_F_EXPIRED)
		return c;
	if (c->state != CONN_OPEN || (s->sse.flags & (SSE_F_CLOSED | SSE_F_NO_MEMBER)))
		return NULL;
	return c;
}

void sse_post_run(struct conns *cs, struct sse_post *p)
{
	p->ran = true;
	struct conn *c = find_stream(cs, p);
	if (!c) {
		p->status = 404;
		return;
	}
	struct session *s = session_of(c);
	if ((s->sse.flags & SSE_F_EXPIRED) || (s->expires && (int64_t)time(NULL) >= s->expires)) {
		p->status = 401; /* the stream closes with 4002 at its deadline, within a tick */
		return;
	}
	struct sse_transport *t = transport_of(c);
	t->capture = &s->member;
	chat_receive(t->config.chat, &s->member, p->body, p->len);
	t->capture = NULL;
	struct buf *err = t->captured;
	t->captured = NULL;
	if (!err) {
		/* closed by the command (the flood rule's 1008 for persistent
		 * abuse): nothing was sent, and the session is gone */
		p->status = s->sse.flags & SSE_F_CLOSED ? 404 : 202;
		return;
	}
	size_t len;
	const char *json = buf_payload(err, &len);
	bool limited = len >= sizeof(RATE_LIMITED_PREFIX) - 1 &&
		       memcmp(json, RATE_LIMITED_PREFIX, sizeof(RATE_LIMITED_PREFIX) - 1) == 0;
	p->status = limited ? 429 : 400;
	p->error = malloc(len);
	if (!p->error)
		abort();
	memcpy(p->error, json, len);
	p->error_len = len;
	buf_unref(err);
}
