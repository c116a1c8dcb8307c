#define _GNU_SOURCE /* accept4 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <http_parser.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../buf.h"
#include "../jsonw.h"
#include "../limits.h"
#include "../util.h"
#include "conn_timer.h"

/* Bytes read per read callback; one buffer per server, reused (reads are
 * consumed synchronously, leftovers are copied). */
#define READ_BUF_BYTES (64 * 1024)
/* Lingering close: how long and how much we drain after an error answer. */
#define LINGER_MS 2000
#define LINGER_BYTES (256 * 1024)
/* A connection keeps its body buffer for the next request up to this size
 * (the seed's body is ~170 bytes): one allocation less per request. */
#define BODY_KEEP_BYTES 1024
/* Connections accepted per readable event of the listener before the loop
 * serves its other events (the rest wait in the kernel's backlog). */
#define ACCEPT_BATCH 64
/* Out of file descriptors (or another accept failure): accepting pauses this
 * long; connections wait in the backlog meanwhile. At most one warning per
 * ACCEPT_WARN_MS per server. */
#define ACCEPT_RETRY_MS 100
#define ACCEPT_WARN_MS 1000

enum rstate { RS_IDLE, RS_HEADERS, RS_BODY };
enum hdr { H_OTHER, H_CONTENT_TYPE, H_CONTENT_LENGTH, H_TRANSFER_ENCODING, H_EXPECT,
           H_AUTHORIZATION };

/* One answer in a connection's ordered queue. Owned by the connection while
 * queued; by the handler's caller until http_reply if the connection goes
 * away (conn == NULL: orphan); by the write request while being written. */
struct http_exchange {
    struct http_exchange *next;
    struct http_conn *conn;
    uv_write_t wr;
    uv_buf_t out;             /* the answer: in inline_out when it fits, else on the heap */
    unsigned done : 1;        /* answer built */
    unsigned close_after : 1; /* close the connection once written */
    unsigned keep_alive : 1;  /* the request allows keep-alive */
    unsigned linger : 1;      /* error answer: drain before closing */
    char inline_out[256];     /* room for the usual answer (one allocation less); last:
                               * exchange_push clears only what is before it */
};

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    http_parser parser;
    struct http_server *srv;
    struct http_conn *prev, *next;
    int handles_open; /* freed when both tcp and timer are closed */
    struct conn_timer ct; /* the deadline (headers, body or idle), on timer */

    /* the request being parsed */
    enum rstate rstate;
    struct buf url;
    size_t header_bytes;
    unsigned header_count;
    enum hdr cur;
    int in_value; /* the last header callback was a value */
    char field[24];
    size_t field_len;
    int field_too_long;
    char content_type[LIMIT_HEADER_VALUE_KEEP + 1];
    char transfer_encoding[64];
    char expect[64];
    char authorization[LIMIT_HEADER_VALUE_KEEP + 1];
    size_t value_len;  /* bytes of the current kept value */
    int content_length_count;
    int transfer_encoding_count;
    struct buf body;
    int error_status;    /* set by a callback that stopped the parser */
    const char *error_detail;

    /* answers in request order */
    struct http_exchange *head, *tail;
    unsigned outstanding; /* requests dispatched and not yet answered */
    unsigned writing;     /* writes submitted and not yet completed */

    const char *feed_start; /* the bytes being parsed now (for look-behind) */

    /* reading paused with unparsed bytes */
    char *leftover;
    size_t leftover_len;

    unsigned reading : 1;
    unsigned paused : 1;  /* parser paused by pipeline depth */
    unsigned eof : 1;     /* client sent FIN */
    unsigned closing : 1; /* uv_close called */
    unsigned finishing : 1; /* no more requests: close once answers are written */
    unsigned lingering : 1;
    size_t linger_bytes;
};

struct http_server {
    uv_loop_t *loop;
    int listen_fd;
    uv_poll_t listener;          /* readable: connections wait on listen_fd */
    uv_timer_t accept_retry;     /* after an accept failure */
    uv_async_t handed;           /* in a group: connections handed here, a slot freed */
    uv_idle_t accept_now;        /* in a group: a slot this loop freed and waited for */
    int handles_open;            /* listener, accept_retry (and handed, accept_now), until closed */
    struct http_server_config cfg;
    http_parser_settings settings;
    struct http_conn *conns;
    unsigned nconns;
    int accept_paused;           /* at the cap: until one closes (a group: its wake) */
    int accept_failing;          /* an accept failed: until accept_retry fires */
    uint64_t accept_warned_ms;   /* when the last accept failure was logged */
    uint64_t accept_unlogged;    /* accept failures since then, not logged */
    _Atomic int accept_fault;    /* test seam: every accept fails with this errno */
    int stopping;
    void (*drained_cb)(void *arg);
    void *drained_arg;
    char rbuf[READ_BUF_BYTES];
    time_t date_time;
    char date[64]; /* "date: ...\r\n" */
};

