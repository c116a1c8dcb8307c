/* server: answers that come later (after the client left, or during a
 * stop), in-order pipelining across a late answer, and a clean loop close;
 * accepting when the process is out of file descriptors.
 * The server runs on a loop in a second thread; the test talks to it with
 * blocking sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
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
static uv_async_t hold_async; /* see on_hold */
static int hold_open;         /* hold_async is to be closed with the loop */

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
    if (hold_open)
        uv_close((uv_handle_t *)&hold_async, NULL);
    hold_open = 0;
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

static void connect_fd(int fd)
{
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        fail_msg("connect to port %d: %s", port, strerror(errno));
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static int connect_to(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    connect_fd(fd);
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

/* ---- out of file descriptors ---- */

/* Sends GET /now on fd and reads the answer's status line. */
static int ask_now(int fd)
{
    const char *req = "GET /now HTTP/1.1\r\nHost: x\r\n\r\n";
    if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
        return 0;
    char buf[512];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    return strncmp(buf, "HTTP/1.1 200", 12) == 0;
}

#define FD_CLIENTS 8
#define FD_FREE 2 /* descriptors left for the server to accept with */

/* Holds the loop thread until the test posts hold_sem: the clients connect
 * (into the backlog) and the descriptors are used up while the server
 * cannot accept, so no connect() runs at the limit and no accept races the
 * test's filling. */
static uv_sem_t held_sem, hold_sem;

static void on_hold(uv_async_t *a)
{
    (void)a;
    uv_sem_post(&held_sem);
    uv_sem_wait(&hold_sem);
}

/* The process runs out of file descriptors with connections waiting: the
 * server accepts what it can, serves those, pauses accepting (a few failed
 * accepts, not a spin), and once descriptors are free again accepts and
 * serves the connections that waited (none reset). */
static void test_out_of_descriptors(void **state)
{
    (void)state;
    uv_loop_init(&loop);
    uv_async_init(&loop, &stop_async, on_stop);
    uv_async_init(&loop, &hold_async, on_hold);
    hold_open = 1;
    uv_timer_init(&loop, &later_timer);
    uv_sem_init(&held_sem, 0);
    uv_sem_init(&hold_sem, 0);
    srv = loopsrv_start(&loop, routes, NULL, &port);
    struct http_counters *counters = &loopsrv_counters;
    uint64_t failures0 = atomic_load(&counters->accept_failures);
    uv_thread_create(&thread, loop_thread, NULL);

    /* one connection first: libuv keeps a spare descriptor per loop from
     * its first stream on; it is closed on both sides before the hold */
    int warm = connect_to();
    assert_true(ask_now(warm));
    close(warm);
    for (int i = 0; i < 500 && atomic_load(&counters->connections_open) != 0; i++)
        usleep(10000);
    assert_int_equal(atomic_load(&counters->connections_open), 0);

    uv_async_send(&hold_async);
    uv_sem_wait(&held_sem);
    int cl[FD_CLIENTS];
    for (int i = 0; i < FD_CLIENTS; i++) {
        assert_true((cl[i] = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
        connect_fd(cl[i]);
    }

    /* the limit at the highest descriptor open, every lower one taken,
     * then FD_FREE given back */
    struct rlimit was;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &was), 0);
    int top = cl[0];
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) != -1 && fd > top)
            top = fd;
    struct rlimit low = {(rlim_t)top + 1, was.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fill[4096], nfill = 0, fd;
    while ((fd = open("/dev/null", O_RDONLY)) >= 0)
        fill[nfill++] = fd;
    assert_int_equal(errno, EMFILE);
    for (int i = 0; i < FD_FREE; i++)
        close(fill[--nfill]);
    uv_sem_post(&hold_sem);

    /* the first FD_FREE (the backlog is first in, first out) are served
     * while the others wait */
    for (int i = 0; i < FD_FREE; i++)
        assert_true(ask_now(cl[i]));
    assert_int_equal(atomic_load(&counters->connections_open), FD_FREE);
    for (int i = 0; i < 100 && atomic_load(&counters->accept_failures) == failures0; i++)
        usleep(10000);
    usleep(300000);
    /* one failed accept per pause of 100 ms, not a retry at once */
    uint64_t failures = atomic_load(&counters->accept_failures) - failures0;

    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &was), 0);
    /* the others waited, and are served now (libuv's fallback resets them) */
    for (int i = FD_FREE; i < FD_CLIENTS; i++)
        assert_true(ask_now(cl[i]));
    assert_int_equal(atomic_load(&counters->connections_open), FD_CLIENTS);
    assert_in_range(failures, 1, 6);

    for (int i = 0; i < FD_CLIENTS; i++)
        close(cl[i]);
    uv_async_send(&stop_async);
    uv_thread_join(&thread);
    assert_int_equal(uv_loop_close(&loop), 0);
    uv_sem_destroy(&held_sem);
    uv_sem_destroy(&hold_sem);
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
                                       cmocka_unit_test(test_out_of_descriptors),
                                       cmocka_unit_test(test_status_text)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
