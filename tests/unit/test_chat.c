/* test_chat.c: the chat protocol, rooms and fan-out, rule by rule.
 *
 * chat hands finished frames to a send function; the fake one here keeps a
 * reference to each frame (so one buffer shared by every recipient shows as
 * one pointer) and a copy of its bytes. Each frame is decoded as a client
 * would: check the server header, parse the JSON payload with jansson.
 *
 * Member ids are unique for the life of the process and do not restart with
 * chat_init, and stats accumulate likewise, so tests compare ids with the
 * first one they see and stats with their values before the test. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "chat.h"

#define MAX_SENT 1024

struct sent {
	struct chat_member *to;
	struct buf *frame;    /* a reference, kept so the pointer stays unique */
	uint8_t *copy;        /* the frame's bytes as they were handed over */
	size_t len;
	json_t *json;         /* its payload, parsed */
	char *payload;        /* its payload, NUL-terminated */
};

static struct sent sent[MAX_SENT];
static size_t nsent;

/* Decode a server text frame: FIN + text, unmasked, shortest length form
 * matching the frame's size; returns the payload and its length. */
static const uint8_t *frame_payload(const uint8_t *f, size_t len, size_t *n)
{
	size_t h = 2;
	uint64_t plen;

	assert_true(len >= 2);
	assert_int_equal(f[0], 0x81);
	assert_int_equal(f[1] & 0x80, 0);
	plen = f[1] & 0x7f;
	if (plen == 126) {
		h = 4;
		assert_true(len >= h);
		plen = (uint64_t)f[2] << 8 | f[3];
		assert_true(plen > 125);
	} else if (plen == 127) {
		h = 10;
		assert_true(len >= h);
		plen = 0;
		for (int i = 0; i < 8; i++)
			plen = plen << 8 | f[2 + i];
		assert_true(plen > 65535);
	}
	assert_int_equal(h + plen, len);
	*n = (size_t)plen;
	return f + h;
}

static void fake_send(struct chat_member *m, struct buf *frame)
{
	struct sent *s;
	size_t n;
	json_error_t err;

	assert_true(nsent < MAX_SENT);
	s = &sent[nsent++];
	s->to = m;
	s->frame = buf_ref(frame);
	s->len = frame->len;
	s->copy = malloc(frame->len);
	assert_non_null(s->copy);
	memcpy(s->copy, frame->data, frame->len);

	const uint8_t *p = frame_payload(s->copy, s->len, &n);
	s->payload = malloc(n + 1);
	assert_non_null(s->payload);
	memcpy(s->payload, p, n);
	s->payload[n] = '\0';
	s->json = json_loadb((const char *)p, n, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &err);
	if (!s->json || !json_is_object(s->json))
		fail_msg("frame payload is not a JSON object: %s (%s)", s->payload, err.text);
}

static void forget_sent(void)
{
	for (size_t i = 0; i < nsent; i++) {
		buf_unref(sent[i].frame);
		free(sent[i].copy);
		free(sent[i].payload);
		json_decref(sent[i].json);
	}
	nsent = 0;
}

static int start(const struct chat_config *cfg)
{
	nsent = 0;
	chat_init(cfg);
	return 0;
}

static int setup(void **state)
{
	struct chat_config cfg = { .send = fake_send, .presence_list_max = 100,
				   .presence_events_max = 100 };
	(void)state;
	return start(&cfg);
}

static int setup_events_max_2(void **state)
{
	struct chat_config cfg = { .send = fake_send, .presence_list_max = 100,
				   .presence_events_max = 2 };
	(void)state;
	return start(&cfg);
}

static int setup_list_max_2(void **state)
{
	struct chat_config cfg = { .send = fake_send, .presence_list_max = 2,
				   .presence_events_max = 100 };
	(void)state;
	return start(&cfg);
}

