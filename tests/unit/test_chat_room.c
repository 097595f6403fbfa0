/* test_chat_room.c: the rooms' recent-message rings under the byte bound
 * (--history-bytes) and the per-room bound (--history-memory).
 *
 * The rings hold frames by reference; here a frame is any buf of the
 * wanted size. After every step the cases check what the module must
 * always hold: its byte count is exactly what the rings hold (frames plus
 * slots), within the bound, and each ring is its room's newest messages in
 * increasing id order. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "chat_room.h"

#define SLOT_BYTES (sizeof(struct buf *) + sizeof(uint64_t))

static struct chat_rooms table; /* each case's own: start() clears it */

static void start(uint32_t history_memory, uint64_t history_bytes)
{
	room_table_init(&table, history_memory, 100, false, history_bytes);
}

static int teardown(void **state)
{
	(void)state;
	room_table_free(&table);
	return 0;
}

static struct chat_room *room(const char *name)
{
	return room_load(&table, name, strlen(name));
}

/* Room r gets its next message, with a frame of len bytes. */
static void post(struct chat_room *r, size_t len)
{
	struct buf *frame = buf_new(len);

	memset(frame->data, 'x', len);
	r->last_id = r->last_sent = r->last_id + 1;
	room_remember(&table, r, r->last_id, frame);
	buf_unref(frame);
}

static uint64_t ring_bytes(const struct chat_room *r)
{
	uint64_t n = (uint64_t)r->recent_cap * SLOT_BYTES;

	for (uint32_t i = 0; i < r->recent_len; i++)
		n += room_recent_frame(r, i)->len;
	return n;
}

/* The ring is the room's newest messages: consecutive ids ending at its
 * last one (these rooms never skip an id), and complete only from id 1. */
static void expect_ring_is_a_suffix(const struct chat_room *r)
{
	for (uint32_t i = 0; i < r->recent_len; i++)
		assert_int_equal(room_recent_id(r, i), r->last_id - r->recent_len + 1 + i);
	if (r->recent_complete)
		assert_int_equal(r->recent_len, r->last_id);
}

static void expect_invariants(struct chat_room **rooms, size_t n)
{
	const struct room_history_stats *h = room_history_stats(&table);
	uint64_t total = 0;

	for (size_t i = 0; i < n; i++) {
		total += ring_bytes(rooms[i]);
		expect_ring_is_a_suffix(rooms[i]);
	}
	assert_int_equal(h->bytes, total);
	assert_true(h->bytes <= h->limit);
}

/* ---- the byte bound ---- */

/* 6 rooms, 3,000 messages of 100 B to 4 KiB in a shuffled order: the
 * total never goes over 64 KiB, and what is held is counted exactly. */
static void test_byte_bound_holds_after_many_messages_over_several_rooms(void **state)
{
	struct chat_room *rooms[6];
	char name[8];
	uint32_t seed = 12345;

	(void)state;
	start(1000, 64 * 1024);
	for (size_t i = 0; i < 6; i++) {
		snprintf(name, sizeof(name), "r%zu", i);
		rooms[i] = room(name);
	}
	for (int k = 0; k < 3000; k++) {
		seed = seed * 1103515245u + 12345u;
		struct chat_room *r = rooms[(seed >> 16) % 6];
		post(r, 100 + (seed >> 8) % 4000);
		assert_true(r->recent_len >= 1); /* the newest is always kept */
		expect_invariants(rooms, 6);
	}
	assert_true(room_history_stats(&table)->bytes > 32 * 1024); /* it is used, not just emptied */
	assert_true(room_history_stats(&table)->evicted > 0);
}

/* Rooms a, b and c hold 10 messages each, a's history is read, then c
 * keeps posting: b, used least recently, gives its messages up first, and
 * all of them before a loses any. */
static void test_least_recently_used_room_loses_its_history_first(void **state)
{
	struct chat_room *a, *b, *c;

	(void)state;
	start(1000, 40 * 1000);
	a = room("a");
	b = room("b");
	c = room("c");
	for (int i = 0; i < 10; i++) {
		post(a, 1000);
		post(b, 1000);
		post(c, 1000);
	}
	assert_int_equal(room_history_stats(&table)->evicted, 0);
	assert_int_equal(room_recent_before(&table, a, 0), 10); /* a join's history reads a */

	for (int i = 0; b->recent_len; i++) {
		assert_true(i < 100); /* the bound must make b give way */
		post(c, 1000);
		assert_int_equal(a->recent_len, 10);
	}
	assert_int_equal(room_history_stats(&table)->evicted, 10);
	assert_false(b->recent_complete);
	assert_true(a->recent_complete);

	for (int i = 0; a->recent_len == 10; i++) {
		assert_true(i < 100);
		post(c, 1000);
	}
	assert_int_equal(a->recent_len, 9); /* then a, and c still has all of its */
	assert_false(a->recent_complete);
	assert_true(c->recent_complete);
	expect_invariants((struct chat_room *[]){ a, b, c }, 3);
}

/* A room that gets a message is used too: it keeps its history, the one
 * that went quiet loses it. */
