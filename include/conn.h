/* conn.h: connection slots, their send queues and their lifecycle.
 *
 * A connection is a slot in the table of one struct conns: one per ring,
 * holding everything this layer keeps (the slots, free list, flush and
 * closing lists, timer wheel, clock, listener and counters). Two instances
 * share nothing, so a process may run one per thread. The connection layer
 * turns ring completions into calls on the protocol handlers above it,
 * keeps each connection's queue of shared frame buffers with one send in
 * flight, and frees a slot only once nothing in the kernel refers to it any
 * more. It knows no protocol: what a protocol keeps per connection lives
 * beside it in the same slot (conn_user, session.h). */
#ifndef RINGCAST_CONN_H
#define RINGCAST_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "timer_wheel.h"

struct buf;
struct conn_limits;
struct tls_server;
struct tls_session;

#define CONN_INLINE_QUEUE 4 /* a power of two, like every queue size */

enum conn_state {
	CONN_FREE = 0,
	CONN_OPEN,
	CONN_CLOSING,  /* flushing its last bytes, then shut down and drained */
};

struct conn {
	/* The socket as the loop names it: a descriptor, or LOOP_FD_DIRECT for
	 * the ring's file table entry at this slot; -1 once reset early (a held
	 * zero-copy send). */
	int fd;
	uint32_t slot;
	uint32_t gen;
	uint32_t last_rx;    /* tick of the last received byte */
	uint8_t state;       /* enum conn_state */
	uint8_t shut_pending; /* shutdown SQEs in flight */
	uint16_t flags;      /* CONN_F_* (conn.c) */
	/* Bytes from one slot to the next: with slot, how a connection finds
	 * its struct conns without a pointer back (this was padding). */
	uint32_t stride;

	/* Send queue: a ring of frame references, sent in order with one send
	 * in flight. q_sent is how much of the head frame already went out (while
	 * a zero-copy send holds its frames, how much from the head frame's start:
	 * it may run past it). */
	struct buf **q;     /* q_inline until it needs more room */
	uint16_t q_head, q_len, q_cap, q_inflight;
	uint16_t q_cipher;  /* TLS: leading entries already encrypted */
	uint16_t q_pinned;  /* leading entries conn_drop_queue keeps (the 101) */
	uint32_t q_sent;
	uint32_t q_bytes;   /* bytes queued and not yet sent (under 4 GiB: enqueue) */
	uint32_t q_progress; /* tick the queue last moved: bytes sent, or queued into an empty one */
	struct conn *flush_next;

	/* Input the protocol keeps across reads (conn_keep_input): a request
	 * or message that arrived in pieces. NULL while idle. */
	uint8_t *in;
	uint32_t in_len, in_cap;
	struct tw_node timer;

	struct tls_session *tls;  /* NULL for plain TCP */
	/* Room for a few queued frames without an allocation: most idle
	 * connections never need more. */
	struct buf *q_inline[CONN_INLINE_QUEUE];
};

/* After a send, a queue at or below this many bytes asks the protocol for
 * more (on_drained): catch-up is paced by it, the pipelined HTTP requests
 * too. Large enough that a reader is never starved between two loop passes. */
#define CONN_LOW_WATER (64 * 1024)

/* What the protocol layer does with a connection's events. ctx is the
 * pointer given to conns_new: the layer above's own state for this ring. */
struct conn_handlers {
	void (*on_open)(void *ctx, struct conn *c);
	/* data is writable and valid only during the call */
	void (*on_data)(void *ctx, struct conn *c, uint8_t *data, size_t len);
	void (*on_deadline)(void *ctx, struct conn *c);
	/* A send finished and at most CONN_LOW_WATER bytes are still queued:
	 * a reader paused for output may go on, a catch-up may queue more. */
	void (*on_drained)(void *ctx, struct conn *c);
	/* The connection is closing: release protocol state. Called once, never
	 * from inside another handler's call stack. */
	void (*on_closing)(void *ctx, struct conn *c);
};

struct conn_stats {
	uint64_t current;
	uint64_t total;
	uint64_t refused;          /* over --max-connections */
	uint64_t refused_per_ip;   /* over --max-per-ip */
	uint64_t frames_out;       /* frames fully sent */
	uint64_t bytes_out;
	uint64_t send_ops;
	uint64_t slow_consumers;   /* dropped: stalled past --send-timeout or over --max-queue */
	uint64_t slow_stalled;     /* of those, stalled */
	uint64_t accept_errors;
	uint64_t tls_failures;     /* handshakes or records that failed */
	uint64_t table_full;       /* direct on, but the table refused a socket: turned away (in refused) */
	bool direct;               /* sockets live in the ring's file table (conn_config.direct) */
};

struct conn_config {
	uint32_t max_connections;
	uint32_t max_per_ip;       /* 0: no per-address limit */
	/* Shared with other rings: the limits are counted for all of them
	 * together (max_connections and max_per_ip above then size this
	 * ring's table only). NULL: this ring counts its own. */
	struct conn_limits *limits;
	uint64_t max_queue;        /* hard ceiling on q_bytes (at most 2 GiB) */
	uint32_t send_timeout;     /* seconds with bytes queued and none sent: a slow consumer */
	uint32_t flush_batch;
	uint32_t close_timeout;
	uint64_t send_zc;          /* sends of at least this many bytes go zero-copy; 0: none */
	struct tls_server *tls;    /* serve TLS on every connection; NULL: plain */
	/* Sent whole, then the socket closed, to a connection turned away over
	 * --max-connections or --max-per-ip: the protocol's clear answer rather
	 * than a silent reset. Static storage: the send outlives the call. */
	const void *refusal;
	size_t refusal_len;
	/* Bytes the layer above keeps per slot (its session), right after the
	 * connection in the same slot: conn_user. Aligned like struct conn. */
	size_t user_size;
	/* Keep each socket in the ring's file table rather than the process's
	 * (direct descriptors), where the loop has one (loop_config.direct_files,
	 * at least max_connections entries): connections beyond RLIMIT_NOFILE.
	 * conns_stats says whether it is on. */
	bool direct;
	/* Names this ring in log lines: a connection is NAME.slot.gen there
	 * (conn_log_id). NULL: "-". */
	const char *log_name;
};

