/*
 * runner: the tasks of one worker, from accepted to answered.
 *
 *   async:  stored (store.h) -> runner_start -> each bill waits its random
 *           latency (all at once) -> last bill computed: stored as delivering
 *           with its breakdown -> callback PUT (delivery) -> succeeded, or
 *           retrying (backoff.h; the retry waits in the same heap) -> ...
 *           -> succeeded / failed. Every change goes to the store.
 *   sync:   submit -> bill i is computed at start + (i+1) * sync latency
 *           -> last bill computed -> the HTTP answer -> done
 *
 * Every waiting bill is one entry in the worker's deadline heap; one
 * uv_timer_t is armed for the earliest entry. When a bill is due, its line
 * is printed ("Рассчитана купюра ...") and, when it was the task's last,
 * the task moves on.
 *
 * The runner owns its tasks and their struct exchange. Not thread-safe:
 * the loop's thread only.
 */
#ifndef EXCHANGED_RUNNER_H
#define EXCHANGED_RUNNER_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "../store/store.h"
#include "backoff.h"
#include "delivery.h"
#include "payload.h"

struct runner;
struct http_exchange;

/* Owned by the caller, readable from any thread for as long as the caller
 * keeps it (relaxed atomics). */
struct runner_counters {
    _Atomic uint64_t tasks_accepted;
    _Atomic uint64_t tasks_in_flight;   /* async tasks computing or being delivered */
    _Atomic uint64_t sync_in_flight;
    _Atomic uint64_t callbacks_delivered;
    _Atomic uint64_t callbacks_failed;
    _Atomic uint64_t callbacks_retried; /* failed attempts to be made again */
    _Atomic uint64_t callbacks_put_off; /* retries put off: the main service failing */
};

struct runner_config {
    struct runner_counters *counters; /* caller-owned, zeroed */
    uint64_t latency_min_ms, latency_max_ms;
    uint64_t sync_latency_ms;
    const char *secret_token;
    int bill_log;   /* print the seed's line per bill */
    int worker_id;  /* 0..255, part of task ids */
    struct store *store;
    struct backoff_policy backoff;
    struct store_inbox *inbox; /* this loop's, for the store's writes; NULL: direct */
};

/* delivery is used for callbacks; the runner owns it from here on (closes it). */
struct runner *runner_new(uv_loop_t *loop, const struct runner_config *cfg, struct delivery *d);

/* A new, time-ordered task id: (ms << 12 | counter) << 8 | worker_id, greater
 * than every id any worker of the process gave out before it. */
uint64_t runner_new_id(struct runner *r);
/* Every id made from now on is greater than id (the greatest stored, at
 * start: ids keep increasing when the wall clock went back since). Returns
 * how many ms id is ahead of the wall clock (0 when it is not). */
uint64_t runner_ids_after(uint64_t id);
/* Takes ownership of ex, a task already stored as running under id;
 * starts its bills. After runner_close has begun, ex is freed and the task
 * is left in the store for the next start. */
void runner_start(struct runner *r, struct exchange *ex, uint64_t id);
/* Takes ownership of ex: a stored task resumed (recovery, or a retry asked
 * over HTTP). queued/running compute again; delivering/retrying are
 * delivered at next_attempt_ms (wall clock; 0 = now) after attempts tries.
 * Its age (for the retry age limit) is taken from the wall clock now and
 * runner_age_from(v); from then on it counts on the loop's monotonic clock. */
void runner_resume(struct runner *r, struct exchange *ex, const struct task_view *v);
/* When a task's age starts: its created_ms, or the time of its last retry
 * by hand (a "retrying@ms" right after "failed@ms" in its history). */
uint64_t runner_age_from(const struct task_view *v);
/* Takes ownership of ex; answers x when the last bill is computed:
 * 200 {"status":"completed","breakdown":[...]}. */
void runner_submit_sync(struct runner *r, struct exchange *ex, struct http_exchange *x);

/* Tasks not yet finished (computing, or waiting for their callback). */
uint64_t runner_active(const struct runner *r);

/* Stops: nothing more is computed or sent; the tasks waiting in memory are
 * dropped (they stay in the store for the next start; sync requests are
 * answered 503). The callbacks already on the wire get their answers for up
 * to wait_ms, recorded as usual (a delivered task is not sent again at the
 * next start); those still unanswered then are cut off and sent again at
 * the next start. Then closes the timer, frees r and calls done(arg). */
void runner_close(struct runner *r, uint64_t wait_ms, void (*done)(void *arg), void *arg);

/* Formats a task id as 16 hex digits into out (>= 17 bytes). */
void runner_format_id(uint64_t id, char *out);

#endif
