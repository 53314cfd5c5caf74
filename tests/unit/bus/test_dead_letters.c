/*
 * test_dead_letters.c: a poison event is attempted exactly max_attempts
 * times, then parked; in sequenced mode later events of its stream park
 * behind it in order while other streams go on; after the handler is fixed a
 * retry delivers it and those behind it once, in order; a drop lets those
 * behind it go on; skip mode does not hold the stream; every request is
 * audited; bad requests change nothing.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recorder.h"
#include "support.h"

static td_store *store;
static recorder rec;
static atomic_int broken;
static atomic_int poison_attempts;

static int setup(void **state)
{
    (void)state;
    store = tt_fixture("dlq");
    recorder_init(&rec);
    atomic_store(&broken, 1);
    atomic_store(&poison_attempts, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tt_fixture_free(store);
    return 0;
}

/* Events whose data says "poison" fail while `broken` is set. */
static int handler(td_delivery *d, const td_event *ev, void *payload)
{
    int permanent = payload != NULL;
    if (strstr(ev->data, "poison") && atomic_load(&broken)) {
        atomic_fetch_add(&poison_attempts, 1);
        return td_delivery_fail(d, permanent ? TD_EPERMANENT : TD_EIO, "cannot digest %s",
                                ev->type);
    }
    recorder_add(&rec, ev, td_delivery_attempt(d));
    return 0;
}

static td_subscription *start_with(td_dlq_mode mode, bool permanent, bool transactional)
{
    td_subscription_options opts = TD_SUBSCRIPTION_OPTIONS_INIT;
    td_subscription *sub = NULL;
    opts.transactional = transactional;
    opts.name = "picky";
    opts.lanes = 4;
    opts.immediate_retries = 1;
    opts.max_attempts = 4;
    opts.backoff_initial_ms = 1;
    opts.backoff_max_ms = 2;
    opts.dlq_mode = mode;
    assert_td_ok(td_subscription_new(&sub, store, &opts, handler, permanent ? &rec : NULL));
    assert_td_ok(td_subscription_start(sub));
    return sub;
}

static td_subscription *start(td_dlq_mode mode, bool permanent)
{
    return start_with(mode, permanent, false);
}

static void append(const char *stream, const char *data)
{
    td_event ev = tt_event("Thing", data);
    assert_td_ok(td_store_append(store, stream, TD_EXPECT_ANY, &ev, 1));
}

/* a-1 ok, a-2 poison, a-3..a-5 ok; b-1..b-3 ok */
static void append_scenario(void)
{
    append("a-1", "{\"i\":1}");
    append("b-1", "{\"i\":1}");
    append("a-1", "{\"poison\":true}");
    append("b-1", "{\"i\":2}");
    append("a-1", "{\"i\":3}");
    append("a-1", "{\"i\":4}");
    append("b-1", "{\"i\":3}");
    append("a-1", "{\"i\":5}");
}

static void wait_done(td_subscription *sub)
{
    int64_t head = 0;
    assert_td_ok(td_store_head(store, &head));
    assert_td_ok(td_subscription_wait_until(sub, head, 20000));
}

typedef struct entries {
    td_dead_letter list[16];
    char ids[16][TD_DEAD_LETTER_ID_LEN + 1];
    char status[16][16];
    char behind[16][TD_DEAD_LETTER_ID_LEN + 1];
    char error[16][128];
    int count;
} entries;

static int keep_entry(const td_dead_letter *e, void *payload)
{
    entries *l = payload;
    int i = l->count++;
    l->list[i] = *e;
    strcpy(l->ids[i], e->id);
    snprintf(l->status[i], sizeof l->status[i], "%s", e->status);
    snprintf(l->behind[i], sizeof l->behind[i], "%s", e->behind ? e->behind : "");
    snprintf(l->error[i], sizeof l->error[i], "%s", e->last_error);
    return 0;
}

static entries dead_letters(void)
{
    entries l;
    memset(&l, 0, sizeof l);
    assert_td_ok(td_dlq_list(store, NULL, keep_entry, &l));
    return l;
}

static void assert_stream_versions(const char *stream, const int64_t *expected, int n)
{
    int64_t versions[64];
    int got = recorder_stream(&rec, stream, versions, 64);
    assert_int_equal(got, n);
    for (int i = 0; i < n; i++)
        assert_int_equal(versions[i], expected[i]);
}

static int audit_lines(const char *json, void *payload)
{
    strcat(payload, json);
    strcat(payload, "\n");
    return 0;
}

static void test_poison_parks_in_sequence_and_retry_delivers_in_order(void **state)
{
    (void)state;
    td_subscription *sub = start(TD_DLQ_SEQUENCED, false);
    append_scenario();
    wait_done(sub);
    assert_int_equal(atomic_load(&poison_attempts), 4);     /* exactly max_attempts */
    assert_stream_versions("b-1", (int64_t[]){1, 2, 3}, 3); /* other streams went on */
    assert_stream_versions("a-1", (int64_t[]){1}, 1);       /* a-1 holds at the poison */

    entries l = dead_letters();
    assert_int_equal(l.count, 4); /* the poison, and versions 3..5 behind it */
    assert_string_equal(l.status[0], "dead");
    assert_int_equal(l.list[0].position, 3);
    assert_int_equal(l.list[0].attempts, 4);
    assert_non_null(strstr(l.error[0], "cannot digest Thing"));
    for (int i = 1; i < 4; i++) {
        assert_string_equal(l.status[i], "parked");
        assert_string_equal(l.behind[i], l.ids[0]);
    }
    append("a-1", "{\"i\":6}"); /* still parked behind, in order */
    wait_done(sub);
    assert_int_equal(dead_letters().count, 5);

    atomic_store(&broken, 0); /* the handler is fixed */
    assert_td_ok(td_dlq_retry(store, l.ids[0], "alice"));
    recorder_wait(&rec, 1 + 3 + 5, 10000);
    assert_stream_versions("a-1", (int64_t[]){1, 2, 3, 4, 5, 6}, 6);
    for (int i = 0; i < 500 && dead_letters().count > 0; i++)
        usleep(10000); /* the last entry is removed just after its delivery */
    assert_int_equal(dead_letters().count, 0);

    char trail[4096] = "";
    assert_td_ok(td_dlq_audit(store, audit_lines, trail));
    assert_non_null(strstr(trail, "\"who\":\"alice\""));
    assert_non_null(strstr(trail, "\"action\":\"retry\""));
    td_subscription_free(sub);
}

