/*
 * replay.h: the replay part of a subscription (internal; replay.c).
 *
 * Owns: the replay request being carried out (its key, where the next page
 * starts, where the request and the current page end, its filters, whether
 * it asks for effects again, how many events it queued) and how many of its
 * items are queued and not yet finished.
 *
 * Threads and locking:
 * - outstanding: under the subscription's lock. The reader thread counts it
 *   up as it queues a page; lanes count it down (td_replays__item_done) as
 *   they finish replay items.
 * - every other field: the reader thread's alone (td_replays__process), no
 *   lock; td_replays__reset runs on the control thread while no reader runs
 *   (start, free).
 *
 * Invariants: a page is queued only when outstanding is 0, so pages never
 * overtake each other, and `next` is recorded durably only once the page
 * before it is finished; stream and type are owned (NULL: no filter) and
 * NULL while not active; replay items are not in the pending ring (they are
 * below the checkpoint already).
 */
#ifndef TD_BUS_REPLAY_H
#define TD_BUS_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bus/state.h"
#include "tidings/subscription.h"

typedef struct td_sub_replay {
    bool active;
    char key[TD_STATE_KEY_MAX + 1];
    int64_t next, to, page_end;
    char *stream, *type; /* owned */
    bool force_effects;
    int64_t replayed;
    size_t outstanding; /* queued, not finished (under the lock) */
} td_sub_replay;

/* Reader thread: carries out the current replay request a page at a time,
 * taking up the next request when one is done. */
int td_replays__process(td_subscription *sub);
/* Forgets the request (at start it is taken up again from its durable
 * `next`; at free its memory goes). outstanding stays: items of an earlier
 * run may still be queued. Control thread, no reader running. */
void td_replays__reset(td_subscription *sub);
/* A lane finished a replay item. Lock held. */
void td_replays__item_done(td_subscription *sub);

#endif
