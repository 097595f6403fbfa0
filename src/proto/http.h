/* http.h: HTTP/1.1 request heads, parsed as a pure function over bytes.
 *
 * The parser points into the caller's buffer and allocates nothing. It only
 * handles what this server needs: request line, headers, and the few rules
 * that decide between a static file, a WebSocket upgrade and an error. */
#ifndef RINGCAST_HTTP_H
#define RINGCAST_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEAD 8192     /* request head limit: over it → 431 */
#define HTTP_MAX_TARGET 2048   /* request-target limit: over it → 414 */
#define HTTP_MAX_HEADERS 64    /* more header lines → 431 */
#define HTTP_MAX_PATH (HTTP_MAX_TARGET + 1) /* decoded path buffer: any target that passed 414 fits */

struct http_header {
	const char *name;
	size_t name_len;
	const char *value; /* leading/trailing whitespace trimmed */
	size_t value_len;
};

struct http_request {
	const char *method;
	size_t method_len;
	const char *target;  /* raw request-target: path plus optional ?query */
	size_t target_len;
	int minor_version;   /* HTTP/1.<minor> */
	struct http_header headers[HTTP_MAX_HEADERS];
	size_t num_headers;
	uint64_t content_length; /* 0 when absent */
	bool keep_alive;         /* HTTP/1.1 default, unless Connection: close; 1.0 needs keep-alive */
};

/* Result of http_parse_request when it is not a head length. */
enum {
	HTTP_INCOMPLETE = 0,  /* no complete head yet: read more */
};

/* Parse a request head from buf[0..len), everything read so far: the
 * parser keeps no state, so call it again with the grown buffer when more
 * bytes arrive. Returns:
 *   > 0             length of the complete head (through the blank line);
 *                   bytes after it are the next pipelined request;
 *   HTTP_INCOMPLETE the head is not complete yet (and within limits);
 *   < 0             minus the HTTP status to answer with, then close:
 *                   -400 malformed, -431 head too large or more than
 *                   HTTP_MAX_HEADERS header lines, -414 target too long,
 *                   -505 HTTP version other than 1.0/1.1, -501 Transfer-Encoding
 *                   alone or a method longer than 32 bytes (Transfer-Encoding
 *                   with Content-Length is -400: a smuggling attempt).
 * Bytes before a complete head are never trusted: a head over HTTP_MAX_HEAD
 * without its blank line is -431 as soon as that is known, and 414 and the
 * request line's errors come as soon as their bytes arrive. Lines may end in
 * CRLF or a bare LF; empty lines before the request line are skipped.
 * *req is only meaningful when the result is > 0. */
int http_parse_request(const char *buf, size_t len, struct http_request *req);

/* Case-insensitive header lookup; NULL when absent. */
const struct http_header *http_find_header(const struct http_request *req, const char *name);

/* How many header lines are named `name` (case-insensitively)? */
size_t http_header_count(const struct http_request *req, const char *name);

/* Does header `name` contain `token` as one element of a comma-separated
 * list, compared case-insensitively (e.g. Connection: keep-alive, Upgrade)? */
bool http_header_has_token(const struct http_request *req, const char *name, const char *token);

/* Does the method equal m exactly (methods are case-sensitive)? */
bool http_method_is(const struct http_request *req, const char *m);

/* Split the target into path and query and percent-decode the path into
 * out (NUL-terminated, at most cap bytes including NUL). Returns 0 on success,
 * or -400 for anything that must never reach the file system: not starting
 * with '/' (so absolute-form, which only proxies need, is refused), bad
 * %-escapes, encoded '/', '\\' raw or encoded, NUL and other control bytes,
 * '.' and '..' segments (also when encoded), '#', or a path that does not
 * fit. *query / *query_len get the part after '?' (raw, not decoded), or
 * NULL / 0 when there is no '?'; both are only set on success. */
int http_decode_path(const char *target, size_t target_len, char *out, size_t cap,
		     const char **query, size_t *query_len);

/* Find a query parameter and percent-decode its value (+ means space) into
 * out, NUL-terminated; returns its length, or -1 when absent, invalid
 * (bad escape, %00) or too long. Names are compared undecoded; a name
 * without '=' has the empty value; the first match wins. */
int http_query_param(const char *query, size_t query_len, const char *name, char *out, size_t cap);

/* Reason phrase for a status code ("Not Found"); "Unknown" otherwise. */
const char *http_reason(int status);

/* Headers every response carries (security headers: nosniff, CSP, referrer
 * policy), each line ending in CRLF. */
extern const char HTTP_COMMON_HEADERS[];

/* Format a complete response head into out, NUL-terminated. extra is
 * additional header lines ending in CRLF, or NULL; content_type NULL leaves
 * out Content-Type. 1xx and 204 get no Content-Length (RFC 9110 §8.6).
 * Returns the length, or 0 when it would not fit. */
size_t http_format_head(char *out, size_t cap, int status, const char *content_type,
			uint64_t content_length, bool keep_alive, const char *extra);

#endif
