/* room_quota.c: rooms in use across edges (include/room_quota.h). */
#include "room_quota.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "name_hash.h"

#define QUOTA_BUCKETS 1024

struct quota_room {
	struct quota_room *next;
	uint32_t members;
	size_t len;
	char name[];
};

struct room_quota {
	pthread_mutex_t lock;
	uint32_t max_rooms, in_use;
	struct quota_room *buckets[QUOTA_BUCKETS];
};

static uint32_t bucket_of(const char *s, size_t n)
{
	return name_hash(s, n) % QUOTA_BUCKETS;
}

struct room_quota *room_quota_new(uint32_t max_rooms)
{
	struct room_quota *q = calloc(1, sizeof(*q));
	if (!q)
		abort();
	pthread_mutex_init(&q->lock, NULL);
	q->max_rooms = max_rooms;
	return q;
}

void room_quota_free(struct room_quota *q)
{
	if (!q)
		return;
	for (size_t b = 0; b < QUOTA_BUCKETS; b++) {
		struct quota_room *r = q->buckets[b];
		while (r) {
			struct quota_room *next = r->next;
			free(r);
			r = next;
		}
	}
	pthread_mutex_destroy(&q->lock);
	free(q);
}

/* The room's link in its bucket, pointing at NULL when it has none. */
static struct quota_room **find(struct room_quota *q, const char *name, size_t len)
{
	struct quota_room **p = &q->buckets[bucket_of(name, len)];
	while (*p && !((*p)->len == len && memcmp((*p)->name, name, len) == 0))
		p = &(*p)->next;
	return p;
}

bool room_quota_take(struct room_quota *q, const char *name, size_t len)
{
	bool ok = true;
	pthread_mutex_lock(&q->lock);
	struct quota_room **p = find(q, name, len);
	if (*p) {
		(*p)->members++;
	} else if (q->in_use >= q->max_rooms) {
		ok = false;
	} else {
		struct quota_room *r = calloc(1, sizeof(*r) + len);
		if (!r)
			abort();
		memcpy(r->name, name, len);
		r->len = len;
		r->members = 1;
		*p = r;
		q->in_use++;
	}
	pthread_mutex_unlock(&q->lock);
	return ok;
}

void room_quota_put(struct room_quota *q, const char *name, size_t len)
{
	pthread_mutex_lock(&q->lock);
	struct quota_room **p = find(q, name, len);
	struct quota_room *r = *p;
	if (r && --r->members == 0) {
		*p = r->next;
		free(r);
		q->in_use--;
	}
	pthread_mutex_unlock(&q->lock);
}

uint32_t room_quota_in_use(struct room_quota *q)
{
	pthread_mutex_lock(&q->lock);
	uint32_t n = q->in_use;
	pthread_mutex_unlock(&q->lock);
	return n;
}
