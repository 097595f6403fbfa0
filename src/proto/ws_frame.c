/* ws_frame.c: the RFC 6455 frame codec, server side.
 *
 * ws_parse is a resumable state machine: header bytes trickle into p->hdr,
 * payload is unmasked in place and handed back as chunks that point into
 * the caller's buffer. Every check on a header runs at a fixed header byte
 * (the first byte, the mask bit, the end of the length), so a bad frame
 * fails on the same byte however the stream was split, and a message over
 * the size limit fails before a single payload byte has to be buffered. */
#include "ws.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static_assert(BUF_HEADROOM >= WS_MAX_HEADER, "a server frame header fits in a buf's headroom");

#define WS_FIN       0x80
#define WS_RSV       0x70
#define WS_RSV1      0x40  /* permessage-deflate: the message is compressed (RFC 7692 §6) */
#define WS_OPCODE    0x0f
#define WS_CONTROL   0x08  /* opcodes 8..F are control frames (§5.5) */
#define WS_MASKED    0x80
#define WS_LEN7      0x7f
#define WS_LEN16     126
#define WS_LEN64     127
#define WS_LEN7_MAX  125   /* longest payload the length byte holds itself */
#define WS_MAX_CONTROL 125 /* §5.5: the longest control frame payload */

enum ws_parse_state {
	WS_PARSE_HEADER,
	WS_PARSE_PAYLOAD,
	/* A dead parser keeps answering with its error; one state per close
	 * code remembers which without a field in struct ws_parser. */
	WS_PARSE_DEAD_PROTOCOL,
	WS_PARSE_DEAD_BAD_DATA,
	WS_PARSE_DEAD_TOO_BIG,
};

void ws_parser_init(struct ws_parser *p, uint64_t max_message, bool deflate)
{
	*p = (struct ws_parser){
		.max_message = max_message,
		.deflate = deflate,
		.utf8 = UTF8_ACCEPT,
		.state = WS_PARSE_HEADER,
	};
}

static bool ws_is_control(uint8_t opcode)
{
	return opcode & WS_CONTROL;
}

/* Bytes of extended payload length that the length byte announces. */
static unsigned ws_ext_len(uint8_t len_byte)
{
	switch (len_byte & WS_LEN7) {
	case WS_LEN16:
		return 2;
	case WS_LEN64:
		return 8;
	default:
		return 0;
	}
}

static uint16_t ws_hdr_first_byte(struct ws_parser *p)
{
	uint8_t b = p->hdr[0];
	uint8_t op = b & WS_OPCODE;

	/* RSV1 means "compressed" once permessage-deflate was negotiated,
	 * and only on a message's first frame (RFC 7692 §6.1): never on a
	 * continuation or a control frame. No other RSV bit has a meaning. */
	if (b & (WS_RSV & ~WS_RSV1))
		return WS_CLOSE_PROTOCOL;
	if ((b & WS_RSV1) && (!p->deflate || (op != WS_OP_TEXT && op != WS_OP_BINARY)))
		return WS_CLOSE_PROTOCOL;
	switch (op) {
	case WS_OP_CONT:
		if (!p->message_opcode)
			return WS_CLOSE_PROTOCOL;
		break;
	case WS_OP_TEXT:
	case WS_OP_BINARY:
		if (p->message_opcode)
			return WS_CLOSE_PROTOCOL;
		p->compressed = b & WS_RSV1;
		break;
	case WS_OP_CLOSE:
	case WS_OP_PING:
	case WS_OP_PONG:
		if (!(b & WS_FIN))
			return WS_CLOSE_PROTOCOL;
		break;
	default:
		return WS_CLOSE_PROTOCOL;
	}
	p->frame_opcode = op;
	p->frame_fin = b & WS_FIN;
	return 0;
}

static uint16_t ws_hdr_length_byte(const struct ws_parser *p)
{
	uint8_t b = p->hdr[1];

	/* §5.1: a client masks every frame, and a server must close on one
	 * that is not. */
	if (!(b & WS_MASKED))
		return WS_CLOSE_PROTOCOL;
	return 0;
}

/* The whole payload length is known: check it against the limits now, so
 * an oversized message is refused on its header alone. Lengths not encoded
 * minimally are accepted (§5.2 asks minimal encoding of senders only), for
 * control frames too: what counts is the length, not its form. */
static uint16_t ws_hdr_length(struct ws_parser *p)
{
	unsigned ext = ws_ext_len(p->hdr[1]);
	uint64_t len = p->hdr[1] & WS_LEN7;

	if (ext) {
		len = 0;
		for (unsigned i = 0; i < ext; i++)
			len = len << 8 | p->hdr[2 + i];
	}
	if (len >> 63)
		return WS_CLOSE_PROTOCOL;
	if (ws_is_control(p->frame_opcode)) {
		if (len > WS_MAX_CONTROL)
			return WS_CLOSE_PROTOCOL;
	} else if (len > p->max_message - p->message_len) {
		/* message_len never exceeds max_message: no wrap. */
		return WS_CLOSE_TOO_BIG;
	}
	p->frame_len = len;
	return 0;
}