struct conns;
struct loop;

/* The connections of one ring: cfg and h are copied, ctx is handed back to
 * every handler. NULL when out of memory (logged). */
struct conns *conns_new(const struct conn_config *cfg, const struct conn_handlers *h, void *ctx);
/* Closes what is still open (on_closing for those not yet told) and frees
 * everything; the loop may be gone already. NULL is fine. */
void conns_free(struct conns *cs);

/* Start accepting on a listening socket through loop, which must have been
 * made with cs as its ctx and the conn_on_* handlers below: the connections
 * live on that ring from now on. */
void conns_listen(struct conns *cs, struct loop *loop, int listen_fd);
/* Stop accepting: the listener is closed. */
void conns_stop_listening(struct conns *cs);

/* Queue a reference to frame b for c. Returns false, queueing nothing, when
 * c is a slow consumer (the caller decides what it gets) or is closing. A
 * slow consumer is one that does not read: bytes queued and none of them
 * taken by the kernel for --send-timeout, or b would take its queue over
 * --max-queue, the hard ceiling. */
bool conn_send(struct conn *c, struct buf *b);

/* Queue b whatever the queue holds: for what c asked for itself and must
 * not be dropped for (its own messages' acknowledgements) and the one
 * close frame a slow consumer is sent. False only when c is closing (or
 * its queue would pass 4 GiB). */
bool conn_send_unbounded(struct conn *c, struct buf *b);

/* Bytes queued for c and not yet sent. */
static inline uint32_t conn_queued(const struct conn *c)
{
	return c->q_bytes;
}

/* The layer above's storage in c's slot (conn_config.user_size bytes), and
 * back: a fixed offset either way, no table to look up. */
static inline void *conn_user(struct conn *c)
{
	return c + 1;
}

static inline struct conn *conn_of_user(void *user)
{
	return (struct conn *)user - 1;
}

/* Keep what is queued now through conn_drop_queue: a dropped connection
 * still gets the 101 it was promised before its close frame. */
void conn_pin_queue(struct conn *c);

/* Append bytes that must outlive their receive buffer to c->in (grown as
 * needed; callers bound how much they keep). */
void conn_keep_input(struct conn *c, const uint8_t *data, size_t len);
/* Free c->in once what it held has been used. */
void conn_drop_input(struct conn *c);

/* Drop every queued frame that is not in flight, pinned, or already
 * encrypted (TLS records cannot be cut out of a stream). */
void conn_drop_queue(struct conn *c);

/* Close once everything queued is sent: shut down writing, read until the
 * peer's FIN or --close-timeout, then close. */
void conn_close(struct conn *c);

/* Close now: queued data is dropped, the socket shut down both ways. */
void conn_abort(struct conn *c);

/* The connections' clock counts ticks of 100 ms since start: deadlines are
 * kept to a tenth of a second, so a 1 s timeout is never cut short by a
 * second boundary. */
#define CONN_TICKS_PER_SEC 10

/* Set the connection's one deadline, in ticks (conn_now). */
void conn_set_deadline(struct conn *c, uint32_t deadline);

/* The clock of c's connections in ticks since their start, updated by the
 * loop's periodic timer (conns_tick). */
uint32_t conn_now(const struct conn *c);

/* Advance the clock and fire due deadlines; called from the loop's tick. */
void conns_tick(struct conns *cs);

/* The ctx given to conns_new for c's ring: what the layer above keeps
 * per ring, found from any of its connections. */
void *conn_ctx(const struct conn *c);
/* The same, from the ring's connections. */
void *conns_ctx(const struct conns *cs);

/* Call fn(ctx, c) on every open connection (shutdown); ctx as for the
 * handlers. */
void conns_for_each(struct conns *cs, void (*fn)(void *ctx, struct conn *c));

/* How log lines name c: its ring's log_name, slot and generation, unique
 * while the process runs (out must hold 32 bytes). --verbose logs the
 * peer's address with this at the connection's open. */
#define CONN_LOG_ID_LEN 32
void conn_log_id(const struct conn *c, char *out, size_t len);

/* The connection in slot with generation gen, or NULL when that one is
 * gone: how something that outlives a connection (a POST /send handed
 * between edges) finds it again without holding a pointer. */
struct conn *conns_find(struct conns *cs, uint32_t slot, uint32_t gen);

/* Number of connections not yet freed. */
uint32_t conns_count(const struct conns *cs);

const struct conn_stats *conns_stats(const struct conns *cs);

/* Handlers for the loop (loop.h); ctx is the struct conns. */
void conn_on_accept(void *ctx, int res, bool more);
void conn_on_recv(void *ctx, uint32_t slot, uint32_t gen, int res, uint8_t *data, bool more);
void conn_on_send(void *ctx, uint32_t slot, uint32_t gen, int res, bool held);
void conn_on_send_released(void *ctx, uint32_t slot, uint32_t gen);
void conn_on_shutdown(void *ctx, uint32_t slot, uint32_t gen, int res);
/* The loop's before_wait (or called from it): tell the layer above of
 * closing connections, then start this pass's sends. */
bool conns_before_wait(struct conns *cs);

#endif
