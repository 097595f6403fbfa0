/* test_redis_link.c: a Redis link on a real ring against a real
 * redis-server, and the redis:// URL parser.
 *
 * Each case starts its own redis-server on a free loopback port, in a
 * fresh directory, and waits for its "Ready to accept connections" line;
 * teardown kills it whatever happened. The loop runs on this thread until
 * the event a step waits for has happened or its deadline has passed
 * (run_until): nothing sleeps for a fixed time. Redis is killed, restarted
 * and stopped (SIGSTOP) under the link to see it fail and come back. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ftw.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "redis_link.h"

#define TICK_MS 10
#define MAX_LINKS 4
#define READY_DEADLINE_MS 5000

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- a redis-server of our own -------------------------------------------- */

static struct {
	pid_t pid;
	int log_fd;             /* its stdout, read until it is ready, then left open */
	uint16_t port;
	char dir[64];
	char password[32];      /* --requirepass when set */
} redis = { .pid = -1, .log_fd = -1 };

/* A port that was free a moment ago: bound to 0, read, released. */
static uint16_t free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		close(fd);
		return 0;
	}
	close(fd);
	return ntohs(a.sin_port);
}

/* Its output until the line saying it accepts connections, or EOF (it
 * exited: the port was taken), or the deadline. */
static bool wait_ready(int fd)
{
	char seen[8192];
	size_t len = 0;
	uint64_t deadline = now_ms() + READY_DEADLINE_MS;
	while (now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, (int)(deadline - now_ms())) <= 0)
			continue;
		if (len == sizeof(seen) - 1)
			len = 0; /* long logs: only the latest part matters */
		ssize_t n = read(fd, seen + len, sizeof(seen) - 1 - len);
		if (n <= 0)
			return false;
		len += (size_t)n;
		seen[len] = '\0';
		if (strstr(seen, "Ready to accept connections"))
			return true;
	}
	return false;
}

static bool redis_start_once(void)
{
	int out[2];
	if (pipe2(out, O_CLOEXEC) < 0)
		return false;
	char port[8];
	snprintf(port, sizeof(port), "%u", redis.port);
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* a crashed test takes its Redis along */
		dup2(out[1], STDOUT_FILENO);
		const char *argv[16] = { "redis-server", "--port", port, "--save", "", "--appendonly",
					 "no", "--bind", "127.0.0.1", "--dir", redis.dir };
		int argc = 11;
		if (redis.password[0]) {
			argv[argc++] = "--requirepass";
			argv[argc++] = redis.password;
		}
		argv[argc] = NULL;
		execvp("redis-server", (char **)argv);
		_exit(127);
	}
	close(out[1]);
	if (pid < 0) {
		close(out[0]);
		return false;
	}
	redis.pid = pid;
	redis.log_fd = out[0];
	return wait_ready(out[0]);
}

static void redis_kill(void)
{
	if (redis.pid > 0) {
		kill(redis.pid, SIGKILL);
		waitpid(redis.pid, NULL, 0);
	}
	if (redis.log_fd >= 0)
		close(redis.log_fd);
	redis.pid = -1;
	redis.log_fd = -1;
}

/* On the port it had, or (first start) on a free one: another process may
 * take a free port between our look and Redis's bind, so try a few. */
