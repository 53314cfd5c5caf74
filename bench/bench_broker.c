/*
 * bench_broker.c: the relay's publish rate next to a raw librabbitmq
 * publisher with streamed confirms, and the time from a sender's commit to
 * a receiving handler at a steady 1,000 messages/s, against a real
 * RabbitMQ (bench/broker.sh starts a private node and passes its URL in
 * the file TIDINGS_BENCH_RABBITMQ_URL_FILE; without it this part is
 * skipped).
 *
 * Publish rate: the same EVENTS messages (the store's integration events,
 * read into memory beforehand for the raw publisher; properties, headers
 * and body built by the same code) into a quorum queue bound to a fresh
 * exchange, up to 1024 unconfirmed at once, timed from the first publish
 * to the last confirm (the relay's from its start, connecting included).
 * The raw publisher looks at the confirms that have arrived every 256
 * messages and waits for them only when 1024 are unconfirmed; raw and
 * relay runs alternate.
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "broker/broker_int.h"
#include "tidings/tidings.h"

#define EVENTS    20000
#define WINDOW    1024
#define LAT_RATE  1000
#define LAT_COUNT 5000

static char url[512];

static int read_url(void)
{
    const char *path = getenv("TIDINGS_BENCH_RABBITMQ_URL_FILE");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (f == NULL)
        return 0;
    if (fgets(url, sizeof url, f) == NULL)
        url[0] = '\0';
    fclose(f);
    url[strcspn(url, "\n")] = '\0';
    return url[0] != '\0';
}

typedef struct raw {
    amqp_connection_state_t conn;
} raw;

static int raw_open(raw *r)
{
    struct amqp_connection_info info;
    char *copy = strdup(url);
    int ok = copy && amqp_parse_url(copy, &info) == AMQP_STATUS_OK;
    r->conn = amqp_new_connection();
    amqp_socket_t *s = ok ? amqp_tcp_socket_new(r->conn) : NULL;
    ok = s && amqp_socket_open(s, info.host, info.port) == AMQP_STATUS_OK;
    ok = ok && amqp_login(r->conn, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user,
                          info.password)
                       .reply_type == AMQP_RESPONSE_NORMAL;
    ok = ok && amqp_channel_open(r->conn, 1) != NULL;
    free(copy);
    return ok ? 0 : -1;
}

static int rpc(raw *r)
{
    return amqp_get_rpc_reply(r->conn).reply_type == AMQP_RESPONSE_NORMAL ? 0 : -1;
}

/* A fresh exchange with a quorum queue taking everything. The exchange is
 * declared as the relay declares it (alternate exchange EXCHANGE.unrouted,
 * conn.c), else the relay's own declaration fails as inequivalent (406).
 * Taken down with the unrouted exchange and queue the relay made (relay
 * runs). */
static int topology(raw *r, const char *exchange, const char *queue, bool declare, bool relay)
{
    char unrouted[128];
    snprintf(unrouted, sizeof unrouted, "%s" UNROUTED_SUFFIX, exchange);
    if (!declare) {
        amqp_queue_delete(r->conn, 1, amqp_cstring_bytes(queue), 0, 0);
        if (rpc(r) < 0)
            return -1;
        amqp_exchange_delete(r->conn, 1, amqp_cstring_bytes(exchange), 0);
        int error = rpc(r);
        if (error < 0 || !relay)
            return error;
        amqp_queue_delete(r->conn, 1, amqp_cstring_bytes(unrouted), 0, 0);
        if (rpc(r) < 0)
            return -1;
        amqp_exchange_delete(r->conn, 1, amqp_cstring_bytes(unrouted), 0);
        return rpc(r);
    }
    amqp_table_entry_t arg = {amqp_cstring_bytes("x-queue-type"), {AMQP_FIELD_KIND_UTF8, {0}}};
    arg.value.value.bytes = amqp_cstring_bytes("quorum");
    amqp_table_entry_t alternate = {amqp_cstring_bytes("alternate-exchange"),
                                    {AMQP_FIELD_KIND_UTF8, {0}}};
    alternate.value.value.bytes = amqp_cstring_bytes(unrouted);
    amqp_exchange_declare(r->conn, 1, amqp_cstring_bytes(exchange), amqp_cstring_bytes("topic"), 0,
                          1, 0, 0, (amqp_table_t){1, &alternate});
    if (rpc(r) < 0)
        return -1;
    amqp_queue_declare(r->conn, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, (amqp_table_t){1, &arg});
    if (rpc(r) < 0)
        return -1;
    amqp_queue_bind(r->conn, 1, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes("#"), amqp_empty_table);
    return rpc(r);
}

