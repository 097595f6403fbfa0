/* jwt.h: verifying HS256 JSON Web Tokens (RFC 7519 / RFC 7515), for sign-in.
 * Only HS256 is accepted; any other "alg" (including "none") is refused. */
#ifndef RINGCAST_JWT_H
#define RINGCAST_JWT_H

#include <stddef.h>
#include <stdint.h>

enum jwt_status {
	JWT_OK = 0,
	JWT_MALFORMED,      /* not three base64url parts, bad JSON, wrong claim types, "crit" */
	JWT_BAD_ALG,        /* header alg is not "HS256" (or typ is present and not "JWT") */
	JWT_BAD_SIGNATURE,  /* HMAC-SHA256 does not match (compared in constant time) */
	JWT_EXPIRED,        /* now - leeway >= exp */
	JWT_NOT_YET_VALID,  /* now + leeway < nbf */
	JWT_NO_NAME,        /* neither a "name" nor a "sub" non-empty string claim */
};

#define JWT_NAME_MAX 64
#define JWT_SUB_MAX 255  /* a subject is an id: kept whole, never cut; longer is refused */

/* Longer tokens are JWT_MALFORMED before any decoding: it bounds the work
 * and the stack an unauthenticated client can cost us. */
#define JWT_TOKEN_MAX 8192

struct jwt_claims {
	char name[JWT_NAME_MAX + 1]; /* "name" claim, else "sub" (truncated to JWT_NAME_MAX bytes at a UTF-8 boundary) */
	char sub[JWT_SUB_MAX + 1];   /* "sub" claim or "" */
	int64_t exp;                 /* 0 when absent; a fraction is rounded down */
	int64_t nbf;                 /* 0 when absent; a fraction is rounded up */
};

/* Verify token against secret at time now (seconds since the epoch), with
 * leeway seconds of clock skew allowed for exp/nbf (a negative leeway counts
 * as 0). token need not be NUL-terminated. An empty secret verifies nothing.
 * *out is filled on JWT_OK and zeroed on every other status. */
enum jwt_status jwt_verify_hs256(const char *token, size_t len, const uint8_t *secret,
				 size_t secret_len, int64_t now, int64_t leeway,
				 struct jwt_claims *out);

/* A `refresh` command's token for a session signed in as user_id: NULL,
 * and *expires (exp + leeway; 0: never), when it is valid now and names
 * the same user (sub, else name); otherwise why not, for bad_token. */
const char *jwt_check_refresh(const char *token, size_t len, const uint8_t *secret, size_t secret_len,
			      int64_t leeway, const char *user_id, int64_t *expires);

/* A short English description of a status, for logs and error messages. */
const char *jwt_status_text(enum jwt_status st);

/* Make an HS256 token for claims_json (a JSON object text); for tests and
 * the documentation's example. The header is {"alg":"HS256","typ":"JWT"};
 * claims_json is encoded byte for byte and not checked, so tests can sign
 * payloads the verifier must refuse. Returns a malloc'd NUL-terminated
 * string, or NULL for an empty secret or when out of memory. */
char *jwt_sign_hs256(const char *claims_json, const uint8_t *secret, size_t secret_len);

#endif