static void conn_close(struct http_conn *c);
static void conn_flush(struct http_conn *c);
static void conn_resume(struct http_conn *c);
static void conn_feed(struct http_conn *c, const char *data, size_t n);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);
static void server_maybe_drained(struct http_server *srv);

#define STAT_ADD(field) atomic_fetch_add_explicit(&srv->cfg.counters->field, 1, memory_order_relaxed)

const char *http_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* ---- listening socket ---- */

/* A TCP socket bound to ai with SO_REUSEADDR (and SO_REUSEPORT when shared);
 * the fd or a negative errno. */
static int bound_socket(const struct addrinfo *ai, int shared)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if ((shared && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

const char *http_listen_strerror(int err)
{
    if (err == HTTP_LISTEN_E_NOHOST)
        return "not an IP address, nor a host name that resolves";
    return strerror(-err);
}

int http_listen_socket(const char *host, int port, int first, int backlog, int *bound_port)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0)
        return rc == EAI_SYSTEM ? -errno
               : rc == EAI_NONAME || rc == EAI_AGAIN || rc == EAI_FAIL ? HTTP_LISTEN_E_NOHOST
                                                                      : -EADDRNOTAVAIL;
    int fd = 0;
    if (first && port != 0) {
        /* a socket without SO_REUSEPORT cannot be bound where anything listens,
         * even with it: this finds another process on the port, which the
         * workers' own sockets would otherwise share unseen */
        fd = bound_socket(res, 0);
        if (fd >= 0)
            close(fd);
    }
    if (fd >= 0)
        fd = bound_socket(res, 1);
    if (fd >= 0 && listen(fd, backlog) != 0) {
        rc = -errno;
        close(fd);
        fd = rc;
    }
    if (fd < 0) {
        freeaddrinfo(res);
        return fd;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (bound_port && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            *bound_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else
            *bound_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return fd;
}

/* ---- answers ---- */

static const char *date_header(struct http_server *srv)
{
    time_t now = time(NULL);
    if (now != srv->date_time) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(srv->date, sizeof srv->date, "date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        srv->date_time = now;
    }
    return srv->date;
}

static struct http_exchange *exchange_push(struct http_conn *c)
{
    struct http_exchange *x = xmalloc(sizeof *x);
    memset(x, 0, offsetof(struct http_exchange, inline_out));
    x->conn = c;
    if (c->tail)
        c->tail->next = x;
    else
        c->head = x;
    c->tail = x;
    return x;
}

static void exchange_free(struct http_exchange *x)
{
    if (x->out.base != x->inline_out)
        free(x->out.base);
    free(x);
}

int http_exchange_orphaned(const struct http_exchange *x)
{
    return x->conn == NULL;
}

/* Builds the answer bytes: status line, headers, body, in one buffer. */
static void exchange_build(struct http_exchange *x, struct http_server *srv, int status,
                           const char *body, size_t len, const char *extra, int close)
{
    struct buf b; /* its bytes become x->out's: not freed here */
    buf_init_on(&b, x->inline_out, sizeof x->inline_out);
    if (status == 100) {
        buf_append_str(&b, "HTTP/1.1 100 Continue\r\n\r\n");
        x->out.base = b.data;
        x->out.len = b.len;
        x->done = 1;
        return;
    }
    buf_reserve(&b, 160 + len + (extra ? strlen(extra) : 0));
    buf_append_str(&b, "HTTP/1.1 ");
    buf_append_u64(&b, (uint64_t)status);
    buf_append(&b, " ", 1);
    buf_append_str(&b, http_status_text(status));
    buf_append_str(&b, "\r\nserver: exchanged\r\n");
    buf_append_str(&b, date_header(srv));
    buf_append_str(&b, "content-type: application/json\r\ncontent-length: ");
    buf_append_u64(&b, len);
    buf_append(&b, "\r\n", 2);
    if (close)
        buf_append_str(&b, "connection: close\r\n");
    else if (x->keep_alive && x->conn && x->conn->parser.http_minor == 0)
        buf_append_str(&b, "connection: keep-alive\r\n");
    if (extra)
        buf_append_str(&b, extra);
    buf_append(&b, "\r\n", 2);
    buf_append(&b, body, len);
    x->out.base = b.data;
    x->out.len = b.len;
    x->done = 1;
    if (status >= 500)
        STAT_ADD(responses_5xx);
    else if (status >= 400)
        STAT_ADD(responses_4xx);
}

void http_reply(struct http_exchange *x, int status, const char *body, size_t len,
                const char *extra_headers)
{
    struct http_conn *c = x->conn;
    if (!c) { /* the client left; nobody to answer */
        exchange_free(x);
        return;
    }
    struct http_server *srv = c->srv;
    if (c->outstanding)
        c->outstanding--;
    if (!x->keep_alive || srv->stopping)
        x->close_after = 1;
    exchange_build(x, srv, status, body, len, extra_headers, x->close_after);
    conn_flush(c);
    conn_resume(c);
}

void http_reply_detail(struct http_exchange *x, int status, const char *detail,
                       const char *extra_headers)
{
    struct buf b;
    buf_init(&b);
    buf_append_str(&b, "{\"detail\":");
    jsonw_string(&b, detail, strlen(detail), 0);
    buf_append(&b, "}", 1);
    http_reply(x, status, b.data, b.len, extra_headers);
    buf_free(&b);
}

/* Queues an error answer that ends the connection (after a lingering close
 * unless the request was fully read). */
static void conn_fail(struct http_conn *c, int status, const char *detail, const char *extra)
{
    struct http_exchange *x = exchange_push(c);
    x->close_after = 1;
    x->linger = 1;
    struct buf b;
    buf_init(&b);
    buf_append_str(&b, "{\"detail\":");
    jsonw_string(&b, detail, strlen(detail), 0);
    buf_append(&b, "}", 1);
    exchange_build(x, c->srv, status, b.data, b.len, extra, 1);
    buf_free(&b);
    c->finishing = 1;
    c->rstate = RS_IDLE;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    conn_timer_stop(&c->ct, &c->timer);
    conn_flush(c);
}

/* ---- closing ---- */

/* Empties the answer queue: built answers are freed, pending ones become
 * orphans (their handler's http_reply frees them). */
static void queue_drop(struct http_conn *c)
{
    struct http_exchange *x = c->head;
    while (x) {
        struct http_exchange *next = x->next;
        if (x->done) {
            exchange_free(x);
        } else {
            x->conn = NULL;
            x->next = NULL;
        }
        x = next;
    }
    c->head = c->tail = NULL;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct http_conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    buf_free(&c->url);
    buf_free(&c->body);
    free(c->leftover);
    free(c);
}

static void accept_resume(struct http_server *srv);
static void on_accept_retry(uv_timer_t *t);
static void on_listener_readable(uv_poll_t *p, int status, int events);
static void on_accept_now(uv_idle_t *h);

static void conn_close(struct http_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    struct http_server *srv = c->srv;
    queue_drop(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    atomic_fetch_sub_explicit(&srv->cfg.counters->connections_open, 1, memory_order_relaxed);
    /* the slot freed resumes accepting here; in a group only when this server
     * waited and takes the slot's wake itself (else the group wakes whoever waits) */
    int resume = srv->cfg.group
                     ? http_group_release(srv->cfg.group, srv->cfg.group_index, !srv->stopping)
                     : srv->accept_paused && !srv->stopping;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (resume) {
        srv->accept_paused = 0;
        accept_resume(srv);
        if (srv->cfg.group) /* accepts next turn, or passes the slot on (group.h) */
            uv_idle_start(&srv->accept_now, on_accept_now);
    }
    server_maybe_drained(srv);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);

static void on_linger_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct http_conn *c = req->data;
    free(req);
    if (status < 0 || c->closing) {
        conn_close(c);
        return;
    }
    /* Drain what the client still sends so that closing does not reset the
     * connection before it has read our answer. */
    c->lingering = 1;
    c->linger_bytes = 0;
    conn_timer_stop(&c->ct, &c->timer);
    uv_timer_start(&c->timer, on_linger_timeout, LINGER_MS, 0);
    if (!c->reading && !c->eof) {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        c->reading = 1;
    }
}

static void conn_linger(struct http_conn *c)
{
    if (c->closing)
        return;
    if (c->eof) {
        conn_close(c);
        return;
    }
    uv_shutdown_t *req = xmalloc(sizeof *req);
    req->data = c;
    if (uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(req);
        conn_close(c);
    }
}

/* ---- writing ---- */

static void arm_idle(struct http_conn *c);

static void on_write(uv_write_t *wr, int status)
{
    struct http_exchange *x = wr->data;
    struct http_conn *c = x->conn;
    int close_after = x->close_after, linger = x->linger;
    exchange_free(x);
    if (!c)
        return;
    c->writing--;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (close_after) {
        if (linger)
            conn_linger(c);
        else
            conn_close(c);
        return;
    }
    if (c->finishing && !c->head && !c->writing && !c->outstanding) {
        conn_close(c);
        return;
    }
    conn_resume(c);
    arm_idle(c);
}

/* Writes every built answer at the head of the queue, in order. An answer
 * that the socket takes at once is written with one write() and done with
 * here: libuv's uv_write would also re-arm the descriptor in epoll (one
 * epoll_ctl per answer). The rest goes through uv_write. */
static void conn_flush(struct http_conn *c)
{
    int wrote_now = 0;
    while (!c->closing && c->head && c->head->done) {
        struct http_exchange *x = c->head;
        c->head = x->next;
        if (!c->head)
            c->tail = NULL;
        x->next = NULL;
        uv_buf_t rest = x->out;
        if (!x->close_after && !c->finishing) {
            int n = uv_try_write((uv_stream_t *)&c->tcp, &x->out, 1);
            if (n == (int)x->out.len) {
                exchange_free(x);
                wrote_now = 1;
                continue;
            }
            if (n > 0)
                rest = uv_buf_init(x->out.base + n, (unsigned)(x->out.len - (size_t)n));
            else if (n != UV_EAGAIN && n != UV_ENOSYS) {
                exchange_free(x);
                conn_close(c);
                return;
            }
        }
        x->wr.data = x;
        c->writing++;
        int rc = uv_write(&x->wr, (uv_stream_t *)&c->tcp, &rest, 1, on_write);
        if (rc < 0) {
            c->writing--;
            exchange_free(x);
            conn_close(c);
            return;
        }
        if (x->close_after) {
            queue_drop(c); /* nothing after this answer is ever written */
            c->finishing = 1;
            if (c->reading) {
                uv_read_stop((uv_stream_t *)&c->tcp);
                c->reading = 0;
            }
            return;
        }
    }
    if (wrote_now && !c->closing)
        arm_idle(c);
}

/* ---- reading and parsing ---- */

/* Empties the body; a large buffer goes back to the heap. */
static void body_done(struct http_conn *c)
{
    if (c->body.cap > BODY_KEEP_BYTES)
        buf_free(&c->body);
    else
        buf_reset(&c->body);
}

static void reset_request(struct http_conn *c)
{
    buf_reset(&c->url);
    body_done(c);
    c->header_bytes = 0;
    c->header_count = 0;
    c->cur = H_OTHER;
    c->in_value = 0;
    c->field_len = 0;
    c->field_too_long = 0;
    c->content_type[0] = c->transfer_encoding[0] = c->expect[0] = c->authorization[0] = '\0';
    c->value_len = 0;
    c->content_length_count = 0;
    c->transfer_encoding_count = 0;
    c->error_status = 0;
    c->error_detail = NULL;
}

static int stop_parser(struct http_conn *c, int status, const char *detail)
{
    c->error_status = status;
    c->error_detail = detail;
    return -1;
}

static void on_request_timeout(struct http_conn *c)
{
    if (c->rstate == RS_IDLE) { /* idle keep-alive connection */
        conn_close(c);
        return;
    }
    conn_fail(c, 408, "Request timeout", NULL);
}

/* The connection's deadline, moved lazily (conn_timer.h). */
static void on_deadline(uv_timer_t *t)
{
    struct http_conn *c = t->data;
    if (conn_timer_due(&c->ct, t, on_deadline))
        on_request_timeout(c);
}

static void set_deadline(struct http_conn *c, uint64_t ms)
{
    conn_timer_set(&c->ct, &c->timer, on_deadline, uv_now(c->srv->loop) + ms);
}

static void arm_idle(struct http_conn *c)
{
    if (c->closing || c->lingering || c->rstate != RS_IDLE || c->head || c->outstanding ||
        c->writing)
        return;
    if (c->finishing || c->eof) {
        conn_close(c);
        return;
    }
    set_deadline(c, c->srv->cfg.idle_timeout_ms);
}

static int on_message_begin(http_parser *p)
{
    struct http_conn *c = p->data;
    reset_request(c);
    c->rstate = RS_HEADERS;
    set_deadline(c, c->srv->cfg.header_timeout_ms);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (c->url.len + len > LIMIT_URL_BYTES)
        return stop_parser(c, 414, "URL too long");
    c->header_bytes += len;
    buf_append(&c->url, at, len);
    return 0;
}

static int header_bytes_check(struct http_conn *c, size_t len)
{
    c->header_bytes += len;
    if (c->header_bytes > LIMIT_HEADER_BYTES)
        return stop_parser(c, 431, "Request header fields too large");
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (header_bytes_check(c, len))
        return -1;
    if (c->in_value) { /* a new field begins */
        c->in_value = 0;
        c->field_len = 0;
        c->field_too_long = 0;
        c->cur = H_OTHER;
    }
    if (c->field_too_long || c->field_len + len >= sizeof c->field) {
        c->field_too_long = 1;
        return 0;
    }
    memcpy(c->field + c->field_len, at, len);
    c->field_len += len;
    return 0;
}

static char *kept_value(struct http_conn *c, size_t *cap)
{
    switch (c->cur) {
    case H_CONTENT_TYPE: *cap = sizeof c->content_type; return c->content_type;
    case H_TRANSFER_ENCODING: *cap = sizeof c->transfer_encoding; return c->transfer_encoding;
    case H_EXPECT: *cap = sizeof c->expect; return c->expect;
    case H_AUTHORIZATION: *cap = sizeof c->authorization; return c->authorization;
    default: return NULL;
    }
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (header_bytes_check(c, len))
        return -1;
    if (c->in_value && c->feed_start && at > c->feed_start) {
        /* a second piece of one value that follows a line break is obsolete
         * line folding (RFC 9112 5.2): refused, as a smuggling vector */
        const char *q = at - 1;
        while (q > c->feed_start && (*q == ' ' || *q == '\t'))
            q--;
        if (*q == '\n')
            return stop_parser(c, 400, "Obsolete line folding in headers");
    }
    if (!c->in_value) { /* first piece of this value: classify the field */
        c->in_value = 1;
        c->field[c->field_len] = '\0';
        if (++c->header_count > LIMIT_HEADER_COUNT)
            return stop_parser(c, 431, "Too many request headers");
        size_t n = c->field_too_long ? 0 : c->field_len;
        const char *f = c->field;
/* the field is name, compared by length first (most headers are none of these) */
#define FIELD_IS(name) (n == sizeof name - 1 && !strncasecmp(f, name, sizeof name - 1))
        c->cur = H_OTHER;
        if (FIELD_IS("content-type"))
            c->cur = H_CONTENT_TYPE;
        else if (FIELD_IS("content-length"))
            c->cur = H_CONTENT_LENGTH, c->content_length_count++;
        else if (FIELD_IS("transfer-encoding"))
            c->cur = H_TRANSFER_ENCODING, c->transfer_encoding_count++;
        else if (FIELD_IS("expect"))
            c->cur = H_EXPECT;
        else if (FIELD_IS("authorization"))
            c->cur = H_AUTHORIZATION;
#undef FIELD_IS
        c->value_len = 0;
        size_t cap;
        char *v = kept_value(c, &cap);
        if (v)
            v[0] = '\0';
    }
    for (size_t i = 0; i < len; i++)
        if (at[i] == '\0' || at[i] == '\r' || at[i] == '\n')
            return stop_parser(c, 400, "Invalid character in header value");
    size_t cap;
    char *v = kept_value(c, &cap);
    if (v) {
        if (c->value_len + len >= cap) {
            if (c->cur == H_TRANSFER_ENCODING || c->cur == H_EXPECT)
                return stop_parser(c, 400, "Header value too long");
            return 0;
        }
        memcpy(v + c->value_len, at, len);
        c->value_len += len;
        v[c->value_len] = '\0';
    }
    return 0;
}

/* Trims spaces and tabs at both ends, in place. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    return s;
}

static int on_headers_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    struct http_server *srv = c->srv;
    if (!(p->http_major == 1 && (p->http_minor == 0 || p->http_minor == 1)))
        return stop_parser(c, 505, "HTTP version not supported");
    if (c->content_length_count > 1)
        return stop_parser(c, 400, "Several Content-Length headers");
    if (c->transfer_encoding_count > 1)
        return stop_parser(c, 400, "Several Transfer-Encoding headers");
    if (c->transfer_encoding_count) {
        if (c->content_length_count)
            return stop_parser(c, 400, "Both Transfer-Encoding and Content-Length");
        if (strcasecmp(trim(c->transfer_encoding), "chunked") != 0)
            return stop_parser(c, 400, "Unsupported Transfer-Encoding (only chunked)");
    }
    int has_body = (p->flags & F_CHUNKED) || (c->content_length_count && p->content_length > 0);
    if (c->content_length_count && p->content_length > srv->cfg.max_body)
        return stop_parser(c, 413, "Request body too large");
    if (c->expect[0]) {
        if (strcasecmp(trim(c->expect), "100-continue") != 0)
            return stop_parser(c, 417, "Unsupported Expect value (only 100-continue)");
        if (has_body) {
            struct http_exchange *x = exchange_push(c);
            x->keep_alive = 1;
            exchange_build(x, srv, 100, NULL, 0, NULL, 0);
            conn_flush(c);
        }
    }
    c->rstate = RS_BODY;
    if (c->content_length_count && has_body)
        buf_reserve(&c->body, (size_t)p->content_length); /* exact, checked above */
    if (has_body)
        set_deadline(c, srv->cfg.body_timeout_ms);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct http_conn *c = p->data;
    if (c->body.len + len > c->srv->cfg.max_body)
        return stop_parser(c, 413, "Request body too large");
    buf_append(&c->body, at, len);
    return 0;
}

static int content_type_is_json(const char *ct)
{
    char tmp[LIMIT_HEADER_VALUE_KEEP + 1];
    size_t len = strnlen(ct, sizeof tmp - 1);
    memcpy(tmp, ct, len);
    tmp[len] = '\0';
    char *semi = strchr(tmp, ';');
    if (semi)
        *semi = '\0';
    char *t = trim(tmp);
    if (!*t)
        return 1; /* absent: FastAPI reads the body as JSON */
    size_t n = strlen(t);
    if (!strcasecmp(t, "application/json"))
        return 1;
    return n > 5 && !strcasecmp(t + n - 5, "+json") && strchr(t, '/');
}

/* 1 when the Authorization header is "Bearer <token>"; compared in
 * constant time (only the length of the token can be learned). */
static int bearer_ok(const char *token, const char *header)
{
    if (strncasecmp(header, "Bearer ", 7) != 0)
        return 0;
    const char *given = header + 7;
    while (*given == ' ')
        given++;
    size_t n = strlen(token), m = strlen(given);
    while (m && (given[m - 1] == ' ' || given[m - 1] == '\t'))
        m--;
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(token[i] ^ (i < m ? given[i] : 0));
    return diff == 0;
}

static int on_message_complete(http_parser *p)
{
    struct http_conn *c = p->data;
    struct http_server *srv = c->srv;
    conn_timer_clear(&c->ct);
    c->rstate = RS_IDLE;
    STAT_ADD(requests_total);

    struct http_exchange *x = exchange_push(c);
    x->keep_alive = http_should_keep_alive(p) ? 1 : 0;
    c->outstanding++;

    struct http_request req;
    memset(&req, 0, sizeof req);
    req.method = p->method;
    req.x = x;
    req.authorization = c->authorization;
    buf_append(&c->url, "", 0);
    const char *url = c->url.data ? c->url.data : "";
    size_t url_len = c->url.len;
    const char *q = memchr(url, '?', url_len);
    req.path = url;
    req.path_len = q ? (size_t)(q - url) : url_len;
    if (q) {
        req.query = q + 1;
        req.query_len = url_len - req.path_len - 1;
    }
    buf_append(&c->body, "", 0);
    req.body = c->body.data;
    req.body_len = c->body.len;

    struct route_match m;
    int rc = router_match(srv->cfg.routes, p->method, req.path, req.path_len, &m);
    if (srv->cfg.api_token && req.path_len >= 5 && !memcmp(req.path, "/api/", 5) &&
        !bearer_ok(srv->cfg.api_token, c->authorization)) {
        http_reply_detail(x, 401, "Not authenticated", "www-authenticate: Bearer\r\n");
    } else if (rc == -404) {
        http_reply_detail(x, 404, "Not Found", NULL);
    } else if (rc == -405) {
        char allow[128];
        snprintf(allow, sizeof allow, "allow: %s\r\n", m.allow);
        http_reply_detail(x, 405, "Method Not Allowed", allow);
    } else if ((m.route->flags & ROUTE_JSON_BODY) && !content_type_is_json(c->content_type)) {
        http_reply_detail(x, 415, "Unsupported Media Type: send Content-Type: application/json",
                          NULL);
    } else {
        req.param = m.param;
        req.param_len = m.param_len;
        m.route->handler(&req, srv->cfg.ctx);
    }
    body_done(c);
    if (c->closing)
        return -1;
    if (c->outstanding >= LIMIT_PIPELINE_DEPTH ||
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > LIMIT_WRITE_QUEUE_BYTES) {
        http_parser_pause(p, 1);
        c->paused = 1;
    }
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)suggested;
    struct http_conn *c = h->data;
    b->base = c->srv->rbuf;
    b->len = sizeof c->srv->rbuf;
}

