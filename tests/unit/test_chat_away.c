/* test_chat_away.c: places kept for guests whose connection went
 * (src/chat/chat_away.h): a room is claimed once, by the same id only;
 * records come out when their window ends, in order. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "chat_away.h"

static void test_claims_by_id_and_room_once(void **state)
{
	(void)state;
	struct chat_away_list l = { 0 };
	struct chat_away *a = away_add(&l, 7, "Alice", 1000);
	away_add_room(a, "lobby", 5);
	away_add_room(a, "dev", 3);
	assert_false(away_claim(&l, 8, "lobby", 5)); /* someone else */
	assert_false(away_claim(&l, 7, "lobb", 4));
	assert_true(away_claim(&l, 7, "lobby", 5));
	assert_false(away_claim(&l, 7, "lobby", 5)); /* once */
	assert_int_equal(a->nrooms, 1);
	assert_string_equal(a->rooms[0], "dev");
	away_list_free(&l);
	assert_null(l.head);
}

static void test_expiry_in_order(void **state)
{
	(void)state;
	struct chat_away_list l = { 0 };
	away_add(&l, 1, NULL, 100);
	away_add(&l, 2, "B", 200);
	assert_null(away_take_expired(&l, 99));
	struct chat_away *a = away_take_expired(&l, 150);
	assert_non_null(a);
	assert_int_equal(a->id, 1);
	assert_null(a->name);
	away_free(a);
	assert_null(away_take_expired(&l, 150));
	a = away_take_expired(&l, 200);
	assert_int_equal(a->id, 2);
	assert_string_equal(a->name, "B");
	away_free(a);
	assert_null(l.head);
	assert_null(l.tail);
	away_add(&l, 3, NULL, 300); /* the list is usable again */
	a = away_take_expired(&l, 300);
	assert_int_equal(a->id, 3);
	away_free(a);
	assert_null(l.head);
}

static void test_rooms_beyond_the_limit_are_dropped(void **state)
{
	(void)state;
	struct chat_away_list l = { 0 };
	struct chat_away *a = away_add(&l, 1, NULL, 0);
	for (int i = 0; i < CHAT_ROOMS_PER_MEMBER + 3; i++)
		away_add_room(a, "r", 1);
	assert_int_equal(a->nrooms, CHAT_ROOMS_PER_MEMBER);
	away_list_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_claims_by_id_and_room_once),
		cmocka_unit_test(test_expiry_in_order),
		cmocka_unit_test(test_rooms_beyond_the_limit_are_dropped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
