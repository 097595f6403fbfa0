/* test_static_files.c: loading the static directory into memory and looking
 * files up by URL path.
 *
 * The group setup builds a directory with everything the loader must serve
 * and everything it must not (dotfiles, links out of it, a FIFO), loads it
 * once, and each case checks one rule against that site. */
#define _XOPEN_SOURCE 700
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "buf.h"
#include "http.h"
#include "static_files.h"

static const char index_html[] = "<!doctype html>\n<title>ringcast</title>\n<script src=app.js></script>\n";
static const char app_js[] = "const ws = new WebSocket(`ws://${location.host}/ws`);\n";
static const char sub_index_html[] = "<!doctype html>\n<p>sub</p>\n";
static const char file_css[] = "body { margin: 0 }\n";
static const char logo_png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
static const char data_bin[] = "\x01\x02\x03";

/* Every file the site must hold, in sorted order, and what it serves. */
static const struct {
	const char *path;
	const char *body;
	size_t len;
	const char *type;
} served[] = {
	{ "/LOGO.PNG", logo_png, sizeof(logo_png) - 1, "image/png" },
	{ "/alias.js", app_js, sizeof(app_js) - 1, "text/javascript; charset=utf-8" },
	{ "/app.js", app_js, sizeof(app_js) - 1, "text/javascript; charset=utf-8" },
	{ "/data.bin", data_bin, sizeof(data_bin) - 1, "application/octet-stream" },
	{ "/empty.txt", "", 0, "text/plain; charset=utf-8" },
	{ "/index.html", index_html, sizeof(index_html) - 1, "text/html; charset=utf-8" },
	{ "/sub/dir/file.css", file_css, sizeof(file_css) - 1, "text/css; charset=utf-8" },
	{ "/sub/index.html", sub_index_html, sizeof(sub_index_html) - 1, "text/html; charset=utf-8" },
};

struct fixture {
	char tmp[64];        /* holds site/, site-other/ and outside/ */
	char dir[96];        /* the static directory */
	struct static_site site;
};

static void write_file(const char *dir, const char *name, const char *data, size_t len)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void make_dir(const char *dir, const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(mkdir(path, 0755), 0);
}

