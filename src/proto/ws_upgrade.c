/* ws_upgrade.c: validating the opening handshake and writing the 101. */
#include "ws_upgrade.h"

#include <stdio.h>
#include <string.h>

#include "ws.h"

bool ws_upgrade_requested(const struct http_request *req)
{
	return http_header_has_token(req, "upgrade", "websocket");
}

/* Bytes after the head belong to the request's body, but once the 101 is
 * sent they would be read as the client's first frames: a message smuggled
 * past anything that looked only at the head. No client sends a body with
 * its GET handshake, so one that announces a body is refused. */
static bool has_body(const struct http_request *req)
{
	return req->content_length > 0 || http_find_header(req, "transfer-encoding");
}

int ws_upgrade_check(const struct http_request *req, const char **key, size_t *key_len)
{
	if (!http_method_is(req, "GET"))
		return 405;
	if (req->minor_version < 1 || has_body(req))
		return 400;
	if (!http_header_has_token(req, "upgrade", "websocket"))
		return 426;
	if (!http_header_has_token(req, "connection", "upgrade"))
		return 400;
	/* RFC 6455 §11.3.1 and §11.3.5: each at most once in a request. Two
	 * keys leave it open which one the accept answers. */
	if (http_header_count(req, "sec-websocket-version") > 1 ||
	    http_header_count(req, "sec-websocket-key") > 1)
		return 400;
	const struct http_header *version = http_find_header(req, "sec-websocket-version");
	if (!version || version->value_len != 2 || memcmp(version->value, "13", 2) != 0)
		return 426;
	const struct http_header *k = http_find_header(req, "sec-websocket-key");
	if (!k || !ws_key_valid(k->value, k->value_len))
		return 400;
	*key = k->value;
	*key_len = k->value_len;
	return 0;
}

size_t ws_upgrade_response(char *out, size_t cap, const char *key, size_t key_len, const char *extra)
{
	char accept[29];
	ws_accept_key(key, key_len, accept);
	int n = snprintf(out, cap,
			 "HTTP/1.1 101 Switching Protocols\r\n"
			 "Server: ringcast\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: %s\r\n"
			 "%s"
			 "\r\n",
			 accept, extra);
	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}
