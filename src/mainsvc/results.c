#include "results.h"

#include <stdlib.h>
#include <string.h>

#include "../util.h"

#define FIRST_BUCKETS 1024

static uint64_t hash_of(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

void results_init(struct results *r)
{
    memset(r, 0, sizeof *r);
}

/* Frees the chains of buckets from..n-1, then the table. */
static void free_table(struct result **b, size_t from, size_t n)
{
    for (size_t i = from; i < n; i++)
        for (struct result *e = b[i], *next; e; e = next) {
            next = e->next;
            free(e->key);
            free(e->body);
            free(e);
        }
    free(b);
}

void results_free(struct results *r)
{
    if (r->old)
        free_table(r->old, r->moved, r->nold);
    free_table(r->cur, 0, r->ncur);
    memset(r, 0, sizeof *r);
}

/* Empties up to `buckets` old buckets into cur; frees the old table once
 * every one is. Returns the entries moved. */
static size_t move_some(struct results *r, size_t buckets)
{
    size_t entries = 0;
    for (; buckets && r->moved < r->nold; buckets--, r->moved++)
        for (struct result *e = r->old[r->moved], *next; e; e = next) {
            next = e->next;
            size_t k = e->hash & (r->ncur - 1);
            e->next = r->cur[k];
            r->cur[k] = e;
            entries++;
        }
    if (r->old && r->moved == r->nold) {
        free(r->old);
        r->old = NULL;
        r->nold = r->moved = 0;
    }
    return entries;
}

static struct result *find(const struct results *r, const char *key, uint64_t h)
{
    if (r->old) {
        size_t k = h & (r->nold - 1);
        if (k >= r->moved)
            for (struct result *e = r->old[k]; e; e = e->next)
                if (e->hash == h && !strcmp(e->key, key))
                    return e;
    }
    if (!r->ncur)
        return NULL;
    for (struct result *e = r->cur[h & (r->ncur - 1)]; e; e = e->next)
        if (e->hash == h && !strcmp(e->key, key))
            return e;
    return NULL;
}

int results_put(struct results *r, const char *key, const char *body, size_t len)
{
    size_t moved = 0;
    if (r->count >= r->ncur / 2) {
        if (r->old) /* cannot happen at the step's pace; kept whole if it did */
            moved += move_some(r, r->nold);
        r->old = r->cur;
        r->nold = r->ncur;
        r->moved = 0;
        r->ncur = r->ncur ? r->ncur * 2 : FIRST_BUCKETS;
        r->cur = xcalloc(r->ncur, sizeof *r->cur);
    }
    if (r->old)
        moved += move_some(r, RESULTS_MOVE_STEP);
    if (moved > r->most_moved)
        r->most_moved = moved;
    uint64_t h = hash_of(key);
    struct result *e = find(r, key, h);
    if (e) {
        free(e->body);
        e->body = xstrndup(body, len);
        e->len = len;
        return 0;
    }
    e = xmalloc(sizeof *e);
    e->hash = h;
    e->key = xstrndup(key, strlen(key));
    e->body = xstrndup(body, len);
    e->len = len;
    size_t k = h & (r->ncur - 1);
    e->next = r->cur[k];
    r->cur[k] = e;
    r->count++;
    return 1;
}

const struct result *results_get(const struct results *r, const char *key)
{
    return find(r, key, hash_of(key));
}
