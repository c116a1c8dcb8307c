#include "jsonw.h"

#include <stdint.h>
#include <stdio.h>

/* Decodes one UTF-8 sequence at s (n bytes left); returns its length and
 * the code point, or length 1 and U+FFFD for an invalid sequence. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        *cp = 0xFFFD;
        return 1;
    }
    if (len > n) {
        *cp = 0xFFFD;
        return 1;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
        *cp = 0xFFFD;
        return 1;
    }
    *cp = v;
    return len;
}

static void put_u(struct buf *b, uint32_t v)
{
    char tmp[8];
    snprintf(tmp, sizeof tmp, "\\u%04x", (unsigned)v);
    buf_append(b, tmp, 6);
}

void jsonw_string(struct buf *b, const char *s, size_t len, int ensure_ascii)
{
    const unsigned char *p = (const unsigned char *)s;
    buf_reserve(b, len + 2);
    buf_append(b, "\"", 1);
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            size_t j = i + 1;
            while (j < len && p[j] >= 0x20 && p[j] < 0x7f && p[j] != '"' && p[j] != '\\')
                j++;
            buf_append(b, p + i, j - i);
            i = j;
            continue;
        }
        switch (c) {
        case '"': buf_append(b, "\\\"", 2); i++; continue;
        case '\\': buf_append(b, "\\\\", 2); i++; continue;
        case '\n': buf_append(b, "\\n", 2); i++; continue;
        case '\r': buf_append(b, "\\r", 2); i++; continue;
        case '\t': buf_append(b, "\\t", 2); i++; continue;
        case '\b': buf_append(b, "\\b", 2); i++; continue;
        case '\f': buf_append(b, "\\f", 2); i++; continue;
        default: break;
        }
        if (c < 0x20 || (c == 0x7f && ensure_ascii)) {
            put_u(b, c);
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (!ensure_ascii) {
            if (cp == 0xFFFD && n == 1)
                buf_append(b, "\xEF\xBF\xBD", 3);
            else
                buf_append(b, p + i, n);
        } else if (cp >= 0x10000) {
            uint32_t v = cp - 0x10000;
            put_u(b, 0xD800 | (v >> 10));
            put_u(b, 0xDC00 | (v & 0x3FF));
        } else {
            put_u(b, cp);
        }
        i += n;
    }
    buf_append(b, "\"", 1);
}
