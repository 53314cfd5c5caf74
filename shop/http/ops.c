/*
 * ops.c (shop http): the event log and operations: GET /events, GET
 * /streams/{stream}, GET /metrics, GET /health (the dead-letter queue is in
 * dead_letters.c, what the console shows in status.c, sagas.c and
 * story.c). All but /health (its status only, to anyone) and /metrics
 * (metrics keys too) are for administrators. Events
 * are shown with their personal fields opened: a forgotten customer's read
 * as null.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

int http_event_json(shop *s, const td_event *event, json_t **out)
{
    int error = td_event_to_json(out, event);
    json_t *data = error == 0 ? json_object_get(*out, "data") : NULL;
    if (data && (error = shop_open_as(s, event->type, data)) < 0) {
        json_decref(*out);
        *out = NULL;
    }
    return error < 0 ? error : 0;
}

typedef struct listing {
    http_request *req;
    json_t *events;
} listing;

static int add_event(const td_event *ev, void *payload)
{
    listing *l = payload;
    json_t *json = NULL;
    int error = http_event_json(l->req->shop, ev, &json);
    if (error == 0 && json_array_append_new(l->events, json) < 0)
        error = TD_ENOMEM;
    return error;
}

static int number_arg(http_request *req, const char *key, long long min, long long max,
                      long long fallback, long long *out, http_response *res)
{
    const char *text = http_query(req, key);
    char *end = NULL;
    errno = 0; /* a number beyond long long comes back clamped, with ERANGE */
    *out = text ? strtoll(text, &end, 10) : fallback;
    if (text && (text[0] == '\0' || *end != '\0' || errno == ERANGE || *out < min || *out > max)) {
        http_problem(res, 400, "validation_failed", NULL, "%s must be a whole number in %lld..%lld",
                     key, min, max);
        return -1;
    }
    return 0;
}

/* A failed read of the log: bad filters are the client's; an event this
 * program cannot read (upcast.h) is named as such. */
static int read_failed(http_response *res, int error)
{
    const char *code = error == TD_EINVAL     ? "validation_failed"
                       : error == TD_EVERSION ? "unsupported_event_version"
                                              : "internal_error";
    return http_problem(res, error == TD_EINVAL ? 400 : 500, code, NULL, "%s", td_error_last());
}

static int get_events(http_request *req, http_response *res)
{
    long long after = 0, limit = 100;
    td_read_query q = TD_READ_QUERY_INIT;
    if (number_arg(req, "after", 0, INT64_MAX, 0, &after, res) < 0 ||
        number_arg(req, "limit", 1, 1000, 100, &limit, res) < 0)
        return 0;
    q.after_position = after;
    q.limit = (size_t)limit;
    q.stream = http_query(req, "stream");
    q.type = http_query(req, "type");
    q.category = http_query(req, "category");
    listing l = {req, json_array()};
    int error = l.events ? td_store_read(req->store, &q, add_event, &l) : TD_ENOMEM;
    if (error < 0) {
        json_decref(l.events);
        return read_failed(res, error);
    }
    return http_json(res, 200, json_pack("{s:o}", "events", l.events));
}

static int get_stream(http_request *req, http_response *res)
{
    int64_t version = 0;
    if (td_stream_check(req->params[0]) < 0)
        return http_problem(res, 400, "validation_failed", NULL, "%s", td_error_last());
    listing l = {req, json_array()};
    json_t *list = l.events;
    int error =
        list ? td_store_read_stream(req->store, req->params[0], 1, 0, add_event, &l) : TD_ENOMEM;
    if (error == 0)
        error = td_store_stream_version(req->store, req->params[0], &version);
    if (error < 0) {
        json_decref(list);
        return read_failed(res, error);
    }
    if (version == 0) {
        json_decref(list);
        return http_problem(res, 404, "not_found", NULL, "no stream %s", req->params[0]);
    }
    return http_json(res, 200,
                     json_pack("{s:s,s:I,s:o}", "stream", req->params[0], "version",
                               (json_int_t)version, "events", list));
}

static int get_metrics(http_request *req, http_response *res)
{
    char *text = NULL;
    if (td_metrics_render(http_server_metrics(req->server), &text, NULL) < 0)
        return http_problem(res, 500, "internal_error", NULL, "%s", td_error_last());
    res->status = 200;
    res->text = text;
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
    return 0;
}

typedef struct health {
    json_t *subscriptions;
    int64_t worst_lag;
} health;

static int add_subscription(const char *name, const td_subscription_status *st, void *payload)
{
    health *h = payload;
    json_array_append_new(h->subscriptions,
                          json_pack("{s:s,s:I,s:I,s:I,s:s?}", "name", name, "position",
                                    (json_int_t)st->position, "lag_events",
                                    (json_int_t)st->lag_events, "dead_letters",
                                    (json_int_t)st->dead_letters, "held_by", st->holder));
    if (st->lag_events > h->worst_lag)
        h->worst_lag = st->lag_events;
    return 0;
}

static void add_failure(const char *subscription, const char *why, void *payload)
{
    json_array_append_new(payload,
                          json_pack("{s:s,s:s}", "subscription", subscription, "error", why));
}

