/* The wall clock as the code under test sees it, for a unit test linked
 * with -Wl,--wrap=clock_gettime (Makefile's WRAP_<test>): CLOCK_REALTIME
 * moved by wall_offset_s seconds; the monotonic clocks as they are. */
#ifndef TEST_WALLCLOCK_H
#define TEST_WALLCLOCK_H

#include <stdatomic.h>
#include <time.h>

static _Atomic long wall_offset_s; /* the store's writer thread reads it too */

int __real_clock_gettime(clockid_t clock, struct timespec *ts);
int __wrap_clock_gettime(clockid_t clock, struct timespec *ts);
int __wrap_clock_gettime(clockid_t clock, struct timespec *ts)
{
    int rc = __real_clock_gettime(clock, ts);
    if (rc == 0 && clock == CLOCK_REALTIME)
        ts->tv_sec += atomic_load(&wall_offset_s);
    return rc;
}

#endif
