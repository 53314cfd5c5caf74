/*
 * reader.c: a subscription's reader thread.
 *
 *   reader loop:     ┬─ carry out DLQ and replay requests (every REQUESTS_EVERY_US)
 *                    ├─ read the next batch after read_position
 *                    │    past inflight_to? persist                       ◀─ one write
 *                    │      {checkpoint, inflight_to = batch end + window}   per window
 *                    │    queue the events on their streams
 *                    ├─ persist the checkpoint when the done prefix grew
 *                    └─ nothing new: wait for a commit (td_store_wait)
 *
 * Crash safety. An event is handed to a lane only once inflight_to covering
 * it is durable, so after a crash every event that might have been in a
 * handler lies in (checkpoint, inflight_to]. inflight_to is reserved
 * INFLIGHT_WINDOW positions ahead, so the normal path pays one durable write
 * per window, not per event or batch, and most batches reach the lanes
 * without waiting for a commit. A graceful stop resets the window.
 *
 * After a crash, the range is handed over again: see recovery.c.
 *
 * The reader also carries out DLQ requests (requests.c) and replay requests
 * (replay.c) every REQUESTS_EVERY_US, and renews the lease (lease.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/reader.h"
#include "bus/eager.h"
#include "bus/lease.h"
#include "bus/recovery.h"
#include "bus/replay.h"
#include "bus/requests.h"
#include "bus/ring.h"
#include "bus/scheduler.h"
#include "bus/sub_int.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "core/lock.h"
#include "core/log_int.h"

#define CHECKPOINT_EVERY_US 100000
#define INFLIGHT_WINDOW     1024
#define REQUESTS_EVERY_US   50000
/* The longest the reader waits in one turn: for a commit (td_store_wait),
 * or for the lanes to make room in the ring. */
#define STORE_WAIT_MS 50
#define LANES_WAIT_US 20000

typedef struct batch {
    td_event **events;
    size_t count, cap;
} batch;

static int collect(const td_event *ev, void *payload)
{
    batch *b = payload;
    if (b->count == b->cap)
        return 1;
    int error = td_event_dup(&b->events[b->count], ev);
    if (error == 0) /* a failed copy is not counted: nothing of it to free */
        b->count++;
    return error;
}

static void batch_dispose(batch *b)
{
    for (size_t i = 0; i < b->count; i++) {
        td_event_free(b->events[i]);
        b->events[i] = NULL;
    }
    b->count = 0;
}

/* Queues an event on its stream; takes ownership of ev. Lock held. */
static int enqueue(td_subscription *sub, td_event *ev)
{
    TD_ASSERT_HELD(&sub->lock);
    stream_q *s = NULL;
    item *it = td_calloc(1, sizeof *it);
    int error = it ? td_sched__stream(sub, ev->stream, &s) : td_error__oom();
    if (error == 0)
        error = td_ring__track(sub, ev->position, ev->occurred_at, &it->seq);
    if (error < 0) {
        td_free(it);
        td_event_free(ev);
        return error;
    }
    it->event = ev;
    td_recovery__apply_retry(sub, s, it);
    if (it->attempts == 0 && td_eager__take_failure(sub, &ev->id))
        it->attempts = 1; /* its eager attempt, which failed */
    td_sched__push(sub, s, it, false);
    td_sched__offer(sub, s);
    return 0;
}

int td_reader__save_checkpoint(td_subscription *sub, int64_t inflight_to, int64_t suspect,
                               unsigned suspect_attempts)
{
    pthread_mutex_lock(&sub->lock);
    int64_t checkpoint = td_ring__checkpoint(sub);
    td_checkpoint cp = {checkpoint, inflight_to, suspect, suspect_attempts,
                        td_recovery__range_end(sub, checkpoint)};
    pthread_mutex_unlock(&sub->lock);
    if (cp.inflight_to < cp.position)
        cp.inflight_to = cp.position;
    int error = td_state__save_checkpoint(sub->store, sub->name, &cp);
    if (error == 0)
        sub->reader.durable = cp;
    return error;
}

