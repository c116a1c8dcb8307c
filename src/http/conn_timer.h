/*
 * conn_timer: a connection's one deadline on its one uv_timer_t, moved
 * lazily (the server's header/body/idle deadlines, the client's connect,
 * total and idle ones). libuv keeps timers in a heap, and a request moved
 * its connection's timer several times (~2,600 instructions per task in
 * all). Here a new deadline moves the timer only when it comes earlier than
 * the timer is set for; a timer that fires before the deadline (which moved
 * later) is set again for the rest (conn_timer_due). So a request on a
 * kept-alive connection moves no timer. Times are the loop's (uv_now).
 */
#ifndef EXCHANGED_CONN_TIMER_H
#define EXCHANGED_CONN_TIMER_H

#include <stdint.h>
#include <uv.h>

struct conn_timer {
    uint64_t deadline, due; /* the deadline; when the timer is set to fire */
    unsigned set : 1, armed : 1;
};

/* The deadline is now due_ms; cb is the timer's callback. */
static inline void conn_timer_set(struct conn_timer *ct, uv_timer_t *t, uv_timer_cb cb,
                                  uint64_t due_ms)
{
    ct->deadline = due_ms;
    ct->set = 1;
    if (ct->armed && ct->due <= due_ms)
        return;
    uint64_t now = uv_now(t->loop);
    ct->armed = 1;
    ct->due = due_ms;
    uv_timer_start(t, cb, due_ms > now ? due_ms - now : 0, 0);
}

/* No deadline: the timer, if set, finds nothing to do when it fires. */
static inline void conn_timer_clear(struct conn_timer *ct)
{
    ct->set = 0;
}

/* No deadline, and the timer stopped (it is about to be used otherwise). */
static inline void conn_timer_stop(struct conn_timer *ct, uv_timer_t *t)
{
    ct->set = ct->armed = 0;
    uv_timer_stop(t);
}

/* In the timer's callback cb: 1 when the deadline has come (it is cleared);
 * 0 when there is none, or it moved later (the timer is set for the rest). */
static inline int conn_timer_due(struct conn_timer *ct, uv_timer_t *t, uv_timer_cb cb)
{
    ct->armed = 0;
    if (!ct->set)
        return 0;
    uint64_t now = uv_now(t->loop);
    if (now < ct->deadline) {
        ct->armed = 1;
        ct->due = ct->deadline;
        uv_timer_start(t, cb, ct->deadline - now, 0);
        return 0;
    }
    ct->set = 0;
    return 1;
}

#endif
