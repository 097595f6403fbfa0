/* cluster.c: a cluster node's thread (include/cluster.h): its loop, its
 * two Redis links (commands; the subscriber), the ops the edges submit,
 * and the node's own life in Redis (its id, its heartbeat, member ids).
 *
 * What Redis has not confirmed is never shown as done: a message goes to
 * the edges only when its publication (or the stream) brings it back, so
 * its sender's copy, the acknowledgement, follows the append. While Redis
 * cannot be reached a message waits REDIS_GRACE_MS for it (a dropped
 * connection is usually back by then), then gets `unavailable`; joins, leaves and
 * nicks take effect on this node alone; Redis learns them when it is
 * back (every membership is restored, the leaves are replayed). */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "chat_event.h"
#include "cluster_node.h"
#include "log.h"
#include "thread.h"
#include "loop.h"
#include "sequencer.h"

#define CMD_SLOT 0
#define SUB_SLOT 1
#define TICK_MS 100
#define HEARTBEAT_MS 1000
#define NODE_TIMEOUT_MS 5000 /* silent this long: dead (docs/cluster.md) */
#define ID_BLOCK 1000
#define ID_LOW 500
#define SCRATCH_BYTES (256 * 1024)
/* How long a message or a history read waits for Redis to come back
 * before it is answered `unavailable` (docs/cluster.md). */
#define REDIS_GRACE_MS 2000

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- commands --------------------------------------------------------------- */

const char *cluster_fmt(struct cluster *c, const char *fmt, ...)
{
	char *at = c->scratch + c->scratch_len;
	size_t room = SCRATCH_BYTES - c->scratch_len;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(at, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room)
		abort(); /* arguments are bounded: room names, numbers */
	c->scratch_len += (size_t)n + 1;
	return at;
}

bool cluster_command(struct redis_link *link, struct cluster *c, int argc, const char **argv,
		     const size_t *lens, redis_reply_fn fn, void *arg)
{
	bool sent = redis_link_command(link, argc, argv, lens, fn, arg);
	c->scratch_len = 0; /* formatted: the arguments are copied */
	return sent;
}

bool cluster_eval(struct cluster *c, enum cluster_script s, int nkeys, const char **keys,
		  int nargs, const char **args, const size_t *arg_lens, redis_reply_fn fn, void *arg)
{
	int argc = 3 + nkeys + nargs;
	const char **argv = malloc((size_t)argc * sizeof(*argv));
	size_t *lens = malloc((size_t)argc * sizeof(*lens));
	if (!argv || !lens)
		abort();
	argv[0] = "EVALSHA";
	argv[1] = c->scripts[s].sha1;
	argv[2] = cluster_fmt(c, "%d", nkeys);
	for (int i = 0; i < 3 + nkeys; i++) {
		if (i >= 3)
			argv[i] = keys[i - 3];
		lens[i] = strlen(argv[i]);
	}
	for (int i = 0; i < nargs; i++) {
		argv[3 + nkeys + i] = args[i];
		lens[3 + nkeys + i] = arg_lens ? arg_lens[i] : strlen(args[i]);
	}
	bool sent = cluster_command(c->cmd, c, argc, argv, lens, fn, arg);
	free(argv);
	free(lens);
	return sent;
}

static bool ready_to_order(const struct cluster *c)
{
	return c->node && redis_link_up(c->cmd);
}

void cluster_publish(struct cluster *c, struct chat_op *op)
{
	sequencer_publish(c->seq, op);
}

/* A call's context: the op (NULL for some) and which of ours it is. */
struct call {
	struct cluster *c;
	struct chat_op *op;
	struct cl_room *r;
	uint64_t seq;
};

static struct call *call_new(struct cluster *c, struct chat_op *op, struct cl_room *r)
{
	struct call *call = malloc(sizeof(*call));
	if (!call)
		abort();
	*call = (struct call){ .c = c, .op = op, .r = r };
	return call;
}

static bool reply_ok(const redisReply *reply, const char *what)
{
	if (reply && reply->type == REDIS_REPLY_ERROR)
		log_warn("cluster: %s: %s", what, reply->str);
	return reply && reply->type != REDIS_REPLY_ERROR;
}

/* ---- messages ---------------------------------------------------------------- */

