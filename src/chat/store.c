/* store.c: chat history in SQLite, on a worker thread (see store.h).
 *
 * The loop thread copies each request into a job and queues it under `lock`;
 * it never waits on the disk. The worker takes every queued job at once, runs
 * them in order (each run of consecutive appends is one transaction), puts
 * them on the done list and writes to the eventfd. store_drain, back on the
 * loop thread, runs their callbacks and frees them.
 *
 * The connection is opened with SQLITE_OPEN_NOMUTEX, so SQLite does not
 * serialize it for us: it must never be used by two threads at once. The
 * rule is that whoever holds `db_lock` owns the connection and its
 * statements: store_open before the worker exists, the worker while it runs
 * a batch or a checkpoint, store_load_rooms and store_load_recent at
 * start-up, store_close after the worker is joined. The loop thread takes
 * db_lock only in those two, which run before the loop does.
 *
 * Lock order: db_lock, then lock. */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "thread.h"

#define STORE_SCHEMA_VERSION 1
#define STORE_DEFAULT_SYNC_MS 100
/* Only another process (an operator's sqlite3 shell) can hold the lock; the
 * worker waits for it, the loop never does. */
#define STORE_BUSY_TIMEOUT_MS 5000

#define STORE_PRAGMA_MAX 16 /* longest PRAGMA answer we read: "wal" or a version */

#define STORE_STR(x) STORE_STR_(x)
#define STORE_STR_(x) #x

static const char store_schema[] =
	"BEGIN IMMEDIATE;"
	"CREATE TABLE IF NOT EXISTS messages("
	" room TEXT NOT NULL,"
	" id INTEGER NOT NULL,"
	" ts INTEGER NOT NULL,"
	" sender TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" text BLOB NOT NULL,"
	" PRIMARY KEY(room, id)"
	") WITHOUT ROWID;"
	"PRAGMA user_version = " STORE_STR(STORE_SCHEMA_VERSION) ";"
	"COMMIT;";

enum store_op { STORE_OP_APPEND, STORE_OP_BEFORE, STORE_OP_SINCE };

/* A query's answer. Records point into `bytes` (and at the job's own copy
 * of the room), so it lives exactly as long as the job. */
struct store_rows {
	struct store_record *recs;
	size_t n, cap;
	char *bytes;
	size_t len, size;
	bool more;
};

struct store_job {
	struct store_job *next;
	enum store_op op;
	void *ctx;
	int err;
	/* Appends: the message. Queries: only room and room_len are set. The
	 * strings point into `strings`, allocated with the job. */
	struct store_record rec;
	uint64_t bound;         /* queries: before_id or since_id */
	unsigned limit;         /* queries */
	struct store_rows rows; /* queries: the answer */
	char strings[];
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *begin, *commit, *rollback, *insert, *before, *since;
	enum store_sync sync;
	unsigned sync_ms;
	void (*committed)(void *ctx, int err);
	void *committed_ctx;
	int efd;
	pthread_t worker;
	pthread_mutex_t db_lock;

	pthread_mutex_t lock;    /* guards the fields up to the blank line */
	pthread_cond_t wake;     /* jobs queued, or stopping; CLOCK_MONOTONIC */
	struct store_job *queue, **queue_tail;
	struct store_job *done, **done_tail;
	int inject_err;
	bool stopping;

	/* The worker's own: a commit not yet fsynced (STORE_SYNC_INTERVAL)
	 * and the time its checkpoint falls due. */
	bool unsynced;
	struct timespec sync_due;
};

static int store_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_READONLY:
		return -EROFS;
	default:
		return -EIO;
	}
}

static int store_fail(const struct store *s, const char *path, const char *what)
{
	log_error("store: %s: %s: %s", path, what,
		s->db ? sqlite3_errmsg(s->db) : "out of memory");
	return -1;
}

/* mkdir -p of the directory that will hold path. */
static int store_make_parents(const char *path)
{
	char *dir = strdup(path);
	int err = 0;

	if (!dir)
		return -ENOMEM;
	for (char *p = strchr(dir + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			err = -errno;
			break;
		}
		*p = '/';
	}
	free(dir);
	return err;
}

