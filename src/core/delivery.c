#include "delivery.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../http/client.h"
#include "../limits.h"
#include "../util.h"

struct job {
    struct job *next;
    struct delivery *d;
    size_t len;
    char extra[128]; /* header lines for the native client (X-Signature) */
    delivery_done_cb done;
    void *arg;
    char body[]; /* len bytes and a NUL: the job and its body are one allocation */
};

/* One running transfer. */
struct xfer {
    CURL *easy;
    struct job *job;
    char answer[LIMIT_PEER_BODY_KEEP + 1];
    char errbuf[CURL_ERROR_SIZE];
    struct curl_slist *signed_headers; /* the shared headers + X-Signature, or NULL */
    size_t answer_len;
    struct xfer *next_free;      /* in the free list */
    struct xfer *prev, *next;    /* in the running list */
};

/* One socket curl asked for; freed after its poll handle is closed. */
struct sock {
    struct delivery *d;
    uv_poll_t poll;
    curl_socket_t fd;
    int poll_inited;
};

struct delivery {
    uv_loop_t *loop;
    struct http_client *client; /* http:// URLs: our own client; else libcurl */
    int client_open;
    CURLM *multi;
    uv_timer_t timer;
    struct curl_slist *headers;
    char *url;
    char *hmac_key;
    char *ca_file;
    int max_in_flight;
    int in_flight;
    uint64_t connect_timeout_ms, timeout_ms;
    struct job *queue_head, *queue_tail;
    size_t queued;
    struct xfer *free_xfers;
    struct xfer *running;
    struct sock **socks; /* by fd */
    size_t nsocks;
    int open_polls;      /* poll handles not yet closed */
    int closing;         /* no job starts; a send ends at once, abandoned */
    int draining;        /* closing, and the jobs on the wire may still get their answers */
    uv_timer_t drain;    /* the end of the drain: its wait, or its last job's end */
    void (*closed)(void *arg);
    void *closed_arg;
};

static void start_queued(struct delivery *d);
static void maybe_closed(struct delivery *d);

/* ---- sockets owned by us ---- */

static curl_socket_t open_socket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct delivery *d = clientp;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (fd < 0)
        return CURL_SOCKET_BAD;
    if ((size_t)fd >= d->nsocks) {
        size_t n = d->nsocks ? d->nsocks : 64;
        while (n <= (size_t)fd)
            n *= 2;
        d->socks = xrealloc(d->socks, n * sizeof *d->socks);
        memset(d->socks + d->nsocks, 0, (n - d->nsocks) * sizeof *d->socks);
        d->nsocks = n;
    }
    struct sock *s = xcalloc(1, sizeof *s);
    s->d = d;
    s->fd = fd;
    d->socks[fd] = s;
    return fd;
}

static void on_poll_closed(uv_handle_t *h)
{
    struct sock *s = h->data;
    struct delivery *d = s->d;
    close(s->fd);
    free(s);
    d->open_polls--;
    maybe_closed(d);
}

static int close_socket_cb(void *clientp, curl_socket_t fd)
{
    struct delivery *d = clientp;
    struct sock *s = (size_t)fd < d->nsocks ? d->socks[fd] : NULL;
    if (!s)
        return close(fd);
    d->socks[fd] = NULL;
    if (s->poll_inited) {
        uv_close((uv_handle_t *)&s->poll, on_poll_closed); /* closes fd afterwards */
    } else {
        close(fd);
        free(s);
    }
    return 0;
}

/* ---- curl <-> libuv ---- */

static void check_done(struct delivery *d);
static void close_now(struct delivery *d);

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sock *s = p->data;
    struct delivery *d = s->d;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    int running;
    curl_multi_socket_action(d->multi, s->fd, flags, &running);
    check_done(d);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    (void)socketp;
    struct delivery *d = userp;
    struct sock *s = (size_t)fd < d->nsocks ? d->socks[fd] : NULL;
    if (!s)
        return 0; /* not one of ours (cannot happen: every socket is opened by us) */
    if (what == CURL_POLL_REMOVE) {
        if (s->poll_inited)
            uv_poll_stop(&s->poll);
        return 0;
    }
    if (!s->poll_inited) {
        if (uv_poll_init_socket(d->loop, &s->poll, fd) != 0)
            return -1;
        s->poll.data = s;
        s->poll_inited = 1;
        d->open_polls++;
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    struct delivery *d = t->data;
    int running;
    curl_multi_socket_action(d->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(d);
}

/* curl asks for a timer; we never call socket_action from here. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct delivery *d = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&d->timer);
    else
        uv_timer_start(&d->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct xfer *x = userdata;
    size_t n = size * nmemb;
    size_t room = LIMIT_PEER_BODY_KEEP - x->answer_len;
    size_t take = n < room ? n : room;
    memcpy(x->answer + x->answer_len, ptr, take);
    x->answer_len += take;
    return n; /* the rest is read and dropped; the total timeout bounds it */
}

