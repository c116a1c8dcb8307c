/* walvfs: gathers a WAL's writes into one write at its sync (walvfs.h). */
#include "walvfs.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* One open file: ours, then the base VFS's file (its szOsFile bytes). */
struct wfile {
    sqlite3_file head;     /* pMethods: &wal_methods, &plain_methods, or NULL */
    sqlite3_file *base;    /* points just after this struct */
    char *held;            /* WALVFS_MAX_BYTES, from the first write: its touched pages stay */
    sqlite3_int64 held_off; /* writes not yet made: [held_off, held_off + held_len) */
    size_t held_len;
};

static sqlite3_vfs vfs;
static sqlite3_vfs *base_vfs;
static uv_once_t once = UV_ONCE_INIT;
static int register_rc = SQLITE_ERROR;
static _Atomic unsigned long long stat_asked, stat_written;

#define BASE(f) (((struct wfile *)(f))->base)

/* Writes buf to the base VFS's file in pieces of at most WALVFS_WRITE_MAX. */
static int write_pieces(struct wfile *w, const char *buf, size_t n, sqlite3_int64 off)
{
    for (size_t at = 0; at < n;) {
        size_t piece = n - at < WALVFS_WRITE_MAX ? n - at : WALVFS_WRITE_MAX;
        atomic_fetch_add_explicit(&stat_written, 1, memory_order_relaxed);
        int rc = w->base->pMethods->xWrite(w->base, buf + at, (int)piece,
                                           off + (sqlite3_int64)at);
        if (rc != SQLITE_OK)
            return rc;
        at += piece;
    }
    return SQLITE_OK;
}

/* Writes what is held; drops it either way. */
static int flush(struct wfile *w)
{
    size_t n = w->held_len;
    w->held_len = 0;
    return write_pieces(w, w->held, n, w->held_off);
}

static int w_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    struct wfile *w = (struct wfile *)f;
    atomic_fetch_add_explicit(&stat_asked, 1, memory_order_relaxed);
    size_t n = (size_t)amt;
    if (w->held_len && (off < w->held_off || off > w->held_off + (sqlite3_int64)w->held_len ||
                        (size_t)(off - w->held_off) + n > WALVFS_MAX_BYTES)) {
        int rc = flush(w);
        if (rc != SQLITE_OK)
            return rc;
    }
    /* larger than the buffer (SQLite writes a page at most), or no memory for
     * it: written now */
    if (n > WALVFS_MAX_BYTES || (!w->held && !(w->held = malloc(WALVFS_MAX_BYTES))))
        return write_pieces(w, buf, n, off);
    if (!w->held_len)
        w->held_off = off;
    size_t at = (size_t)(off - w->held_off), end = at + n;
    memcpy(w->held + at, buf, n);
    if (end > w->held_len)
        w->held_len = end;
    return SQLITE_OK;
}

static int w_close(sqlite3_file *f)
{
    struct wfile *w = (struct wfile *)f;
    int rc = flush(w);
    free(w->held);
    w->held = NULL;
    int rc2 = w->base->pMethods->xClose(w->base);
    return rc != SQLITE_OK ? rc : rc2;
}

static int w_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    int rc = flush((struct wfile *)f);
    return rc != SQLITE_OK ? rc : BASE(f)->pMethods->xRead(BASE(f), buf, amt, off);
}

static int w_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    int rc = flush((struct wfile *)f);
    return rc != SQLITE_OK ? rc : BASE(f)->pMethods->xTruncate(BASE(f), size);
}

static int w_sync(sqlite3_file *f, int flags)
{
    int rc = flush((struct wfile *)f);
    return rc != SQLITE_OK ? rc : BASE(f)->pMethods->xSync(BASE(f), flags);
}

static int w_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    int rc = flush((struct wfile *)f);
    return rc != SQLITE_OK ? rc : BASE(f)->pMethods->xFileSize(BASE(f), size);
}

static int w_file_control(sqlite3_file *f, int op, void *arg)
{
    int rc = flush((struct wfile *)f);
    return rc != SQLITE_OK ? rc : BASE(f)->pMethods->xFileControl(BASE(f), op, arg);
}