/* What /health says of the store: "ok", "storage_full" (the last write
 * found the disk full: writes get 503 until there is space, and resume by
 * themselves), or "failed" (a failed sync or commit, or corruption: writes
 * are refused until the store is reopened), and why. */
static const char *store_state(td_store *store, td_store_health *h)
{
    td_store_health_get(store, h);
    return h->state == TD_STORE_OK ? "ok" : h->state == TD_STORE_FULL ? "storage_full" : "failed";
}

/* The broker relay's connection and progress, and the consumer's when
 * this process takes other services' events (`--services`), or NULL
 * without a broker. A broker that is away does not make the shop
 * unhealthy: its events wait in the store and go out once it is back, and
 * what the others sent waits in the queue. */
static json_t *broker_health(td_relay *relay, td_consumer *consumer)
{
    td_broker_stats s, c;
    if (relay == NULL)
        return NULL;
    td_relay_stats(relay, &s);
    json_t *body = json_pack("{s:s,s:I,s:I,s:f,s:I,s:I,s:I,s:s*}", "connection",
                             s.connected ? "connected" : "disconnected", "checkpoint",
                             (json_int_t)s.checkpoint, "lag_events", (json_int_t)s.lag_events,
                             "lag_seconds", s.lag_seconds, "published", (json_int_t)s.published,
                             "confirmed", (json_int_t)s.confirmed, "nacked", (json_int_t)s.nacked,
                             "last_error", s.last_error[0] ? s.last_error : NULL);
    if (body && consumer) {
        td_consumer_stats(consumer, &c);
        json_object_set_new(body, "consumer",
                            json_pack("{s:s,s:I,s:I,s:I,s:I,s:s*}", "connection",
                                      c.connected ? "connected" : "disconnected", "consumed",
                                      (json_int_t)c.consumed, "duplicates",
                                      (json_int_t)c.duplicates, "redelivered",
                                      (json_int_t)c.redelivered, "rejected", (json_int_t)c.rejected,
                                      "last_error", c.last_error[0] ? c.last_error : NULL));
    }
    return body;
}

/* The contexts this process runs, as names. */
static json_t *services_json(shop *s)
{
    json_t *names = json_array();
    for (unsigned i = 0; names && i < SHOP_CTX_COUNT; i++)
        if (shop_runs(s, 1u << i))
            json_array_append_new(names, json_string(shop_context_name(1u << i)));
    return names;
}

/* Healthy: the store answers and takes writes, and no handler of this
 * process has failed (a subscription whose lease another process took
 * over, say); lags are reported, not judged. Only administrators see the
 * details. */
static int get_health(http_request *req, http_response *res)
{
    if (req->who.role != SHOP_ROLE_ADMIN) {
        int64_t ignored = 0;
        td_store_health sh;
        td_store_health_get(req->store, &sh);
        bool ok = td_store_head(req->store, &ignored) == 0 && sh.state == TD_STORE_OK &&
                  shop_check(req->shop, NULL, NULL) == 0;
        return http_json(res, ok ? 200 : 503,
                         json_pack("{s:s}", "status", ok ? "ok" : "unhealthy"));
    }
    int64_t head = 0;
    health h = {json_array(), 0};
    json_t *failures = json_array();
    td_store_health sh;
    const char *state = store_state(req->store, &sh);
    char why[300] = "";
    bool store_ok = td_store_head(req->store, &head) == 0 &&
                    td_subscriptions_list(req->store, add_subscription, &h) == 0;
    if (!store_ok)
        snprintf(why, sizeof why, "%s", td_error_last());
    else if (sh.state != TD_STORE_OK)
        snprintf(why, sizeof why, "%s", sh.message);
    char since[TD_TIME_STR_LEN + 1] = "";
    if (sh.since)
        (void)td_time_format(since, sh.since);
    bool handlers_ok = shop_check(req->shop, add_failure, failures) == 0;
    bool ok = store_ok && sh.state == TD_STORE_OK && handlers_ok;
    json_t *body =
        json_pack("{s:s,s:s,s:s*,s:s*,s:I,s:o,s:o}", "status", ok ? "ok" : "unhealthy", "store",
                  store_ok ? state : "unreadable", "store_error", why[0] ? why : NULL,
                  "store_since", since[0] ? since : NULL, "head", (json_int_t)head, "subscriptions",
                  h.subscriptions, "failed_handlers", failures);
    json_t *instance = shop_instance_json(req->shop);
    if (instance)
        json_object_set_new(body, "instance", instance);
    json_object_set_new(body, "services", services_json(req->shop));
    json_t *broker =
        broker_health(http_server_relay(req->server), http_server_consumer(req->server));
    if (broker)
        json_object_set_new(body, "broker", broker);
    return http_json(res, ok ? 200 : 503, body);
}

const http_route http_ops_routes[] = {
    {"GET", "/events", "/events", SHOP_ROLE_ADMIN, get_events, 0, 0},
    {"GET", "/streams/{}", "/streams/{stream}", SHOP_ROLE_ADMIN, get_stream, 0, 0},
    {"GET", "/metrics", "/metrics", SHOP_ROLE_METRICS | SHOP_ROLE_ADMIN, get_metrics, 0, 0},
    {"GET", "/health", "/health", HTTP_ANYONE, get_health, 0, 0},
    {NULL, NULL, NULL, 0, NULL, 0, 0},
};