static bool redis_start(void)
{
	bool fixed = redis.port != 0;
	for (int tries = 0; tries < (fixed ? 1 : 5); tries++) {
		if (!fixed)
			redis.port = free_port();
		if (redis_start_once())
			return true;
		redis_kill();
	}
	return false;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

/* Redis's directory and whatever it left there (appendonlydir/ ...). */
static void remove_dir(const char *dir)
{
	nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* ---- the loop and the links on it ----------------------------------------- */

static struct loop *loop;
static struct redis_link *links[MAX_LINKS];
static struct redis_address addresses[MAX_LINKS];
static bool (*until)(void);
static uint64_t deadline;
static void (*tick_hook)(void);

static void on_connect(void *c, uint32_t slot, uint32_t gen, int res)
{
	(void)c;
	if (slot < MAX_LINKS && links[slot])
		redis_link_on_connect(links[slot], gen, res);
}

static void on_recv(void *c, uint32_t slot, uint32_t gen, int res, uint8_t *data, bool more)
{
	(void)c;
	if (slot < MAX_LINKS && links[slot])
		redis_link_on_recv(links[slot], gen, res, data, more);
}

static void on_send(void *c, uint32_t slot, uint32_t gen, int res, bool held)
{
	(void)c;
	(void)held;
	if (slot < MAX_LINKS && links[slot])
		redis_link_on_send(links[slot], gen, res);
}

static void on_shutdown(void *c, uint32_t slot, uint32_t gen, int res)
{
	(void)c;
	if (slot < MAX_LINKS && links[slot])
		redis_link_on_shutdown(links[slot], gen, res);
}

static void on_tick(void *c)
{
	(void)c;
	uint64_t now = now_ms();
	for (int i = 0; i < MAX_LINKS; i++)
		if (links[i])
			redis_link_tick(links[i], now);
	if (tick_hook)
		tick_hook();
	if (now >= deadline || (until && until()))
		loop_stop(loop);
}

/* What the server's owner does before the loop waits: flush every link. */
static bool before_wait(void *c)
{
	(void)c;
	for (int i = 0; i < MAX_LINKS; i++)
		if (links[i])
			redis_link_flush(links[i]);
	if (until && until()) {
		loop_stop(loop);
		return true; /* do not block: the loop ends after this pass */
	}
	return false;
}

static void ignore_accept(void *c, int res, bool more) { (void)c; (void)res; (void)more; }
static void ignore_released(void *c, uint32_t s, uint32_t g) { (void)c; (void)s; (void)g; }
static void ignore_signal(void *c, int signo) { (void)c; (void)signo; }

/* Run the loop until cond() holds or ms have passed; cond()'s answer. */
static bool run_until(bool (*cond)(void), unsigned ms)
{
	until = cond;
	deadline = now_ms() + ms;
	if (!cond())
		assert_int_equal(loop_run(loop), 0);
	until = NULL;
	return cond();
}

/* ---- what the callbacks saw ------------------------------------------------ */

#define MAX_PUSHES 8

struct push {
	char kind[16];
	char channel[16];
	char payload[32];
	size_t payload_len;
	long long count;
};

struct seen {
	unsigned ups, downs;
	unsigned event_at_down;  /* events counted when on_down came */
	void (*on_up_hook)(struct redis_link *link);
	unsigned pushes;
	struct push push[MAX_PUSHES];
};

static struct seen seen[MAX_LINKS];
static unsigned events; /* replies and downs, in the order they came */

static void seen_up(void *ctx, struct redis_link *link)
{
	struct seen *s = ctx;
	s->ups++;
	if (s->on_up_hook)
		s->on_up_hook(link);
}

static void seen_down(void *ctx, struct redis_link *link)
{
	(void)link;
	struct seen *s = ctx;
	s->downs++;
	s->event_at_down = ++events;
}

static void copy_str(char *dst, size_t dst_len, const redisReply *r)
{
	size_t n = r->len < dst_len - 1 ? r->len : dst_len - 1;
	memcpy(dst, r->str, n);
	dst[n] = '\0';
}

static void seen_push(void *ctx, struct redis_link *link, const redisReply *r)
{
	(void)link;
	struct seen *s = ctx;
	if (s->pushes == MAX_PUSHES)
		return;
	struct push *p = &s->push[s->pushes++];
	memset(p, 0, sizeof(*p));
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
		return; /* kind stays "": the case fails on it */
	copy_str(p->kind, sizeof(p->kind), r->element[0]);
	copy_str(p->channel, sizeof(p->channel), r->element[1]);
	if (r->element[2]->type == REDIS_REPLY_INTEGER) {
		p->count = r->element[2]->integer;
	} else {
		copy_str(p->payload, sizeof(p->payload), r->element[2]);
		p->payload_len = r->element[2]->len;
	}
}

static const struct redis_link_callbacks record = { .on_up = seen_up, .on_down = seen_down,
						    .on_push = seen_push };

/* One reply, kept. */
struct answer {
	unsigned calls;
	unsigned event;    /* its place among events */
	bool null;         /* the link went down first */
	int type;
	long long integer;
	char str[64];
	size_t len;
	bool command_taken; /* a command asked for from the callback was queued */
};

static void keep_answer(void *arg, const redisReply *r)
{
	struct answer *a = arg;
	a->calls++;
	a->event = ++events;
	a->null = !r;
	if (!r)
		return;
	a->type = r->type;
	a->integer = r->integer;
	if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
	    r->type == REDIS_REPLY_ERROR) {
		copy_str(a->str, sizeof(a->str), r);
		a->len = r->len;
	}
}

static struct redis_link_config config(uint32_t slot, bool subscriber)
{
	return (struct redis_link_config){ .address = &addresses[slot], .name = "test link",
					   .subscriber = subscriber, .slot = slot,
					   .reply_timeout_ms = 2000, .backoff_min_ms = 20,
					   .backoff_max_ms = 200 };
}

/* A link at slot to our Redis, with URL options after the port ("/3",
 * or "" for none) and a password prefix ("" or ":pw@"). */
static struct redis_link *open_link_with(uint32_t slot, const char *userinfo, const char *path,
					 struct redis_link_config cfg)
{
	char url[128], err[128];
	snprintf(url, sizeof(url), "redis://%s127.0.0.1:%u%s", userinfo, redis.port, path);
	assert_int_equal(redis_address_parse(url, &addresses[slot], err, sizeof(err)), 0);
	links[slot] = redis_link_new(loop, &cfg, &record, &seen[slot]);
	assert_non_null(links[slot]);
	redis_link_start(links[slot]);
	return links[slot];
}

static struct redis_link *open_link(uint32_t slot, const char *path, bool subscriber)
{
	return open_link_with(slot, "", path, config(slot, subscriber));
}

static bool link0_up(void) { return seen[0].ups >= 1; }
static bool link1_up(void) { return seen[1].ups >= 1; }
static bool both_up(void) { return seen[0].ups >= 1 && seen[1].ups >= 1; }

static bool command(struct redis_link *link, struct answer *a, int argc, ...)
{
	const char *argv[8];
	size_t lens[8];
	va_list ap;
	va_start(ap, argc);
	for (int i = 0; i < argc; i++) {
		argv[i] = va_arg(ap, const char *);
		lens[i] = strlen(argv[i]);
	}
	va_end(ap);
	return redis_link_command(link, argc, argv, lens, a ? keep_answer : NULL, a);
}

static struct answer *awaited;
static bool answered(void) { return awaited->calls > 0; }

/* Send a command and wait for its answer. */
static void ask(struct redis_link *link, struct answer *a, int argc, const char *a0, const char *a1,
		const char *a2)
{
	memset(a, 0, sizeof(*a));
	assert_true(command(link, a, argc, a0, a1, a2));
	awaited = a;
	assert_true(run_until(answered, 3000));
}

/* ---- setup ------------------------------------------------------------------ */

static const struct loop_config small_ring = { .sq_entries = 64, .cq_entries = 256,
					       .buf_count = 16, .buf_size = 4096,
					       .tick_ms = TICK_MS };

static int setup(void **state)
{
	(void)state;
	memset(&seen, 0, sizeof(seen));
	memset(links, 0, sizeof(links));
	events = 0;
	tick_hook = NULL;
	redis.port = 0;
	redis.password[0] = '\0';
	snprintf(redis.dir, sizeof(redis.dir), "/tmp/ringcast-redis-XXXXXX");
	if (!mkdtemp(redis.dir) || !redis_start())
		return -1;
	struct loop_handlers h = { .on_accept = ignore_accept, .on_recv = on_recv, .on_send = on_send,
				   .on_send_released = ignore_released, .on_shutdown = on_shutdown,
				   .on_connect = on_connect, .on_tick = on_tick,
				   .on_signal = ignore_signal, .before_wait = before_wait };
	loop = loop_new(&small_ring, &h, NULL);
	return loop ? 0 : -1;
}

static void release_log(void);

static int teardown(void **state)
{
	(void)state;
	release_log(); /* a case that failed while capturing */
	for (int i = 0; i < MAX_LINKS; i++) {
		redis_link_free(links[i]);
		links[i] = NULL;
	}
	loop_free(loop);
	loop = NULL;
	redis_kill();
	remove_dir(redis.dir);
	log_set_level(LOG_INFO);
	return 0;
}

/* ---- commands and replies ------------------------------------------------- */

static void a_set_is_read_back_by_a_get(void **state)
{
	(void)state;
	struct redis_link *link = open_link(0, "", false);
	assert_true(run_until(link0_up, 3000));
	assert_true(redis_link_up(link));
	struct answer set, get;
	ask(link, &set, 3, "SET", "greeting", "hello");
	assert_int_equal(set.type, REDIS_REPLY_STATUS);
	assert_string_equal(set.str, "OK");
	ask(link, &get, 2, "GET", "greeting", NULL);
	assert_int_equal(get.type, REDIS_REPLY_STRING);
	assert_string_equal(get.str, "hello");
	assert_int_equal(redis_link_stats(link)->connects, 1);
	assert_int_equal(redis_link_stats(link)->commands, 2);
}

#define PIPELINED 1000

static struct {
	unsigned calls;
	unsigned in_order; /* replies whose value was the one expected at their place */
} incr;

static void check_incr(void *arg, const redisReply *r)
{
	unsigned i = (unsigned)(uintptr_t)arg;
	if (r && r->type == REDIS_REPLY_INTEGER && r->integer == (long long)i + 1 && incr.calls == i)
		incr.in_order++;
	incr.calls++;
}

static bool all_incr_answered(void) { return incr.calls == PIPELINED; }

/* A thousand commands queued in one pass go out together, and each reply
 * reaches its own caller, in order. */
static void pipelined_commands_are_answered_in_order(void **state)
{
	(void)state;
	struct redis_link *link = open_link(0, "", false);
	assert_true(run_until(link0_up, 3000));
	memset(&incr, 0, sizeof(incr));
	const char *argv[] = { "INCR", "counter" };
	const size_t lens[] = { 4, 7 };
	for (unsigned i = 0; i < PIPELINED; i++)
		assert_true(redis_link_command(link, 2, argv, lens, check_incr, (void *)(uintptr_t)i));
	assert_true(run_until(all_incr_answered, 5000));
	assert_int_equal(incr.in_order, PIPELINED);
}

/* A command asked for from the previous one's callback, and commands
 * asked for from on_up, go out like any other. */
#define CHAINED 100

static struct answer from_up;

static void next_incr(void *arg, const redisReply *r)
{
	struct redis_link *link = arg;
	check_incr((void *)(uintptr_t)incr.calls, r);
	const char *argv[] = { "INCR", "chain" };
	const size_t lens[] = { 4, 5 };
	if (incr.calls < CHAINED)
		assert_true(redis_link_command(link, 2, argv, lens, next_incr, link));
}

static void start_chain(struct redis_link *link)
{
	assert_true(command(link, &from_up, 3, "SET", "from_up", "1"));
	const char *argv[] = { "INCR", "chain" };
	const size_t lens[] = { 4, 5 };
	assert_true(redis_link_command(link, 2, argv, lens, next_incr, link));
}

static bool chain_done(void) { return incr.calls == CHAINED; }

static void callbacks_may_queue_commands(void **state)
{
	(void)state;
	memset(&incr, 0, sizeof(incr));
	memset(&from_up, 0, sizeof(from_up));
	seen[0].on_up_hook = start_chain;
	open_link(0, "", false);
	assert_true(run_until(chain_done, 5000));
	assert_int_equal(incr.in_order, CHAINED);
	assert_int_equal(from_up.calls, 1);
	assert_string_equal(from_up.str, "OK");
}

static void a_command_before_up_is_refused(void **state)
{
	(void)state;
	struct redis_link_config cfg = config(0, false);
	char err[128], url[64];
	snprintf(url, sizeof(url), "redis://127.0.0.1:%u", redis.port);
	assert_int_equal(redis_address_parse(url, &addresses[0], err, sizeof(err)), 0);
	struct redis_link *link = links[0] = redis_link_new(loop, &cfg, &record, &seen[0]);
	struct answer a = { 0 };
	assert_false(command(link, &a, 1, "PING"));
	redis_link_start(link);
	assert_false(redis_link_up(link));
	assert_false(command(link, &a, 1, "PING")); /* connecting */
	assert_true(run_until(link0_up, 3000));
	assert_int_equal(redis_link_stats(link)->commands, 0);
	assert_int_equal(a.calls, 0);
	ask(link, &a, 1, "PING", NULL, NULL);
	assert_string_equal(a.str, "PONG");
}

/* ---- AUTH and SELECT ------------------------------------------------------ */

static void restart_with_password(const char *password)
{
	redis_kill();
	snprintf(redis.password, sizeof(redis.password), "%s", password);
	assert_true(redis_start());
}

static void the_right_password_comes_up(void **state)
{
	(void)state;
	restart_with_password("s3cret");
	struct redis_link *alone = open_link_with(0, ":s3cret@", "", config(0, false));
	/* Redis 6+: the password of the default user, named */
	struct redis_link *named = open_link_with(1, "default:s3cret@", "", config(1, false));
	assert_true(run_until(both_up, 3000));
	struct answer a;
	ask(alone, &a, 1, "PING", NULL, NULL);
	assert_string_equal(a.str, "PONG");
	ask(named, &a, 1, "PING", NULL, NULL);
	assert_string_equal(a.str, "PONG");
}

/* stderr into a file while a case runs, to read what was logged. */
static int saved_stderr = -1;
static char log_path[96];

static void capture_log(void)
{
	snprintf(log_path, sizeof(log_path), "%s/captured.log", redis.dir);
	int fd = open(log_path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	saved_stderr = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	close(fd);
}

static void release_log(void)
{
	if (saved_stderr < 0)
		return;
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	saved_stderr = -1;
}

static unsigned count_in_log(const char *needle)
{
	static char text[65536];
	FILE *f = fopen(log_path, "r");
	if (!f)
		return 0;
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	unsigned count = 0;
	for (const char *p = text; (p = strstr(p, needle)); p++)
		count++;
	return count;
}

/* Three refused tries, counted in the debug log that quiet retries go to. */
static bool retried_thrice(void) { return count_in_log("still unusable") >= 2; }

/* A refused password: never up, retried in the background, and logged as
 * an error once, not at every retry. */
static void a_wrong_password_never_comes_up_and_is_logged_once(void **state)
{
	(void)state;
	restart_with_password("s3cret");
	log_set_level(LOG_DEBUG);
	capture_log();
	open_link_with(0, ":wrong@", "", config(0, false));
	bool retried = run_until(retried_thrice, 3000);
	release_log();
	assert_true(retried);
	assert_int_equal(seen[0].ups, 0);
	assert_false(redis_link_up(links[0]));
	/* the first refusal said why at error level; the retries, at debug */
	assert_int_equal(count_in_log("cannot use Redis at"), 1);
	assert_int_equal(count_in_log("AUTH refused: WRONGPASS"), count_in_log("still unusable") + 1);
}

/* SELECT 3: what the link writes is in database 3, not in 0. */
static void the_database_in_the_url_is_selected(void **state)
{
	(void)state;
	struct redis_link *db3 = open_link(0, "/3", false);
	struct redis_link *db0 = open_link(1, "", false);
	assert_true(run_until(both_up, 3000));
	struct answer a;
	ask(db3, &a, 3, "SET", "where", "three");
	assert_string_equal(a.str, "OK");
	ask(db0, &a, 2, "GET", "where", NULL);
	assert_int_equal(a.type, REDIS_REPLY_NIL);
	ask(db0, &a, 2, "SELECT", "3", NULL);
	ask(db0, &a, 2, "GET", "where", NULL);
	assert_string_equal(a.str, "three");
}

/* ---- subscriber ------------------------------------------------------------ */

static bool subscribed(void) { return seen[1].pushes >= 1; }
static bool message_in(void) { return seen[1].pushes >= 2; }

/* PINGs Redis has answered, from INFO commandstats, asked every tick. */
static long pings_answered = -1;
static struct answer info;

static void keep_ping_line(void *arg, const redisReply *r)
{
	struct answer *a = arg;
	a->calls++;
	const char *line = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "cmdstat_ping:") : NULL;
	if (line)
		snprintf(a->str, sizeof(a->str), "%.*s", (int)strcspn(line, "\r\n"), line);
}

static void ask_ping_count_hook(void)
{
	if (info.calls) {
		const char *p = strstr(info.str, "calls=");
		pings_answered = p ? atol(p + 6) : -1;
	}
	memset(&info, 0, sizeof(info));
	const char *argv[] = { "INFO", "commandstats" };
	const size_t lens[] = { 4, 12 };
	redis_link_command(links[0], 2, argv, lens, keep_ping_line, &info);
}

/* Two handshakes' PINGs, then the subscriber's keep-alive. */
static bool subscriber_pinged(void) { return pings_answered >= 3; }

/* A subscriber link hands up the subscribe confirmation and messages,
 * binary payloads intact, and swallows the answers to its own keep-alive
 * PING (["pong", ""] once subscribed). */
static void a_subscriber_gets_pushes_and_keeps_its_pongs(void **state)
{
	(void)state;
	struct redis_link *pub = open_link(0, "", false);
	struct redis_link *sub = open_link(1, "", true);
	assert_true(run_until(both_up, 3000));

	struct answer a = { 0 };
	assert_false(command(sub, &a, 2, "SUBSCRIBE", "ch")); /* no callbacks on a subscriber */
	assert_true(command(sub, NULL, 2, "SUBSCRIBE", "ch"));
	assert_true(run_until(subscribed, 3000));
	assert_string_equal(seen[1].push[0].kind, "subscribe");
	assert_string_equal(seen[1].push[0].channel, "ch");
	assert_int_equal(seen[1].push[0].count, 1);

	/* the subscriber, idle for a second, pings */
	pings_answered = -1;
	memset(&info, 0, sizeof(info));
	tick_hook = ask_ping_count_hook;
	assert_true(run_until(subscriber_pinged, 3000));
	tick_hook = NULL;

	static const char payload[] = "a\0b\r\nc\n\0z";
	const size_t payload_len = sizeof(payload) - 1;
	const char *argv[] = { "PUBLISH", "ch", payload };
	const size_t lens[] = { 7, 2, payload_len };
	memset(&a, 0, sizeof(a));
	assert_true(redis_link_command(pub, 3, argv, lens, keep_answer, &a));
	assert_true(run_until(message_in, 3000));
	awaited = &a;
	assert_true(run_until(answered, 3000));
	assert_int_equal(a.integer, 1);

	/* the pong came before the message: had it been pushed, it would be
	 * the second push */
	assert_int_equal(seen[1].pushes, 2);
	assert_string_equal(seen[1].push[1].kind, "message");
	assert_string_equal(seen[1].push[1].channel, "ch");
	assert_int_equal(seen[1].push[1].payload_len, payload_len);
	assert_memory_equal(seen[1].push[1].payload, payload, payload_len);
	assert_true(redis_link_up(sub));
}

/* ---- failure and recovery --------------------------------------------------- */

#define BLOCKED 3

static struct answer blocked[BLOCKED];
static struct redis_link *asked_again;

/* A waiting command failed with NULL asks for another: refused. */
static void blocked_answer(void *arg, const redisReply *r)
{
	struct answer *a = arg;
	keep_answer(a, r);
	a->command_taken = command(asked_again, NULL, 1, "PING");
}

static void keep_blocked_line(void *arg, const redisReply *r)
{
	struct answer *a = arg;
	a->calls++;
	const char *line = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "blocked_clients:") : NULL;
	if (line)
		snprintf(a->str, sizeof(a->str), "%.*s", (int)strcspn(line, "\r\n"), line);
}

