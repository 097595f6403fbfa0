/* store.h: chat history in SQLite, written and read on a worker thread.
 *
 * The loop thread never touches the disk. It hands appends and queries to
 * the store, which copies them into its own queue; a worker thread runs them
 * in order (group commit: every append queued when it wakes goes into one
 * transaction) and posts the results back. store_event_fd() becomes readable
 * when results are waiting; the loop then calls store_drain() and the
 * callbacks run on the loop thread, in submission order. */
#ifndef RINGCAST_STORE_H
#define RINGCAST_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

enum store_sync {
	/* WAL, synchronous=NORMAL: a commit is safe from a crash of the
	 * process at once, and reaches the disk (power-safe) within
	 * sync_interval_ms by a timed WAL checkpoint. */
	STORE_SYNC_INTERVAL,
	/* synchronous=FULL: every group commit is fsynced before its appends
	 * are reported done. */
	STORE_SYNC_ALWAYS,
};

struct store_config {
	const char *path;          /* database file; parent directories are created */
	enum store_sync sync;
	unsigned sync_interval_ms; /* STORE_SYNC_INTERVAL: default 100 */
	/* Optional: told the outcome of every group commit (err as in
	 * store_callbacks.appended), on the writer thread as soon as it is
	 * known, before any append's callback runs. For health reporting: it
	 * must be quick and safe to call from that thread. */
	void (*committed)(void *ctx, int err);
	void *committed_ctx;
};

/* One stored chat message. Strings are not NUL-terminated; text may hold NUL. */
struct store_record {
	const char *room;
	size_t room_len;
	uint64_t id;        /* per-room id, increasing, never reused */
	uint64_t ts;        /* ms since the epoch */
	const char *from;   /* sender's id as text */
	size_t from_len;
	const char *name;   /* sender's display name */
	size_t name_len;
	const char *text;
	size_t text_len;
};

struct store_callbacks {
	/* An append finished: err 0 when committed (and synced, per the sync
	 * mode), else a negative errno-style code (e.g. -ENOSPC, -EIO, -EEXIST
	 * for a duplicate id). Appends committed together fail together: every
	 * append of a failed group commit gets that commit's err. */
	void (*appended)(void *ctx, int err);
	/* A query finished: records oldest first; valid only during the call.
	 * more: older (for before-queries) or newer (for since-queries)
	 * records exist beyond the limit. */
	void (*queried)(void *ctx, const struct store_record *records, size_t n, bool more, int err);
};

/* Open (creating the file and schema if needed). Returns NULL with a
 * message on stderr on failure. Starts the worker thread. */
struct store *store_open(const struct store_config *cfg);

/* Flush everything queued, stop the worker, close the database. Callbacks
 * still pending are not called. */
void store_close(struct store *s);

/* Synchronous, for start-up before the loop runs: call fn for the newest
 * `per_room` messages of every room, oldest first within a room, and with
 * each room's highest id (so ids continue after a restart): a room's last
 * record has it, and per_room 0 is taken as 1 so that it still arrives.
 * The worker does not touch the database meanwhile; jobs queued from fn
 * wait, and then go in one batch. Returns 0 or a negative errno code. */
int store_load_recent(struct store *s, unsigned per_room,
		      void (*fn)(void *arg, const struct store_record *r), void *arg);

/* What start-up needs of a room, without its history. */
struct store_room {
	const char *room;
	size_t room_len;
	uint64_t last_id;         /* its highest id, so ids continue after a restart */
	/* The highest sender id that is a plain number (a guest's connection
	 * id, 1 to 10 digits) among its newest `window` messages; 0: none. */
	uint64_t numeric_sender_max;
};

/* Synchronous, for start-up before the loop runs: call fn once for every
 * room in the database. One indexed query per room; no message text is
 * read, only the newest `window` rows' ids and senders (window 0 is taken
 * as 1). Like store_load_recent, jobs queued from fn wait for it. Returns 0
 * or a negative errno code. */
int store_load_rooms(struct store *s, unsigned window,
		     void (*fn)(void *arg, const struct store_room *r), void *arg);

/* Queue work (loop thread; never blocks on the disk; copies r). */
void store_append(struct store *s, const struct store_record *r, void *ctx);
/* Messages of room with id < before_id (0: the newest), at most limit, oldest first. */
void store_query_before(struct store *s, const char *room, size_t room_len, uint64_t before_id,
			unsigned limit, void *ctx);
/* Messages of room with id > since_id, at most limit, oldest first. */
void store_query_since(struct store *s, const char *room, size_t room_len, uint64_t since_id,
		       unsigned limit, void *ctx);

/* Readable (eventfd) when results wait for store_drain. */
int store_event_fd(const struct store *s);

/* Run the callbacks of everything finished, in submission order (loop
 * thread). Callbacks may queue more work. */
void store_drain(struct store *s, const struct store_callbacks *cb);

/* For tests: make every later commit fail with err (0 turns it off), as a
 * full disk or an I/O error would. */
void store_inject_failure(struct store *s, int err);

#endif
