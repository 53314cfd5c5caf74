/*
 * consumer.c: a service's queue into its store, acknowledged only once
 * durable.
 *
 *              connect, declare queue, bind, consume
 *   backoff ------------------------------------------> consuming
 *     ^                                                   |   ^ batch:
 *     |    any failure (heartbeat timeout, closed         |   | append in one
 *     +--- channel, failed unit): close; the broker  <----+   | unit (intake.c),
 *          delivers the unacknowledged again                  | then ack all
 *                                                             +---------------
 *
 * One thread owns the connection. The queue is durable, quorum or classic,
 * with a single active consumer: while this process consumes, another that
 * declares the same queue waits its turn, so one process at a time appends
 * the queue's messages, in queue order. Messages are taken up to prefetch
 * at a time (basic.qos) and gathered while more are ready, up to prefetch;
 * the batch is appended in one unit of work (each message under its own
 * savepoint), and once that unit is durable one basic.ack (multiple) covers
 * the batch. A crash or a lost connection between commit and ack makes the
 * broker deliver them again; their ids are stored already, so they are
 * counted as duplicates and change nothing.
 *
 * Per-stream order: the relay publishes in position order on one channel,
 * the queue keeps that order, the single active consumer appends in
 * delivery order, and what the broker delivers again after a failure comes
 * before anything newer, so a stream's events are appended in the order
 * the sender wrote them.
 */
#include <stdio.h>
#include <string.h>

#include "broker/broker_int.h"
#include "tidings/log.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"

#define WAIT_MS         100  /* for the first message of a batch, before a look at stop */
#define INTAKE_RETRY_MS 3000 /* standby: how often the intake is tried again */

struct td_consumer {
    td_store *store;
    char queue[TD_QUEUE_NAME_MAX + 1];
    char intake_name[TD_SUBSCRIPTION_NAME_MAX + 1];
    char rejected_stream[TD_STREAM_MAX + 1];
    td_broker_conf conf;
    td_consumer_type *types;
    td_intake_rules rules;
    td_queue_type queue_type;
    unsigned prefetch;
    td_broker_counters counters;
    td_broker_metrics m;
    td_subscription *intake;
    bool standby;     /* run without the intake while another process has it */
    bool intake_here; /* this consumer runs the intake (the thread's, once started) */
    td_time intake_tried;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    pthread_mutex_t lock; /* error */
    int error;

    /* the consumer thread's own */
    td_amqp amqp;
    amqp_envelope_t *batch;
    size_t batch_count;
    unsigned store_failures; /* batches the store refused in a row */
};

static bool rpc_ok(td_consumer *c, const char *step, char *err, size_t size)
{
    amqp_rpc_reply_t reply = amqp_get_rpc_reply(c->amqp.conn);
    if (reply.reply_type == AMQP_RESPONSE_NORMAL)
        return true;
    char why[200];
    td_amqp__describe(why, sizeof why, &reply, 0);
    snprintf(err, size, "%s: %s", step, why);
    return false;
}

