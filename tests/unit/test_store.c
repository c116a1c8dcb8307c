/* store: on a temporary file: submit (new, duplicate, conflict, full),
 * every transition, cancel, retry, list with a cursor, recovery after a
 * reopen, migration from a version-1 database, purge, a full disk
 * through the fault seam (updates whose write failed written again, in
 * order), the WAL kept short (with and without the
 * checkpointer, and with its pass still running), thread starts that fail.
 * Run from tests/unit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>
#include <cmocka.h>

#include "../../src/store/store.h"
#include "../../src/util.h"
#include "wallclock.h"

static char dir[] = "/tmp/exchanged-store-XXXXXX";
static char path[256], spec[300];
static uv_loop_t loop;
static struct store_inbox *inbox;

/* ---- waiting for one answer ---- */

struct answer {
    int done, status;
    uint64_t id, cursor;
    struct task_view v[8];
    size_t n;
};

static void copy_view(struct task_view *dst, const struct task_view *src)
{
    *dst = *src;
    dst->request_id = src->request_id ? strdup(src->request_id) : NULL;
    dst->payload = src->payload ? strdup(src->payload) : NULL;
    dst->last_error = src->last_error ? strdup(src->last_error) : NULL;
    dst->breakdown = src->breakdown ? strdup(src->breakdown) : NULL;
    dst->history = src->history ? strdup(src->history) : NULL;
}

static void answer_free(struct answer *a)
{
    for (size_t i = 0; i < a->n; i++)
        store_view_free(&a->v[i]);
    memset(a, 0, sizeof *a);
}

static void on_submit(void *arg, int status, uint64_t id)
{
    struct answer *a = arg;
    a->done = 1, a->status = status, a->id = id;
}

static void on_view(void *arg, int status, const struct task_view *v)
{
    struct answer *a = arg;
    a->done = 1, a->status = status;
    if (v) {
        copy_view(&a->v[0], v);
        a->n = 1;
    }
}

static void on_list(void *arg, int status, const struct task_view *v, size_t n, uint64_t cursor)
{
    struct answer *a = arg;
    a->done = 1, a->status = status, a->cursor = cursor;
    for (size_t i = 0; i < n && i < 8; i++)
        copy_view(&a->v[i], &v[i]);
    a->n = n < 8 ? n : 8;
}

static void wait_for(struct answer *a)
{
    while (!a->done)
        uv_run(&loop, UV_RUN_ONCE);
}

/* hold_ms, hold_quiet_ms, wal_max_frames... of the next open_store (0: the defaults) */
static struct { uint64_t hold_ms, quiet_ms, wal_max, purge_scan, failing_hold, ckpt_every; } tune;
/* the store open_store opened and close_store has not closed: after a failed
 * test, close_each closes it, so that the next test's loop is not held open */
static struct store *open_now;
static _Atomic int begin_busy; /* the store's BEGIN refused (see __wrap_sqlite3_step) */
/* the nth statement from now whose SQL starts with fail_sql fails (0: none), losing
 * the transaction, or alone when fail_alone is set (see __wrap_sqlite3_step) */
static const char *_Atomic fail_sql;
static _Atomic int fail_at, fail_alone;
static _Atomic int ckpt_fail; /* every checkpoint fails (see __wrap_sqlite3_wal_checkpoint_v2) */

static struct store *open_store(uint64_t max_active, uint64_t retention_ms)
{
    struct store_config cfg = {spec,          "full",        max_active,   retention_ms, 1,
                               tune.hold_ms, tune.quiet_ms, tune.wal_max, tune.purge_scan,
                               tune.failing_hold, tune.ckpt_every};
    char err[256];
    struct store *s = store_open(&cfg, err, sizeof err);
    if (!s)
        fprintf(stderr, "store_open: %s\n", err);
    assert_non_null(s);
    inbox = store_inbox_new(s, &loop);
    open_now = s;
    return s;
}

static void close_store(struct store *s)
{
    while (store_inbox_pending(inbox))
        uv_run(&loop, UV_RUN_ONCE);
    store_inbox_close(inbox);
    uv_run(&loop, UV_RUN_DEFAULT);
    store_close(s);
    open_now = NULL;
}

/* After each test: what a failed one left open, its tuning, its clock. */
static void ckpt_release(void);
static int close_each(void **state)
{
    (void)state;
    atomic_store(&wall_offset_s, 0);
    atomic_store(&begin_busy, 0);
    atomic_store(&fail_at, 0);
    atomic_store(&fail_alone, 0);
    atomic_store(&ckpt_fail, 0);
    ckpt_release();
    if (open_now)
        close_store(open_now);
    memset(&tune, 0, sizeof tune);
    return 0;
}

static int submit(struct store *s, uint64_t id, const char *rid, const char *payload, uint64_t *out)
{
    struct answer a = {0};
    struct store_submit t = {id, rid, payload};
    store_submit(s, inbox, &t, on_submit, &a);
    wait_for(&a);
    if (out)
        *out = a.id;
    return a.status;
}

static struct answer get(struct store *s, uint64_t id)
{
    struct answer a = {0};
    store_get(s, inbox, id, on_view, &a);
    wait_for(&a);
    return a;
}

static struct answer cancel(struct store *s, uint64_t id)
{
    struct answer a = {0};
    store_cancel(s, inbox, id, on_view, &a);
    wait_for(&a);
    return a;
}

/* Lists the tasks in state: exactly one, id. */
static void list_expect_one(struct store *s, int state, uint64_t id)
{
    struct answer a = {0};
    struct store_list_query q = {state, NULL, 0, 10};
    store_list(s, inbox, &q, on_list, &a);
    wait_for(&a);
    assert_int_equal(a.status, STORE_OK);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.v[0].id, id);
    assert_int_equal(a.v[0].state, state);
    answer_free(&a);
}

/* ids as the service makes them: time-ordered (ms << 20), so purge leaves them */
static uint64_t id_base;
#define ID(n) (id_base + (n))

#define UPDATE(s, id_, state_, att, next, err, bd, dms)                                       \
    do {                                                                                      \
        struct store_change c_ = {(id_), (state_), (att), (next), (err), (bd), (dms)};        \
        store_update((s), NULL, &c_);                                                               \
    } while (0)

/* stored forms (payload_stored): a rate, then each bill's id, denomination, count */
#define P1 "[2.0,1,10.0,5]"
#define P2 "[3.0,1,10.0,5]"

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tasks.db", dir);
    snprintf(spec, sizeof spec, "sqlite:%s", path);
    uv_loop_init(&loop);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    id_base = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) << 20;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

static void test_submit_and_transitions(void **state)
{
    (void)state;
    unlink(path);
    struct store *s = open_store(3, 86400000);
    uint64_t id;
    assert_int_equal(submit(s, ID(100), "\"r1\"", P1, &id), STORE_OK);
    assert_int_equal(submit(s, ID(101), "\"r1\"", P1, &id), STORE_DUPLICATE);
    assert_int_equal(id, ID(100));
    assert_int_equal(submit(s, ID(102), "\"r1\"", P2, &id), STORE_E_CONFLICT);
    assert_int_equal(id, ID(100));
    assert_int_equal(submit(s, ID(103), "\"r2\"", P1, NULL), STORE_OK);
    assert_int_equal(submit(s, ID(104), "7", P1, NULL), STORE_OK);
    assert_int_equal(submit(s, ID(105), "\"r4\"", P1, NULL), STORE_E_FULL); /* 3 active */

    struct answer a = get(s, ID(100));
    assert_int_equal(a.status, STORE_OK);
    assert_int_equal(a.v[0].state, STATE_RUNNING);
    assert_string_equal(a.v[0].request_id, "\"r1\"");
    assert_string_equal(a.v[0].payload, P1);
    assert_non_null(strstr(a.v[0].history, "queued@"));
    assert_null(a.v[0].breakdown);
    answer_free(&a);

    UPDATE(s, ID(100), STATE_RETRYING, 1, 123456, "HTTP 500: x", "[1]", 1234);
    a = get(s, ID(100));
    assert_int_equal(a.v[0].state, STATE_RETRYING);
    assert_int_equal(a.v[0].attempts, 1);
    assert_int_equal(a.v[0].next_attempt_ms, 123456);
    assert_string_equal(a.v[0].last_error, "HTTP 500: x");
    assert_string_equal(a.v[0].breakdown, "[1]");
    answer_free(&a);
    UPDATE(s, ID(100), STATE_SUCCEEDED, 2, 0, NULL, NULL, 0);
    a = get(s, ID(100));
    assert_int_equal(a.v[0].state, STATE_SUCCEEDED);
    const char *h = a.v[0].history;
    const char *q = strstr(h, "queued@"), *r = strstr(h, "running@"), *d = strstr(h, "delivering@"),
               *re = strstr(h, "retrying@"), *su = strstr(h, "succeeded@");
    assert_true(q && r && d && re && su && q < r && r < d && d < re && re < su);
    assert_non_null(strstr(h, "delivering@1234 retrying@"));
    answer_free(&a);
    /* a terminal task takes no more changes */
    UPDATE(s, ID(100), STATE_FAILED, 3, 0, "late", NULL, 0);
    a = get(s, ID(100));
    assert_int_equal(a.v[0].state, STATE_SUCCEEDED);
    answer_free(&a);
    /* it ended: the same request_id starts a new task */
    assert_int_equal(submit(s, ID(106), "\"r1\"", P2, NULL), STORE_OK);

    /* cancel */
    a = cancel(s, ID(103));
    assert_int_equal(a.status, STORE_OK);
    assert_int_equal(a.v[0].state, STATE_CANCELLED);
    answer_free(&a);
    assert_true(store_is_cancelled(s, ID(103)));
    store_forget_cancelled(s, ID(103));
    assert_false(store_is_cancelled(s, ID(103)));
    a = cancel(s, ID(103));
    assert_int_equal(a.status, STORE_E_STATE);
    answer_free(&a);
    a = cancel(s, ID(999));
    assert_int_equal(a.status, STORE_E_NOTFOUND);
    answer_free(&a);

    /* retry: only a failed task */
    UPDATE(s, ID(104), STATE_FAILED, 1, 0, "HTTP 400: bad", NULL, 0);
    store_retry(s, inbox, ID(104), on_view, &a);
    wait_for(&a);
    assert_int_equal(a.status, STORE_OK);
    assert_int_equal(a.v[0].state, STATE_RETRYING);
    assert_int_equal(a.v[0].attempts, 0);
    answer_free(&a);
    store_retry(s, inbox, ID(104), on_view, &a);
    wait_for(&a);
    assert_int_equal(a.status, STORE_E_STATE);
    answer_free(&a);

    /* list: newest first, by state, by request_id, with a cursor */
    struct store_list_query lq = {-1, NULL, 0, 2};
    store_list(s, inbox, &lq, on_list, &a);
    wait_for(&a);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.v[0].id, ID(106));
    assert_int_equal(a.v[1].id, ID(104));
    assert_int_equal(a.cursor, ID(104));
    answer_free(&a);
    lq.before_id = ID(104);
    store_list(s, inbox, &lq, on_list, &a);
    wait_for(&a);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.v[0].id, ID(103));
    assert_int_equal(a.v[1].id, ID(100));
    assert_int_equal(a.cursor, 0);
    answer_free(&a);
    list_expect_one(s, STATE_CANCELLED, ID(103));
    /* succeeded tasks are not in the state index: listed by a walk of the table */
    list_expect_one(s, STATE_SUCCEEDED, ID(100));
    struct store_list_query by_rid = {-1, "\"r1\"", 0, 10};
    store_list(s, inbox, &by_rid, on_list, &a);
    wait_for(&a);
    assert_int_equal(a.n, 2);
    answer_free(&a);
    close_store(s);
}

