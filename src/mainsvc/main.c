/*
 * exchanged-main: a stand-in for the caller's main service, on the same
 * HTTP stack as exchanged. It receives the callbacks:
 *
 *   PUT /api/exchange_result            {"token", "request_id", "breakdown"}
 *       -> 200 {"status":"ok"}; a wrong token -> 400 {"message":"Invalid token"}
 *   GET /api/exchange_result/{request_id} -> the last result received for it, or 404
 *   GET /api/stats                      -> {"received":N,"distinct":D,"duplicates":X,
 *                                           "rejected":R,"failed_on_purpose":F,"connections":C}
 *
 * For tests, --fail N answers the first N callbacks with --fail-status (and
 * a Retry-After with --fail-retry-after).
 *   GET /                               -> {"status":"ok"}
 *
 * and prints each result it accepts on stdout (one line, the body as
 * received) unless --quiet. Results are kept in memory, in one table
 * (results.h: it grows without stopping) shared by the worker threads
 * under a mutex (a stand-in, not a product: the lock is held for a lookup
 * and an insert only).
 */
#include <http_parser.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "../buf.h"
#include "../http/server.h"
#include "../limits.h"
#include "../opts.h"
#include "../output.h"
#include "../util.h"
#include "results.h"

/* connections per worker */
#define MAIN_MAX_CONNECTIONS 100000UL

static struct {
    const char *host;
    int port;
    int workers;
    const char *token;
    int quiet;
    int fail;        /* answer the first N callbacks with fail_status (tests) */
    int fail_status;
    int fail_retry_after; /* seconds in a Retry-After on those answers; 0: none */
} opt = {"127.0.0.1", 3001, 2, "MY_SECRET_TOKEN", 0, 0, 500, 0};

static const struct opt table[] = {
    {"host", "MAIN_HOST", OPT_STR, &opt.host, 0, 0, "ADDR", "address to listen on (default 127.0.0.1)"},
    {"port", "MAIN_PORT", OPT_INT, &opt.port, 0, 65535, "N", "TCP port (default 3001; 0 picks one)"},
    {"workers", "MAIN_WORKERS", OPT_INT, &opt.workers, 1, 64, "N", "loop threads (default 2)"},
    {"token", "SECRET_TOKEN", OPT_STR, &opt.token, 0, 0, "TOKEN",
     "token callbacks must carry (default: the seed's token)"},
    {"quiet", "MAIN_QUIET", OPT_FLAG, &opt.quiet, 0, 0, NULL, "do not print each result"},
    {"fail", "MAIN_FAIL", OPT_INT, &opt.fail, 0, 1000000000, "N",
     "answer the first N callbacks with --fail-status instead of storing them (default 0)"},
    {"fail-status", "MAIN_FAIL_STATUS", OPT_INT, &opt.fail_status, 100, 599, "STATUS",
     "the status of those answers (default 500)"},
    {"fail-retry-after", "MAIN_FAIL_RETRY_AFTER", OPT_INT, &opt.fail_retry_after, 0, 86400, "S",
     "a Retry-After of S seconds on those answers (default 0: none)"},
    {0},
};

static uv_mutex_t lock;
static struct results results; /* under lock */
static uint64_t received, duplicates, rejected, failed_on_purpose;

/* One stdout line, "HEAD BODY", through the output thread (output.h): a
 * reader that stops reading never stops the stand-in. */
static void print_line(const char *head, const char *body, size_t len)
{
    char storage[1024];
    struct buf line;
    buf_init_on(&line, storage, sizeof storage);
    buf_append_str(&line, head);
    buf_append(&line, body, len);
    buf_append(&line, "\n", 1);
    output_line(OUTPUT_STDOUT, line.data, line.len);
    buf_free(&line);
}

static void reply_message(struct http_exchange *x, int status, const char *msg,
                          const char *extra_headers)
{
    char body[128];
    int n = snprintf(body, sizeof body, "{\"message\":\"%s\"}", msg);
    http_reply(x, status, body, (size_t)n, extra_headers);
}

