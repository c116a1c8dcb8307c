/*
 * The task API:
 *   GET    /api/tasks/{task_id}          one task (404 when unknown)
 *   GET    /api/tasks?state=&request_id=&limit=&cursor=   newest first
 *   DELETE /api/tasks/{task_id}          cancel (409 when already terminal)
 *   POST   /api/tasks/{task_id}/retry    deliver a failed task again (409 otherwise)
 * Every answer is built from what the store holds.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../buf.h"
#include "../core/payload.h"
#include "../core/runner.h"
#include "../jsonw.h"
#include "../store/store.h"
#include "../util.h"
#include "../worker.h"
#include "api.h"

struct pending {
    struct worker *w;
    struct http_exchange *x;
};

static struct pending *pending_new(struct worker *w, struct http_exchange *x)
{
    struct pending *p = xmalloc(sizeof *p);
    p->w = w;
    p->x = x;
    return p;
}

static void append_time(struct buf *b, uint64_t ms)
{
    if (!ms) {
        buf_append_str(b, "null");
        return;
    }
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char out[40];
    strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%S", &tm);
    buf_append_fmt(b, "\"%s.%03uZ\"", out, (unsigned)(ms % 1000));
}

static void append_nullable(struct buf *b, const char *json_or_null, int as_string)
{
    if (!json_or_null)
        buf_append_str(b, "null");
    else if (as_string)
        jsonw_string(b, json_or_null, strlen(json_or_null), 0);
    else
        buf_append_str(b, json_or_null);
}

static void append_view(struct buf *b, const struct task_view *v)
{
    char hex[17];
    runner_format_id(v->id, hex);
    buf_append_fmt(b, "{\"task_id\":\"%s\",\"request_id\":%s,\"state\":\"%s\",\"attempts\":%u,", hex,
                   v->request_id ? v->request_id : "null", task_state_name(v->state), v->attempts);
    buf_append_str(b, "\"created_at\":");
    append_time(b, v->created_ms);
    buf_append_str(b, ",\"updated_at\":");
    append_time(b, v->updated_ms);
    buf_append_str(b, ",\"next_attempt_at\":");
    append_time(b, v->state == STATE_RETRYING ? v->next_attempt_ms : 0);
    buf_append_str(b, ",\"last_error\":");
    append_nullable(b, v->last_error, 1);
    buf_append_str(b, ",\"breakdown\":");
    append_nullable(b, v->breakdown, 0);
    buf_append_str(b, ",\"history\":[");
    /* "queued@ms running@ms ..." -> [{"state":"queued","at":"..."}, ...] */
    const char *p = v->history ? v->history : "";
    int first = 1;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *at = strchr(p, '@');
        if (!*p || !at)
            break;
        char *end;
        uint64_t ms = strtoull(at + 1, &end, 10);
        buf_append_fmt(b, "%s{\"state\":\"%.*s\",\"at\":", first ? "" : ",", (int)(at - p), p);
        append_time(b, ms);
        buf_append(b, "}", 1);
        first = 0;
        p = end;
    }
    buf_append_str(b, "]}");
}

static void reply_view(struct http_exchange *x, int status, const struct task_view *v)
{
    struct buf b;
    buf_init(&b);
    append_view(&b, v);
    http_reply(x, status, b.data, b.len, NULL);
    buf_free(&b);
}

/* The task id in the path: 16 hex digits. */
static int parse_id(const char *s, size_t len, uint64_t *id)
{
    if (len == 0 || len > 16)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                 : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                                        : -1;
        if (d < 0)
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    *id = v;
    return 0;
}

static int id_or_reply(struct http_request *req, uint64_t *id)
{
    if (parse_id(req->param, req->param_len, id) == 0)
        return 0;
    http_reply_detail(req->x, 404, "Task not found", NULL);
    return -1;
}

static void on_view(void *arg, int status, const struct task_view *v)
{
    struct pending *p = arg;
    if (status == STORE_OK)
        reply_view(p->x, 200, v);
    else if (status == STORE_E_NOTFOUND)
        http_reply_detail(p->x, 404, "Task not found", NULL);
    else
        http_reply_detail(p->x, 503, "The task store cannot answer now", HTTP_RETRY_AFTER);
    free(p);
}

void api_task_get(struct http_request *req, void *ctx)
{
    struct worker *w = ctx;
    uint64_t id;
    if (id_or_reply(req, &id))
        return;
    store_get(w->store, w->inbox, id, on_view, pending_new(w, req->x));
}

static void on_cancelled(void *arg, int status, const struct task_view *v)
{
    struct pending *p = arg;
    if (status == STORE_E_STATE) {
        char detail[96];
        snprintf(detail, sizeof detail, "Task is already %s", task_state_name(v->state));
        http_reply_detail(p->x, 409, detail, NULL);
        free(p);
        return;
    }
    on_view(arg, status, v);
}

void api_task_cancel(struct http_request *req, void *ctx)
{
    struct worker *w = ctx;
    uint64_t id;
    if (id_or_reply(req, &id))
        return;
    store_cancel(w->store, w->inbox, id, on_cancelled, pending_new(w, req->x));
}

