/* lg_conn.c: the load generator's connections.
 *
 * A connection goes IDLE -> CONNECTING (connect SQE) -> HANDSHAKE (upgrade
 * request sent, multishot recv armed) -> OPEN (101 checked) -> CLOSED.
 * Every byte received goes through one multishot recv per connection that
 * draws from the shared buffer ring (bytes sent: lg_out.c). Closed sockets
 * are only closed for real at the end of the run, so no completion can
 * ever meet a reused descriptor. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "lg.h"
#include "perf_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct frame_ctx {
	struct lg *lg;
	uint32_t idx;
};

static void arm_recv(struct lg *lg, uint32_t idx)
{
	struct lg_conn *c = &lg->conns[idx];
	struct io_uring_sqe *sqe = lg_sqe(lg);

	/* Multishot (6.0+): one SQE keeps posting a CQE per chunk received,
	 * each in a buffer picked from the shared ring at that moment. */
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = LG_BGID;
	io_uring_sqe_set_data64(sqe, lg_ud(OP_RECV, idx));
	c->recv_armed = true;
}

static void conn_closed(struct lg *lg, uint32_t idx)
{
	struct lg_conn *c = &lg->conns[idx];

	if (c->state == CS_HANDSHAKE || c->state == CS_CONNECTING) {
		lg->st.handshake_failed++;
		lg->connecting--;
	} else if (c->state == CS_OPEN) {
		lg->st.closed_by_server++;
	}
	c->state = CS_CLOSED;
	free(c->hs);
	c->hs = NULL;
	ws_rx_release(&c->rx);
	sse_rx_release(&c->sse_rx);
}

int lg_conn_start(struct lg *lg, uint32_t idx)
{
	struct lg_conn *c = &lg->conns[idx];
	struct io_uring_sqe *sqe;
	int fd, ret;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	socket_nodelay(fd);
	ret = socket_bind_source(fd, source_addr(idx, lg->cfg.src_addrs));
	if (ret < 0) {
		close(fd);
		return ret;
	}
	c->fd = fd;
	c->state = CS_CONNECTING;
	c->sender = -1;
	/* the first S connections stay WebSocket: they are the senders */
	c->sse = lg->cfg.sse && idx >= lg->cfg.senders;
	c->t_start = now_ns();
	sqe = lg_sqe(lg);
	io_uring_prep_connect(sqe, fd, (struct sockaddr *)&lg->dst, sizeof(lg->dst));
	io_uring_sqe_set_data64(sqe, lg_ud(OP_CONNECT, idx));
	lg->connecting++;
	lg->st.connect_started++;
	return 0;
}

static void on_connect(struct lg *lg, uint32_t idx, int res)
{
	struct lg_conn *c = &lg->conns[idx];
	char key[25];
	uint8_t *dst;
	int n;

	if (res < 0) {
		if (!lg->st.connect_failed && !lg->cfg.quiet)
			fprintf(stderr, "loadgen: connect failed: %s\n", strerror(-res));
		lg->st.connect_failed++;
		lg->connecting--;
		c->state = CS_CLOSED;
		return;
	}
	c->hs = calloc(1, sizeof(*c->hs));
	dst = lg_out_reserve(c, 512);
	if (!c->hs || !dst) {
		conn_closed(lg, idx);
		return;
	}
	if (c->sse) {
		/* the upgrade path's query (?room=) on the stream's path */
		const char *query = strchr(lg->cfg.path, '?');
		n = snprintf((char *)dst, 512,
			     "GET /sse%s HTTP/1.1\r\nHost: %s:%u\r\nAccept: text/event-stream\r\n\r\n",
			     query ? query : "", lg->cfg.host_str, lg->cfg.port);
	} else {
		ws_make_key(key);
		ws_expected_accept(key, c->hs->accept);
		n = snprintf((char *)dst, 512,
			     "GET %s HTTP/1.1\r\nHost: %s:%u\r\nUpgrade: websocket\r\n"
			     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
			     "Sec-WebSocket-Version: 13\r\n\r\n",
			     lg->cfg.path, lg->cfg.host_str, lg->cfg.port, key);
	}
	c->state = CS_HANDSHAKE;
	lg_out_commit(lg, idx, (size_t)n);
	arm_recv(lg, idx);
}