static int store_first_column(void *out, int ncol, char **vals, char **names)
{
	(void)names;
	if (ncol > 0 && vals[0])
		snprintf(out, STORE_PRAGMA_MAX, "%s", vals[0]);
	return 0;
}

/* Run sql; with out, keep the first column of its last row (PRAGMAs
 * answer with one short value). */
static int store_exec(struct store *s, const char *sql, char out[STORE_PRAGMA_MAX])
{
	if (out)
		out[0] = '\0';
	if (sqlite3_exec(s->db, sql, out ? store_first_column : NULL, out, NULL) != SQLITE_OK)
		return -1;
	return 0;
}

static int store_prepare(struct store *s, const char *path)
{
	const struct {
		sqlite3_stmt **stmt;
		const char *sql;
	} stmts[] = {
		{ &s->begin, "BEGIN IMMEDIATE" },
		{ &s->commit, "COMMIT" },
		{ &s->rollback, "ROLLBACK" },
		{ &s->insert, "INSERT INTO messages(room, id, ts, sender, name, text)"
			      " VALUES (?1, ?2, ?3, ?4, ?5, ?6)" },
		{ &s->before, "SELECT id, ts, sender, name, text FROM messages"
			      " WHERE room = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3" },
		{ &s->since, "SELECT id, ts, sender, name, text FROM messages"
			     " WHERE room = ?1 AND id > ?2 ORDER BY id LIMIT ?3" },
	};

	for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++)
		if (sqlite3_prepare_v3(s->db, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
				       stmts[i].stmt, NULL) != SQLITE_OK)
			return store_fail(s, path, "prepare");
	return 0;
}

static int store_open_db(struct store *s, const char *path)
{
	char val[STORE_PRAGMA_MAX];
	int version, err;

	if (!path || !*path) {
		log_error("store: no database path");
		return -1;
	}
	err = store_make_parents(path);
	if (err) {
		log_error("store: %s: cannot create its directory: %s", path,
			strerror(-err));
		return -1;
	}
	if (sqlite3_open_v2(path, &s->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK)
		return store_fail(s, path, "open");
	sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);

	if (store_exec(s, "PRAGMA journal_mode = WAL", val) < 0)
		return store_fail(s, path, "journal_mode");
	if (strcmp(val, "wal") != 0) {
		log_error("store: %s: cannot use WAL (journal mode stays %s)",
			path, val);
		return -1;
	}
	/* In WAL mode NORMAL fsyncs only at checkpoints, which we time
	 * ourselves; FULL fsyncs the WAL at every commit. */
	if (store_exec(s, s->sync == STORE_SYNC_ALWAYS ? "PRAGMA synchronous = FULL"
						       : "PRAGMA synchronous = NORMAL", NULL) < 0)
		return store_fail(s, path, "synchronous");

	if (store_exec(s, "PRAGMA user_version", val) < 0)
		return store_fail(s, path, "user_version");
	version = atoi(val);
	if (version == 0 && store_exec(s, store_schema, NULL) < 0)
		return store_fail(s, path, "schema");
	if (version > STORE_SCHEMA_VERSION) {
		log_error("store: %s: schema version %d is newer than ours, %d",
			path, version, STORE_SCHEMA_VERSION);
		return -1;
	}
	return store_prepare(s, path);
}

/* ---- jobs and the two lists ---- */

static char *store_copy(char *dst, const char *src, size_t len)
{
	if (len)
		memcpy(dst, src, len);
	return dst + len;
}

/* The API has no way to report a failed allocation, and quietly dropping a
 * message would break "acknowledged means stored"; like Redis's zmalloc we
 * give up instead. */
static struct store_job *store_job_new(enum store_op op, void *ctx, size_t strings)
{
	struct store_job *j = malloc(sizeof(*j) + strings);

	if (!j) {
		log_error("store: out of memory for a %zu-byte job", strings);
		abort();
	}
	*j = (struct store_job){ .op = op, .ctx = ctx };
	return j;
}

