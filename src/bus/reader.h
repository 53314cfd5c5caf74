/*
 * reader.h: the reader part of a subscription (internal; reader.c).
 *
 * Owns: the reader thread; the read position (everything up to it has been
 * read, or skipped by the filter); the checkpoint as last persisted
 * (durable), including the reserved in-flight window (inflight_to).
 *
 * Threads and locking:
 * - thread, started: the control thread's (start, stop); no lock. started
 *   is atomic: the metrics collector reads it from the rendering thread.
 * - read_position: written by the reader thread with the subscription's
 *   lock held (and by the control thread at start, before the reader
 *   runs); read by the reader thread without the lock, by others with it
 *   (td_reader__position).
 * - durable: written where the checkpoint is saved (td_reader__save_checkpoint:
 *   the reader thread, or the control thread while no reader runs, at start
 *   and stop); read on those threads only (recovery.c), no lock.
 *
 * Invariants: an event reaches a lane only once durable.inflight_to covers
 * it; the ring's checkpoint <= read_position; durable.position <= the
 * ring's checkpoint.
 */
#ifndef TD_BUS_READER_H
#define TD_BUS_READER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus/state.h"
#include "tidings/subscription.h"

typedef struct td_sub_reader {
    pthread_t thread;
    atomic_bool started;
    int64_t read_position; /* everything up to here has been read (or skipped) */
    td_checkpoint durable; /* as last persisted */
} td_sub_reader;

/* At start (control thread, no reader or lane running, scheduler reset):
 * loads the durable checkpoint (made if new), plans crash recovery,
 * restores retries, replays and DLQ state. */
int td_reader__load(td_subscription *sub);
/* Starts the reader thread; false if it could not be created. */
bool td_reader__start(td_subscription *sub);
bool td_reader__running(const td_subscription *sub);
/* Joins the reader thread (stopping must be set); whether it was running. */
bool td_reader__join(td_subscription *sub);
/* Persists {checkpoint, inflight_to, suspect note, recovering_to}. The
 * reader thread, or the control thread while no reader runs. Lock not
 * held. */
int td_reader__save_checkpoint(td_subscription *sub, int64_t inflight_to, int64_t suspect,
                               unsigned suspect_attempts);
/* The checkpoint as last persisted (reader thread, or control thread while
 * no reader runs). */
const td_checkpoint *td_reader__durable(const td_subscription *sub);
/* The read position. Lock held (or on the reader thread). */
int64_t td_reader__position(const td_subscription *sub);
/* Moves the read position past an event handled without the lanes (one
 * parked during crash recovery). Reader thread, lock held. */
void td_reader__skip_to(td_subscription *sub, int64_t position);

#endif
