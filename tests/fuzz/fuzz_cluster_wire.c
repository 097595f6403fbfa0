/* fuzz_cluster_wire.c: libFuzzer harness for what a cluster node reads
 * from Redis's pub/sub (src/cluster/cluster_wire.c).
 *
 * Besides "no crash, no sanitizer report": a parsed publication's strings
 * lie inside the input, a message has an id, and its from, name and text
 * are exactly the rest of the input after the header line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_wire.h"
#include "fuzz_check.h"

static int inside(const char *p, size_t n, const char *s, size_t len)
{
	return s >= p && s + len <= p + n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a copy of exactly size bytes, so reading past it is caught */
	char *p = malloc(size ? size : 1);
	if (!p)
		return 0;
	memcpy(p, data, size);
	struct cluster_pub pub;
	if (cluster_pub_parse(p, size, &pub) == 0) {
		if (pub.kind == PUB_MESSAGE) {
			CHECK(pub.rec.id > 0);
			CHECK(inside(p, size, pub.rec.from, pub.rec.from_len));
			CHECK(pub.rec.name == pub.rec.from + pub.rec.from_len);
			CHECK(pub.rec.text == pub.rec.name + pub.rec.name_len);
			CHECK(pub.rec.text + pub.rec.text_len == p + size);
		} else {
			CHECK(pub.json_len > 0 && inside(p, size, pub.json, pub.json_len));
			CHECK(pub.json + pub.json_len == p + size);
			if (pub.kind == PUB_NICK)
				CHECK(pub.rooms_len > 0 && inside(p, size, pub.rooms, pub.rooms_len));
		}
	}
	cluster_stream_id(p, size);
	free(p);
	return 0;
}
