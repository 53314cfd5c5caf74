/*
 * broker.h: integration events between services, over RabbitMQ (AMQP 0-9-1).
 *
 * Two halves, each a background thread with its own connection:
 *
 *  - A relay publishes a store's integration events (kind
 *    TD_KIND_INTEGRATION) to a durable topic exchange, in position order,
 *    persistent, with publisher confirms streamed: up to max_in_flight
 *    messages wait for their confirm at once, and the broker confirms them
 *    in batches. Its checkpoint (a document in the store) moves only past
 *    events the broker has confirmed, so a crash or a lost connection
 *    republishes from there: never a gap, sometimes a duplicate, which
 *    consumers drop by event id.
 *
 *  - A consumer takes a service's durable queue (quorum by default, classic
 *    as an option; single active consumer, so one process at a time takes
 *    it, in order), bound to the event types the service handles, and
 *    appends each message into the consumer's own store as the event it
 *    carries: same id, type, schema version, source, stream name,
 *    correlation, causation and trace. The store's unique event id makes
 *    a redelivered message a no-op. A message is acknowledged only after
 *    the unit of work that appended it is durable; the service's ordinary
 *    subscriptions then handle the event (retries, dead letters, lanes).
 *    A message that cannot be taken (no or bad id, unreadable headers or
 *    body, a type not bound, a schema newer than the consumer reads) is
 *    stored as a "tidings.Rejected" event with why, which the consumer's
 *    subscription "<queue>.intake" parks in the dead-letter queue at once
 *    (dlq.h, `tidings dlq list`); the rest go on.
 *
 * The message: routing key = the event type; message id = the event id;
 * delivery mode 2 (persistent); content type application/json; timestamp =
 * occurred_at in seconds; headers type, schema_version, source, stream,
 * position, version, correlation_id, causation_id, traceparent,
 * occurred_at (microseconds since 1970) and metadata (JSON text);
 * body = the event's data as stored (not upcast: consumers upcast).
 *
 * Faults: both halves send heartbeats and bound every wait, so a broker that
 * stops answering (killed, frozen, unreachable) is noticed within about two
 * heartbeats; they then close the connection, wait (exponential backoff with
 * jitter, backoff_initial_ms up to backoff_max_ms) and reconnect, and carry
 * on from what is durable: the relay from its confirmed checkpoint, the
 * consumer from whatever the broker redelivers. Nothing acknowledged is lost
 * and nothing is appended twice.
 *
 * Secrets: the URL may hold a password; it is never logged nor put into an
 * error message (td_broker_redact shows the URL without it). Pass it from a
 * file or the environment, not argv.
 *
 * Threads: a td_relay or td_consumer is controlled (start, stop, free) from
 * one thread; td_*_stats and td_*_wait_until are safe from any thread. Each
 * runs one thread of its own, named b/NAME. See docs/threading.md and
 * docs/internals/broker.md.
 */
#ifndef TIDINGS_BROKER_H
#define TIDINGS_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TD_BROKER_NAME_MAX 64 /* relay and queue names: 1..64 of [A-Za-z0-9_.-], a letter first */

/* Where the broker is and how to talk to it; shared by relays and consumers. */
typedef struct td_broker_options {
    const char *url;             /* amqp://USER:PASS@HOST:PORT/VHOST; required; copied */
    const char *exchange;        /* the topic exchange; NULL: "tidings" */
    unsigned heartbeat_s;        /* AMQP heartbeat; 0: 5 */
    unsigned timeout_ms;         /* connect, handshake and every request; 0: 5000 */
    unsigned backoff_initial_ms; /* first wait before reconnecting; 0: 100 */
    unsigned backoff_max_ms;     /* longest wait; 0: 5000 */
    td_metrics *metrics;         /* counters (below); NULL: none. Borrowed: must outlive */
} td_broker_options;

#define TD_BROKER_OPTIONS_INIT                                                                     \
    {                                                                                              \
        NULL, NULL, 0, 0, 0, 0, NULL                                                               \
    }

/* Writes url with any password replaced by "***" into buf (always
 * terminated, cut to size). For messages and logs. */
void td_broker_redact(char *buf, size_t size, const char *url);

/* ---- the relay ---------------------------------------------------------- */

#define TD_RELAY_OPTIONS_VERSION 3 /* 1: without standby; 2: without encode */

