/* lg_ws.c: WebSocket client handshake values, client frames, server frame reader. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "lg_ws.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

void ws_make_key(char key[25])
{
	unsigned char raw[16];

	/* The key only has to be unpredictable enough that a caching proxy
	 * can't answer for the server; getrandom never fails for 16 bytes. */
	if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
		memset(raw, 0x5a, sizeof(raw));
	EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
}

void ws_expected_accept(const char *key, char out[29])
{
	char buf[128];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t klen = strlen(key);

	memcpy(buf, key, klen);
	memcpy(buf + klen, WS_GUID, sizeof(WS_GUID) - 1);
	EVP_Digest(buf, klen + sizeof(WS_GUID) - 1, md, &mdlen, EVP_sha1(), NULL);
	EVP_EncodeBlock((unsigned char *)out, md, mdlen);
}

/* Find a header's value in a response head; returns its length, 0 if absent. */
static size_t header_value(const char *head, size_t len, const char *name,
			   const char **val)
{
	size_t nlen = strlen(name);
	const char *p = head, *end = head + len;

	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);

		if (!eol)
			break;
		if ((size_t)(eol - p) > nlen && p[nlen] == ':' &&
		    !strncasecmp(p, name, nlen)) {
			const char *v = p + nlen + 1;
			const char *ve = eol;

			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
				ve--;
			*val = v;
			return (size_t)(ve - v);
		}
		p = eol + 2;
	}
	return 0;
}

bool ws_check_response(const char *head, size_t len, const char *accept)
{
	const char *v = NULL;
	size_t vlen;

	if (len < 12 || (memcmp(head, "HTTP/1.1 101", 12) && memcmp(head, "HTTP/1.0 101", 12)))
		return false;
	vlen = header_value(head, len, "Sec-WebSocket-Accept", &v);
	return vlen == strlen(accept) && !memcmp(v, accept, vlen);
}

size_t ws_client_frame_len(size_t len)
{
	return (len < 126 ? 2 : len < 65536 ? 4 : 10) + 4 + len;
}

size_t ws_client_frame(uint8_t *dst, int opcode, const void *payload, size_t len,
		       uint32_t mask)
{
	const uint8_t *src = payload;
	uint8_t m[4];
	size_t h = 0;

	dst[h++] = 0x80 | (uint8_t)opcode;
	if (len < 126) {
		dst[h++] = 0x80 | (uint8_t)len;
	} else if (len < 65536) {
		dst[h++] = 0x80 | 126;
		dst[h++] = (uint8_t)(len >> 8);
		dst[h++] = (uint8_t)len;
	} else {
		dst[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			dst[h++] = (uint8_t)((uint64_t)len >> (8 * i));
	}
	memcpy(m, &mask, 4);
	memcpy(dst + h, m, 4);
	h += 4;
	for (size_t i = 0; i < len; i++)
		dst[h + i] = src[i] ^ m[i & 3];
	return h + len;
}

/* Header length once the first two bytes are known: 2, 4 or 10 (+4 if masked). */
static size_t header_need(const uint8_t *hdr)
{
	size_t len7 = hdr[1] & 0x7f;

	return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((hdr[1] & 0x80) ? 4 : 0);
}

static uint64_t header_payload_len(const uint8_t *hdr)
{
	uint64_t len7 = hdr[1] & 0x7f, v = 0;

	if (len7 < 126)
		return len7;
	if (len7 == 126)
		return (uint64_t)hdr[2] << 8 | hdr[3];
	for (int i = 0; i < 8; i++)
		v = v << 8 | hdr[2 + i];
	return v;
}

static void frame_done(struct ws_rx *rx, const uint8_t *p, size_t n,
		       ws_frame_fn fn, void *ctx)
{
	fn(ctx, rx->opcode, rx->skipping ? NULL : p, n);
	rx->in_payload = false;
	rx->skipping = false;
	rx->hdr_len = 0;
	rx->gathered = 0;
}

int ws_rx_feed(struct ws_rx *rx, const uint8_t *p, size_t n, size_t gather_max,
	       ws_frame_fn fn, void *ctx)
{
	while (n) {
		if (!rx->in_payload) {
			size_t need = rx->hdr_len < 2 ? 2 : header_need(rx->hdr);
			uint64_t plen;

			while (rx->hdr_len < need && n) {
				rx->hdr[rx->hdr_len++] = *p++;
				n--;
				if (rx->hdr_len == 2)
					need = header_need(rx->hdr);
			}
			if (rx->hdr_len < need)
				return 0;
			/* A server must never mask (RFC 6455 5.1). */
			if (rx->hdr[1] & 0x80)
				return -1;
			rx->opcode = rx->hdr[0] & 0x0f;
			plen = header_payload_len(rx->hdr);
			rx->in_payload = true;
			rx->remain = plen;
			if (plen <= n) {
				/* The common case: the whole frame is here. */
				frame_done(rx, p, (size_t)plen, fn, ctx);
				p += plen;
				n -= (size_t)plen;
				continue;
			}
			rx->skipping = plen > gather_max;
			if (!rx->skipping && plen > rx->gather_cap) {
				uint8_t *g = realloc(rx->gather, (size_t)plen);

				if (!g)
					return -1;
				rx->gather = g;
				rx->gather_cap = (uint32_t)plen;
			}
		}
		size_t take = rx->remain < n ? (size_t)rx->remain : n;

		if (!rx->skipping)
			memcpy(rx->gather + rx->gathered, p, take);
		rx->gathered += (uint32_t)(rx->skipping ? 0 : take);
		rx->remain -= take;
		p += take;
		n -= take;
		if (!rx->remain) {
			size_t len = rx->gathered;

			frame_done(rx, rx->gather, len, fn, ctx);
			/* Gathering is rare; don't keep the buffer per connection. */
			free(rx->gather);
			rx->gather = NULL;
			rx->gather_cap = 0;
		}
	}
	return 0;
}

void ws_rx_release(struct ws_rx *rx)
{
	free(rx->gather);
	rx->gather = NULL;
	rx->gather_cap = 0;
}
