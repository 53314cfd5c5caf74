/*
 * test_preconditions.c: every public entry point that takes a handle or a
 * required argument refuses NULL with TD_EINVAL (and a message naming the
 * function) instead of crashing; free functions and setters accept NULL
 * and do nothing; accessors answer NULL, 0 or false. One call per line, so
 * a crash names the entry point that is missing its check.
 */
#include <stdio.h>
#include <string.h>

#include "support.h"

#define REFUSES(call) assert_td_code((call), TD_EINVAL)

static int unit(td_txn *txn, void *payload)
{
    (void)txn;
    (void)payload;
    return 0;
}

static int on_event(const td_event *ev, void *payload)
{
    (void)ev;
    (void)payload;
    return 0;
}

static int on_doc(const char *key, const char *json, size_t len, void *payload)
{
    (void)key;
    (void)json;
    (void)len;
    (void)payload;
    return 0;
}

static int handler(td_delivery *d, const td_event *ev, void *payload)
{
    (void)d;
    (void)ev;
    (void)payload;
    return 0;
}

static void test_store(void **state)
{
    (void)state;
    td_store *store = NULL;
    int64_t n = 0;
    char *json = NULL;
    size_t len = 0;
    td_event ev = tt_event("T", "{}");
    td_read_query q = TD_READ_QUERY_INIT;
    td_uuid id = {{0}};
    td_writer_stats ws;
    td_store_stats ss;
    REFUSES(td_store_open(NULL, "sqlite:x.db", NULL));
    REFUSES(td_store_open(&store, NULL, NULL));
    assert_null(store);
    assert_td_ok(td_store_destroy(NULL)); /* accepts NULL, like td_store_free */
    REFUSES(td_transact(NULL, unit, NULL));
    REFUSES(td_store_append(NULL, "order-1", TD_EXPECT_ANY, &ev, 1));
    REFUSES(td_store_read(NULL, &q, on_event, NULL));
    REFUSES(td_store_read_stored(NULL, &q, on_event, NULL));
    REFUSES(td_store_read_stream(NULL, "order-1", 1, 0, on_event, NULL));
    REFUSES(td_store_read_event(NULL, &id, on_event, NULL));
    REFUSES(td_store_stream_version(NULL, "order-1", &n));
    REFUSES(td_store_head(NULL, &n));
    REFUSES(td_store_wait(NULL, 0, 0, &n));
    REFUSES(td_store_doc_get(NULL, "c", "k", &json, &len));
    REFUSES(td_store_doc_list(NULL, "c", NULL, 0, on_doc, NULL));
    REFUSES(td_store_writer_stats(NULL, &ws));
    REFUSES(td_store_stats_get(NULL, &ss));
    REFUSES(td_store_check(NULL));
    REFUSES(td_store_on_commit(NULL, NULL, NULL));
    REFUSES(td_store_hash_before(NULL, 1, (uint8_t[TD_HASH_LEN]){0}));
    REFUSES(td_store_audit_verify(NULL, 0, 0, &n, &n));
    REFUSES(td_store_read_fields(NULL, &q, (const char *const[]){"f", NULL}, NULL, NULL));
    REFUSES(td_store_doc_collections(NULL, NULL, NULL));
    REFUSES(td_store_type_counts(NULL, NULL, NULL));
    td_store_free(NULL);
    td_store_set_append_hook(NULL, NULL, NULL);
    td_store_set_tracer(NULL, NULL);
    td_store_set_upcasters(NULL, NULL);
    td_store_remove_commit_listener(NULL, NULL, NULL);
    assert_null(td_store_backend(NULL));
    assert_null(td_store_url(NULL));
    assert_null(td_store_upcasters(NULL));
}

