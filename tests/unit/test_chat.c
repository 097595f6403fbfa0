/* test_chat.c: the chat protocol (docs/protocol.md), rule by rule, without
 * a store: every message is broadcast as soon as it is received.
 *
 * chat hands each event's payload buf to a send function; the fake one here
 * keeps a reference to each buf (so one buffer shared by every recipient
 * shows as one pointer) and a copy of its payload, parses the JSON as a
 * client would with jansson, then frames the buf in place as the WebSocket
 * transport does.
 *
 * Members come from a pool that the teardown disconnects, so a case that
 * fails half-way still leaves nothing allocated. chat_new starts member
 * ids and stats afresh, but the cases compare ids with the members' own
 * and stats with their values before the case anyway. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "chat.h"
#include "ws.h"

struct sent {
	struct chat_member *to;
	struct buf *frame;    /* a reference, kept so the pointer stays unique */
	size_t len;           /* of its payload */
	json_t *json;         /* its payload, parsed */
	char *payload;        /* a copy of its payload as handed over, NUL-terminated */
};

static struct sent *sent;
static size_t nsent, sent_cap;

#define POOL_MAX 64

static struct chat *chat; /* the one each case's setup makes */
static struct chat_member pool[POOL_MAX];
static size_t npool;
/* A second chat beside it, for the case that two are independent: its
 * members come from the same pool, marked, and the teardown disconnects
 * them from it and frees it. */
static struct chat *second;
static bool of_second[POOL_MAX];

struct closed {
	struct chat_member *m;
	uint16_t code;
	bool reason;  /* one was given */
};

static struct closed closes[16];
static size_t ncloses;

/* A payload that is not what a client can read, noted here rather than
 * failed on inside chat's call (failing there would jump out of chat
 * mid-broadcast); the next look at what was sent fails with it. */
static char bad_frame[512];

/* What each member's connection holds, for the pacing of replays: every
 * frame sent adds to it, a test "drains" it. */
static size_t queued[POOL_MAX];

static size_t fake_backlog(struct chat_member *m)
{
	return queued[m - pool];
}

/* from_second: the second chat's hook handed it over. */
static void record_send(struct chat_member *m, struct buf *frame, bool from_second)
{
	struct sent *s;
	size_t n;
	json_error_t err;
	const char *p = buf_payload(frame, &n);

	if (of_second[m - pool] != from_second && !bad_frame[0])
		snprintf(bad_frame, sizeof(bad_frame), "member %u of one chat got a frame from the other",
			 m->id);

	if (nsent == sent_cap) {
		sent_cap = sent_cap ? 2 * sent_cap : 1024;
		sent = realloc(sent, sent_cap * sizeof(*sent));
		if (!sent)
			abort();
	}
	s = &sent[nsent++];
	*s = (struct sent){ .to = m, .frame = buf_ref(frame), .len = n };
	s->payload = malloc(n + 1);
	if (!s->payload)
		abort();
	memcpy(s->payload, p, n);
	s->payload[n] = '\0';
	s->json = json_loadb(p, n, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &err);
	if (!s->json || !json_is_object(s->json)) {
		if (!bad_frame[0])
			snprintf(bad_frame, sizeof(bad_frame), "bad payload to member %u (%s): %.300s", m->id,
				 s->json ? "not an object" : err.text, s->payload);
		json_decref(s->json);
		s->json = json_object(); /* typeless: any look at its type fails */
	}
	/* Frame it as the WebSocket transport does, so that what chat reads
	 * back (history from memory) is read from framed bufs too. */
	if (frame->payload < BUF_HEADROOM && !bad_frame[0])
		snprintf(bad_frame, sizeof(bad_frame), "payload to member %u has no headroom", m->id);
	else
		ws_frame_text_in_place(frame);
	queued[m - pool] += buf_out_len(frame);
}

static void fake_send(struct chat_member *m, struct buf *frame)
{
	record_send(m, frame, false);
}

static void fake_send_second(struct chat_member *m, struct buf *frame)
{
	record_send(m, frame, true);
}

static void check_frames(void)
{
	if (bad_frame[0])
		fail_msg("%s", bad_frame);
}

static void fake_close(struct chat_member *m, uint16_t code, const char *reason)
{
	if (ncloses < sizeof(closes) / sizeof(closes[0]))
		closes[ncloses] = (struct closed){ .m = m, .code = code, .reason = reason != NULL };
	ncloses++;
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

/* A member slot; chat_connect fills it in. */
static struct chat_member *member(void)
{
	assert_true(npool < POOL_MAX);
	return &pool[npool++];
}

/* The cases here are about the protocol, not the byte bound on history
 * (test_chat_room.c): unless a setup sets one, it is out of reach. */
#define HISTORY_BYTES_UNBOUNDED UINT64_MAX

static int start(struct chat_config cfg)
{
	if (!cfg.history_bytes)
		cfg.history_bytes = HISTORY_BYTES_UNBOUNDED;
	cfg.send = fake_send;
	cfg.backlog = fake_backlog;
	cfg.close = fake_close;
	memset(queued, 0, sizeof(queued));
	nsent = 0;
	ncloses = 0;
	npool = 0;
	bad_frame[0] = '\0';
	memset(pool, 0, sizeof(pool));
	memset(of_second, 0, sizeof(of_second));
	chat = chat_new(&cfg);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	return start((struct chat_config){ .presence_list_max = 100, .presence_events_max = 100 });
}

static int setup_events_max_2(void **state)
{
	(void)state;
	return start((struct chat_config){ .presence_list_max = 100, .presence_events_max = 2 });
}

static int setup_list_max_2(void **state)
{
	(void)state;
	return start((struct chat_config){ .presence_list_max = 2, .presence_events_max = 100 });
}

static int setup_history_memory_10(void **state)
{
	(void)state;
	return start((struct chat_config){ .history_memory = 10 });
}


/* 4 KiB of history for all rooms: a few dozen short messages. */
static int setup_history_bytes_4k(void **state)
{
	(void)state;
	return start((struct chat_config){ .history_bytes = 4096 });
}

static int setup_max_rooms_2(void **state)
{
	(void)state;
	return start((struct chat_config){ .max_rooms = 2 });
}

/* One message a second, bursts of 3: a refill takes a whole second, far
 * longer than a case takes to send its messages back to back. */
static int setup_rate_1_burst_3(void **state)
{
	(void)state;
	return start((struct chat_config){ .rate = { .per_second = 1, .burst = 3 } });
}

static int setup_max_message_2000(void **state)
{
	(void)state;
	return start((struct chat_config){ .presence_list_max = 100, .presence_events_max = 100,
					   .max_message = 2000 });
}

static int setup_rate_0(void **state)
{
	(void)state;
	return start((struct chat_config){ .rate = { .per_second = 0, .burst = 1 } });
}

static int teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < npool; i++) {
		if (!of_second[i])
			chat_disconnect(chat, &pool[i]);
		else if (second)
			chat_disconnect(second, &pool[i]);
	}
	chat_free(chat);
	chat = NULL;
	chat_free(second);
	second = NULL;
	bad_frame[0] = '\0';
	forget_sent();
	free(sent);
	sent = NULL;
	sent_cap = 0;
	return 0;
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

/* Frames sent to m since the last forget_sent(), in order. */
static size_t sent_to(const struct chat_member *m, const struct sent **out, size_t max)
{
	size_t n = 0;

	check_frames();

	for (size_t i = 0; i < nsent; i++) {
		if (sent[i].to != m)
			continue;
		if (n < max)
			out[n] = &sent[i];
		n++;
	}
	return n;
}

/* The types of the frames sent to m, space-separated, e.g.
 * "welcome presence join history". */
static const char *types_to(const struct chat_member *m)
{
	static char out[4096];
	size_t len = 0;

	check_frames();

	out[0] = '\0';
	for (size_t i = 0; i < nsent; i++) {
		if (sent[i].to != m)
			continue;
		int n = snprintf(out + len, sizeof(out) - len, "%s%s", len ? " " : "", type_of(&sent[i]));
		assert_true(n > 0 && (size_t)n < sizeof(out) - len);
		len += (size_t)n;
	}
	return out;
}

/* The one frame sent to m since the last forget_sent(). */
static const struct sent *only_frame_to(const struct chat_member *m)
{
	const struct sent *s[1] = { NULL };
	size_t n = sent_to(m, s, 1);

	if (n != 1)
		fail_msg("member %u got %zu frames (%s), want 1", m->id, n, types_to(m));
	return s[0];
}

/* The n-th (from 0) frame of that type sent to m. */
static const struct sent *nth_of_type(const struct chat_member *m, const char *type, size_t n)
{
	check_frames();
	for (size_t i = 0; i < nsent; i++)
		if (sent[i].to == m && strcmp(type_of(&sent[i]), type) == 0 && n-- == 0)
			return &sent[i];
	fail_msg("member %u got too few %s frames (%s)", m->id, type, types_to(m));
	return NULL;
}

static size_t count_of_type(const struct chat_member *m, const char *type)
{
	check_frames();
	size_t n = 0;

	for (size_t i = 0; i < nsent; i++)
		if (sent[i].to == m && strcmp(type_of(&sent[i]), type) == 0)
			n++;
	return n;
}

static void expect_nothing_to(const struct chat_member *m)
{
	const struct sent *s[1] = { NULL };
	size_t n = sent_to(m, s, 1);

	if (n)
		fail_msg("member %u got %zu frames, want none (first: %s)", m->id, n, s[0]->payload);
}

/* The message frames sent to m carry exactly the ids first..last, in that
 * order (none when first > last). */
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
	if (want != last + 1 && !(first > last && want == first))
		fail_msg("member %u: messages stop before id %lld, want up to %lld", m->id,
			 (long long)want, (long long)last);
}

/* A history event for room holding the messages first..last, oldest first. */
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
		assert_string_equal(str(msg, "room"), room);
		assert_int_equal(num(msg, "id"), first + (json_int_t)i);
	}
	assert_int_equal(flag(s->json, "more"), more);
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

/* Wall-clock milliseconds, read here rather than through chat_now_ms. */
static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static char *id_str(const struct chat_member *m, char out[16])
{
	snprintf(out, 16, "%u", m->id);
	return out;
}

static char *guest_name(const struct chat_member *m, char out[32])
{
	snprintf(out, 32, "User %u", m->id);
	return out;
}

static void expect_user(json_t *user, const struct chat_member *m)
{
	char id[16], name[32];

	assert_true(json_is_object(user));
	assert_string_equal(str(user, "id"), id_str(m, id));
	assert_string_equal(str(user, "name"), guest_name(m, name));
}

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

/* m sends a command, written printf-style. */
static void cmdf(struct chat_member *m, const char *fmt, ...)
{
	char text[8192];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	chat_receive(chat, m, text, (size_t)n);
}

static void say_n(struct chat_member *m, int n)
{
	char text[32];

	for (int i = 1; i <= n; i++) {
		snprintf(text, sizeof(text), "message %d", i);
		say(m, text);
	}
}

