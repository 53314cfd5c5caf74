/*
 * test_upcast.c: event versioning. The registry refuses bad declarations;
 * steps chain from any old schema to the current one and keep the envelope;
 * reads through a handle with upcasters see the current schema while the
 * stored bytes stay as written; a subscription hands its handler upcast
 * events and parks one it cannot read (too new, or no step) with an error
 * naming its type and version, and goes on with the rest, in plain and in
 * transactional mode.
 */
#include <stdatomic.h>
#include <string.h>

#include "support.h"
#include "tidings/upcast.h"

static td_store *store;
static td_upcasters *ups;

/* 1 → 2: the currency arrives, "USD" where it was not said. */
static int add_currency(const td_event *ev, json_t *data, void *payload)
{
    (void)ev;
    (void)payload;
    if (json_object_get(data, "refuse"))
        return TD_EINVAL;
    return json_object_set_new(data, "currency", json_string("USD")) == 0 ? 0 : TD_ENOMEM;
}

/* 2 → 3: total_amount is renamed total. */
static int rename_total(const td_event *ev, json_t *data, void *payload)
{
    (void)ev;
    (void)payload;
    json_t *total = json_object_get(data, "total_amount");
    if (total && json_object_set(data, "total", total) < 0)
        return TD_ENOMEM;
    json_object_del(data, "total_amount");
    return 0;
}

static int setup(void **state)
{
    (void)state;
    store = tt_fixture("upcast");
    assert_td_ok(td_upcasters_new(&ups));
    assert_td_ok(td_upcasters_declare(ups, "OrderCreated", 3));
    assert_td_ok(td_upcasters_add(ups, "OrderCreated", 2, rename_total, NULL));
    assert_td_ok(td_upcasters_add(ups, "OrderCreated", 1, add_currency, NULL));
    assert_td_ok(td_upcasters_declare(ups, "Gap", 3)); /* no step from 1 */
    assert_td_ok(td_upcasters_add(ups, "Gap", 2, rename_total, NULL));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tt_fixture_free(store);
    td_upcasters_free(ups);
    return 0;
}

static int64_t append_v(const char *stream, const char *type, int schema, const char *data)
{
    td_event ev = tt_event(type, data);
    ev.schema_version = schema;
    assert_td_ok(td_store_append(store, stream, TD_EXPECT_ANY, &ev, 1));
    return ev.position;
}

static void test_registry_refuses_bad_declarations(void **state)
{
    (void)state;
    assert_td_code(td_upcasters_declare(ups, "OrderCreated", 4), TD_EEXISTS);
    assert_td_code(td_upcasters_declare(ups, "bad type!", 2), TD_EINVAL);
    assert_td_code(td_upcasters_declare(ups, "Other", 0), TD_EINVAL);
    assert_td_code(td_upcasters_add(ups, "Unknown", 1, add_currency, NULL), TD_ENOTFOUND);
    assert_td_code(td_upcasters_add(ups, "OrderCreated", 3, add_currency, NULL), TD_EINVAL);
    assert_td_code(td_upcasters_add(ups, "OrderCreated", 0, add_currency, NULL), TD_EINVAL);
    assert_td_code(td_upcasters_add(ups, "OrderCreated", 1, NULL, NULL), TD_EINVAL);
    assert_td_code(td_upcasters_add(ups, "OrderCreated", 1, add_currency, NULL), TD_EEXISTS);
    assert_int_equal(td_upcasters_current(ups, "OrderCreated"), 3);
    assert_int_equal(td_upcasters_current(ups, "Unknown"), 0);
}

static void test_steps_chain_and_keep_the_envelope(void **state)
{
    (void)state;
    td_event ev = tt_event("OrderCreated", "{\"order_id\":\"o1\",\"total_amount\":250}");
    ev.position = 7;
    ev.version = 2;
    ev.stream = "order-o1";
    ev.schema_version = 1;
    ev.correlation_id = "c-1";
    memset(ev.hash, 0xab, sizeof ev.hash);
    td_event *up = NULL;
    assert_td_ok(td_upcast(ups, &ev, &up));
    assert_non_null(up);
    assert_int_equal(up->schema_version, 3);
    assert_int_equal(up->position, 7);
    assert_int_equal(up->version, 2);
    assert_string_equal(up->stream, "order-o1");
    assert_string_equal(up->correlation_id, "c-1");
    assert_memory_equal(up->hash, ev.hash, sizeof ev.hash);
    json_t *data = NULL;
    assert_td_ok(td_event_data(&data, up));
    assert_string_equal(json_string_value(json_object_get(data, "currency")), "USD");
    assert_int_equal(json_integer_value(json_object_get(data, "total")), 250);
    assert_null(json_object_get(data, "total_amount"));
    json_decref(data);
    td_event_free(up);

    ev.schema_version = 2; /* from the middle of the chain: no currency step */
    assert_td_ok(td_upcast(ups, &ev, &up));
    assert_null(strstr(up->data, "currency"));
    assert_non_null(strstr(up->data, "\"total\":250"));
    td_event_free(up);

    ev.schema_version = 3; /* current: nothing to do */
    assert_td_ok(td_upcast(ups, &ev, &up));
    assert_null(up);
    ev.type = "Unrelated";
    ev.schema_version = 42; /* undeclared types read as stored */
    assert_td_ok(td_upcast(ups, &ev, &up));
    assert_null(up);
}

