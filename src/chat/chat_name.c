/* chat_name.c: display-name rules. Names are shown to everyone, so the
 * rules aim at what misleads a reader: names that look empty, that break
 * lines, or that reorder the text around them. */
#include "chat_name.h"

#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <wchar.h>

/* wcwidth() answers from the calling thread's LC_CTYPE; names are checked
 * under C.UTF-8 without touching the process-wide locale. The locale is
 * made on first use and never changes after: a constant of the process,
 * shared by every chat, and pthread_once makes that first use safe from
 * any thread. (NULL when the C library has no C.UTF-8: then only the
 * table below decides what is invisible.) */
static pthread_once_t utf8_ctype_once = PTHREAD_ONCE_INIT;
static locale_t utf8_ctype;

static void utf8_ctype_open(void)
{
	utf8_ctype = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

/* Decode one code point of valid UTF-8 at s; returns its length. */
static size_t decode(const unsigned char *s, uint32_t *cp)
{
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] < 0xE0) {
		*cp = (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
		return 2;
	}
	if (s[0] < 0xF0) {
		*cp = (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
		return 3;
	}
	*cp = (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
	      (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
	return 4;
}

static bool is_space(uint32_t cp)
{
	return cp == ' ' || cp == '\t' || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
	       cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

static bool is_forbidden(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) ||  /* C0, DEL, C1 */
	       cp == 0x2028 || cp == 0x2029 ||              /* line/paragraph separators */
	       (cp >= 0x202A && cp <= 0x202E) ||            /* bidi embeddings, overrides */
	       (cp >= 0x2066 && cp <= 0x2069) ||            /* bidi isolates */
	       cp == 0x200E || cp == 0x200F || cp == 0x061C; /* bidi marks */
}

/* Characters that draw nothing on their own: what the C library's
 * Unicode tables give no width (combining marks of every script, format
 * characters, variation selectors), and fillers and blanks that it counts
 * as wide or narrow but that show nothing. */
static bool is_invisible(uint32_t cp)
{
	if (utf8_ctype && wcwidth((wchar_t)cp) == 0)
		return true;
	return cp == 0x2800 || (cp >= 0x200B && cp <= 0x200D) || cp == 0x2060 || (cp >= 0x2061 && cp <= 0x2064) ||
	       cp == 0xFEFF || cp == 0x00AD || cp == 0x034F || cp == 0x180E || cp == 0x115F ||
	       cp == 0x1160 || cp == 0x3164 || cp == 0xFFA0 || (cp >= 0xFE00 && cp <= 0xFE0F) ||
	       (cp >= 0xE0100 && cp <= 0xE01EF) || (cp >= 0xE0000 && cp <= 0xE007F) ||
	       (cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x1AB0 && cp <= 0x1AFF) ||
	       (cp >= 0x1DC0 && cp <= 0x1DFF) || (cp >= 0x20D0 && cp <= 0x20FF) ||
	       (cp >= 0xFE20 && cp <= 0xFE2F) || is_space(cp);
}

bool chat_name_normalize(const char *in, size_t len, char *out)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t start = 0, end = len;
	uint32_t cp;
	/* trim leading, then trailing, whitespace */
	while (start < end) {
		size_t n = decode(s + start, &cp);
		if (!is_space(cp))
			break;
		start += n;
	}
	size_t last_end = start;
	for (size_t i = start; i < end;) {
		size_t n = decode(s + i, &cp);
		i += n;
		if (!is_space(cp))
			last_end = i;
	}
	end = last_end;

	pthread_once(&utf8_ctype_once, utf8_ctype_open);
	locale_t caller = utf8_ctype ? uselocale(utf8_ctype) : (locale_t)0;
	size_t chars = 0;
	bool visible = false, bad = false;
	for (size_t i = start; i < end && !bad;) {
		i += decode(s + i, &cp);
		bad = is_forbidden(cp) || ++chars > CHAT_NAME_MAX_CHARS;
		if (!is_invisible(cp))
			visible = true;
	}
	if (caller)
		uselocale(caller);
	if (bad)
		return false;
	if (chars == 0 || !visible)
		return false;
	memcpy(out, in + start, end - start);
	out[end - start] = '\0';
	return true;
}
