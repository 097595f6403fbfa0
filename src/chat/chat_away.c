/* chat_away.c: the kept places of guests who went, in the order their
 * grace windows end. A list: a reconnect looks up one id, O(guests away),
 * fine for the few hundred a reload storm leaves; an index by id would
 * fix a bigger crowd. */
#include "chat_away.h"

#include <stdlib.h>
#include <string.h>

struct chat_away *away_add(struct chat_away_list *l, uint32_t id, const char *name, uint64_t until_ms)
{
	struct chat_away *a = calloc(1, sizeof(*a));
	if (!a)
		abort();
	a->id = id;
	a->until_ms = until_ms;
	if (name && !(a->name = strdup(name)))
		abort();
	if (l->tail)
		l->tail->next = a;
	else
		l->head = a;
	l->tail = a;
	return a;
}

void away_add_room(struct chat_away *a, const char *room, size_t len)
{
	if (a->nrooms == CHAT_ROOMS_PER_MEMBER)
		return;
	char *copy = strndup(room, len);
	if (!copy)
		abort();
	a->rooms[a->nrooms++] = copy;
}

bool away_claim(struct chat_away_list *l, uint32_t id, const char *room, size_t len)
{
	for (struct chat_away *a = l->head; a; a = a->next) {
		if (a->id != id)
			continue;
		for (uint8_t k = 0; k < a->nrooms; k++) {
			if (strlen(a->rooms[k]) != len || memcmp(a->rooms[k], room, len) != 0)
				continue;
			free(a->rooms[k]);
			a->rooms[k] = a->rooms[--a->nrooms];
			return true; /* an empty record expires with nothing to say */
		}
	}
	return false;
}

struct chat_away *away_take_expired(struct chat_away_list *l, uint64_t now_ms)
{
	struct chat_away *a = l->head;
	if (!a || a->until_ms > now_ms)
		return NULL;
	l->head = a->next;
	if (!l->head)
		l->tail = NULL;
	a->next = NULL;
	return a;
}

void away_free(struct chat_away *a)
{
	if (!a)
		return;
	for (uint8_t k = 0; k < a->nrooms; k++)
		free(a->rooms[k]);
	free(a->name);
	free(a);
}

void away_list_free(struct chat_away_list *l)
{
	while (l->head) {
		struct chat_away *a = l->head;
		l->head = a->next;
		away_free(a);
	}
	l->tail = NULL;
}
