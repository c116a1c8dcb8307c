/* client: URL parsing; keep-alive reuse, answers read to the close,
 * chunked answers kept truncated, Retry-After (seconds and date), interim
 * 100 answers, a body written in parts as the socket drains, the retry of a
 * reused connection the server dropped, and
 * the failures (refused, unresolvable, timeouts while connecting and after,
 * malformed, shutting down, a send that fails at each of its three places),
 * against a scripted server on the same loop; every handle closes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include <http_parser.h>
#include <uv.h>

#include "../../src/http/client.h"
#include "../../src/limits.h"

/* ---- the scripted server ---- */

enum mode { M_KEEP, M_EOF_BODY, M_CHUNKED_RA, M_DROP_SECOND, M_SILENT, M_GARBAGE, M_CONTINUE,
            M_DATE, M_LOW_STATUS, M_CUT, M_DIGEST };

static enum mode mode;
static int accepted, requests;
static size_t request_bytes; /* what the server read, all told */
static uv_tcp_t listener;
static int port;

struct sconn {
    uv_tcp_t tcp;
    http_parser parser;
    int served;
};

static http_parser_settings ssettings;
/* M_DIGEST: the body's length and FNV-1a hash, answered as the body */
static uint64_t body_bytes, body_hash = 14695981039346656037ull;

static uint64_t fnv1a(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static int s_body(http_parser *p, const char *at, size_t n)
{
    (void)p;
    body_bytes += n;
    body_hash = fnv1a(body_hash, at, n);
    return 0;
}
static char sbuf[65536];

static void s_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    (void)n;
    b->base = sbuf;
    b->len = sizeof sbuf;
}

static void s_closed(uv_handle_t *h) { free(h->data); }

static void s_close(struct sconn *s)
{
    if (!uv_is_closing((uv_handle_t *)&s->tcp))
        uv_close((uv_handle_t *)&s->tcp, s_closed);
}

static void s_written(uv_write_t *w, int status)
{
    (void)status;
    free(w->data);
    free(w);
}

static void s_send(struct sconn *s, const char *data, size_t len)
{
    uv_write_t *w = malloc(sizeof *w);
    char *copy = malloc(len);
    memcpy(copy, data, len);
    w->data = copy;
    uv_buf_t b = uv_buf_init(copy, (unsigned)len);
    uv_write(w, (uv_stream_t *)&s->tcp, &b, 1, s_written);
}

static void s_shutdown_done(uv_shutdown_t *r, int status)
{
    (void)status;
    s_close(r->data);
    free(r);
}

static void s_send_and_close(struct sconn *s, const char *data)
{
    s_send(s, data, strlen(data));
    uv_shutdown_t *r = malloc(sizeof *r);
    r->data = s;
    uv_shutdown(r, (uv_stream_t *)&s->tcp, s_shutdown_done);
}

