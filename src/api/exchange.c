#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../buf.h"
#include "../core/payload.h"
#include "../core/runner.h"
#include "../store/store.h"
#include "../util.h"
#include "../worker.h"
#include "api.h"

/* Validates the body; on error answers the client and returns NULL. */
static struct exchange *payload_or_reply(struct http_request *req)
{
    struct exchange *ex;
    struct payload_error err;
    if (payload_parse(req->body, req->body_len, &ex, &err) == 0)
        return ex;
    http_reply(req->x, err.status, err.body, err.len, NULL);
    free(err.body);
    return NULL;
}

/* A submission waiting for its commit. */
struct submit {
    struct worker *w;
    struct http_exchange *x;
    struct exchange *ex;
};

static void reply_task_id(struct http_exchange *x, uint64_t id)
{
    char body[] = "{\"status\":\"ok\",\"task_id\":\"0123456789abcdef\"}";
    char hex[17];
    runner_format_id(id, hex);
    memcpy(body + sizeof "{\"status\":\"ok\",\"task_id\":\"" - 1, hex, 16);
    http_reply(x, 200, body, sizeof body - 1, NULL);
}

static void on_submitted(void *arg, int status, uint64_t id)
{
    struct submit *sb = arg;
    char hex[17], detail[160];
    switch (status) {
    case STORE_OK: /* durable: now the task may start, and the client hear of it */
        if (sb->w->runner) { /* else stopping: it starts at the next start */
            runner_start(sb->w->runner, sb->ex, id);
            sb->ex = NULL;
        }
        reply_task_id(sb->x, id);
        break;
    case STORE_DUPLICATE: /* the same request is already active: its task */
        reply_task_id(sb->x, id);
        break;
    case STORE_E_CONFLICT:
        runner_format_id(id, hex);
        snprintf(detail, sizeof detail,
                 "request_id is already active as task %s with a different payload", hex);
        http_reply_detail(sb->x, 409, detail, NULL);
        break;
    case STORE_E_FULL:
        http_reply_detail(sb->x, 503, "Too many tasks in progress; retry later", HTTP_RETRY_AFTER);
        break;
    default:
        http_reply_detail(sb->x, 503, "The task store cannot take the request now; retry later",
                          HTTP_RETRY_AFTER);
        break;
    }
    free(sb->ex);
    free(sb);
}

void api_exchange_async(struct http_request *req, void *ctx)
{
    struct worker *w = ctx;
    struct exchange *ex = payload_or_reply(req);
    if (!ex)
        return;
    struct submit *sb = xmalloc(sizeof *sb);
    sb->w = w;
    sb->x = req->x;
    sb->ex = ex;
    char on[256]; /* the store copies the stored form: it can stay on the stack */
    struct buf payload;
    buf_init_on(&payload, on, sizeof on);
    payload_stored_append(&payload, ex);
    struct store_submit t = {runner_new_id(w->runner), ex->request_id, payload.data};
    store_submit(w->store, w->inbox, &t, on_submitted, sb);
    buf_free(&payload);
}

void api_exchange_sync(struct http_request *req, void *ctx)
{
    struct worker *w = ctx;
    struct exchange *ex = payload_or_reply(req);
    if (!ex)
        return;
    if (!w->runner) {
        free(ex);
        http_reply_detail(req->x, 503, "Service shutting down", HTTP_RETRY_AFTER);
        return;
    }
    runner_submit_sync(w->runner, ex, req->x);
}
