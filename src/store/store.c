/*
 * store (SQLite): the writer thread, group commit, migrations, the
 * operations. See store.h for the contract.
 */
#include "store.h"

#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include "../core/deadline.h"
#include "../core/idcount.h"
#include "../core/payload.h"
#include "../output.h"
#include "../util.h"
#include "sqlmem.h"
#include "walvfs.h"

#define PURGE_EVERY_MS 1000
#define PURGE_BATCH 500
/* Rows one purge looks at, at most: old tasks not ended (a backlog retrying
 * while the main service is down, with a retention shorter than --retry-max-age)
 * are stepped over in pieces, not all of them each second in the writer. */
#define PURGE_SCAN 5000
#define SCHEMA_VERSION 5 /* README's recipe for a damaged database names it */

enum op_kind { OP_SUBMIT, OP_UPDATE, OP_GET, OP_CANCEL, OP_RETRY, OP_LIST };

struct op {
    struct op *next;
    enum op_kind kind;
    /* update: to be written again (its write failed, or one of its task's
     * before it waits so); taken from the list of those (defer_update) */
    unsigned char defer, again;
    struct store_inbox *inbox; /* NULL: no answer */
    void *cb;
    void *arg;
    int status;
    uint64_t id;
    int state, attempts;
    int64_t next_ms;
    uint64_t delivering_ms;
    /* submit: request_id, payload; update: error, breakdown; list: request_id.
     * Copies kept in text, the op's own allocation; NULL when not given. */
    const char *s1, *s2;
    struct store_list_query q;
    struct task_view *views;
    size_t nviews;
    uint64_t cursor;
    char text[];
};

struct store_inbox {
    struct store *store;
    uv_async_t async;
    uv_mutex_t lock;
    struct op *head, *tail; /* answers, from the writer */
    _Atomic uint64_t pending;
    /* operations made on this loop since its last poll: handed to the writer
     * together, one lock and one wake-up for all, by a check handle (after
     * the I/O callbacks) and a prepare handle (before the loop blocks) */
    uv_check_t flush;
    uv_prepare_t flush_early;
    struct op *out_head, *out_tail;
    size_t nout;
    int closed; /* handles closed, of 3 */
};

/* A run of failures of one kind, for its log: the first is said, then at
 * most one line per period with the count (under load a full disk fails
 * every batch: a line each would flood the log). One thread's. */
struct fail_run {
    uint64_t fails, logged_ms;
};

/* Counts a failure at now (util_now_ms); 1 if it is to be logged. */
static int fail_run_add(struct fail_run *f, uint64_t now, uint64_t period_ms)
{
    if (++f->fails > 1 && now - f->logged_ms < period_ms)
        return 0;
    f->logged_ms = now;
    return 1;
}

struct store {
    sqlite3 *db;
    int memory;
    struct store_config cfg;
    uv_thread_t thread;
    uv_mutex_t db_lock; /* the connection: the writer's, but for store_recover at start */
    uv_thread_t checkpointer; /* sqlite: copies the WAL into the database off the writer */
    sqlite3 *ckpt_db;
    /* the checkpointer's pause: it waits on ckpt_cond (ckpt_lock) until its time
     * comes, the writer wakes it (ckpt_idle: it waits out a long pause) or the
     * store closes (ckpt_stopping) */
    uv_mutex_t ckpt_lock;
    uv_cond_t ckpt_cond;
    int ckpt_stopping;
    _Atomic int ckpt_idle;
    _Atomic uint64_t ckpt_passes; /* checkpoints the checkpointer has run */
    struct fail_run ckpt_errs, catch_up_errs; /* the checkpointer's, the writer's */
    _Atomic uint64_t stat_ckpt_failures;
    uint64_t ckpt_seen;           /* writer thread only: passes when it last caught up */
    uv_mutex_t lock;
    uv_cond_t cond;
    struct op *head, *tail;
    size_t queued;
    int stopping;
    int writer_waiting; /* the writer sleeps on cond: signal it */
    uint64_t active; /* writer thread only */
    struct op *upd_head, *upd_tail; /* writer thread only: updates not yet written */
    struct deadline_heap held; /* writer thread only: outcomes held back, by task id */
    /* writer thread only: updates whose write failed, in their order, written
     * again DEFER_SLICE at a time (see defer_update); how many each task has
     * on it (and in the running batch, kept again); the tasks of those taken
     * that the running batch keeps again */
    struct op *def_head, *def_tail;
    size_t ndef;
    struct idcount def_ids, def_kept;
    uint64_t def_tried_ms; /* monotonic: their last try (0: the next slice at once) */
    uint64_t last_sub_ms;      /* writer thread only: monotonic, last turn with submissions */
    uint64_t last_purge_ms;    /* on purge_clock */
    uint64_t wall0, mono0;     /* the wall and monotonic clocks at the open (purge_clock) */
    uint64_t purge_after; /* writer thread only: the purge's pass goes on past this id */
    uint64_t purge_after_committed; /* writer thread only: purge_after as of the last commit */
    uint64_t purged_uncommitted;    /* writer thread only: rows the open transaction deleted */
    sqlite3_stmt *st_insert, *st_find_active, *st_update, *st_get, *st_cancel, *st_retry,
        *st_purge_scan, *st_purge, *st_list[5], *st_begin, *st_commit;
    _Atomic uint64_t stat_active, stat_commits, stat_queue, stat_purged, stat_catch_ups,
        stat_held, stat_unwritten, stat_wal_frames, stat_cache_bytes;
    uint64_t wal_max_frames;
    _Atomic int fault_full;
    struct fail_run commit_fails; /* writer thread only: since the last commit that passed */
    struct fail_run stmt_fails;   /* writer thread only: see statement_failed */
    /* for store_stats: commit_fails.fails as the writer last set it, every failure, the
     * last one's time */
    _Atomic uint64_t stat_fails, stat_commit_failures, stat_last_fail_ms;
    /* submits whose statement failed since the last stored, the last one's time: a
     * damaged index can refuse every submit while the commits pass */
    uint64_t submit_fails; /* writer thread only */
    _Atomic uint64_t stat_submit_fails, stat_last_submit_fail_ms;
    _Atomic int file_moved; /* the database file was deleted or replaced: writes refused */
    /* ids cancelled by this process, for runners to drop */
    uv_mutex_t cancel_lock;
    _Atomic size_t ncancelled;
    uint64_t *cancelled;
    size_t cancelled_cap;
};

/* What a start that cannot read its tasks back says after the error. */
#define DAMAGED_HINT                                                                        \
    "; the file may be damaged: the service does not start on it, so that no new task is " \
    "accepted into it (README: \"If the database is damaged\")"

static const char *state_names[STATE_COUNT] = {"queued",    "running", "delivering", "retrying",
                                               "succeeded", "failed",  "cancelled"};

const char *task_state_name(int state)
{
    return state >= 0 && state < STATE_COUNT ? state_names[state] : "unknown";
}

int task_state_parse(const char *name, size_t len)
{
    for (int i = 0; i < STATE_COUNT; i++)
        if (strlen(state_names[i]) == len && !memcmp(state_names[i], name, len))
            return i;
    return -1;
}

void store_view_free(struct task_view *v)
{
    free(v->request_id);
    free(v->payload);
    free(v->last_error);
    free(v->breakdown);
    free(v->history);
    memset(v, 0, sizeof *v);
}

/* ---- schema ---- */

static const char *migrations[] = {
    /* 1: the tasks */
    "CREATE TABLE tasks ("
    " id INTEGER PRIMARY KEY,"
    " request_id TEXT NOT NULL,"
    " payload TEXT NOT NULL,"
    " state INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " next_attempt_ms INTEGER,"
    " last_error TEXT,"
    " breakdown TEXT,"
    " history TEXT NOT NULL);"
    "CREATE INDEX tasks_active_request ON tasks(request_id) WHERE state < 4;",
    /* 2: listing by state and request_id, and purging, without a scan */
    "CREATE INDEX tasks_state_id ON tasks(state, id);"
    "CREATE INDEX tasks_request_id ON tasks(request_id, id);",
    /* 3: the active-task lookup uses tasks_request_id (a request_id has few tasks): one
     * index less to keep on every insert and on every task that ends */
    "DROP INDEX tasks_active_request;",
    /* 4: succeeded tasks (nearly all of them) leave the state index: a task that
     * succeeds deletes its entry and inserts none (-8 % of a task's instructions);
     * listing succeeded tasks walks the table by id instead. Queries that want
     * this index say "state <> 4" (SQLite uses a partial index only then). */
    "DROP INDEX tasks_state_id;"
    "CREATE INDEX tasks_state_id ON tasks(state, id) WHERE state <> 4;",
    /* 5: a leaner row (295 -> 84 bytes for the seed's request in flight): the
     * payload in its stored form (payload_stored: no keys, no request_id),
     * and the history without its first two changes, which every task has
     * at created_ms ("queued@<ms> running@<ms>"; read_view puts them back) */
    "UPDATE tasks SET payload = stored_payload(payload, request_id) WHERE payload LIKE '{%';"
    "UPDATE tasks SET history = substr(history, 17 + 2 * length(created_ms))"
    " WHERE substr(history, 1, 16 + 2 * length(created_ms))"
    " = 'queued@' || created_ms || ' running@' || created_ms;",
};

/* Migration 5's stored_payload(payload, request_id): the stored form of the
 * whole canonical JSON that version 4 kept; what it cannot read, unchanged. */
static void sql_stored_payload(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const char *old = (const char *)sqlite3_value_text(argv[0]);
    const char *rid = (const char *)sqlite3_value_text(argv[1]);
    struct exchange *ex;
    if (!old || !rid || payload_from_stored(old, rid, &ex) != 0) {
        sqlite3_result_value(ctx, argv[0]);
        return;
    }
    sqlite3_result_text(ctx, payload_stored(ex), -1, free);
    free(ex);
}

