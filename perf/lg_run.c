/* lg_run.c: the load generator's run, phase by phase.
 *
 *   connect  N clients at a bounded rate, a bounded number in flight
 *   settle   let the welcome/presence traffic pass, sample the server's RSS
 *   (start)  optionally: say so in a file, wait for another file to appear
 *   send     S senders, R msg/s in total, evenly paced by the loop's timer;
 *            warm-up W s, then the measured window of D s
 *   drain    wait (bounded) for the window's messages to arrive everywhere
 *
 * Every phase ends by its own deadline and by the run's hard cap. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "lg.h"
#include "perf_util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

volatile sig_atomic_t lg_stop;

static void progress(const struct lg *lg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void progress(const struct lg *lg, const char *fmt, ...)
{
	va_list ap;

	if (lg->cfg.quiet)
		return;
	va_start(ap, fmt);
	fputs("loadgen: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static int run_until(struct lg *lg, uint64_t t)
{
	while (!lg_stop && now_ns() < t) {
		int ret = lg_ring_run(lg, t);

		if (ret < 0)
			return ret;
	}
	return 0;
}

static int connect_phase(struct lg *lg, uint64_t hard)
{
	const struct lg_config *c = &lg->cfg;
	uint64_t t0 = now_ns(), deadline = min_u64(t0 + (uint64_t)(c->connect_timeout * 1e9), hard);
	double per_ns = c->connect_rate > 0 ? c->connect_rate / 1e9 : INFINITY;

	while (!lg_stop && (lg->next_conn < c->conns || lg->connecting)) {
		uint64_t now = now_ns(), wake = deadline;
		double allowed = floor((double)(now - t0) * per_ns) + 1;
		int ret;

		if (now >= deadline)
			break;
		while (lg->next_conn < c->conns && lg->next_conn < allowed &&
		       lg->connecting < c->connect_inflight) {
			ret = lg_conn_start(lg, lg->next_conn);
			if (ret == -EMFILE || ret == -ENFILE) {
				fprintf(stderr, "loadgen: out of file descriptors at %u: %s\n",
					lg->next_conn, strerror(-ret));
				return ret;
			}
			if (ret < 0) {
				lg->st.connect_failed++;
				lg->conns[lg->next_conn].state = CS_CLOSED;
			}
			lg->next_conn++;
		}
		if (lg->next_conn < c->conns && lg->connecting < c->connect_inflight &&
		    c->connect_rate > 0)
			wake = min_u64(wake, t0 + (uint64_t)((double)lg->next_conn / per_ns));
		ret = lg_ring_run(lg, wake);
		if (ret < 0)
			return ret;
	}
	lg->st.connect_ns = now_ns() - t0;
	/* Whatever is still connecting now will not count. */
	return 0;
}

/* The clients open as the window starts: each was in the room before any
 * window message was sent, so each must see all of them. */
static uint32_t mark_window_clients(struct lg *lg)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < lg->cfg.conns; i++) {
		lg->conns[i].in_window = lg->conns[i].state == CS_OPEN;
		n += lg->conns[i].in_window;
	}
	return n;
}

uint32_t lg_ids_behind(const struct lg *lg, uint32_t limit)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < lg->cfg.conns && n < limit; i++) {
		const struct lg_conn *c = &lg->conns[i];

		n += c->in_window && c->state == CS_OPEN &&
		     lg_id_cover(&c->ids, lg->id_win) == COVER_BEHIND;
	}
	return n;
}

/* Several loadgen processes against one server start sending together:
 * each says it is connected by creating ready_file, and a coordinator
 * creates start_file once all have. Meanwhile the ring keeps running
 * (pings, presence). Polling a path every 10 ms is crude but needs no
 * shared clock or signal, and 10 ms is small next to a warm-up. */