/* m sent text: exactly one error frame with that code came back, to m alone. */
static void expect_error(struct chat_member *m, struct chat_member *other, const char *text,
			 size_t len, const char *code)
{
	forget_sent();
	chat_receive(chat, m, text, len);
	if (nsent != 1)
		fail_msg("%s: %zu frames sent, want 1 error", text, nsent);
	const struct sent *s = only_frame_to(m);
	assert_string_equal(type_of(s), "error");
	if (strcmp(str(s->json, "code"), code) != 0)
		fail_msg("%s: error %s, want %s", text, str(s->json, "code"), code);
	assert_true(strlen(str(s->json, "message")) > 0);
	if (other)
		expect_nothing_to(other);
}

#define EXPECT_ERROR(m, other, lit, code) expect_error((m), (other), (lit), sizeof(lit) - 1, (code))

/* ---- connecting ---- */

/* The page refuses a longer message itself instead of being closed with 1009. */
static void test_welcome_tells_the_configured_max_message(void **state)
{
	struct chat_member *m = member();
	const struct sent *s[4];

	(void)state;
	join(m, "lobby");
	assert_int_equal(sent_to(m, s, 4), 4); /* welcome presence join history */
	assert_string_equal(type_of(s[0]), "welcome");
	assert_int_equal(num(s[0]->json, "max_message"), 2000);
}

static void test_welcome_without_max_message_says_nothing_of_it(void **state)
{
	struct chat_member *m = member();
	const struct sent *s[4];

	(void)state;
	join(m, "lobby");
	assert_int_equal(sent_to(m, s, 4), 4); /* welcome presence join history */
	assert_null(json_object_get(s[0]->json, "max_message"));
}

static void test_connect_sends_welcome_presence_join_then_history(void **state)
{
	struct chat_member *m = member();
	const struct sent *s[4];
	char id[16], name[32];

	(void)state;
	join(m, "lobby");
	assert_int_equal(nsent, 4);
	assert_int_equal(sent_to(m, s, 4), 4);

	assert_string_equal(type_of(s[0]), "welcome");
	assert_string_equal(str(s[0]->json, "id"), id_str(m, id));
	assert_string_equal(str(s[0]->json, "name"), guest_name(m, name));
	assert_string_equal(str(s[0]->json, "room"), "lobby");
	assert_false(flag(s[0]->json, "signed_in"));

	assert_string_equal(type_of(s[1]), "presence");
	assert_string_equal(str(s[1]->json, "room"), "lobby");
	assert_int_equal(num(s[1]->json, "count"), 1);
	json_t *users = json_object_get(s[1]->json, "users");
	assert_true(json_is_array(users));
	assert_int_equal(json_array_size(users), 1);
	expect_user(json_array_get(users, 0), m);

	assert_string_equal(type_of(s[2]), "join");
	assert_string_equal(str(s[2]->json, "room"), "lobby");
	expect_user(json_object_get(s[2]->json, "user"), m);
	assert_int_equal(num(s[2]->json, "count"), 1);

	/* A new room has no history, and nothing older either. */
	expect_history(s[3], "lobby", 1, 0, false);
}

static void test_member_ids_are_consecutive_and_unique(void **state)
{
	struct chat_member *m[5];
	char id[16];

	(void)state;
	for (int i = 0; i < 5; i++) {
		m[i] = member();
		forget_sent();
		join(m[i], i % 2 ? "lobby" : "dev");
		assert_int_equal(m[i]->id, m[0]->id + (uint32_t)i);
		assert_true(m[i]->id > 0);
		const struct sent *s[4];
		assert_int_equal(sent_to(m[i], s, 4), 4);
		assert_string_equal(str(s[0]->json, "id"), id_str(m[i], id));
	}
}

static void test_presence_lists_every_member_with_the_count(void **state)
{
	struct chat_member *m[3] = { member(), member(), member() };
	const struct sent *s[4];
	bool seen[3] = { false };

	(void)state;
	join(m[0], "lobby");
	join(m[1], "lobby");
	forget_sent();
	join(m[2], "lobby");
	assert_int_equal(sent_to(m[2], s, 4), 4);
	assert_string_equal(type_of(s[1]), "presence");
	assert_int_equal(num(s[1]->json, "count"), 3);
	json_t *users = json_object_get(s[1]->json, "users");
	assert_int_equal(json_array_size(users), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *u = json_array_get(users, i);
		unsigned long id = strtoul(str(u, "id"), NULL, 10);
		for (int k = 0; k < 3; k++) {
			if (id == m[k]->id) {
				assert_false(seen[k]);
				seen[k] = true;
				expect_user(u, m[k]);
			}
		}
	}
	assert_true(seen[0] && seen[1] && seen[2]);
}

static void test_join_goes_to_every_member_with_the_new_count(void **state)
{
	struct chat_member *m[3] = { member(), member(), member() };

	(void)state;
	join(m[0], "lobby");
	join(m[1], "lobby");
	forget_sent();
	join(m[2], "lobby");
	for (int k = 0; k < 2; k++) {
		const struct sent *s = only_frame_to(m[k]);
		assert_string_equal(type_of(s), "join");
		assert_string_equal(str(s->json, "room"), "lobby");
		expect_user(json_object_get(s->json, "user"), m[2]);
		assert_int_equal(num(s->json, "count"), 3);
	}
	const struct sent *s[4];
	assert_int_equal(sent_to(m[2], s, 4), 4);
	assert_string_equal(type_of(s[2]), "join");
	assert_int_equal(num(s[2]->json, "count"), 3);
	/* One join frame, built once for the three of them. */
	assert_ptr_equal(s[2]->frame, only_frame_to(m[0])->frame);
	assert_ptr_equal(s[2]->frame, only_frame_to(m[1])->frame);
}

/* ---- signed-in members ---- */

static void test_signed_in_member_is_known_by_its_user_id_and_token_name(void **state)
{
	struct chat_member *a = member(), *b = member();
	const struct chat_identity who = { .user_id = "u-42", .name = "Alice" };
	const struct sent *s[4];

	(void)state;
	join(b, "lobby");
	forget_sent();
	chat_connect(chat, a, &who, "lobby", 5, NULL);
	assert_string_equal(types_to(a), "welcome presence join history");
	assert_int_equal(sent_to(a, s, 4), 4);
	assert_string_equal(str(s[0]->json, "id"), "u-42");
	assert_string_equal(str(s[0]->json, "name"), "Alice");
	assert_true(flag(s[0]->json, "signed_in"));

	json_t *user = json_object_get(only_frame_to(b)->json, "user");
	assert_string_equal(str(user, "id"), "u-42");
	assert_string_equal(str(user, "name"), "Alice");

	forget_sent();
	say(a, "hi");
	const struct sent *msg = only_frame_to(b);
	assert_string_equal(str(msg->json, "from"), "u-42");
	assert_string_equal(str(msg->json, "name"), "Alice");

	/* Others see it in presence under the same id. */
	struct chat_member *c = member();
	forget_sent();
	join(c, "lobby");
	json_t *users = json_object_get(nth_of_type(c, "presence", 0)->json, "users");
	bool listed = false;
	for (size_t i = 0; i < json_array_size(users); i++)
		if (strcmp(str(json_array_get(users, i), "id"), "u-42") == 0) {
			assert_string_equal(str(json_array_get(users, i), "name"), "Alice");
			listed = true;
		}
	assert_true(listed);
}

/* ---- the server API ---- */

struct api_answer {
	int calls;
	struct chat_api_result res;
	char json[4096];
};

static void api_done(void *ctx, const struct chat_api_result *res)
{
	struct api_answer *a = ctx;
	a->calls++;
	a->res = *res;
	a->res.json = NULL;
	if (res->json) {
		assert_true(res->json_len < sizeof(a->json));
		memcpy(a->json, res->json, res->json_len);
		a->json[res->json_len] = '\0';
	}
}

static void test_api_publish_is_a_message_from_the_api_in_the_rooms_order(void **state)
{
	struct chat_member *a = member(), *b = member();
	struct api_answer ans = { 0 };

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	say(a, "first");
	forget_sent();
	assert_null(chat_publish(chat, "lobby", 5, "notice", 6, "Bot", 3, api_done, &ans));
	assert_int_equal(ans.calls, 1);
	assert_int_equal(ans.res.err, 0);
	assert_int_equal(ans.res.id, 2);
	assert_int_equal(nsent, 2);
	for (int k = 0; k < 2; k++) {
		const struct sent *s = only_frame_to(k ? b : a);
		assert_string_equal(type_of(s), "message");
		assert_int_equal(num(s->json, "id"), 2);
		assert_string_equal(str(s->json, "from"), "api");
		assert_string_equal(str(s->json, "name"), "Bot");
		assert_string_equal(str(s->json, "text"), "notice");
	}
	forget_sent();
	assert_null(chat_publish(chat, "lobby", 5, "again", 5, NULL, 0, api_done, &ans));
	assert_int_equal(ans.res.id, 3);
	assert_string_equal(str(only_frame_to(a)->json, "name"), "API");
}

static void test_api_publish_refuses_what_a_member_would_be_refused(void **state)
{
	struct chat_member *a = member();
	struct api_answer ans = { 0 };

	(void)state;
	join(a, "lobby");
	forget_sent();
	assert_string_equal(chat_publish(chat, "lobby", 5, "", 0, NULL, 0, api_done, &ans), "empty");
	assert_string_equal(chat_publish(chat, "lobby", 5, "a\001", 2, NULL, 0, api_done, &ans), "bad_text");
	assert_string_equal(chat_publish(chat, "lobby", 5, "x", 1, "  ", 2, api_done, &ans), "bad_name");
	assert_int_equal(ans.calls, 0);
	assert_int_equal(nsent, 0);
	/* and took no id: the next one is 1 */
	assert_null(chat_publish(chat, "lobby", 5, "ok", 2, NULL, 0, api_done, &ans));
	assert_int_equal(ans.res.id, 1);
}

static void test_api_kick_closes_every_connection_of_the_user_alone(void **state)
{
	struct chat_member *a1 = member(), *a2 = member(), *b = member(), *guest = member();
	const struct chat_identity alice = { .user_id = "42", .name = "Alice" };
	const struct chat_identity bob = { .user_id = "7", .name = "Bob" };
	struct api_answer ans = { 0 };

	(void)state;
	chat_connect(chat, a1, &alice, "lobby", 5, NULL);
	chat_connect(chat, a2, &alice, "dev", 3, NULL);
	cmdf(a2, "{\"type\":\"join\",\"room\":\"lobby\"}"); /* in two rooms: closed once */
	chat_connect(chat, b, &bob, "lobby", 5, NULL);
	join(guest, "lobby");
	chat_kick(chat, "42", "banned", api_done, &ans);
	assert_int_equal(ans.calls, 1);
	assert_int_equal(ncloses, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_true(closes[i].m == a1 || closes[i].m == a2);
		assert_int_equal(closes[i].code, CHAT_KICK_CODE);
		assert_true(closes[i].reason);
	}
	assert_true(closes[0].m != closes[1].m);
}