static int teardown(void **state)
{
	(void)state;
	chat_shutdown();
	forget_sent();
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

static const char *type_of(const struct sent *s)
{
	return str(s->json, "type");
}

/* Frames sent to m since the last forget_sent(), in order. */
static size_t sent_to(const struct chat_member *m, const struct sent **out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < nsent; i++) {
		if (sent[i].to != m)
			continue;
		if (n < max)
			out[n] = &sent[i];
		n++;
	}
	return n;
}

/* The one frame sent to m since the last forget_sent(). */
static const struct sent *only_frame_to(const struct chat_member *m)
{
	const struct sent *s[1] = { NULL };
	size_t n = sent_to(m, s, 1);

	if (n != 1)
		fail_msg("member %u got %zu frames, want 1", m->id, n);
	return s[0];
}

static void expect_nothing_to(const struct chat_member *m)
{
	const struct sent *s[1] = { NULL };
	size_t n = sent_to(m, s, 1);

	if (n)
		fail_msg("member %u got %zu frames, want none (first: %s)", m->id, n, s[0]->payload);
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

static void expect_user(json_t *user, const struct chat_member *m)
{
	char id[16], name[32];

	assert_true(json_is_object(user));
	snprintf(name, sizeof(name), "User %u", m->id);
	assert_string_equal(str(user, "id"), id_str(m, id));
	assert_string_equal(str(user, "name"), name);
}

static void join(struct chat_member *m, const char *room)
{
	chat_connect(m, room, strlen(room));
}

static void say(struct chat_member *m, const char *text)
{
	chat_receive(m, text, strlen(text));
}

/* m sent text: exactly one error frame with that code came back, to m alone. */
static void expect_error(struct chat_member *m, struct chat_member *other, const char *text,
			 size_t len, const char *code)
{
	forget_sent();
	chat_receive(m, text, len);
	if (nsent != 1)
		fail_msg("%s: %zu frames sent, want 1 error", text, nsent);
	const struct sent *s = only_frame_to(m);
	assert_string_equal(type_of(s), "error");
	assert_string_equal(str(s->json, "code"), code);
	assert_true(strlen(str(s->json, "message")) > 0);
	expect_nothing_to(other);
}

#define EXPECT_ERROR(m, other, lit, code) expect_error((m), (other), (lit), sizeof(lit) - 1, (code))

/* ---- connecting ---- */

static void test_connect_sends_welcome_then_presence_then_join(void **state)
{
	struct chat_member m = { 0 };
	const struct sent *s[4];
	char id[16], name[32];

	(void)state;
	join(&m, "lobby");
	assert_int_equal(nsent, 3);
	assert_int_equal(sent_to(&m, s, 4), 3);
	snprintf(name, sizeof(name), "User %u", m.id);

	assert_string_equal(type_of(s[0]), "welcome");
	assert_string_equal(str(s[0]->json, "id"), id_str(&m, id));
	assert_string_equal(str(s[0]->json, "name"), name);
	assert_string_equal(str(s[0]->json, "room"), "lobby");

	assert_string_equal(type_of(s[1]), "presence");
	assert_string_equal(str(s[1]->json, "room"), "lobby");
	assert_int_equal(num(s[1]->json, "count"), 1);
	json_t *users = json_object_get(s[1]->json, "users");
	assert_true(json_is_array(users));
	assert_int_equal(json_array_size(users), 1);
	expect_user(json_array_get(users, 0), &m);

	assert_string_equal(type_of(s[2]), "join");
	assert_string_equal(str(s[2]->json, "room"), "lobby");
	expect_user(json_object_get(s[2]->json, "user"), &m);
	assert_int_equal(num(s[2]->json, "count"), 1);
}

static void test_member_ids_are_consecutive_and_unique(void **state)
{
	struct chat_member m[5] = { 0 };
	char id[16];

	(void)state;
	for (int i = 0; i < 5; i++) {
		forget_sent();
		join(&m[i], i % 2 ? "lobby" : "dev");
		assert_int_equal(m[i].id, m[0].id + (uint32_t)i);
		assert_true(m[i].id > 0);
		const struct sent *s[3];
		assert_int_equal(sent_to(&m[i], s, 3), 3);
		assert_string_equal(str(s[0]->json, "id"), id_str(&m[i], id));
	}
}

static void test_presence_lists_every_member_with_the_count(void **state)
{
	struct chat_member m[3] = { 0 };
	const struct sent *s[3];
	bool seen[3] = { false };

	(void)state;
	join(&m[0], "lobby");
	join(&m[1], "lobby");
	forget_sent();
	join(&m[2], "lobby");
	assert_int_equal(sent_to(&m[2], s, 3), 3);
	assert_string_equal(type_of(s[1]), "presence");
	assert_int_equal(num(s[1]->json, "count"), 3);
	json_t *users = json_object_get(s[1]->json, "users");
	assert_int_equal(json_array_size(users), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *u = json_array_get(users, i);
		unsigned long id = strtoul(str(u, "id"), NULL, 10);
		for (int k = 0; k < 3; k++) {
			if (id == m[k].id) {
				assert_false(seen[k]);
				seen[k] = true;
				expect_user(u, &m[k]);
			}
		}
	}
	assert_true(seen[0] && seen[1] && seen[2]);
}

static void test_join_goes_to_every_member_with_the_new_count(void **state)
{
	struct chat_member m[3] = { 0 };

	(void)state;
	join(&m[0], "lobby");
	join(&m[1], "lobby");
	forget_sent();
	join(&m[2], "lobby");
	for (int k = 0; k < 2; k++) {
		const struct sent *s = only_frame_to(&m[k]);
		assert_string_equal(type_of(s), "join");
		assert_string_equal(str(s->json, "room"), "lobby");
		expect_user(json_object_get(s->json, "user"), &m[2]);
		assert_int_equal(num(s->json, "count"), 3);
	}
	const struct sent *s[3];
	assert_int_equal(sent_to(&m[2], s, 3), 3);
	assert_string_equal(type_of(s[2]), "join");
	assert_int_equal(num(s[2]->json, "count"), 3);
	/* One join frame, built once for the three of them. */
	assert_ptr_equal(s[2]->frame, only_frame_to(&m[0])->frame);
	assert_ptr_equal(s[2]->frame, only_frame_to(&m[1])->frame);
}

/* ---- messages ---- */

static void test_message_reaches_every_member_including_the_sender(void **state)
{
	struct chat_member m[3] = { 0 };

	(void)state;
	for (int k = 0; k < 3; k++)
		join(&m[k], "lobby");
	forget_sent();
	say(&m[1], "hi");
	assert_int_equal(nsent, 3);
	for (int k = 0; k < 3; k++) {
		const struct sent *s = only_frame_to(&m[k]);
		assert_string_equal(type_of(s), "message");
		assert_string_equal(str(s->json, "text"), "hi");
	}
}

static void test_message_is_encoded_once_for_every_recipient(void **state)
{
	struct chat_member m[4] = { 0 };

	(void)state;
	for (int k = 0; k < 4; k++)
		join(&m[k], "lobby");
	forget_sent();
	say(&m[0], "once");
	assert_int_equal(nsent, 4);
	for (size_t i = 1; i < nsent; i++)
		assert_ptr_equal(sent[i].frame, sent[0].frame);
	/* Nobody changed it after handing it over. */
	for (size_t i = 0; i < nsent; i++)
		assert_memory_equal(sent[i].frame->data, sent[0].copy, sent[0].len);
}

static void test_message_carries_id_room_sender_name_text_and_time(void **state)
{
	struct chat_member a = { 0 }, b = { 0 };
	char id[16], name[32];

	(void)state;
	join(&a, "lobby");
	join(&b, "lobby");
	forget_sent();
	uint64_t before = wall_ms();
	say(&b, "hello there");
	uint64_t after = wall_ms();

	const struct sent *s = only_frame_to(&a);
	snprintf(name, sizeof(name), "User %u", b.id);
	assert_string_equal(type_of(s), "message");
	assert_int_equal(num(s->json, "id"), 1);
	assert_string_equal(str(s->json, "room"), "lobby");
	assert_string_equal(str(s->json, "from"), id_str(&b, id));
	assert_string_equal(str(s->json, "name"), name);
	assert_string_equal(str(s->json, "text"), "hello there");
	json_int_t ts = num(s->json, "ts");
	assert_in_range((uint64_t)ts, before, after);
}

static void test_message_ids_start_at_1_and_increase_by_1(void **state)
{
	struct chat_member a = { 0 };

	(void)state;
	join(&a, "lobby");
	for (json_int_t want = 1; want <= 5; want++) {
		forget_sent();
		say(&a, "again");
		assert_int_equal(num(only_frame_to(&a)->json, "id"), want);
	}
}

static void test_plain_text_is_the_message_verbatim(void **state)
{
	static const char text[] = "he said \"hi\"\\\n\ttabbed \xe2\x80\xa8 \xf0\x9f\x98\x80 }{";
	struct chat_member a = { 0 };

	(void)state;
	join(&a, "lobby");
	forget_sent();
	say(&a, text);
	json_t *t = json_object_get(only_frame_to(&a)->json, "text");
	assert_int_equal(json_string_length(t), strlen(text));
	assert_memory_equal(json_string_value(t), text, strlen(text));
}

static void test_message_command_sends_its_text(void **state)
{
	struct chat_member a = { 0 };

	(void)state;
	join(&a, "lobby");
	forget_sent();
	say(&a, "{\"type\":\"message\",\"text\":\"hello \\\"you\\\"\"}");
	const struct sent *s = only_frame_to(&a);
	assert_string_equal(type_of(s), "message");
	assert_string_equal(str(s->json, "text"), "hello \"you\"");
}

static void test_message_command_naming_its_own_room_is_accepted(void **state)
{
	struct chat_member a = { 0 };

	(void)state;
	join(&a, "lobby");
	forget_sent();
	say(&a, "{\"type\":\"message\",\"text\":\"x\",\"room\":\"lobby\"}");
	const struct sent *s = only_frame_to(&a);
	assert_string_equal(type_of(s), "message");
	assert_string_equal(str(s->json, "text"), "x");
}

static void test_whitespace_before_a_brace_still_means_json(void **state)
{
	struct chat_member a = { 0 }, b = { 0 };

	(void)state;
	join(&a, "lobby");
	join(&b, "lobby");
	forget_sent();
	say(&a, " \t\r\n{\"type\":\"message\",\"text\":\"x\"}");
	assert_string_equal(str(only_frame_to(&a)->json, "text"), "x");
	EXPECT_ERROR(&a, &b, "  {bad", "bad_json");
}

static void test_json_that_is_not_an_object_is_a_plain_message(void **state)
{
	static const char *const texts[] = { "[\"a\",1]", "\"quoted\"", " [1]", "42", "null" };
	struct chat_member a = { 0 };

	(void)state;
	join(&a, "lobby");
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		forget_sent();
		say(&a, texts[i]);
		const struct sent *s = only_frame_to(&a);
		assert_string_equal(type_of(s), "message");
		assert_string_equal(str(s->json, "text"), texts[i]);
	}
}

