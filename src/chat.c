/* chat.c: the chat protocol: commands in, events out.
 *
 * A message is parsed once and its frame built once; every live member of
 * the room gets a reference to the same buffer. With a store, the frame
 * waits until the store has committed the message, so the sender's own copy
 * is the acknowledgement that it is durable. */
#include "chat.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "chat_event.h"
#include "chat_name.h"
#include "chat_room.h"
#include "json_out.h"
#include "store.h"

#define HISTORY_LIMIT_MAX 200
#define ROOMS_LISTED_MAX 200

/* A message waiting for its commit. */
struct pending_message {
	struct pending_message *next;
	struct chat_room *room;
	uint64_t id;
	struct buf *frame;
	struct chat_member *sender; /* NULL once the sender has gone */
};

enum query_kind { QUERY_HISTORY, QUERY_RESUME };

/* A store query on behalf of a member. */
struct pending_query {
	struct pending_query *next;
	enum query_kind kind;
	struct chat_member *member; /* NULL once the member has gone */
	struct chat_room *room;
	uint32_t epoch;       /* the membership it was asked for */
	bool catching_up;     /* RESUME of a held membership: release it after */
	uint64_t since;       /* RESUME: replay ids > since */
	uint64_t upto;        /* RESUME of a live membership: ids <= upto */
	unsigned limit;       /* HISTORY */
};

struct fifo {
	void *head, *tail;
};

static struct chat_config config;
static struct chat_stats stats;
static uint32_t next_member_id = 1;
static uint32_t next_epoch = 1;
static uint32_t next_mark = 1;
static struct jbuf out;
static struct fifo waiting_messages, waiting_queries;

/* Both pending types start with their next pointer. */
static void fifo_push(struct fifo *f, void *item)
{
	*(void **)item = NULL;
	if (f->tail)
		*(void **)f->tail = item;
	else
		f->head = item;
	f->tail = item;
}

static void *fifo_pop(struct fifo *f)
{
	void *item = f->head;
	if (item) {
		f->head = *(void **)item;
		if (!f->head)
			f->tail = NULL;
	}
	return item;
}

void chat_init(const struct chat_config *cfg)
{
	config = *cfg;
	if (!config.presence_list_max)
		config.presence_list_max = 100;
	if (!config.presence_events_max)
		config.presence_events_max = 100;
	if (!config.history_memory)
		config.history_memory = 1000;
	if (!config.history_on_join)
		config.history_on_join = 50;
	if (!config.resume_max)
		config.resume_max = 5000;
	if (!config.max_rooms)
		config.max_rooms = 10000;
	memset(&stats, 0, sizeof(stats));
	next_member_id = 1;
	next_epoch = 1;
	waiting_messages = (struct fifo){ 0 };
	waiting_queries = (struct fifo){ 0 };
	room_table_init(config.history_memory, config.max_rooms, config.store == NULL);
	jbuf_init(&out);
}

void chat_shutdown(void)
{
	struct pending_message *pm;
	while ((pm = fifo_pop(&waiting_messages))) {
		buf_unref(pm->frame);
		free(pm);
	}
	struct pending_query *pq;
	while ((pq = fifo_pop(&waiting_queries)))
		free(pq);
	room_table_free();
	jbuf_free(&out);
}

