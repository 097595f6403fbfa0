/* test_jwt.c: HS256 token verification, rule by rule.
 *
 * Most tokens here are built by the test itself: base64url through
 * OpenSSL's plain base64 encoder with the alphabet swapped, and the MAC
 * through OpenSSL's HMAC(), so the code under test is not its own oracle.
 * Tokens that break a rule after the signature check (payload encoding,
 * claims) carry a correct MAC, so the test shows the rule itself refuses
 * them and not the signature. Two vectors come from outside altogether:
 * RFC 7515 appendix A.1, and one computed with python3 and openssl. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"

#define NOW 1700000000  /* 2023-11-14, the clock for every test that does not set one */

static const uint8_t test_secret[] = "ringcast-test-secret-0123456789abcdef";
#define SECRET test_secret, sizeof(test_secret) - 1

#define HS256_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define ADA "{\"name\":\"ada\"}"

static const char b64url_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *b64url(const void *data, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);
	int n;

	assert_non_null(out);
	n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (char *p = out; *p; p++) {
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
	}
	return out;
}

static char *b64url_str(const char *s)
{
	return b64url(s, strlen(s));
}

/* input[0..len) "." MAC(input), where input may hold any bytes, NUL too;
 * the token is len + 44 bytes long. */
static char *append_mac(const char *input, size_t len, const uint8_t *key, size_t key_len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	char *sig, *tok;

	assert_non_null(HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)input, len,
			     mac, &mac_len));
	sig = b64url(mac, mac_len);
	assert_int_equal(strlen(sig), 43);
	tok = malloc(len + 45);
	assert_non_null(tok);
	memcpy(tok, input, len);
	tok[len] = '.';
	memcpy(tok + len + 1, sig, 44);
	free(sig);
	return tok;
}

/* header_b64 "." payload_b64 "." MAC, whatever the two parts hold. */
static char *sign_parts_with(const char *header_b64, const char *payload_b64,
			     const uint8_t *key, size_t key_len)
{
	char *input, *tok;
	int n = asprintf(&input, "%s.%s", header_b64, payload_b64);

	assert_true(n > 0);
	tok = append_mac(input, (size_t)n, key, key_len);
	free(input);
	return tok;
}

static char *sign_parts(const char *header_b64, const char *payload_b64)
{
	return sign_parts_with(header_b64, payload_b64, SECRET);
}

static char *make_token(const char *header_json, const char *payload_json)
{
	char *h = b64url_str(header_json), *p = b64url_str(payload_json);
	char *tok = sign_parts(h, p);

	free(h);
	free(p);
	return tok;
}

static enum jwt_status verify_at(const char *tok, int64_t now, int64_t leeway,
				 struct jwt_claims *c)
{
	return jwt_verify_hs256(tok, strlen(tok), SECRET, now, leeway, c);
}

/* Verify at NOW without leeway, and free the token. */
static enum jwt_status verify_and_free(char *tok)
{
	struct jwt_claims c;
	enum jwt_status st = verify_at(tok, NOW, 0, &c);

	free(tok);
	return st;
}

static enum jwt_status header_status(const char *header_json)
{
	return verify_and_free(make_token(header_json, ADA));
}

static enum jwt_status payload_status(const char *payload_json)
{
	return verify_and_free(make_token(HS256_HEADER, payload_json));
}

/* The three parts of a token, located in place. */
struct parts {
	size_t payload;  /* offset of the payload part */
	size_t sig;      /* offset of the signature part */
	size_t len;
};

static struct parts split(const char *tok)
{
	const char *d1 = strchr(tok, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;

	assert_non_null(d2);
	return (struct parts){ d1 + 1 - tok, d2 + 1 - tok, strlen(tok) };
}

static char other_char(char c)
{
	return c == 'A' ? 'E' : 'A';
}

/* The base64url character `by` places further along the alphabet. */
static char bump(char c, int by)
{
	return b64url_chars[strchr(b64url_chars, c) - b64url_chars + by];
}

/* Sign payload_json and verify it at now, filling *c. */
static enum jwt_status claims_at(const char *payload_json, int64_t now, struct jwt_claims *c)
{
	char *tok = make_token(HS256_HEADER, payload_json);
	enum jwt_status st = verify_at(tok, now, 0, c);

	free(tok);
	return st;
}

static enum jwt_status claims_for(const char *payload_json, struct jwt_claims *c)
{
	return claims_at(payload_json, NOW, c);
}

/* {"name":"ada","<claim>":t}, signed and verified at now with leeway. */
static enum jwt_status time_status(const char *claim, long long t, int64_t now, int64_t leeway)
{
	struct jwt_claims c;
	char *payload, *tok;
	enum jwt_status st;