static void store_job_free(struct store_job *j)
{
	free(j->rows.recs);
	free(j->rows.bytes);
	free(j);
}

static void store_free_jobs(struct store_job *j)
{
	while (j) {
		struct store_job *next = j->next;

		store_job_free(j);
		j = next;
	}
}

static void store_submit(struct store *s, struct store_job *j)
{
	pthread_mutex_lock(&s->lock);
	*s->queue_tail = j;
	s->queue_tail = &j->next;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

/* Hand a finished batch (first .. the job whose next is *tail) back to the loop. */
static void store_post(struct store *s, struct store_job *first, struct store_job **tail)
{
	uint64_t one = 1;

	pthread_mutex_lock(&s->lock);
	*s->done_tail = first;
	s->done_tail = tail;
	pthread_mutex_unlock(&s->lock);
	if (write(s->efd, &one, sizeof(one)) < 0)
		log_error("store: eventfd write: %s", strerror(errno));
}

/* ---- the worker's side ---- */

static int store_step_once(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc;
}

/* SQLite integers are signed; ids and times never come near 2^63. */
static sqlite3_int64 store_sql_uint(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

static int store_insert(struct store *s, const struct store_record *r)
{
	sqlite3_stmt *st = s->insert;
	int rc = sqlite3_bind_text64(st, 1, r->room, r->room_len, SQLITE_STATIC, SQLITE_UTF8);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, store_sql_uint(r->id));
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, store_sql_uint(r->ts));
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text64(st, 4, r->from, r->from_len, SQLITE_STATIC, SQLITE_UTF8);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text64(st, 5, r->name, r->name_len, SQLITE_STATIC, SQLITE_UTF8);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob64(st, 6, r->text, r->text_len, SQLITE_STATIC);
	return rc == SQLITE_OK ? store_step_once(st) : rc;
}

/* Insert the appends first .. end (exclusive) in one transaction. All or
 * none: any failure rolls back and fails every one of them. */
static int store_insert_all(struct store *s, struct store_job *first, struct store_job *end)
{
	int rc = store_step_once(s->begin);

	for (struct store_job *j = first; rc == SQLITE_DONE && j != end; j = j->next)
		rc = store_insert(s, &j->rec);
	if (rc == SQLITE_DONE)
		rc = store_step_once(s->commit);
	if (rc == SQLITE_DONE)
		return 0;
	log_error("store: append batch failed: %s", sqlite3_errmsg(s->db));
	/* A failed COMMIT (SQLITE_FULL, say) may already have rolled back. */
	if (!sqlite3_get_autocommit(s->db))
		store_step_once(s->rollback);
	return store_errno(rc);
}

static void store_after_ms(struct timespec *t, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, t);
	t->tv_sec += ms / 1000;
	t->tv_nsec += (long)(ms % 1000) * 1000000;
	if (t->tv_nsec >= 1000000000) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000;
	}
}

static bool store_sync_is_due(const struct store *s)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > s->sync_due.tv_sec ||
	       (now.tv_sec == s->sync_due.tv_sec && now.tv_nsec >= s->sync_due.tv_nsec);
}

static void store_commit_appends(struct store *s, struct store_job *first, struct store_job *end,
				 int inject)
{
	int err = inject ? inject : store_insert_all(s, first, end);

	for (struct store_job *j = first; j != end; j = j->next)
		j->err = err;
	if (s->committed)
		s->committed(s->committed_ctx, err);
	/* The first unsynced commit starts the clock; later ones ride along. */
	if (!err && s->sync == STORE_SYNC_INTERVAL && !s->unsynced) {
		s->unsynced = true;
		store_after_ms(&s->sync_due, s->sync_ms);
	}
}

/* Column i's bytes, unconverted (TEXT too); never NULL, even when empty,
 * so callers may hand them to memcpy. */
static const char *store_column(sqlite3_stmt *st, int i, size_t *len)
{
	const char *p = sqlite3_column_blob(st, i);

	*len = (size_t)sqlite3_column_bytes(st, i);
	return p ? p : "";
}

