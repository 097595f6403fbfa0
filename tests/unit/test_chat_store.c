/* test_chat_store.c: the chat protocol with a real store (docs/protocol.md,
 * "Persistence" and "Resuming without gaps"), rule by rule.
 *
 * Every case gets a fresh SQLite database in a directory under /tmp and
 * waits for the store the way the loop does: poll its eventfd with a
 * timeout, then chat_store_ready(). Until then nothing the store decides
 * can have happened, which is what lets a case look at what was sent
 * "before the commit" without any race.
 *
 * The fake send function is test_chat.c's: it keeps a reference to each
 * buf, parses its payload's JSON as a client would and frames it in place
 * as the WebSocket transport does. Members come from a pool the
 * teardown disconnects; cases that check a member who disconnects while
 * the store is busy allocate it on the heap and free it, as a server does,
 * so a late use of it shows under ASan. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "buf.h"
#include "chat.h"
#include "store.h"
#include "ws.h"

#define WAIT_MS 10000
/* Cases not about the byte bound on history keep it out of reach. */
#define HISTORY_BYTES_UNBOUNDED UINT64_MAX

struct sent {
	struct chat_member *to;
	struct buf *frame;  /* a reference, kept so the pointer stays unique */
	json_t *json;       /* its payload, parsed */
	char *payload;      /* its payload, NUL-terminated */
};

static struct sent *sent;
static size_t nsent, sent_cap;

/* A payload a client could not read, noted rather than failed on inside
 * chat's call; the next look at what was sent fails with it. */
static char bad_frame[512];

#define POOL_MAX 32

static struct chat *chat; /* the fixture's, made again by restart() */
static struct chat_member pool[POOL_MAX];
static size_t npool;

static struct {
	char dir[64];
	char path[128];
	struct store *store;
	struct chat_config cfg;
} fx;

static void fake_send(struct chat_member *m, struct buf *frame)
{
	struct sent *s;
	size_t n;
	json_error_t err;
	const char *p = buf_payload(frame, &n);

	if (nsent == sent_cap) {
		sent_cap = sent_cap ? 2 * sent_cap : 1024;
		sent = realloc(sent, sent_cap * sizeof(*sent));
		if (!sent)
			abort();
	}
	s = &sent[nsent++];
	*s = (struct sent){ .to = m, .frame = buf_ref(frame) };
	s->payload = malloc(n + 1);
	if (!s->payload)
		abort();
	memcpy(s->payload, p, n);
	s->payload[n] = '\0';
	s->json = json_loadb(p, n, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &err);
	if (!s->json || !json_is_object(s->json)) {
		if (!bad_frame[0])
			snprintf(bad_frame, sizeof(bad_frame), "bad payload to member %u: %.300s", m->id,
				 s->payload);
		json_decref(s->json);
		s->json = json_object(); /* typeless: any look at its type fails */
	}
	ws_frame_text_in_place(frame); /* as the WebSocket transport does */
}

static void check_frames(void)
{
	if (bad_frame[0])
		fail_msg("%s", bad_frame);
}

static void forget_sent(void)
{
	check_frames();
	for (size_t i = 0; i < nsent; i++) {
		buf_unref(sent[i].frame);
		free(sent[i].payload);
		json_decref(sent[i].json);
	}
	nsent = 0;
}

static struct chat_member *member(void)
{
	assert_true(npool < POOL_MAX);
	return &pool[npool++];
}

/* ---- the fixture: a store in a fresh directory, chat on top ---- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static struct store *open_store(void)
{
	struct store_config cfg = { .path = fx.path, .sync = STORE_SYNC_INTERVAL };

	return store_open(&cfg);
}

static int start(uint32_t history_memory, uint64_t history_bytes)
{
	strcpy(fx.dir, "/tmp/test_chat_store.XXXXXX");
	if (!mkdtemp(fx.dir))
		return -1;
	snprintf(fx.path, sizeof(fx.path), "%s/chat.db", fx.dir);
	fx.store = open_store();
	if (!fx.store)
		return -1;
	fx.cfg = (struct chat_config){ .send = fake_send, .store = fx.store,
				       .history_memory = history_memory,
				       .history_bytes = history_bytes };
	nsent = 0;
	npool = 0;
	bad_frame[0] = '\0';
	memset(pool, 0, sizeof(pool));
	chat = chat_new(&fx.cfg);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	return start(0, HISTORY_BYTES_UNBOUNDED);
}

static int setup_history_memory_10(void **state)
{
	(void)state;
	return start(10, HISTORY_BYTES_UNBOUNDED);
}

/* 16 KiB of history in memory for all rooms: about a hundred short
 * messages. */
static int setup_history_bytes_16k(void **state)
{
	(void)state;
	return start(0, 16 * 1024);
}

static void disconnect_all(void)
{
	for (size_t i = 0; i < npool; i++)
		chat_disconnect(chat, &pool[i]);
}

