#include "idcount.h"

#include <stdlib.h>
#include <string.h>

#include "../util.h"

#define MIN_CAP 16
/* past this many slots a cleared table is freed rather than zeroed */
#define KEEP_CAP 4096

void idcount_init(struct idcount *c)
{
    c->ids = NULL;
    c->counts = NULL;
    c->len = c->cap = 0;
}

void idcount_free(struct idcount *c)
{
    free(c->ids);
    free(c->counts);
    idcount_init(c);
}

/* Where id's probe starts (Fibonacci hashing: task ids share their low bits). */
static size_t home(const struct idcount *c, uint64_t id)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 32) & (c->cap - 1);
}

/* The slot of id, or the empty slot where it would go (cap > len). */
static size_t slot(const struct idcount *c, uint64_t id)
{
    size_t i = home(c, id);
    while (c->ids[i] && c->ids[i] != id)
        i = (i + 1) & (c->cap - 1);
    return i;
}

static void grow(struct idcount *c)
{
    size_t cap = c->cap ? c->cap * 2 : MIN_CAP;
    struct idcount n = {xcalloc(cap, sizeof *n.ids), xcalloc(cap, sizeof *n.counts), c->len, cap};
    for (size_t i = 0; i < c->cap; i++)
        if (c->ids[i]) {
            size_t j = slot(&n, c->ids[i]);
            n.ids[j] = c->ids[i];
            n.counts[j] = c->counts[i];
        }
    free(c->ids);
    free(c->counts);
    *c = n;
}

void idcount_add(struct idcount *c, uint64_t id)
{
    if ((c->len + 1) * 2 > c->cap) /* at most half full */
        grow(c);
    size_t i = slot(c, id);
    if (!c->ids[i]) {
        c->ids[i] = id;
        c->len++;
    }
    c->counts[i]++;
}

void idcount_remove(struct idcount *c, uint64_t id)
{
    if (!c->len)
        return;
    size_t i = slot(c, id), mask = c->cap - 1;
    if (!c->ids[i] || --c->counts[i])
        return;
    /* backward shift: each entry after the hole, in its run, that may sit in
     * the hole (its probe starts at or before it) moves there */
    for (size_t j = (i + 1) & mask; c->ids[j]; j = (j + 1) & mask) {
        size_t k = home(c, c->ids[j]);
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
            continue; /* its probe starts after the hole: it stays */
        c->ids[i] = c->ids[j];
        c->counts[i] = c->counts[j];
        i = j;
    }
    c->ids[i] = 0;
    c->counts[i] = 0;
    c->len--;
}

int idcount_has(const struct idcount *c, uint64_t id)
{
    return c->len && c->ids[slot(c, id)] == id;
}

void idcount_clear(struct idcount *c)
{
    if (c->cap > KEEP_CAP)
        idcount_free(c);
    else if (c->len) {
        memset(c->ids, 0, c->cap * sizeof *c->ids);
        memset(c->counts, 0, c->cap * sizeof *c->counts);
    }
    c->len = 0;
}
