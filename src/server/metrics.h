/* metrics.h: the server's counters in Prometheus text format, for /metrics.
 * Every counter is a plain integer bumped where the work happens, on its
 * edge's thread; each edge copies its counters into a sample now and then
 * (edge.c), and rendering adds up the samples, so leaving metrics on costs
 * nothing per message and no edge reads another's live counters. */
#ifndef RINGCAST_METRICS_H
#define RINGCAST_METRICS_H

#include "chat.h"
#include "conn.h"
#include "http_conn.h"
#include "loop.h"
#include "sse_conn.h"
#include "ws_conn.h"

struct sessions;

/* One edge's counters at one moment. */
struct metrics_sample {
	struct conn_stats conns;
	struct loop_stats loop;
	struct chat_stats chat;
	struct ws_conn_stats ws;
	struct http_conn_stats http;
	struct sse_conn_stats sse;
};

/* Copy one edge's counters (on that edge's thread). */
void metrics_sample_take(struct metrics_sample *s, const struct loop *loop, const struct conns *conns,
			 struct chat *chat, const struct sessions *sessions);

/* The text for /metrics: the samples of all n edges added up, and the
 * rooms in use (which no edge's own count can tell). */
struct buf *metrics_render(const struct metrics_sample *samples, unsigned n, uint64_t rooms_in_use);

#endif
