/* guest_token.h: a guest's resumable identity, a token the page keeps and
 * presents on reconnecting (?guest=) so its id and name come back.
 *
 * It is an HS256 JWT (jwt.h) with "sub":"guest:<id>" and the name, signed
 * with a key made at random when the process starts. So a token proves
 * that this process handed out the id: a forged or altered token fails
 * the signature and the guest simply gets a new identity, and after a
 * restart (whose counter may hand the same id to someone new) every old
 * token fails the same way. It carries no expiry: it is as good as the
 * process that signed it. One process's edges share the key; separate
 * nodes (--redis) do not, and guest tokens are not issued there. */
#ifndef RINGCAST_GUEST_TOKEN_H
#define RINGCAST_GUEST_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jwt.h"

struct guest_key {
	uint8_t key[32];
};

/* A fresh random key: 0, or -1 when the system has no randomness to give. */
int guest_key_init(struct guest_key *k);

/* A token for id and name (NULL: "User <id>"), malloc'd; NULL when out
 * of memory. */
char *guest_token_issue(const struct guest_key *k, uint32_t id, const char *name);

/* A valid token of k: true with its id and name (name[0] == 0: none). */
bool guest_token_check(const struct guest_key *k, const char *token, size_t len, uint32_t *id,
		       char name[JWT_NAME_MAX + 1]);

#endif
