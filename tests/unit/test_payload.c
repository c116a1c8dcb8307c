/* payload: the table of bad bodies with their exact answers, and the good ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <math.h>

#include "../../src/core/payload.h"
#include "../../src/limits.h"

#define B1 "{\"denomination_id\":1,\"denomination\":10.0,\"count\":5}"
#define OKB "\"bills\":[" B1 "]"
#define INVALID "{\"detail\":\"Invalid payload\"}"
#define E422(type, loc, msg) \
    "{\"detail\":[{\"type\":\"" type "\",\"loc\":[\"body\"" loc "],\"msg\":\"" msg "\"}]}"

struct bad {
    const char *body;
    int status;
    const char *answer;
};

static const struct bad bad[] = {
    /* malformed JSON: what and where */
    {"", 400, "{\"detail\":\"Malformed JSON: the body is empty\"}"},
    {" \r\n", 400, "{\"detail\":\"Malformed JSON: the body is empty\"}"},
    {"{", 400, "{\"detail\":\"Malformed JSON: string or '}' expected near end of file at line 1 column 1 (byte 1)\"}"},
    {"{\"request_id\": \"a\",}", 400, "{\"detail\":\"Malformed JSON: string or '}' expected near '}' at line 1 column 20 (byte 20)\"}"},
    {"{\"a\":1} x", 400, "{\"detail\":\"Malformed JSON: end of file expected near 'x' at line 1 column 9 (byte 9)\"}"},
    {"{\"a\":NaN}", 400, "{\"detail\":\"Malformed JSON: invalid token near 'NaN' at line 1 column 8 (byte 8)\"}"},
    {"{\"a\":Infinity}", 400, "{\"detail\":\"Malformed JSON: invalid token near 'Infinity' at line 1 column 13 (byte 13)\"}"},
    {"{\"a\":1e400}", 400, "{\"detail\":\"Malformed JSON: real number overflow near '1e400' at line 1 column 10 (byte 10)\"}"},
    {"{\"a\":99999999999999999999}", 400, "{\"detail\":\"Malformed JSON: too big integer near '99999999999999999999' at line 1 column 25 (byte 25)\"}"},
    {"{\"a\":1,\"a\":2}", 400, "{\"detail\":\"Malformed JSON: duplicate object key near '\\\"a\\\"' at line 1 column 10 (byte 10)\"}"},
    {"{\"a\":\"\xff\"}", 400, "{\"detail\":\"Malformed JSON: unable to decode byte 0xff near '\\\"' at line 1 column 6 (byte 6)\"}"},
    {"{\"a\":'x'}", 400, "{\"detail\":\"Malformed JSON: invalid token near ''' at line 1 column 6 (byte 6)\"}"},
    {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", 400, "{\"detail\":\"Malformed JSON: nested deeper than 32 levels\"}"},
    /* not an object */
    {"[]", 422, E422("dict_type", "", "Input should be a valid dictionary")},
    {"\"x\"", 422, E422("dict_type", "", "Input should be a valid dictionary")},
    {"42", 422, E422("dict_type", "", "Input should be a valid dictionary")},
    {"null", 422, E422("dict_type", "", "Input should be a valid dictionary")},
    /* the seed's rule: missing or falsy */
    {"{}", 400, INVALID},
    {"{\"exchange_rate\":75.5," OKB "}", 400, INVALID},
    {"{\"request_id\":\"a\"," OKB "}", 400, INVALID},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5}", 400, INVALID},
    {"{\"request_id\":\"\",\"exchange_rate\":75.5," OKB "}", 400, INVALID},
    {"{\"request_id\":0,\"exchange_rate\":75.5," OKB "}", 400, INVALID},
    {"{\"request_id\":null,\"exchange_rate\":75.5," OKB "}", 400, INVALID},
    {"{\"request_id\":false,\"exchange_rate\":75.5," OKB "}", 400, INVALID},
    {"{\"request_id\":\"a\",\"exchange_rate\":0," OKB "}", 400, INVALID},
    {"{\"request_id\":\"a\",\"exchange_rate\":0.0," OKB "}", 400, INVALID},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":[]}", 400, INVALID},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":{}}", 400, INVALID},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":\"\"}", 400, INVALID},
    {"{\"request_id\":[],\"exchange_rate\":75.5," OKB "}", 400, INVALID},
    /* types and ranges: 422 */
    {"{\"request_id\":true,\"exchange_rate\":75.5," OKB "}", 422, E422("int_or_string_type", ",\"request_id\"", "Input should be a valid integer or string")},
    {"{\"request_id\":1.5,\"exchange_rate\":75.5," OKB "}", 422, E422("int_or_string_type", ",\"request_id\"", "Input should be a valid integer or string")},
    {"{\"request_id\":[1],\"exchange_rate\":75.5," OKB "}", 422, E422("int_or_string_type", ",\"request_id\"", "Input should be a valid integer or string")},
    {"{\"request_id\":\"a\",\"exchange_rate\":\"75.5\"," OKB "}", 422, E422("float_type", ",\"exchange_rate\"", "Input should be a valid number")},
    {"{\"request_id\":\"a\",\"exchange_rate\":true," OKB "}", 422, E422("float_type", ",\"exchange_rate\"", "Input should be a valid number")},
    {"{\"request_id\":\"a\",\"exchange_rate\":-1," OKB "}", 422, E422("greater_than", ",\"exchange_rate\"", "Input should be greater than 0")},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":\"abc\"}", 422, E422("list_type", ",\"bills\"", "Input should be a valid list")},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":{\"x\":1}}", 422, E422("list_type", ",\"bills\"", "Input should be a valid list")},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":[1]}", 422, E422("dict_type", ",\"bills\",0", "Input should be a valid dictionary")},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":[{\"denomination\":1,\"count\":1}]}", 422, E422("missing", ",\"bills\",0,\"denomination_id\"", "Field required")},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":[{\"denomination_id\":1,\"count\":1}]}", 422, E422("missing", ",\"bills\",0,\"denomination\"", "Field required")},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":[{\"denomination_id\":1,\"denomination\":1}]}", 422, E422("missing", ",\"bills\",0,\"count\"", "Field required")},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":[{\"denomination_id\":1.5,\"denomination\":1,\"count\":1}]}", 422, E422("int_or_string_type", ",\"bills\",0,\"denomination_id\"", "Input should be a valid integer or string")},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":[{\"denomination_id\":null,\"denomination\":1,\"count\":1}]}", 422, E422("int_or_string_type", ",\"bills\",0,\"denomination_id\"", "Input should be a valid integer or string")},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":[{\"denomination_id\":1,\"denomination\":\"10\",\"count\":1}]}", 422, E422("float_type", ",\"bills\",0,\"denomination\"", "Input should be a valid number")},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":[{\"denomination_id\":1,\"denomination\":-10,\"count\":1}]}", 422, E422("greater_than_equal", ",\"bills\",0,\"denomination\"", "Input should be greater than or equal to 0")},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":[{\"denomination_id\":1,\"denomination\":10,\"count\":\"5\"}]}", 422, E422("int_type", ",\"bills\",0,\"count\"", "Input should be a valid integer")},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":[{\"denomination_id\":1,\"denomination\":10,\"count\":true}]}", 422, E422("int_type", ",\"bills\",0,\"count\"", "Input should be a valid integer")},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":[{\"denomination_id\":1,\"denomination\":10,\"count\":1.5}]}", 422, E422("int_from_float", ",\"bills\",0,\"count\"", "Input should be a valid integer, got a number with a fractional part")},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":[{\"denomination_id\":1,\"denomination\":10,\"count\":-1}]}", 422, E422("greater_than_equal", ",\"bills\",0,\"count\"", "Input should be greater than or equal to 0")},
    {"{\"request_id\":\"a\",\"exchange_rate\":1e300,\"bills\":[{\"denomination_id\":1,\"denomination\":1e300,\"count\":1}]}", 422, E422("value_error", ",\"bills\",0", "Value error, subtotal is not a finite number")},
    {"{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":[" B1 ",7]}", 422, E422("dict_type", ",\"bills\",1", "Input should be a valid dictionary")},
    /* two errors in one answer */
    {"{\"request_id\":\"a\",\"exchange_rate\":-2,\"bills\":[{\"denomination_id\":1,\"denomination\":10,\"count\":-1}]}", 422,
     "{\"detail\":[{\"type\":\"greater_than\",\"loc\":[\"body\",\"exchange_rate\"],\"msg\":\"Input should be greater than 0\"},"
     "{\"type\":\"greater_than_equal\",\"loc\":[\"body\",\"bills\",0,\"count\"],\"msg\":\"Input should be greater than or equal to 0\"}]}"},
};

