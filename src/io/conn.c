/* conn.c: connection slots, send queues and lifecycle.
 *
 * Sending: frames are queued as references; a connection is put on the
 * flush list when it has something queued and no send in flight. Once per
 * loop pass, before waiting, up to --flush-batch connections get one send
 * each carrying everything queued for them (one sendmsg with an iovec), so a
 * big fan-out goes out in bounded chunks and messages that arrive meanwhile
 * ride along in the same sends.
 *
 * A slow consumer is a client that does not read, not one that was sent a
 * lot at once: one group commit's fan-out or a burst of acknowledgements
 * may queue megabytes in one pass, which a reading client takes in
 * milliseconds. So the rule is progress over time: bytes queued and none of
 * them taken by the kernel for --send-timeout (the kernel's own socket
 * buffer is full by then, so the peer has read nothing for that long), with
 * --max-queue as a hard ceiling far above what a reader ever holds.
 *
 * A zero-copy send (--send-zc) stays in flight, its frames referenced,
 * past its result until the kernel's notification that it no longer reads
 * them, which for TCP means until the peer has acknowledged the bytes. So
 * one send per connection remains the rule and struct conn needs no new
 * field; the price is that the next send waits for that ACK.
 *
 * Closing: a connection that closes is marked, its protocol layer is told
 * once from the top of the loop (never from deep inside a handler), and its
 * slot is freed only when no recv, send or shutdown is in flight, so a late
 * completion never finds a recycled slot (the generation check backs this). */
#include "conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "conn_limits.h"
#include "ip_limit.h"
#include "log.h"
#include "loop.h"
#include "tls.h"

#define CONN_F_RECV_ARMED 0x01
#define CONN_F_SEND_BUSY 0x02
#define CONN_F_IN_FLUSH 0x04
#define CONN_F_WR_SHUT 0x08     /* shutdown(SHUT_WR) issued */
#define CONN_F_RDWR_SHUT 0x10   /* shutdown(SHUT_RDWR) issued */
#define CONN_F_ABORT 0x20
#define CONN_F_READ_EOF 0x40
#define CONN_F_NOTIFIED 0x80    /* on_closing has been called */
#define CONN_F_TLS_BYE 0x100    /* close_notify queued */
#define CONN_F_ZC_HELD 0x200    /* a zero-copy send completed; its notification is due */

/* Decrypted bytes handed up per call: one TLS record at most. */
#define TLS_PLAIN_CHUNK 16384

/* Frames per send: enough to coalesce a burst, small enough to keep the
 * kernel's iovec import cheap. */
#define MAX_IOV 64

/* Everything this layer keeps for one ring: handed to the loop as its ctx,
 * found from a connection by conns_of. Nothing here is shared with another
 * instance. */
struct conns {
	struct loop *loop;           /* set by conns_listen */
	struct conn_config config;
	struct conn_handlers handlers;
	void *ctx;                   /* the handlers' */
	struct conn_stats stats;

	uint32_t *free_slots;
	uint32_t free_count, next_unused;
	/* --max-connections and --max-per-ip, counted for all rings together
	 * (conn_config.limits) or for this one; with a per-address limit, each
	 * slot's address, kept beside the table so struct conn does not grow. */
	struct conn_limits *limits;
	bool own_limits;
	struct in6_addr *slot_addr;

	struct conn *flush_head, *flush_tail;
	uint32_t flush_len;

	struct conn **closing;
	size_t closing_len, closing_cap;

	struct timer_wheel wheel;
	struct timespec started;
	uint32_t clock_now;

	int listen_fd;
	bool accept_paused;          /* until the next tick */
	bool accept_starved;         /* out of descriptors or memory since the last success */

	uint8_t tls_plain[TLS_PLAIN_CHUNK]; /* one decrypted record, handed up */

	/* The slots, max_connections of them, stride bytes apart: each a struct
	 * conn and the layer above's storage after it (conn_user). Allocated
	 * with the rest in one calloc, so pages are faulted in only as slots
	 * are used, and a connection finds this struct from its own address. */
	size_t stride;
	_Alignas(struct conn) unsigned char slots[];
};

static struct conn *slot_conn(const struct conns *cs, uint32_t slot)
{
	return (struct conn *)(cs->slots + (size_t)slot * cs->stride);
}

/* The instance a connection belongs to: its slot 0 lies slot strides back.
 * This is what lets conn_send, conn_close and the rest take only the
 * connection, for callers (chat's send callbacks) that have nothing else. */
static struct conns *conns_of(const struct conn *c)
{
	const unsigned char *slot0 = (const unsigned char *)c - (size_t)c->slot * c->stride;
	return (struct conns *)(slot0 - offsetof(struct conns, slots));
}

static uint32_t read_clock(const struct conns *cs)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t ms = (int64_t)(ts.tv_sec - cs->started.tv_sec) * 1000 +
		     (ts.tv_nsec - cs->started.tv_nsec) / 1000000;
	return (uint32_t)(ms / (1000 / CONN_TICKS_PER_SEC));
}

