/* chat_room.c: the room table, live member arrays and recent-message rings.
 *
 * The rings share one byte bound. Every ring that holds anything is on an
 * LRU list, touched when the room gets a message or its history is read;
 * a new message that takes the total over the bound makes the least
 * recently used rings give up their oldest messages until it fits. A ring
 * is only ever cut from its old end, so it stays the room's newest
 * messages, which is what room_recent_covers and the history code assume. */
#include "chat_room.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "name_hash.h"

/* A ring starts this small and doubles up to --history-memory: most rooms
 * hold a few messages, and 1,000 empty slots are 16 KB a room. */
#define RING_FIRST_CAP 16
#define RING_SLOT_BYTES (sizeof(struct buf *) + sizeof(uint64_t))

static uint32_t hash_name(const char *s, size_t n)
{
	return name_hash(s, n) % ROOM_BUCKETS;
}

void room_table_init(struct chat_rooms *rooms, uint32_t history_memory, uint32_t max_rooms,
		     bool idle_keeps_history, uint64_t history_bytes)
{
	memset(rooms, 0, sizeof(*rooms));
	rooms->keep_idle_history = idle_keeps_history;
	rooms->ring_size = history_memory;
	rooms->max_rooms = max_rooms;
	rooms->history.limit = history_bytes;
}

/* ---- the history LRU list ---- */

static void lru_unlink(struct chat_rooms *rooms, struct chat_room *r)
{
	if (r->lru_prev)
		r->lru_prev->lru_next = r->lru_next;
	else
		rooms->lru_first = r->lru_next;
	if (r->lru_next)
		r->lru_next->lru_prev = r->lru_prev;
	else
		rooms->lru_last = r->lru_prev;
	r->lru_prev = r->lru_next = NULL;
}

static bool lru_linked(const struct chat_rooms *rooms, const struct chat_room *r)
{
	return r->lru_prev || rooms->lru_first == r;
}

/* Only rooms holding history are on the list. */
static void lru_touch(struct chat_rooms *rooms, struct chat_room *r)
{
	if (!r->recent_len || rooms->lru_first == r)
		return;
	if (lru_linked(rooms, r))
		lru_unlink(rooms, r);
	r->lru_next = rooms->lru_first;
	if (rooms->lru_first)
		rooms->lru_first->lru_prev = r;
	rooms->lru_first = r;
	if (!rooms->lru_last)
		rooms->lru_last = r;
}

/* ---- rings ---- */

/* Everything the ring holds goes, and the ring itself: not counted as
 * evicted (an idle room's store has it all; table teardown). */
static void ring_release(struct chat_rooms *rooms, struct chat_room *r)
{
	if (!r->recent)
		return;
	for (uint32_t i = 0; i < r->recent_len; i++) {
		struct buf *b = room_recent_frame(r, i);
		rooms->history.bytes -= b->len;
		buf_unref(b);
	}
	if (lru_linked(rooms, r))
		lru_unlink(rooms, r);
	rooms->history.bytes -= (uint64_t)r->recent_cap * RING_SLOT_BYTES;
	free(r->recent);
	free(r->recent_ids);
	r->recent = NULL;
	r->recent_ids = NULL;
	r->recent_len = r->recent_cap = r->recent_head = 0;
}

/* The oldest message leaves the ring; an emptied ring is freed. */
static void ring_drop_oldest(struct chat_rooms *rooms, struct chat_room *r)
{
	struct buf *b = r->recent[r->recent_head];
	rooms->history.bytes -= b->len;
	buf_unref(b);
	r->recent_head = (r->recent_head + 1) % r->recent_cap;
	r->recent_len--;
	r->recent_complete = false;
	if (!r->recent_len)
		ring_release(rooms, r);
}

