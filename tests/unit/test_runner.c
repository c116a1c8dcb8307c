/* runner: an async task's callback body, byte for byte; ids unique and
 * time-ordered; a task's age for the retry limit, whatever the wall clock
 * does; shutdown drops waiting tasks, takes the answers of the callbacks on
 * the wire as usual, and closes cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <time.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <http_parser.h>

#include "../../src/core/runner.h"
#include "../../src/util.h"
#include "loopsrv.h"
#include "wallclock.h"


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
    runner_close(run, 0, on_runner_closed, NULL);
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
    struct store_config sc = {"memory", "off", 1000, 1000000, 0, 0, 0, 0, 0, 0, 0};
    char err[256];
    struct store *s = store_open(&sc, err, sizeof err);
    assert_non_null(s);
    return s;
}

static const struct backoff_policy default_backoff = {1000, 60000, 5, 3600000};

/* A runner of worker worker_id delivering to the port, its delivery in dlv. */
static struct runner *new_runner(uv_loop_t *loop, struct runner_counters *counters, uint64_t lat,
                                 int port, int worker_id, struct store *st,
                                 const struct backoff_policy *backoff)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/exchange_result", port);
    struct delivery_config dc = {url, 4, 2000, 5000, NULL, 0, NULL};
    dlv = delivery_new(loop, &dc);
    struct runner_config rc = {counters, lat, lat, 0, "tok\"en", 0, worker_id, st, *backoff, NULL};
    return runner_new(loop, &rc, dlv);
}

