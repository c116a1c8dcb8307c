/* memtrim: a trim once the load has settled at half its peak or less, by at
 * least MEMTRIM_MIN_DROP; never under a steady load nor while it falls; the
 * timer's ticks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/memtrim.h"

/* malloc_trim counted, not run (-Wl,--wrap=malloc_trim) */
static int trims;
int __wrap_malloc_trim(size_t pad);
int __wrap_malloc_trim(size_t pad)
{
    (void)pad;
    trims++;
    return 1;
}

static void test_due(void **state)
{
    (void)state;
    uint64_t peak = 0, prev = 0;
    assert_false(memtrim_due(&peak, &prev, 50000, 10000)); /* rising */
    assert_int_equal(peak, 50000);
    assert_int_equal(prev, 50000);
    assert_false(memtrim_due(&peak, &prev, 40000, 10000)); /* steady: above half */
    assert_false(memtrim_due(&peak, &prev, 39500, 10000));
    assert_false(memtrim_due(&peak, &prev, 10000, 10000)); /* draining */
    assert_int_equal(peak, 50000);
    assert_true(memtrim_due(&peak, &prev, 9001, 10000));   /* 999 fewer: settled, below half */
    assert_int_equal(peak, 9001);                          /* counted again from here */
    assert_false(memtrim_due(&peak, &prev, 0, 10000));     /* 9,001 fewer only */
    assert_false(memtrim_due(&peak, &prev, 30000, 10000)); /* a new load ... */
    assert_false(memtrim_due(&peak, &prev, 20000, 10000)); /* 10,000 fewer, above half */
    assert_false(memtrim_due(&peak, &prev, 15000, 10000)); /* half, still falling */
    assert_true(memtrim_due(&peak, &prev, 15000, 10000));  /* settled at half */
    assert_false(memtrim_due(&peak, &prev, 15000, 10000)); /* nothing more to give back */
}

static const uint64_t loads[] = {5000, 20000, 12000, 4000, 3500, 0, 30000, 30000};
static int ticks;
static struct memtrim trim;

static uint64_t next_load(void *arg)
{
    (void)arg;
    uint64_t v = loads[ticks++];
    if (ticks == (int)(sizeof loads / sizeof loads[0]))
        memtrim_stop(&trim);
    return v;
}

/* The timer looks once a period and trims once here (20,000 -> 3,500, settled). */
static void test_ticks(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    assert_int_equal(memtrim_start(&trim, &loop, 5, next_load, NULL), 0);
    uv_ref((uv_handle_t *)&trim.timer); /* unreferenced, it would not hold the loop */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(ticks, 8);
    assert_int_equal(trims, 1);
    assert_int_equal(trim.trims, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_due), cmocka_unit_test(test_ticks)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
