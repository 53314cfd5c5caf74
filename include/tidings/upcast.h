/*
 * upcast.h: event versioning. Old events read as the current schema.
 *
 * The store keeps every event's bytes as written, with the schema version
 * it was written at. A program registers, per event type, the schema version
 * it reads (the current one) and an upcaster for each older version: a step
 * from version v to v + 1 that edits the event's data in place. Steps chain,
 * so a schema-1 event reaches schema 3 through 1→2 and 2→3.
 *
 * Attached to a store handle (td_store_set_upcasters), upcasters run on every
 * application read through that handle: td_store_read*, td_txn_read_stream,
 * and the events subscriptions and sagas hand to their handlers. Events of
 * types nobody registered are read as stored. An event the program cannot
 * read (a version newer than the current one, or an older one without a
 * step) fails the read with TD_EVERSION naming its type and version; a
 * subscription parks such an event in its dead-letter queue at once and goes
 * on. The generic `tidings` command attaches none: it shows events as stored.
 *
 * An upcast event keeps its position, id, stream, version, envelope and
 * audit hash (that of the stored bytes); only data and schema_version differ.
 *
 * Threads: register everything before the registry is attached to a store
 * and used; from then on it is read-only and may be shared by any threads.
 */
#ifndef TIDINGS_UPCAST_H
#define TIDINGS_UPCAST_H

#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct td_upcasters td_upcasters;

/* One step: turns data (an object, owned by the caller, edit it in place)
 * from schema `from` to from + 1. The event is the stored envelope, for
 * defaults that depend on it (its time, its stream). Return 0, or a
 * negative TD_E… code with td_error-style message to refuse the event. */
typedef int (*td_upcast_fn)(const td_event *event, json_t *data, void *payload);

/* Caller owns *out; free with td_upcasters_free (after the stores using it). */
int td_upcasters_new(td_upcasters **out);
void td_upcasters_free(td_upcasters *upcasters);

/* Declares that this program reads `type` at schema `current` (>= 1).
 * TD_EEXISTS if the type is declared already. */
int td_upcasters_declare(td_upcasters *upcasters, const char *type, int32_t current);

/* Adds the step for `type` from schema `from` (1 <= from < current) to
 * from + 1. The type must be declared; TD_EEXISTS if the step exists. */
int td_upcasters_add(td_upcasters *upcasters, const char *type, int32_t from, td_upcast_fn fn,
                     void *payload);

/* The schema version this program reads `type` at; 0 if not declared. */
int32_t td_upcasters_current(const td_upcasters *upcasters, const char *type);

/* Upcasts one event. *out is NULL when the event is readable as it is (its
 * type undeclared, or already current); else an owned copy at the current
 * schema (free with td_event_free). TD_EVERSION when it cannot be read. */
int td_upcast(const td_upcasters *upcasters, const td_event *event, td_event **out);

/* Attaches a registry (borrowed; NULL detaches) to a store handle: set it
 * before reads or subscriptions start. The registry's upcasters run on
 * every read through this handle (see above). */
void td_store_set_upcasters(td_store *store, const td_upcasters *upcasters);
const td_upcasters *td_store_upcasters(const td_store *store);

/* td_store_read without the handle's upcasters: events as written. For
 * tools, and for readers that upcast each event themselves (td_upcast) so
 * that they can pass over one they cannot read instead of failing. */
int td_store_read_stored(td_store *store, const td_read_query *query, td_event_fn fn,
                         void *payload);

#ifdef __cplusplus
}
#endif
#endif
