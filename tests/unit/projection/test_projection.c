/*
 * test_projection.c: projections (projection.h) on their own, with a toy
 * fold: a counter per stream of category "counter" (documents keyed by
 * stream: {"count": events, "sum": the sum of their n}). The truth it is
 * checked against comes from the log itself (each stream's events are
 * appended with n = 1, 2, …, so a stream of version v holds count v and
 * sum v(v+1)/2). Covers: the live subscription; a rebuild equal to the live
 * copy; a rebuild while appends go on, whose swap neither loses nor doubles
 * an event; a store holding unreadable events (a schema above what the
 * upcasters read), which a rebuild skips and reports exactly; copies a
 * killed rebuild left behind, cleared by the next; the arguments refused; and an allocation-failure
 * loop over a rebuild of many small pages.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "projection/projection_int.h"
#include "support.h"
#include "tidings/projection.h"
#include "tidings/upcast.h"

#define STREAMS 7

static td_store *store;

/* ---- the toy fold ------------------------------------------------------- */

static atomic_long folds; /* calls, to see that unwanted types never reach it */

static int count(td_projection_docs *docs, const td_event *ev, json_t *data, void *payload)
{
    json_t *doc = NULL;
    (void)payload;
    atomic_fetch_add(&folds, 1);
    int error = td_projection_get_mutable(docs, ev->stream, &doc);
    if (error < 0)
        return error;
    json_int_t n = json_integer_value(json_object_get(data, "n"));
    json_int_t c = doc ? json_integer_value(json_object_get(doc, "count")) : 0;
    json_int_t s = doc ? json_integer_value(json_object_get(doc, "sum")) : 0;
    json_decref(doc);
    doc = json_pack("{s:I,s:I}", "count", c + 1, "sum", s + n);
    error = doc ? td_projection_put(docs, ev->stream, doc) : TD_ENOMEM;
    json_decref(doc);
    return error;
}

static const char *const fields[] = {"n", NULL};
static const char *const types[] = {"Tick", NULL};
static const td_projection counter = {
    TD_PROJECTION_VERSION, "counter", "counter", types, fields, count, NULL};

/* ---- helpers ------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    store = tt_fixture("projection");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tt_fixture_free(store);
    store = NULL;
    return 0;
}

/* Appends one Tick to counter-<i> with n = its new version. */
static void tick(td_store *s, int i)
{
    char stream[32], data[32];
    int64_t version = 0;
    snprintf(stream, sizeof stream, "counter-%d", i);
    assert_td_ok(td_store_stream_version(s, stream, &version));
    snprintf(data, sizeof data, "{\"n\":%lld}", (long long)version + 1);
    td_event ev = tt_event("Tick", data);
    assert_td_ok(td_store_append(s, stream, version, &ev, 1));
}

/* n Ticks over the streams in turn, appended a stream's batch at a time
 * (a commit per event would make the test slow, not better). */
static void ticks(int n)
{
    for (int i = 0; i < STREAMS && i < n; i++) {
        char stream[32];
        int64_t version = 0;
        int count = n / STREAMS + (i < n % STREAMS);
        td_event *events = calloc((size_t)count, sizeof *events);
        char(*data)[32] = calloc((size_t)count, sizeof *data);
        assert_non_null(events);
        assert_non_null(data);
        snprintf(stream, sizeof stream, "counter-%d", i);
        assert_td_ok(td_store_stream_version(store, stream, &version));
        for (int k = 0; k < count; k++) {
            snprintf(data[k], sizeof data[k], "{\"n\":%lld}", (long long)version + k + 1);
            events[k] = tt_event("Tick", data[k]);
        }
        assert_td_ok(td_store_append(store, stream, version, events, (size_t)count));
        free(events);
        free(data);
    }
}

/* An event the fold does not want, and one in another category. */
static void noise(void)
{
    td_event a = tt_event("Tock", "{\"n\":1000}"), b = tt_event("Tick", "{\"n\":1000}");
    assert_td_ok(td_store_append(store, "counter-0", TD_EXPECT_ANY, &a, 1));
    assert_td_ok(td_store_append(store, "other-0", TD_EXPECT_ANY, &b, 1));
}

static int keep_doc(const char *key, const char *json, size_t len, void *payload)
{
    json_error_t err;
    json_t *doc = json_loadb(json, len, 0, &err);
    return doc && json_object_set_new(payload, key, doc) == 0 ? 0 : TD_ENOMEM;
}

