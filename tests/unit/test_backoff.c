/* backoff: every delay within [0, min(cap, base * 2^(n-1))]; what is retried. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "../../src/core/backoff.h"

static void test_schedule(void **state)
{
    (void)state;
    struct backoff_policy p = {1000, 300000, 20, 86400000};
    assert_int_equal(backoff_ceiling_ms(&p, 1), 1000);
    assert_int_equal(backoff_ceiling_ms(&p, 2), 2000);
    assert_int_equal(backoff_ceiling_ms(&p, 5), 16000);
    assert_int_equal(backoff_ceiling_ms(&p, 9), 256000);
    assert_int_equal(backoff_ceiling_ms(&p, 10), 300000);
    assert_int_equal(backoff_ceiling_ms(&p, 1000), 300000);
    uint64_t x = 88172645463325252ull;
    for (uint32_t n = 1; n <= 40; n++) {
        uint64_t ceiling = 1000;
        for (uint32_t i = 1; i < n && ceiling < 300000; i++)
            ceiling *= 2;
        if (ceiling > 300000)
            ceiling = 300000;
        uint64_t max_seen = 0;
        for (int k = 0; k < 2000; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint64_t d = backoff_delay_ms(&p, n, x, -1);
            assert_true(d <= ceiling);
            if (d > max_seen)
                max_seen = d;
        }
        assert_true(max_seen > ceiling / 2); /* the whole range is used */
    }
    assert_int_equal(backoff_delay_ms(&p, 1, 12345, 7), 7000);    /* Retry-After wins */
    assert_int_equal(backoff_delay_ms(&p, 1, 12345, 9999), 300000); /* ... capped */
}

static void test_retryable(void **state)
{
    (void)state;
    assert_true(backoff_retryable(0));
    assert_true(backoff_retryable(500));
    assert_true(backoff_retryable(503));
    assert_true(backoff_retryable(408));
    assert_true(backoff_retryable(429));
    assert_false(backoff_retryable(400));
    assert_false(backoff_retryable(404));
    assert_false(backoff_retryable(301));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_schedule),
                                       cmocka_unit_test(test_retryable)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
