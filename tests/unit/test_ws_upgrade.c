/* test_ws_upgrade.c: deciding on the WebSocket opening handshake
 * (RFC 6455 §4.2.1) and writing the 101 answer (§4.2.2).
 *
 * Each request is written out as text and parsed by http_parse_request, as
 * the server does, so the checks see real header values (trimmed, not
 * NUL-terminated). A valid request is built from named header lines; each
 * case leaves one out or replaces it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "http.h"
#include "ws_upgrade.h"

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define HOST "Host: example.com\r\n"
#define UPGRADE "Upgrade: websocket\r\n"
#define CONNECTION "Connection: Upgrade\r\n"
#define KEY "Sec-WebSocket-Key: " RFC_KEY "\r\n"
#define VERSION "Sec-WebSocket-Version: 13\r\n"

#define GET "GET /ws HTTP/1.1\r\n"

/* The request text must outlive req, which points into it. */
static char text[4096];
static struct http_request req;

static struct http_request *parse(const char *request)
{
	size_t n = strlen(request);

	assert_true(n < sizeof(text));
	memcpy(text, request, n);
	int r = http_parse_request(text, n, &req);
	if (r != (int)n)
		fail_msg("http_parse_request gave %d for a %zu-byte head:\n%s", r, n, request);
	return &req;
}

/* The status ws_upgrade_check answers request with. */
static int check(const char *request)
{
	const char *key = NULL;
	size_t key_len = 0;

	return ws_upgrade_check(parse(request), &key, &key_len);
}

static void test_valid_handshake_is_accepted_with_its_key(void **state)
{
	const char *key = NULL;
	size_t key_len = 0;

	(void)state;
	assert_int_equal(ws_upgrade_check(parse(GET HOST UPGRADE CONNECTION KEY VERSION "\r\n"),
					  &key, &key_len), 0);
	assert_int_equal(key_len, strlen(RFC_KEY));
	assert_memory_equal(key, RFC_KEY, key_len);
	/* It points into the request, not into a copy. */
	assert_true(key >= text && key + key_len <= text + sizeof(text));
}

static void test_header_order_and_extra_headers_do_not_matter(void **state)
{
	(void)state;
	assert_int_equal(check(GET VERSION KEY "Origin: http://example.com\r\n" CONNECTION
			       "Sec-WebSocket-Extensions: permessage-deflate\r\n" UPGRADE HOST "\r\n"),
			 0);
}

static void test_upgrade_is_requested_by_an_upgrade_websocket_token(void **state)
{
	(void)state;
	assert_true(ws_upgrade_requested(parse(GET HOST UPGRADE CONNECTION KEY VERSION "\r\n")));
	assert_true(ws_upgrade_requested(parse(GET HOST "Upgrade: WebSocket\r\n" "\r\n")));
	assert_true(ws_upgrade_requested(parse(GET HOST "Upgrade: h2c, websocket\r\n" "\r\n")));
	assert_false(ws_upgrade_requested(parse(GET HOST "\r\n")));
	assert_false(ws_upgrade_requested(parse(GET HOST "Upgrade: h2c\r\n" CONNECTION "\r\n")));
	assert_false(ws_upgrade_requested(parse(GET HOST "X-Upgrade: websocket\r\n" "\r\n")));
}

static void test_method_other_than_get_is_405(void **state)
{
	(void)state;
	assert_int_equal(check("POST /ws HTTP/1.1\r\n" HOST UPGRADE CONNECTION KEY VERSION
			       "Content-Length: 0\r\n" "\r\n"), 405);
	assert_int_equal(check("HEAD /ws HTTP/1.1\r\n" HOST UPGRADE CONNECTION KEY VERSION "\r\n"),
			 405);
	/* Methods are case-sensitive and compared whole. */
	assert_int_equal(check("get /ws HTTP/1.1\r\n" HOST UPGRADE CONNECTION KEY VERSION "\r\n"),
			 405);
	assert_int_equal(check("GETX /ws HTTP/1.1\r\n" HOST UPGRADE CONNECTION KEY VERSION "\r\n"),
			 405);
}

