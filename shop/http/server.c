/*
 * server.c (shop http): the libmicrohttpd daemon, request collection,
 * routing and metrics.
 *
 * libmicrohttpd runs a thread pool; each request is collected (body up to
 * HTTP_MAX_BODY; beyond it the rest is read and dropped, and the answer is
 * 413), then matched against the route tables by method and path. A path
 * that exists under other methods is 405 with Allow; none is 404. Every
 * answer is counted in http_requests_total{route,method,status} and timed in
 * http_request_duration_seconds{route}.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/http.h"

struct http_server {
    struct MHD_Daemon *daemon;
    atomic_bool stopping; /* ends live event streams */
    http_feeds *feeds;    /* live feeds parked with nothing to send */
    shop *shop;
    td_store *store;
    td_metric *requests, *duration;
    td_metrics *metrics;
};

typedef struct pending {
    char *body;
    size_t len, cap;
    bool too_big;
    td_time started;
} pending;

td_metrics *http_server_metrics(http_server *server)
{
    return server->metrics;
}

/* Matches path against pattern ("/orders/{}/cancel"), capturing {} parts. */
static bool match(const char *pattern, const char *path, const char **params, char *storage,
                  size_t storage_size)
{
    size_t used = 0;
    int n = 0;
    while (*pattern && *path) {
        if (pattern[0] == '{' && pattern[1] == '}') {
            size_t len = strcspn(path, "/");
            if (len == 0 || used + len + 1 > storage_size || n == HTTP_MAX_PARAMS)
                return false;
            memcpy(storage + used, path, len);
            storage[used + len] = '\0';
            params[n++] = storage + used;
            used += len + 1;
            path += len;
            pattern += 2;
        } else if (*pattern++ != *path++) {
            return false;
        }
    }
    return *pattern == '\0' && *path == '\0';
}

static const http_route *find_route(http_request *req, char *storage, size_t size, char *allow,
                                    size_t allow_size, const char **name)
{
    const http_route *tables[] = {http_shop_routes, http_ops_routes};
    allow[0] = '\0';
    for (size_t t = 0; t < 2; t++)
        for (const http_route *r = tables[t]; r->method; r++) {
            const char *params[HTTP_MAX_PARAMS] = {0};
            if (!match(r->pattern, req->path, params, storage, size))
                continue;
            *name = r->name;
            if (strcmp(r->method, req->method) == 0) {
                memcpy(req->params, params, sizeof params);
                return r;
            }
            if (strlen(allow) + strlen(r->method) + 3 < allow_size)
                snprintf(allow + strlen(allow), allow_size - strlen(allow), "%s%s",
                         allow[0] ? ", " : "", r->method);
        }
    return NULL;
}

static void dispatch(http_request *req, pending *p, http_response *res, const char **route)
{
    char storage[1024], allow[64];
    *route = "unmatched";
    if (p->too_big) {
        http_problem(res, 413, "too_large", NULL, "request bodies are limited to %d bytes",
                     HTTP_MAX_BODY);
        return;
    }
    const http_route *r = find_route(req, storage, sizeof storage, allow, sizeof allow, route);
    if (r)
        http_idempotent(req, res, r->handler);
    else if (allow[0]) {
        http_problem(res, 405, "method_not_allowed", NULL, "%s is not allowed here; use %s",
                     req->method, allow);
        snprintf(res->allow, sizeof res->allow, "%s", allow);
    } else
        http_problem(res, 404, "not_found", NULL, "no route %s %s", req->method, req->path);
}

