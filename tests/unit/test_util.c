/* util: copies, the monotonic clock, log levels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_util)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