static void make_link(const char *dir, const char *name, const char *target)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(symlink(target, path), 0);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void remove_tree(const char *dir)
{
	assert_int_equal(nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char fifo[160];

	assert_non_null(fx);
	strcpy(fx->tmp, "/tmp/ringcast-static-XXXXXX");
	assert_non_null(mkdtemp(fx->tmp));
	make_dir(fx->tmp, "outside");
	write_file(fx->tmp, "outside/secret.txt", "secret\n", 7);
	/* shares "site" as a prefix: a link into it still leaves the site */
	make_dir(fx->tmp, "site-other");
	write_file(fx->tmp, "site-other/secret.txt", "secret\n", 7);
	make_dir(fx->tmp, "site");
	snprintf(fx->dir, sizeof(fx->dir), "%s/site", fx->tmp);

	write_file(fx->dir, "index.html", index_html, sizeof(index_html) - 1);
	write_file(fx->dir, "app.js", app_js, sizeof(app_js) - 1);
	write_file(fx->dir, "LOGO.PNG", logo_png, sizeof(logo_png) - 1);
	write_file(fx->dir, "empty.txt", "", 0);
	write_file(fx->dir, "data.bin", data_bin, sizeof(data_bin) - 1);
	make_dir(fx->dir, "sub");
	write_file(fx->dir, "sub/index.html", sub_index_html, sizeof(sub_index_html) - 1);
	make_dir(fx->dir, "sub/dir");
	write_file(fx->dir, "sub/dir/file.css", file_css, sizeof(file_css) - 1);

	write_file(fx->dir, ".env", "PASSWORD=x\n", 11);
	make_dir(fx->dir, ".git");
	write_file(fx->dir, ".git/config", "[core]\n", 7);
	write_file(fx->dir, "sub/.hidden.js", "x\n", 2);
	make_link(fx->dir, "passwd", "/etc/passwd");
	make_link(fx->dir, "up.txt", "../outside/secret.txt");
	make_link(fx->dir, "sibling.txt", "../site-other/secret.txt");
	make_link(fx->dir, "alias.js", "app.js");
	make_link(fx->dir, "secret-link", ".env");
	make_link(fx->dir, "git-config", ".git/config");
	make_link(fx->dir, "dirlink", "sub");
	make_link(fx->dir, "dangling", "nowhere");
	snprintf(fifo, sizeof(fifo), "%s/pipe", fx->dir);
	assert_int_equal(mkfifo(fifo, 0644), 0);

	assert_int_equal(static_site_load(&fx->site, fx->dir), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	static_site_free(&fx->site);
	remove_tree(fx->tmp);
	free(fx);
	return 0;
}

static const struct static_site *site_of(void **state)
{
	return &((struct fixture *)*state)->site;
}

static void assert_absent(void **state, const char *path)
{
	if (static_site_find(site_of(state), path))
		fail_msg("%s was served", path);
}

static const char *found_path(void **state, const char *path)
{
	const struct static_file *f = static_site_find(site_of(state), path);

	if (!f)
		fail_msg("%s was not found", path);
	return f->path;
}

/* ---- what is loaded ---- */

static void site_holds_exactly_the_regular_files_inside(void **state)
{
	const struct static_site *site = site_of(state);

	assert_int_equal(site->count, sizeof(served) / sizeof(served[0]));
	for (size_t i = 0; i < site->count; i++)
		assert_string_equal(site->files[i].path, served[i].path);
}

static void dotfiles_are_not_loaded(void **state)
{
	assert_absent(state, "/.env");
	assert_absent(state, "/.git/config");
	assert_absent(state, "/sub/.hidden.js");
}

static void symlinks_leaving_the_dir_are_not_loaded(void **state)
{
	assert_absent(state, "/passwd");
	assert_absent(state, "/up.txt");
	assert_absent(state, "/sibling.txt");
}

static void symlink_to_a_file_inside_is_loaded(void **state)
{
	assert_string_equal(found_path(state, "/alias.js"), "/alias.js");
}

static void symlinks_to_dotfiles_are_not_loaded(void **state)
{
	assert_absent(state, "/secret-link");
	assert_absent(state, "/git-config");
}

static void symlinked_directories_are_not_followed(void **state)
{
	assert_absent(state, "/dirlink/index.html");
	assert_absent(state, "/dirlink/");
	assert_absent(state, "/dirlink");
}

static void dangling_links_and_fifos_are_skipped(void **state)
{
	assert_absent(state, "/dangling");
	assert_absent(state, "/pipe");
}

/* ---- lookups ---- */

static void root_is_index_html(void **state)
{
	assert_string_equal(found_path(state, "/"), "/index.html");
	assert_string_equal(found_path(state, "/index.html"), "/index.html");
}

static void directory_path_with_slash_is_its_index(void **state)
{
	assert_string_equal(found_path(state, "/sub/"), "/sub/index.html");
	assert_absent(state, "/sub/dir/");
}

static void directory_path_without_slash_is_absent(void **state)
{
	assert_absent(state, "/sub");
	assert_absent(state, "/sub/dir");
}

static void lookups_are_exact(void **state)
{
	assert_string_equal(found_path(state, "/sub/dir/file.css"), "/sub/dir/file.css");
	assert_absent(state, "/app");
	assert_absent(state, "/app.js/");
	assert_absent(state, "/APP.JS");
	assert_absent(state, "/app.js?v=1");
	assert_absent(state, "app.js");
	assert_absent(state, "");
	assert_absent(state, "/index.htmlx");
}

/* Paths are matched in memory, never handed to the file system, so an empty
 * segment names nothing rather than escaping. */
static void double_slash_names_nothing(void **state)
{
	assert_absent(state, "//etc/passwd");
	assert_absent(state, "//index.html");
	assert_absent(state, "/sub//index.html");
}

/* ---- rendered responses ---- */

/* The value of header name in head, which must hold it exactly once. */
static const char *header_value(const char *head, const char *name, char *out, size_t cap)
{
	char line[64];
	const char *p, *end;

	snprintf(line, sizeof(line), "\r\n%s: ", name);
	p = strstr(head, line);
	if (!p)
		fail_msg("no %s header in\n%s", name, head);
	assert_null(strstr(p + 1, line));
	p += strlen(line);
	end = strstr(p, "\r\n");
	assert_true((size_t)(end - p) < cap);
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	return out;
}

static void get_response_is_a_200_with_the_exact_body(void **state)
{
	for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++) {
		const struct static_file *f = static_site_find(site_of(state), served[i].path);
		char head[1024], value[128], length[32];
		const char *blank;
		size_t head_len;

		assert_non_null(f);
		assert_string_equal(f->content_type, served[i].type);
		assert_true(f->plain.get_response->len < sizeof(head) + served[i].len);
		assert_true(f->plain.get_response->len >= served[i].len);
		head_len = f->plain.get_response->len - served[i].len;
		memcpy(head, f->plain.get_response->data, head_len);
		head[head_len] = '\0';

		assert_memory_equal(head, "HTTP/1.1 200 OK\r\n", 17);
		blank = strstr(head, "\r\n\r\n");
		assert_non_null(blank);
		assert_int_equal(blank + 4 - head, head_len);
		assert_memory_equal(f->plain.get_response->data + head_len, served[i].body, served[i].len);

		snprintf(length, sizeof(length), "%zu", served[i].len);
		assert_string_equal(header_value(head, "Content-Length", value, sizeof(value)), length);
		assert_string_equal(header_value(head, "Content-Type", value, sizeof(value)),
				    served[i].type);
		assert_string_equal(header_value(head, "Cache-Control", value, sizeof(value)),
				    "no-cache");
		assert_non_null(strstr(head, HTTP_COMMON_HEADERS));
		assert_null(strstr(head, "Connection: close"));
	}
}

static void head_response_is_the_get_head_alone(void **state)
{
	for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++) {
		const struct static_file *f = static_site_find(site_of(state), served[i].path);

		assert_non_null(f);
		assert_int_equal(f->plain.head_response->len + served[i].len, f->plain.get_response->len);
		assert_memory_equal(f->plain.head_response->data, f->plain.get_response->data,
				    f->plain.head_response->len);
	}
}

