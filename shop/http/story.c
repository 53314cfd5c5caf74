/*
 * story.c (shop http): GET /orders/{id}/story, one order's story for
 * administrators: every event of the order, in log order, with its
 * envelope (causation_id says which event caused it; correlation_id is the
 * id of the event that began the work: the order's OrderCreated for what
 * placing it set off, a staff member's shipping for what that did), and
 * the spans kept of their traces when tracing is on.
 *
 * The log has no index by correlation id, so the story is gathered from
 * where the order's events are: the streams named after it (order-,
 * reservation-, payment-, notification-<id>, and the saga's deadline
 * stream), and the positions the order saga's instance recorded (its
 * history and ignored events), which bring in the events of other streams
 * it handled (stock reserved or not, on the products' inventory streams).
 * Each is kept once. A routine event the saga passed over unrecorded (the
 * second line's StockReserved of an order of two lines) is not found.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http.h"

typedef struct story {
    http_request *req;
    const char *order;
    json_t *by_position; /* "position" → envelope */
    int error;
} story;

static int add_event(const td_event *ev, void *payload)
{
    story *s = payload;
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)ev->position);
    if (json_object_get(s->by_position, key))
        return 0;
    json_t *json = NULL;
    int error = http_event_json(s->req->shop, ev, &json);
    if (error == 0 && json_object_set_new(s->by_position, key, json) < 0)
        error = TD_ENOMEM;
    return error;
}

static int read_streams(story *s)
{
    static const char *const prefixes[] = {"order-", "reservation-", "payment-", "notification-",
                                           "deadline-" SHOP_ORDER_SAGA "."};
    char stream[TD_STREAM_MAX + 1];
    int error = 0;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0] && error == 0; i++) {
        int n = snprintf(stream, sizeof stream, "%s%s", prefixes[i], s->order);
        if (n > 0 && (size_t)n < sizeof stream && td_stream_check(stream) == 0)
            error = td_store_read_stream(s->req->store, stream, 1, 0, add_event, s);
    }
    return error;
}

/* The event at position. */
static int read_position(story *s, json_int_t position)
{
    char key[24];
    snprintf(key, sizeof key, "%lld", (long long)position);
    if (position < 1 || json_object_get(s->by_position, key))
        return 0;
    td_read_query q = TD_READ_QUERY_INIT;
    q.after_position = position - 1;
    q.limit = 1;
    return td_store_read(s->req->store, &q, add_event, s);
}

/* The events the order saga's instance recorded. */
static int read_saga_positions(story *s)
{
    char *text = NULL;
    int error = td_saga_get(s->req->store, SHOP_ORDER_SAGA, s->order, &text);
    if (error == TD_ENOTFOUND)
        return 0;
    json_error_t err;
    json_t *doc = error == 0 ? json_loads(text, 0, &err) : NULL;
    td_free(text);
    static const char *const lists[] = {"history", "ignored"};
    for (size_t i = 0; i < 2 && doc && error == 0; i++) {
        size_t at;
        json_t *entry;
        json_array_foreach(json_object_get(doc, lists[i]), at, entry)
        {
            if (error == 0)
                error = read_position(s, json_integer_value(json_object_get(entry, "position")));
        }
    }
    json_decref(doc);
    return error;
}

static int earlier_first(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "position"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "position"));
    return (x > y) - (x < y);
}

/* The events in log order. */
static json_t *in_order(json_t *by_position)
{
    size_t n = json_object_size(by_position), i = 0;
    json_t **all = calloc(n + 1, sizeof *all), *list = json_array();
    const char *key;
    json_t *event;
    if (all == NULL || list == NULL) {
        free(all);
        json_decref(list);
        return NULL;
    }
    json_object_foreach(by_position, key, event)
    {
        all[i++] = event;
    }
    qsort(all, n, sizeof *all, earlier_first);
    for (i = 0; i < n; i++)
        json_array_append(list, all[i]);
    free(all);
    return list;
}

/* The spans kept of every trace the events belong to. */
static int add_spans(shop_spans *spans, json_t *events, json_t *out)
{
    json_t *seen = json_object(), *event;
    size_t i;
    int error = seen ? 0 : TD_ENOMEM;
    json_array_foreach(events, i, event)
    {
        const char *tp = json_string_value(json_object_get(event, "traceparent"));
        char trace[33];
        if (error < 0 || tp == NULL || strlen(tp) < 35)
            continue;
        memcpy(trace, tp + 3, 32); /* 00-<trace id>-<span id>-<flags> */
        trace[32] = '\0';
        if (json_object_get(seen, trace))
            continue;
        json_object_set_new(seen, trace, json_true());
        error = shop_spans_of_trace(spans, trace, out);
    }
    json_decref(seen);
    return error;
}

static int get_story(http_request *req, http_response *res)
{
    story s = {req, req->params[0], json_object(), 0};
    char stream[TD_STREAM_MAX + 1];
    snprintf(stream, sizeof stream, "order-%.150s", s.order);
    int64_t version = 0;
    if (td_ref_id_check(s.order) < 0 || td_stream_check(stream) < 0) {
        json_decref(s.by_position);
        return http_problem(res, 400, "validation_failed", NULL, "not an order id");
    }
    int error = s.by_position ? td_store_stream_version(req->store, stream, &version) : TD_ENOMEM;
    if (error == 0 && version == 0) {
        json_decref(s.by_position);
        return http_problem(res, 404, "not_found", NULL, "no order %s", s.order);
    }
    if (error == 0)
        error = read_streams(&s);
    if (error == 0)
        error = read_saga_positions(&s);
    json_t *events = error == 0 ? in_order(s.by_position) : NULL;
    json_t *spans = json_array();
    shop_spans *kept = http_server_spans(req->server);
    if (error == 0 && (events == NULL || spans == NULL))
        error = TD_ENOMEM;
    if (error == 0 && kept)
        error = add_spans(kept, events, spans);
    json_decref(s.by_position);
    if (error < 0) {
        json_decref(events);
        json_decref(spans);
        return http_problem(res, 500,
                            error == TD_EVERSION ? "unsupported_event_version" : "internal_error",
                            NULL, "%s", td_error_last());
    }
    return http_json(res, 200,
                     json_pack("{s:s,s:o,s:b,s:o}", "order_id", s.order, "events", events,
                               "tracing", kept != NULL, "spans", spans));
}

const http_route http_story_routes[] = {
    {"GET", "/orders/{}/story", "/orders/{id}/story", SHOP_ROLE_ADMIN, get_story, 0, 0},
    {NULL, NULL, NULL, 0, NULL, 0, 0},
};
