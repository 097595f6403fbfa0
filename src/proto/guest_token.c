/* guest_token.c: guest tokens as HS256 JWTs under a per-process key. */
#include "guest_token.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define GUEST_SUB_PREFIX "guest:"

int guest_key_init(struct guest_key *k)
{
	size_t got = 0;
	while (got < sizeof(k->key)) {
		ssize_t n = getrandom(k->key + got, sizeof(k->key) - got, 0);
		if (n < 0 && errno != EINTR)
			return -1;
		if (n > 0)
			got += (size_t)n;
	}
	return 0;
}

char *guest_token_issue(const struct guest_key *k, uint32_t id, const char *name)
{
	/* a name is normalized (chat_name.h): no control characters, so
	 * quotes and backslashes are all JSON needs escaped */
	char claims[64 + 2 * JWT_NAME_MAX * 4];
	size_t at = (size_t)snprintf(claims, sizeof(claims), "{\"sub\":\"" GUEST_SUB_PREFIX "%u\"", id);
	if (name) {
		at += (size_t)snprintf(claims + at, sizeof(claims) - at, ",\"name\":\"");
		for (const char *p = name; *p && at + 4 < sizeof(claims); p++) {
			if (*p == '"' || *p == '\\')
				claims[at++] = '\\';
			claims[at++] = *p;
		}
		claims[at++] = '"';
	}
	claims[at++] = '}';
	claims[at] = 0;
	return jwt_sign_hs256(claims, k->key, sizeof(k->key));
}

bool guest_token_check(const struct guest_key *k, const char *token, size_t len, uint32_t *id,
		       char name[JWT_NAME_MAX + 1])
{
	struct jwt_claims claims;
	if (jwt_verify_hs256(token, len, k->key, sizeof(k->key), 0, 0, &claims) != JWT_OK)
		return false;
	const size_t plen = sizeof(GUEST_SUB_PREFIX) - 1;
	if (strncmp(claims.sub, GUEST_SUB_PREFIX, plen) != 0)
		return false;
	char *end;
	errno = 0;
	unsigned long v = strtoul(claims.sub + plen, &end, 10);
	if (errno || *end || end == claims.sub + plen || v == 0 || v > UINT32_MAX)
		return false;
	*id = (uint32_t)v;
	/* without a "name" claim the verifier falls back on sub */
	if (strcmp(claims.name, claims.sub) == 0)
		name[0] = 0;
	else
		memcpy(name, claims.name, sizeof(claims.name));
	return true;
}
