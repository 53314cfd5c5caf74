/*
 * aggregate.h: event-sourced aggregates with snapshots.
 *
 * An aggregate of category C and id I lives in stream C-I. Its state is the
 * fold of its events' data (upcast to the schema this program reads), and
 * is kept, with the stream version it reflects, as a snapshot document
 * (collection "snap_C", key I) written in the same unit of work as the
 * events it folds. Loading reads the snapshot and folds any later events
 * of the stream on top (events that came by import, migration or another
 * writer carry no snapshot), so a load costs one document read and one
 * short stream read in steady state, and replaying the stream through the
 * same fold gives the same state.
 *
 * Appending uses the loaded version as the expected version: a concurrent
 * writer to the same aggregate makes the unit fail with TD_ECONFLICT, and
 * the caller runs its command again on a fresh load (td_transact per
 * attempt). Within one process the store's single writer never makes
 * such a conflict; only another process can.
 *
 * Ownership: a td_aggregate is the caller's; its state is owned by it
 * (td_aggregate_dispose frees it); its category is borrowed and must
 * outlive it. Threads: functions taking a td_txn run inside that unit of
 * work (on the store's writer); the read functions from any thread.
 */
#ifndef TIDINGS_AGGREGATE_H
#define TIDINGS_AGGREGATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tidings/event.h"
#include "tidings/store.h"

/* Applies one event's data to state (NULL before the first event) and
 * returns the new state. It takes ownership of state and borrows data.
 * NULL: it could not (out of memory, or an event it cannot apply). */
typedef json_t *(*td_aggregate_fold_fn)(json_t *state, const char *type, json_t *data);

#define TD_AGGREGATE_ID_MAX TD_REF_ID_MAX /* the id part of its stream name */

typedef struct td_aggregate {
    const char *category; /* borrowed */
    char id[TD_AGGREGATE_ID_MAX + 1];
    json_t *state;   /* owned; NULL while the aggregate has no event */
    int64_t version; /* its stream's version the state reflects; 0: none */
} td_aggregate;

/* One event for td_aggregate_append. data is borrowed; schema_version 0
 * means 1. */
typedef struct td_aggregate_event {
    const char *type;
    const char *source; /* NULL: none */
    td_event_kind kind;
    int32_t schema_version;
    json_t *data;
} td_aggregate_event;

/* The most events one td_aggregate_append takes. */
#define TD_AGGREGATE_APPEND_MAX 64

/* Loads the aggregate category-id into *agg inside txn: its snapshot, then
 * the later events of its stream folded on top. An aggregate without
 * events loads with state NULL and version 0. TD_EINVAL for a bad
 * category or id; TD_ECORRUPT for a snapshot that is not one or an event
 * the fold cannot apply; TD_EVERSION for an event this program cannot
 * read. On failure *agg holds nothing to dispose. */
int td_aggregate_load(td_txn *txn, td_aggregate *agg, const char *category, const char *id,
                      td_aggregate_fold_fn fold);

/* Appends count events (1..TD_AGGREGATE_APPEND_MAX) to the aggregate's
 * stream, expecting its loaded version (TD_ECONFLICT if the stream moved),
 * folds them into its state and writes the snapshot, all inside txn. On
 * failure the unit must fail too (its effects roll back with it). */
int td_aggregate_append(td_txn *txn, td_aggregate *agg, const td_aggregate_event *events,
                        size_t count, td_aggregate_fold_fn fold);

/* Frees the state. Accepts an aggregate that holds none. */
void td_aggregate_dispose(td_aggregate *agg);

/* The aggregate's state outside a unit of work (its snapshot and what came
 * after). TD_ENOTFOUND when it has no event. Caller owns *state; version
 * may be NULL. */
int td_aggregate_read(td_store *store, const char *category, const char *id,
                      td_aggregate_fold_fn fold, json_t **state, int64_t *version);

/* The state as it was at version, folded from the stream's first event (no
 * snapshot). TD_ENOTFOUND if the stream is not that long. Caller owns
 * *state. */
int td_aggregate_read_at(td_store *store, const char *category, const char *id, int64_t version,
                         td_aggregate_fold_fn fold, json_t **state);

#endif
