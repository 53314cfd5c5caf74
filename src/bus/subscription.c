/*
 * subscription.c: a subscription's life and its reader thread.
 *
 *   new ──start──▶ running ──stop──▶ stopped ──free
 *                    │
 *   reader loop:     ├─ carry out DLQ requests (every poll interval)
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
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "bus/bus_int.h"
#include "bus/sub_int.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "core/log_int.h"
#include "core/lock.h"
#include "tidings/upcast.h"

#define CHECKPOINT_EVERY_US 100000
#define INFLIGHT_WINDOW     1024
#define REQUESTS_EVERY_US   50000

void td_sub__fail(td_subscription *sub, int code)
{
    if (code == TD_ENOSPC || code == TD_EUNAVAILABLE) {
        /* The disk is full, or the database server is out of reach (a
         * restart, a cut connection): what failed is tried again (a
         * checkpoint at the next save, a handler after a delay, a read at
         * the next turn) and succeeds once there is space or a server. The
         * store says so (td_store_health); this subscription has not
         * failed. */
        td_log__emit(TD_LOG_DEBUG, sub->name, NULL, "%s", td_error_last());
        return;
    }
    pthread_mutex_lock(&sub->lock);
    if (sub->first_error == 0) {
        td_log__emit(TD_LOG_ERROR, sub->name, NULL, "subscription failed: %s", td_error_last());
        sub->first_error = code < 0 ? code : TD_ERROR;
        snprintf(sub->first_error_message, sizeof sub->first_error_message, "%s", td_error_last());
    }
    pthread_mutex_unlock(&sub->lock);
}

/* ---- creation ------------------------------------------------------------------ */

/* Version 1 ended before eager: a caller built against it passes a shorter
 * struct, so only that much of it is read. Unknown versions are refused. */
#define OPTIONS_V1_SIZE offsetof(td_subscription_options, eager)

static int copy_options(td_subscription *sub, const td_subscription_options *given)
{
    td_subscription_options v1 = {0};
    const td_subscription_options *opts = given;
    if (given->version == 1) {
        memcpy(&v1, given, OPTIONS_V1_SIZE);
        opts = &v1;
    } else if (given->version != TD_SUBSCRIPTION_OPTIONS_VERSION) {
        return td_error__set(TD_EINVAL, "td_subscription_options version %u is not %u (or 1)",
                             given->version, TD_SUBSCRIPTION_OPTIONS_VERSION);
    }
    int error = td_state__check_name(opts->name);
    if (error == 0)
        error = td_match__check(&opts->match);
    if (error == 0 && opts->eager && !opts->transactional)
        error = td_error__set(TD_EINVAL, "subscription '%s': eager mode needs transactional mode",
                              opts->name);
    if (error < 0)
        return error;
    sub->opts = *opts;
    sub->name = td_strdup(opts->name);
    sub->match_type = opts->match.type ? td_strdup(opts->match.type) : NULL;
    sub->match_category = opts->match.category ? td_strdup(opts->match.category) : NULL;
    if (!sub->name || (opts->match.type && !sub->match_type) ||
        (opts->match.category && !sub->match_category))
        return td_error__oom();
    sub->opts.name = sub->name;
    sub->opts.match.type = sub->match_type;
    sub->opts.match.category = sub->match_category;
    if (sub->opts.lanes == 0)
        sub->opts.lanes = 1;
    if (sub->opts.max_attempts == 0)
        sub->opts.max_attempts = 5;
    if (sub->opts.backoff_initial_ms == 0)
        sub->opts.backoff_initial_ms = 100;
    if (sub->opts.backoff_max_ms < sub->opts.backoff_initial_ms)
        sub->opts.backoff_max_ms =
            sub->opts.backoff_initial_ms > 30000 ? sub->opts.backoff_initial_ms : 30000;
    if (sub->opts.batch_size == 0)
        sub->opts.batch_size = 512;
    return 0;
}

static void init_sync(td_subscription *sub)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&sub->lock, NULL);
    pthread_cond_init(&sub->lanes_cond, &attr);
    pthread_cond_init(&sub->progress_cond, &attr);
    pthread_condattr_destroy(&attr);
}

int td_subscription_new(td_subscription **out, td_store *store, const td_subscription_options *opts,
                        td_handler_fn fn, void *payload)
{
    TD_REQUIRE(out && store && opts && fn);
    if (store == NULL || fn == NULL)
        return td_error__set(TD_EINVAL, "td_subscription_new: store and fn are required");
    td_subscription *sub = td_calloc(1, sizeof *sub);
    if (sub == NULL)
        return td_error__oom();
    init_sync(sub);
    sub->store = store;
    sub->fn = fn;
    sub->payload = payload;
    int error = copy_options(sub, opts);
    if (error == 0)
        error = td_sched__init(sub);
    if (error == 0)
        error = td_sub_metrics__register(sub);
    if (error < 0) {
        td_subscription_free(sub);
        return error;
    }
    *out = sub;
    return 0;
}

