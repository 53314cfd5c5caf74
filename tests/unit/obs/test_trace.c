/*
 * test_trace.c: one trace from a request through two handlers. An event
 * appended with a traceparent is handled in a span that is its child; what
 * that handler publishes names the span as parent, and the next handler's
 * span is the child of that. Correlation and causation ids follow the same
 * chain. Spans land in the trace file as OTLP-shaped JSON lines. With the
 * store given the tracer, an event appended without a traceparent starts a
 * trace whose root span (the append) is exported too, so no span's parent
 * is missing; times are in nanoseconds. Also: the stderr log sink writes
 * JSON lines with the subscription and event id.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#define TRACE  "4bf92f3577b34da6a3ce929d0e0e4736"
#define PARENT "00f067aa0ba902b7"

static int request_payment(td_delivery *d, const td_event *ev, void *payload)
{
    (void)ev;
    (void)payload;
    td_event next = tt_event("PaymentRequested", "{}");
    return td_delivery_publish(d, "payment-1", TD_EXPECT_ANY, &next, 1);
}

static int process_payment(td_delivery *d, const td_event *ev, void *payload)
{
    (void)ev;
    (void)payload;
    td_event next = tt_event("PaymentProcessed", "{}");
    return td_delivery_publish(d, "payment-1", TD_EXPECT_ANY, &next, 1);
}

typedef struct chain {
    td_event *events[3];
    int count;
} chain;

static int keep(const td_event *ev, void *payload)
{
    chain *c = payload;
    return c->count < 3 ? td_event_dup(&c->events[c->count++], ev) : 1;
}

static json_t *span_of(json_t *line)
{
    json_t *rs = json_array_get(json_object_get(line, "resourceSpans"), 0);
    json_t *ss = json_array_get(json_object_get(rs, "scopeSpans"), 0);
    return json_array_get(json_object_get(ss, "spans"), 0);
}

static const char *field(json_t *span, const char *key)
{
    const char *v = json_string_value(json_object_get(span, key));
    assert_non_null(v);
    return v;
}

static void test_trace_follows_events_through_handlers(void **state)
{
    (void)state;
    char *dir = tt_tmpdir(), *url = tt_store_url(dir, "trace"), path[4200];
    snprintf(path, sizeof path, "%s/spans.jsonl", dir);
    td_store *store = tt_open(url);
    td_tracer *tracer = NULL;
    assert_td_ok(td_tracer_new_file(&tracer, path));
    td_subscription_options a = TD_SUBSCRIPTION_OPTIONS_INIT, b = TD_SUBSCRIPTION_OPTIONS_INIT;
    td_subscription *billing = NULL, *payments = NULL;
    td_match created = {"OrderCreated", NULL}, requested = {"PaymentRequested", NULL};
    a.name = "billing";
    a.match = created;
    a.tracer = tracer;
    b.name = "payments";
    b.match = requested;
    b.transactional = true;
    b.tracer = tracer;
    assert_td_ok(td_subscription_new(&billing, store, &a, request_payment, NULL));
    assert_td_ok(td_subscription_new(&payments, store, &b, process_payment, NULL));
    assert_td_ok(td_subscription_start(billing));
    assert_td_ok(td_subscription_start(payments));

    td_event order = tt_event("OrderCreated", "{}");
    order.correlation_id = "req-1";
    strcpy(order.traceparent, "00-" TRACE "-" PARENT "-01");
    assert_td_ok(td_store_append(store, "order-1", TD_EXPECT_NO_STREAM, &order, 1));
    int64_t head = 0;
    assert_td_ok(td_store_wait(store, 2, 10000, &head)); /* billing published */
    assert_td_ok(td_subscription_wait_until(payments, 2, 10000));
    assert_td_ok(td_store_wait(store, 2, 10000, &head));
    assert_int_equal(head, 3);
    td_subscription_free(billing);
    td_subscription_free(payments);
    td_tracer_free(tracer);

    chain c = {{0}, 0};
    td_read_query all = TD_READ_QUERY_INIT;
    assert_td_ok(td_store_read(store, &all, keep, &c));
    assert_int_equal(c.count, 3);
    char id0[TD_UUID_STR_LEN + 1], id1[TD_UUID_STR_LEN + 1];
    td_uuid_format(id0, &c.events[0]->id);
    td_uuid_format(id1, &c.events[1]->id);
    assert_string_equal(c.events[1]->correlation_id, "req-1");
    assert_string_equal(c.events[1]->causation_id, id0);
    assert_string_equal(c.events[2]->correlation_id, "req-1");
    assert_string_equal(c.events[2]->causation_id, id1);

    FILE *f = fopen(path, "r");
    assert_non_null(f);
    json_error_t err;
    json_t *line1 = json_loadf(f, JSON_DISABLE_EOF_CHECK, &err);
    json_t *line2 = json_loadf(f, JSON_DISABLE_EOF_CHECK, &err);
    fclose(f);
    assert_non_null(line1);
    assert_non_null(line2);
    json_t *span_a = span_of(line1), *span_b = span_of(line2);
    /* A span is written when it ends: billing's ends after its handler
     * returns, by which time payments may have handled PaymentRequested
     * and written its own. The file's order is not the handlers' order. */
    if (strcmp(field(span_a, "name"), "handle PaymentRequested") == 0) {
        json_t *first = span_a;
        span_a = span_b;
        span_b = first;
    }
    assert_string_equal(field(span_a, "traceId"), TRACE);
    assert_string_equal(field(span_a, "parentSpanId"), PARENT);
    assert_string_equal(field(span_a, "name"), "handle OrderCreated");
    assert_string_equal(field(span_b, "traceId"), TRACE);
    assert_string_equal(field(span_b, "parentSpanId"), field(span_a, "spanId"));
    assert_string_equal(field(span_b, "name"), "handle PaymentRequested");
    /* the events in between carry the handlers' spans as parents */
    assert_memory_equal(c.events[1]->traceparent + 3, TRACE, 32);
    assert_memory_equal(c.events[1]->traceparent + 36, field(span_a, "spanId"), 16);
    assert_memory_equal(c.events[2]->traceparent + 36, field(span_b, "spanId"), 16);
    json_decref(line1);
    json_decref(line2);
    for (int i = 0; i < c.count; i++)
        td_event_free(c.events[i]);
    td_store_free(store);
    free(url);
    tt_rmdir(dir);
}

