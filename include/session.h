/* session.h: what the protocols keep per connection.
 *
 * The connection layer knows sockets, queues and lifecycles. Which protocol
 * reads a connection's bytes, and that protocol's state, is a session: one
 * per connection slot, kept by the connection layer right after the
 * connection as its user storage (conn_config.user_size, conn_user), so
 * each ring's struct conns holds its own sessions and finding one from the
 * other is a fixed offset. */
#ifndef RINGCAST_SESSION_H
#define RINGCAST_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "chat.h"
#include "conn.h"
#include "ws.h"

/* Which protocol reads the connection's bytes. */
enum session_proto {
	PROTO_HTTP = 0,
	PROTO_WS,
	PROTO_SSE,  /* a Server-Sent Events stream (sse_conn.c) */
};

/* What an SSE stream keeps in the room of the WebSocket parser. */
struct sse_stream {
	uint8_t secret[16];   /* the random part of its session key (sse_event.h) */
	uint64_t first_room;  /* sse_room_hash of ?room=: its messages get id: lines */
	uint8_t flags;        /* SSE_F_* (sse_conn.c) */
};

/* A request waiting for an answer from elsewhere (the chat's order for
 * the server API, the stream's edge for POST /send): the connection reads
 * no further request until it is answered. At the connection's closing,
 * cancel tells the waiter that its answer has no one to go to. */
struct http_wait {
	void (*cancel)(struct http_wait *w);
};

struct session {
	uint8_t proto;       /* enum session_proto */
	uint8_t ctrl_len;    /* bytes gathered in ctrl */
	uint16_t ws_flags;   /* WS_F_* (ws_conn.c) */
	/* One phase's or the other's, sharing the room (per connection, it counts) */
	union {
		/* HTTP request body bytes still to discard: a larger body than
		 * http_conn.c discards (64 KiB) is refused, not read, so 32 bits do */
		uint32_t skip;
		/* WebSocket: the close handshake's code, whoever spoke first;
		 * 0: none yet (for --verbose's line at the close) */
		uint16_t close_code;
	};
	uint8_t *ctrl;       /* control frame payload gathered from pieces */
	struct http_wait *wait;
	int64_t expires;     /* sign-in runs out (seconds since the epoch); 0: never */
	union {
		struct ws_parser ws;
		struct sse_stream sse;
	};
	struct chat_member member;
};

/* The slot keeps it right after struct conn, aligned as that is. */
_Static_assert(_Alignof(struct session) <= _Alignof(struct conn),
	       "a session must fit the alignment of the slot it lives in");

/* What the protocols keep per ring (their settings and counters): the
 * ctx of the ring's struct conns, so every connection finds it. */
struct sessions {
	struct http_transport *http;
	struct ws_transport *ws;
	struct sse_transport *sse;
};

static inline struct sessions *sessions_of(const struct conn *c)
{
	return conn_ctx(c);
}

/* c's next deadline at, but no later than its sign-in's end (expires):
 * the deadline is what ends a session whose token ran out, on either
 * transport. */
void session_set_deadline(struct conn *c, uint32_t at);

/* A new connection speaks HTTP and has nothing gathered. */
void session_open(struct session *s);

/* chat's callbacks (chat.h), handing each to the member's transport:
 * ws_conn.h's or sse_conn.h's. */
void session_send(struct chat_member *m, struct buf *payload);
void session_send_own(struct chat_member *m, struct buf *payload);
size_t session_backlog(struct chat_member *m);
void session_kick(struct chat_member *m, uint16_t code, const char *reason);
const char *session_refresh(struct chat_member *m, const char *token, size_t len);

/* The session of connection c (conn_config.user_size is sizeof(struct
 * session)), and the connection of session s. */
static inline struct session *session_of(struct conn *c)
{
	return conn_user(c);
}

static inline struct conn *session_conn(struct session *s)
{
	return conn_of_user(s);
}

/* The session a chat member is kept in (chat's callbacks get the member). */
static inline struct session *session_of_member(struct chat_member *m)
{
	return (struct session *)((char *)m - offsetof(struct session, member));
}

#endif
