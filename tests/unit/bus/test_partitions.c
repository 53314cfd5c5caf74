/*
 * test_partitions.c: partitioned subscriptions and sagas, and the balancer
 * that shares them between instances.
 *
 * The partitions of a name together handle every event exactly once, each
 * stream (or correlation id) in one partition and in order; the name's
 * partitioning is recorded, a disagreeing start is refused, and a replay
 * of the name reaches every partition; a saga's
 * partitions split its instances by correlation id, each deadline fired
 * once;
 * three balancers on one store (each with a store of its own, as three
 * processes would have) share the parts, every part running once, and
 * when one instance stops, its parts move to the others and nothing is
 * handled twice or lost.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "recorder.h"
#include "support.h"

#define PARTS 4

static td_store *store;
static recorder seen;

static int setup(void **state)
{
    (void)state;
    store = tt_fixture("partitions");
    recorder_init(&seen);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tt_fixture_free(store);
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* What handled each event: the partition (payload) by position. */
static _Atomic int handled_by[4096];
static atomic_int duplicates;

static int on_event(td_delivery *d, const td_event *ev, void *payload)
{
    (void)d;
    int part = (int)(intptr_t)payload;
    recorder_add(&seen, ev, 1);
    if (ev->position < 4096) {
        int before = atomic_exchange(&handled_by[ev->position], part + 1);
        if (before != 0)
            atomic_fetch_add(&duplicates, 1);
    }
    return 0;
}

static td_subscription *partition(td_store *on, const char *name, unsigned index, unsigned count,
                                  td_partition_by by)
{
    td_subscription_options o = TD_SUBSCRIPTION_OPTIONS_INIT;
    o.name = name;
    o.lanes = 2;
    o.partition.count = count;
    o.partition.index = index;
    o.partition.by = by;
    td_subscription *sub = NULL;
    assert_td_ok(td_subscription_new(&sub, on, &o, on_event, (void *)(intptr_t)index));
    return sub;
}

/* Every event's stream and correlation id, by position. */
static char stream_of[4096][32], correlation_of[4096][32];

static int keep_keys(const td_event *ev, void *payload)
{
    (void)payload;
    if (ev->position < 4096) {
        snprintf(stream_of[ev->position], sizeof stream_of[0], "%s", ev->stream);
        snprintf(correlation_of[ev->position], sizeof correlation_of[0], "%s",
                 ev->correlation_id ? ev->correlation_id : "");
    }
    return 0;
}

static void load_keys(void)
{
    td_read_query q = TD_READ_QUERY_INIT;
    assert_td_ok(td_store_read(store, &q, keep_keys, NULL));
}

static void reset_handled(void)
{
    for (size_t i = 0; i < 4096; i++)
        atomic_store(&handled_by[i], 0);
    atomic_store(&duplicates, 0);
}

/* Each stream's events were seen in version order, 1..n. */
static void assert_streams_in_order(int streams, int per_stream)
{
    for (int s = 0; s < streams; s++) {
        char stream[32];
        int64_t versions[64];
        snprintf(stream, sizeof stream, "item-%d", s);
        int n = recorder_stream(&seen, stream, versions, 64);
        assert_int_equal(n, per_stream);
        for (int i = 0; i < n; i++)
            assert_int_equal(versions[i], i + 1);
    }
}

