/*
 * test_replay.c: replay requests. A subscription hands the requested range
 * to its handler again, each event once, marked as a replay, in stream
 * order, and not the events appended after the request; effects behind the
 * inbox are not repeated unless forced; stream filters hold; transactional
 * handlers run again although their progress marks say done; a request
 * made while the subscription is stopped is carried out at its start; bad
 * requests are refused and write nothing.
 */
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "recorder.h"
#include "support.h"

static td_store *store;
static recorder live, replayed;
static atomic_int effects;

static int setup(void **state)
{
    (void)state;
    store = tt_fixture("replay");
    recorder_init(&live);
    recorder_init(&replayed);
    atomic_store(&effects, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tt_fixture_free(store);
    return 0;
}

typedef struct claim {
    const td_event *event;
    int first; /* 0: first time */
} claim;

static int claim_unit(td_txn *txn, void *payload)
{
    claim *c = payload;
    c->first = td_inbox_claim(txn, "replayer", &c->event->id);
    return c->first < 0 ? c->first : 0;
}

/* An effect outside the store, once per event through the inbox. */
static int with_effect(td_delivery *d, const td_event *ev, void *payload)
{
    (void)payload;
    claim c = {ev, 0};
    int error = td_transact(store, claim_unit, &c);
    if (error < 0)
        return error;
    if (c.first == 0 || td_delivery_forces_effects(d))
        atomic_fetch_add(&effects, 1);
    recorder_add(td_delivery_is_replay(d) ? &replayed : &live, ev, td_delivery_attempt(d));
    return 0;
}

/* A projection: counts/<stream> += 1, in the delivery's unit. */
static int count_in_unit(td_delivery *d, const td_event *ev, void *payload)
{
    (void)payload;
    td_txn *txn = td_delivery_txn(d);
    char *doc = NULL, text[32];
    long long n = 0;
    int error = td_txn_doc_get(txn, "counts", ev->stream, &doc, NULL);
    if (error == 0)
        n = atoll(strchr(doc, ':') + 1);
    td_free(doc);
    if (error < 0 && error != TD_ENOTFOUND)
        return error;
    snprintf(text, sizeof text, "{\"n\":%lld}", n + 1);
    recorder_add(td_delivery_is_replay(d) ? &replayed : &live, ev, td_delivery_attempt(d));
    return td_txn_doc_put(txn, "counts", ev->stream, text, 0);
}

static long long count_of(const char *stream)
{
    char *doc = NULL;
    assert_td_ok(td_store_doc_get(store, "counts", stream, &doc, NULL));
    long long n = atoll(strchr(doc, ':') + 1);
    td_free(doc);
    return n;
}

static td_subscription *start(td_handler_fn fn, bool transactional)
{
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    td_subscription *sub = NULL;
    opts.name = "replayer";
    opts.lanes = 2;
    opts.transactional = transactional;
    assert_td_ok(td_subscription_new(&sub, store, &opts, fn, NULL));
    assert_td_ok(td_subscription_start(sub));
    return sub;
}

static void wait_head(td_subscription *sub)
{
    int64_t head = 0;
    assert_td_ok(td_store_head(store, &head));
    assert_td_ok(td_subscription_wait_until(sub, head, 20000));
}

static int count_pending(const char *id, const char *name, int64_t next, int64_t to, void *payload)
{
    (void)id;
    (void)name;
    (void)next;
    (void)to;
    ++*(int *)payload;
    return 0;
}

static int pending(void)
{
    int n = 0;
    assert_td_ok(td_replay_list(store, count_pending, &n));
    return n;
}

/* Waits until no replay is pending and n events were replayed. */
static void wait_replayed(int n)
{
    struct timespec pause = {0, 5000000};
    for (int waited = 0; pending() > 0 || recorder_count(&replayed) < n; waited += 5) {
        if (waited >= 20000)
            fail_msg("replay not done: %d pending, %d of %d replayed", pending(),
                     recorder_count(&replayed), n);
        nanosleep(&pause, NULL);
    }
}

/* a-1 and b-1, three events each, interleaved: positions 1..6. */
static void append_six(void)
{
    for (int i = 1; i <= 3; i++) {
        tt_append(store, "a-1", "Thing", i);
        tt_append(store, "b-1", "Thing", i);
    }
}

static void replay_from_2(bool force)
{
    append_six();
    td_subscription *sub = start(with_effect, false);
    wait_head(sub);
    assert_int_equal(atomic_load(&effects), 6);
    td_replay_request r = {"replayer", 2, 0, NULL, NULL, force, "test"};
    char id[TD_REPLAY_ID_LEN + 1];
    assert_td_ok(td_replay_request_add(store, &r, id));
    tt_append(store, "a-1", "Thing", 4); /* after the request: live only */
    tt_append(store, "c-1", "Thing", 1);
    wait_replayed(5);
    wait_head(sub);
    assert_td_ok(td_subscription_stop(sub));
    td_subscription_free(sub);

    assert_int_equal(recorder_count(&live), 8);
    assert_int_equal(recorder_count(&replayed), 5); /* positions 2..6, once each */
    int64_t versions[8];
    assert_int_equal(recorder_stream(&replayed, "a-1", versions, 8), 2);
    assert_int_equal(versions[0], 2);
    assert_int_equal(versions[1], 3);
    assert_int_equal(recorder_stream(&replayed, "b-1", versions, 8), 3);
    assert_true(versions[0] == 1 && versions[1] == 2 && versions[2] == 3);
    assert_int_equal(recorder_stream(&replayed, "c-1", versions, 8), 0);
    assert_int_equal(atomic_load(&effects), force ? 8 + 5 : 8);
}

static void test_replay_keeps_effects_once(void **state)
{
    (void)state;
    replay_from_2(false);
}

static void test_forced_replay_repeats_effects(void **state)
{
    (void)state;
    replay_from_2(true);
}

static void test_transactional_replay_with_a_stream_filter(void **state)
{
    (void)state;
    append_six();
    td_subscription *sub = start(count_in_unit, true);
    wait_head(sub);
    assert_int_equal(count_of("a-1"), 3);
    td_replay_request r = {"replayer", 1, 0, "a-1", NULL, false, NULL};
    assert_td_ok(td_replay_request_add(store, &r, NULL));
    wait_replayed(3);
    assert_td_ok(td_subscription_stop(sub));
    td_subscription_free(sub);
    assert_int_equal(count_of("a-1"), 6); /* ran again, marks notwithstanding */
    assert_int_equal(count_of("b-1"), 3);
    assert_int_equal(recorder_count(&replayed), 3);
}

/* Six events, handled live by a subscription that then stops. */
static void handled_then_stopped(void)
{
    append_six();
    td_subscription *sub = start(with_effect, false);
    wait_head(sub);
    assert_td_ok(td_subscription_stop(sub));
    td_subscription_free(sub);
}

static void test_request_while_stopped_runs_at_start(void **state)
{
    (void)state;
    handled_then_stopped();
    td_replay_request r = {"replayer", 5, 6, NULL, NULL, false, NULL};
    assert_td_ok(td_replay_request_add(store, &r, NULL));
    assert_int_equal(pending(), 1);
    td_subscription *sub = start(with_effect, false);
    wait_replayed(2);
    assert_td_ok(td_subscription_stop(sub));
    td_subscription_free(sub);
    assert_int_equal(recorder_count(&replayed), 2);
    assert_int_equal(pending(), 0);
}

static void test_bad_requests_write_nothing(void **state)
{
    (void)state;
    handled_then_stopped();
    td_replay_request unknown = {"nobody", 1, 0, NULL, NULL, false, NULL};
    assert_td_code(td_replay_request_add(store, &unknown, NULL), TD_ENOTFOUND);
    td_replay_request zero = {"replayer", 0, 0, NULL, NULL, false, NULL};
    assert_td_code(td_replay_request_add(store, &zero, NULL), TD_EINVAL);
    td_replay_request backwards = {"replayer", 5, 3, NULL, NULL, false, NULL};
    assert_td_code(td_replay_request_add(store, &backwards, NULL), TD_EINVAL);
    td_replay_request bad_stream = {"replayer", 1, 0, "no stream", NULL, false, NULL};
    assert_td_code(td_replay_request_add(store, &bad_stream, NULL), TD_EINVAL);
    assert_int_equal(pending(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replay_keeps_effects_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forced_replay_repeats_effects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transactional_replay_with_a_stream_filter, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_request_while_stopped_runs_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests_write_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
