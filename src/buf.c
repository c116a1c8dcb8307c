#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void buf_init(struct buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->fixed = NULL;
}

void buf_init_on(struct buf *b, char *storage, size_t size)
{
    b->data = b->fixed = storage;
    b->len = 0;
    b->cap = size;
    storage[0] = '\0';
}

void buf_free(struct buf *b)
{
    if (b->data != b->fixed)
        free(b->data);
    buf_init(b);
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void buf_reserve(struct buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    if (b->data && b->data == b->fixed) { /* out of the caller's storage */
        char *heap = xmalloc(cap);
        memcpy(heap, b->data, b->len + 1);
        b->data = heap;
    } else {
        b->data = xrealloc(b->data, cap);
    }
    b->cap = cap;
}

/* Formats straight into the free room (one pass when it fits, the usual
 * case); formats again only into a buffer grown to the exact size. */
void buf_append_fmt(struct buf *b, const char *fmt, ...)
{
    buf_reserve(b, 127);
    size_t room = b->cap - b->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, room, fmt, ap);
    va_end(ap);
    if (n <= 0) {
        b->data[b->len] = '\0';
        return;
    }
    if ((size_t)n >= room) {
        buf_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void buf_append_u64(struct buf *b, uint64_t v)
{
    char tmp[20], *p = tmp + sizeof tmp;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

char *buf_steal(struct buf *b, size_t *len)
{
    if (!b->data) {
        buf_reserve(b, 0);
        b->data[0] = '\0';
    }
    char *p = b->data;
    if (p == b->fixed) {
        p = xmalloc(b->len + 1);
        memcpy(p, b->data, b->len + 1);
    }
    if (len)
        *len = b->len;
    buf_init(b);
    return p;
}
