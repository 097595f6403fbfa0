/* sse_event.c: text/event-stream events and session keys (sse_event.h). */
#include "sse_event.h"

#include <stdio.h>
#include <string.h>

#include "buf.h"

#define MESSAGE_PREFIX "{\"type\":\"message\",\"id\":"
#define ROOM_KEY ",\"room\":\""

/* Up to 20 decimal digits that fit 64 bits, no leading zero but "0". */
static size_t read_u64(const char *s, size_t len, uint64_t *out)
{
	size_t i = 0;
	uint64_t v = 0;
	while (i < len && s[i] >= '0' && s[i] <= '9') {
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10 || (i == 1 && s[0] == '0'))
			return 0;
		v = v * 10 + d;
		i++;
	}
	*out = v;
	return i;
}

bool sse_message_prefix(const char *json, size_t len, uint64_t *id, const char **room, size_t *room_len)
{
	size_t p = sizeof(MESSAGE_PREFIX) - 1;
	if (len < p || memcmp(json, MESSAGE_PREFIX, p) != 0)
		return false;
	size_t n = read_u64(json + p, len - p, id);
	if (!n)
		return false;
	p += n;
	size_t k = sizeof(ROOM_KEY) - 1;
	if (len - p < k || memcmp(json + p, ROOM_KEY, k) != 0)
		return false;
	p += k;
	const char *end = memchr(json + p, '"', len - p);
	if (!end || end == json + p)
		return false;
	*room = json + p;
	*room_len = (size_t)(end - (json + p));
	return true;
}

struct buf *sse_event_new(const void *json, size_t len, const uint64_t *id)
{
	char head[40];
	size_t hlen = 0;
	if (id)
		hlen = (size_t)snprintf(head, sizeof(head), "id: %llu\n", (unsigned long long)*id);
	struct buf *b = buf_new(hlen + 6 + len + 2);
	memcpy(b->data, head, hlen);
	memcpy(b->data + hlen, "data: ", 6);
	memcpy(b->data + hlen + 6, json, len);
	memcpy(b->data + hlen + 6 + len, "\n\n", 2);
	return b;
}

uint64_t sse_room_hash(const char *name, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)name[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

size_t sse_key_format(const struct sse_key *k, char *out)
{
	int n = snprintf(out, SSE_KEY_TEXT_MAX, "%u-%u-%u-", k->edge, k->slot, k->gen);
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < SSE_KEY_SECRET; i++) {
		out[n++] = hex[k->secret[i] >> 4];
		out[n++] = hex[k->secret[i] & 15];
	}
	out[n] = '\0';
	return (size_t)n;
}

/* A decimal number that fits 32 bits, then the separator '-'. */
static size_t read_u32_dash(const char *s, size_t len, uint32_t *out)
{
	uint64_t v;
	size_t n = read_u64(s, len < 10 ? len : 10, &v);
	if (!n || v > UINT32_MAX || n == len || s[n] != '-')
		return 0;
	*out = (uint32_t)v;
	return n + 1;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool sse_key_parse(const char *text, size_t len, struct sse_key *k)
{
	size_t p = 0, n;
	uint32_t *fields[3] = { &k->edge, &k->slot, &k->gen };
	for (int i = 0; i < 3; i++) {
		if (!(n = read_u32_dash(text + p, len - p, fields[i])))
			return false;
		p += n;
	}
	if (len - p != 2 * SSE_KEY_SECRET)
		return false;
	for (int i = 0; i < SSE_KEY_SECRET; i++) {
		int hi = hex_digit(text[p + 2 * i]), lo = hex_digit(text[p + 2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		k->secret[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}
