/* server: answers that come later (after the client left, or during a
 * stop), in-order pipelining across a late answer, and a clean loop close.
 * The server runs on a loop in a second thread; the test talks to it with
 * blocking sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <cmocka.h>
#include <http_parser.h>
#include <stdatomic.h>

#include "loopsrv.h"

static uv_loop_t loop;
static uv_async_t stop_async;
static uv_timer_t later_timer;
static struct http_exchange *pending[8];
static int npending, answered_late, drained;
static _Atomic int dispatched; /* requests handed to on_later, read by the test thread */
static struct http_server *srv;

static void on_later_timer(uv_timer_t *t)
{
    (void)t;
    for (int i = 0; i < npending; i++) {
        answered_late += http_exchange_orphaned(pending[i]) ? 0 : 1;
        http_reply(pending[i], 200, "{\"late\":true}", 13, NULL);
    }
    npending = 0;
}

static void on_later(struct http_request *req, void *ctx)
{
    (void)ctx;
    pending[npending++] = req->x;
    dispatched++;
    uv_timer_start(&later_timer, on_later_timer, 300, 0);
}

static void on_now(struct http_request *req, void *ctx)
{
    (void)ctx;
    http_reply_detail(req->x, 200, "now", NULL);
}

static const struct route routes[] = {
    {HTTP_GET, "/later", on_later, 0},
    {HTTP_GET, "/now", on_now, 0},
    {0},
};

static void on_drained(void *arg)
{
    (void)arg;
    drained = 1;
    uv_close((uv_handle_t *)&stop_async, NULL);
    uv_close((uv_handle_t *)&later_timer, NULL);
}

static void on_stop(uv_async_t *a)
{
    (void)a;
    http_server_stop(srv, on_drained, NULL);
}

static void loop_thread(void *arg)
{
    (void)arg;
    uv_run(&loop, UV_RUN_DEFAULT);
}

static int port;
static uv_thread_t thread;

static int connect_to(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Waits until the server has dispatched n /later requests. */
static void wait_dispatched(int n)
{
    for (int i = 0; i < 5000 && dispatched < n; i++)
        usleep(1000);
    assert_int_equal(dispatched, n);
}

/* Reads until the server closes; returns the bytes read. */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = '\0';
    return n;
}

static void test_late_answers(void **state)
{
    (void)state;
    uv_loop_init(&loop);
    uv_async_init(&loop, &stop_async, on_stop);
    uv_timer_init(&loop, &later_timer);
    srv = loopsrv_start(&loop, routes, NULL, &port);
    uv_thread_create(&thread, loop_thread, NULL);

    /* 1. the client resets the connection before its late answer: the
     * answer is dropped quietly (a plain FIN would be taken as a half-close
     * and answered) */
    int fd = connect_to();
    const char *req = "GET /later HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    wait_dispatched(1);
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);

    /* 2. pipelined: a late answer then a quick one; order kept */
    fd = connect_to();
    const char *two = "GET /later HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /now HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(write(fd, two, strlen(two)), (ssize_t)strlen(two));
    char buf[4096];
    read_all(fd, buf, sizeof buf);
    close(fd);
    char *late = strstr(buf, "{\"late\":true}");
    char *now = strstr(buf, "{\"detail\":\"now\"}");
    assert_non_null(late);
    assert_non_null(now);
    assert_true(late < now);

    /* 3. stop while an answer is under way: it is still written, with close */
    fd = connect_to();
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    wait_dispatched(3);
    uv_async_send(&stop_async);
    read_all(fd, buf, sizeof buf);
    close(fd);
    assert_non_null(strstr(buf, "{\"late\":true}"));
    assert_non_null(strstr(buf, "connection: close"));

    uv_thread_join(&thread);
    assert_int_equal(drained, 1);
    assert_int_equal(answered_late, 2); /* the orphan was not answered */
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_status_text(void **state)
{
    (void)state;
    assert_string_equal(http_status_text(404), "Not Found");
    assert_string_equal(http_status_text(431), "Request Header Fields Too Large");
    assert_string_equal(http_status_text(299), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_late_answers),
                                       cmocka_unit_test(test_status_text)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
