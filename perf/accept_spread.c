/* accept_spread.c: how should new connections be spread over the edges?
 *
 * The question from the "Edges" issue, answered on this kernel before the
 * server gets its threads. N edge threads, each with its own io_uring, and
 * a forked client process that opens a burst of loopback connections, each
 * sending one byte the edge reads. Modes:
 *
 *   reuseport       every edge has its own listener on the same port
 *                   (SO_REUSEPORT) and its own multishot accept; the kernel
 *                   picks the listener by a hash of the 4-tuple.
 *   msgring         one listener; edge 0 runs the multishot accept, keeps
 *                   its own turn and hands every other connection to the
 *                   next edge round-robin with IORING_OP_MSG_RING, the fd
 *                   in the CQE's res (IORING_MSG_DATA).
 *   msgring-direct  the same with direct descriptors: edge 0 accepts into
 *                   its registered file table and moves the socket into
 *                   the target ring's table with IORING_MSG_SEND_FD, then
 *                   closes its own slot (Linux 6.0+; probed at start-up).
 *
 * Edge 0 is the acceptor, not a dedicated thread: a server with E edges
 * would not add a thread that does nothing else, and it is the worse case
 * for balance of work (the acceptor also serves its share).
 *
 * The client is its own process so that both sides can hold 10,000
 * sockets under the 20,000 open-file limit. Each round uses fresh rings,
 * fresh threads and a fresh listening port; modes alternate round by round. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "perf_util.h"

#include <errno.h>
#include <getopt.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_EDGES 16
#define PHASE_TIMEOUT_MS 10000  /* a phase of a round that takes longer failed */

enum mode { MODE_REUSEPORT, MODE_MSGRING, MODE_DIRECT, MODE_COUNT };
static const char *const mode_names[MODE_COUNT] = { "reuseport", "msgring", "msgring-direct" };

struct cfg {
	uint32_t edges;
	uint32_t conns;
	uint32_t repeats;
	uint32_t bursts;
	uint32_t pause_ms;
	uint32_t src_addrs;
	int edge_cpus[MAX_EDGES];
	uint32_t n_edge_cpus;
	int client_cpu;
	double max_time;
	bool modes[MODE_COUNT];
	bool verbose;
};

/* Chosen once at start-up, logged, used by every edge ring. */
static unsigned ring_flags;

/* ---- user_data: the operation in the top 8 bits, a slot or a time below ---- */

enum op { OP_ACCEPT = 1, OP_HANDOFF, OP_RECV_FIRST, OP_RECV_EOF, OP_WAKE, OP_OTHER };
#define UD_VAL_MASK ((1ull << 56) - 1)

static inline uint64_t ud_pack(enum op op, uint64_t val)
{
	return (uint64_t)op << 56 | (val & UD_VAL_MASK);
}

static inline enum op ud_op(uint64_t ud)
{
	return (enum op)(ud >> 56);
}

static inline uint64_t ud_val(uint64_t ud)
{
	return ud & UD_VAL_MASK;
}

/* ---- one round: the shared state of the edges and the coordinator ---- */

struct conn_slot {
	int fd;                 /* a descriptor, or a direct slot in msgring-direct */
	uint64_t t_acc;         /* when the acceptor saw it (ns after round.t0) */
	uint64_t lat;           /* accept → first byte read, ns */
	char buf[1];
};

struct round;

struct edge {
	struct round *r;
	uint32_t id;
	pthread_t th;
	struct io_uring ring;
	int wake_fd;            /* the coordinator's phase signal */
	uint64_t wake_val;
	uint32_t phase;
	struct conn_slot *conns;
	uint32_t n;             /* connections this edge serves */
	uint32_t served;        /* of which the first byte has been read */
	uint32_t next_target;   /* msgring: round-robin cursor */
	uint32_t errors;
	int last_err;           /* the last failed CQE's res, and its operation */
	enum op last_err_op;
	uint64_t t_last_acc, t_last_first;
	uint64_t cpu_ready, cpu_burst;
	bool ring_ok;
	const char *fail;
};

struct round {
	const struct cfg *c;
	enum mode mode;
	int listen_fds[MAX_EDGES];
	uint32_t n_listen;
	int ring_fds[MAX_EDGES];
	pthread_barrier_t ready;
	uint64_t t0;
	atomic_uint served;
	atomic_uint closed;
	int done_fd;            /* written when served or closed reaches conns */
	struct edge edges[MAX_EDGES];
};

static void note_done(struct round *r, atomic_uint *counter)
{
	uint64_t one = 1;

	if (atomic_fetch_add(counter, 1) + 1 == r->c->conns)
		(void)!write(r->done_fd, &one, sizeof(one));
}

static void edge_error(struct edge *e, const struct io_uring_cqe *cqe)
{
	e->errors++;
	e->last_err = cqe->res;
	e->last_err_op = ud_op(cqe->user_data);
}

static struct io_uring_sqe *edge_sqe(struct edge *e)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);

	if (!sqe) {
		io_uring_submit(&e->ring);
		sqe = io_uring_get_sqe(&e->ring);
	}
	return sqe;         /* never NULL right after a submit */
}

static bool direct(const struct edge *e)
{
	return e->r->mode == MODE_DIRECT;
}

