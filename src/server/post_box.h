/* post_box.h: an edge's mailbox for POST /send hand-offs (sse_conn.h): a
 * POST that came in on one edge for a stream held by another goes there,
 * and back with its answer, the same way. A locked list and an eventfd
 * the owning edge's ring watches: a hand-off is rare next to the traffic
 * it carries (one command, against the events it fans out), so a lock is
 * cheaper to reason about than anything lock-free. */
#ifndef RINGCAST_POST_BOX_H
#define RINGCAST_POST_BOX_H

#include <pthread.h>

struct sse_post;

struct post_box {
	pthread_mutex_t lock;
	struct sse_post *head, *tail;
	int fd; /* eventfd: readable while something waits */
};

/* -1 (logged) when no eventfd can be had. */
int post_box_init(struct post_box *b);
/* From any thread: append p and wake the box's edge. */
void post_box_put(struct post_box *b, struct sse_post *p);
/* On the box's edge: everything waiting, in order (a list by p->next). */
struct sse_post *post_box_take(struct post_box *b);
/* Once no edge runs: free what was never taken. */
void post_box_destroy(struct post_box *b);

#endif