static void test_bad_table(void **state)
{
    (void)state;
    size_t n = sizeof bad / sizeof bad[0];
    assert_true(n >= 40);
    int failures = 0;
    for (size_t i = 0; i < n; i++) {
        struct exchange *ex = NULL;
        struct payload_error err;
        int rc = payload_parse(bad[i].body, strlen(bad[i].body), &ex, &err);
        if (rc == 0 || err.status != bad[i].status || strcmp(err.body, bad[i].answer) != 0) {
            fprintf(stderr, "case %zu %s\n  got  %d %s\n  want %d %s\n", i, bad[i].body,
                    rc == 0 ? 200 : err.status, rc == 0 ? "(accepted)" : err.body, bad[i].status,
                    bad[i].answer);
            failures++;
        }
        free(ex);
        if (rc != 0)
            free(err.body);
    }
    assert_int_equal(failures, 0);
}

static void test_seed_example(void **state)
{
    (void)state;
    const char *body = "{\"request_id\": \"async_test\", \"exchange_rate\": 75.5, \"bills\": ["
                       "{\"denomination_id\": 1, \"denomination\": 10.0, \"count\": 5},"
                       "{\"denomination_id\": 2, \"denomination\": 20.0, \"count\": 3}], \"x\": 1}";
    struct exchange *ex;
    struct payload_error err;
    assert_int_equal(payload_parse(body, strlen(body), &ex, &err), 0);
    assert_string_equal(ex->request_id, "\"async_test\"");
    assert_true(ex->rate == 75.5);
    assert_int_equal(ex->nbills, 2);
    assert_string_equal(ex->bills[0].id, "1");
    assert_true(ex->bills[0].subtotal == 3775.0);
    assert_string_equal(ex->bills[1].id, "2");
    assert_true(ex->bills[1].subtotal == 4530.0);
    free(ex);
}

