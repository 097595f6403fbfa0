/* json_out.c: a growable JSON text builder. */
#include "json_out.h"

#include <stdlib.h>
#include <string.h>

static void reserve(struct jbuf *b, size_t more)
{
	size_t need = b->len + more;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	char *p = realloc(b->data, cap);
	if (!p)
		abort();
	b->data = p;
	b->cap = cap;
}

void jbuf_init(struct jbuf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	reserve(b, 1); /* data is never NULL, even for no JSON at all */
}

void jbuf_free(struct jbuf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void jbuf_reset(struct jbuf *b)
{
	b->len = 0;
}

void jbuf_raw(struct jbuf *b, const char *s, size_t n)
{
	reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
}

void jbuf_lit(struct jbuf *b, const char *s)
{
	jbuf_raw(b, s, strlen(s));
}

static const char hex[] = "0123456789abcdef";

size_t json_escape(const char *s, size_t n, char *out)
{
	const unsigned char *in = (const unsigned char *)s;
	char *o = out;
	size_t i = 0;
	while (i < n) {
		/* Copy the run that needs no escaping in one go. */
		size_t run = i;
		while (run < n && in[run] >= 0x20 && in[run] != '"' && in[run] != '\\' &&
		       in[run] != 0xE2)
			run++;
		memcpy(o, in + i, run - i);
		o += run - i;
		i = run;
		if (i == n)
			break;
		unsigned char c = in[i];
		/* U+2028 and U+2029 are valid in JSON but end a line in
		 * JavaScript source; escaping them keeps the output safe to embed. */
		if (c == 0xE2) {
			if (i + 2 < n && in[i + 1] == 0x80 && (in[i + 2] == 0xA8 || in[i + 2] == 0xA9)) {
				memcpy(o, in[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6);
				o += 6;
				i += 3;
			} else {
				*o++ = (char)c;
				i++;
			}
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 0xF];
		}
		i++;
	}
	return (size_t)(o - out);
}

void jbuf_str(struct jbuf *b, const char *s, size_t n)
{
	reserve(b, 6 * n + 2);
	char *o = b->data + b->len;
	*o++ = '"';
	o += json_escape(s, n, o);
	*o++ = '"';
	b->len = (size_t)(o - b->data);
}

void jbuf_u64(struct jbuf *b, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	jbuf_raw(b, tmp + sizeof(tmp) - n, n);
}

struct buf *jbuf_to_payload(const struct jbuf *b)
{
	return buf_new_payload(b->data, b->len);
}
