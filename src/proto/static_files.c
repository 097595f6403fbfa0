/* static_files.c: the chat page's files, read once and served from memory.
 *
 * Loading is plain blocking open/read: it runs at start-up, before the
 * ring exists. Each file's GET and HEAD responses are rendered then, so a
 * request costs a lookup and a reference. Lookups are a binary search over
 * the sorted paths; the site is a handful of files. Loading runs again on
 * SIGHUP, on edge 0's thread: a few milliseconds of blocking reads and
 * compression, rare enough not to need a thread of its own. */
#include "static_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "buf.h"
#include "http.h"
#include "log.h"

/* The page is a few files of kilobytes; anything near this is a mistake in
 * the static directory, and refusing it keeps a response inside one buf. */
#define STATIC_MAX_FILE (64u << 20)

/* Room for a rendered head, about 520 bytes today with ETag, Vary and
 * Content-Encoding (267 of them the common security headers); the check in
 * render_body catches outgrowing it. */
#define STATIC_HEAD_MAX 1024

struct loader {
	struct static_site *site;
	size_t cap;            /* entries allocated in site->files */
	char root[PATH_MAX];   /* real path of the directory, no trailing '/' */
	size_t root_len;
	char path[PATH_MAX];   /* file being looked at: root + URL path */
};

const char *static_content_type(const char *name)
{
	static const struct {
		const char *ext;
		const char *type;
	} types[] = {
		{ "html", "text/html; charset=utf-8" },
		{ "js", "text/javascript; charset=utf-8" },
		{ "css", "text/css; charset=utf-8" },
		{ "svg", "image/svg+xml" },
		{ "png", "image/png" },
		{ "ico", "image/x-icon" },
		{ "json", "application/json" },
		{ "txt", "text/plain; charset=utf-8" },
	};
	const char *base = strrchr(name, '/');
	const char *dot;

	base = base ? base + 1 : name;
	dot = strrchr(base, '.');
	/* A leading dot starts a hidden name, not an extension. */
	if (dot && dot != base) {
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
			if (strcasecmp(dot + 1, types[i].ext) == 0)
				return types[i].type;
		}
	}
	return "application/octet-stream";
}

/* A symlink is served only when it resolves to a place the walk itself
 * would have served: inside the root and not under a dotfile. */
static bool link_stays_inside(const struct loader *ld)
{
	char real[PATH_MAX];

	if (!realpath(ld->path, real))
		return false;
	return strncmp(real, ld->root, ld->root_len) == 0 && real[ld->root_len] == '/' &&
	       !strstr(real + ld->root_len, "/.");
}