	assert_true(asprintf(&payload, "{\"name\":\"ada\",\"%s\":%lld}", claim, t) > 0);
	tok = make_token(HS256_HEADER, payload);
	st = verify_at(tok, now, leeway, &c);
	free(payload);
	free(tok);
	return st;
}

static bool is_utf8(const char *s)
{
	json_t *j = json_stringn(s, strlen(s));  /* NULL when s is not valid UTF-8 */

	json_decref(j);
	return j != NULL;
}

static void test_signed_token_verifies(void **state)
{
	char *tok = jwt_sign_hs256("{\"sub\":\"u1\",\"name\":\"Ada\",\"exp\":1800000000,"
				   "\"nbf\":1600000000}", SECRET);
	struct jwt_claims c;

	(void)state;
	assert_non_null(tok);
	assert_int_equal(verify_at(tok, NOW, 0, &c), JWT_OK);
	assert_string_equal(c.name, "Ada");
	assert_string_equal(c.sub, "u1");
	assert_int_equal(c.exp, 1800000000);
	assert_int_equal(c.nbf, 1600000000);
	free(tok);
}

/* Computed at development time, independently of src/jwt.c:
 *   python3 -c 'import hmac,hashlib,base64; b=lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode();
 *     s=b(b"{\"alg\":\"HS256\",\"typ\":\"JWT\"}")+"."+b(b"{\"sub\":\"user-42\",\"name\":\"Ada Lovelace\",\"exp\":2000000000}");
 *     print(s+"."+b(hmac.new(b"ringcast-known-answer-secret-32b", s.encode(), hashlib.sha256).digest()))'
 * and the signature cross-checked with
 *   printf %s "$header_dot_payload" | openssl dgst -sha256 -hmac ringcast-known-answer-secret-32b -binary | basenc --base64url
 * (hex 6319b487 2a8ab499 c87e0afd 7db0316d 63877564 bf0ae0a4 48f110e8 ae4b784a). */
static const char kat_secret[] = "ringcast-known-answer-secret-32b";
static const char kat_claims[] = "{\"sub\":\"user-42\",\"name\":\"Ada Lovelace\",\"exp\":2000000000}";
static const char kat_token[] =
	"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
	".eyJzdWIiOiJ1c2VyLTQyIiwibmFtZSI6IkFkYSBMb3ZlbGFjZSIsImV4cCI6MjAwMDAwMDAwMH0"
	".Yxm0hyqKtJnIfgr9fbAxbWOHdWS_CuCkSPEQ6K5LeEo";

static void test_subject_is_kept_whole_up_to_255_bytes_and_longer_is_refused(void **state)
{
	char claims[400], sub[300];
	struct jwt_claims c;

	(void)state;
	memset(sub, 'u', 255);
	sub[255] = '\0';
	snprintf(claims, sizeof(claims), "{\"sub\":\"%s\"}", sub);
	char *tok = jwt_sign_hs256(claims, SECRET);
	assert_int_equal(verify_at(tok, NOW, 0, &c), JWT_OK);
	assert_string_equal(c.sub, sub); /* an id is never cut */
	free(tok);

	sub[255] = 'u';
	sub[256] = '\0';
	snprintf(claims, sizeof(claims), "{\"sub\":\"%s\"}", sub);
	tok = jwt_sign_hs256(claims, SECRET);
	assert_int_equal(verify_at(tok, NOW, 0, &c), JWT_MALFORMED);
	free(tok);
}

static void test_known_answer_vector_verifies(void **state)
{
	struct jwt_claims c;

	(void)state;
	assert_int_equal(jwt_verify_hs256(kat_token, strlen(kat_token), (const uint8_t *)kat_secret,
					  strlen(kat_secret), NOW, 0, &c), JWT_OK);
	assert_string_equal(c.name, "Ada Lovelace");
	assert_string_equal(c.sub, "user-42");
	assert_int_equal(c.exp, 2000000000);
	assert_int_equal(c.nbf, 0);
}

static void test_signing_reproduces_the_known_answer_vector(void **state)
{
	char *tok = jwt_sign_hs256(kat_claims, (const uint8_t *)kat_secret, strlen(kat_secret));

	(void)state;
	assert_string_equal(tok, kat_token);
	free(tok);
}

/* RFC 7515 A.1: a JWS with whitespace and CRLFs inside its JSON and a
 * 64-byte key. It has no "name" or "sub", so the best it can reach is
 * JWT_NO_NAME, which comes only after the signature and exp checks pass. */
static const uint8_t rfc_key[64] = {
	0x03, 0x23, 0x35, 0x4b, 0x2b, 0x0f, 0xa5, 0xbc, 0x83, 0x7e, 0x06, 0x65, 0x77,
	0x7b, 0xa6, 0x8f, 0x5a, 0xb3, 0x28, 0xe6, 0xf0, 0x54, 0xc9, 0x28, 0xa9, 0x0f,
	0x84, 0xb2, 0xd2, 0x50, 0x2e, 0xbf, 0xd3, 0xfb, 0x5a, 0x92, 0xd2, 0x06, 0x47,
	0xef, 0x96, 0x8a, 0xb4, 0xc3, 0x77, 0x62, 0x3d, 0x22, 0x3d, 0x2e, 0x21, 0x72,
	0x05, 0x2e, 0x4f, 0x08, 0xc0, 0xcd, 0x9a, 0xf5, 0x67, 0xd0, 0x80, 0xa3,
};
static const char rfc_token[] =
	"eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
	".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
	".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

static void test_rfc7515_example_signature_is_accepted(void **state)
{
	struct jwt_claims c;
	size_t n = strlen(rfc_token);

	(void)state;
	assert_int_equal(jwt_verify_hs256(rfc_token, n, rfc_key, sizeof(rfc_key), 1300819379, 0, &c),
			 JWT_NO_NAME);
	assert_int_equal(jwt_verify_hs256(rfc_token, n, rfc_key, sizeof(rfc_key), 1300819380, 0, &c),
			 JWT_EXPIRED);
	assert_int_equal(jwt_verify_hs256(rfc_token, n, rfc_key, sizeof(rfc_key) - 1, 1300819379, 0, &c),
			 JWT_BAD_SIGNATURE);
}

static void test_tampered_payload_is_a_bad_signature(void **state)
{
	char *tok = make_token(HS256_HEADER, "{\"name\":\"ada\",\"exp\":1800000000}");
	struct parts p = split(tok);
	struct jwt_claims c;

	(void)state;
	for (size_t i = p.payload; i < p.sig - 1; i++) {
		char was = tok[i];

		tok[i] = other_char(was);
		assert_int_equal(verify_at(tok, NOW, 0, &c), JWT_BAD_SIGNATURE);
		tok[i] = was;
	}
	assert_int_equal(verify_at(tok, NOW, 0, &c), JWT_OK);
	free(tok);
}

static void test_any_change_to_the_header_is_refused(void **state)
{
	char *tok = make_token(HS256_HEADER, ADA);
	struct parts p = split(tok);
	struct jwt_claims c;

	(void)state;
	for (size_t i = 0; i < p.payload - 1; i++) {
		char was = tok[i];

		tok[i] = other_char(was);
		assert_int_not_equal(verify_at(tok, NOW, 0, &c), JWT_OK);
		tok[i] = was;
	}
	free(tok);
}

/* 'A' and 'E' both leave the two unused bits of the last character zero,
 * so every variant is canonical base64url and fails only on the MAC. */
static void test_tampered_signature_is_a_bad_signature(void **state)
{
	char *tok = make_token(HS256_HEADER, ADA);
	struct parts p = split(tok);
	struct jwt_claims c;

	(void)state;
	assert_int_equal(p.len - p.sig, 43);
	for (size_t i = p.sig; i < p.len; i++) {
		char was = tok[i];

		tok[i] = other_char(was);
		assert_int_equal(verify_at(tok, NOW, 0, &c), JWT_BAD_SIGNATURE);
		tok[i] = was;
	}
	free(tok);
}

/* The right MAC with bytes missing or extra is still not the MAC, and a
 * well-formed signature of any other length cannot be an HS256 one. */
static void test_signature_must_be_exactly_32_bytes(void **state)
{
	static const size_t lens[] = { 1, 30, 31, 33, 48, 64 };
	char *tok = make_token(HS256_HEADER, ADA);
	struct parts p = split(tok);
	uint8_t mac[64] = { 0 };
	unsigned int mac_len = 0;

	(void)state;
	assert_non_null(HMAC(EVP_sha256(), SECRET, (unsigned char *)tok, p.sig - 1, mac, &mac_len));
	assert_int_equal(mac_len, 32);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		char *sig = b64url(mac, lens[i]), *edited;

		assert_true(asprintf(&edited, "%.*s%s", (int)p.sig, tok, sig) > 0);
		assert_int_equal(verify_and_free(edited), JWT_BAD_SIGNATURE);
		free(sig);
	}
	free(tok);
}

