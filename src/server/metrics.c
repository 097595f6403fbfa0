/* metrics.c: rendering every module's counters as Prometheus text. */
#include "metrics.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "chat.h"
#include "conn.h"
#include "http_conn.h"
#include "log.h"
#include "loop.h"
#include "session.h"
#include "sse_conn.h"
#include "ws_conn.h"

/* Every metric fits with room to spare (about 10 KiB today); a text cut
 * short would read as metrics gone missing, so it is logged as the bug it
 * is, and test_health.py checks the last metric arrives. */
struct out {
	char text[32768];
	size_t len;
	bool cut;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->text + o->len, sizeof(o->text) - o->len, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n >= sizeof(o->text) - o->len)
		o->cut = true;
	if (n > 0)
		o->len += (size_t)n < sizeof(o->text) - o->len ? (size_t)n : sizeof(o->text) - o->len - 1;
}

static void metric(struct out *o, const char *name, const char *type, const char *help, double value)
{
	put(o, "# HELP ringcast_%s %s\n# TYPE ringcast_%s %s\nringcast_%s %.17g\n", name, help, name,
	    type, name, value);
}

void metrics_sample_take(struct metrics_sample *s, const struct loop *loop, const struct conns *conns,
			 struct chat *chat, const struct sessions *sessions)
{
	/* memcpy, padding and all: a sample is added up word by word */
	memcpy(&s->conns, conns_stats(conns), sizeof(s->conns));
	memcpy(&s->loop, loop_stats(loop), sizeof(s->loop));
	memcpy(&s->chat, chat_stats(chat), sizeof(s->chat));
	memcpy(&s->ws, ws_transport_stats(sessions->ws), sizeof(s->ws));
	memcpy(&s->http, http_transport_stats(sessions->http), sizeof(s->http));
	memcpy(&s->sse, sse_transport_stats(sessions->sse), sizeof(s->sse));
}

/* Counters are uint64_t (a flag or two beside them is not rendered from
 * the sum), so a sample adds up word by word. */
_Static_assert(sizeof(struct metrics_sample) % sizeof(uint64_t) == 0,
	       "a metrics sample is uint64_t counters only");

static void add_sample(struct metrics_sample *sum, const struct metrics_sample *s)
{
	uint64_t *to = (uint64_t *)sum;
	const uint64_t *from = (const uint64_t *)s;
	for (size_t i = 0; i < sizeof(*s) / sizeof(uint64_t); i++)
		to[i] += from[i];
}

struct buf *metrics_render(const struct metrics_sample *samples, unsigned n, uint64_t rooms_in_use)
{
	struct out o;
	o.len = 0;
	o.cut = false;
	struct metrics_sample sum;
	memset(&sum, 0, sizeof(sum));
	for (unsigned i = 0; i < n; i++)
		add_sample(&sum, &samples[i]);
	sum.chat.rooms = rooms_in_use; /* a room on several edges is one room */
	const struct conn_stats *cs = &sum.conns;
	const struct loop_stats *ls = &sum.loop;
	const struct chat_stats *ch = &sum.chat;
	const struct ws_conn_stats *ws = &sum.ws;
	const struct http_conn_stats *hs = &sum.http;
	const struct sse_conn_stats *ss = &sum.sse;

