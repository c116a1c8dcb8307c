#include "runner.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "../buf.h"
#include "../http/server.h"
#include "../jsonw.h"
#include "../output.h"
#include "../util.h"
#include "deadline.h"
#include "money.h"

enum task_kind { TASK_ASYNC, TASK_SYNC };

struct task {
    struct runner *r;
    struct exchange *ex;        /* owned */
    struct http_exchange *reply; /* sync: where the answer goes */
    uint64_t id;
    int64_t born_ms;            /* loop time its age counts from, for the retry age limit:
                                   its start in this run; for a task resumed, the resume
                                   less its age by the wall clock then (see runner_resume) */
    uint64_t delivering_ms;     /* computed at (wall clock), not yet written; 0 once written */
    uint32_t pending;           /* its bills' heap entries not yet due */
    uint16_t attempts;          /* callback attempts made */
    uint8_t kind;
    uint8_t waits;              /* retries put off while the main service was failing
                                   (see wait_while_failing); saturates */
};

/* The heap tag of a task waiting for its next delivery attempt (bills use
 * their index, which is below LIMIT_BILLS). */
#define TAG_DELIVER DEADLINE_TAG_MAX
/* The tag of a task whose bills are all computed at once: without the bill
 * log nothing tells one bill's end from another's, so a task takes one heap
 * entry, due when its slowest bill is, instead of one per bill. */
#define TAG_ALL_BILLS (DEADLINE_TAG_MAX - 1)

struct runner {
    uv_loop_t *loop;
    uv_timer_t timer;
    uint64_t timer_due;  /* when the timer is armed for; 0 = not armed */
    struct deadline_heap heap;
    struct runner_config cfg;
    struct delivery *delivery;
    char *callback_prefix; /* {"token": "...", "request_id":  */
    uint64_t rng;
    /* loop time until which the main service counts as failing: set by a
     * callback that failed and may be retried (no answer, 5xx, 408, 429),
     * cleared by one that got a final answer (2xx, or a status not retried) */
    uint64_t failing_until;
    /* no callback has had an answer yet in this run: the retries resumed at
     * the start wait for the first one's, a short while each (see runner_new) */
    int unknown;
    int closing;
    uint64_t left_async;   /* at the close: tasks left in the store for the next start */
    uint64_t dropped_sync; /* at the close: sync requests answered 503 */
    uint64_t finished;     /* at the close: callbacks on the wire that ended on their own */
    void (*closed)(void *arg);
    void *closed_arg;
};

#define ST_ADD(field, n) \
    atomic_fetch_add_explicit(&r->cfg.counters->field, (uint64_t)(n), memory_order_relaxed)
#define ST_SUB(field) atomic_fetch_sub_explicit(&r->cfg.counters->field, 1, memory_order_relaxed)

