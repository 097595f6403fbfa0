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
/* A client-chosen id on a message command, echoed in its acknowledgement
 * and in an error answering it (docs/protocol.md): at most this many bytes. */
#define CHAT_CID_MAX 64
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
	bool resumable;                 /* a guest holding a guest token: its place waits --rejoin-grace */
	struct chat_membership *rooms;  /* &first_room until a second room */
	struct chat_membership first_room;
	char *name;                     /* NULL means "User <id>" */
	char *user_id;                  /* signed-in user's id; NULL for a guest */
	struct token_bucket bucket;
};

/* Who a connection is: signed in (user_id), or a guest coming back with
 * the id and name of its guest token (guest_id; name NULL: "User <id>"). */
struct chat_identity {
	const char *user_id;
	const char *name;
	uint32_t guest_id;
};

/* A guest token for id and name (NULL: "User <id>"), malloc'd, or NULL
 * (the guest gets none). */
typedef char *(*chat_guest_token_fn)(void *ctx, uint32_t id, const char *name);
/* A `refresh` command's token for m: NULL when it now holds m's session,
 * else why not (the client's error message). */
typedef const char *(*chat_refresh_fn)(struct chat_member *m, const char *token, size_t len);

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
	/* Guests get a token in `welcome` (and after a rename) that brings
	 * their id and name back on a reconnect (NULL: none). */
	chat_guest_token_fn guest_token;
	void *guest_ctx;
	/* How long a resumable guest's place is kept after its connection
	 * went before the rooms hear it left (0: told at once). */
	uint32_t rejoin_grace_ms;
	chat_refresh_fn refresh;     /* NULL: `refresh` is an unknown_type */
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

/* Time passes (every loop tick): kept places whose grace ran out go. */
void chat_tick(struct chat *chat);

/* The store has results: run them (loop thread). */
void chat_store_ready(struct chat *chat);

/* The sequencer has ops for this edge: apply them (its loop thread). */
void chat_sequenced_ready(struct chat *chat);

/* The chat's counters, brought up to date; the pointer stays valid until
 * chat_free. */
const struct chat_stats *chat_stats(struct chat *chat);

/* ---- the server API (src/proto/api.c): an application's backend ------------ */

/* A published message's sender, as "from" shows it; "name" is the name
 * given, else CHAT_API_NAME. */
#define CHAT_API_SENDER "api"
#define CHAT_API_NAME "API"
/* The close code of a connection the API disconnected (docs/protocol.md):
 * in the range RFC 6455 leaves to applications. */
#define CHAT_KICK_CODE 4000
/* Users a presence answer lists at most. */
#define CHAT_API_PRESENCE_MAX 10000

/* How an API call ended, on the chat's own thread: err is 0 or what a
 * member's message would have got (CHAT_ERR_UNAVAILABLE, -ENOSPC, ...).
 * A publish's id; a presence's JSON object (valid during the call). */
struct chat_api_result {
	int err;
	uint64_t id;
	const char *json;
	size_t json_len;
};
typedef void (*chat_api_done_fn)(void *ctx, const struct chat_api_result *res);

/* Post text (valid UTF-8) to room (a valid name) as the API, named name
 * (NULL: CHAT_API_NAME): numbered, stored and delivered like a member's
 * message, in the room's order. done is called once it is stored (or
 * not), perhaps before this returns. Returns NULL, or the error code a
 * member would get without anything sent ("empty", "bad_text",
 * "bad_name") and done not called. */
const char *chat_publish(struct chat *chat, const char *room, size_t room_len, const char *text,
			 size_t len, const char *name, size_t name_len, chat_api_done_fn done, void *ctx);
/* Close every connection of signed-in user user_id, on every edge, with
 * CHAT_KICK_CODE and reason (at most 123 bytes of UTF-8); done when this
 * edge has. Members in no room are not found. */
void chat_kick(struct chat *chat, const char *user_id, const char *reason, chat_api_done_fn done,
	       void *ctx);
/* Who is in room (a valid name), on every edge: done gets a presence
 * event's JSON (count exact, users at most CHAT_API_PRESENCE_MAX). */
void chat_presence(struct chat *chat, const char *room, size_t room_len, chat_api_done_fn done,
		   void *ctx);

/* Milliseconds since the epoch, as put in "ts". */
uint64_t chat_now_ms(void);

#endif