static bool link0_down(void) { return seen[0].downs >= 1; }
static bool link0_up_again(void) { return seen[0].ups >= 2; }

/* Redis killed while commands wait: each gets NULL, in order, then on_down
 * once, however many reconnects fail; once Redis is back on its port the
 * link comes up by itself and works. */
static void a_killed_redis_fails_waiting_commands_and_comes_back(void **state)
{
	(void)state;
	struct redis_link *link = asked_again = open_link(0, "", false);
	assert_true(run_until(link0_up, 3000));

	/* BLPOPs that Redis holds unanswered, then a SET behind them whose
	 * answer cannot come either: all four wait when Redis dies */
	struct answer set = { 0 };
	struct answer before = { 0 };
	memset(blocked, 0, sizeof(blocked));
	const char *argv[] = { "BLPOP", "nothing", "0" };
	const size_t lens[] = { 5, 7, 1 };
	for (int i = 0; i < BLOCKED; i++)
		assert_true(redis_link_command(link, 3, argv, lens, blocked_answer, &blocked[i]));
	assert_true(command(link, &set, 3, "SET", "k", "v"));
	/* a second link sees the first one blocked in Redis */
	struct redis_link *other = open_link(1, "", false);
	assert_true(run_until(link1_up, 3000));
	memset(&before, 0, sizeof(before));
	const char *info_argv[] = { "INFO", "clients" };
	const size_t info_lens[] = { 4, 7 };
	assert_true(redis_link_command(other, 2, info_argv, info_lens, keep_blocked_line, &before));
	awaited = &before;
	assert_true(run_until(answered, 3000));
	assert_string_equal(before.str, "blocked_clients:1");
	redis_link_free(other);
	links[1] = NULL;

	redis_kill();
	assert_true(run_until(link0_down, 3000));
	for (int i = 0; i < BLOCKED; i++) {
		assert_int_equal(blocked[i].calls, 1);
		assert_true(blocked[i].null);
		assert_false(blocked[i].command_taken);
		if (i)
			assert_true(blocked[i].event > blocked[i - 1].event);
	}
	assert_int_equal(set.calls, 1);
	assert_true(set.null);
	assert_true(seen[0].event_at_down > set.event);
	assert_int_equal(redis_link_stats(link)->failed, BLOCKED + 1);
	assert_int_equal(redis_link_stats(link)->disconnects, 1);
	assert_false(redis_link_up(link));
	assert_false(command(link, &set, 1, "PING"));

	/* refused reconnects, quiet after the first: still one on_down */
	log_set_level(LOG_DEBUG);
	capture_log();
	bool retried = run_until(retried_thrice, 3000);
	release_log();
	log_set_level(LOG_INFO);
	assert_true(retried);
	assert_int_equal(count_in_log("Connection refused"), count_in_log("still unusable") + 1);
	assert_int_equal(seen[0].downs, 1);
	assert_int_equal(seen[0].ups, 1);

	assert_true(redis_start());
	assert_true(run_until(link0_up_again, 3000));
	assert_int_equal(seen[0].downs, 1);
	struct answer a;
	ask(link, &a, 3, "SET", "k", "again");
	assert_string_equal(a.str, "OK");
	ask(link, &a, 2, "GET", "k", NULL);
	assert_string_equal(a.str, "again");
	assert_int_equal(redis_link_stats(link)->connects, 2);
}

