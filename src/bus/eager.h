/*
 * eager.h: the eager part of a subscription (internal; eager.c).
 *
 * Owns: whether the subscription observes this process's appends, and a
 * ring of the ids of events whose eager attempt failed, so that the
 * reader's catch-up counts that attempt.
 *
 * Threads and locking:
 * - started: the control thread's (td_eager__start/stop, from
 *   td_subscription_start/stop); no lock.
 * - failed, failed_next, failed_count: under the subscription's lock.
 *   Written by td_eager__note_failure on the store's writer thread (inside
 *   the appending unit), taken back by td_eager__take_failure on the reader
 *   thread as it queues the event.
 * - td_eager__done runs on a lane, no lock held, outside any unit.
 *
 * Invariants: failed_count <= TD_EAGER_FAILED_MAX; failed_next is where the
 * next note goes (the oldest note is overwritten: an event rolled back with
 * its unit never comes, so its note must not pin a slot); a note taken back
 * is zeroed (a nil id matches nothing).
 */
#ifndef TD_BUS_EAGER_H
#define TD_BUS_EAGER_H

#include <stdbool.h>
#include <stddef.h>

#include "tidings/subscription.h"
#include "tidings/uuid.h"

#define TD_EAGER_FAILED_MAX 64

typedef struct td_sub_eager {
    bool started; /* observing this process's appends */
    td_uuid failed[TD_EAGER_FAILED_MAX];
    size_t failed_next, failed_count;
} td_sub_eager;

struct item;

/* Starts and stops observing the store's appends (control thread); stop
 * is a no-op when not started. */
int td_eager__start(td_subscription *sub);
int td_eager__stop(td_subscription *sub);
/* Whether the progress mark shows the item handled (by its eager attempt);
 * such an item needs no unit of work. Read on the lane, outside any unit. */
bool td_eager__done(td_subscription *sub, const struct item *it);
/* Notes an event whose eager attempt failed (takes the lock); takes the
 * note back (true) when the catch-up queues that event (lock held). */
void td_eager__note_failure(td_subscription *sub, const td_uuid *id);
bool td_eager__take_failure(td_subscription *sub, const td_uuid *id);

#endif
