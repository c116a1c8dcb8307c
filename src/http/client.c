#define _GNU_SOURCE /* strptime, timegm */
#include "client.h"

#include <http_parser.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../buf.h"
#include "../limits.h"
#include "../util.h"
#include "conn_timer.h"

/* An idle kept-alive connection is closed after this. */
#define IDLE_MS 30000
#define READ_BYTES (64 * 1024)

struct request {
    const char *method, *extra, *body;
    size_t len;
    http_client_cb cb;
    void *arg;
    uint64_t started; /* loop time; the request ends by started + timeout_ms */
    int retried;
};

enum cstate { C_RESOLVING, C_CONNECTING, C_BUSY, C_IDLE, C_CLOSING };

struct conn {
    struct http_client *c;
    struct conn *prev, *next;  /* every open connection */
    struct conn *idle_next;    /* the idle stack */
    enum cstate state;
    uv_tcp_t *tcp;             /* the socket of this attempt; freed when closed */
    uv_timer_t timer;
    int handles_open;          /* timer + tcp */
    struct conn_timer ct; /* the deadline (connect, total or idle), on timer */
    int gai_pending;
    uv_getaddrinfo_t gai;
    struct addrinfo *ai_list, *ai_cur; /* resolved addresses; ai_cur: the next to try */
    int tried_numeric;                 /* a numeric host: its one address was tried */
    char connect_error[128];
    uv_connect_t connect_req;
    uv_write_t wr;
    int writing;
    struct buf head;
    http_parser parser;
    struct request *req;
    int reused;
    size_t got;                /* answer bytes received for this request */
    int complete, keep_alive;
    int last_was_value, in_retry_after;
    char field[16];
    size_t field_len;
    char retry_after[64];
    size_t retry_after_len;
    char body[LIMIT_PEER_BODY_KEEP + 1];
    size_t body_len;
};

struct http_client {
    uv_loop_t *loop;
    char host[256];
    char hostport[300]; /* for Host: */
    char portstr[8];
    int port;
    char path[2048];
    struct sockaddr_storage numeric; /* the host as an address, when it is one */
    int is_numeric;
    uint64_t connect_timeout_ms, timeout_ms;
    int max_idle, nidle;
    struct conn *conns, *idle;
    size_t nconns;   /* allocated, not yet freed */
    size_t active;   /* requests not yet ended */
    int closing;
    void (*closed)(void *arg);
    void *closed_arg;
    http_parser_settings settings;
    char rbuf[READ_BYTES];
};

static void conn_close(struct conn *k);
static void start_request(struct conn *k);
static void on_timer(uv_timer_t *t);

static void dispatch(struct http_client *c, struct request *rq);

/* ---- URL ---- */

int http_client_parse_url(const char *url, char *host, size_t host_size, int *port, char *path,
                          size_t path_size)
{
    if (strncasecmp(url, "http://", 7) != 0)
        return -1;
    const char *a = url + 7;
    const char *end = a + strcspn(a, "/?#");
    if (*end == '?' || *end == '#' || memchr(a, '@', (size_t)(end - a)))
        return -1;
    const char *h = a, *hend, *colon = NULL;
    if (*a == '[') {
        h = a + 1;
        hend = memchr(h, ']', (size_t)(end - h));
        if (!hend)
            return -1;
        if (hend + 1 < end) {
            if (hend[1] != ':')
                return -1;
            colon = hend + 1;
        }
    } else {
        colon = memchr(a, ':', (size_t)(end - a));
        hend = colon ? colon : end;
    }
    if (hend == h || (size_t)(hend - h) >= host_size)
        return -1;
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = '\0';
    *port = 80;
    if (colon) {
        const char *p = colon + 1;
        if (p == end || end - p > 5)
            return -1;
        int v = 0;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9')
                return -1;
            v = v * 10 + (*p - '0');
        }
        if (v < 1 || v > 65535)
            return -1;
        *port = v;
    }
    const char *pa = *end ? end : "/";
    if (strlen(pa) >= path_size || strpbrk(pa, "?# \r\n"))
        return -1;
    snprintf(path, path_size, "%s", pa);
    return 0;
}

/* ---- ending requests ---- */

static void free_request(struct http_client *c, struct request *rq)
{
    free(rq);
    c->active--;
}

