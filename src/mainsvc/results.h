/*
 * results: the stand-in main service's table of the callbacks it received,
 * the last body under each request_id. A chained hash table that grows
 * without stopping: past half full it allocates one twice the size and
 * moves RESULTS_MOVE_STEP of the old one's buckets at each put until the
 * old one is empty, a lookup meanwhile looking in both. A table that moved
 * every entry at once held the stand-in's lock for 1.3 s at 2 million
 * entries and 2.1 s at 4 million, answering no callback meanwhile: the
 * callbacks of a service under measurement came up to 2 s late for it.
 * Not thread-safe: the caller holds its lock.
 */
#ifndef EXCHANGED_RESULTS_H
#define EXCHANGED_RESULTS_H

#include <stddef.h>
#include <stdint.h>

struct result {
    struct result *next;
    uint64_t hash;
    char *key;  /* request_id as compact JSON text: "abc" or 42 */
    char *body; /* the last callback body */
    size_t len;
};

/* old buckets moved at each put while growing: the old table (n buckets) is
 * empty after n / 8 puts, before the new one (2n) is half full, n / 2 puts on */
#define RESULTS_MOVE_STEP 8

struct results {
    struct result **cur, **old;
    size_t ncur, nold; /* buckets, powers of two */
    size_t moved;      /* old buckets emptied into cur */
    size_t count;
    size_t most_moved; /* the most entries one put moved (tests) */
};

void results_init(struct results *r);
void results_free(struct results *r);
/* Stores a copy of body under key (a copy too); 1 when the key was new, 0
 * when it replaced a body. */
int results_put(struct results *r, const char *key, const char *body, size_t len);
/* The entry under key, or NULL. */
const struct result *results_get(const struct results *r, const char *key);
static inline size_t results_count(const struct results *r) { return r->count; }

#endif
