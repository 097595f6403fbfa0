/* timer_wheel.h: one coarse wheel of one-tick buckets for every deadline
 * (request heads, idle pings, close handshakes), driven by a single periodic
 * timeout on the ring: 100k connections never mean 100k timer SQEs.
 *
 * Deadlines move later all the time (every received byte pushes the idle
 * deadline); the wheel does not relink on those. A node stays in the bucket
 * it was put in, and when that bucket comes due, a node whose deadline has
 * moved on is simply re-filed. Only a deadline moved earlier relinks. */
#ifndef RINGCAST_TIMER_WHEEL_H
#define RINGCAST_TIMER_WHEEL_H

#include <stdbool.h>
#include <stdint.h>

#define TW_BUCKETS 64

struct tw_node {
	struct tw_node *next, *prev;
	uint32_t deadline;  /* when it fires, in ticks */
	uint32_t filed_at;  /* tick of the bucket it is in; 0 when in none */
};

struct timer_wheel {
	struct tw_node *buckets[TW_BUCKETS];
	uint32_t now;        /* last tick processed */
};

void tw_init(struct timer_wheel *w, uint32_t now);

/* Set or move n's deadline (absolute tick); links it if needed. */
void tw_schedule(struct timer_wheel *w, struct tw_node *n, uint32_t deadline);

void tw_cancel(struct timer_wheel *w, struct tw_node *n);

/* Advance to tick `now`, calling fire(n) for each node whose deadline has
 * passed. fire may reschedule or cancel n (and only n). */
void tw_advance(struct timer_wheel *w, uint32_t now, void (*fire)(struct tw_node *n));

#endif