static int count_recovered;
static void each(void *arg, const struct task_view *v)
{
    (void)arg;
    assert_true(v->state < STATE_SUCCEEDED);
    count_recovered++;
}

/* store_recover with each: how many, once it has read every row */
static uint64_t recover_all(struct store *s)
{
    uint64_t n = 0;
    char err[512] = "";
    int rc = store_recover(s, each, NULL, &n, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "store_recover: %s\n", err);
    assert_int_equal(rc, 0);
    return n;
}

static void test_recovery_after_reopen(void **state)
{
    (void)state;
    /* the database of the previous test: 106 running, 104 retrying */
    struct store *s = open_store(10, 86400000);
    count_recovered = 0;
    assert_int_equal(recover_all(s), 2);
    assert_int_equal(count_recovered, 2);
    struct store_stats st;
    store_stats_read(s, &st);
    assert_int_equal(st.active, 2);
    close_store(s);
}

/* Operations made in one loop turn reach the writer together (one
 * transaction); state updates held back behind submissions are all written
 * before a read that follows them and before the store closes. */
static void test_batching_and_held_back_updates(void **state)
{
    (void)state;
    unlink(path);
    enum { N = 1000 };
    struct store *s = open_store(100000, 86400000);
    static struct answer a[N];
    memset(a, 0, sizeof a);
    char rid[32];
    struct store_stats before, after;
    store_stats_read(s, &before);
    for (int i = 0; i < N; i++) { /* one turn: nothing runs the loop in between */
        snprintf(rid, sizeof rid, "\"b%d\"", i);
        struct store_submit t = {ID(1000 + i), rid, P1};
        store_submit(s, inbox, &t, on_submit, &a[i]);
    }
    for (int i = 0; i < N; i++) {
        wait_for(&a[i]);
        assert_int_equal(a[i].status, STORE_OK);
    }
    store_stats_read(s, &after);
    assert_int_equal(after.commits - before.commits, 1);
    /* N updates and one submission in one turn: the submission's transaction
     * takes some updates, the rest are held back */
    for (int i = 0; i < N; i++) {
        struct store_change c = {ID(1000 + i), STATE_SUCCEEDED, 1, 0, NULL, "[]", 1};
        store_update(s, inbox, &c);
    }
    struct answer late = {0};
    struct store_submit t = {ID(5000), "\"late\"", P1};
    store_submit(s, inbox, &t, on_submit, &late);
    wait_for(&late);
    assert_int_equal(late.status, STORE_OK);
    close_store(s); /* no read in between: the writer writes what it held back */
    s = open_store(100000, 86400000);
    count_recovered = 0;
    assert_int_equal(recover_all(s), 1); /* only "late" is still active */
    /* and a read sees the updates queued before it */
    struct store_change c = {ID(5000), STATE_FAILED, 1, 0, "gone", NULL, 1};
    store_update(s, inbox, &c);
    struct answer g = get(s, ID(5000));
    assert_int_equal(g.v[0].state, STATE_FAILED);
    answer_free(&g);
    close_store(s);
}

/* An operation made in a timer callback (before the loop polls, as the
 * runner's updates are) reaches the writer before the loop blocks: its
 * answer comes long before a guard timer that alone would wake the loop. */
static struct store *timer_store;
static struct answer timer_answer;
static int guard_fired;

static void submit_from_timer(uv_timer_t *t)
{
    (void)t;
    struct store_submit st = {ID(7000), "\"from-timer\"", P1};
    store_submit(timer_store, inbox, &st, on_submit, &timer_answer);
}

static void on_guard(uv_timer_t *t)
{
    (void)t;
    guard_fired = 1;
}

static void test_ops_from_timers_are_not_held(void **state)
{
    (void)state;
    unlink(path);
    timer_store = open_store(100, 86400000);
    memset(&timer_answer, 0, sizeof timer_answer);
    guard_fired = 0;
    uv_timer_t t, guard;
    uv_timer_init(&loop, &t);
    uv_timer_init(&loop, &guard);
    uv_timer_start(&t, submit_from_timer, 1, 0);
    uv_timer_start(&guard, on_guard, 5000, 0);
    while (!timer_answer.done)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(timer_answer.status, STORE_OK);
    assert_int_equal(guard_fired, 0);
    uv_close((uv_handle_t *)&t, NULL);
    uv_close((uv_handle_t *)&guard, NULL);
    close_store(timer_store);
}

static uint64_t active_now(struct store *s)
{
    struct store_stats st;
    store_stats_read(s, &st);
    return st.active;
}

/* The state of task id as the database file holds it, through a connection
 * of the test's own (what a crash would leave). */
static int state_on_disk(uint64_t id)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT state FROM tasks WHERE id = ?1", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    int state = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return state;
}

/* Outcomes of young tasks are held back (hold_ms): not written with the
 * next submission, but before any read through the API and when the store
 * closes; they take no room under max_active (2 here). */
static void test_outcomes_held_until_read_or_close(void **state)
{
    (void)state;
    unlink(path);
    tune.hold_ms = tune.quiet_ms = 600000; /* only a read or the close lets them go */
    struct store *s = open_store(2, 86400000);
    assert_int_equal(submit(s, ID(1), "\"h1\"", P1, NULL), STORE_OK);
    struct store_change c = {ID(1), STATE_SUCCEEDED, 1, 0, NULL, "[1]", 1};
    store_update(s, inbox, &c); /* in the same turn as the next submission */
    assert_int_equal(submit(s, ID(2), "\"h2\"", P1, NULL), STORE_OK);
    assert_int_equal(active_now(s), 2);
    assert_int_equal(state_on_disk(ID(1)), STATE_RUNNING);
    struct answer g = get(s, ID(1)); /* a read comes after every held outcome */
    assert_int_equal(g.status, STORE_OK);
    assert_int_equal(g.v[0].state, STATE_SUCCEEDED);
    assert_string_equal(g.v[0].breakdown, "[1]");
    answer_free(&g);
    assert_int_equal(active_now(s), 1);
    assert_int_equal(state_on_disk(ID(1)), STATE_SUCCEEDED);
    struct store_change c2 = {ID(2), STATE_FAILED, 3, 0, "gone", NULL, 1};
    store_update(s, inbox, &c2);
    assert_int_equal(submit(s, ID(3), "\"h3\"", P1, NULL), STORE_OK);
    /* a read of another task writes only that task's outcome: h2's stays held */
    g = get(s, ID(3));
    assert_int_equal(g.v[0].state, STATE_RUNNING);
    answer_free(&g);
    assert_int_equal(state_on_disk(ID(2)), STATE_RUNNING);
    /* h2 and h3 are active as written, but h2 has ended: room for one more */
    assert_int_equal(submit(s, ID(4), "\"h4\"", P1, NULL), STORE_OK);
    assert_int_equal(submit(s, ID(5), "\"h5\"", P1, NULL), STORE_E_FULL);
    assert_int_equal(state_on_disk(ID(2)), STATE_RUNNING);
    close_store(s); /* the close writes what is held */
    memset(&tune, 0, sizeof tune);
    assert_int_equal(state_on_disk(ID(2)), STATE_FAILED);
    s = open_store(100, 86400000);
    count_recovered = 0;
    assert_int_equal(recover_all(s), 2); /* h3 and h4 */
    close_store(s);
}

/* A cancel sees its task's held outcome (the task has ended: 409), and a
 * list writes every held outcome first. */
static void test_held_outcomes_and_the_task_api(void **state)
{
    (void)state;
    unlink(path);
    tune.hold_ms = tune.quiet_ms = 600000;
    struct store *s = open_store(100, 86400000);
    assert_int_equal(submit(s, ID(1), "\"a1\"", P1, NULL), STORE_OK);
    assert_int_equal(submit(s, ID(2), "\"a2\"", P1, NULL), STORE_OK);
    struct store_change c1 = {ID(1), STATE_SUCCEEDED, 1, 0, NULL, "[]", 1};
    store_update(s, inbox, &c1);
    struct store_change c2 = {ID(2), STATE_FAILED, 2, 0, "nope", NULL, 1};
    store_update(s, inbox, &c2);
    assert_int_equal(submit(s, ID(3), "\"a3\"", P1, NULL), STORE_OK);
    assert_int_equal(state_on_disk(ID(1)), STATE_RUNNING);
    struct answer a = cancel(s, ID(1));
    assert_int_equal(a.status, STORE_E_STATE);
    assert_int_equal(a.v[0].state, STATE_SUCCEEDED);
    answer_free(&a);
    assert_int_equal(state_on_disk(ID(2)), STATE_RUNNING); /* still held */
    list_expect_one(s, STATE_FAILED, ID(2));
    assert_int_equal(active_now(s), 1);
    close_store(s);
    memset(&tune, 0, sizeof tune);
}

