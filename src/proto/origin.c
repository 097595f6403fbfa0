/* origin.c: the Origin check for WebSocket handshakes and the Host check
 * for a loopback listener. */
#include "origin.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static bool equal_nocase(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && strncasecmp(a, b, alen) == 0;
}

static bool in_list(const char *s, size_t len, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (equal_nocase(s, len, list[i], strlen(list[i])))
			return true;
	}
	return false;
}

/* Origin is scheme "://" authority, and nothing after it; its authority
 * must be what the browser put in Host. */
static bool origin_is_host(const char *origin, size_t origin_len, const char *host, size_t host_len)
{
	const char *sep = memchr(origin, ':', origin_len);
	if (!sep || (size_t)(origin + origin_len - sep) < 4 || sep[1] != '/' || sep[2] != '/')
		return false;
	const char *authority = sep + 3;
	size_t authority_len = (size_t)(origin + origin_len - authority);
	if (memchr(authority, '/', authority_len))
		return false;
	return equal_nocase(authority, authority_len, host, host_len);
}

bool origin_allowed(const char *origin, size_t origin_len, const char *host, size_t host_len,
		    const char *const *allow, size_t nallow)
{
	if (!origin)
		return true;
	for (size_t i = 0; i < nallow; i++) {
		if (strcmp(allow[i], "*") == 0)
			return true;
	}
	if (in_list(origin, origin_len, allow, nallow))
		return true;
	return host && origin_is_host(origin, origin_len, host, host_len);
}

/* The name part of "name[:port]" or "[v6][:port]": its length, or -1 when
 * what follows it is not ":" and 1 to 5 digits. */
static int host_name_len(const char *h, size_t n)
{
	size_t end;
	if (n && h[0] == '[') {
		const char *close = memchr(h, ']', n);
		if (!close)
			return -1;
		end = (size_t)(close - h) + 1;
	} else {
		const char *colon = memchr(h, ':', n);
		end = colon ? (size_t)(colon - h) : n;
	}
	if (end == n)
		return (int)end;
	size_t digits = n - end - 1;
	if (h[end] != ':' || digits < 1 || digits > 5)
		return -1;
	for (size_t i = end + 1; i < n; i++) {
		if (h[i] < '0' || h[i] > '9')
			return -1;
	}
	return (int)end;
}

/* inet_pton wants a C string; names longer than any address are not one. */
static bool parse_address(int family, const char *s, size_t n, void *out)
{
	char text[INET6_ADDRSTRLEN];
	if (n >= sizeof(text))
		return false;
	memcpy(text, s, n);
	text[n] = '\0';
	return inet_pton(family, text, out) == 1;
}

static bool name_is_loopback(const char *name, size_t n)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (equal_nocase(name, n, "localhost", 9))
		return true;
	if (n >= 2 && name[0] == '[')
		return parse_address(AF_INET6, name + 1, n - 2, &a6) && IN6_IS_ADDR_LOOPBACK(&a6);
	return parse_address(AF_INET, name, n, &a4) && (ntohl(a4.s_addr) >> 24) == 127;
}

bool origin_host_allowed(const char *host, size_t host_len, const char *const *allow, size_t nallow)
{
	if (!host)
		return true;
	int name_len = host_name_len(host, host_len);
	if (name_len < 0)
		return false;
	return name_is_loopback(host, (size_t)name_len) || in_list(host, host_len, allow, nallow) ||
	       in_list(host, (size_t)name_len, allow, nallow);
}

bool origin_address_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

bool origin_listen_is_loopback(const char *listen_host)
{
	/* the listener's hints: it binds the first address this returns */
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE };
	struct addrinfo *res;
	if (getaddrinfo(listen_host, NULL, &hints, &res) != 0)
		return true;
	bool loopback = origin_address_is_loopback(res->ai_addr);
	freeaddrinfo(res);
	return loopback;
}
