/*
 * runner: the tasks of one worker, from accepted to answered.
 *
 *   async:  submit -> each bill waits its random latency (all at once)
 *           -> last bill computed -> callback PUT (delivery) -> done
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
};

struct runner_config {
    struct runner_counters *counters; /* caller-owned, zeroed */
    uint64_t latency_min_ms, latency_max_ms;
    uint64_t sync_latency_ms;
    const char *secret_token;
    int bill_log;   /* print the seed's line per bill */
    int worker_id;  /* 0..255, part of task ids */
};

/* delivery is used for callbacks; the runner does not own it. */
struct runner *runner_new(uv_loop_t *loop, const struct runner_config *cfg, struct delivery *d);

/* Takes ownership of ex; starts its bills. Returns the task id. */
uint64_t runner_submit_async(struct runner *r, struct exchange *ex);
/* Takes ownership of ex; answers x when the last bill is computed:
 * 200 {"status":"completed","breakdown":[...]}. */
void runner_submit_sync(struct runner *r, struct exchange *ex, struct http_exchange *x);

/* Tasks not yet finished (computing, or waiting for their callback). */
uint64_t runner_active(const struct runner *r);

/* Drops every task still waiting (sync ones are answered 503), logs how
 * many, closes the timer and frees r once it is closed. Call after the
 * delivery has been closed (so no callback is in flight). */
void runner_close(struct runner *r);

/* Formats a task id as 16 hex digits into out (>= 17 bytes). */
void runner_format_id(uint64_t id, char *out);

#endif
