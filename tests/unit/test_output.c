/* output: lines written in order by their own threads; a reader that stops
 * reading, or goes away, never blocks the caller; the exit's wait bounded. */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../src/buf.h"
#include "../../src/output.h"
#include "../../src/util.h"

/* Reads from fd into b until it holds want bytes or the wait runs out. */
static void read_until(int fd, struct buf *b, size_t want, int wait_ms)
{
    uint64_t end = util_now_ms() + (uint64_t)wait_ms;
    char chunk[65536];
    while (b->len < want && util_now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n > 0)
            buf_append(b, chunk, (size_t)n);
    }
}

/* Reads from fd until text appears in b (or the wait runs out). */
static int read_until_text(int fd, struct buf *b, const char *text, int wait_ms)
{
    uint64_t end = util_now_ms() + (uint64_t)wait_ms;
    while (!(b->data && strstr(b->data, text)) && util_now_ms() < end)
        read_until(fd, b, b->len + 1, 100);
    return b->data && strstr(b->data, text);
}

/* Sums N over the "event=output_dropped stream=stdout lines=N" warnings read
 * from fd, reading until the sum reaches want or the wait runs out. */
static uint64_t warned_drops(int fd, struct buf *b, size_t cap, uint64_t want, int wait_ms)
{
    uint64_t end = util_now_ms() + (uint64_t)wait_ms, sum = 0;
    for (;;) {
        sum = 0;
        const char *key = "event=output_dropped stream=stdout lines=";
        for (const char *p = b->data; p && (p = strstr(p, key)) != NULL;) {
            p += strlen(key);
            char *rest;
            sum += strtoull(p, &rest, 10);
            char tail[64];
            snprintf(tail, sizeof tail, " queue_bytes=%zu:", cap);
            assert_memory_equal(rest, tail, strlen(tail));
            p = rest;
        }
        if (sum >= want || util_now_ms() >= end)
            return sum;
        read_until(fd, b, b->len + 1, 100);
    }
}

/* Two pipes, stdout's of 4 KiB when small (it fills at once when nobody
 * reads it), and the output started on their write ends. */
static void start_on_pipes(int out[2], int err[2], int small, size_t cap)
{
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    if (small)
        assert_int_equal(fcntl(out[1], F_SETPIPE_SZ, 4096), 4096);
    assert_int_equal(output_start(out[1], err[1], cap), 0);
}

static void close_pipes(int out[2], int err[2])
{
    for (int i = 0; i < 2; i++) {
        close(out[i]);
        close(err[i]);
    }
}

static void test_lines_in_order(void **state)
{
    (void)state;
    int out[2], err[2];
    start_on_pipes(out, err, 0, 1 << 20);
    struct buf want;
    buf_init(&want);
    for (int i = 0; i < 5000; i++) {
        char line[64];
        int n = snprintf(line, sizeof line, "bill %d\n", i);
        output_line(OUTPUT_STDOUT, line, (size_t)n);
        buf_append(&want, line, (size_t)n);
    }
    log_warn("event=test n=%d", 1);
    log_error("event=test n=%d", 2);
    struct buf got_out, got_err;
    buf_init(&got_out);
    buf_init(&got_err);
    read_until(out[0], &got_out, want.len, 5000);
    assert_int_equal(got_out.len, want.len);
    assert_memory_equal(got_out.data, want.data, want.len);
    assert_true(read_until_text(err[0], &got_err, "n=2\n", 5000));
    assert_non_null(strstr(got_err.data, "WARN test_output.c:"));
    assert_true(strstr(got_err.data, "event=test n=1\n") < strstr(got_err.data, "event=test n=2\n"));

    /* a lone stdout line goes out by itself (within OUTPUT_PERIOD_MS) */
    buf_reset(&got_out);
    output_line(OUTPUT_STDOUT, "alone\n", 6);
    read_until(out[0], &got_out, 6, 5000);
    assert_string_equal(got_out.data, "alone\n");
    assert_int_equal(output_dropped(), 0);

    output_line(OUTPUT_STDOUT, "last\n", 5);
    output_stop(5000); /* writes what is queued first */
    buf_reset(&got_out);
    read_until(out[0], &got_out, 5, 1000);
    assert_string_equal(got_out.data, "last\n");
    close_pipes(out, err);
    buf_free(&want);
    buf_free(&got_out);
    buf_free(&got_err);
}