#define STOP_TIMEOUT_MS 300
#define KEEPALIVE_MS 1000

/* A Redis that stops answering (SIGSTOP) leaves the connection open: the
 * link's idle PING goes unanswered, and the reply timeout ends it. */
static void a_stopped_redis_is_noticed_by_the_ping(void **state)
{
	(void)state;
	struct redis_link_config cfg = config(0, false);
	cfg.reply_timeout_ms = STOP_TIMEOUT_MS;
	struct redis_link *link = open_link_with(0, "", "", cfg);
	assert_true(run_until(link0_up, 3000));
	struct answer a;
	ask(link, &a, 1, "PING", NULL, NULL);

	assert_int_equal(kill(redis.pid, SIGSTOP), 0);
	uint64_t stopped = now_ms();
	bool down = run_until(link0_down, KEEPALIVE_MS + STOP_TIMEOUT_MS + 1000);
	uint64_t took = now_ms() - stopped;
	kill(redis.pid, SIGCONT);
	assert_true(down);
	/* idle a second, then the PING's timeout, each noticed at a tick */
	assert_in_range(took, STOP_TIMEOUT_MS, KEEPALIVE_MS + STOP_TIMEOUT_MS + 3 * TICK_MS + 150);

	assert_true(run_until(link0_up_again, 3000));
	ask(link, &a, 1, "PING", NULL, NULL);
	assert_string_equal(a.str, "PONG");
}

