/* lg.h: the load generator's shared state.
 *
 * loadgen.c   flags, set-up, the report
 * lg_run.c    the run's phases: connect, settle, send, drain
 * lg_ring.c   the io_uring: setup with fallbacks, provided buffers, waiting
 * lg_conn.c   connections: connect, handshake, receive
 * lg_out.c    send queues: messages, handshakes, pongs
 * lg_ws.c     WebSocket bytes (handshake values, frames), no I/O
 * lg_sse.c    Server-Sent Events bytes (--sse), no I/O
 * lg_track.c  payload format, per-pair loss/order tracking, server ids
 * lg_hist.c   latency histograms
 * lg_proc.c   server CPU/RSS from /proc
 * lg_report.c the table, JSON and CSV */
#ifndef LG_H
#define LG_H

#include <liburing.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "lg_hist.h"
#include "lg_proc.h"
#include "lg_sse.h"
#include "lg_track.h"
#include "lg_ws.h"

struct lg_config {
	char host_str[64];
	struct in_addr host;
	uint16_t port;
	const char *path;
	uint32_t conns;
	uint32_t senders;
	uint32_t sender_base;   /* first sender id in payloads (several processes) */
	double rate;            /* messages per second, all senders together */
	uint32_t size;          /* payload bytes */
	double warmup, duration, drain, settle;
	double connect_rate;    /* new connections per second */
	uint32_t connect_inflight;
	double connect_timeout;
	uint32_t src_addrs;
	uint32_t batch_wait_us; /* min-wait batching of completions (6.12+), 0: off */
	int server_pid;
	int cpu;                /* pin the load generator here; -1: don't */
	double max_time;        /* hard cap on the whole run */
	const char *json_path;
	const char *csv_path;
	const char *label;
	const char *ready_file; /* created once connected and settled */
	const char *start_file; /* wait for it to exist before sending */
	bool quiet;
	bool sse;               /* receivers read GET /sse; the senders stay WebSocket */
};

enum conn_state {
	CS_IDLE,
	CS_CONNECTING,
	CS_HANDSHAKE,
	CS_OPEN,
	CS_CLOSED,
};

/* Bytes waiting to go out on one connection. One send is in flight at a
 * time (order), and the buffer never moves while it is (no realloc): a
 * sender's buffer has a fixed capacity, and running out is counted. */
struct lg_out {
	uint8_t *buf;
	uint32_t len;           /* bytes queued, sent or not */
	uint32_t off;           /* bytes already sent */
	uint32_t cap;
	bool inflight;
};

struct lg_handshake {
	char accept[29];
	uint32_t len;
	char resp[2048];
};

struct lg_conn {
	int fd;
	uint8_t state;
	bool recv_armed;
	int32_t sender;         /* sender index, -1 for a pure receiver */
	uint64_t t_start;       /* connect submitted */
	struct lg_handshake *hs;
	struct lg_out out;
	bool sse;               /* a Server-Sent Events stream, not a WebSocket */
	struct ws_rx rx;
	struct sse_rx sse_rx;
	struct lg_idseq ids;    /* the server's message ids this client saw */
	bool in_window;         /* open when the measured window started */
};

struct lg_stats {
	struct hist latency;    /* messages sent in the measured window */
	struct hist connect;    /* connect start to validated 101 */
	struct hist lat_all;    /* window messages of any sender, incl. other processes' */
	uint64_t connect_started, connected, connect_failed, handshake_failed;
	uint64_t connect_ns;    /* first connect started to last one done */
	uint64_t closed_by_server, close_frames, recv_errors, protocol_errors;
	uint64_t enobufs_rearms;
	uint64_t passes, cqes;  /* loop passes and completions handled */
	uint64_t frames, marker_frames, other_frames, skipped_frames, foreign;
	uint64_t pings;
	uint64_t sent_total, sent_window, send_overflow, send_errors;
	uint64_t unique_measured;  /* distinct deliveries of window messages */
	uint64_t dups, late, gaps;
	uint64_t marker_at_start, marker_at_end; /* marker_frames at window edges */
	uint64_t id_events, id_gaps, id_skipped, id_reorders;
};

struct lg {
	struct lg_config cfg;
	struct sockaddr_in dst;
	struct io_uring ring;
	bool defer_taskrun;
	bool min_wait;          /* kernel has IORING_FEAT_MIN_TIMEOUT */
	struct io_uring_buf_ring *br;
	uint8_t *bufs;
	uint32_t nbufs;
	uint32_t buf_size;
	uint32_t bufs_returned;  /* returned this batch, not yet published */