static void on_marker(struct lg *lg, uint32_t rcv, uint32_t sender, uint32_t seq,
		      uint64_t send_ns)
{
	enum lg_seq_verdict v;
	uint32_t gap;

	lg->st.marker_frames++;
	sender -= lg->cfg.sender_base;
	if (sender >= lg->nsenders) {
		/* Another loadgen process's sender: it counts as a delivery
		 * (the server did the work) but is not ours to track. */
		lg->st.foreign++;
		return;
	}
	v = lg_seq_note(&lg->seq[(size_t)rcv * lg->nsenders + sender], seq, &gap);
	lg->st.gaps += gap;
	if (v == SEQ_DUP) {
		lg->st.dups++;
		return;
	}
	if (v == SEQ_LATE)
		lg->st.late++;
	if (send_ns >= lg->win_start && send_ns < lg->win_end) {
		lg->st.unique_measured++;
		hist_add(&lg->st.latency, lg->now > send_ns ? lg->now - send_ns : 0);
	}
}

/* A message event's server id: it must follow the client's previous one.
 * Returns false for a repeat or an old id (already counted as a reorder). */
static bool on_event_id(struct lg *lg, uint32_t rcv, uint64_t id)
{
	uint64_t skipped;

	lg->st.id_events++;
	switch (lg_id_note(&lg->conns[rcv].ids, id, &skipped)) {
	case ID_FIRST:
	case ID_NEXT:
		return true;
	case ID_GAP:
		lg->st.id_gaps++;
		lg->st.id_skipped += skipped;
		return true;
	case ID_REORDER:
		lg->st.id_reorders++;
		return false;
	}
	return true;
}

static void on_text(struct lg *lg, uint32_t rcv, const uint8_t *p, size_t n)
{
	uint32_t sender, seq;
	uint64_t send_ns, id;
	bool has_id = lg_event_id(p, n, &id);
	bool fresh = has_id ? on_event_id(lg, rcv, id) : true;

	if (!lg_payload_find(p, n, &sender, &seq, &send_ns)) {
		lg->st.other_frames++;
		return;
	}
	/* CLOCK_MONOTONIC is one clock for the whole machine, so another
	 * process's send time is as good as ours. */
	if (fresh && send_ns >= lg->win_start && send_ns < lg->win_end) {
		hist_add(&lg->st.lat_all, lg->now > send_ns ? lg->now - send_ns : 0);
		if (has_id)
			lg_id_range_add(&lg->id_win, id);
	}
	on_marker(lg, rcv, sender, seq, send_ns);
}

static void on_frame(void *ctx, int opcode, const uint8_t *p, size_t n)
{
	struct frame_ctx *fc = ctx;
	struct lg *lg = fc->lg;

	switch (opcode) {
	case WS_OP_TEXT:
	case WS_OP_BINARY:
		lg->st.frames++;
		if (!p)
			lg->st.skipped_frames++;
		else
			on_text(lg, fc->idx, p, n);
		break;
	case WS_OP_PING:
		/* The server drops clients that stay silent past its idle
		 * timeout; a pong is the cheapest proof of life. */
		lg->st.pings++;
		if (p)
			lg_send_pong(lg, fc->idx, p, n);
		break;
	case WS_OP_CLOSE:
		lg->st.close_frames++;
		break;
	default:
		break;
	}
}

static void on_sse_data(void *ctx, const uint8_t *p, size_t n)
{
	struct frame_ctx *fc = ctx;
	struct lg *lg = fc->lg;

	lg->st.frames++;
	if (!p)
		lg->st.skipped_frames++;
	else
		on_text(lg, fc->idx, p, n);
}

