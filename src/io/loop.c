/* loop.c: an io_uring ring, its provided receive buffers and the loop that
 * submits and reaps everything on it. All of it lives in a struct loop, one
 * per ring: nothing here is shared between two of them. */
#include "loop.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

#define RECV_BUF_GROUP 0

/* liburing 2.3's headers predate these (kernel 6.2); the values are the
 * kernel's ABI. */
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif
/* ... and socket commands (6.7) */
#ifndef SOCKET_URING_OP_SETSOCKOPT
#define SOCKET_URING_OP_SETSOCKOPT 3
#endif

/* Room for the msghdr/iovec arrays of one submission batch. The kernel
 * copies them when it consumes the SQE (IORING_FEAT_SUBMIT_STABLE, 5.5+), so
 * the arena is reused after every io_uring_submit. */
#define ARENA_MSGS 1024
#define ARENA_IOVS 16384

/* Descriptors watched for readability (eventfds of worker threads, later
 * other rings' wake-ups): the index is the slot in a completion's user_data. */
struct watch {
	int fd;
	void (*on_ready)(void *arg);
	void *arg;
	bool armed;                 /* its multishot poll is in the ring */
};

struct loop {
	struct io_uring ring;
	bool ring_up;               /* ring set up: loop_free must tear it down */
	struct io_uring_buf_ring *buf_ring;
	uint8_t *buf_base;
	struct loop_config cfg;
	struct loop_handlers handlers;
	void *ctx;                  /* every handler's first argument */
	struct loop_stats stats;
	bool stopping;
	unsigned bufs_to_return;
	bool zc_ok;                 /* the kernel has SEND_ZC and SENDMSG_ZC */
	unsigned zc_flags;          /* IORING_SEND_ZC_REPORT_USAGE when the kernel takes it */
	bool direct;                /* a file table of direct descriptors is registered */

	struct __kernel_timespec tick_ts;
	/* What a stopped loop left unarmed, for loop_run to arm again */
	bool tick_armed, signal_armed;
	int signal_fd;
	struct signalfd_siginfo signal_info;
	struct watch *watches;
	uint32_t watch_count;

	unsigned arena_msgs_used, arena_iovs_used;
	struct msghdr arena_msgs[ARENA_MSGS];
	struct iovec arena_iovs[ARENA_IOVS];
};

static int submit(struct loop *loop)
{
	int ret = io_uring_submit(&loop->ring);
	loop->arena_msgs_used = 0;
	loop->arena_iovs_used = 0;
	loop->stats.submits++;
	if (ret < 0 && ret != -EBUSY && ret != -EAGAIN)
		log_error("io_uring_submit: %s", strerror(-ret));
	return ret;
}

/* An SQE, submitting what is queued first when the SQ is full. */
static struct io_uring_sqe *get_sqe(struct loop *loop)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);
	while (!sqe) {
		submit(loop);
		sqe = io_uring_get_sqe(&loop->ring);
	}
	return sqe;
}