const struct chat_stats *chat_stats(void)
{
	stats.rooms = room_count();
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

/* ---- sending ------------------------------------------------------------ */

static void send_frame(struct chat_member *m, struct buf *frame)
{
	config.send(m, frame);
}

static void send_out(struct chat_member *m)
{
	struct buf *frame = jbuf_to_text_frame(&out);
	config.send(m, frame);
	buf_unref(frame);
}

/* An event to every member of the room. */
static void broadcast_frame(struct chat_room *r, struct buf *frame)
{
	for (uint32_t i = 0; i < r->count; i++)
		config.send(room_member(r, i), frame);
}

/* A chat message to every member but those still catching up, who get it
 * in their replay. The hot loop of the server: one pointer test per
 * recipient on top of queueing a reference. */
static void broadcast_message(struct chat_room *r, struct buf *frame)
{
	for (uint32_t i = 0; i < r->count; i++)
		if (!room_member_held(r, i))
			config.send(room_member(r, i), frame);
}

static void broadcast_out(struct chat_room *r)
{
	struct buf *frame = jbuf_to_text_frame(&out);
	broadcast_frame(r, frame);
	buf_unref(frame);
}

static void send_error(struct chat_member *m, const char *code, const char *message)
{
	stats.errors++;
	ev_error(&out, code, message);
	send_out(m);
}

/* join/leave to every member; skipped for big rooms, where N arrivals
 * would cost N² deliveries (docs/protocol.md). */
static void announce(struct chat_room *r, struct chat_member *m, const char *type)
{
	if (room_members(r) > config.presence_events_max)
		return;
	ev_member_change(&out, type, r, m);
	broadcast_out(r);
}

/* ---- membership ----------------------------------------------------------- */

static int membership_of(const struct chat_member *m, const struct chat_room *r)
{
	for (uint8_t k = 0; k < m->nrooms; k++)
		if (m->rooms[k].room == r)
			return k;
	return -1;
}

static struct chat_membership *add_membership(struct chat_member *m, struct chat_room *r)
{
	if (m->nrooms == m->rooms_cap) {
		uint8_t cap = (uint8_t)(m->rooms_cap * 2);
		struct chat_membership *rooms = malloc(cap * sizeof(*rooms));
		if (!rooms)
			abort();
		memcpy(rooms, m->rooms, m->nrooms * sizeof(*rooms));
		if (m->rooms != &m->first_room)
			free(m->rooms);
		m->rooms = rooms;
		m->rooms_cap = cap;
	}
	struct chat_membership *ms = &m->rooms[m->nrooms++];
	memset(ms, 0, sizeof(*ms));
	ms->room = r;
	ms->epoch = next_epoch++;
	return ms;
}

/* Remove membership k; the last one moves into its place. */
static void drop_membership(struct chat_member *m, uint8_t k)
{
	uint8_t last = --m->nrooms;
	m->rooms[k] = m->rooms[last];
	if (m->current == k)
		m->current = 0;
	else if (m->current == last)
		m->current = k;
}

static void send_history_from_memory(struct chat_member *m, struct chat_room *r, uint32_t end,
				     unsigned limit)
{
	uint32_t start = end > limit ? end - limit : 0;
	ev_history_open(&out, r);
	for (uint32_t i = start; i < end; i++) {
		size_t len;
		const char *json = frame_json(room_recent_frame(r, i), &len);
		ev_history_item(&out, i == start, json, len);
	}
	ev_history_close(&out, start > 0 || (!r->recent_complete && config.store));
	send_out(m);
}

static void query_store(enum query_kind kind, struct chat_member *m, struct chat_membership *ms,
			uint64_t since, uint64_t before, unsigned limit)
{
	struct chat_room *r = ms->room;
	struct pending_query *q = calloc(1, sizeof(*q));
	if (!q)
		abort();
	*q = (struct pending_query){ .kind = kind, .member = m, .room = r, .epoch = ms->epoch,
				     .catching_up = ms->held, .since = since,
				     .upto = ms->held ? 0 : ms->live_from, .limit = limit };
	fifo_push(&waiting_queries, q);
	r->waiting++;
	if (kind == QUERY_RESUME)
		store_query_since(config.store, r->name, r->name_len, since, config.resume_max, q);
	else
		store_query_before(config.store, r->name, r->name_len, before, limit, q);
}

/* Replay from memory the messages with since < id <= upto. */
static void replay_from_memory(struct chat_member *m, struct chat_room *r, uint64_t since, uint64_t upto)
{
	uint32_t from = room_recent_after(r, since);
	uint32_t to = room_recent_after(r, upto);
	bool complete = true;
	if (to - from > config.resume_max || (from == 0 && !room_recent_covers(r, since))) {
		if (to - from > config.resume_max)
			from = to - config.resume_max;
		complete = false;
	}
	for (uint32_t i = from; i < to; i++)
		send_frame(m, room_recent_frame(r, i));
	ev_resumed(&out, r, since, upto, complete);
	send_out(m);
}

/* The `limit` newest messages with id < before (0: the newest of all),
 * from memory when it holds them, else from the store, which has them all. */
static void send_history(struct chat_member *m, struct chat_membership *ms, uint64_t before, unsigned limit)
{
	struct chat_room *r = ms->room;
	uint32_t end = room_recent_before(r, before);
	if (end >= limit || r->recent_complete || !config.store)
		send_history_from_memory(m, r, end, limit);
	else
		query_store(QUERY_HISTORY, m, ms, 0, before, limit);
}

/* Must replaying ids in (since, newest] come from the store? Not when
 * memory holds them, nor when there are more than one resume replays (the
 * newest are replayed from memory and the resume is marked incomplete). */
static bool replay_needs_store(const struct chat_room *r, uint64_t since, uint64_t newest)
{
	return config.store && since < newest && newest - since <= config.resume_max &&
	       !room_recent_covers(r, since);
}

/* Replay what m missed in room r since `since`: for a live membership, what
 * was sent before it went live; for one catching up, everything. While a
 * replay comes from the store, a catching-up member gets no live messages,
 * so nothing newer can overtake it. One store replay per room at a time. */
static void resume(struct chat_member *m, struct chat_membership *ms, uint64_t since)
{
	struct chat_room *r = ms->room;
	uint64_t newest = ms->held ? r->last_sent : ms->live_from;
	if (ms->replaying) {
		send_error(m, "resume_in_progress", "what you missed in that room is on its way");
	} else if (since >= newest) {
		ev_resumed(&out, r, since, newest, true);
		send_out(m);
	} else if (!replay_needs_store(r, since, newest)) {
		replay_from_memory(m, r, since, newest);
	} else {
		query_store(QUERY_RESUME, m, ms, since, 0, 0);
		ms->replaying = true;
	}
}

static void join_room(struct chat_member *m, struct chat_room *r, const uint64_t *since)
{
	struct chat_membership *ms = add_membership(m, r);
	m->current = (uint8_t)(m->nrooms - 1);
	room_add(r, m, ms, since && replay_needs_store(r, *since, r->last_sent));
	ev_presence(&out, r, config.presence_list_max);
	send_out(m);
	announce(r, m, "join");
	if (since)
		resume(m, ms, *since);
	else
		send_history(m, ms, 0, config.history_on_join);
}

static void leave_room(struct chat_member *m, uint8_t k, bool tell_leaver)
{
	struct chat_membership *ms = &m->rooms[k];
	struct chat_room *r = ms->room;
	room_remove(r, ms);
	drop_membership(m, k);
	announce(r, m, "leave");
	if (tell_leaver) {
		ev_member_change(&out, "leave", r, m);
		send_out(m);
	}
	room_settle(r);
}

/* ---- connect / disconnect -------------------------------------------------- */

void chat_connect(struct chat_member *m, const struct chat_identity *who, const char *room,
		  size_t room_len, const uint64_t *since)
{
	memset(m, 0, sizeof(*m));
	m->id = next_member_id++;
	m->rooms = &m->first_room;
	m->rooms_cap = 1;
	if (who && who->user_id) {
		/* a token's name still has to be a name people can read */
		char name[CHAT_NAME_MAX_BYTES + 1];
		m->user_id = strdup(who->user_id);
		if (who->name && chat_name_normalize(who->name, strlen(who->name), name))
			m->name = strdup(name);
		m->name_locked = true;
	}
	bucket_init(&m->bucket, &config.rate, chat_now_ms());
	struct chat_room *r = room_get(room, room_len);
	if (!r)
		r = room_get("lobby", 5); /* every room slot is taken: try the lobby */
	ev_welcome(&out, m, r);
	send_out(m);
	if (!r) {
		send_error(m, "too_many_rooms", "the server has no room for more rooms");
		return;
	}
	join_room(m, r, since);
}

void chat_disconnect(struct chat_member *m)
{
	while (m->nrooms)
		leave_room(m, (uint8_t)(m->nrooms - 1), false);
	for (struct pending_message *pm = waiting_messages.head; pm; pm = pm->next)
		if (pm->sender == m)
			pm->sender = NULL;
	for (struct pending_query *q = waiting_queries.head; q; q = q->next)
		if (q->member == m)
			q->member = NULL;
	if (m->rooms != &m->first_room)
		free(m->rooms);
	m->rooms = NULL;
	free(m->name);
	free(m->user_id);
	m->name = NULL;
	m->user_id = NULL;
}

/* ---- messages ---------------------------------------------------------------- */

static void deliver(struct chat_room *r, uint64_t id, struct buf *frame)
{
	r->last_sent = id;
	room_remember(r, id, frame);
	broadcast_message(r, frame);
	stats.messages++;
}

static void post_message(struct chat_member *m, struct chat_room *r, const char *text, size_t len)
{
	if (len == 0) {
		send_error(m, "empty", "message text is empty");
		return;
	}
	uint64_t id = ++r->last_id;
	uint64_t ts = chat_now_ms();
	ev_message(&out, r, id, m, text, len, ts);
	struct buf *frame = jbuf_to_text_frame(&out);
	if (!config.store) {
		deliver(r, id, frame);
		buf_unref(frame);
		return;
	}
	struct pending_message *pm = malloc(sizeof(*pm));
	if (!pm)
		abort();
	*pm = (struct pending_message){ .room = r, .id = id, .frame = frame, .sender = m };
	fifo_push(&waiting_messages, pm);
	r->waiting++;
	stats.pending++;
	/* the record's strings are copied by the store before this returns */
	char from[16], name[16];
	struct store_record rec = {
		.room = r->name, .room_len = r->name_len, .id = id, .ts = ts, .text = text, .text_len = len,
	};
	rec.from = m->user_id ? m->user_id : from;
	rec.from_len = m->user_id ? strlen(m->user_id) : (size_t)snprintf(from, sizeof(from), "%u", m->id);
	rec.name = m->name ? m->name : name;
	rec.name_len = m->name ? strlen(m->name) : (size_t)snprintf(name, sizeof(name), "User %u", m->id);
	store_append(config.store, &rec, pm);
}

static void on_appended(void *ctx, int err)
{
	struct pending_message *pm = fifo_pop(&waiting_messages);
	(void)ctx; /* the store reports in submission order: ctx == pm */
	pm->room->waiting--;
	stats.pending--;
	if (err) {
		/* Not stored, so not sent to anyone: the sender learns it was not
		 * accepted and may retry; the id stays unused. */
		stats.store_failures++;
		if (pm->sender)
			send_error(pm->sender, "not_saved", err == -ENOSPC ? "the server's disk is full; message not sent"
									 : "the message could not be stored; not sent");
	} else {
		deliver(pm->room, pm->id, pm->frame);
	}
	room_settle(pm->room);
	buf_unref(pm->frame);
	free(pm);
}

static void send_history_records(struct chat_member *m, struct chat_room *r,
				 const struct store_record *recs, size_t n, bool more)
{
	ev_history_open(&out, r);
	for (size_t i = 0; i < n; i++) {
		if (i)
			jbuf_raw(&out, ",", 1);
		ev_message_record(&out, &recs[i]);
	}
	ev_history_close(&out, more);
	send_out(m);
}

static void finish_resume(struct pending_query *q, const struct store_record *recs, size_t n, bool more,
			  int err)
{
	struct chat_member *m = q->member;
	struct chat_room *r = q->room;
	int k = membership_of(m, r);
	if (k < 0 || m->rooms[k].epoch != q->epoch)
		return; /* left the room meanwhile (and maybe joined it again) */
	struct chat_membership *ms = &m->rooms[k];
	uint64_t sent = q->since;
	ms->replaying = false;
	for (size_t i = 0; i < n && (q->catching_up || recs[i].id <= q->upto); i++) {
		jbuf_reset(&out);
		ev_message_record(&out, &recs[i]);
		send_out(m);
		sent = recs[i].id;
	}
	bool complete = !err && (!more || (!q->catching_up && sent >= q->upto));
	if (!q->catching_up) {
		ev_resumed(&out, r, q->since, q->upto, complete);
		send_out(m);
		return;
	}
	/* Caught up with the store; whatever was committed while it was asked
	 * is in memory: send that, then go live, before anything else runs. */
	uint32_t from = room_recent_after(r, sent);
	for (uint32_t i = from; i < r->recent_len; i++)
		send_frame(m, room_recent_frame(r, i));
	room_release(r, ms);
	ev_resumed(&out, r, q->since, r->last_sent, complete);
	send_out(m);
}

static void on_queried(void *ctx, const struct store_record *recs, size_t n, bool more, int err)
{
	struct pending_query *q = fifo_pop(&waiting_queries);
	(void)ctx;
	if (q->member) {
		if (q->kind == QUERY_RESUME) {
			finish_resume(q, recs, n, more, err);
		} else if (err) {
			send_error(q->member, "history_failed", "history could not be read");
		} else {
			send_history_records(q->member, q->room, recs, n, more);
		}
	}
	q->room->waiting--;
	room_settle(q->room);
	free(q);
}

void chat_store_ready(void)
{
	if (config.store)
		store_drain(config.store, &(struct store_callbacks){
			.appended = on_appended, .queried = on_queried });
}

static void load_one(void *arg, const struct store_record *rec)
{
	(void)arg;
	/* guest ids continue after a restart, so a new guest is not taken for
	 * the author of an old message */
	char digits[16];
	if (rec->from_len && rec->from_len < sizeof(digits)) {
		memcpy(digits, rec->from, rec->from_len);
		digits[rec->from_len] = '\0';
		char *end;
		unsigned long id = strtoul(digits, &end, 10);
		if (!*end && id >= next_member_id && id < UINT32_MAX)
			next_member_id = (uint32_t)id + 1;
	}
	struct chat_room *r = room_load(rec->room, rec->room_len);
	jbuf_reset(&out);
	ev_message_record(&out, rec);
	struct buf *frame = jbuf_to_text_frame(&out);
	room_remember(r, rec->id, frame);
	buf_unref(frame);
	if (rec->id > r->last_id)
		r->last_id = r->last_sent = rec->id;
}

int chat_load_history(void)
{
	if (!config.store)
		return 0;
	int rc = store_load_recent(config.store, config.history_memory, load_one, NULL);
	/* a room whose ring is not full holds all it ever had, unless ids show
	 * older ones exist */
	for (struct chat_room *r = room_first(); r; r = room_next(r))
		r->recent_complete = r->recent_len < r->recent_cap &&
				     (r->recent_len == 0 || room_recent_id(r, 0) == 1);
	return rc;
}

/* ---- commands ------------------------------------------------------------- */

/* Whole-string compare: with JSON_ALLOW_NUL a "message\u0000x" must not
 * pass for "message". */
static bool is_str(const json_t *v, const char *s)
{
	size_t n = strlen(s);
	return json_is_string(v) && json_string_length(v) == n && memcmp(json_string_value(v), s, n) == 0;
}

/* The room a command names ("room" field), or the current one. Sends the
 * error and returns NULL when it is not a room m is in. */
static struct chat_membership *command_room(struct chat_member *m, json_t *root)
{
	json_t *room = json_object_get(root, "room");
	if (!room) {
		if (!m->nrooms) {
			send_error(m, "no_room", "join a room first");
			return NULL;
		}
		return &m->rooms[m->current];
	}
	if (!json_is_string(room)) {
		send_error(m, "bad_room", "\"room\" must be a string");
		return NULL;
	}
	struct chat_room *r = room_find(json_string_value(room), json_string_length(room));
	int k = r ? membership_of(m, r) : -1;
	if (k < 0) {
		send_error(m, "not_in_room", "you are not in that room");
		return NULL;
	}
	return &m->rooms[k];
}

/* An optional non-negative integer field; false (error sent) when present
 * but not one. */
static bool get_count(struct chat_member *m, json_t *root, const char *key, uint64_t *out_value,
		      bool *present)
{
	json_t *v = json_object_get(root, key);
	*present = v != NULL;
	if (!v)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		send_error(m, "bad_message", "a count or id must be a non-negative integer");
		return false;
	}
	*out_value = (uint64_t)json_integer_value(v);
	return true;
}