static void setup(uv_loop_t *loop, struct runner_counters *counters, uint64_t lat, int port)
{
    store = memory_store();
    run = new_runner(loop, counters, lat, port, 3, store, &default_backoff);
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
        w[i] = new_runner(&loop, &counters, 0, 1, i + 1, st, &default_backoff);
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
        runner_close(w[i], 0, on_runner_closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    store_close(st);
}

/* ---- the retry age limit and the wall clock ---- */

static int puts_of[4]; /* PUTs per request_id 1..3 */
static struct runner_counters age_counters;
static uv_timer_t age_give_up;

static void on_put_busy(struct http_request *req, void *ctx)
{
    (void)ctx;
    char text[512];
    snprintf(text, sizeof text, "%.*s", (int)req->body_len, req->body);
    const char *rid = strstr(text, "\"request_id\": ");
    assert_non_null(rid);
    int n = rid[14] - '0';
    assert_in_range(n, 1, 3);
    puts_of[n]++;
    http_reply(req->x, 503, "{}", 2, NULL); /* retryable */
}

static const struct route busy_routes[] = {{HTTP_PUT, "/api/exchange_result", on_put_busy, 0},
                                           {0}};

static void age_done(void)
{
    uv_check_stop(&check);
    uv_close((uv_handle_t *)&check, NULL);
    uv_close((uv_handle_t *)&age_give_up, NULL);
    runner_close(run, 0, on_runner_closed, NULL);
    http_server_stop(srv, closed_noop, NULL);
}

static void on_age_give_up(uv_timer_t *t)
{
    (void)t;
    age_done();
}

/* The age tests' runner: 503 to every callback, quick retries, max_age_ms
 * of age; counters and PUT counts from zero. */
static void age_setup(uv_loop_t *loop, uint64_t max_age_ms)
{
    uv_loop_init(loop);
    int port;
    srv = loopsrv_start(loop, busy_routes, NULL, &port);
    memset(&age_counters, 0, sizeof age_counters);
    memset(puts_of, 0, sizeof puts_of);
    store = memory_store();
    const struct backoff_policy quick = {10, 20, 1000, max_age_ms};
    run = new_runner(loop, &age_counters, 0, port, 1, store, &quick);
}

/* Runs the loop until cb says done (at most 20 s), then closes it all. */
static void age_run(uv_loop_t *loop, uv_check_cb cb)
{
    uv_check_init(loop, &check);
    uv_check_start(&check, cb);
    uv_timer_init(loop, &age_give_up);
    uv_timer_start(&age_give_up, on_age_give_up, 20000, 0);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
    store_close(store);
}

/* Once tasks 1 and 2 have failed an attempt, the wall clock jumps two hours
 * ahead (an NTP step at a boot whose clock was behind); done when each has
 * failed four times, or two tasks have failed for good. */
static void on_age_check(uv_check_t *c)
{
    (void)c;
    if (!wall_offset_s && puts_of[1] >= 1 && puts_of[2] >= 1)
        wall_offset_s = 2 * 3600;
    if ((puts_of[1] >= 4 && puts_of[2] >= 4 && age_counters.callbacks_failed >= 1) ||
        age_counters.callbacks_failed >= 2)
        age_done();
}

/* The age limit (an hour here) counts on the monotonic clock while running:
 * a wall clock set forward two hours fails neither a task started in this
 * run (1) nor one resumed at 30 minutes old (2); a task resumed at two hours
 * old (3: the time the service was down counts) fails at its first failed
 * attempt. Before, the age was the wall clock less the creation time, and
 * the jump made 1 and 2 "too old" at their next attempt. */
static void test_age_counts_on_the_monotonic_clock(void **state)
{
    (void)state;
    uv_loop_t loop;
    age_setup(&loop, 3600000); /* an hour's age */

    const char *body = "{\"request_id\": %d, \"exchange_rate\": 1, \"bills\": "
                       "[{\"denomination_id\": 1, \"denomination\": 1, \"count\": 1}]}";
    char text[256];
    snprintf(text, sizeof text, body, 1);
    runner_start(run, parse(text), runner_new_id(run));
    uint64_t now = util_wall_ms();
    for (int n = 2; n <= 3; n++) {
        snprintf(text, sizeof text, body, n);
        struct task_view v = {0};
        v.id = runner_new_id(run);
        v.state = STATE_RETRYING;
        v.attempts = 1;
        v.created_ms = now - (n == 2 ? 30 : 120) * 60000ull;
        v.next_attempt_ms = now;
        runner_resume(run, parse(text), &v);
    }

    age_run(&loop, on_age_check);
    wall_offset_s = 0;

    assert_int_equal(puts_of[3], 1);
    assert_int_equal(age_counters.callbacks_failed, 1); /* 3, too old */
    assert_true(puts_of[1] >= 4 && puts_of[2] >= 4);
    assert_int_equal(age_counters.callbacks_delivered, 0);
}

static void on_stale_check(uv_check_t *c)
{
    (void)c;
    if (age_counters.callbacks_failed >= 1)
        age_done();
}

/* A task resumed while its loop's time is stale (at a start, every stored
 * task is resumed before the loops run) gets its age from the time it is
 * resumed: resumed at 600 ms old of a 1 s limit, after its loop stood still
 * for 600 ms, it is retried until the limit. Before, its age counted from
 * the stale time and it failed "too old" at its first failed attempt. */
static void test_resumed_age_counts_from_now(void **state)
{
    (void)state;
    uv_loop_t loop;
    age_setup(&loop, 1000); /* 1 s of age */
    uv_sleep(600); /* the loop's time stands still, as while a start recovers */
    struct task_view v = {0};
    v.id = runner_new_id(run);
    v.state = STATE_RETRYING;
    v.attempts = 1;
    v.created_ms = util_wall_ms() - 600;
    v.next_attempt_ms = v.created_ms;
    runner_resume(run, parse("{\"request_id\": 1, \"exchange_rate\": 1, \"bills\": "
                             "[{\"denomination_id\": 1, \"denomination\": 1, \"count\": 1}]}"),
                  &v);
    uint64_t t0 = util_now_ms();
    age_run(&loop, on_stale_check);
    uint64_t took = util_now_ms() - t0;

    assert_int_equal(age_counters.callbacks_failed, 1); /* too old, in the end */
    assert_true(puts_of[1] >= 3);                        /* retried first */
    assert_true(took >= 300);                            /* ~400 ms of age were left */
}

/* A retry by hand starts a task's age over: its age counts from the last
 * "retrying@" that follows a "failed@" in its history. */
static void test_age_from(void **state)
{
    (void)state;
    struct task_view v = {0};
    v.created_ms = 100;
    assert_int_equal(runner_age_from(&v), 100); /* no history */
    v.history = "queued@100 running@100 delivering@150 retrying@160 delivering@170 failed@190";
    assert_int_equal(runner_age_from(&v), 100); /* retried by itself only */
    v.history = "queued@100 running@100 delivering@150 failed@190 retrying@300 delivering@301 "
                "retrying@302";
    assert_int_equal(runner_age_from(&v), 300);
    v.history = "queued@100 running@100 failed@190 retrying@300 failed@400 retrying@500";
    assert_int_equal(runner_age_from(&v), 500); /* the last retry by hand */
    v.created_ms = 1000; /* created after it, by a clock set back since: the later */
    assert_int_equal(runner_age_from(&v), 1000);
    v.history = "queued@100 running@100 failed@";
    assert_int_equal(runner_age_from(&v), 1000); /* cut short: no harm */
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
    runner_close(run, 0, on_runner_closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(counters.tasks_in_flight, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    store_close(store);
}

/* ---- a stop while callbacks are on the wire ---- */

static int wire_status, wire_got, wire_answered, wire_closed_after_answer;
static struct http_exchange *wire_x[2]; /* the first two PUTs; any later one is a failure */
static uv_timer_t wire_timer;

static void wire_answer(uv_timer_t *t)
{
    for (int i = 0; i < 2; i++)
        http_reply(wire_x[i], wire_status, "{}", 2, NULL);
    wire_answered = 1;
    uv_close((uv_handle_t *)t, NULL);
}

static void on_wire_runner_closed(void *arg)
{
    (void)arg;
    wire_closed_after_answer = wire_answered;
    http_server_stop(srv, closed_noop, NULL);
}

/* Both callbacks are on the wire: the stop begins; the answers come 200 ms later. */
static void on_put_held(struct http_request *req, void *ctx)
{
    uv_loop_t *loop = ctx;
    if (wire_got >= 2) { /* a retry during the stop: counted (the test fails), answered */
        wire_got++;
        http_reply(req->x, 500, "{}", 2, NULL);
        return;
    }
    wire_x[wire_got++] = req->x;
    if (wire_got < 2)
        return;
    runner_close(run, 5000, on_wire_runner_closed, NULL);
    uv_timer_init(loop, &wire_timer);
    uv_timer_start(&wire_timer, wire_answer, 200, 0);
}

static const struct route held_routes[] = {{HTTP_PUT, "/api/exchange_result", on_put_held, 0},
                                           {0}};

/* A stop waits for the answers of the callbacks on the wire and takes them
 * as usual: a 200 delivers (not sent again at the next start), a 503 is
 * stored as a retry for the next start, and no retry is made meanwhile. */
static void stop_with_callbacks_on_the_wire(int status)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int port;
    srv = loopsrv_start(&loop, held_routes, &loop, &port);
    struct runner_counters counters;
    memset(&counters, 0, sizeof counters);
    setup(&loop, &counters, 0, port);
    wire_status = status;
    wire_got = wire_answered = wire_closed_after_answer = 0;
    for (int i = 0; i < 2; i++)
        runner_start(run, parse("{\"request_id\": 1, \"exchange_rate\": 1, \"bills\": ["
                                "{\"denomination_id\": 1, \"denomination\": 1, \"count\": 1}]}"),
                     runner_new_id(run));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(wire_got, 2); /* no retry was made during the stop */
    assert_int_equal(wire_closed_after_answer, 1);
    assert_int_equal(counters.callbacks_delivered, status == 200 ? 2 : 0);
    assert_int_equal(counters.callbacks_failed, 0);
    assert_int_equal(counters.tasks_in_flight, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    store_close(store);
}

static void test_stop_waits_for_callbacks_on_the_wire(void **state)
{
    (void)state;
    stop_with_callbacks_on_the_wire(200);
    stop_with_callbacks_on_the_wire(503);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_callback_body),
                                       cmocka_unit_test(test_ids_increase_across_workers),
                                       cmocka_unit_test(test_age_counts_on_the_monotonic_clock),
                                       cmocka_unit_test(test_resumed_age_counts_from_now),
                                       cmocka_unit_test(test_age_from),
                                       cmocka_unit_test(test_close_drops_waiting),
                                       cmocka_unit_test(test_stop_waits_for_callbacks_on_the_wire)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