static void test_long_message_is_delivered_whole(void **state)
{
	struct chat_member a = { 0 };
	size_t n = 70000;
	char *text = malloc(n + 1);

	(void)state;
	assert_non_null(text);
	for (size_t i = 0; i < n; i++)
		text[i] = (char)('a' + i % 26);
	text[n] = '\0';
	join(&a, "lobby");
	forget_sent();
	say(&a, text);
	json_t *t = json_object_get(only_frame_to(&a)->json, "text");
	assert_int_equal(json_string_length(t), n);
	assert_memory_equal(json_string_value(t), text, n);
	free(text);
}

/* \u0000 in the command's text is a real NUL in the message, and goes out
 * escaped again, not cut short. */
static void test_nul_in_json_text_survives_escaped(void **state)
{
	struct chat_member a = { 0 };

	(void)state;
	join(&a, "lobby");
	forget_sent();
	say(&a, "{\"type\":\"message\",\"text\":\"a\\u0000b\"}");
	const struct sent *s = only_frame_to(&a);
	assert_non_null(strstr(s->payload, "\"text\":\"a\\u0000b\""));
	json_t *t = json_object_get(s->json, "text");
	assert_int_equal(json_string_length(t), 3);
	assert_memory_equal(json_string_value(t), "a\0b", 3);
}

