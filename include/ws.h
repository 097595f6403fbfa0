/* ws.h: WebSocket (RFC 6455), server side, as pure functions over bytes.
 *
 * The frame parser is incremental: feed it whatever bytes arrived and it
 * returns one event at a time, pointing into (and unmasking in place) the
 * caller's buffer. Any split of the byte stream gives the same events, one
 * byte at a time included. It allocates nothing and never touches a socket. */
#ifndef RINGCAST_WS_H
#define RINGCAST_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "utf8.h"

struct buf;

enum ws_opcode {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xA,
};

enum ws_close_code {
	WS_CLOSE_NORMAL = 1000,
	WS_CLOSE_GOING_AWAY = 1001,
	WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_UNSUPPORTED = 1003,
	WS_CLOSE_NO_STATUS = 1005, /* never sent on the wire */
	WS_CLOSE_BAD_DATA = 1007,
	WS_CLOSE_POLICY = 1008,
	WS_CLOSE_TOO_BIG = 1009,
	WS_CLOSE_INTERNAL = 1011,
	/* sign-in (docs/protocol.md): what a page tells the person */
	WS_CLOSE_TOKEN_MISSING = 4001,
	WS_CLOSE_TOKEN_EXPIRED = 4002,
	WS_CLOSE_TOKEN_INVALID = 4003,
};

enum ws_event_type {
	WS_EV_NEED_MORE, /* every byte given was consumed; feed more */
	WS_EV_DATA,      /* a chunk of a data message's payload (maybe empty) */
	WS_EV_CONTROL,   /* a chunk of a ping/pong/close frame's payload */
	WS_EV_ERROR,     /* protocol violation: close with ev->close_code */
};

/* A chunk never reaches past its frame. DATA chunks are not empty, except
 * that a message ending in an empty final frame still gets one event with
 * len 0 and last set (an empty fragment in the middle gets none). A control
 * frame gets at least one event: an empty one gives len 0, first and last.
 * TEXT handed out so far is always the start of valid UTF-8 (a chunk may
 * end inside a character): a byte that makes it invalid gives ERROR 1007
 * instead of the chunk holding it. BINARY is reported like TEXT, with no
 * UTF-8 check; refusing it (1003) is the caller's choice. A compressed
 * message (permessage-deflate, RSV1) is reported like BINARY: its bytes
 * are deflate data, whose text the caller checks after inflating them. */
struct ws_event {
	enum ws_event_type type;
	uint8_t opcode;       /* DATA: the message's opcode (TEXT or BINARY); CONTROL: PING/PONG/CLOSE */
	bool compressed;      /* DATA: the message is compressed (RSV1 on its first frame) */
	bool first;           /* this chunk starts the message / control frame */
	bool last;            /* this chunk ends the message / control frame */
	uint16_t close_code;  /* ERROR: the code to close with */
	uint8_t *data;        /* unmasked payload bytes, inside the caller's buffer */
	size_t len;
};

/* Parser state: small on purpose, one per WebSocket connection. */
struct ws_parser {
	uint64_t max_message;    /* whole-message payload limit, over it → 1009 */
	uint64_t frame_len;      /* payload length of the current frame */
	uint64_t frame_done;     /* payload bytes of it consumed so far */
	uint64_t message_len;    /* payload bytes of the open data message so far */
	uint32_t utf8;           /* incremental UTF-8 state of the open text message */
	uint8_t mask[4];
	uint8_t hdr[14];         /* frame header bytes gathered so far */
	uint8_t hdr_len;
	uint8_t frame_opcode;
	uint8_t message_opcode;  /* opcode of the open data message, 0 between messages */
	uint8_t state;           /* private */
	bool frame_fin;
	bool deflate;            /* permessage-deflate was negotiated: RSV1 is allowed */
	bool compressed;         /* the open data message is compressed */
};

/* deflate: permessage-deflate was negotiated, so RSV1 may start a data
 * message. max_message then limits the compressed bytes; the inflated
 * size is the inflater's to check (ws_deflate.h). */
void ws_parser_init(struct ws_parser *p, uint64_t max_message, bool deflate);

/* Parse from buf[0..len). Returns the number of bytes consumed and fills *ev.
 * Call again with the rest while it consumed less than len or returned an
 * event other than NEED_MORE. An event's data stays valid as long as the
 * caller's buffer does; bytes after it are untouched until the next call.
 * After WS_EV_ERROR the parser is dead: every later call returns the same
 * error and consumes nothing. A message over max_message fails with 1009
 * on the header of the frame that would overflow it, before its payload. */
size_t ws_parse(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_event *ev);

/* Check a complete close frame payload (as received, after unmasking; the
 * caller gathers its chunks, at most 125 bytes). Returns 0 when valid and
 * stores the code (WS_CLOSE_NO_STATUS for an empty payload) in *code;
 * otherwise returns the close code to answer with (1002 or 1007) and leaves
 * *code alone. */
uint16_t ws_check_close_payload(const uint8_t *payload, size_t len, uint16_t *code);

/* Maximum size of a server frame header (unmasked, 64-bit length). */
#define WS_MAX_HEADER 10

/* Server frame header length for a payload of len bytes: 2, 4 or 10. */
size_t ws_header_len(uint64_t len);

/* Write an unmasked, FIN-set server frame header; returns its length. */
size_t ws_write_header(uint8_t *out, enum ws_opcode op, uint64_t len);

/* Make b's payload a text frame: its header goes into the headroom right
 * before the payload and b's head moves back to it. Once: a buf already
 * framed (head != payload) is left as it is, so a broadcast is framed by
 * its first recipient and the others send the same bytes. b must have its
 * headroom (buf_new_payload). Single-threaded: with several threads this
 * must happen before b is shared. */
void ws_frame_text_in_place(struct buf *b);

/* Sec-WebSocket-Accept for a client key: base64(SHA-1(key + GUID)),
 * 28 characters plus NUL written to out. */
void ws_accept_key(const char *key, size_t key_len, char out[29]);

/* Is the key the canonical base64 of exactly 16 bytes: 22 characters of the
 * standard alphabet, the last with its 4 unused bits zero, then "=="? */
bool ws_key_valid(const char *key, size_t key_len);

#endif
