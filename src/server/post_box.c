/* post_box.c: POST /send hand-offs between edges (post_box.h). */
#include "post_box.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "sse_conn.h"

int post_box_init(struct post_box *b)
{
	b->head = b->tail = NULL;
	pthread_mutex_init(&b->lock, NULL);
	b->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (b->fd < 0) {
		log_error("eventfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void post_box_put(struct post_box *b, struct sse_post *p)
{
	p->next = NULL;
	pthread_mutex_lock(&b->lock);
	if (b->tail)
		b->tail->next = p;
	else
		b->head = p;
	b->tail = p;
	pthread_mutex_unlock(&b->lock);
	uint64_t one = 1;
	if (write(b->fd, &one, sizeof(one)) < 0)
		log_error("post box: eventfd write: %s", strerror(errno));
}

struct sse_post *post_box_take(struct post_box *b)
{
	uint64_t n;
	if (read(b->fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_error("post box: eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&b->lock);
	struct sse_post *all = b->head;
	b->head = b->tail = NULL;
	pthread_mutex_unlock(&b->lock);
	return all;
}

void post_box_destroy(struct post_box *b)
{
	if (b->fd < 0)
		return;
	for (struct sse_post *p = b->head, *next; p; p = next) {
		next = p->next;
		free(p->error);
		free(p);
	}
	b->head = b->tail = NULL;
	close(b->fd);
	b->fd = -1;
	pthread_mutex_destroy(&b->lock);
}
