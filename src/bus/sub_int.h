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
#include "bus/lease.h"
#include "bus/recovery.h"
#include "bus/replay.h"
#include "bus/ring.h"
#include "bus/state.h"
#include "core/internal.h"
#include "tidings/dlq.h"
#include "tidings/subscription.h"

typedef struct item {
    td_event *event;   /* owned */
    uint64_t seq;      /* ring sequence number, or NO_SEQ */
    unsigned attempts; /* made so far, including restored ones */
    td_time first_failure;
    bool has_retry_doc;
    bool replay;        /* handed over again by a replay request (replay.c) */
    bool force_effects; /* ... which asks for effects again */
    char dead_letter[TD_DEAD_LETTER_ID_LEN + 1]; /* redelivery of this entry, or "" */
    struct item *next;
} item;

typedef struct stream_q {
    char *name;
    size_t name_cap; /* bytes name has room for (a spare keeps its buffer) */
    item *head, *tail;
    bool busy;
    bool queued;
    int64_t ready_at; /* monotonic µs before which the head waits (a delayed retry) */
    char blocked_by[TD_DEAD_LETTER_ID_LEN + 1];
    struct stream_q *hash_next;
    struct stream_q *list_next;
} stream_q;

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
    pthread_t reader;
    pthread_t *lanes;
    unsigned lanes_started;
    bool reader_started;
    td_sub_eager eager; /* eager.h */
    td_sub_lease lease; /* lease.h */
    bool stopping;
    int first_error;
    char first_error_message[256];

    /* streams */
    stream_q **buckets;
    size_t bucket_count, stream_count;
    stream_q *spare; /* forgotten streams kept for reuse (linked by hash_next) */
    size_t spare_count;
    stream_q *ready_head, *ready_tail;
    stream_q *delayed;

    td_sub_ring ring; /* ring.h */

    int64_t read_position;    /* everything up to here has been read (or skipped) */
    td_checkpoint durable;    /* as last persisted */
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

/* scheduler.c (all with the lock held) */
int td_sched__init(td_subscription *sub);
void td_sched__dispose(td_subscription *sub);
/* Empties the scheduler for a new run (what an earlier run left queued is
 * read again from the checkpoint). Only while no reader or lane runs. */
int td_sched__reset(td_subscription *sub);
int td_sched__stream(td_subscription *sub, const char *name, stream_q **out);
void td_sched__push(td_subscription *sub, stream_q *s, item *it, bool front);
void td_sched__offer(td_subscription *sub, stream_q *s); /* queue it if it has work */
/* Frees s if it has nothing to do (no items, not busy, not listed, not
 * blocked); true if it did. Call where a holder lets a stream go. */
bool td_sched__forget_idle(td_subscription *sub, stream_q *s);
stream_q *td_sched__take(td_subscription *sub, int64_t now, int64_t *next_ready);
int64_t td_sched__monotonic_us(void);
void td_sched__item_free(item *it);

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

/* lanes.c */
void *td_lanes__main(void *arg);

/* requests.c: restores DLQ state at start, carries out operator requests. */
int td_requests__restore(td_subscription *sub);
int td_requests__process(td_subscription *sub);

/* subscription.c (the reader): persists {checkpoint, inflight_to, suspect
 * note, recovering_to}; reader thread, or the control thread while no
 * reader runs. Lock not held. */
int td_reader__save_checkpoint(td_subscription *sub, int64_t inflight_to, int64_t suspect,
                               unsigned suspect_attempts);

/* Records the subscription's first serious error (lock not held). */
void td_sub__fail(td_subscription *sub, int code);

#endif