static int store_rows_add(struct store_rows *rows, sqlite3_stmt *st)
{
	const char *col[3];
	size_t len[3], need;
	char *p;

	if (rows->n == rows->cap) {
		size_t cap = rows->cap ? 2 * rows->cap : 16;
		struct store_record *recs = realloc(rows->recs, cap * sizeof(*recs));

		if (!recs)
			return -ENOMEM;
		rows->recs = recs;
		rows->cap = cap;
	}
	for (int i = 0; i < 3; i++) /* sender, name, text */
		col[i] = store_column(st, 2 + i, &len[i]);
	need = len[0] + len[1] + len[2];
	if (!rows->bytes || rows->len + need > rows->size) {
		size_t size = rows->size ? 2 * rows->size : 256;
		char *bytes;

		while (size < rows->len + need)
			size *= 2;
		bytes = realloc(rows->bytes, size);
		if (!bytes)
			return -ENOMEM;
		rows->bytes = bytes;
		rows->size = size;
	}
	p = rows->bytes + rows->len;
	for (int i = 0; i < 3; i++)
		p = store_copy(p, col[i], len[i]);
	rows->len += need;
	rows->recs[rows->n++] = (struct store_record){
		.id = (uint64_t)sqlite3_column_int64(st, 0),
		.ts = (uint64_t)sqlite3_column_int64(st, 1),
		.from_len = len[0],
		.name_len = len[1],
		.text_len = len[2],
	};
	return 0;
}

/* Point the records at their strings, which sit in `bytes` one record
 * after another in the order the rows came, then put them oldest first. */
static void store_rows_finish(struct store_rows *rows, const struct store_record *room,
			      bool newest_first)
{
	const char *p = rows->bytes;

	for (size_t i = 0; i < rows->n; i++) {
		struct store_record *r = &rows->recs[i];

		r->room = room->room;
		r->room_len = room->room_len;
		r->from = p;
		p += r->from_len;
		r->name = p;
		p += r->name_len;
		r->text = p;
		p += r->text_len;
	}
	for (size_t i = 0; newest_first && i < rows->n / 2; i++) {
		struct store_record t = rows->recs[i];

		rows->recs[i] = rows->recs[rows->n - 1 - i];
		rows->recs[rows->n - 1 - i] = t;
	}
}

static void store_run_query(struct store *s, struct store_job *j)
{
	bool before = j->op == STORE_OP_BEFORE;
	sqlite3_stmt *st = before ? s->before : s->since;
	/* before_id 0 means "from the newest". */
	uint64_t bound = before && j->bound == 0 ? UINT64_MAX : j->bound;
	int rc = sqlite3_bind_text64(st, 1, j->rec.room, j->rec.room_len, SQLITE_STATIC,
				     SQLITE_UTF8);

	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, store_sql_uint(bound));
	/* One row past the limit tells whether there are more. */
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, (sqlite3_int64)j->limit + 1);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW && j->rows.n < j->limit)
		rc = store_rows_add(&j->rows, st) < 0 ? SQLITE_NOMEM : SQLITE_OK;
	sqlite3_reset(st);
	if (rc == SQLITE_ROW) {
		j->rows.more = true;
		rc = SQLITE_DONE;
	}
	if (rc == SQLITE_DONE) {
		store_rows_finish(&j->rows, &j->rec, before);
		return;
	}
	log_error("store: query failed: %s", sqlite3_errstr(rc));
	j->err = store_errno(rc);
	j->rows.n = 0;
	j->rows.more = false;
}

/* Run a batch in order: each run of consecutive appends is one
 * transaction, so a query sees every append queued before it. */
static void store_run_batch(struct store *s, struct store_job *batch, int inject)
{
	struct store_job *j = batch;

	while (j) {
		if (j->op == STORE_OP_APPEND) {
			struct store_job *end = j->next;

			while (end && end->op == STORE_OP_APPEND)
				end = end->next;
			store_commit_appends(s, j, end, inject);
			j = end;
		} else {
			store_run_query(s, j);
			j = j->next;
		}
	}
}

