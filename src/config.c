#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "limits.h"
#include "opts.h"
#include "util.h"

#define S(x) ((int64_t)(x) * 1000) /* seconds -> ms, for bounds */

static struct config cfg_tmp;
static const char default_main_service_url[] = "http://localhost:3001";

static const struct opt table[] = {
    {"host", "EXCHANGED_HOST", OPT_STR, &cfg_tmp.host, 0, 0, "ADDR",
     "address to listen on (default 127.0.0.1; 0.0.0.0 exposes the service)"},
    {"port", "EXCHANGED_PORT", OPT_INT, &cfg_tmp.port, 0, 65535, "N",
     "TCP port (default 8000; 0 picks a free one, printed at start); one that anything "
     "listens on already, another exchanged included, stops the start"},
    {"workers", "EXCHANGED_WORKERS", OPT_INT, &cfg_tmp.workers, 0, LIMIT_WORKERS_MAX, "N",
     "worker threads, each with its own loop and listener (default 0 = one per core)"},
    {"latency", "EXCHANGED_LATENCY", OPT_RANGE, cfg_tmp.latency_ms, 0, S(LIMIT_LATENCY_MAX_S),
     "MIN-MAX", "simulated external-API latency per bill, seconds, uniform (default 1-3)"},
    {"sync-latency", "EXCHANGED_SYNC_LATENCY", OPT_SECONDS, &cfg_tmp.sync_latency_ms, 0,
     S(LIMIT_LATENCY_MAX_S), "SECONDS", "per-bill latency of /api/exchange_sync (default 2)"},
    {"main-service-url", "MAIN_SERVICE_URL", OPT_URL, &cfg_tmp.main_service_url, 0, 0, "URL",
     "base URL of the main service; callbacks go to URL/api/exchange_result "
     "(default http://localhost:3001)"},
    {"secret-token", "SECRET_TOKEN", OPT_STR, &cfg_tmp.secret_token, 0, 0, "TOKEN",
     "token sent in every callback (default: the seed's token; never logged)"},
    {"max-body", "EXCHANGED_MAX_BODY", OPT_SIZE, &cfg_tmp.max_body, 64, 64 * 1024 * 1024, "BYTES",
     "largest request body, else 413 (default 1m)"},
    {"max-connections", "EXCHANGED_MAX_CONNECTIONS", OPT_INT, &cfg_tmp.max_connections, 1,
     1000000, "N", "open connections over all workers; past it accepting pauses (default 10000; "
     "lowered, with a warning, to what the open-files limit allows)"},
    {"header-timeout", "EXCHANGED_HEADER_TIMEOUT", OPT_SECONDS, &cfg_tmp.header_timeout_ms, 100,
     S(3600), "SECONDS", "time to send a request's headers, else 408 and close (default 10)"},
    {"body-timeout", "EXCHANGED_BODY_TIMEOUT", OPT_SECONDS, &cfg_tmp.body_timeout_ms, 100, S(3600),
     "SECONDS", "time to send a request's body, else 408 and close (default 30)"},
    {"idle-timeout", "EXCHANGED_IDLE_TIMEOUT", OPT_SECONDS, &cfg_tmp.idle_timeout_ms, 100, S(3600),
     "SECONDS", "an idle keep-alive connection is closed after this (default 5)"},
    {"callbacks-in-flight", "EXCHANGED_CALLBACKS_IN_FLIGHT", OPT_INT, &cfg_tmp.callbacks_in_flight,
     1, 10000, "N", "callbacks in flight per worker; the rest wait their turn (default 64)"},
    {"callback-connect-timeout", "EXCHANGED_CALLBACK_CONNECT_TIMEOUT", OPT_SECONDS,
     &cfg_tmp.callback_connect_timeout_ms, 100, S(600), "SECONDS",
     "time to connect to the main service (default 5)"},
    {"callback-timeout", "EXCHANGED_CALLBACK_TIMEOUT", OPT_SECONDS, &cfg_tmp.callback_timeout_ms,
     100, S(3600), "SECONDS", "time for a whole callback, connect included (default 30)"},
    {"shutdown-grace", "EXCHANGED_SHUTDOWN_GRACE", OPT_SECONDS, &cfg_tmp.shutdown_grace_ms, 0,
     S(3600), "SECONDS",
     "on SIGTERM/SIGINT/SIGHUP, the longest wait for answers still being written and for "
     "the answers to callbacks already sent (default 10)"},
    {"bill-log", "EXCHANGED_BILL_LOG", OPT_INT, &cfg_tmp.bill_log, 0, 1, "0|1",
     "print the seed's line per computed bill to stdout (default 1; a reader 4 MiB behind loses lines, counted in /health, and never stalls the service)"},
    {"store", "EXCHANGED_STORE", OPT_STR, &cfg_tmp.store, 0, 0, "SPEC",
     "where tasks are kept: sqlite:PATH (default sqlite:exchanged.db; one process per file)"
     " or memory (lost on exit)"},
    {"store-sync", "EXCHANGED_STORE_SYNC", OPT_STR, &cfg_tmp.store_sync, 0, 0, "LEVEL",
     "full (default: an acknowledged task survives a power cut), normal (survives a crash of "
     "the service, the last commits may be lost on a power cut) or off (an OS crash may lose "
     "or corrupt the database)"},
    {"max-active-tasks", "EXCHANGED_MAX_ACTIVE_TASKS", OPT_INT, &cfg_tmp.max_active_tasks, 1,
     100000000, "N", "tasks not yet finished; past it 503 + Retry-After (default 1000000)"},
    {"retention", "EXCHANGED_RETENTION", OPT_SECONDS, &cfg_tmp.retention_ms, 0, S(365 * 86400),
     "SECONDS", "a finished task is purged this long after it finished (default 259200 = 3 days)"},
    {"retry-base", "EXCHANGED_RETRY_BASE", OPT_SECONDS, &cfg_tmp.retry_base_ms, 1, S(3600),
     "SECONDS", "first callback retry waits up to this; doubles each time (default 1)"},
    {"retry-cap", "EXCHANGED_RETRY_CAP", OPT_SECONDS, &cfg_tmp.retry_cap_ms, 1, S(86400),
     "SECONDS", "longest wait between callback attempts (default 300)"},
    {"retry-max-attempts", "EXCHANGED_RETRY_MAX_ATTEMPTS", OPT_INT, &cfg_tmp.retry_max_attempts,
     1, 10000, "N", "callback attempts in all before a task fails (default 30)"},
    {"retry-max-age", "EXCHANGED_RETRY_MAX_AGE", OPT_SECONDS, &cfg_tmp.retry_max_age_ms, 1000,
     S(30 * 86400), "SECONDS", "a task older than this fails instead of retrying (default 86400)"},
    {"api-token", "EXCHANGED_API_TOKEN", OPT_STR, &cfg_tmp.api_token, 0, 0, "TOKEN",
     "when set, every /api/... route needs 'Authorization: Bearer TOKEN' (default: none)"},
    {"callback-hmac-key", "EXCHANGED_CALLBACK_HMAC_KEY", OPT_STR, &cfg_tmp.callback_hmac_key, 0,
     0, "KEY", "when set, callbacks carry X-Signature: sha256=HMAC-SHA256(KEY, body) in hex "
     "(default: none)"},
    {"callback-ca-file", "EXCHANGED_CALLBACK_CA_FILE", OPT_STR, &cfg_tmp.callback_ca_file, 0, 0,
     "PATH", "PEM file of the CAs an https:// main service's certificate is checked against, "
     "in place of the system's (default: the system's)"},
    {"log-level", "EXCHANGED_LOG_LEVEL", OPT_STR, &cfg_tmp.log_level, 0, 0, "LEVEL",
     "debug, info, warn or error (default info)"},
    {0},
};

