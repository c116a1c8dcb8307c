/* delivery: a 2xx ends well, a 4xx keeps status and body, a refused
 * connection keeps the reason, in-flight bound respected, and every
 * handle closes (uv_loop_close == 0); a close ends the queued at once and
 * waits (a bounded time) for the answer of the one on the wire; through
 * both transports, our HTTP client (http://) and libcurl (https://, forced
 * here on http://); with an HMAC key, both send X-Signature over the exact
 * body. */
#define _GNU_SOURCE /* strcasestr */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <http_parser.h>

#include "../../src/core/delivery.h"
#include "../../src/util.h"
#include "loopsrv.h"

static int received;
static char last_body[256];

static void on_ok(struct http_request *req, void *ctx)
{
    (void)ctx;
    received++;
    snprintf(last_body, sizeof last_body, "%.*s", (int)req->body_len, req->body);
    http_reply(req->x, 200, "{}", 2, NULL);
}

static void on_bad(struct http_request *req, void *ctx)
{
    (void)ctx;
    http_reply(req->x, 400, "{\"message\":\"Invalid token\"}", 27, NULL);
}

static const struct route routes[] = {
    {HTTP_PUT, "/ok", on_ok, 0},
    {HTTP_PUT, "/bad", on_bad, 0},
    {0},
};

struct outcome {
    int done;
    int ok;
    int abandoned;
    long status;
    char error[600];
};

static int remaining;
static int use_curl;
static struct http_server *srv;
static struct delivery *d_ok, *d_bad, *d_refused;

static void closed(void *arg) { (void)arg; }

static void done_cb(void *arg, const struct delivery_result *r)
{
    struct outcome *o = arg;
    o->done++;
    o->ok = r->ok;
    o->abandoned = r->abandoned;
    o->status = r->http_status;
    snprintf(o->error, sizeof o->error, "%s", r->error ? r->error : "");
    if (--remaining == 0) {
        delivery_close(d_ok, 0, closed, NULL);
        delivery_close(d_bad, 0, closed, NULL);
        delivery_close(d_refused, 0, closed, NULL);
        http_server_stop(srv, closed, NULL);
    }
}

static struct delivery *make(uv_loop_t *loop, int port, const char *path, int max)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    struct delivery_config cfg = {url, max, 2000, 5000, NULL, use_curl, NULL};
    return delivery_new(loop, &cfg);
}

static void outcomes(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int port;
    srv = loopsrv_start(&loop, routes, NULL, &port);
    d_ok = make(&loop, port, "/ok", 2);
    d_bad = make(&loop, port, "/bad", 2);
    d_refused = make(&loop, 1, "/", 2);
    struct outcome ok[10], bad, refused;
    memset(ok, 0, sizeof ok);
    memset(&bad, 0, sizeof bad);
    memset(&refused, 0, sizeof refused);
    remaining = 12;
    for (int i = 0; i < 10; i++)
        delivery_send(d_ok, "{\"n\": 1}", 8, done_cb, &ok[i]);
    assert_int_equal(delivery_pending(d_ok), 10); /* 2 running, 8 queued */
    delivery_send(d_bad, "{}", 2, done_cb, &bad);
    delivery_send(d_refused, "{}", 2, done_cb, &refused);
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(ok[i].done, 1);
        assert_int_equal(ok[i].ok, 1);
        assert_int_equal(ok[i].status, 200);
    }
    assert_int_equal(received, 10);
    assert_string_equal(last_body, "{\"n\": 1}");
    assert_int_equal(bad.done, 1);
    assert_int_equal(bad.ok, 0);
    assert_int_equal(bad.status, 400);
    assert_string_equal(bad.error, "HTTP 400: {\"message\":\"Invalid token\"}");
    assert_int_equal(refused.done, 1);
    assert_int_equal(refused.ok, 0);
    assert_int_equal(refused.status, 0);
    assert_non_null(strstr(refused.error, "port 1"));
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_outcomes_client(void **state)
{
    (void)state;
    use_curl = 0;
    received = 0;
    outcomes();
}

static void test_outcomes_curl(void **state)
{
    (void)state;
    use_curl = 1;
    received = 0;
    outcomes();
    use_curl = 0;
}

