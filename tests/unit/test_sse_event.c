/* test_sse_event.c: the event encoding, the message prefix reader and the
 * session keys of sse_event.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "sse_event.h"

static bool prefix(const char *json, uint64_t *id, char *room)
{
	const char *r;
	size_t rlen;
	if (!sse_message_prefix(json, strlen(json), id, &r, &rlen))
		return false;
	memcpy(room, r, rlen);
	room[rlen] = '\0';
	return true;
}

static void a_message_gives_its_id_and_room(void **state)
{
	(void)state;
	uint64_t id;
	char room[80];
	assert_true(prefix("{\"type\":\"message\",\"id\":1234,\"room\":\"lobby\",\"from\":\"7\"}", &id, room));
	assert_int_equal(id, 1234);
	assert_string_equal(room, "lobby");
	assert_true(prefix("{\"type\":\"message\",\"id\":18446744073709551615,\"room\":\"a.b-c_D\"", &id, room));
	assert_int_equal(id, UINT64_MAX);
	assert_string_equal(room, "a.b-c_D");
}

static void other_events_have_no_prefix(void **state)
{
	(void)state;
	uint64_t id;
	char room[80];
	assert_false(prefix("{\"type\":\"history\",\"room\":\"lobby\",\"messages\":[]}", &id, room));
	assert_false(prefix("{\"type\":\"error\",\"code\":\"empty\"}", &id, room));
	assert_false(prefix("{\"type\":\"messages\",\"id\":1,\"room\":\"lobby\"", &id, room));
}

static void a_malformed_prefix_is_refused(void **state)
{
	(void)state;
	uint64_t id;
	char room[80];
	assert_false(prefix("{\"type\":\"message\",\"id\":", &id, room));                         /* cut */
	assert_false(prefix("{\"type\":\"message\",\"id\":,\"room\":\"a\"", &id, room));           /* no digits */
	assert_false(prefix("{\"type\":\"message\",\"id\":01,\"room\":\"a\"", &id, room));         /* leading zero */
	assert_false(prefix("{\"type\":\"message\",\"id\":18446744073709551616,\"room\":\"a\"", &id, room));
	assert_false(prefix("{\"type\":\"message\",\"id\":1,\"room\":\"\"", &id, room));           /* empty */
	assert_false(prefix("{\"type\":\"message\",\"id\":1,\"room\":\"lobby", &id, room));        /* unclosed */
	assert_false(prefix("{\"type\":\"message\",\"id\":1,\"from\":\"7\",\"room\":\"a\"", &id, room));
	assert_false(prefix("", &id, room));
}

static void every_cut_of_a_message_is_refused(void **state)
{
	(void)state;
	const char *json = "{\"type\":\"message\",\"id\":42,\"room\":\"dev\"";
	uint64_t id;
	const char *r;
	size_t rlen;
	for (size_t n = 0; n < strlen(json); n++)
		assert_false(sse_message_prefix(json, n, &id, &r, &rlen));
	assert_true(sse_message_prefix(json, strlen(json), &id, &r, &rlen));
}

static void an_event_is_data_and_a_blank_line(void **state)
{
	(void)state;
	struct buf *b = sse_event_new("{\"type\":\"x\"}", 12, NULL);
	assert_int_equal(buf_out_len(b), strlen("data: {\"type\":\"x\"}\n\n"));
	assert_memory_equal(buf_out(b), "data: {\"type\":\"x\"}\n\n", buf_out_len(b));
	buf_unref(b);
	uint64_t id = 77;
	b = sse_event_new("{}", 2, &id);
	assert_int_equal(buf_out_len(b), strlen("id: 77\ndata: {}\n\n"));
	assert_memory_equal(buf_out(b), "id: 77\ndata: {}\n\n", buf_out_len(b));
	buf_unref(b);
}

static void room_hashes_tell_rooms_apart(void **state)
{
	(void)state;
	assert_int_equal(sse_room_hash("lobby", 5), sse_room_hash("lobby", 5));
	assert_int_not_equal(sse_room_hash("lobby", 5), sse_room_hash("lobbY", 5));
	assert_int_not_equal(sse_room_hash("a", 1), sse_room_hash("b", 1));
}

static void a_key_reads_back_as_written(void **state)
{
	(void)state;
	struct sse_key k = { .edge = 3, .slot = 4294967295u, .gen = 0 }, back;
	for (int i = 0; i < SSE_KEY_SECRET; i++)
		k.secret[i] = (uint8_t)(i * 17 + 5);
	char text[SSE_KEY_TEXT_MAX];
	size_t n = sse_key_format(&k, text);
	assert_int_equal(n, strlen(text));
	assert_true(n < SSE_KEY_TEXT_MAX);
	assert_true(sse_key_parse(text, n, &back));
	assert_int_equal(back.edge, 3);
	assert_int_equal(back.slot, 4294967295u);
	assert_int_equal(back.gen, 0);
	assert_memory_equal(back.secret, k.secret, SSE_KEY_SECRET);
	for (size_t cut = 0; cut < n; cut++)
		assert_false(sse_key_parse(text, cut, &back));
}

static void malformed_keys_are_refused(void **state)
{
	(void)state;
	struct sse_key k;
	const char *hex = "00112233445566778899aabbccddeeff";
	const char *bad[] = {
		"0-1-2",
		"0-1-2-",
		"0-1-2-00112233445566778899aabbccddeef",   /* 31 hex digits */
		"0-1-2-00112233445566778899aabbccddeeff0", /* 33 */
		"0-1-2-00112233445566778899AABBCCDDEEFF", /* upper case */
		"0-1-2-0011223344556677889 aabbccddeeff",
		"-1-1-2-00112233445566778899aabbccddeeff",
		"+1-1-2-00112233445566778899aabbccddeeff",
		"01-1-2-00112233445566778899aabbccddeeff", /* leading zero */
		"4294967296-1-2-00112233445566778899aabbccddeeff",
		"12345678901-1-2-00112233445566778899aabbccddeeff",
		"0-1-2-3-00112233445566778899aabbccddeeff",
		"0_1-2-00112233445566778899aabbccddeeff",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(sse_key_parse(bad[i], strlen(bad[i]), &k));
	char good[80];
	snprintf(good, sizeof(good), "0-1-4294967295-%s", hex);
	assert_true(sse_key_parse(good, strlen(good), &k));
	assert_int_equal(k.gen, 4294967295u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_message_gives_its_id_and_room),
		cmocka_unit_test(other_events_have_no_prefix),
		cmocka_unit_test(a_malformed_prefix_is_refused),
		cmocka_unit_test(every_cut_of_a_message_is_refused),
		cmocka_unit_test(an_event_is_data_and_a_blank_line),
		cmocka_unit_test(room_hashes_tell_rooms_apart),
		cmocka_unit_test(a_key_reads_back_as_written),
		cmocka_unit_test(malformed_keys_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
