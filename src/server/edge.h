/* edge.h: one edge: a ring on a thread of its own, with the connections it
 * accepted, their sessions, and its chat (its members of every room).
 *
 * Edges share nothing mutable: what they have in common (the chat page's
 * latest load, which each copies; TLS, the store, the sequencer that orders
 * the rooms) is read-only, locked or thread-safe, and they reach one another only through eventfds (a
 * shutdown) and the counters each publishes for /metrics. */
#ifndef RINGCAST_EDGE_H
#define RINGCAST_EDGE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"
#include "post_box.h"
#include "readiness.h"
#include "reload.h"
#include "session.h"

struct config;
struct conn_limits;
struct cluster;
struct redis_address;
struct room_quota;
struct sequencer;
struct static_site;
struct store;
struct tls_server;

/* What every edge of the process shares. */
struct edges {
	const struct config *cfg;
	struct reload reload;        /* SIGHUP: the chat page (each edge copies it) and TLS */
	struct tls_server *tls;
	struct store *store;
	struct sequencer *sequencer; /* NULL: one edge, its chat orders its rooms itself */
	const struct redis_address *redis; /* --redis: this process is a cluster node */
	struct cluster *cluster;     /* ... which orders the rooms through Redis */
	struct conn_limits *limits;  /* --max-connections, --max-per-ip: for all edges together */
	struct room_quota *rooms;    /* --max-rooms, for all edges together (NULL: one edge) */
	struct readiness readiness;  /* /readyz: set by the store's commits and the cluster link */
	/* signs guest tokens (guest_token.h): made once at start, read-only
	 * after; NULL where guests are not resumable (sign-in, --redis) */
	const struct guest_key *guest_key;
	unsigned count;
	struct edge *edge;           /* [count] */
};

struct edge {
	unsigned index;
	char log_name[12];           /* its index: log lines name its connections <index>.slot.gen */
	struct edges *all;
	struct chat *chat;
	struct sessions sessions;    /* the conns' ctx */
	struct loop *loop;
	struct conns *conns;
	int listen_fd;
	int signal_fd;               /* edge 0 takes the signals; -1 on the others */
	int stop_fd;                 /* readable: another edge began the shutdown */
	struct post_box posts;       /* POST /send hand-offs from other edges, and their answers */
	struct static_site site;     /* this edge's copy of the page; its bufs counted here */
	unsigned site_generation;    /* of reload.latest it was copied from */
	bool shutting_down;
	uint64_t shutdown_deadline_ms;
	pthread_t thread;
	int rc;                      /* edge_run's */
	pthread_mutex_t sample_lock; /* guards sample, read by whichever edge renders /metrics */
	struct metrics_sample sample;
};

/* On the main thread, before any edge runs: its chat, its transports and
 * its eventfd. -1 (logged) on failure. */
int edge_prepare(struct edges *all, unsigned index);

/* Serve until shutdown, on the calling thread, which becomes the edge's:
 * its ring and connections are made, run and freed there. Sets e->rc. */
void edge_run(struct edge *e);

/* Start edge_run on a thread of its own. -1 (logged) on failure. */
int edge_start(struct edge *e);

/* /metrics for the whole process: every edge's counters as of its last
 * tick (100 ms), added up. From any thread; NULL when out of memory. */
struct buf *edges_render_metrics(struct edges *all);

/* From any thread: begin e's shutdown. */
void edge_stop(struct edge *e);

/* After every edge has returned from edge_run and the sequencer is gone. */
void edge_free(struct edge *e);

#endif
