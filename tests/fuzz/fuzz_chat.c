/* fuzz_chat.c: the chat protocol handler, bytes in, events out.
 *
 * The input is split at NUL bytes into client messages from three members
 * of one room (each text must be valid UTF-8, as the WebSocket layer
 * guarantees; invalid pieces are skipped). Every buf chat sends must carry,
 * as its payload with headroom before it, a JSON object with a string
 * "type"; anything else aborts. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "chat.h"
#include "utf8.h"
#include "ws.h"

static void check_frame(struct chat_member *m, struct buf *frame)
{
	(void)m;
	size_t len;
	const char *json = buf_payload(frame, &len);
	if (frame->payload < BUF_HEADROOM)
		abort();
	json_error_t err;
	json_t *root = json_loadb(json, len, JSON_ALLOW_NUL, &err);
	if (!root || !json_is_object(root) || !json_is_string(json_object_get(root, "type")))
		abort();
	json_decref(root);
	/* Framed as the WebSocket transport does: what chat reads back from
	 * its history is then read from framed bufs. */
	ws_frame_text_in_place(frame);
	if (frame->head >= frame->payload || buf_out(frame)[0] != 0x81)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chat_member members[3];
	struct chat *chat = chat_new(&(struct chat_config){ .send = check_frame, .history_memory = 16,
							     .history_bytes = 64 * 1024 });
	for (int i = 0; i < 3; i++)
		chat_connect(chat, &members[i], NULL, "lobby", 5, NULL);
	size_t start = 0, who = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i < size && data[i] != 0)
			continue;
		size_t len = i - start;
		if (utf8_valid(data + start, len))
			chat_receive(chat, &members[who++ % 3], (const char *)data + start, len);
		start = i + 1;
	}
	for (int i = 0; i < 3; i++)
		chat_disconnect(chat, &members[i]);
	chat_free(chat);
	return 0;
}