static bool declare_queue(td_consumer *c, char *err, size_t size)
{
    amqp_table_entry_t args[2];
    args[0].key = amqp_cstring_bytes("x-queue-type");
    args[0].value.kind = AMQP_FIELD_KIND_UTF8;
    args[0].value.value.bytes =
        amqp_cstring_bytes(c->queue_type == TD_QUEUE_CLASSIC ? "classic" : "quorum");
    args[1].key = amqp_cstring_bytes("x-single-active-consumer");
    args[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    args[1].value.value.boolean = 1;
    amqp_table_t table = {2, args};
    amqp_queue_declare(c->amqp.conn, TD_BROKER_CHANNEL, amqp_cstring_bytes(c->queue), 0, 1, 0, 0,
                       table);
    return rpc_ok(c, "queue.declare", err, size);
}

static int setup(td_consumer *c, char *err, size_t size)
{
    int error = td_amqp__connect(&c->amqp, &c->conf, err, size);
    if (error < 0)
        return error;
    amqp_connection_state_t conn = c->amqp.conn;
    bool ok = (amqp_basic_qos(conn, TD_BROKER_CHANNEL, 0, (uint16_t)c->prefetch, 0),
               rpc_ok(c, "basic.qos", err, size));
    ok = ok && declare_queue(c, err, size);
    for (size_t i = 0; ok && i < c->rules.type_count; i++)
        ok = (amqp_queue_bind(conn, TD_BROKER_CHANNEL, amqp_cstring_bytes(c->queue),
                              amqp_cstring_bytes(c->conf.exchange),
                              amqp_cstring_bytes(c->types[i].type), amqp_empty_table),
              rpc_ok(c, "queue.bind", err, size));
    ok = ok && (amqp_basic_consume(conn, TD_BROKER_CHANNEL, amqp_cstring_bytes(c->queue),
                                   amqp_empty_bytes, 0, 0, 0, amqp_empty_table),
                rpc_ok(c, "basic.consume", err, size));
    if (!ok) {
        td_amqp__close(&c->amqp);
        return TD_EIO;
    }
    return 0;
}

static void drop_batch(td_consumer *c)
{
    for (size_t i = 0; i < c->batch_count; i++)
        amqp_destroy_envelope(&c->batch[i]);
    c->batch_count = 0;
}

static void note(td_consumer *c, const char *what)
{
    char message[640];
    snprintf(message, sizeof message, "consumer %s: %.300s (%.255s)", c->queue, what,
             c->conf.redacted);
    td_broker__set_error(&c->counters, message);
    td_log(TD_LOG_WARN, NULL, "%s", message);
}

static void tally(td_consumer *c, const td_intake_tally *t)
{
    pthread_mutex_lock(&c->counters.lock);
    c->counters.stats.consumed += t->consumed;
    c->counters.stats.duplicates += t->duplicates;
    c->counters.stats.redelivered += t->redelivered;
    c->counters.stats.rejected += t->rejected;
    pthread_mutex_unlock(&c->counters.lock);
    td_broker__count(c->m.consumed, c->queue, (double)t->consumed);
    td_broker__count(c->m.duplicates, c->queue, (double)t->duplicates);
    td_broker__count(c->m.redelivered, c->queue, (double)t->redelivered);
    td_broker__count(c->m.rejected, c->queue, (double)t->rejected);
}

/* Appends the batch and acknowledges it; TD_EIO drops the connection. */
static int commit_batch(td_consumer *c)
{
    td_intake_tally t;
    c->rules.upcasters = td_store_upcasters(c->store);
    int error = td_broker__intake(c->store, &c->rules, c->batch, c->batch_count, &t);
    if (error < 0) {
        /* the broker delivers the batch again: wait, longer each time */
        td_broker__sleep(&c->stop, td_broker__backoff_ms(&c->conf, c->store_failures++));
        char what[300];
        snprintf(what, sizeof what, "the store refused a batch: %s", td_error_last());
        note(c, what);
        pthread_mutex_lock(&c->lock);
        if (c->error == 0)
            c->error = error;
        pthread_mutex_unlock(&c->lock);
        drop_batch(c);
        return TD_EIO;
    }
    c->store_failures = 0;
    tally(c, &t);
    uint64_t last = c->batch[c->batch_count - 1].delivery_tag;
    drop_batch(c);
    int status = amqp_basic_ack(c->amqp.conn, TD_BROKER_CHANNEL, last, 1);
    if (status != AMQP_STATUS_OK) {
        char what[200];
        snprintf(what, sizeof what, "ack: %s", amqp_error_string2(status));
        note(c, what);
        return TD_EIO;
    }
    return 0;
}

/* A frame other than a delivery: a close ends the connection. */
static int other_frame(td_consumer *c)
{
    amqp_frame_t frame;
    struct timeval tv = {0, 0};
    int status = amqp_simple_wait_frame_noblock(c->amqp.conn, &frame, &tv);
    if (status == AMQP_STATUS_TIMEOUT)
        return 0;
    if (status != AMQP_STATUS_OK) {
        note(c, amqp_error_string2(status));
        return TD_EIO;
    }
    if (frame.frame_type == AMQP_FRAME_METHOD &&
        (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
         frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ||
         frame.payload.method.id == AMQP_BASIC_CANCEL_METHOD)) {
        amqp_rpc_reply_t reply = {AMQP_RESPONSE_SERVER_EXCEPTION, frame.payload.method, 0};
        char why[200];
        td_amqp__describe(why, sizeof why, &reply, 0);
        note(c,
             frame.payload.method.id == AMQP_BASIC_CANCEL_METHOD ? "the broker cancelled it" : why);
        return TD_EIO;
    }
    return 0;
}

/* Takes what is ready (waiting up to WAIT_MS for the first), then commits. */
static int step(td_consumer *c)
{
    int error = 0;
    while (error == 0 && c->batch_count < c->prefetch) {
        unsigned ms = c->batch_count == 0 ? WAIT_MS : 0;
        struct timeval tv = {0, (long)ms * 1000};
        amqp_maybe_release_buffers(c->amqp.conn);
        amqp_rpc_reply_t r = amqp_consume_message(c->amqp.conn, &c->batch[c->batch_count], &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_NORMAL) {
            c->batch_count++;
            continue;
        }
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT)
            break;
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            error = other_frame(c);
            continue;
        }
        char why[200];
        td_amqp__describe(why, sizeof why, &r, 0);
        note(c, why);
        error = TD_EIO;
    }
    if (error < 0) {
        drop_batch(c); /* not acknowledged: the broker delivers them again */
        return error;
    }
    return c->batch_count ? commit_batch(c) : 0;
}

