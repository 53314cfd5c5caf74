/*
 * test_saga.c: the saga engine with a small order saga declared here.
 *
 *   (start) ─OrderPlaced─▶ awaiting_stock          publishes ReserveStock
 *   awaiting_stock ─StockReserved─▶ awaiting_payment  publishes ChargeCard,
 *                                   registers release_stock, sets a deadline
 *   awaiting_payment ─PaymentSucceeded─▶ done      publishes OrderConfirmed
 *   awaiting_payment ─PaymentFailed─▶ cancelled    (fail: compensations run)
 *   awaiting_payment ─DeadlineExpired─▶ cancelled  (fail)
 *   * ─OrderCancelRequested─▶ cancelled           (fail)
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

static td_store *store;
static atomic_int deadline_ms = 60000;
static atomic_int failing_actions;

static int publish(td_saga_ctx *ctx, const char *category, const char *type, const char *reason)
{
    char stream[160], data[200];
    snprintf(stream, sizeof stream, "%s-%s", category, td_saga_correlation_id(ctx));
    snprintf(data, sizeof data, "{\"order_id\":\"%s\",\"reason\":\"%s\"}",
             td_saga_correlation_id(ctx), reason);
    td_event ev = tt_event(type, data);
    return td_saga_publish(ctx, stream, TD_EXPECT_ANY, &ev, 1);
}

static int reserve(td_saga_ctx *ctx, const td_event *ev, void *payload)
{
    (void)ev;
    (void)payload;
    json_object_set_new(td_saga_data(ctx), "placed", json_true());
    return publish(ctx, "stock", "ReserveStock", "");
}

static int charge(td_saga_ctx *ctx, const td_event *ev, void *payload)
{
    (void)ev;
    (void)payload;
    if (atomic_load(&failing_actions) > 0) {
        atomic_fetch_sub(&failing_actions, 1);
        return TD_EIO; /* retried: nothing of the transition may stay */
    }
    int error = publish(ctx, "payment", "ChargeCard", "");
    return error < 0
               ? error
               : td_saga_set_deadline(ctx, td_time_now() + atomic_load(&deadline_ms) * 1000LL);
}

static int confirm(td_saga_ctx *ctx, const td_event *ev, void *payload)
{
    (void)ev;
    (void)payload;
    return publish(ctx, "order", "OrderConfirmed", "");
}

static int cancel(td_saga_ctx *ctx, const td_event *ev, void *payload)
{
    (void)payload;
    return publish(ctx, "order", "OrderCancelled", ev->type);
}

static int release_stock(td_saga_ctx *ctx, const td_event *ev, void *payload)
{
    (void)ev;
    (void)payload;
    return publish(ctx, "stock", "ReleaseStock", "");
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
    {"awaiting_stock", "StockReserved", "awaiting_payment", charge, "release_stock", false, NULL},
    {"awaiting_payment", "PaymentSucceeded", "done", confirm, NULL, false, NULL},
    {"awaiting_payment", "PaymentFailed", "cancelled", cancel, NULL, true, NULL},
    {"awaiting_payment", TD_SAGA_DEADLINE_EXPIRED, "cancelled", cancel, NULL, true, NULL},
    {"*", "OrderCancelRequested", "cancelled", cancel, NULL, true, NULL},
};
static const td_saga_compensation compensations[] = {{"release_stock", release_stock}};
static const char *const finals[] = {"done", "cancelled", NULL};
static const td_saga_definition order_saga = {
    "order_saga", transitions, sizeof transitions / sizeof transitions[0], compensations, 1, finals,
    correlate,    NULL};

static td_saga *start_saga_of(const td_saga_definition *def)
{
    td_saga *saga = NULL;
    td_saga_options opts = TD_SAGA_OPTIONS_INIT;
    opts.timer_interval_ms = 20;
    assert_td_ok(td_saga_new(&saga, store, def, NULL, &opts));
    assert_td_ok(td_saga_start(saga));
    return saga;
}

static td_saga *start_saga(void)
{
    return start_saga_of(&order_saga);
}

