/* walvfs: a WAL file's writes are held and made as one at the next sync,
 * read, size, truncate, file control or close; a write inside what is held
 * replaces those bytes, one after it extends it, any other writes it first;
 * a held write that fails is reported by the sync with the write's own code
 * and dropped; a write larger than the buffer goes out at once, in pieces;
 * other files pass straight through; a refused open sets no methods. Then
 * through SQLite: a commit is one write, and another connection sees it at
 * once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sqlite3.h>
#include <cmocka.h>

#include "../../src/store/walvfs.h"

static char dir[] = "/tmp/exchanged-walvfs-XXXXXX";
static char db_path[256], wal_path[256];
static sqlite3_vfs *vfs;

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(db_path, sizeof db_path, "%s/t.db", dir);
    snprintf(wal_path, sizeof wal_path, "%s/t.db-wal", dir);
    if (walvfs_register() != SQLITE_OK)
        return -1;
    vfs = sqlite3_vfs_find(WALVFS_NAME);
    return vfs ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static unsigned long long written(void)
{
    struct walvfs_stats st;
    walvfs_stats_read(&st);
    return st.written;
}

static long long size_on_disk(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* Opens path through the VFS; names are passed as SQLite passes them (two
 * NULs at the end: no URI parameters). */
static sqlite3_file *open_file(const char *path, int flags)
{
    static char name[300];
    memset(name, 0, sizeof name);
    snprintf(name, sizeof name - 2, "%s", path);
    sqlite3_file *f = calloc(1, (size_t)vfs->szOsFile);
    int out = 0;
    assert_int_equal(vfs->xOpen(vfs, name, f, flags, &out), SQLITE_OK);
    assert_non_null(f->pMethods);
    return f;
}

static void close_file(sqlite3_file *f)
{
    assert_int_equal(f->pMethods->xClose(f), SQLITE_OK);
    free(f);
}

static unsigned long long pieces(unsigned long long bytes)
{
    return (bytes + WALVFS_WRITE_MAX - 1) / WALVFS_WRITE_MAX;
}

static void fill(char *buf, size_t n, char c)
{
    memset(buf, c, n);
}

