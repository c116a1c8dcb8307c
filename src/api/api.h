/*
 * api: the service's routes. Each handler runs on a worker's loop thread
 * with ctx = that struct worker, and answers through http_reply.
 *
 *   GET  /                    {"message": "Async Exchange Service is running"}
 *   GET  /health              liveness and totals over all workers
 *   POST /api/exchange_async  validate, start the task, 200 {"status":"ok","task_id":...}
 *   POST /api/exchange_sync   validate, compute bill after bill, answer with the breakdown
 *   GET/DELETE /api/tasks/{id}, POST /api/tasks/{id}/retry, GET /api/tasks   (tasks.c)
 */
#ifndef EXCHANGED_API_H
#define EXCHANGED_API_H

#include "../http/router.h"
#include "../http/server.h"

extern const struct route api_routes[];

void api_exchange_async(struct http_request *req, void *ctx);
void api_exchange_sync(struct http_request *req, void *ctx);
void api_root(struct http_request *req, void *ctx);
void api_health(struct http_request *req, void *ctx);
void api_task_get(struct http_request *req, void *ctx);
void api_task_list(struct http_request *req, void *ctx);
void api_task_cancel(struct http_request *req, void *ctx);
void api_task_retry(struct http_request *req, void *ctx);

#endif
