/* sequencer.h: one order for every room, shared by the edges of a process.
 *
 * With several edges (rings on their own threads), each with its own chat
 * and its own members, a room's order must still be decided in one place.
 * The sequencer is that place: it runs on its own thread, gives every chat
 * message its id, has the history store commit it (when there is one), and
 * hands every committed message, and every join, leave and nick, to every
 * edge in the one order in which it took them. It also keeps who is in each
 * room on every edge, and writes presence and join/leave events with the
 * counts at their place in the order. Each edge applies the ops to its copy
 * of the rooms (recent history, counts) and walks only its own members, so
 * every member of a room, on any edge, sees the same events and ids.
 *
 * A history read goes the same way and is answered to the asking edge
 * alone. One edge alone needs none of this: its chat is its own sequencer
 * (chat_config.sequencer NULL).
 *
 * In a cluster the order is decided elsewhere (Redis, src/cluster): the
 * sequencer is then only the exchange between the edges and the cluster's
 * own thread (sequencer_config.external), which takes what the edges
 * submit and publishes what comes back, with the same guarantees. */
#ifndef RINGCAST_SEQUENCER_H
#define RINGCAST_SEQUENCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct chat_op;
struct sequencer;
struct store;
struct store_room;

struct sequencer_config {
	unsigned edges;             /* edges 0..edges-1 */
	struct store *store;        /* NULL: history in memory only */
	size_t presence_list_max;   /* users listed in a presence snapshot (0: 100) */
	size_t presence_events_max; /* rooms larger get no join/leave events (0: 100) */
	bool external;              /* no thread: another orderer takes the ops (below) */
};

/* A sequencer (cfg copied), its thread started. NULL (logged) on failure.
 * Before the edges run, feed it every stored room (sequencer_load_room),
 * so that ids go on after a restart. */
struct sequencer *sequencer_new(const struct sequencer_config *cfg);
/* A stored room's last id and guest ids, from store_load_rooms. */
void sequencer_load_room(struct sequencer *seq, const struct store_room *room);
/* Stops the thread and drops what was not applied; the edges must have
 * stopped. Close the store after. NULL is fine. */
void sequencer_free(struct sequencer *seq);

/* A member id unique in the process (any thread); external: unique in the
 * cluster, from the blocks the orderer added (when there are none, one
 * of 2^31 and up, unique in the process only). */
uint32_t sequencer_member_id(struct sequencer *seq);

/* Readable (an eventfd) when ops wait for edge. */
int sequencer_edge_fd(const struct sequencer *seq, unsigned edge);

/* Hand op over (any edge's thread; the sequencer owns it from here). */
void sequencer_submit(struct sequencer *seq, struct chat_op *op);

/* The ops waiting for edge, in order, into *ops (an array the caller frees);
 * clears the eventfd. The caller applies each, then chat_op_release. */
size_t sequencer_take(struct sequencer *seq, unsigned edge, struct chat_op ***ops);

/* ---- for an external orderer (its own thread) ------------------------------ */

/* Readable (an eventfd) when the edges submitted ops. */
int sequencer_incoming_fd(const struct sequencer *seq);
/* What the edges submitted since the last call, in order (a list through
 * op->next); clears the eventfd. */
struct chat_op *sequencer_take_incoming(struct sequencer *seq);
/* Out to the edges: to every edge, or to its origin alone (a failed
 * message, a query's answer). */
void sequencer_publish(struct sequencer *seq, struct chat_op *op);
/* After a pass of publishing: wake the edges that got something. */
void sequencer_wake_edges(struct sequencer *seq);
/* Member ids first..first+count-1 may be handed out (after those left). */
void sequencer_add_member_ids(struct sequencer *seq, uint32_t first, uint32_t count);
/* How many are left to hand out. */
uint32_t sequencer_member_ids_left(struct sequencer *seq);

#endif