static void test_wrong_secret_is_a_bad_signature(void **state)
{
	static const uint8_t flipped[] = "ringcast-test-secret-0123456789abcdeF";
	static const uint8_t longer[] = "ringcast-test-secret-0123456789abcdefx";
	char *tok = make_token(HS256_HEADER, ADA);
	struct jwt_claims c;
	size_t n = strlen(tok);

	(void)state;
	assert_int_equal(jwt_verify_hs256(tok, n, flipped, sizeof(flipped) - 1, NOW, 0, &c),
			 JWT_BAD_SIGNATURE);
	assert_int_equal(jwt_verify_hs256(tok, n, test_secret, sizeof(test_secret) - 2, NOW, 0, &c),
			 JWT_BAD_SIGNATURE);
	assert_int_equal(jwt_verify_hs256(tok, n, longer, sizeof(longer) - 1, NOW, 0, &c),
			 JWT_BAD_SIGNATURE);
	free(tok);
}

static void test_empty_secret_verifies_nothing(void **state)
{
	static const uint8_t none[1];
	char *h = b64url_str(HS256_HEADER), *p = b64url_str(ADA);
	char *tok = sign_parts_with(h, p, none, 0);  /* a MAC under the empty key */
	struct jwt_claims c;

	(void)state;
	assert_int_equal(jwt_verify_hs256(tok, strlen(tok), none, 0, NOW, 0, &c), JWT_BAD_SIGNATURE);
	assert_null(jwt_sign_hs256(ADA, none, 0));
	free(tok);
	free(h);
	free(p);
}

static void test_expired_token_is_refused(void **state)
{
	(void)state;
	assert_int_equal(time_status("exp", NOW - 1, NOW, 0), JWT_EXPIRED);
	assert_int_equal(time_status("exp", NOW, NOW, 0), JWT_EXPIRED);
	assert_int_equal(time_status("exp", NOW + 1, NOW, 0), JWT_OK);
	assert_int_equal(time_status("exp", 0, NOW, 0), JWT_EXPIRED);
}

static void test_not_yet_valid_token_is_refused(void **state)
{
	(void)state;
	assert_int_equal(time_status("nbf", NOW + 1, NOW, 0), JWT_NOT_YET_VALID);
	assert_int_equal(time_status("nbf", NOW, NOW, 0), JWT_OK);
	assert_int_equal(time_status("nbf", NOW - 1, NOW, 0), JWT_OK);
}

static void test_leeway_is_honoured_at_both_edges(void **state)
{
	(void)state;
	/* Expired when now - leeway >= exp. */
	assert_int_equal(time_status("exp", NOW - 29, NOW, 30), JWT_OK);
	assert_int_equal(time_status("exp", NOW - 30, NOW, 30), JWT_EXPIRED);
	/* Not yet valid when now + leeway < nbf. */
	assert_int_equal(time_status("nbf", NOW + 30, NOW, 30), JWT_OK);
	assert_int_equal(time_status("nbf", NOW + 31, NOW, 30), JWT_NOT_YET_VALID);
}

static void test_negative_leeway_counts_as_none(void **state)
{
	(void)state;
	assert_int_equal(time_status("exp", NOW + 1, NOW, -100), JWT_OK);
	assert_int_equal(time_status("nbf", NOW, NOW, -100), JWT_OK);
	assert_int_equal(time_status("exp", NOW, NOW, -100), JWT_EXPIRED);
}

static void test_fractional_times_round_toward_refusing(void **state)
{
	struct jwt_claims c;

	(void)state;
	/* exp rounds down, nbf rounds up: half a second early either way. */
	assert_int_equal(payload_status("{\"name\":\"a\",\"exp\":1700000000.5}"), JWT_EXPIRED);
	assert_int_equal(payload_status("{\"name\":\"a\",\"exp\":1700000001.5}"), JWT_OK);
	assert_int_equal(payload_status("{\"name\":\"a\",\"nbf\":1700000000.5}"), JWT_NOT_YET_VALID);
	assert_int_equal(payload_status("{\"name\":\"a\",\"nbf\":1699999999.5}"), JWT_OK);

	assert_int_equal(claims_for("{\"name\":\"a\",\"exp\":1800000000.9,\"nbf\":1600000000.1}", &c),
			 JWT_OK);
	assert_int_equal(c.exp, 1800000000);
	assert_int_equal(c.nbf, 1600000001);
	assert_int_equal(claims_for("{\"name\":\"a\",\"exp\":1e10,\"nbf\":1e9}", &c), JWT_OK);
	assert_int_equal(c.exp, 10000000000);
	assert_int_equal(c.nbf, 1000000000);
	/* Below zero, rounding is not truncation toward zero. */
	assert_int_equal(claims_at("{\"name\":\"a\",\"exp\":-0.5,\"nbf\":-2.5}", -2, &c), JWT_OK);
	assert_int_equal(c.exp, -1);
	assert_int_equal(c.nbf, -2);
	assert_int_equal(claims_at("{\"name\":\"a\",\"exp\":-0.5}", -1, &c), JWT_EXPIRED);
	assert_int_equal(claims_at("{\"name\":\"a\",\"nbf\":-0.5}", -1, &c), JWT_NOT_YET_VALID);
}

