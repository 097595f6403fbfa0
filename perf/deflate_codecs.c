/* deflate_codecs.c: zlib against libdeflate on chat-sized messages, for
 * permessage-deflate (src/proto/ws_deflate.c says which one it uses and
 * why; perf/README.md has the numbers).
 *
 *   build/perf/deflate_codecs
 *
 * For a chat `message` event of about 64 B, 1 KiB and 16 KiB (JSON with
 * words drawn from a small vocabulary, as chat text repeats words): the
 * compressed size, and the time to compress and to inflate one message
 * (zlib at levels 1 and 6, with its default memLevel 8 and with 4;
 * libdeflate at levels 1 and 6),
 * the way the server does it (one stream per message, reset between). Each
 * figure is the median of 7 rounds of at least 20 ms each. */
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define ROUNDS 7
#define ROUND_NS 20000000.0

static const char *const words[] = {
	"the", "room", "is", "quiet", "today", "did", "you", "see", "new", "build", "it", "works",
	"on", "my", "machine", "ship", "when", "ready", "lunch", "anyone", "coffee", "deploy", "failed",
	"again", "fixed", "now", "thanks", "great", "idea", "let's", "meet", "at", "three", "ok",
};

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static size_t chat_event(char *out, size_t size, unsigned seed)
{
	int n = snprintf(out, size,
			 "{\"type\":\"message\",\"id\":%u,\"room\":\"lobby\",\"from\":\"g-1a2b3c\","
			 "\"name\":\"Brave Otter\",\"ts\":1795666546520,\"text\":\"",
			 seed);
	size_t len = (size_t)n;
	while (len + 3 < size) {
		seed = seed * 1103515245u + 12345u;
		const char *w = words[(seed >> 16) % (sizeof(words) / sizeof(words[0]))];
		size_t wl = strlen(w);
		if (len + wl + 4 > size)
			break;
		memcpy(out + len, w, wl);
		len += wl;
		out[len++] = ' ';
	}
	out[len++] = '"';
	out[len++] = '}';
	return len;
}

typedef size_t (*op_fn)(const unsigned char *in, size_t len, unsigned char *out, size_t cap);

static z_stream zd1, zd6, zd1m4, zd6m4, zi;
static struct libdeflate_compressor *ld1, *ld6;
static struct libdeflate_decompressor *ldd;

static size_t zlib_deflate(z_stream *z, const unsigned char *in, size_t len, unsigned char *out, size_t cap)
{
	deflateReset(z);
	z->next_in = (Bytef *)in;
	z->avail_in = (uInt)len;
	z->next_out = out;
	z->avail_out = (uInt)cap;
	deflate(z, Z_SYNC_FLUSH);
	return cap - z->avail_out - 4; /* the trailer left off */
}

static size_t zlib1(const unsigned char *in, size_t len, unsigned char *out, size_t cap)
{
	return zlib_deflate(&zd1, in, len, out, cap);
}

static size_t zlib6(const unsigned char *in, size_t len, unsigned char *out, size_t cap)
{
	return zlib_deflate(&zd6, in, len, out, cap);
}

/* memLevel 4: a hash table of 2^11 entries, not 2^15, so each reset
 * clears 4 KiB instead of 64 KiB */
static size_t zlib1m4(const unsigned char *in, size_t len, unsigned char *out, size_t cap)
{
	return zlib_deflate(&zd1m4, in, len, out, cap);
}

static size_t zlib6m4(const unsigned char *in, size_t len, unsigned char *out, size_t cap)
{
	return zlib_deflate(&zd6m4, in, len, out, cap);
}

static size_t zlib_inflate(const unsigned char *in, size_t len, unsigned char *out, size_t cap)
{
	static const unsigned char trailer[4] = { 0, 0, 0xff, 0xff };
	inflateReset(&zi);
	zi.next_in = (Bytef *)in;
	zi.avail_in = (uInt)len;
	zi.next_out = out;
	zi.avail_out = (uInt)cap;
	inflate(&zi, Z_SYNC_FLUSH);
	zi.next_in = (Bytef *)trailer;
	zi.avail_in = 4;
	inflate(&zi, Z_SYNC_FLUSH);
	return cap - zi.avail_out;
}

