/*
 * ring.h: the pending ring of a subscription (internal; ring.c).
 *
 * Owns: every event the reader has read and not yet dropped, in position
 * order (its position, its occurred_at, whether it is done), and the
 * in-memory checkpoint, the ring's done prefix.
 *
 *   start                              end      sequence numbers (uint64)
 *     │ done? done? ... done? ...        │      slot = seq % cap
 *     └── the oldest not done ───────────┘
 *   checkpoint = position of the last entry dropped from the start, or the
 *   read position once nothing is pending
 *
 * Threads and locking: every field under the subscription's lock. The
 * reader thread tracks events (td_ring__track) and moves the checkpoint
 * over what it skipped (td_ring__settle_idle); lanes mark items done
 * (td_ring__done); any thread reads the checkpoint and the lag
 * (td_ring__checkpoint, td_ring__oldest_unfinished). init, dispose and
 * start_at run on the control thread while no reader or lane runs.
 *
 * Invariants: end - start <= cap; the entry at start, if any, is not done
 * (done entries at the start are dropped as they finish), so it is the
 * oldest unfinished one; unfinished counts the entries not done; the
 * checkpoint never passes an event that is not done, and never passes the
 * read position.
 */
#ifndef TD_BUS_RING_H
#define TD_BUS_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tidings/event.h"
#include "tidings/subscription.h"

#define NO_SEQ UINT64_MAX /* items not tracked by the ring (redeliveries, replays) */

typedef struct td_sub_ring {
    int64_t *position; /* owned, cap entries each */
    bool *done;
    td_time *time; /* occurred_at of each pending event: the lag in seconds */
    size_t cap;
    uint64_t start, end; /* sequence numbers; end - start pending */
    int64_t unfinished;  /* entries not done; start's is one */
    int64_t checkpoint;  /* everything up to here is done (in memory) */
} td_sub_ring;

/* Allocates a ring of cap entries, empty (control thread). */
int td_ring__init(td_subscription *sub, size_t cap);
void td_ring__dispose(td_subscription *sub);
/* Empties the ring for a new run starting after position (control thread,
 * no reader or lane running, after td_ring__init). */
void td_ring__start_at(td_subscription *sub, int64_t position);
/* Records an event read; TD_EBUSY if the ring is full. Lock held. */
int td_ring__track(td_subscription *sub, int64_t position, td_time occurred_at, uint64_t *seq);
/* Marks seq done (NO_SEQ and repeats are ignored) and moves the checkpoint
 * over the done prefix; read_position is the reader's, for when nothing is
 * left pending. Lock held. */
void td_ring__done(td_subscription *sub, uint64_t seq, int64_t read_position);
/* With nothing pending, moves the checkpoint up to read_position (events
 * the reader skipped or parked). Lock held. */
void td_ring__settle_idle(td_subscription *sub, int64_t read_position);
/* Events read and not dropped; room left. Lock held. */
size_t td_ring__pending(const td_subscription *sub);
size_t td_ring__room(const td_subscription *sub);
/* The in-memory checkpoint. Lock held, or no reader or lane running. */
int64_t td_ring__checkpoint(const td_subscription *sub);
/* The occurred_at of the oldest event read and not yet finished, or 0;
 * *unfinished (may be NULL): how many read events are not finished. Takes
 * the lock. */
td_time td_ring__oldest_unfinished(td_subscription *sub, int64_t *unfinished);

#endif