/* ---- straight through ---- */

static int p_close(sqlite3_file *f)
{
    return BASE(f)->pMethods->xClose(BASE(f));
}
static int p_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    return BASE(f)->pMethods->xRead(BASE(f), buf, amt, off);
}
static int p_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    return BASE(f)->pMethods->xWrite(BASE(f), buf, amt, off);
}
static int p_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return BASE(f)->pMethods->xTruncate(BASE(f), size);
}
static int p_sync(sqlite3_file *f, int flags)
{
    return BASE(f)->pMethods->xSync(BASE(f), flags);
}
static int p_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return BASE(f)->pMethods->xFileSize(BASE(f), size);
}
static int p_lock(sqlite3_file *f, int level)
{
    return BASE(f)->pMethods->xLock(BASE(f), level);
}
static int p_unlock(sqlite3_file *f, int level)
{
    return BASE(f)->pMethods->xUnlock(BASE(f), level);
}
static int p_check_reserved(sqlite3_file *f, int *out)
{
    return BASE(f)->pMethods->xCheckReservedLock(BASE(f), out);
}
static int p_file_control(sqlite3_file *f, int op, void *arg)
{
    return BASE(f)->pMethods->xFileControl(BASE(f), op, arg);
}
static int p_sector_size(sqlite3_file *f)
{
    return BASE(f)->pMethods->xSectorSize(BASE(f));
}
static int p_device(sqlite3_file *f)
{
    return BASE(f)->pMethods->xDeviceCharacteristics(BASE(f));
}
static int p_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    return BASE(f)->pMethods->xShmMap(BASE(f), pg, pgsz, extend, pp);
}
static int p_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return BASE(f)->pMethods->xShmLock(BASE(f), offset, n, flags);
}
static void p_shm_barrier(sqlite3_file *f)
{
    BASE(f)->pMethods->xShmBarrier(BASE(f));
}
static int p_shm_unmap(sqlite3_file *f, int del)
{
    return BASE(f)->pMethods->xShmUnmap(BASE(f), del);
}
static int p_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
    return BASE(f)->pMethods->xFetch(BASE(f), off, amt, pp);
}
static int p_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return BASE(f)->pMethods->xUnfetch(BASE(f), off, p);
}

/* Versions 1-3 of the methods: the caller gets no more of them than the
 * base VFS's file has (set in w_open). */
static sqlite3_io_methods plain_methods[3], wal_methods[3];

static void methods_init(void)
{
    sqlite3_io_methods m = {3,           p_close,        p_read,           p_write,
                            p_truncate,  p_sync,         p_file_size,      p_lock,
                            p_unlock,    p_check_reserved, p_file_control, p_sector_size,
                            p_device,    p_shm_map,      p_shm_lock,       p_shm_barrier,
                            p_shm_unmap, p_fetch,        p_unfetch};
    for (int v = 1; v <= 3; v++) {
        sqlite3_io_methods *p = &plain_methods[v - 1], *w = &wal_methods[v - 1];
        *p = m;
        p->iVersion = v;
        if (v < 2)
            p->xShmMap = NULL, p->xShmLock = NULL, p->xShmBarrier = NULL, p->xShmUnmap = NULL;
        if (v < 3)
            p->xFetch = NULL, p->xUnfetch = NULL;
        *w = *p;
        w->xClose = w_close;
        w->xRead = w_read;
        w->xWrite = w_write;
        w->xTruncate = w_truncate;
        w->xSync = w_sync;
        w->xFileSize = w_file_size;
        w->xFileControl = w_file_control;
    }
}