/* ---- content types ---- */

static void content_type_follows_the_extension(void **state)
{
	(void)state;
	assert_string_equal(static_content_type("index.html"), "text/html; charset=utf-8");
	assert_string_equal(static_content_type("app.js"), "text/javascript; charset=utf-8");
	assert_string_equal(static_content_type("style.css"), "text/css; charset=utf-8");
	assert_string_equal(static_content_type("logo.svg"), "image/svg+xml");
	assert_string_equal(static_content_type("logo.png"), "image/png");
	assert_string_equal(static_content_type("favicon.ico"), "image/x-icon");
	assert_string_equal(static_content_type("manifest.json"), "application/json");
	assert_string_equal(static_content_type("robots.txt"), "text/plain; charset=utf-8");
}

static void content_type_ignores_case(void **state)
{
	(void)state;
	assert_string_equal(static_content_type("/INDEX.HTML"), "text/html; charset=utf-8");
	assert_string_equal(static_content_type("/a/Logo.Png"), "image/png");
}

static void content_type_is_octet_stream_otherwise(void **state)
{
	(void)state;
	assert_string_equal(static_content_type("archive.tar.gz"), "application/octet-stream");
	assert_string_equal(static_content_type("page.html.bak"), "application/octet-stream");
	assert_string_equal(static_content_type("README"), "application/octet-stream");
	assert_string_equal(static_content_type("/a.html/README"), "application/octet-stream");
	assert_string_equal(static_content_type("/.html"), "application/octet-stream");
	assert_string_equal(static_content_type("x.htm"), "application/octet-stream");
	assert_string_equal(static_content_type("x.html5"), "application/octet-stream");
	assert_string_equal(static_content_type("x."), "application/octet-stream");
}

/* ---- loading errors and freeing ---- */

static void load_fails_for_a_missing_dir(void **state)
{
	struct static_site site;
	char path[128];

	snprintf(path, sizeof(path), "%s/missing", ((struct fixture *)*state)->tmp);
	assert_int_equal(static_site_load(&site, path), -1);
	assert_int_equal(site.count, 0);
	assert_null(site.files);
}

static void load_fails_for_a_file(void **state)
{
	struct static_site site;
	char path[128];

	snprintf(path, sizeof(path), "%s/index.html", ((struct fixture *)*state)->dir);
	assert_int_equal(static_site_load(&site, path), -1);
	assert_int_equal(site.count, 0);
}

static void load_refuses_the_root_directory(void **state)
{
	struct static_site site;

	(void)state;
	assert_int_equal(static_site_load(&site, "/"), -1);
	assert_int_equal(site.count, 0);
}

static void empty_dir_loads_no_files(void **state)
{
	struct static_site site;
	char path[128];

	snprintf(path, sizeof(path), "%s/outside/empty", ((struct fixture *)*state)->tmp);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(static_site_load(&site, path), 0);
	assert_int_equal(site.count, 0);
	assert_null(static_site_find(&site, "/"));
	static_site_free(&site);
}

