/* chat_name.h: what makes a display name acceptable. */
#ifndef RINGCAST_CHAT_NAME_H
#define RINGCAST_CHAT_NAME_H

#include <stdbool.h>
#include <stddef.h>

#define CHAT_NAME_MAX_CHARS 32
#define CHAT_NAME_MAX_BYTES (CHAT_NAME_MAX_CHARS * 4)

/* Check a proposed name (valid UTF-8). On success the trimmed name is
 * written to out (NUL-terminated, out needs CHAT_NAME_MAX_BYTES + 1) and
 * true is returned. Rules: whitespace trimmed at both ends; then 1 to 32
 * characters; no control characters (C0, DEL, C1), line or paragraph
 * separators, or bidirectional overrides and isolates; not made only of
 * invisible characters (zero-width and format characters, fillers,
 * variation selectors, combining marks). */
bool chat_name_normalize(const char *in, size_t len, char *out);

#endif
