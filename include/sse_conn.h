/* sse_conn.h: the Server-Sent Events fallback (docs/protocol.md): a chat
 * member whose events go out on a text/event-stream response (GET /sse),
 * and whose commands come in as POST /send requests, on any edge, naming
 * the stream by its session key. */
#ifndef RINGCAST_SSE_CONN_H
#define RINGCAST_SSE_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session.h"
#include "sse_event.h"

struct conn;
struct conns;
struct buf;
struct chat;
struct chat_member;
struct chat_identity;

struct sse_conn_config {
	uint32_t ping_interval;  /* seconds between keep-alive comments */
	unsigned edge;           /* this ring's edge, named in its streams' keys */
	/* The chat every member on this ring belongs to. */
	struct chat *chat;
	/* Sign-in, for `refresh` (NULL: no sign-in). */
	const uint8_t *jwt_secret;
	size_t jwt_secret_len;
	int64_t jwt_leeway;
};

/* The POST /send statuses counted for /metrics, in index order. */
#define SSE_POST_STATUSES 9
extern const uint16_t sse_post_statuses[SSE_POST_STATUSES];

struct sse_conn_stats {
	uint64_t opened;      /* streams that joined the chat */
	uint64_t closed;      /* ... and have ended since */
	uint64_t events;      /* events queued on streams */
	uint64_t encoded;     /* events written (a payload's variant), shared by the streams queuing them */
	uint64_t handoffs;    /* POSTs handed to the edge holding their stream */
	uint64_t posts[SSE_POST_STATUSES]; /* answers, by sse_post_statuses */
};

/* The SSE side of one ring (its settings and counters), found by each
 * connection through its ring's sessions (session.h). */
struct sse_transport;

struct sse_transport *sse_transport_new(const struct sse_conn_config *cfg);
void sse_transport_free(struct sse_transport *t);
const struct sse_conn_stats *sse_transport_stats(const struct sse_transport *t);
/* Count a POST /send answered with status. */
void sse_transport_count_post(struct sse_transport *t, int status);
/* Count a POST handed to another edge. */
void sse_transport_count_handoff(struct sse_transport *t);

/* Answer GET /sse with the stream's head and its session event, and join
 * the room (replaying what was missed after *since, when given), as
 * ws_conn_open does for a WebSocket. */
void sse_conn_open(struct conn *c, const struct chat_identity *who, const char *room, size_t room_len,
		   const uint64_t *since, int64_t expires);
/* Answer GET /sse with the stream's head and one close event (a refused
 * sign-in), then end it. */
void sse_conn_refuse(struct conn *c, uint16_t code, const char *reason);
/* End the stream with a close event (1001 at shutdown). */
void sse_conn_close(struct conn *c, uint16_t code, const char *reason);
void sse_conn_deadline(struct conn *c);
void sse_conn_drained(struct conn *c);
void sse_conn_closing(struct conn *c);

/* chat's callbacks for a member on a stream (ws_conn.h has the same). */
void sse_conn_deliver(struct chat_member *m, struct buf *payload);
void sse_conn_deliver_own(struct chat_member *m, struct buf *payload);
size_t sse_conn_backlog(struct chat_member *m);
void sse_conn_kick(struct chat_member *m, uint16_t code, const char *reason);
const char *sse_conn_refresh(struct chat_member *m, const char *token, size_t len);

/* One POST /send on its way: made by the edge it came in on, run by the
 * edge that holds the stream, answered back on the first. The edges'
 * mailboxes carry it between them; it outlives its connection if that
 * closes meanwhile (conn NULL), and its stream is found again by slot and
 * generation, so neither side's closing leaves the other a stale pointer. */
struct sse_post {
	struct http_wait wait;   /* first: the POST's session.wait while it waits */
	struct sse_post *next;   /* in a mailbox */
	struct conn *conn;       /* the POST's connection; NULL once it closed */
	unsigned from;           /* the edge it came in on */
	bool keep_alive;
	bool ran;                /* the stream's edge has run it: status is the answer */
	int status;              /* 202, 400, 401, 404 or 429 */
	char *error;             /* 400, 429: the chat's error event (malloc'd) */
	size_t error_len;
	struct sse_key key;
	size_t len;
	char body[];             /* the command, valid UTF-8 */
};

/* On the edge that holds the stream (cs: its connections): run the
 * command through chat_receive, exactly as a WebSocket text frame's. An
 * error the chat answers at once becomes the status (400, or 429 for the
 * flood limit) instead of a stream event; anything else it sends the
 * member meanwhile (a join's presence and history) goes on the stream. */
void sse_post_run(struct conns *cs, struct sse_post *p);
/* Back on the edge it came in on (sse_post.c): answer the POST, if its
 * connection is still there, and free p. */
void sse_post_finish(struct sse_post *p);

#endif