static void test_times_beyond_int64_saturate(void **state)
{
	struct jwt_claims c;

	(void)state;
	assert_int_equal(claims_for("{\"name\":\"a\",\"exp\":1e300,\"nbf\":-1e300}", &c), JWT_OK);
	assert_int_equal(c.exp, INT64_MAX);
	assert_int_equal(c.nbf, INT64_MIN);
	assert_int_equal(claims_for("{\"name\":\"a\",\"exp\":9223372036854775808.0}", &c), JWT_OK);
	assert_int_equal(c.exp, INT64_MAX);
	assert_int_equal(claims_for("{\"name\":\"a\",\"exp\":-1e300}", &c), JWT_EXPIRED);
	assert_int_equal(claims_for("{\"name\":\"a\",\"nbf\":1e300}", &c), JWT_NOT_YET_VALID);
}

/* Under -fsanitize=undefined a wrapped subtraction or addition would abort
 * the test; saturated, the extreme cases still give the right answer. */
static void test_time_arithmetic_saturates(void **state)
{
	(void)state;
	assert_int_equal(time_status("exp", INT64_MIN, INT64_MIN + 10, 100), JWT_EXPIRED);
	assert_int_equal(time_status("nbf", INT64_MAX, INT64_MAX - 10, 100), JWT_OK);
	assert_int_equal(time_status("exp", INT64_MAX, NOW, INT64_MAX), JWT_OK);
	assert_int_equal(time_status("exp", NOW, -2, INT64_MAX), JWT_OK);
	assert_int_equal(time_status("nbf", INT64_MAX, 2, INT64_MAX), JWT_OK);
}

static void test_alg_none_is_refused(void **state)
{
	char *h = b64url_str("{\"alg\":\"none\",\"typ\":\"JWT\"}");
	char *p = b64url_str(ADA);
	char *unsigned_tok;

	(void)state;
	/* The classic downgrade: header says none, signature left empty. */
	assert_true(asprintf(&unsigned_tok, "%s.%s.", h, p) > 0);
	assert_int_equal(verify_and_free(unsigned_tok), JWT_BAD_ALG);
	/* Even with a signature that is a correct HMAC under our secret. */
	assert_int_equal(verify_and_free(sign_parts(h, p)), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":\"None\"}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":\"NONE\"}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":\"\"}"), JWT_BAD_ALG);
	free(h);
	free(p);
}

static void test_only_hs256_is_accepted(void **state)
{
	(void)state;
	assert_int_equal(header_status("{\"alg\":\"HS256\"}"), JWT_OK);
	assert_int_equal(header_status("{\"alg\":\"HS512\",\"typ\":\"JWT\"}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":\"HS384\"}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":\"RS256\",\"typ\":\"JWT\"}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":\"ES256\"}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":\"hs256\"}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":\"HS256 \"}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":\"HS2560\"}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":\"HS25\"}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"typ\":\"JWT\"}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":256}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":null}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":[\"HS256\"]}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"ALG\":\"HS256\"}"), JWT_BAD_ALG);
}

static void test_typ_must_be_jwt_when_present(void **state)
{
	(void)state;
	assert_int_equal(header_status("{\"alg\":\"HS256\",\"typ\":\"JWT\"}"), JWT_OK);
	assert_int_equal(header_status("{\"alg\":\"HS256\",\"typ\":\"jwt\"}"), JWT_OK);
	assert_int_equal(header_status("{\"typ\":\"JwT\",\"alg\":\"HS256\"}"), JWT_OK);
	assert_int_equal(header_status("{\"alg\":\"HS256\",\"typ\":\"JWS\"}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":\"HS256\",\"typ\":\"JWT \"}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":\"HS256\",\"typ\":\"JW\"}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":\"HS256\",\"typ\":\"\"}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":\"HS256\",\"typ\":1}"), JWT_BAD_ALG);
	assert_int_equal(header_status("{\"alg\":\"HS256\",\"typ\":null}"), JWT_BAD_ALG);
}

static void test_unknown_header_parameters_are_ignored(void **state)
{
	(void)state;
	assert_int_equal(header_status("{\"alg\":\"HS256\",\"kid\":\"k1\",\"x\":[1,{}]}"), JWT_OK);
}

static void test_crit_header_is_malformed(void **state)
{
	(void)state;
	assert_int_equal(header_status("{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}"),
			 JWT_MALFORMED);
	assert_int_equal(header_status("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}"),
			 JWT_MALFORMED);
	assert_int_equal(header_status("{\"alg\":\"HS256\",\"crit\":[]}"), JWT_MALFORMED);
	assert_int_equal(header_status("{\"alg\":\"HS256\",\"crit\":null}"), JWT_MALFORMED);
}

static void test_header_must_be_a_json_object(void **state)
{
	(void)state;
	assert_int_equal(header_status("[\"HS256\"]"), JWT_MALFORMED);
	assert_int_equal(header_status("\"HS256\""), JWT_MALFORMED);
	assert_int_equal(header_status("alg=HS256"), JWT_MALFORMED);
	assert_int_equal(header_status("{\"alg\":\"HS256\""), JWT_MALFORMED);
	assert_int_equal(header_status("{\"alg\":\"HS256\"}x"), JWT_MALFORMED);
	assert_int_equal(header_status("{\"alg\":\"HS256\"}{}"), JWT_MALFORMED);
}

