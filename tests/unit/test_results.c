/* results (the stand-in main service's table): a body stored and replaced
 * under its key, keys absent; through growths, every key found whether its
 * old bucket was moved yet or not, a key put again while it waits in the
 * old table replaced there (not stored twice), and no put moving more than
 * RESULTS_MOVE_STEP buckets' entries (the table that moved all of them at
 * once stopped the stand-in for seconds at millions of entries). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/mainsvc/results.h"

static void key_of(char *out, size_t n, unsigned i)
{
    snprintf(out, n, "\"rid-%u\"", i);
}

static void test_put_get_replace(void **state)
{
    (void)state;
    struct results r;
    results_init(&r);
    assert_null(results_get(&r, "\"a\"")); /* empty: no table yet */
    assert_int_equal(results_put(&r, "\"a\"", "one", 3), 1);
    assert_int_equal(results_put(&r, "42", "two", 3), 1);
    assert_int_equal(results_count(&r), 2);
    const struct result *e = results_get(&r, "\"a\"");
    assert_non_null(e);
    assert_int_equal(e->len, 3);
    assert_memory_equal(e->body, "one", 3);
    assert_int_equal(results_put(&r, "\"a\"", "three!", 6), 0); /* replaced */
    assert_int_equal(results_count(&r), 2);
    e = results_get(&r, "\"a\"");
    assert_int_equal(e->len, 6);
    assert_memory_equal(e->body, "three!", 6);
    assert_null(results_get(&r, "\"b\""));
    assert_null(results_get(&r, "\"42\"")); /* the string is not the number */
    assert_non_null(results_get(&r, "42"));
    results_free(&r);
}

/* Many keys: at each put during a growth, a key stored before it (still in
 * the old table or moved) is found, and put again is replaced, not added. */
static void test_growth_without_stopping(void **state)
{
    (void)state;
    struct results r;
    results_init(&r);
    enum { N = 300000 };
    char key[32], body[32];
    size_t growths = 0, seen_old = 0;
    for (unsigned i = 0; i < N; i++) {
        key_of(key, sizeof key, i);
        int n = snprintf(body, sizeof body, "b%u", i);
        size_t buckets = r.ncur;
        assert_int_equal(results_put(&r, key, body, (size_t)n), 1);
        growths += r.ncur != buckets;
        if (r.old) {
            seen_old++;
            /* an earlier key, put again while the table moves: replaced */
            unsigned j = i * 7919u % (i + 1);
            key_of(key, sizeof key, j);
            n = snprintf(body, sizeof body, "again%u", j);
            assert_int_equal(results_put(&r, key, body, (size_t)n), 0);
        }
    }
    assert_int_equal(results_count(&r), N);
    assert_true(growths >= 9); /* 1024 buckets to 1,048,576 */
    assert_true(seen_old > 0);
    assert_true(r.most_moved <= 64); /* a few buckets' entries, never a table's */
    for (unsigned i = 0; i < N; i++) {
        key_of(key, sizeof key, i);
        const struct result *e = results_get(&r, key);
        assert_non_null(e);
        char want[32];
        int n = snprintf(want, sizeof want, "b%u", i);
        if (e->len != (size_t)n || memcmp(e->body, want, (size_t)n) != 0) {
            n = snprintf(want, sizeof want, "again%u", i);
            assert_int_equal(e->len, (size_t)n);
            assert_memory_equal(e->body, want, (size_t)n);
        }
    }
    key_of(key, sizeof key, N);
    assert_null(results_get(&r, key));
    results_free(&r); /* with a growth under way or not: ASan sees no leak */
}

/* Freed in the middle of a growth: the old table's rest freed too (ASan). */
static void test_free_while_growing(void **state)
{
    (void)state;
    struct results r;
    results_init(&r);
    char key[32];
    for (unsigned i = 0; !(r.old && r.moved > 0) || i < 2000; i++) {
        key_of(key, sizeof key, i);
        results_put(&r, key, "x", 1);
    }
    assert_non_null(r.old);
    results_free(&r);
    assert_null(r.cur);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_replace),
        cmocka_unit_test(test_growth_without_stopping),
        cmocka_unit_test(test_free_while_growing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
