/* ws_conn.c: the WebSocket side of a connection.
 *
 * Bytes from the ring go straight through the frame parser, unmasked in the
 * receive buffer itself. A message that arrives whole in one buffer reaches
 * chat without a copy; only a message split across reads or fragments is
 * gathered in c->in. The parser, the close handshake's flags and the chat
 * member are the connection's session (session.h). */
#include "ws_conn.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "chat.h"
#include "conn.h"
#include "jwt.h"
#include "log.h"
#include "session.h"
#include "utf8.h"
#include "ws.h"
#include "ws_deflate.h"

#define WS_F_CLOSE_SENT 0x01
#define WS_F_CLOSE_RCVD 0x02
#define WS_F_CLIENT_CLOSED 0x04 /* the client's close frame came first */
#define WS_F_NO_MEMBER 0x08 /* refused before joining: chat never saw it */
#define WS_F_DEFLATE 0x10 /* permessage-deflate was negotiated */
/* The top four bits: the server_max_window_bits the client asked for
 * (8..15), 0 when it did not ask. */
#define WS_F_WINDOW_SHIFT 12

/* The WebSocket side of one ring: its settings and counters. Every
 * connection finds it through its ring's sessions (session.h). */
struct ws_transport {
	struct ws_conn_config config;
	struct ws_conn_stats stats;
	/* permessage-deflate's compressor and inflater for every connection
	 * of this edge (NULL with --no-deflate) */
	struct ws_deflate *deflate;
};

static struct ws_transport *transport_of(const struct conn *c)
{
	return sessions_of(c)->ws;
}

const uint16_t ws_close_codes_counted[WS_CLOSE_CODES_COUNTED] = {
	1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011,
};

static void count_close(struct ws_transport *t, uint16_t code)
{
	for (int i = 0; i < WS_CLOSE_CODES_COUNTED; i++)
		if (ws_close_codes_counted[i] == code)
			t->stats.closes[i]++;
}

struct ws_transport *ws_transport_new(const struct ws_conn_config *cfg)
{
	struct ws_transport *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->config = *cfg;
	/* from seconds to the connection clock's ticks */
	t->config.ping_interval *= CONN_TICKS_PER_SEC;
	t->config.idle_timeout *= CONN_TICKS_PER_SEC;
	t->config.close_timeout *= CONN_TICKS_PER_SEC;
	if (cfg->deflate && !(t->deflate = ws_deflate_new(cfg->max_message))) {
		free(t);
		return NULL;
	}
	return t;
}

void ws_transport_free(struct ws_transport *t)
{
	if (t)
		ws_deflate_free(t->deflate);
	free(t);
}

bool ws_conn_deflate_enabled(const struct conn *c)
{
	return transport_of(c)->deflate != NULL;
}

const struct ws_conn_stats *ws_transport_stats(const struct ws_transport *t)
{
	return &t->stats;
}

static struct buf *control_frame(enum ws_opcode op, const uint8_t *payload, size_t len)
{
	size_t h = ws_header_len(len);
	struct buf *b = buf_new(h + len);
	ws_write_header(b->data, op, len);
	if (len)
		memcpy(b->data + h, payload, len);
	b->payload = (uint16_t)h; /* framed already: ws_conn_deliver leaves it as it is */
	return b;
}

static void send_close_frame(struct conn *c, uint16_t code, const char *reason, bool bounded)
{
	uint8_t payload[125];
	size_t len = 0;
	if (code != WS_CLOSE_NO_STATUS) {
		size_t rlen = reason ? strlen(reason) : 0;
		if (rlen > sizeof(payload) - 2)
			rlen = sizeof(payload) - 2;
		payload[0] = (uint8_t)(code >> 8);
		payload[1] = (uint8_t)code;
		if (rlen)
			memcpy(payload + 2, reason, rlen);
		len = 2 + rlen;
	}
	struct buf *b = control_frame(WS_OP_CLOSE, payload, len);
	bool queued = bounded ? conn_send(c, b) : conn_send_unbounded(c, b);
	buf_unref(b);
	if (!queued && bounded) {
		/* No room even for the close frame: drop what waits, then insist. */
		conn_drop_queue(c);
		b = control_frame(WS_OP_CLOSE, payload, len);
		conn_send_unbounded(c, b);
		buf_unref(b);
	}
	struct session *s = session_of(c);
	s->ws_flags |= WS_F_CLOSE_SENT;
	if (!s->close_code)
		s->close_code = code;
	count_close(transport_of(c), code);
}

