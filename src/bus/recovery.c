/*
 * recovery.c: a subscription's crash recovery and restored retries.
 *
 * An event is handed to a lane only once a durable inflight_to covers it
 * (reader.c), so after a crash every event that might have been in a
 * handler lies in (checkpoint, inflight_to].
 *
 * After a crash, the range is handed over again in two steps:
 *
 *   start: recovering_to set? ──no──▶ parallel: one durable write
 *     │ (a crash came while            {recovering_to = range end}, then the
 *     │  the range was handed          range goes as any events do: across
 *     │  over again)                   lanes, in order within a stream; the
 *     │ yes                            checkpoint passing it clears it
 *     ▼
 *   serial: one event at a time up to recovering_to, each with a durable
 *   {suspect_position, suspect_attempts} written before it is handed over;
 *   an event that has crashed the process max_attempts times in all (the
 *   crash that revealed the range, the one during the parallel step, and
 *   its own serial attempts) is parked instead. Then parallel again.
 *
 * Most crashes (a kill, a power cut, a bug elsewhere) are not caused by an
 * event, and the range, up to a window of events per subscription, goes at
 * normal speed. An event that crashes the process every time it is handled
 * also crashes the parallel step, and that second crash is what sends the
 * range one at a time: only there can a crash be pinned on one event. So
 * an innocent event is never parked, and a poison event is parked after
 * max_attempts crashes (at least three: one in each step).
 *
 * Restored retries: the delayed retries recorded durably (tidings_retries)
 * are read at start and given to their events as the reader queues them,
 * so attempts and the wait survive a restart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/reader.h"
#include "bus/recovery.h"
#include "bus/scheduler.h"
#include "bus/deliver.h"
#include "bus/ring.h"
#include "bus/sub_int.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "core/lock.h"
#include "core/log_int.h"

static int by_retry_position(const void *a, const void *b)
{
    int64_t x = ((const restored_retry *)a)->position, y = ((const restored_retry *)b)->position;
    return (x > y) - (x < y);
}

/* Gives an item the attempts and delay of its restored retry record. */
void td_recovery__apply_retry(td_subscription *sub, stream_q *s, item *it)
{
    restored_retry key = {it->event->position, 0, 0};
    restored_retry *r = sub->recovery.retry_count
                            ? bsearch(&key, sub->recovery.retries, sub->recovery.retry_count,
                                      sizeof key, by_retry_position)
                            : NULL;
    if (r == NULL)
        return;
    it->attempts = r->attempts;
    it->has_retry_doc = true;
    td_time wait = r->next_at - td_time_now();
    if (wait > 0 && td_sched__head(s) == NULL) /* the delay holds the stream's head */
        td_sched__delay(sub, s, td_sched__monotonic_us() + wait);
}

static int collect_retry(const char *key, const char *json, size_t len, void *payload)
{
    td_subscription *sub = payload;
    json_error_t err;
    json_int_t attempts = 0, next_at = 0;
    const char *bar = strrchr(key, '|');
    bool oom;
    json_t *doc = td_json__loadb(json, len, 0, &err, &oom);
    if (oom)
        return td_error__oom();
    int ok = doc && bar &&
             json_unpack(doc, "{s:I,s:I}", "attempts", &attempts, "next_at", &next_at) == 0;
    json_decref(doc);
    if (!ok)
        return td_error__set(TD_ECORRUPT, "retry record '%s' is malformed", key);
    restored_retry *grown =
        td_realloc(sub->recovery.retries, (sub->recovery.retry_count + 1) * sizeof *grown);
    if (grown == NULL)
        return td_error__oom();
    sub->recovery.retries = grown;
    grown[sub->recovery.retry_count++] =
        (restored_retry){strtoll(bar + 1, NULL, 10), (unsigned)attempts, next_at};
    return 0;
}

/* After a crash (see the top of this file): what goes one at a time, what
 * in parallel, and the durable note of the range before anything of it is
 * handed over. Only events that existed at the crash can have been in
 * flight: the range is capped at today's head (the reserved window may
 * reach past it). */
