/* Fuzz target: configuration parsing. The first byte picks the parser, the
 * rest is the value; opts_parse also gets the input as an argv (split at
 * newlines) over a table of every kind but URL (whose copies live as long as
 * the program, by design). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/opts.h"

static const char *s_val;
static int i_val, f_val;
static uint64_t sec_val, size_val, range_val[2];
static const struct opt table[] = {
    {"name", NULL, OPT_STR, &s_val, 0, 0, "S", "s"},
    {"num", NULL, OPT_INT, &i_val, -5, 70000, "N", "n"},
    {"secs", NULL, OPT_SECONDS, &sec_val, 0, 86400000, "S", "s"},
    {"size", NULL, OPT_SIZE, &size_val, 1, 1 << 30, "B", "b"},
    {"range", NULL, OPT_RANGE, range_val, 0, 86400000, "R", "r"},
    {"flag", NULL, OPT_FLAG, &f_val, 0, 0, NULL, "f"},
    {0},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    char *s = malloc(size);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    uint64_t a, b;
    int64_t i;
    switch (data[0] % 6) {
    case 0:
        if (opts_parse_seconds(s, &a) == 0 && a > 100000000ull * 1000 + 1000)
            abort();
        break;
    case 1:
        if (opts_parse_range(s, &a, &b) == 0 && a > b)
            abort();
        break;
    case 2: opts_parse_size(s, &a); break;
    case 3: opts_parse_int(s, &i); break;
    case 4: opts_check_url(s); break;
    default: {
        char *argv[64];
        int argc = 0;
        argv[argc++] = "prog";
        for (char *p = s; p && argc < 63;) {
            argv[argc++] = p;
            p = strchr(p, '\n');
            if (p)
                *p++ = '\0';
        }
        argv[argc] = NULL;
        char err[256];
        opts_parse(table, argc, argv, err, sizeof err);
        break;
    }
    }
    free(s);
    return 0;
}