/* A protocol violation: say why, then close without waiting for a reply. */
static void fail(struct conn *c, uint16_t code)
{
	if (!(session_of(c)->ws_flags & WS_F_CLOSE_SENT))
		send_close_frame(c, code, NULL, true);
	conn_close(c);
}

void ws_conn_close(struct conn *c, uint16_t code, const char *reason)
{
	if (session_of(c)->ws_flags & WS_F_CLOSE_SENT)
		return;
	send_close_frame(c, code, reason, true);
	/* Keep reading for the client's close, up to --close-timeout. */
	conn_set_deadline(c, conn_now(c) + transport_of(c)->config.close_timeout);
}

/* Is b (framed) a chat payload, not a control frame made here? */
static bool is_text_frame(struct buf *b)
{
	return buf_out(b)[0] == (0x80 | WS_OP_TEXT);
}

/* Does s get payload b compressed? Only what is worth it (the threshold),
 * and with a window asked for (server_max_window_bits), only what fits
 * it: a message no longer than the window never refers back past its
 * start, whatever window compressed it, so one compressed frame serves
 * every client. Longer ones go plain, as RFC 7692 §6 allows. */
static bool deflate_for(const struct ws_transport *t, const struct session *s, struct buf *b)
{
	if (!(s->ws_flags & WS_F_DEFLATE) || !is_text_frame(b))
		return false;
	size_t len = b->len - b->payload;
	unsigned bits = s->ws_flags >> WS_F_WINDOW_SHIFT;
	return len >= t->config.deflate_threshold && (!bits || len <= (size_t)1 << bits);
}

/* What goes out to s for b (framed): b itself for most, the compressed
 * variant, made by its first recipient on this edge, for the others. */
static struct buf *frame_for(struct ws_transport *t, const struct session *s, struct buf *b)
{
	if (!deflate_for(t, s, b))
		return b;
	struct buf *z = buf_variant(b, BUF_VARIANT_DEFLATE);
	if (!z) {
		size_t len;
		const void *payload = buf_payload(b, &len);
		z = buf_set_variant(b, BUF_VARIANT_DEFLATE, ws_deflate_frame(t->deflate, payload, len));
		t->stats.deflate_frames++;
		t->stats.deflate_bytes_in += len;
		t->stats.deflate_bytes_out += z->len - z->payload;
	}
	t->stats.deflate_sends++;
	return z;
}

void ws_conn_deliver(struct chat_member *m, struct buf *payload)
{
	struct session *s = session_of_member(m);
	struct conn *c = session_conn(s);
	/* chat hands over payloads: the first recipient frames the buf in
	 * place, every other one sends the same bytes. */
	ws_frame_text_in_place(payload);
	if (c->state != CONN_OPEN || (s->ws_flags & WS_F_CLOSE_SENT))
		return; /* no data frames after our close frame */
	struct buf *frame = frame_for(transport_of(c), s, payload);
	if (conn_send(c, frame))
		return;
	/* Over --max-queue: a client that does not read must not grow our
	 * memory. It gets a close frame if it ever reads again, and is
	 * dropped at the close deadline otherwise. */
	log_info("connection %u: slow consumer, %s", m->id, "dropping its queue and closing");
	conn_drop_queue(c);
	send_close_frame(c, WS_CLOSE_POLICY, "slow consumer", false);
	conn_close(c);
}

void ws_conn_deliver_own(struct chat_member *m, struct buf *payload)
{
	struct session *s = session_of_member(m);
	struct conn *c = session_conn(s);
	ws_frame_text_in_place(payload);
	if (c->state != CONN_OPEN || (s->ws_flags & WS_F_CLOSE_SENT))
		return;
	/* The client asked for this itself: a fast burst's acknowledgements
	 * never make it a slow consumer (its other traffic still does). */
	conn_send_unbounded(c, frame_for(transport_of(c), s, payload));
}

size_t ws_conn_backlog(struct chat_member *m)
{
	struct session *s = session_of_member(m);
	struct conn *c = session_conn(s);
	if (c->state != CONN_OPEN || (s->ws_flags & WS_F_CLOSE_SENT))
		return SIZE_MAX;
	return conn_queued(c);
}

void ws_conn_drained(struct conn *c)
{
	struct session *s = session_of(c);
	if (!(s->ws_flags & WS_F_CLOSE_SENT))
		chat_drained(transport_of(c)->config.chat, &s->member);
}

void ws_conn_kick(struct chat_member *m, uint16_t code, const char *reason)
{
	struct session *s = session_of_member(m);
	struct conn *c = session_conn(s);
	if (c->state != CONN_OPEN || (s->ws_flags & WS_F_CLOSE_SENT))
		return;
	send_close_frame(c, code, reason, true);
	conn_close(c);
}