struct conns *conns_new(const struct conn_config *cfg, const struct conn_handlers *h, void *ctx)
{
	/* a slot is the connection, then the user's bytes, then padding to
	 * keep the next connection aligned */
	size_t align = _Alignof(struct conn);
	size_t stride = (sizeof(struct conn) + cfg->user_size + align - 1) / align * align;
	if (stride > UINT32_MAX) {
		log_error("%zu bytes per connection slot is too many", stride);
		return NULL;
	}
	/* calloc of the whole table costs no memory until slots are used:
	 * untouched pages are never faulted in. */
	struct conns *cs = calloc(1, offsetof(struct conns, slots) + (size_t)cfg->max_connections * stride);
	if (!cs) {
		log_error("cannot allocate %u connection slots", cfg->max_connections);
		return NULL;
	}
	cs->config = *cfg;
	cs->handlers = *h;
	cs->ctx = ctx;
	cs->stride = stride;
	cs->listen_fd = -1;
	cs->free_slots = calloc(cfg->max_connections, sizeof(*cs->free_slots));
	if (!cs->free_slots) {
		log_error("cannot allocate %u connection slots", cfg->max_connections);
		conns_free(cs);
		return NULL;
	}
	cs->limits = cfg->limits;
	if (!cs->limits) {
		cs->own_limits = true;
		if (!(cs->limits = conn_limits_new(cfg->max_connections, cfg->max_per_ip))) {
			conns_free(cs);
			return NULL;
		}
	}
	if (conn_limits_per_address(cs->limits) &&
	    !(cs->slot_addr = calloc(cfg->max_connections, sizeof(*cs->slot_addr)))) {
		log_error("cannot allocate the per-address table");
		conns_free(cs);
		return NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &cs->started);
	cs->clock_now = 0;
	tw_init(&cs->wheel, 0);
	return cs;
}

static void queue_clear(struct conn *c, uint16_t keep)
{
	uint16_t mask = (uint16_t)(c->q_cap - 1);
	while (c->q_len > keep) {
		uint16_t i = (uint16_t)((c->q_head + c->q_len - 1) & mask);
		c->q_bytes -= buf_out_len(c->q[i]) - (c->q_len == 1 ? c->q_sent : 0);
		buf_unref(c->q[i]);
		c->q_len--;
	}
}

/* Everything a connection owns besides its slot and its socket. */
static void free_buffers(struct conn *c)
{
	queue_clear(c, 0);
	if (c->q != c->q_inline)
		free(c->q);
	free(c->in);
	tls_session_free(c->tls);
	c->tls = NULL;
	c->q = NULL;
	c->in = NULL;
}

void conn_keep_input(struct conn *c, const uint8_t *data, size_t len)
{
	if (c->in_len + len > c->in_cap) {
		size_t cap = c->in_cap ? c->in_cap : 512;
		while (cap < c->in_len + len)
			cap *= 2;
		uint8_t *p = realloc(c->in, cap);
		if (!p)
			abort();
		c->in = p;
		c->in_cap = (uint32_t)cap;
	}
	if (len)
		memmove(c->in + c->in_len, data, len); /* data may lie inside c->in */
	c->in_len += (uint32_t)len;
}

void conn_drop_input(struct conn *c)
{
	free(c->in);
	c->in = NULL;
	c->in_len = c->in_cap = 0;
}

void conns_free(struct conns *cs)
{
	if (!cs)
		return;
	for (uint32_t i = 0; i < cs->next_unused; i++) {
		struct conn *c = slot_conn(cs, i);
		if (c->state == CONN_FREE)
			continue;
		if (!(c->flags & CONN_F_NOTIFIED))
			cs->handlers.on_closing(cs->ctx, c); /* stopped before it finished closing */
		free_buffers(c);
		/* a direct socket goes with the ring's file table, at loop_free */
		if (c->fd >= 0)
			close(c->fd);
	}
	free(cs->free_slots);
	free(cs->closing);
	if (cs->own_limits)
		conn_limits_free(cs->limits);
	free(cs->slot_addr);
	free(cs);
}

void *conn_ctx(const struct conn *c)
{
	return conns_of(c)->ctx;
}

void conn_log_id(const struct conn *c, char *out, size_t len)
{
	const char *name = conns_of(c)->config.log_name;
	snprintf(out, len, "%s.%u.%u", name ? name : "-", c->slot, c->gen);
}

void *conns_ctx(const struct conns *cs)
{
	return cs->ctx;
}

uint32_t conn_now(const struct conn *c)
{
	return conns_of(c)->clock_now;
}

uint32_t conns_count(const struct conns *cs)
{
	return (uint32_t)cs->stats.current;
}

const struct conn_stats *conns_stats(const struct conns *cs)
{
	return &cs->stats;
}

