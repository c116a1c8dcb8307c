/*
 * loadgen: exactly N POSTs of the seed's 2-bill body, each with a unique
 * request_id, over C keep-alive connections, as fast as the server answers.
 * Prints one line: submit time, requests/s, latency p50/p99, 2xx, non-2xx,
 * errors.
 *
 *   loadgen HOST PORT PATH N C [PREFIX]
 *
 * One libuv loop, http-parser for the answers; a connection that fails is
 * counted and replaced while requests remain.
 */
#include <http_parser.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t wr;
    http_parser parser;
    char req[512];
    uint64_t sent_at;
    int busy;
};

static uv_loop_t *loop;
static struct sockaddr_in addr;
static const char *path, *prefix;
static long total, started, done_ok, done_bad, errors;
static uint64_t *lat_us;
static long nlat;
static http_parser_settings settings;
static char rbuf[65536];
static uint64_t t_start;
static int stopping; /* no more connections are opened */

static void send_next(struct conn *c);
static void conn_open(struct conn *c);

static uint64_t now_us(void)
{
    return uv_hrtime() / 1000;
}

static void on_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (!stopping && started < total)
        conn_open(c); /* replace it */
}

static void conn_fail(struct conn *c)
{
    errors++;
    if (c->busy) {
        c->busy = 0;
        started--; /* that request is sent again */
    }
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static int on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    lat_us[nlat++] = now_us() - c->sent_at;
    if (p->status_code >= 200 && p->status_code < 300)
        done_ok++;
    else
        done_bad++;
    c->busy = 0;
    send_next(c);
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    (void)h;
    (void)s;
    b->base = rbuf;
    b->len = sizeof rbuf;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct conn *c = s->data;
    if (n < 0) {
        conn_fail(c);
        return;
    }
    size_t used = http_parser_execute(&c->parser, &settings, b->base, (size_t)n);
    if (used != (size_t)n || HTTP_PARSER_ERRNO(&c->parser) != HPE_OK)
        conn_fail(c);
}

static void on_write(uv_write_t *w, int status)
{
    if (status < 0)
        conn_fail(w->data);
}

static void send_next(struct conn *c)
{
    if (started >= total)
        return;
    long id = started++;
    static const char body_fmt[] =
        "{\"request_id\":\"%s-%ld\",\"exchange_rate\":75.5,\"bills\":[{\"denomination_id\":1,"
        "\"denomination\":10.0,\"count\":5},{\"denomination_id\":2,\"denomination\":20.0,"
        "\"count\":3}]}";
    char body[300];
    int blen = snprintf(body, sizeof body, body_fmt, prefix, id);
    int n = snprintf(c->req, sizeof c->req,
                     "POST %s HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     path, blen, body);
    uv_buf_t buf = uv_buf_init(c->req, (unsigned)n);
    c->busy = 1;
    c->sent_at = now_us();
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0)
        conn_fail(c);
}

static void on_connect(uv_connect_t *r, int status)
{
    struct conn *c = r->data;
    if (status < 0) {
        conn_fail(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    send_next(c);
}

static void conn_open(struct conn *c)
{
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->connect.data = c;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&addr, on_connect);
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void close_all(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_check(uv_check_t *ck)
{
    if (done_ok + done_bad >= total || errors > total) {
        stopping = 1;
        uv_check_stop(ck);
        uv_walk(loop, close_all, NULL);
    }
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: loadgen HOST PORT PATH N C [PREFIX]\n");
        return 2;
    }
    uv_ip4_addr(argv[1], (int)strtol(argv[2], NULL, 10), &addr);
    path = argv[3];
    total = strtol(argv[4], NULL, 10);
    long conc = strtol(argv[5], NULL, 10);
    prefix = argc > 6 ? argv[6] : "lg";
    if (total <= 0 || conc <= 0) {
        fprintf(stderr, "loadgen: N and C must be positive\n");
        return 2;
    }
    lat_us = calloc((size_t)total + 1, sizeof *lat_us);
    settings.on_message_complete = on_message_complete;
    loop = uv_default_loop();
    struct conn *conns = calloc((size_t)conc, sizeof *conns);
    t_start = now_us();
    for (long i = 0; i < conc && i < total; i++)
        conn_open(&conns[i]);
    uv_check_t ck;
    uv_check_init(loop, &ck);
    uv_check_start(&ck, on_check);
    uv_run(loop, UV_RUN_DEFAULT);
    double secs = (double)(now_us() - t_start) / 1e6;
    qsort(lat_us, (size_t)nlat, sizeof *lat_us, cmp);
    double p50 = nlat ? (double)lat_us[nlat / 2] / 1000 : 0;
    double p99 = nlat ? (double)lat_us[(long)((double)nlat * 0.99)] / 1000 : 0;
    printf("RESULT submit_s=%.3f rps=%.1f p50_ms=%.2f p99_ms=%.2f ok_2xx=%ld non2xx=%ld errors=%ld\n",
           secs, (double)(done_ok + done_bad) / secs, p50, p99, done_ok, done_bad, errors);
    free(conns);
    free(lat_us);
    return 0;
}
