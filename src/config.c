#include "config.h"

#include <string.h>
#include <unistd.h>

#include "limits.h"
#include "opts.h"

#define S(x) ((int64_t)(x) * 1000) /* seconds -> ms, for bounds */

static struct config cfg_tmp;

static const struct opt table[] = {
    {"host", "EXCHANGED_HOST", OPT_STR, &cfg_tmp.host, 0, 0, "ADDR",
     "address to listen on (default 127.0.0.1; 0.0.0.0 exposes the service)"},
    {"port", "EXCHANGED_PORT", OPT_INT, &cfg_tmp.port, 0, 65535, "N",
     "TCP port (default 8000; 0 picks a free one, printed at start)"},
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
     1000000, "N", "open connections over all workers; past it accepting pauses (default 10000)"},
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
     "on SIGTERM/SIGINT, time to finish answers and tasks under way (default 10)"},
    {"bill-log", "EXCHANGED_BILL_LOG", OPT_INT, &cfg_tmp.bill_log, 0, 1, "0|1",
     "print the seed's line per computed bill to stdout (default 1)"},
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
    c->main_service_url = "http://localhost:3001";
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
    c->log_level = "info";
}

int config_load(struct config *c, int argc, char **argv, char *err, size_t errlen)
{
    defaults(&cfg_tmp);
    int rc = opts_parse(table, argc, argv, err, errlen);
    if (rc != 0)
        return rc;
    const char *l = cfg_tmp.log_level;
    if (strcmp(l, "debug") && strcmp(l, "info") && strcmp(l, "warn") && strcmp(l, "error")) {
        snprintf(err, errlen, "--log-level: expected debug, info, warn or error");
        return -1;
    }
    if (cfg_tmp.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg_tmp.workers = n < 1 ? 1 : n > LIMIT_WORKERS_MAX ? LIMIT_WORKERS_MAX : (int)n;
    }
    if (cfg_tmp.max_connections < cfg_tmp.workers) {
        snprintf(err, errlen, "--max-connections: must be at least --workers (%d)", cfg_tmp.workers);
        return -1;
    }
    *c = cfg_tmp;
    return 0;
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