static int exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errlen, "%s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Why the file at path cannot be opened, created or written, where SQLite
 * says only "unable to open database file", "attempt to write a readonly
 * database" or "disk I/O error" (its own errno is of a last read-only try: ENOENT for a
 * directory it may not create in): appended to why, in parentheses. */
static void file_reason(const char *path, char *why, size_t n)
{
    size_t len = strlen(why);
    char dir[4096], wal[4100];
    if (strlen(path) >= sizeof dir)
        return;
    memcpy(dir, path, strlen(path) + 1);
    snprintf(wal, sizeof wal, "%s-wal", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            snprintf(why + len, n - len, " (it is a directory)");
        else if (!S_ISREG(st.st_mode))
            snprintf(why + len, n - len, " (it is not a regular file)");
        else if (access(path, R_OK | W_OK) != 0)
            snprintf(why + len, n - len, " (%s)", strerror(errno));
        else if (access(wal, F_OK) == 0) {
            if (access(wal, R_OK | W_OK) != 0)
                snprintf(why + len, n - len, " (%s: %s)", wal, strerror(errno));
        } else if (access(dir, W_OK | X_OK) != 0) { /* its -wal file goes beside it */
            snprintf(why + len, n - len, " (cannot create its -wal file in %s: %s)", dir,
                     strerror(errno));
        }
        return;
    }
    if (errno != ENOENT)
        snprintf(why + len, n - len, " (%s)", strerror(errno));
    else if (stat(dir, &st) != 0) /* (a dir that is a file made stat(path) ENOTDIR) */
        snprintf(why + len, n - len, " (the directory %s: %s)", dir, strerror(errno));
    else if (access(dir, W_OK | X_OK) != 0)
        snprintf(why + len, n - len, " (cannot create it in %s: %s)", dir, strerror(errno));
}

/* A database of schema 0 is new to us: an empty file, or another
 * program's (a mistyped --store). Its tables would get ours beside them and
 * the file would be held open and locked: refused. 1 when it holds a
 * table, view, index or trigger (err says which), else 0. */
static int foreign_tables(sqlite3 *db, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT type, name FROM sqlite_schema"
                           " WHERE name NOT LIKE 'sqlite!_%' ESCAPE '!' LIMIT 1",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
        return 1;
    }
    int found = sqlite3_step(st) == SQLITE_ROW;
    if (found)
        snprintf(err, errlen,
                 "it holds another program's schema (%s \"%.64s\", and no exchanged version):"
                 " give exchanged a database file of its own",
                 (const char *)sqlite3_column_text(st, 0),
                 (const char *)sqlite3_column_text(st, 1));
    sqlite3_finalize(st);
    return found;
}

static int migrate(sqlite3 *db, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
        return -1;
    }
    int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    if (sqlite3_create_function(db, "stored_payload", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                                sql_stored_payload, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(db));
        return -1;
    }
    if (version > SCHEMA_VERSION) {
        snprintf(err, errlen, "database schema version %d is newer than this program's (%d)",
                 version, SCHEMA_VERSION);
        return -1;
    }
    if (version == 0 && foreign_tables(db, err, errlen))
        return -1;
    for (int v = version; v < SCHEMA_VERSION; v++) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d;", v + 1);
        if (exec(db, "BEGIN IMMEDIATE;", err, errlen) || exec(db, migrations[v], err, errlen) ||
            exec(db, sql, err, errlen) || exec(db, "COMMIT;", err, errlen)) {
            sqlite3_exec(db, "ROLLBACK;", NULL, NULL, NULL);
            return -1;
        }
        if (version > 0)
            log_info("event=store_migrated from=%d to=%d", v, v + 1);
    }
    return 0;
}

static int prepare(struct store *s, sqlite3_stmt **st, const char *sql, char *err, size_t errlen)
{
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s", sqlite3_errmsg(s->db));
        return -1;
    }
    return 0;
}

#define VIEW_COLS \
    "id, state, attempts, created_ms, updated_ms, next_attempt_ms, request_id, payload, " \
    "last_error, breakdown, history"

static int prepare_all(struct store *s, char *err, size_t errlen)
{
    static const char *list_sql[5] = {
        "SELECT " VIEW_COLS " FROM tasks WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
        "SELECT " VIEW_COLS " FROM tasks WHERE state = ?3 AND state <> 4 AND id < ?1"
        " ORDER BY id DESC LIMIT ?2",
        "SELECT " VIEW_COLS " FROM tasks WHERE request_id = ?4 AND id < ?1 ORDER BY id DESC LIMIT ?2",
        "SELECT " VIEW_COLS " FROM tasks WHERE request_id = ?4 AND state = ?3 AND id < ?1 "
        "ORDER BY id DESC LIMIT ?2",
        /* succeeded: not in the state index; the newest ids first, most of them match */
        "SELECT " VIEW_COLS " FROM tasks WHERE state = ?3 AND id < ?1 ORDER BY id DESC LIMIT ?2",
    };
    for (int i = 0; i < 5; i++)
        if (prepare(s, &s->st_list[i], list_sql[i], err, errlen))
            return -1;
    if (prepare(s, &s->st_begin, "BEGIN IMMEDIATE", err, errlen) ||
        prepare(s, &s->st_commit, "COMMIT", err, errlen))
        return -1;
    return prepare(s, &s->st_insert,
                   "INSERT INTO tasks (id, request_id, payload, state, created_ms, updated_ms, "
                   "history) VALUES (?1, ?2, ?3, 1, ?4, ?4, '')",
                   err, errlen) ||
           prepare(s, &s->st_find_active,
                   "SELECT id, payload FROM tasks WHERE request_id = ?1 AND state < 4 LIMIT 1",
                   err, errlen) ||
           prepare(s, &s->st_update,
                   "UPDATE tasks SET state = ?1, updated_ms = ?2, history = history || ' ' || ?3,"
                   " attempts = COALESCE(?4, attempts),"
                   " next_attempt_ms = CASE WHEN ?5 IS NULL THEN next_attempt_ms ELSE ?5 END,"
                   " last_error = COALESCE(?6, last_error), breakdown = COALESCE(?7, breakdown)"
                   " WHERE id = ?8 AND state < 4",
                   err, errlen) ||
           prepare(s, &s->st_get, "SELECT " VIEW_COLS " FROM tasks WHERE id = ?1", err, errlen) ||
           prepare(s, &s->st_cancel,
                   "UPDATE tasks SET state = 6, updated_ms = ?2, history = history || ' ' || ?3,"
                   " next_attempt_ms = NULL WHERE id = ?1 AND state < 4",
                   err, errlen) ||
           prepare(s, &s->st_retry,
                   "UPDATE tasks SET state = 3, attempts = 0, updated_ms = ?2, next_attempt_ms = ?2,"
                   " history = history || ' ' || ?3 WHERE id = ?1 AND state = 5",
                   err, errlen) ||
           prepare(s, &s->st_purge_scan,
                   "SELECT id, state >= 4 AND updated_ms < ?3 FROM tasks WHERE id > ?1 AND "
                   "id < ?2 ORDER BY id LIMIT ?4", /* oldest first, by id */
                   err, errlen) ||
           prepare(s, &s->st_purge, "DELETE FROM tasks WHERE id = ?1", err, errlen);
}

/* ---- operations (writer thread) ---- */

static char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? xstrndup((const char *)t, (size_t)sqlite3_column_bytes(st, i)) : NULL;
}

static void read_view(sqlite3_stmt *st, struct task_view *v)
{
    v->id = (uint64_t)sqlite3_column_int64(st, 0);
    v->state = sqlite3_column_int(st, 1);
    v->attempts = (uint32_t)sqlite3_column_int(st, 2);
    v->created_ms = (uint64_t)sqlite3_column_int64(st, 3);
    v->updated_ms = (uint64_t)sqlite3_column_int64(st, 4);
    v->next_attempt_ms = (uint64_t)sqlite3_column_int64(st, 5);
    v->request_id = col_text(st, 6);
    v->payload = col_text(st, 7);
    v->last_error = col_text(st, 8);
    v->breakdown = col_text(st, 9);
    /* the first two changes are not stored (migration 5) */
    const unsigned char *h = sqlite3_column_text(st, 10);
    size_t hn = h ? (size_t)sqlite3_column_bytes(st, 10) : 0;
    v->history = xmalloc(64 + hn); /* 7 + 20 + 9 + 20 characters at most, and the NUL */
    int n = snprintf(v->history, 64, "queued@%" PRIu64 " running@%" PRIu64, v->created_ms,
                     v->created_ms);
    memcpy(v->history + n, h ? (const char *)h : "", hn + 1);
}

static int get_view(struct store *s, uint64_t id, struct op *op)
{
    sqlite3_stmt *st = s->st_get;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        op->views = xcalloc(1, sizeof *op->views);
        read_view(st, op->views);
        op->nviews = 1;
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? STORE_OK : rc == SQLITE_DONE ? STORE_E_NOTFOUND : STORE_E_IO;
}

/* Frees the views an op read (a read's answer), leaving it none. */
static void op_views_clear(struct op *op)
{
    for (size_t i = 0; i < op->nviews; i++)
        store_view_free(&op->views[i]);
    free(op->views);
    op->views = NULL;
    op->nviews = 0;
}

/* "state@ms" into out (n >= 40), without printf (every write makes some). */
static void history_token(char *out, size_t n, int state, uint64_t now)
{
    const char *name = task_state_name(state);
    size_t len = strlen(name);
    char digits[20], *p = digits + sizeof digits;
    do {
        *--p = (char)('0' + now % 10);
        now /= 10;
    } while (now);
    size_t nd = (size_t)(digits + sizeof digits - p);
    if (len + 1 + nd + 1 > n) {
        out[0] = '\0';
        return;
    }
    memcpy(out, name, len);
    out[len] = '@';
    memcpy(out + len + 1, p, nd);
    out[len + 1 + nd] = '\0';
}

