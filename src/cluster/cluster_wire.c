/* cluster_wire.c: parsing publications and stream entries (cluster_wire.h). */
#include "cluster_wire.h"

#include <string.h>

/* A decimal number ending at a space or a newline (which it skips). */
static bool number(const char **p, const char *end, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	if (s == end || *s < '0' || *s > '9')
		return false;
	while (s < end && *s >= '0' && *s <= '9') {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s++ - '0');
	}
	if (s == end || (*s != ' ' && *s != '\n'))
		return false;
	*out = v;
	*p = s + 1;
	return true;
}

static int parse_message(const char *p, const char *end, struct cluster_pub *out)
{
	uint64_t id, ts, from_len, name_len;
	if (!number(&p, end, &out->nseq) || !number(&p, end, &id) || !number(&p, end, &ts) ||
	    !number(&p, end, &from_len) || !number(&p, end, &name_len) || p[-1] != '\n')
		return -1;
	if (id == 0 || from_len > (size_t)(end - p) || name_len > (size_t)(end - p) - from_len)
		return -1;
	out->kind = PUB_MESSAGE;
	out->rec = (struct store_record){ .id = id, .ts = ts, .from = p, .from_len = from_len,
					  .name = p + from_len, .name_len = name_len };
	out->rec.text = p + from_len + name_len;
	out->rec.text_len = (size_t)(end - out->rec.text);
	return 0;
}

static int parse_event(const char *p, const char *end, struct cluster_pub *out)
{
	if (end - p < 2 || p[1] != ' ')
		return -1;
	switch (p[0]) {
	case 'J': out->kind = PUB_JOIN; break;
	case 'L': out->kind = PUB_LEAVE; break;
	case 'N': out->kind = PUB_NICK; break;
	default: return -1;
	}
	p += 2;
	uint64_t member;
	if (!number(&p, end, &member) || member > UINT32_MAX || !number(&p, end, &out->count) ||
	    !number(&p, end, &out->nseq) || p[-1] != '\n')
		return -1;
	out->member = (uint32_t)member;
	if (out->kind == PUB_NICK) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl || nl == p)
			return -1;
		out->rooms = p;
		out->rooms_len = (size_t)(nl - p);
		p = nl + 1;
	}
	if (p == end)
		return -1;
	out->json = p;
	out->json_len = (size_t)(end - p);
	return 0;
}

int cluster_pub_parse(const char *p, size_t n, struct cluster_pub *out)
{
	memset(out, 0, sizeof(*out));
	const char *end = p + n;
	if (n < 2)
		return -1;
	char kind = *p++;
	if (!number(&p, end, &out->node) || p[-1] != ' ')
		return -1;
	if (kind == 'M')
		return parse_message(p, end, out);
	if (kind == 'E')
		return parse_event(p, end, out);
	return -1;
}

uint64_t cluster_stream_id(const char *s, size_t n)
{
	if (n < 3 || s[0] != '0' || s[1] != '-')
		return 0;
	uint64_t v = 0;
	for (size_t i = 2; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v;
}

static bool is_string(const redisReply *r)
{
	return r && r->type == REDIS_REPLY_STRING;
}

static uint64_t string_number(const redisReply *r)
{
	uint64_t v = 0;
	for (size_t i = 0; i < r->len; i++) {
		if (r->str[i] < '0' || r->str[i] > '9' || v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(r->str[i] - '0');
	}
	return v;
}

int cluster_entry_parse(const redisReply *entry, struct cluster_pub *out)
{
	memset(out, 0, sizeof(*out));
	if (!entry || entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
	    !is_string(entry->element[0]) || entry->element[1]->type != REDIS_REPLY_ARRAY)
		return -1;
	out->kind = PUB_MESSAGE;
	out->rec.id = cluster_stream_id(entry->element[0]->str, entry->element[0]->len);
	const redisReply *fields = entry->element[1];
	bool have_text = false;
	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *k = fields->element[i], *v = fields->element[i + 1];
		if (!is_string(k) || !is_string(v))
			return -1;
		if (k->len == 4 && !memcmp(k->str, "node", 4)) {
			out->node = string_number(v);
		} else if (k->len == 4 && !memcmp(k->str, "nseq", 4)) {
			out->nseq = string_number(v);
		} else if (k->len == 4 && !memcmp(k->str, "from", 4)) {
			out->rec.from = v->str;
			out->rec.from_len = v->len;
		} else if (k->len == 4 && !memcmp(k->str, "name", 4)) {
			out->rec.name = v->str;
			out->rec.name_len = v->len;
		} else if (k->len == 4 && !memcmp(k->str, "text", 4)) {
			out->rec.text = v->str;
			out->rec.text_len = v->len;
			have_text = true;
		} else if (k->len == 2 && !memcmp(k->str, "ts", 2)) {
			out->rec.ts = string_number(v);
		}
	}
	if (!out->rec.id || !have_text || !out->rec.from || !out->rec.name)
		return -1;
	return 0;
}
