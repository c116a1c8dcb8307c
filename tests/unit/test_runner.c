/* runner: an async task's callback body, byte for byte; ids unique and
 * time-ordered; shutdown drops waiting tasks and closes cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <http_parser.h>

#include "../../src/core/runner.h"
#include "loopsrv.h"

static char got[1024];
static int received;
static struct http_server *srv;
static struct delivery *dlv;
static struct runner *run;

static void closed_noop(void *arg) { (void)arg; }

static struct store *store;
static void on_runner_closed(void *arg) { (void)arg; }

static void on_put(struct http_request *req, void *ctx)
{
    (void)ctx;
    snprintf(got, sizeof got, "%.*s", (int)req->body_len, req->body);
    http_reply(req->x, 200, "{}", 2, NULL);
    received++;
}

/* After each loop turn: once both callbacks are acknowledged, shut down. */
static uv_check_t check;
static struct runner_counters *watched;

static void on_check(uv_check_t *c)
{
    if (watched->callbacks_delivered + watched->callbacks_failed < 2)
        return;
    uv_close((uv_handle_t *)c, NULL);
    runner_close(run, on_runner_closed, NULL);
    http_server_stop(srv, closed_noop, NULL);
}

static const struct route routes[] = {{HTTP_PUT, "/api/exchange_result", on_put, 0}, {0}};

static struct exchange *parse(const char *body)
{
    struct exchange *ex;
    struct payload_error err;
    assert_int_equal(payload_parse(body, strlen(body), &ex, &err), 0);
    return ex;
}

static struct store *memory_store(void)
{
    struct store_config sc = {"memory", "off", 1000, 1000000, 0, 0, 0, 0};
    char err[256];
    struct store *s = store_open(&sc, err, sizeof err);
    assert_non_null(s);
    return s;
}

/* A runner of worker worker_id delivering to the port, its delivery in dlv. */
static struct runner *new_runner(uv_loop_t *loop, struct runner_counters *counters, uint64_t lat,
                                 int port, int worker_id, struct store *st)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/exchange_result", port);
    struct delivery_config dc = {url, 4, 2000, 5000, NULL, 0, NULL};
    dlv = delivery_new(loop, &dc);
    struct runner_config rc = {counters, lat, lat, 0, "tok\"en", 0, worker_id, st,
                               {1000, 60000, 5, 3600000}, NULL};
    return runner_new(loop, &rc, dlv);
}

static void setup(uv_loop_t *loop, struct runner_counters *counters, uint64_t lat, int port)
{
    store = memory_store();
    run = new_runner(loop, counters, lat, port, 3, store);
}

static void test_callback_body(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    int port;
    srv = loopsrv_start(&loop, routes, NULL, &port);
    struct runner_counters counters;
    memset(&counters, 0, sizeof counters);
    setup(&loop, &counters, 0, port);
    uint64_t a = runner_new_id(run);
    uint64_t b = runner_new_id(run);
    runner_start(run, parse("{\"request_id\": 1, \"exchange_rate\": 1, "
                            "\"bills\": [{\"denomination_id\": 1, "
                            "\"denomination\": 1, \"count\": 1}]}"), a);
    runner_start(run,
                 parse("{\"request_id\": \"r\\u00e9q\", \"exchange_rate\": 75.5, \"bills\": ["
                       "{\"denomination_id\": 1, \"denomination\": 10.0, \"count\": 5},"
                       "{\"denomination_id\": \"b\", \"denomination\": 0.1, \"count\": 3}]}"),
                 b);
    assert_true(b > a);
    assert_int_equal(a & 0xFF, 3); /* the worker's number */
    char hex[17];
    runner_format_id(a, hex);
    assert_int_equal(strlen(hex), 16);
    assert_int_equal(counters.tasks_in_flight, 2);
    watched = &counters;
    uv_check_init(&loop, &check);
    uv_check_start(&check, on_check);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(received, 2);
    assert_string_equal(got, "{\"token\": \"tok\\\"en\", \"request_id\": \"r\\u00e9q\", \"breakdown\": "
                             "[{\"denomination_id\": 1, \"subtotal_rub\": 3775.0}, "
                             "{\"denomination_id\": \"b\", \"subtotal_rub\": 22.65}]}");
    assert_int_equal(counters.tasks_accepted, 2);
    assert_int_equal(counters.tasks_in_flight, 0);
    assert_int_equal(counters.callbacks_delivered, 2);
    assert_int_equal(uv_loop_close(&loop), 0);
    store_close(store);
}

/* Ids grow across workers: a task submitted after another's answer lists
 * after it. 5,000 ids from one worker run ahead of the clock (4,096 per ms),
 * and the other worker's next id still comes after them; so does the next
 * id after runner_ids_after(an id an hour ahead), as at a start after the
 * clock was set back. */
static void test_ids_increase_across_workers(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct runner_counters counters;
    memset(&counters, 0, sizeof counters);
    struct store *st = memory_store();
    struct runner *w[2];
    for (int i = 0; i < 2; i++)
        w[i] = new_runner(&loop, &counters, 0, 1, i + 1, st);
    uint64_t last = 0;
    for (int i = 0; i < 5000; i++) {
        uint64_t id = runner_new_id(w[0]);
        assert_true(id > last);
        last = id;
    }
    for (int i = 0; i < 2000; i++) {
        uint64_t id = runner_new_id(w[(i + 1) % 2]);
        assert_true(id > last);
        assert_int_equal(id & 0xFF, (i + 1) % 2 + 1);
        last = id;
    }
    /* a stored id an hour ahead of the clock (set back since): the next come after it */
    uint64_t hour = (3600000ULL << 20), stored = last + hour;
    uint64_t ahead = runner_ids_after(stored);
    assert_in_range(ahead, 3590000, 3600100); /* last itself may run a ms or two ahead */
    uint64_t id = runner_new_id(w[1]);
    assert_true(id > stored);
    assert_in_range(runner_ids_after(last), 0, 100); /* an older one changes nothing */
    assert_int_equal(runner_new_id(w[0]) >> 8, (id >> 8) + 1);
    for (int i = 0; i < 2; i++)
        runner_close(w[i], on_runner_closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    store_close(st);
}

static void test_close_drops_waiting(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct runner_counters counters;
    memset(&counters, 0, sizeof counters);
    setup(&loop, &counters, 1000000, 1);
    for (int i = 0; i < 5; i++)
        runner_start(run, parse("{\"request_id\": 1, \"exchange_rate\": 1, \"bills\": ["
                                       "{\"denomination_id\": 1, \"denomination\": 1, \"count\": 1},"
                                       "{\"denomination_id\": 2, \"denomination\": 1, \"count\": 1}]}"), runner_new_id(run));
    assert_int_equal(runner_active(run), 5);
    runner_close(run, on_runner_closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(counters.tasks_in_flight, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    store_close(store);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_callback_body),
                                       cmocka_unit_test(test_ids_increase_across_workers),
                                       cmocka_unit_test(test_close_drops_waiting)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
