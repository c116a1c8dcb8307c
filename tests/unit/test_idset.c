/* idset: members found and others not, duplicates counted once, growth
 * through many ids shaped as task ids are, clear (small: kept; large:
 * given back). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "../../src/core/idset.h"

/* a task id: creation time in ms in the high bits, a sequence number below */
#define TASK_ID(ms, seq) (((uint64_t)(ms) << 20) | (seq))

static void test_members(void **state)
{
    (void)state;
    struct idset s;
    idset_init(&s);
    assert_false(idset_has(&s, 42)); /* empty: no table yet */
    idset_add(&s, TASK_ID(1000, 1));
    idset_add(&s, TASK_ID(1000, 2));
    idset_add(&s, TASK_ID(1000, 1)); /* again: once */
    assert_int_equal(idset_len(&s), 2);
    assert_true(idset_has(&s, TASK_ID(1000, 1)));
    assert_true(idset_has(&s, TASK_ID(1000, 2)));
    assert_false(idset_has(&s, TASK_ID(1000, 3)));
    assert_false(idset_has(&s, TASK_ID(1001, 1)));
    idset_clear(&s);
    assert_int_equal(idset_len(&s), 0);
    assert_false(idset_has(&s, TASK_ID(1000, 1)));
    idset_add(&s, TASK_ID(1000, 1)); /* usable after a clear */
    assert_true(idset_has(&s, TASK_ID(1000, 1)));
    idset_free(&s);
}

static void test_many(void **state)
{
    (void)state;
    struct idset s;
    idset_init(&s);
    enum { N = 20000 };
    for (uint64_t i = 0; i < N; i++) /* 100 tasks a millisecond */
        idset_add(&s, TASK_ID(5000 + i / 100, i % 100));
    assert_int_equal(idset_len(&s), N);
    assert_true(s.len * 2 <= s.cap);
    for (uint64_t i = 0; i < N; i++) {
        assert_true(idset_has(&s, TASK_ID(5000 + i / 100, i % 100)));
        assert_false(idset_has(&s, TASK_ID(5000 + i / 100, 100 + i % 100)));
    }
    idset_clear(&s); /* a large table is given back */
    assert_int_equal(s.cap, 0);
    assert_false(idset_has(&s, TASK_ID(5000, 0)));
    idset_add(&s, TASK_ID(5000, 0));
    assert_true(idset_has(&s, TASK_ID(5000, 0)));
    idset_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_members), cmocka_unit_test(test_many)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
