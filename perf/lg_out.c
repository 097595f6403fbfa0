/* lg_out.c: what the load generator sends, and how.
 *
 * Each connection has an out queue with at most one send in flight, so
 * bytes leave in order and a short send is simply resumed. The queue's
 * buffer never moves while a send is in flight (no realloc): a sender's
 * has a fixed capacity and running out is counted; a receiver's exists
 * only while it holds a handshake or a pong. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "lg.h"
#include "perf_util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Room for a sender's unsent messages: if the server stops reading, the
 * queue fills and further messages are counted as overflow, not buffered
 * without bound. A receiver only ever queues a handshake or a pong. */
#define SENDER_OUT_CAP (256u << 10)
#define OTHER_OUT_CAP 1024u

static uint32_t next_mask(struct lg *lg)
{
	/* xorshift64: masking only has to defeat proxies, not attackers. */
	uint64_t x = lg->mask_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	lg->mask_state = x;
	return (uint32_t)x;
}

uint8_t *lg_out_reserve(struct lg_conn *c, size_t need)
{
	struct lg_out *o = &c->out;

	if (!o->buf) {
		o->cap = c->sender >= 0 ? SENDER_OUT_CAP : OTHER_OUT_CAP;
		o->buf = malloc(o->cap);
		if (!o->buf)
			return NULL;
		o->len = o->off = 0;
	}
	if (o->len + need > o->cap && !o->inflight && o->off) {
		memmove(o->buf, o->buf + o->off, o->len - o->off);
		o->len -= o->off;
		o->off = 0;
	}
	if (o->len + need > o->cap)
		return NULL;
	return o->buf + o->len;
}

static void out_flush(struct lg *lg, uint32_t idx)
{
	struct lg_conn *c = &lg->conns[idx];
	struct lg_out *o = &c->out;
	struct io_uring_sqe *sqe;

	if (o->inflight || o->off == o->len || c->state == CS_CLOSED)
		return;
	sqe = lg_sqe(lg);
	io_uring_prep_send(sqe, c->fd, o->buf + o->off, o->len - o->off, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, lg_ud(OP_SEND, idx));
	o->inflight = true;
}

void lg_out_commit(struct lg *lg, uint32_t idx, size_t len)
{
	lg->conns[idx].out.len += (uint32_t)len;
	out_flush(lg, idx);
}

void lg_out_sent(struct lg *lg, uint32_t idx, int res)
{
	struct lg_conn *c = &lg->conns[idx];
	struct lg_out *o = &c->out;

	o->inflight = false;
	if (res < 0) {
		/* The peer is gone; its recv will report how. */
		lg->st.send_errors++;
		o->off = o->len = 0;
		return;
	}
	o->off += (uint32_t)res;
	if (o->off == o->len) {
		o->off = o->len = 0;
		if (c->sender < 0) {
			free(o->buf);
			o->buf = NULL;
		}
		return;
	}
	out_flush(lg, idx);
}

bool lg_send_message(struct lg *lg, uint32_t s)
{
	uint32_t idx = lg->sender_conn[s];
	struct lg_conn *c = &lg->conns[idx];
	static char payload[LG_PAYLOAD_HEAD_MAX + (1u << 16)];
	uint64_t ns = now_ns();
	size_t plen;
	uint8_t *dst;

	if (c->state != CS_OPEN)
		return false;
	plen = lg_payload_make(payload, lg->cfg.size, lg->cfg.sender_base + s,
			       lg->sender_seq[s], ns);
	dst = lg_out_reserve(c, ws_client_frame_len(plen));
	if (!dst) {
		lg->st.send_overflow++;
		return false;
	}
	lg->sender_seq[s]++;
	lg->st.sent_total++;
	if (ns >= lg->win_start && ns < lg->win_end)
		lg->st.sent_window++;
	lg_out_commit(lg, idx, ws_client_frame(dst, WS_OP_TEXT, payload, plen, next_mask(lg)));
	return true;
}

void lg_send_pong(struct lg *lg, uint32_t idx, const uint8_t *p, size_t n)
{
	uint8_t *dst = lg_out_reserve(&lg->conns[idx], ws_client_frame_len(n));

	if (dst)
		lg_out_commit(lg, idx, ws_client_frame(dst, WS_OP_PONG, p, n, next_mask(lg)));
}
