/* origin.c: the Origin check for WebSocket handshakes. */
#include "origin.h"

#include <string.h>
#include <strings.h>

static bool equal_nocase(const char *a, size_t alen, const char *b, size_t blen)
{
	return alen == blen && strncasecmp(a, b, alen) == 0;
}

bool origin_allowed(const char *origin, size_t origin_len, const char *host, size_t host_len,
		    const char *const *allow, size_t nallow)
{
	if (!origin)
		return true;
	for (size_t i = 0; i < nallow; i++) {
		if (strcmp(allow[i], "*") == 0 ||
		    equal_nocase(origin, origin_len, allow[i], strlen(allow[i])))
			return true;
	}
	if (nallow || !host)
		return false;
	/* scheme "://" authority, and nothing after it */
	const char *sep = memchr(origin, ':', origin_len);
	if (!sep || (size_t)(origin + origin_len - sep) < 4 || sep[1] != '/' || sep[2] != '/')
		return false;
	const char *authority = sep + 3;
	size_t authority_len = (size_t)(origin + origin_len - authority);
	if (memchr(authority, '/', authority_len))
		return false;
	return equal_nocase(authority, authority_len, host, host_len);
}