static void close_aborts_queued(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct delivery *d = make(&loop, 1, "/", 1);
    struct outcome o[3];
    memset(o, 0, sizeof o);
    remaining = 100; /* no automatic close */
    for (int i = 0; i < 3; i++)
        delivery_send(d, "{}", 2, done_cb, &o[i]);
    delivery_close(d, 0, closed, NULL);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(o[i].done, 1);
        assert_int_equal(o[i].abandoned, 1);
        assert_string_equal(o[i].error, "shutting down");
    }
    /* a send once closing is answered at once, and queues nothing */
    struct outcome late;
    memset(&late, 0, sizeof late);
    delivery_send(d, "{}", 2, done_cb, &late);
    assert_int_equal(late.done, 1);
    assert_int_equal(late.abandoned, 1);
    assert_string_equal(late.error, "shutting down");
    assert_int_equal(delivery_pending(d), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_close_aborts_queued(void **state)
{
    (void)state;
    close_aborts_queued();
    use_curl = 1;
    close_aborts_queued();
    use_curl = 0;
}

/* ---- a close while a callback is on the wire ---- */

static int slow_ms, slow_got;
static uint64_t slow_answered_at;
static uv_timer_t slow_timer;
static struct http_exchange *slow_x;

static void slow_answer(uv_timer_t *t)
{
    slow_answered_at = uv_now(t->loop);
    http_reply(slow_x, 200, "{}", 2, NULL); /* to nobody, when the delivery left */
    slow_x = NULL;
    uv_close((uv_handle_t *)t, NULL);
}

/* Answers slow_ms after the request came. */
static void on_slow(struct http_request *req, void *ctx)
{
    uv_loop_t *loop = ctx;
    slow_got++;
    slow_x = req->x;
    uv_timer_init(loop, &slow_timer);
    uv_timer_start(&slow_timer, slow_answer, (uint64_t)slow_ms, 0);
}

static const struct route slow_routes[] = {{HTTP_PUT, "/slow", on_slow, 0}, {0}};

static int closed_flag;
static uint64_t closed_at;
static void closed_mark(void *arg)
{
    closed_flag = 1;
    closed_at = uv_now(arg);
}

/* One callback on the wire (answered reply_ms after it came) and two
 * queued behind it; the delivery closes with wait_ms to wait. The queued
 * ones end at once, abandoned; the one on the wire gets its answer when
 * it comes within the wait, and is cut off (abandoned) at the wait's end
 * when it does not. */
static void close_with_one_on_the_wire(int reply_ms, int wait_ms)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    int port;
    srv = loopsrv_start(&loop, slow_routes, &loop, &port);
    struct delivery *d = make(&loop, port, "/slow", 1);
    struct outcome o[3];
    memset(o, 0, sizeof o);
    remaining = 100; /* no automatic close */
    slow_ms = reply_ms;
    slow_got = 0;
    slow_answered_at = 0;
    closed_flag = 0;
    for (int i = 0; i < 3; i++)
        delivery_send(d, "{}", 2, done_cb, &o[i]);
    while (!slow_got)
        uv_run(&loop, UV_RUN_ONCE);
    uint64_t t0 = uv_now(&loop);
    delivery_close(d, (uint64_t)wait_ms, closed_mark, &loop);
    for (int i = 1; i < 3; i++) { /* never sent: at once */
        assert_int_equal(o[i].done, 1);
        assert_int_equal(o[i].abandoned, 1);
        assert_string_equal(o[i].error, "shutting down");
    }
    assert_int_equal(o[0].done, 0);
    assert_int_equal(delivery_pending(d), 1);
    while (!closed_flag)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(o[0].done, 1);
    if (reply_ms < wait_ms) { /* answered: as usual, then the close */
        assert_int_equal(o[0].abandoned, 0);
        assert_int_equal(o[0].ok, 1);
        assert_int_equal(o[0].status, 200);
        assert_true(slow_answered_at > 0 && closed_at >= slow_answered_at);
    } else { /* cut off at the wait's end, before the answer came */
        assert_int_equal(o[0].abandoned, 1);
        assert_int_equal(o[0].ok, 0);
        assert_string_equal(o[0].error, "shutting down");
        assert_int_equal(slow_answered_at, 0);
        assert_in_range(closed_at - t0, (uint64_t)wait_ms, (uint64_t)reply_ms - 1);
    }
    assert_int_equal(slow_got, 1); /* the queued ones were never sent */
    http_server_stop(srv, closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_close_waits_for_the_answer_on_the_wire(void **state)
{
    (void)state;
    for (int curl = 0; curl < 2; curl++) {
        use_curl = curl;
        close_with_one_on_the_wire(150, 5000);
        close_with_one_on_the_wire(1500, 100);
    }
    use_curl = 0;
}

/* ---- a raw receiver: keeps one request's bytes as they came ---- */

static char raw[8192];
static size_t raw_len;
static uv_tcp_t raw_listener;

static void raw_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    (void)n;
    b->base = raw + raw_len;
    b->len = sizeof raw - 1 - raw_len;
}

static void raw_closed(uv_handle_t *h) { free(h); }

/* Answers 200 and closes once the head and Content-Length bytes are in. */
static void raw_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    if (n < 0) {
        uv_close((uv_handle_t *)st, raw_closed);
        return;
    }
    raw_len += (size_t)n;
    raw[raw_len] = '\0';
    const char *end = strstr(raw, "\r\n\r\n"), *cl = strcasestr(raw, "\r\nContent-Length:");
    if (!end || !cl || raw_len < (size_t)(end + 4 - raw) + strtoul(cl + 17, NULL, 10))
        return;
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    uv_buf_t w = uv_buf_init((char *)ok, sizeof ok - 1);
    assert_int_equal(uv_try_write(st, &w, 1), (int)sizeof ok - 1);
    uv_close((uv_handle_t *)st, raw_closed);
}

