#include "money.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

double money_subtotal(double denomination, double count, double rate)
{
    volatile double t = denomination * count; /* keep the seed's order and rounding */
    return t * rate;
}

double money_round2(double x)
{
    if (x == 0.0 || !isfinite(x))
        return x;
    char tmp[MONEY_FMT_MAX];
    snprintf(tmp, sizeof tmp, "%.2f", x);
    return strtod(tmp, NULL);
}

size_t money_format_2f(double x, char *out, size_t size)
{
    if (isnan(x))
        return (size_t)snprintf(out, size, "nan");
    if (isinf(x))
        return (size_t)snprintf(out, size, x < 0 ? "-inf" : "inf");
    int n = snprintf(out, size, "%.2f", x);
    return n < 0 ? 0 : (size_t)n;
}

size_t money_format_repr(double x, char *out, size_t size)
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
