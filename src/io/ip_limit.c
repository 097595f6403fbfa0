/* ip_limit.c: per-address connection counts in an open-addressing table.
 *
 * Linear probing with backward-shift deletion: an address whose count drops
 * to zero leaves the table, so no tombstones pile up however many
 * addresses come and go. The table has at least twice as many cells as
 * addresses can be live at once, so probes stay short and it never fills. */
#include "ip_limit.h"

#include <stdlib.h>
#include <string.h>

struct cell {
	struct in6_addr addr;
	uint32_t count; /* 0: empty */
};

struct ip_limit {
	uint32_t max_per_ip;
	uint32_t mask;
	struct cell *cells;
};

struct ip_limit *ip_limit_new(uint32_t max_per_ip, uint32_t max_live)
{
	uint64_t size = 16;
	while (size < 2 * (uint64_t)max_live + 1)
		size *= 2;
	struct ip_limit *l = calloc(1, sizeof(*l));
	if (!l || !(l->cells = calloc(size, sizeof(*l->cells)))) {
		free(l);
		return NULL;
	}
	l->max_per_ip = max_per_ip;
	l->mask = (uint32_t)(size - 1);
	return l;
}

void ip_limit_free(struct ip_limit *l)
{
	if (l)
		free(l->cells);
	free(l);
}

bool ip_limit_addr(const struct sockaddr_storage *sa, struct in6_addr *out)
{
	if (sa->ss_family == AF_INET6) {
		*out = ((const struct sockaddr_in6 *)sa)->sin6_addr;
		return true;
	}
	if (sa->ss_family == AF_INET) {
		memset(out, 0, sizeof(*out));
		out->s6_addr[10] = out->s6_addr[11] = 0xff;
		memcpy(&out->s6_addr[12], &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return true;
	}
	return false;
}

/* FNV-1a: the table only needs addresses spread, not secrecy (a peer
 * choosing colliding addresses only lengthens its own probes, bounded by
 * the table's size). */
static uint32_t hash(const struct in6_addr *a)
{
	uint32_t h = 2166136261u;
	for (int i = 0; i < 16; i++)
		h = (h ^ a->s6_addr[i]) * 16777619u;
	return h;
}

/* The cell holding addr, or the empty cell where it would go. */
static uint32_t find(const struct ip_limit *l, const struct in6_addr *addr)
{
	uint32_t i = hash(addr) & l->mask;
	while (l->cells[i].count && memcmp(&l->cells[i].addr, addr, sizeof(*addr)) != 0)
		i = (i + 1) & l->mask;
	return i;
}

bool ip_limit_take(struct ip_limit *l, const struct in6_addr *addr)
{
	struct cell *c = &l->cells[find(l, addr)];
	if (c->count >= l->max_per_ip)
		return false;
	c->addr = *addr;
	c->count++;
	return true;
}

uint32_t ip_limit_count(const struct ip_limit *l, const struct in6_addr *addr)
{
	return l->cells[find(l, addr)].count;
}

/* Close the gap at `hole`: move back every later cell of the run whose
 * home slot is not between the hole and itself. */
static void remove_at(struct ip_limit *l, uint32_t hole)
{
	uint32_t i = hole;
	for (;;) {
		i = (i + 1) & l->mask;
		if (!l->cells[i].count)
			break;
		uint32_t home = hash(&l->cells[i].addr) & l->mask;
		/* distance home -> i versus hole -> i, around the ring */
		if (((i - home) & l->mask) >= ((i - hole) & l->mask)) {
			l->cells[hole] = l->cells[i];
			hole = i;
		}
	}
	l->cells[hole].count = 0;
}

void ip_limit_put(struct ip_limit *l, const struct in6_addr *addr)
{
	uint32_t i = find(l, addr);
	if (!l->cells[i].count)
		return; /* never counted */
	if (--l->cells[i].count == 0)
		remove_at(l, i);
}
