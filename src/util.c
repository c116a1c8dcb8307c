#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "output.h"

static enum log_level min_level = LOG_INFO;

static void oom(size_t n)
{
    fprintf(stderr, "FATAL out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p)
        oom(count * n);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

void *xaligned_alloc(size_t align, size_t n)
{
    void *p = aligned_alloc(align, n);
    if (!p)
        oom(n);
    return p;
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void log_set_level(enum log_level level)
{
    min_level = level;
}

int log_enabled(enum log_level level)
{
    return level >= min_level;
}

void log_write(enum log_level level, const char *file, int line, const char *fmt, ...)
{
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if (level < min_level)
        return;
    const char *base = strrchr(file, '/');
    char text[1152];
    int used = snprintf(text, 128, "%s %s:%d ", names[level], base ? base + 1 : file, line);
    va_list ap;
    va_start(ap, fmt);
    size_t n = util_vline(text, sizeof text, used < 128 ? (size_t)used : 127, fmt, ap);
    va_end(ap);
    output_line(OUTPUT_STDERR, text, n);
}

size_t util_vline(char *text, size_t cap, size_t used, const char *fmt, va_list ap)
{
    int n = vsnprintf(text + used, cap - used - 1, fmt, ap); /* room left for the newline */
    size_t len = used + (n > 0 ? (size_t)n : 0);
    if (len > cap - 2)
        len = cap - 2;
    text[len++] = '\n';
    return len;
}

/* The escaped form of the character at s (a UTF-8 sequence kept whole) in
 * e; its length there, and the bytes of s it took in *took. */
static size_t quote_unit(const char *s, char e[8], size_t *took)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char ch = (unsigned char)s[0];
    size_t k = 0;
    *took = 1;
    if (ch == '"' || ch == '\\') {
        e[k++] = '\\';
        e[k++] = (char)ch;
    } else if (ch < 0x20 || ch == 0x7f) {
        memcpy(e, "\\u00", 4);
        k = 4;
        e[k++] = hex[ch >> 4];
        e[k++] = hex[ch & 15];
    } else {
        e[k++] = (char)ch;
        if (ch >= 0xc0) /* a lead byte: its continuation bytes go with it */
            for (; k < 4 && ((unsigned char)s[k] & 0xc0) == 0x80; k++)
                e[k] = s[k];
        *took = k;
    }
    return k;
}

char *util_quote(char *out, size_t size, const char *s)
{
    size_t total = 0, took;
    char e[8];
    for (const char *p = s; *p; p += took)
        total += quote_unit(p, e, &took);
    /* all of it with its quotes and NUL, or what fits before '..."' and NUL */
    size_t room = total + 3 <= size ? total : size - 6;
    size_t n = 0;
    out[n++] = '"';
    for (const char *p = s; *p; p += took) {
        size_t k = quote_unit(p, e, &took);
        if (n - 1 + k > room)
            break;
        memcpy(out + n, e, k);
        n += k;
    }
    if (room < total) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n++] = '"';
    out[n] = '\0';
    return out;
}

uint64_t util_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* SIGINT (Ctrl-C) and SIGHUP (the terminal closed) stop as SIGTERM does,
 * unless ignored when the process started: a shell starts a background job
 * with SIGINT ignored, nohup with SIGHUP ignored, and both mean "do not stop
 * me for this". Set by util_stop_signals_block. */
static int int_stops, hup_stops;

static int ignored_at_start(int signum)
{
    struct sigaction sa;
    return sigaction(signum, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN;
}

static void stop_signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    if (int_stops)
        sigaddset(set, SIGINT);
    if (hup_stops)
        sigaddset(set, SIGHUP);
}

void util_stop_signals_block(void)
{
    int_stops = !ignored_at_start(SIGINT);
    hup_stops = !ignored_at_start(SIGHUP);
    sigset_t set;
    stop_signal_set(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

struct stop_waiter {
    void (*cb)(int signum, void *arg);
    void *arg;
};

static pthread_t stop_thread;
static _Atomic int stop_thread_ending;

static void *stop_signal_thread(void *p)
{
    struct stop_waiter w = *(struct stop_waiter *)p;
    free(p);
    sigset_t set;
    stop_signal_set(&set);
    for (;;) {
        int signum;
        if (sigwait(&set, &signum) != 0)
            continue;
        if (atomic_load(&stop_thread_ending))
            return NULL;
        w.cb(signum, w.arg);
    }
}

void util_stop_signals_end(void)
{
    atomic_store(&stop_thread_ending, 1);
    pthread_kill(stop_thread, SIGTERM);
    pthread_join(stop_thread, NULL);
}

int util_stop_signals_wait(void (*cb)(int signum, void *arg), void *arg)
{
    struct stop_waiter *w = xmalloc(sizeof *w);
    w->cb = cb;
    w->arg = arg;
    int rc = pthread_create(&stop_thread, NULL, stop_signal_thread, w);
    if (rc != 0) {
        free(w);
        return -rc;
    }
    return 0;
}

int util_stdio_open(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        if (open("/dev/null", O_RDWR) < 0) /* the lowest closed: fd, every lower one open */
            return -errno;
    }
    return 0;
}

unsigned long util_nofile_raise(unsigned long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return ULONG_MAX;
    if (rl.rlim_cur == RLIM_INFINITY)
        return ULONG_MAX;
    if (rl.rlim_cur < want) {
        rlim_t to = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
        if (to > rl.rlim_cur) {
            struct rlimit up = {to, rl.rlim_max};
            if (setrlimit(RLIMIT_NOFILE, &up) == 0)
                rl.rlim_cur = to;
        }
    }
    return (unsigned long)rl.rlim_cur;
}
