/*
 * broker_int.h: what the relay and the consumer share (internal): the
 * broker settings parsed once, one AMQP connection with its channel, the
 * backoff between attempts, the message's headers, and the counters behind
 * td_broker_stats and the metrics.
 *
 * A td_amqp belongs to the one thread that runs its relay or consumer; the
 * counters (td_broker_counters) are read by any thread under their lock.
 */
#ifndef TD_BROKER_INT_H
#define TD_BROKER_INT_H

#include <amqp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "tidings/broker.h"
#include "tidings/subscription.h"
#include "tidings/upcast.h"

#define TD_BROKER_CHANNEL 1

#define TD_BROKER_EXCHANGE_MAX 127         /* an exchange name's bytes */
#define UNROUTED_SUFFIX        ".unrouted" /* EXCHANGE.unrouted keeps what no queue is bound for */

/* The options with defaults applied and the URL parsed; owns its strings. */
typedef struct td_broker_conf {
    char *url_copy; /* amqp_parse_url's buffer: host, user, … point into it */
    struct amqp_connection_info info;
    char *exchange;
    char redacted[256]; /* the URL without its password, for messages */
    unsigned heartbeat_s, timeout_ms, backoff_initial_ms, backoff_max_ms;
    td_metrics *metrics;
} td_broker_conf;

/* TD_EINVAL for a URL that is not amqp://… (said without its password). */
int td_broker__conf_init(td_broker_conf *conf, const td_broker_options *opts);
void td_broker__conf_dispose(td_broker_conf *conf);

/* Names: 1..max of [A-Za-z0-9_.-], a letter first; TD_EINVAL naming what. */
int td_broker__check_name(const char *what, const char *name, size_t max);

/* One connection with channel TD_BROKER_CHANNEL open. */
typedef struct td_amqp {
    amqp_connection_state_t conn;
    bool open; /* the channel is usable; false once anything failed */
} td_amqp;

/* Connects, logs in and opens the channel, declaring the durable topic
 * exchange. On failure conn is left closed, why is in err, and the code is
 * TD_EIO. */
int td_amqp__connect(td_amqp *amqp, const td_broker_conf *conf, char *err, size_t err_size);

/* Closes politely if still open, then frees. Safe on a closed td_amqp. */
void td_amqp__close(td_amqp *amqp);

/* Describes a failed RPC reply, or a library status when reply is NULL. */
void td_amqp__describe(char *buf, size_t size, const amqp_rpc_reply_t *reply, int status);

/* The wait before reconnect attempt n (0-based): initial·2^n up to max,
 * with jitter in [½, 1]. */
unsigned td_broker__backoff_ms(const td_broker_conf *conf, unsigned attempt);

/* Sleeps ms, waking early (returning true) once *stop is set. */
bool td_broker__sleep(const atomic_bool *stop, unsigned ms);

/* Counters and state behind td_broker_stats. */
typedef struct td_broker_counters {
    pthread_mutex_t lock;
    td_broker_stats stats;
} td_broker_counters;

void td_broker__counters_init(td_broker_counters *c);
void td_broker__counters_dispose(td_broker_counters *c);
void td_broker__set_error(td_broker_counters *c, const char *message);
void td_broker__set_connected(td_broker_counters *c, bool connected);
void td_broker__snapshot(td_broker_counters *c, td_broker_stats *out);

/* Metric families of one relay or consumer (label: its name; its counters
 * start at 0); all NULL without a registry. */
typedef struct td_broker_metrics {
    td_metric *published, *confirmed, *nacked, *lag_events, *lag_seconds;
    td_metric *consumed, *duplicates, *redelivered, *rejected, *connected;
} td_broker_metrics;

int td_broker__metrics_relay(td_broker_metrics *m, td_metrics *registry, const char *name);
int td_broker__metrics_consumer(td_broker_metrics *m, td_metrics *registry, const char *name);
/* Adds amount to family's series for name; nothing without a family. */
void td_broker__count(td_metric *family, const char *name, double amount);

/* Header names of the message (broker.h). */
#define TD_HDR_TYPE           "type"
#define TD_HDR_SCHEMA_VERSION "schema_version"
#define TD_HDR_SOURCE         "source"
#define TD_HDR_STREAM         "stream"
#define TD_HDR_POSITION       "position"
#define TD_HDR_VERSION        "version"
#define TD_HDR_CORRELATION_ID "correlation_id"
#define TD_HDR_CAUSATION_ID   "causation_id"
#define TD_HDR_TRACEPARENT    "traceparent"
#define TD_HDR_OCCURRED_AT    "occurred_at"
#define TD_HDR_METADATA       "metadata"
#define TD_HDR_COUNT          11

/* The message for an event: properties and headers pointing into event
 * (borrowed) and into the caller's entries array. */
void td_broker__message_props(amqp_basic_properties_t *props,
                              amqp_table_entry_t entries[TD_HDR_COUNT], const td_event *event,
                              char id_text[TD_UUID_STR_LEN + 1]);

/* ---- intake (consumer side) ---- */

#define TD_REJECTED_TYPE     "tidings.Rejected"
#define TD_REJECTED_CATEGORY "rejected"
#define TD_QUEUE_NAME_MAX    56 /* "<queue>.intake" fits a subscription name */

typedef struct td_intake_tally {
    int64_t consumed, duplicates, rejected, redelivered;
} td_intake_tally;

/* What the queue takes: the copied types of td_consumer_options. */
typedef struct td_intake_rules {
    const char *queue;
    const td_consumer_type *types;
    size_t type_count;
    const td_upcasters *upcasters; /* the store's: the schema it reads a type at, or NULL */
    td_consumer_decode_fn decode;  /* or NULL */
    void *decode_payload;
} td_intake_rules;

/* Appends the batch's messages to store in one unit of work, in order: each
 * as its event, a duplicate id as nothing, an unusable message as a
 * tidings.Rejected event. 0 once durable (then ack them all), or the store's
 * error (ack none). *tally counts what the unit did. */
int td_broker__intake(td_store *store, const td_intake_rules *rules, amqp_envelope_t *batch,
                      size_t count, td_intake_tally *tally);

/* The "<queue>.intake" subscription's handler: parks each tidings.Rejected
 * event of its queue with the reason it carries. */
int td_broker__park_rejected(td_delivery *delivery, const td_event *event, void *payload);

#endif
