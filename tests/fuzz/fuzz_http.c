/* fuzz_http.c: libFuzzer harness for the request head parser, the path
 * decoder and the query parameter decoder.
 *
 * Besides "no crash, no sanitizer report" it checks what the rest of the
 * server relies on: a head length never exceeds the input or the limit,
 * shorter prefixes of the same bytes agree with the whole (the server sees
 * every prefix as bytes trickle in), a decoded path that is accepted
 * can never climb out of the site, and the Host rule of a loopback
 * listener lets through nothing but loopback names. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "origin.h"
#include "fuzz_check.h"

static void check_status(int r)
{
	CHECK(r >= 0 || r == -400 || r == -414 || r == -431 || r == -501 || r == -505);
}

/* A prefix of an input that parsed to r must be still incomplete, or have
 * reached the same answer already. */
static void check_prefix(const char *data, size_t n, int r)
{
	struct http_request req;
	int p = http_parse_request(data, n, &req);

	if (r > 0 && (size_t)r <= n)
		CHECK(p == r);
	else
		CHECK(p == HTTP_INCOMPLETE || (r < 0 && p == r));
}

static void check_path(const char *target, size_t len)
{
	char out[HTTP_MAX_PATH];
	const char *query;
	size_t query_len, n;

	if (http_decode_path(target, len, out, sizeof(out), &query, &query_len) != 0)
		return;
	n = strlen(out);
	CHECK(n < sizeof(out) && n <= len);
	CHECK(out[0] == '/');
	CHECK(!strstr(out, "/../") && !strstr(out, "/./") && !strchr(out, '\\'));
	CHECK(strcmp(out, "/..") != 0 && strcmp(out, "/.") != 0);
	CHECK(!(n >= 3 && strcmp(out + n - 3, "/..") == 0));
	CHECK(!(n >= 2 && strcmp(out + n - 2, "/.") == 0));
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
	if (query) {
		char value[64];
		int v;

		CHECK(query > target && query + query_len == target + len);
		v = http_query_param(query, query_len, "room", value, sizeof(value));
		CHECK(v >= -1 && v < (int)sizeof(value));
		if (v >= 0)
			CHECK(strlen(value) == (size_t)v);
	} else {
		CHECK(query_len == 0 && !memchr(target, '?', len));
	}
}

/* The name part of a Host value: up to the port's colon, or the
 * bracketed IPv6 address. */
static size_t name_part(const char *h, size_t n)
{
	const char *end = n && h[0] == '[' ? memchr(h, ']', n) : memchr(h, ':', n);
	if (!end)
		return n;
	return (size_t)(end - h) + (h[0] == '[');
}

static bool name_is(const char *h, size_t n, const char *name)
{
	return n == strlen(name) && strncasecmp(h, name, n) == 0;
}

/* With no --allow-host, a Host that passes names localhost, a 127.x
 * address or a bracketed IPv6 one; with a list, also a listed name.
 * Origin checks must never crash on any Host/Origin pair. */
static void check_host_and_origin(const char *host, size_t host_len, const char *origin, size_t origin_len)
{
	static const char *const allow[] = { "chat.example", "other.example:8443" };
	size_t n = name_part(host, host_len);
	if (origin_host_allowed(host, host_len, NULL, 0))
		CHECK(name_is(host, n, "localhost") || (n > 4 && strncmp(host, "127.", 4) == 0) ||
		      (n > 2 && host[0] == '[' && host[n - 1] == ']'));
	else if (origin_host_allowed(host, host_len, allow, 2))
		CHECK(name_is(host, n, "chat.example") || name_is(host, host_len, "other.example:8443"));
	origin_allowed(origin, origin_len, host, host_len, allow, 2);
	origin_allowed(origin, origin_len, host, host_len, NULL, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct http_request req;
	int r = http_parse_request(in, size, &req);

	check_status(r);
	check_prefix(in, size / 2, r);
	if (size > 0)
		check_prefix(in, size - 1, r);

	if (r > 0) {
		CHECK((size_t)r <= size && r <= HTTP_MAX_HEAD);
		CHECK(http_parse_request(in, (size_t)r, &req) == r);
		CHECK(req.target >= in && req.target + req.target_len <= in + r);
		CHECK(req.target_len <= HTTP_MAX_TARGET && req.num_headers <= HTTP_MAX_HEADERS);
		CHECK(req.minor_version == 0 || req.minor_version == 1);
		for (size_t i = 0; i < req.num_headers; i++) {
			const struct http_header *h = &req.headers[i];

			CHECK(h->name >= in && h->value + h->value_len <= in + r);
			CHECK(h->name_len > 0);
		}
		if (req.minor_version == 1)
			CHECK(req.keep_alive == !http_header_has_token(&req, "Connection", "close"));
		check_path(req.target, req.target_len);
		const struct http_header *host = http_find_header(&req, "Host");
		const struct http_header *origin = http_find_header(&req, "Origin");
		if (host)
			check_host_and_origin(host->value, host->value_len, origin ? origin->value : NULL,
					      origin ? origin->value_len : 0);
	}

	/* The decoders also see raw bytes, not only what the parser let by. */
	check_path(in, size);
	return 0;
}
