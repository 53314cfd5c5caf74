/*
 * server.c (shop http): the libmicrohttpd daemon, request collection,
 * routing and metrics.
 *
 * libmicrohttpd runs a thread pool; each request is collected (body up to
 * HTTP_MAX_BODY; beyond it the rest is read and dropped, and the answer is
 * 413), then:
 *
 *   Host not served ──▶ 421 (a DNS-rebinding page cannot reach the shop)
 *   OPTIONS from an allowed origin ──▶ 204 with the CORS preflight headers
 *   route by method and path ──▶ none: 404; other methods only: 405 + Allow
 *   access (access.c) ──▶ 401 / 403
 *   POST /orders while the order's handlers are behind ──▶ 503 overloaded
 *   the handler, under the Idempotency-Key rules (idempotency.c), on the
 *     connection's thread; with --command-workers, commands (POST, PUT,
 *     DELETE) on a worker (workers.c), the connection suspended meanwhile,
 *     or 503 overloaded at once when every worker is busy
 *
 * Stopping: new requests get 503 shutting_down, requests in progress are
 * answered (up to STOP_WAIT_US), then libmicrohttpd stops.
 *
 * Every answer is counted in http_requests_total{route,method,status} and
 * timed in http_request_duration_seconds{route}.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "http/http.h"

#define HOSTS_MAX    (HTTP_MAX_HOSTS + 5)
#define STOP_WAIT_US (10 * 1000000LL) /* for requests in progress to be answered */

struct http_server {
    struct MHD_Daemon *daemon;
    atomic_bool stopping; /* ends live event streams */
    http_feeds *feeds;    /* live feeds parked with nothing to send */
    shop *shop;
    td_store *store;
    td_metric *requests, *duration, *limited, *feeds_open, *cut, *waiting, *waited;
    long long cut_counted; /* connections cut, as far as the metric has them */
    td_metrics *metrics;
    shop_spans *spans;
    td_relay *relay;       /* borrowed, or NULL */
    td_consumer *consumer; /* borrowed, or NULL */
    http_throttle *throttles[HTTP_LIMITS];
    http_deadlines *deadlines;
    http_workers *workers;
    atomic_int answering;  /* requests between their head and their answer sent */
    td_time admit_backlog; /* new work is refused past this backlog; 0: never */
    bool open_access, any_host;
    td_time idempotency_ttl;
    char hosts[HOSTS_MAX][256]; /* names the Host header may give */
    size_t host_count;
    const char *origins[HTTP_MAX_ORIGINS]; /* borrowed from the options */
};

bool http_server_open_access(const http_server *server)
{
    return server->open_access;
}

td_time http_server_idempotency_ttl(const http_server *server)
{
    return server->idempotency_ttl;
}

http_throttle *http_server_throttle(http_server *server, http_limit limit)
{
    return server->throttles[limit];
}

void http_server_count_limited(http_server *server, http_limit limit)
{
    static const char *const names[HTTP_LIMITS] = {"auth_client", "auth_account", "client",
                                                   "credential"};
    const char *labels[1] = {names[limit]};
    td_metric_add(server->limited, labels, 1);
}

typedef struct command command;

typedef struct pending {
    char *body;
    size_t len, cap;
    bool too_big;
    bool answered;    /* refused before its body came: the rest is dropped */
    bool streaming;   /* a live feed: not counted as answering */
    command *command; /* running on a worker; its answer is sent on resuming */
    td_time started;
} pending;

/* A command handed to a worker, with what its handler reads. */
struct command {
    http_server *server;
    const http_route *route;
    const char *route_name;
    http_request req;
    http_response res;
    char storage[1024]; /* the path's captured segments */
};

td_metrics *http_server_metrics(http_server *server)
{
    return server->metrics;
}

shop_spans *http_server_spans(http_server *server)
{
    return server->spans;
}

td_relay *http_server_relay(http_server *server)
{
    return server->relay;
}

