/* ws_handshake.c: the two computations of the opening handshake (§4.2):
 * is Sec-WebSocket-Key well formed, and what is its Sec-WebSocket-Accept. */
#include "ws.h"

#include <openssl/evp.h>
#include <stdlib.h>

#include "log.h"

/* §1.3: every server appends this to the key before hashing, so the answer
 * proves it understood the handshake and is not echoing headers back. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void ws_accept_key(const char *key, size_t key_len, char out[29])
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok;

	/* Two updates rather than one buffer, so a key of any length is
	 * hashed without a copy. These only fail when OpenSSL cannot
	 * allocate, and the server cannot go on without memory. */
	ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) &&
	     EVP_DigestUpdate(ctx, key, key_len) &&
	     EVP_DigestUpdate(ctx, ws_guid, sizeof(ws_guid) - 1) &&
	     EVP_DigestFinal_ex(ctx, digest, &digest_len);
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		log_error("SHA-1 failed for the WebSocket accept key");
		abort();
	}
	EVP_EncodeBlock((unsigned char *)out, digest, (int)digest_len);
}

static bool ws_base64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

bool ws_key_valid(const char *key, size_t key_len)
{
	char last;

	/* 16 bytes are 128 bits: 21 characters of 6 bits, a 22nd carrying the
	 * final 2 bits, then two padding characters. */
	if (key_len != 24 || key[22] != '=' || key[23] != '=')
		return false;
	for (size_t i = 0; i < 22; i++)
		if (!ws_base64_char(key[i]))
			return false;
	/* Only A, Q, g and w (0, 16, 32, 48) leave the 4 unused bits zero;
	 * any other last character is not how 16 bytes encode. */
	last = key[21];
	return last == 'A' || last == 'Q' || last == 'g' || last == 'w';
}
