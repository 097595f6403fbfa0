/* redis_link.h: one connection to a Redis server, on a struct loop.
 *
 * The ring owns the socket (connect, send and recv are ring operations,
 * nothing blocks); hiredis only formats commands and reads replies (RESP2).
 * A link connects, authenticates and selects its database by itself, and
 * when the connection is lost or Redis stops answering it fails every
 * command still waiting for a reply and reconnects with a jittered,
 * growing backoff. It knows Redis, never chat.
 *
 * The loop's owner (one thread) routes the completions for the link's
 * slot to it, calls redis_link_tick on every tick and redis_link_flush
 * before the loop waits. */
#ifndef RINGCAST_REDIS_LINK_H
#define RINGCAST_REDIS_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <hiredis/hiredis.h>

struct loop;
struct redis_link;

/* Where Redis is: from redis://[user:password@]host:port[/db]. */
struct redis_address {
	struct sockaddr_storage addr; /* resolved once, by redis_address_parse */
	socklen_t addr_len;
	char host[256];               /* as written, for logs */
	uint16_t port;
	char user[128];               /* "" : none (AUTH password alone) */
	char password[512];           /* "" : no AUTH */
	unsigned db;
};

/* Parse url (and resolve its host, which may block: call it at start-up,
 * not on a loop). 0, or -1 with why in err. */
int redis_address_parse(const char *url, struct redis_address *out, char *err, size_t err_len);

/* reply: valid only during the call; NULL when the link went down before
 * the answer came (the command may or may not have been carried out). */
typedef void (*redis_reply_fn)(void *arg, const redisReply *reply);

struct redis_link_callbacks {
	/* Connected and ready (AUTH and SELECT answered): commands may go. */
	void (*on_up)(void *ctx, struct redis_link *link);
	/* Lost (every waiting command was failed with NULL just before). */
	void (*on_down)(void *ctx, struct redis_link *link);
	/* A subscriber link's pushes: message, subscribe and unsubscribe
	 * confirmations (RESP2 arrays); never called on a command link. */
	void (*on_push)(void *ctx, struct redis_link *link, const redisReply *reply);
};

struct redis_link_config {
	const struct redis_address *address; /* kept by reference */
	const char *name;          /* for logs: "redis commands", "redis subscriber" */
	bool subscriber;           /* replies after the handshake are pushes */
	uint32_t slot;             /* the loop slot its completions carry */
	unsigned reply_timeout_ms; /* no answer to the oldest command (or a ping) this long: reconnect (0: 5000) */
	unsigned backoff_min_ms;   /* first reconnect delay (0: 100) */
	unsigned backoff_max_ms;   /* largest (0: 5000) */
};

struct redis_link *redis_link_new(struct loop *loop, const struct redis_link_config *cfg,
				  const struct redis_link_callbacks *cb, void *ctx);
/* Closes the socket (no callbacks, waiting commands dropped silently).
 * Not from the link's own callbacks; no completion for its slot may be
 * routed to it afterwards (free it once its loop has stopped for good). */
void redis_link_free(struct redis_link *link);

/* First connect; afterwards the link reconnects by itself. */
void redis_link_start(struct redis_link *link);
bool redis_link_up(const struct redis_link *link);

/* Queue a command (argv[i] of lens[i] bytes); fn(arg, reply) follows in
 * order. false (and nothing queued, fn never called) when the link is not
 * up. On a subscriber link fn must be NULL: answers come as pushes.
 * A command that blocks in Redis (BLPOP ...) longer than reply_timeout_ms
 * looks like a Redis that stopped answering: keep those off a link. */
bool redis_link_command(struct redis_link *link, int argc, const char **argv, const size_t *lens,
			redis_reply_fn fn, void *arg);

/* The loop's completions for cfg->slot. gen is checked by the link:
 * completions from an earlier socket are ignored. */
void redis_link_on_connect(struct redis_link *link, uint32_t gen, int res);
void redis_link_on_recv(struct redis_link *link, uint32_t gen, int res, const uint8_t *data,
			bool more);
void redis_link_on_send(struct redis_link *link, uint32_t gen, int res);
/* The link never asks the ring for a shutdown (it shuts a lost socket
 * down itself): kept for owners that route every operation; ignored. */
void redis_link_on_shutdown(struct redis_link *link, uint32_t gen, int res);

/* Every loop tick: reconnect when its backoff is over, ping when idle,
 * give up on a connection whose answers stopped. now_ms: CLOCK_MONOTONIC
 * in milliseconds (the link stamps what it sends with the same clock). */
void redis_link_tick(struct redis_link *link, uint64_t now_ms);
/* Before the loop waits: one send for everything queued in this pass. */
void redis_link_flush(struct redis_link *link);

struct redis_link_stats {
	uint64_t connects;     /* successful handshakes */
	uint64_t disconnects;
	uint64_t commands;
	uint64_t failed;       /* commands failed by a lost connection */
};
const struct redis_link_stats *redis_link_stats(const struct redis_link *link);

#endif
