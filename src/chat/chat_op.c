/* chat_op.c: making, filling and freeing ops (chat_op.h). */
#include "chat_op.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

static char *copy(const char *s, size_t len)
{
	char *c = malloc(len + 1);
	if (!c)
		abort();
	memcpy(c, s, len);
	c[len] = 0;
	return c;
}

struct chat_op *chat_op_new(enum chat_op_kind kind, unsigned origin, const char *room,
			    size_t room_len)
{
	struct chat_op *op = calloc(1, sizeof(*op));
	if (!op)
		abort();
	op->kind = kind;
	op->origin = (uint16_t)origin;
	atomic_init(&op->refs, 1);
	memcpy(op->room, room, room_len);
	op->room_len = room_len;
	return op;
}

void chat_op_set_member(struct chat_op *op, const struct chat_member *m)
{
	op->member_id = m->id;
	op->name = m->name ? copy(m->name, strlen(m->name)) : NULL;
	op->user_id = m->user_id ? copy(m->user_id, strlen(m->user_id)) : NULL;
}

void chat_op_set_json(struct chat_op *op, const char *json, size_t len)
{
	op->json = copy(json, len);
	op->json_len = len;
}

struct shared_text *shared_text_new(const char *s, size_t len)
{
	struct shared_text *t = malloc(sizeof(*t) + len);
	if (!t)
		abort();
	atomic_init(&t->refs, 1);
	t->len = len;
	memcpy(t->data, s, len);
	return t;
}

struct shared_text *shared_text_ref(struct shared_text *t)
{
	atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
	return t;
}

void shared_text_unref(struct shared_text *t)
{
	if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
		free(t);
}

void chat_op_set_text(struct chat_op *op, const char *text, size_t len)
{
	op->text = copy(text, len);
	op->text_len = len;
}

void chat_op_set_records(struct chat_op *op, const struct store_record *recs, size_t n)
{
	op->records = calloc(n ? n : 1, sizeof(*recs));
	if (!op->records)
		abort();
	for (size_t i = 0; i < n; i++) {
		struct store_record *r = &op->records[i];
		*r = recs[i];
		r->room = copy(recs[i].room, recs[i].room_len);
		r->from = copy(recs[i].from, recs[i].from_len);
		r->name = copy(recs[i].name, recs[i].name_len);
		r->text = copy(recs[i].text, recs[i].text_len);
	}
	op->nrecords = n;
}

void chat_op_record(const struct chat_op *op, struct store_record *rec, char from[16],
		    char name[24])
{
	*rec = (struct store_record){ .room = op->room, .room_len = op->room_len, .id = op->id,
				      .ts = op->ts, .text = op->text, .text_len = op->text_len };
	rec->from = op->user_id ? op->user_id : from;
	rec->from_len = op->user_id ? strlen(op->user_id)
				    : (size_t)snprintf(from, 16, "%u", op->member_id);
	rec->name = op->name ? op->name : name;
	rec->name_len = op->name ? strlen(op->name)
				 : (size_t)snprintf(name, 24, "User %u", op->member_id);
}

void chat_op_release(struct chat_op *op)
{
	if (!op || atomic_fetch_sub_explicit(&op->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < op->nrecords; i++) {
		free((char *)op->records[i].room);
		free((char *)op->records[i].from);
		free((char *)op->records[i].name);
		free((char *)op->records[i].text);
	}
	free(op->records);
	free(op->name);
	free(op->user_id);
	free(op->text);
	free(op->rooms);
	free(op->json);
	shared_text_unref(op->users);
	free(op);
}