static int setup(void **state)
{
    (void)state;
    store = tt_fixture("saga");
    atomic_store(&deadline_ms, 60000);
    atomic_store(&failing_actions, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tt_fixture_free(store);
    return 0;
}

static void send(const char *category, const char *type, const char *order)
{
    char stream[160], data[160];
    snprintf(stream, sizeof stream, "%s-%s", category, order);
    snprintf(data, sizeof data, "{\"order_id\":\"%s\"}", order);
    td_event ev = tt_event(type, data);
    assert_td_ok(td_store_append(store, stream, TD_EXPECT_ANY, &ev, 1));
}

static int64_t count_type(const char *type)
{
    td_read_query q = TD_READ_QUERY_INIT;
    q.type = type;
    return tt_count(store, &q);
}

static void wait_for(const char *type, int64_t n)
{
    for (int i = 0; i < 4000 && count_type(type) < n; i++)
        usleep(5000);
    assert_int_equal(count_type(type), n);
}

static json_t *instance(const char *order)
{
    char *text = NULL;
    json_error_t err;
    assert_td_ok(td_saga_get(store, "order_saga", order, &text));
    json_t *json = json_loads(text, 0, &err);
    td_free(text);
    assert_non_null(json);
    return json;
}

static void wait_state(const char *order, const char *state)
{
    for (int i = 0; i < 4000; i++) {
        char *text = NULL;
        if (td_saga_get(store, "order_saga", order, &text) == 0) {
            json_error_t err;
            json_t *json = json_loads(text, 0, &err);
            bool there =
                json && strcmp(json_string_value(json_object_get(json, "state")), state) == 0;
            json_decref(json);
            td_free(text);
            if (there)
                return;
        }
        usleep(5000);
    }
    fail_msg("instance %s never reached %s", order, state);
}

static void test_happy_path(void **state)
{
    (void)state;
    td_saga *saga = start_saga();
    send("order", "OrderPlaced", "o1");
    wait_for("ReserveStock", 1);
    send("stock", "StockReserved", "o1");
    wait_for("ChargeCard", 1);
    send("payment", "PaymentSucceeded", "o1");
    wait_state("o1", "done");
    json_t *i = instance("o1");
    assert_true(json_is_true(json_object_get(i, "completed")));
    assert_true(json_is_null(json_object_get(i, "deadline")));
    assert_int_equal(json_array_size(json_object_get(i, "history")), 3);
    assert_true(json_is_true(json_object_get(json_object_get(i, "data"), "placed")));
    json_decref(i);
    wait_for("OrderConfirmed", 1);
    assert_int_equal(count_type("ReleaseStock"), 0);
    td_saga_free(saga);
}

static void test_failure_runs_compensations(void **state)
{
    (void)state;
    td_saga *saga = start_saga();
    send("order", "OrderPlaced", "o2");
    wait_for("ReserveStock", 1);
    send("stock", "StockReserved", "o2");
    wait_for("ChargeCard", 1);
    send("payment", "PaymentFailed", "o2");
    wait_state("o2", "cancelled");
    wait_for("ReleaseStock", 1);
    wait_for("OrderCancelled", 1);
    json_t *i = instance("o2");
    assert_int_equal(json_array_size(json_object_get(i, "compensations")), 0);
    json_decref(i);
    td_saga_free(saga);
}

static void test_deadline_fires_once(void **state)
{
    (void)state;
    atomic_store(&deadline_ms, 150);
    td_saga *saga = start_saga();
    send("order", "OrderPlaced", "o3");
    wait_for("ReserveStock", 1);
    send("stock", "StockReserved", "o3");
    wait_state("o3", "cancelled");
    wait_for("ReleaseStock", 1);
    usleep(300000);
    assert_int_equal(count_type(TD_SAGA_DEADLINE_EXPIRED), 1);
    td_read_query q = TD_READ_QUERY_INIT;
    q.stream = "deadline-order_saga.o3";
    assert_int_equal(tt_count(store, &q), 1);
    td_saga_free(saga);
}

static void test_unfitting_events_are_recorded_and_ignored(void **state)
{
    (void)state;
    td_saga *saga = start_saga();
    send("payment", "PaymentSucceeded", "o4"); /* no instance, starts none */
    send("order", "OrderPlaced", "o4");
    wait_for("ReserveStock", 1);
    send("payment", "PaymentSucceeded", "o4"); /* too early: recorded, ignored */
    send("order", "OrderCancelRequested", "o4");
    wait_state("o4", "cancelled");
    send("stock", "StockReserved", "o4"); /* after the end */
    send("order", "Unrelated", "o4");
    send("order", "OrderPlaced", "o5"); /* a later event, to know the ones before are done */
    wait_for("ReserveStock", 2);
    json_t *i = instance("o4");
    json_t *ignored = json_object_get(i, "ignored");
    assert_int_equal(json_array_size(ignored), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ignored, 0), "event")),
                        "PaymentSucceeded");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ignored, 1), "event")),
                        "StockReserved");
    assert_int_equal(count_type("ReleaseStock"), 0); /* nothing was registered yet */
    json_decref(i);
    char *none = NULL;
    assert_td_code(td_saga_get(store, "order_saga", "nobody", &none), TD_ENOTFOUND);
    td_saga_free(saga);
}

