/* fuzz_chat.c: the chat protocol handler, bytes in, events out.
 *
 * The input is split at NUL bytes into client messages from three members
 * of one room (each text must be valid UTF-8, as the WebSocket layer
 * guarantees; invalid pieces are skipped). Every frame chat sends must be a
 * well-formed server text frame carrying a JSON object with a string
 * "type"; anything else aborts. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "chat.h"
#include "utf8.h"

static void check_frame(struct chat_member *m, struct buf *frame)
{
	(void)m;
	if (frame->len < 2 || frame->data[0] != 0x81)
		abort();
	uint8_t l7 = frame->data[1] & 0x7F;
	size_t h = l7 == 127 ? 10 : l7 == 126 ? 4 : 2;
	if (frame->data[1] & 0x80 || frame->len < h)
		abort();
	json_error_t err;
	json_t *root = json_loadb((const char *)frame->data + h, frame->len - h, JSON_ALLOW_NUL, &err);
	if (!root || !json_is_object(root) || !json_is_string(json_object_get(root, "type")))
		abort();
	json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chat_member members[3];
	chat_init(&(struct chat_config){ .send = check_frame, .history_memory = 16,
					  .history_bytes = 64 * 1024 });
	for (int i = 0; i < 3; i++)
		chat_connect(&members[i], NULL, "lobby", 5, NULL);
	size_t start = 0, who = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i < size && data[i] != 0)
			continue;
		size_t len = i - start;
		if (utf8_valid(data + start, len))
			chat_receive(&members[who++ % 3], (const char *)data + start, len);
		start = i + 1;
	}
	for (int i = 0; i < 3; i++)
		chat_disconnect(&members[i]);
	chat_shutdown();
	return 0;
}
