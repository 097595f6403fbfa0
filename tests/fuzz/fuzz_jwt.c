/* fuzz_jwt.c: libFuzzer harness for HS256 token verification.
 *
 * Random bytes almost never carry a correct MAC, so fed only as tokens they
 * would exercise the shape and header checks and stop there. Each input is
 * therefore used three ways:
 *
 *  - as a token, verified as it is (the path an attacker without the key
 *    has);
 *  - as the claims of a token we sign, which reaches the payload decoder,
 *    the time checks and the name copy;
 *  - as the header of a token we sign, which reaches the header checks
 *    with JSON rather than with base64url noise.
 *
 * Besides "no crash, no sanitizer report" it checks what the sign-in code
 * relies on: a known status; claims zeroed on failure; on success a
 * non-empty, NUL-terminated, valid UTF-8 name of at most JWT_NAME_MAX bytes
 * that is a prefix of the claim it came from; and a token we signed never
 * fails on its signature. */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"
#include "fuzz_check.h"

#define NOW 1700000000
#define LEEWAY 60

static const uint8_t fuzz_secret[] = "ringcast-fuzz-secret-0123456789ab";
#define SECRET fuzz_secret, sizeof(fuzz_secret) - 1

/* {"name":"fuzz"} */
static const char fuzz_payload_b64[] = "eyJuYW1lIjoiZnV6eiJ9";

static bool valid_utf8(const char *s)
{
	json_t *j = json_stringn(s, strlen(s));  /* NULL unless valid UTF-8 */

	json_decref(j);
	return j != NULL;
}

/* A NUL-terminated, valid UTF-8 string of at most max bytes. */
static void check_string(const char *s, size_t max, bool nonempty)
{
	const char *nul = memchr(s, '\0', max + 1);

	CHECK(nul != NULL);
	CHECK(!nonempty || nul > s);
	CHECK(valid_utf8(s));
}

static enum jwt_status verify(const char *tok, size_t len, struct jwt_claims *c)
{
	static const struct jwt_claims zero;
	enum jwt_status st;

	memset(c, 0x5a, sizeof(*c));
	st = jwt_verify_hs256(tok, len, SECRET, NOW, LEEWAY, c);
	CHECK(st >= JWT_OK && st <= JWT_NO_NAME);
	CHECK(jwt_status_text(st) != NULL);
	if (st == JWT_OK) {
		check_string(c->name, JWT_NAME_MAX, true);
		check_string(c->sub, JWT_SUB_MAX, false);
	} else {
		CHECK(memcmp(c, &zero, sizeof(*c)) == 0);
	}
	return st;
}

/* name must be src, or src cut at a character boundary within the last
 * three bytes before the limit. */
static void check_copied_from(const char *name, const json_t *src)
{
	size_t n = strlen(name), src_len = json_string_length(src);

	CHECK(json_is_string(src));
	CHECK(memcmp(name, json_string_value(src), n) == 0);
	if (src_len <= JWT_NAME_MAX)
		CHECK(n == src_len);
	else
		CHECK(n > JWT_NAME_MAX - 4);
}

static void fuzz_as_claims(const uint8_t *data, size_t size)
{
	char *claims = strndup((const char *)data, size);
	struct jwt_claims c;
	enum jwt_status st;
	const json_t *name;
	json_t *json;
	char *tok;

	CHECK(claims != NULL);
	tok = jwt_sign_hs256(claims, SECRET);
	CHECK(tok != NULL);
	st = verify(tok, strlen(tok), &c);
	CHECK(st != JWT_BAD_ALG && st != JWT_BAD_SIGNATURE);
	if (st == JWT_OK) {
		json = json_loads(claims, JSON_REJECT_DUPLICATES, NULL);
		CHECK(json_is_object(json));
		name = json_object_get(json, "name");
		if (!json_is_string(name) || json_string_length(name) == 0)
			name = json_object_get(json, "sub");
		check_copied_from(c.name, name);
		if (c.sub[0]) /* a subject is never cut */
			CHECK(strcmp(c.sub, json_string_value(json_object_get(json, "sub"))) == 0);
		json_decref(json);
	}
	free(tok);
	free(claims);
}

/* The harness's own base64url, through OpenSSL's plain base64. */
static size_t to_b64url(const uint8_t *in, size_t len, char *out)
{
	int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);

	while (n > 0 && out[n - 1] == '=')
		n--;
	for (int i = 0; i < n; i++) {
		if (out[i] == '+')
			out[i] = '-';
		else if (out[i] == '/')
			out[i] = '_';
	}
	return (size_t)n;
}

static void fuzz_as_header(const uint8_t *data, size_t size)
{
	size_t cap = 4 * (size / 3 + 1) + sizeof(fuzz_payload_b64) + 2 + 4 * (EVP_MAX_MD_SIZE / 3 + 1);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	char *tok = malloc(cap);
	struct jwt_claims c;
	enum jwt_status st;
	size_t n;

	CHECK(tok != NULL);
	n = to_b64url(data, size, tok);
	tok[n++] = '.';
	memcpy(tok + n, fuzz_payload_b64, sizeof(fuzz_payload_b64) - 1);
	n += sizeof(fuzz_payload_b64) - 1;
	CHECK(HMAC(EVP_sha256(), SECRET, (unsigned char *)tok, n, mac, &mac_len) != NULL);
	tok[n++] = '.';
	n += to_b64url(mac, mac_len, tok + n);
	st = verify(tok, n, &c);
	CHECK(st != JWT_BAD_SIGNATURE);
	if (st == JWT_OK)
		CHECK(strcmp(c.name, "fuzz") == 0);
	free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jwt_claims c;

	verify((const char *)data, size, &c);
	fuzz_as_claims(data, size);
	fuzz_as_header(data, size);
	return 0;
}
