/*
 * bus.h: publishing events and running inline handlers (the RFC's
 * IEventPublisher and immediate INotificationHandlers).
 *
 * Publishing happens inside a unit of work: the events commit with the
 * caller's other writes or not at all. The event log itself is the
 * transactional outbox; every subscription (subscription.h) reads it with its
 * own checkpoint, so no "processed" flag can hide an event from anyone.
 *
 * Inline handlers run inside the appending unit, right after the events are
 * written: their document writes and appends commit with them, and a failing
 * inline handler rolls the whole append back (its code reaches the caller).
 * Keep them short: they run on the store's writer thread.
 *
 * Threads: register handlers before the store's first unit of work; after
 * that a bus is read-only and may be used from any thread (docs/threading.md).
 */
#ifndef TIDINGS_BUS_H
#define TIDINGS_BUS_H

#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Which events a handler takes: by type, by category (stream prefix), both,
 * or neither (every event). Strings are copied on registration. */
typedef struct td_match {
    const char *type;
    const char *category;
} td_match;

#define TD_MATCH_ALL                                                                               \
    {                                                                                              \
        NULL, NULL                                                                                 \
    }

/* True when event fits match. */
bool td_match_event(const td_match *match, const td_event *event);

typedef struct td_bus td_bus;

/* A bus for store, installed as its append hook. Caller owns *out; free with
 * td_bus_free after the store's last unit of work. */
int td_bus_new(td_bus **out, td_store *store);
void td_bus_free(td_bus *bus);

/* An inline handler. The event is borrowed for the call; events the handler
 * publishes through txn get it as their cause (correlation, causation,
 * trace). Return 0, or a negative code to roll the append back. */
typedef int (*td_inline_fn)(td_txn *txn, const td_event *event, void *payload);

/* Adds a handler for events fitting match (NULL: every event). Handlers run in
 * the order they were added. TD_EINVAL for a malformed type or category. */
int td_bus_on(td_bus *bus, const td_match *match, td_inline_fn fn, void *payload);

/* Publishing inside a unit of work: td_txn_append with the kind set. */
int td_publish_domain(td_txn *txn, const char *stream, int64_t expected_version, td_event *event);
int td_publish_integration(td_txn *txn, const char *stream, int64_t expected_version,
                           td_event *event);
/* A batch keeps each event's own kind. */
int td_publish_batch(td_txn *txn, const char *stream, int64_t expected_version, td_event *events,
                     size_t count);

#ifdef __cplusplus
}
#endif
#endif