static void maybe_closed(struct http_client *c)
{
    if (!c->closing || c->nconns || !c->closed)
        return;
    void (*cb)(void *) = c->closed;
    void *arg = c->closed_arg;
    c->closed = NULL;
    free(c);
    cb(arg);
}

/* Ends k's request with an error, or sends it again on a new connection
 * when a reused one died before any answer byte. Closes k. */
static void conn_fail(struct conn *k, int may_retry, const char *fmt, ...)
{
    struct http_client *c = k->c;
    struct request *rq = k->req;
    k->req = NULL;
    conn_close(k);
    if (!rq)
        return;
    if (may_retry && k->reused && k->got == 0 && !rq->retried && !c->closing) {
        rq->retried = 1;
        dispatch(c, rq);
        return;
    }
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct http_client_result r = {0, "", 0, -1, msg};
    rq->cb(rq->arg, &r);
    free_request(c, rq);
}

static int64_t parse_retry_after(const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v >= '0' && *v <= '9') {
        int64_t s = 0;
        for (; *v >= '0' && *v <= '9'; v++)
            if ((s = s * 10 + (*v - '0')) > 100000000)
                return 100000000;
        return s;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *e = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!e)
        return -1;
    int64_t s = (int64_t)timegm(&tm) - (int64_t)time(NULL);
    return s > 0 ? s : 0;
}

static void finish_ok(struct conn *k)
{
    struct http_client *c = k->c;
    struct request *rq = k->req;
    k->req = NULL;
    char body[LIMIT_PEER_BODY_KEEP + 1];
    memcpy(body, k->body, k->body_len);
    body[k->body_len] = '\0';
    k->retry_after[k->retry_after_len] = '\0';
    struct http_client_result r = {(int)k->parser.status_code, body, k->body_len,
                                   k->retry_after_len ? parse_retry_after(k->retry_after) : -1,
                                   NULL};
    if (k->keep_alive && !k->writing && !c->closing && c->nidle < c->max_idle) {
        k->state = C_IDLE;
        k->idle_next = c->idle;
        c->idle = k;
        c->nidle++;
        conn_timer_set(&k->ct, &k->timer, on_timer, uv_now(c->loop) + IDLE_MS);
    } else {
        conn_close(k);
    }
    rq->cb(rq->arg, &r);
    free_request(c, rq);
}

/* ---- the answer ---- */

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct conn *k = p->data;
    if (k->last_was_value) {
        k->field_len = 0;
        k->last_was_value = 0;
    }
    size_t take = len < sizeof k->field - k->field_len ? len : sizeof k->field - k->field_len;
    memcpy(k->field + k->field_len, at, take);
    k->field_len += take;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct conn *k = p->data;
    if (!k->last_was_value) {
        k->last_was_value = 1;
        k->in_retry_after = k->field_len == 11 && !strncasecmp(k->field, "retry-after", 11);
        if (k->in_retry_after)
            k->retry_after_len = 0;
    }
    if (k->in_retry_after) {
        size_t room = sizeof k->retry_after - 1 - k->retry_after_len;
        size_t take = len < room ? len : room;
        memcpy(k->retry_after + k->retry_after_len, at, take);
        k->retry_after_len += take;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct conn *k = p->data;
    size_t room = LIMIT_PEER_BODY_KEEP - k->body_len;
    size_t take = len < room ? len : room;
    memcpy(k->body + k->body_len, at, take);
    k->body_len += take;
    return 0; /* the rest is read and dropped; the total timeout bounds it */
}

static void answer_reset(struct conn *k)
{
    k->body_len = 0;
    k->retry_after_len = 0;
    k->field_len = 0;
    k->last_was_value = 0;
    k->in_retry_after = 0;
}

/* http-parser takes any three digits; an answer's status is 100..999. */
static int on_headers_complete(http_parser *p)
{
    return p->status_code < 100 ? -1 : 0;
}

static int on_message_complete(http_parser *p)
{
    struct conn *k = p->data;
    if (p->status_code >= 100 && p->status_code < 200 && p->status_code != 101) {
        answer_reset(k); /* an interim answer: the real one follows */
        return 0;
    }
    k->complete = 1;
    k->keep_alive = http_should_keep_alive(p);
    http_parser_pause(p, 1); /* nothing after the answer belongs to this request */
    return 0;
}

