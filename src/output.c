#include "output.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "buf.h"
#include "limits.h"
#include "util.h"

struct stream {
    int fd;
    const char *name;
    struct buf pending; /* appended to under the lock */
    uint64_t since_ms;  /* when pending got its first byte */
    uint64_t queued;    /* bytes ever appended */
    uint64_t done;      /* bytes ever written, or discarded once broken */
    uint64_t dropped;   /* lines dropped since the last warning about it */
    int broken;         /* a write failed for good: drop from now on */
    int failing;        /* the last write failed otherwise (a full disk): retried */
    uint64_t lost;      /* lines lost to failed writes while failing */
    int sleeping, exited;
    uv_cond_t wake;     /* its thread: something to write, or stop */
    uv_thread_t thread; /* one per stream: a stalled stdout never holds the log back */
};

static struct {
    uv_mutex_t lock;
    uv_cond_t progress; /* output_flush: more was written */
    atomic_int running;
    int stopping, flush_now, threads;
    size_t cap;
    struct stream s[2];
    atomic_uint_fast64_t dropped_total;
} q;

static int due(const struct stream *st, uint64_t now)
{
    if (!st->pending.len)
        return 0;
    if (st == &q.s[OUTPUT_STDERR] || q.flush_now || q.stopping)
        return 1;
    return st->pending.len >= OUTPUT_FLUSH_BYTES || now >= st->since_ms + OUTPUT_PERIOD_MS;
}

/* Writes all of data to fd; returns 0, or an errno when it cannot. */
static int write_all(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            poll(&p, 1, -1); /* a descriptor someone made non-blocking */
        } else {
            return n < 0 ? errno : EIO;
        }
    }
    return 0;
}

/* A write error that no later write gets past: the reader is gone (EPIPE),
 * or the descriptor takes no writes (closed, or not a file: EBADF, EINVAL).
 * Others (a full disk: ENOSPC, EDQUOT, EFBIG; EIO) may pass, and are
 * retried with the next batch. */
static int gone_for_good(int err)
{
    return err == EPIPE || err == EBADF || err == EINVAL;
}

static uint64_t count_lines(const struct buf *b)
{
    uint64_t n = 0;
    for (const char *p = b->data, *end = b->data + b->len; p && p < end; n++) {
        p = memchr(p, '\n', (size_t)(end - p));
        if (!p)
            break;
        p++;
    }
    return n;
}

/* Appends a line to st's queue, or counts it dropped. Caller holds the lock. */
static void enqueue(struct stream *st, const char *text, size_t len)
{
    if (st->broken || st->pending.len + len > q.cap) {
        if (!st->broken)
            st->dropped++;
        atomic_fetch_add_explicit(&q.dropped_total, 1, memory_order_relaxed);
        return;
    }
    size_t before = st->pending.len;
    if (!before)
        st->since_ms = util_now_ms();
    buf_append(&st->pending, text, len);
    st->queued += len;
    if (st->sleeping && (st == &q.s[OUTPUT_STDERR] || !before ||
                         (before < OUTPUT_FLUSH_BYTES && st->pending.len >= OUTPUT_FLUSH_BYTES)))
        uv_cond_signal(&st->wake);
}

/* A warning of ours about the output itself, queued for stderr. Caller
 * holds the lock. */