static void raw_accept(uv_stream_t *l, int status)
{
    assert_int_equal(status, 0);
    uv_tcp_t *c = malloc(sizeof *c);
    uv_tcp_init(l->loop, c);
    assert_int_equal(uv_accept(l, (uv_stream_t *)c), 0);
    uv_read_start((uv_stream_t *)c, raw_alloc, raw_read);
}

static int raw_start(uv_loop_t *loop)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(loop, &raw_listener);
    assert_int_equal(uv_tcp_bind(&raw_listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&raw_listener, 8, raw_accept), 0);
    int al = sizeof a;
    uv_tcp_getsockname(&raw_listener, (struct sockaddr *)&a, &al);
    return ntohs(a.sin_port);
}

/* With an HMAC key, each transport sends X-Signature over the exact body. */
static void signed_once(int curl)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    raw_len = 0;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/cb", raw_start(&loop));
    struct delivery_config cfg = {url, 1, 2000, 5000, "k3y", curl, NULL};
    struct delivery *d = delivery_new(&loop, &cfg);
    struct outcome o;
    memset(&o, 0, sizeof o);
    remaining = 100; /* no automatic close */
    delivery_send(d, "{\"n\": 2}", 8, done_cb, &o);
    while (!o.done)
        uv_run(&loop, UV_RUN_ONCE);
    delivery_close(d, 0, closed, NULL);
    uv_close((uv_handle_t *)&raw_listener, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(o.ok, 1);
    char want[128] = "\r\nX-Signature: ";
    delivery_signature("k3y", "{\"n\": 2}", 8, want + strlen(want));
    strcat(want, "\r\n");
    assert_non_null(strstr(raw, want));
    assert_non_null(strstr(raw, "\r\n\r\n{\"n\": 2}"));
    assert_null(strcasestr(raw, "\r\nExpect:")); /* curl would wait for 100 Continue */
}

static void test_signed_request_both_transports(void **state)
{
    (void)state;
    signed_once(0);
    signed_once(1);
}

static void test_signature(void **state)
{
    (void)state;
    char sig[80];
    /* RFC 4231, test case 2 */
    delivery_signature("Jefe", "what do ya want for nothing?", 28, sig);
    assert_string_equal(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outcomes_client),
        cmocka_unit_test(test_outcomes_curl),
        cmocka_unit_test(test_close_aborts_queued),
        cmocka_unit_test(test_close_waits_for_the_answer_on_the_wire),
        cmocka_unit_test(test_signature),
        cmocka_unit_test(test_signed_request_both_transports),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
