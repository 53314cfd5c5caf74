/*
 * test_eager.c: eager subscriptions (subscription.h). An event appended in
 * this process is handled inside the appending unit when it is next in its
 * stream; its effects are visible as soon as the append returns. Everything
 * else goes through the catch-up, and nothing is handled twice or out of
 * stream order: an event whose eager attempt fails, one behind an earlier
 * event still waiting, events appended while the subscription was stopped,
 * and the tail of a chain longer than the bound.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recorder.h"
#include "support.h"

static td_store *store;
static recorder rec;

static int setup(void **state)
{
    (void)state;
    store = tt_fixture("eager");
    recorder_init(&rec);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tt_fixture_free(store);
    return 0;
}

static int64_t head(void)
{
    int64_t h = 0;
    assert_td_ok(td_store_head(store, &h));
    return h;
}

/* Records the event and counts it in a document named after its stream,
 * with the version it saw last, in the delivery's unit. Fails the first
 * attempt at events whose data says "fail_first", every attempt at
 * "fail_always" with a permanent error, and every attempt at
 * "fail_transient" with one worth retrying. */
static int count_in_unit(td_delivery *d, const td_event *ev, void *payload)
{
    td_txn *txn = td_delivery_txn(d);
    char *doc = NULL, body[96];
    int64_t n = 0;
    recorder_add(payload, ev, td_delivery_attempt(d));
    if (txn == NULL)
        return td_delivery_fail(d, TD_EPERMANENT, "not in a unit of work");
    int error = td_txn_doc_get(txn, "counts", ev->stream, &doc, NULL);
    if (error == 0)
        n = strtoll(strchr(doc, ':') + 1, NULL, 10);
    td_free(doc);
    if (error < 0 && error != TD_ENOTFOUND)
        return error;
    snprintf(body, sizeof body, "{\"n\":%lld,\"last\":%lld}", (long long)n + 1,
             (long long)ev->version);
    if ((error = td_txn_doc_put(txn, "counts", ev->stream, body, 0)) < 0)
        return error;
    if (strstr(ev->data, "fail_first") && td_delivery_attempt(d) == 1)
        return td_delivery_fail(d, TD_EIO, "first attempt fails");
    if (strstr(ev->data, "fail_always"))
        return td_delivery_fail(d, TD_EPERMANENT, "always fails");
    if (strstr(ev->data, "fail_transient"))
        return td_delivery_fail(d, TD_EIO, "fails every time, worth retrying");
    return 0;
}

static td_subscription *start_sub(const char *name, td_handler_fn fn, bool eager,
                                  bool (*accept)(const td_event *, void *))
{
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    td_subscription *sub = NULL;
    opts.name = name;
    opts.lanes = 2;
    opts.transactional = true;
    opts.eager = eager;
    opts.accept = accept;
    opts.backoff_initial_ms = 1;
    opts.backoff_max_ms = 4;
    opts.max_attempts = 3;
    opts.dlq_mode = TD_DLQ_SKIP;
    assert_td_ok(td_subscription_new(&sub, store, &opts, fn, &rec));
    assert_td_ok(td_subscription_start(sub));
    return sub;
}

static void append_data(const char *stream, const char *type, const char *data)
{
    td_event ev = tt_event(type, data);
    assert_td_ok(td_store_append(store, stream, TD_EXPECT_ANY, &ev, 1));
}

/* The count document of stream, or -1 if there is none. */
static int64_t count_of(const char *stream)
{
    char *doc = NULL;
    int error = td_store_doc_get(store, "counts", stream, &doc, NULL);
    if (error == TD_ENOTFOUND)
        return -1;
    assert_td_ok(error);
    int64_t n = strtoll(strchr(doc, ':') + 1, NULL, 10);
    td_free(doc);
    return n;
}

/* The handler saw exactly these versions of stream, in this order. */
static void assert_saw(const char *stream, const int64_t *want, int n)
{
    int64_t versions[64];
    assert_int_equal(recorder_stream(&rec, stream, versions, 64), n);
    for (int i = 0; i < n; i++)
        assert_int_equal(versions[i], want[i]);
}

static void test_needs_transactional_mode(void **state)
{
    (void)state;
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    td_subscription *sub = NULL;
    opts.name = "eager-alone";
    opts.eager = true;
    assert_int_equal(td_subscription_new(&sub, store, &opts, count_in_unit, &rec), TD_EINVAL);
    assert_non_null(strstr(td_error_last(), "transactional"));
}

/* The effect is there when the append returns: no lane could have run it
 * yet with the catch-up held back (a stopped subscription sees nothing). */