static void note(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(int line, const char *fmt, ...)
{
    char text[320];
    int used = snprintf(text, sizeof text, "WARN output.c:%d ", line);
    va_list ap;
    va_start(ap, fmt);
    size_t n = util_vline(text, sizeof text, (size_t)used, fmt, ap);
    va_end(ap);
    enqueue(&q.s[OUTPUT_STDERR], text, n);
}

/* One stream's thread: waits for its lines to be due, writes them. */
static void run(void *arg)
{
    struct stream *st = arg;
    struct buf taken;
    buf_init(&taken);
    uv_mutex_lock(&q.lock);
    for (;;) {
        uint64_t now = util_now_ms();
        if (!due(st, now)) {
            if (q.stopping)
                break;
            st->sleeping = 1;
            if (st->pending.len) {
                uint64_t at = st->since_ms + OUTPUT_PERIOD_MS;
                uv_cond_timedwait(&st->wake, &q.lock, (at > now ? at - now : 1) * 1000000ull);
            } else {
                uv_cond_wait(&st->wake, &q.lock);
            }
            st->sleeping = 0;
            continue;
        }
        struct buf t = taken;
        taken = st->pending;
        st->pending = t;
        buf_reset(&st->pending);
        uint64_t dropped = st->dropped;
        st->dropped = 0;
        if (st == &q.s[OUTPUT_STDOUT])
            q.flush_now = 0;
        uv_mutex_unlock(&q.lock);
        int err = write_all(st->fd, taken.data, taken.len);
        uv_mutex_lock(&q.lock);
        st->done += taken.len;
        if (err && gone_for_good(err)) { /* this batch's lines and the queued ones are lost */
            uint64_t lost = count_lines(&taken) + count_lines(&st->pending);
            atomic_fetch_add_explicit(&q.dropped_total, lost, memory_order_relaxed);
            st->broken = 1;
            st->done += st->pending.len; /* nothing more will be written */
            buf_reset(&st->pending);
            if (st == &q.s[OUTPUT_STDOUT])
                note(__LINE__, "event=output_closed stream=%s error=\"%s\": its lines are dropped "
                     "from now on (output_dropped in /health)", st->name, strerror(err));
        } else if (err) { /* this batch is lost; the next is tried as usual */
            uint64_t lost = count_lines(&taken);
            atomic_fetch_add_explicit(&q.dropped_total, lost, memory_order_relaxed);
            st->lost += lost + dropped; /* with those the full queue dropped */
            if (!st->failing)
                note(__LINE__, "event=output_failed stream=%s error=\"%s\": its lines are dropped "
                     "until a write succeeds (output_dropped in /health)", st->name, strerror(err));
            st->failing = 1;
        } else if (st->failing) {
            note(__LINE__, "event=output_recovered stream=%s lines_lost=%" PRIu64, st->name,
                 st->lost + dropped);
            st->failing = 0;
            st->lost = 0;
        } else if (dropped) {
            note(__LINE__, "event=output_dropped stream=%s lines=%" PRIu64 " queue_bytes=%zu: "
                 "its reader fell behind; those lines are lost", st->name, dropped, q.cap);
        }
        buf_reset(&taken);
        if (taken.cap > 4 * OUTPUT_FLUSH_BYTES)
            buf_free(&taken); /* a backlog's buffer: not kept for the quiet times */
        uv_cond_broadcast(&q.progress);
    }
    st->exited = 1;
    uv_cond_broadcast(&q.progress);
    uv_mutex_unlock(&q.lock);
    buf_free(&taken);
}

/* Tells the threads to write what is queued and end; joins them, or when
 * one is stuck in a write, lets them go (the process's exit ends them). */
static void stop_threads(int join)
{
    uv_mutex_lock(&q.lock);
    q.stopping = 1;
    for (int i = 0; i < q.threads; i++) {
        uv_cond_signal(&q.s[i].wake);
        if (!join)
            pthread_detach(q.s[i].thread); /* uv_thread_t is a pthread_t on Unix */
    }
    uv_mutex_unlock(&q.lock);
    for (int i = 0; join && i < q.threads; i++)
        uv_thread_join(&q.s[i].thread);
}

int output_start(int out_fd, int err_fd, size_t cap)
{
    if (atomic_load(&q.running))
        return UV_EBUSY;
    memset(&q, 0, sizeof q);
    q.s[OUTPUT_STDOUT].fd = out_fd;
    q.s[OUTPUT_STDOUT].name = "stdout";
    q.s[OUTPUT_STDERR].fd = err_fd;
    q.s[OUTPUT_STDERR].name = "stderr";
    q.cap = cap;
    int rc = uv_mutex_init(&q.lock);
    if (rc)
        return rc;
    if ((rc = uv_cond_init(&q.progress)) != 0)
        goto no_progress;
    if ((rc = uv_cond_init(&q.s[0].wake)) != 0)
        goto no_wake0;
    if ((rc = uv_cond_init(&q.s[1].wake)) != 0)
        goto no_wake1;
    for (; q.threads < 2; q.threads++) {
        buf_init(&q.s[q.threads].pending);
        if ((rc = uv_thread_create(&q.s[q.threads].thread, run, &q.s[q.threads])) != 0) {
            stop_threads(1);
            goto no_threads;
        }
    }
    atomic_store(&q.running, 1);
    return 0;
no_threads:
    uv_cond_destroy(&q.s[1].wake);
no_wake1:
    uv_cond_destroy(&q.s[0].wake);
no_wake0:
    uv_cond_destroy(&q.progress);
no_progress:
    uv_mutex_destroy(&q.lock);
    return rc;
}

static void stop_at_exit(void)
{
    output_stop(OUTPUT_EXIT_WAIT_MS);
}

int output_start_stdio(void)
{
    static int registered;
    fflush(stdout); /* what stdio holds goes before the queued lines */
    int rc = output_start(STDOUT_FILENO, STDERR_FILENO, LIMIT_OUTPUT_QUEUE_BYTES);
    if (rc == 0 && !registered) {
        atexit(stop_at_exit);
        registered = 1;
    }
    return rc;
}

void output_line(enum output_stream s, const char *text, size_t len)
{
    if (!atomic_load_explicit(&q.running, memory_order_acquire)) {
        FILE *f = s == OUTPUT_STDOUT ? stdout : stderr;
        fwrite(text, 1, len, f);
        return;
    }
    uv_mutex_lock(&q.lock);
    enqueue(&q.s[s], text, len);
    uv_mutex_unlock(&q.lock);
}

int output_flush(uint64_t wait_ms)
{
    if (!atomic_load(&q.running)) {
        fflush(stdout);
        return 0;
    }
    uint64_t end = util_now_ms() + wait_ms;
    uv_mutex_lock(&q.lock);
    uint64_t want[2] = {q.s[0].queued, q.s[1].queued};
    q.flush_now = 1;
    uv_cond_signal(&q.s[OUTPUT_STDOUT].wake);
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        while (!q.s[i].exited && q.s[i].done < want[i]) {
            uint64_t now = util_now_ms();
            if (now >= end) {
                rc = -1;
                break;
            }
            uv_cond_timedwait(&q.progress, &q.lock, (end - now) * 1000000ull);
        }
    }
    uv_mutex_unlock(&q.lock);
    return rc;
}

void output_stop(uint64_t wait_ms)
{
    if (!atomic_load(&q.running))
        return;
    int flushed = output_flush(wait_ms) == 0;
    atomic_store(&q.running, 0);
    stop_threads(flushed);
    if (!flushed)
        return; /* a thread is stuck in a write: its state stays for it */
    buf_free(&q.s[0].pending);
    buf_free(&q.s[1].pending);
    uv_cond_destroy(&q.s[1].wake);
    uv_cond_destroy(&q.s[0].wake);
    uv_cond_destroy(&q.progress);
    uv_mutex_destroy(&q.lock);
}

uint64_t output_dropped(void)
{
    return atomic_load_explicit(&q.dropped_total, memory_order_relaxed);
}

uint64_t output_waiting(void)
{
    if (!atomic_load(&q.running))
        return 0;
    uv_mutex_lock(&q.lock);
    uint64_t n = q.s[0].pending.len + q.s[1].pending.len;
    uv_mutex_unlock(&q.lock);
    return n;
}