static void test_payload_must_be_a_json_object(void **state)
{
	(void)state;
	assert_int_equal(payload_status("name=ada"), JWT_MALFORMED);
	assert_int_equal(payload_status("[{\"name\":\"ada\"}]"), JWT_MALFORMED);
	assert_int_equal(payload_status("[]"), JWT_MALFORMED);
	assert_int_equal(payload_status("\"ada\""), JWT_MALFORMED);
	assert_int_equal(payload_status("42"), JWT_MALFORMED);
	assert_int_equal(payload_status("null"), JWT_MALFORMED);
	assert_int_equal(payload_status("{\"name\":\"ada\""), JWT_MALFORMED);
	assert_int_equal(payload_status("{\"name\":\"ada\"} x"), JWT_MALFORMED);
	assert_int_equal(payload_status(" \r\n{\"name\":\"ada\"}\n"), JWT_OK);
}

static void test_json_strings_must_be_valid_utf8_without_nul(void **state)
{
	(void)state;
	assert_int_equal(payload_status("{\"name\":\"\xff\"}"), JWT_MALFORMED);
	assert_int_equal(payload_status("{\"name\":\"\xc0\xa0\"}"), JWT_MALFORMED);
	assert_int_equal(payload_status("{\"name\":\"\xed\xa0\x80\"}"), JWT_MALFORMED);
	assert_int_equal(payload_status("{\"name\":\"\\ud800\"}"), JWT_MALFORMED);
	/* A NUL would end the C string early: "ada\0admin" must not become "ada". */
	assert_int_equal(payload_status("{\"name\":\"ada\\u0000admin\"}"), JWT_MALFORMED);
	assert_int_equal(header_status("{\"alg\":\"HS256\\u0000x\"}"), JWT_MALFORMED);
}

static void test_exp_and_nbf_must_be_numbers(void **state)
{
	(void)state;
	assert_int_equal(payload_status("{\"name\":\"a\",\"exp\":\"2000000000\"}"), JWT_MALFORMED);
	assert_int_equal(payload_status("{\"name\":\"a\",\"exp\":true}"), JWT_MALFORMED);
	assert_int_equal(payload_status("{\"name\":\"a\",\"exp\":null}"), JWT_MALFORMED);
	assert_int_equal(payload_status("{\"name\":\"a\",\"exp\":[2000000000]}"), JWT_MALFORMED);
	assert_int_equal(payload_status("{\"name\":\"a\",\"nbf\":\"0\"}"), JWT_MALFORMED);
	assert_int_equal(payload_status("{\"name\":\"a\",\"nbf\":{}}"), JWT_MALFORMED);
	/* Too large for any JSON number type we read: refused, not wrapped. */
	assert_int_equal(payload_status("{\"name\":\"a\",\"exp\":99999999999999999999}"),
			 JWT_MALFORMED);
	assert_int_equal(payload_status("{\"name\":\"a\",\"exp\":1e400}"), JWT_MALFORMED);
}

static void test_duplicate_keys_are_malformed(void **state)
{
	(void)state;
	assert_int_equal(header_status("{\"alg\":\"HS256\",\"alg\":\"HS256\"}"), JWT_MALFORMED);
	assert_int_equal(header_status("{\"alg\":\"none\",\"alg\":\"HS256\"}"), JWT_MALFORMED);
	assert_int_equal(header_status("{\"alg\":\"HS256\",\"alg\":\"none\"}"), JWT_MALFORMED);
	assert_int_equal(header_status("{\"alg\":\"HS256\",\"typ\":\"JWT\",\"typ\":\"JWT\"}"),
			 JWT_MALFORMED);
	assert_int_equal(payload_status("{\"name\":\"ada\",\"name\":\"admin\"}"), JWT_MALFORMED);
	assert_int_equal(payload_status("{\"name\":\"ada\",\"n\\u0061me\":\"admin\"}"), JWT_MALFORMED);
	assert_int_equal(payload_status("{\"sub\":\"a\",\"sub\":\"a\"}"), JWT_MALFORMED);
	assert_int_equal(payload_status("{\"name\":\"a\",\"exp\":1,\"exp\":2000000000}"),
			 JWT_MALFORMED);
	assert_int_equal(payload_status("{\"name\":\"a\",\"x\":{\"k\":1,\"k\":2}}"), JWT_MALFORMED);
}

/* Tokens made by the test's encoder, padded the way plain base64 would be,
 * and signed over the padded text so only the padding rule can refuse them. */
static void test_padding_is_refused(void **state)
{
	char *h = b64url_str("{\"alg\":\"HS256\" }");  /* 16 bytes: 22 characters */
	char *p = b64url_str(ADA);                       /* 14 bytes: 19 characters */
	char *padded_h, *padded_p, *tok;
	struct parts parts;

	(void)state;
	assert_int_equal(strlen(h) % 4, 2);
	assert_int_equal(strlen(p) % 4, 3);
	assert_int_equal(verify_and_free(sign_parts(h, p)), JWT_OK);

	assert_true(asprintf(&padded_h, "%s==", h) > 0);
	assert_true(asprintf(&padded_p, "%s=", p) > 0);
	assert_int_equal(verify_and_free(sign_parts(padded_h, p)), JWT_MALFORMED);
	assert_int_equal(verify_and_free(sign_parts(h, padded_p)), JWT_MALFORMED);

	tok = sign_parts(h, p);
	parts = split(tok);
	assert_int_equal(parts.len - parts.sig, 43);
	tok = realloc(tok, parts.len + 2);
	assert_non_null(tok);
	strcpy(tok + parts.len, "=");
	assert_int_equal(verify_and_free(tok), JWT_MALFORMED);

	free(padded_h);
	free(padded_p);
	free(h);
	free(p);
}

