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

int payload_parse(const char *body, size_t len, struct exchange **out, struct payload_error *err)
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
