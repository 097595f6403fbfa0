/* static_files.h: the chat page's files, loaded into memory at start-up.
 *
 * Serving from memory keeps disk reads off the event loop thread: each file
 * is read once, and its full GET response (head + body) and HEAD response are
 * rendered once, so serving a file is handing out a reference. Each file
 * also has an ETag (for 304 Not Modified) and, when it shrinks, a gzip copy
 * compressed once here. SIGHUP loads static/ again (reload.c in the server
 * layer); each edge serves its own copy of a site (static_site_copy), so
 * its bufs are counted on one thread and a reload never frees bytes still
 * queued for sending. */
#ifndef RINGCAST_STATIC_FILES_H
#define RINGCAST_STATIC_FILES_H

#include <stddef.h>

struct buf;

/* One representation of a file: its bytes as they are, or gzipped. */
struct static_body {
	char etag[32];             /* quoted, e.g. "\"9f0c...\""; the gzip copy's ends in -gz" */
	struct buf *get_response;  /* head + body, "HTTP/1.1 200 OK ..." */
	struct buf *head_response; /* the same head without the body */
	struct buf *not_modified;  /* "HTTP/1.1 304 Not Modified", the same validators */
};

struct static_file {
	char *path;              /* URL path, e.g. "/app.js"; "/index.html" also answers "/" */
	const char *content_type;
	struct static_body plain;
	/* Content-Encoding: gzip; all NULL when compressing saved under a
	 * tenth (images, tiny files). When present, both carry
	 * Vary: Accept-Encoding. */
	struct static_body gzip;
};

struct static_site {
	struct static_file *files;
	size_t count;
};

/* Load every regular file under dir, recursively. Skipped: dotfiles and
 * dot-directories, anything not a regular file, symlinked directories, and
 * symlinks that resolve outside dir or to a dotfile. Each file gets a GET
 * and a HEAD response (200, keep-alive, Cache-Control: no-cache, ETag) and
 * a 304, for its plain bytes and for its gzip copy if any. Returns 0,
 * or -1 with a message on stderr (unreadable dir or file, file over 64 MiB,
 * dir resolving to /); on -1 the site is empty. */
int static_site_load(struct static_site *site, const char *dir);

void static_site_free(struct static_site *site);

/* dst becomes a copy of src with bufs of its own (one reference each, held
 * by dst): for one edge, which counts them on its own thread. 0, or -1
 * when out of memory (dst empty). */
int static_site_copy(struct static_site *dst, const struct static_site *src);

/* Look up a decoded URL path by exact match; a path ending in '/' means its
 * index.html ("/" is "/index.html", "/sub/" is "/sub/index.html"). NULL when
 * absent. Nothing touches the file system, so "//x" or "/a/../b" can only
 * miss, never escape (http_decode_path refuses the latter anyway). */
const struct static_file *static_site_find(const struct static_site *site, const char *path);

/* Content-Type for a file name by extension, in any case: html, js, css,
 * svg, png, ico, json, txt; application/octet-stream otherwise. */
const char *static_content_type(const char *name);

#endif