static void test_a_room_that_gets_messages_keeps_them_and_the_idle_one_loses_its(void **state)
{
	struct chat_room *idle, *busy;

	(void)state;
	start(1000, 20 * 1000);
	idle = room("idle");
	busy = room("busy");
	for (int i = 0; i < 5; i++)
		post(idle, 1000);
	for (int i = 0; i < 30; i++)
		post(busy, 1000);
	assert_int_equal(idle->recent_len, 0);
	assert_true(busy->recent_len >= 15);
	assert_int_equal(room_history_stats(&table)->evicted, 5 + 30 - busy->recent_len);
	expect_invariants((struct chat_room *[]){ idle, busy }, 2);
}

/* After eviction a ring still holds increasing ids ending at the newest,
 * is no longer complete, and new ids go on where they were. */
static void test_eviction_keeps_ids_increasing_and_the_ring_incomplete(void **state)
{
	struct chat_room *r;

	(void)state;
	start(1000, 10 * 1000);
	r = room("lobby");
	for (int i = 0; i < 50; i++)
		post(r, 1000);
	assert_false(r->recent_complete);
	assert_true(r->recent_len > 0 && r->recent_len < 50);
	expect_ring_is_a_suffix(r);
	assert_int_equal(room_recent_id(r, r->recent_len - 1), 50);
	/* a replay from 0 needs the store: the ring does not reach back */
	assert_false(room_recent_covers(r, 0));
	assert_true(room_recent_covers(r, room_recent_id(r, 0) - 1));
	assert_int_equal(room_recent_after(&table, r, 49), r->recent_len - 1);
	post(r, 1000);
	assert_int_equal(room_recent_id(r, r->recent_len - 1), 51);
	expect_invariants(&r, 1);
}

/* A message bigger than the whole bound is not kept, and then nor is
 * anything older of its room: a ring without its room's newest message
 * would answer a history request with a gap. */
static void test_a_frame_larger_than_the_bound_empties_its_room(void **state)
{
	struct chat_room *r, *other;

	(void)state;
	start(1000, 8 * 1000);
	r = room("big");
	other = room("other");
	post(other, 1000);
	post(r, 1000);
	post(r, 1000);
	post(r, 9000);
	assert_int_equal(r->recent_len, 0);
	assert_false(r->recent_complete);
	assert_int_equal(other->recent_len, 1);
	assert_int_equal(room_history_stats(&table)->evicted, 2);
	post(r, 1000);
	assert_int_equal(r->recent_len, 1);
	assert_int_equal(room_recent_id(r, 0), 4);
	expect_invariants((struct chat_room *[]){ r, other }, 2);
}

/* --history-bytes 0: no history in memory at all. */
static void test_a_bound_of_zero_keeps_nothing(void **state)
{
	struct chat_room *r;

	(void)state;
	start(1000, 0);
	r = room("lobby");
	assert_true(r->recent_complete);
	post(r, 10);
	assert_int_equal(r->recent_len, 0);
	assert_false(r->recent_complete);
	assert_int_equal(room_history_stats(&table)->bytes, 0);
}

/* ---- the per-room bound and releasing ---- */

/* --history-memory still bounds each ring; what it drops is not counted
 * as evicted by the byte bound. */
static void test_count_bound_still_holds_and_is_not_counted_as_eviction(void **state)
{
	struct chat_room *r;

	(void)state;
	start(10, UINT64_MAX);
	r = room("lobby");
	for (int i = 0; i < 25; i++)
		post(r, 100);
	assert_int_equal(r->recent_len, 10);
	assert_int_equal(room_recent_id(r, 0), 16);
	assert_false(r->recent_complete);
	assert_int_equal(room_history_stats(&table)->evicted, 0);
	assert_int_equal(room_history_stats(&table)->bytes, 10 * 100 + 10 * SLOT_BYTES);
}

/* An idle room lets its ring go (the store has it); the bytes come back
 * and the room leaves the LRU list, so eviction never meets it. */
static void test_an_idle_room_gives_its_bytes_back(void **state)
{
	struct chat_room *idle, *busy;

	(void)state;
	start(1000, 30 * 1000);
	idle = room("idle");
	busy = room("busy");
	for (int i = 0; i < 5; i++)
		post(idle, 1000);
	room_settle(&table, idle);
	assert_int_equal(idle->recent_len, 0);
	assert_int_equal(room_history_stats(&table)->bytes, 0);
	for (int i = 0; i < 60; i++)
		post(busy, 1000);
	assert_int_equal(idle->last_id, 5);
	expect_invariants((struct chat_room *[]){ idle, busy }, 2);
}

#define T(name) cmocka_unit_test_teardown(name, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_byte_bound_holds_after_many_messages_over_several_rooms),
		T(test_least_recently_used_room_loses_its_history_first),
		T(test_a_room_that_gets_messages_keeps_them_and_the_idle_one_loses_its),
		T(test_eviction_keeps_ids_increasing_and_the_ring_incomplete),
		T(test_a_frame_larger_than_the_bound_empties_its_room),
		T(test_a_bound_of_zero_keeps_nothing),
		T(test_count_bound_still_holds_and_is_not_counted_as_eviction),
		T(test_an_idle_room_gives_its_bytes_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
