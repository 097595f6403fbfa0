/* sequencer.c: the thread that puts every room's events in one order
 * (include/sequencer.h).
 *
 * Edges submit ops to one inbound list and wake the thread with an
 * eventfd. The thread numbers messages per room, hands them to the store,
 * and publishes ops to every edge's inbox in the order it took them: an op
 * that needs nothing from the store (a join, say) waits behind the store
 * work submitted before it, so nothing overtakes a message still being
 * committed. An edge gets its own copy of the JSON (chat.c makes its frame
 * from it), so no buffer a recipient's queue holds is shared between
 * threads: only the op itself, freed by the last edge to apply it. */
#include "sequencer.h"

#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "chat_event.h"
#include "chat_op.h"
#include "json_out.h"
#include "log.h"
#include "thread.h"
#include "name_hash.h"
#include "roster.h"
#include "store.h"

#define SEQ_BUCKETS 4096
#define TRIM_AFTER_OPS 4096
#define QUIET_MS 250
/* External ids from here up are this node's own, not the cluster's
 * blocks (which stay below): unique here, perhaps not cluster-wide. */
#define UNSHARED_IDS 0x80000000u

/* A room's last id and who is in it, on every edge. */
struct seq_room {
	struct seq_room *next;
	uint64_t last_id;
	struct roster roster;
	/* What a presence lists now (the roster's first presence_list_max),
	 * written once and shared by every join until one of those changes;
	 * NULL: to be written. */
	struct shared_text *users;
	size_t name_len;
	char name[];
};

/* What one edge has yet to take. */
struct inbox {
	pthread_mutex_t lock;
	struct chat_op **ops;
	size_t n, cap;
	int efd;
	bool woken; /* this pass published to it: write the eventfd once */
};

struct op_list {
	struct chat_op *head, *tail;
};

struct sequencer {
	struct sequencer_config config;
	struct store *store;
	unsigned edges;
	struct inbox *inboxes;
	atomic_uint next_member_id;
	/* External: the blocks of cluster-wide ids the orderer added. */
	pthread_mutex_t ids_lock;
	uint32_t ids_next, ids_end, spare_first, spare_count;
	pthread_t thread;
	bool started;

	pthread_mutex_t lock;      /* guards incoming and stopping */
	struct op_list incoming;
	bool stopping;
	int efd;                   /* incoming has ops, or stopping */

	/* The thread's own: */
	struct op_list waiting;    /* store work, and what came after it, in order */
	struct seq_room *rooms[SEQ_BUCKETS];
	struct jbuf out;
};

static void list_push(struct op_list *l, struct chat_op *op)
{
	op->next = NULL;
	if (l->tail)
		l->tail->next = op;
	else
		l->head = op;
	l->tail = op;
}

static struct chat_op *list_pop(struct op_list *l)
{
	struct chat_op *op = l->head;
	if (op) {
		l->head = op->next;
		if (!l->head)
			l->tail = NULL;
	}
	return op;
}

