/* cluster_room.c: a cluster node's rooms (cluster_node.h).
 *
 * A room with members here is subscribed to its channel. Its messages go
 * to the edges in id order, each once: one that is not the next id means
 * publications were lost (the subscriber link dropped, or the room was
 * not subscribed yet), so the room reads the missed ids from its stream
 * and holds what comes meanwhile; the ids Redis no longer keeps (its
 * stream is bounded) are given up, with a log line. */
#include <stdlib.h>
#include <string.h>

#include "chat_event.h"
#include "cluster_node.h"
#include "log.h"
#include "name_hash.h"
#include "utf8.h"

#define FILL_BATCH 1000
#define CHANNEL_PREFIX "ringcast:room:"

struct cl_room *cluster_room_find(struct cluster *c, const char *name, size_t len)
{
	for (struct cl_room *r = c->rooms[name_hash(name, len) % CLUSTER_ROOM_BUCKETS]; r; r = r->next)
		if (r->name_len == len && memcmp(r->name, name, len) == 0)
			return r;
	return NULL;
}

struct cl_room *cluster_room(struct cluster *c, const char *name, size_t len)
{
	struct cl_room *r = cluster_room_find(c, name, len);
	if (r)
		return r;
	struct cl_room **bucket = &c->rooms[name_hash(name, len) % CLUSTER_ROOM_BUCKETS];
	r = calloc(1, sizeof(*r) + len + 1);
	if (!r)
		abort();
	memcpy(r->name, name, len);
	r->name_len = len;
	r->next = *bucket;
	*bucket = r;
	return r;
}

const char *cluster_room_log(struct cluster *c, const struct cl_room *r)
{
	return cluster_fmt(c, "ringcast:room:{%s}:log", r->name);
}

const char *cluster_room_who(struct cluster *c, const struct cl_room *r)
{
	return cluster_fmt(c, "ringcast:room:{%s}:who", r->name);
}

const char *cluster_room_channel(struct cluster *c, const struct cl_room *r)
{
	return cluster_fmt(c, CHANNEL_PREFIX "%s", r->name);
}

/* ---- subscriptions ------------------------------------------------------------ */

