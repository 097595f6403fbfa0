/* chat.c: the chat protocol: commands in, events out.
 *
 * A message is parsed once and its event built once, into one buf (its
 * "frame" below: the JSON, which the transport frames in place as it first
 * sends it); every live member of the room gets a reference to the same
 * buffer. With a store, the frame waits until the store has committed the
 * message, so the sender's own copy is the acknowledgement that it is
 * durable.
 *
 * What one client can make the server hold is bounded. A message's frame is
 * at most twice its text plus an envelope: control characters, which JSON
 * escapes six-fold, are refused (bad_text). A history event holds at most
 * config.catchup_bytes of messages; the client pages back for more. A replay
 * (since/resume) of any length is paced: a cursor fills the member's queue
 * to config.catchup_bytes and goes on each time it drains below the low-water
 * mark (chat_drained), from memory while the room's recent ring holds the
 * next id, else from the store in batches. */
#include "chat.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "chat_away.h"
#include "chat_event.h"
#include "chat_name.h"
#include "chat_op.h"
#include "chat_room.h"
#include "json_out.h"
#include "room_quota.h"
#include "sequencer.h"
#include "store.h"

#define HISTORY_LIMIT_MAX 200
#define ROOMS_LISTED_MAX 200
/* A replay asks the store for this many messages at a time and sends what
 * fits under config.catchup_bytes; the next batch starts after the last
 * one sent. */
#define CATCHUP_STORE_BATCH 64

/* A replay on its way to one member in one room: every message with
 * since < id <= the target, sent in order, then `resumed`. */
struct catchup {
	struct chat_member *member;
	struct chat_room *room;
	uint32_t epoch;       /* the membership it belongs to */
	uint32_t next_free;   /* in the free list */
	uint64_t since;       /* as asked, for the resumed event */
	uint64_t cursor;      /* the last id sent */
	uint64_t upto;        /* a live membership's: ids <= upto; a held one goes to live */
	bool to_live;         /* held: the member goes live when the cursor reaches the room */
	bool querying;        /* a store batch is on its way */
	bool complete;        /* nothing was skipped */
};

/* A message waiting for its commit. */
struct pending_message {
	struct pending_message *next;
	struct chat_room *room;
	uint64_t id;
	struct buf *frame;          /* NULL with a sequencer: its op brings the JSON */
	struct chat_member *sender; /* NULL once the sender has gone, or for the API */
	struct chat *chat;          /* the store's callback gets only this */
	chat_api_done_fn done;      /* the API's publish: told once stored, or not */
	void *done_ctx;
	uint8_t cid_len;            /* the sender's id for it, echoed in its acknowledgement */
	char cid[CHAT_CID_MAX];
};

/* An API call waiting for its op to come back (chat_kick, chat_presence). */
struct pending_api {
	chat_api_done_fn done;
	void *ctx;
};

enum query_kind { QUERY_HISTORY, QUERY_RESUME };

/* A store query on behalf of a member. */
struct pending_query {
	struct pending_query *next;
	enum query_kind kind;
	struct chat_member *member; /* NULL once the member has gone */
	struct chat_room *room;
	uint32_t epoch;       /* the membership it was asked for */
	unsigned limit;       /* HISTORY */
	struct chat *chat;    /* the store's callback gets only this */
};

/* A join waiting for its place in the room's order (with a sequencer):
 * the member enters the room, and gets presence and history, when the
 * sequencer hands the join back (apply_join). */
struct pending_join {
	struct pending_join *next;
	struct chat_member *member; /* NULL once the member has gone */
	struct chat_room *room;
	uint32_t epoch;       /* the membership it was asked for */
	bool has_since;
	uint64_t since;
};

/* A leave command waiting for its place in the order, to answer its
 * member then (with a sequencer). */
struct pending_tell {
	struct pending_tell *next;
	struct chat_member *member; /* NULL once the member has gone */
};

struct fifo {
	void *head, *tail;
};

/* One chat: everything the protocol keeps between calls. */
struct chat {
	struct chat_config config;
	struct chat_stats stats;
	struct chat_rooms rooms;
	uint32_t next_member_id;
	uint32_t next_epoch;
	uint32_t next_mark;
	struct jbuf out;      /* where every event is written, then copied into its buf */
	struct fifo waiting_messages, waiting_queries, waiting_joins, waiting_tells;
	/* Replays by index (0 is no replay), so a membership names one in 4 bytes. */
	struct catchup *catchups;
	uint32_t catchups_cap, catchups_free;
	struct chat_away_list away; /* resumable guests' places, kept through the grace */
	/* The cid of the command being handled (cid_len 0: none): an error
	 * answering it carries it, so a client knows which send failed. */
	const char *cid;
	size_t cid_len;
};

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

/* item out of f, wherever it is: a cluster answers rooms in the order
 * their streams allow, so ours need not come back in the order sent
 * (they mostly do: item is the head). */
static void *fifo_take(struct fifo *f, void *item)
{
	void *prev = NULL;
	for (void *at = f->head; at; prev = at, at = *(void **)at) {
		if (at != item)
			continue;
		void *next = *(void **)at;
		if (prev)
			*(void **)prev = next;
		else
			f->head = next;
		if (f->tail == at)
			f->tail = prev;
		return item;
	}
	abort(); /* an op came back that this chat never sent */
}

/* History beyond what memory holds can be asked for. */
static bool history_backed(const struct chat *chat)
{
	return chat->config.store || chat->config.history_elsewhere;
}

struct chat *chat_new(const struct chat_config *cfg)
{
	struct chat *chat = calloc(1, sizeof(*chat));
	if (!chat)
		abort();
	struct chat_config *config = &chat->config;
	*config = *cfg;
	if (!config->presence_list_max)
		config->presence_list_max = 100;
	if (!config->presence_events_max)
		config->presence_events_max = 100;
	if (!config->history_memory)
		config->history_memory = 1000;
	if (!config->history_on_join)
		config->history_on_join = 50;
	if (!config->max_rooms)
		config->max_rooms = 10000;
	if (!config->send_own)
		config->send_own = config->send;
	if (!config->catchup_bytes)
		config->catchup_bytes = 256 * 1024;
	chat->next_member_id = 1;
	chat->next_epoch = 1;
	chat->next_mark = 1;
	room_table_init(&chat->rooms, config->history_memory, config->max_rooms,
			!config->store && !config->history_elsewhere,
			config->history_bytes);
	chat->rooms.sequenced = config->sequencer != NULL;
	jbuf_init(&chat->out);
	return chat;
}

void chat_free(struct chat *chat)
{
	if (chat)
		away_list_free(&chat->away);
	if (!chat)
		return;
	struct pending_message *pm;
	while ((pm = fifo_pop(&chat->waiting_messages))) {
		buf_unref(pm->frame);
		free(pm);
	}
	struct pending_query *pq;
	while ((pq = fifo_pop(&chat->waiting_queries)))
		free(pq);
	struct pending_join *pj;
	while ((pj = fifo_pop(&chat->waiting_joins)))
		free(pj);
	struct pending_tell *pt;
	while ((pt = fifo_pop(&chat->waiting_tells)))
		free(pt);
	room_table_free(&chat->rooms);
	jbuf_free(&chat->out);
	free(chat->catchups);
	free(chat);
}