static void test_characters_outside_the_alphabet_are_refused(void **state)
{
	static const char bad[] = "+/= \t\r\n*~!$%\"\\\x7f\x80\xff";
	char *good = make_token(HS256_HEADER, ADA);
	struct parts p = split(good);
	struct jwt_claims c;

	(void)state;
	/* sizeof counts the terminating NUL, so a NUL byte is tried too. */
	for (size_t k = 0; k < sizeof(bad); k++) {
		char *input = strndup(good, p.sig - 1);
		char *tok;

		/* In the payload, with a correct MAC over the bad byte. */
		input[p.payload + 3] = bad[k];
		tok = append_mac(input, p.sig - 1, SECRET);
		assert_int_equal(jwt_verify_hs256(tok, p.len, SECRET, NOW, 0, &c), JWT_MALFORMED);
		free(tok);
		free(input);

		/* The header and the signature are decoded before the MAC
		 * is compared, so there the MAC does not matter. */
		tok = strdup(good);
		tok[2] = bad[k];
		assert_int_equal(jwt_verify_hs256(tok, p.len, SECRET, NOW, 0, &c), JWT_MALFORMED);
		memcpy(tok, good, p.len);
		tok[p.sig + 5] = bad[k];
		assert_int_equal(jwt_verify_hs256(tok, p.len, SECRET, NOW, 0, &c), JWT_MALFORMED);
		free(tok);
	}
	free(good);
}

/* RFC 4648 §3.5: the bits after the last whole byte must be zero, or two
 * texts would decode to the same bytes. */
static void test_non_canonical_trailing_bits_are_refused(void **state)
{
	char *p2 = b64url_str(ADA);                 /* 14 bytes: 2 spare bits */
	char *p4 = b64url_str("{\"name\":\"ad\"}");  /* 13 bytes: 4 spare bits */
	char *h = b64url_str(HS256_HEADER);
	char *tok;
	struct parts parts;

	(void)state;
	assert_int_equal(verify_and_free(sign_parts(h, p2)), JWT_OK);
	assert_int_equal(verify_and_free(sign_parts(h, p4)), JWT_OK);
	/* Set a spare bit: the decoded bytes stay the same. */
	p2[strlen(p2) - 1] = bump(p2[strlen(p2) - 1], 1);
	p4[strlen(p4) - 1] = bump(p4[strlen(p4) - 1], 8);
	assert_int_equal(verify_and_free(sign_parts(h, p2)), JWT_MALFORMED);
	assert_int_equal(verify_and_free(sign_parts(h, p4)), JWT_MALFORMED);

	/* The signature's last character holds 4 bits and 2 spare ones. */
	tok = make_token(HS256_HEADER, ADA);
	parts = split(tok);
	tok[parts.len - 1] = tok[parts.len - 1] == 'B' ? 'C' : 'B';
	assert_int_equal(verify_and_free(tok), JWT_MALFORMED);
	free(p2);
	free(p4);
	free(h);
}

static void test_a_part_cannot_end_with_a_lone_character(void **state)
{
	char *h = b64url_str(HS256_HEADER);
	char *p = b64url_str("{\"name\":\"a\"}");  /* 12 bytes: 16 characters */
	char *p17;

	(void)state;
	assert_true(asprintf(&p17, "%sA", p) > 0);
	assert_int_equal(verify_and_free(sign_parts(h, p)), JWT_OK);
	assert_int_equal(verify_and_free(sign_parts(h, p17)), JWT_MALFORMED);
	free(h);
	free(p);
	free(p17);
}

/* Every remainder of the length modulo 3 decodes, not only the lucky one. */
static void test_payloads_of_every_length_verify(void **state)
{
	(void)state;
	for (int pad = 0; pad < 6; pad++) {
		char *payload;

		assert_true(asprintf(&payload, "{\"name\":\"ada\",\"p\":\"%.*s\"}", pad, "xxxxxx") > 0);
		assert_int_equal(payload_status(payload), JWT_OK);
		free(payload);
	}
}

static void test_exactly_three_parts(void **state)
{
	char *tok = make_token(HS256_HEADER, ADA);
	struct parts p = split(tok);
	char *four, *four_empty;
	struct jwt_claims c;

	(void)state;
	assert_int_equal(jwt_verify_hs256(tok, p.sig - 1, SECRET, NOW, 0, &c), JWT_MALFORMED);
	assert_int_equal(jwt_verify_hs256(tok, p.payload - 1, SECRET, NOW, 0, &c), JWT_MALFORMED);
	assert_true(asprintf(&four, "%s.%s", tok, tok + p.sig) > 0);
	assert_true(asprintf(&four_empty, "%s.", tok) > 0);
	assert_int_equal(verify_and_free(four), JWT_MALFORMED);
	assert_int_equal(verify_and_free(four_empty), JWT_MALFORMED);
	free(tok);

	/* The shape is judged first: four parts are malformed even when the
	 * header would have been refused for its algorithm. */
	tok = make_token("{\"alg\":\"none\"}", ADA);
	assert_true(asprintf(&four, "%s.%s", tok, tok + split(tok).sig) > 0);
	assert_int_equal(verify_and_free(four), JWT_MALFORMED);
	free(tok);
}

static void test_empty_parts_are_refused(void **state)
{
	char *h = b64url_str(HS256_HEADER), *p = b64url_str(ADA);
	char *no_sig;
	struct jwt_claims c;

	(void)state;
	assert_int_equal(verify_and_free(sign_parts("", p)), JWT_MALFORMED);
	assert_int_equal(verify_and_free(sign_parts(h, "")), JWT_MALFORMED);
	assert_true(asprintf(&no_sig, "%s.%s.", h, p) > 0);
	assert_int_equal(verify_and_free(no_sig), JWT_MALFORMED);
	assert_int_equal(verify_at("..", NOW, 0, &c), JWT_MALFORMED);
	assert_int_equal(verify_at("", NOW, 0, &c), JWT_MALFORMED);
	assert_int_equal(jwt_verify_hs256(NULL, 0, SECRET, NOW, 0, &c), JWT_MALFORMED);
	free(h);
	free(p);
}

