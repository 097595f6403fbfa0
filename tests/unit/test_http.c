/* test_http.c: the HTTP/1.1 request head parser and response heads.
 *
 * Every request goes through expect_at(): the server calls the parser again
 * with everything read so far whenever bytes arrive, so each input is also
 * fed as every prefix 1..n, each in a heap copy of exactly that size so that
 * AddressSanitizer catches any read past len. The parser keeps no state, so
 * this is byte-by-byte delivery and a split at every offset in one. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* A request head with the headers every HTTP/1.1 request needs. */
#define REQ(headers) "GET / HTTP/1.1\r\nHost: x\r\n" headers "\r\n"

/* malloc that gcc can see never returns NULL to the code after it */
static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		abort();
	return p;
}

static int parse_copy(const char *in, size_t n, struct http_request *req)
{
	char *copy = xmalloc(n);
	int r;

	memcpy(copy, in, n);
	r = http_parse_request(copy, n, req);
	free(copy);
	return r;
}

/* in[0..n) parses to want; every prefix shorter than decided_at is
 * HTTP_INCOMPLETE and every longer one is want too. decided_at 0 only asks
 * that the first answer that is not HTTP_INCOMPLETE is want, and stays so.
 * req (may be NULL) gets the result of parsing in itself, whole. */
static void expect_at(const char *in, size_t n, int want, size_t decided_at,
		      struct http_request *req)
{
	struct http_request scratch;
	bool decided = false;

	for (size_t p = 1; p <= n; p++) {
		int r = parse_copy(in, p, &scratch);
		int expected = want;

		if (decided_at ? p < decided_at : !decided && r == HTTP_INCOMPLETE)
			expected = HTTP_INCOMPLETE;
		else
			decided = true;
		if (r != expected)
			fail_msg("prefix %zu of %zu bytes: got %d, want %d", p, n, r, expected);
	}
	assert_int_equal(http_parse_request(in, n, req ? req : &scratch), want);
}

/* A NUL-free input whose result, when it is a head length, is decided by
 * the last byte of that head. */
static void expect(const char *in, int want, struct http_request *req)
{
	expect_at(in, strlen(in), want, want > 0 ? (size_t)want : 0, req);
}

static void expect_ok(const char *in, struct http_request *req)
{
	expect(in, (int)strlen(in), req);
}

static void assert_span(const char *p, size_t n, const char *want)
{
	if (n != strlen(want) || memcmp(p, want, n) != 0)
		fail_msg("got \"%.*s\", want \"%s\"", (int)n, p, want);
}

/* "GET / HTTP/1.1\r\nHost: x\r\nX: aaa...\r\n\r\n", total bytes long. */
static char *head_of_size(size_t total)
{
	static const char start[] = "GET / HTTP/1.1\r\nHost: x\r\nX: ";
	char *s = xmalloc(total + 1);

	memcpy(s, start, sizeof(start) - 1);
	memset(s + sizeof(start) - 1, 'a', total - (sizeof(start) - 1) - 4);
	memcpy(s + total - 4, "\r\n\r\n", 5);
	return s;
}

/* ---- request line ---- */

static void request_line_and_headers_fill_the_request(void **state)
{
	static const char in[] = "GET /chat?room=a HTTP/1.1\r\nHost: example.org\r\n\r\n";
	struct http_request req;

	(void)state;
	expect_ok(in, &req);
	assert_span(req.method, req.method_len, "GET");
	assert_span(req.target, req.target_len, "/chat?room=a");
	assert_int_equal(req.minor_version, 1);
	assert_int_equal(req.num_headers, 1);
	assert_span(req.headers[0].name, req.headers[0].name_len, "Host");
	assert_span(req.headers[0].value, req.headers[0].value_len, "example.org");
	assert_int_equal(req.content_length, 0);
	assert_true(req.keep_alive);
	assert_ptr_equal(req.method, in);
}

static void bare_lf_line_endings_are_accepted(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok("GET / HTTP/1.1\nHost: x\n\n", &req);
	assert_span(req.headers[0].value, req.headers[0].value_len, "x");
	expect_ok("GET / HTTP/1.1\r\nHost: x\nA: b\r\n\n", &req);
	assert_int_equal(req.num_headers, 2);
	expect_ok("GET / HTTP/1.1\nHost: x\r\n\r\n", &req);
}

static void bare_cr_is_400(void **state)
{
	(void)state;
	expect("GET / HTTP/1.1\rHost: x\r\n\r\n", -400, NULL);
	expect(REQ("A: b\rC: d\r\n"), -400, NULL);
	expect("GET / HTTP/1.1\r\nHost: x\r\n\r\r\n\r\n", -400, NULL);
	expect("\rGET / HTTP/1.1\r\nHost: x\r\n\r\n", -400, NULL);
}

static void empty_lines_before_the_request_line_are_skipped(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok("\r\n\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n", &req);
	assert_span(req.target, req.target_len, "/a");
}

static void method_must_be_a_token(void **state)
{
	static const char nul[] = "G\0T / HTTP/1.1\r\nHost: x\r\n\r\n";

	(void)state;
	expect("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", -400, NULL);
	expect("GE@T / HTTP/1.1\r\nHost: x\r\n\r\n", -400, NULL);
	expect("GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", -400, NULL);
	expect(" GET / HTTP/1.1\r\nHost: x\r\n\r\n", -400, NULL);
	expect_at(nul, sizeof(nul) - 1, -400, 2, NULL);
}

