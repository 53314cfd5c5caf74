/*
 * test_broker.c: integration events from one store to another through a
 * real RabbitMQ node (CTest starts it: scripts/start-rabbitmq.sh).
 *
 * A relay on the sending store, a consumer on the receiving one: every
 * integration event arrives once, with its envelope, in stream order, and
 * domain events stay home. A relay that forgets its checkpoint publishes
 * everything again and the receiver changes nothing. Messages that cannot
 * be taken are parked in the dead-letter queue with why, and the rest go
 * on; events no queue is bound for are kept in EXCHANGE.unrouted. The
 * relay's encode and the consumer's decode carry bodies that differ on the
 * wire from what either store keeps (each event once, in order, the
 * decode's writes kept once), an event encode cannot send yet holds back
 * what follows, a message decode refuses is parked with why, and older
 * option structs have no hooks. Bad options are refused with a clear error.
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker_support.h"
#include "child.h"

#define STREAMS 8
#define EVENTS  400

typedef struct pair {
    char *dir;
    td_store *from, *to;
    td_relay *relay;
    td_consumer *consumer;
    td_metrics *metrics;
    char exchange[64], queue[64];
} pair;

static const td_consumer_type handled[] = {{"ItemAdded", 2}, {"ItemRemoved", 0}};

/* The hooks a pair's relay and consumer get, and the versions of their
 * option structs (0: the current ones). */
typedef struct hooks {
    unsigned relay_version, consumer_version;
    td_relay_encode_fn encode;
    void *encode_payload;
    td_consumer_decode_fn decode;
    void *decode_payload;
} hooks;

static void pair_open_with(pair *p, td_queue_type queue_type, const hooks *h)
{
    memset(p, 0, sizeof *p);
    p->dir = tt_tmpdir();
    char *a = tt_store_url(p->dir, "sender.db"), *b = tt_store_url(p->dir, "receiver.db");
    p->from = tt_open(a);
    p->to = tt_open(b);
    free(a);
    free(b);
    assert_td_ok(td_metrics_new(&p->metrics));
    tb_name(p->exchange, sizeof p->exchange, "x");
    tb_name(p->queue, sizeof p->queue, "q");

    td_relay_options ro = TD_RELAY_OPTIONS_INIT;
    ro.name = "orders";
    ro.broker.url = tb_url();
    ro.broker.exchange = p->exchange;
    ro.broker.metrics = p->metrics;
    ro.max_in_flight = 64; /* many in flight, and the window fills up */
    if (h) {
        ro.version = h->relay_version ? h->relay_version : ro.version;
        ro.encode = h->encode;
        ro.encode_payload = h->encode_payload;
    }
    assert_td_ok(td_relay_new(&p->relay, p->from, &ro));

    td_consumer_options co = TD_CONSUMER_OPTIONS_INIT;
    co.queue = p->queue;
    co.broker.url = tb_url();
    co.broker.exchange = p->exchange;
    co.broker.metrics = p->metrics;
    co.types = handled;
    co.type_count = 2;
    co.queue_type = queue_type;
    co.prefetch = 50;
    if (h) {
        co.version = h->consumer_version ? h->consumer_version : co.version;
        co.decode = h->decode;
        co.decode_payload = h->decode_payload;
    }
    assert_td_ok(td_consumer_new(&p->consumer, p->to, &co));
    /* the queue exists and is bound before anything is published */
    assert_td_ok(td_consumer_start(p->consumer));
    td_broker_stats s;
    for (int i = 0; i < 200; i++) {
        td_consumer_stats(p->consumer, &s);
        if (s.connected)
            break;
        usleep(50000);
    }
    td_consumer_stats(p->consumer, &s);
    if (!s.connected)
        fail_msg("the consumer did not connect: %s", s.last_error);
    assert_td_ok(td_relay_start(p->relay));
}

static void pair_open(pair *p, td_queue_type queue_type)
{
    pair_open_with(p, queue_type, NULL);
}

static void pair_close(pair *p)
{
    assert_td_ok(td_relay_stop(p->relay));
    assert_td_ok(td_consumer_stop(p->consumer));
    td_relay_free(p->relay);
    td_consumer_free(p->consumer);
    td_store_free(p->from);
    td_store_free(p->to);
    td_metrics_free(p->metrics);
    tt_rmdir(p->dir);
}

/* n integration events over STREAMS streams, and a domain event now and then;
 * returns the head. */
static int64_t append_events(td_store *store, int first, int n)
{
    int64_t head = 0;
    for (int i = first; i < first + n; i++) {
        char stream[32], data[96];
        snprintf(stream, sizeof stream, "item-%d", i % STREAMS);
        snprintf(data, sizeof data, "{\"n\":%d,\"note\":\"caf\\u00e9 %d\"}", i, i);
        td_event ev = tt_event(i % 5 == 4 ? "ItemRemoved" : "ItemAdded", data);
        ev.kind = TD_KIND_INTEGRATION;
        ev.correlation_id = "corr-1";
        ev.metadata = "{\"who\":\"test\"}";
        assert_td_ok(td_store_append(store, stream, TD_EXPECT_ANY, &ev, 1));
        head = ev.position;
        if (i % 7 == 0) {
            td_event dom = tt_event("ItemCounted", "{}");
            assert_td_ok(td_store_append(store, stream, TD_EXPECT_ANY, &dom, 1));
            head = dom.position;
        }
    }
    return head;
}

static td_read_query integration_types(void)
{
    td_read_query q = TD_READ_QUERY_INIT;
    q.category = "item";
    return q;
}

/* The consumer counts a batch just after its unit commits, so its stats
 * trail the store a little: waits until they show n consumed (or 30 s),
 * and fills s. */
static void wait_consumed(td_consumer *consumer, int64_t n, td_broker_stats *s)
{
    for (int i = 0; i < 3000; i++) {
        td_consumer_stats(consumer, s);
        if (s->consumed >= n)
            return;
        usleep(10000);
    }
}

