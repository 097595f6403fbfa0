/* utf8.c: incremental UTF-8 validation as a small table-driven DFA.
 *
 * Every byte falls into one of twelve classes, and the state says what the
 * rest of the current character may still be. Four states exist only to
 * narrow the byte after a lead that allows fewer continuations than usual
 * (E0, ED, F0, F4): that is how overlongs, surrogates and code points above
 * U+10FFFF fail on the byte that makes them impossible, not at the end of
 * the character. A state is a plain integer, so a caller can keep it between
 * chunks and frames of a message at no cost. */
#include "utf8.h"

#include <string.h>

/* Short names on purpose: they make the transition table below read as a
 * grid. ACC and REJ are the public UTF8_ACCEPT and UTF8_REJECT. */
enum utf8_state {
	ACC = UTF8_ACCEPT,
	REJ = UTF8_REJECT,
	T1,     /* one continuation byte (80..BF) to go */
	T2,     /* two to go */
	T3,     /* three to go */
	E0,     /* after E0: A0..BF, or the character would be overlong */
	ED,     /* after ED: 80..9F, or it would be a surrogate D800..DFFF */
	F0,     /* after F0: 90..BF, or overlong */
	F4,     /* after F4: 80..8F, or above U+10FFFF */
	UTF8_STATES
};

enum utf8_class {
	ASC,    /* 00..7F */
	C80,    /* continuation 80..8F */
	C90,    /* continuation 90..9F */
	CA0,    /* continuation A0..BF */
	BAD,    /* C0, C1 (always overlong) and F5..FF (always too high) */
	L2,     /* C2..DF: two-byte lead */
	LE0,    /* E0 */
	L3,     /* E1..EC, EE..EF: three-byte lead, any continuation */
	LED,    /* ED */
	LF0,    /* F0 */
	L4,     /* F1..F3: four-byte lead, any continuation */
	LF4,    /* F4 */
	UTF8_CLASSES
};

static const uint8_t utf8_class[256] = {
	[0x00 ... 0x7f] = ASC,
	[0x80 ... 0x8f] = C80,
	[0x90 ... 0x9f] = C90,
	[0xa0 ... 0xbf] = CA0,
	[0xc0 ... 0xc1] = BAD,
	[0xc2 ... 0xdf] = L2,
	[0xe0] = LE0,
	[0xe1 ... 0xec] = L3,
	[0xed] = LED,
	[0xee ... 0xef] = L3,
	[0xf0] = LF0,
	[0xf1 ... 0xf3] = L4,
	[0xf4] = LF4,
	[0xf5 ... 0xff] = BAD,
};

static const uint8_t utf8_next[UTF8_STATES][UTF8_CLASSES] = {
	/*        ASC  C80  C90  CA0  BAD  L2   LE0  L3   LED  LF0  L4   LF4 */
	[ACC] = { ACC, REJ, REJ, REJ, REJ, T1,  E0,  T2,  ED,  F0,  T3,  F4  },
	[REJ] = { REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ },
	[T1]  = { REJ, ACC, ACC, ACC, REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ },
	[T2]  = { REJ, T1,  T1,  T1,  REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ },
	[T3]  = { REJ, T2,  T2,  T2,  REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ },
	[E0]  = { REJ, REJ, REJ, T1,  REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ },
	[ED]  = { REJ, T1,  T1,  REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ },
	[F0]  = { REJ, REJ, T2,  T2,  REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ },
	[F4]  = { REJ, T2,  REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ, REJ },
};

/* Chat text is mostly ASCII, so between characters the validator tests
 * eight bytes at once for a set high bit. memcpy makes the unaligned load
 * well defined; compilers turn it into one instruction. */
static bool utf8_ascii8(const uint8_t *p)
{
	uint64_t w;

	memcpy(&w, p, sizeof(w));
	return !(w & 0x8080808080808080ull);
}

uint32_t utf8_feed(uint32_t state, const uint8_t *buf, size_t len)
{
	size_t i = 0;

	while (i < len && state != UTF8_REJECT) {
		if (state == UTF8_ACCEPT) {
			while (len - i >= 8 && utf8_ascii8(buf + i))
				i += 8;
			if (i == len)
				break;
		}
		state = utf8_next[state][utf8_class[buf[i++]]];
	}
	return state;
}

bool utf8_valid(const uint8_t *buf, size_t len)
{
	return utf8_feed(UTF8_ACCEPT, buf, len) == UTF8_ACCEPT;
}
