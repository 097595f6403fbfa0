/* jwt.c: HS256 JSON Web Tokens in the JWS compact form (RFC 7519, RFC 7515).
 *
 * The checks run in a fixed order, and the order is the security argument:
 *
 *  1. shape: a length limit, then exactly three parts split at '.';
 *  2. header: the one part read before the MAC, because it names the
 *     algorithm. Only "HS256" passes, which keeps out "none" and the
 *     RS256-with-the-HMAC-secret-as-public-key confusion. Since we accept a
 *     single algorithm we could check the MAC first, but then a client that
 *     sends alg "none" would hear "bad signature" instead of the truth;
 *  3. signature: HMAC-SHA256 over the first two parts exactly as sent,
 *     compared in constant time;
 *  4. payload: decoded and parsed only once the MAC matched, so without the
 *     secret nobody reaches the claims code with bytes of their choosing.
 *
 * Base64url lives here rather than in a module of its own: JWT is its only
 * user, and the strictness (no padding, canonical last character) is what
 * this format wants, not what every base64 user would. */
#include "jwt.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>

#define JWT_MAC_LEN 32  /* SHA-256 output */

/* Four characters carry three bytes, so no part decodes to more. */
#define JWT_PART_MAX (JWT_TOKEN_MAX / 4 * 3)

/* Compact serialisation of the only header we sign with. */
static const char jwt_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static const char b64url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_digit(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/* Decode unpadded base64url (RFC 7515 §2). Refused: an empty input, any
 * byte outside the alphabet (so '=', '+', '/' and whitespace too), a length
 * that leaves a lone character (len % 4 == 1, which cannot hold a byte) and
 * unused low bits that are not zero (RFC 4648 §3.5). The last rule makes the
 * encoding of a given byte string unique, so no two distinct tokens carry the
 * same header and payload. */
static bool b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap,
			  size_t *out_len)
{
	uint32_t acc = 0;
	unsigned int bits = 0;
	size_t n = 0;

	if (len == 0 || len % 4 == 1 || len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0) > cap)
		return false;
	for (size_t i = 0; i < len; i++) {
		int d = b64url_digit((unsigned char)in[i]);

		if (d < 0)
			return false;
		acc = acc << 6 | (uint32_t)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return false;
	*out_len = n;
	return true;
}

static size_t b64url_encoded_len(size_t len)
{
	return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
}

/* Writes b64url_encoded_len(len) characters and no NUL; returns that count. */
static size_t b64url_encode(const uint8_t *in, size_t len, char *out)
{
	uint32_t acc = 0;
	unsigned int bits = 0;
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		acc = acc << 8 | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[n++] = b64url_alphabet[(acc >> bits) & 63];
		}
		acc &= (1u << bits) - 1;
	}
	if (bits > 0)
		out[n++] = b64url_alphabet[(acc << (6 - bits)) & 63];
	return n;
}

/* An empty key is a key everyone knows: refuse it rather than let a
 * misconfigured server accept tokens anyone can make. A failure inside
 * OpenSSL (out of memory) also comes out as false, which fails closed. */
static bool jwt_mac(const uint8_t *secret, size_t secret_len, const char *msg, size_t len,
		    uint8_t mac[JWT_MAC_LEN])
{
	unsigned int mac_len = 0;

	if (secret_len == 0 || secret_len > INT_MAX)
		return false;
	if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)msg, len, mac,
		  &mac_len))
		return false;
	return mac_len == JWT_MAC_LEN;
}

/* Decode one part into scratch and parse it as a JSON object. Duplicate
 * keys are refused, the stricter of the two choices RFC 7515 §4 and
 * RFC 7519 §4 allow: a proxy or client that keeps the first of two "alg"
 * or "name" members would see a different token from ours. Jansson also
 * refuses invalid UTF-8, lone surrogates and "\u0000" (we do not pass
 * JSON_ALLOW_NUL), so every string we read later is valid UTF-8 and its C
 * string is the whole of it. */
static json_t *jwt_parse_object(const char *b64, size_t len, uint8_t scratch[JWT_PART_MAX])
{
	size_t n;
	json_t *json;

	if (!b64url_decode(b64, len, scratch, JWT_PART_MAX, &n))
		return NULL;
	json = json_loadb((const char *)scratch, n, JSON_REJECT_DUPLICATES, NULL);
	if (json && !json_is_object(json)) {
		json_decref(json);
		return NULL;
	}
	return json;
}

