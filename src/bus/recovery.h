/*
 * recovery.h: the crash-recovery part of a subscription (internal;
 * recovery.c).
 *
 * Owns: the range handed over again after a crash (recovering_to), the
 * part of it handed over one event at a time (careful_until), and the
 * delayed retries restored from their durable records at start.
 *
 * Threads and locking:
 * - td_recovery__plan, __load_retries, __dispose: the control thread, while
 *   no reader or lane runs (start, free); no lock needed then.
 * - careful_until: written under the lock (td_recovery__careful_over, by
 *   the reader thread) or before the reader starts; the reader thread reads
 *   it without the lock (it is its only writer while running), others with
 *   it (td_recovery__careful) or after the reader is joined
 *   (td_recovery__end_on_stop).
 * - recovering_to: under the lock (td_recovery__range_end, on whichever
 *   thread saves the checkpoint: the reader, or the control thread while
 *   the reader is not running).
 * - retries, retry_count: written at start only; read by the reader under
 *   the lock (td_recovery__apply_retry).
 * - td_recovery__careful_step: the reader thread, lock not held.
 *
 * Invariants: recovering_to is 0 or past the durable checkpoint, and is
 * forgotten once the checkpoint reaches it; careful_until <= recovering_to
 * (0: no serial range); retries are sorted by position.
 */
#ifndef TD_BUS_RECOVERY_H
#define TD_BUS_RECOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tidings/event.h"
#include "tidings/subscription.h"

/* A delayed retry restored from its durable record at start. */
typedef struct restored_retry {
    int64_t position;
    unsigned attempts;
    td_time next_at; /* wall clock */
} restored_retry;

typedef struct td_sub_recovery {
    int64_t careful_until;   /* after crashes: hand events over one at a time up to here */
    int64_t recovering_to;   /* the range handed over again after a crash ends here; 0: none */
    restored_retry *retries; /* owned; sorted by position; used as events are queued */
    size_t retry_count;
} td_sub_recovery;

struct item;
struct stream_q;

/* After a crash: what goes one at a time, what in parallel, and the durable
 * note of the range before anything of it is handed over; head is today's
 * head. Control thread, at start, after the checkpoint is loaded. */
int td_recovery__plan(td_subscription *sub, int64_t head);
/* Reads the durable retry records (control thread, at start). */
int td_recovery__load_retries(td_subscription *sub);
void td_recovery__dispose(td_subscription *sub);
/* Gives an item the attempts and delay of its restored retry record; s is
 * its stream, it not yet on it. Lock held (reader thread). */
void td_recovery__apply_retry(td_subscription *sub, struct stream_q *s, struct item *it);
/* Whether the event after read_position goes one at a time. Lock held. */
bool td_recovery__careful(td_subscription *sub, int64_t read_position);
/* Where the serial range ends (0: none). Reader thread, no lock. */
int64_t td_recovery__careful_until(const td_subscription *sub);
/* The reader found the serial range over (its filter skipped past it). */
void td_recovery__careful_over(td_subscription *sub);
/* recovering_to for a checkpoint about to be saved, forgotten (0) once the
 * checkpoint has reached it. Lock held. */
int64_t td_recovery__range_end(td_subscription *sub, int64_t checkpoint);
/* At a graceful stop (reader and lanes joined): whether the range handed
 * over again is over as far as a stop can tell (the checkpoint is past the
 * serial part); if so it is forgotten, and the caller saves the checkpoint
 * with the window shrunk. Inside a serial range it stays as it is. */
bool td_recovery__end_on_stop(td_subscription *sub, int64_t checkpoint);
/* In a serial range: decides about the one suspect event ev (owned by the
 * caller unless parked). 1: it crashed the process too often and was
 * parked (ev taken); 0: hand it over (the durable suspect note is written);
 * < 0: a TD_E code. Reader thread, lock not held. */
int td_recovery__careful_step(td_subscription *sub, td_event *ev);

#endif