#define CONNECT_TIMEOUT_MS 200

static bool connect_gave_up(void) { return count_in_log("no connection after 200 ms") >= 2; }

/* A connect the other side never answers counts as a failure after
 * reply_timeout_ms. A listener with a backlog of 0 and one connection
 * waiting in it drops further SYNs, so the link's connects hang. */
static void a_connect_that_hangs_gives_up_and_retries(void **state)
{
	(void)state;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(l, 0), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
	int filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(filler, (struct sockaddr *)&a, sizeof(a)), 0);

	char url[64], err[128];
	snprintf(url, sizeof(url), "redis://127.0.0.1:%u", ntohs(a.sin_port));
	assert_int_equal(redis_address_parse(url, &addresses[0], err, sizeof(err)), 0);
	struct redis_link_config cfg = config(0, false);
	cfg.reply_timeout_ms = CONNECT_TIMEOUT_MS;
	links[0] = redis_link_new(loop, &cfg, &record, &seen[0]);
	log_set_level(LOG_DEBUG);
	capture_log();
	uint64_t started = now_ms();
	redis_link_start(links[0]);
	bool gave_up = run_until(connect_gave_up, 3000);
	uint64_t took = now_ms() - started;
	release_log();
	close(filler);
	close(l);
	assert_true(gave_up);
	assert_true(took >= 2 * CONNECT_TIMEOUT_MS);
	assert_int_equal(seen[0].ups, 0);
	assert_int_equal(count_in_log("cannot use Redis at"), 1);
}