static void test_held_until_sync_read_size_or_close(void **state)
{
    (void)state;
    FILE *db = fopen(db_path, "w"); /* the WAL's file mode comes from its database */
    assert_non_null(db);
    fclose(db);
    sqlite3_file *f =
        open_file(wal_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_WAL);
    static char a[24], b[4096], c[24], d[10], back[8192];
    fill(a, sizeof a, 'a'), fill(b, sizeof b, 'b'), fill(c, sizeof c, 'c'), fill(d, sizeof d, 'd');
    unsigned long long w0 = written();
    /* appends are held */
    assert_int_equal(f->pMethods->xWrite(f, a, 24, 0), SQLITE_OK);
    assert_int_equal(f->pMethods->xWrite(f, b, 4096, 24), SQLITE_OK);
    assert_int_equal(f->pMethods->xWrite(f, c, 24, 4120), SQLITE_OK);
    /* a write inside them replaces those bytes */
    assert_int_equal(f->pMethods->xWrite(f, d, 10, 30), SQLITE_OK);
    assert_int_equal(size_on_disk(wal_path), 0);
    assert_int_equal(written(), w0);
    /* the sync writes them, in one write */
    assert_int_equal(f->pMethods->xSync(f, SQLITE_SYNC_NORMAL), SQLITE_OK);
    assert_int_equal(written(), w0 + 1);
    assert_int_equal(size_on_disk(wal_path), 4144);
    assert_int_equal(f->pMethods->xRead(f, back, 4144, 0), SQLITE_OK);
    assert_memory_equal(back, a, 24);
    assert_memory_equal(back + 24, b, 6);
    assert_memory_equal(back + 30, d, 10);
    assert_memory_equal(back + 40, b, 4096 - 16);
    assert_memory_equal(back + 4120, c, 24);
    /* a write after a gap writes what is held first */
    assert_int_equal(f->pMethods->xWrite(f, a, 24, 4144), SQLITE_OK);
    assert_int_equal(f->pMethods->xWrite(f, c, 24, 10000), SQLITE_OK);
    assert_int_equal(written(), w0 + 2);
    assert_int_equal(size_on_disk(wal_path), 4168);
    /* so does a read */
    memset(back, 0, sizeof back);
    assert_int_equal(f->pMethods->xRead(f, back, 24, 10000), SQLITE_OK);
    assert_memory_equal(back, c, 24);
    assert_int_equal(written(), w0 + 3);
    /* a write before what is held writes it first too */
    assert_int_equal(f->pMethods->xWrite(f, b, 4096, 20000), SQLITE_OK);
    assert_int_equal(f->pMethods->xWrite(f, a, 24, 0), SQLITE_OK);
    assert_int_equal(written(), w0 + 4);
    /* the size writes what is held */
    sqlite3_int64 size = 0;
    assert_int_equal(f->pMethods->xFileSize(f, &size), SQLITE_OK);
    assert_int_equal(size, 24096);
    assert_int_equal(written(), w0 + 5);
    /* past WALVFS_MAX_BYTES, what is held is written before the next write, in
     * pieces the default VFS takes whole (it writes at most 0x1ffff bytes a call) */
    for (int i = 0; i < 300; i++)
        assert_int_equal(f->pMethods->xWrite(f, b, 4096, 32768 + (sqlite3_int64)i * 4096),
                         SQLITE_OK);
    assert_int_equal(written(), w0 + 5 + pieces(WALVFS_MAX_BYTES));
    assert_int_equal(size_on_disk(wal_path), 32768 + WALVFS_MAX_BYTES);
    /* a truncate writes what is held, then cuts */
    w0 = written();
    assert_int_equal(f->pMethods->xTruncate(f, 4096), SQLITE_OK);
    assert_int_equal(written(), w0 + pieces(300 * 4096 - WALVFS_MAX_BYTES));
    assert_int_equal(size_on_disk(wal_path), 4096);
    /* a file control writes what is held */
    assert_int_equal(f->pMethods->xWrite(f, c, 24, 4096), SQLITE_OK);
    int persist = -1;
    f->pMethods->xFileControl(f, SQLITE_FCNTL_PERSIST_WAL, &persist);
    assert_int_equal(size_on_disk(wal_path), 4120);
    /* the close writes what is held */
    assert_int_equal(f->pMethods->xWrite(f, a, 24, 4120), SQLITE_OK);
    assert_int_equal(size_on_disk(wal_path), 4120);
    close_file(f);
    assert_int_equal(size_on_disk(wal_path), 4144);
    f = open_file(wal_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_WAL);
    assert_int_equal(f->pMethods->xRead(f, back, 24, 4120), SQLITE_OK);
    assert_memory_equal(back, a, 24);
    close_file(f);
}

/* A held write that fails is reported by the sync with the write's code
 * (not a failed fsync: the store stops the process for that), then dropped. */
static void test_a_failed_held_write_is_reported_by_the_sync(void **state)
{
    (void)state;
    sqlite3_file *f = open_file(wal_path, SQLITE_OPEN_READONLY | SQLITE_OPEN_WAL);
    static char b[4096];
    fill(b, sizeof b, 'x');
    long long before = size_on_disk(wal_path);
    assert_int_equal(f->pMethods->xWrite(f, b, 4096, 0), SQLITE_OK);
    assert_int_equal(f->pMethods->xSync(f, SQLITE_SYNC_NORMAL), SQLITE_IOERR_WRITE);
    assert_int_equal(f->pMethods->xSync(f, SQLITE_SYNC_NORMAL), SQLITE_OK); /* dropped */
    assert_int_equal(size_on_disk(wal_path), before);
    close_file(f);
}

/* Files other than a WAL are written at once. */
static void test_other_files_pass_through(void **state)
{
    (void)state;
    sqlite3_file *f = open_file(db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MAIN_DB);
    struct walvfs_stats st0, st1;
    walvfs_stats_read(&st0);
    static char b[4096];
    fill(b, sizeof b, 'm');
    assert_int_equal(f->pMethods->xWrite(f, b, 4096, 0), SQLITE_OK);
    assert_int_equal(size_on_disk(db_path), 4096);
    walvfs_stats_read(&st1);
    assert_int_equal(st1.asked, st0.asked);
    close_file(f);
    unlink(db_path);
    unlink(wal_path);
}

/* A write larger than the buffer goes out at once, in pieces the default
 * VFS takes whole; an open the default VFS refuses leaves no methods set. */
