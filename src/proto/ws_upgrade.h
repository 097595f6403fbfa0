/* ws_upgrade.h: deciding whether an HTTP request is a valid WebSocket
 * opening handshake (RFC 6455 §4.2.1), as a pure function of the request. */
#ifndef RINGCAST_WS_UPGRADE_H
#define RINGCAST_WS_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"

/* Does the request ask for a WebSocket at all (an Upgrade: websocket token)? */
bool ws_upgrade_requested(const struct http_request *req);

/* Check the handshake. Returns 0 and points *key at the Sec-WebSocket-Key
 * when valid; otherwise the HTTP status to refuse with, for the first rule
 * broken in this order: 405 (not GET); 400 (not HTTP/1.1, or a body:
 * Content-Length over 0 or any Transfer-Encoding); 426 (no Upgrade:
 * websocket); 400 (no Connection: upgrade; Sec-WebSocket-Version or
 * Sec-WebSocket-Key more than once); 426 (a version other than 13; answer
 * with "Sec-WebSocket-Version: 13"); 400 (missing or malformed key). */
int ws_upgrade_check(const struct http_request *req, const char **key, size_t *key_len);

/* Write the 101 response for a valid key into out; returns its length.
 * extra: more header lines, each ending in CRLF ("" for none). */
size_t ws_upgrade_response(char *out, size_t cap, const char *key, size_t key_len, const char *extra);

#endif