const struct chat_stats *chat_stats(struct chat *chat)
{
	const struct room_history_stats *h = room_history_stats(&chat->rooms);
	chat->stats.rooms = room_count(&chat->rooms);
	chat->stats.history_bytes = h->bytes;
	chat->stats.history_bytes_limit = h->limit;
	chat->stats.history_evicted = h->evicted;
	return &chat->stats;
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

static void send_frame(struct chat *chat, struct chat_member *m, struct buf *frame)
{
	chat->config.send(m, frame);
}

/* JSON as text: this chat's chat->out, or what another thread wrote (the
 * sequencer), framed here for this edge. */
static void send_json(struct chat *chat, struct chat_member *m, const char *json, size_t len)
{
	struct buf *frame = buf_new_payload(json, len);
	chat->config.send(m, frame);
	buf_unref(frame);
}

static void send_out(struct chat *chat, struct chat_member *m)
{
	send_json(chat, m, jbuf_json(&chat->out), chat->out.len);
}

static size_t backlog(struct chat *chat, struct chat_member *m)
{
	return chat->config.backlog ? chat->config.backlog(m) : 0;
}

/* An event to every member of the room. */
static void broadcast_frame(struct chat *chat, struct chat_room *r, struct buf *frame)
{
	for (uint32_t i = 0; i < r->count; i++)
		chat->config.send(room_member(r, i), frame);
}

/* A chat message to every member but those still catching up, who get it
 * in their replay; the sender's copy is its acknowledgement. The hot loop
 * of the server: two pointer tests per recipient on top of queueing a
 * reference. */
static void broadcast_message(struct chat *chat, struct chat_room *r, struct buf *frame,
			      const struct chat_member *sender, struct buf *own)
{
	for (uint32_t i = 0; i < r->count; i++) {
		if (room_member_held(r, i))
			continue;
		struct chat_member *m = room_member(r, i);
		if (m == sender)
			chat->config.send_own(m, own);
		else
			chat->config.send(m, frame);
	}
}

static void broadcast_json(struct chat *chat, struct chat_room *r, const char *json, size_t len)
{
	struct buf *frame = buf_new_payload(json, len);
	broadcast_frame(chat, r, frame);
	buf_unref(frame);
}

static void broadcast_out(struct chat *chat, struct chat_room *r)
{
	broadcast_json(chat, r, jbuf_json(&chat->out), chat->out.len);
}

static void send_error(struct chat *chat, struct chat_member *m, const char *code,
		       const char *message)
{
	chat->stats.errors++;
	ev_error(&chat->out, code, message);
	if (chat->cid_len)
		ev_add_cid(&chat->out, chat->cid, chat->cid_len);
	send_out(chat, m);
}

/* join/leave to every member; skipped for big rooms, where N arrivals
 * would cost N² deliveries (docs/protocol.md). */
/* A guest's id may be held by two connections (a second tab, a reload
 * racing its old connection): only the first in and the last out are
 * news. O(members), as the announcement itself is. */
static bool held_by_another(struct chat_room *r, const struct chat_member *m)
{
	for (uint32_t i = 0; i < r->count; i++) {
		const struct chat_member *other = room_member(r, i);
		if (other != m && other->id == m->id)
			return true;
	}
	return false;
}

static void announce(struct chat *chat, struct chat_room *r, struct chat_member *m,
		     const char *type)
{
	if (chat->config.sequencer) {
		/* the sequencer counts it and writes the event; every edge's
		 * members are told in the room's order (apply_event) */
		struct chat_op *op = chat_op_new(CHAT_OP_EVENT, chat->config.edge, r->name, r->name_len);
		op->change = type[0] == 'j' ? ROSTER_JOIN : ROSTER_LEAVE;
		chat_op_set_member(op, m);
		sequencer_submit(chat->config.sequencer, op);
		return;
	}
	if (room_members(r) > chat->config.presence_events_max || held_by_another(r, m))
		return;
	ev_member_change(&chat->out, type, r, m);
	broadcast_out(chat, r);
}

/* ---- membership ----------------------------------------------------------- */

static int membership_of(const struct chat_member *m, const struct chat_room *r)
{
	for (uint8_t k = 0; k < m->nrooms; k++)
		if (m->rooms[k].room == r)
			return k;
	return -1;
}

static struct chat_membership *add_membership(struct chat *chat, struct chat_member *m,
					      struct chat_room *r)
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
	ms->epoch = chat->next_epoch++;
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

/* The first of the messages [start, end) that one history event holds: as
 * many of the newest as fit in config.catchup_bytes, at least one. */
static uint32_t page_start_in_memory(struct chat *chat, const struct chat_room *r, uint32_t start,
				     uint32_t end)
{
	size_t bytes = 0;
	uint32_t i = end;
	while (i > start) {
		size_t len;
		buf_payload(room_recent_frame(r, i - 1), &len);
		if (i < end && bytes + len > chat->config.catchup_bytes)
			break;
		bytes += len + 1;
		i--;
	}
	return i;
}

static void send_history_from_memory(struct chat *chat, struct chat_member *m, struct chat_room *r,
				     uint32_t end, unsigned limit)
{
	uint32_t start = page_start_in_memory(chat, r, end > limit ? end - limit : 0, end);
	ev_history_open(&chat->out, r);
	for (uint32_t i = start; i < end; i++) {
		size_t len;
		const char *json = buf_payload(room_recent_frame(r, i), &len);
		ev_history_item(&chat->out, i == start, json, len);
	}
	ev_history_close(&chat->out, start > 0 || (!r->recent_complete && history_backed(chat)));
	send_out(chat, m);
}

static void query_store(struct chat *chat, enum query_kind kind, struct chat_member *m,
			struct chat_room *r, uint32_t epoch, uint64_t bound, unsigned limit)
{
	struct pending_query *q = calloc(1, sizeof(*q));
	if (!q)
		abort();
	*q = (struct pending_query){ .kind = kind, .member = m, .room = r, .epoch = epoch, .limit = limit,
				     .chat = chat };
	fifo_push(&chat->waiting_queries, q);
	r->waiting++;
	if (chat->config.sequencer) {
		struct chat_op *op = chat_op_new(CHAT_OP_QUERY, chat->config.edge, r->name, r->name_len);
		op->since = kind == QUERY_RESUME;
		op->bound = bound;
		op->limit = limit;
		op->cookie = q;
		sequencer_submit(chat->config.sequencer, op);
	} else if (kind == QUERY_RESUME)
		store_query_since(chat->config.store, r->name, r->name_len, bound, limit, q);
	else
		store_query_before(chat->config.store, r->name, r->name_len, bound, limit, q);
}

/* The `limit` newest messages with id < before (0: the newest of all),
 * from memory when it holds them, else from the store, which has them all. */
static void send_history(struct chat *chat, struct chat_member *m, struct chat_membership *ms,
			 uint64_t before, unsigned limit)
{
	struct chat_room *r = ms->room;
	uint32_t end = room_recent_before(&chat->rooms, r, before);
	if (end >= limit || r->recent_complete || !history_backed(chat))
		send_history_from_memory(chat, m, r, end, limit);
	else
		query_store(chat, QUERY_HISTORY, m, r, ms->epoch, before, limit);
}

/* ---- replays ---------------------------------------------------------------- */

static uint32_t catchup_new(struct chat *chat)
{
	if (!chat->catchups_free) {
		uint32_t cap = chat->catchups_cap ? chat->catchups_cap * 2 : 16;
		struct catchup *grown = realloc(chat->catchups, cap * sizeof(*grown));
		if (!grown)
			abort();
		chat->catchups = grown;
		/* index 0 stays unused: it means "no replay" */
		for (uint32_t k = cap - 1; k >= (chat->catchups_cap ? chat->catchups_cap : 1); k--) {
			chat->catchups[k].next_free = chat->catchups_free;
			chat->catchups_free = k;
		}
		chat->catchups_cap = cap;
	}
	uint32_t k = chat->catchups_free;
	chat->catchups_free = chat->catchups[k].next_free;
	chat->stats.catchups++;
	return k;
}

static void catchup_free(struct chat *chat, struct chat_membership *ms)
{
	uint32_t k = ms->catchup;
	chat->catchups[k].member = NULL;
	chat->catchups[k].next_free = chat->catchups_free;
	chat->catchups_free = k;
	ms->catchup = 0;
	chat->stats.catchups--;
}

/* The replay has sent all it will: a held member goes live (nothing can
 * have overtaken it: it got no live messages, and the cursor has reached
 * the room's last id), then `resumed` closes the replay. */
static void catchup_finish(struct chat *chat, struct chat_membership *ms)
{
	struct catchup *cu = &chat->catchups[ms->catchup];
	struct chat_member *m = cu->member;
	struct chat_room *r = cu->room;
	uint64_t last = cu->to_live ? r->last_sent : cu->upto;
	if (cu->to_live)
		room_release(r, ms);
	ev_resumed(&chat->out, r, cu->since, last, cu->complete);
	catchup_free(chat, ms);
	send_out(chat, m);
}

/* Send what follows the cursor until the member's queue reaches the
 * high-water mark, the replay ends, or it has to wait for the store. */
static void catchup_pump(struct chat *chat, struct chat_membership *ms)
{
	struct catchup *cu = &chat->catchups[ms->catchup];
	struct chat_member *m = cu->member;
	struct chat_room *r = cu->room;
	while (!cu->querying) {
		uint64_t target = cu->to_live ? r->last_sent : cu->upto;
		if (cu->cursor >= target) {
			catchup_finish(chat, ms);
			return;
		}
		if (backlog(chat, m) >= chat->config.catchup_bytes)
			return; /* chat_drained calls again */
		uint32_t i = room_recent_after(&chat->rooms, r, cu->cursor);
		if (room_recent_covers(r, cu->cursor) && i < r->recent_len) {
			uint64_t id = room_recent_id(r, i);
			if (id > target) {
				cu->cursor = target;
				continue;
			}
			send_frame(chat, m, room_recent_frame(r, i));
			cu->cursor = id;
			chat->stats.replayed++;
		} else if (history_backed(chat)) {
			cu->querying = true;
			query_store(chat, QUERY_RESUME, m, r, cu->epoch, cu->cursor, CATCHUP_STORE_BATCH);
		} else {
			/* Memory is all the history there is, and it let these go:
			 * go on from what it still holds. */
			cu->complete = false;
			cu->cursor = i < r->recent_len ? room_recent_id(r, i) - 1 : target;
		}
	}
}

/* Replay to m in room ms what came after `since`: for a live membership,
 * what was sent before it went live; for one held (catching up), all of it,
 * and then it goes live. */
static void resume(struct chat *chat, struct chat_member *m, struct chat_membership *ms,
		   uint64_t since)
{
	struct chat_room *r = ms->room;
	uint64_t newest = ms->held ? r->last_sent : ms->live_from;
	if (ms->joining) {
		/* not in the room yet: the replay goes with the entry */
		struct pending_join *pj = chat->waiting_joins.head;
		while (pj->member != m || pj->epoch != ms->epoch)
			pj = pj->next;
		if (!pj->has_since) {
			pj->has_since = true;
			pj->since = since;
			return;
		}
	}
	if (ms->catchup || ms->joining) {
		send_error(chat, m, "resume_in_progress", "what you missed in that room is on its way");
		return;
	}
	uint32_t k = catchup_new(chat);
	chat->catchups[k] = (struct catchup){ .member = m, .room = r, .epoch = ms->epoch,
					      .since = since, .cursor = since, .upto = newest,
					      .to_live = ms->held, .complete = true };
	ms->catchup = k;
	catchup_pump(chat, ms);
}

void chat_drained(struct chat *chat, struct chat_member *m)
{
	for (uint8_t k = 0; k < m->nrooms; k++)
		if (m->rooms[k].catchup && !chat->catchups[m->rooms[k].catchup].querying)
			catchup_pump(chat, &m->rooms[k]);
}

/* With a sequencer: m is in the room for its own commands at once (they
 * are ordered after its join), and enters it for everything else when the
 * join comes back in order (apply_join). */
static void submit_join(struct chat *chat, struct chat_member *m, struct chat_membership *ms,
			const uint64_t *since)
{
	struct pending_join *pj = calloc(1, sizeof(*pj));
	if (!pj)
		abort();
	*pj = (struct pending_join){ .member = m, .room = ms->room, .epoch = ms->epoch,
				     .has_since = since != NULL, .since = since ? *since : 0 };
	fifo_push(&chat->waiting_joins, pj);
	ms->joining = true;
	ms->room->waiting++;
	struct chat_op *op = chat_op_new(CHAT_OP_EVENT, chat->config.edge, ms->room->name,
					 ms->room->name_len);
	op->change = ROSTER_JOIN;
	op->cookie = pj;
	chat_op_set_member(op, m);
	sequencer_submit(chat->config.sequencer, op);
}

/* In the room: presence, then everyone is told (m too), then what m
 * missed or the room's recent history. */
static void enter_room(struct chat *chat, struct chat_member *m, struct chat_membership *ms,
		       const uint64_t *since, const struct chat_op *join)
{
	struct chat_room *r = ms->room;
	/* Held until its replay reaches the room's last id: a live message
	 * must not overtake what it missed. */
	room_add(&chat->rooms, r, m, ms, since && *since < r->last_sent);
	if (join) {
		/* written by the sequencer at the join's place in the order */
		ev_presence_users(&chat->out, r->name, r->name_len, join->count, join->users->data,
				  join->users->len);
		send_out(chat, m);
		if (join->announce)
			broadcast_json(chat, r, join->json, join->json_len);
	} else {
		ev_presence(&chat->out, r, chat->config.presence_list_max);
		send_out(chat, m);
		/* taking back a place kept for it is not news */
		if (!away_claim(&chat->away, m->id, r->name, r->name_len))
			announce(chat, r, m, "join");
	}
	if (since)
		resume(chat, m, ms, *since);
	else
		send_history(chat, m, ms, 0, chat->config.history_on_join);
}

/* The room to join, counted against --max-rooms (for all edges together
 * with a quota); NULL when it is not in use and the limit is reached. */
static struct chat_room *room_to_join(struct chat *chat, const char *name, size_t len)
{
	if (!chat->config.room_quota)
		return room_get(&chat->rooms, name, len);
	if (!room_quota_take(chat->config.room_quota, name, len))
		return NULL;
	return room_load(&chat->rooms, name, len);
}

static void join_room(struct chat *chat, struct chat_member *m, struct chat_room *r,
		      const uint64_t *since)
{
	struct chat_membership *ms = add_membership(chat, m, r);
	m->current = (uint8_t)(m->nrooms - 1);
	if (chat->config.sequencer)
		submit_join(chat, m, ms, since);
	else
		enter_room(chat, m, ms, since, NULL);
}

/* With a sequencer: the leave takes its place in the room's order; a
 * leaver who asked hears it then, with the count after it (apply_event). */
static void submit_leave(struct chat *chat, struct chat_room *r, struct chat_member *m, bool tell,
			 bool away)
{
	struct chat_op *op = chat_op_new(CHAT_OP_EVENT, chat->config.edge, r->name, r->name_len);
	op->change = away ? ROSTER_AWAY : ROSTER_LEAVE;
	chat_op_set_member(op, m);
	if (tell) {
		struct pending_tell *pt = calloc(1, sizeof(*pt));
		if (!pt)
			abort();
		pt->member = m;
		fifo_push(&chat->waiting_tells, pt);
		op->cookie = pt;
	}
	sequencer_submit(chat->config.sequencer, op);
}

/* away: the member's connection went and its place is kept (chat_away.h):
 * nobody is told now. */
static void leave_room(struct chat *chat, struct chat_member *m, uint8_t k, bool tell_leaver, bool away)
{
	struct chat_membership *ms = &m->rooms[k];
	struct chat_room *r = ms->room;
	if (ms->catchup)
		catchup_free(chat, ms); /* a store batch on its way finds no replay */
	if (!ms->joining)
		room_remove(r, ms); /* else it never entered: apply_join finds it gone */
	if (chat->config.room_quota)
		room_quota_put(chat->config.room_quota, r->name, r->name_len);
	drop_membership(m, k);
	if (chat->config.sequencer) {
		submit_leave(chat, r, m, tell_leaver, away);
	} else if (!away) {
		announce(chat, r, m, "leave");
		if (tell_leaver) {
			ev_member_change(&chat->out, "leave", r, m);
			send_out(chat, m);
		}
	}
	room_settle(&chat->rooms, r);
}

/* ---- connect / disconnect -------------------------------------------------- */

void chat_connect(struct chat *chat, struct chat_member *m, const struct chat_identity *who,
		  const char *room, size_t room_len, const uint64_t *since)
{
	memset(m, 0, sizeof(*m));
	if (who && who->guest_id) {
		/* the guest token was signed by this process (guest_token.h):
		 * the id was handed out here, not one a newcomer can get */
		m->id = who->guest_id;
	} else {
		m->id = chat->config.sequencer ? sequencer_member_id(chat->config.sequencer)
					       : chat->next_member_id++;
	}
	m->rooms = &m->first_room;
	m->rooms_cap = 1;
	if (who && who->guest_id && who->name) {
		char name[CHAT_NAME_MAX_BYTES + 1];
		if (chat_name_normalize(who->name, strlen(who->name), name) && !(m->name = strdup(name)))
			abort();
	}
	if (who && who->user_id) {
		/* a token's name still has to be a name people can read */
		char name[CHAT_NAME_MAX_BYTES + 1];
		m->user_id = strdup(who->user_id);
		if (who->name && chat_name_normalize(who->name, strlen(who->name), name))
			m->name = strdup(name);
		m->name_locked = true;
	}
	bucket_init(&m->bucket, &chat->config.rate, chat_now_ms());
	struct chat_room *r = room_to_join(chat, room, room_len);
	if (!r)
		r = room_to_join(chat, "lobby", 5); /* every room slot is taken: try the lobby */
	char *guest = NULL;
	if (!m->user_id && chat->config.guest_token) {
		guest = chat->config.guest_token(chat->config.guest_ctx, m->id, m->name);
		m->resumable = guest && chat->config.rejoin_grace_ms;
	}
	ev_welcome(&chat->out, m, r, guest, who && who->guest_id, chat->config.max_message);
	free(guest);
	send_out(chat, m);
	if (!r) {
		send_error(chat, m, "too_many_rooms", "the server has no room for more rooms");
		return;
	}
	join_room(chat, m, r, since);
}

void chat_disconnect(struct chat *chat, struct chat_member *m)
{
	struct chat_away *away = NULL;
	if (m->resumable && m->nrooms) {
		away = away_add(&chat->away, m->id, m->name, chat_now_ms() + chat->config.rejoin_grace_ms);
		for (uint8_t k = 0; k < m->nrooms; k++) {
			const struct chat_room *r = m->rooms[k].room;
			/* an older place of the same id (another tab gone before) ends with this one */
			away_claim(&chat->away, m->id, r->name, r->name_len);
			away_add_room(away, r->name, r->name_len);
		}
	}
	while (m->nrooms)
		leave_room(chat, m, (uint8_t)(m->nrooms - 1), false, away != NULL);
	for (struct pending_message *pm = chat->waiting_messages.head; pm; pm = pm->next)
		if (pm->sender == m)
			pm->sender = NULL;
	for (struct pending_query *q = chat->waiting_queries.head; q; q = q->next)
		if (q->member == m)
			q->member = NULL;
	for (struct pending_join *pj = chat->waiting_joins.head; pj; pj = pj->next)
		if (pj->member == m)
			pj->member = NULL;
	for (struct pending_tell *pt = chat->waiting_tells.head; pt; pt = pt->next)
		if (pt->member == m)
			pt->member = NULL;
	if (m->rooms != &m->first_room)
		free(m->rooms);
	m->rooms = NULL;
	free(m->name);
	free(m->user_id);
	m->name = NULL;
	m->user_id = NULL;
}

/* Places whose grace ran out: their rooms hear the leave now (with a
 * sequencer, unless a connection holds the id again: roster.h). */
void chat_tick(struct chat *chat)
{
	uint64_t now = chat_now_ms();
	struct chat_away *a;
	while ((a = away_take_expired(&chat->away, now))) {
		struct chat_member who = { .id = a->id, .name = a->name };
		for (uint8_t k = 0; k < a->nrooms; k++) {
			const char *name = a->rooms[k];
			if (chat->config.sequencer) {
				/* the sequencer's roster holds the place, whatever this edge keeps */
				struct chat_op *op = chat_op_new(CHAT_OP_EVENT, chat->config.edge, name, strlen(name));
				op->change = ROSTER_GONE;
				chat_op_set_member(op, &who);
				sequencer_submit(chat->config.sequencer, op);
				continue;
			}
			struct chat_room *r = room_find(&chat->rooms, name, strlen(name));
			if (r)
				announce(chat, r, &who, "leave");
		}
		away_free(a);
	}
}

/* ---- messages ---------------------------------------------------------------- */

/* Counted in stats.messages by the chat the message was sent to (with a
 * sequencer, every edge delivers it, and one counts it). */
static void deliver(struct chat *chat, struct chat_room *r, uint64_t id, struct buf *frame,
		    const struct pending_message *pm)
{
	r->last_sent = id;
	room_remember(&chat->rooms, r, id, frame);
	const struct chat_member *sender = pm ? pm->sender : NULL;
	if (!sender || !pm->cid_len) {
		broadcast_message(chat, r, frame, sender, frame);
		return;
	}
	/* The sender's copy says which of its sends this is: its own buf,
	 * one more encoding per message, only for the one who sent it. */
	size_t len;
	const char *json = buf_payload(frame, &len);
	jbuf_reset(&chat->out);
	jbuf_raw(&chat->out, json, len);
	ev_add_cid(&chat->out, pm->cid, pm->cid_len);
	struct buf *own = jbuf_to_payload(&chat->out);
	broadcast_message(chat, r, frame, sender, own);
	buf_unref(own);
}

/* Control characters other than TAB, LF and CR: JSON escapes each as six
 * bytes, so a text of them would cost six times its size to every member
 * of the room. Nobody types them. */
static bool text_has_control(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
			return true;
	}
	return false;
}