static int start_barrier(struct lg *lg, uint64_t hard)
{
	const struct lg_config *c = &lg->cfg;

	if (c->ready_file) {
		char tmp[4096];
		int fd;

		/* Renamed into place, so a reader never sees it half-written. */
		snprintf(tmp, sizeof(tmp), "%s.tmp", c->ready_file);
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || dprintf(fd, "%llu\n", (unsigned long long)lg->st.connected) < 0 ||
		    close(fd) < 0 || rename(tmp, c->ready_file) < 0) {
			fprintf(stderr, "loadgen: cannot write %s\n", c->ready_file);
			return -EIO;
		}
	}
	if (!c->start_file)
		return 0;
	progress(lg, "ready; waiting for %s", c->start_file);
	while (access(c->start_file, F_OK) < 0) {
		int ret;

		if (lg_stop)
			return -EINTR;
		if (now_ns() >= hard) {
			fprintf(stderr, "loadgen: %s did not appear in time\n", c->start_file);
			return -ETIMEDOUT;
		}
		ret = run_until(lg, min_u64(now_ns() + 10 * 1000000ull, hard));
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* The first S open clients become the senders; their out queue is
 * reallocated at sender size, so it must be idle (it nearly always is). */
static int pick_senders(struct lg *lg)
{
	uint32_t want = lg->cfg.senders;

	lg->sender_conn = calloc(want ? want : 1, sizeof(*lg->sender_conn));
	lg->sender_seq = calloc(want ? want : 1, sizeof(*lg->sender_seq));
	if (!lg->sender_conn || !lg->sender_seq)
		return -ENOMEM;
	for (uint32_t i = 0; i < lg->cfg.conns && lg->nsenders < want; i++) {
		struct lg_conn *c = &lg->conns[i];

		if (c->state != CS_OPEN || c->sse || c->out.inflight || c->out.len != c->out.off)
			continue;
		free(c->out.buf);
		c->out.buf = NULL;
		c->out.len = c->out.off = 0;
		c->sender = (int32_t)lg->nsenders;
		lg->sender_conn[lg->nsenders++] = i;
	}
	lg->seq = calloc((size_t)lg->cfg.conns * (lg->nsenders ? lg->nsenders : 1),
			 sizeof(*lg->seq));
	return lg->seq ? 0 : -ENOMEM;
}

static int send_phase(struct lg *lg, struct lg_result *r, uint64_t hard)
{
	const struct lg_config *c = &lg->cfg;
	uint64_t t0 = now_ns();
	uint64_t w0 = t0 + (uint64_t)(c->warmup * 1e9);
	uint64_t w1 = min_u64(w0 + (uint64_t)(c->duration * 1e9), hard);
	double interval = c->rate > 0 && lg->nsenders ? 1e9 / c->rate : INFINITY;
	uint64_t own0 = 0, k = 0;
	bool in_window = false;

	for (;;) {
		uint64_t now = now_ns(), next;
		int ret;

		if (!in_window && now >= w0) {
			r->srv_start = proc_sample(c->server_pid);
			own0 = rusage_cpu_ns(RUSAGE_SELF);
			r->open_at_start = mark_window_clients(lg);
			lg->st.marker_at_start = lg->st.marker_frames;
			lg->win_start = now;
			in_window = true;
		}
		if (now >= w1 || lg_stop)
			break;
		/* Every message that is due by now goes out, round-robin over
		 * the senders, so each sends R/S per second, interleaved. If
		 * the loop fell behind, the backlog goes out at once: the
		 * offered load is a function of time, not of our progress. */
		while ((double)t0 + (double)k * interval <= (double)now) {
			lg_send_message(lg, (uint32_t)(k % lg->nsenders));
			k++;
		}
		next = isinf(interval) ? w1 : t0 + (uint64_t)((double)k * interval);
		if (!in_window)
			next = min_u64(next, w0);
		ret = lg_ring_run(lg, min_u64(next, w1));
		if (ret < 0)
			return ret;
	}
	if (!in_window)
		return -EINTR;
	lg->win_end = now_ns();
	lg->st.marker_at_end = lg->st.marker_frames;
	r->srv_end = proc_sample(c->server_pid);
	r->window_s = (double)(lg->win_end - lg->win_start) / 1e9;
	r->own_cpu_util = (double)(rusage_cpu_ns(RUSAGE_SELF) - own0) /
			  (double)(lg->win_end - lg->win_start);
	return 0;
}

/* Until every window message has reached every client: our own senders'
 * by count, and by id every message any client saw (other processes'
 * senders too). A process without senders of its own cannot know when the
 * last message is in, so it drains for the whole --drain. The id scan is
 * O(clients), so it runs at most every 10 ms. */
static int drain_phase(struct lg *lg, const struct lg_result *r, uint64_t hard)
{
	uint64_t end = min_u64(lg->win_end + (uint64_t)(lg->cfg.drain * 1e9), hard);
	uint64_t expected = lg->st.sent_window * r->open_at_start;
	uint64_t next_scan = 0;

	while (!lg_stop && now_ns() < end) {
		uint64_t now = now_ns();
		int ret;

		if (lg->nsenders && lg->st.unique_measured >= expected && now >= next_scan) {
			if (!lg_ids_behind(lg, 1))
				break;
			next_scan = now + 10 * 1000000ull;
		}
		ret = lg_ring_run(lg, lg->nsenders ? min_u64(end, now + 10 * 1000000ull) : end);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int lg_run(struct lg *lg, struct lg_result *r)
{
	const struct lg_config *c = &lg->cfg;
	uint64_t hard = now_ns() + (uint64_t)(c->max_time * 1e9);
	int ret;

	r->srv_before = proc_sample(c->server_pid);
	if (c->server_pid && !r->srv_before.ok)
		fprintf(stderr, "loadgen: cannot read /proc/%d; no server numbers\n",
			c->server_pid);
	progress(lg, "connecting %u clients to %s:%u%s", c->conns, c->host_str, c->port,
		 c->path);
	ret = connect_phase(lg, hard);
	if (ret < 0)
		return ret;
	progress(lg, "%llu/%u open in %.2f s (%llu failed, %u still pending)",
		 (unsigned long long)lg->st.connected, c->conns,
		 (double)lg->st.connect_ns / 1e9,
		 (unsigned long long)(lg->st.connect_failed + lg->st.handshake_failed),
		 lg->connecting);
	if (!lg->st.connected) {
		fprintf(stderr, "loadgen: no client connected\n");
		return -ECONNREFUSED;
	}
	ret = run_until(lg, min_u64(now_ns() + (uint64_t)(c->settle * 1e9), hard));
	if (ret < 0)
		return ret;
	r->srv_connected = proc_sample(c->server_pid);
	ret = start_barrier(lg, hard);
	if (ret < 0)
		return ret;
	ret = pick_senders(lg);
	if (ret < 0)
		return ret;
	if (c->rate > 0 && !lg->nsenders) {
		fprintf(stderr, "loadgen: no client free to send\n");
		return -ENOTCONN;
	}
	progress(lg, "sending %.1f msg/s from %u senders: %.1f s warm-up, %.1f s measured",
		 c->rate, lg->nsenders, c->warmup, c->duration);
	ret = send_phase(lg, r, hard);
	if (ret < 0)
		return ret;
	ret = drain_phase(lg, r, hard);
	if (ret < 0)
		return ret;
	return lg_stop ? -EINTR : 0;
}