static int s_message_complete(http_parser *p)
{
    struct sconn *s = p->data;
    requests++;
    s->served++;
    char text[4096];
    switch (mode) {
    case M_KEEP:
        s_send(s, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 40);
        break;
    case M_EOF_BODY:
        s_send_and_close(s, "HTTP/1.0 200 OK\r\n\r\nhello, to the close");
        return 1;
    case M_CHUNKED_RA: {
        int n = snprintf(text, sizeof text,
                         "HTTP/1.1 503 Service Unavailable\r\nretry-AFTER: 7\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n7d0\r\n");
        memset(text + n, 'x', 2000);
        memcpy(text + n + 2000, "\r\n0\r\n\r\n", 7);
        s_send(s, text, (size_t)n + 2007);
        break;
    }
    case M_DROP_SECOND:
        if (s->served >= 2) {
            s_close(s);
            return 1;
        }
        s_send(s, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 38);
        break;
    case M_SILENT:
        break;
    case M_GARBAGE:
        s_send(s, "HTP/1.1 200 OK\r\n\r\n", 18);
        break;
    case M_DIGEST: {
        char digest[64];
        int dn = snprintf(digest, sizeof digest, "%llu %016llx", (unsigned long long)body_bytes,
                          (unsigned long long)body_hash);
        int n = snprintf(text, sizeof text, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s",
                         dn, digest);
        s_send(s, text, (size_t)n);
        body_bytes = 0;
        body_hash = 14695981039346656037ull;
        break;
    }
    case M_CUT: /* ten bytes promised, three sent */
        s_send_and_close(s, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
        return 1;
    case M_LOW_STATUS: /* three digits, as http-parser takes them, but no status */
        snprintf(text, sizeof text, "%s", "HTTP/1.1 042 Odd\r\nContent-Length: 0\r\n\r\n");
        s_send(s, text, strlen(text));
        break;
    case M_CONTINUE:
        snprintf(text, sizeof text, "%s",
                 "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
        s_send(s, text, strlen(text));
        break;
    case M_DATE: {
        time_t later = time(NULL) + 100;
        struct tm tm;
        gmtime_r(&later, &tm);
        char date[64];
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        snprintf(text, sizeof text,
                 "HTTP/1.1 429 Too Many Requests\r\nRetry-After: %s\r\nContent-Length: 4\r\n\r\nslow",
                 date);
        s_send(s, text, strlen(text));
        break;
    }
    }
    return 0;
}

static void s_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct sconn *s = st->data;
    if (n < 0) {
        s_close(s);
        return;
    }
    if (uv_is_closing((uv_handle_t *)&s->tcp))
        return;
    request_bytes += (size_t)n;
    http_parser_execute(&s->parser, &ssettings, b->base, (size_t)n);
}

static void s_connection(uv_stream_t *l, int status)
{
    assert_int_equal(status, 0);
    struct sconn *s = calloc(1, sizeof *s);
    uv_tcp_init(l->loop, &s->tcp);
    s->tcp.data = s;
    assert_int_equal(uv_accept(l, (uv_stream_t *)&s->tcp), 0);
    accepted++;
    http_parser_init(&s->parser, HTTP_REQUEST);
    s->parser.data = s;
    uv_read_start((uv_stream_t *)&s->tcp, s_alloc, s_read);
}

static void server_start(uv_loop_t *loop, enum mode m)
{
    mode = m;
    accepted = requests = 0;
    request_bytes = 0;
    body_bytes = 0;
    body_hash = 14695981039346656037ull;
    ssettings.on_message_complete = s_message_complete;
    ssettings.on_body = s_body;
    uv_tcp_init(loop, &listener);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&listener, 64, s_connection), 0);
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&listener, (struct sockaddr *)&ss, &len);
    port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, h == (uv_handle_t *)&listener ? NULL : s_closed);
}

/* ---- sends that fail on demand ----
 * uv_try_write and uv_write are wrapped (-Wl,--wrap in the Makefile). Only
 * the client's sends are touched: the scripted server's streams are told
 * apart by their data, which is the stream itself (struct sconn starts with
 * it); the client's point to its connection. */
enum send_fault {
    F_NONE,
    F_TRY_FAILS,      /* uv_try_write returns fault_arg */
    F_TRY_PARTIAL,    /* uv_try_write writes fault_arg bytes; uv_write the rest */
    F_WRITE_FAILS,    /* uv_try_write EAGAIN, then uv_write returns fault_arg */
    F_WRITE_CB_FAILS, /* uv_try_write EAGAIN, then uv_write's callback gets fault_arg */
};
static enum send_fault fault;
static int fault_at;  /* the client's send (1, 2, ...) it applies to */
static int fault_arg;
static int client_sends;

int __real_uv_try_write(uv_stream_t *s, const uv_buf_t bufs[], unsigned n);
int __real_uv_write(uv_write_t *req, uv_stream_t *s, const uv_buf_t bufs[], unsigned n,
                    uv_write_cb cb);

int __wrap_uv_try_write(uv_stream_t *s, const uv_buf_t bufs[], unsigned n)
{
    if (s->data == (void *)s || ++client_sends != fault_at)
        return __real_uv_try_write(s, bufs, n);
    switch (fault) {
    case F_TRY_FAILS:
        return fault_arg;
    case F_TRY_PARTIAL: {
        uv_buf_t part[4];
        unsigned np = 0;
        size_t left = (size_t)fault_arg;
        for (unsigned i = 0; i < n && i < 4 && left; i++) {
            size_t take = bufs[i].len < left ? bufs[i].len : left;
            part[np++] = uv_buf_init(bufs[i].base, (unsigned)take);
            left -= take;
        }
        return __real_uv_try_write(s, part, np);
    }
    case F_WRITE_FAILS:
    case F_WRITE_CB_FAILS:
        return UV_EAGAIN;
    case F_NONE:
        break;
    }
    return __real_uv_try_write(s, bufs, n);
}