static void test_names_and_keys(void **state)
{
    (void)state;
    char name[TD_SUBSCRIPTION_NAME_MAX + 1];
    td_partition p = {8, 3, TD_PARTITION_BY_STREAM};
    assert_td_ok(td_partition_name(name, sizeof name, "inventory", &p));
    assert_string_equal(name, "inventory.p3of8");
    td_partition whole = {0, 0, TD_PARTITION_BY_STREAM};
    assert_td_ok(td_partition_name(name, sizeof name, "inventory", &whole));
    assert_string_equal(name, "inventory");
    td_partition bad = {4, 4, TD_PARTITION_BY_STREAM};
    assert_td_code(td_partition_name(name, sizeof name, "inventory", &bad), TD_EINVAL);
    assert_td_code(td_partition_name(name, 12, "inventory", &p), TD_EINVAL);
    /* FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c: stable across builds and hosts */
    assert_int_equal(td_partition_of("a", 1000), 996);
    assert_int_equal(td_partition_of("a", 7), 5);
    assert_int_equal(td_partition_of("a", 1), 0);
    assert_int_equal(td_partition_of(NULL, 8), 0);

    char base[TD_SUBSCRIPTION_NAME_MAX + 1];
    td_partition parsed;
    assert_true(td_partition_parse("inventory.p3of8", base, sizeof base, &parsed));
    assert_string_equal(base, "inventory");
    assert_int_equal(parsed.index, 3);
    assert_int_equal(parsed.count, 8);
    assert_true(td_partition_parse("saga.order_processing.p0of4", base, sizeof base, &parsed));
    assert_string_equal(base, "saga.order_processing");
    static const char *const not_partitions[] = {
        "inventory",       "inventory.p8of8",   "inventory.p01of4",
        "inventory.p1of1", "inventory.p1of",    "inventory.p1of4x",
        ".p1of4",          "inventory.p1of257", "saga.order_processing"};
    for (size_t i = 0; i < sizeof not_partitions / sizeof not_partitions[0]; i++) {
        assert_false(td_partition_parse(not_partitions[i], base, sizeof base, &parsed));
        assert_string_equal(base, not_partitions[i]);
        assert_int_equal(parsed.count, 0);
    }

    td_subscription_options o = TD_SUBSCRIPTION_OPTIONS_INIT;
    td_subscription *sub = NULL;
    o.name = "bad";
    o.partition.count = TD_PARTITIONS_MAX + 1;
    assert_td_code(td_subscription_new(&sub, store, &o, on_event, NULL), TD_EINVAL);
    o.partition.count = 4;
    o.partition.index = 4;
    assert_td_code(td_subscription_new(&sub, store, &o, on_event, NULL), TD_EINVAL);
    o.partition.index = 0;
    o.name = "a_name_of_sixty_characters_that_leaves_no_room_for_a_suffix_";
    assert_td_code(td_subscription_new(&sub, store, &o, on_event, NULL), TD_EINVAL);
    assert_null(sub);
}

/* Every event once, each stream in one partition, in order. */
static void test_partitions_share_the_events(void **state)
{
    (void)state;
    reset_handled();
    td_subscription *subs[PARTS];
    for (unsigned i = 0; i < PARTS; i++) {
        subs[i] = partition(store, "work", i, PARTS, TD_PARTITION_BY_STREAM);
        char want[16];
        snprintf(want, sizeof want, "work.p%uof4", i);
        assert_string_equal(td_subscription_name(subs[i]), want);
        assert_td_ok(td_subscription_start(subs[i]));
    }
    int64_t last = 0;
    for (int round = 0; round < 10; round++)
        for (int s = 0; s < 20; s++) {
            char stream[32];
            snprintf(stream, sizeof stream, "item-%d", s);
            last = tt_append(store, stream, "Happened", round);
        }
    for (unsigned i = 0; i < PARTS; i++)
        assert_td_ok(td_subscription_wait_until(subs[i], last, 20000));
    assert_int_equal(recorder_count(&seen), 200);
    assert_int_equal(atomic_load(&duplicates), 0);
    assert_streams_in_order(20, 10);
    /* each stream in the partition its name hashes to, and every partition used */
    int used[PARTS] = {0};
    load_keys();
    for (int64_t pos = 1; pos <= last; pos++) {
        int part = atomic_load(&handled_by[pos]) - 1;
        assert_true(part >= 0);
        assert_int_equal(td_partition_of(stream_of[pos], PARTS), (unsigned)part);
        used[part]++;
    }
    for (unsigned i = 0; i < PARTS; i++)
        assert_true(used[i] > 0);
    for (unsigned i = 0; i < PARTS; i++) {
        assert_td_ok(td_subscription_stop(subs[i]));
        td_subscription_free(subs[i]);
    }
}

static int by_name(const char *name, const td_subscription_status *st, void *payload)
{
    int *count = payload;
    if (strncmp(name, "work.p", 6) == 0) {
        assert_true(st->position > 0);
        assert_null(st->holder); /* stopped: nobody runs it */
        ++*count;
    }
    return 0;
}

static int replays_seen;
static const char *replay_id;

static int count_replays(const char *id, const char *subscription, int64_t next, int64_t to,
                         void *payload)
{
    char base[TD_SUBSCRIPTION_NAME_MAX + 1];
    td_partition p;
    (void)next;
    (void)to;
    (void)payload;
    assert_string_equal(id, replay_id);
    assert_true(td_partition_parse(subscription, base, sizeof base, &p));
    assert_string_equal(base, "work");
    assert_int_equal(p.index, (unsigned)replays_seen++);
    return 0;
}