/* Chat first: what it still waits for is freed, and the store then drops
 * the results nobody will collect. */
static int teardown(void **state)
{
	(void)state;
	disconnect_all();
	chat_free(chat);
	chat = NULL;
	if (fx.store)
		store_close(fx.store);
	fx.store = NULL;
	bad_frame[0] = '\0';
	forget_sent();
	free(sent);
	sent = NULL;
	sent_cap = 0;
	return nftw(fx.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The server going down and coming back on the same database. */
static void restart(void)
{
	disconnect_all();
	chat_free(chat);
	store_close(fx.store);
	fx.store = open_store();
	assert_non_null(fx.store);
	fx.cfg.store = fx.store;
	chat = chat_new(&fx.cfg);
	assert_int_equal(chat_load_history(chat), 0);
}

/* ---- waiting for the store ---- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the store's results as the loop would until done(arg) holds; false
 * if it still does not after timeout_ms. */
static bool pump_until(bool (*done)(const void *arg), const void *arg, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	while (!done(arg)) {
		int64_t left = deadline - now_ms();
		struct pollfd p = { .fd = store_event_fd(fx.store), .events = POLLIN };

		if (left <= 0)
			return false;
		if (poll(&p, 1, (int)left) > 0)
			chat_store_ready(chat);
	}
	return true;
}

static bool never(const void *arg)
{
	(void)arg;
	return false;
}

/* Let the store finish whatever it was given; nothing is expected. */
static void pump_for(int ms)
{
	pump_until(never, NULL, ms);
}

/* ---- reading what was sent ---- */

static const char *str(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_string(v))
		fail_msg("\"%s\" is not a string", key);
	return json_string_value(v);
}

static json_int_t num(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v))
		fail_msg("\"%s\" is not an integer", key);
	return json_integer_value(v);
}

static bool flag(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_boolean(v))
		fail_msg("\"%s\" is not a boolean", key);
	return json_is_true(v);
}

static const char *type_of(const struct sent *s)
{
	return str(s->json, "type");
}

static size_t count_of_type(const struct chat_member *m, const char *type)
{
	size_t n = 0;

	check_frames();
	for (size_t i = 0; i < nsent; i++)
		if (sent[i].to == m && strcmp(type_of(&sent[i]), type) == 0)
			n++;
	return n;
}

static size_t frames_to(const struct chat_member *m)
{
	size_t n = 0;

	check_frames();
	for (size_t i = 0; i < nsent; i++)
		n += sent[i].to == m;
	return n;
}

/* The types of the frames sent to m, space-separated; messages in a row
 * are shown as one "message*N". */
static const char *types_to(const struct chat_member *m)
{
	static char out[4096];
	size_t len = 0, run = 0;

	check_frames();
	out[0] = '\0';
	for (size_t i = 0; i <= nsent; i++) {
		bool msg = i < nsent && sent[i].to == m && strcmp(type_of(&sent[i]), "message") == 0;
		int n = 0;

		if (msg) {
			run++;
			continue;
		}
		if (run && (i == nsent || sent[i].to == m)) {
			n = snprintf(out + len, sizeof(out) - len, "%smessage*%zu", len ? " " : "", run);
			assert_true(n > 0 && (size_t)n < sizeof(out) - len);
			len += (size_t)n;
			run = 0;
		}
		if (i < nsent && sent[i].to == m) {
			n = snprintf(out + len, sizeof(out) - len, "%s%s", len ? " " : "", type_of(&sent[i]));
			assert_true(n > 0 && (size_t)n < sizeof(out) - len);
			len += (size_t)n;
		}
	}
	return out;
}

static const struct sent *nth_of_type(const struct chat_member *m, const char *type, size_t n)
{
	check_frames();
	for (size_t i = 0; i < nsent; i++)
		if (sent[i].to == m && strcmp(type_of(&sent[i]), type) == 0 && n-- == 0)
			return &sent[i];
	fail_msg("member %u got too few %s frames (%s)", m->id, type, types_to(m));
	return NULL;
}

/* The message frames sent to m carry exactly the ids first..last, in that
 * order: no gap, no duplicate. */
static void expect_message_ids(const struct chat_member *m, json_int_t first, json_int_t last)
{
	json_int_t want = first;

	check_frames();
	for (size_t i = 0; i < nsent; i++) {
		if (sent[i].to != m || strcmp(type_of(&sent[i]), "message") != 0)
			continue;
		if (want > last || num(sent[i].json, "id") != want)
			fail_msg("member %u: message id %lld, want %lld (ids %lld..%lld)", m->id,
				 (long long)num(sent[i].json, "id"), (long long)want, (long long)first,
				 (long long)last);
		want++;
	}
	if (want != last + 1)
		fail_msg("member %u: messages stop before id %lld, want up to %lld", m->id,
			 (long long)want, (long long)last);
}

