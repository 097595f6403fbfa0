/* redis_link.c: one Redis connection on a loop: connect, handshake,
 * pipelined commands matched to replies, keep-alive, and reconnect.
 *
 * A link is a small state machine (below). Every socket gets a new
 * generation, and completions carry it, so whatever the ring still
 * reports for an abandoned socket is recognised and ignored. Commands
 * are formatted into one buffer while the other is in the kernel's hands
 * for a send; replies are matched to a FIFO of what asked for them. */
#include "redis_link.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/read.h>

#include "log.h"
#include "loop.h"

/* Idle this long while up: send a PING, so a Redis that stopped answering
 * is noticed (by the reply timeout) even when we have nothing to ask. */
#define KEEPALIVE_MS 1000

enum link_state {
	LINK_IDLE,       /* not started */
	LINK_CONNECTING, /* connect in the ring */
	LINK_HANDSHAKE,  /* connected; AUTH, SELECT and PING answers awaited */
	LINK_UP,
	LINK_BACKOFF,    /* lost or never reached: waiting to try again */
};

/* Who a reply in the FIFO belongs to. */
enum waiting_kind {
	WAIT_COMMAND,   /* a caller's: fn(arg, reply) */
	WAIT_HANDSHAKE, /* ours: an error means the link cannot be used */
	WAIT_PING,      /* ours: the keep-alive, swallowed */
};

struct waiting {
	redis_reply_fn fn;
	void *arg;
	uint64_t queued_ms;
	enum waiting_kind kind;
	const char *step; /* handshake: "AUTH", "SELECT", "PING" for the log */
};

struct out_buf {
	char *data;
	size_t len, cap;
};

struct redis_link {
	struct loop *loop;
	struct redis_link_config cfg;
	struct redis_link_callbacks cb;
	void *ctx;

	enum link_state state;
	int fd;                   /* -1 between sockets */
	uint32_t gen;             /* the current socket's, in its completions */
	redisReader *reader;      /* one per socket: a lost one's half reply goes with it */
	unsigned handshake_left;  /* answers still due before on_up */

	/* Two output buffers: commands go into out[filling]; the other one is
	 * in a send and the kernel reads it until on_send. A send outlives
	 * its socket (its completion arrives after the link dropped it), so
	 * send_busy is cleared only by that completion, old generation or not. */
	struct out_buf out[2];
	unsigned filling;
	bool send_busy;
	uint32_t send_gen;
	size_t send_off;          /* bytes of the send done: short sends resume here */

	/* Replies awaited, oldest first: a ring of cap (a power of two) entries. */
	struct waiting *fifo;
	size_t fifo_head, fifo_len, fifo_cap;

	uint64_t last_send_ms;
	uint64_t connect_ms;
	uint64_t retry_ms;
	unsigned backoff_ms;      /* the next retry's delay, before jitter */
	uint64_t down_since_ms;
	bool ever_up;
	char last_why[160];       /* the failure last logged: retries that fail the same way stay quiet */
	uint64_t rng;

	struct redis_link_stats stats;
};

static uint64_t clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A clock read between ticks may be ahead of the tick's own. */
static uint64_t elapsed(uint64_t now, uint64_t since)
{
	return now > since ? now - since : 0;
}

/* xorshift64: the jitter needs spread, not quality. */
static uint64_t next_random(struct redis_link *link)
{
	uint64_t x = link->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return link->rng = x;
}

/* ---- the FIFO of awaited replies ------------------------------------------- */

static bool fifo_reserve(struct redis_link *link)
{
	if (link->fifo_len < link->fifo_cap)
		return true;
	size_t cap = link->fifo_cap ? link->fifo_cap * 2 : 64;
	struct waiting *grown = malloc(cap * sizeof(*grown));
	if (!grown)
		return false;
	for (size_t i = 0; i < link->fifo_len; i++)
		grown[i] = link->fifo[(link->fifo_head + i) & (link->fifo_cap - 1)];
	free(link->fifo);
	link->fifo = grown;
	link->fifo_cap = cap;
	link->fifo_head = 0;
	return true;
}

static void fifo_push(struct redis_link *link, const struct waiting *w)
{
	link->fifo[(link->fifo_head + link->fifo_len) & (link->fifo_cap - 1)] = *w;
	link->fifo_len++;
}

