/*
 * payload: a request body (JSON) -> a validated struct exchange, or the
 * exact error answer FastAPI would give. Nothing else sees raw JSON.
 *
 * Order of checks, as the seed and FastAPI do them:
 *  1. an empty body, depth > LIMIT_JSON_DEPTH, invalid JSON, invalid UTF-8, duplicate
 *     keys, NaN/Infinity literals, numbers out of range
 *        -> 400 {"detail": "Malformed JSON: <what> at line L column C (byte B)"}
 *  2. not an object -> 422 [{"type": "dict_type", "loc": ["body"], ...}]
 *  3. the seed's rule: request_id, exchange_rate or bills missing or falsy
 *     in Python's sense ("", 0, 0.0, [], {}, null, false)
 *        -> 400 {"detail": "Invalid payload"}
 *  4. types and ranges -> 422 with one entry per error (at most
 *     PAYLOAD_MAX_ERRORS), loc like ["body", "bills", 0, "count"].
 *
 * Accepted: request_id a non-empty string (<= LIMIT_ID_BYTES) or an integer;
 * exchange_rate a finite number > 0; bills a non-empty array (<= LIMIT_BILLS)
 * of objects with denomination_id (integer or string), denomination (finite
 * number >= 0) and count (integer >= 0; an integral float like 5.0 is taken,
 * and -0.0 as 0, as pydantic does); every subtotal finite. Unknown fields are
 * ignored.
 *
 * A struct exchange is one allocation (bills and the JSON texts of the ids
 * follow the header); free it with free(). Thread-safe.
 */
#ifndef EXCHANGED_PAYLOAD_H
#define EXCHANGED_PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#define PAYLOAD_MAX_ERRORS 20

struct exchange_bill {
    double denomination;
    double count;       /* an integer, held as the double Python would multiply by */
    const char *id;     /* JSON text of denomination_id, echoed unchanged: 1 or "a" */
    double subtotal;    /* round2(denomination * count * rate), set by validation */
};

struct exchange {
    const char *request_id; /* JSON text of request_id: "async_test" or 42 */
    double rate;
    uint32_t nbills;
    struct exchange_bill bills[]; /* then the id texts */
};

struct payload_error {
    int status;  /* 400 or 422 */
    char *body;  /* the whole answer body, JSON; caller frees */
    size_t len;
};

/* Parses and validates body. Returns 0 and *out (caller frees), or a
 * negative value and err filled (caller frees err->body). */
int payload_parse(const char *body, size_t len, struct exchange **out, struct payload_error *err);

/* The two paths payload_parse takes: _fast reads the seed's usual shape
 * without building a tree (0 and *out, or -1: "not in my subset", never an
 * error of its own); _full is jansson and every check above. For every body
 * _fast takes, _full gives the same exchange (tests and fuzz_payload). */
int payload_parse_fast(const char *body, size_t len, struct exchange **out);
int payload_parse_full(const char *body, size_t len, struct exchange **out,
                       struct payload_error *err);
/* 1 when a and b hold the same request, bit for bit. */
int payload_same(const struct exchange *a, const struct exchange *b);

/* The form the store keeps a request in: a JSON array of its scalars, each
 * as canonical JSON text (repr of floats, ids echoed), request_id left out
 * (the store keeps it in its own column):
 *     [exchange_rate, denomination_id, denomination, count, ...]
 * [75.5,1,10.0,5,2,20.0,3] for the seed's example: a seventh of its JSON.
 * Two requests with the same request_id are the same request exactly when
 * their stored forms are the same text. Caller frees. */
char *payload_stored(const struct exchange *ex);
struct buf;
/* The same form, appended to b. */
void payload_stored_append(struct buf *b, const struct exchange *ex);
/* The request back from its stored form and request_id (JSON text), through
 * payload_parse: 0 and *out (caller frees), or -1 when stored is not such a
 * form. The whole canonical JSON an older store kept ({"request_id":...}) is
 * read too. */
int payload_from_stored(const char *stored, const char *request_id, struct exchange **out);

/* Deepest nesting of arrays/objects in a JSON text (strings skipped),
 * stopping early once past limit. */
int payload_json_depth(const char *s, size_t len, int limit);

#endif