static void expect_history(const struct sent *s, const char *room, json_int_t first, json_int_t last,
			   bool more)
{
	assert_string_equal(type_of(s), "history");
	assert_string_equal(str(s->json, "room"), room);
	json_t *msgs = json_object_get(s->json, "messages");
	assert_true(json_is_array(msgs));
	size_t want = first > last ? 0 : (size_t)(last - first + 1);
	if (json_array_size(msgs) != want)
		fail_msg("history of %zu messages, want %zu (%s)", json_array_size(msgs), want, s->payload);
	for (size_t i = 0; i < want; i++) {
		json_t *msg = json_array_get(msgs, i);
		assert_string_equal(str(msg, "type"), "message");
		assert_int_equal(num(msg, "id"), first + (json_int_t)i);
	}
	if (flag(s->json, "more") != more)
		fail_msg("history more=%s, want %s (%s)", more ? "false" : "true", more ? "true" : "false",
			 s->payload);
}

static void expect_resumed(const struct sent *s, const char *room, json_int_t since, json_int_t last,
			   bool complete)
{
	assert_string_equal(type_of(s), "resumed");
	assert_string_equal(str(s->json, "room"), room);
	assert_int_equal(num(s->json, "since"), since);
	assert_int_equal(num(s->json, "last"), last);
	assert_int_equal(flag(s->json, "complete"), complete);
}

/* Predicates for pump_until: m has at least n frames of the type. */
struct want {
	const struct chat_member *m;
	const char *type;
	size_t n;
};

static bool has_frames(const void *arg)
{
	const struct want *w = arg;

	return count_of_type(w->m, w->type) >= w->n;
}

#define PUMP_UNTIL_GOT(who, what, count)                                                           \
	do {                                                                                       \
		const struct want w_ = { .m = (who), .type = (what), .n = (count) };               \
		if (!pump_until(has_frames, &w_, WAIT_MS))                                         \
			fail_msg("member %u: no %zu %s frames within %d ms (%s)", (who)->id,        \
				 (size_t)(count), (what), WAIT_MS, types_to(who));                  \
	} while (0)

/* ---- acting as clients ---- */

static void join(struct chat_member *m, const char *room)
{
	chat_connect(chat, m, NULL, room, strlen(room), NULL);
}

static void join_since(struct chat_member *m, const char *room, uint64_t since)
{
	chat_connect(chat, m, NULL, room, strlen(room), &since);
}

static void say(struct chat_member *m, const char *text)
{
	chat_receive(chat, m, text, strlen(text));
}

static void cmdf(struct chat_member *m, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	chat_receive(chat, m, text, (size_t)n);
}

static void say_n(struct chat_member *m, int from, int to)
{
	char text[32];

	for (int i = from; i <= to; i++) {
		snprintf(text, sizeof(text), "message %d", i);
		say(m, text);
	}
}

/* m posts messages from..to and waits until they are committed and back. */
static void post_committed(struct chat_member *m, int from, int to)
{
	size_t had = count_of_type(m, "message");

	say_n(m, from, to);
	PUMP_UNTIL_GOT(m, "message", had + (size_t)(to - from + 1));
}

/* ---- durable acknowledgement ---- */

static void test_message_is_broadcast_only_once_the_store_has_committed_it(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	uint64_t pending = chat_stats(chat)->pending;
	join(a, "lobby");
	join(b, "lobby");
	forget_sent();
	say(a, "hi");
	assert_int_equal(nsent, 0);
	assert_int_equal(chat_stats(chat)->pending, pending + 1);

	/* Committed (the store says so), but not broadcast until the loop
	 * runs the result. */
	struct pollfd p = { .fd = store_event_fd(fx.store), .events = POLLIN };
	assert_int_equal(poll(&p, 1, WAIT_MS), 1);
	assert_int_equal(nsent, 0);

	chat_store_ready(chat);
	const struct sent *to_a = nth_of_type(a, "message", 0);
	const struct sent *to_b = nth_of_type(b, "message", 0);
	assert_int_equal(nsent, 2);
	assert_ptr_equal(to_a->frame, to_b->frame);
	assert_int_equal(num(to_b->json, "id"), 1);
	assert_string_equal(str(to_b->json, "text"), "hi");
	assert_int_equal(chat_stats(chat)->pending, pending);
}

static void test_burst_of_200_is_broadcast_in_id_order(void **state)
{
	struct chat_member *a = member(), *b = member();
	char text[32];

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	forget_sent();
	say_n(a, 1, 200);
	PUMP_UNTIL_GOT(b, "message", 200);
	expect_message_ids(a, 1, 200);
	expect_message_ids(b, 1, 200);
	for (size_t i = 0; i < 200; i++) {
		const struct sent *s = nth_of_type(b, "message", i);
		snprintf(text, sizeof(text), "message %zu", i + 1);
		assert_string_equal(str(s->json, "text"), text);
		assert_ptr_equal(s->frame, nth_of_type(a, "message", i)->frame);
	}
	assert_int_equal(chat_stats(chat)->pending, 0);
}