static int read_all(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* FNV-1a over the bytes, for the ETag: it only has to change when the
 * file does, and a 64-bit hash of a few files never collides by chance. */
static uint64_t content_hash(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* The gzip copy of body into *out (malloc'd), or 0 when it saves less than
 * a tenth: then the plain bytes are served to everyone. Level 9: this runs
 * once per load, and every download after it is smaller. */
static size_t gzip_body(const uint8_t *body, size_t len, uint8_t **out)
{
	z_stream z = { 0 };
	size_t cap, got = 0;
	*out = NULL;
	if (len < 64 || len > UINT32_MAX)
		return 0;
	/* windowBits 15 + 16: a gzip header and trailer, not zlib's */
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK)
		return 0;
	cap = deflateBound(&z, (uLong)len);
	*out = malloc(cap);
	if (*out) {
		z.next_in = (Bytef *)body;
		z.avail_in = (uInt)len;
		z.next_out = *out;
		z.avail_out = (uInt)cap;
		if (deflate(&z, Z_FINISH) == Z_STREAM_END)
			got = z.total_out;
	}
	deflateEnd(&z);
	if (got == 0 || got > len - len / 10) {
		free(*out);
		*out = NULL;
		return 0;
	}
	return got;
}

/* The 200 (GET and HEAD) and 304 responses of one representation. */
static int render_body(struct static_body *b, const char *type, const uint8_t *body, size_t len,
		       bool gzip, bool vary)
{
	char head[STATIC_HEAD_MAX], extra[160];
	size_t head_len, nm_len;

	snprintf(extra, sizeof(extra), "Cache-Control: no-cache\r\nETag: %s\r\n%s%s", b->etag,
		 vary ? "Vary: Accept-Encoding\r\n" : "", gzip ? "Content-Encoding: gzip\r\n" : "");
	/* RFC 9110 §15.4.5: a 304 carries the validators and Vary a 200 would;
	 * its Content-Length, if any, is the 200's, and no body follows. */
	nm_len = http_format_head(head, sizeof(head), 304, NULL, (uint64_t)len, true, extra);
	if (!nm_len)
		return -1;
	b->not_modified = buf_from(head, nm_len);
	head_len = http_format_head(head, sizeof(head), 200, type, (uint64_t)len, true, extra);
	if (!head_len)
		return -1;
	b->head_response = buf_from(head, head_len);
	b->get_response = buf_new(head_len + len);
	memcpy(b->get_response->data, head, head_len);
	memcpy(b->get_response->data + head_len, body, len);
	return 0;
}

static void free_body(struct static_body *b)
{
	buf_unref(b->get_response);
	buf_unref(b->head_response);
	buf_unref(b->not_modified);
	*b = (struct static_body){ 0 };
}

static struct static_file *add_file(struct loader *ld)
{
	struct static_site *site = ld->site;

	if (site->count == ld->cap) {
		size_t cap = ld->cap ? 2 * ld->cap : 16;
		struct static_file *files = realloc(site->files, cap * sizeof(*files));

		if (!files)
			return NULL;
		site->files = files;
		ld->cap = cap;
	}
	site->files[site->count] = (struct static_file){ 0 };
	return &site->files[site->count];
}

/* Render the file's responses into a new entry of the site. */
static int add_rendered(struct loader *ld, const char *url, const uint8_t *body, size_t len)
{
	struct static_file *f = add_file(ld);
	uint8_t *gz = NULL;
	size_t gz_len;
	uint64_t hash = content_hash(body, len);
	int err = -1;

	if (!f || !(f->path = strdup(url))) {
		log_error("out of memory loading %s", ld->path);
		return -1;
	}
	f->content_type = static_content_type(url);
	gz_len = gzip_body(body, len, &gz);
	snprintf(f->plain.etag, sizeof(f->plain.etag), "\"%016llx\"", (unsigned long long)hash);
	if (render_body(&f->plain, f->content_type, body, len, false, gz != NULL) < 0)
		goto out;
	if (gz) {
		snprintf(f->gzip.etag, sizeof(f->gzip.etag), "\"%016llx-gz\"", (unsigned long long)hash);
		if (render_body(&f->gzip, f->content_type, gz, gz_len, true, true) < 0)
			goto out;
	}
	err = 0;
out:
	free(gz);
	if (err) {
		log_error("static file %s: response head over %d bytes", ld->path,
			STATIC_HEAD_MAX);
		free(f->path);
		free_body(&f->plain);
		free_body(&f->gzip);
		return -1;
	}
	ld->site->count++;
	return 0;
}

static int load_file(struct loader *ld)
{
	const char *url = ld->path + ld->root_len;
	uint8_t *body = NULL;
	struct stat st;
	int fd, err = -1;

	/* the size comes from the file actually opened, not from the walk's
	 * earlier stat, in case it was replaced in between */
	fd = open(ld->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		log_error("static file %s: %s", ld->path, strerror(errno));
		goto out;
	}
	if (st.st_size > STATIC_MAX_FILE) {
		log_error("static file %s: %lld bytes is over the %u byte limit",
			ld->path, (long long)st.st_size, STATIC_MAX_FILE);
		goto out;
	}
	body = malloc((size_t)st.st_size + 1);
	if (!body) {
		log_error("out of memory loading %s", ld->path);
		goto out;
	}
	if (read_all(fd, body, (size_t)st.st_size) < 0) {
		log_error("static file %s: read failed or file shrank while loading",
			ld->path);
		goto out;
	}
	err = add_rendered(ld, url, body, (size_t)st.st_size);
out:
	free(body);
	if (fd >= 0)
		close(fd);
	return err;
}

static int load_dir(struct loader *ld, size_t len);

/* ld->path[0..len) names one directory entry: recurse into directories,
 * load regular files, skip everything else. Symlinked directories are
 * never followed, which also rules out loops. */
static int load_entry(struct loader *ld, size_t len)
{
	struct stat st;

	if (lstat(ld->path, &st) < 0) {
		log_error("static file %s: %s", ld->path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode))
		return load_dir(ld, len);
	if (S_ISLNK(st.st_mode)) {
		if (!link_stays_inside(ld) || stat(ld->path, &st) < 0) {
			log_warn("static file %s: link leads outside the site, to a dotfile or nowhere; "
				 "not served", ld->path);
			return 0;
		}
	}
	return S_ISREG(st.st_mode) ? load_file(ld) : 0;
}

static int load_dir(struct loader *ld, size_t len)
{
	DIR *dir = opendir(ld->path);
	struct dirent *e;
	int err = 0;

	if (!dir) {
		log_error("static dir %s: %s", ld->path, strerror(errno));
		return -1;
	}
	while (!err && (e = readdir(dir))) {
		size_t name_len = strlen(e->d_name);

		/* dotfiles (.git, .env, editor swap files) are never served */
		if (e->d_name[0] == '.')
			continue;
		if (len + 1 + name_len >= sizeof(ld->path)) {
			log_error("static file %s/%s: path too long", ld->path,
				e->d_name);
			err = -1;
			continue;
		}
		ld->path[len] = '/';
		memcpy(ld->path + len + 1, e->d_name, name_len + 1);
		err = load_entry(ld, len + 1 + name_len);
		ld->path[len] = '\0';
	}
	closedir(dir);
	return err;
}

static int compare_files(const void *a, const void *b)
{
	return strcmp(((const struct static_file *)a)->path,
		      ((const struct static_file *)b)->path);
}

int static_site_load(struct static_site *site, const char *dir)
{
	struct loader ld = { .site = site };

	*site = (struct static_site){ 0 };
	if (!realpath(dir, ld.root)) {
		log_error("static dir %s: %s", dir, strerror(errno));
		return -1;
	}
	ld.root_len = strlen(ld.root);
	if (ld.root_len == 1) {
		log_error("static dir %s is /: refusing to serve the whole file system",
			dir);
		return -1;
	}
	memcpy(ld.path, ld.root, ld.root_len + 1);
	if (load_dir(&ld, ld.root_len) < 0) {
		static_site_free(site);
		return -1;
	}
	/* qsort and bsearch want a real array even when it is empty */
	if (site->count)
		qsort(site->files, site->count, sizeof(*site->files), compare_files);
	return 0;
}

void static_site_free(struct static_site *site)
{
	for (size_t i = 0; i < site->count; i++) {
		free(site->files[i].path);
		free_body(&site->files[i].plain);
		free_body(&site->files[i].gzip);
	}
	free(site->files);
	*site = (struct static_site){ 0 };
}

static struct buf *copy_buf(const struct buf *b)
{
	return b ? buf_from(b->data, b->len) : NULL;
}

static void copy_body(struct static_body *dst, const struct static_body *src)
{
	memcpy(dst->etag, src->etag, sizeof(dst->etag));
	dst->get_response = copy_buf(src->get_response);
	dst->head_response = copy_buf(src->head_response);
	dst->not_modified = copy_buf(src->not_modified);
}

int static_site_copy(struct static_site *dst, const struct static_site *src)
{
	*dst = (struct static_site){ 0 };
	if (!src->count)
		return 0;
	dst->files = calloc(src->count, sizeof(*dst->files));
	if (!dst->files)
		return -1;
	for (size_t i = 0; i < src->count; i++) {
		struct static_file *f = &dst->files[i];
		f->path = strdup(src->files[i].path);
		if (!f->path) {
			static_site_free(dst);
			return -1;
		}
		dst->count++;
		f->content_type = src->files[i].content_type;
		copy_body(&f->plain, &src->files[i].plain);
		copy_body(&f->gzip, &src->files[i].gzip);
	}
	return 0;
}

/* The path a lookup wants: path itself, plus "index.html" when it names a
 * directory (ends in '/'), joined without copying. */
struct lookup {
	const char *path;
	const char *suffix;
};

/* strcmp(key->path + key->suffix, file->path), so bsearch agrees with qsort. */
static int compare_lookup(const void *key, const void *file)
{
	const struct lookup *k = key;
	const char *path = ((const struct static_file *)file)->path;
	size_t n = strlen(k->path);
	int c = strncmp(k->path, path, n);

	/* equal so far means path has at least n bytes */
	return c ? c : strcmp(k->suffix, path + n);
}

const struct static_file *static_site_find(const struct static_site *site, const char *path)
{
	size_t n = strlen(path);
	struct lookup key = {
		.path = path,
		.suffix = n && path[n - 1] == '/' ? "index.html" : "",
	};

	if (!site->count)
		return NULL;
	return bsearch(&key, site->files, site->count, sizeof(*site->files), compare_lookup);
}
