/* test_store.c: the chat history store (SQLite on a worker thread).
 *
 * Every case gets a fresh directory under /tmp (removed afterwards) and
 * waits for results the way the loop does: poll the store's eventfd with a
 * timeout, then store_drain. Callbacks copy what they see into `seen`, in
 * the order they ran, so a case can check order as well as content. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

#define WAIT_MS 5000

/* One callback, as it ran. Query records are deep copies into `mem`. */
struct event {
	bool query;
	uintptr_t ctx;
	int err;
	bool more;
	size_t n;
	struct store_record *recs;
	char *mem;
};

static struct {
	char dir[64];
	char path[128];
	struct store *store;
	struct event *seen;
	size_t n_seen, cap;
} fx;

static void copy_records(struct event *e, const struct store_record *recs, size_t n)
{
	size_t total = 1;
	char *p;

	for (size_t i = 0; i < n; i++)
		total += recs[i].room_len + recs[i].from_len + recs[i].name_len + recs[i].text_len;
	e->recs = calloc(n ? n : 1, sizeof(*recs));
	e->mem = p = malloc(total);
	assert_non_null(e->recs);
	assert_non_null(e->mem);
	for (size_t i = 0; i < n; i++) {
		struct store_record *r = &e->recs[i];

		*r = recs[i];
		r->room = memcpy(p, recs[i].room, r->room_len);
		p += r->room_len;
		r->from = memcpy(p, recs[i].from, r->from_len);
		p += r->from_len;
		r->name = memcpy(p, recs[i].name, r->name_len);
		p += r->name_len;
		r->text = memcpy(p, recs[i].text, r->text_len);
		p += r->text_len;
	}
	e->n = n;
}

static struct event *new_event(void)
{
	if (fx.n_seen == fx.cap) {
		fx.cap = fx.cap ? 2 * fx.cap : 64;
		fx.seen = realloc(fx.seen, fx.cap * sizeof(*fx.seen));
		assert_non_null(fx.seen);
	}
	fx.seen[fx.n_seen] = (struct event){ 0 };
	return &fx.seen[fx.n_seen++];
}

static void on_appended(void *ctx, int err)
{
	struct event *e = new_event();

	e->ctx = (uintptr_t)ctx;
	e->err = err;
}

static void on_queried(void *ctx, const struct store_record *recs, size_t n, bool more, int err)
{
	struct event *e = new_event();

	e->query = true;
	e->ctx = (uintptr_t)ctx;
	e->err = err;
	e->more = more;
	copy_records(e, recs, n);
}

static const struct store_callbacks callbacks = { on_appended, on_queried };