/* A server reads a token as bytes arrive; no prefix of a good token, and
 * no good token with anything after it, may pass. */
static void test_truncated_or_extended_tokens_are_refused(void **state)
{
	char *tok = make_token(HS256_HEADER, ADA);
	size_t n = strlen(tok);
	char *nl;
	struct jwt_claims c;

	(void)state;
	for (size_t i = 0; i < n; i++)
		assert_int_not_equal(jwt_verify_hs256(tok, i, SECRET, NOW, 0, &c), JWT_OK);
	assert_int_equal(jwt_verify_hs256(tok, n + 1, SECRET, NOW, 0, &c), JWT_MALFORMED);
	assert_true(asprintf(&nl, "%s\n", tok) > 0);
	assert_int_equal(verify_and_free(nl), JWT_MALFORMED);
	free(tok);
}

static void test_name_comes_from_the_name_claim(void **state)
{
	struct jwt_claims c;

	(void)state;
	assert_int_equal(claims_for("{\"name\":\"Ada\",\"sub\":\"u1\"}", &c), JWT_OK);
	assert_string_equal(c.name, "Ada");
	assert_string_equal(c.sub, "u1");
	assert_int_equal(claims_for("{\"name\":\"Ad\\u00e9le\"}", &c), JWT_OK);
	assert_string_equal(c.name, "Ad\xc3\xa9le");
	assert_string_equal(c.sub, "");
}

static void test_name_falls_back_to_sub(void **state)
{
	struct jwt_claims c;

	(void)state;
	assert_int_equal(claims_for("{\"sub\":\"u1\"}", &c), JWT_OK);
	assert_string_equal(c.name, "u1");
	assert_string_equal(c.sub, "u1");
	assert_int_equal(claims_for("{\"name\":\"\",\"sub\":\"u2\"}", &c), JWT_OK);
	assert_string_equal(c.name, "u2");
	assert_int_equal(claims_for("{\"name\":42,\"sub\":\"u3\"}", &c), JWT_OK);
	assert_string_equal(c.name, "u3");
	assert_int_equal(claims_for("{\"name\":null,\"sub\":\"u4\"}", &c), JWT_OK);
	assert_string_equal(c.name, "u4");
	assert_int_equal(claims_for("{\"name\":\"Ada\",\"sub\":7}", &c), JWT_OK);
	assert_string_equal(c.name, "Ada");
	assert_string_equal(c.sub, "");
}

static void test_neither_name_nor_sub_is_no_name(void **state)
{
	(void)state;
	assert_int_equal(payload_status("{}"), JWT_NO_NAME);
	assert_int_equal(payload_status("{\"name\":\"\"}"), JWT_NO_NAME);
	assert_int_equal(payload_status("{\"name\":\"\",\"sub\":\"\"}"), JWT_NO_NAME);
	assert_int_equal(payload_status("{\"sub\":7,\"name\":[\"ada\"]}"), JWT_NO_NAME);
	assert_int_equal(payload_status("{\"Name\":\"ada\",\"SUB\":\"u1\"}"), JWT_NO_NAME);
}

static void check_truncated(const char *name, size_t want_len)
{
	struct jwt_claims c;
	char *payload;

	assert_true(asprintf(&payload, "{\"name\":\"%s\",\"sub\":\"%s\"}", name, name) > 0);
	assert_int_equal(claims_for(payload, &c), JWT_OK);
	free(payload);
	assert_int_equal(strlen(c.name), want_len);
	assert_true(strlen(c.name) <= JWT_NAME_MAX);
	assert_memory_equal(c.name, name, want_len);
	assert_true(is_utf8(c.name));
	assert_string_equal(c.sub, name); /* the subject is an id: never cut */
}

static void test_long_multibyte_name_is_cut_at_a_character_boundary(void **state)
{
	char name[256];
	size_t n;

	(void)state;
	/* "ab" and 66 euro signs: 200 bytes; byte 64 is inside a character,
	 * so the cut backs up to the 62 bytes before it. */
	n = (size_t)sprintf(name, "ab");
	for (int i = 0; i < 66; i++)
		n += (size_t)sprintf(name + n, "\xe2\x82\xac");
	assert_int_equal(n, 200);
	check_truncated(name, 62);

	/* "abc", 49 four-byte emoji and "d": 200 bytes, cut to 63. */
	n = (size_t)sprintf(name, "abc");
	for (int i = 0; i < 49; i++)
		n += (size_t)sprintf(name + n, "\xf0\x9f\x98\x80");
	n += (size_t)sprintf(name + n, "d");
	assert_int_equal(n, 200);
	check_truncated(name, 63);

	/* 100 two-byte characters: 64 falls on a boundary, nothing to back up. */
	n = 0;
	for (int i = 0; i < 100; i++)
		n += (size_t)sprintf(name + n, "\xc3\xa9");
	check_truncated(name, 64);
}

static void test_ascii_name_is_cut_at_the_limit(void **state)
{
	char name[JWT_NAME_MAX + 2];

	(void)state;
	memset(name, 'x', JWT_NAME_MAX);
	name[JWT_NAME_MAX] = '\0';
	check_truncated(name, JWT_NAME_MAX);
	name[JWT_NAME_MAX] = 'y';
	name[JWT_NAME_MAX + 1] = '\0';
	check_truncated(name, JWT_NAME_MAX);
}

/* Signed with our own secret, so only the length can be what refuses it.
 * Besides the payload a token has 36 header characters, two dots and 43
 * signature characters, and four payload characters carry three bytes:
 * start a little short of that estimate and grow one byte at a time. */
static char *token_of_length(size_t want)
{
	size_t fixed = strlen("{\"name\":\"ada\",\"p\":\"\"}");
	size_t pad = (want - 81) * 3 / 4 - fixed - 4;

	for (size_t end = pad + 12; pad < end; pad++) {
		char *payload, *tok;

		assert_true(asprintf(&payload, "{\"name\":\"ada\",\"p\":\"%*s\"}", (int)pad, "") > 0);
		tok = jwt_sign_hs256(payload, SECRET);
		free(payload);
		assert_non_null(tok);
		if (strlen(tok) == want)
			return tok;
		free(tok);
	}
	fail_msg("no token of length %zu", want);
	return NULL;
}