static bool jwt_string_is(const json_t *v, const char *s)
{
	size_t n = strlen(s);

	return json_is_string(v) && json_string_length(v) == n &&
	       memcmp(json_string_value(v), s, n) == 0;
}

/* "typ" is advisory (RFC 7519 §5.1), but a token that says it is something
 * else was minted for another purpose and should not sign anyone in here. */
static enum jwt_status jwt_check_header(const json_t *header)
{
	const json_t *typ = json_object_get(header, "typ");

	if (!jwt_string_is(json_object_get(header, "alg"), "HS256"))
		return JWT_BAD_ALG;
	if (typ && !(json_is_string(typ) && json_string_length(typ) == 3 &&
		     strncasecmp(json_string_value(typ), "JWT", 3) == 0))
		return JWT_BAD_ALG;
	/* RFC 7515 §4.1.11: a recipient that does not understand every
	 * extension listed in "crit" must reject the token. We understand
	 * none, and an empty or ill-typed "crit" is itself invalid. */
	if (json_object_get(header, "crit"))
		return JWT_MALFORMED;
	return JWT_OK;
}

/* NumericDate may have a fraction (RFC 7519 §2). We round toward refusing:
 * exp down, nbf up. A value beyond int64_t saturates rather than hitting the
 * undefined conversion; the NaN test is free and keeps the cast defined
 * whatever Jansson ever hands us. */
static int64_t jwt_real_seconds(double d, bool round_up)
{
	int64_t t;

	if (!(d < 0x1p63))
		return INT64_MAX;
	if (d <= -0x1p63)
		return INT64_MIN;
	t = (int64_t)d;
	if (round_up && (double)t < d)
		return t + 1;
	if (!round_up && (double)t > d)
		return t - 1;
	return t;
}

/* exp and nbf must be numbers when present (RFC 7519 §4.1.4, §4.1.5). */
static bool jwt_seconds(const json_t *v, bool round_up, int64_t *out)
{
	if (json_is_integer(v))
		*out = json_integer_value(v);
	else if (json_is_real(v))
		*out = jwt_real_seconds(json_real_value(v), round_up);
	else
		return false;
	return true;
}

/* The clock and leeway come from us, exp and nbf from the token; saturating
 * keeps an extreme value from wrapping around into "valid". */
static int64_t sat_add(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

static int64_t sat_sub(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_sub_overflow(a, b, &r))
		return b > 0 ? INT64_MIN : INT64_MAX;
	return r;
}

static const json_t *jwt_nonempty_string(const json_t *claims, const char *key)
{
	const json_t *v = json_object_get(claims, key);

	return json_is_string(v) && json_string_length(v) > 0 ? v : NULL;
}

/* Copy a valid UTF-8 string, cut to JWT_NAME_MAX bytes without splitting a
 * character: if the first byte left out is a continuation byte, back up to
 * the lead byte of its character. The cut may still fall between a base
 * character and a combining mark; that is legal text, just not pretty. */
