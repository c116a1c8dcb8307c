/* Fuzz target: the HTTP request path as the server sees it. The input is
 * split into reads at points drawn from its first bytes and written, read by
 * read, into one end of a socketpair whose other end the server serves; the
 * answers are read and dropped. Routes: an immediate answer, a JSON body
 * validated by payload, and an answer that comes one loop turn later (as the
 * durable routes' do), so pipelining across late answers is exercised. */
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <http_parser.h>

#include "../src/core/payload.h"
#include "../src/http/server.h"

static uv_loop_t loop;
static struct http_server *srv;
static struct http_counters counters;
static uv_timer_t later_timer;
static struct http_exchange *later[64];
static int nlater;

static void on_root(struct http_request *req, void *ctx)
{
    (void)ctx;
    http_reply(req->x, 200, "{}", 2, NULL);
}

static void on_json(struct http_request *req, void *ctx)
{
    (void)ctx;
    struct exchange *ex;
    struct payload_error err;
    if (payload_parse(req->body, req->body_len, &ex, &err) == 0) {
        free(ex);
        http_reply(req->x, 200, "{\"status\":\"ok\"}", 15, NULL);
    } else {
        http_reply(req->x, err.status, err.body, err.len, NULL);
        free(err.body);
    }
}

static void on_later_timer(uv_timer_t *t)
{
    (void)t;
    for (int i = 0; i < nlater; i++)
        http_reply(later[i], 200, "{\"late\":1}", 10, NULL);
    nlater = 0;
}

static void on_later(struct http_request *req, void *ctx)
{
    (void)ctx;
    if (nlater == 64) {
        http_reply(req->x, 503, "{}", 2, NULL);
        return;
    }
    later[nlater++] = req->x;
    uv_timer_start(&later_timer, on_later_timer, 0, 0);
}

static const struct route routes[] = {
    {HTTP_GET, "/", on_root, 0},
    {HTTP_POST, "/json", on_json, ROUTE_JSON_BODY},
    {HTTP_GET, "/later/*", on_later, 0},
    {HTTP_DELETE, "/api/tasks/*/retry", on_root, 0},
    {0},
};

static void init(void)
{
    signal(SIGPIPE, SIG_IGN); /* the server may close before all is written */
    uv_loop_init(&loop);
    uv_timer_init(&loop, &later_timer);
    int port;
    int fd = http_listen_socket("127.0.0.1", 0, 1, 16, &port);
    if (fd < 0)
        abort();
    struct http_server_config cfg = {&counters, routes, NULL, 4096, 100, 60000, 60000, 60000,
                                     "fuzz-token", NULL, 0};
    int err;
    srv = http_server_new(&loop, fd, &cfg, &err);
    if (!srv)
        abort();
}

static void drain(int fd)
{
    char buf[65536];
    while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
        ;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        init();
        ready = 1;
    }
    if (size < 2)
        return 0;
    unsigned seed = data[0] | (unsigned)data[1] << 8;
    data += 2;
    size -= 2;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    if (http_server_adopt(srv, sv[0]) != 0)
        abort();
    size_t off = 0;
    while (off < size) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 64;
        if (n > size - off)
            n = size - off;
        if (send(sv[1], data + off, n, MSG_NOSIGNAL) != (ssize_t)n)
            break;
        off += n;
        uv_run(&loop, UV_RUN_NOWAIT);
        drain(sv[1]);
    }
    shutdown(sv[1], SHUT_WR);
    /* until the server has closed its end (answers written, lingering done) */
    for (int i = 0; i < 100000 && atomic_load(&counters.connections_open) > 0; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        drain(sv[1]);
    }
    if (atomic_load(&counters.connections_open) > 0)
        abort(); /* a connection that never ends */
    close(sv[1]);
    return 0;
}
