/*
 * idcount: a count per 64-bit id (a multiset; open addressing, linear
 * probing, deletion by backward shift), for the store's writer: how many of
 * each task's updates wait on its list to be written again, so that the
 * task's later updates wait behind them (store.c). 0 is not an id (task ids
 * never are).
 * Not thread-safe: one owner (the store's writer thread).
 */
#ifndef EXCHANGED_IDCOUNT_H
#define EXCHANGED_IDCOUNT_H

#include <stddef.h>
#include <stdint.h>

struct idcount {
    uint64_t *ids;    /* cap slots, 0 for an empty one */
    uint32_t *counts; /* each slot's count (> 0 where ids is not 0) */
    size_t len, cap;  /* len: the ids with a count */
};

void idcount_init(struct idcount *c);
void idcount_free(struct idcount *c);
/* Counts id (not 0) once more. */
void idcount_add(struct idcount *c, uint64_t id);
/* Counts id once less (nothing if it has no count). */
void idcount_remove(struct idcount *c, uint64_t id);
/* 1 if id has a count. */
int idcount_has(const struct idcount *c, uint64_t id);
/* Removes every count (a large table is given back). */
void idcount_clear(struct idcount *c);
static inline size_t idcount_len(const struct idcount *c) { return c->len; }

#endif