/* A failed task whose stored request cannot be read back is not moved to
 * retrying, where nothing could run it: it stays failed, answered
 * STORE_E_UNREADABLE with its view. A readable one beside it is retried. */
static void test_retry_of_an_unreadable_task_is_refused(void **state)
{
    (void)state;
    unlink(path);
    struct store *s = open_store(100, 86400000);
    assert_int_equal(submit(s, ID(1), "\"u1\"", "{\"x\":", NULL), STORE_OK);
    assert_int_equal(submit(s, ID(2), "\"u2\"", P1, NULL), STORE_OK);
    for (uint64_t id = ID(1); id <= ID(2); id++) {
        struct store_change c = {id, STATE_FAILED, 3, 0, "HTTP 400: bad", NULL, 0};
        store_update(s, inbox, &c);
    }
    struct answer a = {0};
    store_retry(s, inbox, ID(1), on_view, &a);
    wait_for(&a);
    assert_int_equal(a.status, STORE_E_UNREADABLE);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.v[0].state, STATE_FAILED);
    assert_int_equal(a.v[0].attempts, 3);
    answer_free(&a);
    a = get(s, ID(1));
    assert_int_equal(a.v[0].state, STATE_FAILED);
    assert_null(strstr(a.v[0].history, "retrying"));
    answer_free(&a);
    store_retry(s, inbox, ID(2), on_view, &a);
    wait_for(&a);
    assert_int_equal(a.status, STORE_OK);
    assert_int_equal(a.v[0].state, STATE_RETRYING);
    answer_free(&a);
    assert_int_equal(active_now(s), 1);
    close_store(s);
}

/* Held outcomes go by themselves: when their task is hold_ms old, and when
 * no submission came for hold_quiet_ms. Waited for by polling the loop,
 * with a 10 s guard (on_guard above). */
static void on_guard_tick(uv_timer_t *t)
{
    (void)t; /* only wakes the loop, so that the stats are looked at again */
}

/* Runs the loop until done(s) holds, or fails after 10 s. */
static void wait_until(struct store *s, int (*done)(struct store *))
{
    uv_timer_t guard, tick;
    guard_fired = 0;
    uv_timer_init(&loop, &guard);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&guard, on_guard, 10000, 0);
    uv_timer_start(&tick, on_guard_tick, 5, 5);
    while (!done(s) && !guard_fired)
        uv_run(&loop, UV_RUN_ONCE);
    /* the timers closed first: a failure's teardown runs the loop until it is empty */
    uv_close((uv_handle_t *)&guard, NULL);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_true(done(s));
}

static int none_active(struct store *s)
{
    return active_now(s) == 0;
}

static void test_outcomes_released_when_due_or_quiet(void **state)
{
    (void)state;
    unlink(path);
    /* due: a task id of 2 s ago, held for 1 s, and no quiet period to help */
    tune.hold_ms = 1000;
    tune.quiet_ms = 600000;
    struct store *s = open_store(100, 86400000);
    uint64_t old = id_base - (2000ull << 20);
    assert_int_equal(submit(s, old, "\"d1\"", P1, NULL), STORE_OK);
    assert_int_equal(submit(s, ID(10), "\"d2\"", P1, NULL), STORE_OK);
    struct store_change c = {old, STATE_SUCCEEDED, 1, 0, NULL, "[]", 1};
    store_update(s, inbox, &c);
    struct store_change c2 = {ID(10), STATE_SUCCEEDED, 1, 0, NULL, "[]", 1};
    store_update(s, inbox, &c2);
    wait_until(s, none_active); /* the old one at once, the young one a second later */
    close_store(s);
    /* quiet: held for ten minutes, but nothing else comes */
    unlink(path);
    tune.hold_ms = 600000;
    tune.quiet_ms = 50;
    s = open_store(100, 86400000);
    assert_int_equal(submit(s, ID(11), "\"q1\"", P1, NULL), STORE_OK);
    struct store_change c3 = {ID(11), STATE_SUCCEEDED, 1, 0, NULL, "[]", 1};
    store_update(s, inbox, &c3);
    wait_until(s, none_active);
    assert_int_equal(state_on_disk(ID(11)), STATE_SUCCEEDED);
    close_store(s);
    /* ahead: a task id a day ahead of the wall clock (set back since), held
     * for ten minutes, nothing quiet: not held at all (it had waited a day) */
    unlink(path);
    tune.hold_ms = 600000;
    tune.quiet_ms = 600000;
    s = open_store(100, 86400000);
    uint64_t ahead = id_base + (86400000ull << 20);
    assert_int_equal(submit(s, ahead, "\"a1\"", P1, NULL), STORE_OK);
    struct store_change c4 = {ahead, STATE_SUCCEEDED, 1, 0, NULL, "[]", 1};
    store_update(s, inbox, &c4);
    wait_until(s, none_active);
    assert_int_equal(state_on_disk(ahead), STATE_SUCCEEDED);
    close_store(s);
    memset(&tune, 0, sizeof tune);
}

/* Under a steady load (a submission every loop turn, the writer never
 * idle) the WAL stays near wal_max_frames: the writer checkpoints the
 * rest after the checkpointer's pass, and the next commit rewinds it. */
enum { WAL_TASKS = 6000, WAL_PER_TURN = 20 };
static struct store *wal_store;
static int wal_next, wal_acked;
static uv_idle_t wal_idle;

static void on_wal_submit(void *arg, int status, uint64_t id)
{
    (void)arg;
    assert_int_equal(status, STORE_OK);
    struct store_change c = {id, STATE_SUCCEEDED, 1, 0, NULL,
                             "[{\"denomination_id\":1,\"subtotal_rub\":377.5}]", 1};
    store_update(wal_store, inbox, &c);
    wal_acked++;
}

static void wal_turn(uv_idle_t *h)
{
    char rid[32];
    for (int i = 0; i < WAL_PER_TURN && wal_next < WAL_TASKS; i++, wal_next++) {
        snprintf(rid, sizeof rid, "\"w%d\"", wal_next);
        struct store_submit t = {ID(20000 + (uint64_t)wal_next), rid, P1};
        store_submit(wal_store, inbox, &t, on_wal_submit, NULL);
    }
    if (wal_next == WAL_TASKS)
        uv_idle_stop(h);
}

static int one_pass(struct store *s)
{
    struct store_stats st;
    store_stats_read(s, &st);
    return st.checkpoints >= 1;
}

static int caught_up(struct store *s)
{
    struct store_stats st;
    store_stats_read(s, &st);
    return st.wal_catch_ups >= 1;
}

/* BIG_TURN submissions in one loop turn (one commit), each answered OK */
enum { BIG_TURN = 2000 };
static void submit_in_one_turn(struct store *s, const char *prefix, uint64_t first_id)
{
    char rid[32];
    static struct answer big[BIG_TURN];
    memset(big, 0, sizeof big);
    for (int i = 0; i < BIG_TURN; i++) {
        snprintf(rid, sizeof rid, "\"%s%d\"", prefix, i);
        struct store_submit t = {ID(first_id + (uint64_t)i), rid, P1};
        store_submit(s, inbox, &t, on_submit, &big[i]);
    }
    for (int i = 0; i < BIG_TURN; i++) {
        wait_for(&big[i]);
        assert_int_equal(big[i].status, STORE_OK);
    }
}

static void test_wal_stays_short_under_load(void **state)
{
    (void)state;
    unlink(path);
    tune.wal_max = 64;
    wal_store = open_store(100000, 86400000);
    /* the mechanism, deterministically: after a pass of the checkpointer, a
     * commit of more than wal_max frames (2,000 tasks in one turn, ~170 frames) is followed
     * by the writer's own checkpoint */
    wait_until(wal_store, one_pass);
    submit_in_one_turn(wal_store, "big", 40000);
    wait_until(wal_store, caught_up);
    /* the property, under a load that keeps the writer busy */
    wal_next = wal_acked = 0;
    uv_idle_init(&loop, &wal_idle);
    uv_idle_start(&wal_idle, wal_turn);
    char wal[300];
    snprintf(wal, sizeof wal, "%s-wal", path);
    off_t most = 0;
    struct stat sb;
    while (wal_acked < WAL_TASKS) {
        uv_run(&loop, UV_RUN_ONCE);
        if (stat(wal, &sb) == 0 && sb.st_size > most)
            most = sb.st_size;
    }
    /* 6,000 tasks written and updated take ~10,000 frames (~40 MB) of WAL
     * when it is never rewound */
    assert_true(most < 8 * 1024 * 1024);
    uv_close((uv_handle_t *)&wal_idle, NULL);
    close_store(wal_store);
    memset(&tune, 0, sizeof tune);
}

/* The checkpointer thread copies the WAL into the database, so that after a
 * pass with no commit in between the next commit starts the WAL again
 * (the writer's own catch-up is kept out of it: wal_max_frames huge). */
static uint64_t passes_want;

static int passes_reached(struct store *s)
{
    struct store_stats st;
    store_stats_read(s, &st);
    return st.checkpoints >= passes_want;
}

/* Waits for n more passes of the checkpointer than it has made now. */
static void wait_more_passes(struct store *s, uint64_t n)
{
    struct store_stats st;
    store_stats_read(s, &st);
    passes_want = st.checkpoints + n;
    wait_until(s, passes_reached);
}

static void test_checkpointer_rewinds_the_wal(void **state)
{
    (void)state;
    unlink(path);
    tune.wal_max = 1u << 30;
    struct store *s = open_store(100000, 86400000);
    char rid[32];
    for (int i = 0; i < 300; i++) { /* a commit each */
        snprintf(rid, sizeof rid, "\"c%d\"", i);
        assert_int_equal(submit(s, ID(30000 + (uint64_t)i), rid, P1, NULL), STORE_OK);
    }
    wait_more_passes(s, 2);
    assert_int_equal(submit(s, ID(31000), "\"after\"", P1, NULL), STORE_OK);
    struct store_stats st;
    store_stats_read(s, &st);
    assert_true(st.wal_frames > 0);
    assert_true(st.wal_frames < 50); /* 300 commits and more without a checkpoint */
    assert_int_equal(st.wal_catch_ups, 0);
    close_store(s);
    memset(&tune, 0, sizeof tune);
}

