/* timer_wheel.c: a lazy timer wheel of one-tick buckets (see timer_wheel.h). */
#include "timer_wheel.h"

#include <stddef.h>

void tw_init(struct timer_wheel *w, uint32_t now)
{
	for (int i = 0; i < TW_BUCKETS; i++)
		w->buckets[i] = NULL;
	w->now = now;
}

static void unlink_node(struct timer_wheel *w, struct tw_node *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		w->buckets[n->filed_at % TW_BUCKETS] = n->next;
	if (n->next)
		n->next->prev = n->prev;
	n->next = n->prev = NULL;
	n->filed_at = 0;
}

/* File n in the bucket for its deadline, clamped to the wheel's horizon:
 * a far deadline is re-filed when its bucket comes round. */
static void file_node(struct timer_wheel *w, struct tw_node *n)
{
	uint32_t at = n->deadline;
	if (at <= w->now)
		at = w->now + 1;
	if (at - w->now >= TW_BUCKETS)
		at = w->now + TW_BUCKETS - 1;
	struct tw_node **head = &w->buckets[at % TW_BUCKETS];
	n->filed_at = at;
	n->prev = NULL;
	n->next = *head;
	if (*head)
		(*head)->prev = n;
	*head = n; /* filed_at > now >= 0: never 0 while filed */
}

void tw_schedule(struct timer_wheel *w, struct tw_node *n, uint32_t deadline)
{
	n->deadline = deadline;
	if (n->filed_at && n->filed_at <= deadline)
		return; /* its bucket comes first; it is re-filed then */
	if (n->filed_at)
		unlink_node(w, n);
	file_node(w, n);
}

void tw_cancel(struct timer_wheel *w, struct tw_node *n)
{
	if (n->filed_at)
		unlink_node(w, n);
}

void tw_advance(struct timer_wheel *w, uint32_t now, void (*fire)(struct tw_node *n))
{
	while (w->now < now) {
		w->now++;
		struct tw_node **head = &w->buckets[w->now % TW_BUCKETS];
		struct tw_node *n = *head;
		*head = NULL;
		while (n) {
			struct tw_node *next = n->next;
			n->next = n->prev = NULL;
			n->filed_at = 0;
			if (n->deadline <= w->now)
				fire(n);
			if (!n->filed_at && n->deadline > w->now)
				file_node(w, n);
			n = next;
		}
	}
}
