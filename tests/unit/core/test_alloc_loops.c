/*
 * test_alloc_loops.c: out of memory at every step of the library's main
 * paths. Each loop makes allocation N and every later one fail (the seam,
 * src/core/alloc.h), for N = 0, 1, 2, … until a run needs no failure at all,
 * over: an append; a unit of work (two streams and a document); a
 * subscription delivering (transactional, so effects and progress commit
 * together); a saga transition. Each armed run must end in a clean error
 * (TD_ENOMEM, or success), change nothing when it fails, and leave a store
 * that td_store_check passes; once allocations work again, what was asked
 * is done exactly once. AddressSanitizer's leak check at exit finds what a
 * failing path forgot to free. jansson allocates through the seam too, so
 * its allocations fail in turn as well.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "support.h"

#define MAX_STEPS 20000 /* a bound, far above what any loop here needs */

/* Arms the seam to fail allocation n and those after it. */
static unsigned long arm(long n)
{
    unsigned long before = td_alloc__failed();
    td_alloc__fail_after(n);
    return before;
}

/* Disarms it; true if the run since arm() had a failure injected. */
static bool disarm(unsigned long before)
{
    td_alloc__fail_after(-1);
    return td_alloc__failed() != before;
}

static void assert_clean(int rc)
{
    if (rc != 0 && rc != TD_ENOMEM)
        print_error("expected 0 or TD_ENOMEM, got %d (%s): %s\n", rc, td_error_name(rc),
                    td_error_last());
    assert_true(rc == 0 || rc == TD_ENOMEM);
}

static int64_t head_of(td_store *store)
{
    int64_t head = -1;
    assert_td_ok(td_store_head(store, &head));
    return head;
}

/* ---- append ------------------------------------------------------------------ */

static void test_append(void **state)
{
    (void)state;
    td_store *store = tt_fixture("append");
    long n = 0;
    for (bool injected = true; injected && n < MAX_STEPS; n++) {
        td_event ev = tt_event("OrderPlaced", "{\"total\":1999}");
        int64_t head = head_of(store);
        unsigned long before = arm(n);
        int rc = td_store_append(store, "order-1", TD_EXPECT_ANY, &ev, 1);
        injected = disarm(before);
        assert_clean(rc);
        assert_int_equal(head_of(store), rc == 0 ? head + 1 : head);
        assert_td_ok(td_store_check(store));
    }
    print_message("%s: %ld allocations failed in turn\n", __func__, n);
    assert_true(n < MAX_STEPS);
    /* and the store goes on taking appends */
    tt_append(store, "order-2", "OrderPlaced", 1);
    tt_fixture_free(store);
}

/* ---- a unit of work ---------------------------------------------------------- */

static int two_streams_and_a_doc(td_txn *txn, void *payload)
{
    (void)payload;
    td_event a = tt_event("OrderPlaced", "{\"n\":1}"), b = tt_event("StockReserved", "{\"n\":2}");
    int error = td_txn_append(txn, "order-7", TD_EXPECT_ANY, &a, 1);
    if (error == 0)
        error = td_txn_append(txn, "stock-7", TD_EXPECT_ANY, &b, 1);
    if (error == 0)
        error = td_txn_doc_put(txn, "orders", "7", "{\"state\":\"placed\"}", 0);
    return error;
}

static void test_unit_of_work(void **state)
{
    (void)state;
    td_store *store = tt_fixture("unit");
    long n = 0;
    int64_t units = 0;
    for (bool injected = true; injected && n < MAX_STEPS; n++) {
        int64_t head = head_of(store);
        unsigned long before = arm(n);
        int rc = td_transact(store, two_streams_and_a_doc, NULL);
        injected = disarm(before);
        assert_clean(rc);
        units += rc == 0;
        /* all of the unit or nothing of it */
        assert_int_equal(head_of(store), rc == 0 ? head + 2 : head);
        char *doc = NULL;
        size_t len = 0;
        int found = td_store_doc_get(store, "orders", "7", &doc, &len);
        assert_true(units > 0 ? found == 0 : found == TD_ENOTFOUND);
        td_free(doc);
        assert_td_ok(td_store_check(store));
    }
    print_message("%s: %ld allocations failed in turn\n", __func__, n);
    assert_true(n < MAX_STEPS);
    assert_int_equal(units, 1);
    tt_fixture_free(store);
}

/* ---- a subscription delivering --------------------------------------------------- */

#define EVENTS 3

/* The handler's effect, in its unit: one document per event handled. A
 * second handling of an event would find its document there. */
static atomic_int handled_twice;

static int record(td_delivery *delivery, const td_event *ev, void *payload)
{
    (void)payload;
    char key[32], *old = NULL;
    size_t len;
    snprintf(key, sizeof key, "%lld", (long long)ev->position);
    td_txn *txn = td_delivery_txn(delivery);
    int error = td_txn_doc_get(txn, "handled", key, &old, &len);
    td_free(old);
    if (error == 0)
        atomic_fetch_add(&handled_twice, 1);
    if (error == TD_ENOTFOUND)
        error = td_txn_doc_put(txn, "handled", key, "{}", 0);
    return error;
}

static int count_doc(const char *key, const char *json, size_t len, void *payload)
{
    (void)key;
    (void)json;
    (void)len;
    ++*(int *)payload;
    return 0;
}

static int handled(td_store *store)
{
    int count = 0;
    assert_td_ok(td_store_doc_list(store, "handled", NULL, 0, count_doc, &count));
    return count;
}

