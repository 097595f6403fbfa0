/* chat_event.c: JSON text of the server's events (docs/protocol.md). */
#include "chat_event.h"

#include <stdio.h>
#include <string.h>

#include "chat_room.h"
#include "roster.h"
#include "store.h"

void put_member_id(struct jbuf *b, const struct chat_member *m)
{
	if (m->user_id) {
		jbuf_str(b, m->user_id, strlen(m->user_id));
		return;
	}
	jbuf_raw(b, "\"", 1);
	jbuf_u64(b, m->id);
	jbuf_raw(b, "\"", 1);
}

void put_member_name(struct jbuf *b, const struct chat_member *m)
{
	if (m->name) {
		jbuf_str(b, m->name, strlen(m->name));
		return;
	}
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), "User %u", m->id);
	jbuf_str(b, tmp, (size_t)n);
}

static void put_user(struct jbuf *b, const struct chat_member *m)
{
	jbuf_lit(b, "{\"id\":");
	put_member_id(b, m);
	jbuf_lit(b, ",\"name\":");
	put_member_name(b, m);
	jbuf_raw(b, "}", 1);
}

void ev_user(struct jbuf *b, const struct chat_member *m)
{
	jbuf_reset(b);
	put_user(b, m);
}

static void put_roster_user(struct jbuf *b, const struct roster_entry *e)
{
	jbuf_lit(b, "{\"id\":");
	const char *user_id = roster_entry_user_id(e), *name = roster_entry_name(e);
	if (user_id) {
		jbuf_str(b, user_id, strlen(user_id));
	} else {
		jbuf_raw(b, "\"", 1);
		jbuf_u64(b, e->id);
		jbuf_raw(b, "\"", 1);
	}
	jbuf_lit(b, ",\"name\":");
	if (name) {
		jbuf_str(b, name, strlen(name));
	} else {
		char tmp[32];
		int n = snprintf(tmp, sizeof(tmp), "User %u", e->id);
		jbuf_str(b, tmp, (size_t)n);
	}
	jbuf_raw(b, "}", 1);
}

static void put_room(struct jbuf *b, const struct chat_room *r)
{
	jbuf_lit(b, "\"room\":");
	jbuf_str(b, r->name, r->name_len);
}

void ev_welcome(struct jbuf *b, const struct chat_member *m, const struct chat_room *r, const char *guest,
		bool resumed, uint64_t max_message)
{
	jbuf_reset(b);
	jbuf_lit(b, "{\"type\":\"welcome\",\"id\":");
	put_member_id(b, m);
	jbuf_lit(b, ",\"name\":");
	put_member_name(b, m);
	if (r) {
		jbuf_raw(b, ",", 1);
		put_room(b, r);
	}
	if (guest) {
		jbuf_lit(b, ",\"guest\":");
		jbuf_str(b, guest, strlen(guest));
	}
	if (resumed)
		jbuf_lit(b, ",\"resumed\":true");
	jbuf_lit(b, m->user_id ? ",\"signed_in\":true" : ",\"signed_in\":false");
	/* the page refuses a longer message itself instead of being closed with 1009 */
	if (max_message) {
		jbuf_lit(b, ",\"max_message\":");
		jbuf_u64(b, max_message);
	}
	jbuf_raw(b, "}", 1);
}

void ev_guest_token(struct jbuf *b, const char *guest)
{
	jbuf_reset(b);
	jbuf_lit(b, "{\"type\":\"guest\",\"guest\":");
	jbuf_str(b, guest, strlen(guest));
	jbuf_lit(b, "}");
}

void ev_presence(struct jbuf *b, const struct chat_room *r, size_t list_max)
{
	jbuf_reset(b);
	jbuf_lit(b, "{\"type\":\"presence\",");
	put_room(b, r);
	jbuf_lit(b, ",\"count\":");
	jbuf_u64(b, room_members(r));
	jbuf_lit(b, ",\"users\":[");
	size_t listed = r->count < list_max ? r->count : list_max;
	for (size_t i = 0; i < listed; i++) {
		if (i)
			jbuf_raw(b, ",", 1);
		put_user(b, room_member(r, (uint32_t)i));
	}
	jbuf_raw(b, "]}", 2);
}

void ev_member_change(struct jbuf *b, const char *type, const struct chat_room *r,
		      const struct chat_member *m)
{
	ev_member_event(b, type, r->name, r->name_len, m, room_members(r));
}

void ev_member_event(struct jbuf *b, const char *type, const char *room, size_t room_len,
		     const struct chat_member *m, uint64_t count)
{
	jbuf_reset(b);
	jbuf_lit(b, "{\"type\":\"");
	jbuf_lit(b, type);
	jbuf_lit(b, "\",\"room\":");
	jbuf_str(b, room, room_len);
	jbuf_lit(b, ",\"user\":");
	put_user(b, m);
	jbuf_lit(b, ",\"count\":");
	jbuf_u64(b, count);
	jbuf_raw(b, "}", 1);
}

void ev_users_roster(struct jbuf *b, const struct roster *roster, size_t list_max)
{
	jbuf_reset(b);
	jbuf_raw(b, "[", 1);
	size_t listed = roster->count < list_max ? roster->count : list_max;
	for (size_t i = 0; i < listed; i++) {
		if (i)
			jbuf_raw(b, ",", 1);
		put_roster_user(b, &roster->entries[i]);
	}
	jbuf_raw(b, "]", 1);
}

