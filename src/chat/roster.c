/* roster.c: a room's members by id (roster.h). */
#include "roster.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static char *pack_names(const char *name, const char *user_id)
{
	if (!name && !user_id)
		return NULL;
	size_t n = name ? strlen(name) : 0, u = user_id ? strlen(user_id) : 0;
	char *p = malloc(2 + n + 1 + u + 1);
	if (!p)
		abort();
	p[0] = name != NULL;
	p[1] = user_id != NULL;
	memcpy(p + 2, name ? name : "", n + 1);
	memcpy(p + 2 + n + 1, user_id ? user_id : "", u + 1);
	return p;
}

const char *roster_entry_name(const struct roster_entry *e)
{
	return e->names && e->names[0] ? e->names + 2 : NULL;
}

const char *roster_entry_user_id(const struct roster_entry *e)
{
	if (!e->names || !e->names[1])
		return NULL;
	return e->names + 2 + strlen(e->names + 2) + 1;
}

void roster_free(struct roster *r)
{
	for (uint32_t i = 0; i < r->count; i++)
		free(r->entries[i].names);
	free(r->entries);
	free(r->index);
	*r = (struct roster){ 0 };
}

static uint32_t id_slot(uint32_t id, uint32_t cap)
{
	return (id * 2654435761u) & (cap - 1); /* Knuth's multiplicative hash */
}

static void index_insert(struct roster *r, uint32_t pos)
{
	uint32_t i = id_slot(r->entries[pos].id, r->index_cap);
	while (r->index[i])
		i = (i + 1) & (r->index_cap - 1);
	r->index[i] = pos + 1;
}

static void index_grow(struct roster *r)
{
	uint32_t cap = r->index_cap ? r->index_cap * 2 : 8;
	free(r->index);
	r->index = calloc(cap, sizeof(*r->index));
	if (!r->index)
		abort();
	r->index_cap = cap;
	for (uint32_t pos = 0; pos < r->count; pos++)
		index_insert(r, pos);
}

/* The index slot holding id's position, or -1. */
static int64_t index_find(const struct roster *r, uint32_t id)
{
	if (!r->index_cap)
		return -1;
	uint32_t mask = r->index_cap - 1;
	for (uint32_t i = id_slot(id, r->index_cap); r->index[i]; i = (i + 1) & mask)
		if (r->entries[r->index[i] - 1].id == id)
			return i;
	return -1;
}

/* Empty slot i, shifting later entries of its probe run back so that every
 * lookup still finds them (linear probing needs no tombstones this way). */
static void index_erase(struct roster *r, uint32_t i)
{
	uint32_t mask = r->index_cap - 1;
	r->index[i] = 0;
	for (uint32_t j = (i + 1) & mask; r->index[j]; j = (j + 1) & mask) {
		uint32_t home = id_slot(r->entries[r->index[j] - 1].id, r->index_cap);
		/* j's entry may move to i unless its home lies cyclically in (i, j] */
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (!stays) {
			r->index[i] = r->index[j];
			r->index[j] = 0;
			i = j;
		}
	}
}

void roster_add(struct roster *r, uint32_t id, const char *name, const char *user_id)
{
	if (r->count == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 4;
		r->entries = realloc(r->entries, r->cap * sizeof(*r->entries));
		if (!r->entries)
			abort();
	}
	r->entries[r->count] = (struct roster_entry){ .id = id, .holders = 1, .names = pack_names(name, user_id) };
	r->count++;
	if (r->count * 4 > r->index_cap * 3)
		index_grow(r); /* indexes every entry, the new one too */
	else
		index_insert(r, r->count - 1);
}

/* Swap-remove: order is not part of the protocol. */
int64_t roster_remove(struct roster *r, uint32_t id)
{
	int64_t slot = index_find(r, id);
	if (slot < 0)
		return -1;
	uint32_t pos = r->index[slot] - 1;
	index_erase(r, (uint32_t)slot);
	free(r->entries[pos].names);
	uint32_t last = --r->count;
	if (pos != last) {
		r->entries[pos] = r->entries[last];
		r->index[index_find(r, r->entries[pos].id)] = pos + 1;
	}
	return pos;
}

int64_t roster_rename(struct roster *r, uint32_t id, const char *name)
{
	int64_t slot = index_find(r, id);
	if (slot < 0)
		return -1;
	uint32_t pos = r->index[slot] - 1;
	struct roster_entry *e = &r->entries[pos];
	char *names = pack_names(name, roster_entry_user_id(e));
	free(e->names);
	e->names = names;
	return pos;
}

bool roster_has(const struct roster *r, uint32_t id)
{
	return index_find(r, id) >= 0;
}

struct roster_entry *roster_find(struct roster *r, uint32_t id)
{
	int64_t slot = index_find(r, id);
	return slot < 0 ? NULL : &r->entries[r->index[slot] - 1];
}
