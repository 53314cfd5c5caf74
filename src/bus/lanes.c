/*
 * lanes.c: the lane threads of a subscription. A lane takes the next ready
 * stream, handles its head event (deliver.c) without holding the lock, then
 * puts the outcome back: done or parked events leave the stream and the
 * ring; a delayed one stays at the head until its time comes, while the lane
 * goes on with other streams.
 *
 * In transactional mode a lane takes up to LANE_BATCH ready streams at once
 * and gives their heads' first attempts one unit of work, each under its own
 * savepoint: one commit and one hand-off to the writer instead of one per
 * event. Anything else (a retry, a redelivery, a parked stream, a failure in
 * the batch) takes the one-at-a-time path with its full retry rules.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "bus/lanes.h"
#include "bus/reader.h"
#include "bus/replay.h"
#include "bus/scheduler.h"
#include "bus/deliver.h"
#include "bus/eager.h"
#include "bus/ring.h"
#include "bus/sub_int.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "core/lock.h"

/* Most first attempts one transactional lane puts in one unit of work. */
#define LANE_BATCH 32
/* The longest a lane without work sleeps before it looks again. */
#define WORK_WAIT_US 100000
/* A failed item (its failure recorded as the subscription's) is tried
 * again after this long. */
#define FAILED_RETRY_US 1000000

/* Waits for work until `until_us` (monotonic; 0: at most 100 ms). */
static void wait_for_work(td_subscription *sub, int64_t until_us)
{
    int64_t now = td_sched__monotonic_us();
    if (until_us == 0 || until_us > now + WORK_WAIT_US)
        until_us = now + WORK_WAIT_US;
    struct timespec ts = {(time_t)(until_us / 1000000), (long)(until_us % 1000000) * 1000};
    pthread_cond_timedwait(&sub->lanes_cond, &sub->lock, &ts);
}

static void settle(td_subscription *sub, stream_q *s, item *it, td_outcome outcome,
                   int64_t delay_us, const char *dead_letter)
{
    if (outcome == OUTCOME_DONE || outcome == OUTCOME_PARKED) {
        td_sched__pop(sub, s, it);
        if (outcome == OUTCOME_PARKED && !td_sched__blocked_by(s)[0] &&
            sub->opts.dlq_mode == TD_DLQ_SEQUENCED)
            td_sched__block(sub, s, dead_letter);
        td_ring__done(sub, it->seq, td_reader__position(sub));
        if (it->replay)
            td_replays__item_done(sub); /* the reader queues the next page at 0 */
        td_sched__item_free(it);
        td_sched__delay(sub, s, 0);
    } else {
        td_sched__delay(sub, s,
                        td_sched__monotonic_us() +
                            (outcome == OUTCOME_DELAYED ? delay_us : FAILED_RETRY_US));
    }
    td_sched__release(sub, s);
    pthread_cond_broadcast(&sub->progress_cond);
    if (td_sched__has_ready(sub))
        pthread_cond_signal(&sub->lanes_cond);
}

/* One stream a lane holds, with what it needs once the lock is let go. */
typedef struct held {
    stream_q *stream;
    item *it;
    char blocked_by[TD_DEAD_LETTER_ID_LEN + 1];
    char dead_letter[TD_DEAD_LETTER_ID_LEN + 1];
    td_outcome outcome;
    int64_t delay_us;
} held;

/* Takes the first ready stream and, in transactional mode, up to
 * LANE_BATCH - 1 more, so their first attempts share one unit of work.
 * Lock held. Returns how many. */
static size_t take_streams(td_subscription *sub, held *out, int64_t *next_ready)
{
    TD_ASSERT_HELD(&sub->lock);
    size_t n = 0;
    size_t max = sub->opts.transactional ? LANE_BATCH : 1;
    for (stream_q *s; n < max && (s = td_sched__take(sub, td_sched__monotonic_us(), next_ready));
         n++) {
        out[n].stream = s;
        out[n].it = td_sched__head(s);
        memcpy(out[n].blocked_by, td_sched__blocked_by(s), sizeof out[n].blocked_by);
        out[n].dead_letter[0] = '\0';
        out[n].delay_us = 0;
    }
    return n;
}

/* Handles what take_streams took; lock not held. */
static void handle(td_subscription *sub, held *h, size_t n)
{
    item *batch[LANE_BATCH];
    bool done[LANE_BATCH];
    size_t index[LANE_BATCH], count = 0;
    bool skipped[LANE_BATCH] = {false};
    for (size_t i = 0; i < n; i++)
        if (!h[i].blocked_by[0] && td_eager__done(sub, h[i].it)) {
            skipped[i] = true; /* handled eagerly, in the unit that appended it */
            h[i].outcome = OUTCOME_DONE;
        }
    for (size_t i = 0; i < n; i++)
        if (!skipped[i] && td_deliver__batchable(sub, h[i].it, h[i].blocked_by)) {
            index[count] = i;
            batch[count++] = h[i].it;
        }
    bool batched[LANE_BATCH] = {false};
    if (count > 1) {
        td_deliver__batch(sub, batch, count, done);
        for (size_t k = 0; k < count; k++)
            if (done[k]) {
                batched[index[k]] = true;
                h[index[k]].outcome = OUTCOME_DONE;
            }
    }
    for (size_t i = 0; i < n; i++)
        if (!batched[i] && !skipped[i])
            h[i].outcome =
                td_deliver__item(sub, h[i].it, h[i].blocked_by, &h[i].delay_us, h[i].dead_letter);
}

void *td_lanes__main(void *arg)
{
    td_subscription *sub = arg;
    td_thread__name("l/", sub->name);
    held h[LANE_BATCH];
    pthread_mutex_lock(&sub->lock);
    while (!sub->stopping) {
        int64_t next_ready = 0;
        size_t n = take_streams(sub, h, &next_ready);
        if (n == 0) {
            wait_for_work(sub, next_ready);
            continue;
        }
        pthread_mutex_unlock(&sub->lock);
        handle(sub, h, n);
        pthread_mutex_lock(&sub->lock);
        for (size_t i = 0; i < n; i++)
            settle(sub, h[i].stream, h[i].it, h[i].outcome, h[i].delay_us, h[i].dead_letter);
    }
    pthread_mutex_unlock(&sub->lock);
    return NULL;
}

int td_lanes__start(td_subscription *sub, bool *all)
{
    td_sub_lanes *l = &sub->lanes;
    *all = false;
    l->threads = td_calloc(sub->opts.lanes, sizeof *l->threads);
    if (l->threads == NULL)
        return td_error__oom();
    for (; l->started < sub->opts.lanes; l->started++)
        if (pthread_create(&l->threads[l->started], NULL, td_lanes__main, sub) != 0)
            break;
    *all = l->started == sub->opts.lanes;
    return 0;
}

void td_lanes__join(td_subscription *sub)
{
    td_sub_lanes *l = &sub->lanes;
    for (unsigned i = 0; i < l->started; i++)
        pthread_join(l->threads[i], NULL);
    l->started = 0;
    td_free(l->threads);
    l->threads = NULL;
}