struct chat_op *cluster_take_posted(struct cluster *c, uint64_t seq)
{
	struct chat_op *prev = NULL;
	for (struct chat_op *op = c->posted.head; op; prev = op, op = op->next) {
		if (op->cluster_seq != seq)
			continue;
		if (prev)
			prev->next = op->next;
		else
			c->posted.head = op->next;
		if (c->posted.tail == op)
			c->posted.tail = prev;
		return op;
	}
	return NULL;
}

static void fail(struct cluster *c, struct chat_op *op)
{
	op->err = CHAT_ERR_UNAVAILABLE;
	cluster_publish(c, op);
}

static struct chat_op *find_posted(struct cluster *c, uint64_t seq)
{
	for (struct chat_op *op = c->posted.head; op; op = op->next)
		if (op->cluster_seq == seq)
			return op;
	return NULL;
}

/* Taken by Redis (op->id set): out to the edges as it is. */
static void publish_posted(struct cluster *c, struct chat_op *op)
{
	char from[16], name[24];
	struct store_record rec;
	chat_op_record(op, &rec, from, name);
	jbuf_reset(&c->out);
	ev_message_record(&c->out, &rec);
	chat_op_set_json(op, jbuf_json(&c->out), c->out.len);
	cluster_publish(c, op);
}

void cluster_settle_posted(struct cluster *c, struct cl_room *r)
{
	struct chat_op *op = c->posted.head;
	while (op) {
		struct chat_op *next = op->next;
		if (op->id && op->room_len == r->name_len && !memcmp(op->room, r->name, r->name_len))
			publish_posted(c, cluster_take_posted(c, op->cluster_seq));
		op = next;
	}
}

/* Redis is away: op waits (REDIS_GRACE_MS at most) for it to return. */
static void stall(struct cluster *c, struct chat_op *op)
{
	op->cluster_deadline = now_ms() + REDIS_GRACE_MS;
	op_queue_push(&c->stalled, op);
}

static void take(struct cluster *c, struct chat_op *op);

/* Redis is back: what waited goes on, in the order it came. */
static void unstall(struct cluster *c)
{
	struct op_queue waiting = c->stalled;
	c->stalled = (struct op_queue){ 0 };
	struct chat_op *op;
	while ((op = op_queue_pop(&waiting)))
		take(c, op);
}

static void give_up_stalled(struct cluster *c, uint64_t now)
{
	while (c->stalled.head && c->stalled.head->cluster_deadline <= now)
		fail(c, op_queue_pop(&c->stalled));
}

static void on_posted(void *arg, const redisReply *reply)
{
	struct call *call = arg;
	struct cluster *c = call->c;
	struct cl_room *r = call->r;
	uint64_t seq = call->seq;
	free(call);
	struct chat_op *op = find_posted(c, seq);
	if (!op)
		return; /* its publication came first */
	if (!reply_ok(reply, "posting a message") || reply->type != REDIS_REPLY_STRING) {
		/* Not taken (or not known to be: a lost link may have cut
		 * off the answer; its publication then shows it anyway). */
		fail(c, cluster_take_posted(c, seq));
		return;
	}
	op->id = strtoull(reply->str, NULL, 10);
	if (!r->wanted) /* its members here left: nobody listens for it */
		publish_posted(c, cluster_take_posted(c, seq));
	/* else it comes back in the room's order */
}

/* Ops for a room must wait while its subscription is on its way. */
static bool must_wait(const struct cluster *c, const struct cl_room *r)
{
	return r->queued.head || (r->wanted && !r->subscribed && redis_link_up(c->sub));
}

static void send_post(struct cluster *c, struct cl_room *r, struct chat_op *op)
{
	if (!ready_to_order(c)) {
		stall(c, op);
		return;
	}
	char from[16], name[24];
	struct store_record rec;
	chat_op_record(op, &rec, from, name);
	op->cluster_seq = ++c->next_seq;
	struct call *call = call_new(c, NULL, r);
	call->seq = op->cluster_seq;
	const char *keys[1] = { cluster_room_log(c, r) };
	const char *args[8] = {
		cluster_room_channel(c, r), cluster_fmt(c, "%u", c->config.history_max),
		cluster_fmt(c, "%llu", (unsigned long long)c->node),
		cluster_fmt(c, "%llu", (unsigned long long)op->cluster_seq),
		rec.from, rec.name, rec.text, cluster_fmt(c, "%llu", (unsigned long long)rec.ts),
	};
	size_t lens[8] = { strlen(args[0]), strlen(args[1]), strlen(args[2]), strlen(args[3]),
			   rec.from_len, rec.name_len, rec.text_len, strlen(args[7]) };
	op_queue_push(&c->posted, op);
	if (!cluster_eval(c, SCRIPT_POST, 1, keys, 8, args, lens, on_posted, call)) {
		free(call);
		fail(c, cluster_take_posted(c, op->cluster_seq));
	}
}

