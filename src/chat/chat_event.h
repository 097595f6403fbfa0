/* chat_event.h: the JSON text of every server-to-client event, written into
 * a jbuf. Internal to the chat modules. */
#ifndef RINGCAST_CHAT_EVENT_H
#define RINGCAST_CHAT_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat.h"
#include "json_out.h"

struct chat_room;
struct chat_rooms;
struct roster;
struct store_record;

/* guest: the guest token to keep and present on reconnecting, or NULL;
 * resumed: the id and name came back from one; max_message: told when
 * not 0 */
void ev_welcome(struct jbuf *b, const struct chat_member *m, const struct chat_room *r, const char *guest,
		bool resumed, uint64_t max_message);
/* {"type":"guest"}: a new guest token after a rename */
void ev_guest_token(struct jbuf *b, const char *guest);
void ev_presence(struct jbuf *b, const struct chat_room *r, size_t list_max);
/* type: "join" or "leave" */
void ev_member_change(struct jbuf *b, const char *type, const struct chat_room *r,
		      const struct chat_member *m);
/* Who m is, as events and presence list it: {"id":...,"name":...}. */
void ev_user(struct jbuf *b, const struct chat_member *m);
/* The same by room name and count (the sequencer's: it has no chat_room). */
void ev_member_event(struct jbuf *b, const char *type, const char *room, size_t room_len,
		     const struct chat_member *m, uint64_t count);
/* The users a presence lists, as a JSON array, from the sequencer's roster
 * of the room on every edge; and a presence event around such an array. */
void ev_users_roster(struct jbuf *b, const struct roster *roster, size_t list_max);
void ev_presence_users(struct jbuf *b, const char *room, size_t room_len, uint64_t count,
		       const char *users, size_t users_len);
void ev_message(struct jbuf *b, const struct chat_room *r, uint64_t id, const struct chat_member *m,
		const char *text, size_t len, uint64_t ts);
void ev_message_record(struct jbuf *b, const struct store_record *rec);
void ev_nick(struct jbuf *b, const struct chat_member *m, const char *old);
void ev_error(struct jbuf *b, const char *code, const char *message);
/* Make the object b holds say which command it answers: "cid" added as
 * its last key (the acknowledgement, an error). */
void ev_add_cid(struct jbuf *b, const char *cid, size_t len);
void ev_resumed(struct jbuf *b, const struct chat_room *r, uint64_t since, uint64_t last, bool complete);
void ev_rooms(struct jbuf *b, const struct chat_rooms *rooms, const struct chat_member *m,
	      size_t list_max);

/* A history event is opened, given message objects one by one, closed. */
void ev_history_open(struct jbuf *b, const struct chat_room *r);
void ev_history_item(struct jbuf *b, bool first, const char *json, size_t len);
void ev_history_close(struct jbuf *b, bool more);

/* The member's id as sent in "id"/"from" (user id when signed in). */
void put_member_id(struct jbuf *b, const struct chat_member *m);
void put_member_name(struct jbuf *b, const struct chat_member *m);

#endif