static void forget_events(void)
{
	for (size_t i = 0; i < fx.n_seen; i++) {
		free(fx.seen[i].recs);
		free(fx.seen[i].mem);
	}
	fx.n_seen = 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	(void)state;
	strcpy(fx.dir, "/tmp/test_store.XXXXXX");
	if (!mkdtemp(fx.dir))
		return -1;
	/* Nested, so every case also checks that store_open makes parents. */
	snprintf(fx.path, sizeof(fx.path), "%s/data/history/chat.db", fx.dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (fx.store)
		store_close(fx.store);
	fx.store = NULL;
	forget_events();
	free(fx.seen);
	fx.seen = NULL;
	fx.cap = 0;
	return nftw(fx.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void open_store(enum store_sync sync, unsigned interval_ms)
{
	struct store_config cfg = {
		.path = fx.path, .sync = sync, .sync_interval_ms = interval_ms,
	};

	fx.store = store_open(&cfg);
	assert_non_null(fx.store);
}

static void reopen_store(void)
{
	store_close(fx.store);
	fx.store = NULL;
	open_store(STORE_SYNC_INTERVAL, 0);
}

static void append_bytes(const char *room, uint64_t id, const char *text, size_t len, uintptr_t ctx)
{
	struct store_record r = {
		.room = room, .room_len = strlen(room), .id = id, .ts = 1700000000000 + id,
		.from = "u7", .from_len = 2, .name = "Zoë", .name_len = strlen("Zoë"),
		.text = text, .text_len = len,
	};

	store_append(fx.store, &r, (void *)ctx);
}

static void append(const char *room, uint64_t id, uintptr_t ctx)
{
	char text[32];

	snprintf(text, sizeof(text), "%s#%llu", room, (unsigned long long)id);
	append_bytes(room, id, text, strlen(text), ctx);
}

static void query_before(const char *room, uint64_t before, unsigned limit, uintptr_t ctx)
{
	store_query_before(fx.store, room, strlen(room), before, limit, (void *)ctx);
}

static void query_since(const char *room, uint64_t since, unsigned limit, uintptr_t ctx)
{
	store_query_since(fx.store, room, strlen(room), since, limit, (void *)ctx);
}

/* Poll and drain until n callbacks in all have run. */
static void wait_for(size_t n)
{
	while (fx.n_seen < n) {
		struct pollfd p = { .fd = store_event_fd(fx.store), .events = POLLIN };

		if (poll(&p, 1, WAIT_MS) != 1)
			fail_msg("waited %d ms with %zu of %zu results", WAIT_MS, fx.n_seen, n);
		store_drain(fx.store, &callbacks);
	}
	assert_int_equal(fx.n_seen, n);
}

/* The result of one query, alone, after the work before it was drained. */
static const struct event *ask(bool before, const char *room, uint64_t bound, unsigned limit)
{
	forget_events();
	if (before)
		query_before(room, bound, limit, 99);
	else
		query_since(room, bound, limit, 99);
	wait_for(1);
	assert_true(fx.seen[0].query);
	assert_int_equal(fx.seen[0].err, 0);
	return &fx.seen[0];
}

static void fill(const char *room, uint64_t first, uint64_t last)
{
	forget_events();
	for (uint64_t id = first; id <= last; id++)
		append(room, id, id);
	wait_for(last - first + 1);
	for (size_t i = 0; i < fx.n_seen; i++)
		assert_int_equal(fx.seen[i].err, 0);
	forget_events();
}

static void assert_text(const struct store_record *r, const char *room, uint64_t id)
{
	char text[32];

	snprintf(text, sizeof(text), "%s#%llu", room, (unsigned long long)id);
	assert_int_equal(r->room_len, strlen(room));
	assert_memory_equal(r->room, room, r->room_len);
	assert_int_equal(r->text_len, strlen(text));
	assert_memory_equal(r->text, text, r->text_len);
	assert_int_equal(r->ts, 1700000000000 + id);
	assert_int_equal(r->from_len, 2);
	assert_memory_equal(r->from, "u7", 2);
	assert_int_equal(r->name_len, strlen("Zoë"));
	assert_memory_equal(r->name, "Zoë", r->name_len);
}

/* A query answered ok with exactly ids first..last of room, oldest first. */
static void assert_ids(const struct event *e, const char *room, uint64_t first, uint64_t last,
		       bool more)
{
	assert_true(e->query);
	assert_int_equal(e->err, 0);
	assert_int_equal(e->n, last - first + 1);
	for (size_t i = 0; i < e->n; i++) {
		assert_int_equal(e->recs[i].id, first + i);
		assert_text(&e->recs[i], room, first + i);
	}
	assert_int_equal(e->more, more);
}

static void assert_empty(const struct event *e, bool more)
{
	assert_true(e->query);
	assert_int_equal(e->err, 0);
	assert_int_equal(e->n, 0);
	assert_int_equal(e->more, more);
}

static void assert_appended(const struct event *e, uintptr_t ctx, int err)
{
	assert_false(e->query);
	assert_int_equal(e->ctx, ctx);
	assert_int_equal(e->err, err);
}

/* ---- order and visibility ---- */

static void check_appends_reported_in_order_then_visible(enum store_sync sync)
{
	open_store(sync, 0);
	append("lobby", 1, 1);
	append("lobby", 2, 2);
	append("lobby", 3, 3);
	/* Queued right behind the appends, with no drain in between. */
	query_before("lobby", 0, 10, 4);
	query_since("lobby", 1, 10, 5);
	wait_for(5);

	for (uintptr_t i = 0; i < 3; i++)
		assert_appended(&fx.seen[i], i + 1, 0);
	assert_int_equal(fx.seen[3].ctx, 4);
	assert_ids(&fx.seen[3], "lobby", 1, 3, false);
	assert_int_equal(fx.seen[4].ctx, 5);
	assert_ids(&fx.seen[4], "lobby", 2, 3, false);
}

static void test_appends_are_reported_in_order_then_visible_to_queries(void **state)
{
	(void)state;
	check_appends_reported_in_order_then_visible(STORE_SYNC_INTERVAL);
}

static void test_sync_always_reports_in_order_then_visible_to_queries(void **state)
{
	(void)state;
	check_appends_reported_in_order_then_visible(STORE_SYNC_ALWAYS);
}

static void test_open_creates_parent_directories(void **state)
{
	char dir[PATH_MAX];
	struct stat st;

	(void)state;
	open_store(STORE_SYNC_INTERVAL, 0);
	snprintf(dir, sizeof(dir), "%s/data/history", fx.dir);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(stat(fx.path, &st), 0);
}

/* ---- group commit ---- */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Transactions committed to the WAL file: per SQLite's "WAL File Format",
 * each ends with a frame whose header holds the database size (other frames
 * hold 0) and the WAL header's salt (frames left from an older generation
 * of the WAL hold another). */
static unsigned wal_commits(void)
{
	char wal[PATH_MAX];
	unsigned char head[32], frame[24];
	unsigned commits = 0;
	uint32_t page;
	FILE *f;

	snprintf(wal, sizeof(wal), "%s-wal", fx.path);
	f = fopen(wal, "rb");
	assert_non_null(f);
	assert_int_equal(fread(head, 1, sizeof(head), f), sizeof(head));
	page = be32(head + 8) == 1 ? 65536 : be32(head + 8);
	while (fread(frame, 1, sizeof(frame), f) == sizeof(frame)) {
		if (be32(frame + 4) && memcmp(frame + 8, head + 16, 8) == 0)
			commits++;
		assert_int_equal(fseek(f, page, SEEK_CUR), 0);
	}
	fclose(f);
	return commits;
}

static unsigned loaded;

static void queue_burst(void *arg, const struct store_record *r)
{
	(void)arg;
	(void)r;
	loaded++;
	for (uint64_t id = 1; id <= 1000; id++)
		append("burst", id, id);
}

/* store_load_recent keeps the worker off the database while it runs, so a
 * burst queued from its callback is all waiting when the worker wakes, as
 * it is when the loop queues faster than the disk commits. */
static void test_group_commit_puts_a_queued_burst_in_one_transaction(void **state)
{
	unsigned before;

	(void)state;
	/* A long interval keeps checkpoints from restarting the WAL mid-count. */
	open_store(STORE_SYNC_INTERVAL, 60000);
	fill("seed", 1, 1);
	before = wal_commits();

	loaded = 0;
	assert_int_equal(store_load_recent(fx.store, 1, queue_burst, NULL), 0);
	assert_int_equal(loaded, 1);
	wait_for(1000);
	for (size_t i = 0; i < 1000; i++)
		assert_appended(&fx.seen[i], i + 1, 0);
	assert_int_equal(wal_commits() - before, 1);
	assert_ids(ask(true, "burst", 0, 1000), "burst", 1, 1000, false);
}

/* ---- paging ---- */

static void test_query_before_pages_back_from_the_newest(void **state)
{
	(void)state;
	open_store(STORE_SYNC_INTERVAL, 0);
	fill("lobby", 1, 120);
	assert_ids(ask(true, "lobby", 0, 50), "lobby", 71, 120, true);
	assert_ids(ask(true, "lobby", 71, 50), "lobby", 21, 70, true);
	assert_ids(ask(true, "lobby", 21, 50), "lobby", 1, 20, false);
	assert_empty(ask(true, "lobby", 1, 50), false);
	assert_ids(ask(true, "lobby", 0, 120), "lobby", 1, 120, false);
	assert_empty(ask(true, "lobby", 0, 0), true);
}

static void test_query_since_gives_newer_ones_with_more_flag(void **state)
{
	(void)state;
	open_store(STORE_SYNC_INTERVAL, 0);
	fill("lobby", 1, 120);
	assert_ids(ask(false, "lobby", 0, 50), "lobby", 1, 50, true);
	assert_ids(ask(false, "lobby", 50, 50), "lobby", 51, 100, true);
	assert_ids(ask(false, "lobby", 100, 50), "lobby", 101, 120, false);
	assert_empty(ask(false, "lobby", 120, 50), false);
	assert_ids(ask(false, "lobby", 70, 50), "lobby", 71, 120, false);
}

static void test_rooms_are_separate_and_ids_are_per_room(void **state)
{
	(void)state;
	open_store(STORE_SYNC_INTERVAL, 0);
	fill("a", 1, 3);
	fill("b", 1, 2);
	fill("ab", 1, 4);
	assert_ids(ask(true, "a", 0, 50), "a", 1, 3, false);
	assert_ids(ask(false, "b", 0, 50), "b", 1, 2, false);
	assert_ids(ask(true, "ab", 0, 50), "ab", 1, 4, false);
	assert_empty(ask(true, "nobody", 0, 50), false);
}

/* ---- persistence ---- */

struct loaded_room {
	const char *room;
	uint64_t ids[8];
	size_t n;
};

static void collect(void *arg, const struct store_record *r)
{
	struct loaded_room *rooms = arg;

	for (; rooms->room; rooms++) {
		if (r->room_len != strlen(rooms->room) ||
		    memcmp(r->room, rooms->room, r->room_len) != 0)
			continue;
		assert_true(rooms->n < 8);
		assert_text(r, rooms->room, r->id);
		rooms->ids[rooms->n++] = r->id;
		return;
	}
	fail_msg("loaded a record of an unknown room %.*s", (int)r->room_len, r->room);
}

static void assert_loaded(const struct loaded_room *l, uint64_t first, uint64_t last)
{
	assert_int_equal(l->n, last - first + 1);
	for (size_t i = 0; i < l->n; i++)
		assert_int_equal(l->ids[i], first + i);
}

static void test_reopened_store_loads_newest_per_room_oldest_first(void **state)
{
	struct loaded_room rooms[] = {
		{ .room = "a" }, { .room = "b" }, { .room = "c" }, { .room = NULL },
	};

	(void)state;
	open_store(STORE_SYNC_INTERVAL, 0);
	fill("a", 1, 10);
	fill("b", 1, 2);
	fill("c", 1, 5);
	reopen_store();

	assert_int_equal(store_load_recent(fx.store, 3, collect, rooms), 0);
	assert_loaded(&rooms[0], 8, 10);
	assert_loaded(&rooms[1], 1, 2);
	assert_loaded(&rooms[2], 3, 5);
	/* Ids continue where they were: the next one is new. */
	fill("a", 11, 11);
}

static void test_load_recent_of_zero_still_gives_each_rooms_highest_id(void **state)
{
	struct loaded_room rooms[] = { { .room = "a" }, { .room = "b" }, { .room = NULL } };

	(void)state;
	open_store(STORE_SYNC_INTERVAL, 0);
	fill("a", 1, 10);
	fill("b", 1, 2);
	reopen_store();

	assert_int_equal(store_load_recent(fx.store, 0, collect, rooms), 0);
	assert_loaded(&rooms[0], 10, 10);
	assert_loaded(&rooms[1], 2, 2);
}

static void append_from(const char *room, uint64_t id, const char *from)
{
	struct store_record r = {
		.room = room, .room_len = strlen(room), .id = id, .ts = 1700000000000 + id,
		.from = from, .from_len = strlen(from), .name = "n", .name_len = 1,
		.text = "t", .text_len = 1,
	};

	store_append(fx.store, &r, (void *)(uintptr_t)id);
}

struct room_seen {
	const char *room;
	uint64_t last_id, numeric_sender_max;
	unsigned calls;
};

static void collect_room(void *arg, const struct store_room *r)
{
	struct room_seen *rooms = arg;

	for (; rooms->room; rooms++) {
		if (r->room_len == strlen(rooms->room) && memcmp(r->room, rooms->room, r->room_len) == 0) {
			rooms->calls++;
			rooms->last_id = r->last_id;
			rooms->numeric_sender_max = r->numeric_sender_max;
			return;
		}
	}
	fail_msg("loaded an unknown room %.*s", (int)r->room_len, r->room);
}

/* Start-up learns every room's last id and, for guest ids to go on, the
 * largest all-digit sender (1-10 digits) among its newest `window`
 * messages. */
static void test_load_rooms_gives_each_rooms_last_id_and_largest_numeric_sender(void **state)
{
	static const char *senders[] = { "500", "12", "7", "abc", "0099", "12345678901", "", "3x" };
	struct room_seen rooms[] = { { .room = "a" }, { .room = "g" }, { .room = NULL } };

	(void)state;
	open_store(STORE_SYNC_INTERVAL, 0);
	fill("a", 1, 10); /* sender "u7" */
	forget_events();
	for (uint64_t id = 1; id <= 8; id++)
		append_from("g", id, senders[id - 1]);
	wait_for(8);
	reopen_store();

	assert_int_equal(store_load_rooms(fx.store, 7, collect_room, rooms), 0);
	assert_int_equal(rooms[0].calls, 1);
	assert_int_equal(rooms[0].last_id, 10);
	assert_int_equal(rooms[0].numeric_sender_max, 0);
	assert_int_equal(rooms[1].calls, 1);
	assert_int_equal(rooms[1].last_id, 8);
	assert_int_equal(rooms[1].numeric_sender_max, 99); /* "500" is the 8th newest */

	rooms[1].calls = 0;
	assert_int_equal(store_load_rooms(fx.store, 8, collect_room, rooms), 0);
	assert_int_equal(rooms[1].calls, 1);
	assert_int_equal(rooms[1].numeric_sender_max, 500);

	/* window 0 still gives the last id */
	assert_int_equal(store_load_rooms(fx.store, 0, collect_room, rooms), 0);
	assert_int_equal(rooms[1].last_id, 8);
	assert_int_equal(rooms[1].numeric_sender_max, 0); /* the newest is "3x" */
}

static void test_close_commits_every_queued_append(void **state)
{
	(void)state;
	open_store(STORE_SYNC_INTERVAL, 0);
	for (uint64_t id = 1; id <= 200; id++)
		append("lobby", id, id);
	reopen_store();
	assert_ids(ask(true, "lobby", 0, 500), "lobby", 1, 200, false);
}

static void expect_binary_message(const struct store_record *r, const char *text, size_t len)
{
	assert_int_equal(r->text_len, len);
	assert_memory_equal(r->text, text, len);
	assert_int_equal(r->name_len, strlen("Zoë"));
	assert_memory_equal(r->name, "Zoë", r->name_len);
}

static void expect_nul_text(void *arg, const struct store_record *r)
{
	static const char text[] = "nul\0inside \xc3\xa9 \xf0\x9f\x98\x80";
	unsigned *calls = arg;

	if (r->id == 1)
		expect_binary_message(r, text, sizeof(text));
	else
		expect_binary_message(r, "", 0);
	++*calls;
}

static void test_text_with_nul_bytes_and_utf8_survives(void **state)
{
	static const char text[] = "nul\0inside \xc3\xa9 \xf0\x9f\x98\x80";
	const struct event *e;
	unsigned calls = 0;

	(void)state;
	open_store(STORE_SYNC_INTERVAL, 0);
	append_bytes("lobby", 1, text, sizeof(text), 1);
	append_bytes("lobby", 2, "", 0, 2);
	wait_for(2);
	assert_appended(&fx.seen[0], 1, 0);
	assert_appended(&fx.seen[1], 2, 0);

	e = ask(true, "lobby", 0, 10);
	assert_int_equal(e->n, 2);
	expect_binary_message(&e->recs[0], text, sizeof(text));
	expect_binary_message(&e->recs[1], "", 0);

	reopen_store();
	assert_int_equal(store_load_recent(fx.store, 10, expect_nul_text, &calls), 0);
	assert_int_equal(calls, 2);
}

/* ---- failures ---- */

static void queue_batch_with_duplicate(void *arg, const struct store_record *r)
{
	(void)arg;
	(void)r;
	loaded++;
	append("lobby", 10, 10);
	append("lobby", 2, 11);
	append("lobby", 11, 12);
}

static void test_duplicate_id_fails_its_whole_batch_and_store_keeps_working(void **state)
{
	(void)state;
	open_store(STORE_SYNC_INTERVAL, 0);
	fill("lobby", 1, 3);

	/* As in the group-commit case: queued together, committed together. */
	loaded = 0;
	assert_int_equal(store_load_recent(fx.store, 1, queue_batch_with_duplicate, NULL), 0);
	assert_int_equal(loaded, 1);
	wait_for(3);
	for (uintptr_t i = 0; i < 3; i++)
		assert_appended(&fx.seen[i], 10 + i, -EEXIST);
	assert_ids(ask(true, "lobby", 0, 50), "lobby", 1, 3, false);

	fill("lobby", 4, 5);
	assert_ids(ask(true, "lobby", 0, 50), "lobby", 1, 5, false);
}

static void test_injected_enospc_fails_appends_until_cleared(void **state)
{
	(void)state;
	open_store(STORE_SYNC_INTERVAL, 0);
	fill("lobby", 1, 1);

	store_inject_failure(fx.store, -ENOSPC);
	append("lobby", 2, 2);
	append("lobby", 3, 3);
	query_before("lobby", 0, 10, 4);
	wait_for(3);
	assert_appended(&fx.seen[0], 2, -ENOSPC);
	assert_appended(&fx.seen[1], 3, -ENOSPC);
	/* Queries still work: the history is there, without the failed ones. */
	assert_ids(&fx.seen[2], "lobby", 1, 1, false);

	store_inject_failure(fx.store, 0);
	fill("lobby", 2, 3);
	assert_ids(ask(true, "lobby", 0, 10), "lobby", 1, 3, false);
}

/* What the committed hook heard, on the writer thread. */
struct commits {
	atomic_int calls;
	atomic_int last_err;
};

static void on_committed(void *ctx, int err)
{
	struct commits *c = ctx;

	atomic_store(&c->last_err, err);
	atomic_fetch_add(&c->calls, 1);
}

static void test_committed_hook_hears_every_commit_before_its_appends_report(void **state)
{
	struct commits c = { 0 };
	struct store_config cfg = {
		.path = fx.path, .sync = STORE_SYNC_INTERVAL, .committed = on_committed, .committed_ctx = &c,
	};

	(void)state;
	fx.store = store_open(&cfg);
	assert_non_null(fx.store);
	append("lobby", 1, 1);
	wait_for(1);
	assert_int_equal(atomic_load(&c.calls), 1);
	assert_int_equal(atomic_load(&c.last_err), 0);

	store_inject_failure(fx.store, -ENOSPC);
	append("lobby", 2, 2);
	wait_for(2);
	assert_appended(&fx.seen[1], 2, -ENOSPC);
	assert_int_equal(atomic_load(&c.calls), 2);
	assert_int_equal(atomic_load(&c.last_err), -ENOSPC);

	/* a query commits nothing */
	query_before("lobby", 0, 10, 3);
	wait_for(3);
	assert_int_equal(atomic_load(&c.calls), 2);

	store_inject_failure(fx.store, 0);
	append("lobby", 4, 4);
	wait_for(4);
	assert_appended(&fx.seen[3], 4, 0);
	assert_int_equal(atomic_load(&c.calls), 3);
	assert_int_equal(atomic_load(&c.last_err), 0);
}

/* ---- the eventfd ---- */

static bool readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n = poll(&p, 1, timeout_ms);

	assert_true(n >= 0);
	return n == 1 && (p.revents & POLLIN);
}

static void test_event_fd_is_readable_after_work_and_drain_clears_it(void **state)
{
	int fd;

	(void)state;
	open_store(STORE_SYNC_INTERVAL, 0);
	fd = store_event_fd(fx.store);
	assert_false(readable(fd, 0));

	append("lobby", 1, 1);
	assert_true(readable(fd, WAIT_MS));
	store_drain(fx.store, &callbacks);
	assert_int_equal(fx.n_seen, 1);
	assert_appended(&fx.seen[0], 1, 0);
	assert_false(readable(fd, 0));

	/* Draining with nothing finished is harmless. */
	store_drain(fx.store, &callbacks);
	assert_int_equal(fx.n_seen, 1);
}

/* ---- durability ---- */

/* Until the timed checkpoint, commits live only in the WAL; the checkpoint
 * copies them into the database file, which then grows. */
static void test_interval_sync_checkpoints_when_idle(void **state)
{
	struct timespec start, now;
	struct stat st;
	off_t empty;

	(void)state;
	open_store(STORE_SYNC_INTERVAL, 50);
	assert_int_equal(stat(fx.path, &st), 0);
	empty = st.st_size;
	fill("lobby", 1, 1);

	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		const struct timespec tick = { 0, 5 * 1000 * 1000 };

		assert_int_equal(stat(fx.path, &st), 0);
		if (st.st_size > empty)
			break;
		nanosleep(&tick, NULL);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while (now.tv_sec - start.tv_sec < 3);
	assert_true(st.st_size > empty);
}

struct crash_counts {
	unsigned reported, acked;
};

static void crash_appended(void *ctx, int err)
{
	struct crash_counts *c = ctx;

	c->reported++;
	c->acked += err == 0;
}

static void crash_queried(void *ctx, const struct store_record *recs, size_t n, bool more, int err)
{
	(void)ctx;
	(void)recs;
	(void)n;
	(void)more;
	(void)err;
	_exit(4);
}

/* Append until 'want' are reported, then return how many were committed. */
static unsigned crash_wait(struct store *s, struct crash_counts *c, unsigned want)
{
	static const struct store_callbacks cb = { crash_appended, crash_queried };

	while (c->reported < want) {
		struct pollfd p = { .fd = store_event_fd(s), .events = POLLIN };

		if (poll(&p, 1, WAIT_MS) != 1)
			_exit(3);
		store_drain(s, &cb);
	}
	return c->acked;
}

static void crash_append(struct store *s, const char *room, uint64_t id, struct crash_counts *c)
{
	char text[32];
	struct store_record r = {
		.room = room, .room_len = strlen(room), .id = id, .ts = 1700000000000 + id,
		.from = "u7", .from_len = 2, .name = "Zoë", .name_len = strlen("Zoë"),
		.text = text,
	};

	r.text_len = (size_t)snprintf(text, sizeof(text), "%s#%llu", room, (unsigned long long)id);
	store_append(s, &r, c);
}

static void crash_say(int out, uint64_t v)
{
	if (write(out, &v, sizeof(v)) != sizeof(v))
		_exit(5);
}

/* The child: 500 appends, then how many were acknowledged. Then one at a
 * time into "tail", saying each id once it is acknowledged, until killed:
 * the kill lands in the middle of commits. It never closes the store. */
static void crash_child(int out)
{
	struct store_config cfg = { .path = fx.path, .sync = STORE_SYNC_INTERVAL };
	struct crash_counts c = { 0 };
	struct store *s = store_open(&cfg);

	if (!s)
		_exit(2);
	for (uint64_t id = 1; id <= 500; id++)
		crash_append(s, "crash", id, &c);
	crash_say(out, crash_wait(s, &c, 500));
	for (unsigned id = 1;; id++) {
		crash_append(s, "tail", id, &c);
		if (crash_wait(s, &c, 500 + id) == 500 + id)
			crash_say(out, id);
	}
}

static bool crash_hear(int in, uint64_t *v)
{
	return read(in, v, sizeof(*v)) == sizeof(*v);
}

static void test_acknowledged_appends_survive_kill_9(void **state)
{
	uint64_t acked, tail_acked = 0, id;
	int pipefd[2], status;
	const struct event *tail;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pipefd[0]);
		crash_child(pipefd[1]);
	}
	close(pipefd[1]);
	if (!crash_hear(pipefd[0], &acked))
		acked = 0;
	while (tail_acked < 20 && crash_hear(pipefd[0], &id))
		tail_acked = id;
	kill(pid, SIGKILL);
	/* Whatever it said before dying was acknowledged too. */
	while (crash_hear(pipefd[0], &id))
		tail_acked = id;
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fail_msg("the child ended before the kill (status %#x)", status);
	assert_int_equal(acked, 500);
	assert_true(tail_acked >= 20);

	open_store(STORE_SYNC_INTERVAL, 0);
	assert_ids(ask(true, "crash", 0, 1000), "crash", 1, 500, false);
	tail = ask(false, "tail", 0, 100000);
	assert_true(tail->n >= tail_acked);
	assert_ids(tail, "tail", 1, tail->n, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_appends_are_reported_in_order_then_visible_to_queries),
		T(test_sync_always_reports_in_order_then_visible_to_queries),
		T(test_open_creates_parent_directories),
		T(test_group_commit_puts_a_queued_burst_in_one_transaction),
		T(test_query_before_pages_back_from_the_newest),
		T(test_query_since_gives_newer_ones_with_more_flag),
		T(test_rooms_are_separate_and_ids_are_per_room),
		T(test_reopened_store_loads_newest_per_room_oldest_first),
		T(test_load_recent_of_zero_still_gives_each_rooms_highest_id),
		T(test_load_rooms_gives_each_rooms_last_id_and_largest_numeric_sender),
		T(test_close_commits_every_queued_append),
		T(test_text_with_nul_bytes_and_utf8_survives),
		T(test_duplicate_id_fails_its_whole_batch_and_store_keeps_working),
		T(test_injected_enospc_fails_appends_until_cleared),
		T(test_committed_hook_hears_every_commit_before_its_appends_report),
		T(test_event_fd_is_readable_after_work_and_drain_clears_it),
		T(test_interval_sync_checkpoints_when_idle),
		T(test_acknowledged_appends_survive_kill_9),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
