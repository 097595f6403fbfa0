/* test_sequencer.c: two edges' chats and one sequencer (include/sequencer.h).
 *
 * Each edge's chat has its own members; the sequencer runs on its own
 * thread, as in the server. The test plays both edges' loops: it waits
 * (with a deadline) for an edge's eventfd and applies what came, until
 * what the case expects has arrived. Every frame is recorded with the
 * edge that sent it, parsed as a client would. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "chat.h"
#include "sequencer.h"
#include "store.h"

#define EDGES 2
#define MEMBERS_MAX 16
#define FRAMES_MAX 4096
#define DEADLINE_MS 5000

struct frame {
	struct chat_member *to;
	json_t *json;
};

static struct frame frames[FRAMES_MAX];
static size_t nframes;
static struct chat_member members[MEMBERS_MAX];
static struct chat *member_chat[MEMBERS_MAX];
static size_t nmembers;

static struct sequencer *seq;
static struct chat *edges[EDGES];
static struct store *store;
static char dir[64];

static void record(struct chat_member *m, struct buf *b)
{
	size_t len;
	const char *payload = buf_payload(b, &len);
	json_error_t err;
	assert_true(nframes < FRAMES_MAX);
	frames[nframes].to = m;
	frames[nframes].json = json_loadb(payload, len, 0, &err);
	assert_non_null(frames[nframes].json);
	nframes++;
}

static size_t no_backlog(struct chat_member *m)
{
	(void)m;
	return 0;
}

static void load_everywhere(void *arg, const struct store_room *room)
{
	(void)arg;
	sequencer_load_room(seq, room);
	for (unsigned e = 0; e < EDGES; e++)
		chat_load_room(edges[e], room);
}

static void open_edges(bool with_store)
{
	if (with_store && !store) {
		store = store_open(&(struct store_config){ .path = dir, .sync = STORE_SYNC_INTERVAL });
		assert_non_null(store);
	}
	seq = sequencer_new(&(struct sequencer_config){ .edges = EDGES, .store = with_store ? store : NULL });
	assert_non_null(seq);
	for (unsigned e = 0; e < EDGES; e++) {
		edges[e] = chat_new(&(struct chat_config){ .send = record, .backlog = no_backlog,
							   .store = with_store ? store : NULL,
							   .sequencer = seq, .edge = e,
							   .history_bytes = 1 << 20 });
	}
	/* as the server does: one pass over the stored rooms feeds them all */
	if (with_store)
		assert_int_equal(store_load_rooms(store, 50, load_everywhere, NULL), 0);
}

static void close_edges(void)
{
	for (size_t i = 0; i < nmembers; i++)
		if (member_chat[i])
			chat_disconnect(member_chat[i], &members[i]);
	nmembers = 0;
	/* the sequencer first: ops in flight may point at the chats' pending work */
	sequencer_free(seq);
	seq = NULL;
	for (unsigned e = 0; e < EDGES; e++) {
		chat_free(edges[e]);
		edges[e] = NULL;
	}
	for (size_t i = 0; i < nframes; i++)
		json_decref(frames[i].json);
	nframes = 0;
}

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/test_sequencer.XXXXXX");
	assert_non_null(mkdtemp(dir));
	strcat(dir, "/chat.db");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	close_edges();
	if (store)
		store_close(store);
	store = NULL;
	unlink(dir);
	char wal[80];
	snprintf(wal, sizeof(wal), "%s-wal", dir);
	unlink(wal);
	snprintf(wal, sizeof(wal), "%s-shm", dir);
	unlink(wal);
	*strrchr(dir, '/') = 0;
	rmdir(dir);
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Play both edges' loops until done() holds; fails at the deadline. */
static void pump_until(bool (*done)(void *), void *arg)
{
	uint64_t deadline = now_ms() + DEADLINE_MS;
	while (!done(arg)) {
		assert_true(now_ms() < deadline);
		struct pollfd fds[EDGES];
		for (unsigned e = 0; e < EDGES; e++)
			fds[e] = (struct pollfd){ .fd = sequencer_edge_fd(seq, e), .events = POLLIN };
		poll(fds, EDGES, 50);
		for (unsigned e = 0; e < EDGES; e++)
			if (fds[e].revents & POLLIN)
				chat_sequenced_ready(edges[e]);
	}
}

static struct chat_member *connect_to(unsigned edge, const char *room)
{
	assert_true(nmembers < MEMBERS_MAX);
	struct chat_member *m = &members[nmembers];
	member_chat[nmembers++] = edges[edge];
	chat_connect(edges[edge], m, NULL, room, strlen(room), NULL);
	return m;
}

static void disconnect(struct chat_member *m)
{
	chat_disconnect(member_chat[m - members], m);
	member_chat[m - members] = NULL;
}

static void say(struct chat_member *m, const char *text)
{
	chat_receive(member_chat[m - members], m, text, strlen(text));
}

static const char *type_of(const struct frame *f)
{
	return json_string_value(json_object_get(f->json, "type"));
}