/* ---- store failures ---- */

static void test_failed_commit_is_not_saved_to_the_sender_and_sent_to_nobody(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	uint64_t failures = chat_stats(chat)->store_failures;
	join(a, "lobby");
	join(b, "lobby");
	post_committed(a, 1, 1);
	forget_sent();

	store_inject_failure(fx.store, -ENOSPC);
	say(a, "lost");
	PUMP_UNTIL_GOT(a, "error", 1);
	assert_string_equal(types_to(a), "error");
	assert_string_equal(str(nth_of_type(a, "error", 0)->json, "code"), "not_saved");
	assert_int_equal(frames_to(b), 0);
	assert_int_equal(chat_stats(chat)->store_failures, failures + 1);

	/* The failed message's id is skipped, never reused. */
	store_inject_failure(fx.store, 0);
	forget_sent();
	say(a, "again");
	PUMP_UNTIL_GOT(b, "message", 1);
	assert_int_equal(num(nth_of_type(b, "message", 0)->json, "id"), 3);

	/* Nor is it in anyone's history. */
	struct chat_member *c = member();
	forget_sent();
	join(c, "lobby");
	json_t *msgs = json_object_get(nth_of_type(c, "history", 0)->json, "messages");
	assert_int_equal(json_array_size(msgs), 2);
	assert_int_equal(num(json_array_get(msgs, 0), "id"), 1);
	assert_int_equal(num(json_array_get(msgs, 1), "id"), 3);
}

static void test_every_sender_of_a_failed_commit_gets_not_saved(void **state)
{
	struct chat_member *a = member(), *b = member(), *c = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	join(c, "lobby");
	forget_sent();
	store_inject_failure(fx.store, -EIO);
	say(a, "one");
	say(b, "two");
	PUMP_UNTIL_GOT(b, "error", 1);
	assert_string_equal(types_to(a), "error");
	assert_string_equal(types_to(b), "error");
	assert_string_equal(str(nth_of_type(a, "error", 0)->json, "code"), "not_saved");
	assert_string_equal(str(nth_of_type(b, "error", 0)->json, "code"), "not_saved");
	assert_int_equal(frames_to(c), 0);
}

/* ---- history beyond memory ---- */

/* history_memory 10, 30 messages: memory holds 21..30, the store has all. */
static void test_history_older_than_memory_comes_from_the_store(void **state)
{
	struct chat_member *a = member(), *b = member();
	json_t *broadcast[31];

	(void)state;
	join(a, "lobby");
	forget_sent();
	post_committed(a, 1, 30);
	for (size_t id = 1; id <= 30; id++)
		broadcast[id] = json_incref(nth_of_type(a, "message", id - 1)->json);
	forget_sent();

	join(b, "lobby");
	/* memory holds 10 of the 50 a join shows: the store sends all 30 */
	assert_int_equal(count_of_type(b, "history"), 0);
	PUMP_UNTIL_GOT(b, "history", 1);
	expect_history(nth_of_type(b, "history", 0), "lobby", 1, 30, false);

	forget_sent();
	cmdf(b, "{\"type\":\"history\",\"before\":21,\"limit\":10}");
	assert_int_equal(frames_to(b), 0); /* the store answers later */
	PUMP_UNTIL_GOT(b, "history", 1);
	const struct sent *h = nth_of_type(b, "history", 0);
	expect_history(h, "lobby", 11, 20, true);
	/* What the store gives back is the message as it was broadcast. */
	json_t *msgs = json_object_get(h->json, "messages");
	for (size_t i = 0; i < 10; i++)
		if (!json_equal(json_array_get(msgs, i), broadcast[11 + i]))
			fail_msg("history from the store differs from the broadcast: %s", h->payload);

	forget_sent();
	cmdf(b, "{\"type\":\"history\",\"before\":11}");
	PUMP_UNTIL_GOT(b, "history", 1);
	expect_history(nth_of_type(b, "history", 0), "lobby", 1, 10, false);

	/* Across the edge of memory. */
	forget_sent();
	cmdf(b, "{\"type\":\"history\",\"before\":25,\"limit\":10}");
	PUMP_UNTIL_GOT(b, "history", 1);
	expect_history(nth_of_type(b, "history", 0), "lobby", 15, 24, true);

	/* The newest, more than memory holds. */
	forget_sent();
	cmdf(b, "{\"type\":\"history\",\"limit\":50}");
	PUMP_UNTIL_GOT(b, "history", 1);
	expect_history(nth_of_type(b, "history", 0), "lobby", 1, 30, false);

	for (size_t id = 1; id <= 30; id++)
		json_decref(broadcast[id]);
}

/* ---- restart ---- */

