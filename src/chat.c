/* chat.c: rooms, members, chat messages and their fan-out.
 *
 * A message is parsed once, its frame is built once, and every member of
 * the room gets a reference to the same buffer. */
#include "chat.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "json_out.h"

struct chat_room {
	char name[CHAT_ROOM_MAX + 1];
	size_t name_len;
	uint64_t last_id;             /* id of the last message; ids start at 1 */
	struct chat_member **members;
	uint32_t count, cap;
};

static struct chat_config config;
static struct chat_stats stats;
static uint32_t next_member_id = 1;
static struct jbuf out;
/* A linear list: O(rooms) per lookup, fine while rooms number in the
 * hundreds; a hash table would replace it for many thousands. */
static struct chat_room **rooms;
static size_t room_count, room_cap;

void chat_init(const struct chat_config *cfg)
{
	config = *cfg;
	memset(&stats, 0, sizeof(stats));
	next_member_id = 1;
	jbuf_init(&out);
}

void chat_shutdown(void)
{
	for (size_t i = 0; i < room_count; i++) {
		free(rooms[i]->members);
		free(rooms[i]);
	}
	free(rooms);
	rooms = NULL;
	room_count = room_cap = 0;
	jbuf_free(&out);
}

const struct chat_stats *chat_stats(void)
{
	stats.rooms = room_count;
	return &stats;
}

uint64_t chat_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool chat_room_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > CHAT_ROOM_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

static struct chat_room *room_find(const char *name, size_t len)
{
	for (size_t i = 0; i < room_count; i++)
		if (rooms[i]->name_len == len && memcmp(rooms[i]->name, name, len) == 0)
			return rooms[i];
	return NULL;
}

static struct chat_room *room_get(const char *name, size_t len)
{
	struct chat_room *r = room_find(name, len);
	if (r)
		return r;
	if (room_count == room_cap) {
		room_cap = room_cap ? room_cap * 2 : 8;
		rooms = realloc(rooms, room_cap * sizeof(*rooms));
		if (!rooms)
			abort();
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		abort();
	memcpy(r->name, name, len);
	r->name_len = len;
	rooms[room_count++] = r;
	return r;
}

static void room_add(struct chat_room *r, struct chat_member *m)
{
	if (r->count == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 4;
		r->members = realloc(r->members, r->cap * sizeof(*r->members));
		if (!r->members)
			abort();
	}
	m->room = r;
	m->index = r->count;
	r->members[r->count++] = m;
}

/* Swap-remove: O(1), and member order is not part of the protocol. */
static void room_remove(struct chat_room *r, struct chat_member *m)
{
	struct chat_member *last = r->members[--r->count];
	r->members[m->index] = last;
	last->index = m->index;
	m->room = NULL;
}

/* A room nobody is in any more, and with no history yet kept, is dropped. */
static void room_drop_if_empty(struct chat_room *r)
{
	if (r->count)
		return;
	for (size_t i = 0; i < room_count; i++) {
		if (rooms[i] == r) {
			rooms[i] = rooms[--room_count];
			break;
		}
	}
	free(r->members);
	free(r);
}

static void put_name(struct jbuf *b, const struct chat_member *m)
{
	if (m->name) {
		jbuf_str(b, m->name, strlen(m->name));
		return;
	}
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), "User %u", m->id);
	jbuf_str(b, tmp, (size_t)n);
}

static void put_id(struct jbuf *b, const struct chat_member *m)
{
	jbuf_raw(b, "\"", 1);
	jbuf_u64(b, m->id);
	jbuf_raw(b, "\"", 1);
}

static void put_user(struct jbuf *b, const struct chat_member *m)
{
	jbuf_lit(b, "{\"id\":");
	put_id(b, m);
	jbuf_lit(b, ",\"name\":");
	put_name(b, m);
	jbuf_raw(b, "}", 1);
}

static void put_room(struct jbuf *b, const struct chat_room *r)
{
	jbuf_lit(b, "\"room\":");
	jbuf_str(b, r->name, r->name_len);
}

static void send_to(struct chat_member *m, struct jbuf *b)
{
	struct buf *frame = jbuf_to_text_frame(b);
	config.send(m, frame);
	buf_unref(frame);
}

static void broadcast(struct chat_room *r, struct jbuf *b)
{
	struct buf *frame = jbuf_to_text_frame(b);
	for (uint32_t i = 0; i < r->count; i++)
		config.send(r->members[i], frame);
	buf_unref(frame);
}

static void send_error(struct chat_member *m, const char *code, const char *message)
{
	stats.errors++;
	jbuf_reset(&out);
	jbuf_lit(&out, "{\"type\":\"error\",\"code\":");
	jbuf_str(&out, code, strlen(code));
	jbuf_lit(&out, ",\"message\":");
	jbuf_str(&out, message, strlen(message));
	jbuf_raw(&out, "}", 1);
	send_to(m, &out);
}