/* Take everything queued and run it. The batch is taken with db_lock
 * held, so jobs queued while store_load_recent holds the database all
 * land in one batch. */
static void store_run_queued(struct store *s)
{
	struct store_job *batch, **tail;
	int inject;

	pthread_mutex_lock(&s->db_lock);
	pthread_mutex_lock(&s->lock);
	batch = s->queue;
	tail = s->queue_tail;
	s->queue = NULL;
	s->queue_tail = &s->queue;
	inject = s->inject_err;
	pthread_mutex_unlock(&s->lock);
	store_run_batch(s, batch, inject);
	pthread_mutex_unlock(&s->db_lock);
	if (batch)
		store_post(s, batch, tail);
}

/* A passive checkpoint fsyncs the WAL before copying it into the
 * database (synchronous=NORMAL's only fsync), which is what makes the
 * commits since the last one power-safe. */
static void store_checkpoint(struct store *s)
{
	int rc;

	pthread_mutex_lock(&s->db_lock);
	rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	pthread_mutex_unlock(&s->db_lock);
	if (rc == SQLITE_OK) {
		s->unsynced = false;
		return;
	}
	log_error("store: checkpoint failed: %s", sqlite3_errstr(rc));
	store_after_ms(&s->sync_due, s->sync_ms);
}

/* Sleep until jobs are queued or a checkpoint falls due. False: stop. */
static bool store_wait_for_work(struct store *s)
{
	bool work = true;

	pthread_mutex_lock(&s->lock);
	while (!s->queue) {
		if (s->stopping) {
			work = false;
			break;
		}
		if (!s->unsynced)
			pthread_cond_wait(&s->wake, &s->lock);
		else if (pthread_cond_timedwait(&s->wake, &s->lock, &s->sync_due) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&s->lock);
	return work;
}

static void *store_worker(void *arg)
{
	struct store *s = arg;

	while (store_wait_for_work(s)) {
		store_run_queued(s);
		if (s->unsynced && store_sync_is_due(s))
			store_checkpoint(s);
	}
	return NULL;
}

/* ---- the loop's side ---- */

static void store_free(struct store *s)
{
	sqlite3_finalize(s->begin);
	sqlite3_finalize(s->commit);
	sqlite3_finalize(s->rollback);
	sqlite3_finalize(s->insert);
	sqlite3_finalize(s->before);
	sqlite3_finalize(s->since);
	sqlite3_close(s->db);
	if (s->efd >= 0)
		close(s->efd);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->db_lock);
	free(s);
}

static int store_start_worker(struct store *s)
{
	int err;

	s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->efd < 0) {
		log_error("store: eventfd: %s", strerror(errno));
		return -1;
	}
	err = thread_start(&s->worker, "rc-store", store_worker, s);
	if (err) {
		log_error("store: cannot start the worker: %s", strerror(err));
		return -1;
	}
	return 0;
}

struct store *store_open(const struct store_config *cfg)
{
	struct store *s = calloc(1, sizeof(*s));
	pthread_condattr_t attr;

