/* sqlmem: size classes and their free lists (a freed block is handed out
 * again, at most SQLMEM_KEEP per list are kept), large blocks, realloc in
 * place and by copy (large blocks by libc's realloc), xSize and xRoundup,
 * 16-byte alignment; a thread's lists go back to malloc when it ends (the
 * ASan build's leak check fails otherwise); then SQLite runs on it. A malloc
 * that fails (malloc and realloc are wrapped here: -Wl,--wrap in the
 * Makefile) is a NULL to SQLite, which reports NOMEM, and leaves every block
 * as it was. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <cmocka.h>

#include "../../src/store/sqlmem.h"

static sqlite3_mem_methods m;

static struct sqlmem_stats stats(void)
{
    struct sqlmem_stats s;
    sqlmem_thread_stats(&s);
    return s;
}

static void test_classes_and_lists(void **state)
{
    (void)state;
    static const int sizes[][2] = {{1, 64},     {64, 64},     {65, 128},   {200, 256},
                                   {512, 512},  {513, 1024},  {1024, 1024}, {1025, 1025},
                                   {5000, 5000}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = m.xMalloc(sizes[i][0]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        assert_int_equal(m.xSize(p), sizes[i][1]);
        memset(p, 0xab, (size_t)m.xSize(p)); /* the whole size is usable (ASan checks) */
        m.xFree(p);
    }
    assert_int_equal(m.xRoundup(1), 64);
    assert_int_equal(m.xRoundup(100), 128);
    assert_int_equal(m.xRoundup(1024), 1024);
    assert_int_equal(m.xRoundup(1025), 1032);
    assert_null(m.xMalloc(-1));
    m.xFree(NULL);
    assert_int_equal(m.xSize(NULL), 0);

    /* a freed block is the next one of its class handed out */
    struct sqlmem_stats before = stats();
    void *a = m.xMalloc(100);
    m.xFree(a);
    void *b = m.xMalloc(120);
    assert_ptr_equal(a, b);
    assert_int_equal(stats().small_from_list, before.small_from_list + 2);
    m.xFree(b);

    /* at most SQLMEM_KEEP of a class are kept */
    enum { N = SQLMEM_KEEP + 44 };
    void *blocks[N];
    for (int i = 0; i < N; i++)
        blocks[i] = m.xMalloc(40);
    for (int i = 0; i < N; i++)
        m.xFree(blocks[i]);
    before = stats();
    for (int i = 0; i < N; i++)
        blocks[i] = m.xMalloc(40);
    assert_int_equal(stats().small_from_list - before.small_from_list, SQLMEM_KEEP);
    assert_int_equal(stats().small_from_malloc - before.small_from_malloc, N - SQLMEM_KEEP);
    for (int i = 0; i < N; i++)
        m.xFree(blocks[i]);
}

static void test_resize(void **state)
{
    (void)state;
    char *p = m.xRealloc(NULL, 10);
    assert_non_null(p);
    memcpy(p, "0123456789", 10);
    assert_ptr_equal(m.xRealloc(p, 60), p); /* still fits its 64 bytes */
    char *q = m.xRealloc(p, 300);          /* another class: copied */
    assert_ptr_not_equal(q, p);
    assert_int_equal(m.xSize(q), 512);
    assert_memory_equal(q, "0123456789", 10);
    memset(q + 10, 'x', 290);
    char *big = m.xRealloc(q, 4000); /* large */
    assert_int_equal(m.xSize(big), 4000);
    assert_memory_equal(big, "0123456789xxx", 13);
    assert_int_equal(big[299], 'x');
    /* a large block grows and shrinks by libc's realloc (pages moved, not
     * copied: memdb doubles the memory store's database this way), not by a
     * new allocation and a copy */
    struct sqlmem_stats before = stats();
    char *huge = m.xRealloc(big, 64 << 20);
    assert_int_equal(m.xSize(huge), 64 << 20);
    assert_memory_equal(huge, "0123456789xxx", 13);
    huge[(64 << 20) - 1] = 'z';
    huge = m.xRealloc(huge, 128 << 20);
    assert_int_equal(huge[(64 << 20) - 1], 'z');
    assert_int_equal(stats().large, before.large);
    assert_int_equal(stats().small_from_malloc + stats().small_from_list,
                     before.small_from_malloc + before.small_from_list);
    char *small = m.xRealloc(huge, 20); /* a large block stays one, at its new size */
    assert_int_equal(m.xSize(small), 20);
    assert_memory_equal(small, "0123456789xxx", 13);
    assert_null(m.xRealloc(small, -5)); /* refused; small is still valid */
    m.xFree(small);
}