static void free_leaves_an_empty_site(void **state)
{
	struct static_site site;

	assert_int_equal(static_site_load(&site, ((struct fixture *)*state)->dir), 0);
	assert_int_equal(site.count, sizeof(served) / sizeof(served[0]));
	static_site_free(&site);
	assert_int_equal(site.count, 0);
	assert_null(site.files);
	assert_null(static_site_find(&site, "/index.html"));
}

/* ---- validators, 304 and gzip ---- */

static void head_of(const struct buf *b, char *out, size_t cap)
{
	const char *end = memmem(b->data, b->len, "\r\n\r\n", 4);

	assert_non_null(end);
	assert_true((size_t)(end + 4 - (const char *)b->data) < cap);
	memcpy(out, b->data, (size_t)(end + 4 - (const char *)b->data));
	out[end + 4 - (const char *)b->data] = '\0';
}

static void etag_is_quoted_and_follows_the_bytes(void **state)
{
	const struct static_file *app = static_site_find(site_of(state), "/app.js");
	const struct static_file *alias = static_site_find(site_of(state), "/alias.js");
	const struct static_file *css = static_site_find(site_of(state), "/sub/dir/file.css");
	char head[1024], value[64];

	assert_true(app && alias && css);
	assert_int_equal(app->plain.etag[0], '"');
	assert_int_equal(app->plain.etag[strlen(app->plain.etag) - 1], '"');
	assert_string_equal(app->plain.etag, alias->plain.etag); /* same bytes */
	assert_string_not_equal(app->plain.etag, css->plain.etag);
	head_of(app->plain.get_response, head, sizeof(head));
	assert_string_equal(header_value(head, "ETag", value, sizeof(value)), app->plain.etag);
}

static void not_modified_is_a_304_with_the_validators_and_no_body(void **state)
{
	for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++) {
		const struct static_file *f = static_site_find(site_of(state), served[i].path);
		char head[1024], value[64];

		assert_non_null(f);
		head_of(f->plain.not_modified, head, sizeof(head));
		assert_int_equal(strlen(head), f->plain.not_modified->len); /* head only */
		assert_memory_equal(head, "HTTP/1.1 304 Not Modified\r\n", 27);
		assert_string_equal(header_value(head, "ETag", value, sizeof(value)), f->plain.etag);
		assert_string_equal(header_value(head, "Cache-Control", value, sizeof(value)),
				    "no-cache");
		assert_null(strstr(head, "\r\nContent-Type:"));
	}
}

static void small_files_get_no_gzip_copy(void **state)
{
	for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++) {
		const struct static_file *f = static_site_find(site_of(state), served[i].path);
		char head[1024];

		assert_non_null(f);
		assert_null(f->gzip.get_response);
		head_of(f->plain.get_response, head, sizeof(head));
		assert_null(strstr(head, "Vary:"));
	}
}

/* A site of its own under the fixture's tmp: one compressible file and
 * one that gzip cannot shrink. */
static void load_gzip_site(void **state, struct static_site *site, char *text, size_t text_len,
			   uint8_t *noise, size_t noise_len)
{
	char path[128];

	for (size_t i = 0; i < text_len; i++)
		text[i] = "ringcast chat line\n"[i % 19];
	for (size_t i = 0; i < noise_len; i++)
		noise[i] = (uint8_t)(rand() >> 7);
	snprintf(path, sizeof(path), "%s/outside/gz", ((struct fixture *)*state)->tmp);
	mkdir(path, 0755);
	write_file(path, "page.js", text, text_len);
	write_file(path, "noise.png", (const char *)noise, noise_len);
	assert_int_equal(static_site_load(site, path), 0);
}