/* A WAL that passes half its limit wakes the checkpointer out of its pause
 * (ten minutes here): under a load that fills it faster than a pause lets
 * it, the writer is not left to copy the whole WAL itself. Once it has
 * copied everything, it pauses again. The store's close ends the pause too. */
static void test_checkpointer_woken_past_half_the_wal(void **state)
{
    (void)state;
    unlink(path);
    tune.wal_max = 200;
    tune.ckpt_every = 600000;
    struct store *s = open_store(100000, 86400000);
    wait_until(s, one_pass); /* the first, at the start; then the pause */
    struct store_stats st;
    store_stats_read(s, &st);
    uint64_t before = st.checkpoints;
    submit_in_one_turn(s, "half", 50000); /* ~70 frames: short of half */
    store_stats_read(s, &st);
    assert_true(st.wal_frames > 0 && st.wal_frames < 100);
    assert_int_equal(st.checkpoints, before);
    submit_in_one_turn(s, "past", 52000); /* past half (100), short of the limit */
    passes_want = before + 1;
    wait_until(s, passes_reached);
    store_stats_read(s, &st);
    assert_int_equal(st.wal_catch_ups, 0);
    /* with everything copied and nothing committed since, the pause again,
     * though the WAL keeps its length (past half) until the next commit: no
     * pass every 2 ms (~150 in this wait) */
    usleep(300 * 1000);
    store_stats_read(s, &st);
    assert_true(st.checkpoints <= before + 3);
    uint64_t t0 = util_now_ms();
    close_store(s);
    assert_true(util_now_ms() - t0 < 5000);
    memset(&tune, 0, sizeof tune);
}

static void test_migration_from_v1(void **state)
{
    (void)state;
    unlink(path);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    FILE *f = fopen("../data/schema_v1.sql", "r");
    assert_non_null(f);
    static char sql[8192];
    size_t n = fread(sql, 1, sizeof sql - 1, f);
    sql[n] = '\0';
    fclose(f);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    /* a payload migration 5 cannot read stays as it was */
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO tasks VALUES (1940000000000000009, '\"odd\"', '{\"x\":',"
                                  " 4, 1, 1760000000000, 1760000000000, NULL, NULL, NULL,"
                                  " 'queued@1760000000000 running@1760000000000');"
                                  /* and a time no clock gives: the view's widest history */
                                  "INSERT INTO tasks VALUES (1940000000000000010, '\"neg\"', '[1]', 4,"
                                  " 1, -1, -1, NULL, NULL, NULL, 'queued@-1 running@-1 x@5')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);

    struct store *s = open_store(10, 86400000ull * 365 * 100);
    count_recovered = 0;
    assert_int_equal(recover_all(s), 1); /* the delivering one */
    struct answer a = get(s, 1940000000000000002ull);
    assert_int_equal(a.status, STORE_OK);
    assert_int_equal(a.v[0].state, STATE_SUCCEEDED);
    assert_string_equal(a.v[0].request_id, "7");
    /* migration 5: the payload in its stored form; the history as it was */
    assert_string_equal(a.v[0].payload, "[2.0,1,10.0,5]");
    assert_string_equal(a.v[0].history, "queued@1760000000000 running@1760000000000 "
                                        "delivering@1760000000000 succeeded@1760000000000");
    answer_free(&a);
    a = get(s, 1940000000000000009ull);
    assert_string_equal(a.v[0].payload, "{\"x\":");
    assert_string_equal(a.v[0].history, "queued@1760000000000 running@1760000000000");
    answer_free(&a);
    a = get(s, 1940000000000000010ull);
    assert_string_equal(a.v[0].history,
                        "queued@18446744073709551615 running@18446744073709551615 x@5");
    answer_free(&a);
    a = get(s, 1940000000000000001ull);
    assert_string_equal(a.v[0].payload, "[2.0,1,10.0,5]");
    assert_string_equal(a.v[0].history,
                        "queued@1760000000000 running@1760000000000 delivering@1760000000000");
    answer_free(&a);
    close_store(s);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 5);
    sqlite3_finalize(st);
    /* ...and the row keeps only the changes after the first two */
    sqlite3_prepare_v2(db, "SELECT history FROM tasks ORDER BY id", -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), " delivering@1760000000000");
    sqlite3_finalize(st);
    /* migration 4: the state index leaves succeeded tasks out, and the query
     * form the store lists other states with still uses it */
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "EXPLAIN QUERY PLAN SELECT id FROM tasks WHERE state = ?1"
                                        " AND state <> 4 AND id < ?2 ORDER BY id DESC LIMIT 5",
                                        -1, &st, NULL),
                     SQLITE_OK);
    int uses_index = 0;
    while (sqlite3_step(st) == SQLITE_ROW)
        uses_index |= strstr((const char *)sqlite3_column_text(st, 3), "tasks_state_id") != NULL;
    sqlite3_finalize(st);
    assert_true(uses_index);
    /* a database from a newer version is refused, and left as it is */
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 6", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    struct store_config cfg = {spec, "full", 10, 1000, 1, 0, 0, 0, 0, 0, 0};
    char err[256];
    assert_null(store_open(&cfg, err, sizeof err));
    assert_non_null(strstr(err, "database schema version 6 is newer than this program's (5)"));
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_prepare_v2(db, "SELECT count(*) FROM tasks", -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 4);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_purge(void **state)
{
    (void)state;
    unlink(path);
    /* retention 1 ms; ids are time-ordered (ms << 20), so id 1..3 are ancient */
    struct store *s = open_store(10, 1);
    for (uint64_t id = 1; id <= 3; id++) {
        char rid[16];
        snprintf(rid, sizeof rid, "\"p%d\"", (int)id);
        assert_int_equal(submit(s, id, rid, P1, NULL), STORE_OK);
    }
    UPDATE(s, 1, STATE_SUCCEEDED, 1, 0, NULL, NULL, 0);
    UPDATE(s, 2, STATE_CANCELLED, 0, 0, NULL, NULL, 0);
    usleep(5000); /* past the 1 ms purge interval of this test's store */
    struct answer a = get(s, 1); /* any batch runs the purge */
    answer_free(&a);
    usleep(5000);
    a = get(s, 1);
    assert_int_equal(a.status, STORE_E_NOTFOUND);
    answer_free(&a);
    a = get(s, 2);
    assert_int_equal(a.status, STORE_E_NOTFOUND);
    answer_free(&a);
    a = get(s, 3); /* not terminal: kept */
    assert_int_equal(a.status, STORE_OK);
    answer_free(&a);
    struct store_stats st;
    store_stats_read(s, &st);
    assert_int_equal(st.purged, 2);
    close_store(s);
}

/* A get's status alone (each get is a batch: it runs the purge). */
static int get_status(struct store *s, uint64_t id)
{
    struct answer a = get(s, id);
    int status = a.status;
    answer_free(&a);
    return status;
}

/* A task that ends now (an ancient id: made long ago) is kept the retention
 * (300 ms) through the purges that run meanwhile, then purged; with the wall
 * clock stepped forward step_s right after it ended. */
static void check_kept_its_retention(long step_s)
{
    unlink(path);
    struct store *s = open_store(10, 300); /* id 1 is ancient (ms << 20) */
    assert_int_equal(submit(s, 1, "\"e1\"", P1, NULL), STORE_OK);
    UPDATE(s, 1, STATE_SUCCEEDED, 1, 0, NULL, NULL, 0);
    assert_int_equal(get_status(s, 1), STORE_OK); /* a read writes the update before it */
    uint64_t ended = util_now_ms();
    atomic_store(&wall_offset_s, step_s);
    for (int i = 0; i < 3; i++) { /* the purge runs every 1 ms here */
        usleep(20000);
        assert_int_equal(get_status(s, 1), STORE_OK); /* ended just now: kept */
    }
    assert_true(util_now_ms() - ended < 300); /* else this proved nothing */
    for (;;) { /* then purged, once the retention is over */
        usleep(20000);
        int status = get_status(s, 1);
        if (status == STORE_E_NOTFOUND)
            break;
        assert_int_equal(status, STORE_OK);
        assert_true(util_now_ms() - ended < 10000);
    }
    assert_true(util_now_ms() - ended >= 300);
    struct store_stats st;
    store_stats_read(s, &st);
    assert_int_equal(st.purged, 1);
    close_store(s);
}

/* The retention counts from a task's end, not from its making: a task made
 * long ago that ends now (a retry by hand days later, a long latency) is
 * kept the retention from now. It was purged at the next second before. */
static void test_purge_counts_from_the_end(void **state)
{
    (void)state;
    check_kept_its_retention(0);
}

/* A wall clock stepped forward an hour while running purges nothing early.
 * Before, the step made the task an hour old, and the next purge took it. */
static void test_purge_holds_a_clock_stepped_forward(void **state)
{
    (void)state;
    check_kept_its_retention(3600);
}

/* A purge whose commit fails (a full disk) is undone whole: the rows stay,
 * nothing is counted, and the next purge after the disk has room deletes
 * them. Both ways a purge runs: in a batch's transaction (a read here) and
 * in the writer's own when idle (once a second). Before, the idle one
 * ignored its commit's failure (SQLite may leave such a transaction open,
 * and then every later BEGIN fails: the seam's failed commit leaves it
 * open), and a batch's counted its deletions before the commit failed. */
