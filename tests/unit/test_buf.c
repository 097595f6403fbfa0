/* test_buf.c: reference counts and variants (one encoding per transport,
 * freed with the payload's buf). Leaks show under the ASan build. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"

static void test_payload_has_headroom(void **state)
{
	(void)state;
	struct buf *b = buf_new_payload("hello", 5);
	size_t len;
	const char *p = buf_payload(b, &len);
	assert_int_equal(len, 5);
	assert_memory_equal(p, "hello", 5);
	assert_int_equal(b->head, BUF_HEADROOM);
	assert_null(buf_variant(b, BUF_VARIANT_DEFLATE));
	assert_null(buf_variant(b, BUF_VARIANT_SSE));
	buf_unref(b);
}

static void test_variant_lives_as_long_as_its_payload(void **state)
{
	(void)state;
	struct buf *b = buf_new_payload("hello", 5);
	struct buf *sse = buf_set_variant(b, BUF_VARIANT_SSE, buf_from("data: hello\n\n", 13));
	assert_ptr_equal(buf_variant(b, BUF_VARIANT_SSE), sse);
	assert_null(buf_variant(b, BUF_VARIANT_DEFLATE));
	/* a recipient's queue holds the variant beyond the payload's life */
	buf_ref(sse);
	buf_ref(b);
	buf_unref(b);
	assert_int_equal(b->refs, 1);
	buf_unref(b); /* frees b and drops its reference to sse */
	assert_int_equal(sse->refs, 1);
	assert_memory_equal(buf_out(sse), "data: hello\n\n", 13);
	buf_unref(sse);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_payload_has_headroom),
		cmocka_unit_test(test_variant_lives_as_long_as_its_payload),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
