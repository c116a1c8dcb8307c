/* buf: appends, formatting, reset, steal, caller storage. */
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

/* A formatted piece larger than the free room is formatted again into the
 * grown buffer, whole; an empty one leaves the buffer as it was. */
static void test_fmt_grows(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b);
    char big[3001];
    memset(big, 'q', 3000);
    big[3000] = '\0';
    for (int i = 0; i < 3; i++) {
        buf_append_fmt(&b, "<%s>%d", big, i);
        assert_int_equal(b.len, (size_t)(i + 1) * 3003);
        assert_int_equal(b.data[b.len - 1], '0' + i);
        assert_int_equal(b.data[b.len], '\0');
        assert_int_equal(b.data[(size_t)i * 3003], '<');
    }
    size_t len = b.len;
    buf_append_fmt(&b, "%s", "");
    assert_int_equal(b.len, len);
    assert_int_equal(b.data[len], '\0');
    buf_free(&b);
}

/* buf_init_on: the bytes stay in the caller's storage while they fit, move
 * to the heap whole when they outgrow it (and later growth reallocates
 * there); the storage is never freed (ASan would say); buf_steal of bytes
 * still in the storage hands out a heap copy. */
static void test_on_storage(void **state)
{
    (void)state;
    char storage[16];
    struct buf b;
    buf_init_on(&b, storage, sizeof storage);
    assert_ptr_equal(b.data, storage);
    assert_string_equal(b.data, "");
    buf_append_str(&b, "0123456789");
    buf_append(&b, "abcd", 4); /* 14 bytes + NUL: still fits */
    assert_ptr_equal(b.data, storage);
    assert_string_equal(storage, "0123456789abcd");
    buf_reset(&b);
    assert_ptr_equal(b.data, storage);
    buf_append_str(&b, "xyz");
    size_t n;
    char *p = buf_steal(&b, &n);
    assert_true(p != storage);
    assert_string_equal(p, "xyz");
    assert_int_equal(n, 3);
    assert_null(b.data);
    free(p);

    buf_init_on(&b, storage, sizeof storage);
    buf_append_str(&b, "0123456789abcde"); /* 15 bytes + NUL: the whole storage */
    assert_ptr_equal(b.data, storage);
    buf_append(&b, "f", 1); /* outgrows it: moved, the bytes kept */
    assert_true(b.data != storage);
    assert_string_equal(b.data, "0123456789abcdef");
    assert_int_equal(b.len, 16);
    for (int i = 0; i < 100; i++)
        buf_append(&b, "0123456789", 10);
    assert_int_equal(b.len, 1016);
    assert_int_equal(memcmp(b.data, "0123456789abcdef0123456789", 26), 0);
    p = buf_steal(&b, &n); /* heap bytes are handed over as they are */
    assert_int_equal(n, 1016);
    free(p);

    buf_init_on(&b, storage, sizeof storage);
    buf_append_str(&b, "in place");
    buf_free(&b); /* frees nothing: the storage is the caller's */
    assert_null(b.data);
    assert_null(b.fixed);
    buf_append_str(&b, "after"); /* a freed buf starts again on the heap */
    assert_string_equal(b.data, "after");
    assert_true(b.data != storage);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_buf), cmocka_unit_test(test_fmt_grows),
                                       cmocka_unit_test(test_on_storage)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
