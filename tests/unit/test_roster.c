/* test_roster.c: who is in a room, by member id (src/chat/roster.h): the
 * sequencer's list of a room's members on every edge. Many joins, leaves
 * in a scrambled order and renames; the index by id must keep finding
 * every entry as entries move (swap-remove) and probe runs shift. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "roster.h"

static struct roster roster;

static int teardown(void **state)
{
	(void)state;
	roster_free(&roster);
	return 0;
}

/* By a walk of the entries, not the index under test. */
static bool has(uint32_t id, const char *name)
{
	for (uint32_t i = 0; i < roster.count; i++)
		if (roster.entries[i].id == id)
			return name ? roster_entry_name(&roster.entries[i]) &&
					      strcmp(roster_entry_name(&roster.entries[i]), name) == 0
				    : true;
	return false;
}

static void test_joins_leaves_and_renames_at_scale(void **state)
{
	(void)state;
	enum { N = 5000 };
	for (uint32_t id = 1; id <= N; id++)
		roster_add(&roster, id * 7919, NULL, NULL); /* spread ids, colliding in the index */
	assert_int_equal(roster.count, N);
	/* every third leaves, in a scrambled order; a leave of someone absent
	 * changes nothing */
	for (uint32_t k = 0; k < N; k++) {
		uint32_t id = 1 + (k * 2003u) % N; /* 2003 is prime to N: a permutation */
		if (id % 3 == 0)
			roster_remove(&roster, id * 7919);
	}
	roster_remove(&roster, 424242);
	assert_int_equal(roster.count, N - N / 3);
	for (uint32_t id = 1; id <= N; id += 97)
		roster_rename(&roster, id * 7919, "Renamed");
	for (uint32_t id = 1; id <= N; id++) {
		bool stays = id % 3 != 0;
		assert_int_equal(has(id * 7919, NULL), stays);
		if (stays && (id - 1) % 97 == 0)
			assert_true(has(id * 7919, "Renamed"));
	}
	/* everyone leaves: found through the index, one by one */
	for (uint32_t id = 1; id <= N; id++)
		roster_remove(&roster, id * 7919);
	assert_int_equal(roster.count, 0);
}

static void test_names_and_user_ids_are_copied(void **state)
{
	(void)state;
	char name[] = "Alice", user[] = "u-42";
	roster_add(&roster, 7, name, user);
	name[0] = 'X';
	user[0] = 'X';
	assert_string_equal(roster_entry_name(&roster.entries[0]), "Alice");
	assert_string_equal(roster_entry_user_id(&roster.entries[0]), "u-42");
	roster_rename(&roster, 7, NULL); /* back to "User 7", still signed in */
	assert_null(roster_entry_name(&roster.entries[0]));
	assert_string_equal(roster_entry_user_id(&roster.entries[0]), "u-42");
	roster_rename(&roster, 7, "Bob");
	assert_string_equal(roster_entry_name(&roster.entries[0]), "Bob");
	assert_string_equal(roster_entry_user_id(&roster.entries[0]), "u-42");
	roster_add(&roster, 8, NULL, NULL);
	roster_remove(&roster, 7);
	assert_int_equal(roster.count, 1);
	assert_int_equal(roster.entries[0].id, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_joins_leaves_and_renames_at_scale, teardown),
		cmocka_unit_test_teardown(test_names_and_user_ids_are_copied, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
