/* util: copies, the monotonic clock, log levels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "../../src/util.h"

static void test_util(void **state)
{
    (void)state;
    char *p = xstrndup("abcdef", 3);
    assert_string_equal(p, "abc");
    free(p);
    int *z = xcalloc(4, sizeof *z);
    assert_int_equal(z[0] | z[1] | z[2] | z[3], 0);
    z = xrealloc(z, 100 * sizeof *z);
    z[99] = 1;
    free(z);
    uint64_t a = util_now_ms(), b = util_now_ms();
    assert_true(b >= a && a > 0);
    uint64_t wall = util_wall_ms(), secs = (uint64_t)time(NULL);
    assert_true(wall / 1000 + 1 >= secs && wall / 1000 <= secs + 1); /* the epoch, in ms */
    log_set_level(LOG_WARN);
    assert_false(log_enabled(LOG_INFO));
    assert_true(log_enabled(LOG_ERROR));
    log_set_level(LOG_INFO);
    assert_true(log_enabled(LOG_INFO));
}

/* The soft open-files limit goes up to what is wanted, never past the
 * hard limit, and never down. */
static void test_nofile_raise(void **state)
{
    (void)state;
    struct rlimit rl = {64, 256};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0); /* for good: the process ends here */
    assert_int_equal(util_nofile_raise(32), 64);       /* not lowered */
    assert_int_equal(util_nofile_raise(100), 100);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_int_equal(rl.rlim_cur, 100);
    assert_int_equal(rl.rlim_max, 256);
    assert_int_equal(util_nofile_raise(1000), 256); /* up to the hard limit */
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_int_equal(rl.rlim_cur, 256);
}

/* A closed descriptor 0-2 gets /dev/null; an open one is left as it is. */
static int is_dev_null(int fd)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat("/dev/null", &b) == 0 && a.st_rdev == b.st_rdev &&
           S_ISCHR(a.st_mode);
}

static size_t vline(char *text, size_t cap, size_t used, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = util_vline(text, cap, used, fmt, ap);
    va_end(ap);
    return n;
}

/* One line after a prefix, a newline at its end; cut short to fit. */
static void test_vline(void **state)
{
    (void)state;
    char text[16] = "P: ";
    assert_int_equal(vline(text, sizeof text, 3, "%d ok", 42), 9);
    assert_memory_equal(text, "P: 42 ok\n", 9);
    assert_int_equal(vline(text, sizeof text, 3, "%s", "0123456789abcdef"), 15);
    assert_memory_equal(text, "P: 0123456789a\n", 15); /* cap - 1 bytes, the newline kept */
    assert_int_equal(vline(text, sizeof text, 3, "%s", ""), 4);
    assert_memory_equal(text, "P: \n", 4);
}

/* A value from outside as one quoted, escaped token, cut short whole. */
static void test_quote(void **state)
{
    (void)state;
    char q[64];
    assert_string_equal(util_quote(q, sizeof q, "HTTP 400: {\"message\":\"x\"}"),
                        "\"HTTP 400: {\\\"message\\\":\\\"x\\\"}\"");
    assert_string_equal(util_quote(q, sizeof q, "a\\b\nc\x01\x7f"), "\"a\\\\b\\u000ac\\u0001\\u007f\"");
    assert_string_equal(util_quote(q, sizeof q, ""), "\"\"");
    assert_string_equal(util_quote(q, sizeof q, "r\xc3\xa9sum\xc3\xa9"), "\"r\xc3\xa9sum\xc3\xa9\"");
    char small[10]; /* 9 characters: what fits whole, or 4 bytes of it and ..." */
    assert_string_equal(util_quote(small, sizeof small, "1234567"), "\"1234567\"");
    assert_string_equal(util_quote(small, sizeof small, "12345678"), "\"1234...\"");
    assert_string_equal(util_quote(small, sizeof small, "12\"45678"), "\"12\\\"...\"");
    assert_string_equal(util_quote(small, sizeof small, "123\"5678"), "\"123...\""); /* no lone \ */
    assert_string_equal(util_quote(small, sizeof small, "123\xc3\xa9" "5678"), "\"123...\"");
    assert_string_equal(util_quote(small, sizeof small, "1\xc3\xa9\xc3\xa9" "5678"), "\"1\xc3\xa9...\"");
    char tiny[8];
    assert_string_equal(util_quote(tiny, sizeof tiny, "123456789"), "\"12...\"");
}

static void test_stdio_open(void **state)
{
    (void)state;
    int in = dup(0), out = dup(1);
    assert_true(in > 2 && out > 2);
    int lowest = open("/dev/null", O_RDONLY); /* the lowest free above 0-2 */
    assert_true(lowest > 2);
    close(lowest);
    struct stat err_was, err_now;
    assert_int_equal(fstat(2, &err_was), 0);
    close(0);
    close(1);
    int rc = util_stdio_open();
    int null0 = is_dev_null(0), null1 = is_dev_null(1);
    int rc_again = util_stdio_open(); /* all open: nothing opened */
    int next = open("/dev/null", O_RDONLY);
    /* stdout back before any assertion prints */
    dup2(in, 0);
    dup2(out, 1);
    close(in);
    close(out);
    if (next >= 0)
        close(next);
    assert_int_equal(rc, 0);
    assert_true(null0 && null1);
    assert_int_equal(rc_again, 0);
    assert_int_equal(next, lowest); /* nothing else was opened */
    assert_int_equal(fstat(2, &err_now), 0);
    assert_true(err_now.st_ino == err_was.st_ino && err_now.st_dev == err_was.st_dev);

    /* no descriptor to open /dev/null on: said, not hidden (main exits 1) */
    struct rlimit was, one;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &was), 0);
    out = dup(1);
    close(1);
    one = was;
    one.rlim_cur = 1; /* 0 open, 1 would be past the limit */
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &one), 0);
    rc = util_stdio_open();
    setrlimit(RLIMIT_NOFILE, &was);
    dup2(out, 1);
    close(out);
    assert_int_equal(rc, -EMFILE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_util),
                                       cmocka_unit_test(test_vline),
                                       cmocka_unit_test(test_quote),
                                       cmocka_unit_test(test_stdio_open),
                                       cmocka_unit_test(test_nofile_raise)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
