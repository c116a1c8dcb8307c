/*
 * util: allocation that aborts on failure, and the logging macros.
 *
 * xmalloc/xcalloc/xrealloc/xstrndup are for small internal allocations whose
 * size never comes from outside unchecked (CONVENTIONS 5): on failure they
 * print a message and abort. Sizes from the wire are checked against
 * limits.h before anything is allocated.
 *
 * Logging: one line per event to stderr, "LEVEL file:line key=value ...".
 * log_* may be called from any thread: each line is queued whole for the
 * output thread (output.h), so a stalled reader of stderr never stops the
 * caller. Secrets are never passed to them.
 */
#ifndef EXCHANGED_UTIL_H
#define EXCHANGED_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
/* aligned_alloc: n a multiple of align, a power of two; free() frees it. */
void *xaligned_alloc(size_t align, size_t n);
/* Copy of the first n bytes of s plus a NUL; caller frees. */
char *xstrndup(const char *s, size_t n);

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Minimum level printed; set once at start-up (before threads). */
void log_set_level(enum log_level level);
int log_enabled(enum log_level level);
void log_write(enum log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_write(LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__); } while (0)
#define log_info(...) log_write(LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)

/* Formats fmt after the used bytes already in text (a prefix) as one line
 * of at most cap - 1 bytes: the message cut short to fit, a newline at the
 * end, no NUL. Returns the line's length. For log_write and the lines that
 * cannot go through it (output.c's own notes, under its lock). */
size_t util_vline(char *text, size_t cap, size_t used, const char *fmt, va_list ap);

/* A log value from outside (a main service's answer, an error with a path
 * in it) as one quoted token: '"' + s with '"', '\\' and control bytes
 * escaped as JSON escapes them + '"', NUL-terminated; cut short at a whole
 * character (a UTF-8 sequence is kept whole) to fit size (at least 8), and
 * then ending '..."'. So a body such
 * as {"message":"x"} keeps the line's key="value" pairs parseable. Returns
 * out. */
char *util_quote(char *out, size_t size, const char *s);

/* Milliseconds on a monotonic clock. */
uint64_t util_now_ms(void);

/* Milliseconds since the epoch (the wall clock: stored times, task ids). */
uint64_t util_wall_ms(void);

/* Opens /dev/null on each of descriptors 0, 1 and 2 that is closed, so that
 * no socket, epoll or database descriptor opened later lands there: a
 * program started with stdout closed (`>&-`) would otherwise print its lines
 * into whatever took descriptor 1, and libuv aborts when it closes a handle
 * on 0-2. First thing in main. 0 or -errno. */
int util_stdio_open(void);

/* Raises the soft open-files limit (RLIMIT_NOFILE) to want if it is lower,
 * as far as the hard limit allows; returns the soft limit now in effect
 * (ULONG_MAX when unlimited or unknown). */
unsigned long util_nofile_raise(unsigned long want);

/* Stop signals (SIGTERM; SIGINT and SIGHUP unless ignored at the start, as
 * a shell's background job ignores SIGINT and nohup SIGHUP) taken by one thread with sigwait, not by a
 * handler: util_stop_signals_block() before any thread starts (every thread
 * inherits the block, so none is ended or interrupted by them), then
 * util_stop_signals_wait(cb, arg) starts the thread that calls cb(signum,
 * arg) for each (cb runs on that thread: uv_async_send is the way back to a
 * loop). A handler lost a SIGTERM now and then under ThreadSanitizer, which
 * defers asynchronous signals; sigwait leaves nothing to defer. 0 or -errno. */
void util_stop_signals_block(void);
int util_stop_signals_wait(void (*cb)(int signum, void *arg), void *arg);
/* Ends that thread (before a clean exit: no thread is left running). */
void util_stop_signals_end(void);

#endif
