/* lg_ws.h: the client side of WebSocket that the load generator needs.
 *
 * Pure functions over bytes: the opening handshake's key and expected
 * accept value, masked client frames, and an incremental reader of the
 * server's (unmasked) frames. No sockets, no ring. */
#ifndef LG_WS_H
#define LG_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_OP_TEXT   0x1
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE  0x8
#define WS_OP_PING   0x9
#define WS_OP_PONG   0xA

/* A fresh random Sec-WebSocket-Key: base64 of 16 bytes, 24 chars + NUL. */
void ws_make_key(char key[25]);

/* The Sec-WebSocket-Accept a correct server answers for key: 28 chars + NUL. */
void ws_expected_accept(const char *key, char out[29]);

/* Check a complete response head (up to and including the blank line):
 * status 101 and a Sec-WebSocket-Accept header equal to accept. */
bool ws_check_response(const char *head, size_t len, const char *accept);

/* Bytes a masked client frame with a payload of len bytes takes. */
size_t ws_client_frame_len(size_t len);

/* Write a FIN-set, masked client frame into dst (which has room for
 * ws_client_frame_len(len) bytes); returns its length. */
size_t ws_client_frame(uint8_t *dst, int opcode, const void *payload, size_t len,
		       uint32_t mask);

/* Incremental reader of server frames. Frames that fit inside one receive
 * buffer are handed out in place; a frame split across buffers is gathered
 * into a private buffer, but only up to gather_max bytes: longer frames are
 * not ours (presence lists and the like) and are skipped unread. */
struct ws_rx {
	uint64_t remain;     /* payload bytes of the current frame still to come */
	uint8_t *gather;     /* split frame being gathered, NULL when none */
	uint32_t gathered;
	uint32_t gather_cap;
	uint8_t hdr[14];
	uint8_t hdr_len;     /* header bytes collected so far */
	uint8_t opcode;
	bool in_payload;
	bool skipping;       /* current frame too large to gather: drop its bytes */
};

/* Called once per complete frame; skipped frames arrive with p == NULL. */
typedef void (*ws_frame_fn)(void *ctx, int opcode, const uint8_t *p, size_t n);

/* Feed received bytes. Returns 0, or -1 when the server broke the protocol
 * (a masked frame) and the connection should be dropped. */
int ws_rx_feed(struct ws_rx *rx, const uint8_t *p, size_t n, size_t gather_max,
	       ws_frame_fn fn, void *ctx);

void ws_rx_release(struct ws_rx *rx);

#endif
