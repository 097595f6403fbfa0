/* floor.h: the kernel's own cost of a broadcast, without WebSocket or chat.
 *
 * floor.c        flags, the runs, the report
 * floor_pairs.c  N connected loopback TCP pairs; a reader process drains
 *                the receiving ends (its own process: 2N sockets would not
 *                fit under one process's 20,000 open-file limit)
 * floor_send.c   one 64-byte message to each of the N sockets per round,
 *                by write() or by batched io_uring sends */
#ifndef FLOOR_H
#define FLOOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct floor_cfg {
	uint32_t conns;
	uint32_t size;
	double rate;            /* deliveries/s; 0 = flat out */
	double duration;        /* seconds per method */
	uint32_t batch;         /* io_uring: SQEs per submit */
	uint32_t src_addrs;
	int sender_cpu;
	int reader_cpu;
	bool do_write;
	bool do_uring;
	const char *csv_path;
	const char *json_path;
	const char *label;
};

struct floor_pairs {
	int *fds;               /* the sending ends, in this process */
	uint32_t n;
	pid_t reader;
	int ctl;                /* to the reader: drain targets */
	int back;               /* from the reader: progress and results */
};

/* What the reader reports after draining to a target. */
struct floor_reader_report {
	uint64_t bytes;         /* received so far, in total */
	uint64_t cpu_ns;        /* the reader's CPU so far, in total */
};

int floor_pairs_open(struct floor_pairs *fp, const struct floor_cfg *c);
/* Ask the reader to drain until it has received total bytes (or ~10 s
 * passed), and report. */
int floor_pairs_sync(struct floor_pairs *fp, uint64_t total, struct floor_reader_report *rep);
void floor_pairs_close(struct floor_pairs *fp);

struct floor_result {
	const char *method;
	uint64_t deliveries;
	uint64_t cpu_ns;        /* the sending thread's, RUSAGE_THREAD */
	uint64_t wall_ns;
	uint64_t errors;        /* failed or short sends */
	uint64_t reader_cpu_ns;
	uint64_t reader_bytes;
};

/* Send rounds for c->duration seconds; one round = one message per socket. */
int floor_send_write(const struct floor_pairs *fp, const struct floor_cfg *c,
		     struct floor_result *r);
int floor_send_uring(const struct floor_pairs *fp, const struct floor_cfg *c,
		     struct floor_result *r);

#endif
