#include "sqlmem.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HEADER 16
#define CLASSES 5
#define LARGE ((uint64_t)1 << 63) /* header flag: the rest is the size */

static const size_t class_size[CLASSES] = {64, 128, 256, 512, 1024};

struct block {
    struct block *next;
};

/* A thread's free lists. */
struct cache {
    struct block *head[CLASSES];
    size_t count[CLASSES];
    int registered; /* its thread's exit frees the lists (see release) */
    struct sqlmem_stats stats;
};

static _Thread_local struct cache tc;
static pthread_key_t exit_key;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int installed = -1;

/* The smallest class of at least n bytes (n <= SQLMEM_SMALL_MAX): 64 << c. */
static int class_of(size_t n)
{
    if (n <= 64)
        return 0;
    return 64 - __builtin_clzl(n - 1) - 6; /* ceil(log2(n)) - 6 */
}

static uint64_t *header_of(void *p)
{
    return (uint64_t *)((char *)p - HEADER);
}

/* A thread ends: its blocks go back to malloc. */
static void release(void *arg)
{
    struct cache *k = arg;
    for (int c = 0; c < CLASSES; c++) {
        while (k->head[c]) {
            struct block *b = k->head[c];
            k->head[c] = b->next;
            free((char *)b - HEADER);
        }
        k->count[c] = 0;
    }
    k->registered = 0;
}

static void *m_malloc(int n)
{
    if (n < 0)
        return NULL;
    size_t size = (size_t)n;
    if (size > SQLMEM_SMALL_MAX) {
        uint64_t *h = malloc(HEADER + size);
        if (!h)
            return NULL;
        *h = LARGE | size;
        tc.stats.large++;
        return (char *)h + HEADER;
    }
    int c = class_of(size);
    struct block *b = tc.head[c];
    if (b) {
        tc.head[c] = b->next;
        tc.count[c]--;
        tc.stats.small_from_list++;
        return b;
    }
    uint64_t *h = malloc(HEADER + class_size[c]);
    if (!h)
        return NULL;
    *h = (uint64_t)c;
    tc.stats.small_from_malloc++;
    return (char *)h + HEADER;
}

static void m_free(void *p)
{
    if (!p)
        return;
    uint64_t *h = header_of(p);
    if (*h & LARGE) {
        free(h);
        return;
    }
    int c = (int)*h;
    if (tc.count[c] >= SQLMEM_KEEP) {
        free(h);
        return;
    }
    if (!tc.registered) { /* the first block this thread keeps: free them at its exit */
        pthread_setspecific(exit_key, &tc);
        tc.registered = 1;
    }
    struct block *b = p;
    b->next = tc.head[c];
    tc.head[c] = b;
    tc.count[c]++;
}

static int m_size(void *p)
{
    if (!p)
        return 0;
    uint64_t h = *header_of(p);
    return (int)(h & LARGE ? h & ~LARGE : class_size[h]);
}

static void *m_realloc(void *p, int n)
{
    if (!p)
        return m_malloc(n);
    if (n < 0)
        return NULL;
    size_t have = (size_t)m_size(p);
    uint64_t *h = header_of(p);
    if (*h & LARGE) {
        /* libc's realloc, which moves a large block's pages (mremap) instead of
         * copying them: memdb (the memory store) grows its whole database
         * this way, tens of MB at a time */
        uint64_t *g = realloc(h, HEADER + (size_t)n);
        if (!g)
            return NULL;
        *g = LARGE | (uint64_t)n;
        return (char *)g + HEADER;
    }
    if ((size_t)n <= have) /* still fits its block */
        return p;
    void *q = m_malloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, have < (size_t)n ? have : (size_t)n);
    m_free(p);
    return q;
}

static int m_roundup(int n)
{
    if (n <= 0)
        return 8;
    if (n <= SQLMEM_SMALL_MAX)
        return (int)class_size[class_of((size_t)n)];
    return (n + 7) & ~7;
}

static int m_init(void *arg)
{
    (void)arg;
    return SQLITE_OK;
}

static void m_shutdown(void *arg)
{
    (void)arg;
}

static void install_once(void)
{
    static const sqlite3_mem_methods methods = {m_malloc, m_free,   m_realloc,  m_size,
                                                m_roundup, m_init, m_shutdown, NULL};
    if (pthread_key_create(&exit_key, release) != 0)
        return;
    installed = sqlite3_config(SQLITE_CONFIG_MALLOC, &methods) == SQLITE_OK ? 0 : -1;
}

int sqlmem_install(void)
{
    pthread_once(&once, install_once);
    return installed;
}

void sqlmem_thread_stats(struct sqlmem_stats *out)
{
    *out = tc.stats;
}