/* ---- transfers ---- */

/* "HTTP <status>: <body>", kept on one printable line (control bytes as
 * spaces), for an answer that is not 2xx. */
static void answer_reason(char *out, size_t size, long status, const char *body, size_t len)
{
    int n = snprintf(out, size, "HTTP %ld: ", status);
    for (size_t i = 0; i < len && (size_t)n + 1 < size; i++) {
        unsigned char ch = (unsigned char)body[i];
        out[n++] = ch < 0x20 ? ' ' : (char)ch;
    }
    out[n] = '\0';
}

static void on_drain_over(uv_timer_t *t);

/* A job has its outcome: tell its owner, free it. The last job of a drain
 * ends the drain (on the next turn: the caller goes on using d). */
static void job_end(struct delivery *d, struct job *job, const struct delivery_result *r)
{
    d->in_flight--;
    job->done(job->arg, r);
    free(job);
    if (d->draining && d->in_flight == 0)
        uv_timer_start(&d->drain, on_drain_over, 0, 0);
}

static void finish(struct delivery *d, struct xfer *x, CURLcode code)
{
    struct job *job = x->job;
    struct delivery_result r = {0, 0, NULL, -1, 0};
    char reason[LIMIT_PEER_BODY_KEEP + 64];
    if (code == CURLE_OK) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r.http_status);
        if (r.http_status >= 200 && r.http_status < 300) {
            r.ok = 1;
        } else {
            answer_reason(reason, sizeof reason, r.http_status, x->answer, x->answer_len);
            r.error = reason;
            curl_off_t ra = -1;
            if (curl_easy_getinfo(x->easy, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
                r.retry_after_s = (int64_t)ra;
        }
    } else if (d->closing && !d->draining) {
        snprintf(reason, sizeof reason, "shutting down");
        r.error = reason;
        r.abandoned = 1;
    } else {
        snprintf(reason, sizeof reason, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(code));
        r.error = reason;
    }
    if (x->prev)
        x->prev->next = x->next;
    else
        d->running = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    x->job = NULL;
    x->answer_len = 0;
    x->next_free = d->free_xfers;
    d->free_xfers = x;
    job_end(d, job, &r);
}

static void check_done(struct delivery *d)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(d->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct xfer *x;
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(d->multi, easy);
        finish(d, x, code);
    }
    start_queued(d);
    maybe_closed(d);
}

static struct xfer *xfer_get(struct delivery *d)
{
    struct xfer *x = d->free_xfers;
    if (x) {
        d->free_xfers = x->next_free;
        return x;
    }
    x = xcalloc(1, sizeof *x);
    x->easy = curl_easy_init();
    if (!x->easy) {
        log_error("event=curl_init_failed");
        abort();
    }
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, d->url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->headers);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)d->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)d->timeout_ms);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (d->ca_file) { /* in place of the system's: its bundle and its directory */
        curl_easy_setopt(e, CURLOPT_CAINFO, d->ca_file);
        curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, d);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, d);
    return x;
}

/* One answer of the native client, turned into a delivery result like
 * curl's path makes it. */
static void on_client_done(void *arg, const struct http_client_result *cr)
{
    struct job *job = arg;
    struct delivery *d = job->d;
    struct delivery_result r = {0, cr->status, NULL, -1, 0};
    char reason[LIMIT_PEER_BODY_KEEP + 64];
    if (cr->error) {
        r.http_status = 0;
        r.abandoned = d->closing && !d->draining;
        r.error = r.abandoned ? "shutting down" : cr->error;
    } else if (cr->status >= 200 && cr->status < 300) {
        r.ok = 1;
    } else {
        answer_reason(reason, sizeof reason, cr->status, cr->body, cr->body_len);
        r.error = reason;
        r.retry_after_s = cr->retry_after_s > 0 ? cr->retry_after_s : -1;
    }
    job_end(d, job, &r);
    start_queued(d);
    maybe_closed(d);
}

