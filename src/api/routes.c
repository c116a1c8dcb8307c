#include <http_parser.h>

#include "api.h"

const struct route api_routes[] = {
    {HTTP_GET, "/", api_root, 0},
    {HTTP_GET, "/health", api_health, 0},
    {HTTP_POST, "/api/exchange_async", api_exchange_async, ROUTE_JSON_BODY},
    {HTTP_POST, "/api/exchange_sync", api_exchange_sync, ROUTE_JSON_BODY},
    {HTTP_GET, "/api/tasks", api_task_list, 0},
    {HTTP_GET, "/api/tasks/*", api_task_get, 0},
    {HTTP_DELETE, "/api/tasks/*", api_task_cancel, 0},
    {HTTP_POST, "/api/tasks/*/retry", api_task_retry, 0},
    {0},
};