static void defaults(struct config *c)
{
    memset(c, 0, sizeof *c);
    c->host = "127.0.0.1";
    c->port = 8000;
    c->workers = 0;
    c->latency_ms[0] = 1000;
    c->latency_ms[1] = 3000;
    c->sync_latency_ms = 2000;
    c->main_service_url = default_main_service_url;
    c->secret_token = "MY_SECRET_TOKEN";
    c->max_body = LIMIT_BODY_BYTES_DEFAULT;
    c->max_connections = LIMIT_CONNECTIONS_DEFAULT;
    c->header_timeout_ms = LIMIT_HEADER_TIMEOUT_S_DEFAULT * 1000;
    c->body_timeout_ms = LIMIT_BODY_TIMEOUT_S_DEFAULT * 1000;
    c->idle_timeout_ms = LIMIT_IDLE_TIMEOUT_S_DEFAULT * 1000;
    c->callbacks_in_flight = LIMIT_CALLBACKS_IN_FLIGHT_DEFAULT;
    c->callback_connect_timeout_ms = LIMIT_CALLBACK_CONNECT_TIMEOUT_S_DEFAULT * 1000;
    c->callback_timeout_ms = LIMIT_CALLBACK_TIMEOUT_S_DEFAULT * 1000;
    c->shutdown_grace_ms = LIMIT_SHUTDOWN_GRACE_S_DEFAULT * 1000;
    c->bill_log = 1;
    c->store = "sqlite:exchanged.db";
    c->store_sync = "full";
    c->max_active_tasks = 1000000;
    c->retention_ms = 3ull * 86400 * 1000;
    c->retry_base_ms = 1000;
    c->retry_cap_ms = 300000;
    c->retry_max_attempts = 30;
    c->retry_max_age_ms = 86400ull * 1000;
    c->log_level = "info";
}

