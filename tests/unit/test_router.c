/* router: exact and one-segment patterns, 404 and 405 with Allow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <http_parser.h>
#include <cmocka.h>

#include "../../src/http/router.h"

static void h1(struct http_request *r, void *c) { (void)r; (void)c; }
static void h2(struct http_request *r, void *c) { (void)r; (void)c; }

static const struct route routes[] = {
    {HTTP_GET, "/", h1, 0},
    {HTTP_GET, "/api/tasks", h1, 0},
    {HTTP_POST, "/api/tasks", h2, ROUTE_JSON_BODY},
    {HTTP_GET, "/api/tasks/*", h2, 0},
    {HTTP_DELETE, "/api/tasks/*", h1, 0},
    {HTTP_POST, "/api/tasks/*/retry", h1, 0},
    {0},
};

static int match(int method, const char *path, struct route_match *m)
{
    return router_match(routes, method, path, strlen(path), m);
}

static void test_match(void **state)
{
    (void)state;
    struct route_match m;
    assert_int_equal(match(HTTP_GET, "/", &m), 0);
    assert_ptr_equal(m.route, &routes[0]);
    assert_int_equal(match(HTTP_POST, "/api/tasks", &m), 0);
    assert_ptr_equal(m.route->handler, h2);
    assert_int_equal(match(HTTP_GET, "/api/tasks/abc", &m), 0);
    assert_ptr_equal(m.route, &routes[3]);
    assert_int_equal(m.param_len, 3);
    assert_memory_equal(m.param, "abc", 3);
    assert_int_equal(match(HTTP_GET, "/api/tasks/", &m), -404);
    assert_int_equal(match(HTTP_POST, "/api/tasks/ab/retry", &m), 0);
    assert_ptr_equal(m.route, &routes[5]);
    assert_int_equal(m.param_len, 2);
    assert_memory_equal(m.param, "ab", 2);
    assert_int_equal(match(HTTP_POST, "/api/tasks//retry", &m), -404);
    assert_int_equal(match(HTTP_GET, "/api/tasks/ab/retry", &m), -405);
    assert_int_equal(match(HTTP_GET, "/api/tasks/a/b", &m), -404);
    assert_int_equal(match(HTTP_GET, "/nope", &m), -404);
    assert_int_equal(match(HTTP_GET, "/api/task", &m), -404);
    assert_int_equal(match(HTTP_PUT, "/api/tasks", &m), -405);
    assert_string_equal(m.allow, "GET, POST");
    assert_int_equal(match(HTTP_POST, "/api/tasks/x", &m), -405);
    assert_string_equal(m.allow, "GET, DELETE");
    assert_int_equal(match(HTTP_POST, "/", &m), -405);
    assert_string_equal(m.allow, "GET");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_match)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
