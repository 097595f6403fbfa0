/* test_guest_token.c: a guest's resumable identity (src/proto/guest_token.h).
 * A token of this key gives back its id and name; any change to it, a
 * token of another key (another process), or one whose subject is not a
 * guest id gives nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "guest_token.h"
#include "jwt.h"

static struct guest_key key, other;

static int setup(void **state)
{
	(void)state;
	assert_int_equal(guest_key_init(&key), 0);
	assert_int_equal(guest_key_init(&other), 0);
	assert_memory_not_equal(key.key, other.key, sizeof(key.key));
	return 0;
}

static bool check(const char *t, uint32_t *id, char *name)
{
	return guest_token_check(&key, t, strlen(t), id, name);
}

static void test_round_trip_with_and_without_a_name(void **state)
{
	(void)state;
	uint32_t id = 0;
	char name[JWT_NAME_MAX + 1];
	char *t = guest_token_issue(&key, 7, NULL);
	assert_true(check(t, &id, name));
	assert_int_equal(id, 7);
	assert_string_equal(name, "");
	free(t);
	t = guest_token_issue(&key, 4000000000u, "Zoë \"the\" \\ one");
	assert_true(check(t, &id, name));
	assert_int_equal(id, 4000000000u);
	assert_string_equal(name, "Zoë \"the\" \\ one");
	free(t);
}

static void test_a_changed_token_is_refused(void **state)
{
	(void)state;
	uint32_t id = 0;
	char name[JWT_NAME_MAX + 1];
	char *t = guest_token_issue(&key, 12, "Alice");
	size_t len = strlen(t);
	/* every single character changed, one at a time */
	for (size_t i = 0; i < len; i++) {
		char *copy = strdup(t);
		copy[i] = copy[i] == 'A' ? 'B' : 'A';
		if (strcmp(copy, t) != 0)
			assert_false(guest_token_check(&key, copy, len, &id, name));
		free(copy);
	}
	assert_false(guest_token_check(&key, t, len - 1, &id, name)); /* cut short */
	free(t);
}

static void test_another_key_or_subject_is_refused(void **state)
{
	(void)state;
	uint32_t id = 0;
	char name[JWT_NAME_MAX + 1];
	char *t = guest_token_issue(&other, 12, "Alice");
	assert_false(check(t, &id, name)); /* another process's token */
	free(t);
	const char *subjects[] = { "{\"sub\":\"42\"}", "{\"sub\":\"guest:\"}", "{\"sub\":\"guest:0\"}",
				   "{\"sub\":\"guest:4294967296\"}", "{\"sub\":\"guest:12x\"}",
				   "{\"name\":\"guest:12\"}" };
	for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++) {
		t = jwt_sign_hs256(subjects[i], key.key, sizeof(key.key));
		assert_false(check(t, &id, name));
		free(t);
	}
	t = jwt_sign_hs256("{\"sub\":\"guest:99\"}", key.key, sizeof(key.key));
	assert_true(check(t, &id, name)); /* the same claims, well formed: accepted */
	assert_int_equal(id, 99);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_with_and_without_a_name),
		cmocka_unit_test(test_a_changed_token_is_refused),
		cmocka_unit_test(test_another_key_or_subject_is_refused),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
