/*
 * delivery: the callback PUTs of one worker, through libcurl's multi
 * interface driven by the worker's libuv loop (sockets watched with
 * uv_poll_t, curl's timeout with one uv_timer_t).
 *
 * At most max_in_flight transfers run at once; the rest wait in a FIFO.
 * Connections to the main service are kept and reused by the multi
 * handle. Our code owns every socket's lifetime (open/close socket
 * callbacks): a socket is closed only after its uv_poll_t is closed, so
 * libuv never watches a descriptor curl already closed (curl #14976).
 *
 * With an HMAC key, each PUT carries "X-Signature: sha256=<hex>", the
 * HMAC-SHA256 of the body under the key, so the main service can check
 * that the callback came from us and was not altered.
 *
 * One attempt per delivery_send; the caller decides about retries.
 * Not thread-safe: everything on the owning loop's thread.
 */
#ifndef EXCHANGED_DELIVERY_H
#define EXCHANGED_DELIVERY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct delivery;

struct delivery_config {
    const char *url;            /* full callback URL; copied */
    int max_in_flight;
    uint64_t connect_timeout_ms;
    uint64_t timeout_ms;
    const char *hmac_key;       /* not NULL: sign each body (X-Signature); copied */
    int use_curl;               /* 1: libcurl even for an http:// URL (tests of that path) */
    const char *ca_file;        /* not NULL: CAs for an https:// URL (curl's CAINFO); copied */
};

struct delivery_result {
    int ok;            /* 1 when the main service answered 2xx */
    long http_status;  /* 0 when no answer came */
    const char *error; /* on failure: curl's error, or "HTTP 400: <body, truncated>" */
    int64_t retry_after_s; /* the answer's Retry-After in seconds, or -1 */
    int abandoned;     /* 1: ended by delivery_close without an answer (never sent, or cut
                        * off at the end of its wait), error "shutting down" */
};

/* Called once per delivery_send, on the loop's thread; r is valid only
 * during the call. */
typedef void (*delivery_done_cb)(void *arg, const struct delivery_result *r);

struct delivery *delivery_new(uv_loop_t *loop, const struct delivery_config *cfg);
/* Queues one PUT of body (len bytes, copied: the caller keeps its own).
 * done runs when it has succeeded or failed. */
void delivery_send(struct delivery *d, const char *body, size_t len, delivery_done_cb done,
                   void *arg);
/* "sha256=" + the hex HMAC-SHA256 of body under key, into out (>= 72 bytes). */
void delivery_signature(const char *key, const char *body, size_t len, char *out);
/* Transfers queued or running. */
size_t delivery_pending(const struct delivery *d);
/* Stops: what is queued ends at once, abandoned (its done callback runs
 * with error "shutting down"), and so does every later send. What is
 * already on the wire may get its answer for up to wait_ms (done runs
 * with it, as usual: a main service that has taken a callback is not sent
 * it again at the next start); then what is left is cut off, abandoned.
 * Then every handle closes, closed(arg) runs, and d is freed. */
void delivery_close(struct delivery *d, uint64_t wait_ms, void (*closed)(void *arg), void *arg);

#endif