static void take_message(struct cluster *c, struct chat_op *op)
{
	if (!ready_to_order(c)) {
		stall(c, op);
		return;
	}
	struct cl_room *r = cluster_room(c, op->room, op->room_len);
	if (must_wait(c, r))
		op_queue_push(&r->queued, op);
	else
		send_post(c, r, op);
}

/* ---- joins, leaves, nicks ------------------------------------------------------- */

static struct chat_member member_of(const struct chat_op *op)
{
	return (struct chat_member){ .id = op->member_id, .name = op->name, .user_id = op->user_id };
}

/* The event's JSON with count, and its text up to the count (the script
 * appends the count Redis has). */
static void event_json(struct cluster *c, struct chat_op *op, const char *type, uint64_t count)
{
	struct chat_member who = member_of(op);
	ev_member_event(&c->out, type, op->room, op->room_len, &who, count);
	chat_op_set_json(op, jbuf_json(&c->out), c->out.len);
}

static const char *event_prefix(struct cluster *c, struct chat_op *op, const char *type)
{
	struct chat_member who = member_of(op);
	ev_member_event(&c->out, type, op->room, op->room_len, &who, 0);
	c->out.len -= 2; /* "0}" */
	return cluster_fmt(c, "%.*s", (int)c->out.len, jbuf_json(&c->out));
}

static const char *user_json(struct cluster *c, const struct chat_op *op)
{
	struct chat_member who = member_of(op);
	ev_user(&c->out, &who);
	return cluster_fmt(c, "%.*s", (int)c->out.len, jbuf_json(&c->out));
}

/* Out to the edges with what this node alone knows (Redis is away). */
static void join_here(struct cluster *c, struct cl_room *r, struct chat_op *op)
{
	op->count = r->local.count;
	op->announce = op->count <= c->config.presence_events_max;
	op->id = r->known ? r->last : 0;
	ev_users_roster(&c->out, &r->local, c->config.presence_list_max);
	op->users = shared_text_new(jbuf_json(&c->out), c->out.len);
	event_json(c, op, "join", op->count);
	cluster_publish(c, op);
}

static void on_joined(void *arg, const redisReply *reply)
{
	struct call *call = arg;
	struct cluster *c = call->c;
	struct cl_room *r = call->r;
	struct chat_op *op = call->op;
	free(call);
	if (!reply_ok(reply, "joining") || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
	    reply->element[2]->type != REDIS_REPLY_STRING) {
		join_here(c, r, op);
		return;
	}
	op->count = (uint32_t)reply->element[0]->integer;
	op->announce = op->count <= c->config.presence_events_max;
	if (!r->known) {
		/* what came before the join is history: the edges read it
		 * from the stream when asked */
		r->known = true;
		r->last = (uint64_t)reply->element[1]->integer;
	}
	op->id = r->last;
	op->users = shared_text_new(reply->element[2]->str, reply->element[2]->len);
	event_json(c, op, "join", op->count);
	cluster_publish(c, op);
}

/* restore: tell the room only if Redis had lost the member (op NULL:
 * nobody waits for the answer). */
static bool send_join_script(struct cluster *c, struct cl_room *r, struct chat_op *op,
			     bool restore, redis_reply_fn fn, void *arg)
{
	const char *keys[3] = { cluster_room_who(c, r), cluster_room_log(c, r),
				cluster_fmt(c, "ringcast:node:%llu:rooms", (unsigned long long)c->node) };
	const char *args[8] = {
		cluster_room_channel(c, r), cluster_fmt(c, "%llu", (unsigned long long)c->node),
		cluster_fmt(c, "%u", op->member_id), user_json(c, op), event_prefix(c, op, "join"),
		cluster_fmt(c, "%zu", c->config.presence_list_max), r->name, restore ? "1" : "0",
	};
	return cluster_eval(c, SCRIPT_JOIN, 3, keys, 8, args, NULL, fn, arg);
}

