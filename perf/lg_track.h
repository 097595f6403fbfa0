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

#endif
