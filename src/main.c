/*
 * exchanged: start-up, signals, and the worker threads (see worker.h).
 * The main thread only waits: for a signal, then for the workers to end.
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "jsonw.h"
#include "memtrim.h"
#include "output.h"
#include "util.h"
#include "store/store.h"
#include "worker.h"

struct app {
    struct worker_set *workers;
    struct store *store;
    uv_async_t stop; /* a stop signal came (from the signal thread) */
    _Atomic int signals;
    _Atomic int signum;
    uv_async_t done;
    uv_thread_t joiner;
    struct memtrim trim;
};

struct recovered {
    struct worker_set *workers;
    uint64_t by_state[STATE_COUNT];
};

static void on_recovered(void *arg, const struct task_view *v)
{
    struct recovered *r = arg;
    if (v->state >= 0 && v->state < STATE_COUNT)
        r->by_state[v->state]++;
    worker_set_resume(r->workers, v);
}

/* A start-up failure after output_start: queued behind the lines before it. */
static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    char text[640] = "exchanged: ";
    va_list ap;
    va_start(ap, fmt);
    size_t n = util_vline(text, sizeof text, strlen(text), fmt, ap);
    va_end(ap);
    output_line(OUTPUT_STDERR, text, n);
}

static void join_workers(void *arg)
{
    struct app *app = arg;
    worker_set_join(app->workers);
    uv_async_send(&app->done);
}

static void on_done(uv_async_t *a)
{
    struct app *app = a->data;
    uv_close((uv_handle_t *)&app->stop, NULL);
    uv_close((uv_handle_t *)&app->done, NULL);
    memtrim_stop(&app->trim);
}

/* memtrim's load: what holds memory that a drained load frees. */
static uint64_t trim_load(void *arg)
{
    struct worker_totals t;
    worker_set_totals(arg, &t);
    return t.tasks_in_flight + t.sync_in_flight + t.connections_open;
}

/* On the signal thread: the first stop signal stops the service on its
 * loop; a second one ends the process at once. */
static void on_stop_signal(int signum, void *arg)
{
    struct app *app = arg;
    if (atomic_fetch_add(&app->signals, 1) > 0) {
        log_warn("event=forced_exit signal=%d", signum);
        output_flush(OUTPUT_EXIT_WAIT_MS); /* at once, unless a reader has stalled */
        _exit(1);
    }
    atomic_store(&app->signum, signum);
    uv_async_send(&app->stop);
}

static void on_stop(uv_async_t *a)
{
    struct app *app = a->data; /* sent once: a second signal exits on the signal thread */
    log_info("event=stopping signal=%d", atomic_load(&app->signum));
    worker_set_stop(app->workers);
    if (uv_thread_create(&app->joiner, join_workers, app) != 0) {
        log_error("event=thread_create_failed");
        output_flush(OUTPUT_EXIT_WAIT_MS);
        _exit(1);
    }
}