static int setup_ring(struct loop *loop)
{
	struct io_uring_params p;
	/* Best first: one thread submits (SINGLE_ISSUER, 6.0), and completion
	 * work runs only when we ask for events (DEFER_TASKRUN, 6.1), so the
	 * kernel never interrupts the loop to post CQEs. Then COOP_TASKRUN
	 * (5.19), which at least avoids IPIs. CQSIZE: a broadcast to N
	 * connections completes N sends at once, so the CQ is larger than the SQ. */
	static const struct {
		unsigned flags;
		const char *name;
	} tries[] = {
		{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "SINGLE_ISSUER|DEFER_TASKRUN" },
		{ IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN" },
		{ 0, "no task-run flags" },
	};
	int ret = -EINVAL;
	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		memset(&p, 0, sizeof(p));
		p.flags = tries[i].flags | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
		p.cq_entries = loop->cfg.cq_entries;
		ret = io_uring_queue_init_params(loop->cfg.sq_entries, &loop->ring, &p);
		if (ret == 0) {
			log_info("io_uring: %u SQ / %u CQ entries, %s", p.sq_entries, p.cq_entries,
				 tries[i].name);
			break;
		}
		log_info("io_uring: kernel refused %s (%s), trying the next set", tries[i].name,
			 strerror(-ret));
	}
	if (ret < 0) {
		log_error("io_uring_queue_init: %s", strerror(-ret));
		return -1;
	}
	loop->ring_up = true;
	if (!(p.features & IORING_FEAT_SUBMIT_STABLE)) {
		log_error("io_uring: kernel lacks SUBMIT_STABLE (5.5+); sendmsg arrays would not be safe");
		return -1;
	}
	/* A registered ring fd saves an fdget/fdput on every io_uring_enter (5.18). */
	if (io_uring_register_ring_fd(&loop->ring) < 0)
		log_info("io_uring: could not register the ring fd; continuing without");
	return 0;
}

/* One buffer ring shared by every connection's multishot recv (5.19): an
 * idle connection owns no receive buffer, and buffers go back to the ring as
 * soon as their bytes are consumed, within the same loop iteration. */
static int setup_buffers(struct loop *loop)
{
	const struct loop_config *cfg = &loop->cfg;
	size_t ring_bytes = (size_t)cfg->buf_count * sizeof(struct io_uring_buf);
	void *mem = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		log_error("mmap buffer ring: %s", strerror(errno));
		return -1;
	}
	loop->buf_ring = mem;
	/* Populated now so the pool is start-up cost, not growth under load. */
	size_t pool_bytes = (size_t)cfg->buf_count * cfg->buf_size;
	mem = mmap(NULL, pool_bytes, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (mem == MAP_FAILED) {
		log_error("mmap receive buffers: %s", strerror(errno));
		return -1;
	}
	loop->buf_base = mem;
	struct io_uring_buf_reg reg = {
		.ring_addr = (unsigned long)loop->buf_ring,
		.ring_entries = cfg->buf_count,
		.bgid = RECV_BUF_GROUP,
	};
	int ret = io_uring_register_buf_ring(&loop->ring, &reg, 0);
	if (ret < 0) {
		log_error("io_uring_register_buf_ring (kernel 5.19+): %s", strerror(-ret));
		return -1;
	}
	io_uring_buf_ring_init(loop->buf_ring);
	unsigned mask = (unsigned)io_uring_buf_ring_mask(cfg->buf_count);
	for (unsigned i = 0; i < cfg->buf_count; i++)
		io_uring_buf_ring_add(loop->buf_ring, loop->buf_base + (size_t)i * cfg->buf_size,
				      cfg->buf_size, (unsigned short)i, mask, (int)i);
	io_uring_buf_ring_advance(loop->buf_ring, (int)cfg->buf_count);
	log_info("receive buffers: %u x %u bytes in one provided buffer ring", cfg->buf_count,
		 cfg->buf_size);
	return 0;
}

/* Does the kernel take IORING_SEND_ZC_REPORT_USAGE (6.2)? It checks the
 * flags when it prepares the SQE, before it looks at the socket, so a
 * zero-copy send on a unix socket (which cannot do zero-copy) fails with
 * -EINVAL only when the flag is unknown. Runs while the ring is empty. */
static bool probe_zc_report_usage(struct loop *loop)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return false;
	static const char byte;
	struct io_uring_sqe *sqe = get_sqe(loop);
	io_uring_prep_send_zc(sqe, sv[0], &byte, 1, MSG_DONTWAIT, IORING_SEND_ZC_REPORT_USAGE);
	io_uring_sqe_set_data64(sqe, 0); /* no operation: dispatch ignores a straggler */
	io_uring_submit(&loop->ring);
	int res = -EINVAL;
	bool more = true;
	/* the result, then the notification when F_MORE says one follows */
	while (more) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec wait = { .tv_sec = 1 };
		if (io_uring_wait_cqe_timeout(&loop->ring, &cqe, &wait) < 0)
			break;
		if (!(cqe->flags & IORING_CQE_F_NOTIF))
			res = cqe->res;
		more = cqe->flags & IORING_CQE_F_MORE;
		io_uring_cqe_seen(&loop->ring, cqe);
	}
	close(sv[0]);
	close(sv[1]);
	return res != -EINVAL;
}