static void arm_accept(struct edge *e, int lfd)
{
	struct io_uring_sqe *sqe = edge_sqe(e);

	/* Multishot accept (5.19): one SQE, one CQE per new connection. */
	if (direct(e))
		io_uring_prep_multishot_accept_direct(sqe, lfd, NULL, NULL, 0);
	else
		io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
	sqe->user_data = ud_pack(OP_ACCEPT, (uint64_t)lfd);
}

static void arm_wake(struct edge *e)
{
	struct io_uring_sqe *sqe = edge_sqe(e);

	io_uring_prep_read(sqe, e->wake_fd, &e->wake_val, sizeof(e->wake_val), 0);
	sqe->user_data = ud_pack(OP_WAKE, 0);
}

static void arm_recv(struct edge *e, uint32_t slot, enum op op)
{
	struct io_uring_sqe *sqe = edge_sqe(e);

	io_uring_prep_recv(sqe, e->conns[slot].fd, e->conns[slot].buf, 1, 0);
	if (direct(e))
		sqe->flags |= IOSQE_FIXED_FILE;
	sqe->user_data = ud_pack(op, slot);
}

static void close_conn(struct edge *e, uint32_t slot)
{
	struct io_uring_sqe *sqe = edge_sqe(e);

	if (direct(e))
		io_uring_prep_close_direct(sqe, (unsigned)e->conns[slot].fd);
	else
		io_uring_prep_close(sqe, e->conns[slot].fd);
	/* No CQE unless it fails (5.17). */
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	sqe->user_data = ud_pack(OP_OTHER, 0);
	e->conns[slot].fd = -1;
}

static void conn_add(struct edge *e, int fd, uint64_t t_acc)
{
	uint32_t slot = e->n++;

	e->conns[slot] = (struct conn_slot){ .fd = fd, .t_acc = t_acc };
	arm_recv(e, slot, OP_RECV_FIRST);
}

/* Move an accepted connection to another edge's ring. The sender gets no
 * CQE on success (CQE_SKIP_SUCCESS); the target gets one, which is the
 * whole cost of the hand-off on its side. */
static void hand_off(struct edge *e, uint32_t target, int fd, uint64_t t_acc)
{
	struct io_uring_sqe *sqe = edge_sqe(e);
	int ring_fd = e->r->ring_fds[target];

	if (!direct(e)) {
		/* IORING_MSG_DATA (5.18): len arrives as the target's res. */
		io_uring_prep_msg_ring(sqe, ring_fd, (unsigned)fd, ud_pack(OP_HANDOFF, t_acc), 0);
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
		sqe->user_data = ud_pack(OP_OTHER, 0);
		return;
	}
	/* IORING_MSG_SEND_FD (6.0): install our slot fd into a free slot of
	 * the target's table; its CQE's res is the new slot. liburing 2.3 has
	 * no helper for it, so the SQE is filled by hand. Our slot is closed
	 * by a linked close once the socket has moved. */
	io_uring_prep_rw(IORING_OP_MSG_RING, sqe, ring_fd, NULL, 0, ud_pack(OP_HANDOFF, t_acc));
	sqe->addr = IORING_MSG_SEND_FD;
	sqe->addr3 = (uint64_t)fd;
	sqe->file_index = IORING_FILE_INDEX_ALLOC;
	sqe->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
	sqe->user_data = ud_pack(OP_OTHER, 0);
	sqe = edge_sqe(e);
	io_uring_prep_close_direct(sqe, (unsigned)fd);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	sqe->user_data = ud_pack(OP_OTHER, 0);
}

static void on_accept(struct edge *e, const struct io_uring_cqe *cqe)
{
	struct round *r = e->r;
	uint64_t t = now_ns() - r->t0;
	uint32_t target = e->id;

	if (!(cqe->flags & IORING_CQE_F_MORE) && e->phase < 2)
		arm_accept(e, (int)ud_val(cqe->user_data));
	if (cqe->res < 0) {
		edge_error(e, cqe);
		return;
	}
	e->t_last_acc = t;
	if (r->mode != MODE_REUSEPORT)
		target = e->next_target++ % r->c->edges;
	if (target == e->id)
		conn_add(e, cqe->res, t);
	else
		hand_off(e, target, cqe->res, t);
}

static void on_recv(struct edge *e, const struct io_uring_cqe *cqe)
{
	uint32_t slot = (uint32_t)ud_val(cqe->user_data);
	struct conn_slot *s = &e->conns[slot];

	if (ud_op(cqe->user_data) == OP_RECV_FIRST) {
		if (cqe->res == 1) {
			uint64_t t = now_ns() - e->r->t0;

			s->lat = t - s->t_acc;
			e->t_last_first = t;
			e->served++;
			note_done(e->r, &e->r->served);
			arm_recv(e, slot, OP_RECV_EOF);
			return;
		}
		edge_error(e, cqe);
		note_done(e->r, &e->r->served);
	} else if (cqe->res != 0) {
		edge_error(e, cqe);
	}
	close_conn(e, slot);
	note_done(e->r, &e->r->closed);
}