static void test_ids_echoed(void **state)
{
    (void)state;
    const char *body = "{\"request_id\": 42, \"exchange_rate\": 2, \"bills\": ["
                       "{\"denomination_id\": \"r\\u00fcb/\\\"x\\\"\", \"denomination\": 0, \"count\": 5.0}]}";
    struct exchange *ex;
    struct payload_error err;
    assert_int_equal(payload_parse(body, strlen(body), &ex, &err), 0);
    assert_string_equal(ex->request_id, "42");
    assert_string_equal(ex->bills[0].id, "\"r\\u00fcb/\\\"x\\\"\"");
    assert_true(ex->bills[0].count == 5.0);
    assert_true(ex->bills[0].subtotal == 0.0);
    free(ex);
}

/* The fast path against the full parser: bodies in its shape are taken by
 * it and give the same exchange; random mutations of them are either
 * declined by it or agree with the full parser. */
static void check_same(const char *body, size_t len, int want_fast)
{
    struct exchange *fast, *full;
    struct payload_error err;
    int f = payload_parse_fast(body, len, &fast);
    if (want_fast >= 0)
        assert_int_equal(f, want_fast ? 0 : -1);
    if (f != 0)
        return;
    if (payload_parse_full(body, len, &full, &err) != 0)
        fail_msg("fast path took what the full parser refuses: %.*s", (int)len, body);
    if (!payload_same(fast, full))
        fail_msg("fast and full differ on: %.*s", (int)len, body);
    free(fast);
    free(full);
}