static void ws_hdr_mask(struct ws_parser *p, unsigned at)
{
	memcpy(p->mask, p->hdr + at, sizeof(p->mask));
	if (p->frame_opcode == WS_OP_TEXT || p->frame_opcode == WS_OP_BINARY)
		p->message_opcode = p->frame_opcode;
	p->frame_done = 0;
	p->state = WS_PARSE_PAYLOAD;
}

/* Header length at which the next check is due. */
static unsigned ws_hdr_stop(const struct ws_parser *p)
{
	unsigned ext_end;

	if (p->hdr_len < 2)
		return p->hdr_len + 1u;
	ext_end = 2 + ws_ext_len(p->hdr[1]);
	return p->hdr_len < ext_end ? ext_end : ext_end + sizeof(p->mask);
}

/* Run the check due now that hdr_len bytes have arrived. */
static uint16_t ws_hdr_check(struct ws_parser *p)
{
	unsigned ext_end;
	uint16_t err;

	if (p->hdr_len == 1)
		return ws_hdr_first_byte(p);
	if (p->hdr_len == 2) {
		err = ws_hdr_length_byte(p);
		if (err)
			return err;
	}
	ext_end = 2 + ws_ext_len(p->hdr[1]);
	if (p->hdr_len == ext_end)
		return ws_hdr_length(p);
	if (p->hdr_len == ext_end + sizeof(p->mask))
		ws_hdr_mask(p, ext_end);
	return 0;
}

/* Take header bytes from buf (len > 0) up to each check and run it there.
 * Returns the bytes taken; stops early at an error or a complete header. */
static size_t ws_take_header(struct ws_parser *p, const uint8_t *buf, size_t len,
			     uint16_t *err)
{
	size_t used = 0;

	*err = 0;
	while (used < len) {
		size_t want = ws_hdr_stop(p) - p->hdr_len;
		size_t n = want < len - used ? want : len - used;

		memcpy(p->hdr + p->hdr_len, buf + used, n);
		p->hdr_len += n;
		used += n;
		if (n < want)
			break;
		*err = ws_hdr_check(p);
		if (*err || p->state != WS_PARSE_HEADER)
			break;
	}
	return used;
}

/* XOR len bytes with the mask, starting at mask byte phase. Eight bytes go
 * at a time through a 64-bit copy of the rotated mask; memcpy keeps that
 * free of alignment and aliasing traps and compiles to plain loads. */
static void ws_unmask(uint8_t *buf, size_t len, const uint8_t mask[4], unsigned phase)
{
	uint8_t m[8];
	uint64_t m64, w;
	size_t i = 0;

	for (unsigned k = 0; k < sizeof(m); k++)
		m[k] = mask[(phase + k) & 3];
	memcpy(&m64, m, sizeof(m64));
	for (; len - i >= 8; i += 8) {
		memcpy(&w, buf + i, sizeof(w));
		w ^= m64;
		memcpy(buf + i, &w, sizeof(w));
	}
	for (; i < len; i++)
		buf[i] ^= m[i & 7];
}

/* Hand back n bytes of the current frame's payload at data (n is 0 only for
 * an empty frame). Returns 0, or the close code when the bytes are bad. */
static uint16_t ws_deliver(struct ws_parser *p, uint8_t *data, size_t n,
			   struct ws_event *ev)
{
	bool frame_end = p->frame_done + n == p->frame_len;
	bool message_end = frame_end && p->frame_fin;

	ws_unmask(data, n, p->mask, p->frame_done & 3);
	if (ws_is_control(p->frame_opcode)) {
		*ev = (struct ws_event){
			.type = WS_EV_CONTROL,
			.opcode = p->frame_opcode,
			.first = p->frame_done == 0,
			.last = frame_end,
			.data = data,
			.len = n,
		};
	} else {
		/* Check text before handing it out, so the caller never sees
		 * a byte that made the message invalid. Compressed text is
		 * checked by the caller once inflated. */
		if (p->message_opcode == WS_OP_TEXT && !p->compressed) {
			p->utf8 = utf8_feed(p->utf8, data, n);
			if (p->utf8 == UTF8_REJECT ||
			    (message_end && p->utf8 != UTF8_ACCEPT))
				return WS_CLOSE_BAD_DATA;
		}
		*ev = (struct ws_event){
			.type = WS_EV_DATA,
			.opcode = p->message_opcode,
			.compressed = p->compressed,
			.first = p->message_len == 0,
			.last = message_end,
			.data = data,
			.len = n,
		};
		p->message_len += n;
		if (message_end) {
			p->message_opcode = 0;
			p->message_len = 0;
			p->utf8 = UTF8_ACCEPT;
			p->compressed = false;
		}
	}
	p->frame_done += n;
	if (frame_end) {
		p->state = WS_PARSE_HEADER;
		p->hdr_len = 0;
	}
	return 0;
}