/* Phase 1: the burst is served (take the CPU reading); phase 2: stop. */
static void on_wake(struct edge *e)
{
	e->phase++;
	if (e->phase == 1) {
		e->cpu_burst = rusage_cpu_ns(RUSAGE_THREAD);
		arm_wake(e);
	}
}

static int edge_ring_init(struct edge *e)
{
	const struct cfg *c = e->r->c;
	struct io_uring_params p = { .flags = ring_flags | IORING_SETUP_CQSIZE };
	int ret;

	/* Room for a whole burst of CQEs; the kernel would buffer an overflow
	 * (FEAT_NODROP), but that path is slower and not what we measure. */
	p.cq_entries = 2 * c->conns + 2048;   /* and never below the SQ (1024) */
	ret = io_uring_queue_init_params(1024, &e->ring, &p);
	if (ret < 0)
		return ret;
	e->ring_ok = true;
	if (direct(e)) {
		ret = io_uring_register_files_sparse(&e->ring, c->conns + 64);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static void *edge_main(void *arg)
{
	struct edge *e = arg;
	struct round *r = e->r;
	const struct cfg *c = r->c;
	int ret;

	if (c->n_edge_cpus)
		pin_cpu(c->edge_cpus[e->id % c->n_edge_cpus]);
	/* The ring is created on its own thread: with SINGLE_ISSUER the creator
	 * is the only task allowed to submit and register. */
	ret = edge_ring_init(e);
	if (ret < 0) {
		e->fail = strerror(-ret);
		r->ring_fds[e->id] = -1;
	} else {
		r->ring_fds[e->id] = e->ring.ring_fd;
		arm_wake(e);
		if (r->mode == MODE_REUSEPORT)
			arm_accept(e, r->listen_fds[e->id]);
		else if (e->id == 0)
			arm_accept(e, r->listen_fds[0]);
		io_uring_submit(&e->ring);
	}
	pthread_barrier_wait(&r->ready);
	if (e->fail)
		return NULL;
	e->cpu_ready = rusage_cpu_ns(RUSAGE_THREAD);

	while (e->phase < 2) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;

		ret = io_uring_submit_and_wait(&e->ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EBUSY) {
			e->fail = strerror(-ret);
			break;
		}
		io_uring_for_each_cqe(&e->ring, head, cqe) {
			switch (ud_op(cqe->user_data)) {
			case OP_ACCEPT:
				on_accept(e, cqe);
				break;
			case OP_HANDOFF:
				if (cqe->res < 0)
					edge_error(e, cqe);
				else
					conn_add(e, cqe->res, ud_val(cqe->user_data));
				break;
			case OP_RECV_FIRST:
			case OP_RECV_EOF:
				on_recv(e, cqe);
				break;
			case OP_WAKE:
				on_wake(e);
				break;
			default:        /* a failed close or hand-off */
				if (cqe->res < 0)
					edge_error(e, cqe);
				break;
			}
			seen++;
		}
		io_uring_cq_advance(&e->ring, seen);
	}
	/* Whatever the client did not close (a failed round): close it here. */
	for (uint32_t i = 0; i < e->n; i++)
		if (e->conns[i].fd >= 0 && !direct(e))
			close(e->conns[i].fd);
	return NULL;
}

/* ---- the client process ---- */

enum client_cmd { CMD_BURST = 1, CMD_CLOSE, CMD_QUIT };

struct client_req {
	int cmd;
	uint16_t port;
};

struct client_rep {
	uint64_t t_start, t_end;  /* first connect() called, last byte written */
	uint64_t cpu_ns;          /* the client's CPU for the burst */
	uint32_t opened, errors;
	int first_errno;          /* of the first failed socket/connect/write */
	uint32_t slow;            /* connects that took over 200 ms: a SYN retransmit */
};

static void client_loop(const struct cfg *c, int ctl)
{
	int *fds = calloc(c->conns, sizeof(*fds));
	uint32_t n = 0;
	struct client_req q;

	if (!fds)
		_exit(1);
	pin_cpu(c->client_cpu);
	while (read(ctl, &q, sizeof(q)) == sizeof(q)) {
		struct client_rep rep = { 0 };

		if (q.cmd == CMD_QUIT)
			break;
		if (q.cmd == CMD_CLOSE) {
			for (uint32_t i = 0; i < n; i++)
				close(fds[i]);
			n = 0;
		} else {
			struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(q.port) };
			uint32_t per_burst = (c->conns + c->bursts - 1) / c->bursts;

			sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			rep.cpu_ns = rusage_cpu_ns(RUSAGE_SELF);
			rep.t_start = now_ns();
			for (uint32_t i = 0; i < c->conns; i++) {
				int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
				uint64_t t;

				if (i && i % per_burst == 0 && c->pause_ms)
					usleep(c->pause_ms * 1000u);
				if (fd < 0) {
					rep.first_errno = rep.first_errno ? rep.first_errno : errno;
					rep.errors++;
					continue;
				}
				t = now_ns();
				if (socket_bind_source(fd, source_addr(i, c->src_addrs)) < 0 ||
				    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
				    write(fd, "x", 1) != 1) {
					rep.first_errno = rep.first_errno ? rep.first_errno : errno;
					rep.errors++;
					close(fd);
					continue;
				}
				if (now_ns() - t > 200 * 1000000ull)
					rep.slow++;
				fds[n++] = fd;
			}
			rep.t_end = now_ns();
			rep.cpu_ns = rusage_cpu_ns(RUSAGE_SELF) - rep.cpu_ns;
			rep.opened = n;
		}
		if (write(ctl, &rep, sizeof(rep)) != sizeof(rep))
			break;
	}
	_exit(0);
}