static void test_api_presence_lists_the_room(void **state)
{
	struct chat_member *a = member(), *b = member(), *c = member();
	struct api_answer ans = { 0 };
	json_error_t err;

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	join(c, "dev");
	chat_presence(chat, "lobby", 5, api_done, &ans);
	assert_int_equal(ans.calls, 1);
	json_t *p = json_loads(ans.json, 0, &err);
	assert_non_null(p);
	assert_string_equal(str(p, "type"), "presence");
	assert_int_equal(num(p, "count"), 2);
	assert_int_equal(json_array_size(json_object_get(p, "users")), 2);
	json_decref(p);
	chat_presence(chat, "empty", 5, api_done, &ans);
	p = json_loads(ans.json, 0, &err);
	assert_non_null(p);
	assert_int_equal(num(p, "count"), 0);
	json_decref(p);
}

/* ---- messages ---- */

static void test_message_reaches_every_member_including_the_sender(void **state)
{
	struct chat_member *m[3] = { member(), member(), member() };

	(void)state;
	for (int k = 0; k < 3; k++)
		join(m[k], "lobby");
	forget_sent();
	say(m[1], "hi");
	assert_int_equal(nsent, 3);
	for (int k = 0; k < 3; k++) {
		const struct sent *s = only_frame_to(m[k]);
		assert_string_equal(type_of(s), "message");
		assert_string_equal(str(s->json, "text"), "hi");
	}
}

static void test_message_is_encoded_once_for_every_recipient(void **state)
{
	struct chat_member *m[4] = { member(), member(), member(), member() };

	(void)state;
	for (int k = 0; k < 4; k++)
		join(m[k], "lobby");
	forget_sent();
	say(m[0], "once");
	assert_int_equal(nsent, 4);
	for (size_t i = 1; i < nsent; i++)
		assert_ptr_equal(sent[i].frame, sent[0].frame);
	/* Nobody changed it after handing it over. */
	for (size_t i = 0; i < nsent; i++) {
		size_t n;
		const void *p = buf_payload(sent[i].frame, &n);
		assert_int_equal(n, sent[0].len);
		assert_memory_equal(p, sent[0].payload, n);
	}
}

static void test_message_carries_id_room_sender_name_text_and_time(void **state)
{
	struct chat_member *a = member(), *b = member();
	char id[16], name[32];

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	forget_sent();
	uint64_t before = wall_ms();
	say(b, "hello there");
	uint64_t after = wall_ms();

	const struct sent *s = only_frame_to(a);
	assert_string_equal(type_of(s), "message");
	assert_int_equal(num(s->json, "id"), 1);
	assert_string_equal(str(s->json, "room"), "lobby");
	assert_string_equal(str(s->json, "from"), id_str(b, id));
	assert_string_equal(str(s->json, "name"), guest_name(b, name));
	assert_string_equal(str(s->json, "text"), "hello there");
	json_int_t ts = num(s->json, "ts");
	assert_in_range((uint64_t)ts, before, after);
}

static void test_message_ids_start_at_1_and_increase_by_1(void **state)
{
	struct chat_member *a = member();

	(void)state;
	join(a, "lobby");
	for (json_int_t want = 1; want <= 5; want++) {
		forget_sent();
		say(a, "again");
		assert_int_equal(num(only_frame_to(a)->json, "id"), want);
	}
}

static void test_plain_text_is_the_message_verbatim(void **state)
{
	static const char text[] = "he said \"hi\"\\\n\ttabbed \xe2\x80\xa8 \xf0\x9f\x98\x80 }{";
	struct chat_member *a = member();

	(void)state;
	join(a, "lobby");
	forget_sent();
	say(a, text);
	json_t *t = json_object_get(only_frame_to(a)->json, "text");
	assert_int_equal(json_string_length(t), strlen(text));
	assert_memory_equal(json_string_value(t), text, strlen(text));
}

static void test_message_command_sends_its_text(void **state)
{
	struct chat_member *a = member();

	(void)state;
	join(a, "lobby");
	forget_sent();
	say(a, "{\"type\":\"message\",\"text\":\"hello \\\"you\\\"\"}");
	const struct sent *s = only_frame_to(a);
	assert_string_equal(type_of(s), "message");
	assert_string_equal(str(s->json, "text"), "hello \"you\"");
}

static void test_message_command_naming_its_own_room_is_accepted(void **state)
{
	struct chat_member *a = member();

	(void)state;
	join(a, "lobby");
	forget_sent();
	say(a, "{\"type\":\"message\",\"text\":\"x\",\"room\":\"lobby\"}");
	const struct sent *s = only_frame_to(a);
	assert_string_equal(type_of(s), "message");
	assert_string_equal(str(s->json, "text"), "x");
}

static void test_whitespace_before_a_brace_still_means_json(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	forget_sent();
	say(a, " \t\r\n{\"type\":\"message\",\"text\":\"x\"}");
	assert_string_equal(str(only_frame_to(a)->json, "text"), "x");
	EXPECT_ERROR(a, b, "  {bad", "bad_json");
}

static void test_json_that_is_not_an_object_is_a_plain_message(void **state)
{
	static const char *const texts[] = { "[\"a\",1]", "\"quoted\"", " [1]", "42", "null" };
	struct chat_member *a = member();

	(void)state;
	join(a, "lobby");
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		forget_sent();
		say(a, texts[i]);
		const struct sent *s = only_frame_to(a);
		assert_string_equal(type_of(s), "message");
		assert_string_equal(str(s->json, "text"), texts[i]);
	}
}

static void test_long_message_is_delivered_whole(void **state)
{
	struct chat_member *a = member();
	size_t n = 70000;
	char *text = malloc(n + 1);

	(void)state;
	assert_non_null(text);
	for (size_t i = 0; i < n; i++)
		text[i] = (char)('a' + i % 26);
	text[n] = '\0';
	join(a, "lobby");
	forget_sent();
	say(a, text);
	json_t *t = json_object_get(only_frame_to(a)->json, "text");
	assert_int_equal(json_string_length(t), n);
	assert_memory_equal(json_string_value(t), text, n);
	free(text);
}

/* \u0000 in the command's text is a real NUL, a control character: the
 * message is refused whole, not cut short at the NUL and sent. */
static void test_nul_in_json_text_is_bad_text(void **state)
{
	struct chat_member *a = member();

	(void)state;
	join(a, "lobby");
	forget_sent();
	say(a, "{\"type\":\"message\",\"text\":\"a\\u0000b\"}");
	const struct sent *s = only_frame_to(a);
	assert_string_equal(type_of(s), "error");
	assert_string_equal(str(s->json, "code"), "bad_text");
}

/* ---- errors ---- */

static void test_unparsable_object_is_bad_json(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	EXPECT_ERROR(a, b, "{bad", "bad_json");
	EXPECT_ERROR(a, b, "{", "bad_json");
	EXPECT_ERROR(a, b, "{\"type\":\"message\",\"text\":\"x\"} trailing", "bad_json");
}

static void test_duplicate_keys_are_bad_json(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	EXPECT_ERROR(a, b, "{\"type\":\"message\",\"text\":\"x\",\"text\":\"y\"}", "bad_json");
}

static void test_type_that_is_not_a_string_is_bad_message(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	EXPECT_ERROR(a, b, "{\"type\":5}", "bad_message");
	EXPECT_ERROR(a, b, "{\"text\":\"no type\"}", "bad_message");
	EXPECT_ERROR(a, b, "{}", "bad_message");
}

static void test_unknown_type_is_unknown_type(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	EXPECT_ERROR(a, b, "{\"type\":\"nope\"}", "unknown_type");
	EXPECT_ERROR(a, b, "{\"type\":\"Message\",\"text\":\"x\"}", "unknown_type");
}

/* The type is compared whole: a NUL inside it does not end it early. */
static void test_type_with_an_embedded_nul_is_unknown_type(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	EXPECT_ERROR(a, b, "{\"type\":\"message\\u0000x\",\"text\":\"x\"}", "unknown_type");
}

static void test_text_that_is_not_a_string_is_bad_message(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	EXPECT_ERROR(a, b, "{\"type\":\"message\",\"text\":5}", "bad_message");
	EXPECT_ERROR(a, b, "{\"type\":\"message\",\"text\":null}", "bad_message");
	EXPECT_ERROR(a, b, "{\"type\":\"message\"}", "bad_message");
}

static void test_empty_text_is_empty(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	EXPECT_ERROR(a, b, "", "empty");
	EXPECT_ERROR(a, b, "{\"type\":\"message\",\"text\":\"\"}", "empty");
}

static void test_message_for_another_room_is_not_in_room(void **state)
{
	struct chat_member *a = member(), *b = member(), *c = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	join(c, "other");
	EXPECT_ERROR(a, b, "{\"type\":\"message\",\"text\":\"x\",\"room\":\"other\"}", "not_in_room");
	expect_nothing_to(c);
	EXPECT_ERROR(a, b, "{\"type\":\"message\",\"text\":\"x\",\"room\":\"lobb\"}", "not_in_room");
	EXPECT_ERROR(a, b, "{\"type\":\"message\",\"text\":\"x\",\"room\":\"lobby2\"}", "not_in_room");
}

/* ---- names ---- */

static void test_nick_tells_every_room_you_are_in_with_the_old_name(void **state)
{
	struct chat_member *a = member(), *b = member(), *c = member(), *d = member();
	char id[16], old[32];

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	join(c, "dev");
	join(d, "elsewhere");
	cmdf(a, "{\"type\":\"join\",\"room\":\"dev\"}");
	guest_name(a, old);
	forget_sent();
	cmdf(a, "{\"type\":\"nick\",\"name\":\"alice\"}");
	const struct sent *s = only_frame_to(b);
	assert_string_equal(type_of(s), "nick");
	assert_string_equal(str(s->json, "id"), id_str(a, id));
	assert_string_equal(str(s->json, "name"), "alice");
	assert_string_equal(str(s->json, "old"), old);
	/* The same frame to the other room and to the one who renamed. */
	assert_ptr_equal(only_frame_to(c)->frame, s->frame);
	assert_ptr_equal(nth_of_type(a, "nick", 0)->frame, s->frame);
	expect_nothing_to(d);
}

/* The nick event names no room: a member who shares two rooms with the
 * one renaming should not be told twice. */
static void test_nick_reaches_each_member_once_however_many_rooms_are_shared(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	cmdf(a, "{\"type\":\"join\",\"room\":\"dev\"}");
	cmdf(b, "{\"type\":\"join\",\"room\":\"dev\"}");
	forget_sent();
	cmdf(a, "{\"type\":\"nick\",\"name\":\"alice\"}");
	assert_string_equal(types_to(b), "nick");
	assert_string_equal(types_to(a), "nick");
}

static void test_messages_after_nick_carry_the_new_name(void **state)
{
	struct chat_member *a = member(), *b = member();
	char id[16];

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	cmdf(a, "{\"type\":\"nick\",\"name\":\"alice\"}");
	forget_sent();
	say(a, "hi");
	const struct sent *s = only_frame_to(b);
	assert_string_equal(str(s->json, "name"), "alice");
	assert_string_equal(str(s->json, "from"), id_str(a, id));

	/* And so does everything else that shows a, e.g. a presence list. */
	struct chat_member *c = member();
	forget_sent();
	join(c, "lobby");
	json_t *users = json_object_get(nth_of_type(c, "presence", 0)->json, "users");
	for (size_t i = 0; i < json_array_size(users); i++)
		if (strcmp(str(json_array_get(users, i), "id"), id) == 0)
			assert_string_equal(str(json_array_get(users, i), "name"), "alice");
}