static void test_effects_commit_with_the_append(void **state)
{
    (void)state;
    td_subscription *sub = start_sub("eager-basic", count_in_unit, true, NULL);
    for (int i = 1; i <= 20; i++) {
        tt_append(store, "cart-1", "Added", i);
        assert_int_equal(count_of("cart-1"), i);
    }
    assert_td_ok(td_subscription_wait_until(sub, head(), 10000));
    td_subscription_free(sub);
    /* each once, in order */
    int64_t in_order[20];
    for (int i = 0; i < 20; i++)
        in_order[i] = i + 1;
    assert_saw("cart-1", in_order, 20);
    assert_int_equal(count_of("cart-1"), 20);

    /* stopped: appends are not handled eagerly; the next start catches up */
    tt_append(store, "cart-1", "Added", 21);
    assert_int_equal(count_of("cart-1"), 20);
    sub = start_sub("eager-basic", count_in_unit, true, NULL);
    assert_td_ok(td_subscription_wait_until(sub, head(), 10000));
    td_subscription_free(sub);
    assert_int_equal(count_of("cart-1"), 21);
    assert_int_equal(recorder_count(&rec), 21);
}

/* A failed eager attempt is rolled back alone: the append stands, the
 * catch-up retries it, and a later event of the stream waits for it. */
static void test_failure_goes_to_the_catch_up_in_order(void **state)
{
    (void)state;
    td_subscription *sub = start_sub("eager-fail", count_in_unit, true, NULL);
    append_data("cart-2", "Added", "{\"fail_first\":true}");
    append_data("cart-2", "Added", "{}"); /* behind v1 unless the catch-up was quicker */
    append_data("cart-3", "Added", "{}"); /* another stream goes on */
    assert_int_equal(count_of("cart-3"), 1);
    assert_td_ok(td_subscription_wait_until(sub, head(), 10000));
    td_subscription_free(sub);
    /* v1: the eager attempt (its first, fails), then the catch-up's, which
     * is its second */
    assert_saw("cart-2", (const int64_t[]){1, 1, 2}, 3);
    char *doc = NULL; /* n is 2: the failed eager attempt's write was rolled back */
    assert_td_ok(td_store_doc_get(store, "counts", "cart-2", &doc, NULL));
    assert_string_equal(doc, "{\"n\":2,\"last\":2}");
    td_free(doc);
}

static int attempts_of_entry(const td_dead_letter *entry, void *payload)
{
    *(unsigned *)payload = entry->attempts;
    return 0;
}

/* A failed eager attempt counts: with max_attempts 3, the event is tried
 * three times in all (eager, then twice by the catch-up) and parked. */
static void test_a_failed_eager_attempt_counts(void **state)
{
    (void)state;
    td_subscription *sub = start_sub("eager-count", count_in_unit, true, NULL);
    append_data("cart-9", "Added", "{\"fail_transient\":true}");
    assert_td_ok(td_subscription_wait_until(sub, head(), 10000));
    td_subscription_free(sub);
    assert_saw("cart-9", (const int64_t[]){1, 1, 1}, 3);
    unsigned attempts = 0;
    td_dlq_filter f = {"eager-count", NULL, NULL};
    assert_td_ok(td_dlq_list(store, &f, attempts_of_entry, &attempts));
    assert_int_equal(attempts, 3);
}

static int count_entry(const td_dead_letter *entry, void *payload)
{
    (void)entry;
    ++*(int *)payload;
    return 0;
}

/* A dead letter (skip mode): the next event of its stream goes through the
 * catch-up (the parked one is not done), the one after is eager again. */
static void test_parked_event_lets_the_stream_go_on(void **state)
{
    (void)state;
    td_subscription *sub = start_sub("eager-park", count_in_unit, true, NULL);
    append_data("cart-4", "Added", "{\"fail_always\":true}");
    assert_td_ok(td_subscription_wait_until(sub, head(), 10000));
    append_data("cart-4", "Added", "{}"); /* v1 is not done: the catch-up takes v2 */
    assert_td_ok(td_subscription_wait_until(sub, head(), 10000));
    assert_int_equal(count_of("cart-4"), 1);
    append_data("cart-4", "Added", "{}");
    assert_int_equal(count_of("cart-4"), 2);
    assert_td_ok(td_subscription_wait_until(sub, head(), 10000));
    td_subscription_free(sub);
    /* v1: the eager attempt and the catch-up's one (permanent: parked at
     * once); then v2 and v3 once each */
    assert_saw("cart-4", (const int64_t[]){1, 1, 2, 3}, 4);
    int dead = 0;
    td_dlq_filter f = {"eager-park", NULL, NULL};
    assert_td_ok(td_dlq_list(store, &f, count_entry, &dead));
    assert_int_equal(dead, 1);
}

/* Events appended before the subscription first ran come first. */
static void test_history_is_handled_before_new_events(void **state)
{
    (void)state;
    for (int i = 1; i <= 5; i++)
        tt_append(store, "cart-5", "Added", i);
    td_subscription *sub = start_sub("eager-history", count_in_unit, true, NULL);
    tt_append(store, "cart-5", "Added", 6);
    assert_td_ok(td_subscription_wait_until(sub, head(), 10000));
    td_subscription_free(sub);
    assert_saw("cart-5", (const int64_t[]){1, 2, 3, 4, 5, 6}, 6);
}

static bool only_wanted(const td_event *ev, void *payload)
{
    (void)payload;
    return strcmp(ev->type, "Wanted") == 0;
}

