#include "group.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "../util.h"

struct member {
    _Atomic uint64_t count;   /* connections placed here and not ended */
    _Atomic int waiting;      /* found the cap reached: woken when a slot is given back */
    uv_mutex_t lock;          /* guards the fields below */
    uv_async_t *wake;         /* NULL while closed (not joined, or left) */
    int *fds;                 /* handed here, not yet taken */
    size_t len, cap;
};

struct http_group {
    int n;
    unsigned max;
    _Atomic uint64_t open;    /* slots claimed over all members */
    _Atomic int nwaiting;     /* members waiting for a slot */
    struct member *m;
};

#define RELAXED memory_order_relaxed

struct http_group *http_group_new(int n, unsigned max_connections)
{
    struct http_group *g = xcalloc(1, sizeof *g);
    g->n = n;
    g->max = max_connections;
    g->m = xcalloc((size_t)n, sizeof *g->m);
    for (int i = 0; i < n; i++)
        if (uv_mutex_init(&g->m[i].lock) != 0) /* cannot fail for a default mutex on Linux */
            abort();
    return g;
}

void http_group_free(struct http_group *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n; i++) {
        struct member *m = &g->m[i];
        for (size_t j = 0; j < m->len; j++)
            close(m->fds[j]);
        free(m->fds);
        uv_mutex_destroy(&m->lock);
    }
    free(g->m);
    free(g);
}

void http_group_join(struct http_group *g, int i, uv_async_t *wake)
{
    struct member *m = &g->m[i];
    uv_mutex_lock(&m->lock);
    m->wake = wake;
    uv_mutex_unlock(&m->lock);
}

/* Empties member m's queue into *fds; under its lock. */
static size_t take_locked(struct member *m, int **fds)
{
    size_t n = m->len;
    *fds = m->fds;
    m->fds = NULL;
    m->len = m->cap = 0;
    return n;
}

static int wake_one(struct http_group *g, int from, int local);

size_t http_group_leave(struct http_group *g, int i, int **fds)
{
    struct member *m = &g->m[i];
    uv_mutex_lock(&m->lock);
    m->wake = NULL;
    size_t n = take_locked(m, fds);
    uv_mutex_unlock(&m->lock);
    /* a slot's wake sent here and not yet run is lost with the handle: passed on
     * (a member woken with no slot free waits again) */
    wake_one(g, i + 1, 0);
    return n;
}

size_t http_group_take(struct http_group *g, int i, int **fds)
{
    struct member *m = &g->m[i];
    uv_mutex_lock(&m->lock);
    size_t n = take_locked(m, fds);
    uv_mutex_unlock(&m->lock);
    return n;
}

int http_group_claim(struct http_group *g)
{
    uint64_t cur = atomic_load_explicit(&g->open, RELAXED);
    do {
        if (cur >= g->max)
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(&g->open, &cur, cur + 1, RELAXED, RELAXED));
    return 1;
}

/* Sends member m's wake if it is open (1; 0 when it has left); the caller
 * has cleared its waiting flag. */
static int wake(struct member *m)
{
    uv_mutex_lock(&m->lock);
    int open = m->wake != NULL;
    if (open)
        uv_async_send(m->wake); /* under the lock: the handle is open */
    uv_mutex_unlock(&m->lock);
    return open;
}

/* Wakes one member waiting for a slot, the first from `from` on, skipping
 * any that has left; nothing when none waits. With local set the caller
 * runs on member from's loop and takes a wake for it there: 1 when it was
 * the one woken (no wake sent), else 0. */
static int wake_one(struct http_group *g, int from, int local)
{
    if (atomic_load(&g->nwaiting) == 0)
        return 0;
    for (int k = 0; k < g->n; k++) {
        struct member *m = &g->m[(from + k) % g->n];
        if (atomic_load_explicit(&m->waiting, RELAXED) && atomic_exchange(&m->waiting, 0)) {
            atomic_fetch_sub(&g->nwaiting, 1);
            if (k == 0 && local)
                return 1;
            if (wake(m))
                return 0;
        }
    }
    return 0;
}

/* A slot was given back by member from: one member waiting for a slot is
 * woken, the first from `from` on (its own loop first: the slot it freed
 * most likely serves its own backlog). The woken member tries its backlog at
 * once and, finding it empty, gives the slot back, which wakes the next
 * (server.c): the slot passes along the waiting members until one has a
 * connection for it, rather than waking them all for one slot. The slot's
 * decrement and the load of nwaiting are sequentially consistent, as are a
 * waiter's increment and its claim after it: either the waiter's claim sees
 * the slot, or this sees the waiter. */
static int slot_given_back(struct http_group *g, int from, int local)
{
    atomic_fetch_sub(&g->open, 1);
    return wake_one(g, from, local);
}

/* Member i stops waiting (it claimed a slot after all). */
static void stop_waiting(struct http_group *g, int i)
{
    if (atomic_exchange(&g->m[i].waiting, 0))
        atomic_fetch_sub(&g->nwaiting, 1);
}

int http_group_claim_or_wait(struct http_group *g, int i)
{
    if (http_group_claim(g))
        return 1;
    if (!atomic_exchange(&g->m[i].waiting, 1))
        atomic_fetch_add(&g->nwaiting, 1);
    uint64_t cur = atomic_load(&g->open); /* a slot given back before the flag was seen */
    while (cur < g->max) {
        if (atomic_compare_exchange_weak(&g->open, &cur, cur + 1)) {
            stop_waiting(g, i);
            return 1;
        }
    }
    return 0;
}

void http_group_unclaim(struct http_group *g, int i)
{
    slot_given_back(g, i, 0);
}

int http_group_release(struct http_group *g, int i, int local)
{
    atomic_fetch_sub_explicit(&g->m[i].count, 1, RELAXED);
    return slot_given_back(g, i, local);
}

uint64_t http_group_count(const struct http_group *g, int i)
{
    return atomic_load_explicit(&g->m[i].count, RELAXED);
}

int http_group_place(struct http_group *g, int self, int fd)
{
    int to = self;
    uint64_t least = atomic_load_explicit(&g->m[self].count, RELAXED);
    for (int i = 0; i < g->n; i++) {
        if (i == self)
            continue;
        uint64_t c = atomic_load_explicit(&g->m[i].count, RELAXED);
        if (c < least) {
            least = c;
            to = i;
        }
    }
    if (to != self) {
        struct member *m = &g->m[to];
        uv_mutex_lock(&m->lock);
        if (m->wake) { /* open: it takes them, or gets them back when it leaves */
            if (m->len == m->cap) {
                m->cap = m->cap ? 2 * m->cap : 16;
                m->fds = xrealloc(m->fds, m->cap * sizeof *m->fds);
            }
            m->fds[m->len++] = fd;
            atomic_fetch_add_explicit(&m->count, 1, RELAXED);
            uv_async_send(m->wake); /* under the lock: open */
            uv_mutex_unlock(&m->lock);
            return to;
        }
        uv_mutex_unlock(&m->lock); /* closed (only around the start and the stop): kept */
        to = self;
    }
    atomic_fetch_add_explicit(&g->m[self].count, 1, RELAXED);
    return self;
}