static void on_retried(void *arg, int status, const struct task_view *v)
{
    struct pending *p = arg;
    if (status == STORE_E_STATE) {
        char detail[96];
        snprintf(detail, sizeof detail, "Only a failed task can be retried; this one is %s",
                 task_state_name(v->state));
        http_reply_detail(p->x, 409, detail, NULL);
        free(p);
        return;
    }
    if (status == STORE_E_UNREADABLE) {
        http_reply_detail(p->x, 409,
                          "The stored request of this task cannot be read back; it stays failed",
                          NULL);
        free(p);
        return;
    }
    if (status == STORE_OK) {
        struct exchange *ex;
        if (!p->w->runner)
            ; /* stopping: the task is stored as retrying and resumes at the next start */
        else if (payload_from_stored(v->payload, v->request_id, &ex) == 0)
            runner_resume(p->w->runner, ex, v);
        else /* cannot happen: the store checked it before the change */
            log_error("event=retry_unreadable task=%016" PRIx64 ": left as it is", v->id);
    }
    on_view(arg, status, v);
}

void api_task_retry(struct http_request *req, void *ctx)
{
    struct worker *w = ctx;
    uint64_t id;
    if (id_or_reply(req, &id))
        return;
    store_retry(w->store, w->inbox, id, on_retried, pending_new(w, req->x));
}

static void on_list(void *arg, int status, const struct task_view *v, size_t n, uint64_t cursor)
{
    struct pending *p = arg;
    if (status != STORE_OK) {
        on_view(arg, status, NULL);
        return;
    }
    struct buf b;
    buf_init(&b);
    buf_append_str(&b, "{\"tasks\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_append(&b, ",", 1);
        append_view(&b, &v[i]);
    }
    buf_append_str(&b, "],\"next_cursor\":");
    if (cursor) {
        char hex[17];
        runner_format_id(cursor, hex);
        buf_append_fmt(&b, "\"%s\"}", hex);
    } else {
        buf_append_str(&b, "null}");
    }
    http_reply(p->x, 200, b.data, b.len, NULL);
    buf_free(&b);
    free(p);
}

/* Decodes %XX and '+' in a query value. */
static size_t url_decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < cap; i++) {
        char c = s[i];
        if (c == '+')
            c = ' ';
        else if (c == '%' && i + 2 < len) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            char *end;
            long v = strtol(hex, &end, 16);
            if (*end == '\0') {
                c = (char)v;
                i += 2;
            }
        }
        out[n++] = c;
    }
    out[n] = '\0';
    return n;
}

static void reply_422(struct http_exchange *x, const char *field, const char *type,
                      const char *msg)
{
    char body[300];
    int n = snprintf(body, sizeof body,
                     "{\"detail\":[{\"type\":\"%s\",\"loc\":[\"query\",\"%s\"],\"msg\":\"%s\"}]}",
                     type, field, msg);
    http_reply(x, 422, body, (size_t)n, NULL);
}

void api_task_list(struct http_request *req, void *ctx)
{
    struct worker *w = ctx;
    struct store_list_query q = {-1, NULL, 0, 50};
    struct buf rid_json; /* the request_id filter as JSON text; store_list copies it */
    buf_init(&rid_json);
    const char *p = req->query, *end = req->query ? req->query + req->query_len : NULL;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq) {
            size_t klen = (size_t)(eq - p);
            char val[600];
            size_t vlen = url_decode(eq + 1, (size_t)(stop - eq - 1), val, sizeof val);
            if (klen == 5 && !memcmp(p, "state", 5)) {
                if ((q.state = task_state_parse(val, vlen)) < 0) {
                    reply_422(req->x, "state", "enum",
                              "Input should be 'queued', 'running', 'delivering', "
                              "'retrying', 'succeeded', 'failed' or 'cancelled'");
                    buf_free(&rid_json);
                    return;
                }
            } else if (klen == 5 && !memcmp(p, "limit", 5)) {
                char *e;
                long v = strtol(val, &e, 10);
                if (!vlen || *e || v < 1 || v > 500) {
                    reply_422(req->x, "limit", "int_range",
                              "Input should be an integer from 1 to 500");
                    buf_free(&rid_json);
                    return;
                }
                q.limit = (int)v;
            } else if (klen == 6 && !memcmp(p, "cursor", 6)) {
                if (parse_id(val, vlen, &q.before_id)) {
                    reply_422(req->x, "cursor", "cursor", "Input should be a next_cursor value");
                    buf_free(&rid_json);
                    return;
                }
            } else if (klen == 10 && !memcmp(p, "request_id", 10)) {
                /* 42 matches the integer 42; "42" (quoted) or any other text a string */
                int digits = vlen > 0 && vlen < 19;
                for (size_t i = 0; i < vlen && digits; i++)
                    digits = (val[i] >= '0' && val[i] <= '9') || (i == 0 && val[i] == '-' && vlen > 1);
                buf_reset(&rid_json);
                if (digits || (vlen >= 2 && val[0] == '"' && val[vlen - 1] == '"'))
                    buf_append(&rid_json, val, vlen);
                else
                    jsonw_string(&rid_json, val, vlen, 1);
                q.request_id = rid_json.data;
            }
        }
        p = amp ? amp + 1 : end;
    }
    store_list(w->store, w->inbox, &q, on_list, pending_new(w, req->x));
    buf_free(&rid_json);
}
