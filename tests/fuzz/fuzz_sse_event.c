/* fuzz_sse_event.c: libFuzzer harness for what sse_event.h reads from
 * outside: session keys (a POST's ?session=) and message prefixes.
 *
 * Besides "no crash, no sanitizer report" it checks: a key that parses
 * formats back to exactly the same text (one text per key, so a key
 * cannot be spelled two ways); a message prefix, when found, names a room
 * inside the input right after its id, and its event encoding carries the
 * JSON whole on one data: line. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "fuzz_check.h"
#include "sse_event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct sse_key k;
	if (sse_key_parse(text, size, &k)) {
		char back[SSE_KEY_TEXT_MAX];
		size_t n = sse_key_format(&k, back);
		CHECK(n == size && memcmp(back, text, n) == 0);
	}
	uint64_t id;
	const char *room;
	size_t room_len;
	if (sse_message_prefix(text, size, &id, &room, &room_len)) {
		CHECK(room > text && room + room_len < text + size && room[room_len] == '"');
		CHECK(room_len > 0 && !memchr(room, '"', room_len));
		char digits[24];
		int n = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)id);
		CHECK(memcmp(text + 23, digits, (size_t)n) == 0); /* after {"type":"message","id": */
		struct buf *b = sse_event_new(text, size, &id);
		CHECK(buf_out_len(b) > size + 8);
		CHECK(memcmp(buf_out(b) + buf_out_len(b) - 2 - size, text, size) == 0);
		buf_unref(b);
	}
	return 0;
}