static void client_start(struct delivery *d, struct job *job)
{
    job->d = d;
    job->extra[0] = '\0';
    if (d->hmac_key) {
        memcpy(job->extra, "X-Signature: ", 13);
        delivery_signature(d->hmac_key, job->body, job->len, job->extra + 13);
        strcat(job->extra, "\r\n");
    }
    d->in_flight++;
    http_client_send(d->client, "PUT", job->extra, job->body, job->len, on_client_done, job);
}

static void start_queued(struct delivery *d)
{
    while (!d->closing && d->queue_head && d->in_flight < d->max_in_flight) {
        struct job *job = d->queue_head;
        d->queue_head = job->next;
        if (!d->queue_head)
            d->queue_tail = NULL;
        d->queued--;
        if (d->client) {
            client_start(d, job);
            continue;
        }
        struct xfer *x = xfer_get(d);
        x->job = job;
        x->errbuf[0] = '\0';
        if (d->hmac_key) {
            char sig[96] = "X-Signature: ";
            delivery_signature(d->hmac_key, job->body, job->len, sig + strlen(sig));
            curl_slist_free_all(x->signed_headers);
            x->signed_headers = curl_slist_append(NULL, "Content-Type: application/json");
            x->signed_headers = curl_slist_append(x->signed_headers, "Expect:");
            x->signed_headers = curl_slist_append(x->signed_headers, sig);
            curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->signed_headers);
        }
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, (char *)job->body);
        curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)job->len);
        d->in_flight++;
        x->prev = NULL;
        x->next = d->running;
        if (d->running)
            d->running->prev = x;
        d->running = x;
        CURLMcode mc = curl_multi_add_handle(d->multi, x->easy);
        if (mc != CURLM_OK)
            finish(d, x, CURLE_FAILED_INIT);
    }
}