/* The live copy's documents, as one object keyed by stream. */
static json_t *live_docs(void)
{
    char collection[TD_PROJECTION_COLLECTION_MAX];
    json_t *all = json_object();
    assert_non_null(all);
    assert_td_ok(td_projection_live_collection(store, "counter", collection));
    assert_td_ok(td_store_doc_list(store, collection, NULL, 0, keep_doc, all));
    return all;
}

/* What the log says the documents must be, read as stored: the Ticks of
 * counter-* streams at schema 1, counted and summed per stream. */
static int add_truth(const td_event *ev, void *payload)
{
    json_t *data = NULL, *doc;
    if (strcmp(ev->type, "Tick") != 0 || ev->schema_version != 1)
        return 0;
    assert_td_ok(td_event_data(&data, ev));
    json_int_t n = json_integer_value(json_object_get(data, "n"));
    json_decref(data);
    doc = json_object_get(payload, ev->stream);
    json_int_t c = doc ? json_integer_value(json_object_get(doc, "count")) : 0;
    json_int_t s = doc ? json_integer_value(json_object_get(doc, "sum")) : 0;
    return json_object_set_new(payload, ev->stream,
                               json_pack("{s:I,s:I}", "count", c + 1, "sum", s + n)) == 0
               ? 0
               : TD_ENOMEM;
}

static json_t *truth(void)
{
    json_t *all = json_object();
    td_read_query q = TD_READ_QUERY_INIT;
    q.category = "counter";
    assert_non_null(all);
    assert_td_ok(td_store_read_stored(store, &q, add_truth, all));
    return all;
}

static void assert_docs_equal(json_t *want, json_t *got)
{
    if (!json_equal(want, got)) {
        char *a = json_dumps(want, JSON_SORT_KEYS), *b = json_dumps(got, JSON_SORT_KEYS);
        print_error("want %s\n got %s\n", a, b);
        free(a);
        free(b);
    }
    assert_true(json_equal(want, got));
}

static td_subscription *live(void)
{
    td_subscription *sub = NULL;
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    opts.name = "readmodel.counter";
    opts.dlq_mode = TD_DLQ_SKIP; /* a stream goes on past an unreadable event */
    assert_td_ok(td_projection_subscription_new(&sub, store, &opts, &counter));
    assert_td_ok(td_subscription_start(sub));
    return sub;
}

static void catch_up(td_subscription *sub)
{
    int64_t head = 0;
    assert_td_ok(td_store_head(store, &head));
    assert_td_ok(td_subscription_wait_until(sub, head, 60000));
}

/* ---- live, and a rebuild equal to it ----------------------------------------- */

static void test_live_then_rebuild_equal(void **state)
{
    (void)state;
    td_subscription *sub = live();
    ticks(300);
    noise();
    ticks(4700); /* a few pages of 2048 positions, and a tail */
    catch_up(sub);
    json_t *want = truth(), *before = live_docs();
    assert_docs_equal(want, before);

    td_projection_report r;
    atomic_store(&folds, 0);
    assert_td_ok(td_projection_rebuild(store, &counter, NULL, &r));
    assert_int_equal(r.generation, 1);
    assert_int_equal(r.events, 5000); /* neither the Tock nor other-0 */
    assert_int_equal(atomic_load(&folds), 5000);
    assert_int_equal(r.skipped, 0);
    assert_int_equal(r.skipped_listed, 0);
    int64_t head = 0, generation = 0, through = 0;
    assert_td_ok(td_store_head(store, &head));
    assert_int_equal(r.built_through, head);
    assert_td_ok(td_projection_generation(store, "counter", &generation, &through));
    assert_int_equal(generation, 1);
    assert_int_equal(through, head);
    json_t *after = live_docs();
    assert_docs_equal(before, after);

    /* the old copy is gone; the live handler goes on in the new one */
    json_t *old = json_object();
    assert_td_ok(td_store_doc_list(store, "counter", NULL, 0, keep_doc, old));
    assert_int_equal(json_object_size(old), 0);
    ticks(50);
    catch_up(sub);
    json_t *later = live_docs(), *want_later = truth();
    assert_docs_equal(want_later, later);
    td_subscription_free(sub);
    json_decref(want);
    json_decref(before);
    json_decref(after);
    json_decref(old);
    json_decref(later);
    json_decref(want_later);
}

/* ---- a rebuild while appends go on ----------------------------------------------- */

typedef struct appender {
    td_store *store;
    atomic_bool stop;
    atomic_long appended;
} appender;