/* The sequencer numbers it, has it committed and sends it to every edge;
 * this edge acknowledges it when it comes back (apply_message). */
static void submit_message(struct chat *chat, const struct chat_member *m, struct chat_room *r,
			   const char *text, size_t len, uint64_t ts, const struct pending_message *tmpl)
{
	struct pending_message *pm = malloc(sizeof(*pm));
	if (!pm)
		abort();
	*pm = *tmpl;
	fifo_push(&chat->waiting_messages, pm);
	r->waiting++;
	chat->stats.pending++;
	struct chat_op *op = chat_op_new(CHAT_OP_MESSAGE, chat->config.edge, r->name, r->name_len);
	chat_op_set_member(op, m);
	chat_op_set_text(op, text, len);
	op->ts = ts;
	op->cookie = pm;
	sequencer_submit(chat->config.sequencer, op);
}

/* A message's way once it is valid, from member m or the API (tmpl: its
 * sender to acknowledge, or the API's callback). */
static void append_message(struct chat *chat, const struct chat_member *m, struct chat_room *r,
			   const char *text, size_t len, const struct pending_message *tmpl)
{
	uint64_t ts = chat_now_ms();
	if (chat->config.sequencer) {
		submit_message(chat, m, r, text, len, ts, tmpl);
		return;
	}
	uint64_t id = ++r->last_id;
	ev_message(&chat->out, r, id, m, text, len, ts);
	struct buf *frame = jbuf_to_payload(&chat->out);
	if (!chat->config.store) {
		deliver(chat, r, id, frame, tmpl);
		chat->stats.messages++;
		buf_unref(frame);
		if (tmpl->done)
			tmpl->done(tmpl->done_ctx, &(struct chat_api_result){ .id = id });
		return;
	}
	struct pending_message *pm = malloc(sizeof(*pm));
	if (!pm)
		abort();
	*pm = *tmpl;
	pm->id = id;
	pm->frame = frame;
	fifo_push(&chat->waiting_messages, pm);
	r->waiting++;
	chat->stats.pending++;
	/* the record's strings are copied by the store before this returns */
	char from[16], name[16];
	struct store_record rec = {
		.room = r->name, .room_len = r->name_len, .id = id, .ts = ts, .text = text, .text_len = len,
	};
	rec.from = m->user_id ? m->user_id : from;
	rec.from_len = m->user_id ? strlen(m->user_id) : (size_t)snprintf(from, sizeof(from), "%u", m->id);
	rec.name = m->name ? m->name : name;
	rec.name_len = m->name ? strlen(m->name) : (size_t)snprintf(name, sizeof(name), "User %u", m->id);
	store_append(chat->config.store, &rec, pm);
}