void conns_for_each(struct conns *cs, void (*fn)(void *ctx, struct conn *c))
{
	for (uint32_t i = 0; i < cs->next_unused; i++) {
		struct conn *c = slot_conn(cs, i);
		if (c->state == CONN_OPEN)
			fn(cs->ctx, c);
	}
}

static struct conn *lookup(struct conns *cs, uint32_t slot, uint32_t gen)
{
	if (slot >= cs->next_unused)
		return NULL;
	struct conn *c = slot_conn(cs, slot);
	if (c->state == CONN_FREE || c->gen != gen)
		return NULL;
	return c;
}

struct conn *conns_find(struct conns *cs, uint32_t slot, uint32_t gen)
{
	return lookup(cs, slot, gen);
}

/* ---- listening ---------------------------------------------------------- */

void conns_listen(struct conns *cs, struct loop *loop, int fd)
{
	cs->loop = loop;
	cs->listen_fd = fd;
	cs->stats.direct = cs->config.direct && loop_direct(loop);
	if (cs->config.direct && !cs->stats.direct)
		log_warn("connections on plain descriptors: the loop has no file table for direct ones");
	loop_accept(loop, fd);
}

void conns_stop_listening(struct conns *cs)
{
	if (cs->listen_fd < 0)
		return;
	/* Closing through the ring also ends the multishot accept. */
	shutdown(cs->listen_fd, SHUT_RDWR);
	loop_close(cs->loop, cs->listen_fd);
	cs->listen_fd = -1;
}

static struct conn *slot_alloc(struct conns *cs)
{
	uint32_t slot;
	if (cs->free_count)
		slot = cs->free_slots[--cs->free_count];
	else if (cs->next_unused < cs->config.max_connections)
		slot = cs->next_unused++;
	else
		return NULL;
	struct conn *c = slot_conn(cs, slot);
	uint32_t gen = c->gen;
	/* A freed slot may still sit on the flush list: its place there (flag
	 * and link) stays with the slot, so it is never listed twice. */
	uint16_t flush_flag = c->flags & CONN_F_IN_FLUSH;
	struct conn *flush_next = c->flush_next;
	memset(c, 0, sizeof(*c));
	c->slot = slot;
	c->stride = (uint32_t)cs->stride;
	c->gen = gen;
	c->flags = flush_flag;
	c->flush_next = flush_next;
	c->q = c->q_inline;
	c->q_cap = CONN_INLINE_QUEUE;
	return c;
}

/* The peer of a plain socket as ADDR:PORT ([ADDR]:PORT for IPv6), for
 * --verbose: a direct socket has no descriptor to ask later. */
static void peer_text(int fd, char *out, size_t len)
{
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (getpeername(fd, (struct sockaddr *)&sa, &sl) == 0) {
		if (sa.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&sa;
			inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
			port = ntohs(a->sin6_port);
			snprintf(out, len, "[%s]:%u", host, port);
			return;
		}
		if (sa.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&sa;
			inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
			port = ntohs(a->sin_port);
		}
	}
	snprintf(out, len, "%s:%u", host, port);
}

/* Under --max-connections and --max-per-ip? The address is asked of the
 * socket only when the per-address limit is on. */
static enum conn_admission admit(struct conns *cs, int fd, struct in6_addr *addr)
{
	memset(addr, 0, sizeof(*addr)); /* unknown: counted together */
	if (conn_limits_per_address(cs->limits)) {
		struct sockaddr_storage sa;
		socklen_t len = sizeof(sa);
		if (getpeername(fd, (struct sockaddr *)&sa, &len) < 0 || !ip_limit_addr(&sa, addr))
			memset(addr, 0, sizeof(*addr));
	}
	return conn_limits_take(cs->limits, addr);
}

/* Direct descriptors: the accepted socket moves into the ring's file table
 * at its slot and its plain descriptor is closed before the next completion
 * is looked at, so plain descriptors are held only in passing. A burst that
 * uses them all up pauses accepting until the next tick (conn_on_accept),
 * and what was accepted moves over meanwhile. Where the table refuses, the
 * connection keeps its plain descriptor.
 *
 * Why accept plain and move the socket, rather than accept straight into
 * the table (multishot accept direct, 5.19)? --max-per-ip needs the peer's
 * address before a slot is given, and a direct socket has no descriptor for
 * getpeername; on 6.18 the ring has no getpeername command either (only
 * getsockopt SO_PEERNAME, which wants the address's exact length), and any
 * such command is a second round trip with a half-admitted connection to
 * keep. Moving it also keeps table index == slot (an allocated index is
 * the kernel's choice), and a connection turned away never enters the
 * table. The price: two system calls per accepted connection (the table
 * update and the close), once per connection, not per message.
 *
 * A socket the table refuses (its slot is past the table's end, which is
 * RLIMIT_NOFILE) is turned away, not kept on a plain descriptor: plain
 * descriptors are what every ring's accepts need in passing, and a ring
 * that used them up would starve the others. Returns -1 then. */