/* Zero-copy send (SEND_ZC 6.0, SENDMSG_ZC 6.1): the socket sends from our
 * pages instead of a copy of them, and a second CQE, the notification, says
 * when the kernel no longer needs them. Loopback copies anyway, at delivery
 * to the receiving socket; REPORT_USAGE lets us count that. */
static void probe_send_zc(struct loop *loop)
{
	struct io_uring_probe *p = io_uring_get_probe_ring(&loop->ring);
	loop->zc_ok = p && io_uring_opcode_supported(p, IORING_OP_SEND_ZC) &&
		      io_uring_opcode_supported(p, IORING_OP_SENDMSG_ZC);
	if (p)
		io_uring_free_probe(p);
	if (!loop->zc_ok) {
		log_warn("io_uring: kernel lacks zero-copy send (SENDMSG_ZC, 6.1+); sending plain");
		return;
	}
	if (probe_zc_report_usage(loop))
		loop->zc_flags = IORING_SEND_ZC_REPORT_USAGE;
	log_info("io_uring: zero-copy send available%s",
		 loop->zc_flags ? ", copies reported" : "; the kernel cannot report copies (6.2+)");
}

/* setsockopt on a socket through the ring (IORING_OP_URING_CMD, 6.7): the
 * only way to set an option on a direct descriptor, which has no fd for
 * the syscall. The kernel reads val when it issues the command. */
static void prep_setsockopt(struct io_uring_sqe *sqe, int fd, int optname, const void *val,
			    unsigned len)
{
	io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
	sqe->cmd_op = SOCKET_URING_OP_SETSOCKOPT;
	/* level and optname share the addr field (liburing 2.3 has no names for them) */
	uint32_t level_optname[2] = { SOL_SOCKET, (uint32_t)optname };
	memcpy(&sqe->addr, level_optname, sizeof(level_optname));
	sqe->splice_fd_in = (int)len; /* optlen */
	sqe->addr3 = (uint64_t)(uintptr_t)val; /* optval */
}

static const struct linger linger_off, linger_reset = { .l_onoff = 1, .l_linger = 0 };

/* Can the ring set socket options (6.7)? A direct socket needs it for the
 * abortive close. Setting SO_LINGER off on a fresh socket changes nothing
 * and fails only where the command is unknown. Runs while the ring is empty. */
static bool probe_setsockopt(struct loop *loop)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	struct io_uring_sqe *sqe = get_sqe(loop);
	prep_setsockopt(sqe, fd, SO_LINGER, &linger_off, sizeof(linger_off));
	io_uring_sqe_set_data64(sqe, 0);
	io_uring_submit(&loop->ring);
	struct io_uring_cqe *cqe;
	struct __kernel_timespec wait = { .tv_sec = 1 };
	int res = -ETIME;
	if (io_uring_wait_cqe_timeout(&loop->ring, &cqe, &wait) == 0) {
		res = cqe->res;
		io_uring_cqe_seen(&loop->ring, cqe);
	}
	close(fd);
	return res == 0;
}

/* Direct descriptors: a sparse table (5.19) the size of the connection
 * slots, filled as sockets are accepted (loop_install), so a connection's
 * socket holds no entry in the process's descriptor table. Each ring has
 * its own table, capped at RLIMIT_NOFILE at registration (liburing raises
 * the soft limit towards the hard one to fit it): N rings hold N times the
 * limit in connections. Where the kernel refuses, plain descriptors do all
 * the same, only fewer of them. */