static void test_restart_keeps_history_and_ids_continue(void **state)
{
	struct chat_member *guest = member(), *signed_in = member(), *d = member();
	const struct chat_identity who = { .user_id = "u-42", .name = "Alice" };
	json_t *broadcast[6];

	(void)state;
	join(guest, "lobby");
	chat_connect(chat, signed_in, &who, "lobby", 5, NULL);
	join(d, "dev");
	cmdf(guest, "{\"type\":\"nick\",\"name\":\"Zo\\u00eb\"}");
	forget_sent();
	say(guest, "one");
	say(signed_in, "two");
	say(guest, "{\"type\":\"message\",\"text\":\"three \\\"quoted\\\" a\\tb\"}");
	say(signed_in, "four \xf0\x9f\x98\x80");
	say(guest, "five");
	say_n(d, 1, 2);
	PUMP_UNTIL_GOT(guest, "message", 5);
	PUMP_UNTIL_GOT(d, "message", 2);
	for (size_t id = 1; id <= 5; id++)
		broadcast[id] = json_incref(nth_of_type(guest, "message", id - 1)->json);

	restart();
	forget_sent();
	struct chat_member *n = member();
	join(n, "lobby");
	/* nothing was loaded into memory: the store answers */
	assert_int_equal(count_of_type(n, "history"), 0);
	PUMP_UNTIL_GOT(n, "history", 1);
	const struct sent *h = nth_of_type(n, "history", 0);
	expect_history(h, "lobby", 1, 5, false);
	/* guest ids go on past the authors of stored messages (guest, d) */
	assert_true(n->id > guest->id && n->id > d->id);
	json_t *msgs = json_object_get(h->json, "messages");
	for (size_t id = 1; id <= 5; id++)
		if (!json_equal(json_array_get(msgs, id - 1), broadcast[id]))
			fail_msg("message %zu differs after the restart: %s", id, h->payload);
	for (size_t id = 1; id <= 5; id++)
		json_decref(broadcast[id]);

	forget_sent();
	say(n, "six");
	PUMP_UNTIL_GOT(n, "message", 1);
	assert_int_equal(num(nth_of_type(n, "message", 0)->json, "id"), 6);

	struct chat_member *e = member();
	join(e, "dev");
	say(e, "dev three");
	PUMP_UNTIL_GOT(e, "message", 1);
	assert_int_equal(num(nth_of_type(e, "message", 0)->json, "id"), 3);
}

/* history_memory 10: after a restart memory holds the newest 10 again and
 * the older ones are still a page away. */
static void test_restart_with_more_history_than_memory_pages_back_to_the_store(void **state)
{
	struct chat_member *a = member();

	(void)state;
	join(a, "lobby");
	post_committed(a, 1, 30);
	restart();
	forget_sent();
	struct chat_member *b = member();
	join(b, "lobby");
	PUMP_UNTIL_GOT(b, "history", 1);
	expect_history(nth_of_type(b, "history", 0), "lobby", 1, 30, false);
	forget_sent();
	cmdf(b, "{\"type\":\"history\",\"before\":21,\"limit\":20}");
	PUMP_UNTIL_GOT(b, "history", 1);
	expect_history(nth_of_type(b, "history", 0), "lobby", 1, 20, false);
	forget_sent();
	say(b, "31");
	PUMP_UNTIL_GOT(b, "message", 1);
	assert_int_equal(num(nth_of_type(b, "message", 0)->json, "id"), 31);
}

/* An idle room lets go of its recent messages (the store has them) but
 * not of its last id. */
static void test_an_idle_room_frees_memory_and_keeps_ids_and_history(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "dev");
	post_committed(a, 1, 3);
	chat_disconnect(chat, a);
	assert_int_equal(chat_stats(chat)->rooms, 0);
	forget_sent();
	join(b, "dev");
	PUMP_UNTIL_GOT(b, "history", 1);
	expect_history(nth_of_type(b, "history", 0), "dev", 1, 3, false);
	forget_sent();
	say(b, "4");
	PUMP_UNTIL_GOT(b, "message", 1);
	assert_int_equal(num(nth_of_type(b, "message", 0)->json, "id"), 4);
}

/* A restart brings back each room's name and last id, no messages: the
 * first join, page and replay of each room are answered by the store, and
 * ids go on. */
