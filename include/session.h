/* session.h: what the protocols keep per connection.
 *
 * The connection layer knows sockets, queues and lifecycles. Which protocol
 * reads a connection's bytes, and that protocol's state, is a session: one
 * per connection slot, in a table beside the connection table. */
#ifndef RINGCAST_SESSION_H
#define RINGCAST_SESSION_H

#include <stdint.h>

#include "chat.h"
#include "ws.h"

struct conn;

/* Which protocol reads the connection's bytes. */
enum session_proto {
	PROTO_HTTP = 0,
	PROTO_WS,
};

struct session {
	uint8_t proto;       /* enum session_proto */
	uint8_t ctrl_len;    /* bytes gathered in ctrl */
	uint16_t ws_flags;   /* WS_F_* (ws_conn.c) */
	/* HTTP request body bytes still to discard: a larger body than
	 * http_conn.c discards (64 KiB) is refused, not read, so 32 bits do */
	uint32_t skip;
	uint8_t *ctrl;       /* control frame payload gathered from pieces */
	struct ws_parser ws;
	struct chat_member member;
};

/* One session for each of max_connections slots. */
int session_init(uint32_t max_connections);
void session_destroy(void);

/* A new connection speaks HTTP and has nothing gathered. */
void session_open(struct session *s);

/* The session of connection c, and the connection of session s. */
struct session *session_of(const struct conn *c);
struct conn *session_conn(const struct session *s);

#endif