static int client_call(int ctl, int cmd, uint16_t port, struct client_rep *rep)
{
	struct client_req q = { .cmd = cmd, .port = port };
	struct pollfd pfd = { .fd = ctl, .events = POLLIN };

	if (write(ctl, &q, sizeof(q)) != sizeof(q))
		return -1;
	if (cmd == CMD_QUIT)
		return 0;
	/* A burst of 19,000 connects with SYN retransmits still ends well
	 * inside a minute; longer than that, the client is stuck. */
	if (poll(&pfd, 1, 60000) != 1 || read(ctl, rep, sizeof(*rep)) != sizeof(*rep))
		return -1;
	return 0;
}

/* ---- the coordinator ---- */

struct round_result {
	bool ok;
	uint32_t per_edge[MAX_EDGES];
	double imbalance;           /* max / mean */
	double client_ms;           /* first connect → last byte written, client side */
	double accepted_ms;         /* first connect → last accept CQE */
	double served_ms;           /* first connect → last first byte read */
	double tail_ms;             /* last byte written → last first byte read */
	double lat_p50_us, lat_p99_us;
	double cpu_ms[MAX_EDGES];   /* per edge, ready → burst served */
	double cpu_ns_per_conn;     /* all edges */
	double client_ns_per_conn;  /* the client: it also pays for most of the
				     * handshake, loopback runs it in its context */
	double close_ms;            /* client close → last server close */
	/* counts, as doubles so the medians can read every field alike */
	double listen_drops;
	double slow, errors;
	char err_note[96];          /* the first edge error seen, for the log */
};

/* TcpExt ListenDrops from /proc/net/netstat: SYNs or ACKs dropped because an
 * accept queue was full (system-wide, so others' drops would count too). */
static uint64_t listen_drops(void)
{
	FILE *f = fopen("/proc/net/netstat", "r");
	char names[4096], vals[4096];
	uint64_t v = 0;

	if (!f)
		return 0;
	while (fgets(names, sizeof(names), f) && fgets(vals, sizeof(vals), f)) {
		char *sn, *sv, *n = strtok_r(names, " \n", &sn), *x = strtok_r(vals, " \n", &sv);

		if (!n || strcmp(n, "TcpExt:"))
			continue;
		while ((n = strtok_r(NULL, " \n", &sn)) && (x = strtok_r(NULL, " \n", &sv)))
			if (!strcmp(n, "ListenDrops"))
				v = strtoull(x, NULL, 10);
	}
	fclose(f);
	return v;
}

static int make_listener(uint16_t port, bool reuseport, uint16_t *bound)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	socklen_t len = sizeof(sa);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -errno;
	if ((reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 65535) < 0 ||           /* capped by net.core.somaxconn */
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	*bound = ntohs(sa.sin_port);
	return fd;
}

static int wait_done(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint64_t v;

	if (poll(&pfd, 1, PHASE_TIMEOUT_MS) != 1 || read(fd, &v, sizeof(v)) != sizeof(v))
		return -1;
	return 0;
}

