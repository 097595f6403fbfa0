/* origin.h: who may talk to this server from a browser.
 *
 * Two defences, both against web pages on other sites: the Origin check
 * (cross-site WebSocket hijacking; a browser always sends Origin with a
 * WebSocket handshake, other clients usually send none) and, on a loopback
 * listener, the Host check (DNS rebinding: a hostile name re-pointed at
 * 127.0.0.1 makes the browser treat this server as that site's own). */
#ifndef RINGCAST_ORIGIN_H
#define RINGCAST_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>

struct sockaddr;

/* Allowed when: no Origin was sent (not a browser); or Origin equals an
 * entry of allow (compared case-insensitively; "*" allows any); or
 * Origin's host[:port] equals the Host header (the page came from this
 * server) — the allow list adds to this rule, it does not replace it.
 * "null" (sandboxed or file: pages) is allowed only when listed. */
bool origin_allowed(const char *origin, size_t origin_len, const char *host, size_t host_len,
		    const char *const *allow, size_t nallow);

/* May a loopback listener serve a request with this Host header value?
 * Yes for a loopback name: "localhost", an IPv4 address in 127.0.0.0/8 or
 * "[::1]", each with an optional ":port", compared case-insensitively; for
 * a name in allow (equal to the whole value, or to it without its
 * ":port"); and for no Host at all (host NULL: HTTP/1.0, never a browser,
 * and browsers are what DNS rebinding works through). */
bool origin_host_allowed(const char *host, size_t host_len, const char *const *allow, size_t nallow);

/* Is the address in 127.0.0.0/8, ::1, or ::ffff:127.0.0.0/104? */
bool origin_address_is_loopback(const struct sockaddr *sa);

/* Does the listen address listen_host (the --host value) resolve, as the
 * listener resolves it, to a loopback address? An address that does not
 * resolve counts as loopback: the stricter rule, and the listener will
 * fail on it anyway. */
bool origin_listen_is_loopback(const char *listen_host);

#endif
