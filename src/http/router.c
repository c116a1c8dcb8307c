#include "router.h"

#include <http_parser.h>
#include <stdio.h>
#include <string.h>

/* 1 when pattern matches path; sets the '*' segment. */
static int pattern_match(const char *pattern, const char *path, size_t len, const char **param,
                         size_t *param_len)
{
    const char *star = strchr(pattern, '*');
    if (star) {
        size_t prefix = (size_t)(star - pattern);
        size_t suffix = strlen(star + 1);
        if (len <= prefix + suffix || memcmp(pattern, path, prefix) != 0 ||
            memcmp(star + 1, path + len - suffix, suffix) != 0)
            return 0;
        size_t seg = len - prefix - suffix;
        if (memchr(path + prefix, '/', seg))
            return 0;
        *param = path + prefix;
        *param_len = seg;
        return 1;
    }
    if (strlen(pattern) != len || memcmp(pattern, path, len) != 0)
        return 0;
    *param = NULL;
    *param_len = 0;
    return 1;
}

int router_match(const struct route *routes, int method, const char *path, size_t path_len,
                 struct route_match *m)
{
    memset(m, 0, sizeof *m);
    int path_seen = 0;
    for (const struct route *r = routes; r->pattern; r++) {
        const char *param;
        size_t param_len;
        if (!pattern_match(r->pattern, path, path_len, &param, &param_len))
            continue;
        if (r->method == method) {
            m->route = r;
            m->param = param;
            m->param_len = param_len;
            return 0;
        }
        const char *name = http_method_str((enum http_method)r->method);
        if (!strstr(m->allow, name)) {
            size_t used = strlen(m->allow);
            snprintf(m->allow + used, sizeof m->allow - used, "%s%s", used ? ", " : "", name);
        }
        path_seen = 1;
    }
    return path_seen ? -405 : -404;
}
