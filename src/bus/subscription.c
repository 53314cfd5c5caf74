/*
 * subscription.c: a subscription's life: options, start, stop, free, its
 * first error, and waiting on its checkpoint. The work is done by its parts
 * (sub_int.h lists them and how they lock): the reader thread (reader.c),
 * the lanes (lanes.c), the scheduler and the pending ring (scheduler.c,
 * ring.c), the lease (lease.c), crash recovery (recovery.c), eager
 * delivery (eager.c) and replays (replay.c).
 *
 *   new ──start──▶ running ──stop──▶ stopped ──free
 *
 * start: lease, then the scheduler reset and the durable state loaded
 * (td_reader__load), then the lanes, the reader and, if eager, the append
 * observer. stop: the observer, then stopping set and the reader and lanes
 * joined, then the checkpoint saved with the window shrunk, then the lease.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "bus/bus_int.h"
#include "bus/lanes.h"
#include "bus/reader.h"
#include "bus/eager.h"
#include "bus/lease.h"
#include "bus/metrics.h"
#include "bus/recovery.h"
#include "bus/replay.h"
#include "bus/ring.h"
#include "bus/scheduler.h"
#include "bus/sub_int.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "core/log_int.h"
#include "core/lock.h"
#include "tidings/upcast.h"

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

/* Version 1 ended before eager, version 2 before partition: a caller built
 * against them passes a shorter struct, so only that much of it is read.
 * Unknown versions are refused. */
#define OPTIONS_V1_SIZE offsetof(td_subscription_options, eager)
#define OPTIONS_V2_SIZE offsetof(td_subscription_options, partition)

static int copy_options(td_subscription *sub, const td_subscription_options *given)
{
    td_subscription_options older = {0};
    const td_subscription_options *opts = given;
    if (given->version == 1 || given->version == 2) {
        memcpy(&older, given, given->version == 1 ? OPTIONS_V1_SIZE : OPTIONS_V2_SIZE);
        opts = &older;
    } else if (given->version != TD_SUBSCRIPTION_OPTIONS_VERSION) {
        return td_error__set(TD_EINVAL, "td_subscription_options version %u is not %u (or 1, 2)",
                             given->version, TD_SUBSCRIPTION_OPTIONS_VERSION);
    }
    char name[TD_SUBSCRIPTION_NAME_MAX + 1];
    int error = td_state__check_name(opts->name);
    if (error == 0)
        error = td_partition__check(&opts->partition, opts->name);
    if (error == 0)
        error = td_partition_name(name, sizeof name, opts->name, &opts->partition);
    if (error == 0)
        error = td_match__check(&opts->match);
    if (error == 0 && opts->eager && !opts->transactional)
        error = td_error__set(TD_EINVAL, "subscription '%s': eager mode needs transactional mode",
                              opts->name);
    if (error < 0)
        return error;
    sub->opts = *opts;
    sub->name = td_strdup(name);
    sub->base_name = td_strdup(opts->name);
    sub->match_type = opts->match.type ? td_strdup(opts->match.type) : NULL;
    sub->match_category = opts->match.category ? td_strdup(opts->match.category) : NULL;
    if (!sub->name || !sub->base_name || (opts->match.type && !sub->match_type) ||
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

/* ---- start and stop ------------------------------------------------------------------ */

static int start(td_subscription *sub, bool wait_for_lock)
{
    if (sub->opts.batch_size > 4096)
        return td_error__set(TD_EINVAL, "batch_size over 4096");
    if (td_reader__running(sub))
        return td_error__set(TD_EINVAL, "subscription '%s' is running already", sub->name);
    pthread_mutex_lock(&sub->lock); /* a new run: its own first error */
    sub->first_error = 0;
    sub->first_error_message[0] = '\0';
    pthread_mutex_unlock(&sub->lock);
    /* the lease first: a name another process runs answers at its lock,
     * before any unit of work (a balancer tries such names often) */
    int error = td_lease__take(sub, wait_for_lock);
    if (error == 0 && ((error = td_partition__claim(sub)) < 0 ||
                       (error = td_sched__reset(sub)) < 0 || (error = td_reader__load(sub)) < 0))
        td_lease__release(sub);
    if (error < 0)
        return error;
    sub->stopping = false;
    bool all = false;
    if ((error = td_lanes__start(sub, &all)) < 0) {
        td_lease__release(sub);
        return error;
    }
    if (all && td_reader__start(sub)) {
        if (!sub->opts.eager || (error = td_eager__start(sub)) == 0)
            return 0;
        td_subscription_stop(sub);
        return error;
    }
    td_subscription_stop(sub);
    return td_error__set(TD_ERROR, "cannot start the threads of subscription '%s'", sub->name);
}

int td_subscription_start(td_subscription *sub)
{
    TD_REQUIRE(sub);
    return start(sub, true);
}

int td_subscription_try_start(td_subscription *sub)
{
    TD_REQUIRE(sub);
    return start(sub, false);
}

const char *td_subscription_name(const td_subscription *sub)
{
    return sub ? sub->name : NULL;
}

bool td_sub__accepts(const td_subscription *sub, const td_event *ev)
{
    return td_partition__owns(sub, ev) &&
           (sub->opts.accept == NULL || sub->opts.accept(ev, sub->payload));
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
    bool was_running = td_reader__join(sub);
    td_lanes__join(sub);
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
    td_free(sub->base_name);
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
