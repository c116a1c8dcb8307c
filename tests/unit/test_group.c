/* group: one cap over all members (exact, also with threads claiming at
 * once); each connection placed where fewest are, handed to another member
 * through its queue and its wake handle; nothing handed to a member that has
 * not joined or has left, and what waits for one that leaves given back; a
 * member that found the cap reached woken when a slot is given back (one per
 * slot, passed on when unused), never missed when the two race. */
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>
#include <uv.h>

#include "../../src/http/group.h"

static int some_fd(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static void test_cap_over_all_members(void **state)
{
    (void)state;
    struct http_group *g = http_group_new(2, 3);
    assert_int_equal(http_group_claim(g), 1);
    assert_int_equal(http_group_claim(g), 1);
    assert_int_equal(http_group_claim(g), 1);
    assert_int_equal(http_group_claim(g), 0); /* 3 over both members */
    http_group_unclaim(g, 0);                 /* an accept that found nothing */
    assert_int_equal(http_group_claim(g), 1);
    assert_int_equal(http_group_claim(g), 0);
    /* three connections placed (no member joined: each stays where accepted) */
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = some_fd();
        assert_int_equal(http_group_place(g, i == 2, fds[i]), i == 2);
    }
    assert_int_equal(http_group_count(g, 0), 2);
    assert_int_equal(http_group_count(g, 1), 1);
    assert_int_equal(http_group_release(g, 0, 1), 0); /* one ends: its slot, its count */
    assert_int_equal(http_group_count(g, 0), 1);
    assert_int_equal(http_group_claim(g), 1);
    assert_int_equal(http_group_claim(g), 0);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    http_group_free(g);
}

static int woken[2];

static void on_wake(uv_async_t *a)
{
    woken[(intptr_t)a->data]++;
}

/* A group of two members with cap, both joined with a wake handle on loop
 * (which counts into woken[]). */
static struct http_group *two_members(uv_loop_t *loop, uv_async_t wake[2], unsigned cap)
{
    assert_int_equal(uv_loop_init(loop), 0);
    for (int i = 0; i < 2; i++) {
        uv_async_init(loop, &wake[i], on_wake);
        wake[i].data = (void *)(intptr_t)i;
    }
    woken[0] = woken[1] = 0;
    struct http_group *g = http_group_new(2, cap);
    http_group_join(g, 0, &wake[0]);
    http_group_join(g, 1, &wake[1]);
    return g;
}