static void send_join(struct cluster *c, struct cl_room *r, struct chat_op *op)
{
	if (!ready_to_order(c)) {
		join_here(c, r, op);
		return;
	}
	struct call *call = call_new(c, op, r);
	if (!send_join_script(c, r, op, false, on_joined, call)) {
		free(call);
		join_here(c, r, op);
	}
}

static void take_join(struct cluster *c, struct chat_op *op)
{
	struct cl_room *r = cluster_room(c, op->room, op->room_len);
	roster_add(&r->local, op->member_id, op->name, op->user_id);
	cluster_room_want(c, r, true);
	/* Subscribed before Redis has the join, so nothing after it is
	 * missed; while the subscriber link is down, what is missed is read
	 * back when it returns. */
	if (must_wait(c, r))
		op_queue_push(&r->queued, op);
	else
		send_join(c, r, op);
}

static void on_left(void *arg, const redisReply *reply)
{
	struct call *call = arg;
	struct cluster *c = call->c;
	struct chat_op *op = call->op;
	bool ok = reply_ok(reply, "leaving") && reply->type == REDIS_REPLY_INTEGER;
	op->count = ok ? (uint32_t)reply->integer : call->r->local.count;
	free(call);
	op->announce = op->count <= c->config.presence_events_max;
	event_json(c, op, "leave", op->count);
	cluster_publish(c, op);
}

static bool send_leave_script(struct cluster *c, struct cl_room *r, struct chat_op *op,
			      redis_reply_fn fn, void *arg)
{
	const char *keys[2] = { cluster_room_who(c, r),
				cluster_fmt(c, "ringcast:node:%llu:rooms", (unsigned long long)c->node) };
	const char *args[5] = { cluster_room_channel(c, r),
				cluster_fmt(c, "%llu", (unsigned long long)c->node),
				cluster_fmt(c, "%u", op->member_id), event_prefix(c, op, "leave"), r->name };
	return cluster_eval(c, SCRIPT_LEAVE, 2, keys, 5, args, NULL, fn, arg);
}

/* A copy Redis is told of later (the op itself goes to the edges). */
static void remember_leave(struct cluster *c, const struct chat_op *op)
{
	struct chat_op *copy = chat_op_new(CHAT_OP_EVENT, op->origin, op->room, op->room_len);
	copy->change = ROSTER_LEAVE;
	struct chat_member who = member_of(op);
	chat_op_set_member(copy, &who);
	op_queue_push(&c->left_offline, copy);
}

static void send_leave(struct cluster *c, struct cl_room *r, struct chat_op *op)
{
	struct call *call = call_new(c, op, r);
	if (ready_to_order(c) && send_leave_script(c, r, op, on_left, call))
		return;
	call->op = NULL;
	free(call);
	remember_leave(c, op);
	op->count = r->local.count;
	op->announce = op->count <= c->config.presence_events_max;
	event_json(c, op, "leave", op->count);
	cluster_publish(c, op);
}

static void take_leave(struct cluster *c, struct chat_op *op)
{
	struct cl_room *r = cluster_room(c, op->room, op->room_len);
	roster_remove(&r->local, op->member_id);
	if (!r->local.count) {
		/* what waits for the subscription goes first: Redis must see
		 * it before this leave */
		cluster_send_queued(c, r);
		cluster_room_want(c, r, false);
	}
	if (must_wait(c, r))
		op_queue_push(&r->queued, op);
	else
		send_leave(c, r, op);
}

void cluster_send_queued(struct cluster *c, struct cl_room *r)
{
	struct chat_op *op;
	while ((op = op_queue_pop(&r->queued))) {
		if (op->kind == CHAT_OP_MESSAGE)
			send_post(c, r, op);
		else if (op->change == ROSTER_JOIN)
			send_join(c, r, op);
		else
			send_leave(c, r, op);
	}
}

static void on_nicked(void *arg, const redisReply *reply)
{
	struct call *call = arg;
	reply_ok(reply, "renaming");
	cluster_publish(call->c, call->op);
	free(call);
}

