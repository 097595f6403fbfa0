/* chat_room.c: the room table, live member arrays and recent-message rings. */
#include "chat_room.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* Chained hash by name; the bucket count is fixed because --max-rooms
 * bounds the table. */
#define ROOM_BUCKETS 4096

static struct chat_room *buckets[ROOM_BUCKETS];
static size_t active_count;
static uint32_t ring_size, rooms_max;
static bool keep_idle_history;

static uint32_t hash_name(const char *s, size_t n)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h % ROOM_BUCKETS;
}

void room_table_init(uint32_t history_memory, uint32_t max_rooms, bool idle_keeps_history)
{
	keep_idle_history = idle_keeps_history;
	ring_size = history_memory;
	rooms_max = max_rooms;
	memset(buckets, 0, sizeof(buckets));
	active_count = 0;
}

static void room_free(struct chat_room *r)
{
	for (uint32_t i = 0; i < r->recent_len; i++)
		buf_unref(room_recent_frame(r, i));
	free(r->recent);
	free(r->recent_ids);
	free(r->members);
	free(r);
}

void room_table_free(void)
{
	for (size_t b = 0; b < ROOM_BUCKETS; b++) {
		struct chat_room *r = buckets[b];
		while (r) {
			struct chat_room *next = r->hash_next;
			room_free(r);
			r = next;
		}
		buckets[b] = NULL;
	}
	active_count = 0;
}

size_t room_count(void)
{
	return active_count;
}

static struct chat_room *first_from(size_t bucket)
{
	for (size_t b = bucket; b < ROOM_BUCKETS; b++)
		if (buckets[b])
			return buckets[b];
	return NULL;
}

struct chat_room *room_first(void)
{
	return first_from(0);
}

struct chat_room *room_next(const struct chat_room *r)
{
	return r->hash_next ? r->hash_next : first_from(hash_name(r->name, r->name_len) + 1);
}

struct chat_room *room_find(const char *name, size_t len)
{
	for (struct chat_room *r = buckets[hash_name(name, len)]; r; r = r->hash_next)
		if (r->name_len == len && memcmp(r->name, name, len) == 0)
			return r;
	return NULL;
}

struct chat_room *room_load(const char *name, size_t len)
{
	struct chat_room *r = room_find(name, len);
	if (r)
		return r;
	r = calloc(1, sizeof(*r));
	if (!r)
		abort();
	memcpy(r->name, name, len);
	r->name_len = len;
	r->recent_complete = true;
	uint32_t h = hash_name(name, len);
	r->hash_next = buckets[h];
	buckets[h] = r;
	return r;
}

struct chat_room *room_get(const char *name, size_t len)
{
	struct chat_room *r = room_find(name, len);
	if ((!r || !r->active) && active_count >= rooms_max)
		return NULL;
	return r ? r : room_load(name, len);
}

static void room_unlink(struct chat_room *r)
{
	struct chat_room **p = &buckets[hash_name(r->name, r->name_len)];
	while (*p != r)
		p = &(*p)->hash_next;
	*p = r->hash_next;
}

void room_settle(struct chat_room *r)
{
	if (r->count || r->waiting)
		return;
	if (r->active) {
		r->active = false;
		active_count--;
	}
	if (r->last_id == 0) {
		room_unlink(r);
		room_free(r);
		return;
	}
	free(r->members);
	r->members = NULL;
	r->cap = 0;
	if (keep_idle_history)
		return;
	for (uint32_t i = 0; i < r->recent_len; i++)
		buf_unref(room_recent_frame(r, i));
	free(r->recent);
	free(r->recent_ids);
	r->recent = NULL;
	r->recent_ids = NULL;
	r->recent_len = r->recent_cap = r->recent_head = 0;
	r->recent_complete = false; /* the store has what memory let go */
}

void room_add(struct chat_room *r, struct chat_member *m, struct chat_membership *ms, bool held)
{
	if (!r->active) {
		r->active = true;
		active_count++;
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

void room_remember(struct chat_room *r, uint64_t id, struct buf *frame)
{
	if (ring_size == 0)
		return;
	if (!r->recent) {
		r->recent_cap = ring_size;
		r->recent = calloc(ring_size, sizeof(*r->recent));
		r->recent_ids = calloc(ring_size, sizeof(*r->recent_ids));
		if (!r->recent || !r->recent_ids)
			abort();
	}
	if (r->recent_len == r->recent_cap) {
		buf_unref(r->recent[r->recent_head]);
		r->recent_head = (r->recent_head + 1) % r->recent_cap;
		r->recent_len--;
		r->recent_complete = false;
	}
	uint32_t at = (r->recent_head + r->recent_len) % r->recent_cap;
	r->recent[at] = buf_ref(frame);
	r->recent_ids[at] = id;
	r->recent_len++;
}

/* Ids in the ring increase, so both lookups are binary searches. */
uint32_t room_recent_after(const struct chat_room *r, uint64_t since)
{
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

uint32_t room_recent_before(const struct chat_room *r, uint64_t before)
{
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