static void post_message(struct chat *chat, struct chat_member *m, struct chat_room *r,
			 const char *text, size_t len)
{
	if (len == 0) {
		send_error(chat, m, "empty", "message text is empty");
		return;
	}
	if (text_has_control(text, len)) {
		chat->stats.bad_text++;
		send_error(chat, m, "bad_text",
			   "message text may not hold control characters other than tab and newline");
		return;
	}
	struct pending_message tmpl = { .room = r, .sender = m, .chat = chat, .cid_len = (uint8_t)chat->cid_len };
	if (chat->cid_len) /* chat->cid is NULL without one */
		memcpy(tmpl.cid, chat->cid, chat->cid_len);
	append_message(chat, m, r, text, len, &tmpl);
}

/* Not stored, so not sent to anyone: the sender learns it was not
 * accepted and may retry; the id stays unused. */
static void message_failed(struct chat *chat, struct pending_message *pm, int err)
{
	chat->stats.store_failures++;
	chat->cid = pm->cid;
	chat->cid_len = pm->cid_len;
	if (pm->sender && err == CHAT_ERR_UNAVAILABLE)
		send_error(chat, pm->sender, "unavailable",
			   "the chat service cannot take messages now; not sent, try again");
	else if (pm->sender)
		send_error(chat, pm->sender, "not_saved",
			   err == -ENOSPC ? "the server's disk is full; message not sent"
					  : "the message could not be stored; not sent");
	chat->cid_len = 0;
}

