/* sse_post.h: POST /send, the HTTP side (docs/protocol.md, "Server-Sent
 * Events fallback"): read the command and the session key, hand it to the
 * edge that holds the stream (http_conn_config.sse_route), answer when it
 * comes back. Internal to the HTTP side: http_conn.c routes /send here
 * once the request's body is in. */
#ifndef RINGCAST_SSE_POST_H
#define RINGCAST_SSE_POST_H

#include <stddef.h>

struct conn;
struct http_request;

/* Answer one POST /send whose body (Content-Length bytes) is all here. It
 * may answer later (the stream on another edge): the connection reads no
 * further request until it has (session.wait). */
void sse_post_handle(struct conn *c, const struct http_request *req, const char *query, size_t query_len,
		     const char *body, size_t body_len);

/* A body over --max-message: 413, and the connection closes (the body is
 * not read). */
void sse_post_refuse_body(struct conn *c);

#endif