/* Routine events that fit no transition leave the instance as it was. */
static void test_routine_events_are_passed_over(void **state)
{
    (void)state;
    static const char *const routine[] = {"StockReserved", "Unrelated", NULL};
    td_saga_definition def = order_saga;
    def.routine = routine;
    td_saga *saga = start_saga_of(&def);
    send("order", "OrderPlaced", "o6");
    wait_for("ReserveStock", 1);
    send("payment", "PaymentSucceeded", "o6"); /* too early, not routine: recorded */
    send("stock", "StockReserved", "o6");      /* fits: moves on */
    wait_for("ChargeCard", 1);
    json_t *before = instance("o6");
    send("stock", "StockReserved", "o6"); /* another line's: routine, passed over */
    send("order", "Unrelated", "o6");
    send("order", "OrderPlaced", "o7"); /* a later event, to know the ones before are done */
    wait_for("ReserveStock", 2);
    json_t *after = instance("o6");
    assert_true(json_equal(before, after)); /* not written: updated_at is the same too */
    assert_int_equal(json_array_size(json_object_get(after, "ignored")), 1);
    assert_string_equal(json_string_value(json_object_get(after, "state")), "awaiting_payment");
    json_decref(before);
    json_decref(after);
    td_saga_free(saga);
}

typedef struct edit {
    const char *key;
    const char *json;
} edit;

static int put_instance(td_txn *txn, void *payload)
{
    const edit *e = payload;
    return td_txn_doc_put(txn, "tidings_sagas", e->key, e->json, 0);
}

/* The engine keeps instances it saved in memory (a parse saved per
 * transition), but only for the text stored: an instance rewritten behind
 * its back is read as stored. */
static void test_instance_changed_behind_the_engine_is_read_as_stored(void **state)
{
    (void)state;
    td_saga *saga = start_saga();
    send("order", "OrderPlaced", "o8");
    wait_for("ReserveStock", 1);
    json_t *i = instance("o8"); /* awaiting_stock, as the engine saved and holds it */
    json_object_set_new(i, "state", json_string("awaiting_payment"));
    char *text = json_dumps(i, JSON_COMPACT);
    edit e = {"order_saga|o8", text};
    assert_td_ok(td_transact(store, put_instance, &e));
    free(text);
    json_decref(i);
    send("payment", "PaymentSucceeded", "o8"); /* fits only the edited state */
    wait_state("o8", "done");
    wait_for("OrderConfirmed", 1);
    td_saga_free(saga);
}

static void test_failed_action_leaves_nothing_and_is_retried(void **state)
{
    (void)state;
    atomic_store(&failing_actions, 2);
    td_saga *saga = start_saga();
    send("order", "OrderPlaced", "o6");
    wait_for("ReserveStock", 1);
    send("stock", "StockReserved", "o6");
    wait_state("o6", "awaiting_payment");
    assert_int_equal(count_type("ChargeCard"), 1);
    json_t *i = instance("o6");
    assert_int_equal(json_array_size(json_object_get(i, "compensations")), 1);
    assert_int_equal(json_array_size(json_object_get(i, "history")), 2);
    json_decref(i);
    td_saga_free(saga);
}

static void test_many_instances_exactly_once_across_restarts(void **state)
{
    (void)state;
    char order[32];
    td_saga *saga = start_saga();
    for (int n = 0; n < 40; n++) {
        snprintf(order, sizeof order, "m%d", n);
        send("order", "OrderPlaced", order);
        if (n == 20) { /* stop and start in the middle */
            td_saga_free(saga);
            saga = start_saga();
        }
    }
    wait_for("ReserveStock", 40);
    for (int n = 0; n < 40; n++) {
        snprintf(order, sizeof order, "m%d", n);
        send("stock", "StockReserved", order);
    }
    wait_for("ChargeCard", 40);
    for (int n = 0; n < 40; n++) {
        snprintf(order, sizeof order, "m%d", n);
        send("payment", n % 2 ? "PaymentSucceeded" : "PaymentFailed", order);
    }
    wait_for("OrderConfirmed", 20);
    wait_for("OrderCancelled", 20);
    wait_for("ReleaseStock", 20);
    td_saga_free(saga);
    usleep(50000);
    assert_int_equal(count_type("ReserveStock"), 40); /* each command once */
    assert_int_equal(count_type("ChargeCard"), 40);
}

static void test_bad_definitions(void **state)
{
    (void)state;
    td_saga *saga = NULL;
    td_saga_definition bad = order_saga;
    bad.name = "Order Saga";
    assert_td_code(td_saga_new(&saga, store, &bad, NULL, NULL), TD_EINVAL);
    bad = order_saga;
    td_saga_transition broken[] = {{NULL, "OrderPlaced", "x", NULL, "nope", false, NULL}};
    bad.transitions = broken;
    bad.transition_count = 1;
    assert_td_code(td_saga_new(&saga, store, &bad, NULL, NULL), TD_EINVAL);
    bad = order_saga;
    bad.correlate = NULL;
    assert_td_code(td_saga_new(&saga, store, &bad, NULL, NULL), TD_EINVAL);
    assert_null(saga);
}