static void test_very_long_token_is_malformed(void **state)
{
	(void)state;
	assert_int_equal(verify_and_free(token_of_length(JWT_TOKEN_MAX)), JWT_OK);
	assert_int_equal(verify_and_free(token_of_length(JWT_TOKEN_MAX + 1)), JWT_MALFORMED);
	assert_int_equal(verify_and_free(token_of_length(65536)), JWT_MALFORMED);
}

static void test_signed_header_is_exactly_the_documented_one(void **state)
{
	char *tok = jwt_sign_hs256(ADA, SECRET);
	char *want = b64url_str(HS256_HEADER);

	(void)state;
	assert_int_equal(split(tok).payload - 1, strlen(want));
	assert_memory_equal(tok, want, strlen(want));
	free(tok);
	free(want);
}

static void test_failure_leaves_claims_zeroed(void **state)
{
	static const struct jwt_claims zero;
	struct jwt_claims c;

	(void)state;
	memset(&c, 0xa5, sizeof(c));
	assert_int_equal(claims_for("{\"exp\":1800000000,\"nbf\":1}", &c), JWT_NO_NAME);
	assert_memory_equal(&c, &zero, sizeof(c));
	memset(&c, 0xa5, sizeof(c));
	assert_int_equal(claims_for("{\"name\":\"ada\",\"exp\":1}", &c), JWT_EXPIRED);
	assert_memory_equal(&c, &zero, sizeof(c));
	memset(&c, 0xa5, sizeof(c));
	assert_int_equal(verify_at("x.y.z", NOW, 0, &c), JWT_MALFORMED);
	assert_memory_equal(&c, &zero, sizeof(c));
}

static void test_every_status_has_its_own_text(void **state)
{
	static const enum jwt_status all[] = {
		JWT_OK, JWT_MALFORMED, JWT_BAD_ALG, JWT_BAD_SIGNATURE,
		JWT_EXPIRED, JWT_NOT_YET_VALID, JWT_NO_NAME,
	};
	const size_t n = sizeof(all) / sizeof(all[0]);

	(void)state;
	for (size_t i = 0; i < n; i++) {
		const char *t = jwt_status_text(all[i]);

		assert_non_null(t);
		assert_true(t[0] != '\0');
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(t, jwt_status_text(all[j]));
	}
	assert_non_null(jwt_status_text((enum jwt_status)(JWT_NO_NAME + 1)));
	assert_non_null(jwt_status_text((enum jwt_status)-1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signed_token_verifies),
		cmocka_unit_test(test_subject_is_kept_whole_up_to_255_bytes_and_longer_is_refused),
		cmocka_unit_test(test_known_answer_vector_verifies),
		cmocka_unit_test(test_signing_reproduces_the_known_answer_vector),
		cmocka_unit_test(test_rfc7515_example_signature_is_accepted),
		cmocka_unit_test(test_tampered_payload_is_a_bad_signature),
		cmocka_unit_test(test_any_change_to_the_header_is_refused),
		cmocka_unit_test(test_tampered_signature_is_a_bad_signature),
		cmocka_unit_test(test_signature_must_be_exactly_32_bytes),
		cmocka_unit_test(test_wrong_secret_is_a_bad_signature),
		cmocka_unit_test(test_empty_secret_verifies_nothing),
		cmocka_unit_test(test_expired_token_is_refused),
		cmocka_unit_test(test_not_yet_valid_token_is_refused),
		cmocka_unit_test(test_leeway_is_honoured_at_both_edges),
		cmocka_unit_test(test_negative_leeway_counts_as_none),
		cmocka_unit_test(test_fractional_times_round_toward_refusing),
		cmocka_unit_test(test_times_beyond_int64_saturate),
		cmocka_unit_test(test_time_arithmetic_saturates),
		cmocka_unit_test(test_alg_none_is_refused),
		cmocka_unit_test(test_only_hs256_is_accepted),
		cmocka_unit_test(test_typ_must_be_jwt_when_present),
		cmocka_unit_test(test_unknown_header_parameters_are_ignored),
		cmocka_unit_test(test_crit_header_is_malformed),
		cmocka_unit_test(test_header_must_be_a_json_object),
		cmocka_unit_test(test_payload_must_be_a_json_object),
		cmocka_unit_test(test_json_strings_must_be_valid_utf8_without_nul),
		cmocka_unit_test(test_exp_and_nbf_must_be_numbers),
		cmocka_unit_test(test_duplicate_keys_are_malformed),
		cmocka_unit_test(test_padding_is_refused),
		cmocka_unit_test(test_characters_outside_the_alphabet_are_refused),
		cmocka_unit_test(test_non_canonical_trailing_bits_are_refused),
		cmocka_unit_test(test_a_part_cannot_end_with_a_lone_character),
		cmocka_unit_test(test_payloads_of_every_length_verify),
		cmocka_unit_test(test_exactly_three_parts),
		cmocka_unit_test(test_empty_parts_are_refused),
		cmocka_unit_test(test_truncated_or_extended_tokens_are_refused),
		cmocka_unit_test(test_name_comes_from_the_name_claim),
		cmocka_unit_test(test_name_falls_back_to_sub),
		cmocka_unit_test(test_neither_name_nor_sub_is_no_name),
		cmocka_unit_test(test_long_multibyte_name_is_cut_at_a_character_boundary),
		cmocka_unit_test(test_ascii_name_is_cut_at_the_limit),
		cmocka_unit_test(test_very_long_token_is_malformed),
		cmocka_unit_test(test_signed_header_is_exactly_the_documented_one),
		cmocka_unit_test(test_failure_leaves_claims_zeroed),
		cmocka_unit_test(test_every_status_has_its_own_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
