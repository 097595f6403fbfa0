/* http_conn.h: a connection before any upgrade: request heads in, static
 * files, /metrics and error responses out, and the WebSocket upgrade. */
#ifndef RINGCAST_HTTP_CONN_H
#define RINGCAST_HTTP_CONN_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct static_site;

struct http_conn_config {
	const struct static_site *site;
	uint32_t header_timeout;
	/* Renders /metrics into a new buf, or NULL when not offered. */
	struct buf *(*metrics)(void);
};

struct http_conn_stats {
	uint64_t requests;
	uint64_t errors;       /* 4xx/5xx answered */
	uint64_t upgrades;
};

void http_conn_init(const struct http_conn_config *cfg);
void http_conn_open(struct conn *c);
void http_conn_data(struct conn *c, uint8_t *data, size_t len);
void http_conn_deadline(struct conn *c);

const struct http_conn_stats *http_conn_stats(void);

#endif