static void *append_main(void *arg)
{
    appender *a = arg;
    for (int k = 0; !atomic_load(&a->stop); k++) {
        tick(a->store, k % STREAMS);
        atomic_fetch_add(&a->appended, 1);
    }
    return NULL;
}

static void test_rebuild_under_appends(void **state)
{
    (void)state;
    td_subscription *sub = live();
    ticks(6000);
    catch_up(sub);
    appender a = {.store = store};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, append_main, &a), 0);
    while (atomic_load(&a.appended) < 50)
        ;
    td_projection_report r;
    for (int round = 1; round <= 2; round++) { /* twice: generations 1 and 2 */
        assert_td_ok(td_projection_rebuild(store, &counter, NULL, &r));
        assert_int_equal(r.generation, round);
    }
    long during = atomic_load(&a.appended);
    while (atomic_load(&a.appended) < during + 50)
        ;
    atomic_store(&a.stop, true);
    pthread_join(thread, NULL);
    print_message("%ld events appended while rebuilding\n", atomic_load(&a.appended));
    catch_up(sub);
    json_t *want = truth(), *got = live_docs();
    assert_docs_equal(want, got); /* each event in exactly one copy that stays live */
    td_subscription_free(sub);
    json_decref(want);
    json_decref(got);
}

/* ---- unreadable events ----------------------------------------------------------- */

static int64_t append_future(void)
{
    td_event ev = tt_event("Tick", "{\"n\":1000000}");
    ev.schema_version = 7; /* this program reads schema 1 */
    assert_td_ok(td_store_append(store, "counter-0", TD_EXPECT_ANY, &ev, 1));
    return ev.position;
}

static int first_event(const td_event *ev, void *payload)
{
    return td_event_dup(payload, ev) == 0 ? 1 : TD_ENOMEM;
}

static void test_rebuild_skips_unreadable(void **state)
{
    (void)state;
    td_upcasters *ups = NULL;
    assert_td_ok(td_upcasters_new(&ups));
    assert_td_ok(td_upcasters_declare(ups, "Tick", 1));
    td_store_set_upcasters(store, ups);
    td_subscription *sub = live();
    ticks(10);
    int64_t at[3];
    /* one early in a page, one on a page's last position, one in the tail */
    at[0] = append_future();
    ticks(2048 - 12);
    at[1] = append_future();
    assert_int_equal(at[1], 2048);
    ticks(3000);
    at[2] = append_future();
    ticks(5);
    catch_up(sub); /* the live one parked them and went on */
    json_t *want = truth(), *before = live_docs();
    assert_docs_equal(want, before);

    td_projection_report r;
    assert_td_ok(td_projection_rebuild(store, &counter, NULL, &r));
    assert_int_equal(r.skipped, 3);
    assert_int_equal(r.skipped_listed, 3);
    for (int i = 0; i < 3; i++) {
        td_event *ev = NULL;
        td_read_query q = TD_READ_QUERY_INIT;
        q.after_position = at[i] - 1;
        q.limit = 1;
        assert_td_ok(td_store_read_stored(store, &q, first_event, &ev));
        assert_non_null(ev);
        assert_int_equal(r.skipped_events[i].position, at[i]);
        assert_int_equal(td_uuid_compare(&r.skipped_events[i].id, &ev->id), 0);
        td_event_free(ev);
    }
    assert_int_equal(r.events, 10 + 2036 + 3000 + 5);
    json_t *after = live_docs();
    assert_docs_equal(want, after);
    td_subscription_free(sub);
    td_store_set_upcasters(store, NULL);
    td_upcasters_free(ups);
    json_decref(want);
    json_decref(before);
    json_decref(after);
}

/* ---- copies left behind ------------------------------------------------------------ */

static int put_strays(td_txn *txn, void *payload)
{
    (void)payload;
    int error = td_txn_doc_put(txn, "counter", "stray", "{}", 0); /* generation 0's */
    if (error == 0)
        error = td_txn_doc_put(txn, "counter_g5", "stray", "{}", 0);
    if (error == 0) /* not a copy of counter: left alone */
        error = td_txn_doc_put(txn, "counter_gx", "stray", "{}", 0);
    return error;
}

static size_t docs_in(const char *collection)
{
    json_t *all = json_object();
    assert_td_ok(td_store_doc_list(store, collection, NULL, 0, keep_doc, all));
    size_t n = json_object_size(all);
    json_decref(all);
    return n;
}

