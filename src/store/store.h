/*
 * store: where tasks are kept so that an acknowledged request survives a
 * crash. One SQLite connection owned by one writer thread; every operation
 * is queued to that thread and its result handed back to the caller's loop
 * through an inbox (a uv_async_t). All operations queued while a commit
 * runs go into the next transaction (group commit), so the cost of an fsync
 * is shared by everything that waited for it.
 *
 * Backends (--store):
 *   sqlite:PATH  a file in WAL mode; synchronous FULL by default; a second
 *                connection on its own thread checkpoints the WAL (PASSIVE).
 *                One process per database: the connections use SQLite's
 *                "unix-excl" VFS (walvfs.h over it with FULL), which locks the
 *                file for the whole process at the first read and keeps the
 *                WAL index in the heap, so no lock is a system call and a
 *                second process (another exchanged, the sqlite3 shell) is
 *                refused: store_open fails at once, saying so.
 *   memory       the same schema in SQLite's in-memory database: nothing
 *                survives a restart (for benchmarks and tests)
 *
 * The task's states (stored as integers; >= STATE_SUCCEEDED is terminal):
 *
 *   queued -> running -> delivering -> succeeded
 *                            |   ^
 *                            v   |  (backoff)
 *                          retrying ---------> failed  <- (4xx, attempts or age spent)
 *   any non-terminal state -----------------> cancelled (DELETE /api/tasks/{id})
 *   failed --(POST /api/tasks/{id}/retry)--> retrying
 *
 * Every change is kept with its time in the task's history
 * ("queued@<ms> running@<ms> ..."). A task is inserted as queued+running at
 * once, at created_ms: it starts computing when it is acknowledged (the row
 * keeps the changes after these two; a view has them all). Its move to
 * delivering is written with the first delivery outcome (succeeded,
 * retrying, failed), with its own time: a crash in between finds it
 * running, and it is computed again.
 *
 * Threading: store_open/store_recover/store_close on the main thread (before
 * and after the workers); everything else from any worker loop thread. The
 * callbacks run on the loop of the inbox given.
 */
#ifndef EXCHANGED_STORE_H
#define EXCHANGED_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

enum task_state {
    STATE_QUEUED = 0,
    STATE_RUNNING = 1,
    STATE_DELIVERING = 2,
    STATE_RETRYING = 3,
    STATE_SUCCEEDED = 4, /* terminal from here on */
    STATE_FAILED = 5,
    STATE_CANCELLED = 6,
};
#define STATE_COUNT 7

const char *task_state_name(int state);
/* The state for a name ("queued"...), or -1. */
int task_state_parse(const char *name, size_t len);

/* Results of store operations (negative, errno-style; 0 is success). */
#define STORE_OK 0
#define STORE_DUPLICATE 1      /* submit: the same request is active; id = the active task */
#define STORE_E_CONFLICT (-1)  /* submit: request_id active with another payload; or a terminal task */
#define STORE_E_FULL (-2)      /* submit: too many tasks not yet terminal */
#define STORE_E_IO (-3)        /* the database could not take it (disk full, read-only, I/O) */
#define STORE_E_NOTFOUND (-4)
#define STORE_E_STATE (-5)     /* cancel/retry: the task is in a state that does not allow it */
#define STORE_E_UNREADABLE (-6) /* retry: the stored request cannot be read back (left failed) */

struct store;
struct store_inbox;