	metric(&o, "edges", "gauge", "Edges: rings on threads of their own (--threads).", (double)n);
	put(&o, "# HELP ringcast_edge_connections Open connections on each edge.\n"
		"# TYPE ringcast_edge_connections gauge\n");
	for (unsigned i = 0; i < n; i++)
		put(&o, "ringcast_edge_connections{edge=\"%u\"} %llu\n", i,
		    (unsigned long long)samples[i].conns.current);
	metric(&o, "connections", "gauge", "Open connections, HTTP, WebSocket and SSE.", (double)cs->current);
	metric(&o, "connections_total", "counter", "Connections accepted.", (double)cs->total);
	metric(&o, "connections_refused_total", "counter", "Connections turned away at --max-connections.",
	       (double)cs->refused);
	metric(&o, "connections_refused_per_ip_total", "counter",
	       "Connections turned away at --max-per-ip.", (double)cs->refused_per_ip);
	metric(&o, "accept_errors_total", "counter", "Failed accepts (EMFILE and the like).",
	       (double)cs->accept_errors);
	metric(&o, "tls_failures_total", "counter", "TLS handshakes or records that failed.",
	       (double)cs->tls_failures);
	metric(&o, "websockets_opened_total", "counter", "Completed WebSocket handshakes.", (double)ws->opened);
	metric(&o, "messages_in_total", "counter", "Complete WebSocket text messages received.",
	       (double)ws->messages_in);
	metric(&o, "chat_messages_total", "counter", "Chat messages accepted and broadcast.",
	       (double)ch->messages);
	metric(&o, "chat_errors_total", "counter", "Error events sent to clients.", (double)ch->errors);
	metric(&o, "rooms", "gauge", "Rooms that exist.", (double)ch->rooms);
	metric(&o, "rate_limited_total", "counter", "Messages refused by the flood limit.",
	       (double)ch->rate_limited);
	metric(&o, "store_failures_total", "counter", "Messages the history store failed to commit.",
	       (double)ch->store_failures);
	metric(&o, "store_pending", "gauge", "Messages waiting for their commit.", (double)ch->pending);
	metric(&o, "history_bytes", "gauge", "Bytes of recent history held in memory, all rooms.",
	       (double)ch->history_bytes);
	metric(&o, "history_bytes_limit", "gauge", "The bound on them (--history-bytes).",
	       (double)ch->history_bytes_limit);
	metric(&o, "history_evicted_total", "counter",
	       "Messages dropped from memory to stay under --history-bytes.",
	       (double)ch->history_evicted);
	metric(&o, "auth_refused_total", "counter", "Upgrades refused for a missing or bad token.",
	       (double)hs->auth_refused);
	metric(&o, "origin_refused_total", "counter", "Upgrades refused for a cross-site Origin.",
	       (double)hs->origin_refused);
	metric(&o, "host_refused_total", "counter", "Requests refused for a foreign Host on loopback (421).",
	       (double)hs->host_refused);
	metric(&o, "deliveries_total", "counter", "Frames and responses fully sent.", (double)cs->frames_out);
	metric(&o, "bytes_out_total", "counter", "Bytes sent.", (double)cs->bytes_out);
	metric(&o, "send_ops_total", "counter", "Send operations submitted.", (double)cs->send_ops);
	metric(&o, "zerocopy_sends_total", "counter", "Send operations submitted zero-copy (--send-zc).",
	       (double)ls->zc_sends);
	metric(&o, "zerocopy_copied_total", "counter",
	       "Zero-copy sends the kernel copied after all (loopback always does).",
	       (double)ls->zc_copied);
	metric(&o, "frames_per_send", "gauge", "Frames carried per send operation (coalescing).",
	       cs->send_ops ? (double)cs->frames_out / (double)cs->send_ops : 0.0);
	metric(&o, "slow_consumer_closes_total", "counter",
	       "Clients dropped as slow consumers (stalled past --send-timeout or over --max-queue).",
	       (double)cs->slow_consumers);
	metric(&o, "slow_consumer_stalled_total", "counter",
	       "Of those, clients that took none of their queued bytes for --send-timeout.",
	       (double)cs->slow_stalled);
	metric(&o, "bad_text_total", "counter", "Messages refused for control characters (bad_text).",
	       (double)ch->bad_text);
	metric(&o, "replays", "gauge", "since/resume replays being paced out now.", (double)ch->catchups);
	metric(&o, "replayed_total", "counter", "Messages sent by since/resume replays.",
	       (double)ch->replayed);
	metric(&o, "pings_sent_total", "counter", "Idle pings sent.", (double)ws->pings_sent);
	metric(&o, "ws_deflate_connections_total", "counter",
	       "WebSocket connections that negotiated permessage-deflate.", (double)ws->deflate_opened);
	metric(&o, "ws_deflate_frames_total", "counter",
	       "Compressed frames built (once per message per edge).", (double)ws->deflate_frames);
	metric(&o, "ws_deflate_bytes_in_total", "counter", "Payload bytes of those frames before compression.",
	       (double)ws->deflate_bytes_in);
	metric(&o, "ws_deflate_bytes_out_total", "counter", "Payload bytes of those frames after compression.",
	       (double)ws->deflate_bytes_out);
	metric(&o, "ws_deflate_sends_total", "counter", "Compressed frames queued, one per recipient.",
	       (double)ws->deflate_sends);
	metric(&o, "ws_messages_inflated_total", "counter", "Compressed client messages inflated.",
	       (double)ws->messages_inflated);
	put(&o, "# HELP ringcast_closes_total WebSocket close frames sent, by code.\n"
		"# TYPE ringcast_closes_total counter\n");
	for (int i = 0; i < WS_CLOSE_CODES_COUNTED; i++)
		put(&o, "ringcast_closes_total{code=\"%u\"} %llu\n", ws_close_codes_counted[i],
		    (unsigned long long)ws->closes[i]);
	metric(&o, "sse_streams", "gauge", "Open Server-Sent Events streams (GET /sse).",
	       (double)(ss->opened - ss->closed));
	metric(&o, "sse_streams_total", "counter", "Server-Sent Events streams opened.", (double)ss->opened);
	metric(&o, "sse_events_total", "counter",
	       "Events queued on Server-Sent Events streams, keep-alive comments included.",
	       (double)ss->events);
	metric(&o, "sse_events_encoded_total", "counter",
	       "Server-Sent Events written: once per payload per edge, shared by every stream sending it.",
	       (double)ss->encoded);
	metric(&o, "sse_handoffs_total", "counter",
	       "POST /send requests handed to the edge holding their stream.", (double)ss->handoffs);
	put(&o, "# HELP ringcast_sse_posts_total POST /send answers, by status.\n"
		"# TYPE ringcast_sse_posts_total counter\n");
	for (int i = 0; i < SSE_POST_STATUSES; i++)
		put(&o, "ringcast_sse_posts_total{status=\"%u\"} %llu\n", sse_post_statuses[i],
		    (unsigned long long)ss->posts[i]);
	metric(&o, "recv_enobufs_total", "counter", "Receives that found the buffer ring empty.",
	       (double)ls->enobufs);
	metric(&o, "loop_iterations_total", "counter", "Event loop iterations.", (double)ls->iterations);
	metric(&o, "completions_total", "counter", "Completions reaped.", (double)ls->completions);
	metric(&o, "completions_per_iteration", "gauge", "Completions reaped per loop iteration.",
	       ls->iterations ? (double)ls->completions / (double)ls->iterations : 0.0);
	metric(&o, "http_requests_total", "counter", "HTTP requests parsed.", (double)hs->requests);
	metric(&o, "http_errors_total", "counter", "HTTP 4xx/5xx responses.", (double)hs->errors);
	if (o.cut)
		log_error("/metrics: the text is over %zu bytes and was cut short (metrics.c)", sizeof(o.text));
	return buf_from(o.text, o.len);
}