int td_recovery__plan(td_subscription *sub, int64_t head)
{
    const td_checkpoint *durable = td_reader__durable(sub);
    int64_t position = durable->position;
    int64_t suspect_end = durable->inflight_to < head ? durable->inflight_to : head;
    int64_t unfinished = durable->recovering_to > position ? durable->recovering_to : 0;
    if (unfinished > head)
        unfinished = head;
    sub->recovery.careful_until = unfinished;
    sub->recovery.recovering_to = suspect_end > unfinished ? suspect_end : unfinished;
    if (sub->recovery.recovering_to <= position) {
        sub->recovery.recovering_to = 0;
        return 0;
    }
    if (unfinished)
        td_log__emit(TD_LOG_WARN, sub->name, NULL,
                     "the last run crashed again while events %lld..%lld were handed over after "
                     "a crash; handing them over one at a time",
                     (long long)position + 1, (long long)unfinished);
    if (suspect_end > (unfinished > position ? unfinished : position))
        td_log__emit(TD_LOG_WARN, sub->name, NULL,
                     "the last run stopped with events %lld..%lld in flight; handing them over "
                     "again",
                     (long long)(unfinished > position ? unfinished : position) + 1,
                     (long long)suspect_end);
    return td_reader__save_checkpoint(sub, durable->inflight_to, durable->suspect_position,
                                      durable->suspect_attempts);
}

/* Crashes counted against every event of a serial range before its own
 * serial attempts: the one that revealed the range, and the one during its
 * parallel step. */
#define CRASHES_BEFORE_SERIAL 2

/* After crashes: decides about the one suspect event at hand. Returns 1 if
 * it was parked (crashed too often), 0 to hand it over. */
int td_recovery__careful_step(td_subscription *sub, td_event *ev)
{
    const td_checkpoint *durable = td_reader__durable(sub);
    unsigned crashes = durable->suspect_position == ev->position ? durable->suspect_attempts : 0;
    /* max_attempts - 2 serial attempts remain (at least one, so that an
     * innocent event in flight during two kills is never parked untried). */
    unsigned careful_limit = sub->opts.max_attempts > CRASHES_BEFORE_SERIAL + 1
                                 ? sub->opts.max_attempts - CRASHES_BEFORE_SERIAL
                                 : 1;
    if (crashes < careful_limit)
        return td_reader__save_checkpoint(sub, sub->recovery.careful_until, ev->position,
                                          crashes + 1);
    char why[128], dead_letter[TD_DEAD_LETTER_ID_LEN + 1];
    snprintf(why, sizeof why, "the handler crashed the process %u times on this event",
             crashes + CRASHES_BEFORE_SERIAL);
    item it = {.event = ev, .attempts = crashes + CRASHES_BEFORE_SERIAL};
    int error = td_deliver__park(sub, &it, NULL, why, dead_letter);
    if (error < 0)
        return error;
    td_log__emit(TD_LOG_ERROR, sub->name, ev, "event %lld (%s) parked as dead letter %s: %s",
                 (long long)ev->position, ev->type, dead_letter, why);
    pthread_mutex_lock(&sub->lock);
    stream_q *s = NULL;
    if (sub->opts.dlq_mode == TD_DLQ_SEQUENCED && td_sched__stream(sub, ev->stream, &s) == 0)
        td_sched__block(sub, s, dead_letter);
    td_reader__skip_to(sub, ev->position);
    td_ring__settle_idle(sub, ev->position);
    pthread_mutex_unlock(&sub->lock);
    td_event_free(ev);
    return 1;
}

int td_recovery__load_retries(td_subscription *sub)
{
    sub->recovery.retry_count = 0;
    int error = td_state__list_prefix(sub->store, TD_COLL_RETRIES, sub->name, collect_retry, sub);
    if (error == 0 &&
        sub->recovery.retry_count > 1) /* keys sort by position already; keep it sure */
        qsort(sub->recovery.retries, sub->recovery.retry_count, sizeof *sub->recovery.retries,
              by_retry_position);
    return error;
}

void td_recovery__dispose(td_subscription *sub)
{
    td_free(sub->recovery.retries);
    sub->recovery.retries = NULL;
    sub->recovery.retry_count = 0;
}

bool td_recovery__careful(td_subscription *sub, int64_t read_position)
{
    TD_ASSERT_HELD(&sub->lock);
    return read_position < sub->recovery.careful_until;
}

int64_t td_recovery__careful_until(const td_subscription *sub)
{
    return sub->recovery.careful_until;
}

void td_recovery__careful_over(td_subscription *sub)
{
    pthread_mutex_lock(&sub->lock);
    sub->recovery.careful_until = 0;
    pthread_mutex_unlock(&sub->lock);
}

int64_t td_recovery__range_end(td_subscription *sub, int64_t checkpoint)
{
    TD_ASSERT_HELD(&sub->lock);
    if (sub->recovery.recovering_to && checkpoint >= sub->recovery.recovering_to)
        sub->recovery.recovering_to = 0; /* the range after the crash is done */
    return sub->recovery.recovering_to;
}

bool td_recovery__end_on_stop(td_subscription *sub, int64_t checkpoint)
{
    if (checkpoint < sub->recovery.careful_until)
        return false;
    pthread_mutex_lock(&sub->lock);
    sub->recovery.recovering_to = 0;
    pthread_mutex_unlock(&sub->lock);
    return true;
}
