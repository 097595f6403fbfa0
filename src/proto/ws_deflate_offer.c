/* ws_deflate_offer.c: reading a client's permessage-deflate offers and
 * writing our answer (RFC 7692 §5, §7.1).
 *
 * The header's grammar is RFC 6455 §9.1: extensions separated by commas,
 * each a token with parameters after semicolons, a parameter's value a
 * token or a quoted string. Anything outside it makes the whole value
 * malformed: a header we cannot read is not one to pick an offer from. */
#include "ws_deflate.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

struct cursor {
	const char *s;
	size_t len, at;
};

static bool at_end(const struct cursor *c)
{
	return c->at >= c->len;
}

static char peek(const struct cursor *c)
{
	return at_end(c) ? '\0' : c->s[c->at];
}

static void skip_ows(struct cursor *c)
{
	while (peek(c) == ' ' || peek(c) == '\t')
		c->at++;
}

/* RFC 7230 §3.2.6 tchar */
static bool is_tchar(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* A token at the cursor; false when there is none. */
static bool take_token(struct cursor *c, const char **tok, size_t *tok_len)
{
	size_t start = c->at;
	while (!at_end(c) && is_tchar(c->s[c->at]))
		c->at++;
	*tok = c->s + start;
	*tok_len = c->at - start;
	return *tok_len > 0;
}

/* A quoted string, unescaped into out (cap bytes); a longer one is cut,
 * and *out_len says how long it really is. False when not well formed. */
static bool take_quoted(struct cursor *c, char *out, size_t cap, size_t *out_len)
{
	size_t n = 0;
	c->at++; /* the opening quote */
	for (;;) {
		if (at_end(c))
			return false;
		char ch = c->s[c->at++];
		if (ch == '"')
			break;
		if (ch == '\\') {
			if (at_end(c))
				return false;
			ch = c->s[c->at++];
		}
		/* qdtext and quoted-pair: no control bytes but tab */
		if ((unsigned char)ch < 0x20 && ch != '\t')
			return false;
		if (ch == 0x7f)
			return false;
		if (n < cap)
			out[n] = ch;
		n++;
	}
	*out_len = n;
	return true;
}

static bool name_is(const char *tok, size_t len, const char *name)
{
	return len == strlen(name) && strncasecmp(tok, name, len) == 0;
}

/* §7.1.2: a window size is 8..15, in decimal, without leading zeros. */
static int window_bits(const char *v, size_t len)
{
	if (len == 1 && v[0] >= '8' && v[0] <= '9')
		return v[0] - '0';
	if (len == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
		return 10 + v[1] - '0';
	return 0;
}

enum {
	SEEN_SERVER_NO_TAKEOVER = 1,
	SEEN_CLIENT_NO_TAKEOVER = 2,
	SEEN_SERVER_BITS = 4,
	SEEN_CLIENT_BITS = 8,
};

/* Judge one parameter of a permessage-deflate offer: false declines the
 * offer. has_value: it had "=value" (value holds its first bytes, len its
 * real length). */
static bool offer_param(const char *name, size_t name_len, bool has_value, const char *value, size_t len,
			unsigned *seen, struct ws_deflate_params *p)
{
	unsigned bit;
	if (name_is(name, name_len, "server_no_context_takeover"))
		bit = SEEN_SERVER_NO_TAKEOVER;
	else if (name_is(name, name_len, "client_no_context_takeover"))
		bit = SEEN_CLIENT_NO_TAKEOVER;
	else if (name_is(name, name_len, "server_max_window_bits"))
		bit = SEEN_SERVER_BITS;
	else if (name_is(name, name_len, "client_max_window_bits"))
		bit = SEEN_CLIENT_BITS;
	else
		return false; /* §7: not a parameter of this extension */
	if (*seen & bit)
		return false; /* §7: the same parameter twice */
	*seen |= bit;
	switch (bit) {
	case SEEN_SERVER_BITS:
		/* needs a value in an offer; we honour any (ws_conn.c sends
		 * compressed only what fits the client's window) */
		if (!has_value || !window_bits(value, len))
			return false;
		p->server_max_window_bits = (uint8_t)window_bits(value, len);
		return true;
	case SEEN_CLIENT_BITS:
		/* the client may hint its window; we inflate with the largest
		 * (15 bits), which reads any, so nothing to answer */
		return !has_value || window_bits(value, len);
	default:
		return !has_value;
	}
}

int ws_deflate_negotiate(const char *value, size_t len, struct ws_deflate_params *p)
{
	struct cursor c = { .s = value, .len = len };
	bool accepted = false;

	for (;;) {
		skip_ows(&c);
		if (peek(&c) == ',') { /* RFC 7230 §7: empty list elements are allowed */
			c.at++;
			continue;
		}
		if (at_end(&c))
			break;
		const char *name;
		size_t name_len;
		if (!take_token(&c, &name, &name_len))
			return -1;
		bool ours = name_is(name, name_len, "permessage-deflate");
		bool ok = true;
		unsigned seen = 0;
		struct ws_deflate_params offer = { 0 };
		skip_ows(&c);
		while (peek(&c) == ';') {
			c.at++;
			skip_ows(&c);
			const char *pname;
			size_t pname_len;
			char v[4] = { 0 };
			size_t vlen = 0;
			bool has_value = false;
			if (!take_token(&c, &pname, &pname_len))
				return -1;
			skip_ows(&c);
			if (peek(&c) == '=') {
				c.at++;
				skip_ows(&c);
				has_value = true;
				if (peek(&c) == '"') {
					if (!take_quoted(&c, v, sizeof(v), &vlen))
						return -1;
				} else {
					const char *tok;
					if (!take_token(&c, &tok, &vlen))
						return -1;
					memcpy(v, tok, vlen < sizeof(v) ? vlen : sizeof(v));
				}
				skip_ows(&c);
			}
			if (ours && ok)
				ok = offer_param(pname, pname_len, has_value, v, vlen, &seen, &offer);
		}
		if (!at_end(&c) && peek(&c) != ',')
			return -1;
		if (ours && ok && !accepted) {
			*p = offer;
			accepted = true;
		}
	}
	return accepted ? 1 : 0;
}

size_t ws_deflate_answer(const struct ws_deflate_params *p, char *out, size_t cap)
{
	/* §7.1.1.2: a server may ask for client_no_context_takeover unasked,
	 * and we always do: one inflater per edge serves every connection. */
	char bits[32] = "";
	if (p->server_max_window_bits)
		snprintf(bits, sizeof(bits), "; server_max_window_bits=%u", p->server_max_window_bits);
	int n = snprintf(out, cap,
			 "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
			 "client_no_context_takeover%s\r\n",
			 bits);
	if (n < 0 || (size_t)n >= cap) {
		if (cap)
			out[0] = '\0'; /* no half a header */
		return 0;
	}
	return (size_t)n;
}