/* Runs the subscription until it has every event or gives up; returns
 * td_subscription_check's verdict (or the failure to make or start it). */
static int run_subscription(td_store *store, int64_t head, int timeout_ms)
{
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    opts.name = "recorder";
    opts.transactional = true;
    opts.backoff_initial_ms = 1;
    opts.backoff_max_ms = 5;
    opts.max_attempts = 1000; /* out of memory is transient: never park for it here */
    td_subscription *sub = NULL;
    int rc = td_subscription_new(&sub, store, &opts, record, NULL);
    if (rc == 0)
        rc = td_subscription_start(sub);
    if (rc == 0) {
        int waited = td_subscription_wait_until(sub, head, timeout_ms);
        rc = td_subscription_check(sub);
        if (rc == 0 && waited < 0 && waited != TD_EBUSY)
            rc = waited;
    }
    td_subscription_free(sub);
    return rc;
}

static void test_subscription_delivering(void **state)
{
    (void)state;
    long n = 0;
    for (bool injected = true; injected && n < MAX_STEPS; n++) {
        td_store *store = tt_fixture("subscription");
        int64_t head = 0;
        for (int i = 0; i < EVENTS; i++)
            head = tt_append(store, i % 2 ? "order-1" : "order-2", "OrderPlaced", i);
        unsigned long before = arm(n);
        int rc = run_subscription(store, head, 100);
        injected = disarm(before);
        assert_clean(rc);
        assert_td_ok(td_store_check(store));
        /* with memory back, a new run finishes the work, nothing twice */
        assert_td_ok(run_subscription(store, head, 10000));
        assert_int_equal(handled(store), EVENTS);
        assert_int_equal(atomic_load(&handled_twice), 0);
        assert_int_equal(head_of(store), head); /* the handler appends nothing */
        tt_fixture_free(store);
    }
    print_message("%s: %ld allocations failed in turn\n", __func__, n);
    assert_true(n < MAX_STEPS);
}

/* ---- a saga transition ---------------------------------------------------------- */

static int reserve(td_saga_ctx *ctx, const td_event *ev, void *payload)
{
    (void)ev;
    (void)payload;
    char stream[160];
    snprintf(stream, sizeof stream, "stock-%s", td_saga_correlation_id(ctx));
    td_event out = tt_event("ReserveStock", "{}");
    int error = json_object_set_new(td_saga_data(ctx), "placed", json_true()) == 0 ? 0 : TD_ENOMEM;
    return error < 0 ? error : td_saga_publish(ctx, stream, TD_EXPECT_ANY, &out, 1);
}

static int correlate(const td_event *ev, json_t *data, char *out, size_t size)
{
    const char *id = json_string_value(json_object_get(data, "order_id"));
    (void)ev;
    if (id)
        snprintf(out, size, "%s", id);
    return id ? 0 : TD_EINVAL;
}

static const td_saga_transition transitions[] = {
    {NULL, "OrderPlaced", "awaiting_stock", reserve, NULL, false, NULL},
    {"awaiting_stock", "StockReserved", "done", NULL, NULL, false, NULL},
};
static const char *const finals[] = {"done", NULL};
static const td_saga_definition saga_def = {"oom_saga", transitions, 2,         NULL,
                                            0,          finals,      correlate, NULL};

/* Whether the instance of o1 has taken its first transition. */
static bool moved_on(td_store *store)
{
    char *json = NULL;
    bool moved = td_saga_get(store, "oom_saga", "o1", &json) == 0 && strstr(json, "awaiting_stock");
    td_free(json);
    return moved;
}

/* Runs the saga until its instance moved on or timeout_ms passed (a wait
 * on observable state, polled); returns td_saga_check's verdict (or the
 * failure to make or start it). */
static int run_saga(td_store *store, int timeout_ms)
{
    td_saga_options opts = TD_SAGA_OPTIONS_INIT;
    opts.max_attempts = 1000;
    td_saga *saga = NULL;
    int rc = td_saga_new(&saga, store, &saga_def, NULL, &opts);
    if (rc == 0)
        rc = td_saga_start(saga);
    for (int ms = 0; rc == 0 && ms < timeout_ms && !moved_on(store); ms += 5) {
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
        rc = td_saga_check(saga);
    }
    td_saga_free(saga);
    return rc;
}

static void test_saga_transition(void **state)
{
    (void)state;
    long n = 0;
    for (bool injected = true; injected && n < MAX_STEPS; n++) {
        td_store *store = tt_fixture("saga");
        td_event placed = tt_event("OrderPlaced", "{\"order_id\":\"o1\"}");
        assert_td_ok(td_store_append(store, "order-o1", TD_EXPECT_ANY, &placed, 1));
        unsigned long before = arm(n);
        int rc = run_saga(store, 100);
        injected = disarm(before);
        assert_clean(rc);
        assert_td_ok(td_store_check(store));
        assert_td_ok(run_saga(store, 10000));
        assert_true(moved_on(store));
        /* the transition happened once: one ReserveStock, the instance moved on */
        td_read_query q = TD_READ_QUERY_INIT;
        q.type = "ReserveStock";
        assert_int_equal(tt_count(store, &q), 1);
        tt_fixture_free(store);
    }
    print_message("%s: %ld allocations failed in turn\n", __func__, n);
    assert_true(n < MAX_STEPS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append),
        cmocka_unit_test(test_unit_of_work),
        cmocka_unit_test(test_subscription_delivering),
        cmocka_unit_test(test_saga_transition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