static size_t libdeflate1(const unsigned char *in, size_t len, unsigned char *out, size_t cap)
{
	return libdeflate_deflate_compress(ld1, in, len, out, cap);
}

static size_t libdeflate6(const unsigned char *in, size_t len, unsigned char *out, size_t cap)
{
	return libdeflate_deflate_compress(ld6, in, len, out, cap);
}

static size_t libdeflate_inflate(const unsigned char *in, size_t len, unsigned char *out, size_t cap)
{
	size_t n = 0;
	if (libdeflate_deflate_decompress(ldd, in, len, out, cap, &n) != LIBDEFLATE_SUCCESS)
		abort();
	return n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median ns per call of fn over in. */
static double time_op(op_fn fn, const unsigned char *in, size_t len, unsigned char *out, size_t cap)
{
	double r[ROUNDS];
	size_t iters = 1;
	for (;;) { /* calibrate: iterations for one round */
		double t0 = now_ns();
		for (size_t i = 0; i < iters; i++)
			fn(in, len, out, cap);
		if (now_ns() - t0 >= ROUND_NS)
			break;
		iters *= 2;
	}
	for (int k = 0; k < ROUNDS; k++) {
		double t0 = now_ns();
		for (size_t i = 0; i < iters; i++)
			fn(in, len, out, cap);
		r[k] = (now_ns() - t0) / (double)iters;
	}
	qsort(r, ROUNDS, sizeof(r[0]), cmp_double);
	return r[ROUNDS / 2];
}

int main(void)
{
	static const size_t sizes[] = { 64, 1024, 16384 };
	static const struct {
		const char *name;
		op_fn compress, inflate;
	} codecs[] = {
		{ "zlib -1", zlib1, zlib_inflate },
		{ "zlib -6", zlib6, zlib_inflate },
		{ "zlib -1 mem 4", zlib1m4, zlib_inflate },
		{ "zlib -6 mem 4", zlib6m4, zlib_inflate },
		{ "libdeflate -1", libdeflate1, libdeflate_inflate },
		{ "libdeflate -6", libdeflate6, libdeflate_inflate },
	};
	unsigned char msg[16384], z[32768], back[32768];

	if (deflateInit2(&zd1, 1, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK ||
	    deflateInit2(&zd6, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK ||
	    deflateInit2(&zd1m4, 1, Z_DEFLATED, -15, 4, Z_DEFAULT_STRATEGY) != Z_OK ||
	    deflateInit2(&zd6m4, 6, Z_DEFLATED, -15, 4, Z_DEFAULT_STRATEGY) != Z_OK ||
	    inflateInit2(&zi, -15) != Z_OK)
		return 1;
	ld1 = libdeflate_alloc_compressor(1);
	ld6 = libdeflate_alloc_compressor(6);
	ldd = libdeflate_alloc_decompressor();
	if (!ld1 || !ld6 || !ldd)
		return 1;

	printf("%6s  %-14s %8s %7s %12s %12s %10s %10s\n", "bytes", "codec", "deflated", "ratio", "compress ns",
	       "inflate ns", "comp MB/s", "infl MB/s");
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t len = chat_event((char *)msg, sizes[s], 42);
		for (size_t c = 0; c < sizeof(codecs) / sizeof(codecs[0]); c++) {
			size_t zlen = codecs[c].compress(msg, len, z, sizeof(z));
			if (codecs[c].inflate(z, zlen, back, sizeof(back)) != len || memcmp(back, msg, len)) {
				fprintf(stderr, "%s: round trip failed at %zu bytes\n", codecs[c].name, len);
				return 1;
			}
			double tc = time_op(codecs[c].compress, msg, len, z, sizeof(z));
			double ti = time_op(codecs[c].inflate, z, zlen, back, sizeof(back));
			printf("%6zu  %-14s %8zu %7.3f %12.0f %12.0f %10.0f %10.0f\n", len, codecs[c].name, zlen,
			       (double)zlen / (double)len, tc, ti, len / tc * 1e3, len / ti * 1e3);
		}
	}
	deflateEnd(&zd1);
	deflateEnd(&zd6);
	deflateEnd(&zd1m4);
	deflateEnd(&zd6m4);
	inflateEnd(&zi);
	libdeflate_free_compressor(ld1);
	libdeflate_free_compressor(ld6);
	libdeflate_free_decompressor(ldd);
	return 0;
}
