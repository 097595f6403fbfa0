/* roster.h: who is in a room, by member id: the sequencer's list of a
 * room's members on every edge, from which presence is written. Join,
 * leave and rename cost the same in a room of 100,000 as in one of 2.
 * Internal to the chat modules. */
#ifndef RINGCAST_ROSTER_H
#define RINGCAST_ROSTER_H

#include <stdbool.h>
#include <stdint.h>

/* 16 bytes: a room of 100,000 is on one thread, but still 100,000 of them. */
struct roster_entry {
	uint32_t id;
	/* connections holding this id now: a guest's second tab, or none
	 * while its place is kept through --rejoin-grace (the padding's
	 * bytes: the entry stays 16) */
	uint32_t holders;
	/* NULL for a guest with no name of its own; else which of the two it
	 * has (two flag bytes), then name and user id, each NUL-terminated */
	char *names;
};

/* NULL: "User <id>". */
const char *roster_entry_name(const struct roster_entry *e);
/* NULL: a guest. */
const char *roster_entry_user_id(const struct roster_entry *e);

struct roster {
	struct roster_entry *entries; /* in no particular order (swap-remove) */
	uint32_t count, cap;
	/* open addressing by id: entry position + 1, 0 empty; a power of two,
	 * at most three quarters full */
	uint32_t *index;
	uint32_t index_cap;
};

/* A zeroed struct roster is empty. */
void roster_free(struct roster *r);
/* Copies name and user_id; the id must not be in the roster. */
void roster_add(struct roster *r, uint32_t id, const char *name, const char *user_id);
/* Both return the entry's position (the last entry moves into a removed
 * one's), or -1 for an id not in the roster, which changes nothing. */
int64_t roster_remove(struct roster *r, uint32_t id);
int64_t roster_rename(struct roster *r, uint32_t id, const char *name);
bool roster_has(const struct roster *r, uint32_t id);
/* The entry of id, or NULL; valid until the roster changes. */
struct roster_entry *roster_find(struct roster *r, uint32_t id);

#endif
