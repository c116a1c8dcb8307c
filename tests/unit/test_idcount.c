/* idcount: counts per id (added twice, removed once: still there), absent
 * ids, growth through many ids shaped as task ids are, removal by backward
 * shift checked against a plain array through a long random run, clear
 * (small: kept; large: given back). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "../../src/core/idcount.h"

/* a task id: creation time in ms in the high bits, a sequence number below */
#define TASK_ID(ms, seq) (((uint64_t)(ms) << 20) | (seq))

static void test_counts(void **state)
{
    (void)state;
    struct idcount c;
    idcount_init(&c);
    assert_false(idcount_has(&c, 42)); /* empty: no table yet */
    idcount_remove(&c, 42);            /* nothing to remove */
    idcount_add(&c, TASK_ID(1000, 1));
    idcount_add(&c, TASK_ID(1000, 2));
    idcount_add(&c, TASK_ID(1000, 1)); /* twice */
    assert_int_equal(idcount_len(&c), 2);
    assert_true(idcount_has(&c, TASK_ID(1000, 1)));
    assert_false(idcount_has(&c, TASK_ID(1000, 3)));
    idcount_remove(&c, TASK_ID(1000, 3)); /* absent: nothing changes */
    assert_int_equal(idcount_len(&c), 2);
    idcount_remove(&c, TASK_ID(1000, 1));
    assert_true(idcount_has(&c, TASK_ID(1000, 1))); /* once left */
    idcount_remove(&c, TASK_ID(1000, 1));
    assert_false(idcount_has(&c, TASK_ID(1000, 1)));
    assert_true(idcount_has(&c, TASK_ID(1000, 2)));
    assert_int_equal(idcount_len(&c), 1);
    idcount_clear(&c);
    assert_int_equal(idcount_len(&c), 0);
    assert_false(idcount_has(&c, TASK_ID(1000, 2)));
    idcount_add(&c, TASK_ID(1000, 2)); /* usable after a clear */
    assert_true(idcount_has(&c, TASK_ID(1000, 2)));
    idcount_free(&c);
}

/* A long random run of adds and removes over ids that share their low bits,
 * each step checked against a plain array of counts: a removal that broke a
 * probe run (a backward shift gone wrong) would hide an id still counted. */
static void test_against_an_array(void **state)
{
    (void)state;
    enum { IDS = 3000, STEPS = 200000 };
    static uint32_t want[IDS];
    struct idcount c;
    idcount_init(&c);
    srand(7);
    size_t len = 0;
    for (int step = 0; step < STEPS; step++) {
        int k = rand() % IDS;
        uint64_t id = TASK_ID(7000 + k / 50, k % 50);
        if (rand() % 2) {
            len += want[k]++ == 0;
            idcount_add(&c, id);
        } else {
            len -= want[k] == 1;
            want[k] -= want[k] > 0;
            idcount_remove(&c, id);
        }
        assert_int_equal(idcount_len(&c), len);
        if (step % 5000 == 0)
            for (int j = 0; j < IDS; j++)
                assert_int_equal(idcount_has(&c, TASK_ID(7000 + j / 50, j % 50)), want[j] > 0);
    }
    for (int j = 0; j < IDS; j++) /* empty it the same way */
        while (want[j]--)
            idcount_remove(&c, TASK_ID(7000 + j / 50, j % 50));
    assert_int_equal(idcount_len(&c), 0);
    idcount_free(&c);
}

static void test_many(void **state)
{
    (void)state;
    struct idcount c;
    idcount_init(&c);
    enum { N = 20000 };
    for (uint64_t i = 0; i < N; i++) /* 100 tasks a millisecond */
        idcount_add(&c, TASK_ID(5000 + i / 100, i % 100));
    assert_int_equal(idcount_len(&c), N);
    assert_true(c.len * 2 <= c.cap);
    for (uint64_t i = 0; i < N; i++) {
        assert_true(idcount_has(&c, TASK_ID(5000 + i / 100, i % 100)));
        assert_false(idcount_has(&c, TASK_ID(5000 + i / 100, 100 + i % 100)));
    }
    idcount_clear(&c); /* a large table is given back */
    assert_int_equal(c.cap, 0);
    assert_false(idcount_has(&c, TASK_ID(5000, 0)));
    idcount_add(&c, TASK_ID(5000, 0));
    assert_true(idcount_has(&c, TASK_ID(5000, 0)));
    idcount_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_counts),
                                       cmocka_unit_test(test_against_an_array),
                                       cmocka_unit_test(test_many)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