static void end_to_end(td_queue_type queue_type)
{
    pair p;
    pair_open(&p, queue_type);
    int64_t head = append_events(p.from, 0, EVENTS);
    assert_td_ok(td_relay_wait_until(p.relay, head, 30000));
    td_read_query q = integration_types();
    assert_int_equal(tb_wait_count(p.to, &q, EVENTS, 30000), EVENTS);
    assert_int_equal(tb_check_copy(p.from, p.to), EVENTS);

    td_broker_stats rs, cs;
    td_relay_stats(p.relay, &rs);
    wait_consumed(p.consumer, EVENTS, &cs);
    assert_true(rs.connected);
    assert_int_equal(rs.published, EVENTS);
    assert_int_equal(rs.confirmed, EVENTS);
    assert_int_equal(rs.nacked, 0);
    assert_int_equal(rs.checkpoint, head);
    assert_int_equal(rs.lag_events, 0);
    assert_int_equal(cs.consumed, EVENTS);
    assert_int_equal(cs.duplicates, 0);
    assert_int_equal(cs.rejected, 0);

    char *text = NULL;
    size_t len = 0;
    char line[160];
    snprintf(line, sizeof line, "broker_consumed_total{queue=\"%s\"} %d\n", p.queue, EVENTS);
    for (int i = 0; i < 300; i++) { /* the metric follows the stats by a moment */
        td_free(text);
        assert_td_ok(td_metrics_render(p.metrics, &text, &len));
        if (strstr(text, line))
            break;
        usleep(10000);
    }
    if (strstr(text, line) == NULL)
        fail_msg("no '%s' in the metrics:\n%s", line, text);
    assert_non_null(strstr(text, "broker_confirmed_total{relay=\"orders\"} 400\n"));
    assert_non_null(strstr(text, "broker_relay_lag_events{relay=\"orders\"} 0\n"));
    assert_non_null(strstr(text, "broker_relay_connected{relay=\"orders\"} 1\n"));
    td_free(text);
    pair_close(&p);
}

static void test_quorum_end_to_end(void **state)
{
    (void)state;
    end_to_end(TD_QUEUE_QUORUM);
}

static void test_classic_end_to_end(void **state)
{
    (void)state;
    end_to_end(TD_QUEUE_CLASSIC);
}

/* A relay rewound to the start publishes everything again: the receiver
 * takes none of it twice. Rewinding is refused while the relay runs, and
 * forward; a rewind to the middle publishes exactly what comes after. */
static void test_republished_events_change_nothing(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, TD_QUEUE_QUORUM);
    int64_t head = append_events(p.from, 0, EVENTS / 2);
    assert_td_ok(td_relay_wait_until(p.relay, head, 30000));
    td_read_query q = integration_types();
    assert_int_equal(tb_wait_count(p.to, &q, EVENTS / 2, 30000), EVENTS / 2);
    int64_t receiver_head = 0, was = -1;
    assert_td_ok(td_store_head(p.to, &receiver_head));
    assert_int_equal(td_relay_rewind(p.from, "orders", 0, NULL), TD_EBUSY); /* it runs */

    assert_td_ok(td_relay_stop(p.relay));
    assert_int_equal(td_relay_rewind(p.from, "orders", head + 1, &was), TD_EINVAL);
    assert_int_equal(was, head); /* the stopped relay saved everything confirmed */
    int64_t middle = head / 2, after_middle = 0;
    td_read_query later = TD_READ_QUERY_INIT; /* the integration events after the middle */
    later.after_position = middle;
    later.type = "ItemAdded";
    after_middle = tt_count(p.from, &later);
    later.type = "ItemRemoved";
    after_middle += tt_count(p.from, &later);
    assert_true(after_middle > 0 && after_middle < EVENTS / 2);
    assert_td_ok(td_relay_rewind(p.from, "orders", middle, &was));
    assert_int_equal(was, head);
    td_relay_free(p.relay);
    td_relay_options ro = TD_RELAY_OPTIONS_INIT;
    ro.name = "orders";
    ro.broker.url = tb_url();
    ro.broker.exchange = p.exchange;
    assert_td_ok(td_relay_new(&p.relay, p.from, &ro));
    assert_td_ok(td_relay_start(p.relay));
    assert_td_ok(td_relay_wait_until(p.relay, head, 30000));
    td_broker_stats rs;
    td_relay_stats(p.relay, &rs);
    assert_int_equal(rs.published, after_middle); /* what comes after the middle, no more */

    assert_td_ok(td_relay_stop(p.relay));
    assert_td_ok(td_relay_rewind(p.from, "orders", 0, &was)); /* and from the start */
    td_relay_free(p.relay);
    assert_td_ok(td_relay_new(&p.relay, p.from, &ro));
    assert_td_ok(td_relay_start(p.relay));
    assert_td_ok(td_relay_wait_until(p.relay, head, 30000));

    td_broker_stats cs;
    for (int i = 0; i < 600; i++) {
        td_consumer_stats(p.consumer, &cs);
        if (cs.duplicates >= EVENTS / 2 + after_middle)
            break;
        usleep(50000);
    }
    assert_int_equal(cs.duplicates, EVENTS / 2 + after_middle);
    assert_int_equal(cs.consumed, EVENTS / 2);
    int64_t after = 0;
    assert_td_ok(td_store_head(p.to, &after));
    assert_int_equal(after, receiver_head);
    assert_int_equal(tb_check_copy(p.from, p.to), EVENTS / 2);
    pair_close(&p);
}

/* The receiving service is down while its queue fills up: started again
 * (a new consumer on the same durable queue, as a restarted process would
 * be), it catches up, each event once, in stream order. */
static void test_restarted_consumer_catches_up_in_order(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, TD_QUEUE_QUORUM);
    int64_t head = append_events(p.from, 0, EVENTS / 4);
    td_read_query q = integration_types();
    assert_int_equal(tb_wait_count(p.to, &q, EVENTS / 4, 30000), EVENTS / 4);

    assert_td_ok(td_consumer_stop(p.consumer));
    td_consumer_free(p.consumer);
    p.consumer = NULL;
    head = append_events(p.from, EVENTS / 4, EVENTS / 2);
    assert_td_ok(td_relay_wait_until(p.relay, head, 30000)); /* all in the queue */
    assert_int_equal(tt_count(p.to, &q), EVENTS / 4);

    td_consumer_options co = TD_CONSUMER_OPTIONS_INIT;
    co.queue = p.queue;
    co.broker.url = tb_url();
    co.broker.exchange = p.exchange;
    co.types = handled;
    co.type_count = 2;
    co.prefetch = 7; /* many small batches */
    assert_td_ok(td_consumer_new(&p.consumer, p.to, &co));
    assert_td_ok(td_consumer_start(p.consumer));
    assert_int_equal(tb_wait_count(p.to, &q, EVENTS * 3 / 4, 30000), EVENTS * 3 / 4);
    assert_int_equal(tb_check_copy(p.from, p.to), EVENTS * 3 / 4);
    td_broker_stats cs;
    wait_consumed(p.consumer, EVENTS / 2, &cs);
    assert_int_equal(cs.consumed, EVENTS / 2);
    assert_int_equal(cs.duplicates, 0);
    pair_close(&p);
}

/* A receiving store that takes nothing (here: events over its size limit,
 * so even the rejection cannot be stored): nothing is acknowledged. Opened
 * as it should be, the next consumer gets every event, once. */
