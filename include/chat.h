/* chat.h: the chat protocol: rooms, members, messages and their fan-out.
 *
 * Chat knows nothing of sockets or the ring. It takes complete text messages
 * from members and hands finished WebSocket frames to a send function; each
 * frame is built once and the same buffer goes to every recipient. */
#ifndef RINGCAST_CHAT_H
#define RINGCAST_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;
struct chat_room;

#define CHAT_ROOM_MAX 64

struct chat_member {
	struct chat_room *room;  /* NULL until chat_connect */
	uint32_t id;
	uint32_t index;          /* position in the room's member array */
	char *name;              /* NULL means the default "User <id>" */
};

/* Hand frame to member m; the callee takes its own reference if it keeps it. */
typedef void (*chat_send_fn)(struct chat_member *m, struct buf *frame);

struct chat_config {
	chat_send_fn send;
	size_t presence_list_max;   /* users listed in a presence snapshot */
	size_t presence_events_max; /* rooms larger than this get no join/leave events */
};

struct chat_stats {
	uint64_t messages;     /* chat messages accepted and broadcast */
	uint64_t errors;       /* error events sent */
	uint64_t rooms;        /* rooms that exist now */
};

void chat_init(const struct chat_config *cfg);
void chat_shutdown(void);

/* Room names: 1-64 of [A-Za-z0-9_.-]. */
bool chat_room_name_valid(const char *name, size_t len);

/* A new connection joins room (a valid name): welcome, presence snapshot,
 * join event to the room. */
void chat_connect(struct chat_member *m, const char *room, size_t room_len);

/* The connection is gone: leave its room (leave event to the rest). */
void chat_disconnect(struct chat_member *m);

/* A complete, valid UTF-8 text message from m. */
void chat_receive(struct chat_member *m, const char *text, size_t len);

const struct chat_stats *chat_stats(void);

/* Milliseconds since the epoch, as put in "ts". */
uint64_t chat_now_ms(void);

#endif
