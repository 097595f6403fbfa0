/* http_cache.c: If-None-Match and Accept-Encoding, read as lists of
 * comma-separated items with optional whitespace around them. */
#include "http_cache.h"

#include <string.h>
#include <strings.h>

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* The next list item of [*p, end): trimmed, with *p moved past its comma. */
static bool next_item(const char **p, const char *end, const char **item, size_t *item_len)
{
	const char *s = *p;
	while (s < end && (is_ows(*s) || *s == ','))
		s++;
	if (s == end)
		return false;
	const char *e = memchr(s, ',', (size_t)(end - s));
	if (!e)
		e = end;
	*p = e;
	while (e > s && is_ows(e[-1]))
		e--;
	*item = s;
	*item_len = (size_t)(e - s);
	return true;
}

/* q of "coding;q=0.5" in thousandths; 1000 without a q. RFC 9110 §12.4.2:
 * "0" or "1" then up to three decimals. Anything else: 0. */
static int item_q(const char *params, const char *end)
{
	const char *p = params;
	while (p < end) {
		while (p < end && (is_ows(*p) || *p == ';'))
			p++;
		if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
			p += 2;
			if (p == end || (*p != '0' && *p != '1'))
				return 0;
			int q = (*p++ - '0') * 1000, scale = 100;
			if (p < end && *p == '.') {
				p++;
				while (p < end && *p >= '0' && *p <= '9' && scale) {
					q += (*p++ - '0') * scale;
					scale /= 10;
				}
			}
			while (p < end && is_ows(*p))
				p++;
			if ((p < end && *p != ';') || q > 1000)
				return 0;
			return q;
		}
		while (p < end && *p != ';')
			p++;
	}
	return 1000;
}

bool http_accepts_gzip(const char *value, size_t len)
{
	const char *p = value, *end = value + len, *item;
	size_t item_len;
	int gzip_q = -1, star_q = -1;
	while (next_item(&p, end, &item, &item_len)) {
		const char *semi = memchr(item, ';', item_len);
		const char *name_end = semi ? semi : item + item_len;
		while (name_end > item && is_ows(name_end[-1]))
			name_end--;
		size_t n = (size_t)(name_end - item);
		int q = item_q(name_end, item + item_len);
		if ((n == 4 && strncasecmp(item, "gzip", 4) == 0) ||
		    (n == 6 && strncasecmp(item, "x-gzip", 6) == 0))
			gzip_q = q;
		else if (n == 1 && item[0] == '*')
			star_q = q;
	}
	return gzip_q >= 0 ? gzip_q > 0 : star_q > 0;
}

bool http_etag_matches(const char *value, size_t len, const char *etag)
{
	const char *p = value, *end = value + len, *item;
	size_t item_len, etag_len = strlen(etag);
	while (next_item(&p, end, &item, &item_len)) {
		if (item_len == 1 && item[0] == '*')
			return true;
		if (item_len >= 2 && item[0] == 'W' && item[1] == '/') {
			item += 2;
			item_len -= 2;
		}
		if (item_len == etag_len && memcmp(item, etag, etag_len) == 0)
			return true;
	}
	return false;
}
