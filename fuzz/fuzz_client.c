/* Fuzz target: the callback client reading a hostile main service's answer.
 * A listener on loopback accepts the client's connection, reads its request,
 * and answers with the input, split into writes at points drawn from its
 * first bytes, then closes. Whatever the bytes, the request must end exactly
 * once, with either an answer (a status, at most LIMIT_PEER_BODY_KEEP bytes
 * of body) or an error text, and every handle must close. Two requests per
 * input share the client, so a kept-alive connection is reused (or dropped)
 * after an arbitrary first answer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/http/client.h"
#include "../src/limits.h"

static uv_loop_t loop;
static uv_tcp_t listener;
static int port;
static const uint8_t *in_data;
static size_t in_size, in_cuts[4];
static int ncuts;

struct peer {
    uv_tcp_t tcp;
    int answered;
};

static void on_peer_closed(uv_handle_t *h) { free(h->data); }

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void peer_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    (void)n;
    static char buf[65536];
    b->base = buf;
    b->len = sizeof buf;
}

static void on_shutdown(uv_shutdown_t *r, int status)
{
    (void)status;
    struct peer *p = r->data;
    free(r);
    if (!uv_is_closing((uv_handle_t *)&p->tcp))
        uv_close((uv_handle_t *)&p->tcp, on_peer_closed);
}

/* Answers the first request bytes it sees with the input, in pieces. */
static void peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    struct peer *p = s->data;
    if (n < 0) {
        if (!uv_is_closing((uv_handle_t *)&p->tcp))
            uv_close((uv_handle_t *)&p->tcp, on_peer_closed);
        return;
    }
    if (n == 0 || p->answered)
        return;
    p->answered = 1;
    size_t from = 0;
    for (int i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? in_cuts[i] : in_size;
        if (to <= from)
            continue;
        uv_write_t *w = malloc(sizeof *w);
        uv_buf_t piece = uv_buf_init((char *)in_data + from, (unsigned)(to - from));
        uv_write(w, s, &piece, 1, on_written);
        from = to;
    }
    uv_shutdown_t *r = malloc(sizeof *r);
    r->data = p;
    if (uv_shutdown(r, s, on_shutdown) != 0) {
        free(r);
        uv_close((uv_handle_t *)&p->tcp, on_peer_closed);
    }
}

static void on_connection(uv_stream_t *l, int status)
{
    if (status < 0)
        return;
    struct peer *p = calloc(1, sizeof *p);
    uv_tcp_init(&loop, &p->tcp);
    p->tcp.data = p;
    if (uv_accept(l, (uv_stream_t *)&p->tcp) != 0) {
        uv_close((uv_handle_t *)&p->tcp, on_peer_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&p->tcp, peer_alloc, peer_read);
}

static int ended[2], closed;

static void on_done(void *arg, const struct http_client_result *r)
{
    int *n = arg;
    (*n)++;
    if (r->error) {
        if (r->status != 0 || !r->error[0])
            abort();
    } else if (r->status < 100 || r->status > 999 || r->body_len > LIMIT_PEER_BODY_KEEP ||
               strlen(r->body) > r->body_len) {
        abort();
    }
}

static void on_closed(void *arg)
{
    (void)arg;
    closed = 1;
}

static void setup(void)
{
    uv_loop_init(&loop);
    uv_tcp_init(&loop, &listener);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    if (uv_tcp_bind(&listener, (struct sockaddr *)&a, 0) != 0 ||
        uv_listen((uv_stream_t *)&listener, 128, on_connection) != 0)
        abort();
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&listener, (struct sockaddr *)&ss, &len);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    ncuts = 0;
    size_t skip = size > 0 ? 1 : 0;
    if (size > 0) { /* the first byte draws up to 4 cut points */
        unsigned seed = data[0];
        for (int i = 0; i < 4 && size > 2; i++) {
            seed = seed * 1103515245u + 12345u;
            in_cuts[ncuts++] = 1 + (seed >> 8) % (size - 1);
        }
        for (int i = 1; i < ncuts; i++) /* ascending */
            for (int j = i; j > 0 && in_cuts[j - 1] > in_cuts[j]; j--) {
                size_t t = in_cuts[j];
                in_cuts[j] = in_cuts[j - 1];
                in_cuts[j - 1] = t;
            }
        for (int i = 0; i < ncuts; i++)
            in_cuts[i] -= skip;
    }
    in_data = data + skip;
    in_size = size - skip;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/exchange_result", port);
    struct http_client_config cfg = {url, 2000, 2000, 4};
    struct http_client *c = http_client_new(&loop, &cfg);
    ended[0] = ended[1] = 0;
    closed = 0;
    http_client_send(c, "PUT", "", "{}", 2, on_done, &ended[0]);
    while (!ended[0])
        uv_run(&loop, UV_RUN_ONCE);
    http_client_send(c, "PUT", "X-A: 1\r\n", "{\"b\": 2}", 8, on_done, &ended[1]);
    while (!ended[1])
        uv_run(&loop, UV_RUN_ONCE);
    if (ended[0] != 1 || ended[1] != 1)
        abort();
    http_client_close(c, on_closed, NULL);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    uv_run(&loop, UV_RUN_NOWAIT); /* the peers' close callbacks */
    return 0;
}