/* ---- reading ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    struct conn *k = h->data;
    b->base = k->c->rbuf;
    b->len = sizeof k->c->rbuf;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *k = s->data;
    if (nread == 0 || k->state == C_CLOSING)
        return;
    if (k->state == C_IDLE) { /* the server closed it, or spoke out of turn */
        conn_close(k);
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF) {
            http_parser_execute(&k->parser, &k->c->settings, NULL, 0); /* body up to the close */
            if (k->complete) {
                k->keep_alive = 0;
                finish_ok(k);
                return;
            }
            conn_fail(k, 1, k->got ? "Connection closed in the middle of the answer"
                                   : "Empty reply from server");
        } else {
            conn_fail(k, 1, "Recv failure: %s", uv_strerror((int)nread));
        }
        return;
    }
    k->got += (size_t)nread;
    size_t used = http_parser_execute(&k->parser, &k->c->settings, b->base, (size_t)nread);
    if (k->complete) {
        if (used < (size_t)nread)
            k->keep_alive = 0; /* bytes past the answer: do not trust the connection */
        finish_ok(k);
        return;
    }
    enum http_errno e = HTTP_PARSER_ERRNO(&k->parser);
    if (e == HPE_CB_headers_complete)
        conn_fail(k, 0, "Malformed answer: status %u", k->parser.status_code);
    else if (e != HPE_OK)
        conn_fail(k, 0, "Malformed answer: %s", http_errno_description(e));
}

/* ---- writing ---- */

static void on_write(uv_write_t *wr, int status)
{
    struct conn *k = wr->data;
    k->writing = 0;
    if (status == UV_ECANCELED || k->state == C_CLOSING || !k->req)
        return;
    if (status < 0)
        conn_fail(k, 1, "Send failure: %s", uv_strerror(status));
}

static uint64_t deadline(const struct conn *k)
{
    return k->req->started + k->c->timeout_ms;
}

static void arm_for(struct conn *k)
{
    uint64_t end = deadline(k);
    if (k->state == C_RESOLVING || k->state == C_CONNECTING) {
        uint64_t ct = k->req->started + k->c->connect_timeout_ms;
        if (ct < end)
            end = ct;
    }
    conn_timer_set(&k->ct, &k->timer, on_timer, end);
}

static void start_request(struct conn *k)
{
    struct http_client *c = k->c;
    struct request *rq = k->req;
    k->state = C_BUSY;
    k->got = 0;
    k->complete = 0;
    k->keep_alive = 0;
    answer_reset(k);
    http_parser_init(&k->parser, HTTP_RESPONSE);
    k->parser.data = k;
    buf_reset(&k->head);
    buf_append_str(&k->head, rq->method);
    buf_append(&k->head, " ", 1);
    buf_append_str(&k->head, c->path);
    buf_append_str(&k->head, " HTTP/1.1\r\nHost: ");
    buf_append_str(&k->head, c->hostport);
    buf_append_str(&k->head, "\r\nContent-Type: application/json\r\nContent-Length: ");
    buf_append_u64(&k->head, rq->len);
    buf_append(&k->head, "\r\n", 2);
    buf_append_str(&k->head, rq->extra);
    buf_append(&k->head, "\r\n", 2);
    arm_for(k);
    uv_read_start((uv_stream_t *)k->tcp, on_alloc, on_read);
    uv_buf_t bufs[2] = {uv_buf_init(k->head.data, (unsigned)k->head.len),
                        uv_buf_init((char *)rq->body, (unsigned)rq->len)};
    size_t total = k->head.len + rq->len;
    int w = uv_try_write((uv_stream_t *)k->tcp, bufs, 2);
    if (w == (int)total)
        return;
    if (w < 0 && w != UV_EAGAIN) {
        conn_fail(k, 1, "Send failure: %s", uv_strerror(w));
        return;
    }
    size_t done = w > 0 ? (size_t)w : 0;
    uv_buf_t rest[2];
    unsigned nb = 0;
    if (done < k->head.len) {
        rest[nb++] = uv_buf_init(k->head.data + done, (unsigned)(k->head.len - done));
        rest[nb++] = bufs[1];
    } else {
        done -= k->head.len;
        rest[nb++] = uv_buf_init((char *)rq->body + done, (unsigned)(rq->len - done));
    }
    k->wr.data = k;
    k->writing = 1;
    int rc = uv_write(&k->wr, (uv_stream_t *)k->tcp, rest, nb, on_write);
    if (rc < 0) {
        k->writing = 0;
        conn_fail(k, 1, "Send failure: %s", uv_strerror(rc));
    }
}

