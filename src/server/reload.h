/* reload.h: what SIGHUP reloads: the chat page's files and the TLS
 * certificate, without a restart and without dropping a connection.
 *
 * The page is loaded (and compressed) once per reload into `latest`; every
 * edge then takes its own copy (static_site_copy) when it sees the
 * generation move, and frees its old copy with plain unrefs: bytes still
 * queued on its connections keep their bufs alive until sent. No edge ever
 * holds a pointer into `latest` outside the lock, so a reload can free the
 * previous load at once. */
#ifndef RINGCAST_RELOAD_H
#define RINGCAST_RELOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "static_files.h"

struct tls_server;

struct reload {
	const char *static_dir;
	const char *tls_cert, *tls_key; /* NULL without TLS */
	struct tls_server *tls;
	pthread_mutex_t lock;           /* guards latest */
	struct static_site latest;
	atomic_uint generation;         /* bumped after each new latest */
};

/* The first load, at start-up. -1 (logged) when static_dir cannot be
 * served. */
int reload_init(struct reload *r, const char *static_dir);
void reload_free(struct reload *r);

/* On SIGHUP (edge 0's thread): load the page and, with TLS, the
 * certificate and key again. What fails to load is logged and the old one
 * kept; the rest is still reloaded. */
void reload_now(struct reload *r);

/* One edge's copy of the page: if a newer load than *seen exists, replace
 * *site with a copy of it and return true. Out of memory keeps the old one
 * (logged) and tries again next time. */
bool reload_follow_site(struct reload *r, struct static_site *site, unsigned *seen);

#endif