static int adopt_socket(struct conns *cs, int fd, uint32_t slot)
{
	if (!cs->stats.direct)
		return fd;
	int ret = loop_install(cs->loop, fd, slot);
	if (ret == 0)
		return LOOP_FD_DIRECT;
	if (!cs->stats.table_full++)
		log_warn("direct descriptors: the ring's file table refused slot %u (%s); connections past "
			 "it are turned away", slot, strerror(-ret));
	return -1;
}

void conn_on_accept(void *ctx, int res, bool more)
{
	struct conns *cs = ctx;
	if (res >= 0) {
		struct in6_addr addr;
		enum conn_admission admission = admit(cs, res, &addr);
		struct conn *c = admission == CONN_ADMITTED ? slot_alloc(cs) : NULL;
		char peer[INET6_ADDRSTRLEN + 8] = "";
		if (log_enabled(LOG_DEBUG))
			peer_text(res, peer, sizeof(peer));
		if (!c) {
			log_kv(LOG_DEBUG, "connection refused", LOG_STR("peer", peer),
			       LOG_STR("why", admission == CONN_OVER_ADDRESS ? "max-per-ip" : "max-connections"));
			/* Over --max-connections or --max-per-ip: a clear answer,
			 * not a silent reset. */
			if (admission == CONN_OVER_ADDRESS)
				cs->stats.refused_per_ip++;
			else
				cs->stats.refused++;
			if (admission == CONN_ADMITTED)
				conn_limits_put(cs->limits, &addr); /* admitted, but no slot */
			loop_send_then_close(cs->loop, res, cs->config.refusal, cs->config.refusal_len);
		} else {
			if (cs->slot_addr)
				cs->slot_addr[c->slot] = addr;
			if (cs->accept_starved) {
				log_info("accepting connections again");
				cs->accept_starved = false;
			}
			if (cs->config.tls && !(c->tls = tls_session_new(cs->config.tls))) {
				cs->stats.refused++;
				conn_limits_put(cs->limits, &addr);
				cs->free_slots[cs->free_count++] = c->slot;
				loop_close(cs->loop, res);
				goto rearm;
			}
			c->fd = adopt_socket(cs, res, c->slot);
			if (c->fd == -1) {
				tls_session_free(c->tls);
				c->tls = NULL;
				cs->stats.refused++;
				conn_limits_put(cs->limits, &addr);
				cs->free_slots[cs->free_count++] = c->slot;
				loop_send_then_close(cs->loop, res, cs->config.refusal, cs->config.refusal_len);
				goto rearm;
			}
			if (log_enabled(LOG_DEBUG)) {
				char id[CONN_LOG_ID_LEN];
				conn_log_id(c, id, sizeof(id));
				log_kv(LOG_DEBUG, "connection open", LOG_STR("conn", id), LOG_STR("peer", peer));
			}
			c->state = CONN_OPEN;
			c->last_rx = cs->clock_now;
			cs->stats.current++;
			cs->stats.total++;
			c->flags |= CONN_F_RECV_ARMED;
			loop_recv(cs->loop, c->fd, c->slot, c->gen);
			cs->handlers.on_open(cs->ctx, c);
		}
	} else {
		cs->stats.accept_errors++;
		if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
			/* Out of descriptors or memory: existing connections keep
			 * working; accepting is retried every tick, and said once. */
			if (!cs->accept_starved)
				log_warn("accept: %s; new connections wait until some close (retrying every %d ms)",
					 strerror(-res), 1000 / CONN_TICKS_PER_SEC);
			cs->accept_starved = true;
			cs->accept_paused = true;
			return;
		}
		if (res != -ECANCELED && res != -EBADF && res != -EINVAL)
			log_warn("accept: %s", strerror(-res));
	}
rearm:
	if (!more && cs->listen_fd >= 0 && !cs->accept_paused)
		loop_accept(cs->loop, cs->listen_fd);
}

/* ---- sending ------------------------------------------------------------ */

static void flush_push(struct conns *cs, struct conn *c)
{
	if (c->flags & CONN_F_IN_FLUSH)
		return;
	c->flags |= CONN_F_IN_FLUSH;
	c->flush_next = NULL;
	if (cs->flush_tail)
		cs->flush_tail->flush_next = c;
	else
		cs->flush_head = c;
	cs->flush_tail = c;
	cs->flush_len++;
}

static struct conn *flush_pop(struct conns *cs)
{
	struct conn *c = cs->flush_head;
	cs->flush_head = c->flush_next;
	if (!cs->flush_head)
		cs->flush_tail = NULL;
	c->flush_next = NULL;
	c->flags &= (uint16_t)~CONN_F_IN_FLUSH;
	cs->flush_len--;
	return c;
}

static void queue_grow(struct conn *c)
{
	uint16_t cap = (uint16_t)(c->q_cap * 2);
	struct buf **q = malloc(cap * sizeof(*q));
	if (!q)
		abort();
	for (uint16_t i = 0; i < c->q_len; i++)
		q[i] = c->q[(c->q_head + i) & (c->q_cap - 1)];
	if (c->q != c->q_inline)
		free(c->q);
	c->q = q;
	c->q_cap = cap;
	c->q_head = 0;
}