static void conn_feed(struct http_conn *c, const char *data, size_t n)
{
    http_parser *p = &c->parser;
    c->feed_start = data;
    size_t used = http_parser_execute(p, &c->srv->settings, data, n);
    c->feed_start = NULL;
    if (c->closing)
        return;
    enum http_errno e = HTTP_PARSER_ERRNO(p);
    if (e == HPE_PAUSED) {
        /* keep what is left and stop reading until the pipeline drains */
        free(c->leftover);
        c->leftover = NULL;
        c->leftover_len = n - used;
        if (c->leftover_len)
            c->leftover = xstrndup(data + used, c->leftover_len);
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = 0;
        }
        return;
    }
    if (e != HPE_OK) {
        if (c->finishing)
            return; /* a handler already ended the connection */
        if (c->error_status)
            conn_fail(c, c->error_status, c->error_detail, NULL);
        else {
            char detail[160];
            snprintf(detail, sizeof detail, "Malformed HTTP request: %s",
                     http_errno_description(e));
            conn_fail(c, 400, detail, NULL);
        }
        return;
    }
    if (p->upgrade) { /* we speak no other protocol: answer, then close */
        c->finishing = 1;
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = 0;
        }
        arm_idle(c);
    }
}

/* Resumes a connection paused by pipeline depth or write backpressure. */
static void conn_resume(struct http_conn *c)
{
    if (c->closing || c->finishing || c->lingering || !c->paused)
        return;
    if (c->outstanding >= LIMIT_PIPELINE_DEPTH / 2 ||
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > LIMIT_WRITE_QUEUE_BYTES / 2)
        return;
    c->paused = 0;
    http_parser_pause(&c->parser, 0);
    if (c->leftover) {
        char *data = c->leftover;
        size_t n = c->leftover_len;
        c->leftover = NULL;
        c->leftover_len = 0;
        conn_feed(c, data, n);
        free(data);
        if (c->closing || c->paused || c->finishing)
            return;
    }
    if (!c->reading && !c->eof) {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        c->reading = 1;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct http_conn *c = s->data;
    if (nread == 0)
        return;
    if (c->lingering) {
        if (nread < 0 || (c->linger_bytes += (size_t)nread) > LINGER_BYTES)
            conn_close(c);
        return;
    }
    if (nread < 0) {
        uv_read_stop(s);
        c->reading = 0;
        if (nread != UV_EOF) {
            conn_close(c);
            return;
        }
        c->eof = 1;
        /* the client half-closed: answer what it asked, then close; a
         * request cut short is dropped with its connection */
        c->finishing = 1;
        if (c->rstate != RS_IDLE) {
            conn_close(c);
            return;
        }
        if (!c->head && !c->outstanding && !c->writing)
            conn_close(c);
        return;
    }
    conn_feed(c, b->base, (size_t)nread);
}

/* ---- accepting ---- */

/* Makes a connection of fd, a connected stream socket; takes ownership of
 * fd (closed on failure). Returns 0 or a libuv error. */
static int conn_start(struct http_server *srv, int fd)
{
    struct http_conn *c = xcalloc(1, sizeof *c);
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    c->srv = srv;
    int rc = uv_tcp_open(&c->tcp, fd);
    if (rc != 0) {
        close(fd);
        if (srv->cfg.group) /* placed here: counted */
            http_group_release(srv->cfg.group, srv->cfg.group_index, 0);
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
        return rc;
    }
    uv_tcp_nodelay(&c->tcp, 1); /* fails harmlessly on a non-TCP socket */
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    buf_init(&c->url);
    buf_init(&c->body);
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    STAT_ADD(connections_open);
    STAT_ADD(connections_total);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    c->reading = 1;
    arm_idle(c);
    return 0;
}

/* An accept failed with err (out of file descriptors, mostly: EMFILE or
 * ENFILE): accepting pauses for ACCEPT_RETRY_MS, the connections wait in the
 * kernel's backlog, and the loop goes on serving the open ones (whose
 * closing frees descriptors). Retrying at once would spin: the failure
 * repeats for as long as a connection waits. */
static void accept_failed(struct http_server *srv, int err)
{
    uint64_t now = uv_now(srv->loop);
    STAT_ADD(accept_failures);
    if (srv->accept_warned_ms == 0 || now - srv->accept_warned_ms >= ACCEPT_WARN_MS) {
        log_warn("event=accept_failed error=\"%s\" retry_ms=%d connections=%u"
                 " failures_not_logged=%" PRIu64,
                 strerror(err), ACCEPT_RETRY_MS, srv->nconns, srv->accept_unlogged);
        srv->accept_warned_ms = now ? now : 1;
        srv->accept_unlogged = 0;
    } else {
        srv->accept_unlogged++;
    }
    srv->accept_failing = 1;
    uv_poll_stop(&srv->listener);
    uv_timer_start(&srv->accept_retry, on_accept_retry, ACCEPT_RETRY_MS, 0);
}

/* Room for one more connection: under max_connections, or in a group a
 * slot claimed under the group's cap (if none, this server is woken through
 * its handed handle when one is given back). */
static int server_room(struct http_server *srv)
{
    if (srv->cfg.group)
        return http_group_claim_or_wait(srv->cfg.group, srv->cfg.group_index);
    return srv->nconns < srv->cfg.max_connections;
}

/* Accepts what waits, up to ACCEPT_BATCH (the listener stays readable for
 * the rest); past the cap it stops polling the listener until one of its
 * connections closes, or in a group until a slot is given back anywhere in
 * it (on_handed: a connection waiting in this listener's backlog takes the
 * slot wherever it was freed). In a group each connection is placed where
 * fewest are (group.h): served here or handed off. */
static void server_accept(struct http_server *srv)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        if (!server_room(srv)) {
            srv->accept_paused = 1;
            uv_poll_stop(&srv->listener);
            return;
        }
        int fault = atomic_load_explicit(&srv->accept_fault, memory_order_relaxed);
        int fd = fault ? (errno = fault, -1)
                       : accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (srv->cfg.group)
                http_group_unclaim(srv->cfg.group, srv->cfg.group_index); /* whatever the cause */
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR || errno == ECONNABORTED)
                continue; /* that connection is gone; the next may wait */
            accept_failed(srv, errno);
            return;
        }
        if (srv->cfg.group &&
            http_group_place(srv->cfg.group, srv->cfg.group_index, fd) != srv->cfg.group_index) {
            STAT_ADD(handed_off);
            continue; /* handed to another member */
        }
        conn_start(srv, fd);
    }
}