td_consumer *http_server_consumer(http_server *server)
{
    return server->consumer;
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
    static const http_route *const tables[] = {
        http_shop_routes, http_ops_routes,   http_dead_letter_routes, http_status_routes,
        http_saga_routes, http_story_routes, http_console_routes};
    allow[0] = '\0';
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (const http_route *r = tables[t]; r->method; r++) {
            const char *params[HTTP_MAX_PARAMS] = {0};
            if (!match(r->pattern, req->path, params, storage, size))
                continue;
            *name = r->name;
            if (strcmp(r->method, req->method) == 0) {
                memcpy(req->params, params, sizeof params);
                return r;
            }
            size_t used = strlen(allow);
            const char *also = strcmp(r->method, "GET") == 0 ? ", HEAD" : "";
            if (used + strlen(r->method) + strlen(also) + 3 < allow_size) {
                memcpy(allow + used, ", ", used ? 2 : 0);
                used += used ? 2 : 0;
                strcpy(allow + used, r->method);
                strcat(allow + used, also);
            }
        }
    return NULL;
}

static bool is_command(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
}

static void run_command(void *arg)
{
    command *cmd = arg;
    http_idempotent(&cmd->req, &cmd->res, cmd->route->handler);
    MHD_resume_connection(cmd->req.connection); /* the answer goes out on its thread */
}

/* 503 overloaded, said at once, before any work; why: what is full. */
static int overloaded(http_response *res, const char *why)
{
    res->retry_after = 1;
    return http_problem(res, 503, "overloaded", NULL, "%s; try again in a second", why);
}

/* A backlog of fewer events is a few orders on a slow machine, not a
 * queue: one client placing orders one at a time is never refused. */
#define HTTP_BACKLOG_MIN_EVENTS 64

/* The handlers that finish orders are this close behind, or closer, before
 * a command worker starts a new order (the gate of workers.c): new orders
 * yield the writer to the orders in progress instead of running ahead of
 * them. */
#define HTTP_PACE_BACKLOG_US (20 * 1000)
#define HTTP_PACE_MIN_EVENTS 16

static bool may_start_new_work(void *arg)
{
    td_backlog b = shop_backlog(arg);
    return b.age <= HTTP_PACE_BACKLOG_US || b.events < HTTP_PACE_MIN_EVENTS;
}

/* Whether new work must wait: the work begun is too far behind. Accepting
 * more would only make every order in progress later (the handlers share
 * one writer with the commands), so past the bound new orders are refused
 * at once and what was accepted keeps its pace. */
static bool behind(const http_request *req, const http_route *r)
{
    td_time bound = req->server->admit_backlog;
    if (r == NULL || !(r->flags & HTTP_NEW_WORK) || bound == 0)
        return false;
    td_backlog b = shop_backlog(req->shop);
    return b.age > bound && b.events >= HTTP_BACKLOG_MIN_EVENTS;
}

/* Hands an admitted command to a worker, the connection suspended; or
 * answers 503 overloaded at once. Returns true when it went. */
static bool hand_over(http_request *req, pending *p, http_response *res, const char *route,
                      bool bounded)
{
    char allow[64];
    const char *name = route;
    command *cmd = calloc(1, sizeof *cmd);
    if (cmd == NULL) {
        overloaded(res, "out of memory");
        return false;
    }
    cmd->server = req->server;
    cmd->req = *req;
    cmd->route =
        find_route(&cmd->req, cmd->storage, sizeof cmd->storage, allow, sizeof allow, &name);
    cmd->route_name = name;
    MHD_suspend_connection(req->connection);
    p->command = cmd;
    int error = http_workers_submit(req->server->workers, run_command, cmd, bounded);
    if (error == 0)
        return true;
    MHD_resume_connection(req->connection);
    p->command = NULL;
    free(cmd);
    const char *why = http_workers_full(req->server->workers, bounded);
    overloaded(res, error == TD_ENOMEM ? "out of memory"
                    : why              ? why
                                       : "every command worker is busy");
    return false;
}

/* A route of a context this process does not run (`shop serve
 * --services`): 421, naming the service that serves it. */
