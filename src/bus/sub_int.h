/*
 * sub_int.h: a subscription's moving parts (internal).
 *
 *   reader thread (subscription.c)          lane threads (lanes.c)
 *   ──────────────────────────────          ─────────────────────────────
 *   reads events after read_position   ──▶  take a ready stream, handle its
 *   records them in the pending ring        head event (deliver.c), mark it
 *   queues them on their stream             done in the ring, release the stream
 *   persists inflight_to before lanes
 *   may see them; persists the checkpoint
 *   as the ring's done prefix grows;
 *   carries out DLQ requests (requests.c)
 *
 * Invariants (under `lock`):
 * - An event is in the ring from when it is read until the checkpoint passes
 *   it; the checkpoint is the position before the oldest event not done.
 * - A stream is handled by at most one lane at a time (`busy`), always its
 *   head item first, so a stream's events are handled in order.
 * - A stream is in at most one of the ready list and the delayed list
 *   (`queued`), and only when it is not busy and has items.
 * - A stream with `blocked_by` set (sequenced DLQ) parks every item it hands
 *   out behind that dead letter.
 */
#ifndef TD_BUS_SUB_INT_H
#define TD_BUS_SUB_INT_H

#include <pthread.h>

#include "bus/eager.h"
#include "bus/lanes.h"
#include "bus/lease.h"
#include "bus/reader.h"
#include "bus/recovery.h"
#include "bus/replay.h"
#include "bus/ring.h"
#include "bus/scheduler.h"
#include "bus/state.h"
#include "core/internal.h"
#include "tidings/dlq.h"
#include "tidings/subscription.h"

struct td_subscription {
    td_store *store;
    td_subscription_options opts; /* name and match point at the copies below */
    char *name;
    char *match_type;
    char *match_category;
    td_handler_fn fn;
    void *payload;

    pthread_mutex_t lock;
    pthread_cond_t lanes_cond;    /* work for lanes */
    pthread_cond_t progress_cond; /* an item finished */
    td_sub_reader reader;         /* reader.h */
    td_sub_lanes lanes;           /* lanes.h */
    td_sub_eager eager;           /* eager.h */
    td_sub_lease lease;           /* lease.h */
    bool stopping;
    int first_error;
    char first_error_message[256];

    td_sub_sched sched; /* scheduler.h */

    td_sub_ring ring; /* ring.h */

    td_sub_recovery recovery; /* recovery.h */

    td_sub_replay replay; /* replay.h */

    /* metrics (all NULL without a registry) */
    td_metric *m_duration, *m_failures, *m_retries, *m_dead, *m_lag_events, *m_lag_seconds;
};

/* metrics.c in this folder: registering and updating the subscription's series. */
int td_sub_metrics__register(td_subscription *sub);
void td_sub_metrics__unregister(td_subscription *sub);
void td_sub_metrics__handled(td_subscription *sub, const td_event *ev);
void td_sub_metrics__failed(td_subscription *sub, const td_event *ev);
void td_sub_metrics__retry(td_subscription *sub);

/* deliver.c: the eager attempt at ev, inside txn; < 0 only for what must
 * fail the unit. mark is the stream's progress mark, read by the caller. */
int td_deliver__eager(td_txn *txn, td_subscription *sub, const td_event *ev, int64_t mark);

/* deliver.c: handles one item on a lane (lock not held). */
typedef enum { OUTCOME_DONE, OUTCOME_PARKED, OUTCOME_DELAYED, OUTCOME_FAILED } td_outcome;
td_outcome td_deliver__item(td_subscription *sub, item *it, const char *blocked_by,
                            int64_t *delay_us, char *dead_letter_out);
int td_deliver__park(td_subscription *sub, item *it, const char *blocked_by, const char *reason,
                     char *dead_letter_out);
/* Transactional mode: first attempts of several items in one unit of work,
 * each under a savepoint of its own. done[i] says whether items[i] was
 * handled; the others go through td_deliver__item as usual. */
void td_deliver__batch(td_subscription *sub, item **items, size_t count, bool *done);
/* Whether an item may take the batch path (a plain first attempt of an event
 * this program can read); brings its event to the current schema. */
bool td_deliver__batchable(td_subscription *sub, item *it, const char *blocked_by);

/* requests.c: restores DLQ state at start, carries out operator requests. */
int td_requests__restore(td_subscription *sub);
int td_requests__process(td_subscription *sub);

/* Records the subscription's first serious error (lock not held). */
void td_sub__fail(td_subscription *sub, int code);

#endif