static void test_txn(void **state)
{
    (void)state;
    int64_t n = 0;
    char *json = NULL;
    size_t len = 0;
    td_event ev = tt_event("T", "{}");
    td_read_query q = TD_READ_QUERY_INIT;
    REFUSES(td_txn_append(NULL, "order-1", TD_EXPECT_ANY, &ev, 1));
    REFUSES(td_txn_import(NULL, &ev));
    REFUSES(td_txn_stream_version(NULL, "order-1", &n));
    REFUSES(td_txn_read_stream(NULL, "order-1", 1, 0, on_event, NULL));
    REFUSES(td_txn_read(NULL, &q, on_event, NULL));
    REFUSES(td_txn_doc_put(NULL, "c", "k", "{}", 0));
    REFUSES(td_txn_doc_get(NULL, "c", "k", &json, &len));
    REFUSES(td_txn_doc_delete(NULL, "c", "k"));
    REFUSES(td_txn_doc_list(NULL, "c", NULL, 0, on_doc, NULL));
    REFUSES(td_txn_try(NULL, unit, NULL));
    REFUSES(td_publish_domain(NULL, "order-1", TD_EXPECT_ANY, &ev));
    REFUSES(td_inbox_claim(NULL, "consumer", &ev.id));
    REFUSES(td_txn_doc_put_json(NULL, "c", "k", NULL));
    REFUSES(td_publish_integration(NULL, "order-1", TD_EXPECT_ANY, &ev));
    REFUSES(td_publish_batch(NULL, "order-1", TD_EXPECT_ANY, &ev, 1));
    td_txn_set_cause(NULL, &ev);
    td_txn_set_trace(NULL, NULL);
    assert_null(td_txn_store(NULL));
}