static void feed_frames(struct lg *lg, uint32_t idx, const uint8_t *p, size_t n)
{
	struct frame_ctx fc = { lg, idx };
	/* Our own messages are the only frames worth gathering when split;
	 * anything much longer than one of them is skipped unread. */
	size_t gather_max = lg->cfg.size + 1024;

	if (lg->conns[idx].sse) {
		sse_rx_feed(&lg->conns[idx].sse_rx, p, n, gather_max, on_sse_data, &fc);
		return;
	}
	if (ws_rx_feed(&lg->conns[idx].rx, p, n, gather_max, on_frame, &fc) < 0) {
		lg->st.protocol_errors++;
		conn_closed(lg, idx);
		shutdown(lg->conns[idx].fd, SHUT_RDWR);
	}
}

static void handshake_bytes(struct lg *lg, uint32_t idx, const uint8_t *p, size_t n)
{
	struct lg_conn *c = &lg->conns[idx];
	struct lg_handshake *hs = c->hs;
	size_t room = sizeof(hs->resp) - 1 - hs->len;
	size_t take = n < room ? n : room;
	const char *end;
	size_t head;

	memcpy(hs->resp + hs->len, p, take);
	hs->len += (uint32_t)take;
	hs->resp[hs->len] = 0;
	end = memmem(hs->resp, hs->len, "\r\n\r\n", 4);
	if (!end) {
		if (hs->len == sizeof(hs->resp) - 1)
			goto fail;
		return;
	}
	head = (size_t)(end + 4 - hs->resp);
	if (c->sse ? strncmp(hs->resp, "HTTP/1.1 200 ", 13) != 0 : !ws_check_response(hs->resp, head, hs->accept))
		goto fail;

	c->state = CS_OPEN;
	lg->connecting--;
	lg->st.connected++;
	hist_add(&lg->st.connect, lg->now - c->t_start);
	c->hs = NULL;
	/* Frames may follow the head in the same read (a welcome event). */
	if (hs->len > head)
		feed_frames(lg, idx, (const uint8_t *)hs->resp + head, hs->len - head);
	if (take < n && c->state == CS_OPEN)
		feed_frames(lg, idx, p + take, n - take);
	free(hs);
	return;
fail:
	if (!lg->st.handshake_failed && !lg->cfg.quiet) {
		const char *eol = strstr(hs->resp, "\r\n");

		fprintf(stderr, "loadgen: handshake refused: %.*s\n",
			(int)(eol ? eol - hs->resp : 80), hs->resp);
	}
	conn_closed(lg, idx);
	shutdown(c->fd, SHUT_RDWR);
}

static void on_recv(struct lg *lg, uint32_t idx, struct io_uring_cqe *cqe)
{
	struct lg_conn *c = &lg->conns[idx];
	int res = cqe->res;

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		const uint8_t *data = lg->bufs + (size_t)bid * lg->buf_size;

		if (res > 0 && c->state == CS_HANDSHAKE)
			handshake_bytes(lg, idx, data, (size_t)res);
		else if (res > 0 && c->state == CS_OPEN)
			feed_frames(lg, idx, data, (size_t)res);
		lg_buf_return(lg, bid);
	}
	if (cqe->flags & IORING_CQE_F_MORE)
		return;
	c->recv_armed = false;
	if (c->state == CS_CLOSED)
		return;
	if (res > 0 || res == -ENOBUFS) {
		/* The multishot ended but the socket is fine: out of buffers
		 * (they come back as this batch is handled) or CQ pressure. */
		if (res == -ENOBUFS)
			lg->st.enobufs_rearms++;
		arm_recv(lg, idx);
		return;
	}
	if (res < 0)
		lg->st.recv_errors++;
	conn_closed(lg, idx);
}

void lg_conn_complete(struct lg *lg, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	uint32_t idx = lg_ud_conn(ud);

	switch (lg_ud_op(ud)) {
	case OP_CONNECT:
		on_connect(lg, idx, cqe->res);
		break;
	case OP_RECV:
		on_recv(lg, idx, cqe);
		break;
	case OP_SEND:
		lg_out_sent(lg, idx, cqe->res);
		break;
	}
}

void lg_conns_close_all(struct lg *lg)
{
	for (uint32_t i = 0; i < lg->cfg.conns; i++) {
		struct lg_conn *c = &lg->conns[i];

		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		free(c->hs);
		free(c->out.buf);
		ws_rx_release(&c->rx);
		sse_rx_release(&c->sse_rx);
	}
}
