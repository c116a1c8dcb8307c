#include "money.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double money_subtotal(double denomination, double count, double rate)
{
    volatile double t = denomination * count; /* keep the seed's order and rounding */
    return t * rate;
}

/*
 * Fast paths. Both work on the value scaled to an integer and fall back to
 * the printf/strtod routines whenever the scaled value is too large for the
 * argument below to hold.
 *
 * scaled2: y = fl(|x| * 100) is within half an ulp of the exact |x| * 100;
 * for y < 2^40 that is below 2^-13, so when y's fraction is farther than
 * 1e-3 from one half the exact value rounds the same way: to r, the integer
 * that printf's exact "%.2f" of |x| shows (its digits, without the point).
 * round2: the nearest double to the decimal r/100 is the IEEE quotient
 * r / 100.0 (r and 100 are exact, division is correctly rounded): what
 * strtod of "%.2f" gives.
 */
static int scaled2_fast(double x, uint64_t *r)
{
    double y = fabs(x) * 100.0;
    if (!(y < 1099511627776.0)) /* 2^40; also NaN */
        return 0;
    double f = floor(y), frac = y - f;
    if (fabs(frac - 0.5) < 1e-3)
        return 0;
    *r = (uint64_t)f + (frac > 0.5);
    return 1;
}

double money_round2(double x)
{
    if (x == 0.0 || !isfinite(x))
        return x;
    uint64_t r;
    if (scaled2_fast(x, &r))
        return copysign((double)r / 100.0, x);
    char tmp[MONEY_FMT_MAX];
    snprintf(tmp, sizeof tmp, "%.2f", x);
    return strtod(tmp, NULL);
}

/* Writes the decimal digits of v (< 10^19) ending at end; returns the start. */
static char *digits_back(uint64_t v, char *end)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

size_t money_format_2f(double x, char *out, size_t size)
{
    if (isnan(x))
        return (size_t)snprintf(out, size, "nan");
    if (isinf(x))
        return (size_t)snprintf(out, size, x < 0 ? "-inf" : "inf");
    uint64_t r;
    if (size >= 24 && scaled2_fast(x, &r)) { /* printf's sign: "-0.00" for -0.001 and -0.0 */
        char tmp[24], *end = tmp + sizeof tmp, *p = digits_back(r / 100, end - 3);
        end[-3] = '.';
        end[-2] = (char)('0' + r / 10 % 10);
        end[-1] = (char)('0' + r % 10);
        if (signbit(x))
            *--p = '-';
        size_t n = (size_t)(end - p);
        memcpy(out, p, n);
        out[n] = '\0';
        return n;
    }
    int n = snprintf(out, size, "%.2f", x);
    return n < 0 ? 0 : (size_t)n;
}

static const double pow10_tab[16] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

/*
 * repr, fast: the smallest d in 0..15 for which m = rint(|x| * 10^d) gives
 * back x as m / 10^d (an IEEE quotient of two exact doubles, so the nearest
 * double to the decimal, as strtod reads it). With m < 10^14 the product's
 * rounding error and x's own half-ulp are both far below 1/2, so rint finds
 * the one integer that can round-trip at that d, and the first d that works
 * gives the fewest digits: the shortest repr, in fixed notation because
 * 1e-4 <= |x| < 1e14.
 */
static size_t repr_fast(double x, char *out, size_t size)
{
    double a = fabs(x);
    if (!(a >= 1e-4 && a < 1e14) || size < 40)
        return 0;
    for (int d = 0; d < 16; d++) {
        double y = a * pow10_tab[d];
        if (y >= 1e14)
            return 0;
        double m = nearbyint(y);
        if (m / pow10_tab[d] != a)
            continue;
        char tmp[40], *end = tmp + sizeof tmp, *p;
        uint64_t v = (uint64_t)m;
        if (d == 0) {
            *--end = '0';
            *--end = '.';
            p = digits_back(v, end);
        } else {
            uint64_t scale = (uint64_t)pow10_tab[d];
            char *q = digits_back(v % scale, end);
            while (q > end - d)
                *--q = '0';
            *--q = '.';
            p = digits_back(v / scale, q);
        }
        if (x < 0)
            *--p = '-';
        size_t n = (size_t)(tmp + sizeof tmp - p);
        memcpy(out, p, n);
        out[n] = '\0';
        return n;
    }
    return 0;
}

size_t money_format_repr(double x, char *out, size_t size)
{
    size_t n = repr_fast(x, out, size);
    return n ? n : money_format_repr_exact(x, out, size);
}

size_t money_format_repr_exact(double x, char *out, size_t size)
{
    if (isnan(x))
        return (size_t)snprintf(out, size, "NaN");
    if (isinf(x))
        return (size_t)snprintf(out, size, x < 0 ? "-Infinity" : "Infinity");
    if (x == 0.0)
        return (size_t)snprintf(out, size, signbit(x) ? "-0.0" : "0.0");

    /* Shortest round-tripping digits: the first precision that reads back. */
    char sci[64];
    for (int prec = 0; prec <= 17; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec, x);
        if (strtod(sci, NULL) == x)
            break;
    }
    /* sci is "[-]d[.ddd]e[+-]XX": split into sign, digits and exponent. */
    const char *p = sci;
    int neg = 0;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    char digits[32];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    digits[nd] = '\0';
    int exp10 = (int)strtol(p + 1, NULL, 10); /* value = 0.d1d2... * 10^(exp10+1) */
    int decpt = exp10 + 1;   /* digits before the decimal point */

    char res[MONEY_FMT_MAX];
    size_t n = 0;
    if (neg)
        res[n++] = '-';
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            res[n++] = '0';
            res[n++] = '.';
            for (int i = 0; i < -decpt; i++)
                res[n++] = '0';
            memcpy(res + n, digits, nd);
            n += nd;
        } else if ((size_t)decpt >= nd) {
            memcpy(res + n, digits, nd);
            n += nd;
            for (size_t i = nd; i < (size_t)decpt; i++)
                res[n++] = '0';
            res[n++] = '.';
            res[n++] = '0';
        } else {
            memcpy(res + n, digits, (size_t)decpt);
            n += (size_t)decpt;
            res[n++] = '.';
            memcpy(res + n, digits + decpt, nd - (size_t)decpt);
            n += nd - (size_t)decpt;
        }
    } else {
        res[n++] = digits[0];
        if (nd > 1) {
            res[n++] = '.';
            memcpy(res + n, digits + 1, nd - 1);
            n += nd - 1;
        }
        int e = decpt - 1;
        n += (size_t)snprintf(res + n, sizeof res - n, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    res[n] = '\0';
    return (size_t)snprintf(out, size, "%s", res);
}
