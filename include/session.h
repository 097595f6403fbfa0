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

#include <stdint.h>

#include "chat.h"
#include "conn.h"
#include "ws.h"

/* Which protocol reads the connection's bytes. */
enum session_proto {
	PROTO_HTTP = 0,
	PROTO_WS,
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
	/* An API request waiting for the chat's answer (api.c): no further
	 * request is read until it is answered */
	struct api_call *api;
	int64_t expires;     /* sign-in runs out (seconds since the epoch); 0: never */
	struct ws_parser ws;
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
};

static inline struct sessions *sessions_of(const struct conn *c)
{
	return conn_ctx(c);
}

/* A new connection speaks HTTP and has nothing gathered. */
void session_open(struct session *s);

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

#endif