/* Polls the listener again (unless paused at max_connections or stopping). */
static void accept_resume(struct http_server *srv)
{
    if (srv->stopping || srv->accept_paused || srv->accept_failing)
        return;
    uv_poll_start(&srv->listener, UV_READABLE, on_listener_readable);
}

static void on_accept_retry(uv_timer_t *t)
{
    struct http_server *srv = t->data;
    srv->accept_failing = 0;
    accept_resume(srv);
}

/* A slot freed by one of this server's own connections while it waited at
 * the group's cap (conn_close): accepts at once, as on_handed does, one loop
 * turn later (not inside the close) and without a wake-up's system calls. */
static void on_accept_now(uv_idle_t *h)
{
    uv_idle_stop(h); /* closed at the stop: never runs after it */
    server_accept(h->data);
}

/* The connections another member of the group handed to this server, and
 * a slot given back in the group while this server waited for one: it
 * accepts at once, and with nothing in its backlog gives the slot back to
 * the next member waiting (group.h). */
static void on_handed(uv_async_t *a)
{
    struct http_server *srv = a->data; /* closed at the stop: never runs after it */
    if (srv->accept_paused) {
        srv->accept_paused = 0;
        accept_resume(srv);
        server_accept(srv);
    }
    int *fds;
    size_t n = http_group_take(srv->cfg.group, srv->cfg.group_index, &fds);
    for (size_t i = 0; i < n; i++)
        conn_start(srv, fds[i]); /* closes it and releases its slot if it fails */
    free(fds);
}