static void on_appended(void *ctx, int err)
{
	struct chat *chat = ((struct pending_message *)ctx)->chat;
	/* the store reports in submission order: ctx == pm */
	struct pending_message *pm = fifo_pop(&chat->waiting_messages);
	pm->room->waiting--;
	chat->stats.pending--;
	if (err) {
		message_failed(chat, pm, err);
	} else {
		deliver(chat, pm->room, pm->id, pm->frame, pm);
		chat->stats.messages++;
	}
	if (pm->done)
		pm->done(pm->done_ctx, &(struct chat_api_result){ .err = err, .id = err ? 0 : pm->id });
	room_settle(&chat->rooms, pm->room);
	buf_unref(pm->frame);
	free(pm);
}

/* A history event from store records (oldest first): as many of the
 * newest as fit in config.catchup_bytes, at least one. */
static void send_history_records(struct chat *chat, struct chat_member *m, struct chat_room *r,
				 const struct store_record *recs, size_t n, bool more)
{
	size_t start = n, bytes = 0;
	while (start > 0) {
		jbuf_reset(&chat->out);
		ev_message_record(&chat->out, &recs[start - 1]);
		if (start < n && bytes + chat->out.len > chat->config.catchup_bytes)
			break;
		bytes += chat->out.len + 1;
		start--;
	}
	ev_history_open(&chat->out, r);
	for (size_t i = start; i < n; i++) {
		if (i > start)
			jbuf_raw(&chat->out, ",", 1);
		ev_message_record(&chat->out, &recs[i]);
	}
	ev_history_close(&chat->out, more || start > 0);
	send_out(chat, m);
}

/* The replay's membership, when the member is still in that room in the
 * same membership and the replay still waits for this batch. */
static struct chat_membership *replay_of(const struct pending_query *q)
{
	struct chat_member *m = q->member;
	int k = m ? membership_of(m, q->room) : -1;
	if (k < 0 || m->rooms[k].epoch != q->epoch || !m->rooms[k].catchup)
		return NULL;
	return &m->rooms[k];
}

/* A batch of what the replay's cursor asked for: send it, then go on. */
static void continue_replay(struct chat *chat, struct pending_query *q,
			    const struct store_record *recs, size_t n, int err)
{
	struct chat_membership *ms = replay_of(q);
	if (!ms)
		return; /* left the room meanwhile (and maybe joined it again) */
	struct catchup *cu = &chat->catchups[ms->catchup];
	uint64_t target = cu->to_live ? q->room->last_sent : cu->upto;
	cu->querying = false;
	size_t i = 0;
	for (; i < n && recs[i].id <= target; i++) {
		if (recs[i].id <= cu->cursor)
			continue;
		if (backlog(chat, q->member) >= chat->config.catchup_bytes)
			break; /* the rest is read again once the queue drains */
		/* A cluster's stream is bounded: what it let go is missing
		 * (a store keeps every id, but for a failed commit's). */
		if (chat->config.history_elsewhere && recs[i].id > cu->cursor + 1)
			cu->complete = false;
		jbuf_reset(&chat->out);
		ev_message_record(&chat->out, &recs[i]);
		send_out(chat, q->member);
		cu->cursor = recs[i].id;
		chat->stats.replayed++;
	}
	if (err || n == 0) {
		/* The store cannot say what came next (an error, or a database
		 * replaced under us): go on from what memory holds. */
		cu->complete = false;
		uint32_t next = room_recent_after(&chat->rooms, q->room, cu->cursor);
		cu->cursor = next < q->room->recent_len ? room_recent_id(q->room, next) - 1 : target;
	} else if (i < n && recs[i].id > target) {
		cu->cursor = target; /* the rest arrived live */
	}
	catchup_pump(chat, ms);
}

static void query_answered(struct chat *chat, struct pending_query *q,
			   const struct store_record *recs, size_t n, bool more, int err)
{
	fifo_take(&chat->waiting_queries, q);
	if (q->kind == QUERY_RESUME) {
		continue_replay(chat, q, recs, n, err);
	} else if (q->member) {
		if (err == CHAT_ERR_UNAVAILABLE)
			send_error(chat, q->member, "unavailable", "history cannot be read now; try again");
		else if (err)
			send_error(chat, q->member, "history_failed", "history could not be read");
		else
			send_history_records(chat, q->member, q->room, recs, n, more);
	}
	q->room->waiting--;
	room_settle(&chat->rooms, q->room);
	free(q);
}