void ev_presence_users(struct jbuf *b, const char *room, size_t room_len, uint64_t count,
		       const char *users, size_t users_len)
{
	jbuf_reset(b);
	jbuf_lit(b, "{\"type\":\"presence\",\"room\":");
	jbuf_str(b, room, room_len);
	jbuf_lit(b, ",\"count\":");
	jbuf_u64(b, count);
	jbuf_lit(b, ",\"users\":");
	jbuf_raw(b, users, users_len);
	jbuf_raw(b, "}", 1);
}

static void put_message(struct jbuf *b, const char *room, size_t room_len, uint64_t id)
{
	jbuf_lit(b, "{\"type\":\"message\",\"id\":");
	jbuf_u64(b, id);
	jbuf_lit(b, ",\"room\":");
	jbuf_str(b, room, room_len);
	jbuf_lit(b, ",\"from\":");
}

static void put_text_ts(struct jbuf *b, const char *text, size_t len, uint64_t ts)
{
	jbuf_lit(b, ",\"text\":");
	jbuf_str(b, text, len);
	jbuf_lit(b, ",\"ts\":");
	jbuf_u64(b, ts);
	jbuf_raw(b, "}", 1);
}

void ev_message(struct jbuf *b, const struct chat_room *r, uint64_t id, const struct chat_member *m,
		const char *text, size_t len, uint64_t ts)
{
	jbuf_reset(b);
	put_message(b, r->name, r->name_len, id);
	put_member_id(b, m);
	jbuf_lit(b, ",\"name\":");
	put_member_name(b, m);
	put_text_ts(b, text, len, ts);
}

/* Appends (no reset): records are written into history events. */
void ev_message_record(struct jbuf *b, const struct store_record *rec)
{
	put_message(b, rec->room, rec->room_len, rec->id);
	jbuf_str(b, rec->from, rec->from_len);
	jbuf_lit(b, ",\"name\":");
	jbuf_str(b, rec->name, rec->name_len);
	put_text_ts(b, rec->text, rec->text_len, rec->ts);
}

void ev_nick(struct jbuf *b, const struct chat_member *m, const char *old)
{
	jbuf_reset(b);
	jbuf_lit(b, "{\"type\":\"nick\",\"id\":");
	put_member_id(b, m);
	jbuf_lit(b, ",\"name\":");
	put_member_name(b, m);
	jbuf_lit(b, ",\"old\":");
	jbuf_str(b, old, strlen(old));
	jbuf_raw(b, "}", 1);
}

void ev_error(struct jbuf *b, const char *code, const char *message)
{
	jbuf_reset(b);
	jbuf_lit(b, "{\"type\":\"error\",\"code\":");
	jbuf_str(b, code, strlen(code));
	jbuf_lit(b, ",\"message\":");
	jbuf_str(b, message, strlen(message));
	jbuf_raw(b, "}", 1);
}

void ev_add_cid(struct jbuf *b, const char *cid, size_t len)
{
	b->len--; /* the object's closing brace */
	jbuf_lit(b, ",\"cid\":");
	jbuf_str(b, cid, len);
	jbuf_raw(b, "}", 1);
}

void ev_resumed(struct jbuf *b, const struct chat_room *r, uint64_t since, uint64_t last, bool complete)
{
	jbuf_reset(b);
	jbuf_lit(b, "{\"type\":\"resumed\",");
	put_room(b, r);
	jbuf_lit(b, ",\"since\":");
	jbuf_u64(b, since);
	jbuf_lit(b, ",\"last\":");
	jbuf_u64(b, last);
	jbuf_lit(b, complete ? ",\"complete\":true}" : ",\"complete\":false}");
}

void ev_rooms(struct jbuf *b, const struct chat_rooms *rooms, const struct chat_member *m,
	      size_t list_max)
{
	jbuf_reset(b);
	jbuf_lit(b, "{\"type\":\"rooms\",\"joined\":[");
	for (uint8_t k = 0; k < m->nrooms; k++) {
		if (k)
			jbuf_raw(b, ",", 1);
		jbuf_str(b, m->rooms[k].room->name, m->rooms[k].room->name_len);
	}
	jbuf_lit(b, "],\"rooms\":[");
	size_t n = 0;
	for (struct chat_room *r = room_first(rooms); r && n < list_max; r = room_next(rooms, r)) {
		if (!room_members(r))
			continue;
		if (n++)
			jbuf_raw(b, ",", 1);
		jbuf_lit(b, "{\"room\":");
		jbuf_str(b, r->name, r->name_len);
		jbuf_lit(b, ",\"count\":");
		jbuf_u64(b, room_members(r));
		jbuf_raw(b, "}", 1);
	}
	jbuf_raw(b, "]}", 2);
}

void ev_history_open(struct jbuf *b, const struct chat_room *r)
{
	jbuf_reset(b);
	jbuf_lit(b, "{\"type\":\"history\",");
	put_room(b, r);
	jbuf_lit(b, ",\"messages\":[");
}

void ev_history_item(struct jbuf *b, bool first, const char *json, size_t len)
{
	if (!first)
		jbuf_raw(b, ",", 1);
	jbuf_raw(b, json, len);
}

void ev_history_close(struct jbuf *b, bool more)
{
	jbuf_lit(b, more ? "],\"more\":true}" : "],\"more\":false}");
}