static size_t count_to(const struct chat_member *m, const char *type)
{
	size_t n = 0;
	for (size_t i = 0; i < nframes; i++)
		if (frames[i].to == m && strcmp(type_of(&frames[i]), type) == 0)
			n++;
	return n;
}

/* The k-th frame of type to m (NULL: none). */
static const struct frame *nth_to(const struct chat_member *m, const char *type, size_t k)
{
	for (size_t i = 0; i < nframes; i++)
		if (frames[i].to == m && strcmp(type_of(&frames[i]), type) == 0 && k-- == 0)
			return &frames[i];
	return NULL;
}

static uint64_t num(const struct frame *f, const char *key)
{
	return (uint64_t)json_integer_value(json_object_get(f->json, key));
}

struct expect {
	const struct chat_member *m;
	const char *type;
	size_t count;
};

static bool got(void *arg)
{
	const struct expect *e = arg;
	return count_to(e->m, e->type) >= e->count;
}

static void wait_for(const struct chat_member *m, const char *type, size_t count)
{
	struct expect e = { m, type, count };
	pump_until(got, &e);
}

/* A member on one edge is in the presence of a member who joins on the
 * other, is told of its join and leave, and sees its new name; counts take
 * both edges in. */
static void test_rooms_span_edges(void **state)
{
	(void)state;
	open_edges(false);
	struct chat_member *a = connect_to(0, "lobby");
	struct chat_member *watcher = connect_to(1, "lobby");
	/* a's join was ordered first: the watcher finds a in its presence */
	wait_for(watcher, "presence", 1);
	assert_int_equal(num(nth_to(watcher, "presence", 0), "count"), 2);
	wait_for(a, "join", 2);

	struct chat_member *b = connect_to(1, "lobby");
	wait_for(b, "presence", 1); /* once its join has its place in the room's order */
	const struct frame *presence = nth_to(b, "presence", 0);
	assert_non_null(presence);
	assert_int_equal(num(presence, "count"), 3);
	assert_int_equal(json_array_size(json_object_get(presence->json, "users")), 3);
	wait_for(a, "join", 3);
	assert_int_equal(num(nth_to(a, "join", 2), "count"), 3);

	chat_receive(edges[1], b, "{\"type\":\"nick\",\"name\":\"Bea\"}", 28);
	wait_for(a, "nick", 1);
	assert_string_equal(json_string_value(json_object_get(nth_to(a, "nick", 0)->json, "name")), "Bea");
	assert_int_equal(count_to(watcher, "nick"), 1);

	disconnect(b);
	wait_for(a, "leave", 1);
	assert_int_equal(num(nth_to(a, "leave", 0), "count"), 2);
	/* a joiner now sees two, with the new name gone with its owner */
	struct chat_member *c = connect_to(0, "lobby");
	wait_for(c, "presence", 1);
	assert_int_equal(num(nth_to(c, "presence", 0), "count"), 3);
}

/* Messages sent on both edges at once get one order: every member, on
 * either edge, sees ids 1..N in sequence and the same texts in the same
 * order; each sender's copy is its acknowledgement. */
static void check_one_order(size_t total, struct chat_member **all, size_t nall)
{
	for (size_t k = 0; k < nall; k++) {
		assert_int_equal(count_to(all[k], "message"), total);
		for (size_t i = 0; i < total; i++) {
			const struct frame *f = nth_to(all[k], "message", i);
			const struct frame *first = nth_to(all[0], "message", i);
			assert_int_equal(num(f, "id"), i + 1);
			assert_string_equal(json_string_value(json_object_get(f->json, "text")),
					    json_string_value(json_object_get(first->json, "text")));
		}
	}
}

static void send_interleaved(struct chat_member *a, struct chat_member *b, size_t each)
{
	char text[32];
	for (size_t i = 0; i < each; i++) {
		snprintf(text, sizeof(text), "a%zu", i);
		say(a, text);
		snprintf(text, sizeof(text), "b%zu", i);
		say(b, text);
	}
}

static void test_one_order_across_edges(void **state)
{
	(void)state;
	open_edges(false);
	struct chat_member *a = connect_to(0, "lobby"), *a2 = connect_to(0, "lobby");
	struct chat_member *b = connect_to(1, "lobby"), *b2 = connect_to(1, "lobby");
	wait_for(a, "join", 4);
	wait_for(b2, "presence", 1);
	assert_int_equal(num(nth_to(b2, "presence", 0), "count"), 4);
	send_interleaved(a, b, 100);
	struct chat_member *all[] = { a, a2, b, b2 };
	for (size_t k = 0; k < 4; k++)
		wait_for(all[k], "message", 200);
	check_one_order(200, all, 4);
	/* every edge delivers each message; the one it was sent to counts it */
	assert_int_equal(chat_stats(edges[0])->messages + chat_stats(edges[1])->messages, 200);
	assert_int_equal(chat_stats(edges[0])->messages, 100);
}

/* With the store, a message is out only once committed, ids go on after a
 * restart, and a replay asked for on one edge is read from the store
 * through the sequencer and answered to that edge alone. */