	struct lg_conn *conns;
	uint32_t next_conn;     /* next index to connect */
	uint32_t connecting;    /* connects + handshakes in flight */
	uint32_t *sender_conn;  /* sender index -> conn index */
	uint32_t *sender_seq;   /* next sequence per sender */
	uint32_t nsenders;
	struct lg_seq *seq;     /* [receiver * nsenders + sender] */
	uint64_t mask_state;

	uint64_t win_start;     /* send_ns in [win_start, win_end) is measured */
	uint64_t win_end;
	struct lg_id_range id_win; /* server ids of window messages, any sender */
	uint64_t now;           /* refreshed per completion */
	struct lg_stats st;
};

/* lg_ring.c */
#define LG_BGID 1       /* the provided-buffer group every recv draws from */
int lg_ring_init(struct lg *lg, uint32_t sq_entries, uint32_t nbufs, uint32_t buf_size);
void lg_ring_exit(struct lg *lg);
struct io_uring_sqe *lg_sqe(struct lg *lg);
/* Submit, wait for completions until deadline (CLOCK_MONOTONIC ns), handle
 * every completion there is. Returns the number handled or -errno. */
int lg_ring_run(struct lg *lg, uint64_t deadline);
void lg_buf_return(struct lg *lg, uint32_t bid);

enum lg_op {
	OP_CONNECT = 1,
	OP_SEND,
	OP_RECV,
};

static inline uint64_t lg_ud(enum lg_op op, uint32_t conn)
{
	return (uint64_t)op << 32 | conn;
}

static inline enum lg_op lg_ud_op(uint64_t ud)
{
	return (enum lg_op)(ud >> 32);
}

static inline uint32_t lg_ud_conn(uint64_t ud)
{
	return (uint32_t)ud;
}

/* lg_conn.c */
int lg_conn_start(struct lg *lg, uint32_t idx);
void lg_conn_complete(struct lg *lg, struct io_uring_cqe *cqe);
void lg_conns_close_all(struct lg *lg);

/* lg_out.c */
/* Room for need more bytes at the end of c's out queue, or NULL. */
uint8_t *lg_out_reserve(struct lg_conn *c, size_t need);
/* The len bytes written at the reserved place are queued; send them. */
void lg_out_commit(struct lg *lg, uint32_t idx, size_t len);
/* A send completed with res. */
void lg_out_sent(struct lg *lg, uint32_t idx, int res);
/* Queue one chat message from sender s; returns false if it didn't fit. */
bool lg_send_message(struct lg *lg, uint32_t s);
void lg_send_pong(struct lg *lg, uint32_t idx, const uint8_t *p, size_t n);

/* What one run measured, filled by lg_run.c and lg_report_compute(). */
struct lg_result {
	double connect_total_s;
	double window_s;
	double sent_rate;
	double deliveries_per_s;
	uint64_t expected;
	uint64_t missing;
	struct proc_sample srv_before, srv_connected, srv_start, srv_end;
	double server_cpu_ns_per_delivery;
	double server_cpu_util;
	double rss_per_conn_bytes;
	double own_cpu_util;
	double other_cpu_util;  /* cores used by neither server nor loadgen */
	uint32_t open_at_start;
	uint64_t p50, p90, p99, p999, pmax, cp50, cp99;
	uint64_t all_p50, all_p99;
	/* The id check over clients open from the window's start to the end
	 * (lg_id_cover): how many, how many failed which way, and the ids
	 * that all of them saw (every id in [first_max, last_min], given no
	 * gaps), for comparing processes. */
	uint32_t id_clients;
	uint64_t id_mismatch, id_behind;
	uint64_t id_first_max, id_last_min;
};

/* lg_run.c */
extern volatile sig_atomic_t lg_stop;  /* set by SIGINT/SIGTERM: wind down */
int lg_run(struct lg *lg, struct lg_result *r);
/* Clients open at the window's start and still open, and not yet at the
 * window's last id; stops counting at limit. */
uint32_t lg_ids_behind(const struct lg *lg, uint32_t limit);

/* lg_report.c */
void lg_report_compute(const struct lg *lg, struct lg_result *r);
void lg_report_print(const struct lg *lg, const struct lg_result *r);
int lg_report_json(const struct lg *lg, const struct lg_result *r, const char *path);
int lg_report_csv(const struct lg *lg, const struct lg_result *r, const char *path);
/* A correctness check failed: order (per sender or by server id), a
 * duplicate, or a client that lost the window's first messages. Missing
 * messages are not in it: at saturation they are a measurement. */
bool lg_report_failed(const struct lg *lg, const struct lg_result *r);

#endif