static enum MHD_Result send_response(struct MHD_Connection *c, http_response *res)
{
    if (res->status == 0 && res->text == NULL) /* a handler that said nothing */
        http_problem(res, 500, "internal_error", NULL, "the handler gave no answer");
    char *text = res->text;
    if (text == NULL && res->json)
        text = json_dumps(res->json, JSON_COMPACT);
    if (text == NULL)
        text = strdup("");
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            res->content_type ? res->content_type : "application/json");
    if (res->allow[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, res->allow);
    if (res->location[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, res->location);
    enum MHD_Result ok = MHD_queue_response(c, res->status, r);
    MHD_destroy_response(r);
    return ok;
}

static void count(http_server *s, const char *route, const char *method, unsigned status,
                  td_time started)
{
    char code[8];
    snprintf(code, sizeof code, "%u", status);
    const char *labels[3] = {route, method, code};
    td_metric_add(s->requests, labels, 1);
    td_metric_observe(s->duration, labels, (double)(td_time_now() - started) / 1e6);
}

static bool collect(pending *p, const char *data, size_t size)
{
    if (p->too_big || p->len + size > HTTP_MAX_BODY) {
        p->too_big = true;
        return true; /* read and drop the rest */
    }
    if (p->len + size + 1 > p->cap) {
        size_t cap = (p->len + size + 1) * 2;
        char *grown = realloc(p->body, cap);
        if (grown == NULL)
            return false;
        p->body = grown;
        p->cap = cap;
    }
    memcpy(p->body + p->len, data, size);
    p->len += size;
    p->body[p->len] = '\0';
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **state)
{
    http_server *s = cls;
    (void)version;
    if (*state == NULL) {
        pending *p = calloc(1, sizeof *p);
        if (p == NULL)
            return MHD_NO;
        p->started = td_time_now();
        *state = p;
        return MHD_YES;
    }
    pending *p = *state;
    if (*upload_size > 0) {
        bool ok = collect(p, upload_data, *upload_size);
        *upload_size = 0;
        return ok ? MHD_YES : MHD_NO;
    }
    http_request req = {s, s->shop, s->store, c, method, url, p->body, p->len, {0}};
    http_response res = {0};
    const char *route = "unmatched";
    enum MHD_Result ok;
    struct MHD_Response *stream = NULL;
    if (strcmp(url, "/events/stream") == 0 && strcmp(method, "GET") == 0) {
        route = "/events/stream";
        http_event_stream(&req, &res, &s->stopping, s->feeds, &stream);
    } else {
        dispatch(&req, p, &res, &route);
    }
    if (stream) {
        ok = MHD_queue_response(c, 200, stream);
        MHD_destroy_response(stream);
    } else {
        ok = send_response(c, &res);
    }
    count(s, route, method, res.status, p->started);
    json_decref(res.json);
    return ok;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state,
                         enum MHD_RequestTerminationCode code)
{
    pending *p = *state;
    (void)cls;
    (void)c;
    (void)code;
    if (p) {
        free(p->body);
        free(p);
    }
    *state = NULL;
}

int http_server_start(http_server **out, shop *sh, td_store *store, const http_options *opts)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opts->port)};
    if (inet_pton(AF_INET, opts->host ? opts->host : "127.0.0.1", &addr.sin_addr) != 1)
        return TD_EINVAL;
    http_server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return TD_ENOMEM;
    s->shop = sh;
    s->store = store;
    s->metrics = opts->metrics;
    int error = td_metrics_counter(&s->requests, s->metrics, "http_requests_total",
                                   "HTTP requests answered, by route, method and status.",
                                   "route,method,status");
    if (error == 0)
        error =
            td_metrics_histogram(&s->duration, s->metrics, "http_request_duration_seconds",
                                 "Time to answer an HTTP request.", "route,method,status", NULL, 0);
    if (error == 0)
        error = http_feeds_start(&s->feeds, store);
    if (error == 0)
        s->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                                         MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME,
                                     0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
                                     (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
                                     (unsigned)(opts->threads ? opts->threads : 4),
                                     MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
    if (error < 0 || s->daemon == NULL) {
        http_feeds_free(s->feeds);
        free(s);
        return error < 0 ? error : TD_EIO;
    }
    *out = s;
    return 0;
}

int http_server_port(const http_server *s)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : -1;
}

void http_server_stop(http_server *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stopping, true); /* live event streams end */
    http_feeds_stop(s->feeds);        /* ... the parked ones too, once resumed */
    /* No MHD_quiesce_daemon: on an epoll daemon with its own threads it
     * races with the workers removing the same listening socket, and
     * libmicrohttpd 0.9.75 then aborts the process ("Failed to remove listen
     * FD from epoll set"; seen twice in about 60 benchmark stops). Stopping
     * closes the listening socket as well, and waits for the threads that
     * are answering requests. */
    MHD_stop_daemon(s->daemon);
    http_feeds_free(s->feeds);
    free(s);
}
