/* chat.h: the chat protocol: rooms, members, names, history and fan-out.
 *
 * Chat knows nothing of sockets, the ring or frame headers. It takes
 * complete text messages from members and hands events, JSON payloads with
 * room left for a transport's header (buf.h), to a send function; each is
 * built once and the same buffer goes to every recipient. With a store, a
 * message is broadcast (and so acknowledged to its sender) only once the
 * store has committed it.
 *
 * All of chat's state (rooms, history, member ids, pending store work,
 * stats) lives in one struct chat, made by chat_new and passed to every call
 * that needs it; two chats in one process share nothing. A member belongs to
 * the chat it connected to, and its caller passes that chat along with it
 * (no pointer back from the member: 8 bytes a connection saved). */
#ifndef RINGCAST_CHAT_H
#define RINGCAST_CHAT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rate_limit.h"

struct buf;
struct chat;
struct chat_room;
struct room_quota;
struct sequencer;
struct store;
struct store_room;

#define CHAT_ROOM_MAX 64
#define CHAT_ROOMS_PER_MEMBER 16

struct chat_membership {
	struct chat_room *room;
	uint32_t index;      /* position in the room's member array */
	uint32_t epoch;      /* tells this membership from an earlier one in the same room */
	bool held;           /* catching up: live messages are held back */
	bool joining;        /* its join waits for its place in the room's order (sequencer) */
	uint32_t catchup;    /* the replay being paced out here (chat.c), 0: none */
	uint64_t live_from;  /* the room's last id when it went live */
};

struct chat_member {
	uint32_t id;                    /* connection id, unique in its chat */
	uint32_t mark;                  /* de-duplicates an event sent through several rooms */
	uint8_t nrooms, rooms_cap;
	uint8_t current;                /* the room plain text goes to */
	bool name_locked;               /* name comes from a sign-in token */
	struct chat_membership *rooms;  /* &first_room until a second room */
	struct chat_membership first_room;
	char *name;                     /* NULL means "User <id>" */
	char *user_id;                  /* signed-in user's id; NULL for a guest */
	struct token_bucket bucket;
};

/* Who a connection is, when sign-in is on. */
struct chat_identity {
	const char *user_id;
	const char *name;
};

/* Hand frame (an event's payload buf) to member m; the callee takes its own
 * reference if it keeps it, and may frame it in place (buf.h). */
typedef void (*chat_send_fn)(struct chat_member *m, struct buf *frame);
/* Bytes queued for m and not yet sent; SIZE_MAX when m takes no more. */
typedef size_t (*chat_backlog_fn)(struct chat_member *m);
/* Close m's connection with a WebSocket close code (flood abuse). */
typedef void (*chat_close_fn)(struct chat_member *m, uint16_t code, const char *reason);

/* An op's err when the cluster's Redis could not be reached: the client
 * gets an `unavailable` error (docs/protocol.md). */
#define CHAT_ERR_UNAVAILABLE (-ENOTCONN)

struct chat_config {
	chat_send_fn send;
	/* The sender's own copy of its message, its acknowledgement: never
	 * refused for what is queued (NULL: send). */
	chat_send_fn send_own;
	/* Replays are paced by it: they fill m's queue to a high-water mark
	 * and go on at chat_drained (NULL: nothing is ever queued). */
	chat_backlog_fn backlog;
	/* A replay fills m's queue to this many bytes, and a history event
	 * holds at most this much message JSON: keep it well under what gets
	 * a client dropped (0: 256 KiB). */
	size_t catchup_bytes;
	chat_close_fn close;         /* may be NULL */
	struct store *store;         /* NULL: nothing persisted */
	/* One of several edges: room events go through the sequencer, which
	 * owns the store's writing and reading (include/sequencer.h); this
	 * chat is edge number `edge`. NULL: the chat orders its rooms itself. */
	struct sequencer *sequencer;
	unsigned edge;
	/* No store here, but the sequencer reads history from elsewhere (a
	 * cluster's Redis streams): what memory lacks can still be asked for. */
	bool history_elsewhere;
	/* --max-rooms counted for all edges together (NULL: max_rooms
	 * counts this chat's rooms). */
	struct room_quota *room_quota;
	size_t presence_list_max;    /* users listed in a presence snapshot (0: 100) */
	size_t presence_events_max;  /* rooms larger get no join/leave events (0: 100) */
	uint32_t history_memory;     /* recent messages kept per room (0: 1000) */
	/* Bytes of recent messages kept in memory, all rooms together; the
	 * least recently used rooms give theirs up first (0: none kept). */
	uint64_t history_bytes;
	uint32_t history_on_join;    /* sent on joining (0: 50) */
	uint32_t max_rooms;          /* rooms that may exist (0: 10000) */
	struct rate_config rate;     /* per_second 0: no limit */
	/* --max-message, told to clients in welcome (0: not told); the
	 * transport enforces it, chat only passes it on */
	uint64_t max_message;
};

struct chat_stats {
	uint64_t messages;      /* chat messages broadcast */
	uint64_t errors;        /* error events sent */
	uint64_t rooms;         /* rooms that exist now */
	uint64_t rate_limited;  /* messages refused by the flood limit */
	uint64_t store_failures;
	uint64_t pending;       /* messages waiting for the store */
	uint64_t bad_text;      /* messages refused for control characters */
	uint64_t catchups;      /* replays being paced out now */
	uint64_t replayed;      /* messages sent by replays */
	uint64_t history_bytes; /* recent history held in memory */
	uint64_t history_bytes_limit;
	uint64_t history_evicted; /* messages dropped from memory by the byte bound */
};

/* A chat with cfg (copied); aborts when out of memory, as chat does
 * everywhere. */
struct chat *chat_new(const struct chat_config *cfg);
/* Frees its rooms and what waits for the store; disconnect its members
 * first. NULL is fine. */
void chat_free(struct chat *chat);
/* Learn every stored room's name and last id (start-up); its messages
 * stay in the store until someone asks for them. */
int chat_load_history(struct chat *chat);
/* The same for one room, from a pass over the store that feeds several
 * chats (edges) and the sequencer at once (store_load_rooms). */
void chat_load_room(struct chat *chat, const struct store_room *room);

/* Room names: 1-64 of [A-Za-z0-9_.-]. */
bool chat_room_name_valid(const char *name, size_t len);

/* A new connection: welcome, then it joins room (a valid name). With
 * since, what it missed after that id is replayed before live traffic. */
void chat_connect(struct chat *chat, struct chat_member *m, const struct chat_identity *who,
		  const char *room, size_t room_len, const uint64_t *since);

/* The connection is gone: leave every room. */
void chat_disconnect(struct chat *chat, struct chat_member *m);

/* A complete, valid UTF-8 text message from m (counted by the flood limit). */
void chat_receive(struct chat *chat, struct chat_member *m, const char *text, size_t len);

/* Count one frame from m against the flood limit: false (with an error
 * event, or a 1008 close for persistent abuse) when over it. */
bool chat_allow(struct chat *chat, struct chat_member *m);

/* m's queue went below its low-water mark: its replays may go on. */
void chat_drained(struct chat *chat, struct chat_member *m);

/* The store has results: run them (loop thread). */
void chat_store_ready(struct chat *chat);

/* The sequencer has ops for this edge: apply them (its loop thread). */
void chat_sequenced_ready(struct chat *chat);

/* The chat's counters, brought up to date; the pointer stays valid until
 * chat_free. */
const struct chat_stats *chat_stats(struct chat *chat);

/* Milliseconds since the epoch, as put in "ts". */
uint64_t chat_now_ms(void);

#endif
