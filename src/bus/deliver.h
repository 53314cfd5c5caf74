/*
 * deliver.h: handing one item to the handler (internal; deliver.c): the
 * attempt, its retries and backoff, parking in the dead-letter queue, the
 * transactional unit with its progress mark, and the eager attempt.
 *
 * Owns no state of the subscription's: it works on the item it is given
 * (its attempts, first failure, retry record flag), which the calling lane
 * holds, and on the store. Lock not held by any of these (they write to the
 * store and run the handler); td_deliver__eager runs on the store's writer
 * thread inside the appending unit, the others on a lane (td_deliver__park
 * also on the reader thread, during crash recovery).
 */
#ifndef TD_BUS_DELIVER_H
#define TD_BUS_DELIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/scheduler.h"
#include "tidings/store.h"
#include "tidings/subscription.h"

/* What became of an item a lane handled. */
typedef enum { OUTCOME_DONE, OUTCOME_PARKED, OUTCOME_DELAYED, OUTCOME_FAILED } td_outcome;

/* Handles one item on a lane: *delay_us for OUTCOME_DELAYED, the dead
 * letter's id into dead_letter_out for OUTCOME_PARKED. blocked_by: the
 * stream's dead letter in sequenced mode ("" or NULL: none). */
td_outcome td_deliver__item(td_subscription *sub, item *it, const char *blocked_by,
                            int64_t *delay_us, char *dead_letter_out);
/* Parks it as a dead letter (behind blocked_by if set) in a unit of its
 * own, clearing its retry record; the new entry's id into dead_letter_out. */
int td_deliver__park(td_subscription *sub, item *it, const char *blocked_by, const char *reason,
                     char *dead_letter_out);
/* Transactional mode: first attempts of several items in one unit of work,
 * each under a savepoint of its own. done[i] says whether items[i] was
 * handled; the others go through td_deliver__item as usual. */
void td_deliver__batch(td_subscription *sub, item **items, size_t count, bool *done);
/* Whether an item may take the batch path (a plain first attempt of an event
 * this program can read); brings its event to the current schema. */
bool td_deliver__batchable(td_subscription *sub, item *it, const char *blocked_by);
/* The eager attempt at ev, inside txn; < 0 only for what must fail the
 * unit. mark is the stream's progress mark, read by the caller. */
int td_deliver__eager(td_txn *txn, td_subscription *sub, const td_event *ev, int64_t mark);

#endif
