/* log.c: log lines on stderr, as text or JSON.
 *
 * A line is built whole in a buffer on the stack and written with one
 * write(2): lines from the edges, the store, the sequencer and the cluster
 * never interleave, and a reader of stderr (a test, a collector) never sees
 * half a line. Whatever a line carries from outside (a request path, a
 * reason) is escaped, so a client cannot forge a line with a newline, and
 * a JSON line stays one valid object even when it is cut short. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Longer lines are cut; a request head's 2 KiB target still fits. */
#define LINE_BYTES 4096
/* Kept free for what ends a line whatever was cut: `"}` and the newline. */
#define LINE_TAIL 4

/* The one setting every thread reads. It lives at file level, not in a
 * context passed around, because every layer logs, on every thread; it is
 * written once at start-up, before any other thread exists, and only read
 * after. */
static struct {
	enum log_level level;
	enum log_format format;
} settings = { LOG_INFO, LOG_TEXT };

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_set_level(enum log_level level)
{
	settings.level = level;
}

void log_set_format(enum log_format format)
{
	settings.format = format;
}

bool log_enabled(enum log_level level)
{
	return level <= settings.level;
}

struct line {
	size_t len;
	bool cut; /* something did not fit: nothing more is added */
	char b[LINE_BYTES];
};

/* All of s or none of it, so an escape or a UTF-8 sequence is never split. */
static void put(struct line *l, const char *s, size_t n)
{
	if (l->cut || l->len + n > sizeof(l->b) - LINE_TAIL) {
		l->cut = true;
		return;
	}
	memcpy(l->b + l->len, s, n);
	l->len += n;
}

static void puts_(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

/* Bytes in the UTF-8 sequence starting at s (at most n left), or 0 when it
 * is not one: JSON must be valid UTF-8, and a path may be any bytes. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len = s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3
						      : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
	if (len == 0 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/* s escaped: for JSON, as a string's contents; for text, control bytes
 * (and, quoted, the quote and backslash) as C-style escapes. */
static void put_escaped(struct line *l, const char *str, bool json, bool quoted)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str);
	for (size_t i = 0; i < n && !l->cut;) {
		unsigned char ch = s[i];
		char esc[8];
		if (ch == '"' || ch == '\\') {
			if (json || quoted) {
				esc[0] = '\\';
				esc[1] = (char)ch;
				put(l, esc, 2);
			} else {
				put(l, (const char *)s + i, 1);
			}
			i++;
		} else if (ch < 0x20 || ch == 0x7f) {
			const char *named = ch == '\n' ? "\\n" : ch == '\t' ? "\\t" : ch == '\r' ? "\\r" : NULL;
			if (named)
				puts_(l, named);
			else {
				snprintf(esc, sizeof(esc), json ? "\\u%04x" : "\\x%02x", ch);
				puts_(l, esc);
			}
			i++;
		} else if (ch < 0x80) {
			put(l, (const char *)s + i, 1);
			i++;
		} else {
			size_t seq = utf8_seq(s + i, n - i);
			if (seq) {
				put(l, (const char *)s + i, seq);
				i += seq;
			} else {
				if (json)
					puts_(l, "\\ufffd");
				else {
					snprintf(esc, sizeof(esc), "\\x%02x", ch);
					puts_(l, esc);
				}
				i++;
			}
		}
	}
}

/* A text value goes in quotes when it would not read as one word. */
static bool needs_quotes(const char *s)
{
	if (!*s)
		return true;
	for (; *s; s++)
		if (*s == ' ' || *s == '"' || *s == '=' || (unsigned char)*s < 0x20 || *s == '\\')
			return true;
	return false;
}

static void put_timestamp(struct line *l)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char text[40];
	int n = snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	put(l, text, (size_t)n);
}

static void put_number(struct line *l, int64_t v)
{
	char text[24];
	int n = snprintf(text, sizeof(text), "%lld", (long long)v);
	put(l, text, (size_t)n);
}

static void write_line(enum log_level level, const char *msg, const struct log_field *fields, size_t count)
{
	struct line l;
	l.len = 0;
	l.cut = false;
	bool json = settings.format == LOG_JSON;
	if (json) {
		puts_(&l, "{\"ts\":\"");
		put_timestamp(&l);
		puts_(&l, "\",\"level\":\"");
		puts_(&l, level_names[level]);
		puts_(&l, "\",\"msg\":\"");
		put_escaped(&l, msg, true, false);
		l.b[l.len++] = '"'; /* room kept by LINE_TAIL, even when msg was cut */
		for (size_t i = 0; i < count; i++) {
			if (!fields[i].is_num && !fields[i].str)
				continue;
			/* a member is added whole or not at all: the object stays valid */
			size_t before = l.len;
			puts_(&l, ",\"");
			puts_(&l, fields[i].key);
			puts_(&l, "\":");
			if (fields[i].is_num) {
				put_number(&l, fields[i].num);
			} else {
				puts_(&l, "\"");
				put_escaped(&l, fields[i].str, true, false);
				puts_(&l, "\"");
			}
			if (l.cut) {
				l.len = before;
				break;
			}
		}
		/* LINE_TAIL kept room for these, whatever was cut */
		l.b[l.len++] = '}';
	} else {
		put_timestamp(&l);
		puts_(&l, " ");
		puts_(&l, level_names[level]);
		puts_(&l, " ");
		put_escaped(&l, msg, false, false);
		for (size_t i = 0; i < count; i++) {
			if (!fields[i].is_num && !fields[i].str)
				continue;
			puts_(&l, " ");
			puts_(&l, fields[i].key);
			puts_(&l, "=");
			if (fields[i].is_num) {
				put_number(&l, fields[i].num);
			} else if (needs_quotes(fields[i].str)) {
				puts_(&l, "\"");
				put_escaped(&l, fields[i].str, false, true);
				puts_(&l, "\"");
			} else {
				put_escaped(&l, fields[i].str, false, false);
			}
		}
	}
	l.b[l.len++] = '\n';
	ssize_t ignored = write(STDERR_FILENO, l.b, l.len);
	(void)ignored;
}

void log_fields(enum log_level level, const char *msg, const struct log_field *fields, size_t count)
{
	if (!log_enabled(level))
		return;
	write_line(level, msg, fields, count);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	char msg[LINE_BYTES / 2];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	write_line(level, msg, NULL, 0);
}
