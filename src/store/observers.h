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

#endif