/* Every span of the file at path, as JSON (an array; caller decrefs). */
static json_t *spans_in(const char *path)
{
    json_t *all = json_array();
    json_error_t err;
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    json_t *line;
    while ((line = json_loadf(f, JSON_DISABLE_EOF_CHECK, &err)) != NULL) {
        json_array_append(all, span_of(line));
        json_decref(line);
    }
    fclose(f);
    return all;
}

/* The span whose id is the 16 hex digits at id. */
static json_t *span_with_id(json_t *spans, const char *id)
{
    size_t i;
    json_t *span;
    json_array_foreach(spans, i, span) if (strncmp(field(span, "spanId"), id, 16) == 0) return span;
    return NULL;
}

static void test_append_spans_root_every_trace(void **state)
{
    (void)state;
    char *dir = tt_tmpdir(), *url = tt_store_url(dir, "roots"), path[4200];
    snprintf(path, sizeof path, "%s/spans.jsonl", dir);
    td_store *store = tt_open(url);
    td_tracer *tracer = NULL;
    assert_td_ok(td_tracer_new_file(&tracer, path));
    td_store_set_tracer(store, tracer);
    td_subscription_options a = TD_SUBSCRIPTION_OPTIONS_INIT, b = TD_SUBSCRIPTION_OPTIONS_INIT;
    td_subscription *billing = NULL, *payments = NULL;
    td_match created = {"OrderCreated", NULL}, requested = {"PaymentRequested", NULL};
    a.name = "billing";
    a.match = created;
    a.tracer = tracer;
    b.name = "payments"; /* untraced: what it publishes is a child of its cause */
    b.match = requested;
    b.transactional = true;
    assert_td_ok(td_subscription_new(&billing, store, &a, request_payment, NULL));
    assert_td_ok(td_subscription_new(&payments, store, &b, process_payment, NULL));
    assert_td_ok(td_subscription_start(billing));
    assert_td_ok(td_subscription_start(payments));

    int64_t before = td_trace_now_ns();
    td_event order = tt_event("OrderCreated", "{}"); /* no traceparent: a new trace */
    assert_td_ok(td_store_append(store, "order-1", TD_EXPECT_NO_STREAM, &order, 1));
    int64_t head = 0;
    assert_td_ok(td_store_wait(store, 2, 10000, &head));
    assert_td_ok(td_subscription_wait_until(payments, 2, 10000));
    assert_td_ok(td_store_wait(store, 2, 10000, &head)); /* payments published */
    assert_int_equal(head, 3);
    td_subscription_free(billing);
    td_subscription_free(payments);
    td_tracer_free(tracer);

    json_t *spans = spans_in(path);
    /* the append of the order, the billing handler, the append of the
     * payment (a child of the handler's span, so no span of its own), and
     * the append payments made as a child of its cause */
    assert_int_equal(json_array_size(spans), 3);
    json_t *root = span_with_id(spans, order.traceparent + 36);
    assert_non_null(root);
    assert_string_equal(field(root, "name"), "append OrderCreated");
    assert_string_equal(field(root, "parentSpanId"), "");
    assert_int_equal(json_integer_value(json_object_get(root, "kind")), TD_SPAN_PRODUCER);
    size_t i;
    json_t *span;
    json_array_foreach(spans, i, span)
    {
        const char *parent = field(span, "parentSpanId");
        assert_memory_equal(field(span, "traceId"), order.traceparent + 3, 32);
        if (parent[0]) /* no parent is missing */
            assert_non_null(span_with_id(spans, parent));
        long long start = atoll(field(span, "startTimeUnixNano"));
        long long end = atoll(field(span, "endTimeUnixNano"));
        assert_true(start >= before && end >= start); /* nanoseconds, in order */
        assert_true(start > 1000000000000000000LL);
    }
    json_decref(spans);
    td_store_free(store);
    free(url);
    tt_rmdir(dir);
}