static void test_nothing_is_acknowledged_that_is_not_stored(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, TD_QUEUE_QUORUM);
    assert_td_ok(td_consumer_stop(p.consumer));
    td_consumer_free(p.consumer);
    p.consumer = NULL;
    char *url = strdup(td_store_url(p.to));
    td_store_free(p.to);
    td_store_options so = TD_STORE_OPTIONS_INIT;
    so.max_event_bytes = 8;
    assert_td_ok(td_store_open(&p.to, url, &so));

    td_consumer_options co = TD_CONSUMER_OPTIONS_INIT;
    co.queue = p.queue;
    co.broker.url = tb_url();
    co.broker.exchange = p.exchange;
    co.broker.backoff_initial_ms = 50;
    co.broker.backoff_max_ms = 200;
    co.types = handled;
    co.type_count = 2;
    assert_td_ok(td_consumer_new(&p.consumer, p.to, &co));
    assert_td_ok(td_consumer_start(p.consumer));
    int64_t head = append_events(p.from, 0, 20);
    assert_td_ok(td_relay_wait_until(p.relay, head, 30000));
    td_broker_stats cs;
    for (int i = 0; i < 200; i++) {
        td_consumer_stats(p.consumer, &cs);
        if (strstr(cs.last_error, "refused a batch"))
            break;
        usleep(50000);
    }
    if (strstr(cs.last_error, "refused a batch") == NULL)
        fail_msg("the consumer did not report the store's refusal: '%s'", cs.last_error);
    td_read_query all = TD_READ_QUERY_INIT;
    assert_int_equal(tt_count(p.to, &all), 0);
    assert_int_equal(cs.consumed, 0);
    assert_td_code(td_consumer_stop(p.consumer), TD_ETOOBIG);
    td_consumer_free(p.consumer);
    td_store_free(p.to);

    p.to = tt_open(url);
    free(url);
    co.broker.backoff_initial_ms = 0;
    co.broker.backoff_max_ms = 0;
    assert_td_ok(td_consumer_new(&p.consumer, p.to, &co));
    assert_td_ok(td_consumer_start(p.consumer));
    td_read_query q = integration_types();
    assert_int_equal(tb_wait_count(p.to, &q, 20, 30000), 20);
    assert_int_equal(tb_check_copy(p.from, p.to), 20);
    assert_int_equal(tt_count(p.to, &all), 20); /* nothing rejected either */
    pair_close(&p);
}

/* A relay limited to some sources leaves the others' integration events
 * at home (a service that also consumes does not send back what it got). */
static void test_relay_sends_only_its_sources(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, TD_QUEUE_QUORUM);
    assert_td_ok(td_relay_stop(p.relay));
    td_relay_free(p.relay);
    td_relay_options ro = TD_RELAY_OPTIONS_INIT;
    ro.name = "billing";
    ro.broker.url = tb_url();
    ro.broker.exchange = p.exchange;
    ro.sources = (const char *const[]){"billing", "shipping", NULL};
    assert_td_ok(td_relay_new(&p.relay, p.from, &ro));
    assert_td_ok(td_relay_start(p.relay));
    int64_t head = 0;
    for (int i = 0; i < 30; i++) {
        td_event ev = tt_event("ItemAdded", "{}");
        ev.kind = TD_KIND_INTEGRATION;
        ev.source = i % 3 == 0 ? "billing" : i % 3 == 1 ? "received" : NULL; /* NULL: "item" */
        assert_td_ok(td_store_append(p.from, "item-1", TD_EXPECT_ANY, &ev, 1));
        head = ev.position;
    }
    assert_td_ok(td_relay_wait_until(p.relay, head, 30000));
    td_read_query q = integration_types();
    assert_int_equal(tb_wait_count(p.to, &q, 10, 30000), 10);
    usleep(300000); /* nothing more comes */
    assert_int_equal(tt_count(p.to, &q), 10);
    td_broker_stats rs;
    td_relay_stats(p.relay, &rs);
    assert_int_equal(rs.published, 10);
    assert_int_equal(rs.checkpoint, head);

    td_relay *bad = NULL;
    ro.sources = (const char *const[]){"bad source!", NULL};
    assert_td_code(td_relay_new(&bad, p.from, &ro), TD_EINVAL);
    assert_null(bad);
    pair_close(&p);
}

/* One relay per name on a store: a second is refused while the first runs;
 * one started to stand by publishes nothing until the first stops, then
 * carries on from the first's checkpoint. */
static void test_one_relay_per_name(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, TD_QUEUE_QUORUM);
    int64_t head = append_events(p.from, 0, 40);
    assert_td_ok(td_relay_wait_until(p.relay, head, 30000));
    td_relay_options ro = TD_RELAY_OPTIONS_INIT;
    ro.name = "orders"; /* pair_open's relay's name */
    ro.broker.url = tb_url();
    ro.broker.exchange = p.exchange;
    td_relay *second = NULL, *standby = NULL;
    assert_td_ok(td_relay_new(&second, p.from, &ro));
    assert_int_equal(td_relay_start(second), TD_EBUSY);
    assert_non_null(strstr(td_error_last(), "runs in another process"));
    td_relay_free(second);
    ro.standby = true;
    assert_td_ok(td_relay_new(&standby, p.from, &ro));
    assert_td_ok(td_relay_start(standby));
    td_broker_stats s;
    usleep(300000);
    td_relay_stats(standby, &s);
    assert_int_equal(s.published, 0);
    assert_non_null(strstr(s.last_error, "standing by"));
    assert_td_ok(td_relay_stop(p.relay)); /* the name is free now */
    head = append_events(p.from, 40, 10);
    assert_td_ok(td_relay_wait_until(standby, head, 30000));
    td_relay_stats(standby, &s);
    assert_int_equal(s.published, 10); /* from the checkpoint the first saved at its stop */
    td_read_query q = integration_types();
    assert_int_equal(tb_wait_count(p.to, &q, 50, 30000), 50); /* each once */
    assert_int_equal(tb_check_copy(p.from, p.to), 50);
    assert_td_ok(td_relay_stop(standby));
    td_relay_free(standby);
    pair_close(&p);
}

/* ---- a relay killed mid-flight ------------------------------------------- */

#define KILLS 3

/* The child: a relay on the sending store, and appends, until killed. */
static int child_main(const char *store_url, const char *exchange)
{
    td_store *store = NULL;
    td_relay *relay = NULL;
    td_relay_options ro = TD_RELAY_OPTIONS_INIT;
    ro.name = "orders";
    ro.broker.url = tb_url();
    ro.broker.exchange = exchange;
    ro.max_in_flight = 512;
    if (td_store_open(&store, store_url, NULL) < 0 || td_relay_new(&relay, store, &ro) < 0 ||
        td_relay_start(relay) < 0) {
        fprintf(stderr, "child: %s\n", td_error_last());
        return 2;
    }
    for (int i = 0;; i++) {
        char stream[32];
        snprintf(stream, sizeof stream, "item-%d", i % STREAMS);
        td_event ev = tt_event("ItemAdded", "{\"n\":1}");
        ev.kind = TD_KIND_INTEGRATION;
        if (td_store_append(store, stream, TD_EXPECT_ANY, &ev, 1) < 0)
            return 3;
        if (i % 4 == 0)
            usleep(500);
    }
}