/* ---- connecting ---- */

/* A closed connection is freed once its handles are closed and no name
 * lookup of it is on its way. */
static void conn_maybe_free(struct conn *k)
{
    if (k->state != C_CLOSING || k->handles_open || k->gai_pending)
        return;
    struct http_client *c = k->c;
    if (k->ai_list)
        uv_freeaddrinfo(k->ai_list);
    buf_free(&k->head);
    free(k);
    c->nconns--;
    maybe_closed(c);
}

static void on_tcp_closed(uv_handle_t *h)
{
    struct conn *k = h->data;
    free(h);
    k->handles_open--;
    conn_maybe_free(k);
}

static void drop_tcp(struct conn *k)
{
    if (!k->tcp)
        return;
    uv_close((uv_handle_t *)k->tcp, on_tcp_closed);
    k->tcp = NULL;
}

static void try_connect(struct conn *k);

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *k = req->data;
    if (status == UV_ECANCELED || k->state == C_CLOSING)
        return;
    if (status < 0) {
        snprintf(k->connect_error, sizeof k->connect_error, "%s", uv_strerror(status));
        drop_tcp(k);
        try_connect(k);
        return;
    }
    start_request(k);
}

/* The next address to try: a numeric host's one, or the next resolved. */
static const struct sockaddr *next_address(struct conn *k)
{
    if (k->c->is_numeric) {
        if (k->tried_numeric)
            return NULL;
        k->tried_numeric = 1;
        return (const struct sockaddr *)&k->c->numeric;
    }
    if (!k->ai_cur)
        return NULL;
    const struct sockaddr *sa = k->ai_cur->ai_addr;
    k->ai_cur = k->ai_cur->ai_next;
    return sa;
}

/* Connects to the next address; when none is left, fails with the last
 * address's error. */