/* One op's statement failed and SQLite undid it alone (the batch's
 * transaction goes on; run_batch sees one it rolled back whole): the op is
 * answered 503, or, for an update no one waits for, written again later
 * (defer_update). Said at the first failure and then at most once per second
 * with the count (a full disk fails them all). */
#define STATEMENT_FAIL_LOG_MS 1000
static void statement_failed(struct store *s, const struct op *op, const char *what,
                             const char *effect)
{
    uint64_t now = util_now_ms();
    if (op->kind == OP_SUBMIT) {
        atomic_store_explicit(&s->stat_last_submit_fail_ms, now, memory_order_relaxed);
        atomic_store_explicit(&s->stat_submit_fails, ++s->submit_fails, memory_order_release);
    }
    if (!fail_run_add(&s->stmt_fails, now, STATEMENT_FAIL_LOG_MS))
        return;
    char q[512];
    log_error("event=store_statement_failed op=%s task=%016" PRIx64 " error=%s "
              "failed_statements=%" PRIu64 ": %s",
              what, op->id, util_quote(q, sizeof q, sqlite3_errmsg(s->db)),
              s->stmt_fails.fails, effect);
}

#define REFUSED "the request is answered 503"

static void do_submit(struct store *s, struct op *op, int64_t *active_delta)
{
    sqlite3_stmt *st = s->st_find_active;
    sqlite3_bind_text(st, 1, op->s1, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        op->id = (uint64_t)sqlite3_column_int64(st, 0);
        const char *payload = (const char *)sqlite3_column_text(st, 1);
        op->status = payload && !strcmp(payload, op->s2) ? STORE_DUPLICATE : STORE_E_CONFLICT;
        sqlite3_reset(st);
        return;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        statement_failed(s, op, "submit", REFUSED);
        op->status = STORE_E_IO;
        return;
    }
    /* held outcomes (see take_held) end their tasks: they take no room */
    uint64_t active = s->active + (uint64_t)*active_delta, held = deadline_len(&s->held);
    if (active - (held < active ? held : active) >= s->cfg.max_active) {
        op->status = STORE_E_FULL;
        return;
    }
    uint64_t now = util_wall_ms();
    st = s->st_insert;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)op->id);
    sqlite3_bind_text(st, 2, op->s1, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, op->s2, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)now);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        statement_failed(s, op, "submit", REFUSED);
        op->status = STORE_E_IO;
        return;
    }
    op->status = STORE_OK;
    (*active_delta)++;
    if (s->submit_fails) {
        s->submit_fails = 0;
        atomic_store_explicit(&s->stat_submit_fails, 0, memory_order_relaxed);
    }
}

/* An update not written, whose write failed (its statement, or its batch's
 * transaction) or whose task has one waiting so: kept on a list, in order,
 * and written again, its task's id noted (def_ids) so that the task's later
 * updates wait behind it: written out of order, an earlier state would
 * replace a later one. Before, such an update was dropped: the task kept its
 * stored state (its status said running after its callback was delivered)
 * until the next start ran it again.
 * next_work takes the list's first DEFER_SLICE every DEFER_RETRY_MS, before
 * the newer updates, and the next slice at once when one passes: while the
 * disk stays full a try costs a slice's statements, not the whole list's
 * (tens of thousands of tasks finish during an outage). An update taken
 * waits only behind one of its task's taken before it and kept again in the
 * same batch (def_kept), not behind the list's rest, which is newer; those
 * kept again go back in front of the rest, the batch's new ones after it.
 * At the stop the whole list is tried once more, and what fails then is
 * left so (the next start resumes those tasks). */
#define DEFER_RETRY_MS 250
#define DEFER_SLICE 256

/* Appends the chain first..last (none when first is NULL) to the list head..tail. */
static void splice(struct op **head, struct op **tail, struct op *first, struct op *last)
{
    if (!first)
        return;
    if (*tail)
        (*tail)->next = first;
    else
        *head = first;
    *tail = last;
}

static void append(struct op **head, struct op **tail, struct op *op)
{
    op->next = NULL;
    splice(head, tail, op, op);
}

/* Milliseconds until the list's next try (0: now). */
static uint64_t defer_wait_ms(const struct store *s)
{
    uint64_t since = util_now_ms() - s->def_tried_ms;
    return since >= DEFER_RETRY_MS ? 0 : DEFER_RETRY_MS - since;
}

static void defer_update(struct store *s, struct op *op)
{
    if (op->defer)
        return; /* once (a lost batch's keeps every update) */
    op->defer = 1;
    idcount_add(&s->def_ids, op->id);
    if (op->again)
        idcount_add(&s->def_kept, op->id);
}

static void do_update(struct store *s, struct op *op, int64_t *active_delta, int stopping)
{
    const struct idcount *ahead = op->again ? &s->def_kept : &s->def_ids;
    if (idcount_len(ahead) && idcount_has(ahead, op->id)) {
        defer_update(s, op); /* behind its task's update that waits */
        return;
    }
    uint64_t now = util_wall_ms();
    char hist[128];
    size_t n = 0;
    if (op->delivering_ms) {
        history_token(hist, sizeof hist, STATE_DELIVERING, op->delivering_ms);
        n = strlen(hist);
        hist[n++] = ' ';
    }
    history_token(hist + n, sizeof hist - n, op->state, now);
    sqlite3_stmt *st = s->st_update;
    sqlite3_bind_int(st, 1, op->state);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
    sqlite3_bind_text(st, 3, hist, -1, SQLITE_TRANSIENT);
    if (op->attempts >= 0)
        sqlite3_bind_int(st, 4, op->attempts);
    else
        sqlite3_bind_null(st, 4);
    if (op->next_ms >= 0)
        sqlite3_bind_int64(st, 5, op->next_ms);
    else
        sqlite3_bind_null(st, 5);
    sqlite3_bind_text(st, 6, op->s1, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, op->s2, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)op->id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    op->status = rc == SQLITE_DONE ? STORE_OK : STORE_E_IO;
    if (rc != SQLITE_DONE) {
        statement_failed(s, op, "update",
                         stopping ? "the update is not written at the stop (the task keeps its "
                                    "stored state until the next start resumes it)"
                                  : "the update is written again later");
        if (!stopping)
            defer_update(s, op);
    }
    if (rc == SQLITE_DONE && sqlite3_changes(s->db) == 1 && op->state >= STATE_SUCCEEDED)
        (*active_delta)--;
}

/* A failed task whose stored request cannot be read back (a database edited
 * by hand, or a payload that migration 5 could not convert) is not moved to
 * retrying: nothing could run it. Returns 1 with op answered (the view,
 * STORE_E_UNREADABLE) or 0 to go on with the change. */
static int retry_unreadable(struct store *s, struct op *op)
{
    if (get_view(s, op->id, op) != STORE_OK)
        return 0; /* not found, or I/O: the change itself answers it */
    const struct task_view *v = &op->views[0];
    struct exchange *ex = NULL;
    int unreadable = v->state == STATE_FAILED &&
                     (!v->payload || !v->request_id ||
                      payload_from_stored(v->payload, v->request_id, &ex) != 0);
    free(ex);
    if (unreadable) {
        op->status = STORE_E_UNREADABLE;
        return 1;
    }
    op_views_clear(op);
    return 0;
}

static void do_change(struct store *s, struct op *op, int64_t *active_delta)
{
    uint64_t now = util_wall_ms();
    char hist[64];
    int cancel = op->kind == OP_CANCEL;
    if (!cancel && retry_unreadable(s, op))
        return;
    history_token(hist, sizeof hist, cancel ? STATE_CANCELLED : STATE_RETRYING, now);
    sqlite3_stmt *st = cancel ? s->st_cancel : s->st_retry;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)op->id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
    sqlite3_bind_text(st, 3, hist, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        statement_failed(s, op, cancel ? "cancel" : "retry", REFUSED);
        op->status = STORE_E_IO;
        return;
    }
    int changed = sqlite3_changes(s->db) == 1;
    if (changed)
        *active_delta += cancel ? -1 : 1;
    op->status = get_view(s, op->id, op);
    if (op->status == STORE_OK && !changed)
        op->status = STORE_E_STATE;
}

static void do_list(struct store *s, struct op *op)
{
    int which = (op->q.state >= 0 ? 1 : 0) + (op->s1 ? 2 : 0);
    if (which == 1 && op->q.state == STATE_SUCCEEDED)
        which = 4;
    sqlite3_stmt *st = s->st_list[which];
    sqlite3_bind_int64(st, 1, op->q.before_id ? (sqlite3_int64)op->q.before_id : INT64_MAX);
    sqlite3_bind_int(st, 2, op->q.limit + 1);
    if (op->q.state >= 0)
        sqlite3_bind_int(st, 3, op->q.state);
    if (op->s1)
        sqlite3_bind_text(st, 4, op->s1, -1, SQLITE_STATIC);
    op->views = xcalloc((size_t)op->q.limit + 1, sizeof *op->views);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (op->nviews == (size_t)op->q.limit) { /* one more exists: a next page */
            op->cursor = op->views[op->nviews - 1].id;
            break;
        }
        read_view(st, &op->views[op->nviews++]);
    }
    sqlite3_reset(st);
    op->status = rc == SQLITE_ROW || rc == SQLITE_DONE ? STORE_OK : STORE_E_IO;
}

/* The purge's now: the wall clock, but never ahead of the wall clock at the
 * open plus the time since on the monotonic clock. A wall clock stepped
 * forward while running (an NTP step at a boot whose clock was behind, a
 * date set by hand) would otherwise make every ended task look older by the
 * step, and a step past --retention purged them all at once; held back, the
 * tasks that ended before it are kept their whole retention (those that end
 * after it are stamped ahead, and kept longer until the next start). */
static uint64_t purge_clock(const struct store *s)
{
    uint64_t wall = util_wall_ms(), ran = s->wall0 + (util_now_ms() - s->mono0);
    return wall < ran ? wall : ran;
}