static void test_fast_path_matches_full(void **state)
{
    (void)state;
    static const char *taken[] = {
        "{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":[{\"denomination_id\":1,"
        "\"denomination\":10.0,\"count\":5}]}",
        " {\r\n\t\"bills\" : [ {\"count\":3,\"denomination\":2e1,\"denomination_id\":\"x y\"} ,"
        "{\"denomination_id\":-7,\"denomination\":-0.0,\"count\":-0}],\"exchange_rate\":1E-2,"
        "\"request_id\":123456789012345678 } ",
        "{\"request_id\":\"r\",\"exchange_rate\":3,\"bills\":[{\"denomination_id\":1,"
        "\"denomination\":0.1,\"count\":999999999999999999}]}",
    };
    static const char *declined[] = {
        "{\"request_id\":\"a\",\"exchange_rate\":75.5,\"bills\":[{\"denomination_id\":1,"
        "\"denomination\":10.0,\"count\":5.0}]}", /* an integral float: the full parser's */
        "{\"request_id\":\"a\\u0041\",\"exchange_rate\":1,\"bills\":[{\"denomination_id\":1,"
        "\"denomination\":1,\"count\":1}]}", /* an escape */
        "{\"request_id\":\"a\",\"exchange_rate\":1,\"bills\":[{\"denomination_id\":1,"
        "\"denomination\":1,\"count\":1}],\"x\":1}", /* an unknown field */
        "{\"request_id\":\"a\",\"request_id\":\"b\",\"exchange_rate\":1,\"bills\":[]}",
        "{\"request_id\":0,\"exchange_rate\":1,\"bills\":[{\"denomination_id\":1,"
        "\"denomination\":1,\"count\":1}]}", /* falsy */
        "{\"request_id\":\"a\",\"exchange_rate\":1e400,\"bills\":[{\"denomination_id\":1,"
        "\"denomination\":1,\"count\":1}]}", /* overflow */
        "{\"request_id\":\"a\",\"exchange_rate\":1,\"bills\":[{\"denomination_id\":1,"
        "\"denomination\":1e308,\"count\":10}]}", /* subtotal not finite */
        "{\"request_id\":\"a\",\"exchange_rate\":01,\"bills\":[{\"denomination_id\":1,"
        "\"denomination\":1,\"count\":1}]}", /* not JSON */
        "{\"request_id\":\"a\",\"exchange_rate\":1,\"bills\":[{\"denomination_id\":1,"
        "\"denomination\":1,\"count\":1}]}x",
    };
    for (size_t i = 0; i < sizeof taken / sizeof *taken; i++)
        check_same(taken[i], strlen(taken[i]), 1);
    for (size_t i = 0; i < sizeof declined / sizeof *declined; i++)
        check_same(declined[i], strlen(declined[i]), 0);
    static const char alphabet[] = "0123456789.eE-+\" ,:{}[]\\xu\t";
    uint64_t r = 88172645463325252ull;
    char body[512];
    for (int i = 0; i < 50000; i++) {
        const char *base = taken[i % 3];
        size_t n = strlen(base);
        memcpy(body, base, n);
        for (int m = 0; m < 1 + i % 3; m++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            body[r % n] = alphabet[(r >> 20) % (sizeof alphabet - 1)];
        }
        check_same(body, n, -1);
    }
}

/* Decimals read without strtod (up to 15 digits, no exponent) equal strtod's
 * value bit for bit; longer ones and exponents go to strtod. 100,000 random
 * decimals of 1-17 digits with the point anywhere, as rate and denomination. */
static void test_decimals_as_strtod_reads_them(void **state)
{
    (void)state;
    uint64_t r = 0x9E3779B97F4A7C15ull;
    char num[2][40], body[256];
    for (int i = 0; i < 100000; i++) {
        for (int k = 0; k < 2; k++) { /* int part (no leading zero, or "0") "." frac part */
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            int digits = 1 + (int)(r % 17), frac = 1 + (int)((r >> 8) % (uint64_t)digits);
            char *p = num[k];
            if (digits == frac)
                *p++ = '0';
            for (int d = 0; d < digits; d++) {
                if (d == digits - frac)
                    *p++ = '.';
                r ^= r << 13, r ^= r >> 7, r ^= r << 17;
                *p++ = (char)('0' + (d == 0 && digits > frac ? 1 + r % 9 : r % 10));
            }
            *p = '\0';
        }
        snprintf(body, sizeof body,
                 "{\"request_id\":\"a\",\"exchange_rate\":%s,\"bills\":[{\"denomination_id\":1,"
                 "\"denomination\":%s,\"count\":1}]}",
                 num[0], num[1]);
        struct exchange *ex = NULL;
        struct payload_error err;
        if (payload_parse(body, strlen(body), &ex, &err) != 0) {
            free(err.body); /* a zero rate: refused, as it should be */
            assert_true(strtod(num[0], NULL) == 0);
            continue;
        }
        double want[2] = {strtod(num[0], NULL), strtod(num[1], NULL)};
        if (memcmp(&ex->rate, &want[0], sizeof(double)) ||
            memcmp(&ex->bills[0].denomination, &want[1], sizeof(double)))
            fail_msg("%s / %s read as %.17g / %.17g", num[0], num[1], ex->rate,
                     ex->bills[0].denomination);
        free(ex);
        check_same(body, strlen(body), 1);
    }
}

static void test_limits(void **state)
{
    (void)state;
    /* too many bills: 422 too_long */
    size_t n = LIMIT_BILLS + 1;
    size_t cap = 64 + n * 4;
    char *body = malloc(cap);
    size_t len = (size_t)snprintf(body, cap, "{\"request_id\":\"a\",\"exchange_rate\":1,\"bills\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(body + len, cap - len, "%s{}", i ? "," : "");
    len += (size_t)snprintf(body + len, cap - len, "]}");
    struct exchange *ex;
    struct payload_error err;
    assert_int_equal(payload_parse(body, len, &ex, &err), -1);
    assert_int_equal(err.status, 422);
    assert_non_null(strstr(err.body, "\"too_long\""));
    assert_non_null(strstr(err.body, "not 10001"));
    free(err.body);
    /* a long request_id */
    char big[LIMIT_ID_BYTES + 80];
    memset(big, 'x', sizeof big);
    len = (size_t)snprintf(body, cap, "{\"request_id\":\"%.*s\",\"exchange_rate\":1," OKB "}",
                           LIMIT_ID_BYTES + 1, big);
    assert_int_equal(payload_parse(body, len, &ex, &err), -1);
    assert_int_equal(err.status, 422);
    assert_non_null(strstr(err.body, "string_too_long"));
    free(err.body);
    /* many bad bills: the list is capped */
    len = (size_t)snprintf(body, cap, "{\"request_id\":\"a\",\"exchange_rate\":1,\"bills\":[");
    for (size_t i = 0; i < 100; i++)
        len += (size_t)snprintf(body + len, cap - len, "%s1", i ? "," : "");
    len += (size_t)snprintf(body + len, cap - len, "]}");
    assert_int_equal(payload_parse(body, len, &ex, &err), -1);
    size_t entries = 0;
    for (const char *p = err.body; (p = strstr(p, "\"type\"")); p++)
        entries++;
    assert_int_equal(entries, PAYLOAD_MAX_ERRORS);
    free(err.body);
    free(body);
}

static void test_depth(void **state)
{
    (void)state;
    assert_int_equal(payload_json_depth("{\"a\":[1,{\"b\":2}]}", 17, 32), 3);
    assert_int_equal(payload_json_depth("\"[[[[\"", 6, 32), 0);
    assert_int_equal(payload_json_depth("[\"\\\"[[\"]", 8, 32), 1);
}

/* The stored form: the seed's example as text, odd ids and numbers read
 * back bit for bit, the older whole JSON read too, and what is not such a
 * form refused. */
static void stored_round_trip(const char *body, const char *want)
{
    struct exchange *ex, *again;
    struct payload_error err;
    if (payload_parse(body, strlen(body), &ex, &err) != 0)
        fail_msg("refused: %s", body);
    char *stored = payload_stored(ex);
    if (want)
        assert_string_equal(stored, want);
    assert_int_equal(payload_from_stored(stored, ex->request_id, &again), 0);
    assert_true(payload_same(ex, again));
    free(again);
    free(stored);
    free(ex);
}

static void test_stored_form(void **state)
{
    (void)state;
    stored_round_trip("{\"request_id\": \"async_test\", \"exchange_rate\": 75.5, \"bills\": ["
                      "{\"denomination_id\": 1, \"denomination\": 10, \"count\": 5},"
                      "{\"denomination_id\": 2, \"denomination\": 20.0, \"count\": 3.0}]}",
                      "[75.5,1,10.0,5,2,20.0,3]");
    /* string ids holding the form's own separators and escapes */
    stored_round_trip("{\"request_id\": 42, \"exchange_rate\": 1e-7, \"bills\": ["
                      "{\"denomination_id\": \"a,b]\", \"denomination\": 0.1, \"count\": 1e20},"
                      "{\"denomination_id\": \"q\\\"\\\\\", \"denomination\": 5e-324, \"count\": 0},"
                      "{\"denomination_id\": \"\\u00fc[\", \"denomination\": 1.7976931348623157e308,"
                      " \"count\": 0}]}",
                      "[1e-07,\"a,b]\",0.1,1e+20,\"q\\\"\\\\\",5e-324,0,\"\\u00fc[\","
                      "1.7976931348623157e+308,0]");
    stored_round_trip("{\"request_id\": \"r\", \"exchange_rate\": 3, \"bills\": ["
                      "{\"denomination_id\": -7, \"denomination\": 123456789.125, \"count\": 9007199254740993}]}",
                      NULL);

    struct exchange *ex;
    const char *legacy = "{\"request_id\":\"old\",\"exchange_rate\":2.0,\"bills\":["
                         "{\"denomination_id\":1,\"denomination\":10.0,\"count\":5}]}";
    assert_int_equal(payload_from_stored(legacy, "\"ignored\"", &ex), 0);
    assert_string_equal(ex->request_id, "\"old\"");
    assert_true(ex->bills[0].subtotal == 100.0);
    free(ex);
    assert_int_equal(payload_from_stored("[2.0,\"b\",10.0,5]", "7", &ex), 0);
    assert_string_equal(ex->request_id, "7");
    assert_string_equal(ex->bills[0].id, "\"b\"");
    free(ex);

    /* a count of -0.0 is pydantic's int 0: no sign, so no -0.0 subtotal (the
     * denomination's -0.0 is a float and keeps its sign, as in Python) */
    static const char *zeros[] = {
        "{\"request_id\": 1, \"exchange_rate\": 2, \"bills\": [{\"denomination_id\": 1,"
        " \"denomination\": 10, \"count\": -0.0}, {\"denomination_id\": 2, \"denomination\": -0.0,"
        " \"count\": 3}]}",
        NULL,
    };
    struct payload_error err;
    for (int i = 0; i < 2; i++) {
        if (i == 0)
            assert_int_equal(payload_parse(zeros[0], strlen(zeros[0]), &ex, &err), 0);
        else
            assert_int_equal(payload_from_stored("[2,1,10.0,-0.0 ,2,-0.0,3]", "1", &ex), 0);
        assert_false(signbit(ex->bills[0].count));
        assert_false(signbit(ex->bills[0].subtotal));
        assert_true(signbit(ex->bills[1].subtotal));
        stored_round_trip(zeros[0], "[2.0,1,10.0,0,2,-0.0,3]");
        free(ex);
    }

    static const char *refused[] = {
        "", "[", "[]", "[2.0]", "[2.0,1,10.0]", "[2.0,1,10.0,5,2]", "[2.0,1,10.0,5]x",
        "[2.0,1,10.0,5", "[2.0,,10.0,5]", "[2.0,\"a,10.0,5]", "[2.0,\"a\\", "[0,1,10.0,5]",
        "[2.0,1,-1,5]", "[2.0,1.5,10.0,5]", "[2.0,1,10.0,5.5]", "[2.0,{\"a\":1},10.0,5]",
        "[2.0,1,10.0,5}],\"x\":[1]", "{\"request_id\":\"x\"}", "{", "null", "x",
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
        if (payload_from_stored(refused[i], "\"r\"", &ex) == 0)
            fail_msg("took: %s", refused[i]);
    assert_int_equal(payload_from_stored("[2.0,1,10.0,5]", "not json", &ex), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_table),  cmocka_unit_test(test_seed_example),
        cmocka_unit_test(test_ids_echoed), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_fast_path_matches_full),
        cmocka_unit_test(test_decimals_as_strtod_reads_them),
        cmocka_unit_test(test_stored_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