static void wake_edges(struct round *r)
{
	uint64_t one = 1;

	for (uint32_t i = 0; i < r->c->edges; i++)
		(void)!write(r->edges[i].wake_fd, &one, sizeof(one));
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void round_stats(struct round *r, const struct client_rep *burst, struct round_result *res)
{
	const struct cfg *c = r->c;
	uint64_t *lat = malloc((c->conns + 1) * sizeof(*lat));
	uint64_t start = burst->t_start - r->t0, last_acc = 0, last_first = 0, cpu = 0;
	uint32_t nlat = 0, max = 0, total = 0;

	for (uint32_t i = 0; i < c->edges; i++) {
		struct edge *e = &r->edges[i];

		res->per_edge[i] = e->served;
		total += e->served;
		if (e->served > max)
			max = e->served;
		if (e->t_last_acc > last_acc)
			last_acc = e->t_last_acc;
		if (e->t_last_first > last_first)
			last_first = e->t_last_first;
		res->cpu_ms[i] = (double)(e->cpu_burst - e->cpu_ready) / 1e6;
		cpu += e->cpu_burst - e->cpu_ready;
		res->errors += e->errors;
		if (e->errors && !res->err_note[0])
			snprintf(res->err_note, sizeof(res->err_note),
				 " (edge %u: op %d failed: %s)", i, (int)e->last_err_op,
				 e->last_err < 0 ? strerror(-e->last_err) : "unexpected result");
		for (uint32_t k = 0; lat && k < e->n; k++)
			if (e->conns[k].lat)
				lat[nlat++] = e->conns[k].lat;
	}
	if (burst->errors && !res->err_note[0])
		snprintf(res->err_note, sizeof(res->err_note), " (client: %s)",
			 strerror(burst->first_errno));
	res->imbalance = total ? (double)max * c->edges / total : 0;
	res->client_ms = (double)(burst->t_end - burst->t_start) / 1e6;
	res->accepted_ms = (double)(last_acc - start) / 1e6;
	res->served_ms = (double)(last_first - start) / 1e6;
	res->tail_ms = res->served_ms - res->client_ms;
	res->client_ns_per_conn = burst->opened ? (double)burst->cpu_ns / burst->opened : 0;
	res->cpu_ns_per_conn = total ? (double)cpu / total : 0;
	if (lat && nlat) {
		qsort(lat, nlat, sizeof(*lat), cmp_u64);
		res->lat_p50_us = (double)lat[nlat / 2] / 1e3;
		res->lat_p99_us = (double)lat[(uint64_t)nlat * 99 / 100] / 1e3;
	}
	free(lat);
}

static int run_round(const struct cfg *c, enum mode mode, int ctl, struct round_result *res)
{
	struct round *r = calloc(1, sizeof(*r));
	struct client_rep burst = { 0 }, shut = { 0 };
	uint32_t started = 0;
	uint16_t port = 0;
	uint64_t drops0 = listen_drops(), t_close;
	int ret = -1;

	memset(res, 0, sizeof(*res));
	if (!r)
		return -1;
	r->c = c;
	r->mode = mode;
	r->done_fd = eventfd(0, EFD_CLOEXEC);
	r->n_listen = mode == MODE_REUSEPORT ? c->edges : 1;
	for (uint32_t i = 0; i < r->n_listen; i++) {
		int fd = make_listener(port, mode == MODE_REUSEPORT, &port);

		if (fd < 0) {
			fprintf(stderr, "accept_spread: listener: %s\n", strerror(-fd));
			goto out;
		}
		r->listen_fds[r->n_listen - 1 - i] = fd;   /* last one bound first */
	}
	pthread_barrier_init(&r->ready, NULL, c->edges + 1);
	r->t0 = now_ns();
	for (uint32_t i = 0; i < c->edges; i++) {
		struct edge *e = &r->edges[i];

		e->r = r;
		e->id = i;
		e->wake_fd = eventfd(0, EFD_CLOEXEC);
		e->conns = calloc(c->conns, sizeof(*e->conns));
		if (e->wake_fd < 0 || !e->conns || pthread_create(&e->th, NULL, edge_main, e)) {
			fprintf(stderr, "accept_spread: cannot start edge %u\n", i);
			exit(1);  /* the barrier would never open */
		}
		started++;
	}
	pthread_barrier_wait(&r->ready);
	for (uint32_t i = 0; i < c->edges; i++)
		if (r->edges[i].fail) {
			fprintf(stderr, "accept_spread: edge %u: %s\n", i, r->edges[i].fail);
			wake_edges(r);
			wake_edges(r);
			goto join;
		}

	if (client_call(ctl, CMD_BURST, port, &burst) < 0) {
		fprintf(stderr, "accept_spread: the client did not answer\n");
		exit(1);
	}
	res->slow = burst.slow;
	res->errors = burst.errors;
	res->ok = wait_done(r->done_fd) == 0 && burst.opened == c->conns;
	wake_edges(r);                      /* phase 1: CPU reading */
	res->listen_drops = (double)(listen_drops() - drops0);
	t_close = now_ns();
	if (client_call(ctl, CMD_CLOSE, port, &shut) < 0) {
		fprintf(stderr, "accept_spread: the client did not close\n");
		exit(1);
	}
	if (wait_done(r->done_fd) < 0)
		res->ok = false;
	res->close_ms = (double)(now_ns() - t_close) / 1e6;
	wake_edges(r);                      /* phase 2: stop */
	ret = 0;
join:
	for (uint32_t i = 0; i < started; i++)
		pthread_join(r->edges[i].th, NULL);
	if (!ret)
		round_stats(r, &burst, res);
	for (uint32_t i = 0; i < started; i++) {
		struct edge *e = &r->edges[i];

		if (e->ring_ok)
			io_uring_queue_exit(&e->ring);
		close(e->wake_fd);
		free(e->conns);
	}
	pthread_barrier_destroy(&r->ready);
out:
	for (uint32_t i = 0; i < r->n_listen; i++)
		if (r->listen_fds[i] > 0)
			close(r->listen_fds[i]);
	close(r->done_fd);
	free(r);
	return ret;
}

/* ---- start-up probes ---- */

static void probe_ring_flags(void)
{
	struct io_uring ring;
	/* SINGLE_ISSUER (6.0): one task submits, the kernel skips locking;
	 * DEFER_TASKRUN (6.1): completions run only when we wait. Fall back
	 * to COOP_TASKRUN (5.19), then nothing. */
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};

	for (unsigned i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		if (io_uring_queue_init(8, &ring, tries[i]) == 0) {
			io_uring_queue_exit(&ring);
			ring_flags = tries[i];
			return;
		}
	}
}

/* Can a registered file be moved between rings? Two plain rings, a socket
 * in slot 0 of the first, IORING_MSG_SEND_FD to the second. */
