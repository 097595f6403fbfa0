/* static_files.c: the chat page's files, read once and served from memory.
 *
 * Loading is plain blocking open/read: it runs once at start-up, before the
 * ring exists. Each file's GET and HEAD responses are rendered then, so a
 * request costs a lookup and a reference. Lookups are a binary search over
 * the sorted paths; the site is a handful of files. */
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

#include "buf.h"
#include "http.h"

/* The page is a few files of kilobytes; anything near this is a mistake in
 * the static directory, and refusing it keeps a response inside one buf. */
#define STATIC_MAX_FILE (64u << 20)

/* Room for the rendered 200 head, about 400 bytes today (267 of them the
 * common security headers); the check in load_file catches outgrowing it. */
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

static int add_file(struct loader *ld, const char *url, const char *type, struct buf *get,
		    struct buf *head)
{
	struct static_site *site = ld->site;
	struct static_file *f;

	if (site->count == ld->cap) {
		size_t cap = ld->cap ? 2 * ld->cap : 16;
		struct static_file *files = realloc(site->files, cap * sizeof(*files));

		if (!files)
			return -1;
		site->files = files;
		ld->cap = cap;
	}
	f = &site->files[site->count];
	f->path = strdup(url);
	if (!f->path)
		return -1;
	f->content_type = type;
	f->get_response = get;
	f->head_response = head;
	site->count++;
	return 0;
}

static int load_file(struct loader *ld)
{
	const char *url = ld->path + ld->root_len;
	const char *type = static_content_type(url);
	char head[STATIC_HEAD_MAX];
	struct buf *get = NULL, *head_only = NULL;
	struct stat st;
	size_t head_len;
	int fd, err = -1;

	/* the size comes from the file actually opened, not from the walk's
	 * earlier stat, in case it was replaced in between */
	fd = open(ld->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "ringcast: static file %s: %s\n", ld->path, strerror(errno));
		goto out;
	}
	if (st.st_size > STATIC_MAX_FILE) {
		fprintf(stderr, "ringcast: static file %s: %lld bytes is over the %u byte limit\n",
			ld->path, (long long)st.st_size, STATIC_MAX_FILE);
		goto out;
	}
	head_len = http_format_head(head, sizeof(head), 200, type, (uint64_t)st.st_size, true,
				    "Cache-Control: no-cache\r\n");
	if (!head_len) {
		fprintf(stderr, "ringcast: static file %s: response head over %d bytes\n",
			ld->path, STATIC_HEAD_MAX);
		goto out;
	}
	get = buf_new(head_len + (size_t)st.st_size);
	memcpy(get->data, head, head_len);
	if (read_all(fd, get->data + head_len, (size_t)st.st_size) < 0) {
		fprintf(stderr, "ringcast: static file %s: read failed or file shrank while loading\n",
			ld->path);
		goto out;
	}
	head_only = buf_from(head, head_len);
	/* every edge serves them, each from its own thread */
	buf_share(get);
	buf_share(head_only);
	if (add_file(ld, url, type, get, head_only) < 0) {
		fprintf(stderr, "ringcast: out of memory loading %s\n", ld->path);
		goto out;
	}
	get = head_only = NULL;
	err = 0;
out:
	if (get)
		buf_free_shared(get);
	if (head_only)
		buf_free_shared(head_only);
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
		fprintf(stderr, "ringcast: static file %s: %s\n", ld->path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode))
		return load_dir(ld, len);
	if (S_ISLNK(st.st_mode)) {
		if (!link_stays_inside(ld) || stat(ld->path, &st) < 0) {
			fprintf(stderr, "ringcast: static file %s: link leads outside the site, to a "
				"dotfile or nowhere; not served\n", ld->path);
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
		fprintf(stderr, "ringcast: static dir %s: %s\n", ld->path, strerror(errno));
		return -1;
	}
	while (!err && (e = readdir(dir))) {
		size_t name_len = strlen(e->d_name);

		/* dotfiles (.git, .env, editor swap files) are never served */
		if (e->d_name[0] == '.')
			continue;
		if (len + 1 + name_len >= sizeof(ld->path)) {
			fprintf(stderr, "ringcast: static file %s/%s: path too long\n", ld->path,
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
		fprintf(stderr, "ringcast: static dir %s: %s\n", dir, strerror(errno));
		return -1;
	}
	ld.root_len = strlen(ld.root);
	if (ld.root_len == 1) {
		fprintf(stderr, "ringcast: static dir %s is /: refusing to serve the whole file system\n",
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
		buf_free_shared(site->files[i].get_response);
		buf_free_shared(site->files[i].head_response);
	}
	free(site->files);
	*site = (struct static_site){ 0 };
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