static void put_result(struct http_request *req, void *ctx)
{
    (void)ctx;
    uv_mutex_lock(&lock);
    int fail = failed_on_purpose < (uint64_t)opt.fail;
    if (fail)
        failed_on_purpose++;
    uv_mutex_unlock(&lock);
    if (fail) {
        if (!opt.quiet) {
            char head[32];
            snprintf(head, sizeof head, "failing %d ", opt.fail_status);
            print_line(head, req->body, req->body_len);
        }
        char retry_after[40] = "";
        if (opt.fail_retry_after)
            snprintf(retry_after, sizeof retry_after, "retry-after: %d\r\n", opt.fail_retry_after);
        reply_message(req->x, opt.fail_status, "Failing on purpose (--fail)",
                      retry_after[0] ? retry_after : NULL);
        return;
    }
    json_error_t jerr;
    json_t *root = json_loadb(req->body, req->body_len, 0, &jerr);
    const char *why = NULL;
    json_t *token = root ? json_object_get(root, "token") : NULL;
    json_t *rid = root ? json_object_get(root, "request_id") : NULL;
    if (!root)
        why = "Invalid JSON";
    else if (!json_is_string(token) || strcmp(json_string_value(token), opt.token) != 0)
        why = "Invalid token";
    else if (!rid || !(json_is_string(rid) || json_is_integer(rid)) ||
             !json_is_array(json_object_get(root, "breakdown")))
        why = "Invalid payload";
    if (why) {
        uv_mutex_lock(&lock);
        rejected++;
        uv_mutex_unlock(&lock);
        json_decref(root);
        reply_message(req->x, 400, why, NULL);
        return;
    }
    char *key = json_dumps(rid, JSON_ENCODE_ANY | JSON_COMPACT);
    uv_mutex_lock(&lock);
    received++;
    if (!results_put(&results, key, req->body, req->body_len))
        duplicates++;
    uv_mutex_unlock(&lock);
    if (!opt.quiet)
        print_line("result ", req->body, req->body_len);
    free(key);
    json_decref(root);
    static const char ok[] = "{\"status\":\"ok\"}";
    http_reply(req->x, 200, ok, sizeof ok - 1, NULL);
}