/* A copy: the callback it goes to may queue commands and grow the ring. */
static struct waiting fifo_pop(struct redis_link *link)
{
	struct waiting w = link->fifo[link->fifo_head];
	link->fifo_head = (link->fifo_head + 1) & (link->fifo_cap - 1);
	link->fifo_len--;
	return w;
}

static const struct waiting *fifo_oldest(const struct redis_link *link)
{
	return link->fifo_len ? &link->fifo[link->fifo_head] : NULL;
}

static bool out_reserve(struct out_buf *b, size_t more)
{
	if (b->cap - b->len >= more)
		return true;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->len < more)
		cap *= 2;
	char *grown = realloc(b->data, cap);
	if (!grown)
		return false;
	b->data = grown;
	b->cap = cap;
	return true;
}

/* Format argv into the filling buffer, and note who awaits the reply
 * (nobody for a subscriber's own commands: their answers are pushes).
 * All or nothing. */
static bool queue_command(struct redis_link *link, int argc, const char **argv, const size_t *lens,
			  const struct waiting *w)
{
	char *cmd;
	int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
	if (n < 0)
		return false;
	bool awaited = !(link->cfg.subscriber && w->kind == WAIT_COMMAND);
	struct out_buf *b = &link->out[link->filling];
	if ((awaited && !fifo_reserve(link)) || !out_reserve(b, (size_t)n)) {
		redisFreeCommand(cmd);
		return false;
	}
	memcpy(b->data + b->len, cmd, (size_t)n);
	b->len += (size_t)n;
	redisFreeCommand(cmd);
	if (awaited)
		fifo_push(link, w);
	return true;
}

static bool queue_own(struct redis_link *link, enum waiting_kind kind, const char *step, int argc,
		      const char **argv)
{
	size_t lens[3];
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	struct waiting w = { .kind = kind, .step = step, .queued_ms = clock_ms() };
	return queue_command(link, argc, argv, lens, &w);
}

/* ---- failure and reconnect ----------------------------------------------- */

/* Shut the socket down now, a syscall: that ends every operation the ring
 * holds on it (connect, recv, send), and their completions, carrying the
 * old generation, are ignored. The close itself goes through the ring,
 * behind any SQE still queued for this descriptor: a close() here could
 * hand its number to a new socket before those are submitted. */
static void close_socket(struct redis_link *link)
{
	if (link->fd < 0)
		return;
	shutdown(link->fd, SHUT_RDWR);
	loop_close_socket(link->loop, link->fd, link->cfg.slot);
	link->fd = -1;
	link->out[link->filling].len = 0; /* never sent: its callers are failed below */
	redisReaderFree(link->reader);
	link->reader = NULL;
}

/* The next try after the current delay, ±25%; the delay doubles up to
 * the maximum, so a Redis that is away for long is asked rarely, and
 * links that lost it together do not come back in step. */
static void schedule_retry(struct redis_link *link)
{
	unsigned d = link->backoff_ms;
	unsigned jitter = (unsigned)(next_random(link) % (d / 2 + 1));
	link->retry_ms = clock_ms() + d - d / 4 + jitter;
	link->backoff_ms = d >= link->cfg.backoff_max_ms / 2 ? link->cfg.backoff_max_ms : d * 2;
}

/* Once per outage and reason: the first failure is a warning (an error
 * when Redis refused us), retries that fail the same way are debug noise. */
static void log_failure(struct redis_link *link, enum log_level level, bool was_up, const char *why)
{
	const struct redis_address *a = link->cfg.address;
	if (strcmp(why, link->last_why) == 0) {
		log_debug("%s: %s:%u still unusable (%s)", link->cfg.name, a->host, a->port, why);
		return;
	}
	snprintf(link->last_why, sizeof(link->last_why), "%s", why);
	log_msg(level, "%s: %s %s:%u (%s); retrying in the background", link->cfg.name,
		was_up ? "lost Redis at" : "cannot use Redis at", a->host, a->port, why);
}

static void fail_waiting(struct redis_link *link)
{
	while (link->fifo_len) {
		struct waiting w = fifo_pop(link);
		if (w.kind != WAIT_COMMAND)
			continue;
		link->stats.failed++;
		if (w.fn)
			w.fn(w.arg, NULL);
	}
}