void http_server_fault_accept(struct http_server *srv, int err)
{
    atomic_store_explicit(&srv->accept_fault, err, memory_order_relaxed);
}

int http_server_adopt(struct http_server *srv, int fd)
{
    return conn_start(srv, fd);
}

static void on_listener_readable(uv_poll_t *p, int status, int events)
{
    struct http_server *srv = p->data;
    (void)events;
    if (status < 0) { /* the socket reports an error: treated as a failed accept */
        accept_failed(srv, -status);
        return;
    }
    if (!srv->stopping)
        server_accept(srv);
}

struct http_server *http_server_new(uv_loop_t *loop, int fd, const struct http_server_config *cfg,
                                    int *err)
{
    struct http_server *srv = xcalloc(1, sizeof *srv);
    srv->loop = loop;
    srv->cfg = *cfg;
    srv->settings.on_message_begin = on_message_begin;
    srv->settings.on_url = on_url;
    srv->settings.on_header_field = on_header_field;
    srv->settings.on_header_value = on_header_value;
    srv->settings.on_headers_complete = on_headers_complete;
    srv->settings.on_body = on_body;
    srv->settings.on_message_complete = on_message_complete;
    srv->listen_fd = fd;
    int rc = uv_poll_init_socket(loop, &srv->listener, fd);
    if (rc != 0) {
        *err = rc;
        close(fd);
        free(srv);
        return NULL;
    }
    srv->listener.data = srv;
    uv_timer_init(loop, &srv->accept_retry);
    srv->accept_retry.data = srv;
    srv->handles_open = 2;
    if (cfg->group) {
        uv_async_init(loop, &srv->handed, on_handed);
        srv->handed.data = srv;
        uv_idle_init(loop, &srv->accept_now);
        srv->accept_now.data = srv;
        srv->handles_open += 2;
        http_group_join(cfg->group, cfg->group_index, &srv->handed);
    }
    uv_poll_start(&srv->listener, UV_READABLE, on_listener_readable);
    return srv;
}