static void test_unreadable_versions_say_which(void **state)
{
    (void)state;
    td_event ev = tt_event("OrderCreated", "{}");
    ev.position = 5;
    ev.schema_version = 4;
    td_event *up = NULL;
    assert_td_code(td_upcast(ups, &ev, &up), TD_EVERSION);
    assert_null(up);
    assert_non_null(strstr(td_error_last(), "OrderCreated schema 4"));
    ev.type = "Gap";
    ev.schema_version = 1;
    assert_td_code(td_upcast(ups, &ev, &up), TD_EVERSION);
    assert_non_null(strstr(td_error_last(), "no upcaster from schema 1 to 2"));
    ev.type = "OrderCreated";
    ev.data = "{\"refuse\":true}";
    assert_td_code(td_upcast(ups, &ev, &up), TD_EINVAL);
    assert_non_null(strstr(td_error_last(), "from schema 1 to 2 failed"));
}

static int keep_first(const td_event *ev, void *payload)
{
    char **out = payload;
    if (*out == NULL)
        *out = strndup(ev->data, ev->data_len);
    return *out ? 0 : TD_ENOMEM;
}

typedef struct read_in_unit {
    const char *stream;
    char *data;
} read_in_unit;

static int read_unit(td_txn *txn, void *payload)
{
    read_in_unit *r = payload;
    return td_txn_read_stream(txn, r->stream, 1, 0, keep_first, &r->data);
}

static void test_reads_upcast_and_the_store_keeps_the_bytes(void **state)
{
    (void)state;
    append_v("order-o1", "OrderCreated", 1, "{\"total_amount\":5}");
    char *as_stored = NULL, *as_read = NULL, *from_stream = NULL;
    td_read_query q = TD_READ_QUERY_INIT;
    assert_td_ok(td_store_read(store, &q, keep_first, &as_stored));
    assert_string_equal(as_stored, "{\"total_amount\":5}");

    td_store_set_upcasters(store, ups);
    assert_ptr_equal(td_store_upcasters(store), ups);
    assert_td_ok(td_store_read(store, &q, keep_first, &as_read));
    assert_string_equal(as_read, "{\"currency\":\"USD\",\"total\":5}");
    assert_td_ok(td_store_read_stream(store, "order-o1", 1, 0, keep_first, &from_stream));
    assert_string_equal(from_stream, as_read);
    read_in_unit r = {"order-o1", NULL};
    assert_td_ok(td_transact(store, read_unit, &r));
    assert_string_equal(r.data, as_read);

    append_v("order-o2", "OrderCreated", 9, "{}"); /* a read that meets it fails, saying why */
    char *ignored = NULL;
    assert_td_code(td_store_read(store, &q, keep_first, &ignored), TD_EVERSION);
    assert_non_null(strstr(td_error_last(), "OrderCreated schema 9"));
    free(ignored);

    td_store_set_upcasters(store, NULL);
    char *again = NULL;
    assert_td_ok(td_store_read(store, &q, keep_first, &again));
    assert_string_equal(again, as_stored); /* the bytes as written */
    free(again);
    free(as_stored);
    free(as_read);
    free(from_stream);
    free(r.data);
}

/* ---- subscriptions ------------------------------------------------------------ */

static atomic_int seen_current, seen_other;

static int handler(td_delivery *d, const td_event *ev, void *payload)
{
    (void)d;
    (void)payload;
    if (strcmp(ev->type, "OrderCreated") != 0 || ev->schema_version != 3 ||
        !strstr(ev->data, "\"currency\":\"USD\""))
        atomic_fetch_add(&seen_other, 1);
    else
        atomic_fetch_add(&seen_current, 1);
    return 0;
}

typedef struct dead {
    int count;
    char error[256];
    int64_t position;
} dead;

static int keep_dead(const td_dead_letter *e, void *payload)
{
    dead *l = payload;
    l->count++;
    l->position = e->position;
    snprintf(l->error, sizeof l->error, "%s", e->last_error);
    return 0;
}

static void run_subscription(bool transactional)
{
    atomic_store(&seen_current, 0);
    atomic_store(&seen_other, 0);
    append_v("order-a", "OrderCreated", 1, "{\"total_amount\":1}");
    int64_t too_new = append_v("order-a", "OrderCreated", 7, "{\"total_amount\":2}");
    append_v("order-a", "OrderCreated", 2, "{\"total_amount\":3,\"currency\":\"USD\"}");
    append_v("order-b", "OrderCreated", 3, "{\"total\":4,\"currency\":\"USD\"}");
    td_store_set_upcasters(store, ups);

    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    opts.name = "reader";
    opts.lanes = 2;
    opts.transactional = transactional;
    opts.dlq_mode = TD_DLQ_SKIP;
    td_subscription *sub = NULL;
    assert_td_ok(td_subscription_new(&sub, store, &opts, handler, NULL));
    assert_td_ok(td_subscription_start(sub));
    int64_t head = 0;
    assert_td_ok(td_store_head(store, &head));
    assert_td_ok(td_subscription_wait_until(sub, head, 20000));
    assert_td_ok(td_subscription_stop(sub));
    td_subscription_free(sub);

    assert_int_equal(atomic_load(&seen_current), 3);
    assert_int_equal(atomic_load(&seen_other), 0);
    dead l = {0};
    assert_td_ok(td_dlq_list(store, NULL, keep_dead, &l));
    assert_int_equal(l.count, 1);
    assert_int_equal(l.position, too_new);
    assert_non_null(strstr(l.error, "OrderCreated schema 7 cannot be read"));
}

static void test_subscription_parks_what_it_cannot_read(void **state)
{
    (void)state;
    run_subscription(false);
}

static void test_transactional_subscription_parks_what_it_cannot_read(void **state)
{
    (void)state;
    run_subscription(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registry_refuses_bad_declarations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_steps_chain_and_keep_the_envelope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_versions_say_which, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_upcast_and_the_store_keeps_the_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_subscription_parks_what_it_cannot_read, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_transactional_subscription_parks_what_it_cannot_read,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