static void setup_direct(struct loop *loop)
{
	unsigned n = loop->cfg.direct_files;
	int ret = io_uring_register_files_sparse(&loop->ring, n);
	const char *why = ret < 0 ? strerror(-ret) : NULL;
	if (!why && !probe_setsockopt(loop)) {
		io_uring_unregister_files(&loop->ring);
		why = "no socket setsockopt command, kernel 6.7+";
	}
	if (why) {
		log_warn("direct descriptors unavailable (%s): using plain descriptors, so at most "
			 "RLIMIT_NOFILE connections", why);
		return;
	}
	loop->direct = true;
	log_info("io_uring: direct descriptors, a file table of %u sockets in the ring", n);
}

static void return_buffer(struct loop *loop, unsigned bid)
{
	unsigned size = loop->cfg.buf_size;
	io_uring_buf_ring_add(loop->buf_ring, loop->buf_base + (size_t)bid * size, size,
			      (unsigned short)bid, (unsigned)io_uring_buf_ring_mask(loop->cfg.buf_count),
			      (int)loop->bufs_to_return);
	loop->bufs_to_return++;
}

static void arm_tick(struct loop *loop)
{
	struct io_uring_sqe *sqe = get_sqe(loop);
	io_uring_prep_timeout(sqe, &loop->tick_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_TICK, 0, 0));
	loop->tick_armed = true;
}

static void arm_signal_read(struct loop *loop)
{
	struct io_uring_sqe *sqe = get_sqe(loop);
	io_uring_prep_read(sqe, loop->signal_fd, &loop->signal_info, sizeof(loop->signal_info), 0);
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_SIGNAL, 0, 0));
	loop->signal_armed = true;
}

struct loop *loop_new(const struct loop_config *cfg, const struct loop_handlers *h, void *ctx)
{
	/* One allocation, arenas included (about 300 KiB, untouched until a
	 * batch needs it): nothing on the hot path allocates. */
	struct loop *loop = calloc(1, sizeof(*loop));
	if (!loop) {
		log_error("cannot allocate a loop");
		return NULL;
	}
	loop->cfg = *cfg;
	loop->handlers = *h;
	loop->ctx = ctx;
	loop->signal_fd = -1;
	if (setup_ring(loop) < 0 || setup_buffers(loop) < 0) {
		loop_free(loop);
		return NULL;
	}
	if (cfg->send_zc)
		probe_send_zc(loop);
	if (cfg->direct_files)
		setup_direct(loop);
	loop->tick_ts.tv_sec = cfg->tick_ms / 1000;
	loop->tick_ts.tv_nsec = (long long)(cfg->tick_ms % 1000) * 1000000;
	arm_tick(loop);
	return loop;
}

void loop_free(struct loop *loop)
{
	if (!loop)
		return;
	/* the ring first: it lets go of the buffers registered with it */
	if (loop->ring_up)
		io_uring_queue_exit(&loop->ring);
	if (loop->buf_ring)
		munmap(loop->buf_ring, (size_t)loop->cfg.buf_count * sizeof(struct io_uring_buf));
	if (loop->buf_base)
		munmap(loop->buf_base, (size_t)loop->cfg.buf_count * loop->cfg.buf_size);
	free(loop->watches);
	free(loop);
}

void loop_stop(struct loop *loop)
{
	loop->stopping = true;
}

const struct loop_stats *loop_stats(const struct loop *loop)
{
	return &loop->stats;
}

bool loop_direct(const struct loop *loop)
{
	return loop->direct;
}

/* A synchronous update, not an SQE: the entry is the slot's from the
 * moment this returns, before anything queued for the slot is submitted. */
int loop_install(struct loop *loop, int fd, uint32_t slot)
{
	if (!loop->direct)
		return -EBADF;
	int ret = io_uring_register_files_update(&loop->ring, slot, &fd, 1);
	if (ret < 0)
		return ret;
	close(fd);
	return 0;
}