static void extension_methods_are_accepted(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok("PROPFIND / HTTP/1.1\r\nHost: x\r\n\r\n", &req);
	assert_true(http_method_is(&req, "PROPFIND"));
	assert_false(http_method_is(&req, "GET"));
}

static void method_is_case_sensitive(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok("get / HTTP/1.1\r\nHost: x\r\n\r\n", &req);
	assert_false(http_method_is(&req, "GET"));
	assert_true(http_method_is(&req, "get"));
	assert_false(http_method_is(&req, "ge"));
	assert_false(http_method_is(&req, "gets"));
}

static void target_must_be_visible_ascii(void **state)
{
	static const char nul[] = "GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n";

	(void)state;
	expect("GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n", -400, NULL);
	expect("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", -400, NULL);
	expect("GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n", -400, NULL);
	expect_at(nul, sizeof(nul) - 1, -400, 6, NULL);
}

static void empty_target_is_400(void **state)
{
	(void)state;
	expect("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", -400, NULL);
	expect("GET HTTP/1.1\r\nHost: x\r\n\r\n", -400, NULL);
}

static void missing_version_is_400(void **state)
{
	(void)state;
	expect("GET /\r\n\r\n", -400, NULL);
	expect("GET /\n\n", -400, NULL);
	expect("GET / \r\n\r\n", -400, NULL);
}

static void http_1_0_and_1_1_are_accepted(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok("GET / HTTP/1.0\r\n\r\n", &req);
	assert_int_equal(req.minor_version, 0);
	expect_ok("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &req);
	assert_int_equal(req.minor_version, 1);
}

static void other_versions_are_505(void **state)
{
	static const char *const versions[] = {
		"HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3", "HTTP/1", "HTTP/9.9",
	};
	char in[64];

	(void)state;
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		snprintf(in, sizeof(in), "GET / %s\r\nHost: x\r\n\r\n", versions[i]);
		/* decided by the LF after the version */
		expect_at(in, strlen(in), -505, 6 + strlen(versions[i]) + 2, NULL);
	}
}

static void malformed_versions_are_400(void **state)
{
	static const char *const versions[] = {
		"HTTP/1.x", "HTTP/11", "HTTP/1.1x", "http/1.1", "HTTX/1.1", "HTTP/1.1 ",
		"HTTP/.1", "HTTP/1.1.1", "HTTP/1.10", "HTTP /1.1", "HTTP/", "HTTP",
	};
	char in[64];

	(void)state;
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		snprintf(in, sizeof(in), "GET / %s\r\nHost: x\r\n\r\n", versions[i]);
		expect(in, -400, NULL);
	}
}

/* ---- header lines ---- */

static void whitespace_before_the_colon_is_400(void **state)
{
	(void)state;
	expect("GET / HTTP/1.1\r\nHost : x\r\n\r\n", -400, NULL);
	expect("GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", -400, NULL);
}

static void header_without_colon_is_400(void **state)
{
	(void)state;
	expect(REQ("Accept text/html\r\n"), -400, NULL);
	expect(REQ("Accept\r\n"), -400, NULL);
}

static void header_with_empty_name_is_400(void **state)
{
	(void)state;
	expect(REQ(": x\r\n"), -400, NULL);
}

static void header_name_must_be_a_token(void **state)
{
	(void)state;
	expect(REQ("Ac(cept: x\r\n"), -400, NULL);
	expect(REQ("X@: y\r\n"), -400, NULL);
	expect(REQ("Caf\xc3\xa9: y\r\n"), -400, NULL);
}

static void obs_fold_is_400(void **state)
{
	(void)state;
	expect(REQ("X: a\r\n folded\r\n"), -400, NULL);
	expect(REQ("X: a\r\n\tfolded\r\n"), -400, NULL);
	expect("GET / HTTP/1.1\r\n Host: x\r\n\r\n", -400, NULL);
}

static void control_chars_in_values_are_400(void **state)
{
	static const char nul[] = "GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n";

	(void)state;
	expect_at(nul, sizeof(nul) - 1, -400, sizeof(nul) - 1, NULL);
	expect(REQ("X: a\x01z\r\n"), -400, NULL);
	expect(REQ("X: a\x7fz\r\n"), -400, NULL);
	expect(REQ("X: \x1b[31m\r\n"), -400, NULL);
	expect(REQ("X: a\x0bz\r\n"), -400, NULL);
}

static void htab_and_obs_text_in_values_are_accepted(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok(REQ("X: a\tb\r\nY: caf\xc3\xa9\r\n"), &req);
	assert_span(req.headers[1].value, req.headers[1].value_len, "a\tb");
	assert_span(req.headers[2].value, req.headers[2].value_len, "caf\xc3\xa9");
}

static void values_are_trimmed_of_whitespace(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok(REQ("X: \t a b \t \r\nY:\r\nZ:   \r\nW:v\r\n"), &req);
	assert_span(req.headers[1].value, req.headers[1].value_len, "a b");
	assert_span(req.headers[2].value, req.headers[2].value_len, "");
	assert_span(req.headers[3].value, req.headers[3].value_len, "");
	assert_span(req.headers[4].value, req.headers[4].value_len, "v");
}