/* ---- errors ---- */

static void test_unparsable_object_is_bad_json(void **state)
{
	struct chat_member a = { 0 }, b = { 0 };

	(void)state;
	join(&a, "lobby");
	join(&b, "lobby");
	EXPECT_ERROR(&a, &b, "{bad", "bad_json");
	EXPECT_ERROR(&a, &b, "{", "bad_json");
	EXPECT_ERROR(&a, &b, "{\"type\":\"message\",\"text\":\"x\"} trailing", "bad_json");
}

static void test_type_that_is_not_a_string_is_bad_message(void **state)
{
	struct chat_member a = { 0 }, b = { 0 };

	(void)state;
	join(&a, "lobby");
	join(&b, "lobby");
	EXPECT_ERROR(&a, &b, "{\"type\":5}", "bad_message");
	EXPECT_ERROR(&a, &b, "{\"text\":\"no type\"}", "bad_message");
	EXPECT_ERROR(&a, &b, "{}", "bad_message");
}

static void test_unknown_type_is_unknown_type(void **state)
{
	struct chat_member a = { 0 }, b = { 0 };

	(void)state;
	join(&a, "lobby");
	join(&b, "lobby");
	EXPECT_ERROR(&a, &b, "{\"type\":\"nope\"}", "unknown_type");
	EXPECT_ERROR(&a, &b, "{\"type\":\"Message\",\"text\":\"x\"}", "unknown_type");
}