static void send_subscription(struct cluster *c, struct cl_room *r, bool subscribe)
{
	const char *argv[2] = { subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE", cluster_room_channel(c, r) };
	if (cluster_command(c->sub, c, 2, argv, NULL, NULL, NULL))
		r->sub_pending++;
}

static void drop_held(struct cl_room *r)
{
	while (r->held) {
		struct held_pub *h = r->held;
		r->held = h->next;
		free(h);
	}
	r->held_tail = NULL;
}

void cluster_room_want(struct cluster *c, struct cl_room *r, bool wanted)
{
	if (r->wanted == wanted)
		return;
	r->wanted = wanted;
	r->subscribed = false;
	if (!wanted) {
		/* From here on the room misses messages: what the edges keep
		 * of it is history until someone joins again. */
		r->known = false;
		drop_held(r);
		cluster_settle_posted(c, r);
	}
	send_subscription(c, r, wanted);
}

void cluster_rooms_subscriber(struct cluster *c, bool up)
{
	for (size_t b = 0; b < CLUSTER_ROOM_BUCKETS; b++) {
		for (struct cl_room *r = c->rooms[b]; r; r = r->next) {
			r->subscribed = false;
			r->sub_pending = 0;
			if (up && r->wanted)
				send_subscription(c, r, true);
			/* ops waiting for a subscription wait no more: what
			 * is missed meanwhile is read back once it is there */
			if (!up)
				cluster_send_queued(c, r);
		}
	}
}

/* ---- messages in order -------------------------------------------------------- */

static void start_fill(struct cluster *c, struct cl_room *r);

/* A message with id r->last + 1 (or the first the room hears): out to
 * the edges; ours carries the edge's own op, so its sender's copy is the
 * acknowledgement. */
static void deliver(struct cluster *c, struct cl_room *r, const struct cluster_pub *pub)
{
	r->last = pub->rec.id;
	r->known = true;
	struct store_record rec = pub->rec;
	rec.room = r->name;
	rec.room_len = r->name_len;
	if (!utf8_valid((const uint8_t *)rec.text, rec.text_len) ||
	    !utf8_valid((const uint8_t *)rec.name, rec.name_len) ||
	    !utf8_valid((const uint8_t *)rec.from, rec.from_len)) {
		log_warn("cluster: room %s message %llu is not UTF-8; skipped", r->name,
			 (unsigned long long)rec.id);
		return;
	}
	struct chat_op *op = pub->node == c->node ? cluster_take_posted(c, pub->nseq) : NULL;
	if (!op)
		op = chat_op_new(CHAT_OP_MESSAGE, CLUSTER_ORIGIN_NONE, r->name, r->name_len);
	op->id = rec.id;
	jbuf_reset(&c->out);
	ev_message_record(&c->out, &rec);
	chat_op_set_json(op, jbuf_json(&c->out), c->out.len);
	cluster_publish(c, op);
}

static bool seen_nick(struct cluster *c, uint64_t node, uint64_t seq)
{
	uint64_t token = node << 40 ^ seq;
	for (unsigned i = 0; i < 64; i++)
		if (c->nicks_seen[i] == token)
			return true;
	c->nicks_seen[c->nicks_at++ % 64] = token;
	return false;
}

/* Another node's join, leave or nick, for this node's members. */
static void event_from(struct cluster *c, struct cl_room *r, const struct cluster_pub *pub)
{
	if (pub->node == c->node)
		return; /* ours went to the edges when Redis answered */
	if (pub->kind == PUB_NICK && seen_nick(c, pub->node, pub->nseq))
		return; /* one per room it is in: the first names them all */
	struct chat_op *op = chat_op_new(CHAT_OP_EVENT, CLUSTER_ORIGIN_NONE, r->name, r->name_len);
	op->member_id = pub->member;
	op->count = (uint32_t)pub->count;
	op->announce = pub->count <= c->config.presence_events_max;
	chat_op_set_json(op, pub->json, pub->json_len);
	if (pub->kind == PUB_NICK) {
		op->change = ROSTER_NICK;
		/* "a b c" -> "a\0b\0c\0" */
		op->rooms = malloc(pub->rooms_len + 2);
		if (!op->rooms)
			abort();
		memcpy(op->rooms, pub->rooms, pub->rooms_len);
		op->rooms[pub->rooms_len] = 0;
		for (size_t i = 0; i < pub->rooms_len; i++) {
			if (op->rooms[i] == ' ') {
				op->rooms[i] = 0;
				op->nrooms++;
			}
		}
		op->nrooms++;
	} else {
		op->change = pub->kind == PUB_JOIN ? ROSTER_JOIN : ROSTER_LEAVE;
	}
	cluster_publish(c, op);
}

static void hold(struct cl_room *r, const char *p, size_t n)
{
	struct held_pub *h = malloc(sizeof(*h) + n);
	if (!h)
		abort();
	h->next = NULL;
	h->len = n;
	memcpy(h->data, p, n);
	if (r->held_tail)
		r->held_tail->next = h;
	else
		r->held = h;
	r->held_tail = h;
}

/* give_up: the stream was read and still lacks the ids before this one. */
static void publication(struct cluster *c, struct cl_room *r, const char *p, size_t n,
			bool give_up)
{
	struct cluster_pub pub;
	if (cluster_pub_parse(p, n, &pub) < 0) {
		log_warn("cluster: room %s: a publication this version cannot read; skipped", r->name);
		return;
	}
	if (pub.kind != PUB_MESSAGE) {
		event_from(c, r, &pub);
		return;
	}
	if (r->known && pub.rec.id <= r->last)
		return; /* read from the stream already */
	if (r->known && pub.rec.id > r->last + 1) {
		if (!give_up) {
			hold(r, p, n);
			start_fill(c, r);
			return;
		}
		log_warn("cluster: room %s: ids %llu-%llu are no longer in Redis; going on without them",
			 r->name, (unsigned long long)r->last + 1, (unsigned long long)pub.rec.id - 1);
	}
	deliver(c, r, &pub);
}

static void release_held(struct cluster *c, struct cl_room *r)
{
	while (r->held && !r->filling) {
		struct held_pub *h = r->held;
		r->held = h->next;
		if (!r->held)
			r->held_tail = NULL;
		publication(c, r, h->data, h->len, true);
		free(h);
	}
}

struct fill_call {
	struct cluster *c;
	struct cl_room *r;
};

static void on_filled(void *arg, const redisReply *reply)
{
	struct fill_call *call = arg;
	struct cluster *c = call->c;
	struct cl_room *r = call->r;
	free(call);
	r->filling = false;
	if (!r->wanted)
		return; /* its members here left meanwhile */
	if (!reply || reply->type != REDIS_REPLY_ARRAY) {
		if (reply)
			log_warn("cluster: room %s: reading missed messages: %s", r->name,
				 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
		r->fill_again = true; /* when Redis is back */
		return;
	}
	for (size_t i = 0; i < reply->elements; i++) {
		struct cluster_pub pub;
		if (cluster_entry_parse(reply->element[i], &pub) < 0)
			continue;
		if (!r->known || pub.rec.id > r->last)
			deliver(c, r, &pub);
	}
	if (reply->elements == FILL_BATCH) {
		start_fill(c, r); /* more */
		return;
	}
	release_held(c, r);
}

/* Read the ids after r->last from the stream. */
static void start_fill(struct cluster *c, struct cl_room *r)
{
	if (r->filling)
		return;
	struct fill_call *call = malloc(sizeof(*call));
	if (!call)
		abort();
	*call = (struct fill_call){ .c = c, .r = r };
	const char *argv[6] = { "XRANGE", cluster_room_log(c, r),
				cluster_fmt(c, "(0-%llu", (unsigned long long)r->last), "+", "COUNT",
				cluster_fmt(c, "%d", FILL_BATCH) };
	if (!cluster_command(c->cmd, c, 6, argv, NULL, on_filled, call)) {
		free(call);
		r->fill_again = true;
		return;
	}
	r->filling = true;
	r->fill_again = false;
}

void cluster_rooms_fill_pending(struct cluster *c)
{
	for (size_t b = 0; b < CLUSTER_ROOM_BUCKETS; b++)
		for (struct cl_room *r = c->rooms[b]; r; r = r->next)
			if (r->fill_again && r->known && !r->filling)
				start_fill(c, r);
}

/* ---- the subscriber link's pushes ---------------------------------------------- */

static struct cl_room *room_of_channel(struct cluster *c, const redisReply *ch)
{
	size_t plen = strlen(CHANNEL_PREFIX);
	if (ch->type != REDIS_REPLY_STRING || ch->len <= plen || memcmp(ch->str, CHANNEL_PREFIX, plen))
		return NULL;
	return cluster_room_find(c, ch->str + plen, ch->len - plen);
}

static void subscription_confirmed(struct cluster *c, struct cl_room *r)
{
	if (r->sub_pending)
		r->sub_pending--;
	if (r->sub_pending || !r->wanted)
		return;
	r->subscribed = true;
	cluster_send_queued(c, r);
	if (r->known)
		start_fill(c, r); /* what was published while we were not listening */
}

void cluster_room_push(struct cluster *c, const redisReply *reply)
{
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
	    reply->element[0]->type != REDIS_REPLY_STRING)
		return;
	const char *kind = reply->element[0]->str;
	struct cl_room *r = room_of_channel(c, reply->element[1]);
	if (!r)
		return;
	if (!strcmp(kind, "message") && reply->element[2]->type == REDIS_REPLY_STRING) {
		if (!r->wanted)
			return; /* the last member here left; an UNSUBSCRIBE is on its way */
		if (r->filling || r->held) /* behind what waits for the missed ids */
			hold(r, reply->element[2]->str, reply->element[2]->len);
		else
			publication(c, r, reply->element[2]->str, reply->element[2]->len, false);
	} else if (!strcmp(kind, "subscribe")) {
		subscription_confirmed(c, r);
	} else if (!strcmp(kind, "unsubscribe") && r->sub_pending) {
		r->sub_pending--;
	}
}

void cluster_rooms_free(struct cluster *c)
{
	for (size_t b = 0; b < CLUSTER_ROOM_BUCKETS; b++) {
		struct cl_room *r = c->rooms[b];
		while (r) {
			struct cl_room *next = r->next;
			struct chat_op *op;
			while ((op = op_queue_pop(&r->queued)))
				chat_op_release(op);
			drop_held(r);
			roster_free(&r->local);
			free(r);
			r = next;
		}
	}
}
