/* floor_send.c: the sending side of the floor, two ways.
 *
 * A round sends one message to each socket, the way a broadcast server
 * fans one chat message out. Rounds are paced so that deliveries/s match
 * the offered rate (or run flat out); pacing sleeps, which costs the sender
 * a wake-up per round, as it costs a server. CPU time is the sending
 * thread's own (RUSAGE_THREAD): with no IRQ-time accounting in this kernel,
 * the loopback receive path that runs in softirq on the sender's behalf is
 * charged to it too, just as it is charged to a server. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "floor.h"
#include "perf_util.h"

#include <errno.h>
#include <liburing.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char msg[1 << 16];

/* Sleep until the next round is due; returns false once time is up. */
static bool next_round(const struct floor_cfg *c, uint64_t t0, uint64_t end, uint64_t round)
{
	uint64_t due;
	struct timespec ts;

	if (now_ns() >= end)
		return false;
	if (c->rate <= 0)
		return true;
	due = t0 + (uint64_t)((double)round * c->conns / c->rate * 1e9);
	if (due >= end)
		return false;
	ts.tv_sec = (time_t)(due / NSEC_PER_SEC);
	ts.tv_nsec = (long)(due % NSEC_PER_SEC);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
	return true;
}

static uint64_t round_write(const struct floor_pairs *fp, size_t size)
{
	uint64_t errors = 0;

	for (uint32_t i = 0; i < fp->n; i++)
		if (write(fp->fds[i], msg, size) != (ssize_t)size)
			errors++;
	return errors;
}

int floor_send_write(const struct floor_pairs *fp, const struct floor_cfg *c,
		     struct floor_result *r)
{
	uint64_t t0, end, cpu0, round = 0;

	memset(msg, 'x', c->size);
	r->method = "write";
	round_write(fp, c->size); /* warm: first-touch costs are not the floor */
	cpu0 = rusage_cpu_ns(RUSAGE_THREAD);
	t0 = now_ns();
	end = t0 + (uint64_t)(c->duration * 1e9);
	while (next_round(c, t0, end, round)) {
		r->errors += round_write(fp, c->size);
		round++;
	}
	r->wall_ns = now_ns() - t0;
	r->cpu_ns = rusage_cpu_ns(RUSAGE_THREAD) - cpu0;
	r->deliveries = round * fp->n;
	return 0;
}

struct uring_sender {
	struct io_uring ring;
	uint32_t depth;
	uint32_t inflight;
	uint32_t size;
	uint64_t errors;
};

static void reap(struct uring_sender *u, bool wait)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	if (wait)
		io_uring_submit_and_wait(&u->ring, 1);
	else
		io_uring_submit_and_get_events(&u->ring);
	io_uring_for_each_cqe(&u->ring, head, cqe) {
		if (cqe->res != (int)u->size)
			u->errors++;
		n++;
	}
	io_uring_cq_advance(&u->ring, n);
	u->inflight -= n;
}

static void round_uring(struct uring_sender *u, const struct floor_pairs *fp, uint32_t batch)
{
	uint32_t queued = 0;

	for (uint32_t i = 0; i < fp->n; i++) {
		struct io_uring_sqe *sqe;

		while (u->inflight >= u->depth)
			reap(u, true);
		sqe = io_uring_get_sqe(&u->ring);
		io_uring_prep_send(sqe, fp->fds[i], msg, u->size, MSG_NOSIGNAL);
		io_uring_sqe_set_data64(sqe, i);
		u->inflight++;
		if (++queued == batch) {
			/* One io_uring_enter per batch: submits, and collects
			 * whatever has completed so the CQ never overflows. */
			reap(u, false);
			queued = 0;
		}
	}
	while (u->inflight)
		reap(u, true);
}

int floor_send_uring(const struct floor_pairs *fp, const struct floor_cfg *c,
		     struct floor_result *r)
{
	struct uring_sender u = { .size = c->size };
	struct io_uring_params p = { 0 };
	uint64_t t0, end, cpu0, round = 0;
	int ret;

	memset(msg, 'x', c->size);
	r->method = "uring";
	u.depth = c->batch * 4;
	if (u.depth > 4096)
		u.depth = 4096;
	/* Same ring flags a server would pick: completions posted in our
	 * thread when we ask, no task-work interrupts (6.1+). */
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
	p.cq_entries = u.depth * 2;
	ret = io_uring_queue_init_params(u.depth, &u.ring, &p);
	if (ret) {
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = u.depth * 2;
		ret = io_uring_queue_init_params(u.depth, &u.ring, &p);
	}
	if (ret)
		return ret;
	round_uring(&u, fp, c->batch);
	u.errors = 0;
	cpu0 = rusage_cpu_ns(RUSAGE_THREAD);
	t0 = now_ns();
	end = t0 + (uint64_t)(c->duration * 1e9);
	while (next_round(c, t0, end, round)) {
		round_uring(&u, fp, c->batch);
		round++;
	}
	r->wall_ns = now_ns() - t0;
	r->cpu_ns = rusage_cpu_ns(RUSAGE_THREAD) - cpu0;
	r->deliveries = round * fp->n;
	r->errors = u.errors;
	io_uring_queue_exit(&u.ring);
	return 0;
}