void ws_conn_open(struct conn *c, const struct chat_identity *who, const char *room, size_t room_len,
		  const uint64_t *since, int64_t expires, unsigned deflate)
{
	struct session *s = session_of(c);
	struct ws_transport *t = transport_of(c);
	s->proto = PROTO_WS;
	s->ws_flags = 0;
	if (deflate) {
		s->ws_flags = WS_F_DEFLATE | (uint16_t)((deflate < 15 ? deflate : 0) << WS_F_WINDOW_SHIFT);
		t->stats.deflate_opened++;
	}
	s->close_code = 0; /* in the room of HTTP's skip */
	s->expires = expires;
	conn_pin_queue(c); /* the 101 goes out even if c is dropped in this pass */
	ws_parser_init(&s->ws, t->config.max_message, deflate);
	t->stats.opened++;
	session_set_deadline(c, conn_now(c) + t->config.ping_interval);
	chat_connect(t->config.chat, &s->member, who, room, room_len, since);
}

void ws_conn_refuse(struct conn *c, uint16_t code, const char *reason)
{
	struct session *s = session_of(c);
	struct ws_transport *t = transport_of(c);
	s->proto = PROTO_WS;
	s->ws_flags = WS_F_NO_MEMBER;
	s->expires = 0;
	conn_pin_queue(c);
	ws_parser_init(&s->ws, t->config.max_message, false);
	/* a clean close: the client's close frame is awaited, so a browser
	 * reports this code, not 1006 */
	ws_conn_close(c, code, reason);
}

const char *ws_conn_refresh(struct chat_member *m, const char *token, size_t len)
{
	struct session *s = session_of_member(m);
	struct conn *c = session_conn(s);
	struct ws_transport *t = transport_of(c);
	const char *why = jwt_check_refresh(token, len, t->config.jwt_secret, t->config.jwt_secret_len,
					    t->config.jwt_leeway, m->user_id, &s->expires);
	if (why)
		return why;
	if (!(s->ws_flags & WS_F_CLOSE_SENT))
		session_set_deadline(c, c->last_rx + t->config.ping_interval);
	return NULL;
}

void ws_conn_closing(struct conn *c)
{
	struct session *s = session_of(c);
	if (log_enabled(LOG_DEBUG)) {
		char id[CONN_LOG_ID_LEN];
		conn_log_id(c, id, sizeof(id));
		/* no close frame either way: 1006, as RFC 6455 §7.1.5 names it */
		log_kv(LOG_DEBUG, "connection closed", LOG_STR("conn", id), LOG_STR("proto", "websocket"),
		       LOG_NUM("code", s->close_code ? s->close_code : 1006),
		       LOG_STR("by", (s->ws_flags & WS_F_CLIENT_CLOSED) ? "client"
				     : s->close_code		      ? "server"
								      : "none"));
	}
	if (!(s->ws_flags & WS_F_NO_MEMBER))
		chat_disconnect(transport_of(c)->config.chat, &s->member);
	/* a control frame cut short by the close; nothing is read after it */
	free(s->ctrl);
	s->ctrl = NULL;
}

static void handle_control(struct conn *c, uint8_t opcode, uint8_t *payload, size_t len)
{
	struct session *s = session_of(c);
	if (opcode == WS_OP_PING) {
		/* every pong costs a send: pings count against the flood limit */
		if ((s->ws_flags & WS_F_CLOSE_SENT) || !chat_allow(transport_of(c)->config.chat, &s->member))
			return;
		struct buf *pong = control_frame(WS_OP_PONG, payload, len);
		if (!conn_send(c, pong))
			ws_conn_deliver(&s->member, pong); /* takes the slow-consumer path */
		buf_unref(pong);
	} else if (opcode == WS_OP_CLOSE) {
		uint16_t code;
		uint16_t bad = ws_check_close_payload(payload, len, &code);
		s->ws_flags |= WS_F_CLOSE_RCVD;
		if (!(s->ws_flags & WS_F_CLOSE_SENT)) {
			s->ws_flags |= WS_F_CLIENT_CLOSED;
			if (!bad)
				s->close_code = code; /* a bad one: the 1002 we answer with */
		}
		if (bad) {
			fail(c, bad);
			return;
		}
		/* Echo the client's code (RFC 6455 §5.5.1), unless we spoke first. */
		if (!(s->ws_flags & WS_F_CLOSE_SENT))
			send_close_frame(c, code, NULL, true);
		conn_close(c);
	}
	/* PONG: its arrival already counted as traffic */
}