/* "GET / HTTP/1.1\r\nHost: x\r\n" and count - 1 more "Hn: v" lines, then
 * the blank line unless open. */
static char *head_with_headers(size_t count, bool open)
{
	char *s = xmalloc(32 + count * 16);
	size_t n;

	n = (size_t)sprintf(s, "GET / HTTP/1.1\r\nHost: x\r\n");
	for (size_t i = 1; i < count; i++)
		n += (size_t)sprintf(s + n, "H%zu: v\r\n", i);
	if (!open)
		strcpy(s + n, "\r\n");
	return s;
}

static void sixty_four_headers_are_accepted(void **state)
{
	char *in = head_with_headers(HTTP_MAX_HEADERS, false);
	struct http_request req;

	(void)state;
	expect_ok(in, &req);
	assert_int_equal(req.num_headers, HTTP_MAX_HEADERS);
	assert_span(req.headers[63].name, req.headers[63].name_len, "H63");
	free(in);
}

static void sixty_five_headers_are_431_before_the_head_ends(void **state)
{
	char *in = head_with_headers(HTTP_MAX_HEADERS + 1, true);
	size_t n = strlen(in);

	(void)state;
	/* decided by the LF of the 65th header line, no blank line needed */
	expect_at(in, n, -431, n, NULL);
	free(in);
}

/* ---- size limits ---- */

static void head_of_8192_bytes_is_accepted(void **state)
{
	char *in = head_of_size(HTTP_MAX_HEAD);

	(void)state;
	expect(in, HTTP_MAX_HEAD, NULL);
	free(in);
}

static void head_without_end_is_431_at_8193_bytes(void **state)
{
	char *in = head_of_size(HTTP_MAX_HEAD + 800);
	size_t n = HTTP_MAX_HEAD + 700; /* cut before the blank line */

	(void)state;
	expect_at(in, n, -431, HTTP_MAX_HEAD + 1, NULL);
	free(in);
}

static void complete_head_over_8192_bytes_is_431(void **state)
{
	char *in = head_of_size(HTTP_MAX_HEAD + 1);

	(void)state;
	expect_at(in, HTTP_MAX_HEAD + 1, -431, HTTP_MAX_HEAD + 1, NULL);
	free(in);
}

static void method_of_32_bytes_is_accepted(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok("ABCDEFGHIJKLMNOPQRSTUVWXYZ-_.!~* / HTTP/1.1\r\nHost: x\r\n\r\n", &req);
	assert_int_equal(req.method_len, 32);
}

