/* chat_room.h: rooms: a name table, each room's live members, and its
 * recent messages kept as the very frames that were broadcast. Internal to
 * the chat modules. */
#ifndef RINGCAST_CHAT_ROOM_H
#define RINGCAST_CHAT_ROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat.h"

struct buf;

struct chat_room {
	char name[CHAT_ROOM_MAX + 1];
	size_t name_len;
	uint64_t last_id;         /* last id handed out; ids are never reused */
	uint64_t last_sent;       /* last id broadcast */
	/* Members; one whose replay is still coming from the store is tagged
	 * (low pointer bit) so chat messages skip it while events do not. */
	uintptr_t *members;
	uint32_t count, cap;
	/* With a sequencer: members on all edges, as of the last event this
	 * edge applied (the sequencer counts them; chat_op.h). */
	uint32_t everywhere;
	bool sequenced;
	uint32_t waiting;         /* messages and queries waiting for the store */
	bool active;              /* has members or waiting work: counts against --max-rooms */
	/* Recent messages as their broadcast frames, oldest first: a replay or
	 * a join's history sends the same bytes again. Always the newest ones:
	 * the ring is empty or ends with the room's last message broadcast. */
	struct buf **recent;
	uint64_t *recent_ids;
	uint32_t recent_head, recent_len, recent_cap;
	bool recent_complete;     /* recent holds every message the room ever had */
	struct chat_room *hash_next;
	/* In the history LRU list (most recently used first) while the ring
	 * holds anything. */
	struct chat_room *lru_prev, *lru_next;
};

/* Recent history in memory, all rooms together. */
struct room_history_stats {
	uint64_t bytes;    /* frames held by the rings, plus the rings themselves */
	uint64_t limit;    /* --history-bytes */
	uint64_t evicted;  /* messages dropped from memory to stay under it */
};

/* Chained hash by name; the bucket count is fixed because --max-rooms
 * bounds the table. */
#define ROOM_BUCKETS 4096

/* One chat's rooms: the name table, and the recent history of all of them
 * under one byte bound. Owned by its struct chat; nothing is shared between
 * two tables. */
struct chat_rooms {
	struct chat_room *buckets[ROOM_BUCKETS];
	size_t active;            /* rooms counting against max_rooms */
	uint32_t ring_size, max_rooms;
	bool keep_idle_history;
	bool sequenced;           /* rooms count their members from the sequencer's events */
	struct room_history_stats history;
	struct chat_room *lru_first, *lru_last; /* most, least recently used */
};

/* Rooms live in memory while they have members or work waiting for the
 * store ("active"; at most --max-rooms of them). An idle room keeps only
 * its name and last id, so ids go on where they stopped, and its recent
 * messages are freed when the store has them (without a store, memory is
 * all the history there is, so they stay); a room that never had a message
 * is forgotten entirely.
 *
 * Recent messages are bounded twice: history_memory per room, and
 * history_bytes for all rooms together (0: none kept). Over the byte bound,
 * the rooms whose history was used least recently give up their oldest
 * messages first. Whatever is dropped makes recent_complete false, so
 * history and replays go to the store; without one it is gone. */
void room_table_init(struct chat_rooms *rooms, uint32_t history_memory, uint32_t max_rooms,
		     bool idle_keeps_history, uint64_t history_bytes);
void room_table_free(struct chat_rooms *rooms);
size_t room_count(const struct chat_rooms *rooms); /* active rooms */
/* The first room in table order, then the next; for walks over all rooms. */
struct chat_room *room_first(const struct chat_rooms *rooms);
struct chat_room *room_next(const struct chat_rooms *rooms, const struct chat_room *r);

struct chat_room *room_find(const struct chat_rooms *rooms, const char *name, size_t len);
/* Find or create a room to join; NULL when it is not active and
 * --max-rooms rooms already are. */
struct chat_room *room_get(struct chat_rooms *rooms, const char *name, size_t len);
/* Find or create a room to load history into at start-up (no limit). */
struct chat_room *room_load(struct chat_rooms *rooms, const char *name, size_t len);
/* Called whenever a room may have become idle (last member gone, last
 * store result in): release what an idle room need not keep. */
void room_settle(struct chat_rooms *rooms, struct chat_room *r);

/* Everyone in the room: on every edge, when a sequencer counts them. */
static inline uint32_t room_members(const struct chat_room *r)
{
	return r->sequenced ? r->everywhere : r->count;
}

static inline struct chat_member *room_member(const struct chat_room *r, uint32_t i)
{
	return (struct chat_member *)(r->members[i] & ~(uintptr_t)1);
}

/* Is member i catching up (live messages held back)? */
static inline bool room_member_held(const struct chat_room *r, uint32_t i)
{
	return r->members[i] & 1;
}

/* Add m (its membership ms); held: catching up from the store. */
void room_add(struct chat_rooms *rooms, struct chat_room *r, struct chat_member *m,
	      struct chat_membership *ms, bool held);
void room_remove(struct chat_room *r, struct chat_membership *ms);
/* The member has caught up: it gets live messages from now on. */
void room_release(struct chat_room *r, struct chat_membership *ms);

/* Keep a committed message's frame (takes a reference) with its id, the
 * room's newest. May drop older messages of this and other rooms to stay
 * under the byte bound; a frame larger than the whole bound is not kept,
 * and then neither is anything older of this room. */
void room_remember(struct chat_rooms *rooms, struct chat_room *r, uint64_t id, struct buf *frame);

/* The two lookups are how history is read (a join's history, a page, a
 * replay's next message), so each counts as a use of the room's history:
 * it moves to the front of the LRU list. Indexes are valid until the next
 * room_remember or room_settle. */

/* Index in the recent ring of the first message with id > since, or
 * recent_len when there is none. */
uint32_t room_recent_after(struct chat_rooms *rooms, struct chat_room *r, uint64_t since);
/* Index of the first message with id >= before..., i.e. the count of
 * recent messages with id < before (before 0: all). */
uint32_t room_recent_before(struct chat_rooms *rooms, struct chat_room *r, uint64_t before);

static inline struct buf *room_recent_frame(const struct chat_room *r, uint32_t i)
{
	return r->recent[(r->recent_head + i) % r->recent_cap];
}

static inline uint64_t room_recent_id(const struct chat_room *r, uint32_t i)
{
	return r->recent_ids[(r->recent_head + i) % r->recent_cap];
}

/* Does the ring hold every message with id > since? */
bool room_recent_covers(const struct chat_room *r, uint64_t since);

const struct room_history_stats *room_history_stats(const struct chat_rooms *rooms);

#endif