struct store_config {
    const char *spec;        /* "sqlite:PATH" or "memory" */
    const char *sync;        /* "full", "normal" or "off" */
    uint64_t max_active;     /* tasks not yet terminal; past it submit gives STORE_E_FULL */
    uint64_t retention_ms;   /* a terminal task is purged this long after it ended */
    uint64_t purge_every_ms; /* how often the purge runs (0: every second) */
    uint64_t hold_ms;        /* outcomes of tasks younger than this may be held back and
                                written by id range (0: written as they come); see store.c */
    uint64_t hold_quiet_ms;  /* with no submission for this long, held outcomes are written
                                (0: 20 ms) */
    uint64_t wal_max_frames; /* WAL frames past which the writer checkpoints (0: 8192) */
    uint64_t purge_scan;     /* rows one purge run looks at, at most (0: 5000) */
    uint64_t failing_hold_ms; /* how long a failed commit keeps store_stats.failing set
                                 when no commit follows (0: STORE_FAILING_HOLD_MS) */
    uint64_t ckpt_every_ms;   /* the checkpointer's pause when nothing presses (0: 200) */
};

/* A failed commit with no commit passing since keeps the store counted as
 * failing (store_stats.failing, /health's 503) this long: under load every
 * batch fails again and renews it; an idle store goes back to "ok" after it,
 * so that a health check that took the service out of rotation lets traffic
 * find out whether the disk has room again. */
#define STORE_FAILING_HOLD_MS 10000

/* One task as stored. Strings are owned by the view (see store_view_free). */
struct task_view {
    uint64_t id;
    int state;
    uint32_t attempts;
    uint64_t created_ms, updated_ms; /* wall clock, ms since the epoch */
    uint64_t next_attempt_ms;        /* 0 when none */
    char *request_id;                /* JSON text */
    char *payload;                   /* the request's stored form (payload_stored) */
    char *last_error;                /* or NULL */
    char *breakdown;                 /* JSON text, or NULL before it is computed */
    char *history;                   /* "queued@ms running@ms ..." */
};
void store_view_free(struct task_view *v);

/* Opens (creating or migrating) the database. NULL with a one-line reason
 * in err when it cannot be used. */
struct store *store_open(const struct store_config *cfg, char *err, size_t errlen);
/* Calls each(arg, view) for every task not yet terminal, oldest first, and
 * sets *resumed to how many; before the workers start. The view is valid
 * during the call only. 0; or -1 with a one-line reason in err when the rows
 * cannot all be read (a damaged file): the caller must not go on. */
int store_recover(struct store *s, void (*each)(void *arg, const struct task_view *v), void *arg,
                  uint64_t *resumed, char *err, size_t errlen);
/* The greatest task id stored into *id (0 when there is none); before the
 * workers start. 0; or -1 with a one-line reason in err when it cannot be
 * read: the caller must not go on (new ids could then repeat stored ones
 * when the wall clock is behind them). */
int store_max_id(struct store *s, uint64_t *id, char *err, size_t errlen);
/* Commits what is queued, stops the writer, closes the database. */
void store_close(struct store *s);

/* An inbox delivers results to one loop; make one per loop, close it
 * (on that loop) once no operation of it is outstanding. The operations a
 * loop makes through its inbox reach the writer together, when the turn's
 * I/O callbacks are done or before the loop blocks (a check and a prepare
 * handle, unreferenced): one lock and at most one wake-up of the writer
 * per turn, however many requests it read. */
struct store_inbox *store_inbox_new(struct store *s, uv_loop_t *loop);
/* Operations of this inbox whose callback has not run yet (any thread). */
uint64_t store_inbox_pending(struct store_inbox *in);
void store_inbox_close(struct store_inbox *in);

/* The submission of a new task. Strings are copied. */
struct store_submit {
    uint64_t id;
    const char *request_id; /* JSON text */
    const char *payload;    /* payload_stored(request); compared as text for idempotency */
};
typedef void (*store_submit_cb)(void *arg, int status, uint64_t id);
/* status: STORE_OK (committed), STORE_DUPLICATE (id: the active task),
 * STORE_E_CONFLICT (id: the active task), STORE_E_FULL, STORE_E_IO. */
void store_submit(struct store *s, struct store_inbox *in, const struct store_submit *t,
                  store_submit_cb cb, void *arg);