/* Everything that ends a connection, or a try at one, comes here. The
 * state is BACKOFF before any callback runs: a command asked for from one
 * is refused, not queued on a dead socket. */
static void link_fail(struct redis_link *link, enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void link_fail(struct redis_link *link, enum log_level level, const char *fmt, ...)
{
	char why[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);

	bool was_up = link->state == LINK_UP;
	close_socket(link);
	link->state = LINK_BACKOFF;
	schedule_retry(link);
	log_failure(link, level, was_up, why);
	fail_waiting(link);
	if (was_up) {
		link->stats.disconnects++;
		link->down_since_ms = clock_ms();
		if (link->cb.on_down)
			link->cb.on_down(link->ctx, link);
	}
}

static void link_connect(struct redis_link *link)
{
	const struct redis_address *a = link->cfg.address;
	link->state = LINK_CONNECTING; /* a failure below is a failed try like any other */
	int fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		link_fail(link, LOG_WARN, "socket: %s", strerror(errno));
		return;
	}
	/* Commands are small and answers awaited: no Nagle delay on them. */
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	link->reader = redisReaderCreate();
	if (!link->reader) {
		close(fd);
		link_fail(link, LOG_WARN, "out of memory for a reply reader");
		return;
	}
	link->fd = fd;
	link->gen = (link->gen + 1) & LOOP_GEN_MASK;
	link->connect_ms = clock_ms();
	loop_connect(link->loop, fd, link->cfg.slot, link->gen, (const struct sockaddr *)&a->addr,
		     a->addr_len);
}

/* ---- handshake and replies ------------------------------------------------ */

static void link_up(struct redis_link *link)
{
	const struct redis_address *a = link->cfg.address;
	link->state = LINK_UP;
	link->backoff_ms = link->cfg.backoff_min_ms;
	link->stats.connects++;
	if (link->ever_up)
		log_info("%s: Redis at %s:%u back after %llu ms down", link->cfg.name, a->host,
			 a->port, (unsigned long long)elapsed(clock_ms(), link->down_since_ms));
	else
		log_info("%s: connected to Redis at %s:%u, database %u", link->cfg.name, a->host,
			 a->port, a->db);
	link->ever_up = true;
	link->last_why[0] = '\0';
	if (link->cb.on_up)
		link->cb.on_up(link->ctx, link);
}

/* AUTH when there is a password, SELECT when the database is not 0, and
 * a PING in any case: up means Redis has answered, not just that the
 * kernel accepted the connection (it does for a stopped Redis too). All
 * three go out in one send. */
static void start_handshake(struct redis_link *link)
{
	const struct redis_address *a = link->cfg.address;
	char db[16];
	snprintf(db, sizeof(db), "%u", a->db);
	const char *auth[] = { "AUTH", a->user, a->password };
	const char *auth_alone[] = { "AUTH", a->password };
	const char *select[] = { "SELECT", db };
	const char *ping[] = { "PING" };
	bool ok = true;
	link->state = LINK_HANDSHAKE;
	link->handshake_left = 0;
	if (a->password[0]) {
		ok = a->user[0] ? queue_own(link, WAIT_HANDSHAKE, "AUTH", 3, auth)
				: queue_own(link, WAIT_HANDSHAKE, "AUTH", 2, auth_alone);
		link->handshake_left++;
	}
	if (ok && a->db) {
		ok = queue_own(link, WAIT_HANDSHAKE, "SELECT", 2, select);
		link->handshake_left++;
	}
	if (ok) {
		ok = queue_own(link, WAIT_HANDSHAKE, "PING", 1, ping);
		link->handshake_left++;
	}
	if (!ok)
		link_fail(link, LOG_WARN, "out of memory for the handshake");
}

static void handshake_reply(struct redis_link *link, const struct waiting *w, const redisReply *r)
{
	if (r->type == REDIS_REPLY_ERROR) {
		link_fail(link, LOG_ERROR, "%s refused: %.*s", w->step, (int)r->len, r->str);
		return;
	}
	if (--link->handshake_left == 0)
		link_up(link);
}

static bool is_string(const redisReply *r, const char *s)
{
	return (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING) &&
	       r->len == strlen(s) && strncasecmp(r->str, s, r->len) == 0;
}