/* The type is compared whole: a NUL inside it does not end it early. */
static void test_type_with_an_embedded_nul_is_unknown_type(void **state)
{
	struct chat_member a = { 0 }, b = { 0 };

	(void)state;
	join(&a, "lobby");
	join(&b, "lobby");
	EXPECT_ERROR(&a, &b, "{\"type\":\"message\\u0000x\",\"text\":\"x\"}", "unknown_type");
}

static void test_text_that_is_not_a_string_is_bad_message(void **state)
{
	struct chat_member a = { 0 }, b = { 0 };

	(void)state;
	join(&a, "lobby");
	join(&b, "lobby");
	EXPECT_ERROR(&a, &b, "{\"type\":\"message\",\"text\":5}", "bad_message");
	EXPECT_ERROR(&a, &b, "{\"type\":\"message\",\"text\":null}", "bad_message");
	EXPECT_ERROR(&a, &b, "{\"type\":\"message\"}", "bad_message");
}

static void test_empty_text_is_empty(void **state)
{
	struct chat_member a = { 0 }, b = { 0 };

	(void)state;
	join(&a, "lobby");
	join(&b, "lobby");
	EXPECT_ERROR(&a, &b, "", "empty");
	EXPECT_ERROR(&a, &b, "{\"type\":\"message\",\"text\":\"\"}", "empty");
}

