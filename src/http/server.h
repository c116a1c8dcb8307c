/*
 * server: an HTTP/1.1 server on one libuv loop (one per worker thread).
 *
 * Bytes in -> http-parser -> our framing checks and limits -> one
 * struct http_request per message -> the router's handler. The handler
 * answers through http_reply() at once or later (the sync route answers
 * seconds later); answers leave in request order (pipelining), each as one
 * uv_write of one buffer.
 *
 * A connection's life:
 *
 *   accept -> IDLE --first byte--> HEADERS --headers ok--> BODY --complete--> dispatch
 *               ^                     |  (header timer)      | (body timer)     |
 *               |                     +-- error: 4xx, close -+                  |
 *               +-------------- answer written (idle timer) <-------------------+
 *
 * Errors that leave the byte stream in an unknown state (400, 408, 413,
 * 414, 431, 505) are answered, then the connection is half-closed and
 * drained for a moment ("lingering close") so the client reads the answer
 * instead of a reset. Past max_connections, accepting pauses (the listener
 * is not polled) until a connection closes; in a group (group.h), past the
 * group's cap, until the group wakes it: a slot given back by any member
 * (it then accepts at once, and with an empty backlog passes the slot on). An
 * accept that fails (out of file
 * descriptors: EMFILE, ENFILE) pauses accepting for 100 ms, with a warning at
 * most once a second: the connections wait in the kernel's backlog while the
 * open ones are served. (libuv's own accept loop would retry at once and
 * spin, and its fallback resets the waiting connections.)
 *
 * Threading: everything here runs on the owning loop's thread only.
 */
#ifndef EXCHANGED_HTTP_SERVER_H
#define EXCHANGED_HTTP_SERVER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "group.h"
#include "router.h"

struct http_server;
struct http_exchange; /* one request's answer slot; see http_reply */

/* One parsed request; valid only during the handler call. */
struct http_request {
    int method;             /* enum http_method */
    const char *path;       /* not NUL-terminated; without the query */
    size_t path_len;
    const char *query;      /* after '?', or NULL */
    size_t query_len;
    const char *param;      /* the route's '*' segment, or NULL */
    size_t param_len;
    const char *body;       /* NUL-terminated, body_len bytes */
    size_t body_len;
    const char *authorization; /* header value, "" when absent */
    struct http_exchange *x;   /* answer with http_reply(x, ...) exactly once */
};

/* Counters of one server, owned by the caller (so that other threads may
 * read them for as long as the caller keeps them, even after the server is
 * gone); written with relaxed atomics by the server's thread. */
struct http_counters {
    _Atomic uint64_t connections_open;
    _Atomic uint64_t connections_total;
    _Atomic uint64_t requests_total;
    _Atomic uint64_t responses_4xx;
    _Atomic uint64_t responses_5xx;
    _Atomic uint64_t handed_off;      /* accepted here, served by another group member */
    _Atomic uint64_t accept_failures; /* accepts that failed (out of file descriptors,
                                         mostly); each pauses accepting a moment */
};

struct http_server_config {
    struct http_counters *counters; /* caller-owned, zeroed */
    const struct route *routes; /* static table ending in {0} */
    void *ctx;                  /* passed to every handler */
    size_t max_body;            /* bytes; past it 413 */
    unsigned max_connections;   /* on this loop; past it accepting pauses */
    uint64_t header_timeout_ms; /* request start -> headers complete; then 408 */
    uint64_t body_timeout_ms;   /* headers complete -> body complete; then 408 */
    uint64_t idle_timeout_ms;   /* keep-alive idle; then close */
    const char *api_token;      /* when set, every /api/... path needs "Authorization:
                                   Bearer <token>", else 401 with WWW-Authenticate */
    struct http_group *group;   /* servers on other loops sharing the port (group.h), or
                                   NULL; with one, its cap replaces max_connections and
                                   connections are handed between its members */
    int group_index;            /* this server's member in group */
};

/* Makes a server that serves the listening socket fd (already bound and
 * listening, e.g. with SO_REUSEPORT); takes ownership of fd. Returns NULL
 * and sets *err (negative errno) on failure. */
struct http_server *http_server_new(uv_loop_t *loop, int fd, const struct http_server_config *cfg,
                                    int *err);

/* Serves an already connected stream socket (e.g. one end of a
 * socketpair, for tests and fuzzing) as one connection; takes ownership of
 * fd. Returns 0 or a libuv error. Not for a server in a group. */
int http_server_adopt(struct http_server *srv, int fd);

/* Test seam: while err is not 0, every accept fails with errno err (as
 * EMFILE would, out of file descriptors) and the connections wait in the
 * backlog. Callable from any thread. */
void http_server_fault_accept(struct http_server *srv, int err);

/* Stops accepting; idle connections close now, the others after the
 * answers under way are written. drained_cb runs once when no connection
 * is left; the server is freed after it returns. */
void http_server_stop(struct http_server *srv, void (*drained_cb)(void *arg), void *arg);
/* After http_server_stop: closes every connection left now, answers under
 * way or not (the stop's drained_cb follows). */
void http_server_abort(struct http_server *srv);

/* Answers a request: status, JSON body (len bytes, copied), optional extra
 * header lines (each ending in "\r\n", or NULL). Call exactly once per
 * request, on the loop's thread. If the client is gone, the answer is
 * dropped and x freed. */
void http_reply(struct http_exchange *x, int status, const char *body, size_t len,
                const char *extra_headers);
/* http_reply with body {"detail": "<detail>"} (detail JSON-escaped). */
void http_reply_detail(struct http_exchange *x, int status, const char *detail,
                       const char *extra_headers);
/* 1 when the client that sent the request has gone away. */
int http_exchange_orphaned(const struct http_exchange *x);

/* The extra header of a 503 that asks the client to come back in a second. */
#define HTTP_RETRY_AFTER "retry-after: 1\r\n"

/* The reason phrase of a status ("Not Found"); "Unknown" if not known. */
const char *http_status_text(int status);

/* Opens a TCP listening socket on host:port with SO_REUSEPORT (so every
 * worker may open its own on the same port). port 0 picks one; *bound_port
 * returns it. With first set (the first worker's), a port on which anything
 * listens already is refused (-EADDRINUSE), even a listener with SO_REUSEPORT
 * as a second exchanged's would be. Returns the fd, or a negative errno, or
 * HTTP_LISTEN_E_NOHOST when host is a name that does not resolve. */
int http_listen_socket(const char *host, int port, int first, int backlog, int *bound_port);
#define HTTP_LISTEN_E_NOHOST (-100000)
/* What a failure of http_listen_socket means, in words. */
const char *http_listen_strerror(int err);

#endif