static void send_presence(struct chat_member *m, struct chat_room *r)
{
	jbuf_reset(&out);
	jbuf_lit(&out, "{\"type\":\"presence\",");
	put_room(&out, r);
	jbuf_lit(&out, ",\"count\":");
	jbuf_u64(&out, r->count);
	jbuf_lit(&out, ",\"users\":[");
	size_t listed = r->count < config.presence_list_max ? r->count : config.presence_list_max;
	for (size_t i = 0; i < listed; i++) {
		if (i)
			jbuf_raw(&out, ",", 1);
		put_user(&out, r->members[i]);
	}
	jbuf_raw(&out, "]}", 2);
	send_to(m, &out);
}

/* join/leave to every member; skipped for big rooms, where N joins would
 * cost N² deliveries (docs/protocol.md). */
static void announce(struct chat_room *r, struct chat_member *m, const char *type)
{
	if (r->count > config.presence_events_max)
		return;
	jbuf_reset(&out);
	jbuf_lit(&out, "{\"type\":\"");
	jbuf_lit(&out, type);
	jbuf_lit(&out, "\",");
	put_room(&out, r);
	jbuf_lit(&out, ",\"user\":");
	put_user(&out, m);
	jbuf_lit(&out, ",\"count\":");
	jbuf_u64(&out, r->count);
	jbuf_raw(&out, "}", 1);
	broadcast(r, &out);
}

void chat_connect(struct chat_member *m, const char *room, size_t room_len)
{
	m->id = next_member_id++;
	m->name = NULL;
	struct chat_room *r = room_get(room, room_len);
	room_add(r, m);

	jbuf_reset(&out);
	jbuf_lit(&out, "{\"type\":\"welcome\",\"id\":");
	put_id(&out, m);
	jbuf_lit(&out, ",\"name\":");
	put_name(&out, m);
	jbuf_raw(&out, ",", 1);
	put_room(&out, r);
	jbuf_raw(&out, "}", 1);
	send_to(m, &out);

	send_presence(m, r);
	announce(r, m, "join");
}

void chat_disconnect(struct chat_member *m)
{
	struct chat_room *r = m->room;
	if (!r)
		return;
	room_remove(r, m);
	announce(r, m, "leave");
	room_drop_if_empty(r);
	free(m->name);
	m->name = NULL;
}

static void post_message(struct chat_member *m, const char *text, size_t len)
{
	if (len == 0) {
		send_error(m, "empty", "message text is empty");
		return;
	}
	struct chat_room *r = m->room;
	stats.messages++;
	jbuf_reset(&out);
	jbuf_lit(&out, "{\"type\":\"message\",\"id\":");
	jbuf_u64(&out, ++r->last_id);
	jbuf_raw(&out, ",", 1);
	put_room(&out, r);
	jbuf_lit(&out, ",\"from\":");
	put_id(&out, m);
	jbuf_lit(&out, ",\"name\":");
	put_name(&out, m);
	jbuf_lit(&out, ",\"text\":");
	jbuf_str(&out, text, len);
	jbuf_lit(&out, ",\"ts\":");
	jbuf_u64(&out, chat_now_ms());
	jbuf_raw(&out, "}", 1);
	broadcast(r, &out);
}

/* Whole-string compare: with JSON_ALLOW_NUL a "message\u0000x" must not
 * pass for "message". */
static bool is_type(const json_t *type, const char *name)
{
	size_t n = strlen(name);
	return json_string_length(type) == n && memcmp(json_string_value(type), name, n) == 0;
}

static void handle_command(struct chat_member *m, const char *text, size_t len)
{
	json_error_t err;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
	if (!root || !json_is_object(root)) {
		send_error(m, "bad_json", "not a valid JSON object");
		json_decref(root);
		return;
	}
	json_t *type = json_object_get(root, "type");
	if (!json_is_string(type)) {
		send_error(m, "bad_message", "\"type\" must be a string");
	} else if (is_type(type, "message")) {
		json_t *t = json_object_get(root, "text");
		json_t *room = json_object_get(root, "room");
		if (!json_is_string(t))
			send_error(m, "bad_message", "\"text\" must be a string");
		else if (room && (!json_is_string(room) ||
				  json_string_length(room) != m->room->name_len ||
				  memcmp(json_string_value(room), m->room->name, m->room->name_len) != 0))
			send_error(m, "not_in_room", "you are not in that room");
		else
			post_message(m, json_string_value(t), json_string_length(t));
	} else {
		send_error(m, "unknown_type", "unknown message type");
	}
	json_decref(root);
}

void chat_receive(struct chat_member *m, const char *text, size_t len)
{
	if (!m->room)
		return;
	size_t i = 0;
	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
		i++;
	/* Only a JSON object is a command; anything else is the message text
	 * itself, so plain WebSocket clients can chat. */
	if (i < len && text[i] == '{')
		handle_command(m, text, len);
	else
		post_message(m, text, len);
}
