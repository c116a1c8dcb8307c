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
#include "../util.h"
#include "deadline.h"
#include "money.h"

enum task_kind { TASK_ASYNC, TASK_SYNC };

struct task {
    struct runner *r;
    struct exchange *ex;        /* owned */
    struct http_exchange *reply; /* sync: where the answer goes */
    uint64_t id;
    uint32_t pending;           /* bills not computed yet */
    uint8_t kind;
};

struct runner {
    uv_loop_t *loop;
    uv_timer_t timer;
    uint64_t timer_due;  /* when the timer is armed for; 0 = not armed */
    struct deadline_heap heap;
    struct runner_config cfg;
    struct delivery *delivery;
    char *callback_prefix; /* {"token": "...", "request_id":  */
    uint64_t rng;
    uint64_t last_id;
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

/* Time-ordered, unique within the process: ms since the epoch, a counter
 * for ids made in the same ms, and the worker's number. */
static uint64_t next_id(struct runner *r)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t base = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) << 12;
    uint64_t v = base > r->last_id ? base : r->last_id + 1;
    r->last_id = v;
    return (v << 8) | (uint64_t)(r->cfg.worker_id & 0xFF);
}

void runner_format_id(uint64_t id, char *out)
{
    snprintf(out, 17, "%016" PRIx64, id);
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

/* breakdown as json.dumps prints it (", " and ": " separators) or
 * compact as Starlette answers it. */
static void append_breakdown(struct buf *b, const struct exchange *ex, int compact)
{
    char num[MONEY_FMT_MAX];
    buf_append(b, "[", 1);
    for (uint32_t i = 0; i < ex->nbills; i++) {
        const struct exchange_bill *bill = &ex->bills[i];
        money_format_repr(bill->subtotal, num, sizeof num);
        if (compact)
            buf_append_fmt(b, "%s{\"denomination_id\":%s,\"subtotal_rub\":%s}", i ? "," : "",
                           bill->id, num);
        else
            buf_append_fmt(b, "%s{\"denomination_id\": %s, \"subtotal_rub\": %s}", i ? ", " : "",
                           bill->id, num);
    }
    buf_append(b, "]", 1);
}

static void on_delivered(void *arg, const struct delivery_result *res)
{
    struct task *t = arg;
    struct runner *r = t->r;
    char id[17];
    runner_format_id(t->id, id);
    if (res->ok) {
        ST_ADD(callbacks_delivered, 1);
        log_debug("event=callback_delivered task=%s request_id=%s status=%ld", id,
                  t->ex->request_id, res->http_status);
    } else {
        ST_ADD(callbacks_failed, 1);
        log_warn("event=callback_failed task=%s request_id=%s status=%ld reason=\"%s\"", id,
                 t->ex->request_id, res->http_status, res->error);
    }
    ST_SUB(tasks_in_flight);
    task_free(t);
}

static void task_computed(struct task *t)
{
    struct runner *r = t->r;
    struct buf b;
    buf_init(&b);
    if (t->kind == TASK_SYNC) {
        ST_SUB(sync_in_flight);
        buf_append_str(&b, "{\"status\":\"completed\",\"breakdown\":");
        append_breakdown(&b, t->ex, 1);
        buf_append(&b, "}", 1);
        http_reply(t->reply, 200, b.data, b.len, NULL);
        buf_free(&b);
        task_free(t);
        return;
    }
    buf_append_str(&b, r->callback_prefix);
    buf_append_str(&b, t->ex->request_id);
    buf_append_str(&b, ", \"breakdown\": ");
    append_breakdown(&b, t->ex, 0);
    buf_append(&b, "}", 1);
    size_t len;
    char *body = buf_steal(&b, &len);
    delivery_send(r->delivery, body, len, on_delivered, t);
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
    printf("Рассчитана купюра %.*s: %s RUB\n", len, id, num);
}

static void on_timer(uv_timer_t *tm)
{
    struct runner *r = tm->data;
    r->timer_due = 0;
    uint64_t now = uv_now(r->loop);
    uint32_t idx;
    struct task *t;
    while ((t = deadline_pop_due(&r->heap, now, &idx))) {
        if (r->cfg.bill_log)
            bill_log(t, idx);
        if (--t->pending == 0)
            task_computed(t);
    }
    arm(r);
}

static struct task *task_new(struct runner *r, struct exchange *ex, enum task_kind kind)
{
    struct task *t = xmalloc(sizeof *t);
    t->r = r;
    t->ex = ex;
    t->reply = NULL;
    t->id = next_id(r);
    t->pending = ex->nbills;
    t->kind = (uint8_t)kind;
    return t;
}

uint64_t runner_submit_async(struct runner *r, struct exchange *ex)
{
    struct task *t = task_new(r, ex, TASK_ASYNC);
    ST_ADD(tasks_accepted, 1);
    ST_ADD(tasks_in_flight, 1);
    uint64_t now = uv_now(r->loop);
    for (uint32_t i = 0; i < ex->nbills; i++)
        deadline_push(&r->heap, now + latency(r), t, i);
    arm(r);
    return t->id;
}

void runner_submit_sync(struct runner *r, struct exchange *ex, struct http_exchange *x)
{
    struct task *t = task_new(r, ex, TASK_SYNC);
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
    deadline_free(&r->heap);
    free(r->callback_prefix);
    free(r);
}

void runner_close(struct runner *r)
{
    uint64_t dropped_async = 0, dropped_sync = 0;
    uint32_t idx;
    struct task *t;
    while ((t = deadline_pop_due(&r->heap, UINT64_MAX >> 20, &idx))) {
        if (--t->pending)
            continue;
        if (t->kind == TASK_SYNC) {
            dropped_sync++;
            ST_SUB(sync_in_flight);
            http_reply_detail(t->reply, 503, "Service shutting down", NULL);
        } else {
            dropped_async++;
            ST_SUB(tasks_in_flight);
        }
        task_free(t);
    }
    if (dropped_async || dropped_sync)
        log_warn("event=shutdown_dropped async_tasks=%" PRIu64 " sync_tasks=%" PRIu64,
                 dropped_async, dropped_sync);
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}
