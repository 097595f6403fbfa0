/* lg_track.h: what the load generator puts in a message and how it checks
 * what comes back.
 *
 * The payload is printable ASCII, so a JSON envelope leaves it unchanged:
 *     LG<sender>:<seq>:<send_ns>:xxxxxxxx...   (padded with 'x' to the size)
 * Loss and order are kept per (receiver, sender) pair: the highest sequence
 * seen plus a 64-bit bitmap of the 64 numbers below it, which tells a
 * duplicate from a late (out-of-order) arrival within that window. */
#ifndef LG_TRACK_H
#define LG_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LG_MARKER "LG"

/* Longest header LG<u32>:<u32>:<u64>: can need. */
#define LG_PAYLOAD_HEAD_MAX 48

/* Write the payload for (sender, seq, send_ns), padded to size bytes (or
 * longer, if size is too small for the header). Returns its length. */
size_t lg_payload_make(char *dst, size_t size, uint32_t sender, uint32_t seq,
		       uint64_t send_ns);

/* Find and parse the marker anywhere in a received frame. */
bool lg_payload_find(const uint8_t *p, size_t n, uint32_t *sender, uint32_t *seq,
		     uint64_t *send_ns);

struct lg_seq {
	uint32_t next;      /* highest sequence seen + 1; 0 = none yet */
	uint32_t pad;
	uint64_t seen;      /* bit i: sequence next-1-i has arrived */
};

enum lg_seq_verdict {
	SEQ_IN_ORDER,       /* the next one, or a jump ahead (a gap opens) */
	SEQ_LATE,           /* fills a gap: arrived out of order */
	SEQ_DUP,            /* already seen */
};

/* Record seq's arrival; *gap gets how many numbers were skipped by a jump. */
enum lg_seq_verdict lg_seq_note(struct lg_seq *s, uint32_t seq, uint32_t *gap);

/* The server's own order. Every chat `message` event carries the room's
 * "id", which goes up by exactly one per message; every member of the room
 * gets every message. So each client's ids must run n, n+1, n+2, ... from
 * the first one it sees, and every client that was in the room all along
 * must have seen the same ids. This holds across loadgen processes and
 * across server threads, which the per-sender sequences above cannot see. */

/* The id of a `message` event: the frame must start {"type":"message", and
 * "id": must follow within a few dozen bytes (a bounded scan, no JSON
 * parser: this runs for every frame). Other events, and history, whose
 * messages sit inside an array, are not messages. */
bool lg_event_id(const uint8_t *p, size_t n, uint64_t *id);

/* One client's ids so far. next == 0: none yet. */
struct lg_idseq {
	uint64_t first;
	uint64_t next;      /* highest id seen + 1 */
};

enum lg_id_verdict {
	ID_FIRST,           /* the client's first message */
	ID_NEXT,            /* previous + 1 */
	ID_GAP,             /* previous + k, k > 1: k - 1 ids skipped */
	ID_REORDER,         /* not above the previous: old, or repeated */
};

/* Record id's arrival; *skipped gets k - 1 for a gap. */
enum lg_id_verdict lg_id_note(struct lg_idseq *s, uint64_t id, uint64_t *skipped);

/* The ids of the measured window's messages (those sent in it, whoever
 * sent them), as seen by any client. lo > hi: none. */
struct lg_id_range {
	uint64_t lo, hi;
};

#define LG_ID_RANGE_EMPTY ((struct lg_id_range){ UINT64_MAX, 0 })

static inline void lg_id_range_add(struct lg_id_range *r, uint64_t id)
{
	if (id < r->lo)
		r->lo = id;
	if (id > r->hi)
		r->hi = id;
}

enum lg_id_cover {
	COVER_OK,           /* saw every id of the window */
	COVER_MISMATCH,     /* started after the window's first id, or saw none */
	COVER_BEHIND,       /* has not (yet) reached the window's last id */
};

/* Judge a client that was open from the window's start to the end. It was
 * in the room before any window message was sent, so it must have the
 * first one: starting later means messages were lost, whatever the
 * connection timing. Stopping short of the last one is lateness (what
 * `missing` also counts), not disorder. With no gaps (lg_id_note),
 * COVER_OK means it saw every id in [lo, hi]. */
enum lg_id_cover lg_id_cover(const struct lg_idseq *s, struct lg_id_range w);

#endif
