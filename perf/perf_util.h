/* perf_util.h: small helpers shared by the benchmark tools (loadgen, floor).
 *
 * Nothing here knows about WebSocket or io_uring: clocks, loopback address
 * checks, CPU pinning and the open-file budget. */
#ifndef PERF_UTIL_H
#define PERF_UTIL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#define NSEC_PER_SEC 1000000000ull

/* The hard ceiling on sockets one benchmark process opens. The workplace
 * caps open files at 20,000 per process; the rest is headroom for the ring,
 * /proc files, stdio and the listener. */
#define PERF_MAX_SOCKETS 19000

uint64_t now_ns(void);

/* CPU time of the calling process (RUSAGE_SELF) or thread (RUSAGE_THREAD). */
uint64_t rusage_cpu_ns(int who);

/* Parse "127.0.0.5" or "localhost" into *out. Only 127.0.0.0/8 is accepted:
 * these tools generate load and must never aim it off this machine. */
bool parse_loopback(const char *host, struct in_addr *out);

/* The i-th source address for spreading connections: 127.0.0.(1 + i % n).
 * Each source address has its own ephemeral port space, so n addresses
 * give n times the ports towards one server port. */
struct in_addr source_addr(uint32_t i, uint32_t n);

/* Raise RLIMIT_NOFILE's soft limit to the hard one; returns the soft limit
 * now in force. */
uint64_t raise_fd_limit(void);

/* Pin the calling thread to one CPU; -1 leaves it alone. Returns 0 or -errno. */
int pin_cpu(int cpu);

/* Strict number parsing for command-line flags: the whole string must be a
 * number, optionally followed by k (1e3) or M (1e6). */
bool parse_num(const char *s, double *out);
bool parse_uint(const char *s, uint64_t *out);

/* Make a socket ready for a benchmark: TCP_NODELAY, and for client sockets
 * IP_BIND_ADDRESS_NO_PORT plus bind to the source address, so the port is
 * chosen at connect() time by the full 4-tuple instead of reserving one
 * port per source address at bind(). Returns 0 or -errno. */
int socket_bind_source(int fd, struct in_addr src);
int socket_nodelay(int fd);

#endif