static void test_permanent_failure_parks_at_once(void **state)
{
    (void)state;
    td_subscription *sub = start(TD_DLQ_SEQUENCED, true);
    append("a-1", "{\"poison\":1}");
    wait_done(sub);
    assert_int_equal(atomic_load(&poison_attempts), 1);
    entries l = dead_letters();
    assert_int_equal(l.count, 1);
    assert_int_equal(l.list[0].attempts, 1);
    td_subscription_free(sub);
}

static void test_skip_mode_lets_the_stream_go_on(void **state)
{
    (void)state;
    td_subscription *sub = start(TD_DLQ_SKIP, false);
    append_scenario();
    wait_done(sub);
    assert_stream_versions("a-1", (int64_t[]){1, 3, 4, 5}, 4);
    assert_int_equal(dead_letters().count, 1);
    td_subscription_free(sub);
}

static void test_retry_after_the_stream_went_on_in_skip_mode(void **state)
{
    (void)state;
    /* Transactional: the stream's progress mark passes the dead event while
     * the stream goes on; a retry must still hand it over, once. */
    td_subscription *sub = start_with(TD_DLQ_SKIP, false, true);
    append_scenario();
    wait_done(sub);
    assert_stream_versions("a-1", (int64_t[]){1, 3, 4, 5}, 4);
    entries l = dead_letters();
    assert_int_equal(l.count, 1);
    atomic_store(&broken, 0);
    assert_td_ok(td_dlq_retry(store, l.ids[0], "dave"));
    recorder_wait(&rec, 1 + 4 + 3, 10000);
    assert_stream_versions("a-1", (int64_t[]){1, 3, 4, 5, 2}, 5);
    for (int i = 0; i < 500 && dead_letters().count > 0; i++)
        usleep(10000);
    assert_int_equal(dead_letters().count, 0);
    td_subscription_free(sub);
    assert_int_equal(recorder_count(&rec), 8); /* nothing twice */
}

static void test_drop_releases_those_behind(void **state)
{
    (void)state;
    td_subscription *sub = start(TD_DLQ_SEQUENCED, false);
    append_scenario();
    wait_done(sub);
    entries l = dead_letters();
    assert_td_ok(td_dlq_drop(store, l.ids[0], "bob"));
    recorder_wait(&rec, 1 + 3 + 3, 10000);
    assert_stream_versions("a-1", (int64_t[]){1, 3, 4, 5}, 4); /* without the dropped one */
    td_subscription_free(sub);
}

static void test_requests_wait_for_a_stopped_subscription(void **state)
{
    (void)state;
    td_subscription *sub = start(TD_DLQ_SEQUENCED, false);
    append("a-1", "{\"poison\":1}");
    append("a-1", "{\"i\":2}");
    wait_done(sub);
    td_subscription_free(sub);
    entries l = dead_letters();
    assert_int_equal(l.count, 2);
    atomic_store(&broken, 0);
    assert_td_ok(td_dlq_retry(store, l.ids[0], "carol")); /* nobody running */
    sub = start(TD_DLQ_SEQUENCED, false);
    recorder_wait(&rec, 2, 10000);
    assert_stream_versions("a-1", (int64_t[]){1, 2}, 2);
    td_subscription_free(sub);
}

static void test_bad_requests_change_nothing(void **state)
{
    (void)state;
    td_subscription *sub = start(TD_DLQ_SEQUENCED, false);
    append("a-1", "{\"poison\":1}");
    append("a-1", "{\"i\":2}");
    wait_done(sub);
    td_subscription_free(sub);
    entries l = dead_letters();
    assert_td_code(td_dlq_retry(store, l.ids[1], "x"), TD_EINVAL); /* parked, not dead */
    assert_td_code(td_dlq_retry(store, "not-an-id", "x"), TD_EINVAL);
    assert_td_code(td_dlq_drop(store, "0190c3a0-1234-7abc-8def-0123456789ab", "x"), TD_ENOTFOUND);
    assert_td_ok(td_dlq_retry(store, l.ids[0], "x"));
    assert_td_code(td_dlq_retry(store, l.ids[0], "x"), TD_EINVAL); /* already requested */
    char trail[4096] = "";
    assert_td_ok(td_dlq_audit(store, audit_lines, trail));
    assert_int_equal(strchr(trail, '\n') - trail + 1, (long)strlen(trail)); /* one line */
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_poison_parks_in_sequence_and_retry_delivers_in_order),
        T(test_permanent_failure_parks_at_once),
        T(test_skip_mode_lets_the_stream_go_on),
        T(test_retry_after_the_stream_went_on_in_skip_mode),
        T(test_drop_releases_those_behind),
        T(test_requests_wait_for_a_stopped_subscription),
        T(test_bad_requests_change_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