static void close_loop(uv_loop_t *loop, uv_async_t wake[2])
{
    for (int i = 0; i < 2; i++)
        uv_close((uv_handle_t *)&wake[i], NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

static void test_placed_where_fewest_are(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_async_t wake[2];
    struct http_group *g = two_members(&loop, wake, 100);
    /* four connections, all accepted by member 0 (as the kernel's hash may do) */
    int fds[4], *got;
    for (int i = 0; i < 4; i++) {
        fds[i] = some_fd();
        assert_int_equal(http_group_claim(g), 1);
    }
    assert_int_equal(http_group_place(g, 0, fds[0]), 0); /* 0 / 0: kept */
    assert_int_equal(http_group_place(g, 0, fds[1]), 1); /* 1 / 0: handed */
    assert_int_equal(http_group_place(g, 0, fds[2]), 0); /* 1 / 1: kept */
    assert_int_equal(http_group_place(g, 0, fds[3]), 1); /* 2 / 1: handed */
    assert_int_equal(http_group_count(g, 0), 2);
    assert_int_equal(http_group_count(g, 1), 2);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(woken[0], 0);
    assert_true(woken[1] >= 1); /* sends may coalesce into one call */
    assert_int_equal(http_group_take(g, 1, &got), 2);
    assert_int_equal(got[0], fds[1]);
    assert_int_equal(got[1], fds[3]);
    free(got);
    assert_int_equal(http_group_take(g, 1, &got), 0);
    assert_null(got);
    assert_int_equal(http_group_take(g, 0, &got), 0); /* nothing was handed to 0 */
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    http_group_free(g);
    close_loop(&loop, wake);
}

static void test_nothing_handed_to_a_member_not_there(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_async_t wake;
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_async_init(&loop, &wake, NULL);
    struct http_group *g = http_group_new(2, 100);
    http_group_join(g, 0, &wake); /* 1 has not joined */
    int fds[3], *got;
    for (int i = 0; i < 3; i++) {
        fds[i] = some_fd();
        assert_int_equal(http_group_place(g, 0, fds[i]), 0);
    }
    assert_int_equal(http_group_count(g, 0), 3);
    assert_int_equal(http_group_count(g, 1), 0);
    /* 1 joins, is handed one, and leaves before taking it: given back */
    uv_async_t wake1;
    uv_async_init(&loop, &wake1, NULL);
    http_group_join(g, 1, &wake1);
    int fd = some_fd();
    assert_int_equal(http_group_place(g, 0, fd), 1);
    assert_int_equal(http_group_leave(g, 1, &got), 1);
    assert_int_equal(got[0], fd);
    free(got);
    int fd2 = some_fd();
    assert_int_equal(http_group_place(g, 0, fd2), 0); /* left: never handed again */
    assert_int_equal(http_group_count(g, 0), 4);
    /* a socket still queued when the group goes is closed with it */
    http_group_join(g, 1, &wake1);
    int fd3 = some_fd();
    assert_int_equal(http_group_place(g, 0, fd3), 1);
    http_group_free(g);
    assert_int_equal(fcntl(fd3, F_GETFD), -1);
    close(fd);
    close(fd2);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    uv_close((uv_handle_t *)&wake, NULL);
    uv_close((uv_handle_t *)&wake1, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Threads claiming and releasing at once never pass the cap together. */
#define CLAIMERS 4
#define ROUNDS 20000
static struct http_group *shared;
static _Atomic int over_cap, held_max;
static _Atomic int held;

static void claimer(void *arg)
{
    (void)arg;
    for (int r = 0; r < ROUNDS; r++) {
        if (!http_group_claim(shared))
            continue;
        int now = atomic_fetch_add(&held, 1) + 1;
        if (now > 3)
            atomic_store(&over_cap, 1);
        if (now > atomic_load(&held_max))
            atomic_store(&held_max, now);
        atomic_fetch_sub(&held, 1);
        http_group_unclaim(shared, 0);
    }
}

static void test_cap_holds_across_threads(void **state)
{
    (void)state;
    shared = http_group_new(2, 3);
    uv_thread_t t[CLAIMERS];
    for (int i = 0; i < CLAIMERS; i++)
        assert_int_equal(uv_thread_create(&t[i], claimer, NULL), 0);
    for (int i = 0; i < CLAIMERS; i++)
        uv_thread_join(&t[i]);
    assert_int_equal(atomic_load(&over_cap), 0);
    assert_true(atomic_load(&held_max) >= 1);
    for (int i = 0; i < 3; i++) /* every slot given back */
        assert_int_equal(http_group_claim(shared), 1);
    assert_int_equal(http_group_claim(shared), 0);
    http_group_free(shared);
}

/* A member that finds the cap reached is woken once a slot is given back
 * (by an accept that found nothing, or a connection that ended), once. One
 * waiting member is woken per slot, the giver's own loop first; one that
 * gives it back unused (its backlog empty) passes it to the next; one that
 * has left is passed over, and its leaving passes on a wake it may not run. */
static void test_waiting_member_woken(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_async_t wake[2];
    struct http_group *g = two_members(&loop, wake, 2);
    assert_int_equal(http_group_claim_or_wait(g, 0), 1); /* room: no waiting */
    assert_int_equal(http_group_claim(g), 1);
    assert_int_equal(http_group_claim_or_wait(g, 1), 0); /* the cap: 1 waits */
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(woken[0] + woken[1], 0);
    http_group_unclaim(g, 0); /* a slot back: 1 is woken, 0 (not waiting) is not */
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(woken[0], 0);
    assert_int_equal(woken[1], 1);
    assert_int_equal(http_group_claim_or_wait(g, 1), 1);
    http_group_unclaim(g, 1); /* nobody waits: nobody woken */
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(woken[0] + woken[1], 1);
    /* both wait; a connection placed at 1 ends: 1 is woken (its own first), not 0 */
    int fd = some_fd();
    assert_int_equal(http_group_claim(g), 1);
    assert_int_equal(http_group_place(g, 1, fd), 1);
    assert_int_equal(http_group_claim_or_wait(g, 0), 0);
    assert_int_equal(http_group_claim_or_wait(g, 1), 0);
    assert_int_equal(http_group_claim_or_wait(g, 1), 0); /* waiting already */
    assert_int_equal(http_group_release(g, 1, 0), 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(woken[0], 0);
    assert_int_equal(woken[1], 2);
    /* 1 claims it, finds its backlog empty and gives it back: 0 is woken */
    assert_int_equal(http_group_claim_or_wait(g, 1), 1);
    http_group_unclaim(g, 1);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(woken[0], 1);
    assert_int_equal(woken[1], 2);
    assert_int_equal(http_group_claim_or_wait(g, 0), 1);
    /* both wait again; 1 leaves (its wake would be lost): 0 is woken */
    assert_int_equal(http_group_claim_or_wait(g, 0), 0);
    assert_int_equal(http_group_claim_or_wait(g, 1), 0);
    int *got;
    assert_int_equal(http_group_leave(g, 1, &got), 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(woken[0], 2);
    assert_int_equal(woken[1], 2);
    /* 1 (gone) is passed over: a slot given back by 1's last connection wakes 0 */
    assert_int_equal(http_group_claim_or_wait(g, 0), 0);
    assert_int_equal(http_group_claim_or_wait(g, 1), 0); /* as a late accept might */
    http_group_unclaim(g, 1);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(woken[0], 3);
    assert_int_equal(woken[1], 2);
    assert_int_equal(http_group_claim(g), 1); /* and the slots add up: 2 of 2 */
    assert_int_equal(http_group_claim(g), 0);
    close(fd);
    http_group_free(g);
    close_loop(&loop, wake);
}

/* A member whose own connection ends while it waits takes the slot's wake
 * itself, on its own loop, without a wake sent (http_group_release's local);
 * given back unused, the slot goes on to the next member waiting. */
static void test_own_slot_taken_locally(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_async_t wake[2];
    struct http_group *g = two_members(&loop, wake, 1);
    int fd = some_fd();
    assert_int_equal(http_group_claim(g), 1);
    assert_int_equal(http_group_place(g, 1, fd), 1);
    assert_int_equal(http_group_claim_or_wait(g, 1), 0);
    assert_int_equal(http_group_claim_or_wait(g, 0), 0);
    assert_int_equal(http_group_release(g, 1, 1), 1); /* 1 waited: takes it here */
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(woken[0] + woken[1], 0);
    assert_int_equal(http_group_claim_or_wait(g, 1), 1); /* its backlog empty: */
    http_group_unclaim(g, 1);                             /* on to 0 */
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(woken[0], 1);
    assert_int_equal(woken[1], 0);
    assert_int_equal(http_group_claim_or_wait(g, 0), 1); /* 0 accepts one */
    int fd0 = some_fd();
    assert_int_equal(http_group_place(g, 0, fd0), 0);
    assert_int_equal(http_group_claim_or_wait(g, 1), 0);
    assert_int_equal(http_group_release(g, 0, 1), 0); /* 0 was not waiting: 1 woken */
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(woken[1], 1);
    assert_int_equal(http_group_count(g, 0), 0);
    assert_int_equal(http_group_count(g, 1), 0); /* both ended */
    close(fd0);
    close(fd);
    http_group_free(g);
    close_loop(&loop, wake);
}

/* A slot given back by one thread while another registers to wait for it:
 * the waiter either claims it or is woken, every time. In each round the
 * holder holds the only slot, gives it back after a delay that sweeps
 * across the waiter's claim and past it, and takes nothing more until the
 * waiter has claimed or been woken; a lost wake-up leaves the waiter asleep
 * with the slot free, and the 5 s timer fires. */
#define HANDOVERS 20000
static struct http_group *race;
static _Atomic int held_round = -1, claim_round = -1, waiter_round = -1;
static int race_woken, race_lost;
static _Atomic int race_unfree;

static void holder(void *arg)
{
    (void)arg;
    for (int r = 0; r < HANDOVERS; r++) {
        if (!http_group_claim(race)) /* the waiter gave it back */
            atomic_store(&race_unfree, 1);
        atomic_store(&held_round, r);
        /* odd rounds give it back after a short hold that sweeps across the time
         * the waiter takes to see the round and claim (the race's window); even
         * ones wait for the claim and hold up to a few microseconds more (the
         * waiter finds the cap reached and waits) */
        int hold = r % 2 ? r % 1000 : (r % 50) * 100;
        for (int n = 0; r % 2 == 0 && atomic_load(&claim_round) != r; n++)
            if (n > 1000) /* spun a while: the waiter may have lost its core */
                sched_yield();
        for (volatile int spin = 0; spin < hold; spin++)
            ;
        http_group_unclaim(race, 0);
        while (atomic_load(&waiter_round) != r)
            sched_yield();
    }
}

static void on_race_wake(uv_async_t *a)
{
    (void)a;
    race_woken = 1;
}

static void on_race_lost(uv_timer_t *t)
{
    (void)t;
    race_lost = 1;
}

static void test_no_wakeup_lost(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t timer;
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_async_init(&loop, &wake, on_race_wake);
    uv_timer_init(&loop, &timer);
    race = http_group_new(2, 1);
    http_group_join(race, 1, &wake);
    uv_thread_t t;
    assert_int_equal(uv_thread_create(&t, holder, NULL), 0);
    int waits = 0;
    for (int r = 0; r < HANDOVERS && !race_lost; r++) {
        while (atomic_load(&held_round) != r)
            sched_yield();
        atomic_store(&claim_round, r);
        if (!http_group_claim_or_wait(race, 1)) {
            do { /* until woken with the slot free (a wake left from an earlier
                  * round may come while the holder holds it: wait again) */
                waits++;
                race_woken = 0;
                uv_timer_start(&timer, on_race_lost, 5000, 0);
                while (!race_woken && !race_lost)
                    uv_run(&loop, UV_RUN_ONCE);
                uv_timer_stop(&timer);
            } while (!race_lost && !http_group_claim_or_wait(race, 1));
        }
        if (!race_lost)
            http_group_unclaim(race, 1);
        atomic_store(&waiter_round, r);
    }
    assert_int_equal(race_lost, 0);
    uv_thread_join(&t);
    assert_int_equal(atomic_load(&race_unfree), 0);
    assert_true(waits > 0);
    assert_int_equal(http_group_claim(race), 1); /* every slot given back */
    assert_int_equal(http_group_claim(race), 0);
    http_group_free(race);
    uv_close((uv_handle_t *)&wake, NULL);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_over_all_members),
        cmocka_unit_test(test_placed_where_fewest_are),
        cmocka_unit_test(test_nothing_handed_to_a_member_not_there),
        cmocka_unit_test(test_cap_holds_across_threads),
        cmocka_unit_test(test_waiting_member_woken),
        cmocka_unit_test(test_own_slot_taken_locally),
        cmocka_unit_test(test_no_wakeup_lost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
