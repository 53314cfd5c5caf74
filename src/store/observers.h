/*
 * observers.h: library-internal observers of appends (see observers.c).
 * Used by eager subscriptions (src/bus/eager.c); not public API.
 */
#ifndef TD_STORE_OBSERVERS_H
#define TD_STORE_OBSERVERS_H

#include "tidings/store.h"

#define TD_OBSERVERS_MAX 32
/* Events handed to observers per unit of work, the ones observers append
 * included; later ones are left to the observers' catch-up. */
#define TD_OBSERVED_EVENTS_MAX 256

/* Adds or removes an observer. Each runs as a unit of work, so when it
 * returns the writer calls (or no longer calls) fn for every later append.
 * The same fn and payload are added at most once. */
int td_store__observe(td_store *store, td_append_hook fn, void *payload);
int td_store__unobserve(td_store *store, td_append_hook fn, void *payload);

/* Runs fn(txn, payload) under a savepoint of its own. A failure of fn rolls
 * back what it did and is returned in *fn_rc, and the unit goes on; the
 * return value is negative only if the rollback itself failed. */
int td_txn__try_contained(td_txn *txn, td_unit_fn fn, void *payload, int *fn_rc);

#endif