/* Aim an SQE at a connection's socket: a direct one is the table's entry
 * at the slot (IOSQE_FIXED_FILE), which also spares the kernel an fd lookup. */
static void set_socket(struct io_uring_sqe *sqe, int fd, uint32_t slot)
{
	if (fd != LOOP_FD_DIRECT)
		return;
	sqe->fd = (int)slot;
	sqe->flags |= IOSQE_FIXED_FILE;
}

void loop_accept(struct loop *loop, int listen_fd)
{
	/* Multishot accept (5.19): one SQE keeps accepting until it fails. */
	struct io_uring_sqe *sqe = get_sqe(loop);
	io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_ACCEPT, 0, 0));
}

void loop_connect(struct loop *loop, int fd, uint32_t slot, uint32_t gen, const struct sockaddr *addr,
		  socklen_t len)
{
	/* The kernel waits for the handshake itself (a non-blocking socket's
	 * EINPROGRESS becomes a poll inside the ring), so one CQE carries the
	 * outcome. */
	struct io_uring_sqe *sqe = get_sqe(loop);
	io_uring_prep_connect(sqe, fd, addr, len);
	set_socket(sqe, fd, slot);
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_CONNECT, slot, gen));
}

void loop_recv(struct loop *loop, int fd, uint32_t slot, uint32_t gen)
{
	/* Multishot recv (6.0) drawing from the shared buffer ring. */
	struct io_uring_sqe *sqe = get_sqe(loop);
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	set_socket(sqe, fd, slot);
	sqe->buf_group = RECV_BUF_GROUP;
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_RECV, slot, gen));
}

void loop_send(struct loop *loop, int fd, uint32_t slot, uint32_t gen, const void *data, size_t len,
	       bool zc)
{
	struct io_uring_sqe *sqe = get_sqe(loop);
	if (zc && loop->zc_ok) {
		io_uring_prep_send_zc(sqe, fd, data, len, MSG_NOSIGNAL, loop->zc_flags);
		loop->stats.zc_sends++;
	} else {
		io_uring_prep_send(sqe, fd, data, len, MSG_NOSIGNAL);
	}
	set_socket(sqe, fd, slot);
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_SEND, slot, gen));
}

void loop_sendv(struct loop *loop, int fd, uint32_t slot, uint32_t gen, const struct iovec *iov,
		unsigned n, bool zc)
{
	if (loop->arena_msgs_used == ARENA_MSGS || loop->arena_iovs_used + n > ARENA_IOVS)
		submit(loop);
	struct io_uring_sqe *sqe = get_sqe(loop);
	struct msghdr *msg = &loop->arena_msgs[loop->arena_msgs_used++];
	struct iovec *dst = &loop->arena_iovs[loop->arena_iovs_used];
	loop->arena_iovs_used += n;
	memcpy(dst, iov, n * sizeof(*iov));
	memset(msg, 0, sizeof(*msg));
	msg->msg_iov = dst;
	msg->msg_iovlen = n;
	if (zc && loop->zc_ok) {
		io_uring_prep_sendmsg_zc(sqe, fd, msg, MSG_NOSIGNAL);
		sqe->ioprio |= (uint16_t)loop->zc_flags;
		loop->stats.zc_sends++;
	} else {
		io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
	}
	set_socket(sqe, fd, slot);
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_SEND, slot, gen));
}

void loop_shutdown(struct loop *loop, int fd, int how, uint32_t slot, uint32_t gen)
{
	struct io_uring_sqe *sqe = get_sqe(loop);
	io_uring_prep_shutdown(sqe, fd, how);
	set_socket(sqe, fd, slot);
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_SHUTDOWN, slot, gen));
}

void loop_close(struct loop *loop, int fd)
{
	struct io_uring_sqe *sqe = get_sqe(loop);
	io_uring_prep_close(sqe, fd);
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_CLOSE, 0, 0));
}