/* What the relay sends as an event's body, for a service whose events hold
 * what must not cross the wire as stored (data sealed under keys of the
 * sending store, a secret kept beside the event). Called on the relay's
 * thread for each integration event it is about to publish, in position
 * order, again for a republished one. Returns 0: the stored data, as it is;
 * 1: *body instead (a NUL-terminated JSON object, allocated with malloc;
 * the relay frees it, whatever encode returned); 2: not for the broker (no
 * service reads it): passed over, as a domain event is; negative: the event
 * cannot be sent yet, and the relay reads it again after a pause, keeping
 * its connection and its order (nothing after it is published meanwhile;
 * its stats' last_error says so, with why as encode left it: td_error_report). */
typedef int (*td_relay_encode_fn)(const td_event *event, char **body, void *payload);

typedef struct td_relay_options {
    unsigned int version;     /* TD_RELAY_OPTIONS_VERSION */
    const char *name;         /* names its checkpoint; copied */
    td_broker_options broker; /* broker.url required */
    size_t max_in_flight;     /* published, not yet confirmed; 0: 1024 */
    size_t batch_size;        /* events read from the store at a time; 0: 512 */
    /* Only integration events of these sources (NULL-terminated; copied).
     * NULL: every source. A service that also consumes names its own
     * contexts here, so that what it received is not sent out again. */
    const char *const *sources;
    /* While another process runs the name: false, td_relay_start answers
     * TD_EBUSY; true, the relay stands by (publishing nothing, its stats'
     * last_error saying so) and takes over once the name is free. */
    bool standby;
    td_relay_encode_fn encode; /* NULL: every body as stored */
    void *encode_payload;      /* passed to encode; borrowed */
} td_relay_options;

#define TD_RELAY_OPTIONS_INIT                                                                      \
    {                                                                                              \
        TD_RELAY_OPTIONS_VERSION, NULL, TD_BROKER_OPTIONS_INIT, 0, 0, NULL, false, NULL, NULL      \
    }

typedef struct td_relay td_relay;

/* Makes a relay of store's integration events; nothing happens until
 * started. TD_EINVAL for a bad name, URL or option (the message names it,
 * without the password). Metrics, when given (label relay):
 *   broker_published_total, broker_confirmed_total, broker_nacked_total,
 *   broker_relay_lag_events, broker_relay_lag_seconds, broker_connected.
 * Caller owns *out; free with td_relay_free (before the store). */
int td_relay_new(td_relay **out, td_store *store, const td_relay_options *opts);

/* Starts the relay's thread: it connects (retrying, with backoff, for as
 * long as it runs) and relays from its checkpoint. One process at a time
 * runs a relay name on a store: while another one (or another td_relay of
 * this process) runs it, TD_EBUSY, or with opts.standby the relay stands by.
 * A relay that finds later that another process has taken the name over
 * (on PostgreSQL, after its server session ended) stops publishing: it
 * stands by again, or without standby ends, and td_relay_stop returns
 * TD_EBUSY. */
int td_relay_start(td_relay *relay);

/* Stops the thread after what is in flight is confirmed (or the connection
 * is lost) and the checkpoint saved. Returns 0 or the error that made the
 * checkpoint unsavable. */
int td_relay_stop(td_relay *relay);

/* Stops if running, then frees. Accepts NULL. */
void td_relay_free(td_relay *relay);

/* Makes the relay `name` of store publish again every integration event
 * after position: its checkpoint moves back to position (receivers drop
 * what they hold already, by id). For events that went where nobody read
 * them (a queue bound too late, a receiver restored from a backup). Only
 * while no process runs the relay: TD_EBUSY otherwise. A position past the
 * checkpoint is refused with TD_EINVAL (moving it forward would skip events
 * the broker never confirmed); the same position changes nothing. *was
 * (may be NULL): the checkpoint before. */
int td_relay_rewind(td_store *store, const char *name, int64_t position, int64_t *was);

/* Waits until the checkpoint (every integration event up to it confirmed
 * by the broker) reaches position, or timeout_ms passes (TD_EBUSY). */
int td_relay_wait_until(td_relay *relay, int64_t position, int timeout_ms);