static uint64_t rng_next(struct runner *r)
{
    /* splitmix64 */
    uint64_t z = (r->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t latency(struct runner *r)
{
    uint64_t lo = r->cfg.latency_min_ms, hi = r->cfg.latency_max_ms;
    if (hi <= lo)
        return lo;
    return lo + rng_next(r) % (hi - lo + 1);
}

/* Task ids: ms since the epoch, a counter for ids made in the same ms, and
 * the worker's number. The last id's time and counter (ms << 12 | counter)
 * is shared by every worker: an id is greater than every id given out before
 * it in the process, so a task submitted after another's answer lists after
 * it, whichever worker took each (with a counter per worker, two tasks of the
 * same millisecond were ordered by worker). */
static _Atomic uint64_t last_id;

uint64_t runner_new_id(struct runner *r)
{
    uint64_t base = util_wall_ms() << 12;
    uint64_t last = atomic_load(&last_id), v;
    do
        v = base > last ? base : last + 1;
    while (!atomic_compare_exchange_weak(&last_id, &last, v));
    return (v << 8) | (uint64_t)(r->cfg.worker_id & 0xFF);
}

uint64_t runner_ids_after(uint64_t id)
{
    uint64_t v = id >> 8, last = atomic_load(&last_id);
    while (v > last && !atomic_compare_exchange_weak(&last_id, &last, v))
        ;
    uint64_t ms = v >> 12, now = util_wall_ms();
    return ms > now ? ms - now : 0;
}

void runner_format_id(uint64_t id, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, id >>= 4)
        out[i] = hex[id & 15];
    out[16] = '\0';
}

static void on_timer(uv_timer_t *t);

static void arm(struct runner *r)
{
    uint64_t due;
    if (deadline_peek(&r->heap, &due) != 0) {
        if (r->timer_due) {
            uv_timer_stop(&r->timer);
            r->timer_due = 0;
        }
        return;
    }
    if (r->timer_due && r->timer_due <= due)
        return; /* already armed early enough */
    uint64_t now = uv_now(r->loop);
    uv_timer_start(&r->timer, on_timer, due > now ? due - now : 0, 0);
    r->timer_due = due;
}

struct runner *runner_new(uv_loop_t *loop, const struct runner_config *cfg, struct delivery *d)
{
    struct runner *r = xcalloc(1, sizeof *r);
    r->loop = loop;
    r->cfg = *cfg;
    r->delivery = d;
    deadline_init(&r->heap);
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    if (getrandom(&r->rng, sizeof r->rng, 0) != sizeof r->rng)
        r->rng = util_now_ms() ^ (uint64_t)(uintptr_t)r;
    /* At the start the main service's state is not known: the first retry
     * due is made, and those due while it is on the wire wait a short while
     * (a restart during an outage sent every resumed retry past its time at
     * once, before the first failure came back) */
    r->failing_until = 1;
    r->unknown = 1;
    struct buf b;
    buf_init(&b);
    buf_append_str(&b, "{\"token\": ");
    jsonw_string(&b, cfg->secret_token, strlen(cfg->secret_token), 1);
    buf_append_str(&b, ", \"request_id\": ");
    r->callback_prefix = buf_steal(&b, NULL);
    return r;
}

static void task_free(struct task *t)
{
    free(t->ex);
    free(t);
}

/* Room for a text about ex in one allocation, as usually needed: fixed parts,
 * the request id and per_bill bytes a bill (a longer text still grows). */
static void reserve_for(struct buf *b, const struct exchange *ex, size_t per_bill)
{
    buf_reserve(b, 96 + strlen(ex->request_id) + ex->nbills * per_bill);
}

/* breakdown as json.dumps prints it (", " and ": " separators) or
 * compact as Starlette answers it. */
static void append_breakdown(struct buf *b, const struct exchange *ex, int compact)
{
    char num[MONEY_FMT_MAX];
    buf_append(b, "[", 1);
    for (uint32_t i = 0; i < ex->nbills; i++) {
        const struct exchange_bill *bill = &ex->bills[i];
        size_t num_len = money_format_repr(bill->subtotal, num, sizeof num);
        if (compact) { /* literals in each branch: their lengths are known when compiled */
            if (i)
                buf_append_str(b, ",");
            buf_append_str(b, "{\"denomination_id\":");
            buf_append_str(b, bill->id);
            buf_append_str(b, ",\"subtotal_rub\":");
        } else {
            if (i)
                buf_append_str(b, ", ");
            buf_append_str(b, "{\"denomination_id\": ");
            buf_append_str(b, bill->id);
            buf_append_str(b, ", \"subtotal_rub\": ");
        }
        buf_append(b, num, num_len);
        buf_append(b, "}", 1);
    }
    buf_append(b, "]", 1);
}

static void deliver(struct task *t);

/* Whether a callback attempt at loop time at would be past --retry-max-age
 * (on the loop's monotonic clock: a wall clock set forward or back while
 * running changes no task's age). */
static int too_old(const struct task *t, uint64_t at)
{
    return (int64_t)at - t->born_ms > (int64_t)t->r->cfg.backoff.max_age_ms;
}

/* How long the main service counts as failing after a callback that failed
 * and may be retried: the first retry's ceiling, at most a second. */
static uint64_t failing_ms(const struct runner *r)
{
    uint64_t base = r->cfg.backoff.base_ms;
    return base < 1000 ? (base ? base : 1) : 1000;
}

/* Drops a task that was cancelled while it waited; 1 if it was. */
static int dropped_if_cancelled(struct task *t)
{
    struct runner *r = t->r;
    if (!store_is_cancelled(r->cfg.store, t->id))
        return 0;
    store_forget_cancelled(r->cfg.store, t->id);
    char id[17];
    runner_format_id(t->id, id);
    log_info("event=task_cancelled task=%s request_id=%s", id, t->ex->request_id);
    ST_SUB(tasks_in_flight);
    task_free(t);
    return 1;
}

/* Writes the task's new state; the first outcome after computing also
 * writes the move to delivering and the breakdown. */
static void record(struct task *t, int state, int64_t next_attempt_ms, const char *error)
{
    struct store_change c = {t->id, state, t->attempts, next_attempt_ms, error, NULL, 0};
    char on[512]; /* the store copies the breakdown: it can stay on the stack */
    struct buf b;
    buf_init_on(&b, on, sizeof on);
    if (t->delivering_ms) {
        reserve_for(&b, t->ex, 64);
        append_breakdown(&b, t->ex, 1);
        c.breakdown = b.data;
        c.delivering_ms = t->delivering_ms;
        t->delivering_ms = 0;
    }
    store_update(t->r->cfg.store, t->r->cfg.inbox, &c);
    buf_free(&b);
}

/* A task that ended while a cancel of it was on its way (the callback was
 * already on the wire): its mark in the cancelled set is not needed. */
static void task_done(struct task *t)
{
    struct runner *r = t->r;
    if (store_is_cancelled(r->cfg.store, t->id))
        store_forget_cancelled(r->cfg.store, t->id);
    ST_SUB(tasks_in_flight);
    task_free(t);
}

/* A task dropped from memory at a stop: the store keeps it, and the next
 * start resumes it from what was last written. */
static void left_for_next_start(struct task *t)
{
    struct runner *r = t->r;
    r->left_async++;
    ST_SUB(tasks_in_flight);
    task_free(t);
}

static void on_delivered(void *arg, const struct delivery_result *res)
{
    struct task *t = arg;
    struct runner *r = t->r;
    if (res->abandoned) { /* the store still says delivering/retrying */
        left_for_next_start(t);
        return;
    }
    if (r->closing)
        r->finished++;
    char id[17];
    runner_format_id(t->id, id);
    t->attempts++;
    char why_q[1024]; /* the reason quoted, a body's quotes escaped (a log line holds 1,152) */
    if (!res->ok)
        util_quote(why_q, sizeof why_q, res->error ? res->error : "");
    int was_failing = r->failing_until && !r->unknown;
    r->unknown = 0;
    if (!res->ok && backoff_retryable(res->http_status)) {
        if (!was_failing)
            log_warn("event=main_service_failing task=%s status=%ld reason=%s: retries are "
                     "made one at a time until one gets a final answer",
                     id, res->http_status, why_q);
        /* a Retry-After holds every retry of this worker as long (capped) */
        uint64_t hold = failing_ms(r);
        if (res->retry_after_s >= 0)
            hold = backoff_delay_ms(&r->cfg.backoff, 1, 0, res->retry_after_s);
        r->failing_until = uv_now(r->loop) + (hold ? hold : 1);
    } else if (r->failing_until) {
        if (was_failing)
            log_info("event=main_service_back task=%s status=%ld", id, res->http_status);
        r->failing_until = 0;
    }
    if (res->ok) {
        ST_ADD(callbacks_delivered, 1);
        log_debug("event=callback_delivered task=%s request_id=%s status=%ld attempts=%u", id,
                  t->ex->request_id, res->http_status, t->attempts);
        record(t, STATE_SUCCEEDED, 0, NULL);
        task_done(t);
        return;
    }
    const struct backoff_policy *p = &r->cfg.backoff;
    uint64_t now_wall = util_wall_ms();
    uint64_t delay = backoff_delay_ms(p, t->attempts, rng_next(r), res->retry_after_s);
    const char *why = NULL;
    if (!backoff_retryable(res->http_status))
        why = "not retryable";
    else if (t->attempts >= p->max_attempts)
        why = "attempts exhausted";
    else if (too_old(t, uv_now(r->loop) + delay))
        why = "too old";
    if (why) {
        ST_ADD(callbacks_failed, 1);
        log_warn("event=callback_failed task=%s request_id=%s attempts=%u status=%ld "
                 "reason=%s final=\"%s\"",
                 id, t->ex->request_id, t->attempts, res->http_status, why_q, why);
        record(t, STATE_FAILED, 0, res->error);
        task_done(t);
        return;
    }
    ST_ADD(callbacks_retried, 1);
    log_info("event=callback_retry task=%s request_id=%s attempts=%u status=%ld reason=%s "
             "retry_in_ms=%" PRIu64,
             id, t->ex->request_id, t->attempts, res->http_status, why_q, delay);
    record(t, STATE_RETRYING, (int64_t)(now_wall + delay), res->error);
    if (r->closing) { /* stored as retrying: the next start sends it at its time */
        left_for_next_start(t);
        return;
    }
    deadline_push(&r->heap, uv_now(r->loop) + delay, t, TAG_DELIVER);
    arm(r);
}

static void callback_body(struct buf *b, struct runner *r, const struct task *t)
{
    reserve_for(b, t->ex, 72);
    buf_append_str(b, r->callback_prefix);
    buf_append_str(b, t->ex->request_id);
    buf_append_str(b, ", \"breakdown\": ");
    append_breakdown(b, t->ex, 0);
    buf_append(b, "}", 1);
}

/* While the main service fails (no answer, 5xx, 408, 429), a retry that comes
 * due is put off (the time its next failed attempt would wait, as if it had
 * failed) instead of made: no attempt counted, nothing written or logged.
 * One retry at a time is made, each failing_ms at most, and its answer
 * decides for the rest: a final answer (2xx, or a status not retried) ends
 * the wait. Without this, every task of a backlog retried on its own,
 * thousands of attempts a second (14,000-25,000 refused connections a second
 * for 300,000 tasks, both cores, accepting 3-6 x slower).
 * A first attempt is always made (it records the move to delivering), and a
 * retry that would pass --retry-max-age by waiting is made too (its failure
 * decides "too old"). 1 if t was put off. */
static int wait_while_failing(struct runner *r, struct task *t)
{
    uint64_t now = uv_now(r->loop);
    if (t->attempts == 0 || r->failing_until == 0)
        return 0;
    if (now >= r->failing_until) { /* this one tries; the others wait for its answer */
        r->failing_until = now + failing_ms(r);
        return 0;
    }
    const struct backoff_policy *p = &r->cfg.backoff;
    uint64_t delay = r->unknown /* the run's first answer is on its way: a short wait */
                         ? failing_ms(r) + rng_next(r) % (failing_ms(r) + 1)
                         : backoff_delay_ms(p, (uint32_t)t->attempts + t->waits + 1u,
                                            rng_next(r), -1);
    if (too_old(t, now + delay))
        return 0;
    if (!r->unknown && t->waits < UINT8_MAX)
        t->waits++;
    ST_ADD(callbacks_put_off, 1);
    deadline_push(&r->heap, now + delay, t, TAG_DELIVER);
    return 1;
}

static void deliver(struct task *t)
{
    if (dropped_if_cancelled(t))
        return;
    if (wait_while_failing(t->r, t))
        return;
    char on[1024]; /* delivery copies the body: it can stay on the stack */
    struct buf b;
    buf_init_on(&b, on, sizeof on);
    callback_body(&b, t->r, t);
    delivery_send(t->r->delivery, b.data, b.len, on_delivered, t);
    buf_free(&b);
}

static void task_computed(struct task *t)
{
    struct runner *r = t->r;
    if (t->kind == TASK_SYNC) {
        struct buf b;
        buf_init(&b);
        ST_SUB(sync_in_flight);
        buf_append_str(&b, "{\"status\":\"completed\",\"breakdown\":");
        append_breakdown(&b, t->ex, 1);
        buf_append(&b, "}", 1);
        http_reply(t->reply, 200, b.data, b.len, NULL);
        buf_free(&b);
        task_free(t);
        return;
    }
    if (dropped_if_cancelled(t))
        return;
    t->delivering_ms = util_wall_ms(); /* written with the first outcome: see record() */
    deliver(t);
}

static void bill_log(const struct task *t, uint32_t i)
{
    const struct exchange_bill *bill = &t->ex->bills[i];
    char num[MONEY_FMT_MAX];
    money_format_2f(money_subtotal(bill->denomination, bill->count, t->ex->rate), num, sizeof num);
    /* A string id prints without its quotes (escaped, so a client cannot
     * forge log lines); an integer prints as is. */
    const char *id = bill->id;
    int len = (int)strlen(id);
    if (len >= 2 && id[0] == '"') {
        id++;
        len -= 2;
    }
    char storage[512]; /* an escaped id may be longer: the buffer grows */
    struct buf line;
    buf_init_on(&line, storage, sizeof storage);
    buf_append_str(&line, "Рассчитана купюра ");
    buf_append(&line, id, (size_t)len);
    buf_append(&line, ": ", 2);
    buf_append_str(&line, num);
    buf_append(&line, " RUB\n", 5);
    output_line(OUTPUT_STDOUT, line.data, line.len);
    buf_free(&line);
}

static void on_timer(uv_timer_t *tm)
{
    struct runner *r = tm->data;
    r->timer_due = 0;
    uint64_t now = uv_now(r->loop);
    uint32_t idx;
    struct task *t;
    while ((t = deadline_pop_due(&r->heap, now, &idx))) {
        if (idx == TAG_DELIVER) {
            deliver(t);
            continue;
        }
        if (r->cfg.bill_log)
            bill_log(t, idx);
        if (--t->pending == 0)
            task_computed(t);
    }
    arm(r);
}

static struct task *task_new(struct runner *r, struct exchange *ex, enum task_kind kind,
                             uint64_t id)
{
    struct task *t = xmalloc(sizeof *t);
    t->r = r;
    t->ex = ex;
    t->reply = NULL;
    t->id = id;
    t->born_ms = (int64_t)uv_now(r->loop);
    t->pending = ex->nbills;
    t->attempts = 0;
    t->waits = 0;
    t->delivering_ms = 0;
    t->kind = (uint8_t)kind;
    return t;
}

static void schedule_bills(struct runner *r, struct task *t)
{
    uint64_t now = uv_now(r->loop);
    if (r->cfg.bill_log) {
        for (uint32_t i = 0; i < t->ex->nbills; i++)
            deadline_push(&r->heap, now + latency(r), t, i);
    } else {
        uint64_t slowest = 0;
        for (uint32_t i = 0; i < t->ex->nbills; i++) {
            uint64_t d = latency(r);
            slowest = d > slowest ? d : slowest;
        }
        t->pending = 1; /* heap entries left */
        deadline_push(&r->heap, now + slowest, t, TAG_ALL_BILLS);
    }
    arm(r);
}

void runner_start(struct runner *r, struct exchange *ex, uint64_t id)
{
    if (r->closing) {
        free(ex);
        return;
    }
    struct task *t = task_new(r, ex, TASK_ASYNC, id);
    ST_ADD(tasks_accepted, 1);
    ST_ADD(tasks_in_flight, 1);
    schedule_bills(r, t);
}

/* When a task's age starts: its creation, or its last retry by hand (POST
 * /api/tasks/{id}/retry: in the history a "retrying@ms" right after
 * "failed@ms"), which starts its attempts and its age over. */
uint64_t runner_age_from(const struct task_view *v)
{
    uint64_t from = v->created_ms;
    const char *h = v->history ? v->history : "";
    int after_failed = 0;
    while (*h) {
        const char *at = strchr(h, '@');
        if (!at)
            break;
        size_t name_len = (size_t)(at - h);
        char *end;
        uint64_t ms = strtoull(at + 1, &end, 10);
        if (after_failed && name_len == 8 && memcmp(h, "retrying", 8) == 0 && ms > from)
            from = ms;
        after_failed = name_len == 6 && memcmp(h, "failed", 6) == 0;
        h = end;
        while (*h == ' ')
            h++;
    }
    return from;
}

void runner_resume(struct runner *r, struct exchange *ex, const struct task_view *v)
{
    if (r->closing) {
        free(ex);
        return;
    }
    struct task *t = task_new(r, ex, TASK_ASYNC, v->id);
    /* The loop's time now, not when it last ran: at a start every stored
     * task is resumed before the loops run (seconds for a million), and a
     * stale time made the later ones older, and their retries earlier, by as
     * long. Called on the loop's own thread, or before it runs. */
    uv_update_time(r->loop);
    /* its age so far by the wall clock (the time the service was down counts);
     * below 0 (the clock set back since it was stored) as 0 */
    uint64_t now_wall = util_wall_ms(), from = runner_age_from(v);
    t->born_ms = (int64_t)uv_now(r->loop) - (int64_t)(now_wall > from ? now_wall - from : 0);
    t->attempts = (uint16_t)(v->attempts > 65535 ? 65535 : v->attempts);
    ST_ADD(tasks_in_flight, 1);
    if (v->state == STATE_QUEUED || v->state == STATE_RUNNING) {
        schedule_bills(r, t);
        return;
    }
    t->pending = 0;
    uint64_t wait = v->next_attempt_ms > now_wall ? v->next_attempt_ms - now_wall : 0;
    /* no stored wait is longer than the cap, but for a wall clock set back
     * since it was stored: that task would wait for the clock to catch up */
    if (wait > r->cfg.backoff.cap_ms)
        wait = r->cfg.backoff.cap_ms;
    deadline_push(&r->heap, uv_now(r->loop) + wait, t, TAG_DELIVER);
    arm(r);
}

void runner_submit_sync(struct runner *r, struct exchange *ex, struct http_exchange *x)
{
    if (r->closing) {
        free(ex);
        http_reply_detail(x, 503, "Service shutting down", HTTP_RETRY_AFTER);
        return;
    }
    struct task *t = task_new(r, ex, TASK_SYNC, 0);
    t->reply = x;
    ST_ADD(sync_in_flight, 1);
    uint64_t now = uv_now(r->loop);
    for (uint32_t i = 0; i < ex->nbills; i++)
        deadline_push(&r->heap, now + (uint64_t)(i + 1) * r->cfg.sync_latency_ms, t, i);
    arm(r);
}

uint64_t runner_active(const struct runner *r)
{
    return atomic_load_explicit(&r->cfg.counters->tasks_in_flight, memory_order_relaxed) +
           atomic_load_explicit(&r->cfg.counters->sync_in_flight, memory_order_relaxed);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct runner *r = h->data;
    void (*done)(void *) = r->closed;
    void *arg = r->closed_arg;
    deadline_free(&r->heap);
    free(r->callback_prefix);
    free(r);
    if (done)
        done(arg);
}

/* Drops every task waiting in the heap: computing, or waiting for a retry
 * (async ones stay in the store for the next start; sync requests are
 * answered 503). */
static void drop_waiting(struct runner *r)
{
    uint32_t idx;
    struct task *t;
    while ((t = deadline_pop_due(&r->heap, UINT64_MAX >> 20, &idx))) {
        if (idx != TAG_DELIVER && --t->pending)
            continue;
        if (t->kind == TASK_SYNC) {
            r->dropped_sync++;
            ST_SUB(sync_in_flight);
            http_reply_detail(t->reply, 503, "Service shutting down", HTTP_RETRY_AFTER);
            task_free(t);
        } else {
            left_for_next_start(t);
        }
    }
}

static void on_delivery_closed(void *arg)
{
    struct runner *r = arg;
    drop_waiting(r); /* none: nothing is pushed once closing; for certainty */
    if (r->left_async || r->dropped_sync || r->finished)
        log_info("event=runner_stopped tasks_left_for_next_start=%" PRIu64
                 " sync_answered_503=%" PRIu64 " callbacks_finished_while_stopping=%" PRIu64,
                 r->left_async, r->dropped_sync, r->finished);
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}

void runner_close(struct runner *r, uint64_t wait_ms, void (*done)(void *arg), void *arg)
{
    r->closing = 1;
    r->closed = done;
    r->closed_arg = arg;
    /* nothing more is computed or sent: no bill comes due, no retry */
    uv_timer_stop(&r->timer);
    r->timer_due = 0;
    drop_waiting(r);
    /* the callbacks on the wire get their answers (recorded as usual) for up
     * to wait_ms; those cut off stay delivering/retrying in the store */
    delivery_close(r->delivery, wait_ms, on_delivery_closed, r);
}