static void test_subscription_and_saga(void **state)
{
    (void)state;
    td_store *store = tt_fixture("preconditions");
    td_subscription *sub = NULL;
    td_subscription_options so = TD_SUBSCRIPTION_OPTIONS_INIT;
    so.name = "s";
    REFUSES(td_subscription_new(NULL, store, &so, handler, NULL));
    REFUSES(td_subscription_new(&sub, NULL, &so, handler, NULL));
    REFUSES(td_subscription_new(&sub, store, NULL, handler, NULL));
    REFUSES(td_subscription_new(&sub, store, &so, NULL, NULL));
    so.version = 99;
    REFUSES(td_subscription_new(&sub, store, &so, handler, NULL));
    assert_null(sub);
    so.version = 1;  /* before eager: read as far as it went */
    so.eager = true; /* past a version 1 struct's end: not read (else refused: not transactional) */
    assert_td_ok(td_subscription_new(&sub, store, &so, handler, NULL));
    td_subscription_free(sub);
    so.version = 2;           /* before partition: read as far as it went */
    so.partition.count = 999; /* past a version 2 struct's end: not read (else refused) */
    so.eager = false;
    assert_td_ok(td_subscription_new(&sub, store, &so, handler, NULL));
    assert_string_equal(td_subscription_name(sub), "s");
    td_subscription_free(sub);
    REFUSES(td_subscription_try_start(NULL));
    assert_null(td_subscription_name(NULL));
    REFUSES(td_subscription_start(NULL));
    REFUSES(td_subscription_stop(NULL));
    REFUSES(td_subscription_check(NULL));
    REFUSES(td_subscription_wait_until(NULL, 1, 0));
    REFUSES(td_subscriptions_list(NULL, NULL, NULL));
    td_subscription_free(NULL);

    td_saga *saga = NULL;
    REFUSES(td_saga_new(&saga, store, NULL, NULL, NULL));
    REFUSES(td_saga_new(NULL, store, NULL, NULL, NULL));
    REFUSES(td_saga_start(NULL));
    REFUSES(td_saga_try_start(NULL));
    assert_null(td_saga_subscription_name(NULL));
    REFUSES(td_saga_stop(NULL));
    REFUSES(td_saga_check(NULL));
    REFUSES(td_saga_get(NULL, "s", "c", NULL));
    td_saga_free(NULL);

    td_balancer *b = NULL;
    REFUSES(td_balancer_new(NULL, store, NULL));
    REFUSES(td_balancer_new(&b, NULL, NULL));
    REFUSES(td_balancer_new(&b, store, ""));
    REFUSES(td_balancer_new(&b, store, "a\nlabel"));
    assert_null(b);
    REFUSES(td_balancer_add_subscription(NULL, NULL));
    REFUSES(td_balancer_add_saga(NULL, NULL));
    REFUSES(td_balancer_tick(NULL));
    REFUSES(td_balancer_parts(NULL, NULL, NULL));
    REFUSES(td_instances_list(NULL, NULL, NULL));
    assert_null(td_balancer_id(NULL));
    assert_null(td_balancer_label(NULL));
    assert_int_equal(td_balancer_live(NULL), 0);
    td_balancer_stop(NULL);
    td_balancer_free(NULL);
    char name[8];
    unsigned partitions = 0;
    td_partition part;
    REFUSES(td_partition_name(NULL, 8, "s", NULL));
    REFUSES(td_partition_name(name, sizeof name, NULL, NULL));
    REFUSES(td_partition_count(NULL, "s", &partitions));
    assert_false(td_partition_parse(NULL, name, sizeof name, &part));
    assert_int_equal(td_partition_of(NULL, 4), 0);

    size_t count = 0;
    REFUSES(td_dlq_list(NULL, NULL, NULL, NULL));
    REFUSES(td_dlq_retry(NULL, "id", "who"));
    REFUSES(td_dlq_retry_all(NULL, NULL, "who", &count));
    REFUSES(td_dlq_drop(NULL, "id", "who"));
    REFUSES(td_dlq_audit(NULL, NULL, NULL));
    REFUSES(td_replay_list(NULL, NULL, NULL));
    REFUSES(td_replay_request_add(NULL, NULL, NULL));
    REFUSES(td_dlq_get(NULL, "id", NULL, NULL));
    bool seen = false;
    td_uuid id = {{0}};
    REFUSES(td_inbox_seen(NULL, "consumer", &id, &seen));
    REFUSES(td_inbox_seen(store, "consumer", &id, NULL));
    REFUSES(td_delivery_fail(NULL, TD_EIO, "why"));
    REFUSES(td_delivery_publish(NULL, "order-1", TD_EXPECT_ANY, NULL, 0));
    REFUSES(td_saga_publish(NULL, "order-1", TD_EXPECT_ANY, NULL, 0));
    REFUSES(td_saga_set_deadline(NULL, 1));
    bool in_use = false;
    REFUSES(td_keyring_in_use(NULL, &in_use));
    REFUSES(td_keyring_add_subject(NULL, NULL, "user-1"));
    REFUSES(td_keyring_forget(NULL, NULL, "user-1"));
    REFUSES(td_keyring_forgotten(NULL, NULL, "user-1", &in_use));
    REFUSES(td_keyring_seal(NULL, NULL, "user-1", NULL, NULL, 0));
    REFUSES(td_keyring_open(NULL, NULL, NULL));
    REFUSES(td_keyring_erase(NULL, (const char *const[]){"email", NULL}));
    json_t *not_an_object = json_array();
    REFUSES(td_keyring_erase(not_an_object, (const char *const[]){"email", NULL}));
    json_decref(not_an_object);
    unsigned char master[TD_MASTER_KEY_BYTES];
    REFUSES(td_master_key_read(master, NULL));

    td_relay *relay = NULL;
    td_consumer *consumer = NULL;
    REFUSES(td_relay_new(NULL, store, NULL));
    REFUSES(td_relay_new(&relay, NULL, NULL));
    assert_null(relay);
    REFUSES(td_consumer_new(NULL, store, NULL));
    REFUSES(td_consumer_new(&consumer, store, NULL));
    assert_null(consumer);
    REFUSES(td_relay_wait_until(NULL, 1, 0));
    tt_fixture_free(store);
}

static int correlate(const td_event *ev, json_t *data, char *out, size_t size)
{
    (void)ev;
    (void)data;
    snprintf(out, size, "one");
    return 0;
}

static void test_saga_options_version(void **state)
{
    (void)state;
    static const td_saga_transition t[] = {{NULL, "A", "done", NULL, NULL, false, NULL}};
    static const char *const finals[] = {"done", NULL};
    td_saga_definition def = {"v_saga", t, 1, NULL, 0, finals, correlate, NULL};
    td_store *store = tt_fixture("saga_version");
    td_saga *saga = NULL;
    td_saga_options opts = TD_SAGA_OPTIONS_INIT;
    opts.version = 99;
    REFUSES(td_saga_new(&saga, store, &def, NULL, &opts));
    assert_null(saga);
    opts.version = 0;
    REFUSES(td_saga_new(&saga, store, &def, NULL, &opts));
    /* version 1 (without eager) is read as far as it went */
    opts.version = 1;
    opts.eager = true; /* past the end of a version 1 struct: not read */
    assert_td_ok(td_saga_new(&saga, store, &def, NULL, &opts));
    td_saga_free(saga);
    tt_fixture_free(store);
}