static size_t read_limit(td_subscription *sub, bool *careful)
{
    pthread_mutex_lock(&sub->lock);
    size_t pending = td_ring__pending(sub);
    *careful = td_recovery__careful(sub, sub->reader.read_position);
    size_t room = td_ring__room(sub);
    pthread_mutex_unlock(&sub->lock);
    if (*careful)
        return pending == 0 ? 1 : 0;
    return room < sub->opts.batch_size ? 0 : sub->opts.batch_size;
}

/* Queues what the batch read; lock not held on entry. */
static int queue_batch(td_subscription *sub, batch *b, size_t limit, int64_t head_before)
{
    int error = 0;
    size_t got = b->count;
    pthread_mutex_lock(&sub->lock);
    for (size_t i = 0; i < got; i++) {
        sub->reader.read_position = b->events[i]->position;
        if (error == 0 && td_sub__accepts(sub, b->events[i]))
            error = enqueue(sub, b->events[i]);
        else
            td_event_free(b->events[i]);
        b->events[i] = NULL;
    }
    b->count = 0;
    if (error == 0 && got < limit && head_before > sub->reader.read_position)
        sub->reader.read_position = head_before; /* the rest did not match: seen */
    td_ring__settle_idle(sub, sub->reader.read_position);
    pthread_cond_broadcast(&sub->lanes_cond);
    pthread_cond_broadcast(&sub->progress_cond);
    pthread_mutex_unlock(&sub->lock);
    return error;
}

/* What one read_more did, apart from failing. */
typedef enum read_outcome {
    READ_NOTHING_NEW, /* the log holds nothing more for it now */
    READ_SOME,        /* it read (and queued or parked) events */
    READ_LANES_FULL,  /* it read nothing: the lanes have no room; wait for them */
} read_outcome;

/* Reads and queues the next events: 0 with *outcome, or a TD_E code (any
 * of them, TD_ERROR included: an error never reads as backpressure). */
static int read_more(td_subscription *sub, batch *b, read_outcome *outcome)
{
    bool careful;
    size_t limit = read_limit(sub, &careful);
    *outcome = READ_NOTHING_NEW;
    if (limit == 0) {
        *outcome = READ_LANES_FULL;
        return 0;
    }
    int64_t head = td_store_known_head(sub->store); /* no query: waits keep it fresh */
    td_read_query q = TD_READ_QUERY_INIT;
    q.after_position = sub->reader.read_position; /* only the reader writes it */
    q.type = sub->opts.match.type;
    q.category = sub->opts.match.category;
    q.limit = limit;
    b->count = 0;
    b->cap = limit;
    int error = td_store_read_stored(sub->store, &q, collect, b);
    int64_t careful_until = td_recovery__careful_until(sub);
    if (error == 0 && careful && b->count == 1 && b->events[0]->position > careful_until) {
        careful = false; /* the filter skipped past the suspect range: it is over */
        td_recovery__careful_over(sub);
    }
    if (error == 0 && careful && head > careful_until)
        head = careful_until;
    bool accepted = b->count == 1 && td_sub__accepts(sub, b->events[0]);
    if (error == 0 && careful && accepted &&
        (error = td_recovery__careful_step(sub, b->events[0])) == 1) {
        b->count = 0; /* parked; td_recovery__careful_step took it */
        *outcome = READ_SOME;
        return 0;
    }
    if (error == 0 && !careful && b->count > 0 &&
        b->events[b->count - 1]->position > sub->reader.durable.inflight_to)
        error = td_reader__save_checkpoint(sub, b->events[b->count - 1]->position + INFLIGHT_WINDOW,
                                           0, 0);
    if (error < 0) {
        batch_dispose(b);
        return error;
    }
    size_t n = b->count;
    if (head > sub->reader.read_position || n > 0)
        error = queue_batch(sub, b, limit, head);
    if (error == 0 && n > 0)
        *outcome = READ_SOME;
    return error < 0 ? error : 0;
}

static void maybe_save(td_subscription *sub, int64_t *last_save)
{
    int64_t now = td_sched__monotonic_us();
    pthread_mutex_lock(&sub->lock);
    bool moved = td_ring__checkpoint(sub) != sub->reader.durable.position;
    bool careful = td_recovery__careful(sub, sub->reader.read_position);
    pthread_mutex_unlock(&sub->lock);
    if (!moved || careful || now - *last_save < CHECKPOINT_EVERY_US)
        return;
    *last_save = now;
    if (td_reader__save_checkpoint(sub, sub->reader.durable.inflight_to, 0, 0) < 0)
        td_sub__fail(sub, td_error_last_code());
}

