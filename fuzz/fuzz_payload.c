/* Fuzz target: payload validation (a request body -> struct exchange or a
 * FastAPI-shaped error), and the stored form a valid one is kept in, which
 * must read back to the same request. Whatever the fast path takes, the full
 * parser must take the same way (payload_same). The input is read as a
 * stored form too: refused, or a request whose stored form reads back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/payload.h"

/* ex's stored form reads back to ex, bit for bit */
static void round_trip(const struct exchange *ex)
{
    char *stored = payload_stored(ex);
    struct exchange *again;
    if (payload_from_stored(stored, ex->request_id, &again) != 0)
        abort(); /* what we store must always read back */
    if (!payload_same(ex, again))
        abort();
    free(again);
    free(stored);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct exchange *ex;
    struct payload_error err;
    struct exchange *fast, *full;
    if (payload_parse_fast((const char *)data, size, &fast) == 0) {
        if (payload_parse_full((const char *)data, size, &full, &err) != 0)
            abort(); /* the fast path took what the full one refuses */
        if (!payload_same(fast, full))
            abort();
        free(fast);
        free(full);
    }
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    if (payload_from_stored(text, "\"r\"", &ex) == 0) {
        round_trip(ex);
        free(ex);
    }
    free(text);
    if (payload_parse((const char *)data, size, &ex, &err) != 0) {
        if (err.status != 400 && err.status != 422)
            abort();
        if (!err.body || err.body[0] != '{')
            abort();
        free(err.body);
        return 0;
    }
    round_trip(ex);
    free(ex);
    return 0;
}
