/*
 * test_broker_faults.c: the broker fails under load, with the real
 * mechanism, and afterwards the receiving store holds every integration
 * event the sending store acknowledged, once each, in stream order.
 *
 *  - killed (SIGKILL) and started again 30 s later
 *    (scripts/start-rabbitmq.sh on the same folder: same node, same data);
 *  - frozen (SIGSTOP) for 30 s, then thawed (SIGCONT).
 *
 * Meanwhile a writer appends integration events at a steady rate. The relay
 * and the consumer must notice (heartbeats, timeouts), back off, reconnect
 * and catch up on their own: the test only checks the outcome and that
 * both did reconnect. TD_TEST_FAULT_SECONDS shortens the outage.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker_support.h"

#define STREAMS 8

typedef struct load {
    td_store *store;
    atomic_bool stop;
    int written;
    int64_t head;
} load;

static void *writer(void *arg)
{
    load *l = arg;
    while (!atomic_load(&l->stop)) {
        char stream[32], data[64];
        snprintf(stream, sizeof stream, "item-%d", l->written % STREAMS);
        snprintf(data, sizeof data, "{\"n\":%d}", l->written);
        td_event ev = tt_event("ItemAdded", data);
        ev.kind = TD_KIND_INTEGRATION;
        if (td_store_append(l->store, stream, TD_EXPECT_ANY, &ev, 1) == 0) {
            l->written++;
            l->head = ev.position;
        }
        usleep(4000);
    }
    return NULL;
}

static int fault_seconds(void)
{
    const char *s = getenv("TD_TEST_FAULT_SECONDS");
    return s && atoi(s) > 0 ? atoi(s) : 30;
}

typedef struct rig {
    char *dir;
    td_store *from, *to;
    td_relay *relay;
    td_consumer *consumer;
    load load;
    pthread_t thread;
} rig;

static const td_consumer_type handled[] = {{"ItemAdded", 0}};

static void rig_start(rig *r)
{
    char exchange[64], queue[64];
    memset(r, 0, sizeof *r);
    r->dir = tt_tmpdir();
    char *a = tt_store_url(r->dir, "sender.db"), *b = tt_store_url(r->dir, "receiver.db");
    r->from = tt_open(a);
    r->to = tt_open(b);
    free(a);
    free(b);
    tb_name(exchange, sizeof exchange, "fx");
    tb_name(queue, sizeof queue, "fq");
    td_broker_options bo = TD_BROKER_OPTIONS_INIT;
    bo.url = tb_url();
    bo.exchange = exchange;
    bo.heartbeat_s = 2;
    bo.timeout_ms = 2000;
    bo.backoff_initial_ms = 100;
    bo.backoff_max_ms = 1000;

    td_consumer_options co = TD_CONSUMER_OPTIONS_INIT;
    co.queue = queue;
    co.broker = bo;
    co.types = handled;
    co.type_count = 1;
    co.prefetch = 100;
    assert_td_ok(td_consumer_new(&r->consumer, r->to, &co));
    assert_td_ok(td_consumer_start(r->consumer));
    td_broker_stats s;
    for (int i = 0; i < 200 && (td_consumer_stats(r->consumer, &s), !s.connected); i++)
        usleep(50000);
    if (!s.connected)
        fail_msg("the consumer did not connect: %s", s.last_error);

    td_relay_options ro = TD_RELAY_OPTIONS_INIT;
    ro.name = "items";
    ro.broker = bo;
    ro.max_in_flight = 256;
    assert_td_ok(td_relay_new(&r->relay, r->from, &ro));
    assert_td_ok(td_relay_start(r->relay));

    r->load.store = r->from;
    atomic_init(&r->load.stop, false);
    assert_int_equal(pthread_create(&r->thread, NULL, writer, &r->load), 0);
    sleep(2); /* under load before the fault */
}

/* Ends the load, waits for both sides to catch up, checks the copy. */
static void rig_finish(rig *r)
{
    sleep(3); /* under load after the fault, too */
    atomic_store(&r->load.stop, true);
    pthread_join(r->thread, NULL);
    print_message("appended %d integration events\n", r->load.written);
    td_broker_stats rs, cs;
    if (td_relay_wait_until(r->relay, r->load.head, 120000) < 0) {
        td_relay_stats(r->relay, &rs);
        fail_msg("the relay did not catch up: %s (last error: %s)", td_error_last(), rs.last_error);
    }
    td_read_query q = TD_READ_QUERY_INIT;
    q.category = "item";
    assert_int_equal(tb_wait_count(r->to, &q, r->load.written, 120000), r->load.written);
    assert_int_equal(tb_check_copy(r->from, r->to), r->load.written);
    td_relay_stats(r->relay, &rs);
    td_consumer_stats(r->consumer, &cs);
    print_message("relay: %lld connects, %lld published, %lld confirmed; consumer: %lld connects, "
                  "%lld consumed, %lld duplicates, %lld redelivered\n",
                  (long long)rs.connects, (long long)rs.published, (long long)rs.confirmed,
                  (long long)cs.connects, (long long)cs.consumed, (long long)cs.duplicates,
                  (long long)cs.redelivered);
    assert_true(rs.connects >= 2);
    assert_true(cs.connects >= 2);
    assert_int_equal(cs.consumed, r->load.written);
    assert_true(rs.confirmed >= r->load.written);
    assert_td_ok(td_relay_stop(r->relay));
    assert_td_ok(td_consumer_stop(r->consumer));
    td_relay_free(r->relay);
    td_consumer_free(r->consumer);
    td_store_free(r->from);
    td_store_free(r->to);
    tt_rmdir(r->dir);
}

static void wait_disconnected(rig *r)
{
    td_broker_stats rs, cs;
    for (int i = 0; i < 300; i++) {
        td_relay_stats(r->relay, &rs);
        td_consumer_stats(r->consumer, &cs);
        if (!rs.connected && !cs.connected)
            return;
        usleep(100000);
    }
    fail_msg("the relay (%d) or the consumer (%d) did not notice the broker was gone", rs.connected,
             cs.connected);
}

static void test_broker_killed_and_restarted(void **state)
{
    (void)state;
    rig r;
    rig_start(&r);
    assert_int_equal(kill(tb_broker_pid(), SIGKILL), 0);
    wait_disconnected(&r);
    sleep((unsigned)fault_seconds());
    assert_int_equal(
        tb_sh("bash '%s/start-rabbitmq.sh' '%s' >/dev/null", getenv("TD_TEST_SCRIPTS"), tb_dir()),
        0);
    rig_finish(&r);
}

static void test_broker_frozen(void **state)
{
    (void)state;
    rig r;
    rig_start(&r);
    int pid = tb_broker_pid();
    assert_int_equal(kill(pid, SIGSTOP), 0);
    wait_disconnected(&r); /* by heartbeat: the socket stays open */
    sleep((unsigned)fault_seconds());
    assert_int_equal(kill(pid, SIGCONT), 0);
    rig_finish(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broker_killed_and_restarted),
        cmocka_unit_test(test_broker_frozen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
