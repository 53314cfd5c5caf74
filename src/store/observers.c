/*
 * observers.c: observers of appends that must not disturb them.
 *
 * The public append hook (td_store_set_append_hook, the bus's inline
 * handlers) runs inside td_txn_append, depth first, and its failure fails
 * the append. Observers are for code that reacts to appends in the same
 * unit but owns its failures (eager subscriptions). A unit's appends are
 * queued, and the writer hands them to the observers when the unit's
 * function has returned, in order, inside the unit (before its savepoint is
 * released); what observers append joins the end of the queue. So an
 * observer never runs in the middle of anyone's work: not of the code that
 * appended, and not of another observer. An append rolled back (by a
 * failing td_txn_try or a failing append) leaves the queue too.
 *
 * An observer returns 0, or a negative code only for what must fail the
 * whole unit (a rollback that failed). Observers have a catch-up path for
 * events they did not see (such as other processes'), so an event is rather
 * left unobserved than a unit failed: past TD_OBSERVED_EVENTS_MAX events per
 * unit, or when the queue cannot grow.
 *
 * The observer list is changed only by units of work, so the writer thread
 * reads it without a lock.
 */
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "store/observers.h"
#include "store/store_int.h"

typedef struct change {
    td_append_hook fn;
    void *payload;
    bool add;
} change;

static int change_unit(td_txn *txn, void *payload)
{
    change *c = payload;
    td_store *store = txn->store;
    size_t i = 0;
    while (i < store->observer_count &&
           !(store->observers[i].fn == c->fn && store->observers[i].payload == c->payload))
        i++;
    if (c->add && i == store->observer_count) {
        if (i == TD_OBSERVERS_MAX)
            return td_error__set(TD_ETOOBIG, "more than %d observers of appends", TD_OBSERVERS_MAX);
        store->observers[i].fn = c->fn;
        store->observers[i].payload = c->payload;
        store->observer_count++;
    } else if (!c->add && i < store->observer_count) {
        memmove(&store->observers[i], &store->observers[i + 1],
                (store->observer_count - i - 1) * sizeof store->observers[0]);
        store->observer_count--;
    }
    return 0;
}

int td_store__observe(td_store *store, td_append_hook fn, void *payload)
{
    change c = {fn, payload, true};
    return td_transact(store, change_unit, &c);
}

int td_store__unobserve(td_store *store, td_append_hook fn, void *payload)
{
    change c = {fn, payload, false};
    return td_transact(store, change_unit, &c);
}

/* Calls every observer for one event, keeping the unit's cause and trace. */
static int observe_one(td_txn *txn, const td_event *ev)
{
    const td_store *store = txn->store;
    const td_event *cause = txn->cause;
    char cause_id[sizeof txn->cause_id], trace[sizeof txn->trace];
    memcpy(cause_id, txn->cause_id, sizeof cause_id);
    memcpy(trace, txn->trace, sizeof trace);
    int error = 0;
    for (size_t i = 0; i < store->observer_count && error == 0; i++) {
        error = store->observers[i].fn(txn, ev, 1, store->observers[i].payload);
        txn->cause = cause;
        memcpy(txn->cause_id, cause_id, sizeof cause_id);
        memcpy(txn->trace, trace, sizeof trace);
    }
    return error;
}

void td_store__observers_truncate(td_txn *txn, size_t keep)
{
    for (size_t i = keep; i < txn->queued_count; i++)
        td_event_free(txn->queued[i]);
    if (keep < txn->queued_count)
        txn->queued_count = keep;
}

void td_store__observers_reset(td_txn *txn)
{
    td_store__observers_truncate(txn, 0);
    td_free(txn->queued);
    txn->queued = NULL;
    txn->queued_cap = 0;
    txn->observed = 0;
}

static void enqueue(td_txn *txn, const td_event *events, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (txn->observed >= TD_OBSERVED_EVENTS_MAX)
            return; /* left to the observers' catch-up */
        if (txn->queued_count == txn->queued_cap) {
            size_t cap = txn->queued_cap ? txn->queued_cap * 2 : 16;
            td_event **grown = td_realloc(txn->queued, cap * sizeof *grown);
            if (grown == NULL)
                return; /* out of memory: left to the catch-up as well */
            txn->queued = grown;
            txn->queued_cap = cap;
        }
        if (td_event_dup(&txn->queued[txn->queued_count], &events[i]) < 0)
            return;
        txn->queued_count++;
        txn->observed++;
    }
}

void td_store__observers_queue(td_txn *txn, const td_event *events, size_t count)
{
    if (txn->store->observer_count > 0)
        enqueue(txn, events, count);
}

int td_store__observers_drain(td_txn *txn)
{
    int error = 0;
    /* the queue grows while it is worked through: index, not pointer */
    for (size_t next = 0; error == 0 && next < txn->queued_count; next++)
        error = observe_one(txn, txn->queued[next]);
    td_store__observers_reset(txn);
    return error;
}