/* Deletes tasks that ended more than the retention ago (updated_ms is when a
 * task ended), at most PURGE_BATCH a run, looking at PURGE_SCAN rows at most:
 * a pass walks the ids from the oldest and goes on from where the last run
 * stopped. A task ends after it was made and ids are time-ordered (runner.c),
 * so only ids made before the cutoff can match: the pass ends there. */
static void purge(struct store *s)
{
    uint64_t now = purge_clock(s);
    if (now - s->last_purge_ms < (s->cfg.purge_every_ms ? s->cfg.purge_every_ms : PURGE_EVERY_MS))
        return;
    s->last_purge_ms = now;
    if (now < s->cfg.retention_ms)
        return;
    uint64_t before = now - s->cfg.retention_ms;
    uint64_t scan = s->cfg.purge_scan ? s->cfg.purge_scan : PURGE_SCAN;
    sqlite3_int64 ids[PURGE_BATCH];
    int n = 0;
    uint64_t seen = 0, last = s->purge_after;
    sqlite3_stmt *st = s->st_purge_scan;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)s->purge_after);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)(before << 20));
    sqlite3_bind_int64(st, 3, (sqlite3_int64)before);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)scan);
    while (n < PURGE_BATCH && sqlite3_step(st) == SQLITE_ROW) {
        seen++;
        last = (uint64_t)sqlite3_column_int64(st, 0);
        if (sqlite3_column_int(st, 1))
            ids[n++] = (sqlite3_int64)last;
    }
    sqlite3_reset(st);
    /* the pass is over when the scan ran out of rows: the next starts again
     * from the oldest id */
    s->purge_after = n < PURGE_BATCH && seen < scan ? 0 : last;
    int deleted = 0;
    for (int i = 0; i < n; i++) {
        sqlite3_bind_int64(s->st_purge, 1, ids[i]);
        if (sqlite3_step(s->st_purge) == SQLITE_DONE)
            deleted += sqlite3_changes(s->db);
        sqlite3_reset(s->st_purge);
    }
    if (deleted > 0) { /* counted once committed (commit_or_roll_back) */
        s->purged_uncommitted += (uint64_t)deleted;
        s->last_purge_ms = 0; /* more may be waiting: go on at the next turn */
    }
}

/* Hands the answers of one batch to their inboxes: one lock and one wake-up
 * per inbox, not per answer. ops is a list linked by next. */
static void inbox_deliver(struct op *ops)
{
    while (ops) {
        struct store_inbox *in = ops->inbox;
        struct op *mine = NULL, *mine_last = NULL, *rest = NULL, **rest_tail = &rest;
        for (struct op *op = ops, *next; op; op = next) {
            next = op->next;
            op->next = NULL;
            if (op->inbox == in) {
                append(&mine, &mine_last, op);
            } else {
                *rest_tail = op;
                rest_tail = &op->next;
            }
        }
        uv_mutex_lock(&in->lock);
        splice(&in->head, &in->tail, mine, mine_last);
        uv_mutex_unlock(&in->lock);
        uv_async_send(&in->async);
        ops = rest;
    }
}

static void op_free(struct op *op)
{
    op_views_clear(op);
    free(op);
}

static void cancelled_add(struct store *s, uint64_t id)
{
    uv_mutex_lock(&s->cancel_lock);
    if (s->ncancelled == s->cancelled_cap) {
        s->cancelled_cap = s->cancelled_cap ? s->cancelled_cap * 2 : 16;
        s->cancelled = xrealloc(s->cancelled, s->cancelled_cap * sizeof *s->cancelled);
    }
    s->cancelled[s->ncancelled] = id;
    atomic_fetch_add(&s->ncancelled, 1);
    uv_mutex_unlock(&s->cancel_lock);
}

/* BEGIN and COMMIT, prepared once (sqlite3_exec would compile them per batch). */
static int step_once(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* 1 once the database file is no longer at its path (deleted, moved or
 * replaced while open: SQLite goes on writing to the old file, which the
 * next start would not find). Checked before each commit, so that nothing
 * is acknowledged that a restart would lose (a stat(2) per commit). */
static int file_moved(struct store *s)
{
    if (s->memory)
        return 0;
    if (atomic_load_explicit(&s->file_moved, memory_order_relaxed))
        return 1;
    int moved = 0;
    if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) != SQLITE_OK ||
        !moved)
        return 0;
    char path[1024];
    log_error("event=store_file_moved path=%s error=\"the database file was deleted, moved"
              " or replaced while open\": new tasks are refused (503) until a restart; the tasks"
              " in flight go on, but a restart will not find them",
              util_quote(path, sizeof path, sqlite3_db_filename(s->db, "main")));
    atomic_store(&s->file_moved, 1);
    return 1;
}

/* A commit failed (a full disk, mostly) and was rolled back; its
 * operations are answered 503. Logged as a fail_run, once per
 * COMMIT_FAIL_LOG_MS at most; store_commit_recovered says when a commit
 * passes again. */
#define COMMIT_FAIL_LOG_MS 1000
static void commit_failed(struct store *s, const char *error)
{
    uint64_t now = util_now_ms();
    int say = fail_run_add(&s->commit_fails, now, COMMIT_FAIL_LOG_MS);
    atomic_store_explicit(&s->stat_last_fail_ms, now, memory_order_relaxed);
    atomic_store_explicit(&s->stat_fails, s->commit_fails.fails,
                          memory_order_release); /* after its time */
    atomic_fetch_add_explicit(&s->stat_commit_failures, 1, memory_order_relaxed);
    if (!say)
        return;
    char q[512];
    log_error("event=store_commit_failed error=%s failed_commits=%" PRIu64
              ": the batch's requests are answered 503 until a commit passes",
              util_quote(q, sizeof q, error), s->commit_fails.fails);
}

/* Commits the writer's transaction (a batch, or an idle run of the purge):
 * 0; or -1 once it is rolled back (a full disk, a file moved: a commit that
 * fails may leave its transaction open, and the next BEGIN would then fail
 * for good). A failed fsync ends the process. The purge's deletions count,
 * and its pass moves on, only with a commit. */
static int commit_or_roll_back(struct store *s)
{
    int rc = atomic_load(&s->fault_full) ? SQLITE_FULL
             : file_moved(s)             ? SQLITE_READONLY_DBMOVED
                                         : step_once(s->st_commit);
    if (rc == SQLITE_OK) {
        atomic_fetch_add(&s->stat_commits, 1);
        atomic_fetch_add(&s->stat_purged, s->purged_uncommitted);
        s->purged_uncommitted = 0;
        s->purge_after_committed = s->purge_after;
        if (s->commit_fails.fails) {
            log_info("event=store_commit_recovered failed_commits=%" PRIu64,
                     s->commit_fails.fails);
            s->commit_fails.fails = 0;
            atomic_store_explicit(&s->stat_fails, 0, memory_order_relaxed);
        }
        return 0;
    }
    int ext = rc == SQLITE_FULL ? SQLITE_FULL : sqlite3_extended_errcode(s->db);
    if (ext == SQLITE_IOERR_FSYNC || ext == SQLITE_IOERR_DIR_FSYNC) {
        /* A failed fsync cannot be trusted to have written anything:
         * stop, and let the next start recover from what is on disk. */
        char q[512];
        log_error("event=store_fsync_failed error=%s: stopping",
                  util_quote(q, sizeof q, sqlite3_errmsg(s->db)));
        output_flush(1000);
        _exit(70);
    }
    if (rc != SQLITE_READONLY_DBMOVED) /* said once, by file_moved */
        commit_failed(s, rc == SQLITE_FULL && atomic_load(&s->fault_full)
                             ? "database or disk is full (fault seam)"
                             : sqlite3_errmsg(s->db));
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    if (s->purged_uncommitted) { /* undone: the pass goes over those rows again, in a second */
        s->purged_uncommitted = 0;
        s->purge_after = s->purge_after_committed;
        s->last_purge_ms = purge_clock(s);
    }
    return -1;
}

/* A batch refused without a commit failing: logged, counted and shown in
 * /health as a failed commit is (what: why, SQLite's message after it). */
static void batch_refused(struct store *s, const char *what)
{
    char why[300];
    snprintf(why, sizeof why, "%s: %s", what, sqlite3_errmsg(s->db));
    commit_failed(s, why);
}

/* A read of a batch that was rolled back: what it read inside the batch's
 * transaction may be gone (a task listed whose submission was then
 * refused), so it reads again what is committed, outside any transaction;
 * with one still open (its rollback failed too), it is answered 503. */
static void read_again(struct store *s, struct op *op)
{
    op_views_clear(op);
    op->cursor = 0;
    if (!sqlite3_get_autocommit(s->db))
        op->status = STORE_E_IO;
    else if (op->kind == OP_GET)
        op->status = get_view(s, op->id, op);
    else
        do_list(s, op);
}

