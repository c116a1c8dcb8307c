/*
 * buf: a growable byte buffer (always NUL-terminated for convenience).
 * buf_init fills caller storage; buf_free releases the bytes; buf_reset
 * empties and keeps the capacity. buf_init_on starts the bytes in caller
 * storage (a stack array in the per-request paths): no allocation while
 * they fit, a move to the heap when they outgrow it. Not thread-safe; one
 * owner at a time.
 * Growth goes through xrealloc (aborts on OOM): callers bound the sizes
 * that come from outside before appending.
 */
#ifndef EXCHANGED_BUF_H
#define EXCHANGED_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
    char *fixed; /* buf_init_on's storage; data == fixed while the bytes are there */
};

void buf_init(struct buf *b);
/* Starts empty in storage[0 .. size-1] (size >= 1), which must outlive b's use. */
void buf_init_on(struct buf *b, char *storage, size_t size);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_reserve(struct buf *b, size_t extra);
/* Inline: most appends are short, to a buffer sized beforehand, and many of
 * a string literal, whose length the compiler then knows (no strlen, and a
 * memcpy of a known size). */
static inline void buf_append(struct buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap)
        buf_reserve(b, n);
    if (n)
        __builtin_memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
}
static inline void buf_append_str(struct buf *b, const char *s)
{
    buf_append(b, s, __builtin_strlen(s));
}
/* Makes room for 127 more bytes first (off buf_init_on's storage if that
 * is short of it), so most pieces are formatted once. */
void buf_append_fmt(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* v in decimal, without printf (hot paths). */
void buf_append_u64(struct buf *b, uint64_t v);
/* Hand the bytes to the caller (who frees them: a heap copy if they were in
 * buf_init_on's storage); b is left empty. */
char *buf_steal(struct buf *b, size_t *len);

#endif