static void test_nick_trims_whitespace_at_both_ends(void **state)
{
	struct chat_member *a = member();

	(void)state;
	join(a, "lobby");
	forget_sent();
	cmdf(a, "{\"type\":\"nick\",\"name\":\" \\t alice smith \\u3000\"}");
	assert_string_equal(str(only_frame_to(a)->json, "name"), "alice smith");
}

static void test_nick_of_32_characters_is_accepted(void **state)
{
	struct chat_member *a = member();
	char name[33];

	(void)state;
	memset(name, 'n', 32);
	name[32] = '\0';
	join(a, "lobby");
	forget_sent();
	cmdf(a, "{\"type\":\"nick\",\"name\":\"%s\"}", name);
	assert_string_equal(str(only_frame_to(a)->json, "name"), name);
}

/* Characters, not bytes: 32 four-byte emoji is a valid name, and it is
 * reported whole as the old name when it changes again. */
static void test_nick_event_reports_a_32_character_old_name_whole(void **state)
{
	static const char smile[] = "\xf0\x9f\x98\x80";
	struct chat_member *a = member();
	char name[32 * 4 + 1] = "";

	(void)state;
	for (int i = 0; i < 32; i++)
		strcat(name, smile);
	join(a, "lobby");
	cmdf(a, "{\"type\":\"nick\",\"name\":\"%s\"}", name);
	forget_sent();
	cmdf(a, "{\"type\":\"nick\",\"name\":\"bob\"}");
	const struct sent *s = only_frame_to(a);
	assert_string_equal(type_of(s), "nick");
	assert_string_equal(str(s->json, "old"), name);
	assert_string_equal(str(s->json, "name"), "bob");
}

static void test_nick_that_breaks_the_name_rules_is_bad_name(void **state)
{
	static const char *const bad[] = {
		"{\"type\":\"nick\",\"name\":\"\"}",
		"{\"type\":\"nick\",\"name\":\"   \"}",
		"{\"type\":\"nick\",\"name\":\" \\t\\u3000 \"}",
		"{\"type\":\"nick\",\"name\":\"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\"}", /* 33 */
		"{\"type\":\"nick\",\"name\":\"a\\u0001b\"}",
		"{\"type\":\"nick\",\"name\":\"a\\nb\"}",
		"{\"type\":\"nick\",\"name\":\"a\\u007fb\"}",
		"{\"type\":\"nick\",\"name\":\"a\\u0085b\"}",
		"{\"type\":\"nick\",\"name\":\"a\\u0000b\"}",
		"{\"type\":\"nick\",\"name\":\"a\\u2028b\"}",
		"{\"type\":\"nick\",\"name\":\"evil\\u202egnp.exe\"}",
		"{\"type\":\"nick\",\"name\":\"\\u200b\"}",
		"{\"type\":\"nick\",\"name\":\"\\u200b\\u200c\\u200d\\ufeff\"}",
		"{\"type\":\"nick\",\"name\":\"\\u3164\"}",
		"{\"type\":\"nick\",\"name\":\"\\u0301\\u0301\"}",
		"{\"type\":\"nick\",\"name\":5}",
		"{\"type\":\"nick\",\"name\":null}",
		"{\"type\":\"nick\",\"name\":[\"alice\"]}",
		"{\"type\":\"nick\"}",
	};
	struct chat_member *a = member(), *b = member();
	char name[32];

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_error(a, b, bad[i], strlen(bad[i]), "bad_name");
	/* The name did not change. */
	forget_sent();
	say(a, "still me");
	assert_string_equal(str(only_frame_to(b)->json, "name"), guest_name(a, name));
}

static void test_nick_while_signed_in_is_name_locked(void **state)
{
	struct chat_member *a = member(), *b = member();
	const struct chat_identity who = { .user_id = "u-42", .name = "Alice" };

	(void)state;
	join(b, "lobby");
	chat_connect(chat, a, &who, "lobby", 5, NULL);
	EXPECT_ERROR(a, b, "{\"type\":\"nick\",\"name\":\"mallory\"}", "name_locked");
	forget_sent();
	say(a, "hi");
	assert_string_equal(str(only_frame_to(b)->json, "name"), "Alice");
}

/* ---- rooms ---- */

static void test_rooms_are_isolated(void **state)
{
	struct chat_member *l1 = member(), *l2 = member(), *d1 = member(), *d2 = member();

	(void)state;
	join(l1, "lobby");
	join(l2, "lobby");
	forget_sent();
	join(d1, "dev");
	join(d2, "dev");
	/* Joins in dev are not news in the lobby, nor counted there. */
	expect_nothing_to(l1);
	expect_nothing_to(l2);
	const struct sent *s[4];
	assert_int_equal(sent_to(d2, s, 4), 4);
	assert_int_equal(num(s[1]->json, "count"), 2);
	assert_int_equal(num(s[2]->json, "count"), 2);

	forget_sent();
	say(d1, "in dev");
	assert_int_equal(nsent, 2);
	expect_nothing_to(l1);
	expect_nothing_to(l2);
	assert_string_equal(str(only_frame_to(d2)->json, "room"), "dev");
	assert_string_equal(str(only_frame_to(d2)->json, "text"), "in dev");
}

static void test_message_ids_count_per_room_and_increase(void **state)
{
	struct chat_member *l = member(), *d = member();

	(void)state;
	join(l, "lobby");
	join(d, "dev");
	forget_sent();
	say(d, "d1");
	say(d, "d2");
	say(l, "l1");
	say(d, "d3");
	expect_message_ids(d, 1, 3);
	expect_message_ids(l, 1, 1);
}

static void test_join_command_sends_presence_join_and_history_to_the_joiner(void **state)
{
	struct chat_member *a = member(), *b = member(), *c = member();

	(void)state;
	join(a, "lobby");
	join(c, "lobby");
	join(b, "dev");
	say(b, "before a came");
	forget_sent();
	cmdf(a, "{\"type\":\"join\",\"room\":\"dev\"}");
	assert_string_equal(types_to(a), "presence join history");

	const struct sent *presence = nth_of_type(a, "presence", 0);
	assert_string_equal(str(presence->json, "room"), "dev");
	assert_int_equal(num(presence->json, "count"), 2);
	assert_int_equal(json_array_size(json_object_get(presence->json, "users")), 2);

	const struct sent *joined = nth_of_type(a, "join", 0);
	assert_string_equal(str(joined->json, "room"), "dev");
	expect_user(json_object_get(joined->json, "user"), a);
	assert_int_equal(num(joined->json, "count"), 2);

	expect_history(nth_of_type(a, "history", 0), "dev", 1, 1, false);

	/* The room hears of it, in the same frame; the lobby does not. */
	assert_ptr_equal(only_frame_to(b)->frame, joined->frame);
	expect_nothing_to(c);
}

static void test_joined_room_becomes_the_current_room_for_plain_text(void **state)
{
	struct chat_member *a = member(), *b = member(), *c = member();

	(void)state;
	join(a, "lobby");
	join(c, "lobby");
	join(b, "dev");
	cmdf(a, "{\"type\":\"join\",\"room\":\"dev\"}");
	forget_sent();
	say(a, "to dev");
	assert_string_equal(str(only_frame_to(b)->json, "room"), "dev");
	assert_string_equal(str(only_frame_to(a)->json, "text"), "to dev");
	expect_nothing_to(c);
}

static void test_join_of_a_room_you_are_in_is_already_joined(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	EXPECT_ERROR(a, b, "{\"type\":\"join\",\"room\":\"lobby\"}", "already_joined");
	cmdf(a, "{\"type\":\"join\",\"room\":\"dev\"}");
	EXPECT_ERROR(a, b, "{\"type\":\"join\",\"room\":\"dev\"}", "already_joined");
}

static void test_join_of_an_invalid_room_name_is_bad_room(void **state)
{
	struct chat_member *a = member(), *b = member();
	char cmd[128];

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	EXPECT_ERROR(a, b, "{\"type\":\"join\",\"room\":\"\"}", "bad_room");
	EXPECT_ERROR(a, b, "{\"type\":\"join\",\"room\":\"my room\"}", "bad_room");
	EXPECT_ERROR(a, b, "{\"type\":\"join\",\"room\":\"a/b\"}", "bad_room");
	EXPECT_ERROR(a, b, "{\"type\":\"join\",\"room\":\"caf\\u00e9\"}", "bad_room");
	EXPECT_ERROR(a, b, "{\"type\":\"join\",\"room\":\"dev\\u0000\"}", "bad_room");
	EXPECT_ERROR(a, b, "{\"type\":\"join\",\"room\":5}", "bad_room");
	EXPECT_ERROR(a, b, "{\"type\":\"join\"}", "bad_room");
	int n = snprintf(cmd, sizeof(cmd), "{\"type\":\"join\",\"room\":\"%065d\"}", 0);
	expect_error(a, b, cmd, (size_t)n, "bad_room");
	/* 64 is still fine. */
	n = snprintf(cmd, sizeof(cmd), "{\"type\":\"join\",\"room\":\"%064d\"}", 0);
	forget_sent();
	chat_receive(chat, a, cmd, (size_t)n);
	assert_string_equal(types_to(a), "presence join history");
}

static void test_seventeenth_room_is_too_many_rooms(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "r0");
	join(b, "r0");
	for (int i = 1; i < 16; i++) {
		forget_sent();
		cmdf(a, "{\"type\":\"join\",\"room\":\"r%d\"}", i);
		assert_string_equal(types_to(a), "presence join history");
	}
	EXPECT_ERROR(a, b, "{\"type\":\"join\",\"room\":\"r16\"}", "too_many_rooms");
	forget_sent();
	cmdf(a, "{\"type\":\"rooms\"}");
	assert_int_equal(json_array_size(json_object_get(only_frame_to(a)->json, "joined")), 16);
	/* Leaving one makes room for another. */
	cmdf(a, "{\"type\":\"leave\",\"room\":\"r3\"}");
	forget_sent();
	cmdf(a, "{\"type\":\"join\",\"room\":\"r16\"}");
	assert_string_equal(types_to(a), "presence join history");
}

static void test_join_when_max_rooms_exist_is_too_many_rooms(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "dev");
	EXPECT_ERROR(a, b, "{\"type\":\"join\",\"room\":\"third\"}", "too_many_rooms");
	/* Rooms that exist can still be joined. */
	forget_sent();
	cmdf(a, "{\"type\":\"join\",\"room\":\"dev\"}");
	assert_string_equal(types_to(a), "presence join history");
}

static void test_leave_tells_the_rest_and_the_leaver(void **state)
{
	struct chat_member *a = member(), *b = member(), *c = member();

	(void)state;
	join(a, "lobby");
	join(c, "lobby");
	join(b, "dev");
	cmdf(a, "{\"type\":\"join\",\"room\":\"dev\"}");
	forget_sent();
	cmdf(a, "{\"type\":\"leave\",\"room\":\"dev\"}");
	const struct sent *s = only_frame_to(b);
	assert_string_equal(type_of(s), "leave");
	assert_string_equal(str(s->json, "room"), "dev");
	expect_user(json_object_get(s->json, "user"), a);
	assert_int_equal(num(s->json, "count"), 1);
	const struct sent *mine = only_frame_to(a);
	assert_string_equal(type_of(mine), "leave");
	assert_string_equal(str(mine->json, "room"), "dev");
	expect_user(json_object_get(mine->json, "user"), a);
	expect_nothing_to(c);

	/* Nothing more from that room. */
	forget_sent();
	say(b, "after a left");
	expect_nothing_to(a);
}

