#include "worker.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "core/delivery.h"
#include "core/payload.h"
#include "core/runner.h"
#include "http/server.h"
#include "util.h"

#define DRAIN_POLL_MS 50

struct worker_set {
    const struct config *cfg;
    struct store *store;
    int next_resume;
    int n;
    int port;
    struct http_group *group; /* the workers' servers: one cap, connections evened out */
    uint64_t started_ms;
    struct worker *w;
};

struct worker_set *worker_set_new(const struct config *cfg, struct store *store, char *err,
                                  size_t errlen)
{
    struct worker_set *s = xcalloc(1, sizeof *s);
    s->cfg = cfg;
    s->store = store;
    s->n = cfg->workers;
    s->w = xcalloc((size_t)s->n, sizeof *s->w);
    s->port = cfg->port;
    s->started_ms = util_now_ms();
    for (int i = 0; i < s->n; i++) {
        int bound = 0;
        int fd = http_listen_socket(cfg->host, s->port, i == 0, 4096, &bound);
        if (fd < 0) {
            snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->host, s->port,
                     http_listen_strerror(fd));
            for (int j = 0; j < i; j++)
                close(s->w[j].listen_fd);
            free(s->w);
            free(s);
            return NULL;
        }
        if (i == 0)
            s->port = bound;
        s->w[i].listen_fd = fd;
        s->w[i].id = i;
        s->w[i].set = s;
        s->w[i].cfg = cfg;
        s->w[i].store = store;
    }
    return s;
}

int worker_set_port(const struct worker_set *s) { return s->port; }
int worker_set_count(const struct worker_set *s) { return s->n; }
uint64_t worker_set_started_ms(const struct worker_set *s) { return s->started_ms; }
struct store *worker_set_store(const struct worker_set *s) { return s->store; }

static void on_server_drained(void *arg)
{
    struct worker *w = arg;
    w->server = NULL;
    w->server_drained = 1;
    log_debug("event=shutdown_server_drained worker=%d", w->id);
}

static void on_runner_closed(void *arg)
{
    struct worker *w = arg;
    w->runner = NULL;
    log_debug("event=shutdown_runner_closed worker=%d", w->id);
}

static void on_drain_poll(uv_timer_t *t)
{
    struct worker *w = t->data;
    uint64_t waited = util_now_ms() - w->stop_started_ms;
    int over = waited >= w->cfg->shutdown_grace_ms;
    if (waited >= 2000 && waited % 1000 < DRAIN_POLL_MS)
        log_info("event=shutdown_waiting worker=%d server_drained=%d runner_closed=%d "
                 "store_answers_pending=%" PRIu64,
                 w->id, w->server_drained, w->runner == NULL, store_inbox_pending(w->inbox));
    if (!w->server_drained && over) {
        log_warn("event=shutdown_grace_over worker=%d: closing the connections left", w->id);
        http_server_abort(w->server);
    }
    /* the inbox may go only when no store answer is on its way to it */
    if (!w->server_drained || w->runner || store_inbox_pending(w->inbox))
        return;
    uv_timer_stop(t);
    store_inbox_close(w->inbox);
    w->inbox = NULL;
    uv_close((uv_handle_t *)&w->stop_async, NULL);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
}

static void on_stop(uv_async_t *a)
{
    struct worker *w = a->data;
    if (w->stop_started_ms)
        return;
    w->stop_started_ms = util_now_ms();
    http_server_stop(w->server, on_server_drained, w);
    runner_close(w->runner, w->cfg->shutdown_grace_ms, on_runner_closed, w);
    uv_timer_start(&w->drain_timer, on_drain_poll, 0, DRAIN_POLL_MS);
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void worker_main(void *arg)
{
    struct worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* handles left past the grace (connections still waiting): close them */
    uv_walk(&w->loop, walk_close, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&w->loop) != 0)
        log_warn("event=loop_not_closed worker=%d", w->id);
}