void loop_close_socket(struct loop *loop, int fd, uint32_t slot)
{
	if (fd != LOOP_FD_DIRECT) {
		loop_close(loop, fd);
		return;
	}
	/* Emptied now, like loop_install fills it: a close SQE could run
	 * after the slot's next socket is installed, and close that one. */
	static const int none = -1;
	int ret = io_uring_register_files_update(&loop->ring, slot, &none, 1);
	if (ret < 0)
		log_error("io_uring: closing direct socket %u: %s", slot, strerror(-ret));
}

void loop_reset(struct loop *loop, int fd, uint32_t slot, uint32_t gen)
{
	uint64_t done = loop_pack(LOOP_OP_SHUTDOWN, slot, gen);
	if (fd != LOOP_FD_DIRECT) {
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger_reset, sizeof(linger_reset));
		struct io_uring_sqe *sqe = get_sqe(loop);
		io_uring_prep_close(sqe, fd);
		io_uring_sqe_set_data64(sqe, done);
		return;
	}
	/* Both in one submission, or the link would be cut. A hard link: the
	 * close goes ahead even if the option could not be set. */
	if (io_uring_sq_space_left(&loop->ring) < 2)
		submit(loop);
	struct io_uring_sqe *sqe = get_sqe(loop);
	prep_setsockopt(sqe, fd, SO_LINGER, &linger_reset, sizeof(linger_reset));
	set_socket(sqe, fd, slot);
	sqe->flags |= IOSQE_IO_HARDLINK;
	io_uring_sqe_set_data64(sqe, 0); /* no operation: its result is the close's business */
	sqe = get_sqe(loop);
	io_uring_prep_close_direct(sqe, slot);
	io_uring_sqe_set_data64(sqe, done);
}

static void arm_readable(struct loop *loop, uint32_t i)
{
	/* Multishot poll (5.13): one SQE reports every time fd turns readable. */
	struct io_uring_sqe *sqe = get_sqe(loop);
	io_uring_prep_poll_multishot(sqe, loop->watches[i].fd, POLLIN);
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_READABLE, i, 0));
	loop->watches[i].armed = true;
}

int loop_watch_readable(struct loop *loop, int fd, void (*on_ready)(void *arg), void *arg)
{
	struct watch *grown = realloc(loop->watches, (loop->watch_count + 1) * sizeof(*grown));
	if (!grown)
		return -1;
	loop->watches = grown;
	grown[loop->watch_count] = (struct watch){ .fd = fd, .on_ready = on_ready, .arg = arg };
	arm_readable(loop, loop->watch_count++);
	return 0;
}

void loop_send_then_close(struct loop *loop, int fd, const void *data, size_t len)
{
	if (io_uring_sq_space_left(&loop->ring) < 2)
		submit(loop);
	struct io_uring_sqe *sqe = get_sqe(loop);
	io_uring_prep_send(sqe, fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	/* a hard link: the close runs even when the send fails */
	sqe->flags |= IOSQE_IO_HARDLINK;
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_CLOSE, 0, 0));
	sqe = get_sqe(loop);
	io_uring_prep_close(sqe, fd);
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_CLOSE, 0, 0));
}

void loop_watch_signals(struct loop *loop, int fd)
{
	loop->signal_fd = fd;
	arm_signal_read(loop);
}

/* A zero-copy send's notification: the kernel is done with its bytes. The
 * kernel posts it after the send's own CQE. */
static void send_released(struct loop *loop, uint32_t slot, uint32_t gen, int res)
{
	if (loop->zc_flags && ((uint32_t)res & IORING_NOTIF_USAGE_ZC_COPIED))
		loop->stats.zc_copied++;
	loop->handlers.on_send_released(loop->ctx, slot, gen);
}

