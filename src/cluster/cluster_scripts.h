/* cluster_scripts.h: the Lua scripts that make each cluster step atomic in
 * Redis (docs/cluster.md lists the keys they use).
 *
 * Each room has a stream (its order and history: an entry's id 0-N is the
 * room's message N), a hash of who is in it (member id -> the user's JSON)
 * and a pub/sub channel; every change is written and published in one
 * script, so a node that reads the stream after a lost publication finds
 * exactly what it missed. */
#ifndef RINGCAST_CLUSTER_SCRIPTS_H
#define RINGCAST_CLUSTER_SCRIPTS_H

enum cluster_script {
	SCRIPT_POST,      /* append a message and publish it; returns its id */
	SCRIPT_JOIN,      /* a member in; returns count, last id, listed users */
	SCRIPT_LEAVE,     /* a member out; returns count */
	SCRIPT_NICK,      /* a member's new name in every room it is in */
	SCRIPT_HEARTBEAT, /* this node is alive; dead nodes' members leave */
	SCRIPT_COUNT
};

struct cluster_script_text {
	const char *lua;
	char sha1[41]; /* hex, for EVALSHA */
};

/* The scripts with their SHA-1s computed. */
void cluster_scripts_init(struct cluster_script_text out[SCRIPT_COUNT]);

#endif