static void on_message(struct conn *c, const uint8_t *text, size_t len)
{
	struct session *s = session_of(c);
	if (s->ws_flags & WS_F_CLOSE_SENT)
		return; /* closing: the client's late messages are not chat any more */
	struct ws_transport *t = transport_of(c);
	t->stats.messages_in++;
	chat_receive(t->config.chat, &s->member, (const char *)text, len);
}

/* A compressed message, whole: inflate it with the edge's inflater, within
 * --max-message, then check its text as the parser does plain text. */
static void on_compressed_message(struct conn *c, const uint8_t *data, size_t len)
{
	struct ws_transport *t = transport_of(c);
	const uint8_t *text;
	size_t n;
	if (session_of(c)->ws_flags & WS_F_CLOSE_SENT)
		return; /* not chat any more (on_message): not worth inflating */
	uint16_t err = ws_inflate_message(t->deflate, data, len, &text, &n);
	if (!err && !utf8_valid(text, n))
		err = WS_CLOSE_BAD_DATA;
	if (err) {
		fail(c, err);
		return;
	}
	t->stats.messages_inflated++;
	on_message(c, text, n);
}

static void on_data_event(struct conn *c, const struct ws_event *ev)
{
	if (ev->opcode != WS_OP_TEXT) {
		fail(c, WS_CLOSE_UNSUPPORTED); /* binary is not part of the chat protocol */
		return;
	}
	void (*whole)(struct conn *, const uint8_t *, size_t) = ev->compressed ? on_compressed_message
									      : on_message;
	if (ev->first && ev->last) {
		whole(c, ev->data, ev->len);
		return;
	}
	conn_keep_input(c, ev->data, ev->len); /* bounded by --max-message */
	if (ev->last) {
		whole(c, c->in, c->in_len);
		conn_drop_input(c);
	}
}

static void on_control_event(struct conn *c, const struct ws_event *ev)
{
	if (ev->first && ev->last) {
		handle_control(c, ev->opcode, ev->data, ev->len);
		return;
	}
	struct session *s = session_of(c);
	if (!s->ctrl) {
		s->ctrl = malloc(125);
		if (!s->ctrl)
			abort();
		s->ctrl_len = 0;
	}
	memcpy(s->ctrl + s->ctrl_len, ev->data, ev->len); /* ≤ 125 in all: the parser checks */
	s->ctrl_len = (uint8_t)(s->ctrl_len + ev->len);
	if (ev->last) {
		handle_control(c, ev->opcode, s->ctrl, s->ctrl_len);
		free(s->ctrl);
		s->ctrl = NULL;
		s->ctrl_len = 0;
	}
}

void ws_conn_data(struct conn *c, uint8_t *data, size_t len)
{
	struct session *s = session_of(c);
	size_t off = 0;
	while (c->state == CONN_OPEN && !(s->ws_flags & WS_F_CLOSE_RCVD)) {
		struct ws_event ev;
		off += ws_parse(&s->ws, data + off, len - off, &ev);
		switch (ev.type) {
		case WS_EV_NEED_MORE:
			return;
		case WS_EV_DATA:
			on_data_event(c, &ev);
			break;
		case WS_EV_CONTROL:
			on_control_event(c, &ev);
			break;
		case WS_EV_ERROR:
			fail(c, ev.close_code);
			return;
		}
	}
}

void ws_conn_deadline(struct conn *c)
{
	struct session *s = session_of(c);
	struct ws_transport *t = transport_of(c);
	uint32_t now = conn_now(c);
	if (s->ws_flags & WS_F_CLOSE_SENT) {
		conn_abort(c); /* the client never answered our close */
		return;
	}
	if (s->expires && (int64_t)time(NULL) >= s->expires) {
		ws_conn_close(c, WS_CLOSE_TOKEN_EXPIRED, "token expired");
		return;
	}
	uint32_t quiet = now - c->last_rx;
	if (quiet >= t->config.idle_timeout) {
		/* Presumed gone (half-open): say why, but do not wait for it. */
		send_close_frame(c, WS_CLOSE_GOING_AWAY, "idle timeout", true);
		conn_close(c);
		return;
	}
	if (quiet >= t->config.ping_interval) {
		struct buf *ping = control_frame(WS_OP_PING, NULL, 0);
		ws_conn_deliver(&s->member, ping); /* a client stalled since is dropped here */
		buf_unref(ping);
		t->stats.pings_sent++;
		session_set_deadline(c, c->last_rx + t->config.idle_timeout);
		return;
	}
	session_set_deadline(c, c->last_rx + t->config.ping_interval);
}