static void try_connect(struct conn *k)
{
    struct http_client *c = k->c;
    for (;;) {
        const struct sockaddr *sa = next_address(k);
        if (!sa) {
            conn_fail(k, 0, "Failed to connect to %s port %d: %s", c->host, c->port,
                      k->connect_error[0] ? k->connect_error : "no address");
            return;
        }
        k->tcp = xmalloc(sizeof *k->tcp);
        uv_tcp_init(c->loop, k->tcp);
        k->tcp->data = k;
        k->handles_open++;
        uv_tcp_nodelay(k->tcp, 1);
        k->connect_req.data = k;
        k->state = C_CONNECTING;
        int rc = uv_tcp_connect(&k->connect_req, k->tcp, sa, on_connect);
        if (rc == 0)
            return;
        snprintf(k->connect_error, sizeof k->connect_error, "%s", uv_strerror(rc));
        drop_tcp(k);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct conn *k = req->data;
    k->gai_pending = 0;
    if (k->state == C_CLOSING) {
        if (res)
            uv_freeaddrinfo(res);
        conn_maybe_free(k);
        return;
    }
    if (status < 0) {
        conn_fail(k, 0, "Could not resolve host: %s (%s)", k->c->host, uv_strerror(status));
        return;
    }
    k->ai_list = k->ai_cur = res;
    try_connect(k);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *k = t->data;
    if (!conn_timer_due(&k->ct, t, on_timer))
        return;
    if (!k->req) {
        conn_close(k);
        return;
    }
    uint64_t took = uv_now(k->c->loop) - k->req->started;
    if (k->state == C_RESOLVING || k->state == C_CONNECTING) {
        if (uv_now(k->c->loop) >= deadline(k))
            conn_fail(k, 0, "Operation timed out after %" PRIu64 " milliseconds with 0 bytes received",
                      took);
        else
            conn_fail(k, 0, "Connection timed out after %" PRIu64 " milliseconds", took);
        return;
    }
    conn_fail(k, 0, "Operation timed out after %" PRIu64 " milliseconds with %zu bytes received",
              took, k->got);
}

static struct conn *conn_new(struct http_client *c)
{
    struct conn *k = xcalloc(1, sizeof *k);
    k->c = c;
    buf_init(&k->head);
    uv_timer_init(c->loop, &k->timer);
    k->timer.data = k;
    k->handles_open = 1;
    k->next = c->conns;
    if (c->conns)
        c->conns->prev = k;
    c->conns = k;
    c->nconns++;
    return k;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct conn *k = h->data;
    k->handles_open--;
    conn_maybe_free(k);
}

static void conn_close(struct conn *k)
{
    struct http_client *c = k->c;
    if (k->state == C_CLOSING)
        return;
    if (k->state == C_IDLE) {
        for (struct conn **pp = &c->idle; *pp; pp = &(*pp)->idle_next)
            if (*pp == k) {
                *pp = k->idle_next;
                c->nidle--;
                break;
            }
    }
    k->state = C_CLOSING;
    if (k->prev)
        k->prev->next = k->next;
    else
        c->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    k->prev = k->next = NULL;
    if (k->gai_pending)
        uv_cancel((uv_req_t *)&k->gai);
    drop_tcp(k);
    uv_close((uv_handle_t *)&k->timer, on_timer_closed);
}

/* ---- requests ---- */

static void dispatch(struct http_client *c, struct request *rq)
{
    struct conn *k = c->idle;
    if (k) {
        c->idle = k->idle_next;
        c->nidle--;
        k->req = rq;
        k->reused = 1;
        start_request(k);
        return;
    }
    k = conn_new(c);
    k->req = rq;
    k->reused = 0;
    if (c->is_numeric) {
        k->state = C_CONNECTING;
        arm_for(k);
        try_connect(k);
        return;
    }
    k->state = C_RESOLVING;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    k->gai.data = k;
    k->gai_pending = 1;
    arm_for(k);
    int rc = uv_getaddrinfo(c->loop, &k->gai, on_resolved, c->host, c->portstr, &hints);
    if (rc < 0) {
        k->gai_pending = 0;
        conn_fail(k, 0, "Could not resolve host: %s (%s)", c->host, uv_strerror(rc));
    }
}

void http_client_send(struct http_client *c, const char *method, const char *extra,
                      const char *body, size_t len, http_client_cb cb, void *arg)
{
    struct request *rq = xcalloc(1, sizeof *rq);
    rq->method = method;
    rq->extra = extra;
    rq->body = body;
    rq->len = len;
    rq->cb = cb;
    rq->arg = arg;
    rq->started = uv_now(c->loop);
    c->active++;
    if (c->closing) {
        struct http_client_result r = {0, "", 0, -1, "shutting down"};
        cb(arg, &r);
        free_request(c, rq);
        return;
    }
    dispatch(c, rq);
}

size_t http_client_active(const struct http_client *c)
{
    return c->active;
}

struct http_client *http_client_new(uv_loop_t *loop, const struct http_client_config *cfg)
{
    struct http_client *c = xcalloc(1, sizeof *c);
    if (http_client_parse_url(cfg->url, c->host, sizeof c->host, &c->port, c->path,
                              sizeof c->path) != 0) {
        free(c);
        return NULL;
    }
    c->loop = loop;
    snprintf(c->portstr, sizeof c->portstr, "%d", c->port);
    int v6 = strchr(c->host, ':') != NULL;
    if (c->port == 80)
        snprintf(c->hostport, sizeof c->hostport, v6 ? "[%s]" : "%s", c->host);
    else
        snprintf(c->hostport, sizeof c->hostport, v6 ? "[%s]:%d" : "%s:%d", c->host, c->port);
    if (uv_ip4_addr(c->host, c->port, (struct sockaddr_in *)&c->numeric) == 0 ||
        uv_ip6_addr(c->host, c->port, (struct sockaddr_in6 *)&c->numeric) == 0)
        c->is_numeric = 1;
    c->connect_timeout_ms = cfg->connect_timeout_ms;
    c->timeout_ms = cfg->timeout_ms;
    c->max_idle = cfg->max_idle > 0 ? cfg->max_idle : 1;
    c->settings.on_header_field = on_header_field;
    c->settings.on_header_value = on_header_value;
    c->settings.on_body = on_body;
    c->settings.on_headers_complete = on_headers_complete;
    c->settings.on_message_complete = on_message_complete;
    return c;
}

void http_client_close(struct http_client *c, void (*closed)(void *arg), void *arg)
{
    c->closing = 1;
    c->closed = closed;
    c->closed_arg = arg;
    while (c->conns) {
        struct conn *k = c->conns;
        if (k->req)
            conn_fail(k, 0, "shutting down");
        else
            conn_close(k);
    }
    maybe_closed(c);
}