static void test_purge_undone_by_a_failed_commit(void **state)
{
    (void)state;
    unlink(path);
    struct store *s = open_store(10, 300); /* ids 1..3 are ancient (ms << 20) */
    for (uint64_t id = 1; id <= 3; id++) {
        char rid[16];
        snprintf(rid, sizeof rid, "\"u%d\"", (int)id);
        assert_int_equal(submit(s, id, rid, P1, NULL), STORE_OK);
        UPDATE(s, id, STATE_SUCCEEDED, 1, 0, NULL, NULL, 0);
    }
    assert_int_equal(get_status(s, 3), STORE_OK); /* a read writes the updates before it */
    uint64_t ended = util_now_ms();
    store_fault_set_full(s, 1);
    assert_true(util_now_ms() - ended < 300); /* not purged yet: ended too recently */
    usleep(1500 * 1000); /* past the retention, and an idle purge (once a second) */
    for (uint64_t id = 1; id <= 3; id++)
        assert_int_equal(get_status(s, id), STORE_OK); /* a batch's purge, undone too */
    struct store_stats st;
    store_stats_read(s, &st);
    assert_int_equal(st.purged, 0);
    store_fault_set_full(s, 0);
    assert_int_equal(submit(s, 4, "\"u4\"", P1, NULL), STORE_OK); /* the writer goes on */
    for (int i = 0; i < 1000 && get_status(s, 3) != STORE_E_NOTFOUND; i++)
        usleep(5000);
    for (uint64_t id = 1; id <= 3; id++)
        assert_int_equal(get_status(s, id), STORE_E_NOTFOUND);
    store_stats_read(s, &st);
    assert_int_equal(st.purged, 3);
    close_store(s);
}

/* A purge run looks at a few rows (purge_scan), from where the last stopped:
 * old tasks not ended (a backlog retrying while the main service is down)
 * are stepped over in pieces. Every ended task is still found, those past the
 * backlog and those that end behind the pass (found by the next pass). */
static void test_purge_walks_in_pieces(void **state)
{
    (void)state;
    unlink(path);
    memset(&tune, 0, sizeof tune);
    tune.purge_scan = 4;
    struct store *s = open_store(100, 1); /* ids 1..13 are ancient (ms << 20) */
    for (uint64_t id = 1; id <= 13; id++) {
        char rid[16];
        snprintf(rid, sizeof rid, "\"w%d\"", (int)id);
        assert_int_equal(submit(s, id, rid, P1, NULL), STORE_OK);
    }
    /* 1..10 a backlog not ended; 2 and 11..13 end */
    UPDATE(s, 2, STATE_FAILED, 30, 0, "too old", NULL, 0);
    for (uint64_t id = 11; id <= 13; id++)
        UPDATE(s, id, STATE_SUCCEEDED, 1, 0, NULL, NULL, 0);
    struct store_stats st;
    for (int i = 0; i < 2000; i++) { /* the purge runs every 1 ms here */
        usleep(2000);
        get_status(s, 13);
        store_stats_read(s, &st);
        if (st.purged == 4)
            break;
    }
    assert_int_equal(st.purged, 4);
    /* 5 ends behind the pass (which is past it now, or starts again): found too */
    UPDATE(s, 5, STATE_CANCELLED, 0, 0, NULL, NULL, 0);
    for (int i = 0; i < 2000 && get_status(s, 5) != STORE_E_NOTFOUND; i++)
        usleep(2000);
    store_stats_read(s, &st);
    assert_int_equal(st.purged, 5);
    for (uint64_t id = 1; id <= 13; id++) {
        int gone = id == 2 || id == 5 || id >= 11;
        assert_int_equal(get_status(s, id), gone ? STORE_E_NOTFOUND : STORE_OK);
    }
    close_store(s);
    memset(&tune, 0, sizeof tune);
}

/* The memory store keeps its pages in SQLite's memdb VFS, so its page cache
 * stays bounded (8 MiB) while the database grows past it; with ":memory:" the
 * cache held the whole database and every commit that followed a B-tree
 * balance walked all of it. */
static void test_memory_store_cache_is_bounded(void **state)
{
    (void)state;
    char saved[sizeof spec];
    memcpy(saved, spec, sizeof spec);
    snprintf(spec, sizeof spec, "memory");
    struct store *s = open_store(1000000, 86400000);
    /* 24,000 tasks of ~600 bytes: ~15 MB of database */
    static char payload[700];
    int n = snprintf(payload, sizeof payload, "{\"request_id\":\"r\",\"exchange_rate\":2.0,\"bills\":[");
    for (int i = 0; i < 20; i++)
        n += snprintf(payload + n, sizeof payload - (size_t)n, "%s{\"id\":%d,\"amount\":1.5}",
                      i ? "," : "", i);
    snprintf(payload + n, sizeof payload - (size_t)n, "]}");
    static struct answer sub[1000];
    char rid[32];
    for (int round = 0; round < 24; round++) {
        memset(sub, 0, sizeof sub);
        for (int i = 0; i < 1000; i++) {
            snprintf(rid, sizeof rid, "\"m%d\"", round * 1000 + i);
            struct store_submit t = {ID(50000 + (uint64_t)(round * 1000 + i)), rid, payload};
            store_submit(s, inbox, &t, on_submit, &sub[i]);
        }
        for (int i = 0; i < 1000; i++) {
            wait_for(&sub[i]);
            assert_int_equal(sub[i].status, STORE_OK);
        }
    }
    struct store_stats st;
    store_stats_read(s, &st);
    struct answer a = get(s, ID(50000)); /* the first task, long out of the cache */
    /* closed before the checks, so that a failure leaves no writer behind */
    close_store(s);
    memcpy(spec, saved, sizeof spec);
    assert_true(st.cache_bytes > 0);
    assert_true(st.cache_bytes <= 9 * 1024 * 1024);
    assert_int_equal(a.status, STORE_OK);
    assert_string_equal(a.v[0].payload, payload);
    answer_free(&a);
}

/* A full disk: the batch is refused whole, and the stats say the store is
 * failing (/health's 503) while commits fail, for failing_hold_ms after the
 * last failure when none follows (an idle service is let back into
 * rotation to find out), and no longer once a commit passes. */
static void test_full_disk_fault(void **state)
{
    (void)state;
    unlink(path);
    memset(&tune, 0, sizeof tune);
    tune.failing_hold = 300;
    struct store *s = open_store(10, 86400000);
    struct store_stats st;
    store_stats_read(s, &st);
    assert_int_equal(st.failing, 0);
    store_fault_set_full(s, 1);
    assert_int_equal(submit(s, 1, "\"f\"", P1, NULL), STORE_E_IO);
    struct answer a = get(s, 1);
    assert_int_equal(a.status, STORE_E_NOTFOUND); /* nothing half-written */
    answer_free(&a);
    assert_int_equal(submit(s, 1, "\"f\"", P1, NULL), STORE_E_IO);
    store_stats_read(s, &st);
    assert_int_equal(st.failing, 1);
    assert_true(st.failing_commits >= 2); /* the submits' and the read's batches */
    assert_int_equal(st.commit_failures, st.failing_commits);
    uint64_t failures = st.commit_failures;
    uint64_t failed = util_now_ms();
    usleep(450 * 1000); /* no commit tried since: past the hold, an idle purge or two */
    store_stats_read(s, &st);
    assert_int_equal(st.failing, 0);
    assert_int_equal(st.failing_commits, failures); /* ... which decided nothing */
    assert_true(util_now_ms() - failed >= 300);
    assert_int_equal(submit(s, 1, "\"f\"", P1, NULL), STORE_E_IO); /* still full */
    store_stats_read(s, &st);
    assert_int_equal(st.failing, 1);
    store_fault_set_full(s, 0);
    assert_int_equal(submit(s, 1, "\"f\"", P1, NULL), STORE_OK);
    store_stats_read(s, &st);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.failing, 0);
    assert_int_equal(st.failing_commits, 0);
    assert_int_equal(st.commit_failures, failures + 1);
    close_store(s);
}

/* The database file deleted while open: what was stored can still be read,
 * writes are refused from the next commit on (SQLite would take them into a
 * file no restart finds), for good, and the stats say so. A renamed file
 * is the same. */
static void test_file_moved(void **state)
{
    (void)state;
    for (int rename_it = 0; rename_it < 2; rename_it++) {
        unlink(path);
        struct store *s = open_store(10, 86400000);
        assert_int_equal(submit(s, 1, "\"kept\"", P1, NULL), STORE_OK);
        char moved[300];
        snprintf(moved, sizeof moved, "%s.moved", path);
        if (rename_it)
            assert_int_equal(rename(path, moved), 0);
        else
            assert_int_equal(unlink(path), 0);
        assert_int_equal(submit(s, 2, "\"lost\"", P1, NULL), STORE_E_IO);
        struct answer a = get(s, 1);
        assert_int_equal(a.status, STORE_OK);
        answer_free(&a);
        a = get(s, 2);
        assert_int_equal(a.status, STORE_E_NOTFOUND);
        answer_free(&a);
        /* a new file at the path does not make it writable again */
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fclose(f);
        assert_int_equal(submit(s, 3, "\"lost\"", P1, NULL), STORE_E_IO);
        struct store_stats st;
        store_stats_read(s, &st);
        assert_int_equal(st.file_moved, 1);
        assert_int_equal(st.failing, 1); /* for good: /health answers 503 until a restart */
        assert_int_equal(st.active, 1);
        close_store(s);
        unlink(moved);
        unlink(path);
    }
}

/* Thread starts fail on demand: test_store links with
 * -Wl,--wrap=uv_thread_create (Makefile), so the store's calls come here. */
int __real_uv_thread_create(uv_thread_t *tid, uv_thread_cb entry, void *arg);
static int thread_fail_at; /* the nth start from now fails (0: none) */
static uv_thread_t started[2]; /* the last two threads started: after a store's open, */
static unsigned nstarted;       /* its writer and its checkpointer */
int __wrap_uv_thread_create(uv_thread_t *tid, uv_thread_cb entry, void *arg)
{
    if (thread_fail_at && --thread_fail_at == 0)
        return UV_EAGAIN;
    int rc = __real_uv_thread_create(tid, entry, arg);
    if (rc == 0)
        started[nstarted++ % 2] = *tid;
    return rc;
}

/* Statements failed on demand: test_store also links with
 * -Wl,--wrap=sqlite3_step. While begin_busy is set, the store's
 * "BEGIN IMMEDIATE" answers SQLITE_BUSY without running, as it would with
 * the write lock held elsewhere past the busy timeout. The fail_at-th
 * statement starting with fail_sql answers SQLITE_FULL without running, and
 * rolls the transaction back first unless fail_alone is set. */
