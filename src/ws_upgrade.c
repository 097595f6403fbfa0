/* ws_upgrade.c: validating the opening handshake and writing the 101. */
#include "ws_upgrade.h"

#include <stdio.h>
#include <string.h>

#include "ws.h"

bool ws_upgrade_requested(const struct http_request *req)
{
	return http_header_has_token(req, "upgrade", "websocket");
}

int ws_upgrade_check(const struct http_request *req, const char **key, size_t *key_len)
{
	if (!http_method_is(req, "GET"))
		return 405;
	if (req->minor_version < 1)
		return 400;
	if (!http_header_has_token(req, "upgrade", "websocket"))
		return 426;
	if (!http_header_has_token(req, "connection", "upgrade"))
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

size_t ws_upgrade_response(char *out, size_t cap, const char *key, size_t key_len)
{
	char accept[29];
	ws_accept_key(key, key_len, accept);
	int n = snprintf(out, cap,
			 "HTTP/1.1 101 Switching Protocols\r\n"
			 "Server: ringcast\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: %s\r\n"
			 "\r\n",
			 accept);
	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}
