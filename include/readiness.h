/* readiness.h: whether this node can serve, for GET /readyz.
 *
 * Readiness has parts, each set by whatever watches it, from any thread:
 * the history store's commits (server.c, from the store's writer thread)
 * and the cluster link. The node is ready when every part is. Setting and
 * checking take no lock: each part is one atomic word, NULL while that part
 * is ready, else the reason it is not. So the reason must be a string that
 * outlives the struct (a literal). */
#ifndef RINGCAST_READINESS_H
#define RINGCAST_READINESS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

enum readiness_part {
	READY_STORE = 1u << 0,   /* the history store commits */
	READY_CLUSTER = 1u << 1, /* set by the cluster link: its peers are reachable */
};
#define READY_PARTS 2

struct readiness {
	_Atomic(const char *) why_not[READY_PARTS]; /* by bit: NULL while ready */
};

/* Every part ready. */
void readiness_init(struct readiness *r);

/* Before anyone reads it: the parts in mask start not ready, for why (not
 * logged: a part that has yet to come up, like the cluster's link). */
void readiness_start_not_ready(struct readiness *r, unsigned mask, const char *why);

/* From any thread: mark the parts in mask (READY_* or'ed) ready, or not
 * ready because of why (a literal; NULL: the part's own "history store
 * failing", "cluster unreachable"). Changes are logged, a repeat is not.
 * Returns true when some part changed between ready and not. */
bool readiness_set(struct readiness *r, unsigned mask, bool ok, const char *why);

/* From any thread: true when every part is ready. Otherwise false, with
 * the reasons of the parts that are not, joined by "; ", in why (cut to
 * why_len, NUL-terminated; why may be NULL). */
bool readiness_check(const struct readiness *r, char *why, size_t why_len);

#endif
