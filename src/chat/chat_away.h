/* chat_away.h: places kept for resumable guests whose connection went,
 * through --rejoin-grace, so a reload or a short network drop is not
 * announced as a leave and a join. Internal to the chat modules. */
#ifndef RINGCAST_CHAT_AWAY_H
#define RINGCAST_CHAT_AWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat.h"

struct chat_away {
	struct chat_away *next;
	uint32_t id;
	uint64_t until_ms;      /* chat_now_ms() when the leave is announced */
	char *name;             /* NULL: "User <id>" */
	uint8_t nrooms;
	char *rooms[CHAT_ROOMS_PER_MEMBER];
};

/* A list in the order the grace windows end (all have the same length). */
struct chat_away_list {
	struct chat_away *head, *tail;
};

/* A new record for id, rooms still to fill (away_add_room). */
struct chat_away *away_add(struct chat_away_list *l, uint32_t id, const char *name, uint64_t until_ms);
void away_add_room(struct chat_away *a, const char *room, size_t len);
/* A connection of id is entering room: true (and the room struck off the
 * record) when the place there was kept, so the entry is not news. */
bool away_claim(struct chat_away_list *l, uint32_t id, const char *room, size_t len);
/* The first record whose window ended by now_ms, taken off the list (the
 * caller frees it with away_free), or NULL. */
struct chat_away *away_take_expired(struct chat_away_list *l, uint64_t now_ms);
void away_free(struct chat_away *a);
void away_list_free(struct chat_away_list *l);

#endif
