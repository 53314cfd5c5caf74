/*
 * lanes.c: the lane threads of a subscription. A lane takes the next ready
 * stream, handles its head event (deliver.c) without holding the lock, then
 * puts the outcome back: done or parked events leave the stream and the
 * ring; a delayed one stays at the head until its time comes, while the lane
 * goes on with other streams.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "bus/sub_int.h"

/* Waits for work until `until_us` (monotonic; 0: at most 100 ms). */
static void wait_for_work(td_subscription *sub, int64_t until_us)
{
    int64_t now = td_sched__monotonic_us();
    if (until_us == 0 || until_us > now + 100000)
        until_us = now + 100000;
    struct timespec ts = {(time_t)(until_us / 1000000), (long)(until_us % 1000000) * 1000};
    pthread_cond_timedwait(&sub->lanes_cond, &sub->lock, &ts);
}

static void settle(td_subscription *sub, stream_q *s, item *it, td_outcome outcome,
                   int64_t delay_us, const char *dead_letter)
{
    if (outcome == OUTCOME_DONE || outcome == OUTCOME_PARKED) {
        s->head = it->next;
        if (s->head == NULL)
            s->tail = NULL;
        if (outcome == OUTCOME_PARKED && !s->blocked_by[0] &&
            sub->opts.dlq_mode == TD_DLQ_SEQUENCED)
            memcpy(s->blocked_by, dead_letter, sizeof s->blocked_by);
        td_sched__done(sub, it->seq);
        td_sched__item_free(it);
        s->ready_at = 0;
    } else {
        s->ready_at = td_sched__monotonic_us() + (outcome == OUTCOME_DELAYED ? delay_us : 1000000);
    }
    s->busy = false;
    td_sched__offer(sub, s);
    pthread_cond_broadcast(&sub->progress_cond);
    if (sub->ready_head)
        pthread_cond_signal(&sub->lanes_cond);
}

void *td_lanes__main(void *arg)
{
    td_subscription *sub = arg;
    pthread_mutex_lock(&sub->lock);
    while (!sub->stopping) {
        int64_t next_ready = 0;
        stream_q *s = td_sched__take(sub, td_sched__monotonic_us(), &next_ready);
        if (s == NULL) {
            wait_for_work(sub, next_ready);
            continue;
        }
        item *it = s->head;
        char blocked_by[sizeof s->blocked_by], dead_letter[sizeof s->blocked_by] = "";
        memcpy(blocked_by, s->blocked_by, sizeof blocked_by);
        int64_t delay_us = 0;
        pthread_mutex_unlock(&sub->lock);
        td_outcome outcome = td_deliver__item(sub, it, blocked_by, &delay_us, dead_letter);
        pthread_mutex_lock(&sub->lock);
        settle(sub, s, it, outcome, delay_us, dead_letter);
    }
    pthread_mutex_unlock(&sub->lock);
    return NULL;
}