/* The count is the name's: other counts, keys or a whole start are refused. */
static void test_the_partitioning_is_recorded(void **state)
{
    (void)state;
    td_subscription *first = partition(store, "work", 0, PARTS, TD_PARTITION_BY_STREAM);
    assert_td_ok(td_subscription_start(first));
    td_subscription *other_count = partition(store, "work", 0, 2, TD_PARTITION_BY_STREAM);
    assert_td_code(td_subscription_start(other_count), TD_EINVAL);
    assert_non_null(strstr(td_error_last(), "runs in 4 partitions by stream"));
    td_subscription *other_key = partition(store, "work", 1, PARTS, TD_PARTITION_BY_CORRELATION);
    assert_td_code(td_subscription_start(other_key), TD_EINVAL);
    td_subscription *whole = partition(store, "work", 0, 0, TD_PARTITION_BY_STREAM);
    assert_td_code(td_subscription_start(whole), TD_EINVAL);
    assert_non_null(strstr(td_error_last(), "cannot run whole"));
    td_subscription_free(whole);
    td_subscription_free(other_key);
    td_subscription_free(other_count);
    tt_append(store, "item-1", "Happened", 1);
    assert_td_ok(td_subscription_wait_until(first, 1, 10000));
    td_subscription_free(first);

    int count = 0;
    assert_td_ok(td_subscriptions_list(store, by_name, &count));
    assert_int_equal(count, 1); /* work.p0of4 only: the refused ones wrote nothing */
    unsigned partitions = 9;
    assert_td_ok(td_partition_count(store, "work", &partitions));
    assert_int_equal(partitions, PARTS);
    assert_td_ok(td_partition_count(store, "never_ran", &partitions));
    assert_int_equal(partitions, 0);

    /* a replay of the name goes to each of its partitions, under one id */
    td_replay_request r = {"work", 1, 0, NULL, NULL, false, "test"};
    char id[TD_REPLAY_ID_LEN + 1];
    assert_td_ok(td_replay_request_add(store, &r, id));
    replays_seen = 0;
    replay_id = id;
    assert_td_ok(td_replay_list(store, count_replays, NULL));
    assert_int_equal(replays_seen, PARTS);
}

static int put_doc(td_txn *txn, void *payload)
{
    const char *const *doc = payload; /* collection, key, JSON */
    return td_txn_doc_put(txn, doc[0], doc[1], doc[2], 0);
}

static int drop_retry(td_txn *txn, void *payload)
{
    (void)payload;
    return td_txn_doc_delete(txn, "tidings_retries", "splitter|00000000000000000007");
}

static void put(const char *collection, const char *key, const char *json)
{
    const char *doc[] = {collection, key, json};
    assert_td_ok(td_transact(store, put_doc, (void *)doc));
}

/* A name that ran whole is split at its first partitioned start: each
 * partition goes on from the whole's checkpoint, and what the whole's
 * progress marks show done past it is not handled again. Refused while
 * the whole has retries waiting or runs. */
static void test_a_whole_is_split(void **state)
{
    (void)state;
    reset_handled();
    /* streams item-0..3, three rounds: position 4r+s+1 is version r+1 of item-s */
    for (int round = 0; round < 3; round++)
        for (int s = 0; s < 4; s++) {
            char stream[32];
            snprintf(stream, sizeof stream, "item-%d", s);
            tt_append(store, stream, "Happened", round);
        }
    /* the whole stopped at position 5 with item-1 handled up to version 3
     * (positions 2, 6, 10) and a retry waiting */
    put("tidings_checkpoints", "splitter",
        "{\"position\":5,\"inflight_to\":5,\"suspect_position\":0,\"suspect_attempts\":0,"
        "\"recovering_to\":0}");
    put("tidings_progress", "splitter|item-1", "{\"version\":3}");
    put("tidings_retries", "splitter|00000000000000000007",
        "{\"attempts\":1,\"next_at\":0,\"last_error\":\"x\"}");
    td_subscription *subs[2];
    for (unsigned i = 0; i < 2; i++) {
        td_subscription_options o = TD_SUBSCRIPTION_OPTIONS_INIT;
        o.name = "splitter";
        o.transactional = true;
        o.partition.count = 2;
        o.partition.index = i;
        assert_td_ok(td_subscription_new(&subs[i], store, &o, on_event, (void *)(intptr_t)i));
    }
    assert_td_code(td_subscription_start(subs[0]), TD_EINVAL);
    assert_non_null(strstr(td_error_last(), "1 events waiting for a retry"));
    put("tidings_leases", "splitter",
        "{\"owner\":\"x\",\"pid\":1,\"host\":\"elsewhere.example\","
        "\"expires_at\":99999999999999999}");
    assert_td_code(td_subscription_start(subs[0]), TD_EBUSY);
    put("tidings_leases", "splitter",
        "{\"owner\":\"x\",\"pid\":1,\"host\":\"elsewhere.example\",\"expires_at\":1}");
    int64_t last = 12;
    assert_td_ok(td_transact(store, drop_retry, NULL)); /* the retry done */
    for (unsigned i = 0; i < 2; i++)
        assert_td_ok(td_subscription_start(subs[i]));
    for (unsigned i = 0; i < 2; i++)
        assert_td_ok(td_subscription_wait_until(subs[i], last, 20000));
    for (int64_t pos = 1; pos <= last; pos++) {
        bool want = pos > 5 && pos != 6 && pos != 10;
        assert_int_equal(atomic_load(&handled_by[pos]) > 0, want);
    }
    assert_int_equal(atomic_load(&duplicates), 0);
    unsigned partitions = 0;
    assert_td_ok(td_partition_count(store, "splitter", &partitions));
    assert_int_equal(partitions, 2);
    char *text = NULL; /* the whole's checkpoint is gone */
    assert_td_code(td_store_doc_get(store, "tidings_checkpoints", "splitter", &text, NULL),
                   TD_ENOTFOUND);
    for (unsigned i = 0; i < 2; i++)
        td_subscription_free(subs[i]);
}