static void take_nick(struct cluster *c, struct chat_op *op)
{
	const char *keys[256], *args[6 + 256];
	char rooms[256 * (CHAT_ROOM_MAX + 1)];
	size_t rooms_len = 0;
	const char *name = op->rooms;
	int n = 0;
	for (uint8_t k = 0; k < op->nrooms; k++, name += strlen(name) + 1) {
		struct cl_room *r = cluster_room(c, name, strlen(name));
		roster_rename(&r->local, op->member_id, op->name);
		keys[n] = cluster_room_who(c, r);
		args[6 + n] = cluster_room_channel(c, r);
		rooms_len += (size_t)snprintf(rooms + rooms_len, sizeof(rooms) - rooms_len, "%s%s",
					      n ? " " : "", name);
		n++;
	}
	struct call *call = call_new(c, op, NULL);
	args[0] = cluster_fmt(c, "%llu", (unsigned long long)c->node);
	args[1] = cluster_fmt(c, "%u", op->member_id);
	args[2] = user_json(c, op);
	args[3] = cluster_fmt(c, "%llu", (unsigned long long)++c->next_seq);
	args[4] = cluster_fmt(c, "%.*s", (int)op->json_len, op->json);
	args[5] = cluster_fmt(c, "%s", rooms);
	if (n == 0 || !ready_to_order(c) ||
	    !cluster_eval(c, SCRIPT_NICK, n, keys, 6 + n, args, NULL, on_nicked, call)) {
		free(call);
		cluster_publish(c, op); /* here; Redis gets the name with the restore */
	}
}

/* ---- history ------------------------------------------------------------------ */

static void on_history(void *arg, const redisReply *reply)
{
	struct call *call = arg;
	struct cluster *c = call->c;
	struct chat_op *op = call->op;
	free(call);
	if (!reply_ok(reply, "reading history") || reply->type != REDIS_REPLY_ARRAY) {
		fail(c, op);
		return;
	}
	size_t n = reply->elements;
	op->more = n > op->limit;
	if (op->more)
		n = op->limit; /* the one past the page: for `more` only */
	struct store_record *recs = calloc(n ? n : 1, sizeof(*recs));
	if (!recs)
		abort();
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		/* since: oldest first; before: newest first, turned around */
		const redisReply *e = reply->element[op->since ? i : n - 1 - i];
		struct cluster_pub pub;
		if (cluster_entry_parse(e, &pub) < 0)
			continue;
		recs[kept] = pub.rec;
		recs[kept].room = op->room;
		recs[kept].room_len = op->room_len;
		kept++;
	}
	chat_op_set_records(op, recs, kept);
	free(recs);
	cluster_publish(c, op);
}

static void take_query(struct cluster *c, struct chat_op *op)
{
	if (!redis_link_up(c->cmd)) {
		stall(c, op);
		return;
	}
	struct cl_room *r = cluster_room(c, op->room, op->room_len);
	const char *argv[6];
	argv[1] = cluster_room_log(c, r);
	if (op->since) {
		argv[0] = "XRANGE";
		argv[2] = cluster_fmt(c, "(0-%llu", (unsigned long long)op->bound);
		argv[3] = "+";
	} else {
		argv[0] = "XREVRANGE";
		argv[2] = op->bound ? cluster_fmt(c, "(0-%llu", (unsigned long long)op->bound) : "+";
		argv[3] = "-";
	}
	argv[4] = "COUNT";
	argv[5] = cluster_fmt(c, "%u", op->limit + 1);
	struct call *call = call_new(c, op, r);
	if (!cluster_command(c->cmd, c, 6, argv, NULL, on_history, call)) {
		free(call);
		fail(c, op);
	}
}

/* ---- the server API's presence: the room's hash holds every node's members -------- */

static void on_who(void *arg, const redisReply *reply)
{
	struct call *call = arg;
	struct cluster *c = call->c;
	struct chat_op *op = call->op;
	free(call);
	if (!reply_ok(reply, "reading presence") || reply->type != REDIS_REPLY_ARRAY) {
		fail(c, op);
		return;
	}
	/* each value is a user's JSON object, as the join script stored it */
	struct jbuf users;
	jbuf_init(&users);
	jbuf_raw(&users, "[", 1);
	size_t listed = 0;
	for (size_t i = 0; i < reply->elements && listed < CHAT_API_PRESENCE_MAX; i++) {
		const redisReply *e = reply->element[i];
		if (e->type != REDIS_REPLY_STRING)
			continue;
		if (listed++)
			jbuf_raw(&users, ",", 1);
		jbuf_raw(&users, e->str, e->len);
	}
	jbuf_raw(&users, "]", 1);
	ev_presence_users(&c->out, op->room, op->room_len, reply->elements, jbuf_json(&users), users.len);
	jbuf_free(&users);
	chat_op_set_json(op, jbuf_json(&c->out), c->out.len);
	cluster_publish(c, op);
}