	if (!s) {
		log_error("store: out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->db_lock, NULL);
	pthread_mutex_init(&s->lock, NULL);
	/* Checkpoint deadlines must not move when the wall clock is set. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &attr);
	pthread_condattr_destroy(&attr);
	s->queue_tail = &s->queue;
	s->done_tail = &s->done;
	s->efd = -1;
	s->sync = cfg->sync;
	s->sync_ms = cfg->sync_interval_ms ? cfg->sync_interval_ms : STORE_DEFAULT_SYNC_MS;
	s->committed = cfg->committed;
	s->committed_ctx = cfg->committed_ctx;

	if (store_open_db(s, cfg->path) < 0 || store_start_worker(s) < 0) {
		store_free(s);
		return NULL;
	}
	return s;
}

void store_close(struct store *s)
{
	int rc;

	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->worker, NULL);

	/* sqlite3_close checkpoints too, but silently; this one says if the
	 * last commits could not be synced. */
	rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	if (rc != SQLITE_OK)
		log_error("store: final checkpoint failed: %s",
			sqlite3_errstr(rc));
	store_free_jobs(s->done);
	store_free(s);
}

/* Every room, without reading every row: each step is one index seek to
 * the next room name (a "loose index scan"), so the cost follows the number
 * of rooms, not the size of the history. */
static const char store_rooms_sql[] =
	"WITH RECURSIVE r(room) AS ("
	" SELECT min(room) FROM messages"
	" UNION ALL"
	" SELECT (SELECT min(room) FROM messages WHERE room > r.room)"
	"  FROM r WHERE r.room IS NOT NULL"
	") SELECT room FROM r WHERE room IS NOT NULL";

/* The newest ?2 of room ?1 by a backwards index range, then turned oldest first. */
static const char store_recent_sql[] =
	"SELECT id, ts, sender, name, text FROM"
	" (SELECT id, ts, sender, name, text FROM messages"
	"  WHERE room = ?1 ORDER BY id DESC LIMIT ?2)"
	" ORDER BY id";

static int store_load_room(sqlite3_stmt *st, const struct store_record *room,
			   void (*fn)(void *arg, const struct store_record *r), void *arg)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_record r = *room;

		r.id = (uint64_t)sqlite3_column_int64(st, 0);
		r.ts = (uint64_t)sqlite3_column_int64(st, 1);
		r.from = store_column(st, 2, &r.from_len);
		r.name = store_column(st, 3, &r.name_len);
		r.text = store_column(st, 4, &r.text_len);
		fn(arg, &r);
	}
	return rc;
}

/* A walk over every room with one per-room statement (its ?1 is the room,
 * ?2 the limit), holding db_lock: see the rule at the top. */
struct store_room_walk {
	const char *sql;
	unsigned limit;
	/* Steps st for one room (bound and reset by the walk): SQLITE_DONE or
	 * an error. */
	int (*each)(struct store_room_walk *w, sqlite3_stmt *st, const struct store_record *room);
	void (*record_fn)(void *arg, const struct store_record *r); /* store_load_recent */
	void (*room_fn)(void *arg, const struct store_room *r);     /* store_load_rooms */
	void *arg;
};

static int store_walk_rooms(struct store *s, struct store_room_walk *w)
{
	sqlite3_stmt *rooms = NULL, *per_room = NULL;
	int rc;

	pthread_mutex_lock(&s->db_lock);
	rc = sqlite3_prepare_v2(s->db, store_rooms_sql, -1, &rooms, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(s->db, w->sql, -1, &per_room, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(per_room, 2, w->limit);
	while (rc == SQLITE_OK && (rc = sqlite3_step(rooms)) == SQLITE_ROW) {
		struct store_record room = { 0 };

		room.room = store_column(rooms, 0, &room.room_len);
		rc = sqlite3_bind_text64(per_room, 1, room.room, room.room_len, SQLITE_STATIC,
					 SQLITE_UTF8);
		if (rc == SQLITE_OK)
			rc = w->each(w, per_room, &room);
		sqlite3_reset(per_room);
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE)
		log_error("store: loading history failed: %s",
			sqlite3_errmsg(s->db));
	sqlite3_finalize(per_room);
	sqlite3_finalize(rooms);
	pthread_mutex_unlock(&s->db_lock);
	return rc == SQLITE_DONE ? 0 : store_errno(rc);
}

static int store_recent_each(struct store_room_walk *w, sqlite3_stmt *st,
			     const struct store_record *room)
{
	return store_load_room(st, room, w->record_fn, w->arg);
}

int store_load_recent(struct store *s, unsigned per_room,
		      void (*fn)(void *arg, const struct store_record *r), void *arg)
{
	/* The last record of a room carries its highest id, which the caller
	 * needs even if it wants no history. */
	struct store_room_walk w = { .sql = store_recent_sql, .limit = per_room ? per_room : 1,
				     .each = store_recent_each, .record_fn = fn, .arg = arg };

	return store_walk_rooms(s, &w);
}

/* A room's last id, and the largest all-digit sender among its newest ?2
 * rows: a backwards range of the primary key that decodes ids and senders
 * only (text is the record's last column, so a long one's overflow pages
 * are never read). */
static const char store_room_sql[] =
	"SELECT max(id), max(CASE WHEN length(sender) BETWEEN 1 AND 10"
	"  AND sender NOT GLOB '*[^0-9]*' THEN CAST(sender AS INTEGER) END)"
	" FROM (SELECT id, sender FROM messages WHERE room = ?1 ORDER BY id DESC LIMIT ?2)";

static int store_room_each(struct store_room_walk *w, sqlite3_stmt *st,
			   const struct store_record *room)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_ROW)
		return rc;
	struct store_room r = {
		.room = room->room,
		.room_len = room->room_len,
		.last_id = (uint64_t)sqlite3_column_int64(st, 0),
		.numeric_sender_max = (uint64_t)sqlite3_column_int64(st, 1), /* NULL reads as 0 */
	};
	w->room_fn(w->arg, &r);
	return SQLITE_DONE;
}

