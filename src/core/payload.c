#include "payload.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../buf.h"
#include "../jsonw.h"
#include "../limits.h"
#include "../util.h"
#include "money.h"

/* The 422 list being built. */
struct errors {
    struct buf b;
    int count;
};

/* One path element of a loc: a key (name != NULL) or an index. */
struct loc {
    const char *name;
    long index;
};

static void err_add(struct errors *e, const struct loc *loc, int nloc, const char *type,
                    const char *msg)
{
    if (e->count >= PAYLOAD_MAX_ERRORS)
        return;
    buf_append_str(&e->b, e->count ? ",{\"type\":" : "{\"type\":");
    jsonw_string(&e->b, type, strlen(type), 0);
    buf_append_str(&e->b, ",\"loc\":[\"body\"");
    for (int i = 0; i < nloc; i++) {
        if (loc[i].name) {
            buf_append(&e->b, ",", 1);
            jsonw_string(&e->b, loc[i].name, strlen(loc[i].name), 0);
        } else {
            buf_append_fmt(&e->b, ",%ld", loc[i].index);
        }
    }
    buf_append_str(&e->b, "],\"msg\":");
    jsonw_string(&e->b, msg, strlen(msg), 0);
    buf_append(&e->b, "}", 1);
    e->count++;
}

static void set_error(struct payload_error *err, int status, struct buf *body)
{
    err->status = status;
    err->body = buf_steal(body, &err->len);
}

static void detail_error(struct payload_error *err, int status, const char *detail)
{
    struct buf b;
    buf_init(&b);
    buf_append_str(&b, "{\"detail\":");
    jsonw_string(&b, detail, strlen(detail), 0);
    buf_append(&b, "}", 1);
    set_error(err, status, &b);
}

int payload_json_depth(const char *s, size_t len, int limit)
{
    int depth = 0, max = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = 0;
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == '[' || ch == '{') {
            if (++depth > max) {
                max = depth;
                if (max > limit)
                    return max;
            }
        } else if (ch == ']' || ch == '}') {
            depth--;
        }
    }
    return max;
}

/* Python's truth value of a JSON value (NULL = missing). */
static int truthy(const json_t *v)
{
    if (!v)
        return 0;
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE: return 0;
    case JSON_TRUE: return 1;
    case JSON_INTEGER: return json_integer_value(v) != 0;
    case JSON_REAL: return json_real_value(v) != 0.0;
    case JSON_STRING: return json_string_length(v) != 0;
    case JSON_ARRAY: return json_array_size(v) != 0;
    case JSON_OBJECT: return json_object_size(v) != 0;
    }
    return 1;
}

/* Appends the JSON text of an id (integer or string) and a NUL to texts;
 * returns 0, or adds a 422 entry and returns -1. */