static void misdirected(const http_request *req, http_response *res, unsigned context)
{
    char runs[SHOP_CTX_LIST_MAX];
    const char *owner = shop_context_name(context);
    shop_contexts_format(shop_services(req->shop), ',', runs, sizeof runs);
    http_problem(res, 421, "wrong_service", NULL,
                 "%s %s is served by the %s service; this process runs %s", req->method, req->path,
                 owner ? owner : "another", runs);
    if (owner)
        json_object_set_new(res->json, "service", json_string(owner));
}

/* Routes the request: answers into res, or hands a command to a worker
 * (returns true: the answer comes when the connection is resumed). */
static bool dispatch(http_request *req, pending *p, http_response *res, const char **route)
{
    char storage[1024], allow[64];
    *route = "unmatched";
    if (p->too_big) {
        http_problem(res, 413, "too_large", NULL, "request bodies are limited to %d bytes",
                     HTTP_MAX_BODY);
        return false;
    }
    const http_route *r = find_route(req, storage, sizeof storage, allow, sizeof allow, route);
    bool on_worker = r && is_command(req->method) && req->server->workers;
    bool bounded = r && (r->flags & HTTP_NEW_WORK);
    const char *full = on_worker ? http_workers_full(req->server->workers, bounded) : NULL;
    if (r && r->context && req->shop && !shop_runs(req->shop, r->context))
        misdirected(req, res, r->context);
    else if (full)
        overloaded(res, full);
    else if (behind(req, r))
        overloaded(res, "the shop is catching up with the orders it has taken");
    else if (r && http_admit(req, res, r->roles) == 0) {
        if (on_worker)
            return hand_over(req, p, res, *route, bounded);
        http_idempotent(req, res, r->handler);
    } else if (r)
        ; /* refused: the problem is set */
    else if (allow[0]) {
        http_problem(res, 405, "method_not_allowed", NULL, "%s is not allowed here; use %s",
                     req->method, allow);
        snprintf(res->allow, sizeof res->allow, "%s", allow);
    } else
        http_problem(res, 404, "not_found", NULL, "no route %s %s", req->method, req->path);
    return false;
}

/* The origin of a cross-origin request, if it is one the shop allows. */
static const char *allowed_origin(const http_server *s, struct MHD_Connection *c)
{
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    for (size_t i = 0; origin && i < HTTP_MAX_ORIGINS && s->origins[i]; i++)
        if (strcmp(s->origins[i], origin) == 0)
            return origin;
    return NULL;
}

/* The console's pages: its own files only, no inline script or style, no
 * framing, no forms sent anywhere, no referrer. */
#define CONSOLE_CSP                                                                                \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "                 \
    "frame-ancestors 'none'"

static void add_page_headers(struct MHD_Response *r)
{
    MHD_add_response_header(r, "Content-Security-Policy", CONSOLE_CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
}

/* Headers every answer may carry. */
static void add_headers(const http_server *s, struct MHD_Connection *c, struct MHD_Response *r,
                        const http_response *res)
{
    char seconds[16];
    const char *origin = res->page ? NULL : allowed_origin(s, c);
    if (res->page)
        add_page_headers(r);
    if (res->allow[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, res->allow);
    if (res->location[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, res->location);
    if (res->challenge)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, res->challenge);
    if (res->retry_after) {
        snprintf(seconds, sizeof seconds, "%u", res->retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
    }
    if (origin) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Origin");
        MHD_add_response_header(r, "Access-Control-Expose-Headers",
                                "Location, Retry-After, WWW-Authenticate");
    }
    if (origin && res->status == 204 && res->allow[0]) { /* a preflight */
        MHD_add_response_header(r, "Access-Control-Allow-Methods", res->allow);
        MHD_add_response_header(r, "Access-Control-Allow-Headers",
                                "Authorization, Content-Type, Idempotency-Key, Last-Event-ID");
        MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    }
}

static enum MHD_Result send_response(const http_server *s, struct MHD_Connection *c,
                                     http_response *res)
{
    if (res->status == 0 && res->text == NULL) /* a handler that said nothing */
        http_problem(res, 500, "internal_error", NULL, "the handler gave no answer");
    char *text = res->text;
    res->text = NULL;
    if (text == NULL && res->json && res->status != 204)
        text = json_dumps(res->json, JSON_COMPACT);
    if (text == NULL)
        text = strdup("");
    struct MHD_Response *r =
        text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE) : NULL;
    if (r == NULL) {
        free(text);
        return MHD_NO;
    }
    if (res->status != 204)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                res->content_type ? res->content_type : "application/json");
    add_headers(s, c, r, res);
    if (res->close)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(c, res->status, r);
    MHD_destroy_response(r);
    return ok;
}