static void test_restart_loads_no_history_and_the_store_answers_for_every_room(void **state)
{
	struct chat_member *a = member();
	char room[8];

	(void)state;
	join(a, "r0");
	for (int k = 0; k < 3; k++) {
		snprintf(room, sizeof(room), "r%d", k);
		if (k)
			cmdf(a, "{\"type\":\"join\",\"room\":\"%s\"}", room);
		post_committed(a, 30 * k + 1, 30 * k + 30);
	}
	assert_true(chat_stats(chat)->history_bytes > 0);
	restart();
	assert_int_equal(chat_stats(chat)->history_bytes, 0);
	forget_sent();

	struct chat_member *b = member(), *c = member(), *d = member();
	join(b, "r0");
	assert_int_equal(count_of_type(b, "history"), 0);
	PUMP_UNTIL_GOT(b, "history", 1);
	expect_history(nth_of_type(b, "history", 0), "r0", 1, 30, false);

	join_since(c, "r1", 25);
	PUMP_UNTIL_GOT(c, "resumed", 1);
	assert_string_equal(types_to(c), "welcome presence join message*5 resumed");
	expect_message_ids(c, 26, 30);
	expect_resumed(nth_of_type(c, "resumed", 0), "r1", 25, 30, true);

	join(d, "r2");
	PUMP_UNTIL_GOT(d, "history", 1);
	forget_sent();
	say(d, "next");
	PUMP_UNTIL_GOT(d, "message", 1);
	assert_int_equal(num(nth_of_type(d, "message", 0)->json, "id"), 31);
	/* memory holds only "next": the newest 50 still come whole */
	forget_sent();
	cmdf(d, "{\"type\":\"history\"}");
	PUMP_UNTIL_GOT(d, "history", 1);
	expect_history(nth_of_type(d, "history", 0), "r2", 1, 31, false);
}

/* ---- the byte bound on history in memory ---- */

/* 16 KiB for all rooms: "quiet" posts 20, then "busy" 300 and takes the
 * memory (quiet is used least recently). Both histories stay whole: what
 * memory let go comes from the store. */
static void test_history_dropped_by_the_byte_bound_comes_from_the_store(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "quiet");
	post_committed(a, 1, 20);
	join(b, "busy");
	post_committed(b, 1, 300);
	assert_true(chat_stats(chat)->history_bytes <= 16 * 1024);
	assert_int_equal(chat_stats(chat)->history_bytes_limit, 16 * 1024);
	assert_true(chat_stats(chat)->history_evicted >= 20);
	forget_sent();

	struct chat_member *c = member(), *d = member(), *e = member();
	join(c, "quiet");
	assert_int_equal(count_of_type(c, "history"), 0); /* memory has none of it */
	PUMP_UNTIL_GOT(c, "history", 1);
	expect_history(nth_of_type(c, "history", 0), "quiet", 1, 20, false);

	join_since(d, "quiet", 3);
	PUMP_UNTIL_GOT(d, "resumed", 1);
	expect_message_ids(d, 4, 20);
	expect_resumed(nth_of_type(d, "resumed", 0), "quiet", 3, 20, true);

	join(e, "busy");
	PUMP_UNTIL_GOT(e, "history", 1);
	expect_history(nth_of_type(e, "history", 0), "busy", 251, 300, true);
	forget_sent();
	cmdf(e, "{\"type\":\"history\",\"before\":251,\"limit\":200}");
	PUMP_UNTIL_GOT(e, "history", 1);
	expect_history(nth_of_type(e, "history", 0), "busy", 51, 250, true);

	/* ids go on in both */
	forget_sent();
	say(a, "21");
	PUMP_UNTIL_GOT(a, "message", 1);
	assert_int_equal(num(nth_of_type(a, "message", 0)->json, "id"), 21);
}

/* ---- resuming from the store ---- */

/* history_memory 10, 40 messages: since=5 needs 6..30 from the store. */
static void test_resume_from_the_store_replays_without_gap_or_duplicate(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	post_committed(a, 1, 40);
	join_since(b, "lobby", 5);
	/* The replay waits for the store. */
	assert_int_equal(count_of_type(b, "message"), 0);
	assert_int_equal(count_of_type(b, "resumed"), 0);
	forget_sent();

	PUMP_UNTIL_GOT(b, "resumed", 1);
	assert_string_equal(types_to(b), "message*35 resumed");
	expect_message_ids(b, 6, 40);
	expect_resumed(nth_of_type(b, "resumed", 0), "lobby", 5, 40, true);
	assert_int_equal(count_of_type(b, "history"), 0);

	/* Then it is live. */
	forget_sent();
	say(a, "41");
	PUMP_UNTIL_GOT(b, "message", 1);
	expect_message_ids(b, 41, 41);
}

/* On connect the member gets welcome, presence and its own join event
 * (docs/protocol.md, "to every member, the new one included") whether its
 * replay comes from memory or, later, from the store. */
static void test_member_resuming_from_the_store_gets_its_own_join_event(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	post_committed(a, 1, 40);
	forget_sent();
	join_since(b, "lobby", 5);
	assert_string_equal(types_to(b), "welcome presence join");
	assert_int_equal(num(nth_of_type(b, "join", 0)->json, "count"), 2);
	assert_ptr_equal(nth_of_type(b, "join", 0)->frame, nth_of_type(a, "join", 0)->frame);
}

/* presence: count is exact and users lists everyone up to 100, the member
 * whose replay is still being read included (itself, and to later
 * joiners). */