static void on_listener_closed(uv_handle_t *h)
{
    struct http_server *srv = h->data;
    if (h == (uv_handle_t *)&srv->listener)
        close(srv->listen_fd); /* after the poll handle: libuv no longer watches it */
    srv->handles_open--;
    server_maybe_drained(srv);
}

static void server_maybe_drained(struct http_server *srv)
{
    if (!srv->stopping || srv->nconns > 0 || srv->handles_open > 0)
        return;
    if (srv->drained_cb) {
        void (*cb)(void *) = srv->drained_cb;
        srv->drained_cb = NULL;
        cb(srv->drained_arg);
    }
    free(srv);
}

void http_server_stop(struct http_server *srv, void (*drained_cb)(void *arg), void *arg)
{
    if (srv->stopping)
        return;
    srv->stopping = 1;
    srv->drained_cb = drained_cb;
    srv->drained_arg = arg;
    uv_close((uv_handle_t *)&srv->listener, on_listener_closed);
    uv_close((uv_handle_t *)&srv->accept_retry, on_listener_closed);
    if (srv->cfg.group) {
        /* handed here and not taken: closed, as the listener's backlog is */
        int *fds;
        size_t n = http_group_leave(srv->cfg.group, srv->cfg.group_index, &fds);
        for (size_t i = 0; i < n; i++) {
            close(fds[i]);
            http_group_release(srv->cfg.group, srv->cfg.group_index, 0);
        }
        free(fds);
        uv_close((uv_handle_t *)&srv->handed, on_listener_closed);
        uv_close((uv_handle_t *)&srv->accept_now, on_listener_closed);
    }
    struct http_conn *c = srv->conns;
    while (c) {
        struct http_conn *next = c->next;
        c->finishing = 1;
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = 0;
        }
        if (!c->head && !c->outstanding && !c->writing)
            conn_close(c);
        c = next;
    }
}

void http_server_abort(struct http_server *srv)
{
    struct http_conn *c = srv->conns;
    while (c) {
        struct http_conn *next = c->next;
        conn_close(c); /* the last one may free srv: not touched after */
        c = next;
    }
}
