/* A receiver for loop-based unit tests: an http_server on the test's loop,
 * on a free loopback port, with the routes the test gives. */
#ifndef TEST_LOOPSRV_H
#define TEST_LOOPSRV_H

#include <assert.h>
#include <stdlib.h>

#include "../../src/http/server.h"

static struct http_counters loopsrv_counters;

static inline struct http_server *loopsrv_start(uv_loop_t *loop, const struct route *routes,
                                                void *ctx, int *port)
{
    int fd = http_listen_socket("127.0.0.1", 0, 1, 64, port);
    assert(fd >= 0);
    struct http_server_config cfg = {&loopsrv_counters, routes, ctx, 1 << 20, 100, 5000, 5000,
                                     5000, NULL, NULL, 0};
    int err = 0;
    struct http_server *s = http_server_new(loop, fd, &cfg, &err);
    assert(s);
    return s;
}

#endif
