/*
 * scheduler.c: per-stream queues of a subscription.
 *
 * Streams live in a hash table by name. A stream with work is on the ready
 * list (FIFO, so streams take turns) or, while its head waits for a delayed
 * retry, on the delayed list; lanes take from the ready list, promoting
 * delayed streams whose time has come. (The pending ring, which records
 * every event read for the checkpoint, is ring.c.) Every function here runs
 * with the subscription's lock held.
 *
 * Memory: a stream is forgotten as soon as it has nothing left to do (no
 * events queued, no lane or request holding it, not blocked by a dead
 * letter), so the table holds the streams in flight, at most the ring's
 * size plus the blocked ones, not every stream ever seen: a shop order is
 * a few streams of its own, and kept forever they grew the shop by about
 * 1.5 KiB an order. A stream seen again is made again, from one of up to
 * SPARE_MAX forgotten ones kept for the purpose.
 */
#include <string.h>
#include <time.h>

#include "bus/scheduler.h"
#include "bus/ring.h"
#include "bus/sub_int.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/internal.h"
#include "core/lock.h"

#define INITIAL_BUCKETS 256
/* Forgotten streams kept for reuse, so that a stream seen again (most of a
 * shop order's streams come and go within a second) costs no allocation. */
#define SPARE_MAX 64
/* The pending ring holds this many batches (batch_size each). */
#define RING_BATCHES 4

int64_t td_sched__monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int td_sched__init(td_subscription *sub)
{
    sub->sched.bucket_count = INITIAL_BUCKETS;
    sub->sched.buckets = td_calloc(sub->sched.bucket_count, sizeof *sub->sched.buckets);
    if (!sub->sched.buckets)
        return td_error__oom();
    return td_ring__init(sub, sub->opts.batch_size * RING_BATCHES);
}

int td_sched__reset(td_subscription *sub)
{
    td_sched__dispose(sub);
    sub->sched.buckets = NULL;
    sub->sched.stream_count = 0;
    sub->sched.spare = NULL;
    sub->sched.spare_count = 0;
    sub->sched.ready_head = sub->sched.ready_tail = sub->sched.delayed = NULL;
    return td_sched__init(sub);
}

void td_sched__item_free(item *it)
{
    if (it) {
        td_event_free(it->event);
        td_free(it);
    }
}

void td_sched__dispose(td_subscription *sub)
{
    for (size_t b = 0; sub->sched.buckets && b < sub->sched.bucket_count; b++) {
        for (stream_q *s = sub->sched.buckets[b], *next; s; s = next) {
            next = s->hash_next;
            for (item *it = s->head, *n; it; it = n) {
                n = it->next;
                td_sched__item_free(it);
            }
            td_free(s->name);
            td_free(s);
        }
    }
    for (stream_q *s = sub->sched.spare, *next; s; s = next) {
        next = s->hash_next;
        td_free(s->name);
        td_free(s);
    }
    td_free(sub->sched.buckets);
    td_ring__dispose(sub);
}

static void grow(td_subscription *sub)
{
    size_t count = sub->sched.bucket_count * 2;
    stream_q **buckets = td_calloc(count, sizeof *buckets);
    if (buckets == NULL)
        return; /* keep the old table: longer chains, still correct */
    for (size_t b = 0; b < sub->sched.bucket_count; b++)
        for (stream_q *s = sub->sched.buckets[b], *next; s; s = next) {
            next = s->hash_next;
            size_t i = td_hash__fnv1a(s->name) % count;
            s->hash_next = buckets[i];
            buckets[i] = s;
        }
    td_free(sub->sched.buckets);
    sub->sched.buckets = buckets;
    sub->sched.bucket_count = count;
}

/* A fresh stream named name: a spare one if there is, else a new one. */
static stream_q *new_stream(td_subscription *sub, const char *name)
{
    size_t len = strlen(name);
    stream_q *s = sub->sched.spare;
    if (s) {
        sub->sched.spare = s->hash_next;
        sub->sched.spare_count--;
    } else if ((s = td_calloc(1, sizeof *s)) == NULL) {
        return NULL;
    }
    if (s->name_cap <= len) {
        size_t cap = len + 1 > 64 ? len + 1 : 64;
        char *grown = td_realloc(s->name, cap);
        if (grown == NULL) {
            td_free(s->name);
            td_free(s);
            return NULL;
        }
        s->name = grown;
        s->name_cap = cap;
    }
    memcpy(s->name, name, len + 1);
    return s;
}

int td_sched__stream(td_subscription *sub, const char *name, stream_q **out)
{
    TD_ASSERT_HELD(&sub->lock);
    size_t i = td_hash__fnv1a(name) % sub->sched.bucket_count;
    for (stream_q *s = sub->sched.buckets[i]; s; s = s->hash_next)
        if (strcmp(s->name, name) == 0) {
            *out = s;
            return 0;
        }
    stream_q *s = new_stream(sub, name);
    if (s == NULL)
        return td_error__oom();
    s->hash_next = sub->sched.buckets[i];
    sub->sched.buckets[i] = s;
    if (++sub->sched.stream_count > sub->sched.bucket_count * 2)
        grow(sub);
    *out = s;
    return 0;
}

