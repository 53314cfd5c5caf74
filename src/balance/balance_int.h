/*
 * balance_int.h: the balancer's state (internal; balancer.c decides,
 * membership.c keeps the instance documents).
 *
 * Threads: everything but the fields marked "under lock" belongs to the
 * controlling thread (td_balancer_tick/_stop/_free); lock guards what
 * td_balancer_parts and td_balancer_live read from other threads.
 */
#ifndef TD_BALANCE_INT_H
#define TD_BALANCE_INT_H

#include <pthread.h>

#include "core/internal.h"
#include "tidings/balance.h"

#define TD_COLL_INSTANCES      "tidings_instances"
#define TD_MEMBERSHIP_TTL_US   (15 * 1000000LL)
#define TD_MEMBERSHIP_RENEW_US (3 * 1000000LL)

typedef struct td_bal_part {
    td_subscription *sub; /* one of these two */
    td_saga *saga;
    char group[TD_SUBSCRIPTION_NAME_MAX + 1];
    char name[TD_SUBSCRIPTION_NAME_MAX + 1];
    unsigned index, count;
    int64_t given_up_us; /* monotonic: when this instance last gave it up */
    int64_t shed_us;     /* the group's first part: when it last gave one up */
    int64_t retry_at_us; /* after a failed start (not TD_EBUSY): not before */
    bool vacant_seen;    /* the last orphan sweep found no live lease */
    bool running;        /* under lock */
    int error;           /* under lock: 0, or why it failed */
    char why[256];       /* under lock */
} td_bal_part;

struct td_balancer {
    td_store *store;
    char id[TD_INSTANCE_ID_LEN + 1];
    char label[65];
    char host[256];
    td_time started_at;
    td_bal_part *parts;
    size_t count, capacity;
    int64_t renewed_us, swept_us; /* monotonic; 0: never */
    bool joined;                  /* its first round is over, its membership written */
    td_store_lock *instance_lock; /* held while a member (membership.c) */
    long long slot;               /* the lock's number; -1 while none */

    pthread_mutex_t lock;
    unsigned live, rank; /* under lock */
};

/* membership.c: counts the live instances (b->live, b->rank), writing
 * this instance's document when renew (or removing the dead's); leave
 * removes it. Controlling thread. */
int td_membership__count(td_balancer *b, bool renew);
int td_membership__leave(td_balancer *b);

#endif
