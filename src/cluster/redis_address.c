/* redis_address.c: redis://[user:password@]host[:port][/db], parsed and
 * its host resolved once, at start-up.
 *
 * No percent-decoding: a password with '@' or '/' in it works (the last
 * '@' ends it), one with a '%' escape is taken literally. Error messages
 * never repeat the URL: it may hold the password. */
#include "redis_link.h"

#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_PORT 6379

static int fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
	return -1;
}

/* Copy [from, to) into dst of dst_len bytes; false when it does not fit. */
static bool copy_part(char *dst, size_t dst_len, const char *from, const char *to)
{
	size_t n = (size_t)(to - from);
	if (n >= dst_len)
		return false;
	memcpy(dst, from, n);
	dst[n] = '\0';
	return true;
}

/* Digits only, at least one, no larger than max; *end after them. */
static bool parse_number(const char *s, unsigned long max, unsigned long *out, const char **end)
{
	unsigned long v = 0;
	const char *p = s;
	while (isdigit((unsigned char)*p)) {
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > max)
			return false;
		p++;
	}
	*out = v;
	*end = p;
	return p != s;
}

/* "user:password" or ":password" in [from, to). */
static int parse_userinfo(const char *from, const char *to, struct redis_address *out, char *err,
			  size_t err_len)
{
	const char *colon = memchr(from, ':', (size_t)(to - from));
	if (!colon)
		return fail(err, err_len,
			    "redis URL: expected user:password@ or :password@ before the host");
	if (colon + 1 == to)
		return fail(err, err_len, "redis URL: empty password");
	if (!copy_part(out->user, sizeof(out->user), from, colon))
		return fail(err, err_len, "redis URL: user name longer than %zu bytes",
			    sizeof(out->user) - 1);
	if (!copy_part(out->password, sizeof(out->password), colon + 1, to))
		return fail(err, err_len, "redis URL: password longer than %zu bytes",
			    sizeof(out->password) - 1);
	return 0;
}

static bool host_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

/* The host, a name or an address, or an IPv6 address in brackets; *end
 * after it. */
static int parse_host(const char *p, struct redis_address *out, bool *bracketed, const char **end,
		      char *err, size_t err_len)
{
	const char *from = p, *to;
	*bracketed = *p == '[';
	if (*bracketed) {
		from = p + 1;
		to = strchr(from, ']');
		if (!to)
			return fail(err, err_len, "redis URL: '[' without ']' around the host");
		*end = to + 1;
	} else {
		to = from;
		while (host_char(*to))
			to++;
		*end = to;
	}
	if (to == from)
		return fail(err, err_len, "redis URL: no host");
	if (!copy_part(out->host, sizeof(out->host), from, to))
		return fail(err, err_len, "redis URL: host longer than %zu bytes",
			    sizeof(out->host) - 1);
	return 0;
}

/* IPv4 first when the name has both: a Redis bound to 0.0.0.0 alone (its
 * default in many setups) does not answer on ::1. */
static int resolve(struct redis_address *out, bool numeric, char *err, size_t err_len)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = numeric ? AI_NUMERICHOST : 0 };
	struct addrinfo *res;
	int rc = getaddrinfo(out->host, NULL, &hints, &res);
	if (rc != 0)
		return fail(err, err_len, "redis URL: cannot resolve %s: %s", out->host,
			    gai_strerror(rc));
	const struct addrinfo *pick = NULL;
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET) {
			pick = ai;
			break;
		}
		if (ai->ai_family == AF_INET6 && !pick)
			pick = ai;
	}
	if (!pick) {
		freeaddrinfo(res);
		return fail(err, err_len, "redis URL: %s has no IPv4 or IPv6 address", out->host);
	}
	memcpy(&out->addr, pick->ai_addr, pick->ai_addrlen);
	out->addr_len = pick->ai_addrlen;
	if (pick->ai_family == AF_INET)
		((struct sockaddr_in *)&out->addr)->sin_port = htons(out->port);
	else
		((struct sockaddr_in6 *)&out->addr)->sin6_port = htons(out->port);
	freeaddrinfo(res);
	return 0;
}

int redis_address_parse(const char *url, struct redis_address *out, char *err, size_t err_len)
{
	static const char scheme[] = "redis://";
	memset(out, 0, sizeof(*out));
	if (strncmp(url, scheme, sizeof(scheme) - 1) != 0)
		return fail(err, err_len, "redis URL: must start with %s", scheme);
	const char *p = url + sizeof(scheme) - 1;

	const char *at = strrchr(p, '@');
	if (at) {
		if (parse_userinfo(p, at, out, err, err_len) < 0)
			return -1;
		p = at + 1;
	}
	bool bracketed;
	if (parse_host(p, out, &bracketed, &p, err, err_len) < 0)
		return -1;

	unsigned long n;
	out->port = DEFAULT_PORT;
	if (*p == ':') {
		if (!parse_number(p + 1, 65535, &n, &p) || n == 0)
			return fail(err, err_len, "redis URL: the port must be a number from 1 to 65535");
		out->port = (uint16_t)n;
	}
	if (*p == '/' && p[1]) {
		if (!parse_number(p + 1, 1u << 30, &n, &p))
			return fail(err, err_len, "redis URL: the database must be a number");
		out->db = (unsigned)n;
	} else if (*p == '/') {
		p++; /* "redis://host/": database 0 */
	}
	if (*p)
		return fail(err, err_len, "redis URL: unexpected \"%.32s\" (host[:port][/db] expected)",
			    p);
	return resolve(out, bracketed, err, err_len);
}