/* ---- reading ---------------------------------------------------------------------- */

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
        sub->durable = cp;
    return error;
}

static size_t read_limit(td_subscription *sub, bool *careful)
{
    pthread_mutex_lock(&sub->lock);
    size_t pending = td_ring__pending(sub);
    *careful = td_recovery__careful(sub, sub->read_position);
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
        sub->read_position = b->events[i]->position;
        if (error == 0 &&
            (sub->opts.accept == NULL || sub->opts.accept(b->events[i], sub->payload)))
            error = enqueue(sub, b->events[i]);
        else
            td_event_free(b->events[i]);
        b->events[i] = NULL;
    }
    b->count = 0;
    if (error == 0 && got < limit && head_before > sub->read_position)
        sub->read_position = head_before; /* the rest did not match: seen */
    td_ring__settle_idle(sub, sub->read_position);
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
    q.after_position = sub->read_position; /* only the reader writes it */
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
    bool accepted =
        b->count == 1 && (sub->opts.accept == NULL || sub->opts.accept(b->events[0], sub->payload));
    if (error == 0 && careful && accepted &&
        (error = td_recovery__careful_step(sub, b->events[0])) == 1) {
        b->count = 0; /* parked; td_recovery__careful_step took it */
        *outcome = READ_SOME;
        return 0;
    }
    if (error == 0 && !careful && b->count > 0 &&
        b->events[b->count - 1]->position > sub->durable.inflight_to)
        error = td_reader__save_checkpoint(sub, b->events[b->count - 1]->position + INFLIGHT_WINDOW,
                                           0, 0);
    if (error < 0) {
        batch_dispose(b);
        return error;
    }
    size_t n = b->count;
    if (head > sub->read_position || n > 0)
        error = queue_batch(sub, b, limit, head);
    if (error == 0 && n > 0)
        *outcome = READ_SOME;
    return error < 0 ? error : 0;
}

static void maybe_save(td_subscription *sub, int64_t *last_save)
{
    int64_t now = td_sched__monotonic_us();
    pthread_mutex_lock(&sub->lock);
    bool moved = td_ring__checkpoint(sub) != sub->durable.position;
    bool careful = td_recovery__careful(sub, sub->read_position);
    pthread_mutex_unlock(&sub->lock);
    if (!moved || careful || now - *last_save < CHECKPOINT_EVERY_US)
        return;
    *last_save = now;
    if (td_reader__save_checkpoint(sub, sub->durable.inflight_to, 0, 0) < 0)
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
    ts.tv_nsec += 20 * 1000000L;
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
                 td_store_wait(sub->store, sub->read_position, 50, &head) < 0)
            td_sub__fail(sub, td_error_last_code());
    }
    return NULL;
}

/* ---- start and stop ------------------------------------------------------------------ */

static int load_state(td_subscription *sub)
{
    bool found = false;
    int64_t head = 0;
    int error = td_state__load_checkpoint(sub->store, sub->name, &sub->durable, &found);
    if (error == 0 && !found) {
        if (sub->opts.start_at_end && (error = td_store_head(sub->store, &head)) < 0)
            return error;
        sub->durable = (td_checkpoint){head, head, 0, 0, 0};
        error = td_state__save_checkpoint(sub->store, sub->name, &sub->durable);
    }
    if (error < 0)
        return error;
    sub->read_position = sub->durable.position;
    td_ring__start_at(sub, sub->durable.position);
    if ((error = td_store_head(sub->store, &head)) < 0 ||
        (error = td_recovery__plan(sub, head)) < 0)
        return error;
    td_log__emit(TD_LOG_INFO, sub->name, NULL, "starting at position %lld",
                 (long long)sub->durable.position);
    error = td_recovery__load_retries(sub);
    td_replays__reset(sub);
    return error < 0 ? error : td_requests__restore(sub);
}