/* Events the subscription never takes do not hold the stream back. */
static void test_events_it_does_not_take_leave_no_gap(void **state)
{
    (void)state;
    td_subscription *sub = start_sub("eager-filter", count_in_unit, true, only_wanted);
    tt_append(store, "cart-6", "Other", 1);
    tt_append(store, "cart-6", "Other", 2);
    tt_append(store, "cart-6", "Wanted", 3);
    assert_int_equal(count_of("cart-6"), 1);
    tt_append(store, "cart-6", "Other", 4);
    tt_append(store, "cart-6", "Wanted", 5);
    assert_int_equal(count_of("cart-6"), 2);
    assert_td_ok(td_subscription_wait_until(sub, head(), 10000));
    td_subscription_free(sub);
    assert_int_equal(recorder_count(&rec), 2);
}

/* A handler that appends: what it appends is handled after it returns, in
 * the same unit, up to the bound; the rest of a longer chain by the catch-up. */
static int chain(td_delivery *d, const td_event *ev, void *payload)
{
    int error = count_in_unit(d, ev, payload);
    long n = strtol(strchr(ev->data, ':') + 1, NULL, 10);
    if (error < 0 || n >= 300)
        return error;
    char stream[32], data[32];
    snprintf(stream, sizeof stream, "link-%ld", n + 1);
    snprintf(data, sizeof data, "{\"n\":%ld}", n + 1);
    td_event next = tt_event("Linked", data);
    return td_delivery_publish(d, stream, TD_EXPECT_ANY, &next, 1);
}

static void test_chains_are_breadth_first_and_bounded(void **state)
{
    (void)state;
    td_subscription *sub = start_sub("eager-chain", chain, true, NULL);
    append_data("link-1", "Linked", "{\"n\":1}");
    /* the whole bounded part of the chain committed with the first append */
    assert_int_equal(count_of("link-2"), 1);
    assert_int_equal(count_of("link-200"), 1);
    assert_td_ok(td_subscription_wait_until(sub, head(), 10000));
    for (int i = 0; i < 100 && head() < 300; i++) {
        usleep(20000);
        assert_td_ok(td_subscription_wait_until(sub, head(), 10000));
    }
    td_subscription_free(sub);
    assert_int_equal(head(), 300);
    assert_int_equal(recorder_count(&rec), 300);
    for (int i = 1; i <= 300; i++) {
        char stream[32];
        snprintf(stream, sizeof stream, "link-%d", i);
        assert_int_equal(count_of(stream), 1);
    }
}

/* Eager and deferred copies of one subscription end with the same state;
 * the progress marks make a restart in the other mode skip what is done. */
static void test_switching_modes_handles_each_event_once(void **state)
{
    (void)state;
    for (int round = 0; round < 4; round++) {
        td_subscription *sub = start_sub("eager-switch", count_in_unit, round % 2 == 0, NULL);
        for (int s = 0; s < 5; s++) {
            char stream[32];
            snprintf(stream, sizeof stream, "shelf-%d", s);
            tt_append(store, stream, "Put", round);
        }
        td_subscription_free(sub); /* stopped at once, caught up or not */
    }
    td_subscription *sub = start_sub("eager-switch", count_in_unit, true, NULL);
    assert_td_ok(td_subscription_wait_until(sub, head(), 10000));
    td_subscription_free(sub);
    for (int s = 0; s < 5; s++) {
        char stream[32];
        snprintf(stream, sizeof stream, "shelf-%d", s);
        assert_int_equal(count_of(stream), 4);
    }
}

/* Inline handlers run first; what they append is observed after the event
 * that caused it. */
static int inline_follow_up(td_txn *txn, const td_event *ev, void *payload)
{
    (void)payload;
    if (strcmp(ev->type, "Ordered") != 0)
        return 0;
    td_event next = tt_event("Noted", "{}");
    return td_txn_append(txn, "note-1", TD_EXPECT_ANY, &next, 1);
}

static void test_inline_handlers_run_first(void **state)
{
    (void)state;
    td_bus *bus = NULL;
    assert_td_ok(td_bus_new(&bus, store));
    assert_td_ok(td_bus_on(bus, NULL, inline_follow_up, NULL));
    td_subscription *sub = start_sub("eager-inline", count_in_unit, true, NULL);
    tt_append(store, "order-1", "Ordered", 1);
    assert_int_equal(count_of("order-1"), 1);
    assert_int_equal(count_of("note-1"), 1);
    assert_int_equal(recorder_count(&rec), 2);
    assert_string_equal(rec.entries[0].stream, "order-1");
    assert_string_equal(rec.entries[1].stream, "note-1");
    assert_td_ok(td_subscription_wait_until(sub, head(), 10000));
    td_subscription_free(sub);
    td_bus_free(bus);
    assert_int_equal(recorder_count(&rec), 2);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_needs_transactional_mode),
        T(test_effects_commit_with_the_append),
        T(test_failure_goes_to_the_catch_up_in_order),
        T(test_parked_event_lets_the_stream_go_on),
        T(test_a_failed_eager_attempt_counts),
        T(test_history_is_handled_before_new_events),
        T(test_events_it_does_not_take_leave_no_gap),
        T(test_chains_are_breadth_first_and_bounded),
        T(test_switching_modes_handles_each_event_once),
        T(test_inline_handlers_run_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