int store_load_rooms(struct store *s, unsigned window,
		     void (*fn)(void *arg, const struct store_room *r), void *arg)
{
	struct store_room_walk w = { .sql = store_room_sql, .limit = window ? window : 1,
				     .each = store_room_each, .room_fn = fn, .arg = arg };

	return store_walk_rooms(s, &w);
}

void store_append(struct store *s, const struct store_record *r, void *ctx)
{
	struct store_job *j = store_job_new(STORE_OP_APPEND, ctx,
					    r->room_len + r->from_len + r->name_len + r->text_len);
	char *p = j->strings;

	j->rec = *r;
	j->rec.room = p;
	p = store_copy(p, r->room, r->room_len);
	j->rec.from = p;
	p = store_copy(p, r->from, r->from_len);
	j->rec.name = p;
	p = store_copy(p, r->name, r->name_len);
	j->rec.text = p;
	store_copy(p, r->text, r->text_len);
	store_submit(s, j);
}

static void store_query(struct store *s, enum store_op op, const char *room, size_t room_len,
			uint64_t bound, unsigned limit, void *ctx)
{
	struct store_job *j = store_job_new(op, ctx, room_len);

	j->rec.room = j->strings;
	j->rec.room_len = room_len;
	store_copy(j->strings, room, room_len);
	j->bound = bound;
	j->limit = limit;
	store_submit(s, j);
}

void store_query_before(struct store *s, const char *room, size_t room_len, uint64_t before_id,
			unsigned limit, void *ctx)
{
	store_query(s, STORE_OP_BEFORE, room, room_len, before_id, limit, ctx);
}

void store_query_since(struct store *s, const char *room, size_t room_len, uint64_t since_id,
		       unsigned limit, void *ctx)
{
	store_query(s, STORE_OP_SINCE, room, room_len, since_id, limit, ctx);
}

int store_event_fd(const struct store *s)
{
	return s->efd;
}

void store_drain(struct store *s, const struct store_callbacks *cb)
{
	struct store_job *j;
	uint64_t count;

	/* Clear the fd before taking the list: a batch posted in between
	 * leaves it readable again, so none is missed (at worst the next
	 * wake-up finds the list empty). EAGAIN: nothing was posted. */
	if (read(s->efd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_error("store: eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&s->lock);
	j = s->done;
	s->done = NULL;
	s->done_tail = &s->done;
	pthread_mutex_unlock(&s->lock);

	while (j) {
		struct store_job *next = j->next;

		if (j->op == STORE_OP_APPEND)
			cb->appended(j->ctx, j->err);
		else
			cb->queried(j->ctx, j->rows.recs, j->rows.n, j->rows.more, j->err);
		store_job_free(j);
		j = next;
	}
}

void store_inject_failure(struct store *s, int err)
{
	pthread_mutex_lock(&s->lock);
	s->inject_err = err;
	pthread_mutex_unlock(&s->lock);
}