/* Runs one batch in one transaction (the last ones when stopping). */
static void run_batch(struct store *s, struct op *ops, int stopping)
{
    int64_t delta = 0;
    int open = step_once(s->st_begin) == SQLITE_OK, lost = !open; /* the batch's transaction */
    if (!open)
        batch_refused(s, "cannot begin the batch's transaction");
    for (struct op *op = ops; op; op = op->next) {
        if (!open) {
            op->status = STORE_E_IO;
            continue;
        }
        switch (op->kind) {
        case OP_SUBMIT: do_submit(s, op, &delta); break;
        case OP_UPDATE: do_update(s, op, &delta, stopping); break;
        case OP_GET: op->status = get_view(s, op->id, op); break;
        case OP_CANCEL:
        case OP_RETRY: do_change(s, op, &delta); break;
        case OP_LIST: do_list(s, op); break;
        }
        /* A statement's SQLITE_FULL, IOERR, NOMEM or BUSY that SQLite cannot
         * undo alone rolls the whole transaction back: the ops after it
         * would each commit on their own (tasks stored, answered 503, and
         * started by nothing until the next start). */
        if (sqlite3_get_autocommit(s->db)) {
            batch_refused(s, "the batch's transaction was rolled back");
            open = 0;
            lost = 1;
        }
    }
    if (open) {
        purge(s);
        lost = commit_or_roll_back(s) != 0;
    }
    if (lost) {
        delta = 0;
        for (struct op *op = ops; op; op = op->next)
            if (op->kind == OP_GET || op->kind == OP_LIST)
                read_again(s, op);
            else {
                op->status = STORE_E_IO;
                if (op->kind == OP_UPDATE && !stopping)
                    defer_update(s, op);
            }
    }
    s->active = (uint64_t)((int64_t)s->active + delta);
    atomic_store(&s->stat_active, s->active);
    struct op *answers = NULL, **tail = &answers;
    struct op *op = ops;
    size_t again = 0, dropped = 0, taken = 0;
    /* kept again: those taken from the list (in front of its rest), the new ones */
    struct op *kept = NULL, *kept_tail = NULL, *fresh = NULL, *fresh_tail = NULL;
    int had_list = s->def_head != NULL;
    while (op) {
        struct op *next = op->next;
        if (op->kind == OP_CANCEL && op->status == STORE_OK)
            cancelled_add(s, op->id);
        taken += op->again;
        if (op->defer) { /* in batch order */
            op->defer = 0;
            if (op->again)
                append(&kept, &kept_tail, op);
            else
                append(&fresh, &fresh_tail, op);
            op->again = 1;
            s->ndef++;
        } else if (op->inbox) {
            op->next = NULL;
            *tail = op;
            tail = &op->next;
        } else {
            again += op->again && op->status == STORE_OK;
            dropped += stopping && op->kind == OP_UPDATE && op->status != STORE_OK;
            op_free(op);
        }
        op = next;
    }
    if (kept) { /* in front of the list's rest */
        splice(&kept, &kept_tail, s->def_head, s->def_tail);
        s->def_head = kept;
        s->def_tail = kept_tail;
    }
    splice(&s->def_head, &s->def_tail, fresh, fresh_tail);
    idcount_clear(&s->def_kept);
    if (!s->def_head)
        idcount_clear(&s->def_ids); /* empty already: gives a large table back */
    else if (taken && !kept && had_list)
        s->def_tried_ms = 0; /* a slice passed: the next one at once */
    else if (!taken && !had_list)
        s->def_tried_ms = util_now_ms(); /* the first: tried again DEFER_RETRY_MS from now */
    atomic_store_explicit(&s->stat_unwritten, s->ndef, memory_order_relaxed);
    if (again)
        log_info("event=store_updates_written_again updates=%zu waiting=%zu", again, s->ndef);
    if (dropped)
        log_warn("event=store_updates_not_written updates=%zu: the stop leaves their tasks in "
                 "their stored state; the next start resumes them",
                 dropped);
    inbox_deliver(answers);
}

/* The checkpointer: a second connection that copies the WAL into the
 * database every CHECKPOINT_EVERY_MS (PASSIVE: it never blocks the writer),
 * so the writer's commits do not stall on a checkpoint of their own; at once
 * when a commit finds the WAL past half its limit (on_wal wakes it), and then
 * every CHECKPOINT_NEAR_LIMIT_MS while it stays past with frames left to copy. */
#define CHECKPOINT_EVERY_MS 200
#define CHECKPOINT_NEAR_LIMIT_MS 2
/* A PASSIVE checkpoint of db by one thread (who). One that fails (an I/O
 * error, a full disk as the database file grows; not SQLITE_BUSY, another
 * one running) leaves its frames in the WAL, which grows until one passes:
 * said at the first failure and then at most once per CHECKPOINT_FAIL_LOG_MS
 * with the count, and when one passes again; counted in the stats. */
#define CHECKPOINT_FAIL_LOG_MS 60000
/* Returns the WAL's frames copied into the database as of this checkpoint
 * (all of them but for what came during it), or -1 when it did not run. */
static int64_t checkpoint(struct store *s, sqlite3 *db, struct fail_run *e, const char *who)
{
    int copied = -1;
    int rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, &copied);
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        return -1;
    if (rc == SQLITE_OK) {
        if (e->fails)
            log_info("event=store_checkpoint_recovered by=%s failed_checkpoints=%" PRIu64, who,
                     e->fails);
        e->fails = 0;
        return copied;
    }
    atomic_fetch_add_explicit(&s->stat_ckpt_failures, 1, memory_order_relaxed);
    if (!fail_run_add(e, util_now_ms(), CHECKPOINT_FAIL_LOG_MS))
        return -1;
    char q[512];
    log_error("event=store_checkpoint_failed by=%s error=%s failed_checkpoints=%" PRIu64
              " wal_frames=%" PRIu64 ": the WAL keeps growing until a checkpoint passes",
              who, util_quote(q, sizeof q, sqlite3_errmsg(db)), e->fails,
              atomic_load_explicit(&s->stat_wal_frames, memory_order_relaxed));
    return -1;
}

/* The WAL is past half its limit (see checkpointer_main). */
static int wal_near_limit(struct store *s)
{
    return atomic_load(&s->stat_wal_frames) >= s->wal_max_frames / 2;
}

static void checkpointer_main(void *arg)
{
    struct store *s = arg;
    uint64_t every_ms = s->cfg.ckpt_every_ms ? s->cfg.ckpt_every_ms : CHECKPOINT_EVERY_MS;
    uv_mutex_lock(&s->ckpt_lock);
    while (!s->ckpt_stopping) {
        uv_mutex_unlock(&s->ckpt_lock);
        int64_t copied = checkpoint(s, s->ckpt_db, &s->ckpt_errs, "checkpointer");
        atomic_fetch_add(&s->ckpt_passes, 1);
        uv_mutex_lock(&s->ckpt_lock);
        if (s->ckpt_stopping)
            break;
        /* a WAL near its limit with frames left to copy (commits came during the
         * pass, or it did not run): pass after pass, each copying what came during
         * the last, so that what the writer has left to copy (wal_catch_up) is
         * little. Else the long pause — one with nothing left, as after a load,
         * when the WAL keeps its length until the next commit: passing every 2 ms
         * then cost an idle service 1.4 % of a core — cut short by a commit while
         * the WAL is past half: one that grows faster than a pause lets it
         * (random keys in a large index dirty a page per task) would otherwise be
         * left whole to the writer. idle before the second look at the WAL, and
         * on_wal's store of its length before its look at idle (both
         * sequentially consistent): such a commit either finds idle set or is
         * seen here. */
        uint64_t frames = atomic_load(&s->stat_wal_frames);
        if (wal_near_limit(s) && (copied < 0 || frames > (uint64_t)copied)) {
            uv_cond_timedwait(&s->ckpt_cond, &s->ckpt_lock, CHECKPOINT_NEAR_LIMIT_MS * 1000000ull);
            continue;
        }
        atomic_store(&s->ckpt_idle, 1);
        if (atomic_load(&s->stat_wal_frames) == frames || !wal_near_limit(s))
            uv_cond_timedwait(&s->ckpt_cond, &s->ckpt_lock, every_ms * 1000000ull);
        atomic_store(&s->ckpt_idle, 0);
    }
    uv_mutex_unlock(&s->ckpt_lock);
}

/* Ends the checkpointer's pause: now (wake), or for good (stop). */
static void checkpointer_wake(struct store *s, int stop)
{
    uv_mutex_lock(&s->ckpt_lock);
    if (stop)
        s->ckpt_stopping = 1;
    atomic_store(&s->ckpt_idle, 0);
    uv_cond_signal(&s->ckpt_cond);
    uv_mutex_unlock(&s->ckpt_lock);
}

/* Frames in the WAL past which the writer checkpoints (see wal_catch_up). */
#define WAL_MAX_FRAMES 8192
/* Without a checkpointer thread, as SQLite's own automatic checkpoint. */
#define WAL_MAX_FRAMES_ALONE 1000

static int on_wal(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    struct store *s = arg;
    atomic_store(&s->stat_wal_frames, (uint64_t)frames);
    if (atomic_load(&s->ckpt_idle) && wal_near_limit(s))
        checkpointer_wake(s, 0);
    return SQLITE_OK;
}

/* The WAL starts again from its beginning only when a write transaction
 * begins with every frame already copied into the database. Under a steady
 * load the checkpointer never sees that moment (commits land while it
 * copies), so the WAL would grow for as long as the load lasts. Past
 * wal_max_frames, and after a pass of the checkpointer (which has copied
 * nearly everything), the writer copies the rest itself between two
 * transactions: a short copy, after which its next commit rewinds the WAL. */
static void wal_catch_up(struct store *s)
{
    if (s->memory ||
        atomic_load_explicit(&s->stat_wal_frames, memory_order_relaxed) < s->wal_max_frames)
        return;
    if (s->ckpt_db) {
        uint64_t passes = atomic_load(&s->ckpt_passes);
        if (passes == s->ckpt_seen)
            return;
        s->ckpt_seen = passes;
    }
    checkpoint(s, s->db, &s->catch_up_errs, "writer");
    atomic_fetch_add(&s->stat_catch_ups, 1);
}

/* State updates written per transaction when nothing else waits. */
#define UPDATE_SLICE 256
/* Outcomes held back at most: past it the lowest ids are written at once. */
#define HOLD_MAX 65536
/* A writer with no submission for this long writes every outcome it holds
 * (unless the configuration says otherwise: hold_quiet_ms). */
#define HOLD_QUIET_MS 20

/* Appends up to max non-terminal updates to head/tail, in their order. */
static size_t take_fifo(struct store *s, struct op **head, struct op **tail, size_t max)
{
    size_t n = 0;
    while (n < max && s->upd_head) {
        struct op *op = s->upd_head;
        s->upd_head = op->next;
        if (!s->upd_head)
            s->upd_tail = NULL;
        append(head, tail, op);
        n++;
    }
    return n;
}

/* A due time past every task id's creation time: all held outcomes are due. */
#define HELD_ALL (UINT64_MAX >> 21)