static const char *self;

/* SIGKILL while messages wait for their confirms, three times: the
 * checkpoint never passed an unconfirmed event, so the relay that takes
 * over republishes and never skips, and the receiver holds each event
 * once. */
static void test_relay_killed_mid_flight_skips_nothing(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, TD_QUEUE_QUORUM);
    assert_td_ok(td_relay_stop(p.relay)); /* the children relay */
    char *url = strdup(td_store_url(p.from));
    for (int round = 0; round < KILLS; round++) {
        const char *args[] = {url, p.exchange, NULL};
        pid_t pid = tt_spawn(self, args, NULL);
        usleep(1500000);
        assert_int_equal(kill(pid, SIGKILL), 0);
        assert_int_equal(tt_wait(pid), 128 + SIGKILL);
    }
    free(url);
    int64_t head = 0;
    assert_td_ok(td_store_head(p.from, &head));
    td_relay_free(p.relay);
    td_relay_options ro = TD_RELAY_OPTIONS_INIT;
    ro.name = "orders";
    ro.broker.url = tb_url();
    ro.broker.exchange = p.exchange;
    assert_td_ok(td_relay_new(&p.relay, p.from, &ro));
    assert_td_ok(td_relay_start(p.relay));
    assert_td_ok(td_relay_wait_until(p.relay, head, 60000));
    td_read_query q = integration_types();
    int64_t sent = tt_count(p.from, &q);
    assert_true(sent > 100);
    assert_int_equal(tb_wait_count(p.to, &q, sent, 60000), sent);
    assert_int_equal(tb_check_copy(p.from, p.to), sent);
    td_broker_stats cs;
    td_consumer_stats(p.consumer, &cs);
    print_message("%lld events over %d kills; %lld duplicates dropped\n", (long long)sent, KILLS,
                  (long long)cs.duplicates);
    pair_close(&p);
}

/* ---- messages that cannot be taken ---------------------------------------- */

typedef struct raw {
    amqp_connection_state_t conn;
} raw;

static void raw_open(raw *r)
{
    struct amqp_connection_info info;
    char *url = strdup(tb_url());
    assert_int_equal(amqp_parse_url(url, &info), AMQP_STATUS_OK);
    r->conn = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(r->conn);
    assert_int_equal(amqp_socket_open(s, info.host, info.port), AMQP_STATUS_OK);
    assert_int_equal(amqp_login(r->conn, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
                                info.user, info.password)
                         .reply_type,
                     AMQP_RESPONSE_NORMAL);
    amqp_channel_open(r->conn, 1);
    assert_int_equal(amqp_get_rpc_reply(r->conn).reply_type, AMQP_RESPONSE_NORMAL);
    free(url);
}

static void raw_publish(raw *r, const char *exchange, const char *key, const char *id,
                        const char *type, int schema, const char *body)
{
    amqp_table_entry_t h[3];
    int n = 0;
    if (type) {
        h[n].key = amqp_cstring_bytes("type");
        h[n].value.kind = AMQP_FIELD_KIND_UTF8;
        h[n++].value.value.bytes = amqp_cstring_bytes(type);
    }
    h[n].key = amqp_cstring_bytes("stream");
    h[n].value.kind = AMQP_FIELD_KIND_UTF8;
    h[n++].value.value.bytes = amqp_cstring_bytes("item-raw");
    h[n].key = amqp_cstring_bytes("schema_version");
    h[n].value.kind = AMQP_FIELD_KIND_I32;
    h[n++].value.value.i32 = schema;
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = 2;
    props.headers = (amqp_table_t){n, h};
    if (id) {
        props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
        props.message_id = amqp_cstring_bytes(id);
    }
    assert_int_equal(amqp_basic_publish(r->conn, 1, amqp_cstring_bytes(exchange),
                                        amqp_cstring_bytes(key), 0, 0, &props,
                                        amqp_cstring_bytes(body)),
                     AMQP_STATUS_OK);
}