/* Take ownership of b at the queue's tail. */
static void queue_push(struct conn *c, struct buf *b)
{
	if (c->q_len == c->q_cap)
		queue_grow(c);
	c->q[(c->q_head + c->q_len) & (c->q_cap - 1)] = b;
	c->q_len++;
	c->q_bytes += buf_out_len(b);
}

static bool has_output(const struct conn *c)
{
	return c->q_len || (c->tls && tls_output_pending(c->tls));
}

/* Has c taken none of its queued bytes for --send-timeout? */
static bool stalled(const struct conns *cs, const struct conn *c)
{
	return c->q_bytes && cs->clock_now - c->q_progress >= cs->config.send_timeout * CONN_TICKS_PER_SEC;
}

static bool enqueue(struct conn *c, struct buf *b, bool bounded)
{
	if (c->state != CONN_OPEN)
		return false;
	struct conns *cs = conns_of(c);
	uint64_t after = (uint64_t)c->q_bytes + buf_out_len(b);
	bool full = c->q_len == UINT16_MAX / 2 || after > UINT32_MAX;
	if (full || (bounded && (after > cs->config.max_queue || stalled(cs, c)))) {
		cs->stats.slow_consumers++;
		if (!full && stalled(cs, c))
			cs->stats.slow_stalled++;
		return false;
	}
	if (!c->q_bytes)
		c->q_progress = cs->clock_now; /* the stall clock starts with the first byte waiting */
	queue_push(c, buf_ref(b));
	if (!(c->flags & CONN_F_SEND_BUSY))
		flush_push(cs, c);
	return true;
}

bool conn_send(struct conn *c, struct buf *b)
{
	return enqueue(c, b, true);
}

bool conn_send_unbounded(struct conn *c, struct buf *b)
{
	return enqueue(c, b, false);
}

/* Drop what is queued behind the first keep entries. */
static void queue_trim(struct conn *c, uint16_t keep)
{
	queue_clear(c, keep);
	if (c->q_cipher > c->q_len)
		c->q_cipher = c->q_len;
	if (c->q_pinned > c->q_len)
		c->q_pinned = c->q_len;
}

void conn_drop_queue(struct conn *c)
{
	uint16_t keep = c->q_inflight;
	if (c->q_pinned > keep)
		keep = c->q_pinned;
	if (c->q_cipher > keep)
		keep = c->q_cipher;
	queue_trim(c, keep);
}

void conn_pin_queue(struct conn *c)
{
	c->q_pinned = c->q_len;
}

/* TLS: encrypt the plaintext frames queued behind the ciphertext at the
 * head, together with what the TLS engine has to send itself (handshake,
 * alerts, close_notify), into one buffer for this connection alone, which
 * takes their place. The shared frames are released: only the encryption
 * is per connection. At most TLS_SEAL_MAX of plaintext per send: the
 * ciphertext is this client's own memory, so it is made as the client
 * reads, while what waits behind it stays shared. */
#define TLS_SEAL_MAX (256 * 1024)

static void seal(struct conn *c)
{
	uint16_t mask = (uint16_t)(c->q_cap - 1);
	uint16_t first = c->q_cipher, end = first;
	size_t plain = 0;
	while (end < c->q_len && (end == first || plain < TLS_SEAL_MAX)) {
		struct buf *b = c->q[(c->q_head + end) & mask];
		if (tls_write(c->tls, buf_out(b), buf_out_len(b)) < 0) {
			end = c->q_len; /* the session failed: nothing more goes; its alert may */
			break;
		}
		plain += buf_out_len(b);
		end++;
	}
	for (uint16_t i = first; i < end; i++) {
		struct buf *b = c->q[(c->q_head + i) & mask];
		c->q_bytes -= buf_out_len(b); /* nothing of a plaintext frame was sent */
		buf_unref(b);
	}
	size_t n = tls_output_pending(c->tls);
	struct buf *cipher = NULL;
	if (n) {
		cipher = buf_new(n);
		tls_take_output(c->tls, cipher->data, n);
	}
	if (first == end) { /* no plaintext: only the engine's own output */
		if (cipher) {
			queue_push(c, cipher);
			c->q_cipher = c->q_len;
		}
		return;
	}
	/* the ciphertext takes the first sealed frame's place; the rest move up */
	uint16_t dst = (uint16_t)(first + (cipher ? 1 : 0)), rest = (uint16_t)(c->q_len - end);
	for (uint16_t k = 0; k < rest; k++)
		c->q[(c->q_head + dst + k) & mask] = c->q[(c->q_head + end + k) & mask];
	if (cipher) {
		c->q[(c->q_head + first) & mask] = cipher;
		c->q_bytes += (uint32_t)n;
	}
	c->q_len = (uint16_t)(dst + rest);
	c->q_cipher = dst;
	/* pinned frames that were sealed are in the ciphertext, which stays */
	c->q_pinned = c->q_pinned > end ? (uint16_t)(dst + c->q_pinned - end) : 0;
}