typedef struct td_broker_stats {
    bool connected;       /* the connection is up and set up */
    int64_t connects;     /* connections made, the first included */
    int64_t published;    /* relay: messages sent (republished ones again) */
    int64_t confirmed;    /* relay: confirmed by the broker */
    int64_t nacked;       /* relay: refused by the broker (published again) */
    int64_t checkpoint;   /* relay: every integration event up to it is confirmed */
    int64_t lag_events;   /* relay: the store's head minus the checkpoint */
    double lag_seconds;   /* relay: age of the oldest event not yet confirmed; 0 if none */
    int64_t consumed;     /* consumer: messages appended to the store */
    int64_t duplicates;   /* consumer: messages whose event was stored already */
    int64_t redelivered;  /* consumer: messages the broker marked redelivered */
    int64_t rejected;     /* consumer: messages stored as tidings.Rejected */
    char last_error[256]; /* the last connection or protocol failure, "" if none */
} td_broker_stats;

/* A snapshot; safe from any thread. */
void td_relay_stats(td_relay *relay, td_broker_stats *out);

/* ---- the consumer ------------------------------------------------------- */

#define TD_CONSUMER_OPTIONS_VERSION 2 /* 1: without decode and standby */

/* What the receiving store keeps of a message's body: the counterpart of
 * td_relay_encode_fn. Called in the unit that appends the message, under
 * the message's own savepoint, with event as it will be appended (its data
 * the body received). It may write in txn (its writes are undone with the
 * message's, when the event is stored already or the unit fails). Returns
 * 0: the body as received; 1: *data instead (a NUL-terminated JSON object,
 * allocated with malloc; the consumer frees it, whatever decode returned);
 * TD_EINVAL: the message cannot be taken (parked in the dead-letter queue,
 * as for any unusable message, the reason naming the decode and the event,
 * with why as decode left it: td_error_report); another negative code: the
 * store failed, and the batch is delivered again. */
typedef int (*td_consumer_decode_fn)(td_txn *txn, const td_event *event, char **data,
                                     void *payload);

typedef enum td_queue_type {
    TD_QUEUE_QUORUM = 0,  /* replicated (on a cluster), the default */
    TD_QUEUE_CLASSIC = 1, /* a classic durable queue */
} td_queue_type;

/* A handled type: bound as a routing key; messages of a schema version
 * above max_schema_version are rejected as too new. 0: the schema the
 * store's upcasters declare for the type (upcast.h), or any if none. */
typedef struct td_consumer_type {
    const char *type;
    int32_t max_schema_version;
} td_consumer_type;

typedef struct td_consumer_options {
    unsigned int version;          /* TD_CONSUMER_OPTIONS_VERSION */
    const char *queue;             /* the service's queue; copied */
    td_broker_options broker;      /* broker.url required */
    const td_consumer_type *types; /* 1.. types; copied */
    size_t type_count;
    td_queue_type queue_type;
    unsigned prefetch;            /* unacknowledged messages at a time; 0: 256 */
    td_consumer_decode_fn decode; /* NULL: every body as received */
    void *decode_payload;         /* passed to decode; borrowed */
    /* While another process runs the queue's "<queue>.intake" subscription
     * on the same store (another instance of the service): false,
     * td_consumer_start answers TD_EBUSY; true, this one consumes all the
     * same (the queue has a single active consumer, so the broker keeps it
     * as a hot standby) and takes the intake over once it is free. */
    bool standby;
} td_consumer_options;

#define TD_CONSUMER_OPTIONS_INIT                                                                   \
    {                                                                                              \
        TD_CONSUMER_OPTIONS_VERSION, NULL, TD_BROKER_OPTIONS_INIT, NULL, 0, TD_QUEUE_QUORUM, 0,    \
            NULL, NULL, false                                                                      \
    }

typedef struct td_consumer td_consumer;

/* Makes a consumer appending the queue's messages to store; nothing happens
 * until started. Metrics, when given (label queue): broker_consumed_total,
 * broker_duplicates_total, broker_redelivered_total,
 * broker_rejected_total, broker_connected. Caller owns *out; free with
 * td_consumer_free (before the store). */
int td_consumer_new(td_consumer **out, td_store *store, const td_consumer_options *opts);

/* Starts the consumer's thread (which declares the queue and its bindings
 * on each connection) and its "<queue>.intake" subscription. TD_EBUSY
 * when another process runs that subscription, unless opts.standby. */
int td_consumer_start(td_consumer *consumer);

/* Stops: what was appended is acknowledged, the rest is left to the broker
 * to deliver again. Returns 0 or the first error of the run. */
int td_consumer_stop(td_consumer *consumer);

/* Stops if running, then frees. Accepts NULL. */
void td_consumer_free(td_consumer *consumer);

/* A snapshot; safe from any thread. */
void td_consumer_stats(td_consumer *consumer, td_broker_stats *out);

#ifdef __cplusplus
}
#endif
#endif