static int unhex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void get_result(struct http_request *req, void *ctx)
{
    (void)ctx;
    /* percent-decode the id, then look it up as a string and as an integer */
    char id[LIMIT_ID_BYTES * 3 + 1];
    size_t n = 0;
    for (size_t i = 0; i < req->param_len && n < sizeof id - 1; i++) {
        char c = req->param[i];
        if (c == '%' && i + 2 < req->param_len && unhex(req->param[i + 1]) >= 0 && unhex(req->param[i + 2]) >= 0) {
            c = (char)(unhex(req->param[i + 1]) * 16 + unhex(req->param[i + 2]));
            i += 2;
        }
        id[n++] = c;
    }
    id[n] = '\0';
    json_t *s = json_stringn(id, n);
    char *as_string = s ? json_dumps(s, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(s);
    char *body = NULL;
    size_t len = 0;
    uv_mutex_lock(&lock);
    for (int pass = 0; pass < 2 && !body; pass++) {
        const char *key = pass == 0 ? as_string : id;
        const struct result *e = key ? results_get(&results, key) : NULL;
        if (e) {
            body = xstrndup(e->body, e->len);
            len = e->len;
        }
    }
    uv_mutex_unlock(&lock);
    free(as_string);
    if (!body) {
        reply_message(req->x, 404, "Not found", NULL);
        return;
    }
    http_reply(req->x, 200, body, len, NULL);
    free(body);
}

struct mworker {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t stop;
    struct http_server *server;
    struct http_counters counters;
};

static struct mworker *workers;

static void get_stats(struct http_request *req, void *ctx)
{
    (void)ctx;
    char body[256];
    unsigned long long conns = 0;
    for (int i = 0; i < opt.workers; i++)
        conns += atomic_load_explicit(&workers[i].counters.connections_total, memory_order_relaxed);
    uv_mutex_lock(&lock);
    int n = snprintf(body, sizeof body,
                     "{\"received\":%llu,\"distinct\":%llu,\"duplicates\":%llu,\"rejected\":%llu,"
                     "\"failed_on_purpose\":%llu,\"connections\":%llu}",
                     (unsigned long long)received, (unsigned long long)results_count(&results),
                     (unsigned long long)duplicates, (unsigned long long)rejected,
                     (unsigned long long)failed_on_purpose, conns);
    uv_mutex_unlock(&lock);
    http_reply(req->x, 200, body, (size_t)n, NULL);
}

static void get_root(struct http_request *req, void *ctx)
{
    (void)ctx;
    static const char ok[] = "{\"status\":\"ok\"}";
    http_reply(req->x, 200, ok, sizeof ok - 1, NULL);
}

static const struct route routes[] = {
    {HTTP_GET, "/", get_root, 0},
    {HTTP_GET, "/api/stats", get_stats, 0},
    {HTTP_PUT, "/api/exchange_result", put_result, ROUTE_JSON_BODY},
    {HTTP_GET, "/api/exchange_result/*", get_result, 0},
    {0},
};


static void on_drained(void *arg)
{
    struct mworker *w = arg;
    uv_close((uv_handle_t *)&w->stop, NULL);
}

static void on_stop(uv_async_t *a)
{
    struct mworker *w = a->data;
    http_server_stop(w->server, on_drained, w);
}

static void run_loop(void *arg)
{
    struct mworker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
}

static uv_async_t stop_h; /* a stop signal came (from the signal thread) */
static _Atomic int signals;

/* On the signal thread: the first stop signal stops the loops; a second
 * one ends the process at once. */
static void on_stop_signal(int signum, void *arg)
{
    (void)signum;
    (void)arg;
    if (atomic_fetch_add(&signals, 1) > 0) {
        output_flush(OUTPUT_EXIT_WAIT_MS);
        _exit(1);
    }
    uv_async_send(&stop_h);
}

static void on_stop_async(uv_async_t *a)
{
    (void)a;
    for (int i = 0; i < opt.workers; i++)
        uv_async_send(&workers[i].stop);
    uv_close((uv_handle_t *)&stop_h, NULL);
}

int main(int argc, char **argv)
{
    char err[256];
    if (util_stdio_open() != 0)
        return 1; /* no /dev/null, or no descriptor: nowhere to say so */
    int rc = opts_parse(table, argc, argv, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "exchanged-main: %s\n", err);
        return 2;
    }
    if (rc > 0) {
        printf("exchanged-main - a stand-in main service that receives exchanged's callbacks\n\n"
               "Usage: exchanged-main [OPTION]...\n\nOptions:\n");
        opts_print_help(stdout, table);
        return 0;
    }
    /* as many connections as the hard open-files limit allows; past it an
     * accept pauses a moment (see server.h) */
    util_nofile_raise(MAIN_MAX_CONNECTIONS * (unsigned long)opt.workers + 64);
    signal(SIGPIPE, SIG_IGN);
    util_stop_signals_block(); /* taken by the signal thread below: see util.h */
    rc = output_start_stdio(); /* every return below writes what is queued first */
    if (rc != 0) {
        fprintf(stderr, "exchanged-main: cannot start the output thread: %s\n", uv_strerror(rc));
        return 1;
    }
    uv_mutex_init(&lock);
    workers = xcalloc((size_t)opt.workers, sizeof *workers);
    int port = opt.port;
    for (int i = 0; i < opt.workers; i++) {
        struct mworker *w = &workers[i];
        int bound = 0;
        int fd = http_listen_socket(opt.host, port, i == 0, 4096, &bound);
        if (fd < 0) {
            fprintf(stderr, "exchanged-main: cannot listen on %s:%d: %s\n", opt.host, port,
                    http_listen_strerror(fd));
            return 1;
        }
        if (i == 0)
            port = bound;
        uv_loop_init(&w->loop);
        uv_async_init(&w->loop, &w->stop, on_stop);
        w->stop.data = w;
        struct http_server_config sc = {&w->counters, routes, w, 1024 * 1024, MAIN_MAX_CONNECTIONS,
                                        10000, 30000, 75000, NULL, NULL, 0};
        int e = 0;
        w->server = http_server_new(&w->loop, fd, &sc, &e);
        if (!w->server) {
            fprintf(stderr, "exchanged-main: %s\n", uv_strerror(e));
            return 1;
        }
    }
    for (int i = 0; i < opt.workers; i++)
        uv_thread_create(&workers[i].thread, run_loop, &workers[i]);

    uv_loop_t *loop = uv_default_loop();
    uv_async_init(loop, &stop_h, on_stop_async);
    rc = util_stop_signals_wait(on_stop_signal, NULL);
    if (rc != 0) {
        fprintf(stderr, "exchanged-main: cannot start the signal thread: %s\n", uv_strerror(rc));
        return 1;
    }
    log_info("event=listening address=http://%s:%d workers=%d", opt.host, port, opt.workers);
    uv_run(loop, UV_RUN_DEFAULT);
    for (int i = 0; i < opt.workers; i++)
        uv_thread_join(&workers[i].thread);
    util_stop_signals_end();
    return 0; /* output_start_stdio's atexit handler writes what is queued */
}
