/*
 * config: the service's settings, from defaults, environment and flags
 * (see opts.h for the syntax). Filled once at start-up, then read-only and
 * shared by all threads.
 */
#ifndef EXCHANGED_CONFIG_H
#define EXCHANGED_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#define EXCHANGED_VERSION "0.1.0"

struct config {
    const char *host;
    int port;
    int workers;                  /* 0 = one per core */
    uint64_t latency_ms[2];       /* simulated per-bill latency, [min, max] */
    uint64_t sync_latency_ms;     /* per bill, one after another */
    const char *main_service_url; /* without trailing '/' */
    const char *secret_token;
    uint64_t max_body;
    int max_connections;
    uint64_t header_timeout_ms;
    uint64_t body_timeout_ms;
    uint64_t idle_timeout_ms;
    int callbacks_in_flight;      /* per worker */
    uint64_t callback_connect_timeout_ms;
    uint64_t callback_timeout_ms;
    uint64_t shutdown_grace_ms;
    int bill_log;                 /* print the seed's line per bill */
    const char *store;            /* "sqlite:PATH" or "memory" */
    const char *store_sync;       /* "full", "normal", "off" */
    int max_active_tasks;
    uint64_t retention_ms;
    uint64_t retry_base_ms, retry_cap_ms, retry_max_age_ms;
    int retry_max_attempts;
    const char *log_level;
    const char *api_token;        /* NULL: no authentication */
    const char *callback_hmac_key; /* NULL: callbacks are not signed */
    const char *callback_ca_file;  /* NULL: an https:// main service is checked against the
                                      system's CAs */
};

/* Returns 0 when c is ready, 1 when --help/--version was printed (exit 0),
 * -1 when a value is bad (a one-line reason in err; exit non-zero). */
int config_load(struct config *c, int argc, char **argv, char *err, size_t errlen);
void config_print_help(FILE *out);

/* File descriptors the service may hold at once with c: its connections
 * (max_connections), the callbacks' sockets and its own (limits.h). */
unsigned long config_fds_needed(const struct config *c);
/* Fits c->max_connections into an open-files limit (RLIMIT_NOFILE): returns
 * 0 when it fits, 1 when max_connections was lowered to fit (the old value
 * in *was), -1 when not even one connection fits (a one-line
 * reason in err). */
int config_fit_fds(struct config *c, unsigned long limit, int *was, char *err, size_t errlen);

#endif