static void test_http_1_0_is_400(void **state)
{
	(void)state;
	assert_int_equal(check("GET /ws HTTP/1.0\r\n" HOST UPGRADE CONNECTION KEY VERSION "\r\n"),
			 400);
}

static void test_no_upgrade_websocket_is_426(void **state)
{
	(void)state;
	assert_int_equal(check(GET HOST CONNECTION KEY VERSION "\r\n"), 426);
	assert_int_equal(check(GET HOST "Upgrade: h2c\r\n" CONNECTION KEY VERSION "\r\n"), 426);
	assert_int_equal(check(GET HOST "Upgrade: websockets\r\n" CONNECTION KEY VERSION "\r\n"),
			 426);
}

static void test_connection_without_an_upgrade_token_is_400(void **state)
{
	(void)state;
	assert_int_equal(check(GET HOST UPGRADE KEY VERSION "\r\n"), 400);
	assert_int_equal(check(GET HOST UPGRADE "Connection: keep-alive\r\n" KEY VERSION "\r\n"),
			 400);
	assert_int_equal(check(GET HOST UPGRADE "Connection: upgrades\r\n" KEY VERSION "\r\n"),
			 400);
}

static void test_connection_token_list_with_upgrade_is_valid(void **state)
{
	(void)state;
	assert_int_equal(check(GET HOST UPGRADE "Connection: keep-alive, Upgrade\r\n" KEY VERSION
			       "\r\n"), 0);
	assert_int_equal(check(GET HOST UPGRADE "Connection: upgrade,keep-alive\r\n" KEY VERSION
			       "\r\n"), 0);
}

static void test_upgrade_and_connection_tokens_are_case_insensitive(void **state)
{
	(void)state;
	assert_int_equal(check(GET HOST "Upgrade: WebSocket\r\n" CONNECTION KEY VERSION "\r\n"), 0);
	assert_int_equal(check(GET HOST "upgrade: WEBSOCKET\r\n" "connection: UPGRADE\r\n" KEY
			       VERSION "\r\n"), 0);
}

static void test_version_other_than_13_is_426(void **state)
{
	(void)state;
	assert_int_equal(check(GET HOST UPGRADE CONNECTION KEY "\r\n"), 426);
	assert_int_equal(check(GET HOST UPGRADE CONNECTION KEY "Sec-WebSocket-Version: 8\r\n"
			       "\r\n"), 426);
	assert_int_equal(check(GET HOST UPGRADE CONNECTION KEY "Sec-WebSocket-Version: 14\r\n"
			       "\r\n"), 426);
	assert_int_equal(check(GET HOST UPGRADE CONNECTION KEY "Sec-WebSocket-Version: 130\r\n"
			       "\r\n"), 426);
	assert_int_equal(check(GET HOST UPGRADE CONNECTION KEY "Sec-WebSocket-Version: 1\r\n"
			       "\r\n"), 426);
}

static void test_missing_key_is_400(void **state)
{
	(void)state;
	assert_int_equal(check(GET HOST UPGRADE CONNECTION VERSION "\r\n"), 400);
}

/* base64 of 15 bytes (20 characters) and of 17 bytes (24 characters, one
 * '='): well-formed base64, the wrong number of bytes. */
static void test_key_not_of_16_bytes_is_400(void **state)
{
	(void)state;
	assert_int_equal(check(GET HOST UPGRADE CONNECTION VERSION
			       "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4P\r\n" "\r\n"), 400);
	assert_int_equal(check(GET HOST UPGRADE CONNECTION VERSION
			       "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEBE=\r\n" "\r\n"), 400);
	/* The same 16 bytes are fine. */
	assert_int_equal(check(GET HOST UPGRADE CONNECTION VERSION
			       "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n" "\r\n"), 0);
}

