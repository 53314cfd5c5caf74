/*
 * scheduler.h: the scheduler part of a subscription (internal;
 * scheduler.c): the items to handle, queued per stream, and which streams
 * lanes may take.
 *
 * Owns: the streams with something in flight (a hash table by name), the
 * ready list (FIFO: streams take turns), the delayed list (streams whose
 * head waits for a delayed retry), and up to SPARE_MAX forgotten streams
 * kept for reuse. Each stream owns its queued items.
 *
 * Items: an item belongs to whoever holds it: its maker (the reader,
 * requests.c, replay.c) until it is pushed on a stream, the scheduler while
 * queued, the lane that took its stream while it is handled (deliver.c
 * updates its attempts then), and it is freed when the lane settles it.
 *
 * Threads and locking: every field, and every stream's, under the
 * subscription's lock; every function here is called with it held, except
 * init, reset and dispose (control thread, no reader or lane running) and
 * td_sched__monotonic_us and td_sched__item_free (no shared state). The
 * reader thread makes streams and queues items (and, for DLQ requests,
 * claims a stream); lanes take and release streams.
 *
 * Invariants:
 * - A stream is handled by at most one holder at a time (busy: a lane, or
 *   the reader carrying out a DLQ request), always its head item first, so
 *   a stream's events are handled in order.
 * - A stream is in at most one of the ready list and the delayed list
 *   (queued); it is offered only when it is not busy and has items (a
 *   stream claimed while listed is skipped by the lanes and offered again
 *   on release).
 * - A stream with blocked_by set (sequenced DLQ) parks every item it hands
 *   out behind that dead letter; it stays in the table while blocked.
 * - A stream with nothing to do (no items, not busy, not listed, not
 *   blocked) is forgotten where its holder lets it go.
 */
#ifndef TD_BUS_SCHEDULER_H
#define TD_BUS_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tidings/dlq.h"
#include "tidings/event.h"
#include "tidings/subscription.h"

typedef struct item {
    td_event *event;   /* owned */
    uint64_t seq;      /* ring sequence number, or NO_SEQ (ring.h) */
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

typedef struct td_sub_sched {
    stream_q **buckets;
    size_t bucket_count, stream_count;
    stream_q *spare; /* forgotten streams kept for reuse (linked by hash_next) */
    size_t spare_count;
    stream_q *ready_head, *ready_tail;
    stream_q *delayed;
} td_sub_sched;

/* Allocates the table and the pending ring (ring.h); dispose frees both,
 * with every stream and item. Control thread. */
int td_sched__init(td_subscription *sub);
void td_sched__dispose(td_subscription *sub);
/* Empties the scheduler and the ring for a new run (what an earlier run
 * left queued is read again from the checkpoint). Only while no reader or
 * lane runs. */
int td_sched__reset(td_subscription *sub);

/* The stream named name, made if new (TD_ENOMEM). Lock held. */
int td_sched__stream(td_subscription *sub, const char *name, stream_q **out);
/* Queues it on s, at the front or the back (it becomes the stream's). */
void td_sched__push(td_subscription *sub, stream_q *s, item *it, bool front);
/* Lists s (ready, or delayed while ready_at is ahead) if it has work and is
 * neither busy nor listed. */
void td_sched__offer(td_subscription *sub, stream_q *s);
/* Frees s if it has nothing to do (no items, not busy, not listed, not
 * blocked); true if it did. Call where a holder lets a stream go. */
bool td_sched__forget_idle(td_subscription *sub, stream_q *s);
/* A lane takes the next ready stream (busy), first moving delayed streams
 * whose time has come to the ready list; NULL if none, with *next_ready
 * the earliest ready_at still ahead (0: none). */
stream_q *td_sched__take(td_subscription *sub, int64_t now, int64_t *next_ready);
/* Whether a stream is ready for a lane. */
bool td_sched__has_ready(const td_subscription *sub);
/* The reader takes s for a DLQ request: false if a lane has it now. */
bool td_sched__claim(td_subscription *sub, stream_q *s);
/* The holder lets s go: forgotten if idle, else offered again. */
void td_sched__release(td_subscription *sub, stream_q *s);
/* Drops it, s's head item, from s (its holder settled it; the caller
 * frees it). */
void td_sched__pop(td_subscription *sub, stream_q *s, item *it);
/* The head waits until at (monotonic µs; 0: ready now). */
void td_sched__delay(td_subscription *sub, stream_q *s, int64_t at);
/* Blocks s behind dead letter id (sequenced DLQ); unblock lets it go on
 * if it is blocked by id. */
void td_sched__block(td_subscription *sub, stream_q *s, const char *id);
void td_sched__unblock(td_subscription *sub, stream_q *s, const char *id);

/* Read accessors for the stream's holder (lock held). */
static inline item *td_sched__head(const stream_q *s)
{
    return s->head;
}
static inline const char *td_sched__blocked_by(const stream_q *s)
{
    return s->blocked_by;
}

int64_t td_sched__monotonic_us(void);
void td_sched__item_free(item *it);

#endif