static void cmd_message(struct chat_member *m, json_t *root)
{
	json_t *t = json_object_get(root, "text");
	if (!json_is_string(t)) {
		send_error(m, "bad_message", "\"text\" must be a string");
		return;
	}
	struct chat_membership *ms = command_room(m, root);
	if (ms)
		post_message(m, ms->room, json_string_value(t), json_string_length(t));
}

/* An event about m to everyone who shares a room with m, once each. */
static void tell_room_mates(struct chat_member *m, struct buf *frame)
{
	uint32_t mark = next_mark++;
	m->mark = mark;
	config.send(m, frame);
	for (uint8_t k = 0; k < m->nrooms; k++) {
		struct chat_room *r = m->rooms[k].room;
		for (uint32_t i = 0; i < r->count; i++) {
			struct chat_member *other = room_member(r, i);
			if (other->mark != mark) {
				other->mark = mark;
				config.send(other, frame);
			}
		}
	}
}

static void cmd_nick(struct chat_member *m, json_t *root)
{
	json_t *n = json_object_get(root, "name");
	char name[CHAT_NAME_MAX_BYTES + 1];
	if (m->name_locked) {
		send_error(m, "name_locked", "your name comes from your sign-in");
		return;
	}
	if (!json_is_string(n) || memchr(json_string_value(n), 0, json_string_length(n)) ||
	    !chat_name_normalize(json_string_value(n), json_string_length(n), name)) {
		send_error(m, "bad_name", "a name is 1 to 32 visible characters");
		return;
	}
	char old[CHAT_NAME_MAX_BYTES + 1];
	if (m->name)
		snprintf(old, sizeof(old), "%s", m->name);
	else
		snprintf(old, sizeof(old), "User %u", m->id);
	bool same = strcmp(old, name) == 0;
	free(m->name);
	m->name = strdup(name);
	if (!m->name)
		abort();
	ev_nick(&out, m, old);
	struct buf *frame = jbuf_to_text_frame(&out);
	if (same)
		send_frame(m, frame); /* nothing changed for anyone else */
	else
		tell_room_mates(m, frame);
	buf_unref(frame);
}

