/* loop.c: the io_uring ring, its provided receive buffers and the one loop
 * that submits and reaps everything. */
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

/* Room for the msghdr/iovec arrays of one submission batch. The kernel
 * copies them when it consumes the SQE (IORING_FEAT_SUBMIT_STABLE, 5.5+), so
 * the arena is reused after every io_uring_submit. */
#define ARENA_MSGS 1024
#define ARENA_IOVS 16384

static struct io_uring ring;
static struct io_uring_buf_ring *buf_ring;
static uint8_t *buf_base;
static struct loop_config cfg;
static struct loop_handlers handlers;
static struct loop_stats stats;
static bool stopping;
static unsigned bufs_to_return;
static bool zc_ok;          /* the kernel has SEND_ZC and SENDMSG_ZC */
static unsigned zc_flags;   /* IORING_SEND_ZC_REPORT_USAGE when the kernel takes it */

static struct msghdr arena_msgs[ARENA_MSGS];
static struct iovec arena_iovs[ARENA_IOVS];
static unsigned arena_msgs_used, arena_iovs_used;

static struct __kernel_timespec tick_ts;
static int signal_fd = -1;
/* Descriptors watched for readability (eventfds of worker threads, later
 * other rings' wake-ups): the index is the slot in a completion's user_data. */
struct watch {
	int fd;
	void (*on_ready)(void *arg);
	void *arg;
};
static struct watch *watches;
static uint32_t watch_count;
static struct signalfd_siginfo signal_info;

static int submit(void)
{
	int ret = io_uring_submit(&ring);
	arena_msgs_used = 0;
	arena_iovs_used = 0;
	stats.submits++;
	if (ret < 0 && ret != -EBUSY && ret != -EAGAIN)
		log_error("io_uring_submit: %s", strerror(-ret));
	return ret;
}

/* An SQE, submitting what is queued first when the SQ is full. */
static struct io_uring_sqe *get_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	while (!sqe) {
		submit();
		sqe = io_uring_get_sqe(&ring);
	}
	return sqe;
}

static int setup_ring(void)
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
		p.cq_entries = cfg.cq_entries;
		ret = io_uring_queue_init_params(cfg.sq_entries, &ring, &p);
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
	if (!(p.features & IORING_FEAT_SUBMIT_STABLE)) {
		log_error("io_uring: kernel lacks SUBMIT_STABLE (5.5+); sendmsg arrays would not be safe");
		return -1;
	}
	/* A registered ring fd saves an fdget/fdput on every io_uring_enter (5.18). */
	if (io_uring_register_ring_fd(&ring) < 0)
		log_info("io_uring: could not register the ring fd; continuing without");
	return 0;
}

/* One buffer ring shared by every connection's multishot recv (5.19): an
 * idle connection owns no receive buffer, and buffers go back to the ring as
 * soon as their bytes are consumed, within the same loop iteration. */
static int setup_buffers(void)
{
	size_t ring_bytes = (size_t)cfg.buf_count * sizeof(struct io_uring_buf);
	void *mem = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		log_error("mmap buffer ring: %s", strerror(errno));
		return -1;
	}
	buf_ring = mem;
	/* Populated now so the pool is start-up cost, not growth under load. */
	size_t pool_bytes = (size_t)cfg.buf_count * cfg.buf_size;
	buf_base = mmap(NULL, pool_bytes, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (buf_base == MAP_FAILED) {
		log_error("mmap receive buffers: %s", strerror(errno));
		return -1;
	}
	struct io_uring_buf_reg reg = {
		.ring_addr = (unsigned long)buf_ring,
		.ring_entries = cfg.buf_count,
		.bgid = RECV_BUF_GROUP,
	};
	int ret = io_uring_register_buf_ring(&ring, &reg, 0);
	if (ret < 0) {
		log_error("io_uring_register_buf_ring (kernel 5.19+): %s", strerror(-ret));
		return -1;
	}
	io_uring_buf_ring_init(buf_ring);
	unsigned mask = (unsigned)io_uring_buf_ring_mask(cfg.buf_count);
	for (unsigned i = 0; i < cfg.buf_count; i++)
		io_uring_buf_ring_add(buf_ring, buf_base + (size_t)i * cfg.buf_size, cfg.buf_size,
				      (unsigned short)i, mask, (int)i);
	io_uring_buf_ring_advance(buf_ring, (int)cfg.buf_count);
	log_info("receive buffers: %u x %u bytes in one provided buffer ring", cfg.buf_count,
		 cfg.buf_size);
	return 0;
}

/* Does the kernel take IORING_SEND_ZC_REPORT_USAGE (6.2)? It checks the
 * flags when it prepares the SQE, before it looks at the socket, so a
 * zero-copy send on a unix socket (which cannot do zero-copy) fails with
 * -EINVAL only when the flag is unknown. Runs while the ring is empty. */
