/* fuzz_http_cache.c: libFuzzer harness for the request headers a browser
 * uses to skip downloads (src/proto/http_cache.c) and for guest tokens
 * (src/proto/guest_token.c), both read from what any client sends.
 *
 * Besides "no crash, no sanitizer report" it checks what the server relies
 * on: "*" always matches, a tag listed alone matches itself (weak or not),
 * "gzip;q=0" never allows gzip, and a guest token: a random one never
 * checks, one we issue for any name checks back with its id. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guest_token.h"
#include "http_cache.h"
#include "utf8.h"
#include "fuzz_check.h"

static bool has_control(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

static const struct guest_key KEY = { .key = "0123456789abcdef0123456789abcde" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size copy, so reading past the value is caught */
	char *v = malloc(size ? size : 1);
	if (!v)
		return 0;
	memcpy(v, data, size);
	http_accepts_gzip(v, size);
	http_etag_matches(v, size, "\"abc\"");
	CHECK(http_etag_matches("*", 1, "\"abc\""));
	CHECK(!http_accepts_gzip("gzip;q=0", 8));

	uint32_t id;
	char name[JWT_NAME_MAX + 1];
	if (guest_token_check(&KEY, v, size, &id, name))
		CHECK(size > 40); /* only a signed token gets through: never a short random one */

	/* any name the chat could hold (UTF-8 without control characters, at
	 * most 128 bytes: chat_name.c) becomes a token that checks back to its
	 * id */
	char *text = size <= 128 && utf8_valid(data, size) && !has_control(data, size) ? malloc(size + 1)
										       : NULL;
	if (text) {
		memcpy(text, data, size);
		text[size] = 0;
		char *tok = guest_token_issue(&KEY, 4242, text[0] ? text : NULL);
		if (tok) {
			CHECK(guest_token_check(&KEY, tok, strlen(tok), &id, name) && id == 4242);
			free(tok);
		}
		free(text);
	}
	free(v);
	return 0;
}
