/*
 * router: maps a method and a path to a handler.
 *
 * A route is {method, pattern, handler, flags}. A pattern is an exact path
 * ("/api/tasks") or a path with one star standing for one non-empty path
 * segment (no '/'): "/api/tasks/" + star, "/api/tasks/" + star + "/retry";
 * the handler reads the segment from the request's param. Routes are kept in a caller-owned
 * static array ending with a {0} entry; the router never copies or frees it.
 * Thread-safe: read-only after start.
 */
#ifndef EXCHANGED_ROUTER_H
#define EXCHANGED_ROUTER_H

#include <stddef.h>

struct http_request;
typedef void (*route_handler_cb)(struct http_request *req, void *ctx);

enum route_flags {
    ROUTE_JSON_BODY = 1 << 0, /* Content-Type must be JSON (or absent): else 415 */
};

struct route {
    int method; /* enum http_method from http_parser.h */
    const char *pattern;
    route_handler_cb handler;
    unsigned flags;
};

/* Result of router_match. */
struct route_match {
    const struct route *route; /* NULL when no route matched */
    const char *param;         /* the '*' segment, not NUL-terminated */
    size_t param_len;
    char allow[96];            /* on 405: the methods the path accepts, "GET, POST" */
};

/* Returns 0 with m->route set, -404 when no pattern matches the path, or
 * -405 when patterns match the path but not the method (m->allow filled). */
int router_match(const struct route *routes, int method, const char *path, size_t path_len,
                 struct route_match *m);

#endif
