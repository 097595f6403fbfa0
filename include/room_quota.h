/* room_quota.h: --max-rooms for a process of several edges. Each edge
 * keeps its own copy of the rooms, so none of them alone knows how many
 * rooms are in use; this table counts every room's members on all edges,
 * and a room with members counts against the limit once. Thread-safe (one
 * lock, taken per join and per leave). */
#ifndef RINGCAST_ROOM_QUOTA_H
#define RINGCAST_ROOM_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct room_quota;

/* Aborts when out of memory, as chat does. */
struct room_quota *room_quota_new(uint32_t max_rooms);
void room_quota_free(struct room_quota *q);

/* One more member in room name: false (nothing counted) when the room has
 * none yet and max_rooms rooms have some. */
bool room_quota_take(struct room_quota *q, const char *name, size_t len);
/* One member fewer. */
void room_quota_put(struct room_quota *q, const char *name, size_t len);

/* Rooms with members now. */
uint32_t room_quota_in_use(struct room_quota *q);

#endif
