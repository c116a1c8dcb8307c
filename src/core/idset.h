/*
 * idset: a set of 64-bit ids (open addressing, linear probing), for the
 * store's writer: the tasks with an update waiting to be written again, so
 * that their later updates wait behind it (store.c). Ids are added one at a
 * time and removed all at once; 0 is not an id (task ids never are).
 * Not thread-safe: one owner (the store's writer thread).
 */
#ifndef EXCHANGED_IDSET_H
#define EXCHANGED_IDSET_H

#include <stddef.h>
#include <stdint.h>

struct idset {
    uint64_t *v; /* cap slots, 0 for an empty one */
    size_t len, cap;
};

void idset_init(struct idset *s);
void idset_free(struct idset *s);
/* Adds id (not 0); adding one already there changes nothing. */
void idset_add(struct idset *s, uint64_t id);
/* 1 if id is in the set. */
int idset_has(const struct idset *s, uint64_t id);
/* Removes every id (a large table is given back). */
void idset_clear(struct idset *s);
static inline size_t idset_len(const struct idset *s) { return s->len; }

#endif
