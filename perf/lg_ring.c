/* lg_ring.c: the load generator's one io_uring and its provided buffers. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "lg.h"
#include "perf_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>

/* 6.12+: a wait may ask for many completions but settle for one once a
 * minimum time has passed (liburing 2.3 predates the name). */
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)
#endif

/* Completions to ask for per wait when min-wait batching is on. */
#define LG_WAIT_BATCH 256

int lg_ring_init(struct lg *lg, uint32_t sq_entries, uint32_t nbufs, uint32_t buf_size)
{
	struct io_uring_params p;
	struct io_uring_buf_reg reg;
	static const struct {
		unsigned flags;
		const char *why;
	} tries[] = {
		/* 6.1+: completions run only when we ask for them, in our own
		 * thread, in a batch; no IPIs or task-work interrupts mid-loop. */
		{ IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		  "SINGLE_ISSUER|DEFER_TASKRUN" },
		/* 5.19+: task work is run cooperatively at the next syscall. */
		{ IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN" },
		{ 0, "plain" },
	};
	int ret = -EINVAL;

	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		memset(&p, 0, sizeof(p));
		/* Every receiver's multishot recv can post at once; a CQ many
		 * times the SQ keeps the kernel off its overflow list. */
		p.flags = tries[i].flags | IORING_SETUP_CQSIZE;
		p.cq_entries = sq_entries * 16;
		ret = io_uring_queue_init_params(sq_entries, &lg->ring, &p);
		if (!ret) {
			lg->defer_taskrun = tries[i].flags & IORING_SETUP_DEFER_TASKRUN;
			lg->min_wait = (p.features & IORING_FEAT_MIN_TIMEOUT) &&
				       lg->cfg.batch_wait_us;
			if (!lg->cfg.quiet)
				fprintf(stderr, "loadgen: io_uring with %s, sq %u cq %u, "
					"completion batching %s\n", tries[i].why, p.sq_entries,
					p.cq_entries, lg->min_wait ? "on (min-wait)" :
					lg->cfg.batch_wait_us ? "off (kernel lacks min-wait)" : "off");
			break;
		}
		if (!lg->cfg.quiet)
			fprintf(stderr, "loadgen: io_uring refused %s (%s), falling back\n",
				tries[i].why, strerror(-ret));
	}
	if (ret)
		return ret;

	/* One pool of receive buffers shared by every connection (5.19+): an
	 * idle connection holds none, and one recv CQE says which it got. */
	lg->nbufs = nbufs;
	lg->buf_size = buf_size;
	lg->br = mmap(NULL, nbufs * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (lg->br == MAP_FAILED)
		return -ENOMEM;
	lg->bufs = mmap(NULL, (size_t)nbufs * buf_size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (lg->bufs == MAP_FAILED)
		return -ENOMEM;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)lg->br;
	reg.ring_entries = nbufs;
	reg.bgid = LG_BGID;
	ret = io_uring_register_buf_ring(&lg->ring, &reg, 0);
	if (ret) {
		fprintf(stderr, "loadgen: provided buffer ring refused: %s (kernel 5.19+ needed)\n",
			strerror(-ret));
		return ret;
	}
	io_uring_buf_ring_init(lg->br);
	for (uint32_t i = 0; i < nbufs; i++)
		io_uring_buf_ring_add(lg->br, lg->bufs + (size_t)i * buf_size, buf_size,
				      (unsigned short)i, io_uring_buf_ring_mask(nbufs), (int)i);
	io_uring_buf_ring_advance(lg->br, (int)nbufs);
	return 0;
}

void lg_ring_exit(struct lg *lg)
{
	io_uring_queue_exit(&lg->ring);
}

/* Hand a buffer back; it is published to the kernel with the CQ advance. */
void lg_buf_return(struct lg *lg, uint32_t bid)
{
	io_uring_buf_ring_add(lg->br, lg->bufs + (size_t)bid * lg->buf_size, lg->buf_size,
			      (unsigned short)bid, io_uring_buf_ring_mask(lg->nbufs),
			      (int)lg->bufs_returned++);
}

struct io_uring_sqe *lg_sqe(struct lg *lg)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&lg->ring);

	/* SQ full: push what we have and take a fresh slot. */
	if (!sqe) {
		io_uring_submit(&lg->ring);
		sqe = io_uring_get_sqe(&lg->ring);
	}
	if (!sqe) {
		fprintf(stderr, "loadgen: no SQE after submit\n");
		abort();
	}
	return sqe;
}

/* Wait for completions until deadline. With min-wait, ask for a batch but
 * take whatever there is once batch_wait_us have passed: at high rates one
 * wake-up then handles many receives instead of one (the wake-ups, not the
 * receives, were what saturated the load generator), and at low rates the
 * first completion after an idle stretch still returns at once, because the
 * minimum has long expired by then. Receipt times are taken after the wait,
 * so this adds at most batch_wait_us to measured latency, only under load. */
static int ring_wait(struct lg *lg, uint64_t wait)
{
	struct __kernel_timespec ts = {
		.tv_sec = (long long)(wait / NSEC_PER_SEC),
		.tv_nsec = (long long)(wait % NSEC_PER_SEC),
	};
	struct io_uring_getevents_arg arg = {
		.sigmask_sz = _NSIG / 8,
		.ts = (uint64_t)(uintptr_t)&ts,
	};
	struct io_uring_cqe *cqe;
	int ret;

	if (!lg->min_wait || wait <= (uint64_t)lg->cfg.batch_wait_us * 1000)
		/* One syscall submits everything queued and waits (EXT_ARG
		 * timeout, 5.11+, so no timeout SQE, no stale timer CQEs). */
		return io_uring_submit_and_wait_timeout(&lg->ring, &cqe, 1, &ts, NULL);
	if (io_uring_sq_ready(&lg->ring)) {
		ret = io_uring_submit(&lg->ring);
		if (ret < 0)
			return ret;
	}
	arg.pad = lg->cfg.batch_wait_us; /* min_wait_usec in newer headers */
	ret = io_uring_enter2((unsigned)lg->ring.ring_fd, 0, LG_WAIT_BATCH,
			      IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
			      (sigset_t *)&arg, sizeof(arg));
	/* liburing's raw syscall wrappers return -errno themselves and leave
	 * errno alone: reading errno here saw whatever failed last (an
	 * access() polling for the start file) and ended the run. */
	return ret;
}

int lg_ring_run(struct lg *lg, uint64_t deadline)
{
	struct io_uring_cqe *cqe;
	uint64_t now = now_ns(), wait;
	unsigned head, n = 0;
	int ret;

	wait = deadline > now ? deadline - now : 0;
	if (wait)
		ret = ring_wait(lg, wait);
	else
		/* Deadline passed: don't sleep, but still enter with GETEVENTS,
		 * which is what runs deferred task work (posts completions). */
		ret = io_uring_submit_and_get_events(&lg->ring);
	if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
		return ret;

	io_uring_for_each_cqe(&lg->ring, head, cqe) {
		lg->now = now_ns();
		lg_conn_complete(lg, cqe);
		n++;
	}
	/* Buffers first: a recv armed in this batch may need them. (liburing
	 * 2.3's buf_ring_cq_advance takes a single count for both.) */
	io_uring_buf_ring_advance(lg->br, (int)lg->bufs_returned);
	io_uring_cq_advance(&lg->ring, n);
	lg->bufs_returned = 0;
	lg->st.passes++;
	lg->st.cqes += n;
	return (int)n;
}