static void test_a_write_past_the_buffer_and_a_failed_open(void **state)
{
    (void)state;
    FILE *db = fopen(db_path, "w");
    assert_non_null(db);
    fclose(db);
    sqlite3_file *f =
        open_file(wal_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_WAL);
    enum { N = WALVFS_MAX_BYTES + 4096 };
    char *big = malloc(N), *back = malloc(N);
    fill(big, N, 'z');
    unsigned long long w0 = written();
    assert_int_equal(f->pMethods->xWrite(f, big, N, 0), SQLITE_OK);
    assert_int_equal(written(), w0 + pieces(N));
    assert_int_equal(size_on_disk(wal_path), N);
    assert_int_equal(f->pMethods->xRead(f, back, N, 0), SQLITE_OK);
    assert_memory_equal(back, big, N);
    free(big);
    free(back);
    close_file(f);
    unlink(wal_path);
    unlink(db_path);

    static char name[300];
    memset(name, 0, sizeof name);
    snprintf(name, sizeof name - 2, "%s/missing/t.db", dir);
    sqlite3_file *g = calloc(1, (size_t)vfs->szOsFile);
    int out = 0;
    assert_int_not_equal(vfs->xOpen(vfs, name, g, SQLITE_OPEN_READWRITE | SQLITE_OPEN_MAIN_DB,
                                    &out),
                         SQLITE_OK);
    assert_null(g->pMethods);
    free(g);
}

static void exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fprintf(stderr, "%s: %s\n", sql, err);
    sqlite3_free(err);
    assert_int_equal(rc, SQLITE_OK);
}

static int count(sqlite3 *db)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM t", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* Through SQLite with synchronous=FULL: a commit of many pages is one write
 * (a piece per WALVFS_WRITE_MAX), and a connection on the default VFS reads
 * it as soon as the commit returns. */
static void test_a_commit_is_one_write_and_seen_at_once(void **state)
{
    (void)state;
    sqlite3 *a, *b;
    assert_int_equal(sqlite3_open_v2(db_path, &a, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                     WALVFS_NAME),
                     SQLITE_OK);
    exec(a, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
            " CREATE TABLE t(x TEXT); CREATE INDEX t_x ON t(x);");
    assert_int_equal(sqlite3_open_v2(db_path, &b, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(count(b), 0);
    for (int round = 1; round <= 3; round++) {
        struct walvfs_stats st0, st1;
        walvfs_stats_read(&st0);
        exec(a, "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
                " WHERE i < 300) INSERT INTO t SELECT hex(randomblob(60)) FROM n; COMMIT;");
        walvfs_stats_read(&st1);
        /* two writes per page (a frame's header, then the page); all of them in
         * one write, or a piece per WALVFS_WRITE_MAX */
        unsigned long long frames = (st1.asked - st0.asked) / 2;
        assert_true(frames >= 10);
        assert_int_equal(st1.written - st0.written, pieces(frames * (24 + 4096)));
        assert_int_equal(count(b), 300 * round);
    }
    /* a commit larger than the default VFS writes in one call (~1 MB): written
     * whole, in pieces */
    struct walvfs_stats st0, st1;
    walvfs_stats_read(&st0);
    exec(a, "BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
            " WHERE i < 5000) INSERT INTO t SELECT hex(randomblob(60)) FROM n; COMMIT;");
    walvfs_stats_read(&st1);
    assert_true(st1.written - st0.written >= 3);
    assert_true(st1.written - st0.written < (st1.asked - st0.asked) / 20);
    assert_int_equal(count(b), 5900);
    /* a checkpoint from the other connection copies what the WAL holds */
    exec(b, "PRAGMA wal_checkpoint(TRUNCATE);");
    assert_int_equal(sqlite3_close(a), SQLITE_OK);
    assert_int_equal(count(b), 5900);
    assert_int_equal(sqlite3_close(b), SQLITE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_held_until_sync_read_size_or_close),
        cmocka_unit_test(test_a_failed_held_write_is_reported_by_the_sync),
        cmocka_unit_test(test_other_files_pass_through),
        cmocka_unit_test(test_a_write_past_the_buffer_and_a_failed_open),
        cmocka_unit_test(test_a_commit_is_one_write_and_seen_at_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
