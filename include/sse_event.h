/* sse_event.h: Server-Sent Events as bytes (the text/event-stream format),
 * and the session key a stream hands to POST /send; pure functions. */
#ifndef RINGCAST_SSE_EVENT_H
#define RINGCAST_SSE_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct buf;

/* A chat message's id and room, read from the start of its JSON: the chat
 * writes every message as {"type":"message","id":N,"room":"NAME",...
 * (chat_event.c) and a room name needs no escaping. False for any other
 * event, or a prefix that does not read exactly so. *room points into json. */
bool sse_message_prefix(const char *json, size_t len, uint64_t *id, const char **room, size_t *room_len);

/* A new buf with one event: "id: N\n" when id is given, then
 * "data: JSON\n\n". The chat's JSON is compact, one line, so one data:
 * line carries it. */
struct buf *sse_event_new(const void *json, size_t len, const uint64_t *id);

/* What a stream's rooms are told apart by: a 64-bit FNV-1a hash of the
 * name (16 bytes less per stream than the name itself; a collision would
 * only give another room's messages id lines on that one stream). */
uint64_t sse_room_hash(const char *name, size_t len);

/* A stream's session key: the edge and connection slot that hold it,
 * that slot's generation, and 128 random bits, as text
 * "EDGE-SLOT-GEN-<32 lowercase hex>". */
#define SSE_KEY_SECRET 16
#define SSE_KEY_TEXT_MAX 72
struct sse_key {
	uint32_t edge, slot, gen;
	uint8_t secret[SSE_KEY_SECRET];
};

/* Write k into out (SSE_KEY_TEXT_MAX bytes); returns its length. */
size_t sse_key_format(const struct sse_key *k, char *out);
/* Read a key; false unless text is exactly one (decimal numbers of at most
 * 10 digits that fit 32 bits, no sign, no leading zero but "0"). */
bool sse_key_parse(const char *text, size_t len, struct sse_key *k);

#endif