static int probe_send_fd(void)
{
	struct io_uring a, b;
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	int fd, ret;

	if (io_uring_queue_init(4, &a, 0) < 0)
		return -ENOSYS;
	if (io_uring_queue_init(4, &b, 0) < 0) {
		io_uring_queue_exit(&a);
		return -ENOSYS;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ret = io_uring_register_files_sparse(&a, 4);
	if (!ret)
		ret = io_uring_register_files_sparse(&b, 4);
	if (!ret)
		ret = io_uring_register_files_update(&a, 0, &fd, 1) == 1 ? 0 : -EINVAL;
	if (!ret) {
		sqe = io_uring_get_sqe(&a);
		io_uring_prep_rw(IORING_OP_MSG_RING, sqe, b.ring_fd, NULL, 0, 7);
		sqe->addr = IORING_MSG_SEND_FD;
		sqe->addr3 = 0;
		sqe->file_index = IORING_FILE_INDEX_ALLOC;
		io_uring_submit(&a);
		ret = io_uring_wait_cqe(&a, &cqe);
		if (!ret) {
			ret = cqe->res;
			io_uring_cqe_seen(&a, cqe);
		}
		if (!ret && (ret = io_uring_wait_cqe(&b, &cqe)) == 0) {
			ret = cqe->user_data == 7 && cqe->res >= 0 ? 0 : -EINVAL;
			io_uring_cqe_seen(&b, cqe);
		}
	}
	close(fd);
	io_uring_queue_exit(&a);
	io_uring_queue_exit(&b);
	return ret;
}

/* What a perfectly random choice of edge per connection would give: the
 * median of max/mean over 1001 simulated bursts (splitmix64). */
static double random_imbalance(uint32_t conns, uint32_t edges)
{
	double v[1001];
	uint64_t s = 0x9e3779b97f4a7c15ull;

	for (int t = 0; t < 1001; t++) {
		uint32_t cnt[MAX_EDGES] = { 0 }, max = 0;

		for (uint32_t i = 0; i < conns; i++) {
			uint64_t z = (s += 0x9e3779b97f4a7c15ull);

			z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
			z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
			z ^= z >> 31;
			cnt[(uint32_t)((z >> 32) * edges >> 32)]++;
		}
		for (uint32_t e = 0; e < edges; e++)
			if (cnt[e] > max)
				max = cnt[e];
		v[t] = (double)max * edges / conns;
	}
	qsort(v, 1001, sizeof(v[0]), cmp_double);
	return v[500];
}

/* ---- flags and the report ---- */

static void usage(FILE *f)
{
	fprintf(f,
"usage: accept_spread [options]\n"
"  -e, --edges N         edge threads, each with its own ring, 1..%d (2)\n"
"  -n, --conns C         connections per burst, at most %u (10000)\n"
"  -r, --repeats R       rounds per mode, modes alternating (5)\n"
"  -m, --modes LIST      reuseport,msgring,msgring-direct (all the kernel supports)\n"
"      --bursts B        split the connections into B bursts (1)\n"
"      --pause MS        between bursts (0)\n"
"      --src-addrs K     client source addresses 127.0.0.1..K (8)\n"
"      --edge-cpus LIST  pin edge i to LIST[i %% len], e.g. 0,1 (not pinned)\n"
"      --client-cpu C    pin the client process (not pinned)\n"
"      --max-time S      start no round after S seconds (120); hard stop S+60\n"
"  -v, --verbose         print every round\n",
		MAX_EDGES, PERF_MAX_SOCKETS);
}

static bool parse_cpu_list(struct cfg *c, char *s)
{
	char *save, *tok;
	uint64_t u;

	c->n_edge_cpus = 0;
	for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (c->n_edge_cpus == MAX_EDGES || !parse_uint(tok, &u) || u >= 1024)
			return false;
		c->edge_cpus[c->n_edge_cpus++] = (int)u;
	}
	return c->n_edge_cpus > 0;
}

static bool parse_modes(struct cfg *c, char *s)
{
	char *save, *tok;

	memset(c->modes, 0, sizeof(c->modes));
	for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int m = 0;

		while (m < MODE_COUNT && strcmp(tok, mode_names[m]))
			m++;
		if (m == MODE_COUNT)
			return false;
		c->modes[m] = true;
	}
	return true;
}