typedef struct captured {
    pthread_mutex_t lock;
    int errors_with_context;
} captured;

static void capture(const td_log_record *r, void *payload)
{
    captured *c = payload;
    pthread_mutex_lock(&c->lock);
    if (r->level == TD_LOG_ERROR && r->subscription && strcmp(r->subscription, "fragile") == 0 &&
        r->event_id && strstr(r->message, "parked as dead letter"))
        c->errors_with_context++;
    pthread_mutex_unlock(&c->lock);
}

static int always_fail(td_delivery *d, const td_event *ev, void *payload)
{
    (void)ev;
    (void)payload;
    return td_delivery_fail(d, TD_EPERMANENT, "no");
}

static void test_parking_is_logged_with_context(void **state)
{
    (void)state;
    char *dir = tt_tmpdir(), *url = tt_store_url(dir, "logs");
    td_store *store = tt_open(url);
    captured c = {PTHREAD_MUTEX_INITIALIZER, 0};
    td_log_set_sink(capture, &c);
    td_log_set_level(TD_LOG_INFO);
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    td_subscription *sub = NULL;
    opts.name = "fragile";
    assert_td_ok(td_subscription_new(&sub, store, &opts, always_fail, NULL));
    assert_td_ok(td_subscription_start(sub));
    tt_append(store, "order-1", "T", 1);
    assert_td_ok(td_subscription_wait_until(sub, 1, 10000));
    td_subscription_free(sub);
    td_log_set_sink(NULL, NULL);
    assert_int_equal(c.errors_with_context, 1);
    td_log_level level;
    assert_td_code(td_log_level_parse(&level, "loud"), TD_EINVAL);
    assert_td_ok(td_log_level_parse(&level, "warn"));
    assert_int_equal(level, TD_LOG_WARN);
    td_store_free(store);
    free(url);
    tt_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_follows_events_through_handlers),
        cmocka_unit_test(test_append_spans_root_every_trace),
        cmocka_unit_test(test_parking_is_logged_with_context),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