static bool stopping(td_subscription *sub)
{
    pthread_mutex_lock(&sub->lock);
    bool stop = sub->stopping;
    pthread_mutex_unlock(&sub->lock);
    return stop;
}

static void wait_for_lanes(td_subscription *sub)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += LANES_WAIT_US * 1000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&sub->lock);
    if (!sub->stopping)
        pthread_cond_timedwait(&sub->progress_cond, &sub->lock, &ts);
    pthread_mutex_unlock(&sub->lock);
}

static void *reader_main(void *arg)
{
    td_subscription *sub = arg;
    td_thread__name("r/", sub->name);
    td_event *events[4096];
    batch b = {events, 0, 0};
    int64_t last_save = 0, last_requests = 0, head = 0;
    while (!stopping(sub)) {
        int64_t now = td_sched__monotonic_us();
        if (now - last_requests >= REQUESTS_EVERY_US) {
            last_requests = now;
            if (td_requests__process(sub) < 0 || td_replays__process(sub) < 0)
                td_sub__fail(sub, td_error_last_code());
        }
        read_outcome outcome;
        int error = read_more(sub, &b, &outcome);
        if (error < 0) {
            td_sub__fail(sub, error);
            wait_for_lanes(sub);
        }
        maybe_save(sub, &last_save);
        int renewed = td_lease__renew(sub);
        if (renewed < 0)
            td_sub__fail(sub, renewed);
        if (renewed == TD_EBUSY)
            break; /* another process runs the name now: hand out nothing more */
        if (error == 0 && outcome == READ_LANES_FULL)
            wait_for_lanes(sub);
        else if (error == 0 && outcome == READ_NOTHING_NEW &&
                 td_store_wait(sub->store, sub->reader.read_position, STORE_WAIT_MS, &head) < 0)
            td_sub__fail(sub, td_error_last_code());
    }
    return NULL;
}

int td_reader__load(td_subscription *sub)
{
    bool found = false;
    int64_t head = 0;
    int error = td_state__load_checkpoint(sub->store, sub->name, &sub->reader.durable, &found);
    if (error == 0 && !found) {
        if (sub->opts.start_at_end && (error = td_store_head(sub->store, &head)) < 0)
            return error;
        sub->reader.durable = (td_checkpoint){head, head, 0, 0, 0};
        error = td_state__save_checkpoint(sub->store, sub->name, &sub->reader.durable);
    }
    if (error < 0)
        return error;
    sub->reader.read_position = sub->reader.durable.position;
    td_ring__start_at(sub, sub->reader.durable.position);
    if ((error = td_store_head(sub->store, &head)) < 0 ||
        (error = td_recovery__plan(sub, head)) < 0)
        return error;
    td_log__emit(TD_LOG_INFO, sub->name, NULL, "starting at position %lld",
                 (long long)sub->reader.durable.position);
    error = td_recovery__load_retries(sub);
    td_replays__reset(sub);
    return error < 0 ? error : td_requests__restore(sub);
}

bool td_reader__start(td_subscription *sub)
{
    sub->reader.started = pthread_create(&sub->reader.thread, NULL, reader_main, sub) == 0;
    return sub->reader.started;
}

bool td_reader__running(const td_subscription *sub)
{
    return sub->reader.started;
}

bool td_reader__join(td_subscription *sub)
{
    bool was_running = sub->reader.started;
    if (was_running)
        pthread_join(sub->reader.thread, NULL);
    sub->reader.started = false;
    return was_running;
}

const td_checkpoint *td_reader__durable(const td_subscription *sub)
{
    return &sub->reader.durable;
}

int64_t td_reader__position(const td_subscription *sub)
{
    return sub->reader.read_position;
}

void td_reader__skip_to(td_subscription *sub, int64_t position)
{
    TD_ASSERT_HELD(&sub->lock);
    sub->reader.read_position = position;
}
