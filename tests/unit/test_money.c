/* money: round2, repr and .2f against 1,200 cases computed by Python
 * (tests/data/money_cases.tsv, made by gen_money.py). Run from tests/unit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/core/money.h"

static void test_python_table(void **state)
{
    (void)state;
    FILE *f = fopen("../data/money_cases.tsv", "r");
    assert_non_null(f);
    char line[2048];
    int n = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        char *fields[5];
        char *save = NULL;
        char *p = line;
        for (int i = 0; i < 5; i++) {
            fields[i] = strtok_r(p, "\t\n", &save);
            p = NULL;
            assert_non_null(fields[i]);
        }
        double d = strtod(fields[0], NULL);
        double c = strtod(fields[1], NULL);
        double r = strtod(fields[2], NULL);
        double s = money_subtotal(d, c, r);
        char repr[MONEY_FMT_MAX], f2[MONEY_FMT_MAX];
        money_format_repr(money_round2(s), repr, sizeof repr);
        money_format_2f(s, f2, sizeof f2);
        if (strcmp(repr, fields[3]) || strcmp(f2, fields[4])) {
            fprintf(stderr, "case %d: %s*%s*%s: got %s / %s, want %s / %s\n", n, fields[0],
                    fields[1], fields[2], repr, f2, fields[3], fields[4]);
            bad++;
        }
        n++;
    }
    fclose(f);
    assert_true(n >= 1000);
    assert_int_equal(bad, 0);
}

static void check_repr(double x, const char *want)
{
    char out[MONEY_FMT_MAX];
    money_format_repr(x, out, sizeof out);
    assert_string_equal(out, want);
}

static void test_repr_shapes(void **state)
{
    (void)state;
    check_repr(3775.0, "3775.0");
    check_repr(0.3, "0.3");
    check_repr(2.67, "2.67");
    check_repr(-0.0, "-0.0");
    check_repr(0.0, "0.0");
    check_repr(1e16, "1e+16");
    check_repr(1e15, "1000000000000000.0");
    check_repr(0.0001, "0.0001");
    check_repr(0.00001, "1e-05");
    check_repr(1.5e-7, "1.5e-07");
    check_repr(123456789012345678.0, "1.2345678901234568e+17");
    check_repr(1.0 / 0.0, "Infinity");
}

static void test_round_ties(void **state)
{
    (void)state;
    assert_true(money_round2(2.675) == 2.67);  /* 2.675 is 2.67499999... in binary */
    assert_true(money_round2(0.125) == 0.12);  /* an exact tie: to even */
    assert_true(money_round2(0.375) == 0.38);
    assert_true(money_round2(1.005) == 1.0);
    assert_true(money_round2(10.0 * 5 * 75.5) == 3775.0);
}

/* The fast paths against the printf/strtod reference, on values shaped
 * like money (decimals of few digits, their products, near-ties) and on
 * random bit patterns. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double round2_reference(double x)
{
    if (x == 0.0 || !isfinite(x))
        return x;
    char tmp[MONEY_FMT_MAX];
    snprintf(tmp, sizeof tmp, "%.2f", x);
    return strtod(tmp, NULL);
}

static double shaped(void)
{
    static const double scale[] = {1, 10, 100, 1000, 1e4, 1e6, 1e9};
    double a = (double)(rnd() % 100000000) / scale[rnd() % 7];
    switch (rnd() % 6) {
    case 0: return a;
    case 1: return a * (double)(rnd() % 1000) * ((double)(rnd() % 100000) / 1000.0);
    case 2: return -a;
    case 3: return a + (double)(rnd() % 3 - 1) * 1e-9; /* near a decimal */
    case 4: return ((double)(rnd() % 2000000) + 0.5) / 100.0; /* near a tie */
    default: {
        double d;
        uint64_t bits = rnd();
        memcpy(&d, &bits, sizeof d);
        return d;
    }
    }
}

/* money_format_2f against printf's "%.2f" itself (NaN and the infinities
 * aside: Python spells them nan and inf). */
static void check_2f(double x)
{
    if (!isfinite(x))
        return;
    char fast[MONEY_FMT_MAX], ref[MONEY_FMT_MAX];
    size_t n = money_format_2f(x, fast, sizeof fast);
    snprintf(ref, sizeof ref, "%.2f", x);
    if (strcmp(fast, ref) != 0 || n != strlen(ref))
        fail_msg("2f(%a): fast %s (%zu), reference %s", x, fast, n, ref);
}

static void test_2f_shapes(void **state)
{
    (void)state;
    static const double cases[] = {0.0, -0.0, -0.001, 0.001, 0.004999, 0.005, 0.015, 0.125,
                                   0.375, 2.675, 1.005, 99.995, 99.994999, 3775.0, 1e9 + 0.5,
                                   10995116277.75, 10995116277.76, 1e12, -1e12, 1e300, 5e-324};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_2f(cases[i]);
    for (int k = 0; k < 20000; k++) { /* every half-cent of 0-200 and its neighbours */
        double x = ((double)k + 0.5) / 100.0;
        check_2f(x);
        check_2f(nextafter(x, 0.0));
        check_2f(nextafter(x, 1e9));
        check_2f(-x);
    }
    char out[MONEY_FMT_MAX];
    assert_int_equal(money_format_2f(-0.0, out, sizeof out), 5);
    assert_string_equal(out, "-0.00");
    money_format_2f(0.125, out, sizeof out); /* an exact tie: to even */
    assert_string_equal(out, "0.12");
    money_format_2f(2.675, out, sizeof out);
    assert_string_equal(out, "2.67");
    money_format_2f(1234567.891, out, sizeof out);
    assert_string_equal(out, "1234567.89");
    money_format_2f(0.0 / 0.0, out, sizeof out);
    assert_string_equal(out, "nan");
    money_format_2f(-1.0 / 0.0, out, sizeof out);
    assert_string_equal(out, "-inf");
}

static void test_fast_paths_match_reference(void **state)
{
    (void)state;
    char fast[MONEY_FMT_MAX], ref[MONEY_FMT_MAX];
    for (int i = 0; i < 100000; i++) {
        double x = shaped();
        money_format_repr(x, fast, sizeof fast);
        money_format_repr_exact(x, ref, sizeof ref);
        if (strcmp(fast, ref) != 0)
            fail_msg("repr(%a): fast %s, reference %s", x, fast, ref);
        double r = money_round2(x), want = round2_reference(x);
        if (memcmp(&r, &want, sizeof r) != 0 && !(isnan(r) && isnan(want)))
            fail_msg("round2(%a): fast %a, reference %a", x, r, want);
        check_2f(x);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_table),
        cmocka_unit_test(test_repr_shapes),
        cmocka_unit_test(test_round_ties),
        cmocka_unit_test(test_2f_shapes),
        cmocka_unit_test(test_fast_paths_match_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