int worker_set_prepare(struct worker_set *s)
{
    const struct config *cfg = s->cfg;
    char url[2200];
    snprintf(url, sizeof url, "%s/api/exchange_result", cfg->main_service_url);
    s->group = http_group_new(s->n, (unsigned)cfg->max_connections);
    for (int i = 0; i < s->n; i++) {
        struct worker *w = &s->w[i];
        uv_loop_init(&w->loop);
        uv_async_init(&w->loop, &w->stop_async, on_stop);
        w->stop_async.data = w;
        uv_timer_init(&w->loop, &w->drain_timer);
        w->drain_timer.data = w;
        w->inbox = store_inbox_new(s->store, &w->loop);
        struct delivery_config dc = {url, cfg->callbacks_in_flight, cfg->callback_connect_timeout_ms,
                                     cfg->callback_timeout_ms, cfg->callback_hmac_key, 0,
                                     cfg->callback_ca_file};
        struct runner_config rc = {
            &w->runner_counters, cfg->latency_ms[0], cfg->latency_ms[1], cfg->sync_latency_ms,
            cfg->secret_token,   cfg->bill_log,      w->id,             s->store,
            {cfg->retry_base_ms, cfg->retry_cap_ms, (uint32_t)cfg->retry_max_attempts,
             cfg->retry_max_age_ms},
            w->inbox};
        w->runner = runner_new(&w->loop, &rc, delivery_new(&w->loop, &dc));
        struct http_server_config sc = {&w->http_counters, api_routes, w, cfg->max_body,
                                        (unsigned)cfg->max_connections, cfg->header_timeout_ms,
                                        cfg->body_timeout_ms, cfg->idle_timeout_ms,
                                        cfg->api_token, s->group, i};
        int err = 0;
        w->server = http_server_new(&w->loop, w->listen_fd, &sc, &err);
        if (!w->server)
            return err;
    }
    return 0;
}

void worker_set_resume(struct worker_set *s, const struct task_view *v)
{
    struct exchange *ex;
    char hex[17];
    runner_format_id(v->id, hex);
    if (!v->payload || !v->request_id || payload_from_stored(v->payload, v->request_id, &ex)) {
        log_error("event=recover_unreadable task=%s: left as it is", hex);
        return;
    }
    struct worker *w = &s->w[s->next_resume++ % s->n];
    runner_resume(w->runner, ex, v);
}

int worker_set_run(struct worker_set *s)
{
    for (int i = 0; i < s->n; i++) {
        int rc = uv_thread_create(&s->w[i].thread, worker_main, &s->w[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void worker_set_stop(struct worker_set *s)
{
    for (int i = 0; i < s->n; i++)
        uv_async_send(&s->w[i].stop_async);
}

void worker_set_join(struct worker_set *s)
{
    for (int i = 0; i < s->n; i++)
        uv_thread_join(&s->w[i].thread);
}

void worker_set_free(struct worker_set *s)
{
    http_group_free(s->group);
    free(s->w);
    free(s);
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

void worker_set_totals(const struct worker_set *s, struct worker_totals *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < s->n; i++) {
        const struct http_counters *h = &s->w[i].http_counters;
        const struct runner_counters *r = &s->w[i].runner_counters;
        out->connections_open += LOAD(h->connections_open);
        out->requests_total += LOAD(h->requests_total);
        out->connections_handed_off += LOAD(h->handed_off);
        out->accept_failures += LOAD(h->accept_failures);
        out->tasks_accepted += LOAD(r->tasks_accepted);
        out->tasks_in_flight += LOAD(r->tasks_in_flight);
        out->sync_in_flight += LOAD(r->sync_in_flight);
        out->callbacks_delivered += LOAD(r->callbacks_delivered);
        out->callbacks_failed += LOAD(r->callbacks_failed);
        out->callbacks_retried += LOAD(r->callbacks_retried);
        out->callbacks_put_off += LOAD(r->callbacks_put_off);
    }
}