/* Outcomes (terminal updates) are held back and written in task-id order,
 * a range of ids at a time: a task's row sits on the page of the tasks
 * submitted with it, so written as they come (latencies spread over
 * seconds) each outcome dirtied pages of its own, and written by id range
 * a page takes all of its tasks' outcomes in one write. An outcome is held
 * (in a heap keyed by the task id, whose high bits are its creation time in
 * ms: runner.c) until its task is hold_ms old, or until the writer has seen
 * no submission for hold_quiet_ms, an API operation concerns it (a list:
 * all of them), HOLD_MAX are held, or the store stops. Only terminal
 * updates are held (one per task, the last), so a task's updates keep
 * their order. Held outcomes are not on disk: a crash re-runs their tasks,
 * and their callbacks come again (at least once, as the contract says).
 * Appends up to max of those that may go, lowest ids first (all of them
 * when all is set). */
static void take_held(struct store *s, struct op **head, struct op **tail, size_t max, int all)
{
    uint64_t due = all ? HELD_ALL : util_wall_ms() - s->cfg.hold_ms;
    uint32_t tag;
    for (size_t n = 0; n < max; n++) {
        struct op *op = deadline_pop_due(&s->held,
                                         deadline_len(&s->held) > HOLD_MAX ? HELD_ALL : due, &tag);
        if (!op)
            break;
        append(head, tail, op);
    }
}

/* Milliseconds until the writer must release held outcomes (0: now). */
static uint64_t held_wait_ms(struct store *s)
{
    uint64_t top, now = util_now_ms(), wall = util_wall_ms();
    deadline_peek(&s->held, &top);
    uint64_t quiet = s->last_sub_ms + s->cfg.hold_quiet_ms, due = top + s->cfg.hold_ms;
    if (now >= quiet || wall >= due || deadline_len(&s->held) > HOLD_MAX)
        return 0;
    return quiet - now < due - wall ? quiet - now : due - wall;
}

/* What the next transaction runs, from what was just queued (ops, in
 * order) and the updates held back. Submissions do not wait behind a pile
 * of updates: nobody waits for an update, and a submission never concerns
 * a task an update is about (a task starts only after its insert is
 * committed), so updates stay with the writer (see take_held for the
 * outcomes) and are written in bounded numbers: with the submissions (see
 * take below), or UPDATE_SLICE at a time when none is waiting. A read or
 * change asked through the API (get, list, cancel, retry) runs after every
 * update held back that concerns it, as it would have in queue order. */
static struct op *next_work(struct store *s, struct op *ops, int stopping)
{
    struct op *sub = NULL, *sub_tail = NULL, *other = NULL, *other_tail = NULL;
    size_t nsub = 0;
    /* a task whose id is ahead of the wall clock (set back since: runner.c
     * gives ids past the stored ones) has no age to wait for: not held, or
     * its outcome would wait until the clock caught up (or 65,536 piled up) */
    uint64_t wall = util_wall_ms();
    while (ops) {
        struct op *next = ops->next;
        if (ops->kind == OP_UPDATE && ops->state >= STATE_SUCCEEDED && s->cfg.hold_ms &&
            (ops->id >> 20) <= wall)
            deadline_push(&s->held, ops->id >> 20, ops, (uint32_t)(ops->id & DEADLINE_TAG_MAX));
        else if (ops->kind == OP_UPDATE)
            append(&s->upd_head, &s->upd_tail, ops);
        else if (ops->kind == OP_SUBMIT) {
            append(&sub, &sub_tail, ops);
            nsub++;
        }
        else
            append(&other, &other_tail, ops);
        ops = next;
    }
    if (sub)
        s->last_sub_ms = util_now_ms();
    /* the updates to write again (defer_update), a slice of them (all at the
     * stop), before newer ones; def_ids then counts the rest's */
    if (s->def_head && (stopping || !defer_wait_ms(s))) {
        struct op *first = s->def_head, *last = first;
        size_t n = 1;
        idcount_remove(&s->def_ids, first->id);
        for (; (stopping || n < DEFER_SLICE) && last->next; n++) {
            last = last->next;
            idcount_remove(&s->def_ids, last->id);
        }
        s->def_head = last->next;
        last->next = NULL;
        if (!s->def_head)
            s->def_tail = NULL;
        s->ndef -= n;
        splice(&sub, &sub_tail, first, last);
        s->def_tried_ms = util_now_ms();
    }
    /* with submissions, as many held-back updates as there are submissions
     * (at least UPDATE_SLICE / 4): under a steady load updates are written
     * as fast as they come, and an acknowledgement waits behind at most as
     * many of them as there are submissions in its transaction */
    size_t take = sub ? (nsub > UPDATE_SLICE / 4 ? nsub : UPDATE_SLICE / 4) : UPDATE_SLICE;
    int all = stopping || util_now_ms() - s->last_sub_ms >= s->cfg.hold_quiet_ms;
    /* the API's ops come after every non-terminal update, and after the
     * outcomes they are about: a list wants them all, a get, cancel or retry
     * only its task's (not every held one, which under load would stall
     * everything behind one status poll) */
    int list = 0;
    for (struct op *op = other; op; op = op->next)
        list |= op->kind == OP_LIST;
    size_t n = take_fifo(s, &sub, &sub_tail, other ? SIZE_MAX : take);
    take_held(s, &sub, &sub_tail, list ? SIZE_MAX : (n < take ? take - n : 0), all || list);
    if (!other)
        return sub;
    if (!list)
        for (struct op *op = other; op; op = op->next) {
            size_t at = deadline_find(&s->held, op->id >> 20, (uint32_t)(op->id & DEADLINE_TAG_MAX));
            if (at != DEADLINE_NONE)
                append(&sub, &sub_tail, deadline_remove(&s->held, at));
        }
    if (sub_tail)
        sub_tail->next = other;
    else
        sub = other;
    return sub;
}

static void writer_main(void *arg)
{
    struct store *s = arg;
    uv_mutex_lock(&s->lock);
    for (;;) {
        while (!s->head && !s->upd_head && !s->stopping) {
            uint64_t wait_ms = PURGE_EVERY_MS;
            if (deadline_len(&s->held)) {
                wait_ms = held_wait_ms(s);
                if (!wait_ms)
                    break;
            }
            if (s->def_head) { /* updates to write again */
                uint64_t due = defer_wait_ms(s);
                if (!due)
                    break;
                if (due < wait_ms)
                    wait_ms = due;
            }
            s->writer_waiting = 1;
            int rc = uv_cond_timedwait(&s->cond, &s->lock, wait_ms * 1000000);
            s->writer_waiting = 0;
            if (rc != 0)
                break; /* a quiet second (purge), or held outcomes to write */
        }
        struct op *ops = s->head;
        s->head = s->tail = NULL;
        s->queued = 0;
        atomic_store(&s->stat_queue, 0);
        int stopping = s->stopping;
        uv_mutex_unlock(&s->lock);
        uv_mutex_lock(&s->db_lock);
        ops = next_work(s, ops, stopping);
        atomic_store_explicit(&s->stat_held, deadline_len(&s->held), memory_order_relaxed);
        if (ops) {
            run_batch(s, ops, stopping);
            wal_catch_up(s);
            int used = 0, high = 0;
            sqlite3_db_status(s->db, SQLITE_DBSTATUS_CACHE_USED, &used, &high, 0);
            atomic_store_explicit(&s->stat_cache_bytes, (uint64_t)used, memory_order_relaxed);
        } else if (!stopping) {
            if (step_once(s->st_begin) == SQLITE_OK) {
                purge(s);
                if (s->purged_uncommitted)
                    commit_or_roll_back(s);
                else if (step_once(s->st_commit) != SQLITE_OK) /* it wrote nothing, but */
                    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL); /* never left open */
            }
        }
        uv_mutex_unlock(&s->db_lock);
        uv_mutex_lock(&s->lock);
        if (stopping && !s->head && !s->upd_head && !deadline_len(&s->held) && !s->def_head)
            break;
    }
    uv_mutex_unlock(&s->lock);
}

/* Appends the list first..last (n operations) to the writer's queue. */
static void enqueue_list(struct store *s, struct op *first, struct op *last, size_t n)
{
    uv_mutex_lock(&s->lock);
    splice(&s->head, &s->tail, first, last);
    s->queued += n;
    atomic_store(&s->stat_queue, s->queued);
    int wake = s->writer_waiting; /* a busy writer takes the queue when its commit ends */
    s->writer_waiting = 0;
    uv_mutex_unlock(&s->lock);
    if (wake)
        uv_cond_signal(&s->cond);
}

static void inbox_flush(struct store_inbox *in)
{
    if (!in->out_head)
        return;
    struct op *first = in->out_head, *last = in->out_tail;
    size_t n = in->nout;
    in->out_head = in->out_tail = NULL;
    in->nout = 0;
    enqueue_list(in->store, first, last, n);
}

static void on_flush(uv_check_t *h)
{
    inbox_flush(h->data);
}

static void on_flush_early(uv_prepare_t *h)
{
    inbox_flush(h->data);
}

/* From a loop with an inbox, the operation waits for the end of the loop's
 * I/O callbacks, or for the loop to be about to block (see on_flush);
 * without one it goes to the writer at once. */
static void enqueue(struct store *s, struct store_inbox *in, struct op *op)
{
    op->next = NULL;
    if (!in) {
        enqueue_list(s, op, op, 1);
        return;
    }
    if (in->out_tail)
        in->out_tail->next = op;
    else
        in->out_head = op;
    in->out_tail = op;
    in->nout++;
}

/* ---- inboxes (loop threads) ---- */