struct delivery *delivery_new(uv_loop_t *loop, const struct delivery_config *cfg)
{
    struct delivery *d = xcalloc(1, sizeof *d);
    d->loop = loop;
    d->url = xstrndup(cfg->url, strlen(cfg->url));
    d->hmac_key = cfg->hmac_key ? xstrndup(cfg->hmac_key, strlen(cfg->hmac_key)) : NULL;
    d->ca_file = cfg->ca_file ? xstrndup(cfg->ca_file, strlen(cfg->ca_file)) : NULL;
    d->max_in_flight = cfg->max_in_flight > 0 ? cfg->max_in_flight : 1;
    d->connect_timeout_ms = cfg->connect_timeout_ms;
    d->timeout_ms = cfg->timeout_ms;
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    uv_timer_init(loop, &d->drain);
    d->drain.data = d;
    struct http_client_config cc = {cfg->url, cfg->connect_timeout_ms, cfg->timeout_ms,
                                    d->max_in_flight + 4};
    d->client = cfg->use_curl ? NULL : http_client_new(loop, &cc);
    if (d->client) {
        d->client_open = 1;
        return d;
    }
    d->headers = curl_slist_append(NULL, "Content-Type: application/json");
    d->headers = curl_slist_append(d->headers, "Expect:"); /* no 100-continue round trip */
    d->multi = curl_multi_init();
    if (!d->multi || !d->headers) {
        log_error("event=curl_multi_init_failed");
        abort();
    }
    curl_multi_setopt(d->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(d->multi, CURLMOPT_SOCKETDATA, d);
    curl_multi_setopt(d->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(d->multi, CURLMOPT_TIMERDATA, d);
    curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, (long)d->max_in_flight + 4);
    return d;
}

void delivery_send(struct delivery *d, const char *body, size_t len, delivery_done_cb done,
                   void *arg)
{
    if (d->closing) {
        struct delivery_result r = {0, 0, "shutting down", -1, 1};
        done(arg, &r);
        return;
    }
    struct job *job = xmalloc(sizeof *job + len + 1);
    job->next = NULL;
    memcpy(job->body, body, len);
    job->body[len] = '\0';
    job->len = len;
    job->done = done;
    job->arg = arg;
    if (d->queue_tail)
        d->queue_tail->next = job;
    else
        d->queue_head = job;
    d->queue_tail = job;
    d->queued++;
    start_queued(d);
}

size_t delivery_pending(const struct delivery *d)
{
    return d->queued + (size_t)d->in_flight;
}

/* The timer (h is &d->timer or &d->drain) is closed: its data goes NULL. */
static void on_timer_closed(uv_handle_t *h)
{
    struct delivery *d = h->data;
    h->data = NULL;
    maybe_closed(d);
}

static void maybe_closed(struct delivery *d)
{
    if (!d->closing || d->draining || d->open_polls > 0 || d->timer.data != NULL ||
        d->drain.data != NULL || d->client_open || !d->closed)
        return;
    void (*cb)(void *) = d->closed;
    void *arg = d->closed_arg;
    d->closed = NULL;
    free(d->socks);
    free(d->url);
    free(d->hmac_key);
    free(d->ca_file);
    free(d);
    cb(arg);
}

static void on_client_closed(void *arg)
{
    struct delivery *d = arg;
    d->client_open = 0;
    maybe_closed(d);
}

/* The drain's wait is over, or its last job ended. (The runner counts the
 * jobs that ended on their own meanwhile: callbacks_finished_while_stopping.) */
static void on_drain_over(uv_timer_t *t)
{
    struct delivery *d = t->data;
    if (d->in_flight > 0)
        log_warn("event=shutdown_callbacks_cut_off count=%d: their tasks are sent again at the "
                 "next start",
                 d->in_flight);
    close_now(d);
}

void delivery_close(struct delivery *d, uint64_t wait_ms, void (*closed)(void *arg), void *arg)
{
    d->closing = 1;
    d->closed = closed;
    d->closed_arg = arg;
    struct delivery_result r = {0, 0, "shutting down", -1, 1};
    /* queued jobs: never sent */
    while (d->queue_head) {
        struct job *job = d->queue_head;
        d->queue_head = job->next;
        job->done(job->arg, &r);
        free(job);
    }
    d->queue_tail = NULL;
    d->queued = 0;
    if (d->in_flight > 0 && wait_ms > 0) {
        d->draining = 1;
        uv_timer_start(&d->drain, on_drain_over, wait_ms, 0);
        return;
    }
    close_now(d);
}

/* Ends what is still running (abandoned) and closes every handle. */
static void close_now(struct delivery *d)
{
    d->draining = 0;
    uv_timer_stop(&d->drain);
    uv_close((uv_handle_t *)&d->drain, on_timer_closed);
    if (d->client) {
        /* running requests end with "shutting down"; then on_client_closed */
        struct http_client *c = d->client;
        d->client = NULL;
        http_client_close(c, on_client_closed, d);
        uv_timer_stop(&d->timer);
        uv_close((uv_handle_t *)&d->timer, on_timer_closed);
        return;
    }
    /* running transfers end with the same error */
    while (d->running) {
        struct xfer *x = d->running;
        curl_multi_remove_handle(d->multi, x->easy);
        finish(d, x, CURLE_ABORTED_BY_CALLBACK);
    }
    /* cleanup closes every connection, which calls close_socket_cb */
    curl_multi_cleanup(d->multi);
    d->multi = NULL;
    while (d->free_xfers) {
        struct xfer *x = d->free_xfers;
        d->free_xfers = x->next_free;
        curl_easy_cleanup(x->easy);
        curl_slist_free_all(x->signed_headers);
        free(x);
    }
    /* libcurl is gone. A socket it did not hand back through close_socket_cb
     * (seen rarely under load with curl 7.88: a kept-alive connection whose
     * close skipped the callback) is closed here, so no poll handle outlives
     * the delivery and the loop can end. */
    size_t left = 0;
    for (size_t i = 0; i < d->nsocks; i++)
        if (d->socks[i]) {
            left++;
            close_socket_cb(d, (curl_socket_t)i);
        }
    if (left)
        log_debug("event=delivery_closed_leftover_sockets count=%zu", left);
    curl_slist_free_all(d->headers);
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}

void delivery_signature(const char *key, const char *body, size_t len, char *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)body, len, mac, &n);
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256=", 7);
    for (unsigned int i = 0; i < n; i++) {
        out[7 + 2 * i] = hex[mac[i] >> 4];
        out[8 + 2 * i] = hex[mac[i] & 15];
    }
    out[7 + 2 * n] = '\0';
}
