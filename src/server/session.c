/* session.c: what a new connection's session starts as, and which
 * transport a chat member's events go to.
 *
 * The sessions themselves live in the connection layer's slots, one table
 * per struct conns (session.h): nothing here is kept at file level. */
#include "session.h"

#include <time.h>

#include "sse_conn.h"
#include "ws_conn.h"

void session_open(struct session *s)
{
	/* what the last connection in this slot left behind was released at
	 * its closing (ws_conn_closing, sse_conn_closing) */
	*s = (struct session){ .proto = PROTO_HTTP };
}

void session_set_deadline(struct conn *c, uint32_t at)
{
	struct session *s = session_of(c);
	if (s->expires) {
		int64_t left = s->expires - (int64_t)time(NULL);
		uint32_t now = conn_now(c);
		if (left <= 0)
			at = now;
		else if ((uint64_t)left * CONN_TICKS_PER_SEC < (uint32_t)(at - now))
			at = now + (uint32_t)left * CONN_TICKS_PER_SEC;
	}
	conn_set_deadline(c, at);
}

/* Chat calls one send function for every member; a member is a WebSocket
 * connection or an SSE stream, which its session tells. */

static bool on_stream(struct chat_member *m)
{
	return session_of_member(m)->proto == PROTO_SSE;
}

void session_send(struct chat_member *m, struct buf *payload)
{
	if (on_stream(m))
		sse_conn_deliver(m, payload);
	else
		ws_conn_deliver(m, payload);
}

void session_send_own(struct chat_member *m, struct buf *payload)
{
	if (on_stream(m))
		sse_conn_deliver_own(m, payload);
	else
		ws_conn_deliver_own(m, payload);
}

size_t session_backlog(struct chat_member *m)
{
	return on_stream(m) ? sse_conn_backlog(m) : ws_conn_backlog(m);
}

void session_kick(struct chat_member *m, uint16_t code, const char *reason)
{
	if (on_stream(m))
		sse_conn_kick(m, code, reason);
	else
		ws_conn_kick(m, code, reason);
}

const char *session_refresh(struct chat_member *m, const char *token, size_t len)
{
	return on_stream(m) ? sse_conn_refresh(m, token, len) : ws_conn_refresh(m, token, len);
}