/* ---- before routing: the Host header, CORS preflights ------------------------------ */

/* Whether host (a Host header: a name or [v6], and maybe :port) names this
 * server. The name is what matters against DNS rebinding (the attacker's
 * name, resolved to us); the port may differ behind a proxy. */
static bool host_served(const http_server *s, const char *host)
{
    char name[256];
    const char *end = host[0] == '[' ? strchr(host, ']') : strrchr(host, ':');
    size_t len = end ? (size_t)(end - host) + (host[0] == '[') : strlen(host);
    if (s->any_host)
        return true;
    if (len == 0 || len >= sizeof name)
        return false;
    memcpy(name, host, len);
    name[len] = '\0';
    for (size_t i = 0; i < s->host_count; i++)
        if (strcasecmp(s->hosts[i], name) == 0)
            return true;
    return false;
}

/* Answers what needs no route: a Host the shop does not serve, and CORS
 * preflights. Returns true when res holds the answer. */
static bool before_routing(http_server *s, http_request *req, http_response *res)
{
    const char *host =
        MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (host && !host_served(s, host)) {
        http_problem(res, 421, "misdirected_request", NULL,
                     "this server does not serve the host '%.100s' (see --allowed-host)", host);
        return true;
    }
    if (strcmp(req->method, "OPTIONS") == 0 && allowed_origin(s, req->connection)) {
        res->status = 204;
        snprintf(res->allow, sizeof res->allow, "GET, POST, PUT, DELETE");
        return true;
    }
    return false;
}

static void client_address(struct MHD_Connection *c, char *out, size_t size)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = info ? info->client_addr : NULL;
    snprintf(out, size, "unknown");
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)size);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)size);
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

/* Counts Content-Length headers and whether they disagree. */
typedef struct lengths {
    const char *first;
    bool conflict;
} lengths;

static enum MHD_Result note_length(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    lengths *l = cls;
    (void)kind;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) != 0)
        return MHD_YES;
    if (l->first && strcmp(l->first, value ? value : "") != 0)
        l->conflict = true;
    if (l->first == NULL)
        l->first = value ? value : "";
    return MHD_YES;
}

/* Two Content-Length headers that disagree: how long is the body? Servers
 * and proxies that pick differently let one request hide another inside
 * it (request smuggling), so such a request is refused and the connection
 * closed. */
static bool conflicting_lengths(struct MHD_Connection *c)
{
    lengths l = {NULL, false};
    (void)MHD_get_connection_values(c, MHD_HEADER_KIND, note_length, &l);
    return l.conflict;
}

/* A body declared larger than the shop takes: refused before it is sent
 * (a client that sent Expect: 100-continue never sends it). */
static bool declared_too_big(struct MHD_Connection *c)
{
    const char *length =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    char *end = NULL;
    unsigned long long n = length ? strtoull(length, &end, 10) : 0;
    return length && end != length && n > HTTP_MAX_BODY;
}

/* The head is in: the body's deadline, or at once a refusal of its size. */
static enum MHD_Result on_head(http_server *s, struct MHD_Connection *c, const char *method,
                               void **state)
{
    pending *p = calloc(1, sizeof *p);
    if (p == NULL)
        return MHD_NO;
    p->started = td_time_now();
    *state = p;
    atomic_fetch_add(&s->answering, 1);
    http_deadlines_set(s->deadlines, c, HTTP_PHASE_BODY);
    bool conflict = conflicting_lengths(c);
    if (!conflict && !declared_too_big(c))
        return MHD_YES;
    http_response res = {0};
    if (conflict)
        http_problem(&res, 400, "conflicting_content_length", NULL,
                     "the request has Content-Length headers that disagree");
    else
        http_problem(&res, 413, "too_large", NULL, "request bodies are limited to %d bytes",
                     HTTP_MAX_BODY);
    res.close = true; /* the body, whatever its length, is not read */
    p->answered = true;
    http_deadlines_set(s->deadlines, c, HTTP_PHASE_ANSWERING);
    enum MHD_Result ok = send_response(s, c, &res);
    count(s, "unmatched", method, res.status, p->started);
    json_decref(res.json);
    return ok;
}