/* Standby: takes the intake over once the process that ran it is gone. */
static void try_intake(td_consumer *c)
{
    td_time now = td_time_now();
    if (c->intake_here || now - c->intake_tried < (td_time)INTAKE_RETRY_MS * 1000)
        return;
    c->intake_tried = now;
    if (td_subscription_try_start(c->intake) == 0) {
        c->intake_here = true;
        td_log(TD_LOG_INFO, NULL, "consumer %s: took its intake over", c->queue);
    }
}

static void *consumer_main(void *arg)
{
    td_consumer *c = arg;
    unsigned attempt = 0;
    char err[256];
    td_thread__name("b/", c->queue);
    while (!atomic_load(&c->stop)) {
        try_intake(c);
        if (!c->amqp.open) {
            if (setup(c, err, sizeof err) < 0) {
                note(c, err);
                td_broker__sleep(&c->stop, td_broker__backoff_ms(&c->conf, attempt++));
                continue;
            }
            attempt = 0;
            td_broker__set_connected(&c->counters, true);
        }
        if (step(c) < 0) {
            td_amqp__close(&c->amqp);
            td_broker__set_connected(&c->counters, false);
        }
    }
    drop_batch(c);
    td_amqp__close(&c->amqp);
    td_broker__set_connected(&c->counters, false);
    return NULL;
}

static void collect(td_metrics *registry, void *payload)
{
    td_consumer *c = payload;
    td_broker_stats s;
    (void)registry;
    td_consumer_stats(c, &s);
    const char *labels[1] = {c->queue};
    td_metric_set(c->m.connected, labels, s.connected);
}

static bool accept_own(const td_event *event, void *payload)
{
    const td_consumer *c = payload;
    return strcmp(event->stream, c->rejected_stream) == 0;
}

static int copy_types(td_consumer *c, const td_consumer_options *opts)
{
    if (opts->types == NULL || opts->type_count == 0)
        return td_error__set(TD_EINVAL, "consumer %s: no types to bind", c->queue);
    c->types = td_calloc(opts->type_count, sizeof *c->types);
    if (c->types == NULL)
        return td_error__oom();
    c->rules = (td_intake_rules){c->queue, c->types, 0, NULL, NULL, NULL};
    if (opts->version >= 2) { /* past a version 1 struct's end otherwise */
        c->rules.decode = opts->decode;
        c->rules.decode_payload = opts->decode_payload;
        c->standby = opts->standby;
    }
    for (size_t i = 0; i < opts->type_count; i++) {
        int error = td_type_check(opts->types[i].type);
        if (error == 0 && opts->types[i].max_schema_version < 0)
            error = td_error__set(TD_EINVAL, "consumer %s: a negative schema version", c->queue);
        if (error < 0)
            return error;
        c->types[i].max_schema_version = opts->types[i].max_schema_version;
        if ((c->types[i].type = td_strdup(opts->types[i].type)) == NULL)
            return td_error__oom();
        c->rules.type_count++;
    }
    return 0;
}

static int make_intake(td_consumer *c)
{
    td_subscription_options so = TD_SUBSCRIPTION_OPTIONS_INIT;
    so.name = c->intake_name;
    so.match.type = TD_REJECTED_TYPE;
    so.match.category = TD_REJECTED_CATEGORY;
    so.max_attempts = 1;
    so.immediate_retries = 0;
    so.dlq_mode = TD_DLQ_SKIP;
    so.accept = accept_own;
    so.metrics = c->conf.metrics;
    return td_subscription_new(&c->intake, c->store, &so, td_broker__park_rejected, c);
}

