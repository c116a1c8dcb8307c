/*
 * worker: one thread, one libuv loop, and what that loop owns: a listener
 * on the shared port (SO_REUSEPORT: the kernel spreads connections by a
 * hash; the workers' servers form one http_group, which evens them out and
 * holds --max-connections over all workers), its connections, its tasks (runner + deadline heap), its callbacks
 * (delivery, owned by the runner) and its store inbox. Nothing mutable is
 * shared between workers, so the request path takes no lock; the store is
 * reached through its queue.
 *
 * The main thread drives a worker set:
 *   worker_set_new (binds) -> worker_set_prepare (loops) -> worker_set_resume
 *   (each recovered task) -> worker_set_run (threads) -> (signal)
 *   worker_set_stop -> worker_set_join -> worker_set_free
 * Stopping: each worker stops accepting, drops its in-memory tasks at once
 * (they are in the store and resume at the next start), finishes the
 * answers under way and lets the callbacks already sent get their answers
 * (each at most --shutdown-grace), then ends its loop.
 */
#ifndef EXCHANGED_WORKER_H
#define EXCHANGED_WORKER_H

#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "core/runner.h"
#include "http/server.h"
#include "store/store.h"

struct worker_set;

struct worker {
    int id;
    struct worker_set *set;
    const struct config *cfg;
    struct store *store;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t stop_async;
    uv_timer_t drain_timer;   /* shutdown: polls for "all done", bounded by the grace */
    uint64_t stop_started_ms;
    int listen_fd;
    int server_drained;
    struct http_server *server;
    struct runner *runner;    /* NULL once closed */
    struct store_inbox *inbox;
    struct http_counters http_counters;
    struct runner_counters runner_counters;
};

/* Totals over all workers, read from any thread. */
struct worker_totals {
    uint64_t connections_open, connections_handed_off, requests_total, accept_failures;
    uint64_t tasks_accepted, tasks_in_flight, sync_in_flight;
    uint64_t callbacks_delivered, callbacks_failed, callbacks_retried, callbacks_put_off;
};

/* Opens cfg->workers listening sockets on host:port (the first decides
 * the port when cfg->port is 0). Returns NULL with a one-line reason in err. */
struct worker_set *worker_set_new(const struct config *cfg, struct store *store, char *err,
                                  size_t errlen);
int worker_set_port(const struct worker_set *s);
int worker_set_count(const struct worker_set *s);
uint64_t worker_set_started_ms(const struct worker_set *s);
struct store *worker_set_store(const struct worker_set *s);
/* Makes each worker's loop, server, runner, delivery. 0 or a negative errno. */
int worker_set_prepare(struct worker_set *s);
/* Hands one recovered task to a worker (round robin); before worker_set_run. */
void worker_set_resume(struct worker_set *s, const struct task_view *v);
/* Starts the threads. Returns 0 or a negative errno. */
int worker_set_run(struct worker_set *s);
/* Asks every worker to stop (from any thread but a worker's). */
void worker_set_stop(struct worker_set *s);
void worker_set_join(struct worker_set *s);
void worker_set_free(struct worker_set *s);
void worker_set_totals(const struct worker_set *s, struct worker_totals *out);

#endif