static void test_others(void **state)
{
    (void)state;
    td_metric *m = NULL;
    char *text = NULL;
    size_t len = 0;
    td_event *out = NULL;
    td_event ev = tt_event("T", "{}");
    REFUSES(td_metrics_new(NULL));
    REFUSES(td_metrics_counter(&m, NULL, "x_total", "help", NULL));
    REFUSES(td_metrics_gauge(&m, NULL, "x", "help", NULL));
    REFUSES(td_metric_add(NULL, NULL, 1));
    REFUSES(td_metric_set(NULL, NULL, 1));
    REFUSES(td_metric_observe(NULL, NULL, 1));
    REFUSES(td_metrics_render(NULL, &text, &len));
    REFUSES(td_metrics_on_collect(NULL, NULL, NULL));
    REFUSES(td_metrics_watch_store(NULL, NULL));
    REFUSES(td_metrics_read(NULL, "x", NULL, NULL));
    td_metrics_collect(NULL);
    td_metrics_remove_collector(NULL, NULL, NULL);
    td_metrics_free(NULL);

    REFUSES(td_upcasters_new(NULL));
    REFUSES(td_upcasters_declare(NULL, "T", 2));
    REFUSES(td_upcasters_add(NULL, "T", 1, NULL, NULL));
    td_upcasters_free(NULL);

    json_t *doc = NULL;
    int64_t n = 0;
    char collection[TD_PROJECTION_COLLECTION_MAX];
    td_subscription *sub = NULL;
    td_subscription_options sopts = TD_SUBSCRIPTION_OPTIONS_INIT;
    td_projection_report report;
    REFUSES(td_projection_get(NULL, "k", &doc));
    REFUSES(td_projection_get_mutable(NULL, "k", &doc));
    REFUSES(td_projection_put(NULL, "k", NULL));
    REFUSES(td_projection_read(NULL, "c", "k", &doc));
    assert_null(td_projection_memo(NULL, NULL));
    REFUSES(td_projection_subscription_new(&sub, NULL, &sopts, NULL));
    REFUSES(td_projection_handle(NULL, &ev, NULL));
    REFUSES(td_projection_live_collection(NULL, "p", collection));
    REFUSES(td_projection_generation(NULL, "p", &n, &n));
    REFUSES(td_projection_rebuild(NULL, NULL, NULL, &report));

    REFUSES(td_bus_new(NULL, NULL));
    REFUSES(td_bus_on(NULL, NULL, NULL, NULL));
    td_bus_free(NULL);

    REFUSES(td_tracer_new(NULL, NULL, NULL));
    td_tracer *tracer = NULL;
    REFUSES(td_tracer_new_file(&tracer, NULL));
    assert_null(tracer);
    REFUSES(td_span_otlp_json(&text, NULL));
    td_tracer_free(NULL);

    REFUSES(td_keyring_new(NULL, NULL, NULL));
    td_keyring_free(NULL);

    REFUSES(td_event_dup(NULL, &ev));
    REFUSES(td_event_dup(&out, NULL));
    REFUSES(td_event_to_text(&text, &len, NULL));
    REFUSES(td_event_from_json(&out, NULL));
    json_t *data = NULL;
    REFUSES(td_event_data(&data, NULL));
    REFUSES(td_event_to_json(&data, NULL));
    REFUSES(td_upcast(NULL, &ev, NULL));
    REFUSES(td_uuid_v7(NULL));
    REFUSES(td_uuid_parse(NULL, "0190c3a0-1234-7abc-8def-0123456789ab"));
    td_event_free(NULL);
    td_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_txn),
        cmocka_unit_test(test_subscription_and_saga),
        cmocka_unit_test(test_saga_options_version),
        cmocka_unit_test(test_others),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
