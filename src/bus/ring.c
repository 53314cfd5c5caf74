/*
 * ring.c: the pending ring of a subscription: every event read, in position
 * order, with a done flag; the checkpoint is its done prefix (ring.h states
 * the invariants and the locking). Every function but init, dispose and
 * start_at runs with the subscription's lock held.
 */
#include <string.h>

#include "bus/ring.h"
#include "bus/sub_int.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/lock.h"

int td_ring__init(td_subscription *sub, size_t cap)
{
    td_sub_ring *r = &sub->ring;
    r->cap = cap;
    r->start = r->end = 0;
    r->unfinished = 0;
    r->position = td_calloc(r->cap, sizeof *r->position);
    r->done = td_calloc(r->cap, sizeof *r->done);
    r->time = td_calloc(r->cap, sizeof *r->time);
    if (!r->position || !r->done || !r->time)
        return td_error__oom();
    return 0;
}

void td_ring__dispose(td_subscription *sub)
{
    td_sub_ring *r = &sub->ring;
    td_free(r->position);
    td_free(r->done);
    td_free(r->time);
    r->position = NULL;
    r->done = NULL;
    r->time = NULL;
}

void td_ring__start_at(td_subscription *sub, int64_t position)
{
    sub->ring.checkpoint = position;
}

int td_ring__track(td_subscription *sub, int64_t position, td_time occurred_at, uint64_t *seq)
{
    TD_ASSERT_HELD(&sub->lock);
    td_sub_ring *r = &sub->ring;
    if (r->end - r->start >= r->cap)
        return td_error__set(TD_EBUSY, "pending ring full");
    size_t slot = r->end % r->cap;
    r->position[slot] = position;
    r->time[slot] = occurred_at;
    r->done[slot] = false;
    r->unfinished++;
    *seq = r->end++;
    return 0;
}

void td_ring__done(td_subscription *sub, uint64_t seq, int64_t read_position)
{
    TD_ASSERT_HELD(&sub->lock);
    td_sub_ring *r = &sub->ring;
    if (seq == NO_SEQ || seq < r->start || r->done[seq % r->cap])
        return;
    r->done[seq % r->cap] = true;
    r->unfinished--;
    while (r->start < r->end && r->done[r->start % r->cap]) {
        r->checkpoint = r->position[r->start % r->cap];
        r->start++;
    }
    if (r->start == r->end && read_position > r->checkpoint)
        r->checkpoint = read_position;
}

void td_ring__settle_idle(td_subscription *sub, int64_t read_position)
{
    TD_ASSERT_HELD(&sub->lock);
    if (td_ring__pending(sub) == 0 && read_position > sub->ring.checkpoint)
        sub->ring.checkpoint = read_position;
}

size_t td_ring__pending(const td_subscription *sub)
{
    return (size_t)(sub->ring.end - sub->ring.start);
}

size_t td_ring__room(const td_subscription *sub)
{
    return sub->ring.cap - td_ring__pending(sub);
}

int64_t td_ring__checkpoint(const td_subscription *sub)
{
    return sub->ring.checkpoint;
}

/* O(1): done entries at the ring's start are dropped as they finish
 * (td_ring__done), so the entry at start, if any, is the oldest
 * unfinished one. */
td_time td_ring__oldest_unfinished(td_subscription *sub, int64_t *unfinished)
{
    const td_sub_ring *r = &sub->ring;
    pthread_mutex_lock(&sub->lock);
    td_time oldest = r->start < r->end ? r->time[r->start % r->cap] : 0;
    int64_t count = r->unfinished;
    pthread_mutex_unlock(&sub->lock);
    if (unfinished)
        *unfinished = count;
    return oldest;
}