/* By correlation: every event of one correlation id in one partition,
 * whatever its stream. */
static void test_by_correlation(void **state)
{
    (void)state;
    reset_handled();
    td_subscription *subs[PARTS];
    for (unsigned i = 0; i < PARTS; i++) {
        subs[i] = partition(store, "flows", i, PARTS, TD_PARTITION_BY_CORRELATION);
        assert_td_ok(td_subscription_start(subs[i]));
    }
    int64_t last = 0;
    for (int n = 0; n < 60; n++) {
        char stream[32], correlation[32];
        snprintf(stream, sizeof stream, "item-%d", n % 7);
        snprintf(correlation, sizeof correlation, "flow-%d", n % 11);
        td_event ev = tt_event("Happened", "{}");
        ev.correlation_id = correlation;
        assert_td_ok(td_store_append(store, stream, TD_EXPECT_ANY, &ev, 1));
    }
    assert_td_ok(td_store_head(store, &last));
    for (unsigned i = 0; i < PARTS; i++)
        assert_td_ok(td_subscription_wait_until(subs[i], last, 20000));
    load_keys();
    for (int64_t pos = 1; pos <= last; pos++)
        assert_int_equal(td_partition_of(correlation_of[pos], PARTS),
                         (unsigned)atomic_load(&handled_by[pos]) - 1);
    assert_int_equal(atomic_load(&duplicates), 0);
    for (unsigned i = 0; i < PARTS; i++)
        td_subscription_free(subs[i]);
}

static int refuse(td_delivery *d, const td_event *ev, void *payload)
{
    (void)ev;
    (void)payload;
    return td_delivery_fail(d, TD_EPERMANENT, "not for us");
}

static int count_parked(const td_dead_letter *e, void *payload)
{
    char whole[TD_SUBSCRIPTION_NAME_MAX + 1];
    td_partition p;
    assert_true(td_partition_parse(e->subscription, whole, sizeof whole, &p));
    assert_string_equal(whole, "parker");
    ++*(int *)payload;
    return 0;
}

/* Dead letters are each partition's, and listed under the whole name. */
static void test_dead_letters_by_the_whole_name(void **state)
{
    (void)state;
    td_subscription *subs[PARTS];
    for (unsigned i = 0; i < PARTS; i++) {
        td_subscription_options o = TD_SUBSCRIPTION_OPTIONS_INIT;
        o.name = "parker";
        o.partition.count = PARTS;
        o.partition.index = i;
        assert_td_ok(td_subscription_new(&subs[i], store, &o, refuse, NULL));
        assert_td_ok(td_subscription_start(subs[i]));
    }
    int64_t last = 0;
    for (int s = 0; s < 12; s++) {
        char stream[32];
        snprintf(stream, sizeof stream, "item-%d", s);
        last = tt_append(store, stream, "Happened", s);
    }
    for (unsigned i = 0; i < PARTS; i++)
        assert_td_ok(td_subscription_wait_until(subs[i], last, 20000));
    int parked = 0;
    td_dlq_filter whole = {"parker", NULL, NULL};
    assert_td_ok(td_dlq_list(store, &whole, count_parked, &parked));
    assert_int_equal(parked, 12);
    parked = 0;
    td_dlq_filter other = {"park", NULL, NULL};
    assert_td_ok(td_dlq_list(store, &other, count_parked, &parked));
    assert_int_equal(parked, 0);
    for (unsigned i = 0; i < PARTS; i++)
        td_subscription_free(subs[i]);
}

