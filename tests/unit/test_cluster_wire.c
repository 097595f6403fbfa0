/* test_cluster_wire.c: what a cluster node reads from Redis: its rooms'
 * publications and stream entries (src/cluster/cluster_wire.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cluster_wire.h"

#define PUB(s) cluster_pub_parse(s, sizeof(s) - 1, &pub)

static void message_with_newlines_and_nul(void **state)
{
	(void)state;
	static const char p[] = "M7 42 1001 1700000000123 1 5\n3Alicehi\nthere\0!";
	struct cluster_pub pub;
	assert_int_equal(cluster_pub_parse(p, sizeof(p) - 1, &pub), 0);
	assert_int_equal(pub.kind, PUB_MESSAGE);
	assert_int_equal(pub.node, 7);
	assert_int_equal(pub.nseq, 42);
	assert_int_equal(pub.rec.id, 1001);
	assert_int_equal(pub.rec.ts, 1700000000123ull);
	assert_int_equal(pub.rec.from_len, 1);
	assert_memory_equal(pub.rec.from, "3", 1);
	assert_int_equal(pub.rec.name_len, 5);
	assert_memory_equal(pub.rec.name, "Alice", 5);
	assert_int_equal(pub.rec.text_len, 10);
	assert_memory_equal(pub.rec.text, "hi\nthere\0!", 10);
}

static void join_and_nick_events(void **state)
{
	(void)state;
	struct cluster_pub pub;
	assert_int_equal(PUB("E3 J 17 4 0\n{\"type\":\"join\"}"), 0);
	assert_int_equal(pub.kind, PUB_JOIN);
	assert_int_equal(pub.node, 3);
	assert_int_equal(pub.member, 17);
	assert_int_equal(pub.count, 4);
	assert_int_equal(pub.json_len, strlen("{\"type\":\"join\"}"));
	assert_int_equal(PUB("E3 L 17 3 0\n{}"), 0);
	assert_int_equal(pub.kind, PUB_LEAVE);
	assert_int_equal(pub.count, 3);
	assert_int_equal(PUB("E3 N 17 0 9\nlobby dev\n{\"type\":\"nick\"}"), 0);
	assert_int_equal(pub.kind, PUB_NICK);
	assert_int_equal(pub.nseq, 9);
	assert_int_equal(pub.rooms_len, 9);
	assert_memory_equal(pub.rooms, "lobby dev", 9);
}

static void malformed_publications(void **state)
{
	(void)state;
	struct cluster_pub pub;
	static const char *const bad[] = {
		"", "M", "X1 2", "M7 42 1001 1 1 5\n3Al",       /* name longer than what is left */
		"M7 42 0 1 0 0\n",                               /* id 0 */
		"M7 42 1001 1 99999999999999999999 0\nx",         /* overflow */
		"Mx 1 2 3 0 0\n", "M7 42 1001 1 0 0 ",            /* no newline */
		"E3 Q 1 1 0\n{}", "E3 J 1 1 0\n",                /* unknown kind; no JSON */
		"E3 N 1 0 1\n{}", "E3 J 99999999999 1 0\n{}",   /* nick without rooms; member > 32 bits */
		"E3J 1 1 0\n{}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(cluster_pub_parse(bad[i], strlen(bad[i]), &pub), -1);
}

static redisReply *str(const char *s)
{
	redisReply *r = test_calloc(1, sizeof(*r));
	r->type = REDIS_REPLY_STRING;
	r->str = (char *)s;
	r->len = strlen(s);
	return r;
}

static void stream_entries(void **state)
{
	(void)state;
	redisReply *fields[12] = { str("node"), str("2"), str("nseq"), str("5"), str("from"),
				   str("u1"), str("name"), str("Bob"), str("text"), str("hello"),
				   str("ts"), str("1700000000000") };
	redisReply list = { .type = REDIS_REPLY_ARRAY, .elements = 12, .element = fields };
	redisReply *parts[2] = { str("0-77"), &list };
	redisReply entry = { .type = REDIS_REPLY_ARRAY, .elements = 2, .element = parts };
	struct cluster_pub pub;
	assert_int_equal(cluster_entry_parse(&entry, &pub), 0);
	assert_int_equal(pub.rec.id, 77);
	assert_int_equal(pub.node, 2);
	assert_int_equal(pub.nseq, 5);
	assert_memory_equal(pub.rec.name, "Bob", 3);
	assert_memory_equal(pub.rec.text, "hello", 5);
	assert_int_equal(pub.rec.ts, 1700000000000ull);
	/* an id that is not 0-N, or no text: not a message */
	parts[0]->str = "1700-0";
	parts[0]->len = 6;
	assert_int_equal(cluster_entry_parse(&entry, &pub), -1);
	parts[0]->str = "0-77";
	parts[0]->len = 4;
	list.elements = 8;
	assert_int_equal(cluster_entry_parse(&entry, &pub), -1);
	for (int i = 0; i < 12; i++)
		test_free(fields[i]);
	test_free(parts[0]);
}

static void stream_ids(void **state)
{
	(void)state;
	assert_int_equal(cluster_stream_id("0-1", 3), 1);
	assert_int_equal(cluster_stream_id("0-9007199254740993", 18), 9007199254740993ull);
	assert_int_equal(cluster_stream_id("0-99999999999999999999", 22), 0); /* past 64 bits */
	assert_int_equal(cluster_stream_id("0-", 2), 0);
	assert_int_equal(cluster_stream_id("1-1", 3), 0);
	assert_int_equal(cluster_stream_id("0-1x", 4), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(message_with_newlines_and_nul),
		cmocka_unit_test(join_and_nick_events),
		cmocka_unit_test(malformed_publications),
		cmocka_unit_test(stream_entries),
		cmocka_unit_test(stream_ids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
