/* ip_limit.h: how many connections each client address holds, against a
 * limit (--max-per-ip). IPv4 addresses are kept as IPv4-mapped IPv6. */
#ifndef RINGCAST_IP_LIMIT_H
#define RINGCAST_IP_LIMIT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct ip_limit;

/* A table for at most max_live addresses at once, each allowed max_per_ip
 * connections. NULL when out of memory. */
struct ip_limit *ip_limit_new(uint32_t max_per_ip, uint32_t max_live);
void ip_limit_free(struct ip_limit *l);

/* The address of a socket address, as IPv6. False for other families. */
bool ip_limit_addr(const struct sockaddr_storage *sa, struct in6_addr *out);

/* Count one more connection from addr; false (and nothing counted) when
 * addr already holds max_per_ip. */
bool ip_limit_take(struct ip_limit *l, const struct in6_addr *addr);

/* One connection from addr is gone. */
void ip_limit_put(struct ip_limit *l, const struct in6_addr *addr);

/* Connections counted for addr (tests, metrics). */
uint32_t ip_limit_count(const struct ip_limit *l, const struct in6_addr *addr);

#endif
