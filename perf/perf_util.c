/* perf_util.c: clocks, loopback checks, pinning and limits for the perf tools. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "perf_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t rusage_cpu_ns(int who)
{
	struct rusage ru;

	if (getrusage(who, &ru) < 0)
		return 0;
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * NSEC_PER_SEC +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000ull;
}

bool parse_loopback(const char *host, struct in_addr *out)
{
	if (!strcmp(host, "localhost"))
		host = "127.0.0.1";
	if (inet_pton(AF_INET, host, out) != 1)
		return false;
	return (ntohl(out->s_addr) >> 24) == 127;
}

struct in_addr source_addr(uint32_t i, uint32_t n)
{
	struct in_addr a;

	a.s_addr = htonl(0x7f000001u + (n ? i % n : 0));
	return a;
}

uint64_t raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur;
}

int pin_cpu(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		return -errno;
	return 0;
}

bool parse_num(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno || !isfinite(v))
		return false;
	if (*end == 'k' || *end == 'K') {
		v *= 1e3;
		end++;
	} else if (*end == 'M' || *end == 'm') {
		v *= 1e6;
		end++;
	}
	if (*end)
		return false;
	*out = v;
	return true;
}

bool parse_uint(const char *s, uint64_t *out)
{
	double v;

	if (!parse_num(s, &v) || v < 0 || v > 1e18 || v != floor(v))
		return false;
	*out = (uint64_t)v;
	return true;
}

int socket_nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		return -errno;
	return 0;
}

int socket_bind_source(int fd, struct in_addr src)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr = src };
	int one = 1;

	/* Without this, bind() picks a port that is unique per source address
	 * alone, and ~28k ports is all one address can ever have. */
	if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	return 0;
}