/* Zero-copy pays for pinning pages, a second completion and frames held
 * until the peer's ACK only when a send is large (--send-zc). Not for TLS:
 * its ciphertext is this connection's own buffer, just written by the
 * encryption, so the copy saved is a small part of what the send costs. */
static bool want_zero_copy(const struct conns *cs, const struct conn *c, const struct iovec *iov,
			   uint16_t n)
{
	if (!cs->config.send_zc || c->tls)
		return false;
	uint64_t total = 0;
	for (uint16_t i = 0; i < n; i++)
		total += iov[i].iov_len;
	/* while the send is held, q_sent carries its result (conn_on_send) */
	return total >= cs->config.send_zc && c->q_sent + total <= UINT32_MAX;
}

static void start_send(struct conns *cs, struct conn *c)
{
	if (c->tls)
		seal(c);
	if (!c->q_len || (c->tls && !c->q_cipher))
		return;
	struct iovec iov[MAX_IOV];
	uint16_t ready = c->tls ? c->q_cipher : c->q_len; /* TLS: only what is sealed */
	uint16_t n = ready < MAX_IOV ? ready : MAX_IOV;
	uint16_t mask = (uint16_t)(c->q_cap - 1);
	for (uint16_t i = 0; i < n; i++) {
		struct buf *b = c->q[(c->q_head + i) & mask];
		uint32_t skip = i == 0 ? c->q_sent : 0;
		iov[i].iov_base = buf_out(b) + skip;
		iov[i].iov_len = buf_out_len(b) - skip;
	}
	c->q_inflight = n;
	c->flags |= CONN_F_SEND_BUSY;
	cs->stats.send_ops++;
	bool zc = want_zero_copy(cs, c, iov, n);
	/* One frame: plain send, no msghdr for the kernel to import. */
	if (n == 1)
		loop_send(cs->loop, c->fd, c->slot, c->gen, iov[0].iov_base, iov[0].iov_len, zc);
	else
		loop_sendv(cs->loop, c->fd, c->slot, c->gen, iov, n, zc);
}

static void maybe_shutdown_write(struct conns *cs, struct conn *c);
static void maybe_release(struct conns *cs, struct conn *c);

/* Unreference the in-flight frames that `sent` bytes, counted from the head
 * frame's start, cover; a frame cut short stays at the head, q_sent saying
 * how far it got. */
static void release_sent(struct conns *cs, struct conn *c, uint64_t sent)
{
	uint16_t mask = (uint16_t)(c->q_cap - 1);
	while (c->q_inflight && sent >= buf_out_len(c->q[c->q_head])) {
		struct buf *b = c->q[c->q_head];
		sent -= buf_out_len(b);
		buf_unref(b);
		c->q_head = (uint16_t)((c->q_head + 1) & mask);
		c->q_len--;
		if (c->q_cipher)
			c->q_cipher--;
		if (c->q_pinned)
			c->q_pinned--;
		c->q_inflight--;
		cs->stats.frames_out++;
	}
	c->q_sent = (uint32_t)sent;
	c->q_inflight = 0;
}

/* The send is over and the kernel reads none of its bytes any more. */
static void send_finished(struct conns *cs, struct conn *c, uint64_t sent, bool failed)
{
	c->flags &= (uint16_t)~(CONN_F_SEND_BUSY | CONN_F_ZC_HELD);
	release_sent(cs, c, sent);
	if (failed) {
		conn_abort(c); /* EPIPE, ECONNRESET, or our own shutdown: the peer is gone */
	} else if (c->flags & CONN_F_ABORT) {
		queue_trim(c, 0); /* frames kept only while the kernel held them */
	} else {
		/* Below the low-water mark the protocol may queue more; what it
		 * queues goes out with the next flush. */
		if (c->state == CONN_OPEN && c->q_bytes <= CONN_LOW_WATER)
			cs->handlers.on_drained(cs->ctx, c);
		if (has_output(c))
			flush_push(cs, c);
		else if (c->state == CONN_CLOSING)
			maybe_shutdown_write(cs, c);
	}
	maybe_release(cs, c);
}

void conn_on_send(void *ctx, uint32_t slot, uint32_t gen, int res, bool held)
{
	struct conns *cs = ctx;
	struct conn *c = lookup(cs, slot, gen);
	if (!c)
		return;
	uint64_t sent = c->q_sent;
	if (res > 0) {
		cs->stats.bytes_out += (uint64_t)res;
		c->q_bytes -= (uint32_t)res;
		c->q_progress = cs->clock_now;
		sent += (uint64_t)res;
	}
	if (!held) {
		send_finished(cs, c, sent, res <= 0);
		return;
	}
	/* Zero-copy: the frames stay referenced and the send in flight until
	 * the notification. Meanwhile q_sent runs past the head frame (it
	 * fits: want_zero_copy checked). */
	c->flags |= CONN_F_ZC_HELD;
	c->q_sent = (uint32_t)sent;
	if (res <= 0)
		conn_abort(c);
	maybe_release(cs, c); /* aborted meanwhile: the held bytes must be let go */
}