int __real_sqlite3_step(sqlite3_stmt *st);
int __wrap_sqlite3_step(sqlite3_stmt *st)
{
    const char *sql = sqlite3_sql(st);
    if (begin_busy && strcmp(sql, "BEGIN IMMEDIATE") == 0)
        return SQLITE_BUSY;
    if (fail_at && strncmp(sql, fail_sql, strlen(fail_sql)) == 0 && --fail_at == 0) {
        if (!fail_alone) /* what SQLite does when it cannot undo a failed statement alone */
            sqlite3_exec(sqlite3_db_handle(st), "ROLLBACK", NULL, NULL, NULL);
        return SQLITE_FULL;
    }
    return __real_sqlite3_step(st);
}

/* A batch whose transaction cannot begin is refused as one whose commit
 * fails: logged, counted, the store failing (/health's 503) until a
 * commit passes. Before, its requests were answered 503 with nothing said
 * anywhere. */
static void test_begin_refused(void **state)
{
    (void)state;
    unlink(path);
    struct store *s = open_store(10, 86400000);
    begin_busy = 1;
    assert_int_equal(submit(s, 1, "\"b\"", P1, NULL), STORE_E_IO);
    struct store_stats st;
    store_stats_read(s, &st);
    assert_int_equal(st.failing, 1);
    assert_int_equal(st.commit_failures, 1);
    begin_busy = 0;
    assert_int_equal(submit(s, 1, "\"b\"", P1, NULL), STORE_OK);
    store_stats_read(s, &st);
    assert_int_equal(st.failing, 0);
    assert_int_equal(st.failing_commits, 0);
    assert_int_equal(st.active, 1);
    close_store(s);
}

/* A statement whose failure SQLite cannot undo alone rolls the whole
 * transaction back (its documentation: SQLITE_FULL, IOERR, NOMEM, BUSY).
 * The batch is then refused whole: before, the ops after the failed one ran
 * outside any transaction, each committed on its own, and were answered 503
 * with the rest when the batch's COMMIT found no transaction: tasks stored,
 * told refused, and started by nothing until the next start. */
static void submit_three(struct store *s, struct answer *a, const char *const *rids)
{
    memset(a, 0, 3 * sizeof *a);
    for (int i = 0; i < 3; i++) { /* one turn: one batch */
        struct store_submit t = {ID(700 + i), rids[i], P1};
        store_submit(s, inbox, &t, on_submit, &a[i]);
    }
    for (int i = 0; i < 3; i++)
        wait_for(&a[i]);
}

static void test_transaction_lost_mid_batch(void **state)
{
    (void)state;
    unlink(path);
    struct store *s = open_store(10, 86400000);
    static struct answer a[3];
    static const char *const rids[3] = {"\"l0\"", "\"l1\"", "\"l2\""};
    fail_sql = "INSERT INTO tasks";
    fail_at = 2;
    submit_three(s, a, rids);
    for (int i = 0; i < 3; i++)
        assert_int_equal(a[i].status, STORE_E_IO);
    struct store_stats st;
    store_stats_read(s, &st);
    assert_int_equal(st.failing, 1);
    assert_int_equal(st.commit_failures, 1);
    assert_int_equal(st.active, 0);
    for (int i = 0; i < 3; i++) { /* none stored: all three may be sent again */
        struct answer g = get(s, ID(700 + i));
        assert_int_equal(g.status, STORE_E_NOTFOUND);
        answer_free(&g);
    }
    for (int i = 0; i < 3; i++)
        assert_int_equal(submit(s, ID(700 + i), rids[i], P1, NULL), STORE_OK);
    store_stats_read(s, &st);
    assert_int_equal(st.failing, 0);
    assert_int_equal(st.active, 3);
    close_store(s);
}

/* The reads of a batch that was rolled back read again what is committed:
 * in the batch of a submission whose commit fails, a list shows no such
 * task and a get of it finds none; after a statement that rolled the
 * batch back, a read is answered from what is committed. Before, the
 * first two showed the refused task as stored (its client told 503), and
 * the last was refused (503) though it needed no write. */
static void test_reads_of_a_lost_batch(void **state)
{
    (void)state;
    unlink(path);
    struct store *s = open_store(10, 86400000);
    assert_int_equal(submit(s, ID(710), "\"k0\"", P1, NULL), STORE_OK);
    store_fault_set_full(s, 1);
    static struct answer sa, la, ga;
    struct store_submit t = {ID(711), "\"k1\"", P1};
    struct store_list_query q = {-1, NULL, 0, 10};
    store_submit(s, inbox, &t, on_submit, &sa); /* one turn: one batch */
    store_list(s, inbox, &q, on_list, &la);
    store_get(s, inbox, ID(711), on_view, &ga);
    wait_for(&sa);
    wait_for(&la);
    wait_for(&ga);
    assert_int_equal(sa.status, STORE_E_IO);
    assert_int_equal(la.status, STORE_OK);
    assert_int_equal(la.n, 1);
    assert_int_equal(la.v[0].id, ID(710));
    assert_int_equal(la.cursor, 0);
    assert_int_equal(ga.status, STORE_E_NOTFOUND);
    answer_free(&la);
    answer_free(&ga);
    store_fault_set_full(s, 0);

    memset(&sa, 0, sizeof sa);
    fail_sql = "INSERT INTO tasks";
    fail_at = 1;
    t = (struct store_submit){ID(712), "\"k2\"", P1};
    store_submit(s, inbox, &t, on_submit, &sa);
    store_get(s, inbox, ID(710), on_view, &ga);
    wait_for(&sa);
    wait_for(&ga);
    assert_int_equal(sa.status, STORE_E_IO);
    assert_int_equal(ga.status, STORE_OK);
    assert_int_equal(ga.v[0].id, ID(710));
    assert_string_equal(ga.v[0].request_id, "\"k0\"");
    answer_free(&ga);
    struct store_stats st;
    store_stats_read(s, &st);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.commit_failures, 2);
    close_store(s);
}

/* Checkpoints stopped on demand: test_store also links with
 * -Wl,--wrap=sqlite3_wal_checkpoint_v2. While ckpt_hold is set, the
 * checkpointer's next call waits in here, before SQLite's, until
 * ckpt_release: a pass that does not end. The writer's calls meanwhile
 * answer SQLITE_BUSY, as SQLite does while another checkpoint runs. */
int __real_sqlite3_wal_checkpoint_v2(sqlite3 *db, const char *name, int mode, int *log, int *ckpt);
static uv_thread_t writer_thread;
static _Atomic int ckpt_hold, ckpt_inside, writer_ckpts, writer_busy;
static uv_sem_t ckpt_go;

int __wrap_sqlite3_wal_checkpoint_v2(sqlite3 *db, const char *name, int mode, int *log, int *ckpt)
{
    if (ckpt_fail) /* as an I/O error in the checkpoint's copy or its fsync would */
        return SQLITE_IOERR;
    uv_thread_t self = uv_thread_self();
    if (ckpt_hold && uv_thread_equal(&self, &writer_thread)) {
        writer_ckpts++;
        if (ckpt_inside) {
            writer_busy++;
            return SQLITE_BUSY;
        }
    } else if (ckpt_hold) {
        ckpt_inside = 1;
        uv_sem_wait(&ckpt_go);
        ckpt_inside = 0;
    }
    return __real_sqlite3_wal_checkpoint_v2(db, name, mode, log, ckpt);
}

static void ckpt_release(void)
{
    if (ckpt_hold) {
        ckpt_hold = 0;
        uv_sem_post(&ckpt_go); /* kept if the checkpointer has yet to come */
    }
}

static int ckpt_held(struct store *s)
{
    (void)s;
    return ckpt_inside;
}

static int wal_short(struct store *s)
{
    struct store_stats st;
    store_stats_read(s, &st);
    return st.wal_frames < 64;
}

/* A statement that fails alone (SQLite undid it, the transaction goes on):
 * that op is answered 503 (and logged: store_statement_failed), the rest of
 * its batch commits. Submits failing so with none stored since (a damaged
 * index refuses them all while the commits pass) make the store failing. */
static void test_statement_failed_alone(void **state)
{
    (void)state;
    unlink(path);
    struct store *s = open_store(10, 86400000);
    static struct answer a[3];
    static const char *const rids[3] = {"\"m0\"", "\"m1\"", "\"m2\""};
    fail_sql = "INSERT INTO tasks";
    fail_alone = 1;
    fail_at = 2;
    submit_three(s, a, rids);
    assert_int_equal(a[0].status, STORE_OK);
    assert_int_equal(a[1].status, STORE_E_IO);
    assert_int_equal(a[2].status, STORE_OK);
    struct store_stats st;
    store_stats_read(s, &st);
    assert_int_equal(st.active, 2);
    assert_int_equal(st.commit_failures, 0);
    assert_int_equal(st.failing_submits, 0); /* one was stored after it */
    assert_int_equal(st.failing, 0);
    fail_at = 1; /* a submit that fails alone, none stored after it: refusing */
    assert_int_equal(submit(s, ID(703), "\"m3\"", P1, NULL), STORE_E_IO);
    store_stats_read(s, &st);
    assert_int_equal(st.failing_submits, 1);
    assert_int_equal(st.failing, 1);
    assert_int_equal(st.commit_failures, 0); /* the commits pass */
    assert_int_equal(submit(s, ID(703), "\"m3\"", P1, NULL), STORE_OK);
    store_stats_read(s, &st);
    assert_int_equal(st.failing, 0);
    struct answer g = get(s, ID(701));
    assert_int_equal(g.status, STORE_E_NOTFOUND);
    answer_free(&g);
    g = get(s, ID(702));
    assert_int_equal(g.status, STORE_OK);
    answer_free(&g);
    close_store(s);
}

/* The newest task id, read at the start so that ids go on increasing when
 * the wall clock was set back: the greatest stored, 0 for none; a read that
 * fails is an error the start stops on, never 0. */