static uv_write_cb client_write_cb;
static void failing_write_cb(uv_write_t *req, int status)
{
    (void)status;
    client_write_cb(req, fault_arg);
}

int __wrap_uv_write(uv_write_t *req, uv_stream_t *s, const uv_buf_t bufs[], unsigned n,
                    uv_write_cb cb)
{
    if (s->data != (void *)s && client_sends == fault_at) {
        if (fault == F_WRITE_FAILS)
            return fault_arg;
        if (fault == F_WRITE_CB_FAILS) {
            client_write_cb = cb;
            return __real_uv_write(req, s, bufs, n, failing_write_cb);
        }
    }
    return __real_uv_write(req, s, bufs, n, cb);
}

/* ---- the client side ---- */

struct outcome {
    int done, status;
    int64_t retry_after;
    char body[LIMIT_PEER_BODY_KEEP + 1];
    size_t body_len;
    char error[256];
};

static struct http_client *client;
static int remaining;
static int closed_calls;

static void on_closed(void *arg)
{
    (void)arg;
    closed_calls++;
}

static void finish_all(uv_loop_t *loop)
{
    http_client_close(client, on_closed, NULL);
    uv_walk(loop, close_any, NULL);
}

static void on_done(void *arg, const struct http_client_result *r)
{
    struct outcome *o = arg;
    o->done++;
    o->status = r->status;
    o->retry_after = r->retry_after_s;
    o->body_len = r->body_len;
    memcpy(o->body, r->body, r->body_len + 1);
    snprintf(o->error, sizeof o->error, "%s", r->error ? r->error : "");
}

/* what run_one sends: the first request's body, and the second's (n == 2) */
static const char *send_body = "{\"a\": 1}", *send_body2 = "{}";
static size_t send_len = 8, send_len2 = 2;

static struct outcome *chain_next;
static void on_done_then_send(void *arg, const struct http_client_result *r)
{
    on_done(arg, r);
    if (chain_next) { /* the next request starts from this callback: reuses the connection */
        struct outcome *n = chain_next;
        chain_next = NULL;
        http_client_send(client, "PUT", "", send_body2, send_len2, on_done, n);
    }
}