static void take_roster(struct cluster *c, struct chat_op *op)
{
	if (!redis_link_up(c->cmd)) {
		fail(c, op);
		return;
	}
	const char *argv[2] = { "HVALS",
				cluster_fmt(c, "ringcast:room:{%.*s}:who", (int)op->room_len, op->room) };
	struct call *call = call_new(c, op, NULL);
	if (!cluster_command(c->cmd, c, 2, argv, NULL, on_who, call)) {
		free(call);
		fail(c, op);
	}
}

/* ---- what the edges submit ------------------------------------------------------ */

static void take(struct cluster *c, struct chat_op *op)
{
	switch (op->kind) {
	case CHAT_OP_MESSAGE:
		take_message(c, op);
		break;
	case CHAT_OP_QUERY:
		take_query(c, op);
		break;
	case CHAT_OP_ROSTER:
		take_roster(c, op);
		break;
	case CHAT_OP_KICK:
		/* this node's edges only: other nodes' connections are not
		 * reached (docs/protocol.md) */
		cluster_publish(c, op);
		break;
	case CHAT_OP_EVENT:
		if (op->change == ROSTER_JOIN)
			take_join(c, op);
		else if (op->change == ROSTER_LEAVE)
			take_leave(c, op);
		else
			take_nick(c, op);
		break;
	}
}

static void on_incoming(void *arg)
{
	struct cluster *c = arg;
	struct chat_op *op = sequencer_take_incoming(c->seq);
	while (op) {
		struct chat_op *next = op->next;
		take(c, op);
		op = next;
	}
}

/* ---- the node in Redis: id, heartbeat, member ids ------------------------------- */

static void update_ready(struct cluster *c)
{
	const char *why = !redis_link_up(c->cmd)   ? "redis unreachable"
			  : !redis_link_up(c->sub) ? "redis subscriber unreachable"
			  : !c->node || !c->registered ? "joining the cluster"
			  : !sequencer_member_ids_left(c->seq) ? "waiting for member ids"
							     : NULL;
	bool ready = why == NULL;
	if (ready == atomic_load(&c->ready) && why == c->why_not)
		return;
	atomic_store(&c->ready, ready);
	c->why_not = why;
	if (c->config.on_ready)
		c->config.on_ready(c->config.arg, ready, why);
}

static void on_member_ids(void *arg, const redisReply *reply)
{
	struct cluster *c = arg;
	c->asking_ids = false;
	if (!reply_ok(reply, "member ids") || reply->type != REDIS_REPLY_INTEGER)
		return;
	uint64_t last = (uint64_t)reply->integer;
	if (last >= UINT32_MAX) {
		log_error("cluster: member ids ran out (ringcast:member-ids is %llu)",
			  (unsigned long long)last);
		return;
	}
	sequencer_add_member_ids(c->seq, (uint32_t)(last - ID_BLOCK + 1), ID_BLOCK);
	update_ready(c);
}

static void top_up_member_ids(struct cluster *c)
{
	if (c->asking_ids || sequencer_member_ids_left(c->seq) >= ID_LOW)
		return;
	const char *argv[3] = { "INCRBY", "ringcast:member-ids", cluster_fmt(c, "%d", ID_BLOCK) };
	c->asking_ids = cluster_command(c->cmd, c, 3, argv, NULL, on_member_ids, c);
}

/* Every membership of this node into Redis again (those it has are
 * only refreshed), then the leaves it missed. */
static void restore(struct cluster *c)
{
	for (size_t b = 0; b < CLUSTER_ROOM_BUCKETS; b++) {
		for (struct cl_room *r = c->rooms[b]; r; r = r->next) {
			for (uint32_t i = 0; i < r->local.count; i++) {
				const struct roster_entry *e = &r->local.entries[i];
				struct chat_op *op = chat_op_new(CHAT_OP_EVENT, CLUSTER_ORIGIN_NONE, r->name,
								 r->name_len);
				struct chat_member who = { .id = e->id,
							   .name = (char *)roster_entry_name(e),
							   .user_id = (char *)roster_entry_user_id(e) };
				chat_op_set_member(op, &who);
				send_join_script(c, r, op, true, NULL, NULL);
				chat_op_release(op);
			}
		}
	}
	struct chat_op *op;
	while ((op = op_queue_pop(&c->left_offline))) {
		struct cl_room *r = cluster_room(c, op->room, op->room_len);
		if (!roster_has(&r->local, op->member_id)) /* not back meanwhile */
			send_leave_script(c, r, op, NULL, NULL);
		chat_op_release(op);
	}
}

