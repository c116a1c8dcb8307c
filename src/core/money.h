/*
 * money: the seed's arithmetic, bit for bit as Python does it.
 *
 *   subtotal = denomination * count * exchange_rate   (IEEE double, in that order)
 *   money_round2(subtotal)  == Python round(subtotal, 2)
 *   money_format_repr(...)  == Python repr(float) / json.dumps of a float
 *   money_format_2f(...)    == Python f"{x:.2f}" (the seed's log line)
 *
 * Python's round(x, 2) rounds the exact binary value of x to 2 decimals
 * (ties to even, which only happen when x is exactly a tie) and converts
 * that decimal back to the nearest double. glibc's printf is exact, so
 * "%.2f" then strtod gives the same double. repr is the shortest decimal
 * string that reads back as the same double, in fixed notation when the
 * decimal exponent is in (-4, 16], else in Python's 1e+16 style.
 * All functions are pure and thread-safe.
 */
#ifndef EXCHANGED_MONEY_H
#define EXCHANGED_MONEY_H

#include <stddef.h>

/* Bytes enough for any output of the formatters below. */
#define MONEY_FMT_MAX 400

double money_round2(double x);
double money_subtotal(double denomination, double count, double rate);
/* Python repr(x) into out (size >= MONEY_FMT_MAX); returns its length.
 * NaN and infinities print as Python's json.dumps does (NaN, Infinity). */
size_t money_format_repr(double x, char *out, size_t size);
/* The same by printf/strtod alone (the reference the fast path is tested
 * against, and its fallback). */
size_t money_format_repr_exact(double x, char *out, size_t size);
/* Python f"{x:.2f}" into out; returns its length. */
size_t money_format_2f(double x, char *out, size_t size);

#endif
