/* conn_limits.c: the process's connection limits (include/conn_limits.h). */
#include "conn_limits.h"

#include <pthread.h>
#include <stdlib.h>

#include "ip_limit.h"
#include "log.h"

struct conn_limits {
	pthread_mutex_t lock;
	uint32_t max_connections;
	uint32_t current;
	struct ip_limit *per_ip; /* NULL: no per-address limit */
};

struct conn_limits *conn_limits_new(uint32_t max_connections, uint32_t max_per_ip)
{
	struct conn_limits *l = calloc(1, sizeof(*l));
	if (!l || (max_per_ip && !(l->per_ip = ip_limit_new(max_per_ip, max_connections)))) {
		log_error("cannot allocate the per-address table");
		free(l);
		return NULL;
	}
	pthread_mutex_init(&l->lock, NULL);
	l->max_connections = max_connections;
	return l;
}

void conn_limits_free(struct conn_limits *l)
{
	if (!l)
		return;
	ip_limit_free(l->per_ip);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

bool conn_limits_per_address(const struct conn_limits *l)
{
	return l->per_ip != NULL;
}

enum conn_admission conn_limits_take(struct conn_limits *l, const struct in6_addr *addr)
{
	enum conn_admission a = CONN_ADMITTED;
	pthread_mutex_lock(&l->lock);
	if (l->per_ip && !ip_limit_take(l->per_ip, addr))
		a = CONN_OVER_ADDRESS;
	else if (l->current >= l->max_connections)
		a = CONN_OVER_TOTAL;
	if (a == CONN_ADMITTED)
		l->current++;
	else if (a == CONN_OVER_TOTAL && l->per_ip)
		ip_limit_put(l->per_ip, addr);
	pthread_mutex_unlock(&l->lock);
	return a;
}

void conn_limits_put(struct conn_limits *l, const struct in6_addr *addr)
{
	pthread_mutex_lock(&l->lock);
	if (l->per_ip)
		ip_limit_put(l->per_ip, addr);
	l->current--;
	pthread_mutex_unlock(&l->lock);
}