static void test_store_through_the_sequencer(void **state)
{
	(void)state;
	open_edges(true);
	struct chat_member *a = connect_to(0, "lobby");
	struct chat_member *b = connect_to(1, "lobby");
	wait_for(a, "join", 2);
	send_interleaved(a, b, 20);
	wait_for(a, "message", 40);
	wait_for(b, "message", 40);
	struct chat_member *both[] = { a, b };
	check_one_order(40, both, 2);
	close_edges();

	open_edges(true); /* a restart on the same database */
	a = connect_to(0, "lobby");
	say(a, "after the restart");
	wait_for(a, "message", 1);
	assert_int_equal(num(nth_to(a, "message", 0), "id"), 41);
	/* A member on the other edge replays everything from the store. */
	struct chat_member *r = &members[nmembers];
	member_chat[nmembers++] = edges[1];
	uint64_t since = 0;
	chat_connect(edges[1], r, NULL, "lobby", 5, &since);
	wait_for(r, "resumed", 1);
	assert_int_equal(count_to(r, "message"), 41);
	for (size_t i = 0; i < 41; i++)
		assert_int_equal(num(nth_to(r, "message", i), "id"), i + 1);
	assert_int_equal(count_to(a, "resumed"), 0);
}

/* A commit that fails is reported to its sender alone and sent to nobody;
 * the next message takes the next id. */
static void test_failed_commit_goes_to_its_sender_alone(void **state)
{
	(void)state;
	open_edges(true);
	struct chat_member *a = connect_to(0, "lobby");
	struct chat_member *b = connect_to(1, "lobby");
	wait_for(a, "join", 2);
	store_inject_failure(store, -5);
	say(b, "lost");
	wait_for(b, "error", 1);
	assert_string_equal(json_string_value(json_object_get(nth_to(b, "error", 0)->json, "code")),
			    "not_saved");
	store_inject_failure(store, 0);
	say(b, "kept");
	wait_for(a, "message", 1);
	wait_for(b, "message", 1);
	assert_int_equal(count_to(a, "message"), 1); /* "lost" reached nobody */
	assert_int_equal(num(nth_to(a, "message", 0), "id"), 2);
	assert_int_equal(count_to(a, "error"), 0);
}

/* The server API from one edge: a publish is answered with its id once
 * committed, and reaches both edges' members; a failed commit is answered
 * with the error and reaches nobody; presence lists both edges' members. */
struct api_answer {
	int calls;
	int err;
	uint64_t id;
	json_t *json;
};

static void api_done(void *ctx, const struct chat_api_result *res)
{
	struct api_answer *a = ctx;
	a->calls++;
	a->err = res->err;
	a->id = res->id;
	if (res->json) {
		json_error_t e;
		a->json = json_loadb(res->json, res->json_len, 0, &e);
	}
}

static bool answered(void *arg)
{
	return ((struct api_answer *)arg)->calls > 0;
}

static void test_api_calls_through_the_sequencer(void **state)
{
	(void)state;
	open_edges(true);
	struct chat_member *a = connect_to(0, "lobby");
	struct chat_member *b = connect_to(1, "lobby");
	wait_for(a, "join", 2);
	say(a, "first");
	wait_for(b, "message", 1);

	struct api_answer pub = { 0 };
	assert_null(chat_publish(edges[1], "lobby", 5, "from the api", 12, "Bot", 3, api_done, &pub));
	pump_until(answered, &pub);
	assert_int_equal(pub.err, 0);
	assert_int_equal(pub.id, 2);
	wait_for(a, "message", 2);
	wait_for(b, "message", 2);
	const struct frame *f = nth_to(a, "message", 1);
	assert_int_equal(num(f, "id"), 2);
	assert_string_equal(json_string_value(json_object_get(f->json, "from")), "api");
	assert_string_equal(json_string_value(json_object_get(f->json, "name")), "Bot");

	struct api_answer lost = { 0 };
	store_inject_failure(store, -5);
	assert_null(chat_publish(edges[0], "lobby", 5, "lost", 4, NULL, 0, api_done, &lost));
	pump_until(answered, &lost);
	assert_int_equal(lost.err, -5);
	store_inject_failure(store, 0);

	struct api_answer who = { 0 };
	chat_presence(edges[0], "lobby", 5, api_done, &who);
	pump_until(answered, &who);
	assert_non_null(who.json);
	assert_int_equal(json_integer_value(json_object_get(who.json, "count")), 2);
	assert_int_equal(json_array_size(json_object_get(who.json, "users")), 2);
	json_decref(who.json);
	/* "lost" reached nobody (its id is skipped, as a member's would be) */
	say(b, "after");
	wait_for(a, "message", 3);
	f = nth_to(a, "message", 2);
	assert_string_equal(json_string_value(json_object_get(f->json, "text")), "after");
	assert_int_equal(num(f, "id"), 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rooms_span_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_order_across_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store_through_the_sequencer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_commit_goes_to_its_sender_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_api_calls_through_the_sequencer, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