/* Sends what a worker answered for the command of p. */
static enum MHD_Result answer_command(http_server *s, struct MHD_Connection *c, const char *method,
                                      pending *p)
{
    command *cmd = p->command;
    p->command = NULL;
    enum MHD_Result ok = send_response(s, c, &cmd->res);
    count(s, cmd->route_name, method, cmd->res.status, p->started);
    json_decref(cmd->res.json);
    free(cmd);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **state)
{
    http_server *s = cls;
    (void)version;
    if (*state == NULL)
        return on_head(s, c, method, state);
    pending *p = *state;
    if (*upload_size > 0) {
        bool ok = p->answered || collect(p, upload_data, *upload_size);
        *upload_size = 0;
        return ok ? MHD_YES : MHD_NO;
    }
    if (p->answered)
        return MHD_YES;
    if (p->command) /* resumed: the worker's answer */
        return answer_command(s, c, method, p);
    /* HEAD is GET without the body, which libmicrohttpd leaves out */
    const char *routing = strcmp(method, "HEAD") == 0 ? "GET" : method;
    http_request req = {s, s->shop, s->store, c, routing, url, p->body, p->len, {0}, {0}, ""};
    http_response res = {0};
    const char *route = "unmatched";
    enum MHD_Result ok;
    struct MHD_Response *stream = NULL;
    client_address(c, req.client, sizeof req.client);
    if (atomic_load(&s->stopping)) {
        res.close = true;
        res.retry_after = 1;
        http_problem(&res, 503, "shutting_down", NULL, "the shop is stopping");
    } else if (http_throttled(&req, &res, HTTP_LIMIT_CLIENT, req.client) < 0) {
        route = "unmatched"; /* too many from this address: 429 */
    } else if (before_routing(s, &req, &res)) {
        route = "unmatched";
    } else if (strcmp(url, "/events/stream") == 0 && strcmp(routing, "GET") == 0) {
        route = "/events/stream";
        if (http_admit(&req, &res, HTTP_CUSTOMER_ADMIN) == 0 && strcmp(method, "HEAD") == 0) {
            res.status = 200; /* what a GET would start with, without the stream */
            res.content_type = "text/event-stream";
            res.text = strdup("");
        } else if (res.status == 0) {
            http_event_stream(&req, &res, &s->stopping, s->feeds, &stream);
        }
    } else if (dispatch(&req, p, &res, &route)) {
        http_deadlines_set(s->deadlines, c, HTTP_PHASE_ANSWERING);
        return MHD_YES; /* a worker runs it; resumed with the answer */
    }
    http_deadlines_set(s->deadlines, c, HTTP_PHASE_ANSWERING);
    if (stream && !p->streaming) { /* a feed may last hours: not a request to wait for */
        p->streaming = true;
        atomic_fetch_sub(&s->answering, 1);
    }
    if (stream) {
        add_headers(s, c, stream, &res);
        ok = MHD_queue_response(c, 200, stream);
        MHD_destroy_response(stream);
    } else {
        ok = send_response(s, c, &res);
    }
    count(s, route, method, res.status, p->started);
    json_decref(res.json);
    return ok;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state,
                         enum MHD_RequestTerminationCode code)
{
    http_server *s = cls;
    pending *p = *state;
    (void)code;
    http_deadlines_set(s->deadlines, c, HTTP_PHASE_NEXT_HEAD);
    if (p) {
        if (!p->streaming)
            atomic_fetch_sub(&s->answering, 1);
        if (p->command) { /* its connection closed while a worker ran it: cannot be */
            json_decref(p->command->res.json);
            free(p->command);
        }
        free(p->body);
        free(p);
    }
    *state = NULL;
}