bool td_sched__forget_idle(td_subscription *sub, stream_q *s)
{
    TD_ASSERT_HELD(&sub->lock);
    if (s->head || s->busy || s->queued || s->blocked_by[0])
        return false;
    stream_q **link = &sub->sched.buckets[td_hash__fnv1a(s->name) % sub->sched.bucket_count];
    while (*link && *link != s)
        link = &(*link)->hash_next;
    if (*link == NULL)
        return false; /* not in the table: cannot happen, and then keep it */
    *link = s->hash_next;
    sub->sched.stream_count--;
    if (sub->sched.spare_count >= SPARE_MAX) {
        td_free(s->name);
        td_free(s);
        return true;
    }
    *s = (stream_q){.name = s->name, .name_cap = s->name_cap, .hash_next = sub->sched.spare};
    sub->sched.spare = s;
    sub->sched.spare_count++;
    return true;
}

void td_sched__push(td_subscription *sub, stream_q *s, item *it, bool front)
{
    TD_ASSERT_HELD(&sub->lock);
    (void)sub;
    if (front) {
        it->next = s->head;
        s->head = it;
        if (s->tail == NULL)
            s->tail = it;
    } else {
        it->next = NULL;
        if (s->tail)
            s->tail->next = it;
        else
            s->head = it;
        s->tail = it;
    }
}

void td_sched__offer(td_subscription *sub, stream_q *s)
{
    TD_ASSERT_HELD(&sub->lock);
    if (s->busy || s->queued || s->head == NULL)
        return;
    s->queued = true;
    s->list_next = NULL;
    if (s->ready_at > td_sched__monotonic_us()) {
        s->list_next = sub->sched.delayed;
        sub->sched.delayed = s;
        return;
    }
    if (sub->sched.ready_tail)
        sub->sched.ready_tail->list_next = s;
    else
        sub->sched.ready_head = s;
    sub->sched.ready_tail = s;
}

/* Moves delayed streams whose time has come to the ready list. */
static void promote(td_subscription *sub, int64_t now, int64_t *next_ready)
{
    stream_q **link = &sub->sched.delayed;
    while (*link) {
        stream_q *s = *link;
        if (s->ready_at <= now) {
            *link = s->list_next;
            s->queued = false;
            td_sched__offer(sub, s);
        } else {
            if (*next_ready == 0 || s->ready_at < *next_ready)
                *next_ready = s->ready_at;
            link = &s->list_next;
        }
    }
}

stream_q *td_sched__take(td_subscription *sub, int64_t now, int64_t *next_ready)
{
    TD_ASSERT_HELD(&sub->lock);
    *next_ready = 0;
    promote(sub, now, next_ready);
    for (;;) {
        stream_q *s = sub->sched.ready_head;
        if (s == NULL)
            return NULL;
        sub->sched.ready_head = s->list_next;
        if (sub->sched.ready_head == NULL)
            sub->sched.ready_tail = NULL;
        s->queued = false;
        if (s->busy)
            continue; /* claimed by the reader while queued; offered again on release */
        s->busy = true;
        return s;
    }
}

bool td_sched__has_ready(const td_subscription *sub)
{
    return sub->sched.ready_head != NULL;
}

bool td_sched__claim(td_subscription *sub, stream_q *s)
{
    TD_ASSERT_HELD(&sub->lock);
    (void)sub; /* for the assertion alone */
    if (s->busy)
        return false;
    s->busy = true;
    return true;
}

void td_sched__release(td_subscription *sub, stream_q *s)
{
    TD_ASSERT_HELD(&sub->lock);
    s->busy = false;
    if (!td_sched__forget_idle(sub, s))
        td_sched__offer(sub, s);
}

void td_sched__pop(td_subscription *sub, stream_q *s, item *it)
{
    TD_ASSERT_HELD(&sub->lock);
    (void)sub; /* for the assertion alone */
    s->head = it->next;
    if (s->head == NULL)
        s->tail = NULL;
}

void td_sched__delay(td_subscription *sub, stream_q *s, int64_t at)
{
    TD_ASSERT_HELD(&sub->lock);
    (void)sub; /* for the assertion alone */
    s->ready_at = at;
}

void td_sched__block(td_subscription *sub, stream_q *s, const char *id)
{
    TD_ASSERT_HELD(&sub->lock);
    (void)sub; /* for the assertion alone */
    memcpy(s->blocked_by, id, sizeof s->blocked_by);
}

void td_sched__unblock(td_subscription *sub, stream_q *s, const char *id)
{
    TD_ASSERT_HELD(&sub->lock);
    (void)sub; /* for the assertion alone */
    if (strcmp(s->blocked_by, id) == 0)
        s->blocked_by[0] = '\0';
}