static int id_text(const json_t *v, struct buf *texts, struct errors *e, const struct loc *loc,
                   int nloc)
{
    if (json_is_integer(v)) {
        buf_append_fmt(texts, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_string(v)) {
        size_t n = json_string_length(v);
        if (n > LIMIT_ID_BYTES) {
            char msg[80];
            snprintf(msg, sizeof msg, "String should have at most %d characters", LIMIT_ID_BYTES);
            err_add(e, loc, nloc, "string_too_long", msg);
            return -1;
        }
        jsonw_string(texts, json_string_value(v), n, 1);
    } else {
        err_add(e, loc, nloc, "int_or_string_type", "Input should be a valid integer or string");
        return -1;
    }
    buf_append(texts, "", 1);
    return 0;
}

/* A number as a double; 0 and -1 for "not a number". */
static int number(const json_t *v, double *out)
{
    if (json_is_integer(v))
        *out = (double)json_integer_value(v);
    else if (json_is_real(v))
        *out = json_real_value(v);
    else
        return -1;
    return 0;
}

static void check_bill(const json_t *bill, long i, double rate, int rate_ok, struct buf *texts,
                       struct errors *e)
{
    struct loc loc[3] = {{"bills", 0}, {NULL, i}, {NULL, 0}};
    if (!json_is_object(bill)) {
        err_add(e, loc, 2, "dict_type", "Input should be a valid dictionary");
        return;
    }
    const json_t *id = json_object_get(bill, "denomination_id");
    const json_t *den = json_object_get(bill, "denomination");
    const json_t *cnt = json_object_get(bill, "count");
    int ok = 1;
    double d = 0, c = 0;

    loc[2].name = "denomination_id";
    if (!id) {
        err_add(e, loc, 3, "missing", "Field required");
        ok = 0;
    } else if (id_text(id, texts, e, loc, 3) != 0) {
        ok = 0;
    }

    loc[2].name = "denomination";
    if (!den) {
        err_add(e, loc, 3, "missing", "Field required");
        ok = 0;
    } else if (number(den, &d) != 0) {
        err_add(e, loc, 3, "float_type", "Input should be a valid number");
        ok = 0;
    } else if (!isfinite(d)) {
        err_add(e, loc, 3, "finite_number", "Input should be a finite number");
        ok = 0;
    } else if (d < 0) {
        err_add(e, loc, 3, "greater_than_equal", "Input should be greater than or equal to 0");
        ok = 0;
    }

    loc[2].name = "count";
    if (!cnt) {
        err_add(e, loc, 3, "missing", "Field required");
        ok = 0;
    } else if (json_is_integer(cnt)) {
        c = (double)json_integer_value(cnt);
    } else if (json_is_real(cnt)) {
        c = json_real_value(cnt);
        if (c != floor(c)) {
            err_add(e, loc, 3, "int_from_float",
                    "Input should be a valid integer, got a number with a fractional part");
            ok = 0;
        }
    } else {
        err_add(e, loc, 3, "int_type", "Input should be a valid integer");
        ok = 0;
    }
    if (ok && c < 0) {
        err_add(e, loc, 3, "greater_than_equal", "Input should be greater than or equal to 0");
        ok = 0;
    }
    if (ok && rate_ok && !isfinite(money_subtotal(d, c, rate)))
        err_add(e, loc, 2, "value_error", "Value error, subtotal is not a finite number");
}

/* ---- the fast path: the seed's shape, without a tree ---- */

struct scan {
    const char *p, *end;
};

static void skip_ws(struct scan *sc)
{
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\t' || *sc->p == '\n' || *sc->p == '\r'))
        sc->p++;
}

static int eat(struct scan *sc, char ch)
{
    skip_ws(sc);
    if (sc->p < sc->end && *sc->p == ch) {
        sc->p++;
        return 1;
    }
    return 0;
}

/* A string of printable ASCII without escapes; *len excludes the quotes. */
static int scan_plain_string(struct scan *sc, const char **start, size_t *len)
{
    skip_ws(sc);
    if (sc->p >= sc->end || *sc->p != '"')
        return -1;
    /* 1 for the bytes such a string may hold: printable ASCII but '"' and '\\' */
    static const unsigned char plain[256] = {
        [0x20 ... 0x21] = 1, [0x23 ... 0x5b] = 1, [0x5d ... 0x7e] = 1, /* '"' 0x22, '\\' 0x5c */
    };
    const char *q = ++sc->p;
    while (q < sc->end && plain[(unsigned char)*q])
        q++;
    if (q >= sc->end || *q != '"')
        return -1;
    *start = sc->p;
    *len = (size_t)(q - sc->p);
    sc->p = q + 1;
    return 0;
}

/* A JSON number by the grammar. *is_int: no fraction and no exponent. */
static int scan_number(struct scan *sc, const char **start, size_t *len, int *is_int)
{
    skip_ws(sc);
    const char *q = sc->p, *e = sc->end;
    if (q < e && *q == '-')
        q++;
    if (q >= e || *q < '0' || *q > '9')
        return -1;
    if (*q == '0')
        q++;
    else
        while (q < e && *q >= '0' && *q <= '9')
            q++;
    *is_int = 1;
    if (q < e && *q == '.') {
        *is_int = 0;
        q++;
        if (q >= e || *q < '0' || *q > '9')
            return -1;
        while (q < e && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < e && (*q == 'e' || *q == 'E')) {
        *is_int = 0;
        q++;
        if (q < e && (*q == '+' || *q == '-'))
            q++;
        if (q >= e || *q < '0' || *q > '9')
            return -1;
        while (q < e && *q >= '0' && *q <= '9')
            q++;
    }
    *start = sc->p;
    *len = (size_t)(q - sc->p);
    sc->p = q;
    return 0;
}

/* An integer literal of at most 18 digits (jansson's json_int_t holds it). */
static int small_int(const char *s, size_t len, int64_t *v)
{
    int neg = s[0] == '-';
    if (len - (size_t)neg > 18)
        return -1;
    int64_t x = 0;
    for (size_t i = (size_t)neg; i < len; i++)
        x = x * 10 + (s[i] - '0');
    *v = neg ? -x : x;
    return 0;
}

/* A decimal of at most 15 digits and no exponent, as strtod reads it: its
 * digits w < 10^15 < 2^53 and 10^f (f <= 15) are exact doubles, so the one
 * correctly rounded division w / 10^f is the correctly rounded value
 * strtod gives (Clinger's fast path). -1: not such a decimal. */
static int decimal_fast(const char *s, size_t n, double *out)
{
    static const double p10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    size_t i = s[0] == '-';
    uint64_t w = 0;
    int digits = 0, frac = -1;
    for (; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            frac = 0;
            continue;
        }
        if (c < '0' || c > '9' || ++digits > 15)
            return -1;
        w = w * 10 + (uint64_t)(c - '0');
        frac += frac >= 0;
    }
    double v = (double)w / p10[frac > 0 ? frac : 0];
    *out = s[0] == '-' ? -v : v;
    return 0;
}

/* A number as jansson then number() make it: integers through json_int_t,
 * reals through strtod (both correctly rounded). -1: not finite, or an
 * integer too long for this path. */
static int scan_double(struct scan *sc, double *out, int *is_int, int64_t *ival)
{
    const char *t;
    size_t n;
    if (scan_number(sc, &t, &n, is_int) != 0)
        return -1;
    if (*is_int) {
        if (small_int(t, n, ival) != 0)
            return -1;
        *out = (double)*ival;
        return 0;
    }
    if (decimal_fast(t, n, out) == 0)
        return 0;
    char tmp[64];
    if (n >= sizeof tmp)
        return -1;
    memcpy(tmp, t, n);
    tmp[n] = '\0';
    *out = strtod(tmp, NULL);
    return isfinite(*out) ? 0 : -1;
}

/* An id (request_id or denomination_id): a non-empty plain string of at
 * most LIMIT_ID_BYTES, or a non-zero integer; its JSON text, as id_text
 * writes it, goes to texts with a NUL. */
static int scan_id(struct scan *sc, struct buf *texts)
{
    skip_ws(sc);
    if (sc->p < sc->end && *sc->p == '"') {
        const char *t;
        size_t n;
        if (scan_plain_string(sc, &t, &n) != 0 || n == 0 || n > LIMIT_ID_BYTES)
            return -1;
        buf_append(texts, t - 1, n + 2);
    } else {
        const char *t;
        size_t n;
        int is_int;
        int64_t v;
        if (scan_number(sc, &t, &n, &is_int) != 0 || !is_int || small_int(t, n, &v) != 0 || v == 0)
            return -1;
        buf_append(texts, t, n);
    }
    buf_append(texts, "", 1);
    return 0;
}

struct fast_bill {
    double den, count;
};

/* Key names: exactly these, each once, nothing else. */
struct key {
    const char *name;
    size_t len;
};
#define KEY(s) {s, sizeof s - 1}

static int scan_key(struct scan *sc, const struct key *keys, int nkeys, unsigned *seen)
{
    const char *t;
    size_t n;
    if (scan_plain_string(sc, &t, &n) != 0 || !eat(sc, ':'))
        return -1;
    for (int i = 0; i < nkeys; i++)
        if (keys[i].len == n && !memcmp(keys[i].name, t, n)) {
            if (*seen & (1u << i))
                return -1;
            *seen |= 1u << i;
            return i;
        }
    return -1;
}

static int scan_bill(struct scan *sc, struct buf *texts, struct fast_bill *fb)
{
    static const struct key names[] = {KEY("denomination_id"), KEY("denomination"), KEY("count")};
    unsigned seen = 0;
    if (!eat(sc, '{'))
        return -1;
    for (int k = 0; k < 3; k++) {
        if (k && !eat(sc, ','))
            return -1;
        int is_int;
        int64_t iv;
        switch (scan_key(sc, names, 3, &seen)) {
        case 0:
            if (scan_id(sc, texts) != 0)
                return -1;
            break;
        case 1:
            if (scan_double(sc, &fb->den, &is_int, &iv) != 0 || fb->den < 0)
                return -1;
            break;
        case 2:
            if (scan_double(sc, &fb->count, &is_int, &iv) != 0 || !is_int || iv < 0)
                return -1;
            break;
        default: return -1;
        }
    }
    return eat(sc, '}') ? 0 : -1;
}

/*
 * The seed's body in its usual shape: an object with exactly request_id,
 * exchange_rate and bills, bills objects with exactly denomination_id,
 * denomination and count, strings of printable ASCII without escapes,
 * integers of at most 18 digits, counts written as integers, every value
 * valid. Anything else returns -1 and goes to the full parser, which gives
 * the same exchange for everything this one takes (the fuzzer checks it)
 * and the exact errors.
 */
int payload_parse_fast(const char *body, size_t len, struct exchange **out)
{
    static const struct key names[] = {KEY("request_id"), KEY("exchange_rate"), KEY("bills")};
    struct scan sc = {body, body + len};
    /* the pieces start on the stack: a usual body allocates only the exchange */
    char rid_on[80], texts_on[128];
    _Alignas(struct fast_bill) char bills_on[8 * sizeof(struct fast_bill)];
    struct buf rid, texts, bills;
    buf_init_on(&rid, rid_on, sizeof rid_on);
    buf_init_on(&texts, texts_on, sizeof texts_on);
    buf_init_on(&bills, bills_on, sizeof bills_on);
    unsigned seen = 0;
    double rate = 0;
    size_t nbills = 0;
    int rc = -1;
    if (!eat(&sc, '{'))
        goto out;
    for (int k = 0; k < 3; k++) {
        if (k && !eat(&sc, ','))
            goto out;
        int is_int;
        int64_t iv;
        switch (scan_key(&sc, names, 3, &seen)) {
        case 0:
            if (scan_id(&sc, &rid) != 0)
                goto out;
            break;
        case 1:
            if (scan_double(&sc, &rate, &is_int, &iv) != 0 || !(rate > 0))
                goto out;
            break;
        case 2:
            if (!eat(&sc, '['))
                goto out;
            do {
                struct fast_bill fb;
                if (nbills == LIMIT_BILLS || scan_bill(&sc, &texts, &fb) != 0)
                    goto out;
                buf_append(&bills, &fb, sizeof fb);
                nbills++;
            } while (eat(&sc, ','));
            if (!eat(&sc, ']'))
                goto out;
            break;
        default: goto out;
        }
    }
    if (!eat(&sc, '}'))
        goto out;
    skip_ws(&sc);
    if (sc.p != sc.end)
        goto out;
    const struct fast_bill *fbs = (const struct fast_bill *)bills.data;
    for (size_t i = 0; i < nbills; i++)
        if (!isfinite(money_subtotal(fbs[i].den, fbs[i].count, rate)))
            goto out;
    size_t head = sizeof(struct exchange) + nbills * sizeof(struct exchange_bill);
    struct exchange *x = xmalloc(head + rid.len + texts.len);
    char *t = (char *)x + head;
    memcpy(t, rid.data, rid.len);
    x->request_id = t;
    t += rid.len;
    memcpy(t, texts.data, texts.len);
    x->rate = rate;
    x->nbills = (uint32_t)nbills;
    for (size_t i = 0; i < nbills; i++) {
        struct exchange_bill *b = &x->bills[i];
        b->denomination = fbs[i].den;
        b->count = fbs[i].count;
        b->id = t;
        t += strlen(t) + 1;
        b->subtotal = money_round2(money_subtotal(b->denomination, b->count, rate));
    }
    *out = x;
    rc = 0;
out:
    buf_free(&rid);
    buf_free(&texts);
    buf_free(&bills);
    return rc;
}

int payload_same(const struct exchange *a, const struct exchange *b)
{
    if (strcmp(a->request_id, b->request_id) || memcmp(&a->rate, &b->rate, sizeof a->rate) ||
        a->nbills != b->nbills)
        return 0;
    for (uint32_t i = 0; i < a->nbills; i++) {
        const struct exchange_bill *x = &a->bills[i], *y = &b->bills[i];
        if (strcmp(x->id, y->id) || memcmp(&x->denomination, &y->denomination, sizeof(double)) ||
            memcmp(&x->count, &y->count, sizeof(double)) ||
            memcmp(&x->subtotal, &y->subtotal, sizeof(double)))
            return 0;
    }
    return 1;
}

int payload_parse(const char *body, size_t len, struct exchange **out, struct payload_error *err)
{
    if (payload_parse_fast(body, len, out) == 0)
        return 0;
    return payload_parse_full(body, len, out, err);
}

int payload_parse_full(const char *body, size_t len, struct exchange **out,
                       struct payload_error *err)
{
    *out = NULL;
    memset(err, 0, sizeof *err);
    if (payload_json_depth(body, len, LIMIT_JSON_DEPTH) > LIMIT_JSON_DEPTH) {
        char msg[96];
        snprintf(msg, sizeof msg, "Malformed JSON: nested deeper than %d levels", LIMIT_JSON_DEPTH);
        detail_error(err, 400, msg);
        return -1;
    }
    size_t ws = 0;
    while (ws < len && (body[ws] == ' ' || body[ws] == '\t' || body[ws] == '\r' || body[ws] == '\n'))
        ws++;
    if (ws == len) {
        detail_error(err, 400, "Malformed JSON: the body is empty");
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        char msg[300];
        snprintf(msg, sizeof msg, "Malformed JSON: %s at line %d column %d (byte %d)", jerr.text,
                 jerr.line, jerr.column, jerr.position);
        detail_error(err, 400, msg);
        return -1;
    }

    struct errors e;
    buf_init(&e.b);
    e.count = 0;
    struct buf texts;
    buf_init(&texts);
    int rc = -1;

    if (!json_is_object(root)) {
        err_add(&e, NULL, 0, "dict_type", "Input should be a valid dictionary");
        goto done;
    }
    const json_t *rid = json_object_get(root, "request_id");
    const json_t *rate_v = json_object_get(root, "exchange_rate");
    const json_t *bills = json_object_get(root, "bills");
    if (!truthy(rid) || !truthy(rate_v) || !truthy(bills)) {
        detail_error(err, 400, "Invalid payload");
        goto out;
    }

    struct loc loc = {"request_id", 0};
    if (json_is_string(rid) || json_is_integer(rid))
        id_text(rid, &texts, &e, &loc, 1);
    else
        err_add(&e, &loc, 1, "int_or_string_type", "Input should be a valid integer or string");

    double rate = 0;
    int rate_ok = 0;
    loc.name = "exchange_rate";
    if (number(rate_v, &rate) != 0)
        err_add(&e, &loc, 1, "float_type", "Input should be a valid number");
    else if (!isfinite(rate))
        err_add(&e, &loc, 1, "finite_number", "Input should be a finite number");
    else if (rate <= 0)
        err_add(&e, &loc, 1, "greater_than", "Input should be greater than 0");
    else
        rate_ok = 1;

    loc.name = "bills";
    size_t nbills = 0;
    if (!json_is_array(bills)) {
        err_add(&e, &loc, 1, "list_type", "Input should be a valid list");
    } else if ((nbills = json_array_size(bills)) > LIMIT_BILLS) {
        char msg[120];
        snprintf(msg, sizeof msg, "List should have at most %d items after validation, not %zu",
                 LIMIT_BILLS, nbills);
        err_add(&e, &loc, 1, "too_long", msg);
    } else {
        for (size_t i = 0; i < nbills && e.count < PAYLOAD_MAX_ERRORS; i++)
            check_bill(json_array_get(bills, i), (long)i, rate, rate_ok, &texts, &e);
    }
    if (e.count)
        goto done;

    /* Valid: one allocation holds the header, the bills and the id texts. */
    size_t head = sizeof(struct exchange) + nbills * sizeof(struct exchange_bill);
    struct exchange *x = xmalloc(head + texts.len);
    char *t = (char *)x + head;
    memcpy(t, texts.data, texts.len);
    x->request_id = t;
    t += strlen(t) + 1;
    x->rate = rate;
    x->nbills = (uint32_t)nbills;
    for (size_t i = 0; i < nbills; i++) {
        const json_t *bill = json_array_get(bills, i);
        struct exchange_bill *b = &x->bills[i];
        number(json_object_get(bill, "denomination"), &b->denomination);
        number(json_object_get(bill, "count"), &b->count);
        if (b->count == 0)
            b->count = 0; /* -0.0: pydantic makes it the int 0, which has no sign */
        b->id = t;
        t += strlen(t) + 1;
        b->subtotal = money_round2(money_subtotal(b->denomination, b->count, rate));
    }
    *out = x;
    rc = 0;

done:
    if (e.count) {
        struct buf b;
        buf_init(&b);
        buf_append_str(&b, "{\"detail\":[");
        buf_append(&b, e.b.data, e.b.len);
        buf_append_str(&b, "]}");
        set_error(err, 422, &b);
    }
out:
    buf_free(&e.b);
    buf_free(&texts);
    json_decref(root);
    return rc;
}

/* ---- the stored form ---- */

/* A count as canonical JSON: validation made it an integer >= 0, so digits
 * below 2^53 and repr above. */
static void append_count(struct buf *b, double count)
{
    if (count >= 0 && count < 9007199254740992.0 && count == (double)(uint64_t)count) {
        buf_append_u64(b, (uint64_t)count);
    } else {
        char num[MONEY_FMT_MAX];
        buf_append(b, num, money_format_repr(count, num, sizeof num));
    }
}

void payload_stored_append(struct buf *b, const struct exchange *ex)
{
    buf_reserve(b, 32 + ex->nbills * 40);
    char num[MONEY_FMT_MAX];
    buf_append(b, "[", 1);
    buf_append(b, num, money_format_repr(ex->rate, num, sizeof num));
    for (uint32_t i = 0; i < ex->nbills; i++) {
        const struct exchange_bill *bill = &ex->bills[i];
        buf_append(b, ",", 1);
        buf_append_str(b, bill->id);
        buf_append(b, ",", 1);
        buf_append(b, num, money_format_repr(bill->denomination, num, sizeof num));
        buf_append(b, ",", 1);
        append_count(b, bill->count);
    }
    buf_append(b, "]", 1);
}

char *payload_stored(const struct exchange *ex)
{
    struct buf b;
    buf_init(&b);
    payload_stored_append(&b, ex);
    return buf_steal(&b, NULL);
}

/* The next element of a stored form at *p (after '[' or ','): a JSON string
 * with its quotes, or the text up to the next ',' or ']'. */
static int stored_token(const char **p, const char **start, size_t *len)
{
    const char *q = *p;
    if (*q == '"') {
        for (q++; *q && *q != '"'; q++)
            if (*q == '\\' && !*++q)
                return -1;
        if (*q != '"')
            return -1;
        q++;
    } else {
        while (*q && *q != ',' && *q != ']')
            q++;
    }
    if (q == *p || (*q != ',' && *q != ']'))
        return -1;
    *start = *p;
    *len = (size_t)(q - *p);
    *p = q;
    return 0;
}

int payload_from_stored(const char *stored, const char *request_id, struct exchange **out)
{
    struct payload_error err;
    *out = NULL;
    if (stored[0] == '{') { /* a version-4 store kept the whole canonical JSON */
        if (payload_parse(stored, strlen(stored), out, &err) == 0)
            return 0;
        free(err.body);
        return -1;
    }
    if (stored[0] != '[')
        return -1;
    static const char *const keys[3] = {"{\"denomination_id\":", ",\"denomination\":",
                                         ",\"count\":"};
    struct buf b;
    buf_init(&b);
    buf_reserve(&b, 64 + strlen(request_id) + strlen(stored) * 2);
    buf_append_str(&b, "{\"request_id\":");
    buf_append_str(&b, request_id);
    buf_append_str(&b, ",\"exchange_rate\":");
    const char *p = stored + 1, *tok;
    size_t len, n = 0;
    int rc = -1;
    for (;; n++) {
        if (stored_token(&p, &tok, &len))
            goto out;
        if (n == 1)
            buf_append_str(&b, ",\"bills\":[");
        else if (n > 1 && (n - 1) % 3 == 0)
            buf_append_str(&b, "},");
        if (n)
            buf_append_str(&b, keys[(n - 1) % 3]);
        buf_append(&b, tok, len);
        if (*p++ == ']')
            break;
    }
    if (*p || n < 3 || n % 3 != 0)
        goto out;
    buf_append_str(&b, "}]}");
    rc = payload_parse(b.data, b.len, out, &err) == 0 ? 0 : -1;
    if (rc)
        free(err.body);
out:
    buf_free(&b);
    return rc;
}