static void jwt_copy_name(char dst[JWT_NAME_MAX + 1], const json_t *s)
{
	const char *src = json_string_value(s);
	size_t n = json_string_length(s);

	if (n > JWT_NAME_MAX) {
		n = JWT_NAME_MAX;
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static enum jwt_status jwt_read_claims(const json_t *claims, int64_t now, int64_t leeway,
				       struct jwt_claims *c)
{
	const json_t *exp = json_object_get(claims, "exp");
	const json_t *nbf = json_object_get(claims, "nbf");
	const json_t *name = jwt_nonempty_string(claims, "name");
	const json_t *sub = jwt_nonempty_string(claims, "sub");

	if ((exp && !jwt_seconds(exp, false, &c->exp)) ||
	    (nbf && !jwt_seconds(nbf, true, &c->nbf)))
		return JWT_MALFORMED;
	if (exp && sat_sub(now, leeway) >= c->exp)
		return JWT_EXPIRED;
	if (nbf && sat_add(now, leeway) < c->nbf)
		return JWT_NOT_YET_VALID;
	if (!name && !sub)
		return JWT_NO_NAME;
	/* the subject identifies the user: two subjects cut to the same
	 * prefix must not become one id */
	if (sub && json_string_length(sub) > JWT_SUB_MAX)
		return JWT_MALFORMED;
	jwt_copy_name(c->name, name ? name : sub);
	if (sub) {
		memcpy(c->sub, json_string_value(sub), json_string_length(sub));
		c->sub[json_string_length(sub)] = '\0';
	}
	return JWT_OK;
}

enum jwt_status jwt_verify_hs256(const char *token, size_t len, const uint8_t *secret,
				 size_t secret_len, int64_t now, int64_t leeway,
				 struct jwt_claims *out)
{
	uint8_t scratch[JWT_PART_MAX];
	uint8_t mac[JWT_MAC_LEN];
	struct jwt_claims c = { 0 };
	const char *dot1, *dot2, *end;
	enum jwt_status st;
	size_t sig_len;
	json_t *json;

	memset(out, 0, sizeof(*out));
	/* Before any pointer arithmetic: an empty token may be NULL. */
	if (len == 0 || len > JWT_TOKEN_MAX)
		return JWT_MALFORMED;
	end = token + len;
	dot1 = memchr(token, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;
	if (!dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)))
		return JWT_MALFORMED;

	json = jwt_parse_object(token, (size_t)(dot1 - token), scratch);
	if (!json)
		return JWT_MALFORMED;
	st = jwt_check_header(json);
	json_decref(json);
	if (st != JWT_OK)
		return st;

	/* Bad base64url is malformed; well-formed bytes of the wrong length
	 * simply cannot be an HS256 signature. */
	if (!b64url_decode(dot2 + 1, (size_t)(end - dot2 - 1), scratch, JWT_PART_MAX, &sig_len))
		return JWT_MALFORMED;
	if (sig_len != JWT_MAC_LEN ||
	    !jwt_mac(secret, secret_len, token, (size_t)(dot2 - token), mac) ||
	    CRYPTO_memcmp(mac, scratch, JWT_MAC_LEN) != 0)
		return JWT_BAD_SIGNATURE;

	json = jwt_parse_object(dot1 + 1, (size_t)(dot2 - dot1 - 1), scratch);
	if (!json)
		return JWT_MALFORMED;
	st = jwt_read_claims(json, now, leeway < 0 ? 0 : leeway, &c);
	json_decref(json);
	if (st == JWT_OK)
		*out = c;
	return st;
}

const char *jwt_status_text(enum jwt_status st)
{
	switch (st) {
	case JWT_OK:
		return "valid";
	case JWT_MALFORMED:
		return "malformed token";
	case JWT_BAD_ALG:
		return "algorithm or type not accepted (only HS256 JWT)";
	case JWT_BAD_SIGNATURE:
		return "bad signature";
	case JWT_EXPIRED:
		return "token expired";
	case JWT_NOT_YET_VALID:
		return "token not yet valid";
	case JWT_NO_NAME:
		return "token carries no name or sub";
	}
	return "unknown JWT status";
}

char *jwt_sign_hs256(const char *claims_json, const uint8_t *secret, size_t secret_len)
{
	size_t header_len = sizeof(jwt_header) - 1;
	size_t claims_len = strlen(claims_json);
	uint8_t mac[JWT_MAC_LEN];
	size_t n, total;
	char *tok;

	/* total is about 4/3 of claims_len; only a 32-bit process could
	 * hold a string long enough to overflow it. */
	if (claims_len > SIZE_MAX / 2)
		return NULL;
	total = b64url_encoded_len(header_len) + 1 + b64url_encoded_len(claims_len) + 1 +
		b64url_encoded_len(JWT_MAC_LEN) + 1;
	tok = malloc(total);
	if (!tok)
		return NULL;
	n = b64url_encode((const uint8_t *)jwt_header, header_len, tok);
	tok[n++] = '.';
	n += b64url_encode((const uint8_t *)claims_json, claims_len, tok + n);
	if (!jwt_mac(secret, secret_len, tok, n, mac)) {
		free(tok);
		return NULL;
	}
	tok[n++] = '.';
	n += b64url_encode(mac, JWT_MAC_LEN, tok + n);
	tok[n] = '\0';
	return tok;
}

const char *jwt_check_refresh(const char *token, size_t len, const uint8_t *secret, size_t secret_len,
			      int64_t leeway, const char *user_id, int64_t *expires)
{
	struct jwt_claims claims;
	enum jwt_status st = jwt_verify_hs256(token, len, secret, secret_len, (int64_t)time(NULL), leeway, &claims);
	if (st != JWT_OK)
		return jwt_status_text(st);
	const char *user = claims.sub[0] ? claims.sub : claims.name;
	if (!user_id || strcmp(user, user_id) != 0)
		return "token is for another user";
	*expires = claims.exp ? claims.exp + leeway : 0;
	return NULL;
}