static void on_heartbeat(void *arg, const redisReply *reply)
{
	struct cluster *c = arg;
	if (!reply_ok(reply, "heartbeat") || reply->type != REDIS_REPLY_INTEGER)
		return;
	if (reply->integer == 1 && c->registered) {
		log_warn("cluster: node %llu was taken for dead (silent over %d ms); its members are "
			 "back in presence", (unsigned long long)c->node, NODE_TIMEOUT_MS);
		restore(c);
	}
	if (!c->registered)
		log_info("cluster: node %llu is in the cluster", (unsigned long long)c->node);
	c->registered = true;
	update_ready(c);
}

static void heartbeat(struct cluster *c)
{
	const char *keys[1] = { "ringcast:nodes" };
	const char *args[2] = { cluster_fmt(c, "%llu", (unsigned long long)c->node),
				cluster_fmt(c, "%d", NODE_TIMEOUT_MS) };
	cluster_eval(c, SCRIPT_HEARTBEAT, 1, keys, 2, args, NULL, on_heartbeat, c);
	c->next_heartbeat_ms = now_ms() + HEARTBEAT_MS;
}

static void on_node_id(void *arg, const redisReply *reply)
{
	struct cluster *c = arg;
	if (!reply_ok(reply, "node id") || reply->type != REDIS_REPLY_INTEGER)
		return; /* asked again when the link is back */
	c->node = (uint64_t)reply->integer;
	heartbeat(c);
	restore(c);
	top_up_member_ids(c);
	unstall(c);
}

static void on_script_loaded(void *arg, const redisReply *reply)
{
	(void)arg;
	reply_ok(reply, "loading a script");
}

static void cmd_up(void *ctx, struct redis_link *link)
{
	struct cluster *c = ctx;
	(void)link;
	for (int s = 0; s < SCRIPT_COUNT; s++) {
		const char *argv[3] = { "SCRIPT", "LOAD", c->scripts[s].lua };
		redis_link_command(c->cmd, 3, argv, NULL, on_script_loaded, c);
	}
	if (!c->node) {
		const char *argv[2] = { "INCR", "ringcast:node-ids" };
		redis_link_command(c->cmd, 2, argv, NULL, on_node_id, c);
	} else {
		heartbeat(c);
		restore(c);
		top_up_member_ids(c);
		unstall(c);
	}
	cluster_rooms_fill_pending(c);
	update_ready(c);
}

static void link_down(void *ctx, struct redis_link *link)
{
	struct cluster *c = ctx;
	if (link == c->sub)
		cluster_rooms_subscriber(c, false);
	update_ready(c);
}

static void sub_up(void *ctx, struct redis_link *link)
{
	struct cluster *c = ctx;
	(void)link;
	cluster_rooms_subscriber(c, true);
	update_ready(c);
}

static void sub_push(void *ctx, struct redis_link *link, const redisReply *reply)
{
	(void)link;
	cluster_room_push(ctx, reply);
}

/* ---- the loop ----------------------------------------------------------------- */

static struct redis_link *link_of(struct cluster *c, uint32_t slot)
{
	return slot == CMD_SLOT ? c->cmd : c->sub;
}

static void on_connect(void *ctx, uint32_t slot, uint32_t gen, int res)
{
	redis_link_on_connect(link_of(ctx, slot), gen, res);
}

static void on_recv(void *ctx, uint32_t slot, uint32_t gen, int res, uint8_t *data, bool more)
{
	redis_link_on_recv(link_of(ctx, slot), gen, res, data, more);
}

static void on_send(void *ctx, uint32_t slot, uint32_t gen, int res, bool held)
{
	(void)held;
	redis_link_on_send(link_of(ctx, slot), gen, res);
}

static void on_shutdown(void *ctx, uint32_t slot, uint32_t gen, int res)
{
	redis_link_on_shutdown(link_of(ctx, slot), gen, res);
}

static void on_tick(void *ctx)
{
	struct cluster *c = ctx;
	uint64_t now = now_ms();
	redis_link_tick(c->cmd, now);
	redis_link_tick(c->sub, now);
	give_up_stalled(c, now);
	if (c->node && redis_link_up(c->cmd) && now >= c->next_heartbeat_ms) {
		heartbeat(c);
		top_up_member_ids(c);
		cluster_rooms_fill_pending(c);
	}
	update_ready(c);
}