static void on_inbox(uv_async_t *a)
{
    struct store_inbox *in = a->data;
    uv_mutex_lock(&in->lock);
    struct op *op = in->head;
    in->head = in->tail = NULL;
    uv_mutex_unlock(&in->lock);
    while (op) {
        struct op *next = op->next;
        switch (op->kind) {
        case OP_SUBMIT: ((store_submit_cb)op->cb)(op->arg, op->status, op->id); break;
        case OP_GET:
        case OP_CANCEL:
        case OP_RETRY:
            ((store_view_cb)op->cb)(op->arg, op->status, op->nviews ? op->views : NULL);
            break;
        case OP_LIST:
            ((store_list_cb)op->cb)(op->arg, op->status, op->views, op->nviews, op->cursor);
            break;
        case OP_UPDATE: break;
        }
        atomic_fetch_sub(&in->pending, 1);
        op_free(op);
        op = next;
    }
}

struct store_inbox *store_inbox_new(struct store *s, uv_loop_t *loop)
{
    struct store_inbox *in = xcalloc(1, sizeof *in);
    in->store = s;
    uv_mutex_init(&in->lock);
    uv_async_init(loop, &in->async, on_inbox);
    in->async.data = in;
    /* both run at every turn, and neither keeps the loop alive */
    uv_check_init(loop, &in->flush);
    in->flush.data = in;
    uv_check_start(&in->flush, on_flush);
    uv_unref((uv_handle_t *)&in->flush);
    uv_prepare_init(loop, &in->flush_early);
    in->flush_early.data = in;
    uv_prepare_start(&in->flush_early, on_flush_early);
    uv_unref((uv_handle_t *)&in->flush_early);
    return in;
}

uint64_t store_inbox_pending(struct store_inbox *in)
{
    return atomic_load(&in->pending);
}

static void on_inbox_closed(uv_handle_t *h)
{
    struct store_inbox *in = h->data;
    if (++in->closed < 3)
        return;
    uv_mutex_destroy(&in->lock);
    free(in);
}

void store_inbox_close(struct store_inbox *in)
{
    inbox_flush(in);      /* what this loop asked goes to the writer */
    on_inbox(&in->async); /* answers already delivered are not lost */
    uv_close((uv_handle_t *)&in->async, on_inbox_closed);
    uv_close((uv_handle_t *)&in->flush, on_inbox_closed);
    uv_close((uv_handle_t *)&in->flush_early, on_inbox_closed);
}

/* ---- public operations ---- */

/* A new operation with copies of the strings s1 and s2 (either may be NULL),
 * all in one allocation. */
static struct op *op_new(enum op_kind kind, struct store_inbox *in, void *cb, void *arg,
                         const char *s1, const char *s2)
{
    size_t n1 = s1 ? strlen(s1) + 1 : 0, n2 = s2 ? strlen(s2) + 1 : 0;
    struct op *op = xmalloc(sizeof *op + n1 + n2);
    memset(op, 0, sizeof *op);
    if (s1)
        op->s1 = memcpy(op->text, s1, n1);
    if (s2)
        op->s2 = memcpy(op->text + n1, s2, n2);
    op->kind = kind;
    op->inbox = in;
    op->cb = cb;
    op->arg = arg;
    if (in)
        atomic_fetch_add(&in->pending, 1);
    return op;
}

void store_submit(struct store *s, struct store_inbox *in, const struct store_submit *t,
                  store_submit_cb cb, void *arg)
{
    struct op *op = op_new(OP_SUBMIT, in, (void *)cb, arg, t->request_id, t->payload);
    op->id = t->id;
    enqueue(s, in, op);
}

void store_update(struct store *s, struct store_inbox *in, const struct store_change *c)
{
    struct op *op = op_new(OP_UPDATE, NULL, NULL, NULL, c->last_error, c->breakdown);
    op->id = c->id;
    op->state = c->state;
    op->attempts = c->attempts;
    op->next_ms = c->next_attempt_ms;
    op->delivering_ms = c->delivering_ms;
    enqueue(s, in, op);
}

static void view_op(struct store *s, enum op_kind kind, struct store_inbox *in, uint64_t id,
                    store_view_cb cb, void *arg)
{
    struct op *op = op_new(kind, in, (void *)cb, arg, NULL, NULL);
    op->id = id;
    enqueue(s, in, op);
}

void store_get(struct store *s, struct store_inbox *in, uint64_t id, store_view_cb cb, void *arg)
{
    view_op(s, OP_GET, in, id, cb, arg);
}

void store_cancel(struct store *s, struct store_inbox *in, uint64_t id, store_view_cb cb,
                  void *arg)
{
    view_op(s, OP_CANCEL, in, id, cb, arg);
}

void store_retry(struct store *s, struct store_inbox *in, uint64_t id, store_view_cb cb,
                 void *arg)
{
    view_op(s, OP_RETRY, in, id, cb, arg);
}

void store_list(struct store *s, struct store_inbox *in, const struct store_list_query *q,
                store_list_cb cb, void *arg)
{
    struct op *op = op_new(OP_LIST, in, (void *)cb, arg, q->request_id, NULL);
    op->q = *q;
    if (op->q.limit < 1)
        op->q.limit = 1;
    if (op->q.limit > 500)
        op->q.limit = 500;
    op->q.request_id = NULL;
    enqueue(s, in, op);
}

int store_is_cancelled(struct store *s, uint64_t id)
{
    if (atomic_load_explicit(&s->ncancelled, memory_order_acquire) == 0)
        return 0;
    int found = 0;
    uv_mutex_lock(&s->cancel_lock);
    for (size_t i = 0; i < s->ncancelled && !found; i++)
        found = s->cancelled[i] == id;
    uv_mutex_unlock(&s->cancel_lock);
    return found;
}

void store_forget_cancelled(struct store *s, uint64_t id)
{
    uv_mutex_lock(&s->cancel_lock);
    for (size_t i = 0; i < s->ncancelled; i++)
        if (s->cancelled[i] == id) {
            s->cancelled[i] = s->cancelled[s->ncancelled - 1];
            atomic_fetch_sub(&s->ncancelled, 1);
            break;
        }
    uv_mutex_unlock(&s->cancel_lock);
}

void store_stats_read(struct store *s, struct store_stats *out)
{
    out->active = atomic_load_explicit(&s->stat_active, memory_order_relaxed);
    out->commits = atomic_load_explicit(&s->stat_commits, memory_order_relaxed);
    out->file_moved = atomic_load_explicit(&s->file_moved, memory_order_relaxed);
    out->queue_len = atomic_load_explicit(&s->stat_queue, memory_order_relaxed);
    out->purged = atomic_load_explicit(&s->stat_purged, memory_order_relaxed);
    out->wal_catch_ups = atomic_load_explicit(&s->stat_catch_ups, memory_order_relaxed);
    out->held = atomic_load_explicit(&s->stat_held, memory_order_relaxed);
    out->unwritten = atomic_load_explicit(&s->stat_unwritten, memory_order_relaxed);
    out->wal_frames = atomic_load_explicit(&s->stat_wal_frames, memory_order_relaxed);
    out->cache_bytes = atomic_load_explicit(&s->stat_cache_bytes, memory_order_relaxed);
    out->checkpoints = atomic_load_explicit(&s->ckpt_passes, memory_order_relaxed);
    out->checkpoint_failures = atomic_load_explicit(&s->stat_ckpt_failures, memory_order_relaxed);
    out->commit_failures = atomic_load_explicit(&s->stat_commit_failures, memory_order_relaxed);
    out->failing_commits = atomic_load_explicit(&s->stat_fails, memory_order_acquire);
    out->failing_submits = atomic_load_explicit(&s->stat_submit_fails, memory_order_acquire);
    /* each run of failures counts for the hold after its last one (its time was
     * stored before its count: acquire above, then the time) */
    uint64_t hold = s->cfg.failing_hold_ms ? s->cfg.failing_hold_ms : STORE_FAILING_HOLD_MS;
    uint64_t now = util_now_ms();
    uint64_t since_commit = now - atomic_load_explicit(&s->stat_last_fail_ms, memory_order_relaxed);
    uint64_t since_submit =
        now - atomic_load_explicit(&s->stat_last_submit_fail_ms, memory_order_relaxed);
    out->failing = out->file_moved || (out->failing_commits && since_commit < hold) ||
                   (out->failing_submits && since_submit < hold);
}

void store_fault_set_full(struct store *s, int on)
{
    atomic_store(&s->fault_full, on);
}

/* ---- open, recover, close ---- */

/* The page cache, per connection. Small on purpose: when a B-tree balance
 * reorders sibling pages, SQLite renumbers one through a page number past 1 GiB
 * (the lock-byte page), and at the end of that transaction the page cache
 * drops "every page past the end of the database" by walking its whole hash
 * table and every cached page. Under load most commits do so, so the cost of
 * a commit grows with the cache: 64 MiB cost the writer ~25 us per task,
 * 8 MiB ~18 (docs/PERFORMANCE.md). 8 MiB still holds the pages a commit
 * touches: the newest tasks and those whose outcomes are written (held up to
 * hold_ms, ~4 s of tasks at the default latency). */
#define STORE_CACHE_KIB 8192
/* The memory store is SQLite's memdb VFS, private to its connection (the name
 * has no leading '/'): the pages live in the VFS's buffer and the page cache
 * above stays bounded. With ":memory:" every page lived in the page cache
 * itself and the walk above covered the whole database at every commit. */
#define MEMORY_DB_URI "file:exchanged-memory?vfs=memdb"
/* memdb refuses to grow past 1 GiB by default; the memory store is bounded by
 * --max-active-tasks and retention instead */
#define MEMORY_DB_MAX_BYTES ((sqlite3_int64)1 << 40)