/* Operators browse instances by state, a page at a time, and count them. */
typedef struct browsed {
    char ids[16][40];
    char states[16][40];
    int n;
} browsed;

static int note_instance(const char *id, const char *state, const char *json, size_t len,
                         void *payload)
{
    browsed *b = payload;
    assert_true(b->n < 16);
    assert_non_null(strstr(json, id)); /* the whole document */
    assert_true(len == strlen(json));
    snprintf(b->ids[b->n], sizeof b->ids[0], "%s", id);
    snprintf(b->states[b->n++], sizeof b->states[0], "%s", state ? state : "");
    return 0;
}

static int note_state(const char *state, int64_t instances, void *payload)
{
    browsed *b = payload;
    snprintf(b->states[b->n], sizeof b->states[0], "%s", state);
    snprintf(b->ids[b->n++], sizeof b->ids[0], "%lld", (long long)instances);
    return 0;
}

static void test_instances_listed_by_state(void **state)
{
    (void)state;
    td_saga *saga = start_saga();
    /* another saga whose keys sort right beside: none of its instances is
     * listed */
    td_saga_definition other = order_saga;
    other.name = "order_sag";
    td_saga *beside = start_saga_of(&other);
    const char *orders[] = {"b2", "a1", "c3", "d4", "e5"};
    for (int i = 0; i < 5; i++)
        send("order", "OrderPlaced", orders[i]);
    for (int i = 0; i < 5; i++)
        wait_state(orders[i], "awaiting_stock");
    send("stock", "StockReserved", "c3");
    send("order", "OrderCancelRequested", "d4");
    wait_state("c3", "awaiting_payment");
    wait_state("d4", "cancelled");
    char *text = NULL;
    for (int i = 0; i < 4000 && td_saga_get(store, "order_sag", "e5", &text) < 0; i++)
        usleep(5000);
    assert_non_null(text);
    td_free(text);

    browsed b = {0};
    td_saga_query q = TD_SAGA_QUERY_INIT;
    q.saga = "order_saga";
    assert_td_ok(td_saga_list(store, &q, note_instance, &b));
    assert_int_equal(b.n, 5);
    assert_string_equal(b.ids[0], "a1"); /* by correlation id */
    assert_string_equal(b.ids[4], "e5");
    assert_string_equal(b.states[2], "awaiting_payment");
    /* one state, two at a time, each page after the last one's last id */
    memset(&b, 0, sizeof b);
    q.state = "awaiting_stock";
    q.limit = 2;
    assert_td_ok(td_saga_list(store, &q, note_instance, &b));
    assert_int_equal(b.n, 2);
    q.after = b.ids[1];
    assert_td_ok(td_saga_list(store, &q, note_instance, &b));
    assert_int_equal(b.n, 3);
    assert_string_equal(b.ids[0], "a1");
    assert_string_equal(b.ids[1], "b2");
    assert_string_equal(b.ids[2], "e5");
    q.after = b.ids[2];
    assert_td_ok(td_saga_list(store, &q, note_instance, &b));
    assert_int_equal(b.n, 3); /* the end */

    memset(&b, 0, sizeof b);
    assert_td_ok(td_saga_states(store, "order_saga", note_state, &b));
    assert_int_equal(b.n, 3); /* by state name */
    assert_string_equal(b.states[0], "awaiting_payment");
    assert_string_equal(b.ids[0], "1");
    assert_string_equal(b.states[1], "awaiting_stock");
    assert_string_equal(b.ids[1], "3");
    assert_string_equal(b.states[2], "cancelled");
    assert_string_equal(b.ids[2], "1");
    memset(&b, 0, sizeof b);
    assert_td_ok(td_saga_states(store, "nothing_here", note_state, &b));
    assert_int_equal(b.n, 0);
    assert_td_code(td_saga_states(store, "Bad Name", note_state, &b), TD_EINVAL);
    q.after = "";
    assert_td_code(td_saga_list(store, &q, note_instance, &b), TD_EINVAL);
    td_saga_free(beside);
    td_saga_free(saga);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_happy_path),
        T(test_failure_runs_compensations),
        T(test_deadline_fires_once),
        T(test_unfitting_events_are_recorded_and_ignored),
        T(test_routine_events_are_passed_over),
        T(test_instance_changed_behind_the_engine_is_read_as_stored),
        T(test_failed_action_leaves_nothing_and_is_retried),
        T(test_many_instances_exactly_once_across_restarts),
        T(test_bad_definitions),
        T(test_instances_listed_by_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
