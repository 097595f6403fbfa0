/* ws_conn.h: a connection after the upgrade: frames in, chat messages and
 * control frames handled, the close handshake and idle pings. */
#ifndef RINGCAST_WS_CONN_H
#define RINGCAST_WS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct buf;
struct chat;
struct chat_member;
struct chat_identity;

struct ws_conn_config {
	uint64_t max_message;
	uint32_t ping_interval;
	uint32_t idle_timeout;
	uint32_t close_timeout;
	/* The chat every member on this ring belongs to. */
	struct chat *chat;
	/* Sign-in, for `refresh` (NULL: no sign-in). */
	const uint8_t *jwt_secret;
	size_t jwt_secret_len;
	int64_t jwt_leeway;
	/* permessage-deflate (--no-deflate turns it off): payloads of at
	 * least deflate_threshold bytes go compressed to the connections
	 * that negotiated it */
	bool deflate;
	uint32_t deflate_threshold;
};

/* Close codes counted for /metrics, by the code we sent. */
#define WS_CLOSE_CODES_COUNTED 8

struct ws_conn_stats {
	uint64_t opened;
	uint64_t messages_in;      /* complete text messages received */
	uint64_t pings_sent;
	uint64_t closes[WS_CLOSE_CODES_COUNTED]; /* index: ws_close_code_index() */
	/* permessage-deflate */
	uint64_t deflate_opened;     /* connections that negotiated it */
	uint64_t deflate_frames;     /* compressed frames built (once per payload) */
	uint64_t deflate_bytes_in;   /* ... their payload bytes before compression */
	uint64_t deflate_bytes_out;  /* ... and after */
	uint64_t deflate_sends;      /* deliveries of a compressed frame */
	uint64_t messages_inflated;  /* compressed messages received whole and valid */
};

/* The WebSocket side of one ring (its settings and counters), found by
 * each connection through its ring's sessions (session.h). */
struct ws_transport;

struct ws_transport *ws_transport_new(const struct ws_conn_config *cfg);
void ws_transport_free(struct ws_transport *t);
const struct ws_conn_stats *ws_transport_stats(const struct ws_transport *t);

/* Switch c to WebSocket after the 101 was queued; join the room (replaying
 * what was missed after *since, when given). who is NULL for a new guest.
 * deflate: 0 when permessage-deflate was not negotiated; otherwise the
 * server_max_window_bits the client asked for, or 15.
 * expires: when the sign-in runs out (seconds since the epoch, leeway
 * included; 0: never) unless a `refresh` moves it: closed with 4002. */
void ws_conn_open(struct conn *c, const struct chat_identity *who, const char *room, size_t room_len,
		  const uint64_t *since, int64_t expires, unsigned deflate);
/* Is permessage-deflate on for c's edge (not --no-deflate)? */
bool ws_conn_deflate_enabled(const struct conn *c);
/* Switch c to WebSocket after the 101 only to close it at once with code
 * and reason: a refused sign-in the page can read. */
void ws_conn_refuse(struct conn *c, uint16_t code, const char *reason);
/* chat's refresh: a new sign-in token for m's session (chat.h). */
const char *ws_conn_refresh(struct chat_member *m, const char *token, size_t len);
void ws_conn_data(struct conn *c, uint8_t *data, size_t len);
void ws_conn_deadline(struct conn *c);
void ws_conn_closing(struct conn *c);

/* Begin a server-initiated close with code (e.g. 1001 at shutdown). */
void ws_conn_close(struct conn *c, uint16_t code, const char *reason);

/* chat's send function: frame the payload as a text frame, in place and
 * once per buf (ws_frame_text_in_place), and queue it for the member's
 * connection. A buf already framed (a control frame) is queued as it is.
 * A connection that negotiated permessage-deflate gets a payload of at
 * least deflate_threshold bytes as the buf's compressed variant instead,
 * made by its first such recipient on this edge. */
void ws_conn_deliver(struct chat_member *m, struct buf *frame);
/* chat's send_own: the sender's own copy of its message, never refused
 * for what is queued. */
void ws_conn_deliver_own(struct chat_member *m, struct buf *frame);
/* chat's backlog: bytes queued for the member (SIZE_MAX when closing). */
size_t ws_conn_backlog(struct chat_member *m);
/* The connection's queue went below its low-water mark. */
void ws_conn_drained(struct conn *c);
/* chat's close function: close the member's connection with code. */
void ws_conn_kick(struct chat_member *m, uint16_t code, const char *reason);

/* The close codes counted, in index order, and the index of one. */
extern const uint16_t ws_close_codes_counted[WS_CLOSE_CODES_COUNTED];

#endif
