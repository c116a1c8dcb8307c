/*
 * memtrim: gives the heap's free memory back to the system once a load has
 * drained.
 *
 * glibc's malloc keeps what a load freed: 300,000 tasks in flight took the
 * service from 12 to 82-87 MB, and once they were all delivered it stayed
 * at 65-83 MB for good. malloc_trim(0) hands the free pages of every arena
 * back (24 MB there). A timer on the main loop looks at the load (tasks in
 * flight, sync requests, open connections) once every MEMTRIM_PERIOD_MS and
 * trims once it has settled (it fell by less than MEMTRIM_MIN_DROP / 10
 * since the last look) at half its peak since the last trim or less, by at
 * least MEMTRIM_MIN_DROP: once after a burst has drained, once a backlog
 * has drained to a steadier load, never under a steady load nor during a
 * drain. A trim takes 15-70 ms with a large heap (each free chunk's pages
 * are handed back by madvise, its arena locked meanwhile); the load that
 * freed the memory is over by then. Each trim is logged (event=memory_trimmed,
 * with the RSS before and after, and its time).
 */
#ifndef EXCHANGED_MEMTRIM_H
#define EXCHANGED_MEMTRIM_H

#include <stdint.h>
#include <uv.h>

#define MEMTRIM_PERIOD_MS 1000
#define MEMTRIM_MIN_DROP 10000

struct memtrim {
    uv_timer_t timer;
    uint64_t peak;                /* highest load seen since the last trim */
    uint64_t prev;                /* the load at the last look */
    uint64_t (*load)(void *arg);  /* the load now; any thread's counters */
    void *arg;
    uint64_t trims;
};

/* Whether a trim is due with the load at now, prev at the last look (set
 * to now) and peak the highest since the last trim (updated; set to now
 * when a trim is due). Pure. */
int memtrim_due(uint64_t *peak, uint64_t *prev, uint64_t now, uint64_t min_drop);

/* Starts the timer on loop, looking every period_ms (MEMTRIM_PERIOD_MS;
 * unreferenced: it keeps no loop alive). 0 or a libuv error code. */
int memtrim_start(struct memtrim *m, uv_loop_t *loop, uint64_t period_ms,
                  uint64_t (*load)(void *arg), void *arg);

/* Stops and closes the timer (before the loop closes). */
void memtrim_stop(struct memtrim *m);

#endif
