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
};

enum ws_event_type {
	WS_EV_NEED_MORE, /* every byte given was consumed; feed more */
	WS_EV_DATA,      /* a chunk of a data message's payload (maybe empty) */
	WS_EV_CONTROL,   /* a chunk of a ping/pong/close frame's payload */
	WS_EV_ERROR,     /* protocol violation: close with ev->close_code */
};

struct ws_event {
	enum ws_event_type type;
	uint8_t opcode;       /* DATA: the message's opcode (TEXT); CONTROL: PING/PONG/CLOSE */
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
	uint8_t message_opcode;  /* opcode of the open fragmented message, 0 if none */
	uint8_t state;           /* private */
	bool frame_fin;
};

void ws_parser_init(struct ws_parser *p, uint64_t max_message);

/* Parse from buf[0..len). Returns the number of bytes consumed and fills *ev.
 * Call again with the rest while it consumed less than len or returned an
 * event other than NEED_MORE. After WS_EV_ERROR the parser is dead. */
size_t ws_parse(struct ws_parser *p, uint8_t *buf, size_t len, struct ws_event *ev);

/* Check a complete close frame payload (as received). Returns 0 when valid
 * and stores the code (WS_CLOSE_NO_STATUS for an empty payload) in *code;
 * otherwise returns the close code to answer with (1002 or 1007). */
uint16_t ws_check_close_payload(const uint8_t *payload, size_t len, uint16_t *code);

/* Maximum size of a server frame header (unmasked, 64-bit length). */
#define WS_MAX_HEADER 10

/* Server frame header length for a payload of len bytes: 2, 4 or 10. */
size_t ws_header_len(uint64_t len);

/* Write an unmasked, FIN-set server frame header; returns its length. */
size_t ws_write_header(uint8_t *out, enum ws_opcode op, uint64_t len);

/* Sec-WebSocket-Accept for a client key: base64(SHA-1(key + GUID)),
 * 28 characters plus NUL written to out. */
void ws_accept_key(const char *key, size_t key_len, char out[29]);

/* Does the key decode from base64 to exactly 16 bytes? */
bool ws_key_valid(const char *key, size_t key_len);

#endif
