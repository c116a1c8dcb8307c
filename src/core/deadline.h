/*
 * deadline: a 4-ary min-heap of (due time, item, tag), each group of four
 * children on one cache line (deadline.c says why): the one timer
 * structure of a worker. Each worker drives one uv_timer_t from
 * deadline_peek() (see runner.c): a heap entry costs 16 bytes where a
 * uv_timer_t per bill would cost ~150.
 *
 * Each entry carries an item pointer and a small tag (< 2^20; the runner
 * uses the bill's index). Ties on due time pop in tag order, so bills of
 * one task due at once are logged in request order.
 * Not thread-safe: one owner (a worker's loop thread; the store's writer thread keeps
 * its held-back outcomes in one, keyed by task id: see store.c).
 */
#ifndef EXCHANGED_DEADLINE_H
#define EXCHANGED_DEADLINE_H

#include <stddef.h>
#include <stdint.h>

struct deadline_entry {
    uint64_t key;   /* due time in ms << 20 | tag */
    void *item;
};

struct deadline_heap {
    struct deadline_entry *v;
    size_t len, cap;
};

void deadline_init(struct deadline_heap *h);
void deadline_free(struct deadline_heap *h);
#define DEADLINE_TAG_MAX ((1u << 20) - 1)
/* Adds item with tag (<= DEADLINE_TAG_MAX) due at due_ms (ms, < 2^43). */
void deadline_push(struct deadline_heap *h, uint64_t due_ms, void *item, uint32_t tag);
/* Due time of the earliest entry; 0 and -1 when empty. */
int deadline_peek(const struct deadline_heap *h, uint64_t *due_ms);
/* Removes and returns the earliest entry's item (and its tag) if it is due
 * at or before now_ms; NULL otherwise. */
void *deadline_pop_due(struct deadline_heap *h, uint64_t now_ms, uint32_t *tag);
static inline size_t deadline_len(const struct deadline_heap *h) { return h->len; }
#define DEADLINE_NONE ((size_t)-1)
/* Where the entry with this due time and tag is (a linear scan), or
 * DEADLINE_NONE. */
size_t deadline_find(const struct deadline_heap *h, uint64_t due_ms, uint32_t tag);
/* Removes the entry at i (from deadline_find) and returns its item. */
void *deadline_remove(struct deadline_heap *h, size_t i);

#endif
