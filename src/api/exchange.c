#include <stdio.h>
#include <stdlib.h>

#include "../core/payload.h"
#include "../core/runner.h"
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

void api_exchange_async(struct http_request *req, void *ctx)
{
    struct worker *w = ctx;
    struct exchange *ex = payload_or_reply(req);
    if (!ex)
        return;
    uint64_t id = runner_submit_async(w->runner, ex);
    char hex[17];
    runner_format_id(id, hex);
    char body[64];
    int n = snprintf(body, sizeof body, "{\"status\":\"ok\",\"task_id\":\"%s\"}", hex);
    http_reply(req->x, 200, body, (size_t)n, NULL);
}

void api_exchange_sync(struct http_request *req, void *ctx)
{
    struct worker *w = ctx;
    struct exchange *ex = payload_or_reply(req);
    if (!ex)
        return;
    runner_submit_sync(w->runner, ex, req->x);
}
