/* test_lg.c: the load generator's pure parts, checked against the RFC and
 * against every way the bytes can be split.
 *
 * A benchmark that miscounts is worse than none: these are the pieces whose
 * mistakes would silently skew loss, order or latency numbers. */
#include "lg_hist.h"
#include "lg_sse.h"
#include "lg_track.h"
#include "lg_ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond)                                                                 \
	do {                                                                        \
		if (cond) {                                                         \
			passed++;                                                   \
		} else {                                                            \
			failed++;                                                   \
			fprintf(stderr, "%s:%d: %s: FAILED %s\n", __FILE__, __LINE__, \
				__func__, #cond);                                   \
		}                                                                   \
	} while (0)

static void accept_matches_rfc6455_example(void)
{
	char out[29];

	/* RFC 6455 section 1.3. */
	ws_expected_accept("dGhlIHNhbXBsZSBub25jZQ==", out);
	CHECK(!strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
}

static void response_needs_101_and_the_right_accept(void)
{
	const char ok[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			  "Connection: Upgrade\r\nsec-websocket-accept:  abc= \r\n\r\n";
	const char bad_status[] = "HTTP/1.1 400 Bad Request\r\nSec-WebSocket-Accept: abc=\r\n\r\n";
	const char no_accept[] = "HTTP/1.1 101 Switching Protocols\r\n\r\n";

	CHECK(ws_check_response(ok, sizeof(ok) - 1, "abc="));
	CHECK(!ws_check_response(ok, sizeof(ok) - 1, "abd="));
	CHECK(!ws_check_response(bad_status, sizeof(bad_status) - 1, "abc="));
	CHECK(!ws_check_response(no_accept, sizeof(no_accept) - 1, "abc="));
}

static void key_is_24_base64_chars(void)
{
	char key[25];

	ws_make_key(key);
	CHECK(strlen(key) == 24 && key[22] == '=' && key[23] == '=');
}

static void client_frame_is_masked_and_sized(void)
{
	static uint8_t payload[70000], frame[70100];
	size_t sizes[] = { 0, 1, 125, 126, 65535, 65536, 70000 };

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)('a' + i % 26);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t len = sizes[s], n = ws_client_frame(frame, WS_OP_TEXT, payload, len, 0x11223344);
		size_t h = n - len;
		bool same = true;

		CHECK(n == ws_client_frame_len(len));
		CHECK(frame[0] == 0x81 && (frame[1] & 0x80));
		for (size_t i = 0; i < len; i++)
			same &= (uint8_t)(frame[h + i] ^ frame[h - 4 + (i & 3)]) == payload[i];
		CHECK(same);
	}
}

struct seen {
	int frames;
	int opcodes[8];
	size_t lens[8];
	char text[8][300];
	bool null[8];
};

static void collect(void *ctx, int opcode, const uint8_t *p, size_t n)
{
	struct seen *s = ctx;

	if (s->frames < 8) {
		s->opcodes[s->frames] = opcode;
		s->lens[s->frames] = n;
		s->null[s->frames] = !p;
		if (p)
			memcpy(s->text[s->frames], p, n < 299 ? n : 299);
	}
	s->frames++;
}

/* Server frames: a short text, a 200-byte text (16-bit length), a ping, and
 * a 300-byte text that is over the gather limit used below. */
static size_t server_stream(uint8_t *out)
{
	size_t n = 0;

	out[n++] = 0x81;
	out[n++] = 5;
	memcpy(out + n, "hello", 5);
	n += 5;
	out[n++] = 0x81;
	out[n++] = 126;
	out[n++] = 0;
	out[n++] = 200;
	memset(out + n, 'y', 200);
	n += 200;
	out[n++] = 0x89;
	out[n++] = 2;
	out[n++] = 'p';
	out[n++] = 'q';
	out[n++] = 0x81;
	out[n++] = 126;
	out[n++] = 1;
	out[n++] = 44;
	memset(out + n, 'z', 300);
	n += 300;
	return n;
}

/* The long frame is handed out in place when it arrived whole (it costs
 * nothing), and skipped, not gathered, when it was split. */
static bool stream_ok(const struct seen *s, bool long_whole)
{
	bool long_ok = long_whole ? !s->null[3] && s->lens[3] == 300 && s->text[3][298] == 'z'
				  : s->null[3];

	return s->frames == 4 && s->opcodes[0] == WS_OP_TEXT && s->lens[0] == 5 &&
	       !memcmp(s->text[0], "hello", 5) && s->lens[1] == 200 && s->text[1][199] == 'y' &&
	       !s->null[1] && s->opcodes[2] == WS_OP_PING && s->lens[2] == 2 &&
	       !memcmp(s->text[2], "pq", 2) && s->opcodes[3] == WS_OP_TEXT && long_ok;
}

static void reader_gives_same_frames_for_every_split(void)
{
	uint8_t buf[1024];
	size_t n = server_stream(buf);
	bool all = true;

	for (size_t cut = 0; cut <= n; cut++) {
		struct ws_rx rx = { 0 };
		struct seen s = { 0 };

		ws_rx_feed(&rx, buf, cut, 250, collect, &s);
		ws_rx_feed(&rx, buf + cut, n - cut, 250, collect, &s);
		/* Whole when header and payload arrive in one piece. */
		all &= stream_ok(&s, cut < n - 300 || cut == n);
		ws_rx_release(&rx);
	}
	CHECK(all);
}

static void reader_gives_same_frames_byte_by_byte(void)
{
	uint8_t buf[1024];
	size_t n = server_stream(buf);
	struct ws_rx rx = { 0 };
	struct seen s = { 0 };

	for (size_t i = 0; i < n; i++)
		ws_rx_feed(&rx, buf + i, 1, 250, collect, &s);
	CHECK(stream_ok(&s, false));
	ws_rx_release(&rx);
}

static void reader_refuses_masked_server_frames(void)
{
	uint8_t frame[] = { 0x81, 0x81, 1, 2, 3, 4, 'a' };
	struct ws_rx rx = { 0 };
	struct seen s = { 0 };

	CHECK(ws_rx_feed(&rx, frame, sizeof(frame), 100, collect, &s) < 0);
}

/* What a stream reader saw: the data lines, NULL for a skipped event. */
struct sse_seen {
	int n;
	char data[8][64];
	bool skipped[8];
};

static void sse_collect(void *ctx, const uint8_t *p, size_t n)
{
	struct sse_seen *s = ctx;

	if (s->n < 8) {
		s->skipped[s->n] = !p;
		if (p)
			snprintf(s->data[s->n], sizeof(s->data[0]), "%.*s", (int)n, (const char *)p);
	}
	s->n++;
}

static size_t sse_stream(char *out)
{
	char big[200];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	return (size_t)sprintf(out, "data: {\"a\":1}\n\n:\n\nid: 7\ndata: {\"b\":2}\n\n"
				    "data: %s\n\nevent: close\ndata: {\"c\":3}\n\n", big);
}

static bool sse_stream_ok(const struct sse_seen *s)
{
	return s->n == 4 && !strcmp(s->data[0], "{\"a\":1}") && !strcmp(s->data[1], "{\"b\":2}") &&
	       s->skipped[2] && !strcmp(s->data[3], "{\"c\":3}");
}

static void sse_reader_gives_same_events_for_every_split(void)
{
	char buf[512];
	size_t n = sse_stream(buf);
	bool all = true;

	for (size_t cut = 0; cut <= n; cut++) {
		struct sse_rx rx = { 0 };
		struct sse_seen s = { 0 };

		/* gather at most 100: the 200-byte event is skipped when split,
		 * handed out in place when whole */
		sse_rx_feed(&rx, (uint8_t *)buf, cut, 100, sse_collect, &s);
		sse_rx_feed(&rx, (uint8_t *)buf + cut, n - cut, 100, sse_collect, &s);
		bool big_whole = !s.skipped[2];
		if (big_whole)
			s.skipped[2] = s.data[2][0] == 'x'; /* whole: its data is there */
		all &= sse_stream_ok(&s);
		sse_rx_release(&rx);
	}
	CHECK(all);
	struct sse_rx rx = { 0 };
	struct sse_seen s = { 0 };

	for (size_t i = 0; i < n; i++)
		sse_rx_feed(&rx, (uint8_t *)buf + i, 1, 100, sse_collect, &s);
	CHECK(sse_stream_ok(&s));
	sse_rx_release(&rx);
}

static void payload_roundtrips_inside_an_envelope(void)
{
	char p[200], env[400];
	uint32_t sender, seq;
	uint64_t ns;
	size_t n = lg_payload_make(p, 64, 7, 123456, 987654321012345ull);

	CHECK(n == 64 && p[63] == 'x');
	snprintf(env, sizeof(env), "{\"type\":\"message\",\"from\":\"LG\",\"text\":\"%.*s\"}",
		 (int)n, p);
	CHECK(lg_payload_find((const uint8_t *)env, strlen(env), &sender, &seq, &ns));
	CHECK(sender == 7 && seq == 123456 && ns == 987654321012345ull);
	CHECK(!lg_payload_find((const uint8_t *)"{\"type\":\"welcome\"}", 18, &sender, &seq, &ns));
	CHECK(!lg_payload_find((const uint8_t *)"LG1:2:", 6, &sender, &seq, &ns));
	/* Too small a size still gives the whole header. */
	CHECK(lg_payload_make(p, 4, 1, 2, 3) == strlen("LG1:2:3:"));
}

static void sequence_tells_gaps_late_and_duplicates(void)
{
	struct lg_seq s = { 0 };
	uint32_t gap;

	CHECK(lg_seq_note(&s, 0, &gap) == SEQ_IN_ORDER && gap == 0);
	CHECK(lg_seq_note(&s, 1, &gap) == SEQ_IN_ORDER && gap == 0);
	CHECK(lg_seq_note(&s, 4, &gap) == SEQ_IN_ORDER && gap == 2);
	CHECK(lg_seq_note(&s, 2, &gap) == SEQ_LATE);
	CHECK(lg_seq_note(&s, 2, &gap) == SEQ_DUP);
	CHECK(lg_seq_note(&s, 4, &gap) == SEQ_DUP);
	CHECK(lg_seq_note(&s, 3, &gap) == SEQ_LATE);
	CHECK(lg_seq_note(&s, 200, &gap) == SEQ_IN_ORDER && gap == 195);
	CHECK(lg_seq_note(&s, 5, &gap) == SEQ_LATE); /* beyond the bitmap */
}

#define EV(s) (const uint8_t *)(s), strlen(s)

static void event_id_read_from_ringcast_message_events(void)
{
	const char *msg = "{\"type\":\"message\",\"id\":1234,\"room\":\"lobby\",\"from\":\"7\","
			  "\"name\":\"User 7\",\"text\":\"LG0:1:2:xx\",\"ts\":1795666546520}";
	uint64_t id = 0;
	bool all_truncations_refused = true;

	CHECK(lg_event_id(EV(msg), &id) && id == 1234);
	CHECK(lg_event_id(EV("{\"type\":\"message\",\"id\":1}"), &id) && id == 1);
	CHECK(lg_event_id(EV("{\"type\":\"message\",\"id\":18446744073709551}"), &id) &&
	      id == 18446744073709551ull);
	/* A field ahead of "id" is fine, within reach. */
	CHECK(lg_event_id(EV("{\"type\":\"message\",\"room\":\"lobby\",\"id\":77,\"text\":\"\"}"),
			  &id) && id == 77);
	/* A frame cut anywhere before the id's end never yields a shorter id. */
	for (size_t n = 0; n < strlen("{\"type\":\"message\",\"id\":1234"); n++) {
		id = 0;
		all_truncations_refused &= !lg_event_id((const uint8_t *)msg, n, &id) && id == 0;
	}
	CHECK(all_truncations_refused);
}

static void event_id_only_for_top_level_message_events(void)
{
	uint64_t id = 0;

	/* The welcome's id is the connection's, a string. */
	CHECK(!lg_event_id(EV("{\"type\":\"welcome\",\"id\":\"7\",\"name\":\"User 7\"}"), &id));
	CHECK(!lg_event_id(EV("{\"type\":\"message\",\"id\":\"7\",\"text\":\"\"}"), &id));
	/* History carries message objects, but inside an array: not a delivery. */
	CHECK(!lg_event_id(EV("{\"type\":\"history\",\"room\":\"lobby\",\"messages\":"
			      "[{\"type\":\"message\",\"id\":3,\"room\":\"lobby\"}],\"more\":false}"),
			   &id));
	CHECK(!lg_event_id(EV("{\"type\":\"nick\",\"id\":\"7\",\"name\":\"a\",\"old\":\"b\"}"), &id));
	CHECK(!lg_event_id(EV("{\"type\":\"join\",\"room\":\"lobby\",\"user\":{\"id\":\"7\"}}"), &id));
	CHECK(!lg_event_id(EV("LG1:2:3:xxxx"), &id));
	CHECK(!lg_event_id(EV("{\"type\":\"message\",\"text\":\"LG1:2:3:\",\"ts\":1}"), &id));
	/* Too far in: the scan is bounded, it does not read the whole frame. */
	CHECK(!lg_event_id(EV("{\"type\":\"message\",\"text\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
			      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\",\"id\":5}"), &id));
	/* A number must end where JSON says a value ends. */
	CHECK(!lg_event_id(EV("{\"type\":\"message\",\"id\":12a,\"x\":1}"), &id));
	/* More digits than 64 bits hold. */
	CHECK(!lg_event_id(EV("{\"type\":\"message\",\"id\":12345678901234567890,\"x\":1}"), &id));
	CHECK(id == 0);
}

static void ids_must_rise_by_exactly_one(void)
{
	struct lg_idseq s = { 0 };
	uint64_t skipped;

	CHECK(lg_id_note(&s, 5, &skipped) == ID_FIRST && s.first == 5);
	CHECK(lg_id_note(&s, 6, &skipped) == ID_NEXT && skipped == 0);
	CHECK(lg_id_note(&s, 7, &skipped) == ID_NEXT);
	CHECK(lg_id_note(&s, 9, &skipped) == ID_GAP && skipped == 1);
	CHECK(lg_id_note(&s, 8, &skipped) == ID_REORDER);   /* late */
	CHECK(lg_id_note(&s, 9, &skipped) == ID_REORDER);   /* repeated */
	/* The stray old one did not move the baseline: 10 is simply next. */
	CHECK(lg_id_note(&s, 10, &skipped) == ID_NEXT);
	CHECK(lg_id_note(&s, 13, &skipped) == ID_GAP && skipped == 2);
	CHECK(s.first == 5 && s.next == 14);
}

/* Three clients that were all in the room before the window's messages
 * (ids 10..19) were sent; warm-up messages (ids 1..9) came before. */
static void ids_cover_judges_each_client_against_the_window(void)
{
	struct lg_id_range w = LG_ID_RANGE_EMPTY;
	struct lg_idseq full = { 0 }, late_start = { 0 }, short_tail = { 0 }, none = { 0 };
	uint64_t skipped;
	bool no_gaps = true;

	CHECK(lg_id_cover(&none, w) == COVER_OK);            /* no window, nothing to judge */
	for (uint64_t id = 1; id <= 20; id++) {
		no_gaps &= lg_id_note(&full, id, &skipped) != ID_GAP;
		/* Silently lost everything before 12: no gap in its own ids. */
		if (id >= 12)
			no_gaps &= lg_id_note(&late_start, id, &skipped) != ID_GAP;
		if (id <= 17)
			no_gaps &= lg_id_note(&short_tail, id, &skipped) != ID_GAP;
		if (id >= 10 && id <= 19)
			lg_id_range_add(&w, id);
	}
	CHECK(no_gaps && w.lo == 10 && w.hi == 19);
	CHECK(lg_id_cover(&full, w) == COVER_OK);
	/* Only the window comparison can catch this client. */
	CHECK(lg_id_cover(&late_start, w) == COVER_MISMATCH);
	CHECK(lg_id_cover(&short_tail, w) == COVER_BEHIND);
	CHECK(lg_id_cover(&none, w) == COVER_MISMATCH);
	/* Starting exactly at the window's first id is enough. */
	late_start = (struct lg_idseq){ .first = 10, .next = 20 };
	CHECK(lg_id_cover(&late_start, w) == COVER_OK);
}

static void histogram_bucket_high_bounds_its_values(void)
{
	static struct hist h;
	bool ok = true;

	for (uint64_t v = 1; v < (1ull << 40); v = v * 3 + 1) {
		hist_init(&h);
		hist_add(&h, v);
		for (unsigned i = 0; i < HIST_BUCKETS; i++)
			if (h.bucket[i])
				ok &= hist_bucket_high(i) >= v && hist_bucket_high(i) <= v + v / 64 &&
				      (i == 0 || hist_bucket_high(i - 1) < v);
	}
	CHECK(ok);
}

static void histogram_quantiles_within_precision(void)
{
	static struct hist h;
	uint64_t q50, q99;

	hist_init(&h);
	for (uint64_t v = 1; v <= 100000; v++)
		hist_add(&h, v * 1000);
	q50 = hist_quantile(&h, 0.5);
	q99 = hist_quantile(&h, 0.99);
	CHECK(q50 >= 50000000 && q50 <= 50000000 + 50000000 / 64);
	CHECK(q99 >= 99000000 && q99 <= 99000000 + 99000000 / 64);
	CHECK(hist_quantile(&h, 1.0) == 100000000);
	hist_init(&h);
	CHECK(hist_quantile(&h, 0.5) == 0);
	hist_add(&h, 5);
	CHECK(hist_quantile(&h, 0.99) == 5);
}

int main(void)
{
	accept_matches_rfc6455_example();
	response_needs_101_and_the_right_accept();
	key_is_24_base64_chars();
	client_frame_is_masked_and_sized();
	reader_gives_same_frames_for_every_split();
	reader_gives_same_frames_byte_by_byte();
	reader_refuses_masked_server_frames();
	sse_reader_gives_same_events_for_every_split();
	payload_roundtrips_inside_an_envelope();
	sequence_tells_gaps_late_and_duplicates();
	event_id_read_from_ringcast_message_events();
	event_id_only_for_top_level_message_events();
	ids_must_rise_by_exactly_one();
	ids_cover_judges_each_client_against_the_window();
	histogram_quantiles_within_precision();
	histogram_bucket_high_bounds_its_values();
	printf("perf: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