static void test_leave_of_a_room_you_are_not_in_is_not_in_room(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "dev");
	EXPECT_ERROR(a, b, "{\"type\":\"leave\",\"room\":\"dev\"}", "not_in_room");
	EXPECT_ERROR(a, b, "{\"type\":\"leave\",\"room\":\"nowhere\"}", "not_in_room");
}

static void test_after_leaving_every_room_plain_text_is_no_room(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	cmdf(a, "{\"type\":\"leave\",\"room\":\"lobby\"}");
	EXPECT_ERROR(a, b, "hello?", "no_room");
	EXPECT_ERROR(a, b, "{\"type\":\"message\",\"text\":\"x\"}", "no_room");
	EXPECT_ERROR(a, b, "{\"type\":\"history\"}", "no_room");
	/* Joining again brings it back. */
	cmdf(a, "{\"type\":\"join\",\"room\":\"lobby\"}");
	forget_sent();
	say(a, "back");
	assert_string_equal(str(only_frame_to(b)->json, "text"), "back");
}

/* Leaving the current room must not leave plain text going there: it goes
 * to a room the member is still in. */
static void test_after_leaving_the_current_room_plain_text_does_not_go_there(void **state)
{
	struct chat_member *a = member(), *l = member(), *d = member();

	(void)state;
	join(a, "lobby");
	join(l, "lobby");
	join(d, "dev");
	cmdf(a, "{\"type\":\"join\",\"room\":\"dev\"}"); /* dev is current */
	cmdf(a, "{\"type\":\"leave\",\"room\":\"dev\"}");
	forget_sent();
	say(a, "where does this go?");
	expect_nothing_to(d);
	assert_string_equal(str(only_frame_to(l)->json, "room"), "lobby");
}

static void test_member_of_two_rooms_receives_messages_of_both(void **state)
{
	struct chat_member *a = member(), *l = member(), *d = member();

	(void)state;
	join(a, "lobby");
	join(l, "lobby");
	join(d, "dev");
	cmdf(a, "{\"type\":\"join\",\"room\":\"dev\"}");
	forget_sent();
	say(l, "from lobby");
	say(d, "from dev");
	assert_string_equal(types_to(a), "message message");
	assert_string_equal(str(nth_of_type(a, "message", 0)->json, "room"), "lobby");
	assert_string_equal(str(nth_of_type(a, "message", 1)->json, "room"), "dev");
}

static void test_message_command_posts_to_the_room_it_names(void **state)
{
	struct chat_member *a = member(), *l = member(), *d = member();

	(void)state;
	join(a, "lobby");
	join(l, "lobby");
	join(d, "dev");
	cmdf(a, "{\"type\":\"join\",\"room\":\"dev\"}"); /* dev is current */
	forget_sent();
	cmdf(a, "{\"type\":\"message\",\"text\":\"x\",\"room\":\"lobby\"}");
	assert_string_equal(str(only_frame_to(l)->json, "room"), "lobby");
	expect_nothing_to(d);
	EXPECT_ERROR(a, d, "{\"type\":\"message\",\"text\":\"x\",\"room\":\"other\"}", "not_in_room");
}

/* Rooms compared as sets: the protocol does not promise an order. */
static void test_rooms_lists_your_rooms_and_the_rooms_with_people_in_them(void **state)
{
	struct chat_member *a = member(), *b = member(), *c = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	cmdf(a, "{\"type\":\"join\",\"room\":\"dev\"}");
	join(c, "gone");
	cmdf(c, "{\"type\":\"join\",\"room\":\"y\"}");
	cmdf(c, "{\"type\":\"leave\",\"room\":\"gone\"}"); /* gone is empty now */
	forget_sent();
	cmdf(a, "{\"type\":\"rooms\"}");
	const struct sent *s = only_frame_to(a);
	assert_string_equal(type_of(s), "rooms");

	json_t *joined = json_object_get(s->json, "joined");
	assert_int_equal(json_array_size(joined), 2);
	bool lobby = false, dev = false;
	for (size_t i = 0; i < 2; i++) {
		const char *r = json_string_value(json_array_get(joined, i));
		assert_non_null(r);
		lobby |= strcmp(r, "lobby") == 0;
		dev |= strcmp(r, "dev") == 0;
	}
	assert_true(lobby && dev);

	json_t *rooms = json_object_get(s->json, "rooms");
	static const struct { const char *room; json_int_t count; } want[] = {
		{ "lobby", 2 }, { "dev", 1 }, { "y", 1 },
	};
	assert_int_equal(json_array_size(rooms), 3);
	for (size_t w = 0; w < 3; w++) {
		size_t found = 0;
		for (size_t i = 0; i < json_array_size(rooms); i++) {
			json_t *r = json_array_get(rooms, i);
			if (strcmp(str(r, "room"), want[w].room) == 0) {
				assert_int_equal(num(r, "count"), want[w].count);
				found++;
			}
		}
		if (found != 1)
			fail_msg("room %s listed %zu times: %s", want[w].room, found, s->payload);
	}
}

static void test_disconnect_sends_leave_with_the_new_count_to_the_rest(void **state)
{
	struct chat_member *m[3] = { member(), member(), member() };

	(void)state;
	for (int k = 0; k < 3; k++)
		join(m[k], "lobby");
	forget_sent();
	chat_disconnect(chat, m[1]);
	expect_nothing_to(m[1]);
	for (int k = 0; k < 3; k += 2) {
		const struct sent *s = only_frame_to(m[k]);
		assert_string_equal(type_of(s), "leave");
		assert_string_equal(str(s->json, "room"), "lobby");
		expect_user(json_object_get(s->json, "user"), m[1]);
		assert_int_equal(num(s->json, "count"), 2);
	}
	assert_ptr_equal(only_frame_to(m[0])->frame, only_frame_to(m[2])->frame);
}

static void test_disconnect_leaves_every_room(void **state)
{
	struct chat_member *a = member(), *l = member(), *d = member();

	(void)state;
	join(a, "lobby");
	join(l, "lobby");
	join(d, "dev");
	cmdf(a, "{\"type\":\"join\",\"room\":\"dev\"}");
	forget_sent();
	chat_disconnect(chat, a);
	assert_string_equal(types_to(l), "leave");
	assert_string_equal(types_to(d), "leave");
	assert_int_equal(num(only_frame_to(d)->json, "count"), 1);
}

static void test_disconnected_member_gets_nothing_more(void **state)
{
	struct chat_member *m[3] = { member(), member(), member() }, *late = member();

	(void)state;
	for (int k = 0; k < 3; k++)
		join(m[k], "lobby");
	chat_disconnect(chat, m[1]);
	forget_sent();
	say(m[0], "after");
	join(late, "lobby");
	chat_disconnect(chat, m[2]);
	expect_nothing_to(m[1]);
	/* Its presence is gone from the snapshot too. */
	assert_string_equal(types_to(late), "welcome presence join history leave");
	assert_int_equal(num(nth_of_type(late, "presence", 0)->json, "count"), 3);
}

static void test_room_keeps_its_history_and_ids_after_everyone_leaves(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	say_n(a, 3);
	chat_disconnect(chat, a);
	forget_sent();
	join(b, "lobby");
	expect_history(nth_of_type(b, "history", 0), "lobby", 1, 3, false);
	forget_sent();
	say(b, "next");
	assert_int_equal(num(only_frame_to(b)->json, "id"), 4);
}

static void test_no_join_event_above_presence_events_max(void **state)
{
	struct chat_member *m[3] = { member(), member(), member() };

	(void)state;
	join(m[0], "lobby");
	forget_sent();
	join(m[1], "lobby");
	assert_string_equal(type_of(only_frame_to(m[0])), "join");
	assert_int_equal(num(only_frame_to(m[0])->json, "count"), 2);

	forget_sent();
	join(m[2], "lobby");
	expect_nothing_to(m[0]);
	expect_nothing_to(m[1]);
	assert_string_equal(types_to(m[2]), "welcome presence history");
	assert_int_equal(num(nth_of_type(m[2], "presence", 0)->json, "count"), 3);
}

static void test_presence_list_is_cut_at_presence_list_max_but_count_is_exact(void **state)
{
	struct chat_member *m[4] = { member(), member(), member(), member() };
	const struct sent *s[4];

	(void)state;
	for (int k = 0; k < 3; k++)
		join(m[k], "lobby");
	forget_sent();
	join(m[3], "lobby");
	assert_int_equal(sent_to(m[3], s, 4), 4);
	assert_string_equal(type_of(s[1]), "presence");
	assert_int_equal(num(s[1]->json, "count"), 4);
	json_t *users = json_object_get(s[1]->json, "users");
	assert_true(json_is_array(users));
	assert_int_equal(json_array_size(users), 2);
	for (size_t i = 0; i < 2; i++) {
		unsigned long id = strtoul(str(json_array_get(users, i), "id"), NULL, 10);
		assert_in_range(id, m[0]->id, m[3]->id);
	}
	/* The join event is not cut: it still carries the full count. */
	assert_int_equal(num(s[2]->json, "count"), 4);
}

/* ---- room names ---- */

static bool allowed_in_room_name(unsigned c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == '-';
}

static void test_room_name_of_1_to_64_allowed_characters_is_valid(void **state)
{
	char name[CHAT_ROOM_MAX];

	(void)state;
	assert_true(chat_room_name_valid("a", 1));
	assert_true(chat_room_name_valid("lobby", 5));
	assert_true(chat_room_name_valid("Dev-Team_2.0", 12));
	assert_true(chat_room_name_valid("...", 3));
	memset(name, 'z', sizeof(name));
	assert_true(chat_room_name_valid(name, 64));
}

static void test_room_name_empty_or_over_64_is_invalid(void **state)
{
	char name[CHAT_ROOM_MAX + 1];

	(void)state;
	assert_false(chat_room_name_valid("", 0));
	memset(name, 'z', sizeof(name));
	assert_false(chat_room_name_valid(name, 65));
}

/* Every byte value, alone and inside an otherwise good name: valid exactly
 * when it is one of [A-Za-z0-9_.-]. */
static void test_room_name_with_any_other_byte_is_invalid(void **state)
{
	(void)state;
	assert_false(chat_room_name_valid("my room", 7));
	assert_false(chat_room_name_valid("a/b", 3));
	assert_false(chat_room_name_valid("caf\xc3\xa9", 5));
	for (unsigned c = 0; c < 256; c++) {
		char one[1] = { (char)c };
		char mid[3] = { 'a', (char)c, 'b' };
		if (chat_room_name_valid(one, 1) != allowed_in_room_name(c) ||
		    chat_room_name_valid(mid, 3) != allowed_in_room_name(c))
			fail_msg("byte 0x%02x: wrong verdict", c);
	}
}