struct store *store_open(const struct store_config *cfg, char *err, size_t errlen)
{
    struct store *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->wall0 = util_wall_ms();
    s->mono0 = util_now_ms();
    if (!s->cfg.hold_quiet_ms)
        s->cfg.hold_quiet_ms = HOLD_QUIET_MS;
    deadline_init(&s->held);
    idcount_init(&s->def_ids);
    idcount_init(&s->def_kept);
    const char *path;
    if (!strcmp(cfg->spec, "memory")) {
        s->memory = 1;
        path = MEMORY_DB_URI;
    } else if (!strncmp(cfg->spec, "sqlite:", 7) && cfg->spec[7]) {
        path = cfg->spec + 7;
    } else {
        snprintf(err, errlen, "--store: expected sqlite:PATH or memory");
        free(s);
        return NULL;
    }
    /* No memory statistics: they take a global mutex on every allocation;
     * small blocks from per-thread free lists (sqlmem.h). Only possible before
     * SQLite starts; a later store_open finds it done. */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlmem_install();
    /* one process per database (store.h): unix-excl; with synchronous=FULL the
     * WAL's writes of a commit go out as one write at its sync (walvfs.h, over
     * unix-excl); NORMAL and OFF do not sync each commit */
    const char *vfs_name = s->memory ? NULL : WALVFS_BASE;
    if (!s->memory && !strcmp(cfg->sync, "full")) {
        if (walvfs_register() == SQLITE_OK)
            vfs_name = WALVFS_NAME;
        else
            log_warn("event=store_walvfs_unavailable: the WAL is written page by page");
    }
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                                 (s->memory ? SQLITE_OPEN_URI : 0),
                             vfs_name);
    char why[256] = "";
    if (rc != SQLITE_OK) {
        snprintf(why, sizeof why, "%s", s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    if (s->memory) {
        sqlite3_int64 limit = MEMORY_DB_MAX_BYTES;
        sqlite3_file_control(s->db, "main", SQLITE_FCNTL_SIZE_LIMIT, &limit);
    }
    sqlite3_extended_result_codes(s->db, 1);
    /* No SQLITE_DBCONFIG_LOOKASIDE: Debian builds SQLite with OMIT_LOOKASIDE,
     * where it is accepted and does nothing (PRAGMA compile_options); sqlmem
     * does that job. */
    char pragma[200];
    snprintf(pragma, sizeof pragma,
             "PRAGMA journal_mode=%s; PRAGMA synchronous=%s; PRAGMA journal_size_limit=67108864;"
             " PRAGMA cache_size=-%d;",
             s->memory ? "MEMORY" : "WAL", s->memory ? "OFF" : cfg->sync, STORE_CACHE_KIB);
    /* No busy timeout until the file is ours: nothing of this process uses it
     * yet, so a lock that is taken is another process's (unix-excl locks the
     * file for this process at the first read, the journal_mode pragma). */
    if (exec(s->db, pragma, why, sizeof why)) {
        if ((sqlite3_extended_errcode(s->db) & 0xff) == SQLITE_BUSY)
            snprintf(why, sizeof why, "another process has it open (one exchanged per database;"
                                      " stop the other, or give this one its own file)");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if (migrate(s->db, why, sizeof why) || prepare_all(s, why, sizeof why))
        goto fail;
    /* a read-only file opens, but cannot take a write: find out now */
    if (exec(s->db, "BEGIN IMMEDIATE; UPDATE tasks SET id = id WHERE 0; COMMIT;", why, sizeof why))
        goto fail;
    /* the tasks not ended, counted: a damaged file fails here or in store_recover */
    sqlite3_stmt *st = NULL;
    int counted = sqlite3_prepare_v2(s->db, "SELECT COUNT(*) FROM tasks WHERE state < 4 AND "
                                            "state <> 4", -1, &st, NULL) == SQLITE_OK &&
                  sqlite3_step(st) == SQLITE_ROW;
    s->active = counted ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    if (!counted) {
        snprintf(why, sizeof why, "cannot count its tasks: %s%s", sqlite3_errmsg(s->db),
                 DAMAGED_HINT);
        sqlite3_finalize(st);
        goto fail;
    }
    sqlite3_finalize(st);
    atomic_store(&s->stat_active, s->active);
    uv_mutex_init(&s->lock);
    uv_mutex_init(&s->db_lock);
    uv_cond_init(&s->cond);
    uv_mutex_init(&s->cancel_lock);
    if (!s->memory &&
        sqlite3_open_v2(path, &s->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        vfs_name) !=
            SQLITE_OK) {
        snprintf(why, sizeof why, "%s", sqlite3_errmsg(s->ckpt_db));
        sqlite3_close_v2(s->ckpt_db);
        s->ckpt_db = NULL;
        goto fail;
    }
    /* the writer keeps the WAL short itself (wal_catch_up): no automatic checkpoint */
    sqlite3_wal_hook(s->db, on_wal, s);
    s->wal_max_frames = cfg->wal_max_frames ? cfg->wal_max_frames : WAL_MAX_FRAMES;
    if (uv_thread_create(&s->thread, writer_main, s) != 0) { /* the first thread: s is ours */
        snprintf(why, sizeof why, "cannot start the writer thread");
        sqlite3_close_v2(s->ckpt_db);
        goto fail;
    }
    if (s->ckpt_db) {
        /* checkpoints move to their own thread and connection; without that thread the
         * writer checkpoints itself, as SQLite does by default */
        sqlite3_busy_timeout(s->ckpt_db, 5000);
        /* a connection learns that the database is in WAL mode when it first
         * reads it; until then a checkpoint on it does nothing (rc OK, -1 frames) */
        sqlite3_exec(s->ckpt_db, "SELECT 1 FROM sqlite_schema LIMIT 1", NULL, NULL, NULL);
        uv_mutex_init(&s->ckpt_lock);
        uv_cond_init(&s->ckpt_cond);
        if (uv_thread_create(&s->checkpointer, checkpointer_main, s) != 0) {
            log_warn("event=store_checkpointer_not_started: the writer checkpoints itself");
            uv_mutex_lock(&s->db_lock);
            if (!cfg->wal_max_frames)
                s->wal_max_frames = WAL_MAX_FRAMES_ALONE;
            sqlite3_close_v2(s->ckpt_db);
            s->ckpt_db = NULL;
            uv_mutex_unlock(&s->db_lock);
            uv_mutex_destroy(&s->ckpt_lock);
            uv_cond_destroy(&s->ckpt_cond);
        }
    }
    return s;
fail:
    if (!s->memory && s->db) {
        int code = sqlite3_extended_errcode(s->db) & 0xff;
        if (code == SQLITE_CANTOPEN || code == SQLITE_READONLY || code == SQLITE_IOERR)
            file_reason(path, why, sizeof why);
    }
    snprintf(err, errlen, "cannot use the database %s: %s", s->memory ? "in memory" : path, why);
    sqlite3_close_v2(s->db);
    free(s);
    return NULL;
}

int store_recover(struct store *s, void (*each)(void *arg, const struct task_view *v), void *arg,
                  uint64_t *resumed, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    uint64_t n = 0;
    /* before any worker enqueues; the lock keeps the writer's idle purge out */
    uv_mutex_lock(&s->db_lock);
    int rc = sqlite3_prepare_v2(s->db, "SELECT " VIEW_COLS " FROM tasks INDEXED BY tasks_state_id"
                                " WHERE state < 4 AND state <> 4 ORDER BY id",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            struct task_view v;
            memset(&v, 0, sizeof v);
            read_view(st, &v);
            each(arg, &v);
            store_view_free(&v);
            n++;
        }
    }
    if (rc != SQLITE_DONE)
        snprintf(err, errlen, "cannot read its tasks back (after %" PRIu64 " of them): %s%s", n,
                 sqlite3_errmsg(s->db), DAMAGED_HINT);
    sqlite3_finalize(st);
    uv_mutex_unlock(&s->db_lock);
    *resumed = n;
    return rc == SQLITE_DONE ? 0 : -1;
}

int store_max_id(struct store *s, uint64_t *id, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    *id = 0;
    uv_mutex_lock(&s->db_lock);
    int rc = sqlite3_prepare_v2(s->db, "SELECT max(id) FROM tasks", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *id = (uint64_t)sqlite3_column_int64(st, 0); /* NULL (no task): 0 */
    }
    if (rc != SQLITE_ROW)
        snprintf(err, errlen, "cannot read its newest task id: %s%s", sqlite3_errmsg(s->db),
                 DAMAGED_HINT);
    sqlite3_finalize(st); /* NULL after a failed prepare: a no-op */
    uv_mutex_unlock(&s->db_lock);
    return rc == SQLITE_ROW ? 0 : -1;
}

void store_close(struct store *s)
{
    uv_mutex_lock(&s->lock);
    s->stopping = 1;
    uv_cond_signal(&s->cond);
    uv_mutex_unlock(&s->lock);
    uv_thread_join(&s->thread);
    if (atomic_load(&s->file_moved)) {
        char path[1024];
        log_error("event=store_closed_moved path=%s note=\"the tasks this run left"
                  " unfinished were in the file that was moved or deleted: a start on the path"
                  " will not resume them\"",
                  util_quote(path, sizeof path, sqlite3_db_filename(s->db, "main")));
    }
    if (s->ckpt_db) {
        checkpointer_wake(s, 1);
        uv_thread_join(&s->checkpointer);
        sqlite3_close_v2(s->ckpt_db);
        uv_mutex_destroy(&s->ckpt_lock);
        uv_cond_destroy(&s->ckpt_cond);
    }
    sqlite3_stmt **all[] = {&s->st_insert, &s->st_find_active, &s->st_update, &s->st_get,
                            &s->st_cancel, &s->st_retry, &s->st_purge_scan, &s->st_purge, &s->st_list[0],
                            &s->st_list[1], &s->st_list[2], &s->st_list[3], &s->st_list[4],
                            &s->st_begin,  &s->st_commit};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sqlite3_finalize(*all[i]);
    if (!s->memory)
        sqlite3_exec(s->db, "PRAGMA wal_checkpoint(TRUNCATE);", NULL, NULL, NULL);
    sqlite3_close_v2(s->db);
    uv_mutex_destroy(&s->lock);
    uv_mutex_destroy(&s->db_lock);
    uv_cond_destroy(&s->cond);
    uv_mutex_destroy(&s->cancel_lock);
    free(s->cancelled);
    deadline_free(&s->held);
    idcount_free(&s->def_ids);
    idcount_free(&s->def_kept);
    free(s);
}
