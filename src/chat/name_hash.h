/* name_hash.h: the hash every room table keys its names by (chat_room.c,
 * sequencer.c, room_quota.c). Internal to the chat modules. */
#ifndef RINGCAST_NAME_HASH_H
#define RINGCAST_NAME_HASH_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a: short names, no allocation, good enough spread for a table
 * whose size --max-rooms bounds. */
static inline uint32_t name_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

#endif
