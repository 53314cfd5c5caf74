/*
 * sub_int.h: a subscription's shared core and the map of its parts
 * (internal).
 *
 *   reader thread (reader.c)                 lane threads (lanes.c)
 *   ──────────────────────────────           ─────────────────────────────
 *   reads events after read_position    ──▶  take a ready stream (scheduler),
 *   records them in the pending ring         handle its head item (deliver.c),
 *   queues them on their stream              mark it done in the ring,
 *   persists inflight_to before lanes        release the stream
 *   may see them; persists the checkpoint
 *   as the ring's done prefix grows;
 *   carries out DLQ and replay requests,
 *   renews the lease
 *
 * The parts, each with its own type, header and file; each header says
 * what the part owns, which thread calls which function, and its
 * invariants. Parts reach each other's state only through those headers.
 *
 *   part        type              header / file        state under `lock`
 *   reader      td_sub_reader     reader.h / reader.c  read_position (writes)
 *   lanes       td_sub_lanes      lanes.h / lanes.c    none
 *   scheduler   td_sub_sched      scheduler.h / .c     all (streams, lists)
 *   ring        td_sub_ring       ring.h / ring.c      all (incl. checkpoint)
 *   recovery    td_sub_recovery   recovery.h / .c      careful_until (writes
 *                                                      while running),
 *                                                      recovering_to
 *   lease       td_sub_lease      lease.h / lease.c    none (control thread,
 *                                                      then the reader)
 *   eager       td_sub_eager      eager.h / eager.c    the failed-notes ring
 *   replay      td_sub_replay     replay.h / replay.c  outstanding
 *   metrics     td_sub_metrics    metrics.h / .c       none (set at creation)
 *   (deliver.c and requests.c own no state: deliver.h, requests.h)
 *
 * Locking between the parts, written down once (docs/internals/delivery.md
 * says the same):
 * - One mutex, `lock`, guards the shared core's `stopping` and first error,
 *   and the parts' fields named above. Parts that own no field under it
 *   take it only to call into those that do.
 * - `lock` is a leaf: while holding it no code takes another lock, calls
 *   into the store or runs a handler. The exceptions are the
 *   subscription's `accept` filter, which the reader calls under it (so it
 *   must not call back into the subscription), and the log sink, which
 *   td_sub__fail calls under it for the first error. Other locks may be held
 *   when it is taken: the store's writer calls td_eager__note_failure
 *   inside the appending unit, the metrics registry its collect callback.
 * - Functions documented "lock held" never take it, and assert it
 *   (core/lock.h) where every caller holds it; the others take it themselves for each step, never
 * across a store call or a handler.
 * - Two conditions, both on `lock`: lanes_cond (work for lanes: broadcast
 *   when the reader, a DLQ request or a replay queues items and at stop;
 *   signalled by a lane that settles while ready streams remain);
 *   progress_cond (an item finished or the reader moved: broadcast by lanes
 *   as they settle, by the reader after each batch and at stop; the reader
 *   waits on it while the ring has no room (or after a failed read), td_subscription_wait_until
 *   while the checkpoint is behind).
 * - The control thread (start, stop, free) touches the parts' unlocked
 *   fields only while no reader or lane runs; thread creation and join
 *   order those accesses.
 *
 * Invariants across the parts (each part's own are in its header):
 * - An event is in the ring from when it is read until the checkpoint
 *   passes it; the checkpoint is the position before the oldest event not
 *   done, and it never passes the read position.
 * - An event reaches a lane only once the durable inflight_to covers it
 *   (reader.h), so after a crash every event that might have been in a
 *   handler lies in (checkpoint, inflight_to] (recovery.h).
 * - A stream is handled by one holder at a time, head first (scheduler.h),
 *   so a stream's events are handled in order.
 */
#ifndef TD_BUS_SUB_INT_H
#define TD_BUS_SUB_INT_H

#include <pthread.h>

#include "bus/eager.h"
#include "bus/lanes.h"
#include "bus/lease.h"
#include "bus/metrics.h"
#include "bus/partition.h"
#include "bus/reader.h"
#include "bus/recovery.h"
#include "bus/replay.h"
#include "bus/ring.h"
#include "bus/scheduler.h"
#include "core/internal.h"
#include "tidings/subscription.h"

struct td_subscription {
    /* set at creation, read-only while running */
    td_store *store;
    td_subscription_options opts; /* name and match point at the copies below */
    char *name;                   /* what its state is kept under: base_name, or its partition's */
    char *base_name;              /* the name it was given */
    td_partition_key_fn partition_key; /* NULL: by opts.partition.by (partition.h) */
    char *match_type;
    char *match_category;
    td_handler_fn fn;
    void *payload;

    pthread_mutex_t lock;
    pthread_cond_t lanes_cond;    /* work for lanes */
    pthread_cond_t progress_cond; /* an item finished */
    bool stopping;                /* under lock */
    int first_error;              /* under lock; a TD_E code, 0 while none */
    char first_error_message[256];

    /* the parts (see the table above) */
    td_sub_reader reader;
    td_sub_lanes lanes;
    td_sub_sched sched;
    td_sub_ring ring;
    td_sub_recovery recovery;
    td_sub_lease lease;
    td_sub_eager eager;
    td_sub_replay replay;
    td_sub_metrics metrics;
};

/* Records the subscription's first serious error (lock not held): any
 * thread. TD_ENOSPC and TD_EUNAVAILABLE are not failures (they are tried
 * again) and are only logged. */
void td_sub__fail(td_subscription *sub, int code);

/* Whether the subscription takes ev, which fits its match: its partition's,
 * and accepted by opts.accept. Any thread. */
bool td_sub__accepts(const td_subscription *sub, const td_event *ev);

#endif
