#include "idset.h"

#include <stdlib.h>
#include <string.h>

#include "../util.h"

#define MIN_CAP 16
/* past this many slots a cleared table is freed rather than zeroed */
#define KEEP_CAP 4096

void idset_init(struct idset *s)
{
    s->v = NULL;
    s->len = s->cap = 0;
}

void idset_free(struct idset *s)
{
    free(s->v);
    idset_init(s);
}

/* The slot of id, or of the empty slot where it would go (cap > len). */
static size_t slot(const struct idset *s, uint64_t id)
{
    uint64_t h = id * 0x9E3779B97F4A7C15ULL; /* Fibonacci hashing: ids share their low bits */
    size_t mask = s->cap - 1, i = (size_t)(h >> 32) & mask;
    while (s->v[i] && s->v[i] != id)
        i = (i + 1) & mask;
    return i;
}

static void grow(struct idset *s)
{
    struct idset n = {xcalloc(s->cap ? s->cap * 2 : MIN_CAP, sizeof *n.v), s->len,
                      s->cap ? s->cap * 2 : MIN_CAP};
    for (size_t i = 0; i < s->cap; i++)
        if (s->v[i])
            n.v[slot(&n, s->v[i])] = s->v[i];
    free(s->v);
    *s = n;
}

void idset_add(struct idset *s, uint64_t id)
{
    if ((s->len + 1) * 2 > s->cap) /* at most half full */
        grow(s);
    size_t i = slot(s, id);
    if (!s->v[i]) {
        s->v[i] = id;
        s->len++;
    }
}

int idset_has(const struct idset *s, uint64_t id)
{
    return s->len && s->v[slot(s, id)] == id;
}

void idset_clear(struct idset *s)
{
    if (s->cap > KEEP_CAP)
        idset_free(s);
    else if (s->len)
        memset(s->v, 0, s->cap * sizeof *s->v);
    s->len = 0;
}