static void wake(int efd)
{
	uint64_t one = 1;
	if (write(efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_error("sequencer: eventfd write: %s", strerror(errno));
}

static void drain_fd(int efd)
{
	uint64_t count;
	if (read(efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_error("sequencer: eventfd read: %s", strerror(errno));
}

/* ---- rooms ------------------------------------------------------------------ */

static uint32_t hash_name(const char *s, size_t n)
{
	return name_hash(s, n) % SEQ_BUCKETS;
}

static struct seq_room *room_find(struct sequencer *seq, const char *name, size_t len)
{
	for (struct seq_room *r = seq->rooms[hash_name(name, len)]; r; r = r->next)
		if (r->name_len == len && memcmp(r->name, name, len) == 0)
			return r;
	return NULL;
}

static struct seq_room *room_of(struct sequencer *seq, const char *name, size_t len)
{
	struct seq_room *r = room_find(seq, name, len);
	if (r)
		return r;
	struct seq_room **bucket = &seq->rooms[hash_name(name, len)];
	r = calloc(1, sizeof(*r) + len + 1);
	if (!r)
		abort();
	memcpy(r->name, name, len);
	r->name_len = len;
	r->next = *bucket;
	*bucket = r;
	return r;
}

void sequencer_load_room(struct sequencer *seq, const struct store_room *info)
{
	struct seq_room *r = room_of(seq, info->room, info->room_len);
	if (info->last_id > r->last_id)
		r->last_id = info->last_id;
	/* guest ids go on past the stored senders, as chat.c's load does */
	if (info->numeric_sender_max >= atomic_load(&seq->next_member_id) &&
	    info->numeric_sender_max < UINT32_MAX)
		atomic_store(&seq->next_member_id, (uint32_t)info->numeric_sender_max + 1);
}

/* ---- publishing ------------------------------------------------------------- */

static void inbox_put(struct sequencer *seq, unsigned edge, struct chat_op *op)
{
	struct inbox *in = &seq->inboxes[edge];
	pthread_mutex_lock(&in->lock);
	if (in->n == in->cap) {
		in->cap = in->cap ? in->cap * 2 : 64;
		in->ops = realloc(in->ops, in->cap * sizeof(*in->ops));
		if (!in->ops)
			abort();
	}
	in->ops[in->n++] = op;
	pthread_mutex_unlock(&in->lock);
	in->woken = true;
}

/* To every edge; a failed message or a query's answer, to its origin alone. */
static void publish(struct sequencer *seq, struct chat_op *op)
{
	bool everyone = op->kind == CHAT_OP_EVENT || op->kind == CHAT_OP_KICK ||
			(op->kind == CHAT_OP_MESSAGE && !op->err);
	if (!everyone) {
		inbox_put(seq, op->origin, op);
		return;
	}
	atomic_store(&op->refs, seq->edges);
	for (unsigned e = 0; e < seq->edges; e++)
		inbox_put(seq, e, op);
}

/* Ops that waited only for what was before them: out, up to the next one
 * the store still has. */
static void publish_unblocked(struct sequencer *seq)
{
	while (seq->waiting.head &&
	       (seq->waiting.head->kind == CHAT_OP_EVENT || seq->waiting.head->kind == CHAT_OP_KICK))
		publish(seq, list_pop(&seq->waiting));
}

/* ---- the store's answers, in the order they were asked ------------------------ */

static struct chat_op *store_done(struct sequencer *seq, void *ctx)
{
	publish_unblocked(seq);
	struct chat_op *op = list_pop(&seq->waiting);
	if (op != ctx)
		log_error("sequencer: the store answered out of order");
	return op;
}

static void on_appended(void *ctx, int err)
{
	struct chat_op *op = ctx;
	struct sequencer *seq = op->seq;
	op = store_done(seq, op);
	op->err = err;
	publish(seq, op);
	publish_unblocked(seq);
}

static void on_queried(void *ctx, const struct store_record *recs, size_t n, bool more, int err)
{
	struct chat_op *op = ctx;
	struct sequencer *seq = op->seq;
	op = store_done(seq, op);
	op->err = err;
	op->more = more;
	if (!err)
		chat_op_set_records(op, recs, n);
	publish(seq, op);
	publish_unblocked(seq);
}

/* ---- taking ops in ---------------------------------------------------------- */

/* The message's id, then its JSON (every edge frames a copy of it), then
 * the store; without one it is out at once. */
static void take_message(struct sequencer *seq, struct chat_op *op)
{
	struct seq_room *r = room_of(seq, op->room, op->room_len);
	op->id = ++r->last_id;
	char from[16], name[24];
	struct store_record rec;
	chat_op_record(op, &rec, from, name);
	jbuf_reset(&seq->out);
	ev_message_record(&seq->out, &rec);
	chat_op_set_json(op, jbuf_json(&seq->out), seq->out.len);
	if (!seq->store) {
		publish(seq, op);
		return;
	}
	store_append(seq->store, &rec, op);
	list_push(&seq->waiting, op);
}

static void users_changed(struct seq_room *r)
{
	shared_text_unref(r->users);
	r->users = NULL;
}

/* The roster entry at pos changed (-1: none did). */
static void listed_changed(struct sequencer *seq, struct seq_room *r, int64_t pos)
{
	if (pos >= 0 && (uint64_t)pos < seq->config.presence_list_max)
		users_changed(r);
}

/* Who is where changes here, in the rooms' order; a join's presence and
 * a join's or leave's event are written now, with the count at this
 * point, once for every edge. Rooms larger than presence_events_max get
 * no join/leave events (N arrivals would cost N² deliveries). */
static void take_event(struct sequencer *seq, struct chat_op *op)
{
	struct chat_member who = { .id = op->member_id, .name = op->name, .user_id = op->user_id };
	if (op->change == ROSTER_NICK) {
		const char *name = op->rooms;
		for (uint8_t k = 0; k < op->nrooms; k++, name += strlen(name) + 1) {
			struct seq_room *r = room_of(seq, name, strlen(name));
			listed_changed(seq, r, roster_rename(&r->roster, op->member_id, op->name));
		}
		return;
	}
	struct seq_room *r = room_of(seq, op->room, op->room_len);
	bool join = op->change == ROSTER_JOIN;
	/* Several connections may hold one guest id (a reload racing its old
	 * connection, a second tab): only the first in and the last out (or
	 * its grace running out) are news. */
	struct roster_entry *held = roster_find(&r->roster, op->member_id);
	bool silent = false;
	if (join && held) {
		held->holders++;
		silent = true;
	} else if (!join && held && op->change != ROSTER_GONE && held->holders > 1) {
		held->holders--;
		silent = true;
	} else if (op->change == ROSTER_AWAY && held) {
		held->holders = 0; /* kept, silently, until its ROSTER_GONE */
		silent = true;
	} else if (op->change == ROSTER_GONE && (!held || held->holders)) {
		silent = true; /* taken back in time, or gone already */
	} else if (op->change == ROSTER_AWAY) {
		silent = true; /* never entered */
	}
	if (silent) {
		if (join) {
			if (!r->users) {
				ev_users_roster(&seq->out, &r->roster, seq->config.presence_list_max);
				r->users = shared_text_new(jbuf_json(&seq->out), seq->out.len);
			}
			op->users = shared_text_ref(r->users);
		}
		op->count = r->roster.count;
		op->announce = false;
		ev_member_event(&seq->out, join ? "join" : "leave", op->room, op->room_len, &who, op->count);
		chat_op_set_json(op, jbuf_json(&seq->out), seq->out.len);
		return;
	}
	if (join) {
		if (r->roster.count < seq->config.presence_list_max)
			users_changed(r); /* the newcomer is listed */
		roster_add(&r->roster, op->member_id, op->name, op->user_id);
		if (!r->users) {
			ev_users_roster(&seq->out, &r->roster, seq->config.presence_list_max);
			r->users = shared_text_new(jbuf_json(&seq->out), seq->out.len);
		}
		op->users = shared_text_ref(r->users);
	} else {
		listed_changed(seq, r, roster_remove(&r->roster, op->member_id));
	}
	op->count = r->roster.count;
	op->announce = op->count <= seq->config.presence_events_max;
	/* written even when the room is not told: a leaver hears its own */
	ev_member_event(&seq->out, join ? "join" : "leave", op->room, op->room_len, &who, op->count);
	chat_op_set_json(op, jbuf_json(&seq->out), seq->out.len);
}

/* The API's presence: the roster already knows every edge's members. */
static void take_roster(struct sequencer *seq, struct chat_op *op)
{
	/* found, not made: asking about a room must not create one */
	static const struct roster nobody;
	struct seq_room *r = room_find(seq, op->room, op->room_len);
	const struct roster *roster = r ? &r->roster : &nobody;
	ev_users_roster(&seq->out, roster, CHAT_API_PRESENCE_MAX);
	struct shared_text *users = shared_text_new(jbuf_json(&seq->out), seq->out.len);
	ev_presence_users(&seq->out, op->room, op->room_len, roster->count, users->data, users->len);
	shared_text_unref(users);
	chat_op_set_json(op, jbuf_json(&seq->out), seq->out.len);
	publish(seq, op); /* to its origin alone, which waits for nothing else */
}

static void take(struct sequencer *seq, struct chat_op *op)
{
	op->seq = seq;
	switch (op->kind) {
	case CHAT_OP_MESSAGE:
		take_message(seq, op);
		break;
	case CHAT_OP_EVENT:
	case CHAT_OP_KICK:
		if (op->kind == CHAT_OP_EVENT)
			take_event(seq, op);
		if (seq->waiting.head)
			list_push(&seq->waiting, op); /* behind the store work before it */
		else
			publish(seq, op);
		break;
	case CHAT_OP_QUERY:
		if (op->since)
			store_query_since(seq->store, op->room, op->room_len, op->bound, op->limit, op);
		else
			store_query_before(seq->store, op->room, op->room_len, op->bound, op->limit, op);
		list_push(&seq->waiting, op);
		break;
	case CHAT_OP_ROSTER:
		take_roster(seq, op);
		break;
	}
}

/* ---- the thread ------------------------------------------------------------- */

static void wake_edges(struct sequencer *seq)
{
	for (unsigned e = 0; e < seq->edges; e++) {
		if (seq->inboxes[e].woken) {
			seq->inboxes[e].woken = false;
			wake(seq->inboxes[e].efd);
		}
	}
}

static void *run(void *arg)
{
	struct sequencer *seq = arg;
	const struct store_callbacks callbacks = { .appended = on_appended, .queried = on_queried };
	struct pollfd fds[2] = { { .fd = seq->efd, .events = POLLIN } };
	nfds_t nfds = 1;
	unsigned since_trim = 0;
	if (seq->store) {
		fds[1] = (struct pollfd){ .fd = store_event_fd(seq->store), .events = POLLIN };
		nfds = 2;
	}
	for (;;) {
		/* After a burst (a crowd joining, thousands of ops and their
		 * frames, freed on the edges), the freed heap goes back to the
		 * system once nothing has come for QUIET_MS, rather than staying
		 * at its peak. */
		int ready = poll(fds, nfds, since_trim >= TRIM_AFTER_OPS ? QUIET_MS : -1);
		if (ready < 0 && errno != EINTR) {
			log_error("sequencer: poll: %s", strerror(errno));
			break;
		}
		if (ready == 0) {
			malloc_trim(0);
			since_trim = 0;
			continue;
		}
		drain_fd(seq->efd);
		pthread_mutex_lock(&seq->lock);
		struct chat_op *op = seq->incoming.head;
		bool stopping = seq->stopping;
		seq->incoming.head = seq->incoming.tail = NULL;
		pthread_mutex_unlock(&seq->lock);
		while (op) {
			struct chat_op *next = op->next;
			take(seq, op);
			op = next;
			since_trim++;
		}
		if (seq->store)
			store_drain(seq->store, &callbacks);
		wake_edges(seq);
		if (stopping)
			break;
	}
	return NULL;
}

/* ---- the edges' side ---------------------------------------------------------- */

uint32_t sequencer_member_id(struct sequencer *seq)
{
	if (!seq->config.external)
		return atomic_fetch_add(&seq->next_member_id, 1);
	uint32_t id = 0;
	pthread_mutex_lock(&seq->ids_lock);
	if (seq->ids_next == seq->ids_end && seq->spare_count) {
		seq->ids_next = seq->spare_first;
		seq->ids_end = seq->spare_first + seq->spare_count;
		seq->spare_count = 0;
	}
	if (seq->ids_next < seq->ids_end)
		id = seq->ids_next++;
	else /* Redis never reached yet, or a crowd came while it is away */
		id = UNSHARED_IDS + (atomic_fetch_add(&seq->next_member_id, 1) & (UNSHARED_IDS - 1));
	pthread_mutex_unlock(&seq->ids_lock);
	return id;
}

void sequencer_add_member_ids(struct sequencer *seq, uint32_t first, uint32_t count)
{
	pthread_mutex_lock(&seq->ids_lock);
	if (seq->ids_next == seq->ids_end) {
		seq->ids_next = first;
		seq->ids_end = first + count;
	} else {
		seq->spare_first = first;
		seq->spare_count = count;
	}
	pthread_mutex_unlock(&seq->ids_lock);
}

uint32_t sequencer_member_ids_left(struct sequencer *seq)
{
	pthread_mutex_lock(&seq->ids_lock);
	uint32_t left = seq->ids_end - seq->ids_next + seq->spare_count;
	pthread_mutex_unlock(&seq->ids_lock);
	return left;
}

/* ---- an external orderer's side ------------------------------------------------ */

int sequencer_incoming_fd(const struct sequencer *seq)
{
	return seq->efd;
}

struct chat_op *sequencer_take_incoming(struct sequencer *seq)
{
	drain_fd(seq->efd);
	pthread_mutex_lock(&seq->lock);
	struct chat_op *ops = seq->incoming.head;
	seq->incoming.head = seq->incoming.tail = NULL;
	pthread_mutex_unlock(&seq->lock);
	return ops;
}

void sequencer_publish(struct sequencer *seq, struct chat_op *op)
{
	op->seq = seq;
	publish(seq, op);
}

void sequencer_wake_edges(struct sequencer *seq)
{
	wake_edges(seq);
}

int sequencer_edge_fd(const struct sequencer *seq, unsigned edge)
{
	return seq->inboxes[edge].efd;
}

void sequencer_submit(struct sequencer *seq, struct chat_op *op)
{
	pthread_mutex_lock(&seq->lock);
	list_push(&seq->incoming, op);
	bool first = seq->incoming.head == op;
	pthread_mutex_unlock(&seq->lock);
	if (first)
		wake(seq->efd); /* later ones in this pass find the thread already woken */
}

size_t sequencer_take(struct sequencer *seq, unsigned edge, struct chat_op ***ops)
{
	struct inbox *in = &seq->inboxes[edge];
	/* Clear the fd first: ops published after it leave it readable again. */
	drain_fd(in->efd);
	pthread_mutex_lock(&in->lock);
	*ops = in->ops;
	size_t n = in->n;
	in->ops = NULL;
	in->n = in->cap = 0;
	pthread_mutex_unlock(&in->lock);
	return n;
}

/* ---- life ------------------------------------------------------------------- */

struct sequencer *sequencer_new(const struct sequencer_config *cfg)
{
	struct sequencer *seq = calloc(1, sizeof(*seq));
	if (!seq)
		abort();
	seq->config = *cfg;
	if (!seq->config.presence_list_max)
		seq->config.presence_list_max = 100;
	if (!seq->config.presence_events_max)
		seq->config.presence_events_max = 100;
	unsigned edges = cfg->edges;
	seq->store = cfg->store;
	seq->edges = edges;
	atomic_init(&seq->next_member_id, 1);
	pthread_mutex_init(&seq->lock, NULL);
	pthread_mutex_init(&seq->ids_lock, NULL);
	jbuf_init(&seq->out);
	seq->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	seq->inboxes = calloc(edges, sizeof(*seq->inboxes));
	if (!seq->inboxes)
		abort();
	bool ok = seq->efd >= 0;
	for (unsigned e = 0; e < edges; e++) {
		pthread_mutex_init(&seq->inboxes[e].lock, NULL);
		seq->inboxes[e].efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		ok = ok && seq->inboxes[e].efd >= 0;
	}
	if (!ok) {
		log_error("sequencer: eventfd: %s", strerror(errno));
		sequencer_free(seq);
		return NULL;
	}
	if (cfg->external)
		return seq; /* the orderer's thread does the rest */
	int err = thread_start(&seq->thread, "rc-sequencer", run, seq);
	if (err) {
		log_error("sequencer: thread: %s", strerror(err));
		sequencer_free(seq);
		return NULL;
	}
	seq->started = true;
	return seq;
}

static void release_list(struct op_list *l)
{
	struct chat_op *op;
	while ((op = list_pop(l)))
		chat_op_release(op);
}

void sequencer_free(struct sequencer *seq)
{
	if (!seq)
		return;
	if (seq->started) {
		pthread_mutex_lock(&seq->lock);
		seq->stopping = true;
		pthread_mutex_unlock(&seq->lock);
		wake(seq->efd);
		pthread_join(seq->thread, NULL);
	}
	release_list(&seq->incoming);
	release_list(&seq->waiting);
	for (unsigned e = 0; e < seq->edges; e++) {
		struct inbox *in = &seq->inboxes[e];
		for (size_t i = 0; i < in->n; i++)
			chat_op_release(in->ops[i]);
		free(in->ops);
		if (in->efd >= 0)
			close(in->efd);
		pthread_mutex_destroy(&in->lock);
	}
	free(seq->inboxes);
	for (size_t b = 0; b < SEQ_BUCKETS; b++) {
		struct seq_room *r = seq->rooms[b];
		while (r) {
			struct seq_room *next = r->next;
			roster_free(&r->roster);
			shared_text_unref(r->users);
			free(r);
			r = next;
		}
	}
	jbuf_free(&seq->out);
	if (seq->efd >= 0)
		close(seq->efd);
	pthread_mutex_destroy(&seq->lock);
	pthread_mutex_destroy(&seq->ids_lock);
	free(seq);
}