static void test_member_resuming_from_the_store_is_listed_in_presence(void **state)
{
	struct chat_member *a = member(), *b = member(), *c = member();
	char id[16];

	(void)state;
	join(a, "lobby");
	post_committed(a, 1, 40);
	join_since(b, "lobby", 5);
	join(c, "lobby");
	snprintf(id, sizeof(id), "%u", b->id);
	for (int k = 0; k < 2; k++) {
		const struct chat_member *who = k ? c : b;
		json_t *p = nth_of_type(who, "presence", 0)->json;
		json_t *users = json_object_get(p, "users");
		bool listed = false;

		assert_int_equal(json_array_size(users), (size_t)num(p, "count"));
		for (size_t i = 0; i < json_array_size(users); i++)
			listed |= strcmp(str(json_array_get(users, i), "id"), id) == 0;
		if (!listed)
			fail_msg("presence to member %u leaves out member %s: %s", who->id, id,
				 nth_of_type(who, "presence", 0)->payload);
	}
}

/* A message posted while the replay is read from the store does not
 * overtake it: it comes after 40, after the resumed event. */
static void test_message_posted_during_a_store_replay_comes_after_it(void **state)
{
	struct chat_member *a = member(), *b = member(), *c = member();

	(void)state;
	join(a, "lobby");
	join(c, "lobby");
	post_committed(a, 1, 40);
	join_since(b, "lobby", 5);
	forget_sent();
	say(c, "41");
	PUMP_UNTIL_GOT(b, "message", 36);
	assert_string_equal(types_to(b), "message*35 resumed message*1");
	expect_message_ids(b, 6, 41);
	expect_resumed(nth_of_type(b, "resumed", 0), "lobby", 5, 40, true);
}

/* A message already waiting for its commit when the replay is asked for
 * is replayed once, not replayed and then broadcast again. */
static void test_message_committed_while_a_replay_is_asked_for_is_sent_once(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	post_committed(a, 1, 40);
	forget_sent();
	say(a, "41"); /* not committed yet */
	join_since(b, "lobby", 5);
	PUMP_UNTIL_GOT(b, "resumed", 1);
	pump_for(100);
	expect_message_ids(b, 6, 41);
	const struct sent *r = nth_of_type(b, "resumed", 0);
	assert_int_equal(num(r->json, "last"), 41);
	assert_true(flag(r->json, "complete"));
}

/* A resume sent while the connect's replay is still being read: every
 * resumed event says where its replay ended (40), never an id before
 * the one it resumed from. */
static void test_resume_sent_while_a_store_replay_is_pending_reports_the_last_id(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	post_committed(a, 1, 40);
	join_since(b, "lobby", 5);
	cmdf(b, "{\"type\":\"resume\",\"since\":5}");
	forget_sent();
	PUMP_UNTIL_GOT(b, "resumed", 1);
	pump_for(300);
	for (size_t i = 0; i < count_of_type(b, "resumed"); i++) {
		const struct sent *r = nth_of_type(b, "resumed", i);
		if (num(r->json, "last") != 40)
			fail_msg("resumed %zu: %s, want last 40 (%s)", i, r->payload, types_to(b));
	}
}

/* b went live at 30; a resume from 5 replays 6..30 from the store and
 * none of 31..33, which b already has. */
static void test_resume_in_a_live_room_from_the_store_replays_only_what_came_before(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	post_committed(a, 1, 30);
	join(b, "lobby");
	post_committed(a, 31, 33);
	forget_sent();
	cmdf(b, "{\"type\":\"resume\",\"since\":5}");
	PUMP_UNTIL_GOT(b, "resumed", 1);
	assert_string_equal(types_to(b), "message*25 resumed");
	expect_message_ids(b, 6, 30);
	expect_resumed(nth_of_type(b, "resumed", 0), "lobby", 5, 30, true);
}

/* ---- leaving while the store is busy ---- */

static void test_sender_who_disconnects_before_the_commit_is_no_trouble(void **state)
{
	struct chat_member *a = malloc(sizeof(*a)), *b = member();

	(void)state;
	assert_non_null(a);
	join(a, "lobby");
	join(b, "lobby");
	forget_sent();
	say(a, "bye");
	chat_disconnect(chat, a);
	free(a);
	PUMP_UNTIL_GOT(b, "message", 1);
	assert_string_equal(str(nth_of_type(b, "message", 0)->json, "text"), "bye");
}

static void test_sender_who_disconnects_before_a_failed_commit_is_no_trouble(void **state)
{
	struct chat_member *a = malloc(sizeof(*a)), *b = member();

	(void)state;
	assert_non_null(a);
	join(a, "lobby");
	join(b, "lobby");
	store_inject_failure(fx.store, -ENOSPC);
	say(a, "bye");
	chat_disconnect(chat, a);
	free(a);
	forget_sent();
	pump_for(200);
	store_inject_failure(fx.store, 0);
	say(b, "still here");
	PUMP_UNTIL_GOT(b, "message", 1);
	assert_string_equal(types_to(b), "message*1");
	assert_int_equal(num(nth_of_type(b, "message", 0)->json, "id"), 2);
}

