#include "memtrim.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <unistd.h>

#include "util.h"

int memtrim_due(uint64_t *peak, uint64_t *prev, uint64_t now, uint64_t min_drop)
{
    uint64_t before = *prev;
    *prev = now;
    if (now > *peak)
        *peak = now;
    int settled = before < now + min_drop / 10; /* fell by less than a tenth of it */
    if (*peak - now < min_drop || now > *peak / 2 || !settled)
        return 0;
    *peak = now;
    return 1;
}

/* The resident set in KiB (/proc/self/statm's second field, in pages); 0
 * when it cannot be read. */
static uint64_t rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%llu %llu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE) / 1024;
}

static void on_tick(uv_timer_t *t)
{
    struct memtrim *m = t->data;
    uint64_t now = m->load(m->arg), peak = m->peak;
    if (!memtrim_due(&m->peak, &m->prev, now, MEMTRIM_MIN_DROP))
        return;
    uint64_t before = rss_kib(), t0 = util_now_ms();
    malloc_trim(0);
    uint64_t took = util_now_ms() - t0;
    m->trims++;
    log_info("event=memory_trimmed load=%" PRIu64 " peak=%" PRIu64 " rss_kib_before=%" PRIu64
             " rss_kib_after=%" PRIu64 " took_ms=%" PRIu64,
             now, peak, before, rss_kib(), took); /* a trim is due only below the peak */
}

int memtrim_start(struct memtrim *m, uv_loop_t *loop, uint64_t period_ms,
                  uint64_t (*load)(void *arg), void *arg)
{
    m->peak = 0;
    m->prev = 0;
    m->load = load;
    m->arg = arg;
    m->trims = 0;
    int rc = uv_timer_init(loop, &m->timer);
    if (rc != 0)
        return rc;
    m->timer.data = m;
    rc = uv_timer_start(&m->timer, on_tick, period_ms, period_ms);
    if (rc != 0) {
        uv_close((uv_handle_t *)&m->timer, NULL);
        return rc;
    }
    uv_unref((uv_handle_t *)&m->timer);
    return 0;
}

void memtrim_stop(struct memtrim *m)
{
    uv_timer_stop(&m->timer);
    uv_close((uv_handle_t *)&m->timer, NULL);
}