static void method_over_32_bytes_is_501_as_soon_as_seen(void **state)
{
	static const char in[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ-_.!~*+ / HTTP/1.1\r\nHost: x\r\n\r\n";

	(void)state;
	expect_at(in, sizeof(in) - 1, -501, 33, NULL);
}

/* "GET /aaa... HTTP/1.1\r\nHost: x\r\n\r\n" with a target_len-byte target. */
static char *request_with_target(size_t target_len)
{
	char *s = xmalloc(target_len + 64);

	memcpy(s, "GET /", 5);
	memset(s + 5, 'a', target_len - 1);
	strcpy(s + 4 + target_len, " HTTP/1.1\r\nHost: x\r\n\r\n");
	return s;
}

static void target_of_2048_bytes_is_accepted(void **state)
{
	char *in = request_with_target(HTTP_MAX_TARGET);
	struct http_request req;

	(void)state;
	expect_ok(in, &req);
	assert_int_equal(req.target_len, HTTP_MAX_TARGET);
	free(in);
}

static void target_over_2048_bytes_is_414_as_soon_as_seen(void **state)
{
	char *in = request_with_target(HTTP_MAX_TARGET + 1);

	(void)state;
	/* "GET " then the 2049th byte of the target; the head is far from done */
	expect_at(in, strlen(in), -414, 4 + HTTP_MAX_TARGET + 1, NULL);
	free(in);
}

/* ---- pipelining ---- */

static void pipelined_requests_parse_one_at_a_time(void **state)
{
	static const char first[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
	static const char in[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
				 "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
				 "GET /c HTTP/1.1\r\nHo";
	struct http_request req;
	size_t n1 = sizeof(first) - 1;

	(void)state;
	expect_at(in, sizeof(in) - 1, (int)n1, n1, &req);
	assert_span(req.target, req.target_len, "/a");
	expect_at(in + n1, sizeof(in) - 1 - n1, (int)n1, n1, &req);
	assert_span(req.target, req.target_len, "/b");
	expect_at(in + 2 * n1, sizeof(in) - 1 - 2 * n1, HTTP_INCOMPLETE, 0, NULL);
}

static void pipelined_bytes_past_8192_leave_a_small_head_alone(void **state)
{
	size_t n = HTTP_MAX_HEAD + 500;
	char *in = xmalloc(n);
	const char *head = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";

	(void)state;
	memset(in, 'G', n);
	memcpy(in, head, strlen(head));
	expect_at(in, n, (int)strlen(head), strlen(head), NULL);
	free(in);
}

/* ---- message framing ---- */

static void content_length_is_parsed(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok(REQ("Content-Length: 42\r\n"), &req);
	assert_int_equal(req.content_length, 42);
	expect_ok(REQ("content-length: 007\r\n"), &req);
	assert_int_equal(req.content_length, 7);
	expect_ok(REQ("Content-Length: 18446744073709551615\r\n"), &req);
	assert_true(req.content_length == UINT64_MAX);
}

static void content_length_is_zero_when_absent(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok(REQ(""), &req);
	assert_int_equal(req.content_length, 0);
}

static void content_length_must_be_digits(void **state)
{
	(void)state;
	expect(REQ("Content-Length:\r\n"), -400, NULL);
	expect(REQ("Content-Length: -1\r\n"), -400, NULL);
	expect(REQ("Content-Length: +1\r\n"), -400, NULL);
	expect(REQ("Content-Length: 1 2\r\n"), -400, NULL);
	expect(REQ("Content-Length: 0x10\r\n"), -400, NULL);
	expect(REQ("Content-Length: 12a\r\n"), -400, NULL);
	expect(REQ("Content-Length: 1,1\r\n"), -400, NULL);
}

static void content_length_overflow_is_400(void **state)
{
	(void)state;
	expect(REQ("Content-Length: 18446744073709551616\r\n"), -400, NULL);
	expect(REQ("Content-Length: 99999999999999999999\r\n"), -400, NULL);
}

static void duplicate_content_length_with_the_same_value_is_accepted(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok(REQ("Content-Length: 5\r\nContent-Length: 05\r\n"), &req);
	assert_int_equal(req.content_length, 5);
}

static void duplicate_content_length_with_different_values_is_400(void **state)
{
	(void)state;
	expect(REQ("Content-Length: 5\r\nContent-Length: 6\r\n"), -400, NULL);
}

static void transfer_encoding_is_501(void **state)
{
	(void)state;
	expect(REQ("Transfer-Encoding: chunked\r\n"), -501, NULL);
	expect(REQ("transfer-encoding: identity\r\n"), -501, NULL);
	expect(REQ("Transfer-Encoding: gzip, chunked\r\n"), -501, NULL);
}

static void transfer_encoding_with_content_length_is_400(void **state)
{
	(void)state;
	expect(REQ("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"), -400, NULL);
	expect(REQ("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"), -400, NULL);
}

/* ---- Host ---- */

static void missing_host_on_1_1_is_400(void **state)
{
	(void)state;
	expect("GET / HTTP/1.1\r\n\r\n", -400, NULL);
	expect("GET / HTTP/1.1\r\nHostname: x\r\n\r\n", -400, NULL);
}

static void missing_host_on_1_0_is_accepted(void **state)
{
	(void)state;
	expect_ok("GET / HTTP/1.0\r\n\r\n", NULL);
}

static void duplicate_host_is_400(void **state)
{
	(void)state;
	expect(REQ("host: y\r\n"), -400, NULL);
	expect("GET / HTTP/1.0\r\nHost: x\r\nHost: x\r\n\r\n", -400, NULL);
}

/* ---- persistence ---- */

static void http_1_1_keeps_alive_by_default(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok(REQ("Connection: keep-alive\r\n"), &req);
	assert_true(req.keep_alive);
	expect_ok(REQ("Connection: closed\r\n"), &req);
	assert_true(req.keep_alive);
}

static void connection_close_ends_http_1_1(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok(REQ("Connection: close\r\n"), &req);
	assert_false(req.keep_alive);
	expect_ok(REQ("Connection: foo, CLOSE\r\n"), &req);
	assert_false(req.keep_alive);
	expect_ok(REQ("Connection: keep-alive\r\nConnection: Close\r\n"), &req);
	assert_false(req.keep_alive);
}

static void http_1_0_closes_by_default(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok("GET / HTTP/1.0\r\n\r\n", &req);
	assert_false(req.keep_alive);
	expect_ok("GET / HTTP/1.0\r\nConnection: keep-alive-ish\r\n\r\n", &req);
	assert_false(req.keep_alive);
}

static void http_1_0_keeps_alive_with_the_keep_alive_token(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &req);
	assert_true(req.keep_alive);
}

/* ---- header lookups ---- */

static void find_header_ignores_case_and_returns_the_first(void **state)
{
	static const char in[] = REQ("Sec-WebSocket-Key: one\r\nsec-websocket-key: two\r\n");
	struct http_request req;
	const struct http_header *h;

	(void)state;
	expect_ok(in, &req);
	h = http_find_header(&req, "SEC-WEBSOCKET-KEY");
	assert_non_null(h);
	assert_span(h->value, h->value_len, "one");
	assert_null(http_find_header(&req, "Sec-WebSocket"));
	assert_null(http_find_header(&req, "Sec-WebSocket-Key-Extra"));
}

static void header_count_counts_every_line_of_a_name(void **state)
{
	static const char in[] = REQ("Sec-WebSocket-Key: one\r\nX-Other: 1\r\nsec-websocket-key: two\r\n");
	struct http_request req;

	(void)state;
	expect_ok(in, &req);
	assert_int_equal(http_header_count(&req, "Sec-WebSocket-Key"), 2);
	assert_int_equal(http_header_count(&req, "x-other"), 1);
	assert_int_equal(http_header_count(&req, "Host"), 1);
	assert_int_equal(http_header_count(&req, "Sec-WebSocket"), 0);
}

static void has_token_finds_an_element_of_a_list(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok(REQ("Connection: keep-alive, Upgrade\r\n"), &req);
	assert_true(http_header_has_token(&req, "Connection", "upgrade"));
	assert_true(http_header_has_token(&req, "connection", "keep-alive"));
	assert_false(http_header_has_token(&req, "Connection", "close"));
}

static void has_token_ignores_case(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok(REQ("Upgrade: WebSocket\r\n"), &req);
	assert_true(http_header_has_token(&req, "upgrade", "websocket"));
}

static void has_token_needs_the_whole_element(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok(REQ("Connection: upgrade-foo, xupgrade, up grade\r\n"), &req);
	assert_false(http_header_has_token(&req, "Connection", "upgrade"));
	assert_false(http_header_has_token(&req, "Connection", "upgrade-foo-bar"));
	assert_false(http_header_has_token(&req, "Connection", "up"));
	assert_true(http_header_has_token(&req, "Connection", "upgrade-foo"));
}

static void has_token_checks_every_header_line(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok(REQ("Connection: keep-alive\r\nX: upgrade\r\nConnection: Upgrade\r\n"), &req);
	assert_true(http_header_has_token(&req, "Connection", "upgrade"));
}

static void has_token_skips_empty_elements(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok(REQ("Connection: , ,\tUpgrade\t ,\r\nUpgrade:\r\n"), &req);
	assert_true(http_header_has_token(&req, "Connection", "upgrade"));
	assert_false(http_header_has_token(&req, "Upgrade", "websocket"));
}

static void has_token_is_false_for_an_absent_header(void **state)
{
	struct http_request req;

	(void)state;
	expect_ok(REQ(""), &req);
	assert_false(http_header_has_token(&req, "Upgrade", "websocket"));
}

static void websocket_upgrade_request_parses(void **state)
{
	static const char in[] =
		"GET /ws?room=dev HTTP/1.1\r\n"
		"Host: localhost:8080\r\n"
		"Connection: Upgrade\r\n"
		"Pragma: no-cache\r\n"
		"Upgrade: websocket\r\n"
		"Origin: http://localhost:8080\r\n"
		"Sec-WebSocket-Version: 13\r\n"
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
		"Accept-Encoding: gzip, deflate, br\r\n"
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
		"\r\n";
	struct http_request req;
	const struct http_header *key;

	(void)state;
	expect_ok(in, &req);
	assert_true(http_method_is(&req, "GET"));
	assert_true(http_header_has_token(&req, "Connection", "upgrade"));
	assert_true(http_header_has_token(&req, "Upgrade", "websocket"));
	key = http_find_header(&req, "sec-websocket-key");
	assert_non_null(key);
	assert_span(key->value, key->value_len, "dGhlIHNhbXBsZSBub25jZQ==");
	assert_true(req.keep_alive);
}

/* ---- paths ---- */

/* Decode a heap copy of exactly target's length, so over-reads show. */
static int decode(const char *target, char *out, size_t cap, char *query, size_t query_cap)
{
	size_t n = strlen(target);
	char *copy = xmalloc(n);
	const char *q = NULL;
	size_t q_len = 99;
	int r;

	memcpy(copy, target, n);
	r = http_decode_path(copy, n, out, cap, &q, &q_len);
	if (r == 0 && query) {
		assert_true(q_len < query_cap);
		if (q) {
			assert_true(q > copy && q <= copy + n);
			memcpy(query, q, q_len);
			query[q_len] = '\0';
		} else {
			assert_int_equal(q_len, 0);
			strcpy(query, "(none)");
		}
	}
	free(copy);
	return r;
}

static void expect_path(const char *target, const char *path, const char *query)
{
	char out[HTTP_MAX_PATH], q[HTTP_MAX_TARGET];

	if (decode(target, out, sizeof(out), q, sizeof(q)) != 0)
		fail_msg("\"%s\" was refused", target);
	assert_string_equal(out, path);
	assert_string_equal(q, query);
}

static void expect_path_400(const char *target)
{
	char out[HTTP_MAX_PATH];

	if (decode(target, out, sizeof(out), NULL, 0) != -400)
		fail_msg("\"%s\" was not refused with 400", target);
}

static void path_decodes_percent_escapes(void **state)
{
	(void)state;
	expect_path("/", "/", "(none)");
	expect_path("/app.js", "/app.js", "(none)");
	expect_path("/a%20b", "/a b", "(none)");
	expect_path("/%7e%7E/caf%C3%A9", "/~~/caf\xc3\xa9", "(none)");
	expect_path("/a+b", "/a+b", "(none)");
}

static void path_must_start_with_a_slash(void **state)
{
	(void)state;
	expect_path_400("");
	expect_path_400("index.html");
	expect_path_400("*");
	expect_path_400("?x=1");
	expect_path_400("%2Fetc");
}

static void absolute_form_is_400(void **state)
{
	(void)state;
	expect_path_400("http://example.org/index.html");
	expect_path_400("example.org:80");
}

static void bad_percent_escape_is_400(void **state)
{
	(void)state;
	expect_path_400("/%");
	expect_path_400("/a%2");
	expect_path_400("/%zz");
	expect_path_400("/%2g");
	expect_path_400("/%-1");
	expect_path_400("/a%2?x=1");
	expect_path_400("/a%?x=11");
}

static void encoded_nul_is_400(void **state)
{
	(void)state;
	expect_path_400("/%00");
	expect_path_400("/index.html%00.png");
}

static void control_chars_are_400(void **state)
{
	(void)state;
	expect_path_400("/a%01");
	expect_path_400("/a%0a");
	expect_path_400("/a%7F");
	expect_path_400("/a\tb");
}

static void backslash_is_400(void **state)
{
	(void)state;
	expect_path_400("/a\\b");
	expect_path_400("/%5c");
	expect_path_400("/..%5C..%5Cetc");
}

static void encoded_slash_is_400(void **state)
{
	(void)state;
	expect_path_400("/a%2Fb");
	expect_path_400("/a%2fb");
	expect_path_400("/%2E%2e%2f");
	expect_path_400("/%2e%2e%2fetc%2fpasswd");
}

static void dot_segments_are_400(void **state)
{
	(void)state;
	expect_path_400("/..");
	expect_path_400("/../etc/passwd");
	expect_path_400("/a/../b");
	expect_path_400("/a/..");
	expect_path_400("/a/../../..");
	expect_path_400("/.");
	expect_path_400("/./a");
	expect_path_400("/a/.");
	expect_path_400("/a/./b");
	expect_path_400("/%2e%2e/x");
	expect_path_400("/.%2E/");
	expect_path_400("/%2E");
	expect_path_400("/%2e.");
	expect_path_400("/a/%2E%2E?x=1");
}

static void dots_inside_names_are_kept(void **state)
{
	(void)state;
	expect_path("/a..b", "/a..b", "(none)");
	expect_path("/...", "/...", "(none)");
	expect_path("/a./b", "/a./b", "(none)");
	expect_path("/.well-known", "/.well-known", "(none)");
	expect_path("/%2e%2e%2e", "/...", "(none)");
}

/* The static site is a table in memory matched by exact path, so an empty
 * segment cannot climb anywhere: it simply names no file. */
static void double_slash_stays_inside_the_site(void **state)
{
	(void)state;
	expect_path("//etc/passwd", "//etc/passwd", "(none)");
	expect_path("/a//b/", "/a//b/", "(none)");
}

static void query_is_split_off_undecoded(void **state)
{
	(void)state;
	expect_path("/chat?room=dev%20x&b", "/chat", "room=dev%20x&b");
	expect_path("/?", "/", "");
	expect_path("/a?b?c", "/a", "b?c");
	expect_path("/a?%zz/../", "/a", "%zz/../");
	expect_path("/a?x=%2e%2e", "/a", "x=%2e%2e");
}

static void fragment_is_400(void **state)
{
	(void)state;
	expect_path_400("/a#b");
	expect_path_400("/a?x#y");
	expect_path_400("/#");
}

static void path_must_fit_the_output(void **state)
{
	char out[8];

	(void)state;
	assert_int_equal(decode("/abcdef", out, sizeof(out), NULL, 0), 0);
	assert_string_equal(out, "/abcdef");
	assert_int_equal(decode("/abcdefg", out, sizeof(out), NULL, 0), -400);
	assert_int_equal(decode("/abcd%20f", out, sizeof(out), NULL, 0), 0);
	assert_int_equal(decode("/", out, 1, NULL, 0), -400);
	assert_int_equal(decode("/", out, 0, NULL, 0), -400);
}

/* ---- query parameters ---- */

static void expect_param(const char *query, const char *name, int want, const char *value)
{
	char out[64];
	int r = http_query_param(query, strlen(query), name, out, sizeof(out));

	assert_int_equal(r, want);
	if (r >= 0)
		assert_string_equal(out, value);
}

static void query_param_is_found_and_decoded(void **state)
{
	(void)state;
	expect_param("a=1&room=dev%20x&b", "room", 5, "dev x");
	expect_param("a=1&room=dev%20x&b", "a", 1, "1");
}

static void query_param_plus_is_space(void **state)
{
	(void)state;
	expect_param("room=dev+x%2B1", "room", 7, "dev x+1");
}

static void query_param_absent_is_minus_1(void **state)
{
	char out[8];

	(void)state;
	expect_param("a=1&room=dev", "nick", -1, NULL);
	expect_param("roomy=1&xroom=2", "room", -1, NULL);
	expect_param("", "room", -1, NULL);
	assert_int_equal(http_query_param(NULL, 0, "room", out, sizeof(out)), -1);
}

static void query_param_without_value_is_empty(void **state)
{
	(void)state;
	expect_param("a=1&room=dev%20x&b", "b", 0, "");
	expect_param("b=&c", "b", 0, "");
}

static void query_param_bad_escape_is_minus_1(void **state)
{
	(void)state;
	expect_param("room=dev%2", "room", -1, NULL);
	expect_param("room=dev%zz&x=1", "room", -1, NULL);
	expect_param("x=%zz&room=ok", "room", 2, "ok");
}

/* Found by fuzz_http: a raw NUL used to be copied, cutting the string. */
static void query_param_nul_is_minus_1(void **state)
{
	static const char query[] = "room=\x12\0v&x=1";
	char out[16];

	(void)state;
	assert_int_equal(http_query_param(query, sizeof(query) - 1, "room", out, sizeof(out)), -1);
	expect_param("room=a%00b", "room", -1, NULL);
}

static void query_param_first_match_wins(void **state)
{
	(void)state;
	expect_param("room=a&room=b", "room", 1, "a");
	expect_param("room=a=b", "room", 3, "a=b");
}

static void query_param_must_fit_the_output(void **state)
{
	char out[4];

	(void)state;
	assert_int_equal(http_query_param("n=abc", 5, "n", out, sizeof(out)), 3);
	assert_string_equal(out, "abc");
	assert_int_equal(http_query_param("n=abcd", 6, "n", out, sizeof(out)), -1);
	assert_int_equal(http_query_param("n=", 2, "n", out, 0), -1);
}

/* ---- responses ---- */

#define COMMON_HEADERS                                                                           \
	"X-Content-Type-Options: nosniff\r\n"                                                    \
	"Referrer-Policy: no-referrer\r\n"                                                       \
	"Content-Security-Policy: default-src 'self'; connect-src 'self'; img-src 'self' data:; " \
	"style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "              \
	"frame-ancestors 'none'; form-action 'self'\r\n"

static void common_headers_are_exact(void **state)
{
	(void)state;
	assert_string_equal(HTTP_COMMON_HEADERS, COMMON_HEADERS);
}

static void reasons_are_known_for_every_status_we_send(void **state)
{
	static const struct {
		int status;
		const char *reason;
	} reasons[] = {
		{ 101, "Switching Protocols" },
		{ 200, "OK" },
		{ 304, "Not Modified" },
		{ 400, "Bad Request" },
		{ 401, "Unauthorized" },
		{ 403, "Forbidden" },
		{ 404, "Not Found" },
		{ 405, "Method Not Allowed" },
		{ 408, "Request Timeout" },
		{ 411, "Length Required" },
		{ 413, "Content Too Large" },
		{ 414, "URI Too Long" },
		{ 421, "Misdirected Request" },
		{ 426, "Upgrade Required" },
		{ 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" },
		{ 501, "Not Implemented" },
		{ 503, "Service Unavailable" },
		{ 505, "HTTP Version Not Supported" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		assert_string_equal(http_reason(reasons[i].status), reasons[i].reason);
	assert_string_equal(http_reason(418), "Unknown");
	assert_string_equal(http_reason(-400), "Unknown");
}

static void format_head_lays_out_a_keep_alive_response(void **state)
{
	static const char want[] = "HTTP/1.1 200 OK\r\n"
				   "Server: ringcast\r\n"
				   "Content-Type: text/html; charset=utf-8\r\n"
				   "Content-Length: 1234\r\n" COMMON_HEADERS
				   "Cache-Control: no-cache\r\n"
				   "\r\n";
	char out[1024];

	(void)state;
	assert_int_equal(http_format_head(out, sizeof(out), 200, "text/html; charset=utf-8", 1234,
					  true, "Cache-Control: no-cache\r\n"),
			 sizeof(want) - 1);
	assert_string_equal(out, want);
}

static void format_head_says_connection_close_when_not_keeping_alive(void **state)
{
	static const char want[] = "HTTP/1.1 404 Not Found\r\n"
				   "Server: ringcast\r\n"
				   "Content-Type: text/plain; charset=utf-8\r\n"
				   "Content-Length: 10\r\n"
				   "Connection: close\r\n" COMMON_HEADERS "\r\n";
	char out[1024];

	(void)state;
	assert_int_equal(http_format_head(out, sizeof(out), 404, "text/plain; charset=utf-8", 10,
					  false, NULL),
			 sizeof(want) - 1);
	assert_string_equal(out, want);
}

static void format_head_omits_a_null_content_type(void **state)
{
	static const char want[] = "HTTP/1.1 400 Bad Request\r\n"
				   "Server: ringcast\r\n"
				   "Content-Length: 0\r\n"
				   "Connection: close\r\n" COMMON_HEADERS "\r\n";
	char out[1024];

	(void)state;
	assert_int_equal(http_format_head(out, sizeof(out), 400, NULL, 0, false, NULL),
			 sizeof(want) - 1);
	assert_string_equal(out, want);
}

static void format_head_sends_no_content_length_on_101(void **state)
{
	static const char extra[] = "Upgrade: websocket\r\n"
				    "Connection: Upgrade\r\n"
				    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n";
	static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
				   "Server: ringcast\r\n" COMMON_HEADERS
				   "Upgrade: websocket\r\n"
				   "Connection: Upgrade\r\n"
				   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
				   "\r\n";
	char out[1024];

	(void)state;
	assert_int_equal(http_format_head(out, sizeof(out), 101, NULL, 0, true, extra),
			 sizeof(want) - 1);
	assert_string_equal(out, want);
}

static void format_head_returns_0_when_it_does_not_fit(void **state)
{
	char out[1024];
	size_t n = http_format_head(out, sizeof(out), 200, "image/png", 5, true, NULL);

	(void)state;
	assert_true(n > 0);
	/* the NUL needs a byte too */
	assert_int_equal(http_format_head(out, n, 200, "image/png", 5, true, NULL), 0);
	assert_int_equal(http_format_head(out, n + 1, 200, "image/png", 5, true, NULL), n);
	assert_int_equal(http_format_head(NULL, 0, 200, "image/png", 5, true, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(request_line_and_headers_fill_the_request),
		cmocka_unit_test(bare_lf_line_endings_are_accepted),
		cmocka_unit_test(bare_cr_is_400),
		cmocka_unit_test(empty_lines_before_the_request_line_are_skipped),
		cmocka_unit_test(method_must_be_a_token),
		cmocka_unit_test(extension_methods_are_accepted),
		cmocka_unit_test(method_is_case_sensitive),
		cmocka_unit_test(target_must_be_visible_ascii),
		cmocka_unit_test(empty_target_is_400),
		cmocka_unit_test(missing_version_is_400),
		cmocka_unit_test(http_1_0_and_1_1_are_accepted),
		cmocka_unit_test(other_versions_are_505),
		cmocka_unit_test(malformed_versions_are_400),
		cmocka_unit_test(whitespace_before_the_colon_is_400),
		cmocka_unit_test(header_without_colon_is_400),
		cmocka_unit_test(header_with_empty_name_is_400),
		cmocka_unit_test(header_name_must_be_a_token),
		cmocka_unit_test(obs_fold_is_400),
		cmocka_unit_test(control_chars_in_values_are_400),
		cmocka_unit_test(htab_and_obs_text_in_values_are_accepted),
		cmocka_unit_test(values_are_trimmed_of_whitespace),
		cmocka_unit_test(sixty_four_headers_are_accepted),
		cmocka_unit_test(sixty_five_headers_are_431_before_the_head_ends),
		cmocka_unit_test(head_of_8192_bytes_is_accepted),
		cmocka_unit_test(head_without_end_is_431_at_8193_bytes),
		cmocka_unit_test(complete_head_over_8192_bytes_is_431),
		cmocka_unit_test(method_of_32_bytes_is_accepted),
		cmocka_unit_test(method_over_32_bytes_is_501_as_soon_as_seen),
		cmocka_unit_test(target_of_2048_bytes_is_accepted),
		cmocka_unit_test(target_over_2048_bytes_is_414_as_soon_as_seen),
		cmocka_unit_test(pipelined_requests_parse_one_at_a_time),
		cmocka_unit_test(pipelined_bytes_past_8192_leave_a_small_head_alone),
		cmocka_unit_test(content_length_is_parsed),
		cmocka_unit_test(content_length_is_zero_when_absent),
		cmocka_unit_test(content_length_must_be_digits),
		cmocka_unit_test(content_length_overflow_is_400),
		cmocka_unit_test(duplicate_content_length_with_the_same_value_is_accepted),
		cmocka_unit_test(duplicate_content_length_with_different_values_is_400),
		cmocka_unit_test(transfer_encoding_is_501),
		cmocka_unit_test(transfer_encoding_with_content_length_is_400),
		cmocka_unit_test(missing_host_on_1_1_is_400),
		cmocka_unit_test(missing_host_on_1_0_is_accepted),
		cmocka_unit_test(duplicate_host_is_400),
		cmocka_unit_test(http_1_1_keeps_alive_by_default),
		cmocka_unit_test(connection_close_ends_http_1_1),
		cmocka_unit_test(http_1_0_closes_by_default),
		cmocka_unit_test(http_1_0_keeps_alive_with_the_keep_alive_token),
		cmocka_unit_test(find_header_ignores_case_and_returns_the_first),
		cmocka_unit_test(header_count_counts_every_line_of_a_name),
		cmocka_unit_test(has_token_finds_an_element_of_a_list),
		cmocka_unit_test(has_token_ignores_case),
		cmocka_unit_test(has_token_needs_the_whole_element),
		cmocka_unit_test(has_token_checks_every_header_line),
		cmocka_unit_test(has_token_skips_empty_elements),
		cmocka_unit_test(has_token_is_false_for_an_absent_header),
		cmocka_unit_test(websocket_upgrade_request_parses),
		cmocka_unit_test(path_decodes_percent_escapes),
		cmocka_unit_test(path_must_start_with_a_slash),
		cmocka_unit_test(absolute_form_is_400),
		cmocka_unit_test(bad_percent_escape_is_400),
		cmocka_unit_test(encoded_nul_is_400),
		cmocka_unit_test(control_chars_are_400),
		cmocka_unit_test(backslash_is_400),
		cmocka_unit_test(encoded_slash_is_400),
		cmocka_unit_test(dot_segments_are_400),
		cmocka_unit_test(dots_inside_names_are_kept),
		cmocka_unit_test(double_slash_stays_inside_the_site),
		cmocka_unit_test(query_is_split_off_undecoded),
		cmocka_unit_test(fragment_is_400),
		cmocka_unit_test(path_must_fit_the_output),
		cmocka_unit_test(query_param_is_found_and_decoded),
		cmocka_unit_test(query_param_plus_is_space),
		cmocka_unit_test(query_param_absent_is_minus_1),
		cmocka_unit_test(query_param_without_value_is_empty),
		cmocka_unit_test(query_param_bad_escape_is_minus_1),
		cmocka_unit_test(query_param_nul_is_minus_1),
		cmocka_unit_test(query_param_first_match_wins),
		cmocka_unit_test(query_param_must_fit_the_output),
		cmocka_unit_test(common_headers_are_exact),
		cmocka_unit_test(reasons_are_known_for_every_status_we_send),
		cmocka_unit_test(format_head_lays_out_a_keep_alive_response),
		cmocka_unit_test(format_head_says_connection_close_when_not_keeping_alive),
		cmocka_unit_test(format_head_omits_a_null_content_type),
		cmocka_unit_test(format_head_sends_no_content_length_on_101),
		cmocka_unit_test(format_head_returns_0_when_it_does_not_fit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