static bool before_wait(void *ctx)
{
	struct cluster *c = ctx;
	redis_link_flush(c->cmd);
	redis_link_flush(c->sub);
	sequencer_wake_edges(c->seq);
	return false;
}

static void on_accept(void *ctx, int res, bool more)
{
	(void)ctx, (void)res, (void)more;
}

static void on_send_released(void *ctx, uint32_t slot, uint32_t gen)
{
	(void)ctx, (void)slot, (void)gen;
}

static void on_signal(void *ctx, int signo)
{
	(void)ctx, (void)signo;
}

static void on_stop(void *arg)
{
	struct cluster *c = arg;
	uint64_t v;
	if (read(c->stop_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_error("cluster: stop eventfd: %s", strerror(errno));
	loop_stop(c->loop);
}

static void *run(void *arg)
{
	struct cluster *c = arg;
	static const struct loop_handlers handlers = {
		.on_accept = on_accept, .on_recv = on_recv, .on_send = on_send,
		.on_send_released = on_send_released, .on_shutdown = on_shutdown,
		.on_tick = on_tick, .on_signal = on_signal, .before_wait = before_wait,
		.on_connect = on_connect,
	};
	c->loop = loop_new(&(struct loop_config){ .sq_entries = 256, .cq_entries = 1024,
						   .buf_count = 64, .buf_size = 64 * 1024,
						   .tick_ms = TICK_MS },
			   &handlers, c);
	if (!c->loop) {
		log_error("cluster: no ring for the Redis links");
		return NULL;
	}
	static const struct redis_link_callbacks cmd_cb = { .on_up = cmd_up, .on_down = link_down };
	static const struct redis_link_callbacks sub_cb = { .on_up = sub_up, .on_down = link_down,
							    .on_push = sub_push };
	c->cmd = redis_link_new(c->loop, &(struct redis_link_config){
		.address = c->config.redis, .name = "redis commands", .slot = CMD_SLOT }, &cmd_cb, c);
	c->sub = redis_link_new(c->loop, &(struct redis_link_config){
		.address = c->config.redis, .name = "redis subscriber", .subscriber = true,
		.slot = SUB_SLOT }, &sub_cb, c);
	loop_watch_readable(c->loop, sequencer_incoming_fd(c->seq), on_incoming, c);
	loop_watch_readable(c->loop, c->stop_fd, on_stop, c);
	redis_link_start(c->cmd);
	redis_link_start(c->sub);
	loop_run(c->loop);
	redis_link_free(c->cmd);
	redis_link_free(c->sub);
	loop_free(c->loop);
	return NULL;
}

/* ---- life ---------------------------------------------------------------------- */

struct cluster *cluster_new(const struct cluster_config *cfg)
{
	struct cluster *c = calloc(1, sizeof(*c));
	if (!c)
		abort();
	c->config = *cfg;
	c->seq = cfg->sequencer;
	c->scratch = malloc(SCRATCH_BYTES);
	if (!c->scratch)
		abort();
	jbuf_init(&c->out);
	cluster_scripts_init(c->scripts);
	atomic_init(&c->ready, false);
	c->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->stop_fd < 0) {
		log_error("cluster: eventfd: %s", strerror(errno));
		cluster_free(c);
		return NULL;
	}
	int err = thread_start(&c->thread, "rc-cluster", run, c);
	if (err) {
		log_error("cluster: thread: %s", strerror(err));
		close(c->stop_fd);
		c->stop_fd = -1;
		cluster_free(c);
		return NULL;
	}
	return c;
}

void cluster_free(struct cluster *c)
{
	if (!c)
		return;
	if (c->stop_fd >= 0) {
		uint64_t one = 1;
		if (write(c->stop_fd, &one, sizeof(one)) < 0)
			log_error("cluster: stop eventfd: %s", strerror(errno));
		pthread_join(c->thread, NULL);
		close(c->stop_fd);
	}
	struct chat_op *op;
	while ((op = op_queue_pop(&c->posted)))
		chat_op_release(op);
	while ((op = op_queue_pop(&c->left_offline)))
		chat_op_release(op);
	while ((op = op_queue_pop(&c->stalled)))
		chat_op_release(op);
	cluster_rooms_free(c);
	jbuf_free(&c->out);
	free(c->scratch);
	free(c);
}
