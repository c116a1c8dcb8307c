/* jsonw: strings escaped exactly as Python's json.dumps escapes them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "../../src/jsonw.h"

static void check(const char *in, size_t len, int ascii, const char *want)
{
    struct buf b;
    buf_init(&b);
    jsonw_string(&b, in, len, ascii);
    assert_string_equal(b.data, want);
    buf_free(&b);
}

static void test_escapes(void **state)
{
    (void)state;
    /* expectations from python3 -c 'import json; print(json.dumps(...))' */
    check("async_test", 10, 1, "\"async_test\"");
    check("a\"b\\c/d", 7, 1, "\"a\\\"b\\\\c/d\"");
    check("\n\r\t\b\f\x01\x1f\x7f", 8, 1, "\"\\n\\r\\t\\b\\f\\u0001\\u001f\\u007f\"");
    check("\x7f", 1, 0, "\"\x7f\"");
    check("r\xc3\xbc" "b", 4, 1, "\"r\\u00fcb\"");
    check("\xe2\x82\xbd", 3, 1, "\"\\u20bd\"");
    check("\xf0\x9f\x98\x80", 4, 1, "\"\\ud83d\\ude00\"");
    check("r\xc3\xbc" "b", 4, 0, "\"r\xc3\xbc" "b\"");
    check("\xff" "a", 2, 1, "\"\\ufffda\"");
    check("\xff" "a", 2, 0, "\"\xef\xbf\xbd" "a\"");
    check("a\0b", 3, 1, "\"a\\u0000b\"");
    check("", 0, 1, "\"\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_escapes)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