static void dispatch(struct loop *loop, struct io_uring_cqe *cqe)
{
	const struct loop_handlers *h = &loop->handlers;
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	uint32_t slot = loop_unpack_slot(ud), gen = loop_unpack_gen(ud);
	bool more = cqe->flags & IORING_CQE_F_MORE;

	switch (loop_unpack_op(ud)) {
	case LOOP_OP_ACCEPT:
		h->on_accept(loop->ctx, cqe->res, more);
		break;
	case LOOP_OP_RECV:
		if (cqe->flags & IORING_CQE_F_BUFFER) {
			unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
			h->on_recv(loop->ctx, slot, gen, cqe->res,
				   loop->buf_base + (size_t)bid * loop->cfg.buf_size, more);
			return_buffer(loop, bid);
		} else {
			if (cqe->res == -ENOBUFS)
				loop->stats.enobufs++;
			h->on_recv(loop->ctx, slot, gen, cqe->res, NULL, more);
		}
		break;
	case LOOP_OP_SEND:
		if (cqe->flags & IORING_CQE_F_NOTIF)
			send_released(loop, slot, gen, cqe->res);
		else
			h->on_send(loop->ctx, slot, gen, cqe->res, more);
		break;
	case LOOP_OP_SHUTDOWN:
		h->on_shutdown(loop->ctx, slot, gen, cqe->res);
		break;
	case LOOP_OP_CLOSE:
		break;
	case LOOP_OP_CONNECT:
		if (h->on_connect)
			h->on_connect(loop->ctx, slot, gen, cqe->res);
		break;
	case LOOP_OP_TICK:
		loop->tick_armed = false;
		h->on_tick(loop->ctx);
		if (!loop->stopping)
			arm_tick(loop);
		break;
	case LOOP_OP_READABLE:
		if (!more)
			loop->watches[slot].armed = false;
		if (cqe->res > 0)
			loop->watches[slot].on_ready(loop->watches[slot].arg);
		if (!more && !loop->stopping)
			arm_readable(loop, slot);
		break;
	case LOOP_OP_SIGNAL:
		loop->signal_armed = false;
		if (cqe->res == (int)sizeof(loop->signal_info))
			h->on_signal(loop->ctx, (int)loop->signal_info.ssi_signo);
		if (!loop->stopping)
			arm_signal_read(loop);
		break;
	}
}

/* A loop run again after loop_stop: what stopping left unarmed is armed
 * again, so the tick, signals and watches go on as before. */
static void resume(struct loop *loop)
{
	loop->stopping = false;
	if (!loop->tick_armed)
		arm_tick(loop);
	if (loop->signal_fd >= 0 && !loop->signal_armed)
		arm_signal_read(loop);
	for (uint32_t i = 0; i < loop->watch_count; i++)
		if (!loop->watches[i].armed)
			arm_readable(loop, i);
}

int loop_run(struct loop *loop)
{
	resume(loop);
	while (!loop->stopping) {
		bool busy = loop->handlers.before_wait(loop->ctx);
		int ret;
		/* With sends left for the next round, only collect what has
		 * completed; otherwise sleep until something does. */
		if (busy)
			ret = io_uring_submit_and_get_events(&loop->ring);
		else
			ret = io_uring_submit_and_wait(&loop->ring, 1);
		loop->arena_msgs_used = 0;
		loop->arena_iovs_used = 0;
		loop->stats.submits++;
		if (ret < 0 && ret != -EINTR && ret != -ETIME && ret != -EBUSY && ret != -EAGAIN) {
			log_error("io_uring_submit_and_wait: %s", strerror(-ret));
			return -1;
		}
		loop->stats.iterations++;

		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&loop->ring, head, cqe) {
			dispatch(loop, cqe);
			seen++;
		}
		io_uring_cq_advance(&loop->ring, seen);
		loop->stats.completions += seen;
		if (loop->bufs_to_return) {
			io_uring_buf_ring_advance(loop->buf_ring, (int)loop->bufs_to_return);
			loop->bufs_to_return = 0;
		}
	}
	return 0;
}
