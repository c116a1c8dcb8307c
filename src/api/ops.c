#include <inttypes.h>
#include <stdio.h>

#include "../config.h"
#include "../output.h"
#include "../store/store.h"
#include "../util.h"
#include "../worker.h"
#include "api.h"

void api_root(struct http_request *req, void *ctx)
{
    (void)ctx;
    static const char body[] = "{\"message\":\"Async Exchange Service is running\"}";
    http_reply(req->x, 200, body, sizeof body - 1, NULL);
}

/* 200 with "status":"ok"; 503 with "status":"failing" while the store
 * refuses new tasks (its file moved, commits or submits' writes failing:
 * see STORE_FAILING_HOLD_MS), so that a load balancer's or an orchestrator's
 * health check takes the service out of rotation. */
void api_health(struct http_request *req, void *ctx)
{
    struct worker *w = ctx;
    struct worker_totals t;
    worker_set_totals(w->set, &t);
    struct store_stats st;
    store_stats_read(worker_set_store(w->set), &st);
    char body[1152]; /* 1,038 bytes with every number at its widest */
    int n = snprintf(body, sizeof body,
                     "{\"status\":\"%s\",\"version\":\"" EXCHANGED_VERSION "\","
                     "\"uptime_s\":%" PRIu64 ",\"workers\":%d,\"connections_open\":%" PRIu64
                     ",\"connections_handed_off\":%" PRIu64 ",\"accept_failures\":%" PRIu64
                     ",\"requests_total\":%" PRIu64 ",\"tasks_accepted\":%" PRIu64
                     ",\"tasks_in_flight\":%" PRIu64 ",\"sync_in_flight\":%" PRIu64
                     ",\"callbacks_delivered\":%" PRIu64 ",\"callbacks_failed\":%" PRIu64
                     ",\"callbacks_retried\":%" PRIu64 ",\"callbacks_put_off\":%" PRIu64
                     ",\"output_dropped\":%" PRIu64 ",\"output_waiting_bytes\":%" PRIu64
                     ",\"store\":{\"active_tasks\":%" PRIu64 ",\"commits\":%" PRIu64
                     ",\"commit_failures\":%" PRIu64 ",\"failing_commits\":%" PRIu64
                     ",\"failing_submits\":%" PRIu64
                     ",\"queue\":%" PRIu64 ",\"purged\":%" PRIu64 ",\"held_outcomes\":%" PRIu64
                     ",\"unwritten_updates\":%" PRIu64
                     ",\"wal_frames\":%" PRIu64 ",\"checkpoint_failures\":%" PRIu64
                     ",\"cache_bytes\":%" PRIu64 ",\"file_moved\":%s}}",
                     st.failing ? "failing" : "ok",
                     (util_now_ms() - worker_set_started_ms(w->set)) / 1000,
                     worker_set_count(w->set), t.connections_open, t.connections_handed_off,
                     t.accept_failures,
                     t.requests_total, t.tasks_accepted, t.tasks_in_flight, t.sync_in_flight,
                     t.callbacks_delivered, t.callbacks_failed, t.callbacks_retried,
                     t.callbacks_put_off,
                     output_dropped(), output_waiting(), st.active, st.commits,
                     st.commit_failures, st.failing_commits, st.failing_submits, st.queue_len,
                     st.purged, st.held, st.unwritten, st.wal_frames, st.checkpoint_failures, st.cache_bytes,
                     st.file_moved ? "true" : "false");
    if (n < 0 || (size_t)n >= sizeof body) {
        http_reply_detail(req->x, 500, "Internal Server Error", NULL);
        return;
    }
    http_reply(req->x, st.failing ? 503 : 200, body, (size_t)n, NULL);
}
