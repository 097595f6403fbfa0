/* reload.c: SIGHUP: the chat page and the TLS certificate again.
 *
 * Loading is blocking file I/O on edge 0's thread: a few files, a
 * certificate and a key, a few milliseconds once in a long while, which
 * the other edges do not notice. */
#include "reload.h"

#include <string.h>

#include "log.h"
#include "tls.h"

int reload_init(struct reload *r, const char *static_dir)
{
	r->static_dir = static_dir;
	pthread_mutex_init(&r->lock, NULL);
	atomic_init(&r->generation, 1);
	return static_site_load(&r->latest, static_dir);
}

void reload_free(struct reload *r)
{
	static_site_free(&r->latest);
	pthread_mutex_destroy(&r->lock);
}

static void reload_site(struct reload *r)
{
	struct static_site fresh, old;
	if (static_site_load(&fresh, r->static_dir) < 0) {
		log_error("SIGHUP: cannot load the chat page from %s: still serving the previous one",
			  r->static_dir);
		return;
	}
	size_t count = fresh.count;
	if (count == 0) {
		static_site_free(&fresh);
		log_error("SIGHUP: no files to serve in %s: still serving the previous page", r->static_dir);
		return;
	}
	pthread_mutex_lock(&r->lock);
	old = r->latest;
	r->latest = fresh;
	atomic_fetch_add(&r->generation, 1); /* under the lock: it names latest */
	pthread_mutex_unlock(&r->lock);
	static_site_free(&old); /* no edge points into it: each has its copy */
	log_info("SIGHUP: reloaded the chat page from %s (%zu files)", r->static_dir, count);
}

static void reload_tls(struct reload *r)
{
	if (tls_server_reload(r->tls, r->tls_cert, r->tls_key) < 0) {
		log_error("SIGHUP: cannot load the TLS certificate %s with key %s: keeping the previous one",
			  r->tls_cert, r->tls_key);
		return;
	}
	log_info("SIGHUP: reloaded the TLS certificate %s: new connections get it, open ones keep theirs",
		 r->tls_cert);
}

void reload_now(struct reload *r)
{
	reload_site(r);
	if (r->tls)
		reload_tls(r);
}

bool reload_follow_site(struct reload *r, struct static_site *site, unsigned *seen)
{
	unsigned now = atomic_load(&r->generation);
	if (now == *seen)
		return false;
	struct static_site copy;
	pthread_mutex_lock(&r->lock);
	now = atomic_load(&r->generation); /* what latest holds under the lock */
	int err = static_site_copy(&copy, &r->latest);
	pthread_mutex_unlock(&r->lock);
	if (err < 0) {
		log_error("out of memory copying the chat page; serving the previous one");
		return false;
	}
	/* bufs still queued on this edge's connections keep their own
	 * references and go when sent */
	static_site_free(site);
	*site = copy;
	*seen = now;
	return true;
}