static void test_newest_id(void **state)
{
    (void)state;
    unlink(path);
    struct store *s = open_store(10, 86400000);
    uint64_t id = 1;
    char err[256];
    assert_int_equal(store_max_id(s, &id, err, sizeof err), 0);
    assert_int_equal(id, 0);
    assert_int_equal(submit(s, ID(902), "\"n2\"", P1, NULL), STORE_OK);
    assert_int_equal(submit(s, ID(901), "\"n1\"", P1, NULL), STORE_OK);
    assert_int_equal(store_max_id(s, &id, err, sizeof err), 0);
    assert_int_equal(id, ID(902));
    fail_sql = "SELECT max(id)";
    fail_alone = 1;
    fail_at = 1;
    assert_int_equal(store_max_id(s, &id, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot read its newest task id: "));
    assert_int_equal(store_max_id(s, &id, err, sizeof err), 0); /* one failure only */
    assert_int_equal(id, ID(902));
    close_store(s);
}

/* What stats_until waits for: the updates waiting to be written again
 * equal to n, or at least n failed commits. */
enum watch { UNWRITTEN, FAILED_COMMITS };

/* The store's counters once the writer has gone through what this loop
 * queued: polled (the writer answers no one for an update) until what w
 * says holds, or 5 s. */
static int stats_until(struct store *s, enum watch w, uint64_t n, struct store_stats *st)
{
    for (int i = 0; i < 5000; i++) {
        uv_run(&loop, UV_RUN_NOWAIT); /* hands what was queued to the writer */
        store_stats_read(s, st);
        if (w == UNWRITTEN ? st->unwritten == n : st->commit_failures >= n)
            return 1;
        usleep(1000);
    }
    return 0;
}

/* Polls the task until it is in state (its updates written again every
 * DEFER_RETRY_MS); the view, or a failure after 5 s. */
static struct answer get_until(struct store *s, uint64_t id, int state)
{
    for (int i = 0; i < 5000; i++) {
        struct answer a = get(s, id);
        assert_int_equal(a.status, STORE_OK);
        if (a.v[0].state == state)
            return a;
        answer_free(&a);
        usleep(1000);
    }
    fail_msg("task %" PRIx64 " never reached state %d", id, state);
    return (struct answer){0};
}

/* An update whose write fails alone (store_statement_failed) is written
 * again later, and its task's later updates wait behind it: the first
 * failing and the outcome after it in the same batch, a read right after
 * shows the state stored before both; then both are written, in their
 * order (retrying before succeeded in the history, its error and
 * breakdown kept). Before, the failed update was dropped and the outcome
 * written over it; with the order not kept, the outcome would be written
 * first and the retry then refused (the task terminal). A cancel failing
 * alone is answered 503 (STORE_E_IO) and can be made again. */
static void test_update_failed_alone_written_again(void **state)
{
    (void)state;
    unlink(path);
    struct store *s = open_store(10, 86400000);
    assert_int_equal(submit(s, ID(800), "\"u0\"", P1, NULL), STORE_OK);
    fail_sql = "UPDATE tasks SET state = ?1";
    fail_alone = 1;
    fail_at = 1;
    /* through the inbox: the two updates and the read go to the writer together,
     * one batch (UPDATE's go at once: the read could come after their retry) */
    struct store_change c1 = {ID(800), STATE_RETRYING, 1, 123456, "HTTP 500: x", "[1]", 1234};
    struct store_change c2 = {ID(800), STATE_SUCCEEDED, 2, 0, NULL, NULL, 0};
    store_update(s, inbox, &c1);
    store_update(s, inbox, &c2);
    struct answer a = get(s, ID(800)); /* a read writes the updates before it */
    assert_int_equal(a.status, STORE_OK);
    assert_int_equal(a.v[0].state, STATE_RUNNING);
    answer_free(&a);
    struct store_stats st;
    store_stats_read(s, &st);
    assert_int_equal(st.commit_failures, 0);
    assert_int_equal(st.failing, 0); /* updates and cancels are not submits */
    a = get_until(s, ID(800), STATE_SUCCEEDED);
    assert_int_equal(a.v[0].attempts, 2);
    assert_string_equal(a.v[0].last_error, "HTTP 500: x");
    assert_string_equal(a.v[0].breakdown, "[1]");
    const char *h = a.v[0].history, *d = strstr(h, "delivering@1234 retrying@"),
               *su = strstr(h, "succeeded@");
    assert_true(d && su && d < su);
    answer_free(&a);
    store_stats_read(s, &st);
    assert_int_equal(st.unwritten, 0);
    assert_int_equal(st.active, 0);

    assert_int_equal(submit(s, ID(801), "\"u1\"", P1, NULL), STORE_OK);
    fail_sql = "UPDATE tasks SET state = 6";
    fail_at = 1;
    a = cancel(s, ID(801));
    assert_int_equal(a.status, STORE_E_IO);
    answer_free(&a);
    a = cancel(s, ID(801));
    assert_int_equal(a.status, STORE_OK);
    assert_int_equal(a.v[0].state, STATE_CANCELLED);
    answer_free(&a);
    close_store(s);
}

/* The updates of a batch whose commit fails (a full disk), or whose
 * transaction cannot begin, are written again once commits pass, each of
 * them, tried every DEFER_RETRY_MS meanwhile.
 * Before, they were dropped: the tasks kept their stored state (running)
 * until the next start ran them again. */
static void test_updates_of_a_failed_commit_written_again(void **state)
{
    (void)state;
    unlink(path);
    struct store *s = open_store(10, 86400000);
    assert_int_equal(submit(s, ID(810), "\"w0\"", P1, NULL), STORE_OK);
    assert_int_equal(submit(s, ID(811), "\"w1\"", P1, NULL), STORE_OK);
    store_fault_set_full(s, 1);
    UPDATE(s, ID(810), STATE_RETRYING, 1, 123456, "HTTP 500: a", NULL, 1234);
    UPDATE(s, ID(811), STATE_RETRYING, 1, 123456, "HTTP 500: b", NULL, 1234);
    struct store_stats st;
    assert_true(stats_until(s, UNWRITTEN, 2, &st));
    assert_true(stats_until(s, FAILED_COMMITS, 2, &st)); /* tried again, still failing */
    assert_int_equal(st.unwritten, 2);
    store_fault_set_full(s, 0);
    assert_true(stats_until(s, UNWRITTEN, 0, &st));
    for (int i = 0; i < 2; i++) {
        struct answer a = get(s, ID(810 + i));
        assert_int_equal(a.v[0].state, STATE_RETRYING);
        assert_int_equal(a.v[0].attempts, 1);
        assert_string_equal(a.v[0].last_error, i ? "HTTP 500: b" : "HTTP 500: a");
        answer_free(&a);
    }
    begin_busy = 1; /* a batch whose transaction cannot begin: the same */
    UPDATE(s, ID(810), STATE_SUCCEEDED, 2, 0, NULL, "[1]", 0);
    assert_true(stats_until(s, UNWRITTEN, 1, &st));
    begin_busy = 0;
    assert_true(stats_until(s, UNWRITTEN, 0, &st));
    struct answer a = get(s, ID(810));
    assert_int_equal(a.v[0].state, STATE_SUCCEEDED);
    answer_free(&a);
    close_store(s);
}


/* The list of updates to write again is tried a slice (256) at a time, the
 * next slice at once when one passes, and a slice that fails again goes back
 * in front of the list's rest: task 0's first update is in the first slice,
 * its second in the rest, and after a slice tried while the disk is full
 * they are still written in their order (put back after the rest, the
 * second would be written first). */
static void test_updates_written_again_a_slice_at_a_time(void **state)
{
    (void)state;
    unlink(path);
    struct store *s = open_store(1000, 86400000);
    for (int i = 0; i < 270; i++) {
        char rid[16];
        snprintf(rid, sizeof rid, "\"s%d\"", i);
        assert_int_equal(submit(s, ID(1000 + i), rid, P1, NULL), STORE_OK);
    }
    store_fault_set_full(s, 1);
    for (int i = 1; i < 250; i++)
        UPDATE(s, ID(1000 + i), STATE_RETRYING, 1, 123456, "HTTP 500: a", NULL, 0);
    UPDATE(s, ID(1000), STATE_RETRYING, 1, 123456, "HTTP 500: first", NULL, 0); /* 250th */
    for (int i = 250; i < 270; i++)
        UPDATE(s, ID(1000 + i), STATE_RETRYING, 1, 123456, "HTTP 500: a", NULL, 0);
    UPDATE(s, ID(1000), STATE_RETRYING, 2, 123456, "HTTP 500: second", NULL, 0); /* 271st */
    struct store_stats st;
    assert_true(stats_until(s, UNWRITTEN, 271, &st));
    /* and a slice tried while failing: kept in front */
    assert_true(stats_until(s, FAILED_COMMITS, st.commit_failures + 1, &st));
    assert_int_equal(st.unwritten, 271);
    store_fault_set_full(s, 0);
    assert_true(stats_until(s, UNWRITTEN, 0, &st));
    struct answer a = get(s, ID(1000));
    assert_int_equal(a.v[0].state, STATE_RETRYING);
    assert_int_equal(a.v[0].attempts, 2);
    assert_string_equal(a.v[0].last_error, "HTTP 500: second");
    const char *r1 = strstr(a.v[0].history, "retrying@");
    assert_true(r1 && strstr(r1 + 1, "retrying@"));
    answer_free(&a);
    for (int i = 1; i < 270; i += 67) {
        a = get(s, ID(1000 + i));
        assert_int_equal(a.v[0].state, STATE_RETRYING);
        assert_int_equal(a.v[0].attempts, 1);
        answer_free(&a);
    }
    close_store(s);
}

/* At the stop the updates waiting to be written again are tried once more;
 * what fails then is left (the next start resumes those tasks), and the
 * stop does not wait for the disk. */
static void test_unwritten_updates_at_the_stop(void **state)
{
    (void)state;
    unlink(path);
    struct store *s = open_store(10, 86400000);
    assert_int_equal(submit(s, ID(820), "\"x0\"", P1, NULL), STORE_OK);
    assert_int_equal(submit(s, ID(821), "\"x1\"", P1, NULL), STORE_OK);
    store_fault_set_full(s, 1);
    UPDATE(s, ID(820), STATE_RETRYING, 1, 123456, NULL, NULL, 1234);
    struct store_stats st;
    assert_true(stats_until(s, UNWRITTEN, 1, &st));
    store_fault_set_full(s, 0);
    close_store(s); /* written: at the stop if not before */
    s = open_store(10, 86400000);
    struct answer a = get(s, ID(820));
    assert_int_equal(a.v[0].state, STATE_RETRYING);
    answer_free(&a);
    store_fault_set_full(s, 1);
    UPDATE(s, ID(821), STATE_RETRYING, 1, 123456, NULL, NULL, 1234);
    assert_true(stats_until(s, UNWRITTEN, 1, &st));
    close_store(s); /* the disk still full: given up */
    s = open_store(10, 86400000);
    a = get(s, ID(821));
    assert_int_equal(a.v[0].state, STATE_RUNNING);
    answer_free(&a);
    close_store(s);
}

static uint64_t passes_from;
static int two_more_passes(struct store *s)
{
    struct store_stats st;
    store_stats_read(s, &st);
    return st.checkpoints >= passes_from + 2;
}

/* A checkpoint that fails is counted (and logged: store_checkpoint_failed),
 * and the store goes on: its frames stay in the WAL, and the commits pass. */
static void test_checkpoint_failures_counted(void **state)
{
    (void)state;
    unlink(path);
    struct store *s = open_store(10, 86400000);
    struct store_stats st;
    store_stats_read(s, &st);
    assert_int_equal(st.checkpoint_failures, 0);
    ckpt_fail = 1;
    passes_from = st.checkpoints;
    wait_until(s, two_more_passes); /* one every 200 ms */
    store_stats_read(s, &st);
    assert_true(st.checkpoint_failures >= 1);
    assert_int_equal(submit(s, 1, "\"c\"", P1, NULL), STORE_OK);
    ckpt_fail = 0;
    uint64_t failures = st.checkpoint_failures;
    passes_from = st.checkpoints;
    wait_until(s, two_more_passes);
    store_stats_read(s, &st);
    assert_true(st.checkpoint_failures <= failures + 1); /* one may have been under way */
    struct answer a = get(s, 1);
    assert_int_equal(a.status, STORE_OK);
    answer_free(&a);
    close_store(s);
}

/* The writer's catch-up meets a checkpoint the checkpointer is still running:
 * SQLite answers BUSY, the writer's commits go on, and it tries again only
 * after the checkpointer's next pass, not once per commit meanwhile. */
static void test_catch_up_meets_a_running_checkpoint(void **state)
{
    (void)state;
    unlink(path);
    tune.wal_max = 64;
    struct store *s = open_store(100000, 86400000);
    writer_thread = started[(nstarted - 2) % 2];
    wait_until(s, one_pass);
    writer_ckpts = writer_busy = 0;
    assert_int_equal(uv_sem_init(&ckpt_go, 0), 0);
    ckpt_hold = 1;
    wait_until(s, ckpt_held); /* the checkpointer's next pass has begun, and waits */
    struct store_stats st;
    store_stats_read(s, &st);
    uint64_t held_pass = st.checkpoints;
    submit_in_one_turn(s, "busy", 60000); /* one commit of ~170 frames: past wal_max */
    char rid[32];
    for (int i = 0; i < 50; i++) { /* 50 commits more, the WAL past wal_max in each */
        snprintf(rid, sizeof rid, "\"more%d\"", i);
        assert_int_equal(submit(s, ID(62000 + (uint64_t)i), rid, P1, NULL), STORE_OK);
    }
    store_stats_read(s, &st);
    assert_true(st.wal_frames >= 64);
    assert_int_equal(st.checkpoints, held_pass);
    assert_int_equal(writer_busy, 1); /* it tried once, and found the pass running */
    assert_int_equal(writer_ckpts, 1); /* and not again while that pass went on */
    /* the pass ends, having copied the whole WAL: a commit after it rewinds the WAL (one
     * after the next pass, should a pass running then have kept the WAL from rewinding) */
    ckpt_release();
    int after = 0;
    for (; after < 20 && !wal_short(s); after++) {
        wait_more_passes(s, 1);
        snprintf(rid, sizeof rid, "\"after%d\"", after);
        assert_int_equal(submit(s, ID(63000 + (uint64_t)after), rid, P1, NULL), STORE_OK);
    }
    assert_true(wal_short(s));
    store_stats_read(s, &st);
    assert_int_equal(st.active, 2050 + (uint64_t)after);
    close_store(s);
    uv_sem_destroy(&ckpt_go);
}

/* No writer thread: the store does not open, and says why. */
static void test_writer_not_started(void **state)
{
    (void)state;
    unlink(path);
    struct store_config cfg = {spec, "full", 10, 1000, 1, 0, 0, 0, 0, 0, 0};
    char err[256];
    thread_fail_at = 1;
    assert_null(store_open(&cfg, err, sizeof err));
    assert_int_equal(thread_fail_at, 0);
    assert_non_null(strstr(err, "cannot start the writer thread"));
}

/* No checkpointer thread: the store works, and the writer keeps the WAL short
 * itself (past 1,000 frames, as SQLite's own automatic checkpoint). */
static void test_checkpointer_not_started(void **state)
{
    (void)state;
    unlink(path);
    thread_fail_at = 2; /* the writer starts, the checkpointer does not */
    struct store *s = open_store(100000, 86400000);
    assert_int_equal(thread_fail_at, 0);
    char rid[32];
    for (int i = 0; i < 800; i++) { /* a commit each: ~2,400 frames */
        snprintf(rid, sizeof rid, "\"n%d\"", i);
        assert_int_equal(submit(s, ID(50000 + (uint64_t)i), rid, P1, NULL), STORE_OK);
    }
    struct store_stats st;
    store_stats_read(s, &st);
    assert_int_equal(st.checkpoints, 0);
    assert_true(st.wal_catch_ups >= 1);
    assert_true(st.wal_frames < 1100);
    struct answer a = get(s, ID(50000));
    assert_int_equal(a.status, STORE_OK);
    answer_free(&a);
    close_store(s);
    s = open_store(100000, 86400000); /* and what it wrote is there after a reopen */
    store_stats_read(s, &st);
    assert_int_equal(st.active, 800);
    close_store(s);
}

static void test_unusable_paths(void **state)
{
    (void)state;
    struct store_config cfg = {"sqlite:/nonexistent-dir/x.db", "full", 10, 1000, 0, 0, 0, 0, 0, 0, 0};
    char err[256];
    assert_null(store_open(&cfg, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent-dir/x.db"));
    cfg.spec = "postgres://x";
    assert_null(store_open(&cfg, err, sizeof err));
    assert_string_equal(err, "--store: expected sqlite:PATH or memory");
    assert_int_equal(task_state_parse("retrying", 8), STATE_RETRYING);
    assert_int_equal(task_state_parse("nope", 4), -1);
    assert_string_equal(task_state_name(STATE_CANCELLED), "cancelled");
}

/* Another program's database (schema 0 with tables of its own: a mistyped
 * --store) is refused and left as it is; an empty file is taken. */
static void test_foreign_database_refused(void **state)
{
    (void)state;
    unlink(path);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE orders (id INTEGER PRIMARY KEY, total);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    struct store_config cfg = {spec, "full", 10, 1000, 1, 0, 0, 0, 0, 0, 0};
    char err[256];
    assert_null(store_open(&cfg, err, sizeof err));
    assert_non_null(strstr(err, "it holds another program's schema (table \"orders\""));
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT group_concat(name) FROM sqlite_schema", -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "orders");
    sqlite3_finalize(st);
    sqlite3_close(db);
    unlink(path);
    int fd = open(path, O_CREAT | O_WRONLY, 0644); /* empty: a new database */
    assert_true(fd >= 0);
    close(fd);
    struct store *s = store_open(&cfg, err, sizeof err);
    assert_non_null(s);
    store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_submit_and_transitions, close_each),
        cmocka_unit_test_teardown(test_recovery_after_reopen, close_each),
        cmocka_unit_test_teardown(test_batching_and_held_back_updates, close_each),
        cmocka_unit_test_teardown(test_ops_from_timers_are_not_held, close_each),
        cmocka_unit_test_teardown(test_outcomes_held_until_read_or_close, close_each),
        cmocka_unit_test_teardown(test_held_outcomes_and_the_task_api, close_each),
        cmocka_unit_test_teardown(test_retry_of_an_unreadable_task_is_refused, close_each),
        cmocka_unit_test_teardown(test_outcomes_released_when_due_or_quiet, close_each),
        cmocka_unit_test_teardown(test_wal_stays_short_under_load, close_each),
        cmocka_unit_test_teardown(test_checkpointer_rewinds_the_wal, close_each),
        cmocka_unit_test_teardown(test_checkpointer_woken_past_half_the_wal, close_each),
        cmocka_unit_test_teardown(test_migration_from_v1, close_each),
        cmocka_unit_test_teardown(test_purge, close_each),
        cmocka_unit_test_teardown(test_purge_counts_from_the_end, close_each),
        cmocka_unit_test_teardown(test_purge_walks_in_pieces, close_each),
        cmocka_unit_test_teardown(test_purge_undone_by_a_failed_commit, close_each),
        cmocka_unit_test_teardown(test_purge_holds_a_clock_stepped_forward, close_each),
        cmocka_unit_test_teardown(test_memory_store_cache_is_bounded, close_each),
        cmocka_unit_test_teardown(test_full_disk_fault, close_each),
        cmocka_unit_test_teardown(test_begin_refused, close_each),
        cmocka_unit_test_teardown(test_transaction_lost_mid_batch, close_each),
        cmocka_unit_test_teardown(test_reads_of_a_lost_batch, close_each),
        cmocka_unit_test_teardown(test_statement_failed_alone, close_each),
        cmocka_unit_test_teardown(test_newest_id, close_each),
        cmocka_unit_test_teardown(test_update_failed_alone_written_again, close_each),
        cmocka_unit_test_teardown(test_updates_of_a_failed_commit_written_again, close_each),
        cmocka_unit_test_teardown(test_updates_written_again_a_slice_at_a_time, close_each),
        cmocka_unit_test_teardown(test_unwritten_updates_at_the_stop, close_each),
        cmocka_unit_test_teardown(test_checkpoint_failures_counted, close_each),
        cmocka_unit_test_teardown(test_file_moved, close_each),
        cmocka_unit_test_teardown(test_writer_not_started, close_each),
        cmocka_unit_test_teardown(test_checkpointer_not_started, close_each),
        cmocka_unit_test_teardown(test_catch_up_meets_a_running_checkpoint, close_each),
        cmocka_unit_test_teardown(test_unusable_paths, close_each),
        cmocka_unit_test_teardown(test_foreign_database_refused, close_each),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