static void test_room_name_is_checked_over_its_length_only(void **state)
{
	(void)state;
	assert_true(chat_room_name_valid("lobby/../x", 5));
	assert_false(chat_room_name_valid("lobby/../x", 6));
}

static void test_room_names_are_case_sensitive(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "Lobby");
	forget_sent();
	say(a, "x");
	expect_nothing_to(b);
}

/* ---- history ---- */

static void test_join_history_is_the_last_50_oldest_first_with_more(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	forget_sent();
	say_n(a, 60);
	const struct sent *m60 = nth_of_type(a, "message", 59);
	json_t *last = json_incref(m60->json);
	forget_sent();
	join(b, "lobby");
	const struct sent *h = nth_of_type(b, "history", 0);
	expect_history(h, "lobby", 11, 60, true);
	/* A history entry is the message event as it was broadcast. */
	json_t *msgs = json_object_get(h->json, "messages");
	assert_true(json_equal(json_array_get(msgs, 49), last));
	json_decref(last);
}

static void test_history_pages_back_by_before_and_limit(void **state)
{
	struct chat_member *a = member();

	(void)state;
	join(a, "lobby");
	say_n(a, 60);
	forget_sent();
	cmdf(a, "{\"type\":\"history\",\"before\":11,\"limit\":10}");
	expect_history(only_frame_to(a), "lobby", 1, 10, false);
	forget_sent();
	cmdf(a, "{\"type\":\"history\",\"room\":\"lobby\",\"before\":21,\"limit\":10}");
	expect_history(only_frame_to(a), "lobby", 11, 20, true);
	forget_sent();
	cmdf(a, "{\"type\":\"history\",\"limit\":5}");
	expect_history(only_frame_to(a), "lobby", 56, 60, true);
	forget_sent();
	cmdf(a, "{\"type\":\"history\"}");
	expect_history(only_frame_to(a), "lobby", 11, 60, true);
	forget_sent();
	cmdf(a, "{\"type\":\"history\",\"before\":1}");
	expect_history(only_frame_to(a), "lobby", 1, 0, false);
	forget_sent();
	cmdf(a, "{\"type\":\"history\",\"before\":1000}");
	expect_history(only_frame_to(a), "lobby", 11, 60, true);
}

static void test_history_limit_is_capped_at_200(void **state)
{
	struct chat_member *a = member();

	(void)state;
	join(a, "lobby");
	say_n(a, 250);
	forget_sent();
	cmdf(a, "{\"type\":\"history\",\"limit\":1000}");
	expect_history(only_frame_to(a), "lobby", 51, 250, true);
	forget_sent();
	cmdf(a, "{\"type\":\"history\",\"limit\":200}");
	expect_history(only_frame_to(a), "lobby", 51, 250, true);
}

static void test_history_before_or_limit_not_a_non_negative_integer_is_bad_message(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	say_n(a, 3);
	EXPECT_ERROR(a, b, "{\"type\":\"history\",\"before\":-1}", "bad_message");
	EXPECT_ERROR(a, b, "{\"type\":\"history\",\"before\":1.5}", "bad_message");
	EXPECT_ERROR(a, b, "{\"type\":\"history\",\"before\":\"11\"}", "bad_message");
	EXPECT_ERROR(a, b, "{\"type\":\"history\",\"before\":null}", "bad_message");
	EXPECT_ERROR(a, b, "{\"type\":\"history\",\"before\":true}", "bad_message");
	EXPECT_ERROR(a, b, "{\"type\":\"history\",\"limit\":-5}", "bad_message");
	EXPECT_ERROR(a, b, "{\"type\":\"history\",\"limit\":\"5\"}", "bad_message");
}

static void test_history_of_a_room_you_are_not_in_is_not_in_room(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "dev");
	say(b, "secret");
	EXPECT_ERROR(a, b, "{\"type\":\"history\",\"room\":\"dev\"}", "not_in_room");
}

/* history_memory 10, no store: what memory has dropped is gone, and
 * nobody is told there is more. */
static void test_history_older_than_memory_is_gone_without_a_store(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	say_n(a, 30);
	forget_sent();
	join(b, "lobby");
	expect_history(nth_of_type(b, "history", 0), "lobby", 21, 30, false);
	forget_sent();
	cmdf(b, "{\"type\":\"history\",\"before\":21}");
	expect_history(only_frame_to(b), "lobby", 1, 0, false);
	forget_sent();
	cmdf(b, "{\"type\":\"history\",\"before\":25,\"limit\":10}");
	expect_history(only_frame_to(b), "lobby", 21, 24, false);
}

/* ---- resuming ---- */

static void test_connect_with_since_replays_what_was_missed_then_resumed(void **state)
{
	struct chat_member *a = member(), *b = member();
	struct buf *frames[8];

	(void)state;
	join(a, "lobby");
	forget_sent();
	say_n(a, 8);
	for (size_t i = 0; i < 8; i++)
		frames[i] = buf_ref(nth_of_type(a, "message", i)->frame);
	forget_sent();
	join_since(b, "lobby", 5);
	assert_string_equal(types_to(b), "welcome presence join message message message resumed");
	expect_message_ids(b, 6, 8);
	expect_resumed(nth_of_type(b, "resumed", 0), "lobby", 5, 8, true);
	/* The replay is the very frames that were broadcast. */
	for (size_t i = 0; i < 3; i++)
		assert_ptr_equal(nth_of_type(b, "message", i)->frame, frames[5 + i]);
	for (size_t i = 0; i < 8; i++)
		buf_unref(frames[i]);
	/* Then live traffic. */
	forget_sent();
	say(a, "live");
	assert_int_equal(num(only_frame_to(b)->json, "id"), 9);
}

static void test_connect_with_since_at_or_past_the_last_id_gets_only_resumed(void **state)
{
	struct chat_member *a = member(), *b = member(), *c = member(), *d = member();

	(void)state;
	join(a, "lobby");
	say_n(a, 8);
	forget_sent();
	join_since(b, "lobby", 8);
	assert_string_equal(types_to(b), "welcome presence join resumed");
	expect_resumed(nth_of_type(b, "resumed", 0), "lobby", 8, 8, true);
	forget_sent();
	join_since(c, "lobby", 100);
	assert_string_equal(types_to(c), "welcome presence join resumed");
	expect_resumed(nth_of_type(c, "resumed", 0), "lobby", 100, 8, true);
	/* A room with no messages yet. */
	forget_sent();
	join_since(d, "fresh", 0);
	assert_string_equal(types_to(d), "welcome presence join resumed");
	expect_resumed(nth_of_type(d, "resumed", 0), "fresh", 0, 0, true);
}

/* m's connection sent everything it held: its replay may go on. */
static void drain(struct chat_member *m)
{
	queued[m - pool] = 0;
	chat_drained(chat, m);
}

/* A replay fills the member's queue to the high-water mark (256 KiB) and
 * goes on as it drains; live messages wait behind it, and the replay is
 * complete however large. */
static void test_resume_is_paced_by_the_members_queue(void **state)
{
	struct chat_member *a = member(), *b = member();
	static char big[100001];

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	join(a, "lobby");
	for (int i = 0; i < 12; i++)
		say(a, big);
	forget_sent();
	join_since(b, "lobby", 0);
	/* 100 KB frames: the third takes the queue past 256 KiB */
	expect_message_ids(b, 1, 3);
	assert_int_equal(count_of_type(b, "resumed"), 0);
	say(a, "live while b catches up"); /* id 13: not to b yet */
	expect_message_ids(b, 1, 3);
	drain(b);
	expect_message_ids(b, 1, 6);
	for (int i = 0; i < 3; i++)
		drain(b);
	/* 1..13 in order, once each, then resumed, then live */
	expect_message_ids(b, 1, 13);
	expect_resumed(nth_of_type(b, "resumed", 0), "lobby", 0, 13, true);
	forget_sent();
	say(a, "after");
	expect_message_ids(b, 14, 14);
	drain(b); /* nothing left to replay: nothing more is sent */
	assert_int_equal(sent_to(b, NULL, 0), 1);
}

/* Control characters other than TAB, LF and CR cost six bytes each once
 * escaped: refused, and nobody gets anything. */
static void test_control_characters_are_bad_text(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	forget_sent();
	chat_receive(chat, a, "bell\a", 6);
	chat_receive(chat, a, "nul\0x", 5);
	cmdf(a, "{\"type\":\"message\",\"text\":\"esc \\u001b[2J\"}");
	assert_int_equal(sent_to(b, NULL, 0), 0);
	assert_int_equal(count_of_type(a, "error"), 3);
	for (int i = 0; i < 3; i++)
		assert_string_equal(str(nth_of_type(a, "error", i)->json, "code"), "bad_text");
	forget_sent();
	say(a, "tab\tnew\nline\r\n ok");
	expect_message_ids(b, 1, 1);
}

/* One history event holds at most 256 KiB of messages, the newest; more
 * says the rest can be paged. */
static void test_history_page_is_bounded_in_bytes(void **state)
{
	struct chat_member *a = member(), *b = member();
	static char big[60001];

	(void)state;
	memset(big, 'y', sizeof(big) - 1);
	join(a, "lobby");
	for (int i = 0; i < 10; i++)
		say(a, big);
	forget_sent();
	join(b, "lobby");
	const struct sent *h = nth_of_type(b, "history", 0);
	assert_true(h->len <= 256 * 1024 + 1024);
	json_t *msgs = json_object_get(h->json, "messages");
	assert_int_equal(json_array_size(msgs), 4);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(msgs, 3), "id")), 10);
	assert_true(flag(h->json, "more"));
	forget_sent();
	cmdf(b, "{\"type\":\"history\",\"before\":7,\"limit\":200}");
	h = nth_of_type(b, "history", 0);
	msgs = json_object_get(h->json, "messages");
	assert_int_equal(json_array_size(msgs), 4);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(msgs, 0), "id")), 3);
	assert_true(flag(h->json, "more"));
}

static void test_resume_in_a_live_room_replays_only_what_came_before_going_live(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	say_n(a, 5);
	join(b, "lobby");
	say_n(a, 3); /* ids 6..8, which b got live */
	forget_sent();
	cmdf(b, "{\"type\":\"resume\",\"room\":\"lobby\",\"since\":2}");
	assert_string_equal(types_to(b), "message message message resumed");
	expect_message_ids(b, 3, 5);
	expect_resumed(nth_of_type(b, "resumed", 0), "lobby", 2, 5, true);
	forget_sent();
	/* b saw 6..8 live: nothing to replay. */
	cmdf(b, "{\"type\":\"resume\",\"since\":6}");
	const struct sent *s = only_frame_to(b);
	assert_string_equal(type_of(s), "resumed");
	assert_int_equal(num(s->json, "since"), 6);
	assert_true(flag(s->json, "complete"));
}

static void test_resume_of_a_room_you_are_not_in_joins_it_with_a_replay(void **state)
{
	struct chat_member *a = member(), *d = member();

	(void)state;
	join(d, "dev");
	say_n(d, 4);
	join(a, "lobby");
	forget_sent();
	cmdf(a, "{\"type\":\"resume\",\"room\":\"dev\",\"since\":1}");
	assert_string_equal(types_to(a), "presence join message message message resumed");
	expect_message_ids(a, 2, 4);
	expect_resumed(nth_of_type(a, "resumed", 0), "dev", 1, 4, true);
	assert_string_equal(types_to(d), "join");
}

