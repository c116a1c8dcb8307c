/* deadline: heap order, ties by tag, due-only popping, shrink after bursts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "../../src/core/deadline.h"

static void test_order(void **state)
{
    (void)state;
    struct deadline_heap h;
    deadline_init(&h);
    uint64_t due;
    uint32_t tag;
    assert_int_equal(deadline_peek(&h, &due), -1);
    assert_null(deadline_pop_due(&h, 1000, &tag));
    int items[5];
    deadline_push(&h, 300, &items[0], 0);
    deadline_push(&h, 100, &items[1], 1);
    deadline_push(&h, 200, &items[2], 2);
    deadline_push(&h, 100, &items[3], 0); /* same due time, smaller tag: first */
    deadline_push(&h, 50, &items[4], 4);
    assert_int_equal(deadline_peek(&h, &due), 0);
    assert_int_equal(due, 50);
    assert_null(deadline_pop_due(&h, 49, &tag));
    assert_ptr_equal(deadline_pop_due(&h, 100, &tag), &items[4]);
    assert_int_equal(tag, 4);
    assert_ptr_equal(deadline_pop_due(&h, 100, &tag), &items[3]);
    assert_ptr_equal(deadline_pop_due(&h, 100, &tag), &items[1]);
    assert_int_equal(tag, 1);
    assert_null(deadline_pop_due(&h, 100, &tag));
    assert_int_equal(deadline_len(&h), 2);
    assert_ptr_equal(deadline_pop_due(&h, 1000, &tag), &items[2]);
    assert_ptr_equal(deadline_pop_due(&h, 1000, &tag), &items[0]);
    assert_int_equal(deadline_len(&h), 0);
    deadline_free(&h);
}

static void test_random_many(void **state)
{
    (void)state;
    struct deadline_heap h;
    deadline_init(&h);
    srand(7);
    enum { N = 100000 };
    for (int i = 0; i < N; i++)
        deadline_push(&h, (uint64_t)(rand() % 5000), NULL, (uint32_t)(i & DEADLINE_TAG_MAX));
    uint64_t last = 0, due;
    uint32_t tag;
    size_t popped = 0;
    while (deadline_peek(&h, &due) == 0) {
        assert_true(due >= last);
        last = due;
        deadline_pop_due(&h, due, &tag);
        popped++;
    }
    assert_int_equal(popped, N);
    assert_true(h.cap <= 2048); /* memory given back as the heap emptied */
    deadline_free(&h);
}

/* Entries taken out of the middle: found by key, gone afterwards, and the
 * rest still pops in order (both directions of the moved entry occur). */
static void test_find_and_remove(void **state)
{
    (void)state;
    enum { N = 3000 };
    static uint64_t keys[N];
    static int removed[N];
    struct deadline_heap h;
    deadline_init(&h);
    srand(7);
    for (int i = 0; i < N; i++) {
        keys[i] = (uint64_t)(rand() % 100000) * 4096 + (uint64_t)i; /* distinct */
        deadline_push(&h, keys[i] >> 20, &keys[i], (uint32_t)(keys[i] & DEADLINE_TAG_MAX));
    }
    assert_int_equal(deadline_find(&h, 1ull << 40, 0), DEADLINE_NONE);
    for (int i = 0; i < N; i += 3) {
        size_t at = deadline_find(&h, keys[i] >> 20, (uint32_t)(keys[i] & DEADLINE_TAG_MAX));
        assert_int_not_equal(at, DEADLINE_NONE);
        assert_ptr_equal(deadline_remove(&h, at), &keys[i]);
        removed[i] = 1;
        assert_int_equal(deadline_find(&h, keys[i] >> 20, (uint32_t)(keys[i] & DEADLINE_TAG_MAX)),
                         DEADLINE_NONE);
    }
    assert_int_equal(deadline_len(&h), N - (N + 2) / 3);
    /* the last entry itself: no entry moves */
    uint64_t *tail = h.v[h.len - 1].item;
    assert_ptr_equal(deadline_remove(&h, h.len - 1), tail);
    removed[tail - keys] = 1;
    assert_int_equal(deadline_len(&h), N - (N + 2) / 3 - 1);
    uint64_t prev = 0;
    uint32_t tag;
    size_t n = 0;
    uint64_t *k;
    while ((k = deadline_pop_due(&h, UINT64_MAX >> 21, &tag)) != NULL) {
        assert_false(removed[k - keys]);
        assert_true(*k >= prev);
        prev = *k;
        n++;
    }
    assert_int_equal(n, N - (N + 2) / 3 - 1);
    deadline_free(&h);
}

/* Each entry no earlier than its parent, (i - 1) / 4. */
static int heap_ok(const struct deadline_heap *h)
{
    for (size_t i = 1; i < h->len; i++)
        if (h->v[i].key < h->v[(i - 1) / 4].key)
            return 0;
    return 1;
}

/* Pushes and pops interleaved, the heap checked whole after each step, the
 * pops against a count of what went in; and each group of four children
 * (v[4i+1..4i+4]) on one 64-byte line, as the heap grows and shrinks. */
static void test_interleaved_and_aligned(void **state)
{
    (void)state;
    struct deadline_heap h;
    deadline_init(&h);
    srand(11);
    enum { ROUNDS = 20000, SPAN = 64 };
    static unsigned in[SPAN]; /* entries due at each time, not yet popped */
    size_t pushed = 0, popped = 0;
    uint64_t now = 0;
    for (int r = 0; r < ROUNDS; r++) {
        int burst = r < ROUNDS / 2 ? 1 + rand() % 4 : rand() % 2; /* grow, then shrink */
        for (int j = 0; j < burst; j++) {
            uint64_t due = now + (uint64_t)(rand() % SPAN);
            deadline_push(&h, due, &in[due % SPAN], (uint32_t)(rand() % 4));
            in[due % SPAN]++;
            pushed++;
        }
        if (r % 97 == 0)
            assert_true(heap_ok(&h));
        assert_int_equal((uintptr_t)(h.v + 1) % 64, 0);
        uint32_t tag;
        while (deadline_peek(&h, &now) == 0 && rand() % 3) {
            assert_ptr_equal(deadline_pop_due(&h, now, &tag), &in[now % SPAN]);
            assert_true(in[now % SPAN] > 0);
            in[now % SPAN]--;
            popped++;
        }
    }
    assert_true(heap_ok(&h));
    uint64_t due;
    uint32_t tag;
    while (deadline_peek(&h, &due) == 0) {
        deadline_pop_due(&h, due, &tag);
        in[due % SPAN]--;
        popped++;
    }
    assert_int_equal(popped, pushed);
    for (int i = 0; i < SPAN; i++)
        assert_int_equal(in[i], 0);
    deadline_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_order),
                                       cmocka_unit_test(test_random_many),
                                       cmocka_unit_test(test_find_and_remove),
                                       cmocka_unit_test(test_interleaved_and_aligned)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
