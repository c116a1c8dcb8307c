/* Fuzz target: payload validation (a request body -> struct exchange or a
 * FastAPI-shaped error), and the canonical payload a valid one is stored as,
 * which must parse back to the same request. Whatever the fast path takes,
 * the full parser must take the same way (payload_same). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/payload.h"
#include "../src/core/runner.h"

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
    if (payload_parse((const char *)data, size, &ex, &err) != 0) {
        if (err.status != 400 && err.status != 422)
            abort();
        if (!err.body || err.body[0] != '{')
            abort();
        free(err.body);
        return 0;
    }
    char *canonical = runner_canonical_payload(ex);
    struct exchange *again;
    if (payload_parse(canonical, strlen(canonical), &again, &err) != 0)
        abort(); /* what we store must always read back */
    if (again->nbills != ex->nbills || strcmp(again->request_id, ex->request_id) != 0)
        abort();
    for (uint32_t i = 0; i < ex->nbills; i++) /* subtotals are finite: validation saw to it */
        if (again->bills[i].subtotal != ex->bills[i].subtotal || strcmp(again->bills[i].id, ex->bills[i].id))
            abort();
    free(again);
    free(canonical);
    free(ex);
    return 0;
}