static void on_queried(void *ctx, const struct store_record *recs, size_t n, bool more, int err)
{
	struct pending_query *q = ctx;
	query_answered(q->chat, q, recs, n, more, err);
}

void chat_store_ready(struct chat *chat)
{
	if (chat->config.store)
		store_drain(chat->config.store, &(struct store_callbacks){
			.appended = on_appended, .queried = on_queried });
}

/* A stored room comes back as its name and last id only: a restart with
 * many rooms costs no memory for history nobody has asked for. The first
 * join, page or replay reads it from the store (recent_complete false). */
void chat_load_room(struct chat *chat, const struct store_room *info)
{
	/* guest ids continue after a restart past the numeric senders of each
	 * room's newest history_on_join messages (what a join shows), so a new
	 * guest is not taken for their author. Not past every sender ever: that
	 * would read every row at start-up; a wider window costs time in
	 * proportion (1,000 rooms: 50 rows each 0.05 s, 1,000 rows each 0.7 s). */
	if (info->numeric_sender_max >= chat->next_member_id && info->numeric_sender_max < UINT32_MAX)
		chat->next_member_id = (uint32_t)info->numeric_sender_max + 1;
	struct chat_room *r = room_load(&chat->rooms, info->room, info->room_len);
	if (info->last_id > r->last_id)
		r->last_id = r->last_sent = info->last_id;
	r->recent_complete = false;
}

static void load_one(void *arg, const struct store_room *info)
{
	chat_load_room(arg, info);
}

int chat_load_history(struct chat *chat)
{
	if (!chat->config.store)
		return 0;
	return store_load_rooms(chat->config.store, chat->config.history_on_join, load_one, chat);
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
static struct chat_membership *command_room(struct chat *chat, struct chat_member *m, json_t *root)
{
	json_t *room = json_object_get(root, "room");
	if (!room) {
		if (!m->nrooms) {
			send_error(chat, m, "no_room", "join a room first");
			return NULL;
		}
		return &m->rooms[m->current];
	}
	if (!json_is_string(room)) {
		send_error(chat, m, "bad_room", "\"room\" must be a string");
		return NULL;
	}
	struct chat_room *r = room_find(&chat->rooms, json_string_value(room), json_string_length(room));
	int k = r ? membership_of(m, r) : -1;
	if (k < 0) {
		send_error(chat, m, "not_in_room", "you are not in that room");
		return NULL;
	}
	return &m->rooms[k];
}

/* An optional non-negative integer field; false (error sent) when present
 * but not one. */
static bool get_count(struct chat *chat, struct chat_member *m, json_t *root, const char *key,
		      uint64_t *out_value, bool *present)
{
	json_t *v = json_object_get(root, key);
	*present = v != NULL;
	if (!v)
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		send_error(chat, m, "bad_message", "a count or id must be a non-negative integer");
		return false;
	}
	*out_value = (uint64_t)json_integer_value(v);
	return true;
}

static void cmd_message(struct chat *chat, struct chat_member *m, json_t *root)
{
	json_t *t = json_object_get(root, "text");
	if (!json_is_string(t)) {
		send_error(chat, m, "bad_message", "\"text\" must be a string");
		return;
	}
	struct chat_membership *ms = command_room(chat, m, root);
	if (ms)
		post_message(chat, m, ms->room, json_string_value(t), json_string_length(t));
}

/* An event about m to everyone who shares a room with m, once each. */
static void tell_room_mates(struct chat *chat, struct chat_member *m, struct buf *frame)
{
	uint32_t mark = chat->next_mark++;
	m->mark = mark;
	chat->config.send(m, frame);
	for (uint8_t k = 0; k < m->nrooms; k++) {
		struct chat_room *r = m->rooms[k].room;
		for (uint32_t i = 0; i < r->count; i++) {
			struct chat_member *other = room_member(r, i);
			if (other->mark != mark) {
				other->mark = mark;
				chat->config.send(other, frame);
			}
		}
	}
}

/* Every edge renames m in its rosters and tells its members who share a
 * room with m; the op carries the event written into chat->out. */
static void submit_nick(struct chat *chat, struct chat_member *m)
{
	struct chat_op *op = chat_op_new(CHAT_OP_EVENT, chat->config.edge, "", 0);
	op->change = ROSTER_NICK;
	chat_op_set_member(op, m);
	chat_op_set_json(op, jbuf_json(&chat->out), chat->out.len);
	op->rooms = malloc((size_t)m->nrooms * (CHAT_ROOM_MAX + 1) + 1);
	if (!op->rooms)
		abort();
	size_t at = 0;
	for (uint8_t k = 0; k < m->nrooms; k++) {
		const struct chat_room *r = m->rooms[k].room;
		memcpy(op->rooms + at, r->name, r->name_len + 1);
		at += r->name_len + 1;
	}
	op->nrooms = m->nrooms;
	sequencer_submit(chat->config.sequencer, op);
}