static void test_join_with_since_replays_instead_of_history(void **state)
{
	struct chat_member *a = member(), *d = member();

	(void)state;
	join(d, "dev");
	say_n(d, 4);
	join(a, "lobby");
	forget_sent();
	cmdf(a, "{\"type\":\"join\",\"room\":\"dev\",\"since\":2}");
	assert_string_equal(types_to(a), "presence join message message resumed");
	expect_message_ids(a, 3, 4);
	expect_resumed(nth_of_type(a, "resumed", 0), "dev", 2, 4, true);
}

static void test_resume_or_join_with_a_bad_since_is_bad_message(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	EXPECT_ERROR(a, b, "{\"type\":\"resume\",\"room\":\"lobby\"}", "bad_message");
	EXPECT_ERROR(a, b, "{\"type\":\"resume\"}", "bad_message");
	EXPECT_ERROR(a, b, "{\"type\":\"resume\",\"since\":-1}", "bad_message");
	EXPECT_ERROR(a, b, "{\"type\":\"resume\",\"since\":\"3\"}", "bad_message");
	EXPECT_ERROR(a, b, "{\"type\":\"resume\",\"since\":2.5}", "bad_message");
	EXPECT_ERROR(a, b, "{\"type\":\"join\",\"room\":\"dev\",\"since\":-1}", "bad_message");
}

/* history_memory 10, no store: a resume from before what memory holds
 * replays what there is and says it is not complete. */
static void test_resume_beyond_memory_without_a_store_is_incomplete(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	say_n(a, 30);
	forget_sent();
	join_since(b, "lobby", 5);
	expect_message_ids(b, 21, 30);
	expect_resumed(nth_of_type(b, "resumed", 0), "lobby", 5, 30, false);
	assert_int_equal(count_of_type(b, "history"), 0);
}

/* --history-bytes 4096, no store: "quiet" said 5 things, then "busy"
 * said 200 and took the memory, "quiet" least recently used first. Without
 * a store what memory let go is gone: quiet's history is empty with no
 * more to page, a replay of it is incomplete, and its ids go on. */
static void test_history_dropped_by_the_byte_bound_is_gone_without_a_store(void **state)
{
	struct chat_member *a = member(), *b = member(), *c = member(), *d = member();

	(void)state;
	join(a, "quiet");
	say_n(a, 5);
	join(b, "busy");
	say_n(b, 200);
	assert_true(chat_stats(chat)->history_bytes <= 4096);
	assert_int_equal(chat_stats(chat)->history_bytes_limit, 4096);
	assert_true(chat_stats(chat)->history_evicted >= 5);
	forget_sent();

	join(c, "quiet");
	expect_history(nth_of_type(c, "history", 0), "quiet", 1, 0, false);
	join_since(d, "quiet", 0);
	expect_resumed(nth_of_type(d, "resumed", 0), "quiet", 0, 5, false);
	assert_int_equal(count_of_type(d, "message"), 0);
	forget_sent();
	say(a, "six");
	assert_int_equal(num(nth_of_type(c, "message", 0)->json, "id"), 6);

	/* busy kept its newest: a join's history ends with 200, no gap */
	struct chat_member *e = member();
	join(e, "busy");
	json_t *msgs = json_object_get(nth_of_type(e, "history", 0)->json, "messages");
	size_t n = json_array_size(msgs);
	assert_true(n > 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(num(json_array_get(msgs, i), "id"), 200 - (json_int_t)(n - 1 - i));
}

/* ---- acknowledgements: the client's cid ---- */

static void test_cid_comes_back_in_the_senders_copy_only(void **state)
{
	struct chat_member *a = member(), *b = member(), *c = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	forget_sent();
	cmdf(a, "{\"type\":\"message\",\"text\":\"hi\",\"cid\":\"c\\\"1\"}");
	const struct sent *own = only_frame_to(a), *other = only_frame_to(b);
	assert_string_equal(type_of(own), "message");
	assert_string_equal(str(own->json, "cid"), "c\"1");
	assert_int_equal(num(own->json, "id"), num(other->json, "id"));
	assert_null(json_object_get(other->json, "cid"));
	/* the acknowledgement is the message as everyone got it, plus the cid */
	json_t *stripped = json_deep_copy(own->json);
	json_object_del(stripped, "cid");
	assert_true(json_equal(stripped, other->json));
	json_decref(stripped);
	/* nor does history keep it */
	forget_sent();
	join(c, "lobby");
	json_t *msgs = json_object_get(nth_of_type(c, "history", 0)->json, "messages");
	assert_int_equal(json_array_size(msgs), 1);
	assert_null(json_object_get(json_array_get(msgs, 0), "cid"));
}

static void test_error_answering_a_command_with_a_cid_carries_it(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	EXPECT_ERROR(a, b, "{\"type\":\"message\",\"text\":\"\",\"cid\":\"e1\"}", "empty");
	assert_string_equal(str(only_frame_to(a)->json, "cid"), "e1");
	EXPECT_ERROR(a, b, "{\"type\":\"message\",\"text\":\"x\",\"room\":\"dev\",\"cid\":\"e2\"}",
		     "not_in_room");
	assert_string_equal(str(only_frame_to(a)->json, "cid"), "e2");
	/* a later error of a command without one says nothing of the last */
	EXPECT_ERROR(a, b, "{\"type\":\"message\",\"text\":\"\"}", "empty");
	assert_null(json_object_get(only_frame_to(a)->json, "cid"));
}

static void test_cid_not_a_string_of_1_to_64_bytes_is_bad_message(void **state)
{
	struct chat_member *a = member(), *b = member();
	char cmd[256];

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	EXPECT_ERROR(a, b, "{\"type\":\"message\",\"text\":\"x\",\"cid\":7}", "bad_message");
	EXPECT_ERROR(a, b, "{\"type\":\"message\",\"text\":\"x\",\"cid\":\"\"}", "bad_message");
	int n = snprintf(cmd, sizeof(cmd), "{\"type\":\"message\",\"text\":\"x\",\"cid\":\"%065d\"}", 0);
	expect_error(a, b, cmd, (size_t)n, "bad_message");
	/* 64 bytes is a cid */
	n = snprintf(cmd, sizeof(cmd), "{\"type\":\"message\",\"text\":\"x\",\"cid\":\"%064d\"}", 0);
	forget_sent();
	chat_receive(chat, a, cmd, (size_t)n);
	assert_int_equal(strlen(str(only_frame_to(a)->json, "cid")), 64);
	assert_string_equal(type_of(only_frame_to(b)), "message");
}

/* ---- flood control ---- */

static void test_message_over_the_burst_is_rate_limited_and_not_broadcast(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	uint64_t limited = chat_stats(chat)->rate_limited;
	join(a, "lobby");
	join(b, "lobby");
	forget_sent();
	say(a, "1");
	say(a, "2");
	say(a, "3");
	expect_message_ids(b, 1, 3);
	EXPECT_ERROR(a, b, "4", "rate_limited");
	assert_int_equal(chat_stats(chat)->rate_limited, limited + 1);
	assert_int_equal(ncloses, 0);
}

/* The refusal says which send it refuses, so a client's promise rejects. */
static void test_rate_limited_command_carries_its_cid(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	say_n(a, 3);
	EXPECT_ERROR(a, b, "{\"type\":\"message\",\"text\":\"4\",\"cid\":\"r4\"}", "rate_limited");
	assert_string_equal(str(only_frame_to(a)->json, "cid"), "r4");
}

/* Burst 3: three refusals in a row are a person typing too fast; the
 * fourth is a flood, and the connection is closed (1008). */
static void test_member_who_keeps_sending_past_burst_refusals_is_closed_with_1008(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	say_n(a, 3);
	for (int i = 0; i < 3; i++) {
		EXPECT_ERROR(a, b, "too fast", "rate_limited");
		assert_int_equal(ncloses, 0);
	}
	forget_sent();
	say(a, "and more");
	expect_nothing_to(b);
	assert_int_equal(ncloses, 1);
	assert_ptr_equal(closes[0].m, a);
	assert_int_equal(closes[0].code, 1008);
	assert_true(closes[0].reason);
}

static void test_commands_count_against_the_rate_limit(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	cmdf(a, "{\"type\":\"rooms\"}");
	cmdf(a, "{\"type\":\"history\"}");
	cmdf(a, "{\"type\":\"nope\"}");
	EXPECT_ERROR(a, b, "hello", "rate_limited");
	EXPECT_ERROR(a, b, "{\"type\":\"rooms\"}", "rate_limited");
}

static void test_rate_limit_of_0_per_second_is_unlimited(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	join(b, "lobby");
	forget_sent();
	say_n(a, 100);
	expect_message_ids(b, 1, 100);
	assert_int_equal(count_of_type(a, "error"), 0);
	assert_int_equal(ncloses, 0);
}

/* ---- stats ---- */

static void test_stats_count_messages_errors_and_rooms(void **state)
{
	struct chat_member *a = member(), *b = member(), *c = member();

	(void)state;
	uint64_t messages = chat_stats(chat)->messages;
	uint64_t errors = chat_stats(chat)->errors;
	assert_int_equal(chat_stats(chat)->rooms, 0);

	join(a, "lobby");
	join(b, "lobby");
	join(c, "dev");
	assert_int_equal(chat_stats(chat)->rooms, 2);

	say(a, "one");
	say(c, "{\"type\":\"message\",\"text\":\"two\"}");
	say(b, "{bad");
	say(b, "");
	say(c, "{\"type\":\"nope\"}");
	assert_int_equal(chat_stats(chat)->messages, messages + 2);
	assert_int_equal(chat_stats(chat)->errors, errors + 3);
	assert_int_equal(chat_stats(chat)->pending, 0);

	/* rooms counts active rooms: with everyone gone, none */
	chat_disconnect(chat, c);
	chat_disconnect(chat, a);
	chat_disconnect(chat, b);
	assert_int_equal(chat_stats(chat)->rooms, 0);
}

static void test_empty_rooms_do_not_count_against_max_rooms(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "lobby");
	cmdf(a, "{\"type\":\"join\",\"room\":\"r1\"}");
	say(a, "{\"type\":\"message\",\"room\":\"r1\",\"text\":\"kept\"}");
	cmdf(a, "{\"type\":\"leave\",\"room\":\"r1\"}");
	/* r1 is idle: the 2-room limit has room for another */
	forget_sent();
	cmdf(a, "{\"type\":\"join\",\"room\":\"r2\"}");
	assert_string_equal(types_to(a), "presence join history");
	EXPECT_ERROR(a, b, "{\"type\":\"join\",\"room\":\"r3\"}", "too_many_rooms");
}

static void test_an_idle_room_without_a_store_keeps_its_history_and_ids(void **state)
{
	struct chat_member *a = member(), *b = member();

	(void)state;
	join(a, "dev");
	say(a, "first");
	say(a, "second");
	chat_disconnect(chat, a);
	assert_int_equal(chat_stats(chat)->rooms, 0);
	forget_sent();
	join(b, "dev");
	expect_history(nth_of_type(b, "history", 0), "dev", 1, 2, false);
	forget_sent();
	say(b, "third");
	assert_int_equal(json_integer_value(json_object_get(nth_of_type(b, "message", 0)->json, "id")), 3);
}