static bool probe_zc_report_usage(void)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return false;
	static const char byte;
	struct io_uring_sqe *sqe = get_sqe();
	io_uring_prep_send_zc(sqe, sv[0], &byte, 1, MSG_DONTWAIT, IORING_SEND_ZC_REPORT_USAGE);
	io_uring_sqe_set_data64(sqe, 0); /* no operation: dispatch ignores a straggler */
	io_uring_submit(&ring);
	int res = -EINVAL;
	bool more = true;
	/* the result, then the notification when F_MORE says one follows */
	while (more) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec wait = { .tv_sec = 1 };
		if (io_uring_wait_cqe_timeout(&ring, &cqe, &wait) < 0)
			break;
		if (!(cqe->flags & IORING_CQE_F_NOTIF))
			res = cqe->res;
		more = cqe->flags & IORING_CQE_F_MORE;
		io_uring_cqe_seen(&ring, cqe);
	}
	close(sv[0]);
	close(sv[1]);
	return res != -EINVAL;
}

/* Zero-copy send (SEND_ZC 6.0, SENDMSG_ZC 6.1): the socket sends from our
 * pages instead of a copy of them, and a second CQE, the notification, says
 * when the kernel no longer needs them. Loopback copies anyway, at delivery
 * to the receiving socket; REPORT_USAGE lets us count that. */
static void probe_send_zc(void)
{
	struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
	zc_ok = p && io_uring_opcode_supported(p, IORING_OP_SEND_ZC) &&
		io_uring_opcode_supported(p, IORING_OP_SENDMSG_ZC);
	if (p)
		io_uring_free_probe(p);
	if (!zc_ok) {
		log_warn("io_uring: kernel lacks zero-copy send (SENDMSG_ZC, 6.1+); sending plain");
		return;
	}
	if (probe_zc_report_usage())
		zc_flags = IORING_SEND_ZC_REPORT_USAGE;
	log_info("io_uring: zero-copy send available%s",
		 zc_flags ? ", copies reported" : "; the kernel cannot report copies (6.2+)");
}

static void return_buffer(unsigned bid)
{
	io_uring_buf_ring_add(buf_ring, buf_base + (size_t)bid * cfg.buf_size, cfg.buf_size,
			      (unsigned short)bid, (unsigned)io_uring_buf_ring_mask(cfg.buf_count),
			      (int)bufs_to_return);
	bufs_to_return++;
}

static void arm_tick(void)
{
	struct io_uring_sqe *sqe = get_sqe();
	io_uring_prep_timeout(sqe, &tick_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_TICK, 0, 0));
}

static void arm_signal_read(void)
{
	struct io_uring_sqe *sqe = get_sqe();
	io_uring_prep_read(sqe, signal_fd, &signal_info, sizeof(signal_info), 0);
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_SIGNAL, 0, 0));
}

int loop_init(const struct loop_config *c, const struct loop_handlers *h)
{
	cfg = *c;
	handlers = *h;
	stopping = false;
	if (setup_ring() < 0 || setup_buffers() < 0)
		return -1;
	if (cfg.send_zc)
		probe_send_zc();
	tick_ts.tv_sec = cfg.tick_ms / 1000;
	tick_ts.tv_nsec = (long long)(cfg.tick_ms % 1000) * 1000000;
	arm_tick();
	return 0;
}

void loop_destroy(void)
{
	io_uring_queue_exit(&ring);
	free(watches);
	watches = NULL;
	watch_count = 0;
}

void loop_stop(void)
{
	stopping = true;
}

const struct loop_stats *loop_stats(void)
{
	return &stats;
}

void loop_accept(int listen_fd)
{
	/* Multishot accept (5.19): one SQE keeps accepting until it fails. */
	struct io_uring_sqe *sqe = get_sqe();
	io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_ACCEPT, 0, 0));
}

void loop_recv(int fd, uint32_t slot, uint32_t gen)
{
	/* Multishot recv (6.0) drawing from the shared buffer ring. */
	struct io_uring_sqe *sqe = get_sqe();
	io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = RECV_BUF_GROUP;
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_RECV, slot, gen));
}

void loop_send(int fd, uint32_t slot, uint32_t gen, const void *data, size_t len, bool zc)
{
	struct io_uring_sqe *sqe = get_sqe();
	if (zc && zc_ok) {
		io_uring_prep_send_zc(sqe, fd, data, len, MSG_NOSIGNAL, zc_flags);
		stats.zc_sends++;
	} else {
		io_uring_prep_send(sqe, fd, data, len, MSG_NOSIGNAL);
	}
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_SEND, slot, gen));
}

void loop_sendv(int fd, uint32_t slot, uint32_t gen, const struct iovec *iov, unsigned n, bool zc)
{
	if (arena_msgs_used == ARENA_MSGS || arena_iovs_used + n > ARENA_IOVS)
		submit();
	struct io_uring_sqe *sqe = get_sqe();
	struct msghdr *msg = &arena_msgs[arena_msgs_used++];
	struct iovec *dst = &arena_iovs[arena_iovs_used];
	arena_iovs_used += n;
	memcpy(dst, iov, n * sizeof(*iov));
	memset(msg, 0, sizeof(*msg));
	msg->msg_iov = dst;
	msg->msg_iovlen = n;
	if (zc && zc_ok) {
		io_uring_prep_sendmsg_zc(sqe, fd, msg, MSG_NOSIGNAL);
		sqe->ioprio |= (uint16_t)zc_flags;
		stats.zc_sends++;
	} else {
		io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
	}
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_SEND, slot, gen));
}

