/* metrics_listener.h: --metrics-listen: /metrics, /healthz and /readyz on a
 * listener of their own, away from the chat port. */
#ifndef RINGCAST_METRICS_LISTENER_H
#define RINGCAST_METRICS_LISTENER_H

struct edges;
struct metrics_listener;

/* On the main thread, before any edge runs: serve on listen_fd (taken:
 * closed with the listener). NULL (logged) on failure. */
struct metrics_listener *metrics_listener_new(struct edges *all, int listen_fd);

/* Start serving on a thread of its own. -1 (logged) on failure. Should
 * its ring fail, it stops every edge: the server goes down whole. */
int metrics_listener_start(struct metrics_listener *m);

/* Stop it (closing its connections at once: a scrape is retried) and
 * wait for its thread; then free everything. NULL is fine. */
void metrics_listener_free(struct metrics_listener *m);

#endif