static void test_member_who_disconnects_during_a_store_replay_is_no_trouble(void **state)
{
	struct chat_member *a = member(), *b = malloc(sizeof(*b));

	(void)state;
	assert_non_null(b);
	join(a, "lobby");
	post_committed(a, 1, 40);
	join_since(b, "lobby", 5);
	forget_sent();
	chat_disconnect(chat, b);
	free(b);
	assert_int_equal(num(nth_of_type(a, "leave", 0)->json, "count"), 1);
	say(a, "41");
	PUMP_UNTIL_GOT(a, "message", 1);
	pump_for(100);
	assert_string_equal(types_to(a), "leave message*1");
}

static void test_member_who_disconnects_during_a_store_history_is_no_trouble(void **state)
{
	struct chat_member *a = member(), *b = malloc(sizeof(*b));

	(void)state;
	assert_non_null(b);
	join(a, "lobby");
	post_committed(a, 1, 30);
	join(b, "lobby");
	cmdf(b, "{\"type\":\"history\",\"before\":21}");
	chat_disconnect(chat, b);
	free(b);
	forget_sent();
	say(a, "31");
	PUMP_UNTIL_GOT(a, "message", 1);
	pump_for(100);
	assert_string_equal(types_to(a), "message*1");
}

/* Left the room while its replay was read: the replay is dropped. */
static void test_member_who_leaves_during_a_store_replay_gets_none_of_it(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	post_committed(a, 1, 40);
	join(b, "dev");
	cmdf(b, "{\"type\":\"join\",\"room\":\"lobby\",\"since\":5}");
	cmdf(b, "{\"type\":\"leave\",\"room\":\"lobby\"}");
	forget_sent();
	pump_for(300);
	assert_int_equal(frames_to(b), 0);
	say(a, "41");
	PUMP_UNTIL_GOT(a, "message", 1);
	assert_int_equal(frames_to(b), 0);
}

/* Left and joined again (without since) before the old replay came back:
 * the new membership got its history and is live; the stale replay must
 * not be sent on top of it. */
static void test_replay_for_a_membership_that_was_left_is_not_sent_after_a_rejoin(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	post_committed(a, 1, 40);
	join(b, "dev");
	cmdf(b, "{\"type\":\"join\",\"room\":\"lobby\",\"since\":5}");
	cmdf(b, "{\"type\":\"leave\",\"room\":\"lobby\"}");
	forget_sent();
	cmdf(b, "{\"type\":\"join\",\"room\":\"lobby\"}");
	/* its history comes from the store (memory holds 10 of 40) */
	pump_for(300);
	assert_string_equal(types_to(b), "presence join history");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
#define T10(name) cmocka_unit_test_setup_teardown(name, setup_history_memory_10, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_message_is_broadcast_only_once_the_store_has_committed_it),
		T(test_burst_of_200_is_broadcast_in_id_order),
		T(test_failed_commit_is_not_saved_to_the_sender_and_sent_to_nobody),
		T(test_every_sender_of_a_failed_commit_gets_not_saved),
		T10(test_history_older_than_memory_comes_from_the_store),
		T(test_an_idle_room_frees_memory_and_keeps_ids_and_history),
		T(test_restart_keeps_history_and_ids_continue),
		T10(test_restart_with_more_history_than_memory_pages_back_to_the_store),
		T(test_restart_loads_no_history_and_the_store_answers_for_every_room),
		cmocka_unit_test_setup_teardown(test_history_dropped_by_the_byte_bound_comes_from_the_store,
						setup_history_bytes_16k, teardown),
		T10(test_resume_from_the_store_replays_without_gap_or_duplicate),
		T10(test_member_resuming_from_the_store_gets_its_own_join_event),
		T10(test_member_resuming_from_the_store_is_listed_in_presence),
		T10(test_message_posted_during_a_store_replay_comes_after_it),
		T10(test_message_committed_while_a_replay_is_asked_for_is_sent_once),
		T10(test_resume_sent_while_a_store_replay_is_pending_reports_the_last_id),
		T10(test_resume_in_a_live_room_from_the_store_replays_only_what_came_before),
		T(test_sender_who_disconnects_before_the_commit_is_no_trouble),
		T(test_sender_who_disconnects_before_a_failed_commit_is_no_trouble),
		T10(test_member_who_disconnects_during_a_store_replay_is_no_trouble),
		T10(test_member_who_disconnects_during_a_store_history_is_no_trouble),
		T10(test_member_who_leaves_during_a_store_replay_gets_none_of_it),
		T10(test_replay_for_a_membership_that_was_left_is_not_sent_after_a_rejoin),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