static void raw_close(raw *r)
{
    amqp_channel_close(r->conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(r->conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(r->conn);
}

typedef struct events {
    td_event *all[EVENTS];
    size_t count;
} events;

static int keep(const td_event *ev, void *payload)
{
    events *e = payload;
    return e->count < EVENTS ? td_event_dup(&e->all[e->count++], ev) : 1;
}

/* Confirms received so far, waiting up to wait_us for the first. */
static int take_confirms(raw *r, uint64_t *confirmed, long wait_us)
{
    struct timeval tv = {0, wait_us};
    amqp_frame_t f;
    int status;
    while ((status = amqp_simple_wait_frame_noblock(r->conn, &f, &tv)) == AMQP_STATUS_OK) {
        tv = (struct timeval){0, 0};
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        if (f.payload.method.id == AMQP_BASIC_NACK_METHOD)
            return -1;
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            amqp_basic_ack_t *a = f.payload.method.decoded;
            if (a->multiple || a->delivery_tag == *confirmed + 1)
                *confirmed = a->delivery_tag; /* singles come in order here */
        }
    }
    amqp_maybe_release_buffers(r->conn);
    return status == AMQP_STATUS_TIMEOUT ? 0 : -1;
}

static double raw_run(const events *e, const char *exchange)
{
    raw r;
    if (raw_open(&r) < 0)
        return -1;
    amqp_confirm_select(r.conn, 1);
    if (rpc(&r) < 0)
        return -1;
    uint64_t sent = 0, confirmed = 0;
    double t0 = bench_now();
    while (confirmed < e->count) {
        while (sent < e->count && sent - confirmed < WINDOW) {
            amqp_basic_properties_t props;
            amqp_table_entry_t entries[TD_HDR_COUNT];
            char id[TD_UUID_STR_LEN + 1];
            const td_event *ev = e->all[sent];
            td_broker__message_props(&props, entries, ev, id);
            amqp_bytes_t body = {strlen(ev->data), (void *)(uintptr_t)ev->data};
            if (amqp_basic_publish(r.conn, 1, amqp_cstring_bytes(exchange),
                                   amqp_cstring_bytes(ev->type), 0, 0, &props, body) != 0)
                return -1;
            sent++;
            if (sent % 256 == 0 && take_confirms(&r, &confirmed, 0) < 0)
                return -1; /* a look at the confirms every 256 messages */
        }
        if (take_confirms(&r, &confirmed, 50000) < 0)
            return -1;
    }
    double rate = (double)e->count / (bench_now() - t0);
    raw_close(&r);
    return rate;
}

static double relay_run(td_store *store, int64_t head, const char *exchange, int run)
{
    td_relay *relay = NULL;
    td_relay_options ro = TD_RELAY_OPTIONS_INIT;
    char name[32];
    snprintf(name, sizeof name, "bench-%d", run);
    ro.name = name;
    ro.broker.url = url;
    ro.broker.exchange = exchange;
    ro.max_in_flight = WINDOW;
    if (td_relay_new(&relay, store, &ro) < 0)
        return -1;
    double t0 = bench_now();
    int error = td_relay_start(relay);
    if (error == 0)
        error = td_relay_wait_until(relay, head, 120000);
    double rate = (double)EVENTS / (bench_now() - t0);
    if (error < 0) { /* why it fell short: the relay's own account */
        td_broker_stats s;
        td_relay_stats(relay, &s);
        fprintf(stderr,
                "bench: broker: relay %s: %s, %lld connects, %lld published, %lld confirmed, "
                "%lld nacked; last error: %s\n",
                name, s.connected ? "connected" : "disconnected", (long long)s.connects,
                (long long)s.published, (long long)s.confirmed, (long long)s.nacked,
                s.last_error[0] ? s.last_error : "none");
    }
    if (error == 0)
        error = td_relay_stop(relay);
    td_relay_free(relay);
    return error < 0 ? -1 : rate;
}

static int fill(td_store *store, int64_t *head)
{
    for (int i = 0; i < EVENTS; i += 1000) {
        td_event batch[1000];
        char data[1000][96];
        for (int j = 0; j < 1000; j++) {
            td_event_init(&batch[j]);
            batch[j].type = "ItemAdded";
            batch[j].kind = TD_KIND_INTEGRATION;
            batch[j].correlation_id = "bench";
            snprintf(data[j], sizeof data[j], "{\"n\":%d,\"sku\":\"SKU-%06d\",\"quantity\":3}",
                     i + j, i + j);
            batch[j].data = data[j];
        }
        char stream[32];
        snprintf(stream, sizeof stream, "item-%d", i / 1000);
        if (td_store_append(store, stream, TD_EXPECT_ANY, batch, 1000) < 0)
            return -1;
        *head = batch[999].position;
    }
    return 0;
}

static int publish_rates(td_store *store, int64_t head)
{
    static events e;
    td_read_query q = TD_READ_QUERY_INIT;
    if (td_store_read_stored(store, &q, keep, &e) < 0)
        return -1;
    double raws[BENCH_RUNS], relays[BENCH_RUNS];
    raw admin;
    if (raw_open(&admin) < 0)
        return -1;
    for (int run = 0; run < BENCH_RUNS; run++) {
        /* which goes first alternates too */
        for (int k = 0; k < 2; k++) {
            bool relay = (k + run) % 2 == 1;
            char exchange[64], queue[80];
            snprintf(exchange, sizeof exchange, "bench-%s-%d-%d", relay ? "relay" : "raw",
                     (int)getpid(), run);
            snprintf(queue, sizeof queue, "%s-q", exchange);
            double rate = -1;
            if (topology(&admin, exchange, queue, true, relay) < 0)
                return -1;
            rate = relay ? relay_run(store, head, exchange, run) : raw_run(&e, exchange);
            if (rate < 0 || topology(&admin, exchange, queue, false, relay) < 0)
                return -1;
            *(relay ? &relays[run] : &raws[run]) = rate;
        }
    }
    raw_close(&admin);
    for (size_t i = 0; i < e.count; i++)
        td_event_free(e.all[i]);
    double raw_rate = bench_median(raws, BENCH_RUNS), relay_rate = bench_median(relays, BENCH_RUNS);
    bench_report("raw_publish_confirmed_per_s", raw_rate, "messages/s");
    bench_report("relay_publish_confirmed_per_s", relay_rate, "messages/s");
    printf("relay_vs_raw_publish: %.2f\n", relay_rate / raw_rate);
    return 0;
}

/* ---- sender's commit to the receiver's handler, at 1,000/s ------------- */

typedef struct latency {
    double *samples;
    size_t count;
    pthread_mutex_t lock;
} latency;

static int on_event(td_delivery *d, const td_event *ev, void *payload)
{
    latency *l = payload;
    (void)d;
    double s = (double)(td_time_now() - ev->occurred_at) / 1e6;
    pthread_mutex_lock(&l->lock);
    if (l->count < LAT_COUNT)
        l->samples[l->count++] = s;
    pthread_mutex_unlock(&l->lock);
    return 0;
}

static int latency_run(const char *dir)
{
    char a[1024], b[1024], exchange[64], queue[64];
    snprintf(a, sizeof a, "sqlite:%s/lat-sender.db", dir);
    snprintf(b, sizeof b, "sqlite:%s/lat-receiver.db", dir);
    snprintf(exchange, sizeof exchange, "bench-lat-%d", (int)getpid());
    snprintf(queue, sizeof queue, "bench-lat-%d", (int)getpid());
    td_store *from = NULL, *to = NULL;
    td_relay *relay = NULL;
    td_consumer *consumer = NULL;
    td_subscription *sub = NULL;
    latency l = {calloc(LAT_COUNT, sizeof(double)), 0, PTHREAD_MUTEX_INITIALIZER};
    int error = td_store_open(&from, a, NULL);
    if (error == 0)
        error = td_store_open(&to, b, NULL);
    td_consumer_type types[] = {{"Tick", 0}};
    td_consumer_options co = TD_CONSUMER_OPTIONS_INIT;
    co.queue = queue;
    co.broker.url = url;
    co.broker.exchange = exchange;
    co.types = types;
    co.type_count = 1;
    td_relay_options ro = TD_RELAY_OPTIONS_INIT;
    ro.name = "latency";
    ro.broker = co.broker;
    td_subscription_options so = TD_SUBSCRIPTION_OPTIONS_INIT;
    so.name = "ticks";
    so.match.type = "Tick";
    if (error == 0)
        error = td_consumer_new(&consumer, to, &co);
    if (error == 0)
        error = td_consumer_start(consumer);
    if (error == 0)
        error = td_relay_new(&relay, from, &ro);
    if (error == 0)
        error = td_relay_start(relay);
    if (error == 0)
        error = td_subscription_new(&sub, to, &so, on_event, &l);
    if (error == 0)
        error = td_subscription_start(sub);
    sleep(1); /* connected and bound */
    double start = bench_now();
    for (int i = 0; error == 0 && i < LAT_COUNT; i++) {
        double due = start + (double)i / LAT_RATE;
        while (bench_now() < due)
            usleep(200);
        td_event ev;
        td_event_init(&ev);
        ev.type = "Tick";
        ev.kind = TD_KIND_INTEGRATION;
        ev.data = "{\"n\":1}";
        error = td_store_append(from, "tick-1", TD_EXPECT_ANY, &ev, 1);
    }
    for (int i = 0; error == 0 && i < 600 && l.count < LAT_COUNT; i++)
        usleep(50000);
    if (error < 0)
        fprintf(stderr, "bench: latency: %s\n", td_error_last());
    td_subscription_free(sub);
    td_relay_free(relay);
    td_consumer_free(consumer);
    td_store_free(from);
    td_store_free(to);
    if (error == 0 && l.count == LAT_COUNT) {
        double p50, p99;
        bench_median(l.samples, l.count); /* sorts */
        p50 = l.samples[l.count / 2];
        p99 = l.samples[(size_t)((double)l.count * 0.99)];
        printf("commit_to_remote_handler_p50_ms: %.2f\n", p50 * 1e3);
        printf("commit_to_remote_handler_p99_ms: %.2f\n", p99 * 1e3);
    } else if (error == 0) {
        fprintf(stderr, "bench: latency: %zu of %d arrived\n", l.count, LAT_COUNT);
        error = -1;
    }
    free(l.samples);
    return error;
}

int bench_broker(void)
{
    if (!read_url()) {
        printf("broker: skipped (no TIDINGS_BENCH_RABBITMQ_URL_FILE; bench/broker.sh sets it)\n");
        return 0;
    }
    char *dir = bench_tmpdir();
    char store_url[1024];
    snprintf(store_url, sizeof store_url, "sqlite:%s/relay.db", dir);
    td_store *store = NULL;
    int64_t head = 0;
    int error = td_store_open(&store, store_url, NULL);
    if (error == 0)
        error = fill(store, &head);
    if (error == 0)
        error = publish_rates(store, head);
    td_store_free(store);
    if (error == 0)
        error = latency_run(dir);
    if (error < 0)
        fprintf(stderr, "bench: broker: %s\n", td_error_last());
    bench_rmdir(dir);
    return error < 0 ? -1 : 0;
}