/* ---- a saga in partitions ---------------------------------------------------------- */

static _Atomic int begun_in[16]; /* flow n began in partition begun_in[n] - 1 */

static int begin(td_saga_ctx *ctx, const td_event *ev, void *payload)
{
    (void)ev;
    int n = atoi(td_saga_correlation_id(ctx) + 1);
    if (n >= 0 && n < 16)
        atomic_store(&begun_in[n], (int)(intptr_t)payload + 1);
    return td_saga_set_deadline(ctx, td_time_now() + 20000);
}

static int flow_of(const td_event *ev, json_t *data, char *out, size_t size)
{
    const char *flow = json_string_value(json_object_get(data, "flow"));
    (void)ev;
    if (flow == NULL)
        return TD_EINVAL;
    snprintf(out, size, "%s", flow);
    return 0;
}

static const td_saga_transition flow_steps[] = {
    {NULL, "Begun", "open", begin, NULL, false, NULL},
    {"open", TD_SAGA_DEADLINE_EXPIRED, "expired", NULL, NULL, false, NULL},
};
static const char *const flow_finals[] = {"expired", NULL};
static const td_saga_definition flow_saga = {
    .name = "flow",
    .transitions = flow_steps,
    .transition_count = 2,
    .final_states = flow_finals,
    .correlate = flow_of,
};

/* Each partition of a saga runs the instances of its correlation ids, and
 * fires their deadlines, once. */
static void test_saga_partitions(void **state)
{
    (void)state;
    td_saga *parts[2];
    for (unsigned i = 0; i < 2; i++) {
        td_saga_options o = TD_SAGA_OPTIONS_INIT;
        o.timer_interval_ms = 20;
        o.partition.count = 2;
        o.partition.index = i;
        assert_td_ok(td_saga_new(&parts[i], store, &flow_saga, (void *)(intptr_t)i, &o));
        assert_string_equal(td_saga_subscription_name(parts[i]),
                            i == 0 ? "saga.flow.p0of2" : "saga.flow.p1of2");
        assert_td_ok(td_saga_start(parts[i]));
    }
    for (int n = 0; n < 16; n++) {
        char stream[32], data[64];
        atomic_store(&begun_in[n], 0);
        snprintf(stream, sizeof stream, "flow-%d", n);
        snprintf(data, sizeof data, "{\"flow\":\"f%d\"}", n);
        td_event ev = tt_event("Begun", data);
        assert_td_ok(td_store_append(store, stream, TD_EXPECT_ANY, &ev, 1));
    }
    for (int n = 0, waited = 0; n < 16; waited += 50) {
        char flow[16], *json = NULL;
        snprintf(flow, sizeof flow, "f%d", n);
        if (td_saga_get(store, "flow", flow, &json) == 0 && strstr(json, "\"expired\"")) {
            n++;
            waited = 0;
        } else if (waited > 30000) {
            fail_msg("flow %s did not expire", flow);
        } else {
            sleep_ms(50);
        }
        td_free(json);
    }
    int used[2] = {0};
    for (int n = 0; n < 16; n++) {
        char flow[16];
        snprintf(flow, sizeof flow, "f%d", n);
        int part = atomic_load(&begun_in[n]) - 1;
        assert_int_equal((unsigned)part, td_partition_of(flow, 2));
        used[part]++;
    }
    assert_true(used[0] > 0 && used[1] > 0);
    td_read_query q = TD_READ_QUERY_INIT;
    q.type = TD_SAGA_DEADLINE_EXPIRED;
    assert_int_equal(tt_count(store, &q), 16); /* each deadline fired once */
    for (unsigned i = 0; i < 2; i++)
        td_saga_free(parts[i]);
}

/* ---- the balancer ------------------------------------------------------------------- */

#define INSTANCES 3

typedef struct instance {
    td_store *store;
    td_subscription *parts[PARTS];
    td_balancer *balancer;
} instance;