/* ---- redis_address_parse ---------------------------------------------------- */

static void parse_ok(const char *url, struct redis_address *a)
{
	char err[128] = "";
	int rc = redis_address_parse(url, a, err, sizeof(err));
	if (rc != 0)
		fail_msg("%s: %s", url, err);
}

static void a_full_url_is_parsed(void **state)
{
	(void)state;
	struct redis_address a;
	parse_ok("redis://alice:p4ss:word@127.0.0.1:6380/15", &a);
	assert_string_equal(a.user, "alice");
	assert_string_equal(a.password, "p4ss:word");
	assert_string_equal(a.host, "127.0.0.1");
	assert_int_equal(a.port, 6380);
	assert_int_equal(a.db, 15);
	const struct sockaddr_in *in = (const struct sockaddr_in *)&a.addr;
	assert_int_equal(in->sin_family, AF_INET);
	assert_int_equal(ntohs(in->sin_port), 6380);
	assert_int_equal(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
	assert_int_equal(a.addr_len, sizeof(struct sockaddr_in));
}

static void port_and_database_default(void **state)
{
	(void)state;
	struct redis_address a;
	parse_ok("redis://127.0.0.1", &a);
	assert_int_equal(a.port, 6379);
	assert_int_equal(a.db, 0);
	assert_string_equal(a.user, "");
	assert_string_equal(a.password, "");
	parse_ok("redis://127.0.0.1/", &a);
	assert_int_equal(a.db, 0);
	parse_ok("redis://127.0.0.1/2", &a);
	assert_int_equal(a.port, 6379);
	assert_int_equal(a.db, 2);
}

static void a_password_alone_has_no_user(void **state)
{
	(void)state;
	struct redis_address a;
	parse_ok("redis://:only@127.0.0.1", &a);
	assert_string_equal(a.user, "");
	assert_string_equal(a.password, "only");
	/* the last '@' ends the password */
	parse_ok("redis://:a@b/c@127.0.0.1:7000", &a);
	assert_string_equal(a.password, "a@b/c");
	assert_int_equal(a.port, 7000);
}

static void a_name_resolves_ipv4_first(void **state)
{
	(void)state;
	struct redis_address a;
	parse_ok("redis://localhost:7001", &a);
	assert_string_equal(a.host, "localhost");
	assert_int_equal(a.addr.ss_family, AF_INET);
	assert_int_equal(ntohs(((const struct sockaddr_in *)&a.addr)->sin_port), 7001);
}

static void an_ipv6_address_goes_in_brackets(void **state)
{
	(void)state;
	struct redis_address a;
	parse_ok("redis://[::1]:7002/1", &a);
	assert_string_equal(a.host, "::1");
	assert_int_equal(a.addr.ss_family, AF_INET6);
	assert_int_equal(ntohs(((const struct sockaddr_in6 *)&a.addr)->sin6_port), 7002);
	assert_int_equal(a.db, 1);
}

static void garbage_is_refused_with_a_reason(void **state)
{
	(void)state;
	static const char *bad[] = {
		"",
		"http://127.0.0.1:6379",
		"redis:/127.0.0.1",
		"redis://",
		"redis://:6379",
		"redis://127.0.0.1:",
		"redis://127.0.0.1:0",
		"redis://127.0.0.1:65536",
		"redis://127.0.0.1:99999999999999999999",
		"redis://127.0.0.1:63a9",
		"redis://127.0.0.1/x",
		"redis://127.0.0.1/1/2",
		"redis://127.0.0.1/-1",
		"redis://127.0.0.1?db=1",
		"redis://host name",
		"redis://user@127.0.0.1",
		"redis://user:@127.0.0.1",
		"redis://[::1",
		"redis://[not-an-address]:1",
		"redis://no-such-host.invalid",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct redis_address a;
		char err[128] = "";
		if (redis_address_parse(bad[i], &a, err, sizeof(err)) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		if (strncmp(err, "redis URL: ", 11) != 0 || strlen(err) < 14)
			fail_msg("\"%s\": no reason given (\"%s\")", bad[i], err);
	}
}

/* The password must not reach the logs through an error message. */
static void an_error_does_not_repeat_the_password(void **state)
{
	(void)state;
	struct redis_address a;
	char err[128] = "";
	assert_int_equal(redis_address_parse("redis://:hunter2@127.0.0.1:0", &a, err, sizeof(err)), -1);
	assert_null(strstr(err, "hunter2"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_full_url_is_parsed),
		cmocka_unit_test(port_and_database_default),
		cmocka_unit_test(a_password_alone_has_no_user),
		cmocka_unit_test(a_name_resolves_ipv4_first),
		cmocka_unit_test(an_ipv6_address_goes_in_brackets),
		cmocka_unit_test(garbage_is_refused_with_a_reason),
		cmocka_unit_test(an_error_does_not_repeat_the_password),
		cmocka_unit_test_setup_teardown(a_set_is_read_back_by_a_get, setup, teardown),
		cmocka_unit_test_setup_teardown(pipelined_commands_are_answered_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(callbacks_may_queue_commands, setup, teardown),
		cmocka_unit_test_setup_teardown(a_command_before_up_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(the_right_password_comes_up, setup, teardown),
		cmocka_unit_test_setup_teardown(a_wrong_password_never_comes_up_and_is_logged_once, setup,
						teardown),
		cmocka_unit_test_setup_teardown(the_database_in_the_url_is_selected, setup, teardown),
		cmocka_unit_test_setup_teardown(a_subscriber_gets_pushes_and_keeps_its_pongs, setup,
						teardown),
		cmocka_unit_test_setup_teardown(a_killed_redis_fails_waiting_commands_and_comes_back,
						setup, teardown),
		cmocka_unit_test_setup_teardown(a_stopped_redis_is_noticed_by_the_ping, setup, teardown),
		cmocka_unit_test_setup_teardown(a_connect_that_hangs_gives_up_and_retries, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
