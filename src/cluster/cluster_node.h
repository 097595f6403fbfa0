/* cluster_node.h: the state of a cluster node's thread, shared by its two
 * halves: cluster.c (life, the Redis links, the edges' ops) and
 * cluster_room.c (each room: its subscription, and its messages handed to
 * the edges once each, in id order). */
#ifndef RINGCAST_CLUSTER_NODE_H
#define RINGCAST_CLUSTER_NODE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "chat_op.h"
#include "cluster.h"
#include "cluster_scripts.h"
#include "cluster_wire.h"
#include "json_out.h"
#include "redis_link.h"
#include "roster.h"

#define CLUSTER_ROOM_BUCKETS 4096
#define CLUSTER_ORIGIN_NONE 0xffffu /* an op from another node: no edge here asked */

/* A publication kept until the room's missed ids are read (a copy). */
struct held_pub {
	struct held_pub *next;
	size_t len;
	char data[];
};

struct op_queue {
	struct chat_op *head, *tail;
};

struct cl_room {
	struct cl_room *next;
	struct roster local;        /* this node's members */
	uint64_t last;              /* the newest id handed to the edges */
	bool known;                 /* last holds: publications have reached us since */
	bool wanted;                /* has members here: subscribed, or about to be */
	bool subscribed;            /* Redis confirmed the latest SUBSCRIBE */
	unsigned sub_pending;       /* (UN)SUBSCRIBEs not yet confirmed */
	bool filling;               /* an XRANGE for missed ids is out */
	bool fill_again;            /* one was wanted while Redis could not be asked */
	struct held_pub *held, *held_tail; /* what came while filling, in order */
	/* Ops waiting for the subscription, in order: sent before it, a
	 * message's publication could pass us by. */
	struct op_queue queued;
	size_t name_len;
	char name[];
};

struct cluster {
	struct cluster_config config;
	struct sequencer *seq;
	struct loop *loop;
	struct redis_link *cmd, *sub;
	struct cluster_script_text scripts[SCRIPT_COUNT];
	pthread_t thread;
	int stop_fd;

	uint64_t node;              /* this node's id (0: not yet given) */
	uint64_t next_seq;          /* numbers this node's messages and nicks */
	bool registered;            /* a heartbeat went through */
	bool asking_ids;            /* an INCRBY for member ids is out */
	uint64_t next_heartbeat_ms;
	atomic_bool ready;
	const char *why_not;

	struct op_queue posted;     /* our messages, sent, waiting for their place (by cluster_seq) */
	struct op_queue left_offline; /* leaves Redis has yet to hear of */
	/* Messages and history reads waiting for Redis to come back (a
	 * dropped connection is usually back within a reconnect) */
	struct op_queue stalled;
	uint64_t nicks_seen[64];    /* (node, nseq) of recent nicks: one per room comes */
	unsigned nicks_at;

	struct cl_room *rooms[CLUSTER_ROOM_BUCKETS];
	struct jbuf out;
	char *scratch;              /* command arguments, valid until sent */
	size_t scratch_len;
};

/* ---- cluster.c ---- */
/* redis_link_command, then the scratch area is free again. */
bool cluster_command(struct redis_link *link, struct cluster *c, int argc, const char **argv,
		     const size_t *lens, redis_reply_fn fn, void *arg);
/* EVALSHA script with keys then args (n of each, lens may be NULL for
 * NUL-terminated); fn(arg, reply) follows. false when Redis is not up. */
bool cluster_eval(struct cluster *c, enum cluster_script s, int nkeys, const char **keys,
		  int nargs, const char **args, const size_t *arg_lens, redis_reply_fn fn, void *arg);
/* A string in the scratch area (valid until the next command is queued). */
const char *cluster_fmt(struct cluster *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Out to the edges (woken before the loop waits). */
void cluster_publish(struct cluster *c, struct chat_op *op);
/* One of our messages, sent and waiting for its place: out of c->posted. */
struct chat_op *cluster_take_posted(struct cluster *c, uint64_t seq);

/* ---- cluster_room.c ---- */
struct cl_room *cluster_room(struct cluster *c, const char *name, size_t len);
struct cl_room *cluster_room_find(struct cluster *c, const char *name, size_t len);
/* The room's Redis names, in the scratch area. */
const char *cluster_room_log(struct cluster *c, const struct cl_room *r);
const char *cluster_room_who(struct cluster *c, const struct cl_room *r);
const char *cluster_room_channel(struct cluster *c, const struct cl_room *r);
/* Members here or not: (un)subscribe. */
void cluster_room_want(struct cluster *c, struct cl_room *r, bool wanted);
/* The subscriber link's pushes. */
void cluster_room_push(struct cluster *c, const redisReply *reply);
/* The subscriber link came up (subscribe again) or went down. */
void cluster_rooms_subscriber(struct cluster *c, bool up);
/* Read what the rooms missed while Redis could not be asked. */
void cluster_rooms_fill_pending(struct cluster *c);
/* The ops that waited for the room's subscription go to Redis now
 * (cluster.c). */
void cluster_send_queued(struct cluster *c, struct cl_room *r);
/* Our messages in r that Redis took: to the edges now, nobody here
 * listens to r any more (cluster.c). */
void cluster_settle_posted(struct cluster *c, struct cl_room *r);
void cluster_rooms_free(struct cluster *c);

static inline void op_queue_push(struct op_queue *q, struct chat_op *op)
{
	op->next = NULL;
	if (q->tail)
		q->tail->next = op;
	else
		q->head = op;
	q->tail = op;
}

static inline struct chat_op *op_queue_pop(struct op_queue *q)
{
	struct chat_op *op = q->head;
	if (op) {
		q->head = op->next;
		if (!q->head)
			q->tail = NULL;
	}
	return op;
}

#endif