/* The names the Host header may give: the loopback names, the listening
 * address, the machine's name when listening on every address, and the
 * operator's own. */
static void note_hosts(http_server *s, const http_options *opts)
{
    const char *defaults[] = {"localhost", "127.0.0.1", "[::1]",
                              opts->host ? opts->host : "127.0.0.1"};
    for (size_t i = 0; i < 4; i++)
        snprintf(s->hosts[s->host_count++], sizeof s->hosts[0], "%s", defaults[i]);
    if (opts->host && strcmp(opts->host, "0.0.0.0") == 0 &&
        gethostname(s->hosts[s->host_count], sizeof s->hosts[0]) == 0)
        s->host_count++;
    for (size_t i = 0; i < HTTP_MAX_HOSTS && opts->hosts[i]; i++) {
        s->any_host = s->any_host || strcmp(opts->hosts[i], "*") == 0;
        snprintf(s->hosts[s->host_count++], sizeof s->hosts[0], "%s", opts->hosts[i]);
    }
    memcpy(s->origins, opts->origins, sizeof s->origins);
}

static int make_throttles(http_server *s, const http_options *opts)
{
    double per_minute = opts->auth_per_minute > 0 ? opts->auth_per_minute : 60;
    double client = opts->client_per_second > 0 ? opts->client_per_second : 2000;
    double credential = opts->credential_per_second > 0 ? opts->credential_per_second : 1000;
    int error = http_throttle_new(&s->throttles[HTTP_LIMIT_AUTH_CLIENT], per_minute, per_minute);
    if (error == 0) /* one account: a few tries a minute */
        error = http_throttle_new(&s->throttles[HTTP_LIMIT_AUTH_ACCOUNT], 6, 10);
    if (error == 0)
        error = http_throttle_new(&s->throttles[HTTP_LIMIT_CLIENT], client * 60, client * 2);
    if (error == 0)
        error = http_throttle_new(&s->throttles[HTTP_LIMIT_CREDENTIAL], credential * 60,
                                  credential * 2);
    return error;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **context,
                          enum MHD_ConnectionNotificationCode code)
{
    http_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        http_deadlines_opened(s->deadlines, c, context);
    else
        http_deadlines_closed(s->deadlines, context);
}

/* The gauges read at each scrape. */
static void collect_gauges(td_metrics *metrics, void *payload)
{
    http_server *s = payload;
    (void)metrics;
    long long cut = http_deadlines_cut(s->deadlines);
    unsigned waiting;
    double waited;
    http_workers_queue(s->workers, &waiting, &waited);
    td_metric_set(s->feeds_open, NULL, (double)http_feeds_open(s->feeds));
    td_metric_set(s->waiting, NULL, (double)waiting);
    td_metric_set(s->waited, NULL, waited);
    td_metric_add(s->cut, NULL, (double)(cut - s->cut_counted));
    s->cut_counted = cut;
}

static void free_server(http_server *s)
{
    for (int i = 0; i < HTTP_LIMITS; i++)
        http_throttle_free(s->throttles[i]);
    http_feeds_free(s->feeds);
    http_workers_free(s->workers); /* after the daemon: no connection thread calls in */
    http_deadlines_stop(s->deadlines);
    free(s);
}

/* libmicrohttpd's daemon: a thread pool on epoll; connections capped in
 * all and per client address; an idle connection (nothing sent or read
 * for IDLE_TIMEOUT_S) closed; the deadlines of deadlines.c beside. */