/* While fail_allocs > 0, each malloc or realloc of the program fails and
 * counts it down. */
static int fail_allocs;
void *__real_malloc(size_t n);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n)
{
    if (fail_allocs > 0) {
        fail_allocs--;
        return NULL;
    }
    return __real_malloc(n);
}
void *__wrap_realloc(void *p, size_t n)
{
    if (fail_allocs > 0) {
        fail_allocs--;
        return NULL;
    }
    return __real_realloc(p, n);
}

static void test_allocation_failure(void **state)
{
    (void)state;
    /* empty this thread's list of the 128-byte class: take blocks until one
     * comes from malloc */
    void *taken[SQLMEM_KEEP + 1];
    int n = 0;
    struct sqlmem_stats before = stats();
    while (n == 0 || stats().small_from_malloc == before.small_from_malloc) {
        assert_true(n <= SQLMEM_KEEP);
        taken[n++] = m.xMalloc(100);
    }
    before = stats();
    fail_allocs = 1;
    assert_null(m.xMalloc(100)); /* an empty list: malloc, which fails */
    fail_allocs = 1;
    assert_null(m.xMalloc(5000)); /* large */
    assert_int_equal(fail_allocs, 0);
    assert_int_equal(stats().small_from_malloc, before.small_from_malloc);
    assert_int_equal(stats().large, before.large);

    /* a block on its list is handed out without malloc */
    char *p = taken[--n];
    m.xFree(p);
    fail_allocs = 1;
    assert_ptr_equal(m.xMalloc(90), p);
    assert_int_equal(fail_allocs, 1);
    fail_allocs = 0;
    while (n > 0)
        m.xFree(taken[--n]);

    /* a realloc that fails leaves the block as it was, to be freed */
    memcpy(p, "0123456789", 10);
    fail_allocs = 1; /* to a large block: malloc, which fails */
    assert_null(m.xRealloc(p, 3000));
    assert_int_equal(m.xSize(p), 128);
    assert_memory_equal(p, "0123456789", 10);
    char *big = m.xRealloc(p, 3000); /* now that malloc works */
    assert_non_null(big);
    assert_memory_equal(big, "0123456789", 10);
    fail_allocs = 1;
    assert_null(m.xRealloc(big, 1 << 20)); /* libc's realloc fails */
    assert_int_equal(m.xSize(big), 3000);
    assert_memory_equal(big, "0123456789", 10);
    m.xFree(big);

    /* SQLite: NOMEM while every malloc fails, then as before */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    const char *sql = "CREATE TABLE t (v TEXT); INSERT INTO t VALUES (hex(randomblob(5000)));";
    fail_allocs = 1 << 30;
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    fail_allocs = 0;
    assert_int_equal(rc, SQLITE_NOMEM);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT length(v) FROM t", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 10000);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void *keep_some(void *arg)
{
    (void)arg;
    void *p[10];
    for (int i = 0; i < 10; i++)
        p[i] = m.xMalloc(16 * (i + 1));
    for (int i = 0; i < 10; i++)
        m.xFree(p[i]); /* kept in this thread's lists, released at its exit */
    return NULL;
}

static void test_thread_exit(void **state)
{
    (void)state;
    for (int i = 0; i < 4; i++) {
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, keep_some, NULL), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
    }
}

static void test_sqlite_on_it(void **state)
{
    (void)state;
    struct sqlmem_stats before = stats();
    sqlite3 *db;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"
                                  "CREATE INDEX t_v ON t(v);"
                                  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
                                  " WHERE i < 5000) INSERT INTO t SELECT i, printf('v%08d', i)"
                                  " FROM n;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*), max(v) FROM t WHERE v > 'v00001000'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 4000);
    assert_string_equal((const char *)sqlite3_column_text(st, 1), "v00005000");
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    struct sqlmem_stats after = stats();
    assert_true(after.small_from_list > before.small_from_list + 1000);
    assert_true(after.large > before.large);
}

int main(void)
{
    /* before SQLite starts: installed, and the methods are sqlmem's */
    if (sqlmem_install() != 0 || sqlmem_install() != 0)
        return 1;
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &m) != SQLITE_OK)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes_and_lists), cmocka_unit_test(test_resize),
        cmocka_unit_test(test_thread_exit), cmocka_unit_test(test_sqlite_on_it),
        cmocka_unit_test(test_allocation_failure)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    sqlite3_shutdown();
    return rc;
}
