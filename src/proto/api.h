/* api.h: the server API for an application's backend (docs/protocol.md,
 * "Server API"): publish a message, disconnect a user, list a room's
 * members, over HTTP with a key. Internal to the HTTP side: http_conn.c
 * routes /api here once the request's body is in. */
#ifndef RINGCAST_API_H
#define RINGCAST_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct http_request;

/* The most request body the API reads: a message of --max-message bytes
 * with its JSON escapes and the other fields. Larger is refused unread. */
uint64_t api_body_max(uint64_t max_message);

/* Is path the API's (/api and below)? */
bool api_path(const char *path);

/* Answer one API request whose body (Content-Length bytes) is all here.
 * It may answer later (the chat's order): the connection reads no further
 * request until it has (session.wait). */
void api_handle(struct conn *c, const struct http_request *req, const char *path, const char *query,
		size_t query_len, const char *body, size_t body_len);

/* A request's body over api_body_max: 413, and the connection closes
 * (the body is not read). */
void api_refuse_body(struct conn *c);

#endif