void loop_shutdown(int fd, int how, uint32_t slot, uint32_t gen)
{
	struct io_uring_sqe *sqe = get_sqe();
	io_uring_prep_shutdown(sqe, fd, how);
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_SHUTDOWN, slot, gen));
}

void loop_close(int fd)
{
	struct io_uring_sqe *sqe = get_sqe();
	io_uring_prep_close(sqe, fd);
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_CLOSE, 0, 0));
}

static void arm_readable(uint32_t i)
{
	/* Multishot poll (5.13): one SQE reports every time fd turns readable. */
	struct io_uring_sqe *sqe = get_sqe();
	io_uring_prep_poll_multishot(sqe, watches[i].fd, POLLIN);
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_READABLE, i, 0));
}

int loop_watch_readable(int fd, void (*on_ready)(void *arg), void *arg)
{
	struct watch *grown = realloc(watches, (watch_count + 1) * sizeof(*watches));
	if (!grown)
		return -1;
	watches = grown;
	watches[watch_count] = (struct watch){ .fd = fd, .on_ready = on_ready, .arg = arg };
	arm_readable(watch_count++);
	return 0;
}

void loop_send_then_close(int fd, const void *data, size_t len)
{
	if (io_uring_sq_space_left(&ring) < 2)
		submit();
	struct io_uring_sqe *sqe = get_sqe();
	io_uring_prep_send(sqe, fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	/* a hard link: the close runs even when the send fails */
	sqe->flags |= IOSQE_IO_HARDLINK;
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_CLOSE, 0, 0));
	sqe = get_sqe();
	io_uring_prep_close(sqe, fd);
	io_uring_sqe_set_data64(sqe, loop_pack(LOOP_OP_CLOSE, 0, 0));
}

void loop_watch_signals(int fd)
{
	signal_fd = fd;
	arm_signal_read();
}

/* A zero-copy send's notification: the kernel is done with its bytes. The
 * kernel posts it after the send's own CQE. */
static void send_released(uint32_t slot, uint32_t gen, int res)
{
	if (zc_flags && ((uint32_t)res & IORING_NOTIF_USAGE_ZC_COPIED))
		stats.zc_copied++;
	handlers.on_send_released(slot, gen);
}

static void dispatch(struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	uint32_t slot = loop_unpack_slot(ud), gen = loop_unpack_gen(ud);
	bool more = cqe->flags & IORING_CQE_F_MORE;

	switch (loop_unpack_op(ud)) {
	case LOOP_OP_ACCEPT:
		handlers.on_accept(cqe->res, more);
		break;
	case LOOP_OP_RECV:
		if (cqe->flags & IORING_CQE_F_BUFFER) {
			unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
			handlers.on_recv(slot, gen, cqe->res, buf_base + (size_t)bid * cfg.buf_size, more);
			return_buffer(bid);
		} else {
			if (cqe->res == -ENOBUFS)
				stats.enobufs++;
			handlers.on_recv(slot, gen, cqe->res, NULL, more);
		}
		break;
	case LOOP_OP_SEND:
		if (cqe->flags & IORING_CQE_F_NOTIF)
			send_released(slot, gen, cqe->res);
		else
			handlers.on_send(slot, gen, cqe->res, more);
		break;
	case LOOP_OP_SHUTDOWN:
		handlers.on_shutdown(slot, gen, cqe->res);
		break;
	case LOOP_OP_CLOSE:
		break;
	case LOOP_OP_TICK:
		handlers.on_tick();
		if (!stopping)
			arm_tick();
		break;
	case LOOP_OP_READABLE:
		if (cqe->res > 0)
			watches[slot].on_ready(watches[slot].arg);
		if (!more && !stopping)
			arm_readable(slot);
		break;
	case LOOP_OP_SIGNAL:
		if (cqe->res == (int)sizeof(signal_info))
			handlers.on_signal((int)signal_info.ssi_signo);
		if (!stopping)
			arm_signal_read();
		break;
	}
}

int loop_run(void)
{
	while (!stopping) {
		bool busy = handlers.before_wait();
		int ret;
		/* With sends left for the next round, only collect what has
		 * completed; otherwise sleep until something does. */
		if (busy)
			ret = io_uring_submit_and_get_events(&ring);
		else
			ret = io_uring_submit_and_wait(&ring, 1);
		arena_msgs_used = 0;
		arena_iovs_used = 0;
		stats.submits++;
		if (ret < 0 && ret != -EINTR && ret != -ETIME && ret != -EBUSY && ret != -EAGAIN) {
			log_error("io_uring_submit_and_wait: %s", strerror(-ret));
			return -1;
		}
		stats.iterations++;

		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			dispatch(cqe);
			seen++;
		}
		io_uring_cq_advance(&ring, seen);
		stats.completions += seen;
		if (bufs_to_return) {
			io_uring_buf_ring_advance(buf_ring, (int)bufs_to_return);
			bufs_to_return = 0;
		}
	}
	return 0;
}