static size_t ws_fail(struct ws_parser *p, struct ws_event *ev, uint16_t code,
		      size_t used)
{
	switch (code) {
	case WS_CLOSE_BAD_DATA:
		p->state = WS_PARSE_DEAD_BAD_DATA;
		break;
	case WS_CLOSE_TOO_BIG:
		p->state = WS_PARSE_DEAD_TOO_BIG;
		break;
	default:
		p->state = WS_PARSE_DEAD_PROTOCOL;
		break;
	}
	*ev = (struct ws_event){ .type = WS_EV_ERROR, .close_code = code };
	return used;
}

/* The close code a dead parser answers with, 0 while it is alive. */
static uint16_t ws_dead_code(const struct ws_parser *p)
{
	switch (p->state) {
	case WS_PARSE_DEAD_PROTOCOL:
		return WS_CLOSE_PROTOCOL;
	case WS_PARSE_DEAD_BAD_DATA:
		return WS_CLOSE_BAD_DATA;
	case WS_PARSE_DEAD_TOO_BIG:
		return WS_CLOSE_TOO_BIG;
	default:
		return 0;
	}
}

size_t ws_parse(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_event *ev)
{
	uint16_t err = ws_dead_code(p);
	size_t used = 0, n;

	if (err)
		return ws_fail(p, ev, err, 0);
	*ev = (struct ws_event){ .type = WS_EV_NEED_MORE };
	while (used < len) {
		if (p->state == WS_PARSE_HEADER) {
			used += ws_take_header(p, buf + used, len - used, &err);
			if (err)
				return ws_fail(p, ev, err, used);
			if (p->state == WS_PARSE_HEADER || p->frame_len)
				continue;
			/* An empty fragment that does not end its message
			 * has nothing to say: no event for it. */
			if (!ws_is_control(p->frame_opcode) && !p->frame_fin) {
				p->state = WS_PARSE_HEADER;
				p->hdr_len = 0;
				continue;
			}
			n = 0;
		} else {
			/* In 64 bits: a frame may be longer than size_t. */
			uint64_t left = p->frame_len - p->frame_done;

			n = left < len - used ? (size_t)left : len - used;
		}
		err = ws_deliver(p, buf + used, n, ev);
		if (err)
			return ws_fail(p, ev, err, used + n);
		return used + n;
	}
	return used;
}

uint16_t ws_check_close_payload(const uint8_t *payload, size_t len, uint16_t *code)
{
	uint16_t c;

	if (len == 0) {
		*code = WS_CLOSE_NO_STATUS;
		return 0;
	}
	if (len == 1)
		return WS_CLOSE_PROTOCOL;
	c = (uint16_t)(payload[0] << 8 | payload[1]);
	/* §7.4: 1004 is reserved, 1005 and 1006 are for local use only,
	 * 1012..2999 are not ours to accept, 3000..4999 belong to libraries
	 * and applications. Anything else is a protocol error. */
	if (!((c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) ||
	      (c >= 3000 && c <= 4999)))
		return WS_CLOSE_PROTOCOL;
	if (!utf8_valid(payload + 2, len - 2))
		return WS_CLOSE_BAD_DATA;
	*code = c;
	return 0;
}

size_t ws_header_len(uint64_t len)
{
	if (len <= WS_LEN7_MAX)
		return 2;
	if (len <= UINT16_MAX)
		return 4;
	return 10;
}

size_t ws_write_header(uint8_t *out, enum ws_opcode op, uint64_t len)
{
	size_t hlen = ws_header_len(len);

	out[0] = WS_FIN | op;
	switch (hlen) {
	case 2:
		out[1] = (uint8_t)len;
		break;
	case 4:
		out[1] = WS_LEN16;
		out[2] = (uint8_t)(len >> 8);
		out[3] = (uint8_t)len;
		break;
	default:
		out[1] = WS_LEN64;
		for (unsigned i = 0; i < 8; i++)
			out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
		break;
	}
	return hlen;
}

void ws_frame_text_in_place(struct buf *b)
{
	if (b->head != b->payload)
		return;
	size_t len = b->len - b->payload;
	size_t hlen = ws_header_len(len);
	if (b->payload < hlen)
		abort(); /* a buf made without headroom: a bug, not input */
	b->head = (uint16_t)(b->payload - hlen);
	ws_write_header(b->data + b->head, WS_OP_TEXT, len);
}
