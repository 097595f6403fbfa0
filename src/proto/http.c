/* http.c: HTTP/1.1 request heads, parsed as a pure function over bytes.
 *
 * The caller hands over everything it has read so far, every time, and the
 * parser keeps no state between calls, so it rescans. To keep that cheap
 * when a head trickles in a byte at a time, each call only walks the request
 * line (it has errors worth reporting early: 414, bad version) and then hunts
 * for the blank line with memchr. Header lines are parsed once, when the
 * head is complete. The worst case, a 2 KiB target and then 6 KiB of header
 * sent a byte at a time, costs about 6 ms of CPU in all; a head with the
 * usual short request line costs well under that. */
#include "http.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Longer than any registered method ("UPDATEREDIRECTREF" has 17 bytes), so
 * one this long is one we do not implement (RFC 9110 §9.1: 501). The bound
 * also keeps a trickled request line from being rescanned 8 KiB at a time. */
#define METHOD_MAX 32

const char HTTP_COMMON_HEADERS[] =
	"X-Content-Type-Options: nosniff\r\n"
	"Referrer-Policy: no-referrer\r\n"
	"Content-Security-Policy: default-src 'self'; connect-src 'self'; img-src 'self' data:; "
	"style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
	"frame-ancestors 'none'; form-action 'self'\r\n";

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static unsigned char to_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* RFC 9110 §5.6.2: the characters of methods and header names. */
static bool is_tchar(unsigned char c)
{
	unsigned char l = to_lower(c);

	if (is_digit(c) || (l >= 'a' && l <= 'z'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c);
}

/* Visible ASCII: all a request-target may hold. Browsers percent-encode
 * everything else, so raw UTF-8 here is a broken or hostile client. */
static bool is_vchar(unsigned char c)
{
	return c > 0x20 && c < 0x7f;
}

/* Header values: HTAB, SP, visible ASCII and obs-text; no other controls. */
static bool is_field_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* a[0..n) equals the C string b, ignoring ASCII case. */
static bool case_eq(const char *a, size_t n, const char *b)
{
	for (size_t i = 0; i < n; i++) {
		if (!b[i] || to_lower(a[i]) != to_lower(b[i]))
			return false;
	}
	return b[n] == '\0';
}

/* A line ending: CRLF, or a bare LF (accepted like nginx does). Returns its
 * length, HTTP_INCOMPLETE at the end of the bytes, -400 for anything else,
 * a CR followed by something other than LF included. */
static int parse_eol(const char *p, size_t n)
{
	if (n == 0)
		return HTTP_INCOMPLETE;
	if (p[0] == '\n')
		return 1;
	if (p[0] != '\r')
		return -400;
	if (n == 1)
		return HTTP_INCOMPLETE;
	return p[1] == '\n' ? 2 : -400;
}

/* "HTTP/" DIGIT [ "." DIGIT ] and the line ending. Anything of that shape
 * other than 1.0 or 1.1 ("HTTP/2.0", "HTTP/0.9", "HTTP/3") is -505; what
 * does not have the shape is -400. Returns the length through the EOL. */
static int parse_version(const char *p, size_t n, int *minor)
{
	static const char name[] = "HTTP/";
	size_t i;
	int major, r;

	for (i = 0; i < sizeof(name) - 1; i++) {
		if (i == n)
			return HTTP_INCOMPLETE;
		if (p[i] != name[i])
			return -400;
	}
	if (i == n)
		return HTTP_INCOMPLETE;
	if (!is_digit(p[i]))
		return -400;
	major = p[i++] - '0';
	*minor = -1;
	if (i < n && p[i] == '.') {
		if (++i == n)
			return HTTP_INCOMPLETE;
		if (!is_digit(p[i]))
			return -400;
		*minor = p[i++] - '0';
	}
	r = parse_eol(p + i, n - i);
	if (r <= 0)
		return r;
	if (major != 1 || *minor < 0 || *minor > 1)
		return -505;
	return (int)i + r;
}

/* METHOD SP request-target SP HTTP-version EOL, checked as far as the bytes
 * go, so a bad or oversized request line is refused before its end arrives.
 * Returns the line's length with its EOL. */
static int parse_request_line(const char *p, size_t n, struct http_request *req)
{
	size_t i = 0, t;
	int r;

	while (i < n && is_tchar(p[i])) {
		if (i == METHOD_MAX)
			return -501;
		i++;
	}
	if (i == n)
		return HTTP_INCOMPLETE;
	if (i == 0 || p[i] != ' ')
		return -400;
	req->method = p;
	req->method_len = i;

	t = ++i;
	while (i < n && is_vchar(p[i])) {
		if (i - t == HTTP_MAX_TARGET)
			return -414;
		i++;
	}
	if (i == n)
		return HTTP_INCOMPLETE;
	if (i == t || p[i] != ' ')
		return -400;
	req->target = p + t;
	req->target_len = i - t;

	r = parse_version(p + i + 1, n - i - 1, &req->minor_version);
	if (r <= 0)
		return r;
	return (int)(i + 1) + r;
}

/* The head ends at the first empty line after the request line. Lines are
 * counted on the way, so a flood of tiny header lines is 431 as soon as one
 * too many has arrived. Returns the head's length. */
static int find_head_end(const char *buf, size_t pos, size_t n)
{
	size_t lines = 0;

	for (;;) {
		const char *lf = memchr(buf + pos, '\n', n - pos);
		size_t line_len;

		if (!lf)
			return HTTP_INCOMPLETE;
		line_len = (size_t)(lf - (buf + pos));
		if (line_len == 0 || (line_len == 1 && buf[pos] == '\r'))
			return (int)(lf + 1 - buf);
		if (++lines > HTTP_MAX_HEADERS)
			return -431;
		pos += line_len + 1;
	}
}

/* name ":" OWS value OWS, without its EOL. A line starting with whitespace
 * is obs-fold (or whitespace before the first name), which RFC 9112 §5.2
 * lets a server reject; whitespace before the colon must be (§5.1). */
static int parse_header_line(const char *line, size_t len, struct http_header *h)
{
	size_t i = 0, v, e;

	while (i < len && is_tchar(line[i]))
		i++;
	if (i == 0 || i == len || line[i] != ':')
		return -400;
	v = i + 1;
	while (v < len && is_ows(line[v]))
		v++;
	e = len;
	while (e > v && is_ows(line[e - 1]))
		e--;
	for (size_t k = v; k < e; k++) {
		if (!is_field_char(line[k]))
			return -400;
	}
	h->name = line;
	h->name_len = i;
	h->value = line + v;
	h->value_len = e - v;
	return 0;
}

/* Header lines in buf[pos..end), which find_head_end has already bounded to
 * HTTP_MAX_HEADERS lines ending in the blank line. */
static int parse_header_lines(const char *buf, size_t pos, size_t end, struct http_request *req)
{
	req->num_headers = 0;
	for (;;) {
		const char *line = buf + pos;
		size_t len = (size_t)((const char *)memchr(line, '\n', end - pos) - line);
		int r;

		pos += len + 1;
		if (len && line[len - 1] == '\r')
			len--;
		if (len == 0)
			return 0;
		r = parse_header_line(line, len, &req->headers[req->num_headers++]);
		if (r < 0)
			return r;
	}
}

/* Content-Length = 1*DIGIT, refused when it does not fit in 64 bits. */
static int parse_length(const char *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned char)p[i] - '0';

		if (!is_digit(p[i]) || v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* The rules that span header lines: message framing (RFC 9112 §6), Host
 * (§3.2) and persistence (§9.3). Transfer-Encoding together with
 * Content-Length is the shape of a request-smuggling attempt, so it is a
 * plain 400 rather than the 501 a lone Transfer-Encoding gets: this server
 * takes no request bodies and so never needs to decode one. */
static int check_head(struct http_request *req)
{
	bool has_length = false, has_te = false;
	size_t hosts = 0;

	req->content_length = 0;
	for (size_t i = 0; i < req->num_headers; i++) {
		const struct http_header *h = &req->headers[i];
		uint64_t v;

		if (case_eq(h->name, h->name_len, "content-length")) {
			if (parse_length(h->value, h->value_len, &v) < 0 ||
			    (has_length && v != req->content_length))
				return -400;
			req->content_length = v;
			has_length = true;
		} else if (case_eq(h->name, h->name_len, "transfer-encoding")) {
			has_te = true;
		} else if (case_eq(h->name, h->name_len, "host")) {
			hosts++;
		}
	}
	if (has_te)
		return has_length ? -400 : -501;
	if (hosts > 1 || (req->minor_version == 1 && hosts == 0))
		return -400;

	if (req->minor_version == 1)
		req->keep_alive = !http_header_has_token(req, "connection", "close");
	else
		req->keep_alive = http_header_has_token(req, "connection", "keep-alive");
	return 0;
}

static int parse_head(const char *buf, size_t n, struct http_request *req)
{
	size_t pos = 0, end;
	int r;

	/* RFC 9112 §2.2: ignore empty lines before the request line. The loop
	 * ends on -400 at the request line's first byte, or on a lone CR at the
	 * end, which may yet become an empty line. */
	while ((r = parse_eol(buf + pos, n - pos)) > 0)
		pos += (size_t)r;
	if (r == HTTP_INCOMPLETE)
		return r;

	r = parse_request_line(buf + pos, n - pos, req);
	if (r <= 0)
		return r;
	pos += (size_t)r;

	r = find_head_end(buf, pos, n);
	if (r <= 0)
		return r;
	end = (size_t)r;

	r = parse_header_lines(buf, pos, end, req);
	if (r == 0)
		r = check_head(req);
	return r < 0 ? r : (int)end;
}

int http_parse_request(const char *buf, size_t len, struct http_request *req)
{
	/* Never look past the limit: whatever the bytes after it say, the
	 * answer is the same for this buffer as for its 8193-byte prefix. */
	int r = parse_head(buf, len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD, req);

	if (r == HTTP_INCOMPLETE && len > HTTP_MAX_HEAD)
		return -431;
	return r;
}

const struct http_header *http_find_header(const struct http_request *req, const char *name)
{
	for (size_t i = 0; i < req->num_headers; i++) {
		if (case_eq(req->headers[i].name, req->headers[i].name_len, name))
			return &req->headers[i];
	}
	return NULL;
}

size_t http_header_count(const struct http_request *req, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < req->num_headers; i++) {
		if (case_eq(req->headers[i].name, req->headers[i].name_len, name))
			n++;
	}
	return n;
}

/* Is token one element of the comma-separated list v[0..n)? */
static bool list_has_token(const char *v, size_t n, const char *token)
{
	size_t i = 0;

	for (;;) {
		const char *comma = memchr(v + i, ',', n - i);
		size_t e = comma ? (size_t)(comma - v) : n;
		size_t s = i, t = e;

		while (s < t && is_ows(v[s]))
			s++;
		while (t > s && is_ows(v[t - 1]))
			t--;
		if (case_eq(v + s, t - s, token))
			return true;
		if (!comma)
			return false;
		i = e + 1;
	}
}

bool http_header_has_token(const struct http_request *req, const char *name, const char *token)
{
	for (size_t i = 0; i < req->num_headers; i++) {
		const struct http_header *h = &req->headers[i];

		if (case_eq(h->name, h->name_len, name) &&
		    list_has_token(h->value, h->value_len, token))
			return true;
	}
	return false;
}

bool http_method_is(const struct http_request *req, const char *m)
{
	return strlen(m) == req->method_len && memcmp(req->method, m, req->method_len) == 0;
}

static int hex_value(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	c = to_lower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The byte encoded by "%XY" at p (p[0] is '%'), or -1 unless exactly two
 * hex digits follow within p[0..n). */
static int percent_byte(const char *p, size_t n)
{
	int hi, lo;

	if (n < 3)
		return -1;
	hi = hex_value(p[1]);
	lo = hex_value(p[2]);
	return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static bool is_dot_segment(const char *s, size_t n)
{
	return (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.');
}

/* Only origin-form is accepted: this server is not a proxy, and browsers
 * send absolute-form only to proxies (RFC 9112 §3.2.2 asks servers to accept
 * it, but nothing sends it here and one form is less to get wrong).
 *
 * Segments are checked after decoding and split only on raw '/', which is
 * safe because an encoded '/' is refused. Control bytes other than NUL are
 * refused too, raw or decoded: no file we serve has them in its name. "//"
 * is left as is: lookups are exact matches in memory, so "//etc/passwd"
 * names no file and is a 404, never a path outside the site. */
int http_decode_path(const char *target, size_t target_len, char *out, size_t cap,
		     const char **query, size_t *query_len)
{
	const char *q = memchr(target, '?', target_len);
	size_t path_len = q ? (size_t)(q - target) : target_len;
	size_t o = 0, seg = 0;

	if (path_len == 0 || target[0] != '/' || memchr(target, '#', target_len))
		return -400;
	for (size_t i = 0; i < path_len; i++) {
		int c = (unsigned char)target[i];

		if (c == '%') {
			c = percent_byte(target + i, path_len - i);
			if (c < 0 || c == '/')
				return -400;
			i += 2;
		}
		if (c < 0x20 || c == 0x7f || c == '\\' || o + 1 >= cap)
			return -400;
		if (c == '/') {
			if (is_dot_segment(out + seg, o - seg))
				return -400;
			seg = o + 1;
		}
		out[o++] = (char)c;
	}
	if (is_dot_segment(out + seg, o - seg))
		return -400;
	out[o] = '\0';
	*query = q ? q + 1 : NULL;
	*query_len = q ? target_len - path_len - 1 : 0;
	return 0;
}

/* Percent-decode a query value, '+' as space, into out with its NUL. */
static int decode_query_value(const char *v, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0;; i++) {
		int c;

		/* room for this byte, or for the NUL at the end */
		if (o >= cap)
			return -1;
		if (i == n)
			break;
		c = (unsigned char)v[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			c = percent_byte(v + i, n - i);
			i += 2;
		}
		/* a bad escape, or a NUL (raw or %00) that would cut the value short */
		if (c <= 0)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return (int)o;
}

/* Names are compared as sent, undecoded: our own client never escapes
 * them. A name without '=' has the empty value. The first match wins. */
int http_query_param(const char *query, size_t query_len, const char *name, char *out, size_t cap)
{
	size_t name_len = strlen(name);
	size_t i = 0;

	while (i < query_len) {
		const char *p = query + i;
		const char *amp = memchr(p, '&', query_len - i);
		size_t len = amp ? (size_t)(amp - p) : query_len - i;
		const char *eq = memchr(p, '=', len);
		size_t key_len = eq ? (size_t)(eq - p) : len;

		if (key_len == name_len && memcmp(p, name, name_len) == 0) {
			size_t skip = eq ? key_len + 1 : len;

			return decode_query_value(p + skip, len - skip, out, cap);
		}
		i += len + 1;
	}
	return -1;
}

const char *http_reason(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 302: return "Found";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 421: return "Misdirected Request";
	case 426: return "Upgrade Required";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

size_t http_format_head(char *out, size_t cap, int status, const char *content_type,
			uint64_t content_length, bool keep_alive, const char *extra)
{
	char length[48] = "";
	int n;

	/* RFC 9110 §8.6: no Content-Length on 1xx or 204, so a 101 handshake
	 * reply carries none. */
	if (status >= 200 && status != 204)
		snprintf(length, sizeof(length), "Content-Length: %" PRIu64 "\r\n", content_length);
	n = snprintf(out, cap,
		     "HTTP/1.1 %d %s\r\n"
		     "Server: ringcast\r\n"
		     "%s%s%s%s%s%s%s\r\n",
		     status, http_reason(status),
		     content_type ? "Content-Type: " : "",
		     content_type ? content_type : "",
		     content_type ? "\r\n" : "",
		     length,
		     keep_alive ? "" : "Connection: close\r\n",
		     HTTP_COMMON_HEADERS,
		     extra ? extra : "");
	if (n < 0 || (size_t)n >= cap)
		return 0;
	return (size_t)n;
}
