#include "deadline.h"

#include <stdlib.h>

#include "../util.h"

#define TAG_BITS 20

void deadline_init(struct deadline_heap *h)
{
    h->v = NULL;
    h->len = h->cap = 0;
}

void deadline_free(struct deadline_heap *h)
{
    free(h->v);
    deadline_init(h);
}

void deadline_push(struct deadline_heap *h, uint64_t due_ms, void *item, uint32_t tag)
{
    if (h->len == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 256;
        h->v = xrealloc(h->v, h->cap * sizeof *h->v);
    }
    uint64_t key = (due_ms << TAG_BITS) | (tag & DEADLINE_TAG_MAX);
    size_t i = h->len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->v[parent].key <= key)
            break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i].key = key;
    h->v[i].item = item;
}

int deadline_peek(const struct deadline_heap *h, uint64_t *due_ms)
{
    if (!h->len)
        return -1;
    *due_ms = h->v[0].key >> TAG_BITS;
    return 0;
}

/* Fills the hole at i with the last entry, moved up or down to its place. */
static void fill_hole(struct deadline_heap *h, size_t i)
{
    size_t n = --h->len;
    struct deadline_entry last = h->v[n];
    if (i < n) { /* else the hole was the last entry itself */
        while (i > 0 && h->v[(i - 1) / 2].key > last.key) { /* up: only after a removal */
            h->v[i] = h->v[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        for (;;) {
            size_t l = 2 * i + 1, r = l + 1, m = i;
            uint64_t mk = last.key;
            if (l < n && h->v[l].key < mk)
                m = l, mk = h->v[l].key;
            if (r < n && h->v[r].key < mk)
                m = r;
            if (m == i)
                break;
            h->v[i] = h->v[m];
            i = m;
        }
        h->v[i] = last;
    }
    if (h->cap > 1024 && h->len < h->cap / 4) { /* give memory back after a burst */
        h->cap /= 2;
        h->v = xrealloc(h->v, h->cap * sizeof *h->v);
    }
}

void *deadline_pop_due(struct deadline_heap *h, uint64_t now_ms, uint32_t *tag)
{
    if (!h->len || (h->v[0].key >> TAG_BITS) > now_ms)
        return NULL;
    void *item = h->v[0].item;
    *tag = (uint32_t)(h->v[0].key & DEADLINE_TAG_MAX);
    fill_hole(h, 0);
    return item;
}

size_t deadline_find(const struct deadline_heap *h, uint64_t due_ms, uint32_t tag)
{
    uint64_t key = (due_ms << TAG_BITS) | (tag & DEADLINE_TAG_MAX);
    for (size_t i = 0; i < h->len; i++)
        if (h->v[i].key == key)
            return i;
    return DEADLINE_NONE;
}

void *deadline_remove(struct deadline_heap *h, size_t i)
{
    void *item = h->v[i].item;
    fill_hole(h, i);
    return item;
}
