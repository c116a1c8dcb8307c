/*
 * walvfs: a SQLite VFS over SQLite's "unix-excl" (WALVFS_BASE) that gathers
 * the writes SQLite makes to a WAL file and hands them to the file in one
 * write at the WAL's next sync.
 *
 * SQLite appends a commit to the WAL as two writes per page (a 24-byte frame
 * header, then the page): ~35 pwrite calls for a commit of ~25 tasks, each a
 * system call that costs ~1.7 µs of CPU on this VM. Gathered, a commit is one
 * pwrite (docs/PERFORMANCE.md, seventh round).
 *
 * Only for synchronous=FULL, where every commit syncs the WAL before its
 * frames become visible to other connections (the WAL index is written after
 * the sync): until then no reader may look at them, so holding them in
 * memory changes nothing another connection can see. With NORMAL or OFF a
 * commit does not sync the WAL, and the checkpointer's connection would read
 * frames still held here: the store uses WALVFS_BASE itself then.
 *
 * Anything else on the WAL file (a read, a truncate, its size, a file
 * control, a close) writes what is held first. A write inside what is held
 * replaces those bytes; one right after it extends it; any other writes what
 * is held first, then starts anew. What is held is at most WALVFS_MAX_BYTES
 * (a write past it writes what is held first; a write larger than that goes
 * out at once) and goes out in pieces of at most WALVFS_WRITE_MAX: a commit
 * of ~25 tasks (~70 KB) is one write. A held
 * write that fails is reported by the call that wrote it (the sync, usually)
 * with the write's own code (SQLITE_FULL for ENOSPC, never a failed fsync),
 * and what was held is dropped: SQLite then fails the commit as it does for a
 * failed write. Other files (the database, the WAL index, journals) pass
 * straight through.
 */
#ifndef EXCHANGED_WALVFS_H
#define EXCHANGED_WALVFS_H

#define WALVFS_NAME "exchanged-wal"
/* The VFS beneath: SQLite's unix VFS that holds one lock on the database for
 * the whole process and keeps the WAL index in the heap (store.h). */
#define WALVFS_BASE "unix-excl"
#define WALVFS_MAX_BYTES (1 << 20)
/* The unix VFSes write at most 0x1ffff bytes per call (os_unix.c masks the
 * count to 17 bits: a longer write comes out short, as SQLITE_FULL): what is
 * held goes out in pieces of at most this. */
#define WALVFS_WRITE_MAX (124 * 1024)

/* Registers the VFS (not as the default) once per process; thread-safe.
 * Returns SQLITE_OK or SQLite's error code. */
int walvfs_register(void);

/* Counters of the WAL files opened through it, for tests and the bench:
 * writes SQLite asked for, and writes made to the files. */
struct walvfs_stats {
    unsigned long long asked, written;
};
void walvfs_stats_read(struct walvfs_stats *out);

#endif