/* A PING's answer: PONG, or ["pong", ""] from a subscribed connection. */
static bool is_pong(const redisReply *r)
{
	return is_string(r, "PONG") ||
	       (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && is_string(r->element[0], "pong"));
}

static void on_reply(struct redis_link *link, const redisReply *r)
{
	const struct waiting *oldest = fifo_oldest(link);
	if (link->state == LINK_UP && link->cfg.subscriber) {
		/* only our keep-alive waits in a subscriber's FIFO */
		if (oldest && is_pong(r))
			fifo_pop(link);
		else if (link->cb.on_push)
			link->cb.on_push(link->ctx, link, r);
		return;
	}
	if (!oldest) {
		link_fail(link, LOG_WARN, "a reply nobody asked for");
		return;
	}
	struct waiting w = fifo_pop(link);
	if (w.kind == WAIT_HANDSHAKE)
		handshake_reply(link, &w, r);
	else if (w.kind == WAIT_COMMAND && w.fn)
		w.fn(w.arg, r);
}

/* Every complete reply in the reader, until one of them ends the socket. */
static void read_replies(struct redis_link *link)
{
	uint32_t gen = link->gen;
	while (link->fd >= 0 && link->gen == gen) {
		void *reply = NULL;
		if (redisReaderGetReply(link->reader, &reply) != REDIS_OK) {
			link_fail(link, LOG_WARN, "protocol error: %s", link->reader->errstr);
			return;
		}
		if (!reply)
			return;
		on_reply(link, reply);
		freeReplyObject(reply);
	}
}

/* ---- completions ---------------------------------------------------------- */

static bool current(const struct redis_link *link, uint32_t gen)
{
	return link->fd >= 0 && gen == link->gen;
}

void redis_link_on_connect(struct redis_link *link, uint32_t gen, int res)
{
	if (!current(link, gen) || link->state != LINK_CONNECTING)
		return;
	if (res < 0) {
		link_fail(link, LOG_WARN, "connect: %s", strerror(-res));
		return;
	}
	loop_recv(link->loop, link->fd, link->cfg.slot, link->gen);
	start_handshake(link);
}

void redis_link_on_recv(struct redis_link *link, uint32_t gen, int res, const uint8_t *data,
			bool more)
{
	if (!current(link, gen))
		return;
	if (res == 0) {
		link_fail(link, LOG_WARN, "Redis closed the connection");
		return;
	}
	if (res < 0 && res != -ENOBUFS) {
		link_fail(link, LOG_WARN, "recv: %s", strerror(-res));
		return;
	}
	if (res > 0) {
		if (redisReaderFeed(link->reader, (const char *)data, (size_t)res) != REDIS_OK) {
			link_fail(link, LOG_WARN, "out of memory for replies");
			return;
		}
		read_replies(link);
		if (!current(link, gen))
			return;
	}
	/* The multishot recv ended (out of buffers): arm it again. */
	if (!more)
		loop_recv(link->loop, link->fd, link->cfg.slot, link->gen);
}

void redis_link_on_send(struct redis_link *link, uint32_t gen, int res)
{
	if (!link->send_busy || gen != link->send_gen)
		return;
	struct out_buf *b = &link->out[!link->filling];
	if (!current(link, gen)) {
		/* its socket is gone: the bytes are ours again */
		link->send_busy = false;
		b->len = 0;
		return;
	}
	if (res <= 0) {
		link->send_busy = false;
		b->len = 0;
		link_fail(link, LOG_WARN, "send: %s", res ? strerror(-res) : "nothing sent");
		return;
	}
	link->send_off += (size_t)res;
	if (link->send_off < b->len) {
		/* a short send: the rest, from the same buffer */
		loop_send(link->loop, link->fd, link->cfg.slot, link->gen, b->data + link->send_off,
			  b->len - link->send_off, false);
		return;
	}
	link->send_busy = false;
	b->len = 0;
}

void redis_link_on_shutdown(struct redis_link *link, uint32_t gen, int res)
{
	(void)link;
	(void)gen;
	(void)res;
}

/* ---- the owner's calls ---------------------------------------------------- */