int td_subscription_start(td_subscription *sub)
{
    TD_REQUIRE(sub);
    if (sub->opts.batch_size > 4096)
        return td_error__set(TD_EINVAL, "batch_size over 4096");
    if (sub->reader_started)
        return td_error__set(TD_EINVAL, "subscription '%s' is running already", sub->name);
    pthread_mutex_lock(&sub->lock); /* a new run: its own first error */
    sub->first_error = 0;
    sub->first_error_message[0] = '\0';
    pthread_mutex_unlock(&sub->lock);
    int error = td_lease__take(sub);
    if (error == 0 && ((error = td_sched__reset(sub)) < 0 || (error = load_state(sub)) < 0))
        td_lease__release(sub);
    if (error < 0)
        return error;
    sub->stopping = false;
    sub->lanes = td_calloc(sub->opts.lanes, sizeof *sub->lanes);
    if (sub->lanes == NULL) {
        td_lease__release(sub);
        return td_error__oom();
    }
    for (; sub->lanes_started < sub->opts.lanes; sub->lanes_started++)
        if (pthread_create(&sub->lanes[sub->lanes_started], NULL, td_lanes__main, sub) != 0)
            break;
    if (sub->lanes_started == sub->opts.lanes &&
        pthread_create(&sub->reader, NULL, reader_main, sub) == 0) {
        sub->reader_started = true;
        if (!sub->opts.eager || (error = td_eager__start(sub)) == 0)
            return 0;
        td_subscription_stop(sub);
        return error;
    }
    td_subscription_stop(sub);
    return td_error__set(TD_ERROR, "cannot start the threads of subscription '%s'", sub->name);
}

int td_subscription_stop(td_subscription *sub)
{
    TD_REQUIRE(sub);
    if (td_eager__stop(sub) < 0)
        td_sub__fail(sub, td_error_last_code());
    pthread_mutex_lock(&sub->lock);
    sub->stopping = true;
    pthread_cond_broadcast(&sub->lanes_cond);
    pthread_cond_broadcast(&sub->progress_cond);
    pthread_mutex_unlock(&sub->lock);
    if (sub->reader_started)
        pthread_join(sub->reader, NULL);
    for (unsigned i = 0; i < sub->lanes_started; i++)
        pthread_join(sub->lanes[i], NULL);
    bool was_running = sub->reader_started;
    sub->reader_started = false;
    sub->lanes_started = 0;
    td_free(sub->lanes);
    sub->lanes = NULL;
    /* The lanes have finished what they held: nothing is in a handler, so
     * nothing past the checkpoint is in flight, and a range handed over
     * again after a crash is over as far as a stop can tell (the next start
     * is not after a crash). Inside a serial range, the durable state stays
     * as it is: the next start goes on one at a time. */
    if (was_running && td_recovery__end_on_stop(sub, td_ring__checkpoint(sub))) {
        if (td_reader__save_checkpoint(sub, td_ring__checkpoint(sub), 0, 0) < 0)
            td_sub__fail(sub, td_error_last_code());
    }
    td_lease__release(sub);
    if (sub->first_error < 0)
        return td_error__set(sub->first_error, "%s", sub->first_error_message);
    return 0;
}

int td_subscription_check(td_subscription *sub)
{
    TD_REQUIRE(sub);
    char message[sizeof sub->first_error_message];
    pthread_mutex_lock(&sub->lock);
    int code = sub->first_error;
    memcpy(message, sub->first_error_message, sizeof message);
    pthread_mutex_unlock(&sub->lock);
    return code < 0 ? td_error__set(code, "%s", message) : 0;
}

void td_subscription_free(td_subscription *sub)
{
    if (sub == NULL)
        return;
    td_subscription_stop(sub);
    td_sub_metrics__unregister(sub);
    td_sched__dispose(sub);
    td_replays__reset(sub);
    pthread_cond_destroy(&sub->lanes_cond);
    pthread_cond_destroy(&sub->progress_cond);
    pthread_mutex_destroy(&sub->lock);
    td_free(sub->name);
    td_free(sub->match_type);
    td_free(sub->match_category);
    td_recovery__dispose(sub);
    td_free(sub);
}

td_backlog td_subscription_backlog(td_subscription *sub)
{
    td_backlog b = {0, 0};
    td_time oldest = sub ? td_ring__oldest_unfinished(sub, &b.events) : 0;
    td_time now = td_time_now();
    b.age = oldest && now > oldest ? now - oldest : 0;
    return b;
}

int td_subscription_wait_until(td_subscription *sub, int64_t position, int timeout_ms)
{
    TD_REQUIRE(sub);
    int64_t deadline = td_sched__monotonic_us() + (int64_t)timeout_ms * 1000;
    int error = 0;
    pthread_mutex_lock(&sub->lock);
    while (td_ring__checkpoint(sub) < position) {
        int64_t until = td_sched__monotonic_us() + 20000;
        if (until > deadline)
            until = deadline;
        if (td_sched__monotonic_us() >= deadline) {
            error = td_error__set(TD_EBUSY, "subscription '%s' at %lld, not %lld, after %d ms",
                                  sub->name, (long long)td_ring__checkpoint(sub),
                                  (long long)position, timeout_ms);
            break;
        }
        struct timespec ts = {(time_t)(until / 1000000), (long)(until % 1000000) * 1000};
        pthread_cond_timedwait(&sub->progress_cond, &sub->lock, &ts);
    }
    pthread_mutex_unlock(&sub->lock);
    return error;
}
