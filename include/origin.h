/* origin.h: which web pages may open a WebSocket here (cross-site WebSocket
 * hijacking defence). A browser always sends Origin with a WebSocket
 * handshake; other clients usually send none. */
#ifndef RINGCAST_ORIGIN_H
#define RINGCAST_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>

/* Allowed when: no Origin was sent (not a browser); or Origin equals an
 * entry of allow (compared case-insensitively; "*" allows any); or, with
 * no allow list, Origin's host[:port] equals the Host header (the page
 * came from this server). "null" (sandboxed or file: pages) is allowed
 * only when listed. */
bool origin_allowed(const char *origin, size_t origin_len, const char *host, size_t host_len,
		    const char *const *allow, size_t nallow);

#endif