void conn_on_send_released(void *ctx, uint32_t slot, uint32_t gen)
{
	struct conns *cs = ctx;
	struct conn *c = lookup(cs, slot, gen);
	if (c)
		send_finished(cs, c, c->q_sent, false);
}

/* ---- receiving ---------------------------------------------------------- */

/* TLS: ciphertext in, records decrypted and handed up one at a time. The
 * engine's own replies (handshake, alerts) go out with the next flush. */
static void tls_input(struct conns *cs, struct conn *c, const uint8_t *data, size_t len)
{
	int rc = tls_feed(c->tls, data, len);
	while (rc == 0 && c->state == CONN_OPEN) {
		ssize_t n = tls_read(c->tls, cs->tls_plain, sizeof(cs->tls_plain));
		if (n < 0)
			rc = -1;
		if (n <= 0)
			break;
		cs->handlers.on_data(cs->ctx, c, cs->tls_plain, (size_t)n);
	}
	if (rc < 0) {
		cs->stats.tls_failures++;
		conn_close(c); /* after the alert has gone out */
	}
	if (tls_output_pending(c->tls) && !(c->flags & CONN_F_SEND_BUSY))
		flush_push(cs, c);
}

void conn_on_recv(void *ctx, uint32_t slot, uint32_t gen, int res, uint8_t *data, bool more)
{
	struct conns *cs = ctx;
	struct conn *c = lookup(cs, slot, gen);
	if (!c)
		return;
	if (!more)
		c->flags &= (uint16_t)~CONN_F_RECV_ARMED;
	if (res > 0) {
		c->last_rx = cs->clock_now;
		if (c->state == CONN_OPEN && c->tls)
			tls_input(cs, c, data, (size_t)res);
		else if (c->state == CONN_OPEN)
			cs->handlers.on_data(cs->ctx, c, data, (size_t)res);
		/* while closing, input is read and discarded until the FIN */
	} else if (res == 0) {
		/* The peer's FIN: what is queued still goes out (a client may
		 * half-close after its request), then our side closes too. */
		c->flags |= CONN_F_READ_EOF;
		conn_close(c);
		maybe_release(cs, c);
		return;
	} else if (res != -ENOBUFS) {
		c->flags |= CONN_F_READ_EOF; /* reset or error: nothing more comes */
		conn_abort(c);
		maybe_release(cs, c);
		return;
	}
	/* The multishot recv ended (out of buffers, or the kernel stopped it):
	 * arm it again; buffers go back to the ring before the next submit. */
	if (!(c->flags & (CONN_F_RECV_ARMED | CONN_F_READ_EOF | CONN_F_ABORT))) {
		c->flags |= CONN_F_RECV_ARMED;
		loop_recv(cs->loop, c->fd, c->slot, c->gen);
	}
}

/* ---- closing ------------------------------------------------------------ */

static void closing_push(struct conns *cs, struct conn *c)
{
	if (cs->closing_len == cs->closing_cap) {
		cs->closing_cap = cs->closing_cap ? cs->closing_cap * 2 : 64;
		cs->closing = realloc(cs->closing, cs->closing_cap * sizeof(*cs->closing));
		if (!cs->closing)
			abort();
	}
	cs->closing[cs->closing_len++] = c;
}

static void begin_closing(struct conns *cs, struct conn *c)
{
	c->state = CONN_CLOSING;
	tw_schedule(&cs->wheel, &c->timer, cs->clock_now + cs->config.close_timeout * CONN_TICKS_PER_SEC);
	closing_push(cs, c);
}

static void maybe_shutdown_write(struct conns *cs, struct conn *c)
{
	if (has_output(c) || (c->flags & (CONN_F_SEND_BUSY | CONN_F_WR_SHUT | CONN_F_RDWR_SHUT)))
		return;
	if (c->tls && !(c->flags & CONN_F_TLS_BYE)) {
		/* close_notify goes after everything queued, before our FIN */
		c->flags |= CONN_F_TLS_BYE;
		tls_shutdown(c->tls);
		if (tls_output_pending(c->tls)) {
			flush_push(cs, c);
			return;
		}
	}
	c->flags |= CONN_F_WR_SHUT;
	c->shut_pending++;
	loop_shutdown(cs->loop, c->fd, SHUT_WR, c->slot, c->gen);
}

void conn_close(struct conn *c)
{
	if (c->state != CONN_OPEN)
		return;
	struct conns *cs = conns_of(c);
	begin_closing(cs, c);
	maybe_shutdown_write(cs, c);
}