/* Room for one more: grow up to --history-memory, then let the oldest go. */
static void ring_make_slot(struct chat_rooms *rooms, struct chat_room *r)
{
	if (r->recent_len < r->recent_cap)
		return;
	if (r->recent_cap == rooms->ring_size) {
		ring_drop_oldest(rooms, r);
		if (r->recent)
			return;
	}
	uint32_t cap = r->recent_cap ? r->recent_cap * 2 : RING_FIRST_CAP;
	if (cap > rooms->ring_size)
		cap = rooms->ring_size;
	struct buf **frames = malloc(cap * sizeof(*frames));
	uint64_t *ids = malloc(cap * sizeof(*ids));
	if (!frames || !ids)
		abort();
	for (uint32_t i = 0; i < r->recent_len; i++) {
		frames[i] = room_recent_frame(r, i);
		ids[i] = room_recent_id(r, i);
	}
	free(r->recent);
	free(r->recent_ids);
	rooms->history.bytes += (uint64_t)(cap - r->recent_cap) * RING_SLOT_BYTES;
	r->recent = frames;
	r->recent_ids = ids;
	r->recent_cap = cap;
	r->recent_head = 0;
}

/* Drop the oldest messages of the least recently used rooms until the
 * total is within the bound. The writer was touched last, so it is at the
 * end of the list only when no other room holds anything; its newest
 * message goes only with the whole ring, when it alone is over the bound. */
static void history_enforce_bound(struct chat_rooms *rooms, struct chat_room *writer)
{
	struct room_history_stats *h = &rooms->history;
	while (h->bytes > h->limit && rooms->lru_last) {
		struct chat_room *victim = rooms->lru_last;
		h->evicted++;
		if (victim == writer && victim->recent_len == 1) {
			victim->recent_complete = false;
			ring_release(rooms, victim);
			return;
		}
		ring_drop_oldest(rooms, victim);
	}
}

static void room_free(struct chat_rooms *rooms, struct chat_room *r)
{
	ring_release(rooms, r);
	free(r->members);
	free(r);
}

void room_table_free(struct chat_rooms *rooms)
{
	for (size_t b = 0; b < ROOM_BUCKETS; b++) {
		struct chat_room *r = rooms->buckets[b];
		while (r) {
			struct chat_room *next = r->hash_next;
			room_free(rooms, r);
			r = next;
		}
		rooms->buckets[b] = NULL;
	}
	rooms->active = 0;
}

size_t room_count(const struct chat_rooms *rooms)
{
	return rooms->active;
}

static struct chat_room *first_from(const struct chat_rooms *rooms, size_t bucket)
{
	for (size_t b = bucket; b < ROOM_BUCKETS; b++)
		if (rooms->buckets[b])
			return rooms->buckets[b];
	return NULL;
}

struct chat_room *room_first(const struct chat_rooms *rooms)
{
	return first_from(rooms, 0);
}

struct chat_room *room_next(const struct chat_rooms *rooms, const struct chat_room *r)
{
	return r->hash_next ? r->hash_next : first_from(rooms, hash_name(r->name, r->name_len) + 1);
}

struct chat_room *room_find(const struct chat_rooms *rooms, const char *name, size_t len)
{
	for (struct chat_room *r = rooms->buckets[hash_name(name, len)]; r; r = r->hash_next)
		if (r->name_len == len && memcmp(r->name, name, len) == 0)
			return r;
	return NULL;
}

struct chat_room *room_load(struct chat_rooms *rooms, const char *name, size_t len)
{
	struct chat_room *r = room_find(rooms, name, len);
	if (r)
		return r;
	r = calloc(1, sizeof(*r));
	if (!r)
		abort();
	memcpy(r->name, name, len);
	r->name_len = len;
	r->recent_complete = true;
	r->sequenced = rooms->sequenced;
	uint32_t h = hash_name(name, len);
	r->hash_next = rooms->buckets[h];
	rooms->buckets[h] = r;
	return r;
}

struct chat_room *room_get(struct chat_rooms *rooms, const char *name, size_t len)
{
	struct chat_room *r = room_find(rooms, name, len);
	if ((!r || !r->active) && rooms->active >= rooms->max_rooms)
		return NULL;
	return r ? r : room_load(rooms, name, len);
}

