/*
 * opts: command-line flags with environment-variable twins, table-driven.
 *
 * A program describes its flags in a static array of struct opt ending
 * with {0}; opts_parse fills each opt's destination from, in rising order
 * of precedence: the value already there (the default), the environment
 * variable, the flag ("--name VALUE" or "--name=VALUE"). Every value is
 * checked; the first bad one stops parsing with a one-line reason.
 * Value syntax per kind:
 *   OPT_STR       any string (non-empty)
 *   OPT_INT       decimal integer in [min, max]
 *   OPT_SECONDS   seconds, decimal ("2", "0.5") or with a unit ("500ms", "3s"),
 *                 stored as milliseconds (uint64_t), in [min, max] ms
 *   OPT_RANGE     "MIN-MAX" in seconds (each as OPT_SECONDS), MIN <= MAX,
 *                 stored into two uint64_t ms (dst and dst2)
 *   OPT_SIZE      bytes, with an optional k/m/g suffix (KiB...), in [min, max]
 *   OPT_URL       an http:// or https:// URL with a host and no query,
 *                 stored without its trailing '/'
 *   OPT_FLAG      no value; sets an int to 1 (env: 1/0, true/false, yes/no)
 * Not thread-safe; call at start-up.
 */
#ifndef EXCHANGED_OPTS_H
#define EXCHANGED_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum opt_kind { OPT_STR, OPT_INT, OPT_SECONDS, OPT_RANGE, OPT_SIZE, OPT_URL, OPT_FLAG };

struct opt {
    const char *name;  /* long flag without "--" */
    const char *env;   /* environment twin, or NULL */
    enum opt_kind kind;
    void *dst;         /* char ** for STR/URL (points to the value, not copied), int for
                          INT/FLAG, uint64_t for SECONDS/SIZE, uint64_t[2] for RANGE */
    int64_t min, max;  /* bounds for INT, SECONDS (ms), SIZE, RANGE (ms) */
    const char *metavar; /* shown in --help, e.g. "N" or "MIN-MAX" */
    const char *help;    /* one line, including the default */
};

/* Returns 0 when parsed, 1 when --help or --version was given (the caller
 * prints them), or -1 with a one-line reason in err. argv[0] is skipped. */
int opts_parse(const struct opt *table, int argc, char **argv, char *err, size_t errlen);

/* Prints one line per option: flag, metavar, env twin, help. */
void opts_print_help(FILE *out, const struct opt *table);

/* Parsers used by opts_parse, exposed for tests and fuzzing. Return 0 or -1. */
int opts_parse_seconds(const char *s, uint64_t *ms);
int opts_parse_range(const char *s, uint64_t *min_ms, uint64_t *max_ms);
int opts_parse_size(const char *s, uint64_t *bytes);
int opts_parse_int(const char *s, int64_t *v);
int opts_check_url(const char *s);

#endif