void redis_link_flush(struct redis_link *link)
{
	struct out_buf *b = &link->out[link->filling];
	if (link->send_busy || link->fd < 0 || b->len == 0)
		return;
	link->filling ^= 1u; /* the other buffer is empty: its send has completed */
	link->send_busy = true;
	link->send_gen = link->gen;
	link->send_off = 0;
	link->last_send_ms = clock_ms();
	loop_send(link->loop, link->fd, link->cfg.slot, link->gen, b->data, b->len, false);
}

void redis_link_tick(struct redis_link *link, uint64_t now_ms)
{
	const struct waiting *oldest = fifo_oldest(link);
	unsigned timeout = link->cfg.reply_timeout_ms;
	switch (link->state) {
	case LINK_IDLE:
		break;
	case LINK_BACKOFF:
		if (now_ms >= link->retry_ms)
			link_connect(link);
		break;
	case LINK_CONNECTING:
		if (elapsed(now_ms, link->connect_ms) >= timeout)
			link_fail(link, LOG_WARN, "no connection after %u ms", timeout);
		break;
	case LINK_HANDSHAKE:
	case LINK_UP:
		if (oldest && elapsed(now_ms, oldest->queued_ms) >= timeout) {
			link_fail(link, LOG_WARN, "no reply for %u ms", timeout);
			break;
		}
		/* While commands are awaited their own deadline watches Redis. */
		if (link->state == LINK_UP && !oldest &&
		    elapsed(now_ms, link->last_send_ms) >= KEEPALIVE_MS &&
		    !queue_own(link, WAIT_PING, "PING", 1, (const char *[]){ "PING" }))
			link_fail(link, LOG_WARN, "out of memory for a PING");
		break;
	}
}

bool redis_link_command(struct redis_link *link, int argc, const char **argv, const size_t *lens,
			redis_reply_fn fn, void *arg)
{
	if (link->state != LINK_UP)
		return false;
	if (link->cfg.subscriber && fn) {
		log_error("%s: a subscriber link's answers are pushes: no reply callback", link->cfg.name);
		return false;
	}
	struct waiting w = { .fn = fn, .arg = arg, .kind = WAIT_COMMAND, .queued_ms = clock_ms() };
	if (!queue_command(link, argc, argv, lens, &w))
		return false;
	link->stats.commands++;
	return true;
}

/* ---- life ----------------------------------------------------------------- */

struct redis_link *redis_link_new(struct loop *loop, const struct redis_link_config *cfg,
				  const struct redis_link_callbacks *cb, void *ctx)
{
	struct redis_link *link = calloc(1, sizeof(*link));
	if (!link)
		return NULL;
	link->loop = loop;
	link->cfg = *cfg;
	if (!link->cfg.name)
		link->cfg.name = "redis";
	if (!link->cfg.reply_timeout_ms)
		link->cfg.reply_timeout_ms = 5000;
	if (!link->cfg.backoff_min_ms)
		link->cfg.backoff_min_ms = 100;
	if (!link->cfg.backoff_max_ms)
		link->cfg.backoff_max_ms = 5000;
	if (link->cfg.backoff_max_ms < link->cfg.backoff_min_ms)
		link->cfg.backoff_max_ms = link->cfg.backoff_min_ms;
	if (cb)
		link->cb = *cb;
	link->ctx = ctx;
	link->fd = -1;
	link->backoff_ms = link->cfg.backoff_min_ms;
	link->rng = clock_ms() ^ (uintptr_t)link ^ 0x9e3779b97f4a7c15ull;
	if (!link->rng)
		link->rng = 1;
	return link;
}

void redis_link_start(struct redis_link *link)
{
	if (link->state == LINK_IDLE)
		link_connect(link);
}

bool redis_link_up(const struct redis_link *link)
{
	return link->state == LINK_UP;
}

const struct redis_link_stats *redis_link_stats(const struct redis_link *link)
{
	return &link->stats;
}

/* Synchronous, unlike close_socket: the loop may be gone already. */
void redis_link_free(struct redis_link *link)
{
	if (!link)
		return;
	if (link->fd >= 0) {
		shutdown(link->fd, SHUT_RDWR);
		close(link->fd);
	}
	if (link->reader)
		redisReaderFree(link->reader);
	free(link->out[0].data);
	free(link->out[1].data);
	free(link->fifo);
	free(link);
}