#define IDLE_TIMEOUT_S 15
#define BACKLOG        4096
static struct MHD_Daemon *start_daemon(http_server *s, const http_options *opts,
                                       struct sockaddr_in *addr)
{
    return MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_TURBO | MHD_ALLOW_SUSPEND_RESUME,
        0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(opts->threads ? opts->threads : 4),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(opts->max_connections ? opts->max_connections : 10000),
        MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)(opts->max_connections_per_client ? opts->max_connections_per_client : 256),
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)BACKLOG, MHD_OPTION_END);
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
    s->spans = opts->spans;
    s->relay = opts->relay;
    s->consumer = opts->consumer;
    s->open_access = opts->open_access;
    s->idempotency_ttl =
        (td_time)(opts->idempotency_ttl_s > 0 ? opts->idempotency_ttl_s : 24 * 3600) * 1000000;
    s->admit_backlog =
        opts->admit_backlog_ms < 0
            ? 0
            : (td_time)(opts->admit_backlog_ms ? opts->admit_backlog_ms : 100) * 1000;
    note_hosts(s, opts);
    int error = make_throttles(s, opts);
    if (error == 0)
        error = td_metrics_counter(&s->requests, s->metrics, "http_requests_total",
                                   "HTTP requests answered, by route, method and status.",
                                   "route,method,status");
    if (error == 0)
        error =
            td_metrics_histogram(&s->duration, s->metrics, "http_request_duration_seconds",
                                 "Time to answer an HTTP request.", "route,method,status", NULL, 0);
    if (error == 0)
        error = td_metrics_counter(&s->limited, s->metrics, "http_rate_limited_total",
                                   "Requests refused with 429 by a rate limit.", "limit");
    if (error == 0)
        error = td_metrics_gauge(&s->feeds_open, s->metrics, "http_live_feeds",
                                 "Live event feeds open now.", NULL);
    if (error == 0)
        error = td_metrics_gauge(&s->waiting, s->metrics, "http_commands_waiting",
                                 "Commands waiting for a command worker now.", NULL);
    if (error == 0)
        error =
            td_metrics_gauge(&s->waited, s->metrics, "http_command_wait_seconds",
                             "How long the oldest command waiting for a worker has waited.", NULL);
    if (error == 0)
        error = td_metrics_counter(&s->cut, s->metrics, "http_connections_cut_total",
                                   "Connections cut for not sending a request in time.", NULL);
    if (error == 0)
        error = http_feeds_start(&s->feeds, store, opts->max_feeds ? opts->max_feeds : 10000,
                                 opts->max_feeds_per_client ? opts->max_feeds_per_client : 64);
    if (error == 0)
        error =
            http_deadlines_start(&s->deadlines, opts->head_timeout_s ? opts->head_timeout_s : 10,
                                 opts->body_timeout_s ? opts->body_timeout_s : 30);
    if (error == 0 && opts->command_workers >= 0)
        error = http_workers_start(
            &s->workers, opts->command_workers ? (unsigned)opts->command_workers : 8,
            opts->commands_waiting ? opts->commands_waiting : 1024,
            opts->admit_wait_ms < 0 ? 0 : (opts->admit_wait_ms ? opts->admit_wait_ms : 50) * 1000LL,
            may_start_new_work, sh);
    if (error == 0)
        s->daemon = start_daemon(s, opts, &addr);
    if (error == 0 && s->daemon && s->metrics)
        error = td_metrics_on_collect(s->metrics, collect_gauges, s);
    if (error == 0 && s->daemon) /* the keeper deletes expired records */
        error = shop_sweep_expiring(sh, HTTP_IDEMPOTENCY);
    if (error < 0 || s->daemon == NULL) {
        free_server(s);
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
    atomic_store(&s->stopping, true); /* live event streams end, new requests get 503 */
    http_feeds_stop(s->feeds);        /* ... the parked ones too, once resumed */
    http_workers_stop(s->workers);    /* commands queued run, their connections resumed; */
                                      /* later ones are refused (freed with the server) */
    /* requests in progress are answered */
    for (td_time until = td_time_now() + STOP_WAIT_US;
         atomic_load(&s->answering) > 0 && td_time_now() < until;)
        usleep(10000);
    /* No MHD_quiesce_daemon: on an epoll daemon with its own threads it
     * races with the workers removing the same listening socket, and
     * libmicrohttpd 0.9.75 then aborts the process ("Failed to remove listen
     * FD from epoll set"; seen twice in about 60 benchmark stops). Stopping
     * closes the listening socket as well, and waits for the threads that
     * are answering requests. */
    MHD_stop_daemon(s->daemon);
    if (s->metrics)
        td_metrics_remove_collector(s->metrics, collect_gauges, s);
    free_server(s);
}