static void cmd_join(struct chat_member *m, json_t *root)
{
	json_t *room = json_object_get(root, "room");
	uint64_t since = 0;
	bool has_since;
	if (!json_is_string(room) || !chat_room_name_valid(json_string_value(room), json_string_length(room))) {
		send_error(m, "bad_room", "a room name is 1 to 64 of A-Z a-z 0-9 _ . -");
		return;
	}
	if (!get_count(m, root, "since", &since, &has_since))
		return;
	struct chat_room *existing = room_find(json_string_value(room), json_string_length(room));
	if (existing && membership_of(m, existing) >= 0) {
		send_error(m, "already_joined", "you are already in that room");
		return;
	}
	if (m->nrooms >= CHAT_ROOMS_PER_MEMBER) {
		send_error(m, "too_many_rooms", "you are in too many rooms; leave one first");
		return;
	}
	struct chat_room *r = room_get(json_string_value(room), json_string_length(room));
	if (!r) {
		send_error(m, "too_many_rooms", "the server has no room for more rooms");
		return;
	}
	join_room(m, r, has_since ? &since : NULL);
}

static void cmd_leave(struct chat_member *m, json_t *root)
{
	if (!json_object_get(root, "room")) {
		send_error(m, "bad_room", "say which room to leave");
		return;
	}
	struct chat_membership *ms = command_room(m, root);
	if (ms)
		leave_room(m, (uint8_t)(ms - m->rooms), true);
}

