/*
 * lanes.h: the lanes part of a subscription (internal; lanes.c): the
 * threads that take ready streams and handle their head items.
 *
 * Owns: the lane threads (opts.lanes of them while running).
 *
 * Threads and locking: threads and started are the control thread's
 * (td_subscription_start/stop), no lock. Each lane thread runs
 * td_lanes__main: it takes streams from the scheduler and settles their
 * items in the ring with the subscription's lock held, and handles them
 * (deliver.c) without it.
 *
 * Invariants: started <= opts.lanes; threads holds started joinable
 * threads until td_lanes__join; a lane holds its streams (busy) from take
 * to settle, so it is the only one handling them.
 */
#ifndef TD_BUS_LANES_H
#define TD_BUS_LANES_H

#include <pthread.h>
#include <stdbool.h>

#include "tidings/subscription.h"

typedef struct td_sub_lanes {
    pthread_t *threads; /* owned */
    unsigned started;
} td_sub_lanes;

/* Starts opts.lanes lane threads: TD_ENOMEM (none started), or 0 with
 * *all saying whether every one started (if not, stop the subscription to
 * join those that did). Control thread; stopping must be false. */
int td_lanes__start(td_subscription *sub, bool *all);
/* Joins the lanes (stopping must be set) and frees the array. */
void td_lanes__join(td_subscription *sub);
/* A lane thread's body (arg: the subscription). */
void *td_lanes__main(void *arg);

#endif
