/* conn_limits.h: --max-connections and --max-per-ip, counted once for the
 * whole process however many rings accept: each ring asks before it gives
 * a connection a slot and tells when the connection is gone. Thread-safe
 * (one lock, taken once per accept and once per close). */
#ifndef RINGCAST_CONN_LIMITS_H
#define RINGCAST_CONN_LIMITS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

struct conn_limits;

enum conn_admission {
	CONN_ADMITTED,
	CONN_OVER_TOTAL,   /* --max-connections */
	CONN_OVER_ADDRESS, /* --max-per-ip */
};

/* max_per_ip 0: no per-address limit. NULL when out of memory (logged). */
struct conn_limits *conn_limits_new(uint32_t max_connections, uint32_t max_per_ip);
void conn_limits_free(struct conn_limits *l);

/* Is there a per-address limit (so callers know to find the address)? */
bool conn_limits_per_address(const struct conn_limits *l);

/* Count one more connection from addr (ignored without a per-address
 * limit); nothing is counted unless admitted. */
enum conn_admission conn_limits_take(struct conn_limits *l, const struct in6_addr *addr);
/* An admitted connection from addr is gone. */
void conn_limits_put(struct conn_limits *l, const struct in6_addr *addr);

#endif