/* stdout's reader stops reading: callers go on at once, the log still gets
 * through, what does not fit is counted; once the reader reads again the
 * lines flow and a warning says how many were lost. */
static void test_stalled_reader(void **state)
{
    (void)state;
    int out[2], err[2];
    size_t cap = 2 * OUTPUT_FLUSH_BYTES; /* the first 64 KiB go to the thread at once, and stick */
    start_on_pipes(out, err, 1, cap);
    char line[100];
    memset(line, 'x', sizeof line - 1);
    line[sizeof line - 1] = '\n';
    uint64_t t0 = util_now_ms();
    for (int i = 0; i < 20000; i++) /* 2 MB: 10 times the queue, the batch and the pipe */
        output_line(OUTPUT_STDOUT, line, sizeof line);
    uint64_t took = util_now_ms() - t0;
    assert_true(took < 3000); /* ~ms: the pipe holds 4 KiB, nobody reads it */
    uint64_t dropped = output_dropped();
    /* kept: what the pipe took, the batch the thread took (64 KiB or more,
     * up to the cap when it was slow to wake), and a full queue */
    assert_true(dropped >= 20000 - (4096 + 2 * cap) / sizeof line - 1);
    uint64_t waiting = output_waiting(); /* what the stalled thread has not taken */
    assert_true(waiting > 0 && waiting <= cap);

    struct buf got_err;
    buf_init(&got_err);
    log_warn("event=while_stdout_stalls");
    assert_true(read_until_text(err[0], &got_err, "event=while_stdout_stalls\n", 5000));
    assert_null(strstr(got_err.data, "output_dropped")); /* not until stdout moves */

    /* the reader comes back: everything queued arrives, then a new line */
    struct buf got_out;
    buf_init(&got_out);
    size_t queued = (20000 - (size_t)dropped) * sizeof line;
    read_until(out[0], &got_out, queued, 10000);
    assert_int_equal(got_out.len, queued);
    output_line(OUTPUT_STDOUT, "after\n", 6);
    read_until(out[0], &got_out, queued + 6, 5000);
    assert_int_equal(got_out.len, queued + 6);
    assert_string_equal(got_out.data + queued, "after\n");
    assert_int_equal(output_waiting(), 0);
    /* the warnings (one per batch that follows drops) add up to the drops */
    assert_int_equal(warned_drops(err[0], &got_err, cap, dropped, 5000), dropped);
    assert_int_equal(output_dropped(), dropped); /* the warning is not a drop */
    output_stop(5000);
    close_pipes(out, err);
    buf_free(&got_out);
    buf_free(&got_err);
}

/* stdout's reader goes away: the line is dropped (EPIPE, not a signal),
 * said once, and so is every later one; the log goes on. */
static void test_reader_gone(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* as main.c does */
    int out[2], err[2];
    start_on_pipes(out, err, 0, 1 << 20);
    assert_int_equal(output_dropped(), 0); /* counted from the start */
    close(out[0]);
    output_line(OUTPUT_STDOUT, "lost\n", 5);
    struct buf got_err;
    buf_init(&got_err);
    assert_int_equal(output_flush(5000), 0); /* written off, not waited for */
    assert_true(read_until_text(err[0], &got_err, "event=output_closed stream=stdout error=\"Broken pipe\"", 5000));
    for (int i = 0; i < 10; i++)
        output_line(OUTPUT_STDOUT, "lost\n", 5);
    assert_int_equal(output_dropped(), 11); /* the one the write failed, and these */
    log_warn("event=still_logging");
    assert_true(read_until_text(err[0], &got_err, "event=still_logging\n", 5000));
    output_stop(5000);
    close(out[1]);
    close(err[0]);
    close(err[1]);
    buf_free(&got_err);
}

/* A write that fails with an error a later write may get past (a full
 * disk: /dev/full's ENOSPC): that batch is lost and counted, said once, and
 * the stream goes on once a write succeeds. Before, the first such error
 * dropped the stream's lines until a restart. */