static void room_unlink(struct chat_rooms *rooms, struct chat_room *r)
{
	struct chat_room **p = &rooms->buckets[hash_name(r->name, r->name_len)];
	while (*p != r)
		p = &(*p)->hash_next;
	*p = r->hash_next;
}

void room_settle(struct chat_rooms *rooms, struct chat_room *r)
{
	if (r->count || r->everywhere || r->waiting)
		return;
	if (r->active) {
		r->active = false;
		rooms->active--;
	}
	if (r->last_id == 0) {
		room_unlink(rooms, r);
		room_free(rooms, r);
		return;
	}
	free(r->members);
	r->members = NULL;
	r->cap = 0;
	if (rooms->keep_idle_history)
		return;
	ring_release(rooms, r);
	r->recent_complete = false; /* the store has what memory let go */
}

void room_add(struct chat_rooms *rooms, struct chat_room *r, struct chat_member *m,
	      struct chat_membership *ms, bool held)
{
	if (!r->active) {
		r->active = true;
		rooms->active++;
	}
	if (r->count == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 4;
		r->members = realloc(r->members, r->cap * sizeof(*r->members));
		if (!r->members)
			abort();
	}
	ms->index = r->count;
	ms->held = held;
	ms->live_from = r->last_sent;
	r->members[r->count++] = (uintptr_t)m | held;
}

/* Swap-remove: O(1); member order is not part of the protocol. The member
 * moved into the gap has its own record of its index for this room fixed. */
void room_remove(struct chat_room *r, struct chat_membership *ms)
{
	uint32_t last = --r->count;
	if (ms->index != last) {
		struct chat_member *moved = room_member(r, last);
		r->members[ms->index] = r->members[last];
		for (uint8_t k = 0; k < moved->nrooms; k++)
			if (moved->rooms[k].room == r)
				moved->rooms[k].index = ms->index;
	}
}

void room_release(struct chat_room *r, struct chat_membership *ms)
{
	r->members[ms->index] &= ~(uintptr_t)1;
	ms->held = false;
	ms->live_from = r->last_sent;
}

void room_remember(struct chat_rooms *rooms, struct chat_room *r, uint64_t id, struct buf *frame)
{
	if (rooms->ring_size == 0 || frame->len > rooms->history.limit) {
		/* Not kept, so nothing older may stay either: the ring must
		 * end with the newest message or be empty. */
		rooms->history.evicted += r->recent_len;
		ring_release(rooms, r);
		r->recent_complete = false;
		return;
	}
	ring_make_slot(rooms, r);
	uint32_t at = (r->recent_head + r->recent_len) % r->recent_cap;
	r->recent[at] = buf_ref(frame);
	r->recent_ids[at] = id;
	r->recent_len++;
	rooms->history.bytes += frame->len;
	lru_touch(rooms, r);
	history_enforce_bound(rooms, r);
}

/* Ids in the ring increase, so both lookups are binary searches. */
uint32_t room_recent_after(struct chat_rooms *rooms, struct chat_room *r, uint64_t since)
{
	lru_touch(rooms, r);
	uint32_t lo = 0, hi = r->recent_len;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (room_recent_id(r, mid) <= since)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint32_t room_recent_before(struct chat_rooms *rooms, struct chat_room *r, uint64_t before)
{
	lru_touch(rooms, r);
	if (before == 0)
		return r->recent_len;
	uint32_t lo = 0, hi = r->recent_len;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (room_recent_id(r, mid) < before)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool room_recent_covers(const struct chat_room *r, uint64_t since)
{
	if (r->recent_complete)
		return true;
	return r->recent_len && room_recent_id(r, 0) <= since + 1;
}

const struct room_history_stats *room_history_stats(const struct chat_rooms *rooms)
{
	return &rooms->history;
}