/* A state change decided by a runner; no answer. */
struct store_change {
    uint64_t id;
    int state;
    int attempts;              /* -1: unchanged */
    int64_t next_attempt_ms;   /* wall clock; -1: unchanged */
    const char *last_error;    /* NULL: unchanged */
    const char *breakdown;     /* NULL: unchanged */
    uint64_t delivering_ms;    /* not 0: the task became delivering at this time; the move is
                                  written with this change (one write instead of two) */
};
/* Applied only if the task is not already terminal (a cancel wins).
 * Strings are copied. in: as for the other operations (no answer comes). */
void store_update(struct store *s, struct store_inbox *in, const struct store_change *c);

typedef void (*store_view_cb)(void *arg, int status, const struct task_view *v);
/* Reads one task: STORE_OK with v, or STORE_E_NOTFOUND / STORE_E_IO. */
void store_get(struct store *s, struct store_inbox *in, uint64_t id, store_view_cb cb, void *arg);
/* Cancels a task not yet terminal: STORE_OK with the new view,
 * STORE_E_STATE (already terminal), STORE_E_NOTFOUND. */
void store_cancel(struct store *s, struct store_inbox *in, uint64_t id, store_view_cb cb,
                  void *arg);
/* Moves a failed task to retrying (attempts reset): STORE_OK with the new
 * view, STORE_E_STATE (not failed), STORE_E_NOTFOUND, or STORE_E_UNREADABLE
 * with the unchanged view when its stored request cannot be read back (a
 * retry could not run it, so it stays failed). */
void store_retry(struct store *s, struct store_inbox *in, uint64_t id, store_view_cb cb,
                 void *arg);

struct store_list_query {
    int state;              /* -1: any */
    const char *request_id; /* JSON text, or NULL */
    uint64_t before_id;     /* cursor: only ids below it; 0: from the newest */
    int limit;              /* 1..500 */
};
/* Lists tasks newest first. The callback gets n views and the cursor for
 * the next page (0 when this is the last). */
typedef void (*store_list_cb)(void *arg, int status, const struct task_view *v, size_t n,
                              uint64_t next_cursor);
void store_list(struct store *s, struct store_inbox *in, const struct store_list_query *q,
                store_list_cb cb, void *arg);

/* 1 when the task was cancelled by this process (checked by runners before
 * each delivery; thread-safe). store_forget_cancelled drops the mark once
 * the runner has dropped the task. */
int store_is_cancelled(struct store *s, uint64_t id);
void store_forget_cancelled(struct store *s, uint64_t id);

/* Counters, readable from any thread. */
struct store_stats {
    uint64_t active;      /* tasks not yet terminal (as written: held outcomes count) */
    uint64_t commits;
    uint64_t queue_len;   /* operations waiting for the writer */
    uint64_t purged;
    uint64_t held;        /* outcomes held back, not yet written */
    uint64_t unwritten;   /* updates whose write failed, to be written again */
    uint64_t wal_frames;  /* frames in the WAL after the last commit */
    uint64_t checkpoints; /* passes of the checkpointer thread */
    uint64_t wal_catch_ups; /* checkpoints the writer ran to keep the WAL short */
    uint64_t checkpoint_failures; /* checkpoints (either thread's) that failed: the WAL grows */
    uint64_t cache_bytes; /* the writer's page cache after the last commit */
    int file_moved;       /* the database file left its path while open: writes refused */
    uint64_t commit_failures; /* commits failed since the start (a full disk, mostly) */
    uint64_t failing_commits; /* commits failed since the last that passed */
    uint64_t failing_submits; /* submits whose write failed alone since the last stored */
    int failing;          /* new tasks are refused (503): the file moved, or a commit failed
                             within failing_hold_ms with none passing since, or a submit's
                             write did with none stored since */
};
void store_stats_read(struct store *s, struct store_stats *out);

/* Test seam: when set, every commit fails as if the disk were full. */
void store_fault_set_full(struct store *s, int on);

#endif