static void compressible_file_gets_a_gzip_copy_of_the_same_bytes(void **state)
{
	static char text[4096], out[8192];
	static uint8_t noise[4096];
	struct static_site site;
	char head[1024], value[64], length[32];

	load_gzip_site(state, &site, text, sizeof(text), noise, sizeof(noise));
	const struct static_file *f = static_site_find(&site, "/page.js");
	assert_non_null(f);
	assert_non_null(f->gzip.get_response);
	head_of(f->gzip.get_response, head, sizeof(head));
	assert_string_equal(header_value(head, "Content-Encoding", value, sizeof(value)), "gzip");
	assert_string_equal(header_value(head, "Vary", value, sizeof(value)), "Accept-Encoding");
	assert_string_equal(header_value(head, "ETag", value, sizeof(value)), f->gzip.etag);
	assert_string_not_equal(f->gzip.etag, f->plain.etag);
	size_t head_len = strlen(head), body_len = f->gzip.get_response->len - head_len;
	snprintf(length, sizeof(length), "%zu", body_len);
	assert_string_equal(header_value(head, "Content-Length", value, sizeof(value)), length);
	assert_true(body_len < sizeof(text) / 4);

	z_stream z = { 0 };
	assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
	z.next_in = f->gzip.get_response->data + head_len;
	z.avail_in = (uInt)body_len;
	z.next_out = (Bytef *)out;
	z.avail_out = sizeof(out);
	assert_int_equal(inflate(&z, Z_FINISH), Z_STREAM_END);
	assert_int_equal(z.total_out, sizeof(text));
	assert_memory_equal(out, text, sizeof(text));
	inflateEnd(&z);

	/* the plain copy says it varies too, or a cache would hand it to all */
	head_of(f->plain.get_response, head, sizeof(head));
	assert_string_equal(header_value(head, "Vary", value, sizeof(value)), "Accept-Encoding");
	assert_null(strstr(head, "Content-Encoding"));
	head_of(f->gzip.not_modified, head, sizeof(head));
	assert_string_equal(header_value(head, "ETag", value, sizeof(value)), f->gzip.etag);

	const struct static_file *png = static_site_find(&site, "/noise.png");
	assert_non_null(png);
	assert_null(png->gzip.get_response);
	static_site_free(&site);
}

static void copy_owns_equal_bufs_of_its_own(void **state)
{
	static char text[4096];
	static uint8_t noise[512];
	struct static_site site, copy;

	load_gzip_site(state, &site, text, sizeof(text), noise, sizeof(noise));
	assert_int_equal(static_site_copy(&copy, &site), 0);
	assert_int_equal(copy.count, site.count);
	for (size_t i = 0; i < site.count; i++) {
		const struct static_file *a = &site.files[i], *b = &copy.files[i];
		assert_string_equal(a->path, b->path);
		assert_string_equal(a->plain.etag, b->plain.etag);
		assert_ptr_not_equal(a->plain.get_response, b->plain.get_response);
		assert_int_equal(b->plain.get_response->refs, 1);
		assert_int_equal(a->plain.get_response->len, b->plain.get_response->len);
		assert_memory_equal(a->plain.get_response->data, b->plain.get_response->data,
				    a->plain.get_response->len);
		assert_int_equal(a->gzip.get_response == NULL, b->gzip.get_response == NULL);
	}
	/* a reference taken from the copy outlives both sites */
	struct buf *held = buf_ref(static_site_find(&copy, "/page.js")->gzip.get_response);
	static_site_free(&site);
	static_site_free(&copy);
	assert_int_equal(held->refs, 1);
	buf_unref(held);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(site_holds_exactly_the_regular_files_inside),
		cmocka_unit_test(dotfiles_are_not_loaded),
		cmocka_unit_test(symlinks_leaving_the_dir_are_not_loaded),
		cmocka_unit_test(symlink_to_a_file_inside_is_loaded),
		cmocka_unit_test(symlinks_to_dotfiles_are_not_loaded),
		cmocka_unit_test(symlinked_directories_are_not_followed),
		cmocka_unit_test(dangling_links_and_fifos_are_skipped),
		cmocka_unit_test(root_is_index_html),
		cmocka_unit_test(directory_path_with_slash_is_its_index),
		cmocka_unit_test(directory_path_without_slash_is_absent),
		cmocka_unit_test(lookups_are_exact),
		cmocka_unit_test(double_slash_names_nothing),
		cmocka_unit_test(get_response_is_a_200_with_the_exact_body),
		cmocka_unit_test(head_response_is_the_get_head_alone),
		cmocka_unit_test(content_type_follows_the_extension),
		cmocka_unit_test(content_type_ignores_case),
		cmocka_unit_test(content_type_is_octet_stream_otherwise),
		cmocka_unit_test(load_fails_for_a_missing_dir),
		cmocka_unit_test(load_fails_for_a_file),
		cmocka_unit_test(load_refuses_the_root_directory),
		cmocka_unit_test(empty_dir_loads_no_files),
		cmocka_unit_test(free_leaves_an_empty_site),
		cmocka_unit_test(etag_is_quoted_and_follows_the_bytes),
		cmocka_unit_test(not_modified_is_a_304_with_the_validators_and_no_body),
		cmocka_unit_test(small_files_get_no_gzip_copy),
		cmocka_unit_test(compressible_file_gets_a_gzip_copy_of_the_same_bytes),
		cmocka_unit_test(copy_owns_equal_bufs_of_its_own),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