static void test_write_fails_then_recovers(void **state)
{
    (void)state;
    int out[2], err[2];
    start_on_pipes(out, err, 0, 1 << 20);
    uint64_t dropped0 = output_dropped();
    int full = open("/dev/full", O_WRONLY);
    assert_true(full >= 0);
    int pipe_end = dup(out[1]);
    assert_int_equal(dup2(full, out[1]), out[1]); /* the thread's fd: now a full disk */
    struct buf got_err, got;
    buf_init(&got_err);
    buf_init(&got);
    for (int round = 0; round < 3; round++) {
        output_line(OUTPUT_STDOUT, "lost 1\nlost 2\n", 14);
        assert_int_equal(output_flush(5000), 0);
    }
    assert_true(read_until_text(err[0], &got_err,
                                "event=output_failed stream=stdout error=\"No space left on device\"",
                                5000));
    assert_int_equal(output_dropped() - dropped0, 6);
    log_warn("event=still_logging");
    assert_true(read_until_text(err[0], &got_err, "event=still_logging\n", 5000));

    assert_int_equal(dup2(pipe_end, out[1]), out[1]); /* space again */
    output_line(OUTPUT_STDOUT, "back\n", 5);
    assert_int_equal(output_flush(5000), 0);
    read_until(out[0], &got, 5, 5000);
    assert_int_equal(got.len, 5);
    assert_memory_equal(got.data, "back\n", 5);
    assert_true(read_until_text(err[0], &got_err,
                                "event=output_recovered stream=stdout lines_lost=6\n", 5000));
    /* said once each */
    const char *p = strstr(got_err.data, "event=output_failed");
    assert_null(strstr(p + 1, "event=output_failed"));
    assert_int_equal(output_dropped() - dropped0, 6);
    output_stop(5000);
    close_pipes(out, err);
    close(full);
    close(pipe_end);
    buf_free(&got_err);
    buf_free(&got);
}

/* A stdout someone made non-blocking (a shared pipe, a parent's flags):
 * a full pipe is waited on, not taken for a reader gone. */
static void test_non_blocking_descriptor(void **state)
{
    (void)state;
    int out[2], err[2];
    start_on_pipes(out, err, 1, 1 << 20);
    assert_int_equal(fcntl(out[1], F_SETFL, fcntl(out[1], F_GETFL) | O_NONBLOCK), 0);
    struct buf want, got;
    buf_init(&want);
    buf_init(&got);
    for (int i = 0; i < 2000; i++) { /* ~30 KB: the 4 KiB pipe fills many times */
        char line[32];
        int n = snprintf(line, sizeof line, "nb %d\n", i);
        output_line(OUTPUT_STDOUT, line, (size_t)n);
        buf_append(&want, line, (size_t)n);
    }
    read_until(out[0], &got, want.len, 10000);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len);
    assert_int_equal(output_dropped(), 0);
    output_stop(5000);
    close_pipes(out, err);
    buf_free(&want);
    buf_free(&got);
}

/* A reader that never reads again: flush and stop give up after their wait
 * (the exit is not held by it). Last: its stuck thread is let go at the end. */
static void test_exit_wait_bounded(void **state)
{
    (void)state;
    int out[2], err[2];
    start_on_pipes(out, err, 1, 1 << 20);
    char line[1000];
    memset(line, 'y', sizeof line - 1);
    line[sizeof line - 1] = '\n';
    for (int i = 0; i < 100; i++)
        output_line(OUTPUT_STDOUT, line, sizeof line);
    uint64_t t0 = util_now_ms();
    assert_int_equal(output_flush(300), -1);
    output_stop(300);
    uint64_t took = util_now_ms() - t0;
    assert_true(took >= 500 && took < 5000);
    output_line(OUTPUT_STDERR, "direct\n", 7); /* after the stop: stdio (our stderr) */
    close(out[0]); /* the stuck write fails; its thread ends */
    close(err[0]);
}

int main(void)
{
    alarm(120); /* a caller that blocks would hang the suite: end it, failed */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_in_order),
        cmocka_unit_test(test_stalled_reader),
        cmocka_unit_test(test_reader_gone),
        cmocka_unit_test(test_write_fails_then_recovers),
        cmocka_unit_test(test_non_blocking_descriptor),
        cmocka_unit_test(test_exit_wait_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
