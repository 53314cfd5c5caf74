/*
 * test_bus.c: publishing and inline handlers: they run inside the appending
 * unit, their writes commit with it, their failure rolls it back, and what
 * they publish carries the cause's correlation, causation and trace.
 */
#include <stdlib.h>
#include <string.h>

#include "support.h"

static td_store *store;
static td_bus *bus;

static int setup(void **state)
{
    (void)state;
    store = tt_fixture("bus");
    assert_td_ok(td_bus_new(&bus, store));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    td_bus_free(bus);
    tt_fixture_free(store);
    return 0;
}

static int count_created(td_txn *txn, const td_event *ev, void *payload)
{
    (void)ev;
    ++*(int *)payload;
    return td_txn_doc_put(txn, "counters", "created", "{\"seen\":true}", 0);
}

static int refuse_big(td_txn *txn, const td_event *ev, void *payload)
{
    (void)txn;
    (void)payload;
    return strstr(ev->data, "big") ? TD_EINVAL : 0;
}

static void test_inline_handlers_match_and_commit_with_the_event(void **state)
{
    (void)state;
    int created = 0;
    td_match orders_created = {"OrderCreated", "order"};
    assert_td_ok(td_bus_on(bus, &orders_created, count_created, &created));
    tt_append(store, "order-1", "OrderCreated", 1);
    tt_append(store, "order-1", "OrderShipped", 2); /* other type */
    tt_append(store, "cart-1", "OrderCreated", 3);  /* other category */
    assert_int_equal(created, 1);
    char *doc = NULL;
    assert_td_ok(td_store_doc_get(store, "counters", "created", &doc, NULL));
    td_free(doc);
}

static void test_failing_inline_handler_rolls_back(void **state)
{
    (void)state;
    assert_td_ok(td_bus_on(bus, NULL, refuse_big, NULL));
    td_event ev = tt_event("T", "{\"size\":\"big\"}");
    assert_td_code(td_store_append(store, "order-1", TD_EXPECT_ANY, &ev, 1), TD_EINVAL);
    td_read_query all = TD_READ_QUERY_INIT;
    assert_int_equal(tt_count(store, &all), 0);
    int64_t head = -1;
    assert_td_ok(td_store_head(store, &head));
    assert_int_equal(head, 0);
    tt_append(store, "order-1", "T", 1); /* and the store goes on, without a gap */
    assert_td_ok(td_store_head(store, &head));
    assert_int_equal(head, 1);
}

static int react(td_txn *txn, const td_event *ev, void *payload)
{
    (void)payload;
    td_event reaction = tt_event("StockReserved", "{}");
    (void)ev;
    return td_publish_integration(txn, "inventory-1", TD_EXPECT_ANY, &reaction);
}

typedef struct seen {
    td_event *events[4];
    int count;
} seen;

static int keep(const td_event *ev, void *payload)
{
    seen *s = payload;
    return td_event_dup(&s->events[s->count++], ev);
}

static void test_published_events_continue_the_cause(void **state)
{
    (void)state;
    td_match created = {"OrderCreated", NULL};
    assert_td_ok(td_bus_on(bus, &created, react, NULL));
    td_event ev = tt_event("OrderCreated", "{}");
    ev.correlation_id = "request-77";
    assert_td_ok(td_store_append(store, "order-1", TD_EXPECT_NO_STREAM, &ev, 1));
    seen s = {{0}, 0};
    td_read_query all = TD_READ_QUERY_INIT;
    assert_td_ok(td_store_read(store, &all, keep, &s));
    assert_int_equal(s.count, 2);
    td_event *cause = s.events[0], *effect = s.events[1];
    char cause_id[TD_UUID_STR_LEN + 1];
    td_uuid_format(cause_id, &cause->id);
    assert_string_equal(effect->type, "StockReserved");
    assert_int_equal(effect->kind, TD_KIND_INTEGRATION);
    assert_string_equal(effect->correlation_id, "request-77");
    assert_string_equal(effect->causation_id, cause_id);
    assert_memory_equal(effect->traceparent, cause->traceparent, 35); /* same trace id */
    assert_memory_not_equal(effect->traceparent + 36, cause->traceparent + 36, 16);
    for (int i = 0; i < s.count; i++)
        td_event_free(s.events[i]);
}

static int loop_forever(td_txn *txn, const td_event *ev, void *payload)
{
    (void)ev;
    (void)payload;
    td_event again = tt_event("Loop", "{}");
    return td_txn_append(txn, "loop-1", TD_EXPECT_ANY, &again, 1);
}

static void test_runaway_handlers_are_stopped(void **state)
{
    (void)state;
    assert_td_ok(td_bus_on(bus, NULL, loop_forever, NULL));
    td_event ev = tt_event("Start", "{}");
    assert_td_code(td_store_append(store, "loop-1", TD_EXPECT_ANY, &ev, 1), TD_EINVAL);
    td_read_query all = TD_READ_QUERY_INIT;
    assert_int_equal(tt_count(store, &all), 0);
}

static void test_bad_registration(void **state)
{
    (void)state;
    td_match bad = {"bad type", NULL};
    assert_td_code(td_bus_on(bus, &bad, react, NULL), TD_EINVAL);
    td_match bad_category = {NULL, "or-der"};
    assert_td_code(td_bus_on(bus, &bad_category, react, NULL), TD_EINVAL);
    assert_td_code(td_bus_on(bus, NULL, NULL, NULL), TD_EINVAL);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_inline_handlers_match_and_commit_with_the_event),
        T(test_failing_inline_handler_rolls_back),
        T(test_published_events_continue_the_cause),
        T(test_runaway_handlers_are_stopped),
        T(test_bad_registration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
