/* cluster_wire.h: reading what Redis hands a node: a room's publications
 * and its stream entries (formats in cluster_scripts.c). Pure functions of
 * their input, so the parsers can be tested and fuzzed alone. */
#ifndef RINGCAST_CLUSTER_WIRE_H
#define RINGCAST_CLUSTER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "store.h"

enum cluster_pub_kind {
	PUB_MESSAGE,
	PUB_JOIN,
	PUB_LEAVE,
	PUB_NICK,
};

/* Strings point into the parsed input (not NUL-terminated). */
struct cluster_pub {
	enum cluster_pub_kind kind;
	uint64_t node;             /* the node that wrote it */
	uint64_t nseq;             /* that node's number for it (messages, nicks) */
	struct store_record rec;   /* PUB_MESSAGE; room left empty */
	uint32_t member;           /* events: who */
	uint64_t count;            /* JOIN, LEAVE: the room's members after it */
	const char *rooms;         /* NICK: its rooms, space-separated */
	size_t rooms_len;
	const char *json;          /* events: the event as members get it */
	size_t json_len;
};

/* 0, or -1 when p is not a publication this version writes. */
int cluster_pub_parse(const char *p, size_t n, struct cluster_pub *out);

/* A stream entry ([id, [field, value, ...]]) as a message; 0 or -1. */
int cluster_entry_parse(const redisReply *entry, struct cluster_pub *out);

/* "0-N" -> N; 0 when it is not such an id. */
uint64_t cluster_stream_id(const char *s, size_t n);

#endif
