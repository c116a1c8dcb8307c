/* opts: value parsers and the table-driven flag/env parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/opts.h"

static void test_seconds(void **state)
{
    (void)state;
    uint64_t ms;
    assert_int_equal(opts_parse_seconds("2", &ms), 0);
    assert_int_equal(ms, 2000);
    assert_int_equal(opts_parse_seconds("0.5", &ms), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(opts_parse_seconds("250ms", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(opts_parse_seconds("1.5s", &ms), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(opts_parse_seconds("0", &ms), 0);
    assert_int_equal(ms, 0);
    const char *bad[] = {"", "-1", "1.", ".5", "abc", "1x", "1 s", "1e3", "999999999999", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(opts_parse_seconds(bad[i], &ms), -1);
}

static void test_range(void **state)
{
    (void)state;
    uint64_t a, b;
    assert_int_equal(opts_parse_range("1-3", &a, &b), 0);
    assert_int_equal(a, 1000);
    assert_int_equal(b, 3000);
    assert_int_equal(opts_parse_range("0-0", &a, &b), 0);
    assert_int_equal(b, 0);
    assert_int_equal(opts_parse_range("0.1-0.2", &a, &b), 0);
    assert_int_equal(a, 100);
    const char *bad[] = {"3-1", "1", "-1-3", "1-", "-", "1-2-3", "a-b", "1--2", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(opts_parse_range(bad[i], &a, &b), -1);
}

static void test_size_int_url(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(opts_parse_size("1m", &v), 0);
    assert_int_equal(v, 1048576);
    assert_int_equal(opts_parse_size("64k", &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(opts_parse_size("100", &v), 0);
    assert_int_equal(opts_parse_size("1x", &v), -1);
    assert_int_equal(opts_parse_size("-1", &v), -1);
    assert_int_equal(opts_parse_size("99999999999999999999g", &v), -1);
    int64_t i;
    assert_int_equal(opts_parse_int("42", &i), 0);
    assert_int_equal(i, 42);
    assert_int_equal(opts_parse_int("4x", &i), -1);
    assert_int_equal(opts_parse_int("", &i), -1);
    assert_int_equal(opts_parse_int(" 1", &i), -1);
    assert_int_equal(opts_check_url("http://localhost:3001"), 0);
    assert_int_equal(opts_check_url("https://main.example/base/"), 0);
    assert_int_equal(opts_check_url("ftp://x"), -1);
    assert_int_equal(opts_check_url("http://"), -1);
    assert_int_equal(opts_check_url("http://a b"), -1);
    assert_int_equal(opts_check_url("http://x/?q=1"), -1);
    assert_int_equal(opts_check_url("localhost:3001"), -1);
}

static const char *s_val;
static int i_val, f_val;
static uint64_t r_val[2];
static char *u_val;
static const struct opt table[] = {
    {"name", "T_NAME", OPT_STR, &s_val, 0, 0, "S", "a string"},
    {"num", "T_NUM", OPT_INT, &i_val, 1, 10, "N", "a number"},
    {"range", NULL, OPT_RANGE, r_val, 0, 5000, "MIN-MAX", "a range"},
    {"url", "T_URL", OPT_URL, &u_val, 0, 0, "URL", "a url"},
    {"quiet", NULL, OPT_FLAG, &f_val, 0, 0, NULL, "a flag"},
    {0},
};

static int parse(int argc, char **argv, char *err)
{
    return opts_parse(table, argc, argv, err, 256);
}

static void test_table(void **state)
{
    (void)state;
    char err[256];
    s_val = "default";
    i_val = 5;
    setenv("T_NUM", "7", 1);
    setenv("T_URL", "http://h:1/", 1);
    char *a1[] = {"prog", "--name", "x", "--range=1-2", "--quiet", NULL};
    assert_int_equal(parse(5, a1, err), 0);
    assert_string_equal(s_val, "x");
    assert_int_equal(i_val, 7); /* from the environment */
    assert_int_equal(r_val[0], 1000);
    assert_int_equal(r_val[1], 2000);
    assert_int_equal(f_val, 1);
    assert_string_equal(u_val, "http://h:1"); /* trailing slash dropped */
    free(u_val);
    unsetenv("T_URL");
    char *a2[] = {"prog", "--num", "8", NULL};
    assert_int_equal(parse(3, a2, err), 0);
    assert_int_equal(i_val, 8); /* the flag wins over the environment */
    char *a3[] = {"prog", "--num", "11", NULL};
    assert_int_equal(parse(3, a3, err), -1);
    assert_string_equal(err, "--num: expected an integer from 1 to 10");
    char *a4[] = {"prog", "--bogus", NULL};
    assert_int_equal(parse(2, a4, err), -1);
    assert_string_equal(err, "unknown option '--bogus' (see --help)");
    char *a5[] = {"prog", "--name", NULL};
    assert_int_equal(parse(2, a5, err), -1);
    assert_string_equal(err, "--name: missing value");
    char *a6[] = {"prog", "--range", "9-1", NULL};
    assert_int_equal(parse(3, a6, err), -1);
    char *a7[] = {"prog", "--num", "bad", "--help", NULL};
    assert_int_equal(parse(4, a7, err), 1);
    setenv("T_NUM", "zz", 1);
    char *a8[] = {"prog", NULL};
    assert_int_equal(parse(1, a8, err), -1);
    assert_string_equal(err, "--num: expected an integer from 1 to 10 (from T_NUM)");
    unsetenv("T_NUM");
    char *a9[] = {"prog", "stray", NULL};
    assert_int_equal(parse(2, a9, err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seconds), cmocka_unit_test(test_range),
        cmocka_unit_test(test_size_int_url), cmocka_unit_test(test_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
