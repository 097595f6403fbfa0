/* cluster.h: this process as one node of a cluster that shares its rooms
 * through Redis (--redis; docs/cluster.md).
 *
 * Redis becomes the sequencer of every room: a room's order and history
 * are a Redis stream, appended and published in one script, and who is in
 * it is a Redis hash. The node's edges still submit their ops to the
 * process's sequencer (include/sequencer.h, made with .external): the
 * cluster's own thread takes them, speaks to Redis from its own io_uring
 * loop, and publishes back to the edges every message and event of the
 * rooms this node has members in, each once and in the rooms' order. A
 * lost publication is read back from the stream: a delay, never a gap or
 * a duplicate. */
#ifndef RINGCAST_CLUSTER_H
#define RINGCAST_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

struct cluster;
struct redis_address;
struct sequencer;

struct cluster_config {
	const struct redis_address *redis; /* kept by reference */
	struct sequencer *sequencer;       /* .external */
	unsigned history_max;              /* messages a room's stream keeps (about) */
	size_t presence_list_max;          /* users a join's presence lists */
	size_t presence_events_max;        /* rooms larger get no join/leave events */
	/* Called from the cluster's thread when readiness changes. */
	void (*on_ready)(void *arg, bool ready, const char *why);
	void *arg;
};

/* Starts the node's thread, which connects (and reconnects) by itself.
 * NULL (logged) on failure. */
struct cluster *cluster_new(const struct cluster_config *cfg);
/* Stops the thread; the edges must have stopped. NULL is fine. */
void cluster_free(struct cluster *c);

#endif
