/* loop.h: an io_uring ring and its submission/completion loop.
 *
 * A struct loop is one ring with everything that goes with it (provided
 * buffers, tick, watches, counters); nothing is shared between two loops, so
 * a process may run several, one per thread. The loop knows sockets and
 * operations, not protocols: completions are handed to the handlers
 * registered by the connection layer, together with the context it gave
 * loop_new, and every operation the layers above want is an SQE prepared
 * here and submitted in one batch per loop iteration. */
#ifndef RINGCAST_LOOP_H
#define RINGCAST_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* What a completion belongs to, packed into user_data with the connection
 * slot and its generation so a late completion for a recycled slot is seen. */
enum loop_op {
	LOOP_OP_ACCEPT = 1,
	LOOP_OP_RECV,
	LOOP_OP_SEND,
	LOOP_OP_SHUTDOWN,
	LOOP_OP_CLOSE,
	LOOP_OP_TICK,
	LOOP_OP_SIGNAL,
	LOOP_OP_READABLE,
	LOOP_OP_CONNECT,
};

#define LOOP_GEN_MASK 0xffffffu

static inline uint64_t loop_pack(enum loop_op op, uint32_t slot, uint32_t gen)
{
	return (uint64_t)op << 56 | (uint64_t)(gen & LOOP_GEN_MASK) << 32 | slot;
}

static inline enum loop_op loop_unpack_op(uint64_t ud)
{
	return (enum loop_op)(ud >> 56);
}

static inline uint32_t loop_unpack_gen(uint64_t ud)
{
	return (uint32_t)(ud >> 32) & LOOP_GEN_MASK;
}

static inline uint32_t loop_unpack_slot(uint64_t ud)
{
	return (uint32_t)ud;
}

/* Completion handlers, supplied by the layer above. ctx is the pointer given
 * to loop_new; res is the CQE result. */
struct loop_handlers {
	void (*on_accept)(void *ctx, int res, bool more);
	/* data is valid only during the call: its buffer goes back to the ring after */
	void (*on_recv)(void *ctx, uint32_t slot, uint32_t gen, int res, uint8_t *data, bool more);
	/* held: a zero-copy send, whose bytes the kernel still reads after this
	 * result; on_send_released follows once it has let go of them. */
	void (*on_send)(void *ctx, uint32_t slot, uint32_t gen, int res, bool held);
	void (*on_send_released)(void *ctx, uint32_t slot, uint32_t gen);
	void (*on_shutdown)(void *ctx, uint32_t slot, uint32_t gen, int res);
	/* An outgoing connect finished: 0, or -errno. NULL for a loop that
	 * never connects. */
	void (*on_connect)(void *ctx, uint32_t slot, uint32_t gen, int res);
	void (*on_tick)(void *ctx);
	void (*on_signal)(void *ctx, int signo);
	/* Called once per iteration before waiting: queue this round's sends.
	 * Returns true when work is left over, so the loop must not block. */
	bool (*before_wait)(void *ctx);
};

struct loop_config {
	unsigned sq_entries;      /* submission queue size */
	unsigned cq_entries;      /* completion queue size, several times the SQ */
	unsigned buf_count;       /* provided receive buffers, a power of two */
	unsigned buf_size;        /* bytes per receive buffer */
	unsigned tick_ms;         /* period of the one coarse timer */
	bool send_zc;             /* zero-copy sends will be asked for: probe the kernel */
	/* Entries in a registered file table for connection sockets (direct
	 * descriptors), at least the connections' slot count; 0: plain
	 * descriptors only. Where the kernel refuses, the loop logs why and
	 * uses plain descriptors (loop_direct). */
	unsigned direct_files;
};

struct loop_stats {
	uint64_t iterations;
	uint64_t completions;
	uint64_t submits;
	uint64_t enobufs;
	uint64_t zc_sends;        /* zero-copy sends submitted */
	uint64_t zc_copied;       /* ... whose notification said the kernel copied after all */
};

struct loop;

/* A new ring, its buffers and its tick; NULL on failure (logged). Create it
 * on the thread that will run it: the ring is set up for a single issuer and
 * its fd is registered for the creating thread only. */
struct loop *loop_new(const struct loop_config *cfg, const struct loop_handlers *h, void *ctx);
void loop_free(struct loop *loop);

/* Run until loop_stop(); returns 0, or -1 on a ring failure. A stopped
 * loop may be run again: it picks up where it stopped (tests wait for one
 * event after another this way). */
int loop_run(struct loop *loop);
/* From the loop's own thread (a handler): the loop ends after this pass. */
void loop_stop(struct loop *loop);

/* Direct descriptors: a socket kept in the ring's own file table, not the
 * process's, so it does not count against RLIMIT_NOFILE; each ring's table
 * holds up to that limit again. A connection's entry is the one at its
 * slot. The operations below that take fd and slot name such a socket
 * with fd LOOP_FD_DIRECT, and a plain one by its descriptor. */
#define LOOP_FD_DIRECT (-2)

/* Has this loop a file table (loop_config.direct_files, kernel 6.7+)? */
bool loop_direct(const struct loop *loop);
/* Move the plain socket fd into the table at index slot and close fd.
 * 0, or -errno with fd still open and the table as it was. */
int loop_install(struct loop *loop, int fd, uint32_t slot);

void loop_accept(struct loop *loop, int listen_fd);
/* Connect the socket (plain or direct, as below) to addr; on_connect
 * follows. addr must stay valid until then: the kernel may read it only
 * when the connect is issued. */
void loop_connect(struct loop *loop, int fd, uint32_t slot, uint32_t gen, const struct sockaddr *addr,
		  socklen_t len);
void loop_recv(struct loop *loop, int fd, uint32_t slot, uint32_t gen);
/* zc asks for a zero-copy send (a plain one where the kernel has none): its
 * bytes must then live until on_send_released, not just until on_send. */
void loop_send(struct loop *loop, int fd, uint32_t slot, uint32_t gen, const void *data, size_t len,
	       bool zc);
/* iov[0..n) is copied by the kernel at submission (IORING_FEAT_SUBMIT_STABLE);
 * the bytes it points to must live until the completion (see zc above). */
void loop_sendv(struct loop *loop, int fd, uint32_t slot, uint32_t gen, const struct iovec *iov,
		unsigned n, bool zc);
void loop_shutdown(struct loop *loop, int fd, int how, uint32_t slot, uint32_t gen);
/* Close a plain descriptor (a listener, a socket that has no slot). */
void loop_close(struct loop *loop, int fd);
/* Close a connection's socket, plain or direct, once nothing is in flight
 * on it: a direct one's table entry is free for the slot's next socket on
 * return. */
void loop_close_socket(struct loop *loop, int fd, uint32_t slot);
/* Close abortively (SO_LINGER 0: a reset, and the kernel drops what it
 * still holds to send). The close completes as a LOOP_OP_SHUTDOWN for
 * slot and gen: a direct socket's table entry is busy until then. */
void loop_reset(struct loop *loop, int fd, uint32_t slot, uint32_t gen);
/* Send data (static, never freed) on a socket that has no slot, then close
 * it, whatever the send's outcome: for turning connections away. */
void loop_send_then_close(struct loop *loop, int fd, const void *data, size_t len);
void loop_watch_signals(struct loop *loop, int signal_fd);
/* Call on_ready(arg) whenever fd is readable (an eventfd from a worker
 * thread); on_ready must consume what makes it readable. Any number of
 * descriptors; -1 when out of memory. */
int loop_watch_readable(struct loop *loop, int fd, void (*on_ready)(void *arg), void *arg);

const struct loop_stats *loop_stats(const struct loop *loop);

#endif