static int w_open(sqlite3_vfs *self, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    (void)self;
    struct wfile *w = (struct wfile *)f;
    memset(w, 0, sizeof *w);
    w->base = (sqlite3_file *)(w + 1);
    int rc = base_vfs->xOpen(base_vfs, name, w->base, flags, out_flags);
    if (rc != SQLITE_OK || !w->base->pMethods) {
        /* SQLite calls xClose only when pMethods is set: close the default
         * VFS's file here if it is open */
        if (w->base->pMethods)
            w->base->pMethods->xClose(w->base);
        w->head.pMethods = NULL;
        return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
    }
    int v = w->base->pMethods->iVersion;
    v = v < 1 ? 1 : v > 3 ? 3 : v;
    w->head.pMethods = flags & SQLITE_OPEN_WAL ? &wal_methods[v - 1] : &plain_methods[v - 1];
    return SQLITE_OK;
}

/* The rest of the VFS is the base one's. */
static int v_delete(sqlite3_vfs *self, const char *name, int sync_dir)
{
    (void)self;
    return base_vfs->xDelete(base_vfs, name, sync_dir);
}
static int v_access(sqlite3_vfs *self, const char *name, int flags, int *out)
{
    (void)self;
    return base_vfs->xAccess(base_vfs, name, flags, out);
}
static int v_full_pathname(sqlite3_vfs *self, const char *name, int n, char *out)
{
    (void)self;
    return base_vfs->xFullPathname(base_vfs, name, n, out);
}
static void *v_dl_open(sqlite3_vfs *self, const char *name)
{
    (void)self;
    return base_vfs->xDlOpen(base_vfs, name);
}
static void v_dl_error(sqlite3_vfs *self, int n, char *out)
{
    (void)self;
    base_vfs->xDlError(base_vfs, n, out);
}
static void (*v_dl_sym(sqlite3_vfs *self, void *h, const char *sym))(void)
{
    (void)self;
    return base_vfs->xDlSym(base_vfs, h, sym);
}
static void v_dl_close(sqlite3_vfs *self, void *h)
{
    (void)self;
    base_vfs->xDlClose(base_vfs, h);
}
static int v_randomness(sqlite3_vfs *self, int n, char *out)
{
    (void)self;
    return base_vfs->xRandomness(base_vfs, n, out);
}
static int v_sleep(sqlite3_vfs *self, int us)
{
    (void)self;
    return base_vfs->xSleep(base_vfs, us);
}
static int v_current_time(sqlite3_vfs *self, double *out)
{
    (void)self;
    return base_vfs->xCurrentTime(base_vfs, out);
}
static int v_last_error(sqlite3_vfs *self, int n, char *out)
{
    (void)self;
    return base_vfs->xGetLastError ? base_vfs->xGetLastError(base_vfs, n, out) : 0;
}
static int v_current_time_int64(sqlite3_vfs *self, sqlite3_int64 *out)
{
    (void)self;
    return base_vfs->xCurrentTimeInt64(base_vfs, out);
}

static void register_once(void)
{
    base_vfs = sqlite3_vfs_find(WALVFS_BASE);
    if (!base_vfs)
        return;
    methods_init();
    vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)sizeof(struct wfile) + base_vfs->szOsFile,
        .mxPathname = base_vfs->mxPathname,
        .zName = WALVFS_NAME,
        .xOpen = w_open,
        .xDelete = v_delete,
        .xAccess = v_access,
        .xFullPathname = v_full_pathname,
        .xDlOpen = v_dl_open,
        .xDlError = v_dl_error,
        .xDlSym = v_dl_sym,
        .xDlClose = v_dl_close,
        .xRandomness = v_randomness,
        .xSleep = v_sleep,
        .xCurrentTime = v_current_time,
        .xGetLastError = v_last_error,
        .xCurrentTimeInt64 = base_vfs->iVersion >= 2 && base_vfs->xCurrentTimeInt64
                                 ? v_current_time_int64
                                 : NULL,
    };
    register_rc = sqlite3_vfs_register(&vfs, 0);
}

int walvfs_register(void)
{
    uv_once(&once, register_once);
    return register_rc;
}

void walvfs_stats_read(struct walvfs_stats *out)
{
    out->asked = atomic_load_explicit(&stat_asked, memory_order_relaxed);
    out->written = atomic_load_explicit(&stat_written, memory_order_relaxed);
}
