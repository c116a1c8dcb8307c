/* buf: appends, formatting, reset, steal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/buf.h"

static void test_buf(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    buf_append_str(&b, "ab");
    buf_append(&b, "cd", 2);
    buf_append_fmt(&b, "-%d-%s", 42, "x");
    assert_string_equal(b.data, "abcd-42-x");
    assert_int_equal(b.len, 9);
    for (int i = 0; i < 1000; i++)
        buf_append(&b, "0123456789", 10);
    assert_int_equal(b.len, 10009);
    assert_true(b.cap > b.len);
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    buf_append_str(&b, "z");
    size_t n;
    char *p = buf_steal(&b, &n);
    assert_string_equal(p, "z");
    assert_int_equal(n, 1);
    assert_null(b.data);
    free(p);
    p = buf_steal(&b, &n); /* an empty buffer yields "" */
    assert_string_equal(p, "");
    free(p);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_buf)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