static int init(td_consumer *c, const td_consumer_options *opts)
{
    int error = td_broker__conf_init(&c->conf, &opts->broker);
    if (error == 0)
        error = copy_types(c, opts);
    if (error == 0 && opts->queue_type != TD_QUEUE_QUORUM && opts->queue_type != TD_QUEUE_CLASSIC)
        error = td_error__set(TD_EINVAL, "consumer %s: unknown queue type %d", c->queue,
                              (int)opts->queue_type);
    if (error == 0 && opts->prefetch > 65535)
        error = td_error__set(TD_EINVAL, "consumer %s: prefetch %u is over 65535", c->queue,
                              opts->prefetch);
    c->prefetch = opts->prefetch ? opts->prefetch : 256;
    c->queue_type = opts->queue_type;
    if (error == 0 && (c->batch = td_calloc(c->prefetch, sizeof *c->batch)) == NULL)
        error = td_error__oom();
    if (error == 0)
        error = make_intake(c);
    if (error == 0)
        error = td_broker__metrics_consumer(&c->m, c->conf.metrics, c->queue);
    if (error == 0 && c->conf.metrics)
        error = td_metrics_on_collect(c->conf.metrics, collect, c);
    return error;
}

int td_consumer_new(td_consumer **out, td_store *store, const td_consumer_options *opts)
{
    TD_REQUIRE(out);
    *out = NULL;
    TD_REQUIRE(store && opts);
    if (store == NULL || opts == NULL || opts->version < 1 ||
        opts->version > TD_CONSUMER_OPTIONS_VERSION)
        return td_error__set(TD_EINVAL, "td_consumer_new: no store, or options of another version");
    int error = td_broker__check_name("queue", opts->queue, TD_QUEUE_NAME_MAX);
    if (error < 0)
        return error;
    td_consumer *c = td_calloc(1, sizeof *c);
    if (c == NULL)
        return td_error__oom();
    c->store = store;
    snprintf(c->queue, sizeof c->queue, "%s", opts->queue);
    snprintf(c->intake_name, sizeof c->intake_name, "%s.intake", opts->queue);
    snprintf(c->rejected_stream, sizeof c->rejected_stream, "%s-%s", TD_REJECTED_CATEGORY,
             opts->queue);
    td_broker__counters_init(&c->counters);
    pthread_mutex_init(&c->lock, NULL);
    atomic_init(&c->stop, false);
    if ((error = init(c, opts)) < 0) {
        td_consumer_free(c);
        return error;
    }
    *out = c;
    return 0;
}

int td_consumer_start(td_consumer *c)
{
    if (c == NULL)
        return td_error__set(TD_EINVAL, "td_consumer_start: no consumer");
    if (c->running)
        return 0;
    int error =
        c->standby ? td_subscription_try_start(c->intake) : td_subscription_start(c->intake);
    c->intake_here = error == 0;
    c->intake_tried = td_time_now();
    if (error == TD_EBUSY && c->standby) /* another instance's: consume all the same */
        error = 0;
    if (error < 0)
        return error;
    atomic_store(&c->stop, false);
    c->error = 0;
    if (pthread_create(&c->thread, NULL, consumer_main, c) != 0) {
        if (c->intake_here)
            td_subscription_stop(c->intake);
        return td_error__set(TD_ERROR, "consumer %s: cannot start its thread", c->queue);
    }
    c->running = true;
    return 0;
}

int td_consumer_stop(td_consumer *c)
{
    if (c == NULL || !c->running)
        return 0;
    atomic_store(&c->stop, true);
    pthread_join(c->thread, NULL);
    c->running = false;
    int error = c->intake_here ? td_subscription_stop(c->intake) : 0;
    c->intake_here = false;
    pthread_mutex_lock(&c->lock);
    if (c->error < 0)
        error = td_error__set(c->error, "consumer %s: the store refused a batch", c->queue);
    pthread_mutex_unlock(&c->lock);
    return error;
}

void td_consumer_free(td_consumer *c)
{
    if (c == NULL)
        return;
    td_consumer_stop(c);
    if (c->conf.metrics)
        td_metrics_remove_collector(c->conf.metrics, collect, c);
    td_subscription_free(c->intake);
    for (size_t i = 0; i < c->rules.type_count; i++)
        td_free((char *)c->types[i].type);
    td_free(c->types);
    td_free(c->batch);
    td_broker__conf_dispose(&c->conf);
    td_broker__counters_dispose(&c->counters);
    pthread_mutex_destroy(&c->lock);
    td_free(c);
}

void td_consumer_stats(td_consumer *c, td_broker_stats *out)
{
    td_broker__snapshot(&c->counters, out);
}