static void cmd_nick(struct chat *chat, struct chat_member *m, json_t *root)
{
	json_t *n = json_object_get(root, "name");
	char name[CHAT_NAME_MAX_BYTES + 1];
	if (m->name_locked) {
		send_error(chat, m, "name_locked", "your name comes from your sign-in");
		return;
	}
	if (!json_is_string(n) || memchr(json_string_value(n), 0, json_string_length(n)) ||
	    !chat_name_normalize(json_string_value(n), json_string_length(n), name)) {
		send_error(chat, m, "bad_name", "a name is 1 to 32 visible characters");
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
	ev_nick(&chat->out, m, old);
	struct buf *frame = jbuf_to_payload(&chat->out);
	if (same) {
		send_frame(chat, m, frame); /* nothing changed for anyone else */
	} else if (chat->config.sequencer) {
		send_frame(chat, m, frame); /* the others in the rooms' order (apply_nick) */
		submit_nick(chat, m);
	} else {
		tell_room_mates(chat, m, frame);
	}
	buf_unref(frame);
	if (!same && chat->config.guest_token) {
		/* the token brings the name back too: the old one would not */
		char *guest = chat->config.guest_token(chat->config.guest_ctx, m->id, m->name);
		if (guest) {
			ev_guest_token(&chat->out, guest);
			send_out(chat, m);
			free(guest);
		}
	}
}

static void cmd_join(struct chat *chat, struct chat_member *m, json_t *root)
{
	json_t *room = json_object_get(root, "room");
	uint64_t since = 0;
	bool has_since;
	if (!json_is_string(room) || !chat_room_name_valid(json_string_value(room), json_string_length(room))) {
		send_error(chat, m, "bad_room", "a room name is 1 to 64 of A-Z a-z 0-9 _ . -");
		return;
	}
	if (!get_count(chat, m, root, "since", &since, &has_since))
		return;
	struct chat_room *existing = room_find(&chat->rooms, json_string_value(room),
					       json_string_length(room));
	if (existing && membership_of(m, existing) >= 0) {
		send_error(chat, m, "already_joined", "you are already in that room");
		return;
	}
	if (m->nrooms >= CHAT_ROOMS_PER_MEMBER) {
		send_error(chat, m, "too_many_rooms", "you are in too many rooms; leave one first");
		return;
	}
	struct chat_room *r = room_to_join(chat, json_string_value(room), json_string_length(room));
	if (!r) {
		send_error(chat, m, "too_many_rooms", "the server has no room for more rooms");
		return;
	}
	join_room(chat, m, r, has_since ? &since : NULL);
}

static void cmd_leave(struct chat *chat, struct chat_member *m, json_t *root)
{
	if (!json_object_get(root, "room")) {
		send_error(chat, m, "bad_room", "say which room to leave");
		return;
	}
	struct chat_membership *ms = command_room(chat, m, root);
	if (ms)
		leave_room(chat, m, (uint8_t)(ms - m->rooms), true, false);
}

static void cmd_history(struct chat *chat, struct chat_member *m, json_t *root)
{
	uint64_t before = 0, limit = 50;
	bool has_before, has_limit;
	struct chat_membership *ms = command_room(chat, m, root);
	if (!ms || !get_count(chat, m, root, "before", &before, &has_before) ||
	    !get_count(chat, m, root, "limit", &limit, &has_limit))
		return;
	if (limit == 0 || limit > HISTORY_LIMIT_MAX)
		limit = limit ? HISTORY_LIMIT_MAX : 1;
	send_history(chat, m, ms, before, (unsigned)limit);
}

static void cmd_resume(struct chat *chat, struct chat_member *m, json_t *root)
{
	uint64_t since = 0;
	bool has_since;
	json_t *room = json_object_get(root, "room");
	if (!get_count(chat, m, root, "since", &since, &has_since))
		return;
	if (!has_since) {
		send_error(chat, m, "bad_message", "resume needs \"since\"");
		return;
	}
	/* Resuming a room not joined yet joins it, replay first. */
	if (json_is_string(room)) {
		struct chat_room *r = room_find(&chat->rooms, json_string_value(room),
						json_string_length(room));
		if (!r || membership_of(m, r) < 0) {
			cmd_join(chat, m, root);
			return;
		}
	}
	struct chat_membership *ms = command_room(chat, m, root);
	if (ms)
		resume(chat, m, ms, since);
}

static void cmd_rooms(struct chat *chat, struct chat_member *m)
{
	ev_rooms(&chat->out, &chat->rooms, m, ROOMS_LISTED_MAX);
	send_out(chat, m);
}

/* A signed-in session's new token, before the old one runs out. */
static void cmd_refresh(struct chat *chat, struct chat_member *m, json_t *root)
{
	json_t *t = json_object_get(root, "token");
	if (!json_is_string(t)) {
		send_error(chat, m, "bad_message", "\"token\" must be a string");
		return;
	}
	const char *why = chat->config.refresh(m, json_string_value(t), json_string_length(t));
	if (why) {
		send_error(chat, m, "bad_token", why); /* the session goes on until its token runs out */
		return;
	}
	send_json(chat, m, "{\"type\":\"refreshed\"}", 20);
}

/* The command's "cid", if any, for its answers; false (after bad_message)
 * when it is not a string of 1 to CHAT_CID_MAX bytes. */
static bool take_cid(struct chat *chat, struct chat_member *m, json_t *root)
{
	json_t *cid = json_object_get(root, "cid");
	if (!cid)
		return true;
	size_t len = json_is_string(cid) ? json_string_length(cid) : 0;
	if (len < 1 || len > CHAT_CID_MAX) {
		send_error(chat, m, "bad_message", "\"cid\" must be a string of 1 to 64 bytes");
		return false;
	}
	chat->cid = json_string_value(cid);
	chat->cid_len = len;
	return true;
}

/* Rate-limited like any frame, but parsed first, so that a refusal
 * carries the command's cid. */
static void handle_command(struct chat *chat, struct chat_member *m, const char *text, size_t len)
{
	json_error_t err;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
	if (!root || !json_is_object(root)) {
		if (chat_allow(chat, m))
			send_error(chat, m, "bad_json", "not a valid JSON object");
		json_decref(root);
		return;
	}
	json_t *type = json_object_get(root, "type");
	if (!take_cid(chat, m, root) || !chat_allow(chat, m))
		; /* answered */
	else if (!json_is_string(type))
		send_error(chat, m, "bad_message", "\"type\" must be a string");
	else if (is_str(type, "message"))
		cmd_message(chat, m, root);
	else if (is_str(type, "nick"))
		cmd_nick(chat, m, root);
	else if (is_str(type, "join"))
		cmd_join(chat, m, root);
	else if (is_str(type, "leave"))
		cmd_leave(chat, m, root);
	else if (is_str(type, "history"))
		cmd_history(chat, m, root);
	else if (is_str(type, "resume"))
		cmd_resume(chat, m, root);
	else if (is_str(type, "rooms"))
		cmd_rooms(chat, m);
	else if (is_str(type, "refresh") && chat->config.refresh && m->user_id)
		cmd_refresh(chat, m, root);
	else
		send_error(chat, m, "unknown_type", "unknown message type");
	chat->cid_len = 0;
	json_decref(root);
}

bool chat_allow(struct chat *chat, struct chat_member *m)
{
	if (bucket_take(&m->bucket, &chat->config.rate, chat_now_ms()))
		return true;
	chat->stats.rate_limited++;
	/* A client that keeps going after a full burst of refusals is not a
	 * person typing fast. */
	if (chat->config.close && m->bucket.strikes > chat->config.rate.burst)
		chat->config.close(m, 1008, "rate limit exceeded");
	else
		send_error(chat, m, "rate_limited", "too many messages; slow down");
	return false;
}

void chat_receive(struct chat *chat, struct chat_member *m, const char *text, size_t len)
{
	size_t i = 0;
	while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
		i++;
	/* Only a JSON object is a command; anything else is the message text
	 * itself, so plain WebSocket clients can chat. */
	if (i < len && text[i] == '{') {
		handle_command(chat, m, text, len);
	} else if (!chat_allow(chat, m)) {
		return;
	} else if (!m->nrooms) {
		send_error(chat, m, "no_room", "join a room first");
	} else {
		post_message(chat, m, m->rooms[m->current].room, text, len);
	}
}

/* ---- an edge among several: the sequencer's ops ----------------------------------- */

/* A committed message (to every edge), or the failure of one of ours. */
static void apply_message(struct chat *chat, struct chat_op *op)
{
	struct pending_message *pm = NULL;
	if (op->origin == chat->config.edge) {
		pm = fifo_take(&chat->waiting_messages, op->cookie);
		pm->room->waiting--;
		chat->stats.pending--;
	}
	if (op->err) {
		message_failed(chat, pm, op->err);
		if (pm->done)
			pm->done(pm->done_ctx, &(struct chat_api_result){ .err = op->err });
		room_settle(&chat->rooms, pm->room);
		free(pm);
		return;
	}
	struct chat_room *r = pm ? pm->room : room_load(&chat->rooms, op->room, op->room_len);
	if (op->id != r->last_sent + 1)
		r->recent_complete = false; /* this copy of the room missed ids before it */
	if (op->id > r->last_id)
		r->last_id = op->id;
	struct buf *frame = buf_new_payload(op->json, op->json_len);
	deliver(chat, r, op->id, frame, pm);
	if (pm)
		chat->stats.messages++;
	buf_unref(frame);
	if (pm && pm->done)
		pm->done(pm->done_ctx, &(struct chat_api_result){ .id = op->id });
	room_settle(&chat->rooms, r);
	free(pm);
}

/* A new name: this edge's members in its rooms, once each (but the member
 * itself, told when it asked); the sequencer renamed it in the rosters. */
static void apply_nick(struct chat *chat, struct chat_op *op)
{
	struct buf *frame = buf_new_payload(op->json, op->json_len);
	uint32_t mark = chat->next_mark++;
	const char *name = op->rooms;
	for (uint8_t k = 0; k < op->nrooms; k++, name += strlen(name) + 1) {
		struct chat_room *r = room_find(&chat->rooms, name, strlen(name));
		if (!r)
			continue;
		for (uint32_t i = 0; i < r->count; i++) {
			struct chat_member *other = room_member(r, i);
			if (other->mark != mark && other->id != op->member_id) {
				other->mark = mark;
				chat->config.send(other, frame);
			}
		}
	}
	buf_unref(frame);
}

/* A cluster's join says which of the room's ids came before it (op->id;
 * 0 from the process's own sequencer, which hands every edge every id).
 * Ids this copy of the room never saw are then in the streams only: a
 * join's history or a replay reads them there. */
static void catch_up_to(struct chat_room *r, uint64_t before)
{
	if (before <= r->last_sent)
		return;
	r->last_sent = before;
	if (before > r->last_id)
		r->last_id = before;
	r->recent_complete = false;
}

/* Our own join, back in order: the member enters the room now, if it is
 * still there to (it may have left, or gone, meanwhile). */
static void apply_join(struct chat *chat, struct chat_op *op)
{
	struct pending_join *pj = fifo_take(&chat->waiting_joins, op->cookie);
	struct chat_room *r = pj->room;
	struct chat_member *m = pj->member;
	int k = m ? membership_of(m, r) : -1;
	r->waiting--;
	r->everywhere = op->count;
	catch_up_to(r, op->id);
	if (k >= 0 && m->rooms[k].epoch == pj->epoch) {
		m->rooms[k].joining = false;
		enter_room(chat, m, &m->rooms[k], pj->has_since ? &pj->since : NULL, op);
	} else if (op->announce) {
		broadcast_json(chat, r, op->json, op->json_len);
	}
	room_settle(&chat->rooms, r);
	free(pj);
	/* Only this edge reads the listed users: let go now, not when the
	 * slowest edge is done with the op. */
	shared_text_unref(op->users);
	op->users = NULL;
}

/* A join or a leave, in the room's order: this edge's count of the room
 * follows the sequencer's, and its members of the room are told (ours:
 * the member enters now, or has left already). */
static void apply_event(struct chat *chat, struct chat_op *op)
{
	bool ours = op->origin == chat->config.edge;
	if (op->change == ROSTER_NICK) {
		apply_nick(chat, op);
		return;
	}
	if (ours && op->change == ROSTER_JOIN) {
		apply_join(chat, op);
		return;
	}
	struct chat_room *r = room_load(&chat->rooms, op->room, op->room_len);
	r->everywhere = op->count;
	catch_up_to(r, op->id);
	if (op->announce)
		broadcast_json(chat, r, op->json, op->json_len);
	if (ours && op->cookie) {
		/* a leave command's own answer, with the count after it */
		struct pending_tell *pt = fifo_take(&chat->waiting_tells, op->cookie);
		if (pt->member)
			send_json(chat, pt->member, op->json, op->json_len);
		free(pt);
	}
	room_settle(&chat->rooms, r);
}

/* ---- the server API --------------------------------------------------------------- */

/* This edge's connections of a signed-in user, closed. Collected first:
 * a close may change the rooms being walked. O(members of every room):
 * fine for an operator's call. */
static void kick_here(struct chat *chat, const char *user_id, const char *reason)
{
	struct chat_member **found = NULL;
	size_t n = 0, cap = 0;
	uint32_t mark = chat->next_mark++;
	for (struct chat_room *r = room_first(&chat->rooms); r; r = room_next(&chat->rooms, r)) {
		for (uint32_t i = 0; i < r->count; i++) {
			struct chat_member *m = room_member(r, i);
			if (m->mark == mark || !m->user_id || strcmp(m->user_id, user_id) != 0)
				continue;
			m->mark = mark;
			if (n == cap) {
				cap = cap ? cap * 2 : 8;
				found = realloc(found, cap * sizeof(*found));
				if (!found)
					abort();
			}
			found[n++] = m;
		}
	}
	for (size_t i = 0; i < n && chat->config.close; i++)
		chat->config.close(found[i], CHAT_KICK_CODE, reason);
	free(found);
}

static void api_submit(struct chat *chat, struct chat_op *op, chat_api_done_fn done, void *ctx)
{
	struct pending_api *pa = malloc(sizeof(*pa));
	if (!pa)
		abort();
	*pa = (struct pending_api){ .done = done, .ctx = ctx };
	op->cookie = pa;
	sequencer_submit(chat->config.sequencer, op);
}

/* A kick on every edge, a roster to its origin; the origin's caller is
 * told then. */
static void apply_api(struct chat *chat, struct chat_op *op)
{
	if (op->kind == CHAT_OP_KICK)
		kick_here(chat, op->user_id, op->text);
	if (op->origin != chat->config.edge)
		return;
	struct pending_api *pa = op->cookie;
	pa->done(pa->ctx, &(struct chat_api_result){ .err = op->err, .json = op->json,
						      .json_len = op->json_len });
	free(pa);
}

const char *chat_publish(struct chat *chat, const char *room, size_t room_len, const char *text,
			 size_t len, const char *name, size_t name_len, chat_api_done_fn done, void *ctx)
{
	char given[CHAT_NAME_MAX_BYTES + 1];
	if (name && !chat_name_normalize(name, name_len, given))
		return "bad_name";
	if (len == 0)
		return "empty";
	if (text_has_control(text, len)) {
		chat->stats.bad_text++;
		return "bad_text";
	}
	/* who the message is from: not a member, so no one is acknowledged;
	 * its own caller is told instead */
	char sender[] = CHAT_API_SENDER, fallback[] = CHAT_API_NAME;
	struct chat_member author = { .user_id = sender, .name = name ? given : fallback };
	/* like a room a message arrives in from another edge: not counted
	 * against --max-rooms, and kept (name and last id) once it has one */
	struct chat_room *r = room_load(&chat->rooms, room, room_len);
	append_message(chat, &author, r, text, len,
		       &(struct pending_message){ .room = r, .chat = chat, .done = done, .done_ctx = ctx });
	room_settle(&chat->rooms, r);
	return NULL;
}

void chat_kick(struct chat *chat, const char *user_id, const char *reason, chat_api_done_fn done,
	       void *ctx)
{
	if (!chat->config.sequencer) {
		kick_here(chat, user_id, reason);
		done(ctx, &(struct chat_api_result){ 0 });
		return;
	}
	struct chat_op *op = chat_op_new(CHAT_OP_KICK, chat->config.edge, "", 0);
	op->user_id = strdup(user_id);
	if (!op->user_id)
		abort();
	chat_op_set_text(op, reason, strlen(reason));
	api_submit(chat, op, done, ctx);
}

void chat_presence(struct chat *chat, const char *room, size_t room_len, chat_api_done_fn done,
		   void *ctx)
{
	if (!chat->config.sequencer) {
		struct chat_room *r = room_find(&chat->rooms, room, room_len);
		if (r) {
			ev_presence(&chat->out, r, CHAT_API_PRESENCE_MAX);
		} else {
			ev_presence_users(&chat->out, room, room_len, 0, "[]", 2);
		}
		done(ctx, &(struct chat_api_result){ .json = jbuf_json(&chat->out), .json_len = chat->out.len });
		return;
	}
	api_submit(chat, chat_op_new(CHAT_OP_ROSTER, chat->config.edge, room, room_len), done, ctx);
}

void chat_sequenced_ready(struct chat *chat)
{
	struct chat_op **ops;
	size_t n = sequencer_take(chat->config.sequencer, chat->config.edge, &ops);
	for (size_t i = 0; i < n; i++) {
		struct chat_op *op = ops[i];
		if (op->kind == CHAT_OP_MESSAGE)
			apply_message(chat, op);
		else if (op->kind == CHAT_OP_EVENT)
			apply_event(chat, op);
		else if (op->kind == CHAT_OP_KICK || op->kind == CHAT_OP_ROSTER)
			apply_api(chat, op);
		else
			query_answered(chat, op->cookie, op->records, op->nrecords, op->more, op->err);
		chat_op_release(op);
	}
	free(ops);
}
