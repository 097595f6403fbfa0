/* metrics.h: the server's counters in Prometheus text format, for /metrics.
 * Every counter is a plain integer bumped where the work happens; rendering
 * reads them, so leaving metrics on costs nothing per message. */
#ifndef RINGCAST_METRICS_H
#define RINGCAST_METRICS_H

struct buf;
struct chat;
struct conns;
struct loop;

struct sessions;

struct buf *metrics_render(const struct loop *loop, const struct conns *conns, struct chat *chat,
			   const struct sessions *sessions);

#endif
