/* static_files.h: the chat page's files, loaded into memory at start-up.
 *
 * Serving from memory keeps disk reads off the event loop thread: each file
 * is read once, and its full GET response (head + body) and HEAD response are
 * rendered once, so serving a file is handing out a reference. A change to
 * static/ needs a restart. */
#ifndef RINGCAST_STATIC_FILES_H
#define RINGCAST_STATIC_FILES_H

#include <stddef.h>

struct buf;

struct static_file {
	char *path;              /* URL path, e.g. "/app.js"; "/index.html" also answers "/" */
	const char *content_type;
	struct buf *get_response;  /* head + body, "HTTP/1.1 200 OK ..." */
	struct buf *head_response; /* the same head without the body */
};

struct static_site {
	struct static_file *files;
	size_t count;
};

/* Load every regular file under dir (recursively, no symlinks leaving it,
 * no dotfiles). Returns 0, or -1 with a message on stderr. */
int static_site_load(struct static_site *site, const char *dir);

void static_site_free(struct static_site *site);

/* Look up a decoded URL path ("/" means "/index.html"); NULL when absent. */
const struct static_file *static_site_find(const struct static_site *site, const char *path);

/* Content-Type for a file name by extension: html, js, css, svg, png, ico,
 * json, txt; application/octet-stream otherwise. */
const char *static_content_type(const char *name);

#endif