static void test_rebuild_clears_stale_copies(void **state)
{
    (void)state;
    td_projection_report r;
    ticks(20);
    assert_td_ok(td_projection_rebuild(store, &counter, NULL, &r));
    assert_td_ok(td_transact(store, put_strays, NULL));
    assert_td_ok(td_projection_rebuild(store, &counter, NULL, &r));
    assert_int_equal(r.generation, 2);
    assert_int_equal(docs_in("counter"), 0);
    assert_int_equal(docs_in("counter_g1"), 0);
    assert_int_equal(docs_in("counter_g5"), 0);
    assert_int_equal(docs_in("counter_gx"), 1);
    json_t *want = truth(), *got = live_docs();
    assert_docs_equal(want, got);
    json_decref(want);
    json_decref(got);
}

/* ---- bad arguments ------------------------------------------------------------- */

static void test_refuses_bad_arguments(void **state)
{
    (void)state;
    td_projection_report r;
    td_projection bad = counter;
    char collection[TD_PROJECTION_COLLECTION_MAX];
    td_subscription *sub = NULL;
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    opts.name = "readmodel.bad";
    assert_td_code(td_projection_rebuild(store, NULL, NULL, &r), TD_EINVAL);
    assert_td_code(td_projection_rebuild(NULL, &counter, NULL, &r), TD_EINVAL);
    bad.name = "Bad Name";
    assert_td_code(td_projection_rebuild(store, &bad, NULL, &r), TD_EINVAL);
    assert_td_code(td_projection_subscription_new(&sub, store, &opts, &bad), TD_EINVAL);
    assert_null(sub);
    bad = counter;
    bad.fold = NULL;
    assert_td_code(td_projection_rebuild(store, &bad, NULL, &r), TD_EINVAL);
    bad = counter;
    bad.version = 99;
    assert_td_code(td_projection_rebuild(store, &bad, NULL, &r), TD_EINVAL);
    td_projection_rebuild_options o = TD_PROJECTION_REBUILD_OPTIONS_INIT;
    o.version = 99;
    assert_td_code(td_projection_rebuild(store, &counter, &o, &r), TD_EINVAL);
    assert_td_code(td_projection_live_collection(store, "", collection), TD_EINVAL);
    /* nothing was made */
    int64_t generation = -1, through = -1;
    assert_td_ok(td_projection_generation(store, "counter", &generation, &through));
    assert_int_equal(generation, 0);
}

/* ---- out of memory at every allocation of a rebuild ------------------------------ */

static void test_rebuild_alloc_failures(void **state)
{
    (void)state;
    int64_t span = td_projection__page_span;
    td_projection__page_span = 4; /* several pages, through the readers, and a tail */
    ticks(30);
    json_t *want = truth();
    td_projection_report first;
    assert_td_ok(td_projection_rebuild(store, &counter, NULL, &first)); /* a whole live copy */
    int64_t expect_generation = 1;
    long n = 0, failed = 0;
    for (bool injected = true; injected && n < 100000; n++) {
        td_projection_report r;
        unsigned long before = td_alloc__failed();
        td_alloc__fail_after(n);
        int rc = td_projection_rebuild(store, &counter, NULL, &r);
        td_alloc__fail_after(-1);
        injected = td_alloc__failed() != before;
        if (rc != 0 && rc != TD_ENOMEM)
            print_error("n=%ld: %d (%s): %s\n", n, rc, td_error_name(rc), td_error_last());
        assert_true(rc == 0 || rc == TD_ENOMEM);
        failed += rc != 0;
        int64_t generation = 0, through = 0;
        assert_td_ok(td_projection_generation(store, "counter", &generation, &through));
        if (rc == 0)
            expect_generation++;
        /* a failure after the swap (deleting the old copy) leaves the new one live */
        assert_true(generation == expect_generation || generation == expect_generation + 1);
        expect_generation = generation;
        assert_td_ok(td_store_check(store));
        json_t *got = live_docs();
        assert_docs_equal(want, got); /* whichever copy is live is whole */
        json_decref(got);
    }
    print_message("%s: %ld allocations failed in turn, %ld rebuilds failed\n", __func__, n, failed);
    assert_true(n < 100000);
    assert_true(failed > 0);
    td_projection_report r;
    assert_td_ok(td_projection_rebuild(store, &counter, NULL, &r)); /* and again, cleanly */
    assert_int_equal(r.events, 30);
    json_t *got = live_docs();
    assert_docs_equal(want, got);
    json_decref(got);
    json_decref(want);
    td_projection__page_span = span;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_live_then_rebuild_equal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_under_appends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_skips_unreadable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_clears_stale_copies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild_alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