void conn_abort(struct conn *c)
{
	if (c->state == CONN_FREE)
		return;
	struct conns *cs = conns_of(c);
	if (c->state == CONN_OPEN)
		begin_closing(cs, c);
	c->flags |= CONN_F_ABORT;
	queue_trim(c, c->q_inflight); /* nothing more goes out, pinned or not */
	/* Wake whatever is still in flight; with nothing in flight there is
	 * nothing to wake. */
	if ((c->flags & (CONN_F_RECV_ARMED | CONN_F_SEND_BUSY)) && !(c->flags & CONN_F_RDWR_SHUT)) {
		c->flags |= CONN_F_RDWR_SHUT;
		c->shut_pending++;
		loop_shutdown(cs->loop, c->fd, SHUT_RDWR, c->slot, c->gen);
	}
}

void conn_on_shutdown(void *ctx, uint32_t slot, uint32_t gen, int res)
{
	struct conns *cs = ctx;
	(void)res; /* ENOTCONN after a reset is as good as done */
	struct conn *c = lookup(cs, slot, gen);
	if (!c)
		return;
	c->shut_pending--;
	maybe_release(cs, c);
}

static void release(struct conns *cs, struct conn *c)
{
	tw_cancel(&cs->wheel, &c->timer);
	free_buffers(c);
	if (c->fd != -1)
		loop_close_socket(cs->loop, c->fd, c->slot);
	conn_limits_put(cs->limits, cs->slot_addr ? &cs->slot_addr[c->slot] : NULL);
	c->state = CONN_FREE;
	c->gen = (c->gen + 1) & LOOP_GEN_MASK;
	cs->free_slots[cs->free_count++] = c->slot;
	cs->stats.current--;
}

/* An aborted connection whose zero-copy send the kernel still holds: the
 * notification comes once the peer has acknowledged every byte, which a
 * peer that stopped reading never does. Reset the connection instead
 * (SO_LINGER 0, then close): the kernel drops what it held and notifies.
 * The close counts as a shutdown in flight: the slot (and a direct
 * socket's table entry) is not reused before it has run. */
static void reset_held_send(struct conns *cs, struct conn *c)
{
	if (c->fd == -1)
		return;
	c->shut_pending++;
	loop_reset(cs->loop, c->fd, c->slot, c->gen);
	c->fd = -1; /* release() must not close it again */
}

static void maybe_release(struct conns *cs, struct conn *c)
{
	if (c->state != CONN_CLOSING || !(c->flags & CONN_F_NOTIFIED))
		return;
	if (c->flags & CONN_F_RECV_ARMED || c->shut_pending)
		return;
	/* Done when aborted, or when both directions have finished: the
	 * peer's FIN read and our own shutdown(SHUT_WR) completed. */
	if (!(c->flags & CONN_F_ABORT) &&
	    !((c->flags & CONN_F_READ_EOF) && (c->flags & CONN_F_WR_SHUT)))
		return;
	if (c->flags & CONN_F_ZC_HELD)
		reset_held_send(cs, c);
	if (c->flags & CONN_F_SEND_BUSY)
		return;
	release(cs, c);
}

void conn_set_deadline(struct conn *c, uint32_t deadline)
{
	tw_schedule(&conns_of(c)->wheel, &c->timer, deadline);
}

/* The wheel hands back only the node: its connection, and that one's
 * owner, are found from it. */
static void on_timer(struct tw_node *n)
{
	struct conn *c = (struct conn *)((char *)n - offsetof(struct conn, timer));
	struct conns *cs = conns_of(c);
	if (c->state == CONN_CLOSING) {
		conn_abort(c); /* the peer never finished closing */
		maybe_release(cs, c);
	} else if (c->state == CONN_OPEN) {
		cs->handlers.on_deadline(cs->ctx, c);
	}
}

void conns_tick(struct conns *cs)
{
	cs->clock_now = read_clock(cs);
	tw_advance(&cs->wheel, cs->clock_now, on_timer);
	if (cs->accept_paused && cs->listen_fd >= 0) {
		cs->accept_paused = false;
		loop_accept(cs->loop, cs->listen_fd);
	}
}

bool conns_before_wait(struct conns *cs)
{
	/* Tell the protocol layer about connections that began closing; its
	 * goodbyes may queue frames for others or close more connections. */
	for (size_t i = 0; i < cs->closing_len; i++) {
		struct conn *c = cs->closing[i];
		c->flags |= CONN_F_NOTIFIED;
		cs->handlers.on_closing(cs->ctx, c);
		if (!(c->flags & CONN_F_ABORT))
			maybe_shutdown_write(cs, c);
		maybe_release(cs, c);
	}
	cs->closing_len = 0;

	for (uint32_t budget = cs->config.flush_batch; cs->flush_len && budget; budget--) {
		struct conn *c = flush_pop(cs);
		if (c->state == CONN_FREE || (c->flags & CONN_F_SEND_BUSY) || !has_output(c))
			continue;
		start_send(cs, c);
	}
	return cs->flush_len > 0;
}