static void test_message_for_another_room_is_not_in_room(void **state)
{
	struct chat_member a = { 0 }, b = { 0 }, c = { 0 };

	(void)state;
	join(&a, "lobby");
	join(&b, "lobby");
	join(&c, "other");
	EXPECT_ERROR(&a, &b, "{\"type\":\"message\",\"text\":\"x\",\"room\":\"other\"}", "not_in_room");
	expect_nothing_to(&c);
	EXPECT_ERROR(&a, &b, "{\"type\":\"message\",\"text\":\"x\",\"room\":\"lobb\"}", "not_in_room");
	EXPECT_ERROR(&a, &b, "{\"type\":\"message\",\"text\":\"x\",\"room\":\"lobby2\"}", "not_in_room");
}

/* ---- rooms ---- */

static void test_rooms_are_isolated(void **state)
{
	struct chat_member l1 = { 0 }, l2 = { 0 }, d1 = { 0 }, d2 = { 0 };

	(void)state;
	join(&l1, "lobby");
	join(&l2, "lobby");
	forget_sent();
	join(&d1, "dev");
	join(&d2, "dev");
	/* Joins in dev are not news in the lobby, nor counted there. */
	expect_nothing_to(&l1);
	expect_nothing_to(&l2);
	const struct sent *s[3];
	assert_int_equal(sent_to(&d2, s, 3), 3);
	assert_int_equal(num(s[1]->json, "count"), 2);
	assert_int_equal(num(s[2]->json, "count"), 2);

	forget_sent();
	say(&d1, "in dev");
	assert_int_equal(nsent, 2);
	expect_nothing_to(&l1);
	expect_nothing_to(&l2);
	assert_string_equal(str(only_frame_to(&d2)->json, "room"), "dev");
	assert_string_equal(str(only_frame_to(&d2)->json, "text"), "in dev");
}

static void test_message_ids_count_per_room(void **state)
{
	struct chat_member l = { 0 }, d = { 0 };

	(void)state;
	join(&l, "lobby");
	join(&d, "dev");
	forget_sent();
	say(&d, "d1");
	say(&d, "d2");
	say(&l, "l1");
	const struct sent *s[3];
	assert_int_equal(sent_to(&d, s, 3), 2);
	assert_int_equal(num(s[0]->json, "id"), 1);
	assert_int_equal(num(s[1]->json, "id"), 2);
	assert_int_equal(num(only_frame_to(&l)->json, "id"), 1);
}

static void test_disconnect_sends_leave_with_the_new_count_to_the_rest(void **state)
{
	struct chat_member m[3] = { 0 };

	(void)state;
	for (int k = 0; k < 3; k++)
		join(&m[k], "lobby");
	forget_sent();
	chat_disconnect(&m[1]);
	expect_nothing_to(&m[1]);
	for (int k = 0; k < 3; k += 2) {
		const struct sent *s = only_frame_to(&m[k]);
		assert_string_equal(type_of(s), "leave");
		assert_string_equal(str(s->json, "room"), "lobby");
		expect_user(json_object_get(s->json, "user"), &m[1]);
		assert_int_equal(num(s->json, "count"), 2);
	}
}

static void test_disconnected_member_gets_nothing_more(void **state)
{
	struct chat_member m[3] = { 0 }, late = { 0 };

	(void)state;
	for (int k = 0; k < 3; k++)
		join(&m[k], "lobby");
	chat_disconnect(&m[1]);
	forget_sent();
	say(&m[0], "after");
	join(&late, "lobby");
	chat_disconnect(&m[2]);
	expect_nothing_to(&m[1]);
	/* Its presence is gone from the snapshot too. */
	const struct sent *s[3];
	assert_int_equal(sent_to(&late, s, 3), 4);
	assert_int_equal(num(s[1]->json, "count"), 3);
}

static void test_no_join_event_above_presence_events_max(void **state)
{
	struct chat_member m[3] = { 0 };
	const struct sent *s[4];

	(void)state;
	join(&m[0], "lobby");
	forget_sent();
	join(&m[1], "lobby");
	assert_string_equal(type_of(only_frame_to(&m[0])), "join");
	assert_int_equal(num(only_frame_to(&m[0])->json, "count"), 2);

	forget_sent();
	join(&m[2], "lobby");
	expect_nothing_to(&m[0]);
	expect_nothing_to(&m[1]);
	assert_int_equal(sent_to(&m[2], s, 4), 2);
	assert_string_equal(type_of(s[0]), "welcome");
	assert_string_equal(type_of(s[1]), "presence");
	assert_int_equal(num(s[1]->json, "count"), 3);
}

