#include "opts.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

int opts_parse_int(const char *s, int64_t *v)
{
    if (!s || !*s || isspace((unsigned char)*s))
        return -1;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *v = x;
    return 0;
}

int opts_parse_seconds(const char *s, uint64_t *ms)
{
    if (!s || !*s)
        return -1;
    /* digits [. digits] [ms|s] */
    uint64_t whole = 0, frac = 0, scale = 1;
    const char *p = s;
    if (!isdigit((unsigned char)*p))
        return -1;
    while (isdigit((unsigned char)*p)) {
        whole = whole * 10 + (uint64_t)(*p - '0');
        if (whole > 100000000ull)
            return -1;
        p++;
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p)) {
            if (scale < 1000000) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                scale *= 10;
            }
            p++;
        }
    }
    uint64_t unit_ms;
    if (!strcmp(p, "") || !strcmp(p, "s"))
        unit_ms = 1000;
    else if (!strcmp(p, "ms"))
        unit_ms = 1;
    else
        return -1;
    *ms = whole * unit_ms + (frac * unit_ms + scale / 2) / scale;
    return 0;
}

int opts_parse_range(const char *s, uint64_t *min_ms, uint64_t *max_ms)
{
    if (!s)
        return -1;
    const char *dash = strchr(s, '-');
    if (!dash || dash == s || strchr(dash + 1, '-'))
        return -1;
    char lo[64];
    size_t n = (size_t)(dash - s);
    if (n >= sizeof lo)
        return -1;
    memcpy(lo, s, n);
    lo[n] = '\0';
    uint64_t a, b;
    if (opts_parse_seconds(lo, &a) || opts_parse_seconds(dash + 1, &b) || a > b)
        return -1;
    *min_ms = a;
    *max_ms = b;
    return 0;
}

int opts_parse_size(const char *s, uint64_t *bytes)
{
    if (!s || !isdigit((unsigned char)*s))
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    uint64_t mult = 1;
    if (*end) {
        switch (tolower((unsigned char)*end)) {
        case 'k': mult = 1024; break;
        case 'm': mult = 1024 * 1024; break;
        case 'g': mult = 1024 * 1024 * 1024; break;
        default: return -1;
        }
        if (end[1] && strcasecmp(end + 1, "b") && strcasecmp(end + 1, "ib"))
            return -1;
    }
    if (v > UINT64_MAX / mult)
        return -1;
    *bytes = v * mult;
    return 0;
}

int opts_check_url(const char *s)
{
    if (!s)
        return -1;
    const char *rest;
    if (!strncasecmp(s, "http://", 7))
        rest = s + 7;
    else if (!strncasecmp(s, "https://", 8))
        rest = s + 8;
    else
        return -1;
    size_t len = strlen(s);
    if (len > 2048)
        return -1;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#' || *p == '\\')
            return -1;
    /* a host: at least one character before ':' or '/' */
    if (!*rest || *rest == '/' || *rest == ':' || *rest == '@')
        return -1;
    return 0;
}

static int set_value(const struct opt *o, const char *v, char *err, size_t errlen)
{
    int64_t i;
    uint64_t u, u2;
    switch (o->kind) {
    case OPT_STR:
        if (!v || !*v)
            goto bad;
        *(const char **)o->dst = v;
        return 0;
    case OPT_URL: {
        if (opts_check_url(v))
            goto bad;
        size_t n = strlen(v);
        while (n > 0 && v[n - 1] == '/')
            n--;
        *(char **)o->dst = xstrndup(v, n); /* lives as long as the program */
        return 0;
    }
    case OPT_INT:
        if (opts_parse_int(v, &i) || i < o->min || i > o->max)
            goto bad;
        *(int *)o->dst = (int)i;
        return 0;
    case OPT_SECONDS:
        if (opts_parse_seconds(v, &u) || (int64_t)u < o->min || (int64_t)u > o->max)
            goto bad;
        *(uint64_t *)o->dst = u;
        return 0;
    case OPT_RANGE:
        if (opts_parse_range(v, &u, &u2) || (int64_t)u < o->min || (int64_t)u2 > o->max)
            goto bad;
        ((uint64_t *)o->dst)[0] = u;
        ((uint64_t *)o->dst)[1] = u2;
        return 0;
    case OPT_SIZE:
        if (opts_parse_size(v, &u) || (int64_t)u < o->min || (int64_t)u > o->max)
            goto bad;
        *(uint64_t *)o->dst = u;
        return 0;
    case OPT_FLAG:
        if (!v || !strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes"))
            *(int *)o->dst = 1;
        else if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no"))
            *(int *)o->dst = 0;
        else
            goto bad;
        return 0;
    }
bad:
    switch (o->kind) {
    case OPT_INT:
        snprintf(err, errlen, "--%s: expected an integer from %lld to %lld", o->name,
                 (long long)o->min, (long long)o->max);
        break;
    case OPT_SECONDS:
        snprintf(err, errlen, "--%s: expected seconds from %.3g to %.3g (e.g. 2, 0.5, 500ms)",
                 o->name, (double)o->min / 1000, (double)o->max / 1000);
        break;
    case OPT_RANGE:
        snprintf(err, errlen,
                 "--%s: expected MIN-MAX in seconds, 0 <= MIN <= MAX <= %.0f (e.g. 1-3, 0-0)",
                 o->name, (double)o->max / 1000);
        break;
    case OPT_SIZE:
        snprintf(err, errlen, "--%s: expected a size in bytes from %lld to %lld (k, m, g allowed)",
                 o->name, (long long)o->min, (long long)o->max);
        break;
    case OPT_URL:
        snprintf(err, errlen,
                 "--%s: expected an http:// or https:// URL with a host and no query or spaces",
                 o->name);
        break;
    case OPT_FLAG:
        snprintf(err, errlen, "--%s: expected 1/0, true/false or yes/no", o->name);
        break;
    default:
        snprintf(err, errlen, "--%s: expected a non-empty value", o->name);
        break;
    }
    return -1;
}

int opts_parse(const struct opt *table, int argc, char **argv, char *err, size_t errlen)
{
    /* --help and --version win over everything, even bad values */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || !strcmp(argv[i], "--version"))
            return 1;
    for (const struct opt *o = table; o->name; o++) {
        const char *v = o->env ? getenv(o->env) : NULL;
        if (v && set_value(o, v, err, errlen)) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, " (from %s)", o->env);
            return -1;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%.64s' (see --help)", a);
            return -1;
        }
        a += 2;
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const struct opt *o = table;
        for (; o->name; o++)
            if (strlen(o->name) == nlen && !strncmp(o->name, a, nlen))
                break;
        if (!o->name) {
            snprintf(err, errlen, "unknown option '--%.*s' (see --help)", (int)(nlen > 64 ? 64 : nlen),
                     a);
            return -1;
        }
        const char *v = NULL;
        if (eq) {
            v = eq + 1;
        } else if (o->kind != OPT_FLAG) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--%s: missing value", o->name);
                return -1;
            }
            v = argv[++i];
        }
        if (set_value(o, v, err, errlen))
            return -1;
    }
    return 0;
}

void opts_print_help(FILE *out, const struct opt *table)
{
    for (const struct opt *o = table; o->name; o++) {
        char flag[64];
        if (o->kind == OPT_FLAG)
            snprintf(flag, sizeof flag, "--%s", o->name);
        else
            snprintf(flag, sizeof flag, "--%s %s", o->name, o->metavar ? o->metavar : "VALUE");
        fprintf(out, "  %-30s %s\n", flag, o->help);
        if (o->env)
            fprintf(out, "  %-30s   env: %s\n", "", o->env);
    }
}