static void instance_open(instance *in, int n)
{
    char label[16];
    snprintf(label, sizeof label, "instance-%d", n);
    in->store = tt_open(tt_fixture_url());
    for (unsigned i = 0; i < PARTS; i++)
        in->parts[i] = partition(in->store, "shared", i, PARTS, TD_PARTITION_BY_STREAM);
    assert_td_ok(td_balancer_new(&in->balancer, in->store, label));
    for (unsigned i = 0; i < PARTS; i++)
        assert_td_ok(td_balancer_add_subscription(in->balancer, in->parts[i]));
}

static void instance_close(instance *in)
{
    td_balancer_free(in->balancer);
    for (unsigned i = 0; i < PARTS; i++)
        td_subscription_free(in->parts[i]);
    td_store_free(in->store);
    memset(in, 0, sizeof *in);
}

static int count_running(const td_balanced_part *part, void *payload)
{
    int *running = payload;
    assert_string_equal(part->group, "shared");
    assert_int_equal(part->count, PARTS);
    assert_int_equal(part->error, 0);
    if (part->running)
        running[part->index]++;
    return 0;
}

/* Ticks every open instance until each part runs exactly once and each
 * open instance runs at least one part; fails after timeout_ms. */
static void settle(instance *ins, int timeout_ms)
{
    for (int waited = 0;; waited += 100) {
        int running[PARTS] = {0}, open = 0, busy = 0;
        for (int i = 0; i < INSTANCES; i++) {
            if (ins[i].balancer == NULL)
                continue;
            int mine[PARTS] = {0}, held = 0;
            (void)td_balancer_tick(ins[i].balancer);
            assert_td_ok(td_balancer_parts(ins[i].balancer, count_running, mine));
            for (unsigned p = 0; p < PARTS; p++) {
                running[p] += mine[p];
                held += mine[p];
            }
            open++;
            busy += held > 0;
        }
        bool once = true;
        for (unsigned p = 0; p < PARTS; p++) {
            assert_true(running[p] <= 1); /* never in two instances at once */
            once &= running[p] == 1;
        }
        if (once && busy == open)
            return;
        if (waited >= timeout_ms)
            fail_msg("the parts did not settle within %d ms", timeout_ms);
        sleep_ms(100);
    }
}

static int count_live(const td_instance *in, void *payload)
{
    if (in->live)
        ++*(int *)payload;
    return 0;
}

static void test_balancers_share_and_hand_over(void **state)
{
    (void)state;
    reset_handled();
    instance ins[INSTANCES];
    memset(ins, 0, sizeof ins);
    instance_open(&ins[0], 0);
    settle(ins, 20000); /* alone: it runs all four */
    instance_open(&ins[1], 1);
    instance_open(&ins[2], 2);
    settle(ins, 30000); /* the first gives parts up; the others take them */
    int live = 0;
    assert_td_ok(td_instances_list(store, count_live, &live));
    assert_int_equal(live, INSTANCES);
    assert_int_equal(td_balancer_live(ins[0].balancer), INSTANCES);

    int64_t last = 0;
    for (int round = 0; round < 5; round++)
        for (int s = 0; s < 20; s++) {
            char stream[32];
            snprintf(stream, sizeof stream, "item-%d", s);
            last = tt_append(store, stream, "Happened", round);
        }
    /* instance 1 stops (gracefully): its parts move to the others */
    instance_close(&ins[1]);
    for (int round = 5; round < 10; round++)
        for (int s = 0; s < 20; s++) {
            char stream[32];
            snprintf(stream, sizeof stream, "item-%d", s);
            last = tt_append(store, stream, "Happened", round);
        }
    settle(ins, 30000);
    for (int waited = 0; recorder_count(&seen) < 200 && waited < 30000; waited += 100) {
        for (int i = 0; i < INSTANCES; i++)
            if (ins[i].balancer)
                (void)td_balancer_tick(ins[i].balancer);
        sleep_ms(100);
    }
    assert_int_equal(recorder_count(&seen), 200);
    assert_int_equal(atomic_load(&duplicates), 0);
    assert_streams_in_order(20, 10);
    for (int64_t pos = 1; pos <= last; pos++)
        assert_true(atomic_load(&handled_by[pos]) > 0);
    instance_close(&ins[0]);
    instance_close(&ins[2]);
    live = 0;
    assert_td_ok(td_instances_list(store, count_live, &live));
    assert_int_equal(live, 0); /* each left the membership */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_names_and_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partitions_share_the_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_partitioning_is_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_whole_is_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_by_correlation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letters_by_the_whole_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_saga_partitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_balancers_share_and_hand_over, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