static void test_presence_list_is_cut_at_presence_list_max_but_count_is_exact(void **state)
{
	struct chat_member m[4] = { 0 };
	const struct sent *s[3];

	(void)state;
	for (int k = 0; k < 3; k++)
		join(&m[k], "lobby");
	forget_sent();
	join(&m[3], "lobby");
	assert_int_equal(sent_to(&m[3], s, 3), 3);
	assert_string_equal(type_of(s[1]), "presence");
	assert_int_equal(num(s[1]->json, "count"), 4);
	json_t *users = json_object_get(s[1]->json, "users");
	assert_true(json_is_array(users));
	assert_int_equal(json_array_size(users), 2);
	for (size_t i = 0; i < 2; i++) {
		unsigned long id = strtoul(str(json_array_get(users, i), "id"), NULL, 10);
		assert_in_range(id, m[0].id, m[3].id);
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

/* ---- stats ---- */

static void test_stats_count_messages_errors_and_rooms(void **state)
{
	struct chat_member a = { 0 }, b = { 0 }, c = { 0 };

	(void)state;
	uint64_t messages = chat_stats()->messages;
	uint64_t errors = chat_stats()->errors;
	assert_int_equal(chat_stats()->rooms, 0);

	join(&a, "lobby");
	join(&b, "lobby");
	join(&c, "dev");
	assert_int_equal(chat_stats()->rooms, 2);

	say(&a, "one");
	say(&c, "{\"type\":\"message\",\"text\":\"two\"}");
	say(&b, "{bad");
	say(&b, "");
	say(&c, "{\"type\":\"nope\"}");
	assert_int_equal(chat_stats()->messages, messages + 2);
	assert_int_equal(chat_stats()->errors, errors + 3);

	chat_disconnect(&c);
	assert_int_equal(chat_stats()->rooms, 1);
	chat_disconnect(&a);
	assert_int_equal(chat_stats()->rooms, 1);
	chat_disconnect(&b);
	assert_int_equal(chat_stats()->rooms, 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_connect_sends_welcome_then_presence_then_join),
		T(test_member_ids_are_consecutive_and_unique),
		T(test_presence_lists_every_member_with_the_count),
		T(test_join_goes_to_every_member_with_the_new_count),
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
		T(test_nul_in_json_text_survives_escaped),
		T(test_unparsable_object_is_bad_json),
		T(test_type_that_is_not_a_string_is_bad_message),
		T(test_unknown_type_is_unknown_type),
		T(test_type_with_an_embedded_nul_is_unknown_type),
		T(test_text_that_is_not_a_string_is_bad_message),
		T(test_empty_text_is_empty),
		T(test_message_for_another_room_is_not_in_room),
		T(test_rooms_are_isolated),
		T(test_message_ids_count_per_room),
		T(test_disconnect_sends_leave_with_the_new_count_to_the_rest),
		T(test_disconnected_member_gets_nothing_more),
		cmocka_unit_test_setup_teardown(test_no_join_event_above_presence_events_max,
						setup_events_max_2, teardown),
		cmocka_unit_test_setup_teardown(
			test_presence_list_is_cut_at_presence_list_max_but_count_is_exact,
			setup_list_max_2, teardown),
		T(test_room_name_of_1_to_64_allowed_characters_is_valid),
		T(test_room_name_empty_or_over_64_is_invalid),
		T(test_room_name_with_any_other_byte_is_invalid),
		T(test_room_name_is_checked_over_its_length_only),
		T(test_stats_count_messages_errors_and_rooms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