static void cmd_history(struct chat_member *m, json_t *root)
{
	uint64_t before = 0, limit = 50;
	bool has_before, has_limit;
	struct chat_membership *ms = command_room(m, root);
	if (!ms || !get_count(m, root, "before", &before, &has_before) ||
	    !get_count(m, root, "limit", &limit, &has_limit))
		return;
	if (limit == 0 || limit > HISTORY_LIMIT_MAX)
		limit = limit ? HISTORY_LIMIT_MAX : 1;
	send_history(m, ms, before, (unsigned)limit);
}

static void cmd_resume(struct chat_member *m, json_t *root)
{
	uint64_t since = 0;
	bool has_since;
	json_t *room = json_object_get(root, "room");
	if (!get_count(m, root, "since", &since, &has_since))
		return;
	if (!has_since) {
		send_error(m, "bad_message", "resume needs \"since\"");
		return;
	}
	/* Resuming a room not joined yet joins it, replay first. */
	if (json_is_string(room)) {
		struct chat_room *r = room_find(json_string_value(room), json_string_length(room));
		if (!r || membership_of(m, r) < 0) {
			cmd_join(m, root);
			return;
		}
	}
	struct chat_membership *ms = command_room(m, root);
	if (ms)
		resume(m, ms, since);
}

static void cmd_rooms(struct chat_member *m)
{
	ev_rooms(&out, m, ROOMS_LISTED_MAX);
	send_out(m);
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
	if (!json_is_string(type))
		send_error(m, "bad_message", "\"type\" must be a string");
	else if (is_str(type, "message"))
		cmd_message(m, root);
	else if (is_str(type, "nick"))
		cmd_nick(m, root);
	else if (is_str(type, "join"))
		cmd_join(m, root);
	else if (is_str(type, "leave"))
		cmd_leave(m, root);
	else if (is_str(type, "history"))
		cmd_history(m, root);
	else if (is_str(type, "resume"))
		cmd_resume(m, root);
	else if (is_str(type, "rooms"))
		cmd_rooms(m);
	else
		send_error(m, "unknown_type", "unknown message type");
	json_decref(root);
}

bool chat_allow(struct chat_member *m)
{
	if (bucket_take(&m->bucket, &config.rate, chat_now_ms()))
		return true;
	stats.rate_limited++;
	/* A client that keeps going after a full burst of refusals is not a
	 * person typing fast. */
	if (config.close && m->bucket.strikes > config.rate.burst)
		config.close(m, 1008, "rate limit exceeded");
	else
		send_error(m, "rate_limited", "too many messages; slow down");
	return false;
}

void chat_receive(struct chat_member *m, const char *text, size_t len)
{
	if (!chat_allow(m))
		return;
	size_t i = 0;
	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
		i++;
	/* Only a JSON object is a command; anything else is the message text
	 * itself, so plain WebSocket clients can chat. */
	if (i < len && text[i] == '{') {
		handle_command(m, text, len);
	} else if (!m->nrooms) {
		send_error(m, "no_room", "join a room first");
	} else {
		post_message(m, m->rooms[m->current].room, text, len);
	}
}