/* --callback-ca-file: for an https:// main service, readable, and with a PEM
 * certificate in its first LIMIT_CA_FILE_BYTES (else curl would fail only at
 * the first callback, and every callback after it). */
static int check_ca_file(const char *path, char *err, size_t errlen)
{
    if (strncmp(cfg_tmp.main_service_url, "https://", 8)) {
        snprintf(err, errlen, "--callback-ca-file: applies only to an https:// main service URL");
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "--callback-ca-file: cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char *text = xmalloc(LIMIT_CA_FILE_BYTES + 1);
    size_t n = fread(text, 1, LIMIT_CA_FILE_BYTES, f);
    int bad = ferror(f) || !n;
    fclose(f);
    text[n] = 0;
    bad = bad || !strstr(text, "-----BEGIN CERTIFICATE-----");
    free(text);
    if (bad) {
        snprintf(err, errlen, "--callback-ca-file: %s holds no PEM certificate", path);
        return -1;
    }
    return 0;
}

/* The checks across options, once each is valid on its own. */
static int check(char *err, size_t errlen)
{
    const char *l = cfg_tmp.log_level;
    if (strcmp(l, "debug") && strcmp(l, "info") && strcmp(l, "warn") && strcmp(l, "error")) {
        snprintf(err, errlen, "--log-level: expected debug, info, warn or error");
        return -1;
    }
    const char *ss = cfg_tmp.store_sync;
    if (strcmp(ss, "full") && strcmp(ss, "normal") && strcmp(ss, "off")) {
        snprintf(err, errlen, "--store-sync: expected full, normal or off");
        return -1;
    }
    if (strcmp(cfg_tmp.store, "memory") && (strncmp(cfg_tmp.store, "sqlite:", 7) || !cfg_tmp.store[7])) {
        snprintf(err, errlen, "--store: expected sqlite:PATH or memory");
        return -1;
    }
    if (cfg_tmp.retry_base_ms > cfg_tmp.retry_cap_ms) {
        snprintf(err, errlen, "--retry-base: must not be more than --retry-cap");
        return -1;
    }
    if (cfg_tmp.callback_ca_file && check_ca_file(cfg_tmp.callback_ca_file, err, errlen))
        return -1;
    if (cfg_tmp.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg_tmp.workers = n < 1 ? 1 : n > LIMIT_WORKERS_MAX ? LIMIT_WORKERS_MAX : (int)n;
    }
    return 0;
}

int config_load(struct config *c, int argc, char **argv, char *err, size_t errlen)
{
    defaults(&cfg_tmp);
    int rc = opts_parse(table, argc, argv, err, errlen);
    if (rc == 0)
        rc = check(err, errlen);
    if (rc != 0) { /* the URL is the one value opts copies (see opts.c) */
        if (cfg_tmp.main_service_url != default_main_service_url)
            free((char *)cfg_tmp.main_service_url);
        return rc;
    }
    *c = cfg_tmp;
    return 0;
}

/* The descriptors that are not connections. */
static unsigned long fds_reserved(const struct config *c)
{
    unsigned long w = (unsigned long)c->workers;
    return LIMIT_FDS_BASE + w * (LIMIT_FDS_PER_WORKER + LIMIT_FDS_PER_WORKER_CALLBACKS_EXTRA +
                                 (unsigned long)c->callbacks_in_flight);
}

unsigned long config_fds_needed(const struct config *c)
{
    return fds_reserved(c) + (unsigned long)c->max_connections;
}

int config_fit_fds(struct config *c, unsigned long limit, int *was, char *err, size_t errlen)
{
    unsigned long reserved = fds_reserved(c);
    *was = c->max_connections;
    if (limit >= reserved + (unsigned long)c->max_connections)
        return 0;
    if (limit < reserved + 1) {
        snprintf(err, errlen,
                 "the open-files limit (ulimit -n) is %lu: --workers %d with "
                 "--callbacks-in-flight %d need at least %lu; raise it, or lower those",
                 limit, c->workers, c->callbacks_in_flight, reserved + 1);
        return -1;
    }
    c->max_connections = (int)(limit - reserved);
    return 1;
}

void config_print_help(FILE *out)
{
    fprintf(out,
            "exchanged " EXCHANGED_VERSION " - the asynchronous exchange service\n\n"
            "Usage: exchanged [OPTION]...\n\n"
            "Accepts POST /api/exchange_async, computes each bill after a simulated latency and\n"
            "PUTs the breakdown to MAIN_SERVICE_URL/api/exchange_result. Every option can also\n"
            "be set by the environment variable shown under it; a flag wins over its variable.\n\n"
            "Options:\n");
    opts_print_help(out, table);
    fprintf(out, "  %-30s %s\n  %-30s %s\n", "--help", "show this help and exit", "--version",
            "show the version and exit");
}