static void raw_close(raw *r)
{
    amqp_channel_close(r->conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(r->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(r->conn);
}

typedef struct dead {
    int count;
    char errors[1024];
} dead;

static int collect_dead(const td_dead_letter *entry, void *payload)
{
    dead *d = payload;
    d->count++;
    strncat(d->errors, entry->last_error, sizeof d->errors - strlen(d->errors) - 2);
    strcat(d->errors, "\n");
    return 0;
}

static void test_unusable_messages_are_parked_with_why(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, TD_QUEUE_QUORUM);
    raw r;
    raw_open(&r);
    /* no id; a body that is not JSON; a schema too new; a type not bound */
    raw_publish(&r, p.exchange, "ItemAdded", NULL, "ItemAdded", 1, "{}");
    raw_publish(&r, p.exchange, "ItemAdded", "0190c3a0-0000-7000-8000-000000000001", "ItemAdded", 1,
                "not json");
    raw_publish(&r, p.exchange, "ItemAdded", "0190c3a0-0000-7000-8000-000000000002", "ItemAdded", 3,
                "{}");
    raw_publish(&r, p.exchange, "ItemAdded", "0190c3a0-0000-7000-8000-000000000003", "Other", 1,
                "{}");
    /* ... and a good one, which goes on */
    raw_publish(&r, p.exchange, "ItemAdded", "0190c3a0-0000-7000-8000-000000000004", "ItemAdded", 2,
                "{\"n\":1}");
    raw_close(&r);

    td_read_query q = TD_READ_QUERY_INIT;
    q.stream = "item-raw";
    assert_int_equal(tb_wait_count(p.to, &q, 1, 20000), 1);
    dead d = {0, ""};
    td_dlq_filter f = {NULL, NULL, NULL};
    char intake[80];
    snprintf(intake, sizeof intake, "%s.intake", p.queue);
    f.subscription = intake;
    for (int i = 0; i < 400 && d.count < 4; i++) {
        d = (dead){0, ""};
        assert_td_ok(td_dlq_list(p.to, &f, collect_dead, &d));
        usleep(50000);
    }
    assert_int_equal(d.count, 4);
    assert_non_null(strstr(d.errors, "no event id"));
    assert_non_null(strstr(d.errors, "data"));
    assert_non_null(strstr(d.errors, "newer than the 2"));
    assert_non_null(strstr(d.errors, "does not take events of type Other"));
    td_broker_stats cs;
    td_consumer_stats(p.consumer, &cs);
    assert_int_equal(cs.rejected, 4);
    assert_int_equal(cs.consumed, 1);
    pair_close(&p);
}

/* Without a limit of its own, a type's limit is the schema the receiving
 * store's upcasters read it at. */
/* Integration events of a type no queue is bound for are kept in the
 * exchange's .unrouted queue, not dropped by the broker. */
static void test_unbound_types_are_kept(void **state)
{
    (void)state;
    pair p;
    pair_open(&p, TD_QUEUE_QUORUM);
    int64_t head = 0;
    for (int i = 0; i < 12; i++) {
        td_event ev = tt_event(i % 3 == 0 ? "ItemAdded" : "NobodyIsBoundForThis", "{}");
        ev.kind = TD_KIND_INTEGRATION;
        assert_td_ok(td_store_append(p.from, "item-1", TD_EXPECT_ANY, &ev, 1));
        head = ev.position;
    }
    assert_td_ok(td_relay_wait_until(p.relay, head, 30000)); /* all confirmed */
    td_read_query q = integration_types();
    assert_int_equal(tb_wait_count(p.to, &q, 4, 30000), 4);

    raw r;
    raw_open(&r);
    char unrouted[80];
    snprintf(unrouted, sizeof unrouted, "%s.unrouted", p.exchange);
    int kept = 0;
    for (int tries = 0; tries < 100 && kept < 8; tries++) {
        amqp_rpc_reply_t got = amqp_basic_get(r.conn, 1, amqp_cstring_bytes(unrouted), 1);
        assert_int_equal(got.reply_type, AMQP_RESPONSE_NORMAL);
        if (got.reply.id != AMQP_BASIC_GET_OK_METHOD) { /* empty just now */
            usleep(50000);
            continue;
        }
        amqp_message_t message;
        assert_int_equal(amqp_read_message(r.conn, 1, &message, 0).reply_type,
                         AMQP_RESPONSE_NORMAL);
        amqp_table_t *headers = &message.properties.headers;
        for (int i = 0; i < headers->num_entries; i++) {
            amqp_bytes_t key = headers->entries[i].key,
                         value = headers->entries[i].value.value.bytes;
            if (key.len == 4 && memcmp(key.bytes, "type", 4) == 0) {
                assert_int_equal(value.len, 20);
                assert_memory_equal(value.bytes, "NobodyIsBoundForThis", 20);
            }
        }
        amqp_destroy_message(&message);
        kept++;
    }
    raw_close(&r);
    assert_int_equal(kept, 8);
    pair_close(&p);
}

static void test_schema_limit_from_the_upcasters(void **state)
{
    (void)state;
    char *dir = tt_tmpdir(), *url = tt_store_url(dir, "receiver.db");
    char exchange[64], queue[64];
    tb_name(exchange, sizeof exchange, "x");
    tb_name(queue, sizeof queue, "q");
    td_store *to = tt_open(url);
    td_upcasters *up = NULL;
    assert_td_ok(td_upcasters_new(&up));
    assert_td_ok(td_upcasters_declare(up, "ItemRemoved", 1));
    td_store_set_upcasters(to, up);
    td_consumer *consumer = NULL;
    td_consumer_options co = TD_CONSUMER_OPTIONS_INIT;
    co.queue = queue;
    co.broker.url = tb_url();
    co.broker.exchange = exchange;
    co.types = handled; /* ItemRemoved without a limit of its own */
    co.type_count = 2;
    assert_td_ok(td_consumer_new(&consumer, to, &co));
    assert_td_ok(td_consumer_start(consumer));
    td_broker_stats cs;
    for (int i = 0; i < 200 && (td_consumer_stats(consumer, &cs), !cs.connected); i++)
        usleep(50000);
    assert_true(cs.connected);
    raw r;
    raw_open(&r);
    raw_publish(&r, exchange, "ItemRemoved", "0190c3a0-0000-7000-8000-000000000011", "ItemRemoved",
                2, "{}");
    raw_publish(&r, exchange, "ItemRemoved", "0190c3a0-0000-7000-8000-000000000012", "ItemRemoved",
                1, "{}");
    raw_close(&r);
    td_read_query q = TD_READ_QUERY_INIT;
    q.stream = "item-raw";
    assert_int_equal(tb_wait_count(to, &q, 1, 20000), 1);
    for (int i = 0; i < 200 && (td_consumer_stats(consumer, &cs), cs.rejected < 1); i++)
        usleep(50000);
    assert_int_equal(cs.rejected, 1);
    assert_int_equal(cs.consumed, 1);
    dead d = {0, ""};
    char intake[80];
    snprintf(intake, sizeof intake, "%s.intake", queue);
    td_dlq_filter f = {intake, NULL, NULL};
    for (int i = 0; i < 200 && d.count < 1; i++) {
        d = (dead){0, ""};
        assert_td_ok(td_dlq_list(to, &f, collect_dead, &d));
        usleep(50000);
    }
    assert_int_equal(d.count, 1);
    assert_non_null(strstr(d.errors, "ItemRemoved at schema 2 is newer than the 1"));
    assert_td_ok(td_consumer_stop(consumer));
    td_consumer_free(consumer);
    td_store_free(to);
    td_upcasters_free(up);
    free(url);
    tt_rmdir(dir);
}

/* ---- the encode and decode hooks ------------------------------------------- */

#define WIRE_PREFIX "{\"wire\":1,\"sealed\":"
#define CALLS_MAX   2048

/* The sending side's encode: wraps each body as {"wire":1,"sealed":DATA},
 * as a service re-sealing its stored data for the wire would, and keeps the
 * n of each event it is asked about (append_events' data), in call order.
 * The event with n == fail_n it cannot send for its first fail_left calls
 * (the second time, it notes what the relay's stats say meanwhile); the one
 * with n == plain_n it sends as stored. Runs on the relay's thread. */
typedef struct wire {
    pthread_mutex_t lock;
    int calls, fail_n, fail_left, fail_calls, plain_n, sent;
    int order[CALLS_MAX];
    td_relay *relay;
    td_broker_stats while_failing; /* the relay's stats at the second failing call */
} wire;

static void wire_init(wire *w)
{
    memset(w, 0, sizeof *w);
    assert_int_equal(pthread_mutex_init(&w->lock, NULL), 0);
    w->fail_n = w->plain_n = -1;
}

/* The n of append_events' data, sealed for the wire or not; -1 if none. */
static int data_n(const td_event *ev)
{
    int n = -1;
    const char *data = ev->data;
    if (strncmp(data, WIRE_PREFIX, strlen(WIRE_PREFIX)) == 0)
        data += strlen(WIRE_PREFIX);
    return sscanf(data, "{\"n\":%d", &n) == 1 ? n : -1;
}

static int wrap_for_wire(const td_event *ev, char **body, void *payload)
{
    wire *w = payload;
    int n = data_n(ev);
    pthread_mutex_lock(&w->lock);
    if (w->calls < CALLS_MAX)
        w->order[w->calls] = n;
    w->calls++;
    bool failing = n == w->fail_n && w->fail_left > 0, plain = n == w->plain_n;
    if (failing) {
        w->fail_left--;
        if (++w->fail_calls == 2) /* the relay has paused once for it */
            td_relay_stats(w->relay, &w->while_failing);
    } else {
        w->sent++;
    }
    pthread_mutex_unlock(&w->lock);
    if (failing) {                             /* its key for the wire not there yet, say */
        *body = strdup("{\"half\":\"made\"}"); /* the relay frees it, and sends nothing */
        return TD_EIO;
    }
    if (plain)
        return 0;
    size_t len = ev->data_len ? ev->data_len : strlen(ev->data);
    size_t size = sizeof WIRE_PREFIX + len + 1;
    if ((*body = malloc(size)) == NULL)
        return TD_ENOMEM;
    snprintf(*body, size, "%s%.*s}", WIRE_PREFIX, (int)len, ev->data);
    return 1;
}

static int wire_calls(wire *w)
{
    pthread_mutex_lock(&w->lock);
    int calls = w->calls;
    pthread_mutex_unlock(&w->lock);
    return calls;
}

/* The receiving side's decode: takes the wrapper off (TD_EINVAL for a body
 * without it, saying so; bare TD_EINVAL for the event with n == silent_n),
 * and in the message's unit keeps the data in document
 * decoded/ID and counts its calls in document decoded_count/all. Those
 * writes are undone with the message's when the event is stored already,
 * so the count is of events stored, while calls counts every delivery. */
typedef struct unwrap {
    pthread_mutex_t lock;
    int calls, silent_n;
} unwrap;

static int unwrap_from_wire(td_txn *txn, const td_event *ev, char **data, void *payload)
{
    unwrap *u = payload;
    pthread_mutex_lock(&u->lock);
    u->calls++;
    bool silent = u->silent_n >= 0 && data_n(ev) == u->silent_n;
    pthread_mutex_unlock(&u->lock);
    if (silent)
        return TD_EINVAL; /* why left unsaid */
    size_t len = ev->data_len ? ev->data_len : strlen(ev->data), prefix = strlen(WIRE_PREFIX);
    if (len < prefix + 3 || memcmp(ev->data, WIRE_PREFIX, prefix) != 0 || ev->data[len - 1] != '}')
        return td_error_report(TD_EINVAL, "the body is not sealed for the wire");
    size_t inner = len - prefix - 1;
    char id[TD_UUID_STR_LEN + 1], *count_text = NULL, count_json[32];
    td_uuid_format(id, &ev->id);
    int error = td_txn_doc_put(txn, "decoded", id, ev->data + prefix, inner);
    if (error < 0)
        return error;
    size_t count_len = 0;
    long long count = 0;
    error = td_txn_doc_get(txn, "decoded_count", "all", &count_text, &count_len);
    if (error == 0) {
        json_t *doc = json_loadb(count_text, count_len, 0, NULL);
        count = json_integer_value(json_object_get(doc, "n"));
        json_decref(doc);
        td_free(count_text);
    } else if (error != TD_ENOTFOUND) {
        return error;
    }
    snprintf(count_json, sizeof count_json, "{\"n\":%lld}", count + 1);
    error = td_txn_doc_put(txn, "decoded_count", "all", count_json, strlen(count_json));
    if (error < 0)
        return error;
    if ((*data = malloc(inner + 1)) == NULL)
        return TD_ENOMEM;
    memcpy(*data, ev->data + prefix, inner);
    (*data)[inner] = '\0';
    return 1;
}

static int unwrap_calls(unwrap *u)
{
    pthread_mutex_lock(&u->lock);
    int calls = u->calls;
    pthread_mutex_unlock(&u->lock);
    return calls;
}

static long long decoded_count(td_store *store)
{
    char *text = NULL;
    size_t len = 0;
    assert_td_ok(td_store_doc_get(store, "decoded_count", "all", &text, &len));
    json_t *doc = json_loadb(text, len, 0, NULL);
    long long n = json_integer_value(json_object_get(doc, "n"));
    json_decref(doc);
    td_free(text);
    return n;
}

/* Each received event's document decoded/ID holds its data (as stored: the
 * wrapper taken off) and no stored event has the wrapper. */
static int check_decoded(const td_event *ev, void *payload)
{
    td_store *store = payload;
    char id[TD_UUID_STR_LEN + 1], *text = NULL;
    size_t len = 0;
    td_uuid_format(id, &ev->id);
    assert_null(strstr(ev->data, "\"wire\""));
    assert_td_ok(td_store_doc_get(store, "decoded", id, &text, &len));
    json_t *doc = json_loadb(text, len, 0, NULL), *data = json_loads(ev->data, 0, NULL);
    assert_non_null(doc);
    assert_true(json_equal(doc, data));
    json_decref(doc);
    json_decref(data);
    td_free(text);
    return 0;
}

static void wait_duplicates(td_consumer *consumer, int64_t n, td_broker_stats *s)
{
    for (int i = 0; i < 3000; i++) {
        td_consumer_stats(consumer, s);
        if (s->duplicates >= n)
            return;
        usleep(10000);
    }
}

#define HOOKED 60

/* The relay's encode wraps every body, the consumer's decode takes the
 * wrapper off and writes documents in the message's unit: the receiver
 * holds the data as the sender stored it, each event once in stream order,
 * with its documents. Everything published again (a rewind to 0) is
 * decoded again, but the duplicates' document writes are undone with them. */
static void test_encode_and_decode_carry_bodies_across(void **state)
{
    (void)state;
    wire w;
    unwrap u = {PTHREAD_MUTEX_INITIALIZER, 0, -1};
    wire_init(&w);
    hooks h = {0, 0, wrap_for_wire, &w, unwrap_from_wire, &u};
    pair p;
    pair_open_with(&p, TD_QUEUE_QUORUM, &h);
    int64_t head = append_events(p.from, 0, HOOKED);
    assert_td_ok(td_relay_wait_until(p.relay, head, 30000));
    td_read_query q = integration_types();
    assert_int_equal(tb_wait_count(p.to, &q, HOOKED, 30000), HOOKED);
    assert_int_equal(tb_check_copy(p.from, p.to), HOOKED); /* the data as stored, in order */
    assert_td_ok(td_store_read_stored(p.to, &q, check_decoded, p.to));
    td_broker_stats cs;
    wait_consumed(p.consumer, HOOKED, &cs);
    assert_int_equal(cs.consumed, HOOKED);
    assert_int_equal(cs.rejected, 0);
    assert_int_equal(decoded_count(p.to), HOOKED);
    assert_int_equal(wire_calls(&w), HOOKED);
    int64_t receiver_head = 0, after = 0;
    assert_td_ok(td_store_head(p.to, &receiver_head));

    /* published again, encoded again, decoded again: nothing of it stays */
    assert_td_ok(td_relay_stop(p.relay));
    assert_td_ok(td_relay_rewind(p.from, "orders", 0, NULL));
    td_relay_free(p.relay);
    td_relay_options ro = TD_RELAY_OPTIONS_INIT;
    ro.name = "orders";
    ro.broker.url = tb_url();
    ro.broker.exchange = p.exchange;
    ro.encode = wrap_for_wire;
    ro.encode_payload = &w;
    assert_td_ok(td_relay_new(&p.relay, p.from, &ro));
    assert_td_ok(td_relay_start(p.relay));
    assert_td_ok(td_relay_wait_until(p.relay, head, 30000));
    wait_duplicates(p.consumer, HOOKED, &cs);
    assert_int_equal(cs.duplicates, HOOKED);
    assert_int_equal(cs.consumed, HOOKED);
    assert_int_equal(wire_calls(&w), 2 * HOOKED);
    assert_int_equal(unwrap_calls(&u), 2 * HOOKED); /* every delivery decoded ... */
    assert_int_equal(decoded_count(p.to), HOOKED);  /* ... its writes kept once */
    assert_td_ok(td_store_head(p.to, &after));
    assert_int_equal(after, receiver_head);
    assert_int_equal(tb_check_copy(p.from, p.to), HOOKED);
    pair_close(&p);
    pthread_mutex_destroy(&w.lock);
    pthread_mutex_destroy(&u.lock);
}

#define FAIL_N     5
#define FAIL_TIMES 3

/* An encode that cannot send one event yet: the relay asks again after a
 * pause and publishes nothing after it meanwhile (its stats saying why);
 * once it can, every event arrives once, in order. */
static void test_encode_not_ready_holds_back_what_follows(void **state)
{
    (void)state;
    wire w;
    unwrap u = {PTHREAD_MUTEX_INITIALIZER, 0, -1};
    wire_init(&w);
    w.fail_n = FAIL_N;
    w.fail_left = FAIL_TIMES;
    hooks h = {0, 0, wrap_for_wire, &w, unwrap_from_wire, &u};
    pair p;
    pair_open_with(&p, TD_QUEUE_QUORUM, &h);
    pthread_mutex_lock(&w.lock);
    w.relay = p.relay;
    pthread_mutex_unlock(&w.lock);
    int64_t head = append_events(p.from, 0, HOOKED);
    assert_td_ok(td_relay_wait_until(p.relay, head, 30000));
    td_read_query q = integration_types();
    assert_int_equal(tb_wait_count(p.to, &q, HOOKED, 30000), HOOKED);
    assert_int_equal(tb_check_copy(p.from, p.to), HOOKED);
    td_broker_stats cs;
    wait_consumed(p.consumer, HOOKED, &cs);
    assert_int_equal(cs.consumed, HOOKED);
    assert_int_equal(decoded_count(p.to), HOOKED);
    assert_td_ok(td_relay_stop(p.relay)); /* its thread is done with w */

    /* the event was asked about FAIL_TIMES + 1 times, and no later one
     * before it went through (a reconnect may repeat earlier ones) */
    assert_true(w.calls <= CALLS_MAX);
    int seen = 0;
    for (int i = 0; i < w.calls && seen <= FAIL_TIMES; i++) {
        if (w.order[i] == FAIL_N)
            seen++;
        else if (w.order[i] > FAIL_N)
            fail_msg("event %d was encoded before event %d could be sent", w.order[i], FAIL_N);
    }
    assert_int_equal(seen, FAIL_TIMES + 1);
    assert_int_equal(w.fail_calls, FAIL_TIMES);
    /* while it failed: published what came before it, no more, and said why */
    assert_int_equal(w.while_failing.published, FAIL_N);
    assert_true(w.while_failing.connected);
    if (strstr(w.while_failing.last_error, "its encode cannot send the event after") == NULL ||
        strstr(w.while_failing.last_error, "it gave no reason") == NULL)
        fail_msg("the relay did not say its encode held it back: '%s'", w.while_failing.last_error);
    pair_close(&p);
    pthread_mutex_destroy(&w.lock);
    pthread_mutex_destroy(&u.lock);
}

#define SILENT_N 11

typedef struct dead_ids {
    int count;
    td_uuid event_id[2];
    char error[2][256];
} dead_ids;

static int collect_dead_id(const td_dead_letter *entry, void *payload)
{
    dead_ids *d = payload;
    if (d->count < 2) {
        d->event_id[d->count] = entry->event_id;
        snprintf(d->error[d->count], sizeof d->error[0], "%s", entry->last_error);
    }
    d->count++;
    return 0;
}

typedef struct find {
    int n;
    td_uuid id;
} find;

static int find_n(const td_event *ev, void *payload)
{
    find *f = payload;
    if (data_n(ev) != f->n)
        return 0;
    f->id = ev->id;
    return 1;
}

/* The dead letter of event n says `why` about the decode's refusal. */
static void check_parked(td_store *from, const dead_ids *d, int n, const char *why)
{
    find f = {n, {{0}}};
    td_read_query all = TD_READ_QUERY_INIT;
    assert_td_ok(td_store_read_stored(from, &all, find_n, &f));
    char id[TD_UUID_STR_LEN + 1], expected[200];
    td_uuid_format(id, &f.id);
    snprintf(expected, sizeof expected, "the consumer's decode refused event %s: %s", id, why);
    for (int i = 0; i < 2; i++)
        if (td_uuid_compare(&d->event_id[i], &f.id) == 0) {
            if (strstr(d->error[i], expected) == NULL)
                fail_msg("the dead letter does not say '%s': '%s'", expected, d->error[i]);
            return;
        }
    fail_msg("event %d (%s) is not in the dead-letter queue", n, id);
}

/* A decode that refuses messages, once saying why, once not: each is
 * parked in the dead-letter queue with the event's id and a reason naming
 * the decode (its own, or that it gave none, never a stale one); the rest
 * are stored, and the consumer goes on. */
static void test_message_the_decode_refuses_is_parked(void **state)
{
    (void)state;
    wire w;
    unwrap u = {PTHREAD_MUTEX_INITIALIZER, 0, -1};
    wire_init(&w);
    w.plain_n = FAIL_N; /* sent without the wrapper: the decode refuses it */
    u.silent_n = SILENT_N;
    hooks h = {0, 0, wrap_for_wire, &w, unwrap_from_wire, &u};
    pair p;
    pair_open_with(&p, TD_QUEUE_QUORUM, &h);
    int64_t head = append_events(p.from, 0, HOOKED / 2);
    assert_td_ok(td_relay_wait_until(p.relay, head, 30000));
    td_read_query q = integration_types();
    assert_int_equal(tb_wait_count(p.to, &q, HOOKED / 2 - 2, 30000), HOOKED / 2 - 2);

    dead_ids d;
    char intake[80];
    snprintf(intake, sizeof intake, "%s.intake", p.queue);
    td_dlq_filter f = {intake, NULL, NULL};
    for (int i = 0; i < 400; i++) {
        memset(&d, 0, sizeof d);
        assert_td_ok(td_dlq_list(p.to, &f, collect_dead_id, &d));
        if (d.count >= 2)
            break;
        usleep(50000);
    }
    assert_int_equal(d.count, 2);
    check_parked(p.from, &d, FAIL_N, "the body is not sealed for the wire");
    check_parked(p.from, &d, SILENT_N, "it gave no reason");

    /* the consumer goes on */
    head = append_events(p.from, HOOKED / 2, HOOKED / 2);
    assert_td_ok(td_relay_wait_until(p.relay, head, 30000));
    assert_int_equal(tb_wait_count(p.to, &q, HOOKED - 2, 30000), HOOKED - 2);
    td_broker_stats cs;
    wait_consumed(p.consumer, HOOKED - 2, &cs);
    assert_int_equal(cs.consumed, HOOKED - 2);
    assert_int_equal(cs.rejected, 2);
    assert_int_equal(decoded_count(p.to), HOOKED - 2); /* the refused ones wrote nothing */
    usleep(200000);
    assert_int_equal(tt_count(p.to, &q), HOOKED - 2);
    pair_close(&p);
    pthread_mutex_destroy(&w.lock);
    pthread_mutex_destroy(&u.lock);
}

/* Callers built against the older option structs (a version 2 relay's, a
 * version 1 consumer's) have no hooks: whatever lies where the hooks are
 * now is not called, and bodies go as stored. */
static void test_older_options_have_no_hooks(void **state)
{
    (void)state;
    wire w;
    unwrap u = {PTHREAD_MUTEX_INITIALIZER, 0, -1};
    wire_init(&w);
    hooks h = {2, 1, wrap_for_wire, &w, unwrap_from_wire, &u};
    pair p;
    pair_open_with(&p, TD_QUEUE_QUORUM, &h);
    int64_t head = append_events(p.from, 0, 20);
    assert_td_ok(td_relay_wait_until(p.relay, head, 30000));
    td_read_query q = integration_types();
    assert_int_equal(tb_wait_count(p.to, &q, 20, 30000), 20);
    assert_int_equal(tb_check_copy(p.from, p.to), 20);
    assert_int_equal(wire_calls(&w), 0);
    assert_int_equal(unwrap_calls(&u), 0);
    char *text = NULL;
    size_t len = 0;
    assert_td_code(td_store_doc_get(p.to, "decoded_count", "all", &text, &len), TD_ENOTFOUND);
    pair_close(&p);
    pthread_mutex_destroy(&w.lock);
    pthread_mutex_destroy(&u.lock);
}

/* ---- bad options ------------------------------------------------------------ */

static void test_bad_options_are_refused_without_the_password(void **state)
{
    (void)state;
    td_store *store = tt_fixture("opts");
    td_relay *relay = NULL;
    td_relay_options ro = TD_RELAY_OPTIONS_INIT;
    ro.name = "orders";
    ro.broker.url = "http://user:s3cret@127.0.0.1/";
    assert_td_code(td_relay_new(&relay, store, &ro), TD_EINVAL);
    assert_null(strstr(td_error_last(), "s3cret"));
    assert_non_null(strstr(td_error_last(), "user:***@127.0.0.1"));
    ro.broker.url = "amqp://user:s3cret@127.0.0.1/";
    ro.name = "1bad";
    assert_td_code(td_relay_new(&relay, store, &ro), TD_EINVAL);
    assert_null(relay);

    td_consumer *consumer = NULL;
    td_consumer_options co = TD_CONSUMER_OPTIONS_INIT;
    co.queue = "orders";
    co.broker.url = "amqp://user:s3cret@127.0.0.1/";
    assert_td_code(td_consumer_new(&consumer, store, &co), TD_EINVAL); /* no types */
    co.types = (td_consumer_type[]){{"Bad type", 0}};
    co.type_count = 1;
    assert_td_code(td_consumer_new(&consumer, store, &co), TD_EINVAL);
    assert_null(consumer);

    char buf[128];
    td_broker_redact(buf, sizeof buf, "amqp://tidings:pw@127.0.0.1:5672/");
    assert_string_equal(buf, "amqp://tidings:***@127.0.0.1:5672/");
    td_broker_redact(buf, sizeof buf, "amqp://127.0.0.1:5672/");
    assert_string_equal(buf, "amqp://127.0.0.1:5672/");
    tt_fixture_free(store);
}

/* A broker that is not there: the relay keeps trying, says why, and
 * relays once it can (here: never; it stops cleanly). */
static void test_unreachable_broker_is_reported(void **state)
{
    (void)state;
    td_store *store = tt_fixture("unreachable");
    td_relay *relay = NULL;
    td_relay_options ro = TD_RELAY_OPTIONS_INIT;
    ro.name = "orders";
    ro.broker.url = "amqp://tidings:s3cret@127.0.0.1:1/";
    ro.broker.backoff_initial_ms = 10;
    ro.broker.backoff_max_ms = 50;
    assert_td_ok(td_relay_new(&relay, store, &ro));
    assert_td_ok(td_relay_start(relay));
    td_event ev = tt_event("ItemAdded", "{}");
    ev.kind = TD_KIND_INTEGRATION;
    assert_td_ok(td_store_append(store, "item-1", TD_EXPECT_ANY, &ev, 1));
    assert_td_code(td_relay_wait_until(relay, ev.position, 300), TD_EBUSY);
    td_broker_stats s;
    td_relay_stats(relay, &s);
    assert_false(s.connected);
    assert_int_equal(s.checkpoint, 0);
    assert_int_equal(s.lag_events, 1);
    assert_non_null(strstr(s.last_error, "127.0.0.1:1"));
    assert_null(strstr(s.last_error, "s3cret"));
    assert_td_ok(td_relay_stop(relay));
    td_relay_free(relay);
    tt_fixture_free(store);
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "--child") == 0)
        return child_main(argv[2], argv[3]);
    self = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quorum_end_to_end),
        cmocka_unit_test(test_classic_end_to_end),
        cmocka_unit_test(test_republished_events_change_nothing),
        cmocka_unit_test(test_restarted_consumer_catches_up_in_order),
        cmocka_unit_test(test_nothing_is_acknowledged_that_is_not_stored),
        cmocka_unit_test(test_relay_killed_mid_flight_skips_nothing),
        cmocka_unit_test(test_relay_sends_only_its_sources),
        cmocka_unit_test(test_one_relay_per_name),
        cmocka_unit_test(test_unusable_messages_are_parked_with_why),
        cmocka_unit_test(test_unbound_types_are_kept),
        cmocka_unit_test(test_schema_limit_from_the_upcasters),
        cmocka_unit_test(test_encode_and_decode_carry_bodies_across),
        cmocka_unit_test(test_encode_not_ready_holds_back_what_follows),
        cmocka_unit_test(test_message_the_decode_refuses_is_parked),
        cmocka_unit_test(test_older_options_have_no_hooks),
        cmocka_unit_test(test_bad_options_are_refused_without_the_password),
        cmocka_unit_test(test_unreachable_broker_is_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