static int parse_flags(struct cfg *c, int argc, char **argv, bool *modes_given)
{
	enum { F_BURSTS = 256, F_PAUSE, F_SRC, F_ECPU, F_CCPU, F_MAXT };
	static const struct option opts[] = {
		{ "edges", required_argument, 0, 'e' },
		{ "conns", required_argument, 0, 'n' },
		{ "repeats", required_argument, 0, 'r' },
		{ "modes", required_argument, 0, 'm' },
		{ "bursts", required_argument, 0, F_BURSTS },
		{ "pause", required_argument, 0, F_PAUSE },
		{ "src-addrs", required_argument, 0, F_SRC },
		{ "edge-cpus", required_argument, 0, F_ECPU },
		{ "client-cpu", required_argument, 0, F_CCPU },
		{ "max-time", required_argument, 0, F_MAXT },
		{ "verbose", no_argument, 0, 'v' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	uint64_t u = 0;
	int o;
	bool ok = true;

	*c = (struct cfg){
		.edges = 2, .conns = 10000, .repeats = 5, .bursts = 1, .src_addrs = 8,
		.client_cpu = -1, .max_time = 120, .modes = { true, true, true },
	};
	while ((o = getopt_long(argc, argv, "e:n:r:m:vh", opts, NULL)) != -1) {
		switch (o) {
		case 'e':
			ok = parse_uint(optarg, &u) && u >= 1 && u <= MAX_EDGES;
			c->edges = (uint32_t)u;
			break;
		case 'n':
			ok = parse_uint(optarg, &u) && u >= 1 && u <= PERF_MAX_SOCKETS;
			c->conns = (uint32_t)u;
			break;
		case 'r':
			ok = parse_uint(optarg, &u) && u >= 1 && u <= 1000;
			c->repeats = (uint32_t)u;
			break;
		case 'm':
			ok = parse_modes(c, optarg);
			*modes_given = true;
			break;
		case F_BURSTS:
			ok = parse_uint(optarg, &u) && u >= 1 && u <= 1000;
			c->bursts = (uint32_t)u;
			break;
		case F_PAUSE:
			ok = parse_uint(optarg, &u) && u <= 10000;
			c->pause_ms = (uint32_t)u;
			break;
		case F_SRC:
			ok = parse_uint(optarg, &u) && u >= 1 && u <= 254;
			c->src_addrs = (uint32_t)u;
			break;
		case F_ECPU:
			ok = parse_cpu_list(c, optarg);
			break;
		case F_CCPU:
			ok = parse_uint(optarg, &u) && u < 1024;
			c->client_cpu = (int)u;
			break;
		case F_MAXT:
			ok = parse_num(optarg, &c->max_time) && c->max_time > 0 && c->max_time <= 3600;
			break;
		case 'v':
			c->verbose = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
		if (!ok) {
			fprintf(stderr, "accept_spread: bad value '%s' (see --help)\n", optarg);
			return -1;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return -1;
	}
	return 0;
}

static double median(double *v, uint32_t n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void print_round(const struct cfg *c, enum mode m, uint32_t rep,
			const struct round_result *x)
{
	printf("  round %u %-14s %s conns", rep, mode_names[m], x->ok ? "  " : "!!");
	for (uint32_t i = 0; i < c->edges; i++)
		printf("%s%u", i ? "/" : " ", x->per_edge[i]);
	printf("  imb %.3f  served %.1f ms  p50/p99 %.0f/%.0f us  cpu ms", x->imbalance,
	       x->served_ms, x->lat_p50_us, x->lat_p99_us);
	for (uint32_t i = 0; i < c->edges; i++)
		printf("%s%.1f", i ? "/" : " ", x->cpu_ms[i]);
	printf("  drops %.0f slow %.0f err %.0f%s\n", x->listen_drops, x->slow,
	       x->errors, x->err_note);
}

static double median_of(const struct round_result *rs, uint32_t n, size_t offset)
{
	double v[1000];
	uint32_t k = 0;

	for (uint32_t i = 0; i < n; i++)
		if (rs[i].ok)
			v[k++] = *(const double *)((const char *)&rs[i] + offset);
	return median(v, k);
}

/* Room for "12.3/4.5/..." in the edge CPU column. */
static int cpu_col_width(const struct cfg *c)
{
	return c->edges * 6 > 12 ? (int)c->edges * 6 : 12;
}

#define MED(field) median_of(rs, n, offsetof(struct round_result, field))

/* Medians, field by field, over the rounds that completed. */
static void print_summary(const struct cfg *c, enum mode m, const struct round_result *rs,
			  uint32_t n)
{
	double mn[1000], mx[1000], cpu[1000], imb_worst = 0;
	char cpus[MAX_EDGES * 10 + 1] = "";
	size_t len = 0;
	uint32_t ok = 0;

	for (uint32_t i = 0; i < n; i++) {
		uint32_t lo = UINT32_MAX, hi = 0;

		if (!rs[i].ok)
			continue;
		for (uint32_t e = 0; e < c->edges; e++) {
			lo = rs[i].per_edge[e] < lo ? rs[i].per_edge[e] : lo;
			hi = rs[i].per_edge[e] > hi ? rs[i].per_edge[e] : hi;
		}
		mn[ok] = lo;
		mx[ok] = hi;
		ok++;
		if (rs[i].imbalance > imb_worst)
			imb_worst = rs[i].imbalance;
	}
	printf("%-14s %2u/%-2u %6.0f %6.0f %6.3f %6.3f | %7.1f %7.1f %7.1f %6.1f | %6.0f %6.0f | ",
	       mode_names[m], ok, n, median(mn, ok), median(mx, ok), MED(imbalance), imb_worst,
	       MED(client_ms), MED(accepted_ms), MED(served_ms), MED(tail_ms), MED(lat_p50_us),
	       MED(lat_p99_us));
	for (uint32_t e = 0; e < c->edges; e++) {
		uint32_t k = 0;

		for (uint32_t i = 0; i < n; i++)
			if (rs[i].ok)
				cpu[k++] = rs[i].cpu_ms[e];
		len += snprintf(cpus + len, sizeof(cpus) - len, "%s%.1f", e ? "/" : "",
				median(cpu, k));
		if (len >= sizeof(cpus))
			len = sizeof(cpus) - 1;
	}
	printf("%-*s", cpu_col_width(c), cpus);
	printf(" %7.0f %7.0f | %6.1f %5.0f %4.0f %4.0f%s\n", MED(cpu_ns_per_conn),
	       MED(client_ns_per_conn), MED(close_ms), MED(listen_drops), MED(slow), MED(errors),
	       ok < n ? "  (some rounds failed)" : "");
}

#undef MED

int main(int argc, char **argv)
{
	static struct round_result results[MODE_COUNT][1000];
	struct cfg c;
	bool modes_given = false, have_send_fd;
	uint32_t done[MODE_COUNT] = { 0 }, n_modes = 0;
	enum mode order[MODE_COUNT];
	int sv[2], ret;
	uint64_t t_start;
	pid_t client;

	if (parse_flags(&c, argc, argv, &modes_given) < 0)
		return 2;
	if (c.conns + 256 > raise_fd_limit()) {
		fprintf(stderr, "accept_spread: %u connections need %u descriptors per process\n",
			c.conns, c.conns + 256);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* Hard cap: a wedged round cannot keep the machine busy. */
	alarm((unsigned)c.max_time + 60);

	probe_ring_flags();
	ret = probe_send_fd();
	have_send_fd = ret == 0;
	printf("accept_spread: %u edges, %u connections per round, %u burst(s), %u source "
	       "addresses, %u repeats\n", c.edges, c.conns, c.bursts, c.src_addrs, c.repeats);
	printf("  rings: %s; IORING_MSG_SEND_FD (direct descriptor hand-off): %s%s\n",
	       ring_flags & IORING_SETUP_SINGLE_ISSUER ? "SINGLE_ISSUER|DEFER_TASKRUN" :
	       ring_flags ? "COOP_TASKRUN" : "no setup flags",
	       have_send_fd ? "supported" : "not supported: ", have_send_fd ? "" : strerror(-ret));
	if (!have_send_fd && c.modes[MODE_DIRECT]) {
		if (modes_given) {
			fprintf(stderr, "accept_spread: msgring-direct needs IORING_MSG_SEND_FD\n");
			return 77;
		}
		c.modes[MODE_DIRECT] = false;
	}
	for (int m = 0; m < MODE_COUNT; m++)
		if (c.modes[m])
			order[n_modes++] = (enum mode)m;
	if (!n_modes)
		return 2;
	fflush(stdout);

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return 1;
	client = fork();
	if (client < 0)
		return 1;
	if (client == 0) {
		close(sv[0]);
		client_loop(&c, sv[1]);
	}
	close(sv[1]);

	t_start = now_ns();
	for (uint32_t rep = 0; rep < c.repeats; rep++) {
		if ((double)(now_ns() - t_start) / 1e9 > c.max_time) {
			printf("  --max-time reached after %u repeats\n", rep);
			break;
		}
		/* Alternate: each round starts the rotation one mode later. */
		for (uint32_t k = 0; k < n_modes; k++) {
			enum mode m = order[(rep + k) % n_modes];
			struct round_result *x = &results[m][done[m]];

			if (run_round(&c, m, sv[0], x) < 0)
				continue;
			if (c.verbose || !x->ok)
				print_round(&c, m, rep, x);
			done[m]++;
		}
	}
	client_call(sv[0], CMD_QUIT, 0, NULL);
	waitpid(client, NULL, 0);

	printf("\nmedians per mode over the rounds that completed, each column on its own.\n"
	       "min/e, max/e: connections on the least and most loaded edge; imb: max/mean\n"
	       "(imbmax: the worst round). client: first connect to last byte written;\n"
	       "accepted, served: first connect to the last accept CQE / first byte read;\n"
	       "tail: served - client. a>b: accept CQE to first byte read (incl. hand-off).\n"
	       "edge cpu: per edge thread until served; ns/conn: all edges, and the client.\n"
	       "close: client closes to last server close; drops: TcpExt ListenDrops;\n"
	       "slow: connects over 200 ms (a SYN retransmit).\n");
	printf("%-14s %-5s %6s %6s %6s %6s | %7s %7s %7s %6s | %6s %6s | %-*s %7s %7s | %6s %5s %4s %4s\n",
	       "mode", "ok", "min/e", "max/e", "imb", "imbmax", "client", "accept", "served",
	       "tail", "a>b50", "a>b99", cpu_col_width(&c), "edge cpu ms", "edge/c",
	       "client/c", "close", "drops", "slow", "err");
	printf("%-14s %-5s %6s %6s %6s %6s | %7s %7s %7s %6s | %6s %6s | %-*s %7s %7s | %6s %5s %4s %4s\n",
	       "", "", "", "", "", "", "ms", "ms", "ms", "ms", "us", "us", cpu_col_width(&c), "",
	       "ns", "ns", "ms", "", "", "");
	for (uint32_t k = 0; k < n_modes; k++)
		print_summary(&c, order[k], results[order[k]], done[order[k]]);
	printf("a perfectly random pick of edge per connection: median imbalance %.3f\n",
	       random_imbalance(c.conns, c.edges));
	return 0;
}