static void test_key_that_is_not_base64_is_400(void **state)
{
	(void)state;
	assert_int_equal(check(GET HOST UPGRADE CONNECTION VERSION
			       "Sec-WebSocket-Key: dGhlIHNhbXBs*SBub25jZQ==\r\n" "\r\n"), 400);
	assert_int_equal(check(GET HOST UPGRADE CONNECTION VERSION
			       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=!\r\n" "\r\n"), 400);
	assert_int_equal(check(GET HOST UPGRADE CONNECTION VERSION
			       "Sec-WebSocket-Key: dGhlIHNhbXBs ZSBub25jZQ==\r\n" "\r\n"), 400);
	assert_int_equal(check(GET HOST UPGRADE CONNECTION VERSION
			       "Sec-WebSocket-Key:\r\n" "\r\n"), 400);
	/* 'R' leaves unused bits set: no 16 bytes encode to this. */
	assert_int_equal(check(GET HOST UPGRADE CONNECTION VERSION
			       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n" "\r\n"), 400);
}

/* A body would be read as the client's first frames once the 101 is out:
 * an opening handshake announcing one is refused. */
static void test_content_length_over_0_is_400(void **state)
{
	(void)state;
	assert_int_equal(check(GET HOST UPGRADE CONNECTION KEY VERSION "Content-Length: 1\r\n" "\r\n"),
			 400);
	assert_int_equal(check(GET HOST UPGRADE CONNECTION KEY VERSION "Content-Length: 65536\r\n"
			       "\r\n"), 400);
}

static void test_content_length_0_is_accepted(void **state)
{
	(void)state;
	assert_int_equal(check(GET HOST UPGRADE CONNECTION KEY VERSION "Content-Length: 0\r\n" "\r\n"),
			 0);
}

/* The parser refuses Transfer-Encoding itself (501), so this request is
 * built by hand: the rule must not depend on that. */
static void test_transfer_encoding_is_400(void **state)
{
	const char *key = NULL;
	size_t key_len = 0;
	struct http_request *r;

	(void)state;
	r = parse(GET HOST UPGRADE CONNECTION KEY VERSION "X-Placeholder: chunked\r\n" "\r\n");
	r->headers[r->num_headers - 1].name = "Transfer-Encoding";
	r->headers[r->num_headers - 1].name_len = strlen("Transfer-Encoding");
	assert_int_equal(ws_upgrade_check(r, &key, &key_len), 400);
}

/* RFC 6455 §11.3.1: Sec-WebSocket-Key at most once in a request. */
static void test_duplicate_key_is_400(void **state)
{
	(void)state;
	assert_int_equal(check(GET HOST UPGRADE CONNECTION KEY KEY VERSION "\r\n"), 400);
	assert_int_equal(check(GET HOST UPGRADE CONNECTION KEY VERSION
			       "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n" "\r\n"), 400);
	assert_int_equal(check(GET HOST UPGRADE CONNECTION KEY VERSION "sec-websocket-key: "
			       RFC_KEY "\r\n" "\r\n"), 400);
}

/* RFC 6455 §11.3.5: Sec-WebSocket-Version at most once in a request. */
static void test_duplicate_version_is_400(void **state)
{
	(void)state;
	assert_int_equal(check(GET HOST UPGRADE CONNECTION KEY VERSION VERSION "\r\n"), 400);
	assert_int_equal(check(GET HOST UPGRADE CONNECTION KEY VERSION "Sec-WebSocket-Version: 8\r\n"
			       "\r\n"), 400);
}

/* Each refusal is the one for the first rule broken, in the order of
 * ws_upgrade_check's contract: method, version and body, Upgrade,
 * Connection, duplicates, Sec-WebSocket-Version, key. */
static void test_first_broken_rule_decides_the_status(void **state)
{
	(void)state;
	assert_int_equal(check("POST /ws HTTP/1.0\r\n" HOST "\r\n"), 405);
	assert_int_equal(check("GET /ws HTTP/1.0\r\n" HOST "\r\n"), 400);
	assert_int_equal(check(GET HOST "Content-Length: 1\r\n" "\r\n"), 400);
	assert_int_equal(check(GET HOST "\r\n"), 426);
	assert_int_equal(check(GET HOST UPGRADE CONNECTION KEY KEY "\r\n"), 400);
}

static void test_response_is_101_with_the_accept_key_and_a_blank_line(void **state)
{
	char out[512];

	(void)state;
	memset(out, 'X', sizeof(out));
	size_t n = ws_upgrade_response(out, sizeof(out), RFC_KEY, strlen(RFC_KEY), "");
	assert_true(n > 0 && n < sizeof(out));
	assert_int_equal(out[n], '\0');
	assert_int_equal(strlen(out), n);
	assert_memory_equal(out, "HTTP/1.1 101 Switching Protocols\r\n", 34);
	assert_non_null(strstr(out, "\r\nSec-WebSocket-Accept: " RFC_ACCEPT "\r\n"));
	assert_non_null(strcasestr(out, "\r\nUpgrade: websocket\r\n"));
	assert_non_null(strcasestr(out, "\r\nConnection: Upgrade\r\n"));
	/* The head ends at its first blank line, which is the last thing. */
	const char *blank = strstr(out, "\r\n\r\n");
	assert_non_null(blank);
	assert_int_equal((size_t)(blank - out) + 4, n);
}

/* The key handed over is the one from a parsed request: not NUL-terminated,
 * followed by the rest of the head; only key_len bytes of it count. */
static void test_response_uses_exactly_the_key_from_the_request(void **state)
{
	const char *key = NULL;
	size_t key_len = 0;
	char out[512];

	(void)state;
	assert_int_equal(ws_upgrade_check(parse(GET HOST UPGRADE CONNECTION KEY VERSION "\r\n"),
					  &key, &key_len), 0);
	assert_true(ws_upgrade_response(out, sizeof(out), key, key_len, "") > 0);
	assert_non_null(strstr(out, "\r\nSec-WebSocket-Accept: " RFC_ACCEPT "\r\n"));
}

/* An accepted extension's header goes inside the head, before its end. */
static void test_response_carries_extra_header_lines_before_the_blank_line(void **state)
{
	char out[512];

	(void)state;
	size_t n = ws_upgrade_response(out, sizeof(out), RFC_KEY, strlen(RFC_KEY),
				       "Sec-WebSocket-Extensions: permessage-deflate\r\n");
	assert_true(n > 0);
	assert_non_null(strstr(out, "\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n"));
	assert_int_equal((size_t)(strstr(out, "\r\n\r\n") - out) + 4, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_handshake_is_accepted_with_its_key),
		cmocka_unit_test(test_response_carries_extra_header_lines_before_the_blank_line),
		cmocka_unit_test(test_header_order_and_extra_headers_do_not_matter),
		cmocka_unit_test(test_upgrade_is_requested_by_an_upgrade_websocket_token),
		cmocka_unit_test(test_method_other_than_get_is_405),
		cmocka_unit_test(test_http_1_0_is_400),
		cmocka_unit_test(test_no_upgrade_websocket_is_426),
		cmocka_unit_test(test_connection_without_an_upgrade_token_is_400),
		cmocka_unit_test(test_connection_token_list_with_upgrade_is_valid),
		cmocka_unit_test(test_upgrade_and_connection_tokens_are_case_insensitive),
		cmocka_unit_test(test_version_other_than_13_is_426),
		cmocka_unit_test(test_missing_key_is_400),
		cmocka_unit_test(test_key_not_of_16_bytes_is_400),
		cmocka_unit_test(test_key_that_is_not_base64_is_400),
		cmocka_unit_test(test_content_length_over_0_is_400),
		cmocka_unit_test(test_content_length_0_is_accepted),
		cmocka_unit_test(test_transfer_encoding_is_400),
		cmocka_unit_test(test_duplicate_key_is_400),
		cmocka_unit_test(test_duplicate_version_is_400),
		cmocka_unit_test(test_first_broken_rule_decides_the_status),
		cmocka_unit_test(test_response_is_101_with_the_accept_key_and_a_blank_line),
		cmocka_unit_test(test_response_uses_exactly_the_key_from_the_request),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
