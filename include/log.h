/* log.h: one log line per event on stderr, each with a timestamp (RFC 3339,
 * UTC, milliseconds) and a level, as text or as one JSON object per line
 * (--log-format json). Every line is written with one write(2), so lines
 * from different threads never interleave. */
#ifndef RINGCAST_LOG_H
#define RINGCAST_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

enum log_format {
	LOG_TEXT, /* 2026-12-07T02:40:01.123Z info listening on ... key=value */
	LOG_JSON, /* {"ts":"2026-12-07T02:40:01.123Z","level":"info","msg":"...","key":value} */
};

/* Set once at start-up, before any other thread runs: every thread then
 * only reads them. */
void log_set_level(enum log_level level);
void log_set_format(enum log_format format);

/* Would a line at this level be written? For callers whose fields cost
 * something to gather (a peer's address). */
bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A structured field: a string (NULL: left out) or a number. Text lines
 * show them as key=value after the message, JSON lines as members. */
struct log_field {
	const char *key;
	const char *str;
	int64_t num;
	bool is_num;
};

#define LOG_STR(k, v) ((struct log_field){ .key = (k), .str = (v) })
#define LOG_NUM(k, v) ((struct log_field){ .key = (k), .num = (int64_t)(v), .is_num = true })

void log_fields(enum log_level level, const char *msg, const struct log_field *fields, size_t count);

/* log_kv(LOG_DEBUG, "http error", LOG_NUM("status", 404), LOG_STR("path", p)) */
#define log_kv(level, msg, ...)                                                                    \
	log_fields(level, msg, (const struct log_field[]){ __VA_ARGS__ },                          \
		   sizeof((const struct log_field[]){ __VA_ARGS__ }) / sizeof(struct log_field))

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