/* ---- instances ---- */

/* A member slot for the second chat. */
static struct chat_member *member_of_second(void)
{
	struct chat_member *m = member();

	of_second[m - pool] = true;
	return m;
}

/* The one message frame sent to m since the last forget_sent(). */
static const struct sent *only_message_to(const struct chat_member *m)
{
	const struct sent *s = only_frame_to(m);

	assert_string_equal(type_of(s), "message");
	return s;
}

/* Two chats in one process share nothing: each has its own rooms (the same
 * name is two rooms), member ids, message ids, presence, stats and history
 * accounting, and each hook sees only its own members (record_send notes
 * any frame to a member of the other). One can go while the other runs. */
static void test_two_chats_in_one_process_are_independent(void **state)
{
	struct chat_member *a1 = member(), *a2 = member();
	struct chat_member *b1 = member_of_second(), *b2 = member_of_second();
	const struct sent *s[4];

	(void)state;
	second = chat_new(&(struct chat_config){ .send = fake_send_second, .backlog = fake_backlog,
						 .close = fake_close, .history_bytes = 1 << 20 });
	/* Interleaved, so one shared counter would number them 1 to 4. */
	join(a1, "lobby");
	chat_connect(second, b1, NULL, "lobby", 5, NULL);
	join(a2, "lobby");
	forget_sent();
	chat_connect(second, b2, NULL, "lobby", 5, NULL);
	assert_int_equal(a1->id, 1);
	assert_int_equal(b1->id, 1);
	assert_int_equal(a2->id, 2);
	assert_int_equal(b2->id, 2);
	/* b2 sees its own room: two members, not four. */
	assert_int_equal(sent_to(b2, s, 4), 4);
	assert_string_equal(type_of(s[1]), "presence");
	assert_int_equal(num(s[1]->json, "count"), 2);
	assert_int_equal(json_array_size(json_object_get(s[1]->json, "users")), 2);
	assert_int_equal(num(only_frame_to(b1)->json, "count"), 2); /* its join event */
	expect_nothing_to(a1);
	expect_nothing_to(a2);

	/* A message in one reaches that one's room only, and each room's ids
	 * start at 1. */
	forget_sent();
	say(a1, "to the first");
	assert_int_equal(nsent, 2);
	assert_int_equal(num(only_message_to(a1)->json, "id"), 1);
	assert_int_equal(num(only_message_to(a2)->json, "id"), 1);
	expect_nothing_to(b1);
	expect_nothing_to(b2);
	assert_int_equal(chat_stats(chat)->messages, 1);
	assert_int_equal(chat_stats(second)->messages, 0);
	uint64_t first_bytes = chat_stats(chat)->history_bytes;
	assert_true(first_bytes > 0);
	assert_int_equal(chat_stats(second)->history_bytes, 0);

	forget_sent();
	chat_receive(second, b2, "to the second", 13);
	chat_receive(second, b2, "{", 1); /* an error, counted by the second only */
	assert_int_equal(nsent, 3);
	assert_int_equal(num(only_message_to(b1)->json, "id"), 1);
	assert_string_equal(str(only_message_to(b1)->json, "text"), "to the second");
	assert_int_equal(count_of_type(b2, "message"), 1);
	assert_int_equal(num(nth_of_type(b2, "message", 0)->json, "id"), 1);
	expect_nothing_to(a1);
	expect_nothing_to(a2);

	const struct chat_stats *st = chat_stats(second);
	assert_int_equal(st->messages, 1);
	assert_int_equal(st->errors, 1);
	assert_int_equal(st->rooms, 1);
	assert_true(st->history_bytes > 0);
	assert_int_equal(st->history_bytes_limit, 1 << 20);
	st = chat_stats(chat);
	assert_int_equal(st->messages, 1);
	assert_int_equal(st->errors, 0);
	assert_int_equal(st->rooms, 1);
	assert_int_equal(st->history_bytes, first_bytes);
	assert_int_equal(st->history_bytes_limit, HISTORY_BYTES_UNBOUNDED);

	/* The second goes; the first goes on, its history whole. */
	chat_disconnect(second, b1);
	chat_disconnect(second, b2);
	chat_free(second);
	second = NULL;
	forget_sent();
	say(a2, "still here");
	assert_int_equal(num(only_message_to(a1)->json, "id"), 2);
	forget_sent();
	cmdf(a1, "{\"type\":\"history\"}");
	assert_int_equal(json_array_size(json_object_get(only_frame_to(a1)->json, "messages")), 2);
	assert_int_equal(chat_stats(chat)->messages, 2);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
#define TS(name, setup_fn) cmocka_unit_test_setup_teardown(name, setup_fn, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_connect_sends_welcome_presence_join_then_history),
		TS(test_welcome_tells_the_configured_max_message, setup_max_message_2000),
		T(test_welcome_without_max_message_says_nothing_of_it),
		T(test_member_ids_are_consecutive_and_unique),
		T(test_two_chats_in_one_process_are_independent),
		T(test_presence_lists_every_member_with_the_count),
		T(test_join_goes_to_every_member_with_the_new_count),
		T(test_signed_in_member_is_known_by_its_user_id_and_token_name),
		T(test_api_publish_is_a_message_from_the_api_in_the_rooms_order),
		T(test_api_publish_refuses_what_a_member_would_be_refused),
		T(test_api_kick_closes_every_connection_of_the_user_alone),
		T(test_api_presence_lists_the_room),
		T(test_message_reaches_every_member_including_the_sender),
		T(test_message_is_encoded_once_for_every_recipient),
		T(test_message_carries_id_room_sender_name_text_and_time),
		T(test_message_ids_start_at_1_and_increase_by_1),
		T(test_plain_text_is_the_message_verbatim),
		T(test_message_command_sends_its_text),
		T(test_message_command_naming_its_own_room_is_accepted),
		T(test_whitespace_before_a_brace_still_means_json),
		T(test_json_that_is_not_an_object_is_a_plain_message),
		T(test_long_message_is_delivered_whole),
		T(test_nul_in_json_text_is_bad_text),
		T(test_unparsable_object_is_bad_json),
		T(test_duplicate_keys_are_bad_json),
		T(test_type_that_is_not_a_string_is_bad_message),
		T(test_unknown_type_is_unknown_type),
		T(test_type_with_an_embedded_nul_is_unknown_type),
		T(test_text_that_is_not_a_string_is_bad_message),
		T(test_empty_text_is_empty),
		T(test_message_for_another_room_is_not_in_room),
		T(test_nick_tells_every_room_you_are_in_with_the_old_name),
		T(test_nick_reaches_each_member_once_however_many_rooms_are_shared),
		T(test_messages_after_nick_carry_the_new_name),
		T(test_nick_trims_whitespace_at_both_ends),
		T(test_nick_of_32_characters_is_accepted),
		T(test_nick_event_reports_a_32_character_old_name_whole),
		T(test_nick_that_breaks_the_name_rules_is_bad_name),
		T(test_nick_while_signed_in_is_name_locked),
		T(test_rooms_are_isolated),
		T(test_message_ids_count_per_room_and_increase),
		T(test_join_command_sends_presence_join_and_history_to_the_joiner),
		T(test_joined_room_becomes_the_current_room_for_plain_text),
		T(test_join_of_a_room_you_are_in_is_already_joined),
		T(test_join_of_an_invalid_room_name_is_bad_room),
		T(test_seventeenth_room_is_too_many_rooms),
		TS(test_join_when_max_rooms_exist_is_too_many_rooms, setup_max_rooms_2),
		TS(test_empty_rooms_do_not_count_against_max_rooms, setup_max_rooms_2),
		T(test_an_idle_room_without_a_store_keeps_its_history_and_ids),
		T(test_leave_tells_the_rest_and_the_leaver),
		T(test_leave_of_a_room_you_are_not_in_is_not_in_room),
		T(test_after_leaving_every_room_plain_text_is_no_room),
		T(test_after_leaving_the_current_room_plain_text_does_not_go_there),
		T(test_member_of_two_rooms_receives_messages_of_both),
		T(test_message_command_posts_to_the_room_it_names),
		T(test_cid_comes_back_in_the_senders_copy_only),
		T(test_error_answering_a_command_with_a_cid_carries_it),
		T(test_cid_not_a_string_of_1_to_64_bytes_is_bad_message),
		T(test_rooms_lists_your_rooms_and_the_rooms_with_people_in_them),
		T(test_disconnect_sends_leave_with_the_new_count_to_the_rest),
		T(test_disconnect_leaves_every_room),
		T(test_disconnected_member_gets_nothing_more),
		T(test_room_keeps_its_history_and_ids_after_everyone_leaves),
		TS(test_no_join_event_above_presence_events_max, setup_events_max_2),
		TS(test_presence_list_is_cut_at_presence_list_max_but_count_is_exact, setup_list_max_2),
		T(test_room_name_of_1_to_64_allowed_characters_is_valid),
		T(test_room_name_empty_or_over_64_is_invalid),
		T(test_room_name_with_any_other_byte_is_invalid),
		T(test_room_name_is_checked_over_its_length_only),
		T(test_room_names_are_case_sensitive),
		T(test_join_history_is_the_last_50_oldest_first_with_more),
		T(test_history_pages_back_by_before_and_limit),
		T(test_history_limit_is_capped_at_200),
		T(test_history_before_or_limit_not_a_non_negative_integer_is_bad_message),
		T(test_history_of_a_room_you_are_not_in_is_not_in_room),
		TS(test_history_older_than_memory_is_gone_without_a_store, setup_history_memory_10),
		T(test_connect_with_since_replays_what_was_missed_then_resumed),
		T(test_connect_with_since_at_or_past_the_last_id_gets_only_resumed),
		TS(test_resume_is_paced_by_the_members_queue, setup),
		TS(test_control_characters_are_bad_text, setup),
		TS(test_history_page_is_bounded_in_bytes, setup),
		T(test_resume_in_a_live_room_replays_only_what_came_before_going_live),
		T(test_resume_of_a_room_you_are_not_in_joins_it_with_a_replay),
		T(test_join_with_since_replays_instead_of_history),
		T(test_resume_or_join_with_a_bad_since_is_bad_message),
		TS(test_resume_beyond_memory_without_a_store_is_incomplete, setup_history_memory_10),
		TS(test_history_dropped_by_the_byte_bound_is_gone_without_a_store, setup_history_bytes_4k),
		TS(test_message_over_the_burst_is_rate_limited_and_not_broadcast, setup_rate_1_burst_3),
		TS(test_rate_limited_command_carries_its_cid, setup_rate_1_burst_3),
		TS(test_member_who_keeps_sending_past_burst_refusals_is_closed_with_1008,
		   setup_rate_1_burst_3),
		TS(test_commands_count_against_the_rate_limit, setup_rate_1_burst_3),
		TS(test_rate_limit_of_0_per_second_is_unlimited, setup_rate_0),
		T(test_stats_count_messages_errors_and_rooms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
