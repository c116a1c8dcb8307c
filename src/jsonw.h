/*
 * jsonw: writes JSON text exactly as Python's json.dumps does, so that
 * what we send matches what the seed's FastAPI/httpx service sent.
 *
 * jsonw_string escapes like json.dumps: \" \\ \n \r \t \b \f, other
 * control characters as \u00XX (lowercase hex); with ensure_ascii DEL and
 * every non-ASCII character as \uXXXX (astral ones as a surrogate pair), without
 * it UTF-8 is copied. Invalid UTF-8 in the input becomes U+FFFD.
 * Pure; thread-safe.
 */
#ifndef EXCHANGED_JSONW_H
#define EXCHANGED_JSONW_H

#include <stddef.h>

#include "buf.h"

void jsonw_string(struct buf *b, const char *s, size_t len, int ensure_ascii);

#endif