int main(int argc, char **argv)
{
    struct config cfg;
    char err[512];
    if (util_stdio_open() != 0)
        return 1; /* no /dev/null, or no descriptor: nowhere to say so */
    int rc = config_load(&cfg, argc, argv, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "exchanged: %s\n", err);
        return 2;
    }
    if (rc > 0) {
        for (int i = 1; i < argc; i++)
            if (!strcmp(argv[i], "--version")) {
                printf("exchanged %s\n", EXCHANGED_VERSION);
                return 0;
            }
        config_print_help(stdout);
        return 0;
    }
    log_set_level(!strcmp(cfg.log_level, "debug")  ? LOG_DEBUG
                  : !strcmp(cfg.log_level, "warn") ? LOG_WARN
                  : !strcmp(cfg.log_level, "error") ? LOG_ERROR
                                                    : LOG_INFO);
    /* the open-files limit raised to what --max-connections needs, or the
     * connections lowered to what it allows */
    unsigned long nofile = util_nofile_raise(config_fds_needed(&cfg));
    int was_max_connections;
    rc = config_fit_fds(&cfg, nofile, &was_max_connections, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "exchanged: %s\n", err);
        return 1;
    }
    if (rc > 0)
        log_warn("event=max_connections_lowered from=%d to=%d open_files_limit=%lu"
                 " hint=\"raise the open-files limit (ulimit -n) to keep --max-connections\"",
                 was_max_connections, cfg.max_connections, nofile);
    signal(SIGPIPE, SIG_IGN);
    util_stop_signals_block(); /* taken by the signal thread below: see util.h */
    /* From here on the lines go through the output thread (output.h): a
     * reader that stops reading never stops the service. Every return
     * below writes what is queued first (output_start_stdio's atexit). */
    rc = output_start_stdio();
    if (rc != 0) {
        fprintf(stderr, "exchanged: cannot start the output thread: %s\n", uv_strerror(rc));
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fail("libcurl failed to initialise");
        return 1;
    }

    struct app app;
    memset(&app, 0, sizeof app);
    /* outcomes held until their task is older than the longest latency and
     * a second for the callback (see store.c), at most 10 s */
    uint64_t hold = cfg.latency_ms[1] + 1000;
    struct store_config sc = {cfg.store, cfg.store_sync, (uint64_t)cfg.max_active_tasks,
                              cfg.retention_ms, 0, hold < 10000 ? hold : 10000, 0, 0, 0, 0, 0};
    app.store = store_open(&sc, err, sizeof err);
    if (!app.store) {
        fail("%s", err);
        return 1;
    }
    app.workers = worker_set_new(&cfg, app.store, err, sizeof err);
    if (!app.workers) {
        fail("%s", err);
        store_close(app.store);
        return 1;
    }
    rc = worker_set_prepare(app.workers);
    if (rc != 0) {
        fail("cannot start workers: %s", uv_strerror(rc));
        return 1;
    }
    struct recovered rec = {app.workers, {0}};
    uint64_t n, newest;
    const char *path = strncmp(cfg.store, "sqlite:", 7) == 0 ? cfg.store + 7 : cfg.store;
    if (store_recover(app.store, on_recovered, &rec, &n, err, sizeof err) != 0) {
        fail("cannot use the database %s: %s", path, err); /* as store_open says it */
        return 1;
    }
    log_info("event=recovered tasks=%" PRIu64 " queued=%" PRIu64 " running=%" PRIu64
             " delivering=%" PRIu64 " retrying=%" PRIu64,
             n, rec.by_state[STATE_QUEUED], rec.by_state[STATE_RUNNING],
             rec.by_state[STATE_DELIVERING], rec.by_state[STATE_RETRYING]);
    if (store_max_id(app.store, &newest, err, sizeof err) != 0) {
        fail("cannot use the database %s: %s", path, err);
        return 1;
    }
    uint64_t ahead = runner_ids_after(newest);
    if (ahead > 0)
        log_warn("event=clock_behind_stored_tasks ahead_ms=%" PRIu64
                 " note=\"the newest stored task is ahead of the wall clock: new task ids go on"
                 " after it\"", ahead);
    rc = worker_set_run(app.workers);
    if (rc != 0) {
        fail("cannot start workers: %s", uv_strerror(rc));
        return 1;
    }
    uv_loop_t *loop = uv_default_loop();
    uv_async_init(loop, &app.stop, on_stop);
    app.stop.data = &app;
    rc = util_stop_signals_wait(on_stop_signal, &app);
    if (rc != 0) {
        fail("cannot start the signal thread: %s", uv_strerror(rc));
        return 1;
    }
    rc = memtrim_start(&app.trim, loop, MEMTRIM_PERIOD_MS, trim_load, app.workers);
    if (rc != 0) {
        fail("cannot start the memory trim timer: %s", uv_strerror(rc));
        return 1;
    }
    /* "listening" once a stop signal is taken too: a supervisor (or a test)
     * that waits for this line may stop the service at once */
    char host[300];
    snprintf(host, sizeof host, strchr(cfg.host, ':') ? "[%s]" : "%s", cfg.host);
    /* a path with a space, quote or control character quoted, so that the
     * line still splits into key=value pairs */
    struct buf store;
    buf_init(&store);
    int plain = 1;
    for (const char *c = cfg.store; *c; c++)
        plain &= *c > ' ' && *c != '"' && *c != '\\' && *c != 0x7f;
    if (plain)
        buf_append_str(&store, cfg.store);
    else
        jsonw_string(&store, cfg.store, strlen(cfg.store), 0);
    buf_append(&store, "", 1);
    log_info("event=listening address=http://%s:%d workers=%d latency=%.3g-%.3g "
             "sync_latency=%.3g main_service_url=%s store=%s store_sync=%s",
             host, worker_set_port(app.workers), cfg.workers,
             (double)cfg.latency_ms[0] / 1000, (double)cfg.latency_ms[1] / 1000,
             (double)cfg.sync_latency_ms / 1000, cfg.main_service_url, store.data, cfg.store_sync);
    buf_free(&store);
    uv_async_init(loop, &app.done, on_done);
    app.done.data = &app;
    uv_run(loop, UV_RUN_DEFAULT);

    uv_thread_join(&app.joiner);
    worker_set_free(app.workers);
    store_close(app.store); /* commits what the workers queued last */
    uv_loop_close(loop);
    curl_global_cleanup();
    util_stop_signals_end();
    log_info("event=stopped");
    return 0; /* the atexit handler writes what is queued */
}
