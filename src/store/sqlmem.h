/*
 * sqlmem: SQLite's memory allocator, with per-thread free lists for small
 * blocks in place of the lookaside allocator Debian's SQLite is built
 * without (OMIT_LOOKASIDE: PRAGMA compile_options).
 *
 * Without a lookaside every small allocation of a statement (cursors,
 * records, bound values: ~18 per task in the writer) is a malloc and a free,
 * ~120 instructions of glibc per pair. Here a block of up to
 * SQLMEM_SMALL_MAX bytes comes from a free list of its size class (64, 128,
 * 256, 512 or 1024 bytes) kept by the calling thread, and goes back to the
 * list of the thread that frees it: a pair is ~20 instructions. A list
 * keeps at most SQLMEM_KEEP blocks (more go back to malloc), and a thread's
 * lists go back to malloc when it ends. Larger blocks are malloc's, and
 * grow or shrink by realloc (for a large one glibc moves pages, not bytes:
 * the memory store's database is one such block, doubled as it grows).
 *
 * Every block has a 16-byte header (its class, or its size when large), so
 * blocks stay 16-byte aligned and xSize needs no malloc_usable_size.
 *
 * sqlmem_install must run before SQLite initialises (before the first
 * sqlite3_open); once SQLite runs it changes nothing and says so (-1).
 */
#ifndef EXCHANGED_SQLMEM_H
#define EXCHANGED_SQLMEM_H

#include <stddef.h>

#define SQLMEM_SMALL_MAX 1024
#define SQLMEM_KEEP 256

/* 0: SQLite allocates through sqlmem from now on (or already did); -1: SQLite
 * had already started with another allocator. Thread-safe, idempotent. */
int sqlmem_install(void);

struct sqlmem_stats {
    size_t small_from_list; /* small blocks handed out from a free list */
    size_t small_from_malloc;
    size_t large;
};
/* The calling thread's counts (tests). */
void sqlmem_thread_stats(struct sqlmem_stats *out);

#endif
