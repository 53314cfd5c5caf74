/*
 * lease.h: the lease part of a subscription (internal; lease.c).
 *
 * Owns: whether this instance holds the name's lease, the store lock held
 * with it, the owner id written in the lease document, and when it was last
 * renewed. See lease.c for the protocol.
 *
 * Threads and locking: no field is under the subscription's lock. The
 * control thread (td_subscription_start/stop) takes and releases the lease
 * while no reader runs; between the two only the reader thread renews it.
 * The reader thread's start and join order those accesses.
 *
 * Invariants: lock is NULL while not held; while held, the lease document
 * names owner (until another process takes it over, which the next renewal
 * finds); renewed_us is the monotonic time of the last renewal, or set so
 * that a failed one is tried again after LEASE_RETRY_US.
 */
#ifndef TD_BUS_LEASE_H
#define TD_BUS_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/internal.h"
#include "tidings/subscription.h"

typedef struct td_sub_lease {
    const char *instance; /* the balancer's label, written in the lease; NULL: none.
                             Set while stopped (balance.c); outlives the runs */
    bool held;            /* this instance runs the name */
    td_store_lock *lock;  /* held with the lease; NULL without */
    char owner[TD_UUID_STR_LEN + 1];
    int64_t renewed_us; /* monotonic */
} td_sub_lease;

/* One process at a time runs a name. take (control thread, reader not
 * running): 0, or TD_EBUSY naming the holder; a lock held by another
 * process is waited for up to LOCK_WAIT_US only when wait_for_lock. renew (reader thread,
 * rate-limited to every LEASE_RENEW_US): 0, TD_EBUSY once lost, another
 * code for a renewal to try again. release (control thread, reader
 * stopped): lets go of the lease, then the lock. */
int td_lease__take(td_subscription *sub, bool wait_for_lock);
int td_lease__renew(td_subscription *sub);
void td_lease__release(td_subscription *sub);

/* Whether nobody holds the lease of name: no lease document, or an expired
 * one (a balancer's orphan sweep; any thread). */
int td_lease__vacant(td_store *store, const char *name, bool *vacant);

#endif