static void run_one(enum mode m, const char *host, uint64_t timeout_ms, struct outcome *o, int n)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    server_start(&loop, m);
    char url[128];
    snprintf(url, sizeof url, "http://%s:%d/api/exchange_result", host, port);
    struct http_client_config cfg = {url, 2000, timeout_ms, 4};
    client = http_client_new(&loop, &cfg);
    assert_non_null(client);
    memset(o, 0, sizeof *o * (size_t)n);
    closed_calls = 0;
    client_sends = 0;
    remaining = n;
    if (n == 2)
        chain_next = &o[1];
    http_client_send(client, "PUT", "X-Test: 1\r\n", send_body, send_len,
                     n == 2 ? on_done_then_send : on_done, &o[0]);
    for (;;) {
        uv_run(&loop, UV_RUN_ONCE);
        int done = 1;
        for (int i = 0; i < n; i++)
            done &= o[i].done == 1;
        if (done)
            break;
    }
    finish_all(&loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed_calls, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_parse_url(void **state)
{
    (void)state;
    char host[64], path[64];
    int p;
    assert_int_equal(http_client_parse_url("http://localhost:3001/api/x", host, sizeof host, &p,
                                           path, sizeof path), 0);
    assert_string_equal(host, "localhost");
    assert_int_equal(p, 3001);
    assert_string_equal(path, "/api/x");
    assert_int_equal(http_client_parse_url("HTTP://[::1]:8080", host, sizeof host, &p, path,
                                           sizeof path), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(p, 8080);
    assert_string_equal(path, "/");
    assert_int_equal(http_client_parse_url("http://example.org", host, sizeof host, &p, path,
                                           sizeof path), 0);
    assert_int_equal(p, 80);
    static const char *bad[] = {"https://x/", "http://u:p@x/", "http://x:0/", "http://x:65536/",
                                "http://x:12a/", "http://:80/", "http://[::1/", "http://x/?q",
                                "http://[::1]x/", "ftp://x/", "http://x:/"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(http_client_parse_url(bad[i], host, sizeof host, &p, path, sizeof path),
                         -1);
}

static void test_keep_alive_reuse(void **state)
{
    (void)state;
    struct outcome o[2];
    run_one(M_KEEP, "127.0.0.1", 5000, o, 2);
    assert_int_equal(o[0].status, 200);
    assert_string_equal(o[0].body, "{}");
    assert_string_equal(o[0].error, "");
    assert_int_equal(o[1].status, 200);
    assert_int_equal(requests, 2);
    assert_int_equal(accepted, 1); /* the second went over the first's connection */
}

/* A body larger than the socket takes at once: the rest is written as the
 * socket drains, all of it arrives, and the connection then serves the next. */
static void test_large_body_written_in_parts(void **state)
{
    (void)state;
    size_t len = 8u << 20;
    char *big = malloc(len);
    for (size_t i = 0; i < len; i++)
        big[i] = (char)('a' + (i * 7 + i / 4099) % 26);
    char want[2][64];
    snprintf(want[0], sizeof want[0], "%zu %016llx", len,
             (unsigned long long)fnv1a(14695981039346656037ull, big, len));
    snprintf(want[1], sizeof want[1], "%zu %016llx", len - 1,
             (unsigned long long)fnv1a(14695981039346656037ull, big + 1, len - 1));
    send_body = big;
    send_len = len;
    send_body2 = big + 1;
    send_len2 = len - 1;
    struct outcome o[2];
    run_one(M_DIGEST, "127.0.0.1", 20000, o, 2);
    send_body = "{\"a\": 1}", send_len = 8, send_body2 = "{}", send_len2 = 2;
    free(big);
    assert_string_equal(o[0].error, "");
    assert_int_equal(o[0].status, 200);
    assert_string_equal(o[0].body, want[0]);
    assert_int_equal(o[1].status, 200);
    assert_string_equal(o[1].body, want[1]);
    assert_int_equal(accepted, 1);
}

static void test_answer_to_the_close(void **state)
{
    (void)state;
    struct outcome o[2];
    run_one(M_EOF_BODY, "127.0.0.1", 5000, o, 2);
    assert_int_equal(o[0].status, 200);
    assert_string_equal(o[0].body, "hello, to the close");
    assert_int_equal(o[1].status, 200);
    assert_int_equal(accepted, 2); /* not kept: the server closed it */
}

static void test_chunked_truncated_retry_after(void **state)
{
    (void)state;
    struct outcome o;
    run_one(M_CHUNKED_RA, "127.0.0.1", 5000, &o, 1);
    assert_int_equal(o.status, 503);
    assert_int_equal(o.body_len, LIMIT_PEER_BODY_KEEP);
    assert_int_equal(o.body[0], 'x');
    assert_int_equal(o.retry_after, 7);
    struct outcome d;
    run_one(M_DATE, "127.0.0.1", 5000, &d, 1);
    assert_int_equal(d.status, 429);
    assert_string_equal(d.body, "slow");
    assert_true(d.retry_after >= 95 && d.retry_after <= 101);
}

static void test_interim_answer(void **state)
{
    (void)state;
    struct outcome o;
    run_one(M_CONTINUE, "127.0.0.1", 5000, &o, 1);
    assert_int_equal(o.status, 201);
    assert_string_equal(o.error, "");
}

static void test_dropped_reused_connection_is_retried(void **state)
{
    (void)state;
    struct outcome o[2];
    run_one(M_DROP_SECOND, "127.0.0.1", 5000, o, 2);
    assert_int_equal(o[0].status, 200);
    assert_int_equal(o[1].status, 200);
    assert_string_equal(o[1].error, "");
    assert_int_equal(accepted, 2); /* the retry opened a fresh connection */
    assert_int_equal(requests, 3);
}

static void test_failures(void **state)
{
    (void)state;
    struct outcome o;
    run_one(M_SILENT, "127.0.0.1", 300, &o, 1);
    assert_int_equal(o.status, 0);
    assert_non_null(strstr(o.error, "Operation timed out after"));
    run_one(M_GARBAGE, "127.0.0.1", 5000, &o, 1);
    assert_int_equal(o.status, 0);
    assert_non_null(strstr(o.error, "Malformed answer"));
    run_one(M_LOW_STATUS, "127.0.0.1", 5000, &o, 1); /* found by fuzz_client */
    assert_int_equal(o.status, 0);
    assert_string_equal(o.error, "Malformed answer: status 42");
    run_one(M_CUT, "127.0.0.1", 5000, &o, 1);
    assert_int_equal(o.status, 0);
    assert_string_equal(o.error, "Connection closed in the middle of the answer");
    /* by name, through uv_getaddrinfo; where localhost resolves to ::1 first, the refused
     * ::1 is skipped for 127.0.0.1 (here it resolves to 127.0.0.1 only) */
    run_one(M_KEEP, "localhost", 5000, &o, 1);
    assert_int_equal(o.status, 200);
}

static void set_fault(enum send_fault f, int at, int arg)
{
    fault = f;
    fault_at = at;
    fault_arg = arg;
}

/* A send that fails where it is made (uv_try_write), where the rest is
 * queued (uv_write) or when the queued rest is written (its callback): on a
 * fresh connection the request ends with "Send failure" and the server never
 * saw it; on a reused one it goes again on a fresh connection. A send written
 * partly at once has the rest written after, whichever part it stops in. */
static void test_send_failures(void **state)
{
    (void)state;
    struct outcome o[2];
    static const struct {
        enum send_fault f;
        int arg;
        const char *error;
    } fresh[] = {
        {F_TRY_FAILS, UV_EPIPE, "Send failure: broken pipe"},
        {F_WRITE_FAILS, UV_EPIPE, "Send failure: broken pipe"},
        {F_WRITE_CB_FAILS, UV_ECONNRESET, "Send failure: connection reset by peer"},
    };
    for (size_t i = 0; i < sizeof fresh / sizeof *fresh; i++) {
        set_fault(fresh[i].f, 1, fresh[i].arg);
        run_one(M_KEEP, "127.0.0.1", 5000, o, 1);
        assert_int_equal(o[0].done, 1);
        assert_int_equal(o[0].status, 0);
        assert_string_equal(o[0].error, fresh[i].error);
        assert_int_equal(client_sends, 1); /* not sent again */
        if (fresh[i].f != F_WRITE_CB_FAILS) /* that one's bytes did go out */
            assert_int_equal(requests, 0);
        /* the second send, on the first's connection: sent again on a new one */
        set_fault(fresh[i].f, 2, fresh[i].arg);
        run_one(M_KEEP, "127.0.0.1", 5000, o, 2);
        assert_int_equal(o[0].status, 200);
        assert_int_equal(o[1].status, 200);
        assert_string_equal(o[1].error, "");
        assert_int_equal(client_sends, 3);
        assert_int_equal(accepted, 2);
    }
    /* written partly at once: in the head (5 bytes), and in the body (all but 3) */
    char want[64];
    snprintf(want, sizeof want, "%zu %016llx", send_len,
             (unsigned long long)fnv1a(14695981039346656037ull, send_body, send_len));
    size_t total = 0;
    for (int k = 0; k < 2; k++) {
        set_fault(F_TRY_PARTIAL, 1, k == 0 ? 5 : (int)total - 3);
        run_one(M_DIGEST, "127.0.0.1", 5000, o, 1);
        assert_string_equal(o[0].error, "");
        assert_int_equal(o[0].status, 200);
        assert_string_equal(o[0].body, want);
        assert_int_equal(requests, 1);
        assert_true(k == 0 || request_bytes == total);
        total = request_bytes; /* the head and the body */
        assert_true(total > send_len + 3);
    }
    set_fault(F_NONE, 0, 0);
}

static void test_refused_unresolvable_and_close(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct http_client_config cfg = {"http://127.0.0.1:1/x", 2000, 5000, 4};
    struct http_client *refused = http_client_new(&loop, &cfg);
    cfg.url = "http://no-such-host.invalid:3001/x";
    struct http_client *unknown = http_client_new(&loop, &cfg);
    server_start(&loop, M_SILENT);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", port);
    cfg.url = url;
    struct http_client *silent = http_client_new(&loop, &cfg);
    cfg.url = "https://127.0.0.1/x";
    assert_null(http_client_new(&loop, &cfg)); /* not ours: libcurl's */
    struct outcome a, b, c;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    http_client_send(refused, "PUT", "", "{}", 2, on_done, &a);
    http_client_send(unknown, "PUT", "", "{}", 2, on_done, &b);
    http_client_send(silent, "PUT", "", "{}", 2, on_done, &c);
    while (!a.done || !b.done || requests < 1)
        uv_run(&loop, UV_RUN_ONCE);
    assert_non_null(strstr(a.error, "Failed to connect to 127.0.0.1 port 1"));
    assert_non_null(strstr(b.error, "Could not resolve host: no-such-host.invalid"));
    assert_int_equal(c.done, 0);
    assert_int_equal(http_client_active(silent), 1);
    closed_calls = 0;
    http_client_close(silent, on_closed, NULL); /* the running request ends at once */
    assert_int_equal(c.done, 1);
    assert_string_equal(c.error, "shutting down");
    http_client_close(refused, on_closed, NULL);
    http_client_close(unknown, on_closed, NULL);
    uv_walk(&loop, close_any, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed_calls, 3);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A listener whose accept queue is full (backlog 0, one connection queued and
 * never accepted): the kernel drops further SYNs, so a connect to it hangs
 * until the client gives up. Returns the port; fds[0..1] to close. */
static int stalled_listener(int fds[2])
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fds[0] >= 0);
    assert_int_equal(bind(fds[0], (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fds[0], 0), 0);
    assert_int_equal(getsockname(fds[0], (struct sockaddr *)&a, &al), 0);
    fds[1] = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fds[1], (struct sockaddr *)&a, sizeof a), 0); /* the one queued */
    return ntohs(a.sin_port);
}

/* Which timer ends a connect that never completes: the connect timeout
 * ("Connection timed out") when it is the shorter, else the request's own
 * ("Operation timed out ... with 0 bytes received"). */
static void connect_times_out(uint64_t connect_ms, uint64_t total_ms, const char *expect,
                              uint64_t at_least_ms)
{
    int fds[2];
    int p = stalled_listener(fds);
    uv_loop_t loop;
    uv_loop_init(&loop);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", p);
    struct http_client_config cfg = {url, connect_ms, total_ms, 4};
    struct http_client *c = http_client_new(&loop, &cfg);
    struct outcome o;
    memset(&o, 0, sizeof o);
    uint64_t t0 = uv_hrtime();
    http_client_send(c, "PUT", "", "{}", 2, on_done, &o);
    while (!o.done)
        uv_run(&loop, UV_RUN_ONCE);
    uint64_t took_ms = (uv_hrtime() - t0) / 1000000;
    closed_calls = 0;
    http_client_close(c, on_closed, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    close(fds[1]);
    close(fds[0]);
    assert_int_equal(closed_calls, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(o.status, 0);
    assert_non_null(strstr(o.error, expect));
    assert_true(took_ms >= at_least_ms && took_ms < 3000);
}

static void test_connect_timeouts(void **state)
{
    (void)state;
    connect_times_out(300, 5000, "Connection timed out after ", 290);
    connect_times_out(5000, 300, "Operation timed out after ", 290);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_url),
        cmocka_unit_test(test_keep_alive_reuse),
        cmocka_unit_test(test_large_body_written_in_parts),
        cmocka_unit_test(test_answer_to_the_close),
        cmocka_unit_test(test_chunked_truncated_retry_after),
        cmocka_unit_test(test_interim_answer),
        cmocka_unit_test(test_dropped_reused_connection_is_retried),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_send_failures),
        cmocka_unit_test(test_refused_unresolvable_and_close),
        cmocka_unit_test(test_connect_timeouts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
