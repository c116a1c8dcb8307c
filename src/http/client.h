/*
 * client: HTTP/1.1 requests to one origin (plain http://), on a libuv loop,
 * over a pool of kept-alive connections.
 *
 * Made for the callbacks: one request per connection at a time (no
 * pipelining), the caller bounds how many run at once. A request gets a
 * fresh connection when no idle one is left (the name is resolved with
 * uv_getaddrinfo each time, every address is tried in order, within the
 * connect timeout), writes its head and body with one write when the socket
 * takes them, and ends with the answer's status, the first body bytes
 * (LIMIT_PEER_BODY_KEEP; the rest is read and dropped) and Retry-After, or
 * with an error text like curl's ("Could not resolve host: x", "Failed to
 * connect to ...", "Operation timed out after N milliseconds ..."). The whole
 * request, connect included, is bounded by the total timeout.
 *
 * A reused connection that the server closed before answering a single
 * byte (a keep-alive race) is retried once on a fresh connection, as curl
 * does. Idle connections are watched: a close or stray bytes from the
 * server drop them, and any idle longer than IDLE_MS is closed.
 * Redirects are answers like any other (not followed).
 *
 * Not thread-safe: everything on the loop's thread.
 */
#ifndef EXCHANGED_HTTP_CLIENT_H
#define EXCHANGED_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct http_client;

struct http_client_config {
    const char *url;             /* http://host[:port][/path]; host, port and path are taken */
    uint64_t connect_timeout_ms;
    uint64_t timeout_ms;         /* a whole request, connect included */
    int max_idle;                /* idle connections kept */
};

struct http_client_result {
    int status;          /* the answer's status, 0 when no answer came */
    const char *body;    /* the first bytes of the answer's body (NUL-terminated) */
    size_t body_len;
    int64_t retry_after_s; /* Retry-After in seconds, or -1 */
    const char *error;   /* no answer: why; NULL when an answer came */
};

/* Runs once per request, on the loop's thread; r is valid during the call. */
typedef void (*http_client_cb)(void *arg, const struct http_client_result *r);

/* Splits an http:// URL into host (no brackets), port and path (the part
 * from the first '/' after the authority, "/" when none). 0 on success;
 * -1 for anything else (https, user info, a bad port...). */
int http_client_parse_url(const char *url, char *host, size_t host_size, int *port,
                          char *path, size_t path_size);

/* NULL when the URL is not one http_client_parse_url takes. */
struct http_client *http_client_new(uv_loop_t *loop, const struct http_client_config *cfg);

/* Sends method to the configured path with the extra header lines
 * (each ending in "\r\n"; may be "") and body; the client adds Host,
 * Content-Length and Content-Type: application/json. extra and body must
 * stay valid until cb runs. */
void http_client_send(struct http_client *c, const char *method, const char *extra,
                      const char *body, size_t len, http_client_cb cb, void *arg);

/* Requests running or connecting. */
size_t http_client_active(const struct http_client *c);

/* Ends every running request with error "shutting down", closes every
 * connection, then calls closed(arg) and frees c. */
void http_client_close(struct http_client *c, void (*closed)(void *arg), void *arg);

#endif
