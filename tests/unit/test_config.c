/* config: defaults, the seed's names, one-line refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../src/config.h"

static void test_defaults(void **state)
{
    (void)state;
    unsetenv("MAIN_SERVICE_URL");
    unsetenv("SECRET_TOKEN");
    struct config c;
    char err[256];
    char *argv[] = {"exchanged", NULL};
    assert_int_equal(config_load(&c, 1, argv, err, sizeof err), 0);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 8000);
    assert_true(c.workers >= 1);
    assert_int_equal(c.latency_ms[0], 1000);
    assert_int_equal(c.latency_ms[1], 3000);
    assert_int_equal(c.sync_latency_ms, 2000);
    assert_string_equal(c.main_service_url, "http://localhost:3001");
    assert_string_equal(c.secret_token, "MY_SECRET_TOKEN");
}

static void test_seed_env_and_flags(void **state)
{
    (void)state;
    setenv("MAIN_SERVICE_URL", "http://main:9000/", 1);
    setenv("SECRET_TOKEN", "s3cret", 1);
    struct config c;
    char err[256];
    char *argv[] = {"exchanged", "--latency", "0-0", "--workers", "3", "--sync-latency", "0.25", NULL};
    assert_int_equal(config_load(&c, 7, argv, err, sizeof err), 0);
    assert_string_equal(c.main_service_url, "http://main:9000");
    free((char *)c.main_service_url); /* a copy made by opts (kept for the program's life) */
    assert_string_equal(c.secret_token, "s3cret");
    assert_int_equal(c.latency_ms[1], 0);
    assert_int_equal(c.workers, 3);
    assert_int_equal(c.sync_latency_ms, 250);
    unsetenv("MAIN_SERVICE_URL");
    unsetenv("SECRET_TOKEN");
}

static void test_refusals(void **state)
{
    (void)state;
    struct config c;
    char err[256];
    char *a1[] = {"exchanged", "--port", "70000", NULL};
    assert_int_equal(config_load(&c, 3, a1, err, sizeof err), -1);
    assert_string_equal(err, "--port: expected an integer from 0 to 65535");
    char *a2[] = {"exchanged", "--log-level", "loud", NULL};
    assert_int_equal(config_load(&c, 3, a2, err, sizeof err), -1);
    char *a3[] = {"exchanged", "--main-service-url", "localhost:3001", NULL};
    assert_int_equal(config_load(&c, 3, a3, err, sizeof err), -1);
    assert_non_null(strstr(err, "--main-service-url"));
    char *a4[] = {"exchanged", "--workers", "4", "--max-connections", "0", NULL};
    assert_int_equal(config_load(&c, 5, a4, err, sizeof err), -1);
    assert_non_null(strstr(err, "--max-connections"));
    char *a5[] = {"exchanged", "--version", NULL};
    assert_int_equal(config_load(&c, 2, a5, err, sizeof err), 1);
}

static void test_callback_ca_file(void **state)
{
    (void)state;
    struct config c;
    char err[512];
    char dir[] = "/tmp/test-config-XXXXXX", pem[64], text[64];
    assert_non_null(mkdtemp(dir));
    snprintf(pem, sizeof pem, "%s/ca.pem", dir);
    snprintf(text, sizeof text, "%s/ca.txt", dir);
    FILE *f = fopen(pem, "w");
    assert_non_null(f);
    fputs("# a bundle\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    f = fopen(text, "w");
    assert_non_null(f);
    fputs("not a certificate\n", f);
    fclose(f);

    char *ok[] = {"exchanged", "--main-service-url", "https://main.example", "--callback-ca-file",
                  pem, NULL};
    assert_int_equal(config_load(&c, 5, ok, err, sizeof err), 0);
    assert_string_equal(c.callback_ca_file, pem);
    free((char *)c.main_service_url); /* a copy made by opts (kept for the program's life) */
    char *plain[] = {"exchanged", "--callback-ca-file", pem, NULL};
    assert_int_equal(config_load(&c, 3, plain, err, sizeof err), -1);
    assert_string_equal(err, "--callback-ca-file: applies only to an https:// main service URL");
    char *none[] = {"exchanged", "--main-service-url", "https://m", "--callback-ca-file",
                    "/nonexistent/ca.pem", NULL};
    assert_int_equal(config_load(&c, 5, none, err, sizeof err), -1);
    assert_string_equal(err, "--callback-ca-file: cannot read /nonexistent/ca.pem: "
                             "No such file or directory");
    char *notpem[] = {"exchanged", "--main-service-url", "https://m", "--callback-ca-file", text,
                      NULL};
    assert_int_equal(config_load(&c, 5, notpem, err, sizeof err), -1);
    assert_non_null(strstr(err, "holds no PEM certificate"));
    char *empty[] = {"exchanged", "--main-service-url", "https://m", "--callback-ca-file",
                     "/dev/null", NULL};
    assert_int_equal(config_load(&c, 5, empty, err, sizeof err), -1);
    assert_string_equal(err, "--callback-ca-file: /dev/null holds no PEM certificate");
    char *directory[] = {"exchanged", "--main-service-url", "https://m", "--callback-ca-file", dir,
                         NULL};
    assert_int_equal(config_load(&c, 5, directory, err, sizeof err), -1);
    assert_non_null(strstr(err, "--callback-ca-file: "));
    unlink(pem);
    unlink(text);
    rmdir(dir);
}

/* The open-files limit against --max-connections: what fits is kept, more
 * is lowered to what the limit leaves (down to one connection over all the
 * workers, whose cap is one), too little for one is refused. */
static void test_fit_fds(void **state)
{
    (void)state;
    struct config c;
    char err[256];
    char *argv[] = {"exchanged", "--workers", "2", "--callbacks-in-flight", "10",
                    "--max-connections", "1000", NULL};
    assert_int_equal(config_load(&c, 7, argv, err, sizeof err), 0);
    unsigned long reserved = 32 + 2 * (8 + 4 + 10);
    assert_int_equal(config_fds_needed(&c), reserved + 1000);
    int was = 0;
    assert_int_equal(config_fit_fds(&c, reserved + 1000, &was, err, sizeof err), 0);
    assert_int_equal(c.max_connections, 1000);
    assert_int_equal(config_fit_fds(&c, reserved + 999, &was, err, sizeof err), 1);
    assert_int_equal(was, 1000);
    assert_int_equal(c.max_connections, 999);
    assert_int_equal(config_fit_fds(&c, reserved + 1, &was, err, sizeof err), 1);
    assert_int_equal(c.max_connections, 1); /* one over all workers (one cap) */
    assert_int_equal(config_fit_fds(&c, reserved, &was, err, sizeof err), -1);
    assert_string_equal(err, "the open-files limit (ulimit -n) is 76: --workers 2 with "
                             "--callbacks-in-flight 10 need at least 77; raise it, or lower those");
    assert_int_equal(c.max_connections, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults), cmocka_unit_test(test_seed_env_and_flags),
        cmocka_unit_test(test_refusals), cmocka_unit_test(test_callback_ca_file),
        cmocka_unit_test(test_fit_fds)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
