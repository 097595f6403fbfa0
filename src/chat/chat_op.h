/* chat_op.h: what an edge's chat hands the sequencer and gets back, so that
 * every edge applies a room's events in one order (include/sequencer.h).
 * Internal to the chat modules.
 *
 * An op is self-contained (its strings are its own), because it crosses
 * threads: made on the edge that asks, numbered and committed on the
 * sequencer's thread, applied on every edge, freed by the last of them.
 * A cluster's orderer (src/cluster) takes and makes ops the same way. */
#ifndef RINGCAST_CHAT_OP_H
#define RINGCAST_CHAT_OP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat.h"

struct sequencer;
struct store_record;

/* Text several ops share (a big room's listed users stay the same from one
 * join to the next): freed with its last reference, on any thread. */
struct shared_text {
	atomic_uint refs;
	size_t len;
	char data[];
};

struct shared_text *shared_text_new(const char *s, size_t len);
struct shared_text *shared_text_ref(struct shared_text *t);
void shared_text_unref(struct shared_text *t);

enum chat_op_kind {
	CHAT_OP_MESSAGE, /* a chat message: the sequencer gives it its id, commits it, sends it to all */
	CHAT_OP_EVENT,   /* join, leave or nick: who is where, and the frame that says so */
	CHAT_OP_QUERY,   /* a history read for one member, answered to its edge alone */
	CHAT_OP_KICK,    /* the API: close user_id's connections (text: the reason), on every edge */
	CHAT_OP_ROSTER,  /* the API: who is in the room, answered to its edge alone (json) */
};

/* How an event changes who is in a room (the sequencer's roster.h). */
enum chat_roster_change {
	ROSTER_JOIN,
	ROSTER_LEAVE,
	ROSTER_NICK,
	/* A resumable guest's connection went: its place is kept, silently,
	 * through --rejoin-grace; a JOIN of the same id takes it back. */
	ROSTER_AWAY,
	/* The grace ran out: the place goes, with a leave event, unless a
	 * connection holds the id again. */
	ROSTER_GONE,
};

struct chat_op {
	struct chat_op *next;      /* in the sequencer's lists */
	enum chat_op_kind kind;
	enum chat_roster_change change;
	uint16_t origin;           /* the edge that asked */
	atomic_uint refs;          /* edges that have yet to apply it */
	int err;                   /* MESSAGE: the commit's result; QUERY: the read's */
	void *cookie;              /* the origin's pending message or query */
	struct sequencer *seq;     /* the sequencer holding it: the store's callbacks get only the op */
	char room[CHAT_ROOM_MAX + 1];
	size_t room_len;
	/* Who: MESSAGE's sender, EVENT's member. */
	uint32_t member_id;
	char *name;                /* NULL: "User <id>" */
	char *user_id;             /* NULL: a guest */
	/* MESSAGE; a cluster's JOIN: the room's newest id before it */
	uint64_t id, ts;
	uint64_t cluster_seq;      /* a cluster's number for one of its node's ops in flight */
	uint64_t cluster_deadline; /* ... or when one waiting for Redis to come back gives up (ms) */
	char *text;
	size_t text_len;
	/* EVENT: a nick's rooms, names one after another, each NUL-terminated */
	char *rooms;
	uint8_t nrooms;
	/* The event's JSON, written once for every edge: a MESSAGE's, a
	 * join's or a leave's by the sequencer, a nick's by its origin. */
	char *json;
	size_t json_len;
	/* JOIN, LEAVE: the room's members on every edge once it took effect,
	 * and whether the room is told (not over presence_events_max) */
	uint32_t count;
	bool announce;
	/* JOIN: the users the joiner's presence lists, at its place in the
	 * order (a JSON array, shared by consecutive joins while it holds) */
	struct shared_text *users;
	/* QUERY */
	bool since;                /* ids > bound; else ids < bound (0: the newest) */
	uint64_t bound;
	unsigned limit;
	struct store_record *records; /* the answer, oldest first, strings owned */
	size_t nrecords;
	bool more;
};

/* A new op from edge origin for room; aborts when out of memory. */
struct chat_op *chat_op_new(enum chat_op_kind kind, unsigned origin, const char *room,
			    size_t room_len);
/* Copy who m is into op. */
void chat_op_set_member(struct chat_op *op, const struct chat_member *m);
void chat_op_set_json(struct chat_op *op, const char *json, size_t len);
void chat_op_set_text(struct chat_op *op, const char *text, size_t len);
/* Copy store records (valid only during a store callback) into op. */
void chat_op_set_records(struct chat_op *op, const struct store_record *recs, size_t n);
/* The record a MESSAGE op makes (its sender as the store keeps it:
 * user id or member id, name or "User <id>"); from and name are the
 * room the record's strings may need. */
void chat_op_record(const struct chat_op *op, struct store_record *rec, char from[16],
		    char name[24]);
/* One edge is done with it: the last one frees it. */
void chat_op_release(struct chat_op *op);

#endif
